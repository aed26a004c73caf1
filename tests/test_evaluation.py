"""evaluate and benchmark end to end on real tiny data and checkpoints."""

import csv
import dataclasses
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from vlm_reward_wrappers.data import CollectionConfig, collect
from vlm_reward_wrappers.evaluation.evaluate import evaluate
from vlm_reward_wrappers.evaluation.scoring import load_table, score_dataset
from vlm_reward_wrappers.metrics import ranking_accuracy, success_auroc
from vlm_reward_wrappers.metrics.off_expert import gate
from vlm_reward_wrappers.models import RewardModel
from vlm_reward_wrappers.models.checkpoint import pack_checkpoint
from vlm_reward_wrappers.study import PRESETS, run_benchmark
from vlm_reward_wrappers.study.bundle import bundled_results
from vlm_reward_wrappers.training.trainer import RunMismatchError


def test_evaluate_writes_every_output_and_matches_the_model(tiny_checkpoint, tiny_dataset, tmp_path):
    out = tmp_path / "eval"
    metrics = evaluate(tiny_checkpoint, tiny_dataset.root, out)
    for name in ("metrics.json", "predictions.csv", "report.md", "reward_curves.png", "per_task.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert json.loads((out / "metrics.json").read_text())["overall"] == metrics["overall"]
    with open(out / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == tiny_dataset.num_frames
    assert set(rows[0]) == {"task", "episode", "step", "gt_reward", "success", "predicted_reward"}
    # The CSV holds the model's own rewards for each frame against its episode's goal.
    model = RewardModel.from_pretrained(tiny_checkpoint)
    first = rows[0]
    frames = tiny_dataset.read_frames(int(first["episode"]), [int(first["step"])])
    expected = model.reward(frames, tiny_dataset.episodes[int(first["episode"])].goal_text)[0]
    assert float(first["predicted_reward"]) == pytest.approx(expected, rel=1e-4, abs=1e-5)
    # The ranking accuracy in metrics.json is that of the CSV's predictions.
    predicted = np.array([float(r["predicted_reward"]) for r in rows])
    truth = np.array([float(r["gt_reward"]) for r in rows])
    recomputed = ranking_accuracy(
        predicted, truth, np.array([r["task"] for r in rows]), np.array([int(r["episode"]) for r in rows])
    )
    assert recomputed.overall == pytest.approx(metrics["overall"]["ranking_accuracy"], abs=1e-4)
    assert metrics["overall"]["voc"] is not None  # the tiny data has successful expert episodes
    table = (out / "report.md").read_text()
    assert all(task in table for task in tiny_dataset.tasks)
    # The off-expert probe of every task is in metrics.json and the report; its AUC is that of the CSV's rewards.
    assert set(metrics["off_expert"]) == set(tiny_dataset.tasks) and "## Off the expert path" in table
    reach = np.array([r["task"] == "reach-v3" for r in rows])
    successes = np.array([r["success"] == "1" for r in rows])
    auroc = success_auroc(predicted[reach], successes[reach])
    assert metrics["off_expert"]["reach-v3"]["success_auroc"] == pytest.approx(auroc, abs=1e-4)
    # The gate's verdict on each task is in the report, from the probe in metrics.json.
    failing = [task for task, probe in metrics["off_expert"].items() if gate(probe)]
    passing = len(tiny_dataset.tasks) - len(failing)
    assert f"gate: {passing} of {len(tiny_dataset.tasks)} tasks pass" in table
    assert (f"fails: {', '.join(failing)}" in table) == bool(failing)


def test_score_dataset_covers_every_frame_once(tiny_checkpoint, tiny_dataset):
    scored = score_dataset(RewardModel.from_pretrained(tiny_checkpoint), tiny_dataset)
    predictions = scored.table
    assert predictions is not None and scored.skipped_tasks == []
    keys = set(zip(predictions.episode.tolist(), predictions.step.tolist(), strict=True))
    assert len(keys) == len(predictions) == tiny_dataset.num_frames
    assert np.isfinite(predictions.predicted).all()
    # every frame is also scored against each training task's goal, its own goal's column equal to its reward
    assert predictions.goal_rewards is not None and predictions.goal_tasks is not None
    own = np.searchsorted(predictions.goal_tasks, predictions.task)
    np.testing.assert_allclose(predictions.goal_rewards[np.arange(len(own)), own], predictions.predicted, atol=1e-6)


def test_data_without_successful_experts_reports_voc_unavailable(tiny_checkpoint, tmp_path):
    config = CollectionConfig(tasks=("reach-v3",), episodes_per_task=2, random_share=1.0, image_size=32, max_steps=30)
    random_only = collect(config, tmp_path / "random", workers=1, progress=False)
    metrics = evaluate(tiny_checkpoint, random_only.root, tmp_path / "eval", plots=False)
    assert metrics["overall"]["voc"] is None and metrics["overall"]["voc_ci"] is None
    assert "VOC unavailable" in metrics["evaluated"]["voc_note"]


def test_other_camera_or_size_gives_a_warning(tiny_checkpoint, tmp_path):
    config = CollectionConfig(tasks=("reach-v3",), episodes_per_task=1, image_size=24, camera="corner2", max_steps=20)
    other = collect(config, tmp_path / "other", workers=1, progress=False)
    with pytest.warns(UserWarning, match="the model was trained on") as caught:
        metrics = evaluate(tiny_checkpoint, other.root, tmp_path / "eval", plots=False)
    messages = " ".join(str(w.message) for w in caught)
    assert "corner2" in messages and "24-px" in messages
    assert len(metrics["evaluated"]["warnings"]) == 2


def _without_paths(value):
    """A metrics.json payload without the absolute paths of its run folder (which differ between two runs)."""
    if isinstance(value, dict):
        return {key: _without_paths(item) for key, item in value.items() if key not in ("data", "checkpoint")}
    if isinstance(value, list):
        return [_without_paths(item) for item in value]
    return value


def test_tiny_benchmark_end_to_end_cached_rerun_and_identical_second_run(tmp_path, monkeypatch):
    monkeypatch.setenv("VLM_REWARDS_CACHE", str(tmp_path / "cache"))
    out = tmp_path / "bench"
    lines: list[str] = []
    result = run_benchmark(PRESETS["tiny"], out, log=lines.append, progress=False)
    labels = [row["label"] for row in result["rows"]]
    references = [row["label"] for row in result["rows"] if row["reference"]]
    assert (
        labels[: len(references)]
        == references
        == [
            "ref: Meta-World reward (oracle)",
            "ref: clock, step / first success",
            "ref: clock capped at success",
            "ref: expert flag + 0.001·step",
            "ref: raw-pixel kNN",
            "ref: backbone kNN",
        ]
    )
    assert [row["label"] for row in result["rows"] if len(row["splits"]) == 2 and not row["reference"]] == [
        "zero-shot",
        "triplet",
        "tcn (image goal)",
        "tcn (sentence)",
    ]
    held_out_only = {row["label"] for row in result["rows"] if row["splits"] == ["held-out-tasks"]}
    assert held_out_only == {
        f"{variant} ({reward})"
        for variant in ("zero-shot", "triplet", "tcn")
        for reward in ("1 demo: progress", "1 demo: goal image", "adapted on 1 demo")
    }
    assert held_out_only <= set(result["statistics"]["held-out-tasks"]["ranking_accuracy"]["objectives"])
    assert not held_out_only & set(result["statistics"]["train-tasks"]["ranking_accuracy"]["objectives"])
    for split in ("train-tasks", "held-out-tasks"):
        within = result["statistics"][split]["ranking_accuracy_within"]
        assert within["num_seeds"] == 2 and within["num_resamples"] >= 2000
        # Every objective is compared with the declared row; the references are shown, not compared.
        assert within["reference"] == "triplet"
        assert set(within["paired"]) == set(within["objectives"]) - set(references) - {"triplet"}
    # The held-out task's episodes have Meta-World rewards that fall as well as rise (the training tasks' few
    # tiny episodes have none that fall: no headline there): the oracle scores 1, the clock exactly 0.5.
    headline = result["statistics"]["held-out-tasks"]["time_balanced_accuracy"]["objectives"]
    assert headline["ref: Meta-World reward (oracle)"]["pooled"] == 1.0
    assert headline["ref: clock, step / first success"]["pooled"] == 0.5
    assert result["statistics"]["train-tasks"]["time_balanced_accuracy"]["objectives"]["triplet"]["pooled"] is None
    # The two seeds pretrained two backbones; the backbone probe differs between them.
    assert len({spec["sha256"] for spec in result["backbones"].values()}) == 2
    # The off-expert probe covers every row scored on the training tasks, task by task.
    assert set(result["off_expert"]) == set(result["statistics"]["train-tasks"]["voc"]["objectives"])
    assert set(result["off_expert"]["triplet"]) == {"reach-v3", "button-press-v3"}
    # ... and each kind of episode apart: the tiny evaluation data has clean experts and a random policy only.
    assert set(result["by_episode_kind"]) == set(result["off_expert"])
    by_kind = result["by_episode_kind"]["ref: Meta-World reward (oracle)"]
    assert by_kind["ranking_accuracy_within_expert"] == 1.0 and by_kind["ranking_accuracy_within_noisy"] is None
    # TCN's native reward needs a goal image: held-out tasks have none, so that row is left out there.
    assert "tcn (image goal)" in result["statistics"]["train-tasks"]["ranking_accuracy"]["objectives"]
    assert "tcn (image goal)" not in result["statistics"]["held-out-tasks"]["ranking_accuracy"]["objectives"]
    report = (out / "report.md").read_text()
    assert "not web-pretrained" in report and "| tcn (image goal) | image |" in report and "vs triplet" in report
    assert "### Off the expert path" in report and "zero-shot** on the package's own backbone is not VLM-RM" in report
    assert "| objective | sentence | 1 demo: progress | 1 demo: goal image | adapted on 1 demo |" in report
    # ... whose cells are the headline, as its caption says (it said ranking accuracy while showing the headline).
    held_out = result["statistics"]["held-out-tasks"]["time_balanced_accuracy"]["objectives"]["triplet"]["pooled"]
    assert f"| triplet | {held_out:.3f} [" in report and "Pooled time-balanced accuracy [95% interval]" in report
    assert "Per task, the best one-demonstration reward" in report
    assert (out / "benchmark.png").stat().st_size > 0 and (out / "learning_curves.png").stat().st_size > 0
    assert any(line.startswith("[5/5]") for line in lines)
    # Each trained row swept its learning rates on seed 0 and trains every seed at the one of its lowest
    # validation loss; the report says which.
    assert set(result["learning_rates"]) == {"triplet", "tcn"}
    for variant, sweep in result["learning_rates"].items():
        losses = sweep["validation_loss"]
        assert set(losses) == {"0.001", "0.003"} and losses[f"{sweep['chosen']:g}"] == min(losses.values())
        for seed in (0, 1):
            stored = json.loads((out / "checkpoints" / f"{variant}-seed{seed}" / "config.json").read_text())
            assert stored["training"]["config"]["learning_rate"] == sweep["chosen"]
    assert "| triplet | " in report and "chosen |" in report
    # Nothing leaked from the held-out task into training.
    trained_on = json.loads((out / "checkpoints" / "triplet-seed0" / "config.json").read_text())["training"]["tasks"]
    assert "door-lock-v3" not in trained_on
    # A release's model card carries the benchmark's tables, as `vlm-rewards bundle` writes the bundled model's.
    release = pack_checkpoint(
        out / "checkpoints" / "triplet-seed0", tmp_path / "release", results=bundled_results(result)
    )
    card = (release / "README.md").read_text()
    assert card.index("## Results") < card.index("| ref: raw-pixel kNN | reference |") < card.index("## Limits")
    assert "| triplet | sentence |" in card and "gate: tasks passing" in card
    assert sorted(item.name for item in release.iterdir()) == [
        "README.md",
        "backbone.safetensors",
        "config.json",
        "model.safetensors",
    ]
    # A re-run reuses every stage: checkpoints are not rewritten. A nearest-neighbour reference whose record no
    # longer matches what it was computed from is computed again.
    stamps = {p: p.stat().st_mtime_ns for p in (out / "checkpoints").glob("*/model.safetensors")}
    record = out / "eval" / "ref-pixel-knn-seed0" / "train-tasks" / "predictions.reference.json"
    made_from = json.loads(record.read_text())
    record.write_text(json.dumps({**made_from, "nearest": 99}))
    rerun = run_benchmark(PRESETS["tiny"], out, log=lambda _: None, progress=False)
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert json.loads(record.read_text()) == made_from
    assert rerun["statistics"] == result["statistics"]
    # Wall time adds up over the runs into the folder, stage by stage (a run over several sittings).
    assert rerun["runs"] == 2 and json.loads((out / "timings.json").read_text())["runs"] == 2
    for stage, seconds in rerun["timings_s"].items():
        assert rerun["timings_all_runs_s"][stage] >= seconds
    assert rerun["timings_all_runs_s"]["training"] == pytest.approx(
        result["timings_s"]["training"] + rerun["timings_s"]["training"]
    )
    assert "summed over the 2 run(s) into this folder" in (out / "report.md").read_text()
    # Finished checkpoints of other settings are never reused as if they were this preset's.
    other = dataclasses.replace(PRESETS["tiny"], batch_size=PRESETS["tiny"].batch_size + 1)
    mismatch = r"tuning/triplet-lr0.001-seed2 holds a run with other settings \(differs in: batch_size\)"
    with pytest.raises(RunMismatchError, match=mismatch):
        run_benchmark(other, out, log=lambda _: None, progress=False)
    # The same command in a new folder on the same machine gives identical metrics, file by file.
    again = tmp_path / "again"
    run_benchmark(PRESETS["tiny"], again, log=lambda _: None, progress=False)
    first = sorted((out / "eval").rglob("metrics.json"))
    assert len(first) == 2 * 3 * 2 + 2 * 3  # seeds x objectives x splits, and the adapted ones on held-out tasks
    references_written = sorted((out / "eval").glob("ref-*/*/predictions.npz"))
    assert len(references_written) == 2 * (4 * 2 + 2)  # seeds x (frame-free x splits + kNN on training tasks)
    for path in references_written:  # the references, identical too
        mine, twin = load_table(path), load_table(again / path.relative_to(out))
        assert np.array_equal(mine.predicted, twin.predicted), path
    for path in first:
        twin = again / path.relative_to(out)
        assert _without_paths(json.loads(path.read_text())) == _without_paths(json.loads(twin.read_text())), path
    assert json.loads((again / "benchmark.json").read_text())["statistics"] == result["statistics"]


def test_cli_evaluate_and_bad_checkpoint(tiny_checkpoint, tiny_dataset, tmp_path):
    command = [
        sys.executable,
        "-m",
        "vlm_reward_wrappers",
        "evaluate",
        "--checkpoint",
        str(tiny_checkpoint),
        "--data",
        str(tiny_dataset.root),
        "--out",
        str(tmp_path / "e"),
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert "| **all** |" in result.stdout
    # The off-expert probe, one line per task, is printed too.
    probe = result.stdout[result.stdout.index("off the expert path") :]
    assert "| task | success AUC |" in probe and all(f"| {task} |" in probe for task in tiny_dataset.tasks)
    missing = subprocess.run(
        [*command[:5], str(tmp_path / "nope"), *command[6:]], capture_output=True, text=True, timeout=300
    )
    assert missing.returncode == 1 and "no checkpoint at" in missing.stderr and "Traceback" not in missing.stderr


def test_stage_clock_writes_the_running_stage_so_a_killed_run_keeps_its_time(tmp_path):
    from vlm_reward_wrappers.study.benchmark import TIMINGS_NAME, _StageClock

    (tmp_path / TIMINGS_NAME).write_text(json.dumps({"runs": 1, "stages": {"collect": 10.0}}))
    messages: list[str] = []
    clock = _StageClock(tmp_path, messages.append, flush_every=0.05)
    started = time.perf_counter()
    with clock.stage("collect", "[1/2] collecting"):
        time.sleep(0.3)
        mid_stage = json.loads((tmp_path / TIMINGS_NAME).read_text())  # what a kill here would leave
        elapsed = time.perf_counter() - started
    assert mid_stage["runs"] == 2 and 10.0 < mid_stage["stages"]["collect"] <= 10.0 + elapsed
    with pytest.raises(KeyboardInterrupt), clock.stage("train", "[2/2] training"):
        raise KeyboardInterrupt  # an interrupted stage still counts the time it ran
    stored = json.loads((tmp_path / TIMINGS_NAME).read_text())
    assert stored == {"runs": 2, "stages": clock.all_runs} and set(stored["stages"]) == {"collect", "train"}
    assert stored["stages"]["collect"] == pytest.approx(10.0 + clock.this_run["collect"])
    assert messages == ["[1/2] collecting", "[2/2] training"]
