"""Faults a user's machine brings: two writers on one folder, a killed writer, a full or read-only disk.

Each test asserts the exact outcome: every piece of work done once, nothing already on disk lost, or a one-line
error that says what to do. Disks are real: a small tmpfs mounted for the test (skipped without the privilege).
Crafted folders (path traversal, pickles, bad values) are tested beside their loaders: test_models.py,
test_portability.py, test_data.py and test_rl.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vlm_reward_wrappers.data import DemoDataset
from vlm_reward_wrappers.locking import holder, lock_path, writing
from vlm_reward_wrappers.models.backbone import file_sha256
from vlm_reward_wrappers.models.checkpoint import WEIGHTS_NAME
from vlm_reward_wrappers.rl import read_curve

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}
HOLD = """
import sys, time
from vlm_reward_wrappers.locking import writing
with writing(sys.argv[1]):
    print("held", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def _cli(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "vlm_reward_wrappers", *arguments]


def _holding(folder: Path, seconds: float) -> subprocess.Popen[str]:
    """A process that holds the lock of ``folder`` for ``seconds`` (returned once it holds it)."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder), str(seconds)], stdout=subprocess.PIPE, text=True, env=ENV
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_a_second_writer_waits_for_the_first_and_names_it(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    first = _holding(folder, 1.5)
    said: list[str] = []
    started = time.monotonic()
    with writing(folder, say=said.append):
        waited = time.monotonic() - started
    assert waited > 1.0  # it held the folder for 1.5 s after saying so
    assert len(said) == 1 and f"process {first.pid} on" in said[0] and "waiting for it to finish" in said[0]
    first.wait()


def test_a_killed_writer_leaves_no_stale_lock(tmp_path: Path) -> None:
    folder = tmp_path / "run"
    killed = _holding(folder, 60)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert lock_path(folder).exists() and holder(folder)["pid"] == killed.pid  # what it left behind
    said: list[str] = []
    with writing(folder, say=said.append):
        assert holder(folder)["pid"] == os.getpid()
    assert said == []  # taken over at once: the OS released the dead process's lock


COLLECT = ("--tasks", "reach-v3", "--episodes-per-task", "2", "--image-size", "16", "--max-steps", "40")


def test_two_collect_appends_started_together_both_land(tmp_path: Path) -> None:
    """Two ``collect --mode append`` of different seeds into one new folder, started at once: both succeed and the
    dataset holds both collections, every episode once."""
    out = tmp_path / "data"
    commands = [
        _cli("collect", *COLLECT, "--seed", str(seed), "--mode", "append", "--out", str(out)) for seed in (1, 2)
    ]
    processes = [subprocess.Popen(c, env=ENV, stderr=subprocess.PIPE, text=True) for c in commands]
    errors = [process.communicate(timeout=300)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], errors
    dataset = DemoDataset(out)
    assert len(dataset.collections) == 2 and len(dataset) == 4
    assert len({info.path.name for info in dataset.episodes}) == 4
    assert any("waiting for it to finish" in error for error in errors)  # one of them waited for the other


def test_two_trainings_on_one_folder_train_once(tiny_dataset, tiny_backbone, tmp_path: Path) -> None:
    """Two identical ``train`` commands on one --out, started at once: one trains, the other waits, finds the run
    finished and leaves it as it is (the checkpoint a single run writes)."""

    def command(out: Path) -> list[str]:
        return _cli(
            "train", "--objective", "triplet", "--data", str(tiny_dataset.root), "--out", str(out),
            "--backbone", tiny_backbone.model, "--backbone-weights", tiny_backbone.pretrained,
            "--max-steps", "6", "--eval-every", "2", "--batch-size", "8", "--finetune", "heads", "--device", "cpu",
        )  # fmt: skip

    single = subprocess.run(command(tmp_path / "single"), env=ENV, capture_output=True, text=True, cwd=REPO)
    assert single.returncode == 0, single.stderr
    processes = [
        subprocess.Popen(command(tmp_path / "both"), env=ENV, stderr=subprocess.PIPE, text=True, cwd=REPO)
        for _ in range(2)
    ]
    errors = [process.communicate(timeout=300)[1] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], errors
    assert any("waiting for it to finish" in error for error in errors)
    assert file_sha256(tmp_path / "both" / WEIGHTS_NAME) == file_sha256(tmp_path / "single" / WEIGHTS_NAME)
    history = json.loads((tmp_path / "both" / "config.json").read_text())["training"]["history"]
    assert [entry["step"] for entry in history] == [2, 4, 6]  # trained once: no step twice


def test_two_rl_sweeps_on_one_folder_run_every_run_once(tmp_path: Path) -> None:
    """Two ``rl`` sweeps into one folder, started together: one runs both runs, the other waits for it, then finds
    them done; every run trained once."""
    out = tmp_path / "rl"
    command = _cli("rl", "--preset", "tiny", "--out", str(out), "--total-steps", "60", "--eval-freq", "60")
    processes = [
        subprocess.Popen(command, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [process.communicate(timeout=600)[0] for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    first, second = sorted(outputs, key=lambda output: "2 runs, 2 done, 0 to run" in output)
    assert "2 runs, 0 done, 2 to run" in first and "waiting for it to finish" in second
    assert "2 runs, 2 done, 0 to run" in second and "step 60/60" not in second
    assert sum("step 60/60" in line for line in first.splitlines()) == 2  # sparse and gt, once each
    for source in ("sparse", "gt"):
        assert [row["step"] for row in read_curve(out / "drawer-close-v3" / source / "seed0")] == [60]


def _descendants(pid: int) -> set[int]:
    """Every live process below ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            fields = dict(line.split(":\t", 1) for line in status.read_text().splitlines() if ":\t" in line)
            parents[int(status.parent.name)] = int(fields["PPid"])
        except (OSError, KeyError, ValueError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def _running(pid: int) -> bool:
    """Whether ``pid`` is a live process (a zombie, dead but not yet reaped, is not)."""
    try:
        return "State:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc; workers die with the sweep on Linux")
def test_killing_only_the_main_rl_process_leaves_no_worker_behind(tmp_path: Path) -> None:
    """SIGKILL to the sweep's process alone (not its group): its run worker dies with it, so nobody goes on
    writing the run; the same command then finishes every run, each curve continuous."""
    out = tmp_path / "rl"
    command = _cli("rl", "--preset", "tiny", "--out", str(out), "--total-steps", "600", "--eval-freq", "60")
    main = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while not list(out.glob("*/*/seed0/curve.csv")):
        assert main.poll() is None and time.monotonic() < deadline, "the sweep never wrote a curve"
        time.sleep(0.1)
    workers = _descendants(main.pid)
    assert workers, "the sweep runs its runs in worker processes"
    main.send_signal(signal.SIGKILL)
    main.wait()
    deadline = time.monotonic() + 30
    while any(_running(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    alive = [pid for pid in workers if _running(pid)]
    assert not alive, f"workers {alive} outlived the sweep"
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    for source in ("sparse", "gt"):
        steps = [row["step"] for row in read_curve(out / "drawer-close-v3" / source / "seed0")]
        assert steps == list(range(60, 601, 60))


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs, mounted for the test (skipped where mounting is not allowed)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_full_disk_is_one_line_and_keeps_what_was_written(small_disk: Path) -> None:
    out = small_disk / "data"
    command = _cli("collect", "--tasks", "reach-v3", "--episodes-per-task", "40", "--image-size", "64",
                   "--max-steps", "60", "--workers", "1", "--out", str(out))  # fmt: skip
    done = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=600)
    assert done.returncode == 1, done.stderr
    message = [line for line in done.stderr.splitlines() if line.startswith("vlm-rewards collect: error:")]
    assert len(message) == 1 and "No space left on device" in message[0] and "re-run the same command" in message[0]
    assert "Traceback" not in done.stderr
    with pytest.warns(UserWarning, match="missing"):  # what was written is whole and reads
        kept = DemoDataset(out)
    assert 0 < len(kept) < 40
    assert all(len(kept.read_frames(index)) == info.num_steps for index, info in enumerate(kept.episodes))


def test_a_read_only_out_fails_at_once_in_one_line(small_disk: Path, tiny_dataset, tiny_backbone) -> None:
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    for arguments in (
        ("collect", *COLLECT, "--out", str(small_disk / "data")),
        ("train", "--data", str(tiny_dataset.root), "--out", str(small_disk / "ckpt"), "--backbone",
         tiny_backbone.model, "--backbone-weights", tiny_backbone.pretrained, "--finetune", "heads"),
    ):  # fmt: skip
        done = subprocess.run(_cli(*arguments), env=ENV, capture_output=True, text=True, timeout=120, cwd=REPO)
        assert done.returncode == 1, done.stderr
        assert "Read-only file system" in done.stderr and "choose another --out" in done.stderr
        assert "Traceback" not in done.stderr and not any(small_disk.iterdir())
