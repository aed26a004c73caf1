"""Collection with the scripted experts, the HDF5 dataset, resume and bad input."""

import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from vlm_reward_wrappers.configs import from_dict, to_dict
from vlm_reward_wrappers.data import CollectionConfig, DemoDataset, EpisodeRecord, collect
from vlm_reward_wrappers.data.storage import DatasetConfigMismatchError, config_id, write_episode
from vlm_reward_wrappers.io_utils import CorruptFileError


def test_experts_succeed_and_ground_truth_is_recorded(tiny_dataset, tiny_config):
    assert len(tiny_dataset) == 12 and tiny_dataset.tasks == sorted(tiny_config.tasks)
    for task in tiny_config.tasks:
        episodes = [e for e in tiny_dataset.episodes if e.task == task]
        clean = [e for e in episodes if e.kind == "expert" and e.noise_std == 0.0]
        assert len(clean) == 2 and all(e.first_success_step >= 0 for e in clean), task
        for e in clean:  # stops steps_after_success steps after the first success
            assert e.num_steps == e.first_success_step + tiny_config.steps_after_success + 1
            assert e.success[e.first_success_step] and not e.success[: e.first_success_step].any()
        random = [e for e in episodes if e.kind == "random"]
        assert len(random) == 1 and random[0].num_steps == tiny_config.max_steps
        assert all(0.0 <= r <= 10.0 for e in episodes for r in e.gt_reward)
    first = next(e for e in tiny_dataset.episodes if e.task == "reach-v3")
    assert first.goal_text == "reach the goal position"
    with h5py.File(first.path) as h5:
        assert h5.attrs["camera"] == "corner" and h5.attrs["image_size"] == 32
        assert h5["frames"].compression == "lzf" and h5["frames"].chunks[0] <= 8
        assert h5["actions"].shape == (first.num_steps, 4)


def test_episodes_do_not_depend_on_worker_count(tmp_path, tiny_config, tiny_dataset):
    config = from_dict(CollectionConfig, {**to_dict(tiny_config), "tasks": ["reach-v3"], "episodes_per_task": 2})
    parallel = collect(config, tmp_path / "parallel", workers=2, progress=False)
    serial_reach = [e for e in tiny_dataset.episodes if e.task == "reach-v3"][:2]  # collected with workers=1
    assert len(parallel) == 2
    for info, reference in zip(parallel.episodes, serial_reach, strict=False):
        np.testing.assert_array_equal(info.gt_reward, reference.gt_reward)


def _record(steps: int, size: int = 16) -> EpisodeRecord:
    rng = np.random.default_rng(steps)
    return EpisodeRecord(
        task="reach-v3",
        goal_text="reach the goal position",
        seed=1,
        camera="corner",
        image_size=size,
        noise_std=0.1,
        kind="expert",
        frames=rng.integers(0, 255, size=(steps, size, size, 3), dtype=np.uint8),
        actions=rng.uniform(-1, 1, size=(steps, 4)).astype(np.float32),
        gt_reward=np.linspace(0, 10, steps, dtype=np.float32),
        success=np.arange(steps) >= steps - 3,
    )


def _write_dataset(root: Path, records: list[EpisodeRecord]) -> DemoDataset:
    from vlm_reward_wrappers.data.storage import episode_path, prepare_output

    config = {"camera": "corner", "image_size": 16, "tasks": ["reach-v3"]}
    prepare_output(root, config)
    for index, record in enumerate(records):
        write_episode(
            episode_path(root, "reach-v3", config_id(config), index), record, collection=config_id(config), index=index
        )
    return DemoDataset(root)


def test_round_trip_lazy_reads_and_batches(tmp_path):
    records = [_record(20), _record(13)]
    dataset = _write_dataset(tmp_path / "ds", records)
    assert dataset.num_frames == 33 and dataset.episodes[1].first_success_step == 10
    np.testing.assert_array_equal(dataset.read_frames(0), records[0].frames)
    steps = [7, 2, 7, 0]  # unsorted, repeated
    np.testing.assert_array_equal(dataset.read_frames(1, steps), records[1].frames[steps])
    batches = list(dataset.iter_frame_batches(8))
    assert [len(b.frames) for b in batches] == [8, 8, 8, 8, 1]
    frames = np.concatenate([b.frames for b in batches])
    np.testing.assert_array_equal(frames, np.concatenate([r.frames for r in records]))
    rewards = np.concatenate([b.gt_reward for b in batches])
    np.testing.assert_allclose(rewards, np.concatenate([r.gt_reward for r in records]))
    assert [int(b.step[-1]) for b in batches][:3] == [7, 15, 3]


def test_truncated_episode_file_is_named(tmp_path):
    dataset = _write_dataset(tmp_path / "ds", [_record(20), _record(13)])
    damaged = dataset.episodes[1].path
    dataset.close()
    damaged.write_bytes(damaged.read_bytes()[:500])
    with pytest.raises(CorruptFileError, match=damaged.name):
        DemoDataset(tmp_path / "ds")


def test_output_folder_of_another_config_is_refused_unless_told(tmp_path, tiny_config):
    small = CollectionConfig(tasks=("reach-v3",), episodes_per_task=1, image_size=16, max_steps=10)
    collect(small, tmp_path / "ds", workers=1, progress=False)
    other = CollectionConfig(tasks=("button-press-v3",), episodes_per_task=1, image_size=16, max_steps=10)
    with pytest.raises(DatasetConfigMismatchError, match="--mode append"):
        collect(other, tmp_path / "ds", workers=1, progress=False)
    appended = collect(other, tmp_path / "ds", mode="append", workers=1, progress=False)
    assert appended.tasks == ["button-press-v3", "reach-v3"] and len(appended.collections) == 2
    bigger = CollectionConfig(tasks=("reach-v3",), episodes_per_task=1, image_size=24, max_steps=10)
    with pytest.raises(DatasetConfigMismatchError, match="image_size"):
        collect(bigger, tmp_path / "ds", mode="append", workers=1, progress=False)
    replaced = collect(bigger, tmp_path / "ds", mode="overwrite", workers=1, progress=False)
    assert replaced.image_size == 24 and len(replaced) == 1
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(DatasetConfigMismatchError, match="not empty"):
        collect(small, tmp_path / "junk", workers=1, progress=False)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "vlm_reward_wrappers", *args]


def test_a_deleted_episode_file_is_a_warning_with_the_count(tmp_path, tiny_dataset):
    root = Path(shutil.copytree(tiny_dataset.root, tmp_path / "ds"))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        complete = DemoDataset(root)  # a complete dataset warns of nothing
    total = len(complete)
    for info in complete.episodes[:2]:
        info.path.unlink()
    complete.close()
    with pytest.warns(UserWarning, match=rf"2 of the {total} episode files its manifest lists are missing"):
        assert len(DemoDataset(root)) == total - 2


def test_an_episode_file_linked_from_outside_the_folder_is_refused(tmp_path, tiny_dataset):
    root = Path(shutil.copytree(tiny_dataset.root, tmp_path / "ds"))
    victim = sorted(root.glob("episodes/*/*.h5"))[0]
    outside = tmp_path / "elsewhere.h5"
    victim.rename(outside)
    victim.symlink_to(outside)
    with pytest.raises(CorruptFileError, match=rf"{victim.name} is a link to .*outside the dataset folder"):
        DemoDataset(root)


def test_collection_killed_mid_way_resumes_without_duplicates(tmp_path):
    out = tmp_path / "ds"
    command = _cli(
        "collect",
        "--tasks",
        "reach-v3",
        "--episodes-per-task",
        "6",
        "--image-size",
        "16",
        "--max-steps",
        "150",
        "--steps-after-success",
        "none",
        "--workers",
        "1",
        "--out",
        str(out),
    )
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 120
    while time.time() < deadline and len(list(out.glob("episodes/*/*.h5"))) < 2:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before = sorted(p.name for p in out.glob("episodes/*/*.h5"))
    assert 2 <= len(done_before) < 6, "kill did not land mid-way"
    for path in out.glob("episodes/*/*.h5"):  # every completed file is whole
        with h5py.File(path) as h5:
            assert len(h5["frames"]) == 150
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    dataset = DemoDataset(out)
    names = [e.path.name for e in dataset.episodes]
    assert len(names) == 6 and len(set(names)) == 6 and set(done_before) <= set(names)
    assert not list(out.rglob("*.tmp"))
    assert sorted(e.index for e in dataset.episodes) == list(range(6))


def test_cli_reports_unknown_tasks_with_suggestions(tmp_path):
    result = subprocess.run(
        _cli("collect", "--tasks", "door-opn", "--out", str(tmp_path / "x")), capture_output=True, text=True
    )
    assert result.returncode == 2
    assert "door-open-v3" in result.stderr and "Traceback" not in result.stderr
