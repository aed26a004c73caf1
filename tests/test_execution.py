"""Where runs execute: the local pool and Ray give the same runs (RL sweeps and the benchmark); a killed Ray worker
is retried; a failed run does not stop the others; a dry run says what is left and what it costs.

The Ray tests start a real local Ray instance (2 CPUs) and skip where Ray is not installed (it is the ``ray``
extra; CI installs it with ``.[dev]``).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vlm_reward_wrappers.cli import main as cli_main
from vlm_reward_wrappers.execution import Backend, Job, RunsFailedError, run_all
from vlm_reward_wrappers.locking import holder
from vlm_reward_wrappers.models.backbone import file_sha256
from vlm_reward_wrappers.rl import RL_PRESETS, read_curve, run_sweep
from vlm_reward_wrappers.rl.config import FAILURES_FILE
from vlm_reward_wrappers.rl.estimate import MEASURED_SPEEDS as SAC_SPEEDS
from vlm_reward_wrappers.rl.estimate import estimate_sweep
from vlm_reward_wrappers.rl.run import RunSpec, run_one
from vlm_reward_wrappers.rl.sources import parse_source
from vlm_reward_wrappers.rl.sweep import _run_in_worker
from vlm_reward_wrappers.study import PRESETS, run_benchmark
from vlm_reward_wrappers.study.estimate import MEASURED_COSTS, benchmark_work, describe_benchmark_estimate
from vlm_reward_wrappers.study.report import learning_rate_table

TINY = dataclasses.replace(RL_PRESETS["tiny"], total_steps=120, eval_freq=60, reward_worker="off")
"""Two runs (sparse and gt on drawer-close), two evaluations each."""


def _curves(out: Path) -> dict[str, list[dict[str, float]]]:
    curves = {}
    for folder in sorted(path.parent for path in out.glob("*/*/seed*/curve.csv")):
        curves[str(folder.relative_to(out))] = [
            {key: value for key, value in row.items() if key != "wall_s"} for row in read_curve(folder)
        ]
    return curves


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray")
    ray.init(num_cpus=2, include_dashboard=False, configure_logging=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_a_sweep_on_ray_gives_the_runs_of_the_local_pool(tmp_path: Path, local_ray: None) -> None:
    lines: list[str] = []
    run_sweep(TINY, tmp_path / "local", log=lines.append)
    run_sweep(TINY, tmp_path / "ray", log=lines.append, backend=Backend(ray=True))
    local, on_ray = _curves(tmp_path / "local"), _curves(tmp_path / "ray")
    assert set(local) == {"drawer-close-v3/gt/seed0", "drawer-close-v3/sparse/seed0"}
    assert on_ray == local  # bit-identical evaluations, wherever the runs ran
    assert any("on a local Ray instance" in line for line in lines)
    assert any(line.startswith("[2/2 done, 0 running, 0 failed]") for line in lines)


def _long_run(folder: Path) -> Job:
    """A run long enough to be killed mid-way (ten evaluations), as the sweep makes its jobs."""
    spec, config = RunSpec("drawer-close-v3", parse_source("sparse"), 0), dataclasses.replace(TINY, total_steps=600)
    return Job("long run", _run_in_worker, (spec, config, str(folder), False))


def test_a_killed_ray_worker_is_retried_and_its_run_resumes_to_the_same_curve(tmp_path: Path, local_ray: None) -> None:
    import threading

    folder = tmp_path / "ray" / "run"
    killed: list[int] = []

    def kill_the_worker_after_its_first_save() -> None:
        deadline = time.monotonic() + 300
        while not (folder / "curve.csv").is_file() and time.monotonic() < deadline:
            time.sleep(0.05)
        pid = holder(folder)["pid"]  # the process that writes the run: the Ray worker
        os.kill(pid, signal.SIGKILL)
        killed.append(pid)

    killer = threading.Thread(target=kill_the_worker_after_its_first_save)
    killer.start()
    outcomes = run_all([_long_run(folder)], jobs=1, backend=Backend(ray=True))
    killer.join()
    assert killed and killed[0] != os.getpid()
    assert outcomes[0].error is None  # retried, and resumed from its last save
    assert run_all([_long_run(tmp_path / "local" / "run")], jobs=1)[0].error is None
    assert _curves(tmp_path / "ray") == _curves(tmp_path / "local")
    assert len(read_curve(folder)) == 10


def test_a_failed_run_does_not_stop_the_sweep_and_is_named(tmp_path: Path) -> None:
    out = tmp_path / "rl"
    run_sweep(dataclasses.replace(TINY, sources=("gt",)), out, log=lambda _: None)
    # sparse's folder now holds a run of other settings: that run fails, gt's is found done, nothing else stops
    sparse = out / "drawer-close-v3" / "sparse" / "seed0"
    (sparse / "run.json").parent.mkdir(parents=True)
    (sparse / "run.json").write_text(json.dumps({"task": "drawer-close-v3", "source": "sparse", "seed": 7}))
    other = dataclasses.replace(TINY, tasks=("drawer-close-v3", "reach-v3"))
    with pytest.raises(RunsFailedError, match=r"1 of 3 runs failed.*drawer-close-v3/sparse/seed0: "):
        run_sweep(other, out, log=lambda _: None)
    assert sorted(_curves(out)) == ["drawer-close-v3/gt/seed0", "reach-v3/gt/seed0", "reach-v3/sparse/seed0"]
    failures = json.loads((out / FAILURES_FILE).read_text())
    assert list(failures) == ["drawer-close-v3 sparse seed0"]
    assert failures["drawer-close-v3 sparse seed0"]["folder"] == str(sparse)


def test_the_dry_run_counts_what_is_left(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "rl"
    config = dataclasses.replace(TINY, total_steps=600)
    spec = RunSpec("drawer-close-v3", parse_source("gt"), 0)
    run_one(spec, config, out / "drawer-close-v3" / "gt" / "seed0", log=lambda _: None, stop_after=2)
    plan = {run.source: run for run in estimate_sweep(config, out)}
    evaluation = config.eval_episodes * config.max_episode_steps
    assert plan["sparse"].steps_left == 600 + 10 * evaluation
    assert plan["gt"].steps_left == 480 + 8 * evaluation  # resumed at step 120: what is left
    assert plan["gt"].core_hours == pytest.approx(plan["gt"].steps_left / SAC_SPEEDS["metaworld"] / 3600)
    assert plan["gt"].other_settings == plan["sparse"].other_settings == ()
    # the gt folder holds a run of gamma 0.99: a sweep of gamma 0.9 refuses it, so the dry run counts it in full
    other = {run.source: run for run in estimate_sweep(dataclasses.replace(config, gamma=0.9), out)}
    assert other["gt"].steps_left == 600 + 10 * evaluation
    assert other["gt"].other_settings == ("settings.gamma",)
    assert other["sparse"].other_settings == ()
    describe = ["rl", "--out", str(out), "--tasks", "drawer-close-v3", "--sources", "gt", "--seeds", "0"]
    assert cli_main([*describe, "--preset", "tiny", "--total-steps", "600", "--gamma", "0.9", "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "1 of them hold a run of other settings" in printed and "(differs in: settings.gamma)" in printed
    assert cli_main(["rl", "--preset", "full", "--out", str(tmp_path / "full"), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    assert "| triplet+sparse | 50 | " in printed and printed.count("\n| ") == 9  # 9 sources of 10 tasks x 5 seeds
    assert "450 runs left:" in printed
    assert not (tmp_path / "full").exists()  # a dry run writes nothing


def test_a_benchmark_on_ray_computes_what_it_computes_here_and_the_dry_run_counts_its_work(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, local_ray: None
) -> None:
    """The tiny benchmark (backbones, the learning-rate sweep, training, adaptation and evaluation as Ray tasks)
    writes the checkpoints and the statistics of the same benchmark run here, on its own cache; the dry run finds
    no work left after it, and counts the whole preset in a fresh folder."""
    preset = dataclasses.replace(PRESETS["tiny"], objectives=("zero-shot", "triplet"))
    quiet = {"log": lambda _: None, "progress": False}
    monkeypatch.setenv("VLM_REWARDS_CACHE", str(tmp_path / "cache-here"))
    here = run_benchmark(preset, tmp_path / "here", **quiet)
    assert benchmark_work(preset, tmp_path / "here") == {"collection": 0, "backbone": 0, "training": 0, "evaluation": 0}
    fresh = benchmark_work(preset, tmp_path / "fresh")
    assert fresh["training"] == (2 + 2) * preset.train_steps * preset.batch_size  # 2 rates + 2 seeds of triplet
    assert not (tmp_path / "fresh").exists()

    shutil.copytree(tmp_path / "here" / "data", tmp_path / "ray" / "data")  # the same episodes, not collected again
    monkeypatch.setenv("VLM_REWARDS_CACHE", str(tmp_path / "cache-ray"))  # backbones pretrained again, on Ray
    on_ray = run_benchmark(preset, tmp_path / "ray", backend=Backend(ray=True), **quiet)
    assert on_ray["statistics"] == here["statistics"]
    checksums = {seed: spec["sha256"] for seed, spec in here["backbones"].items()}
    assert {seed: spec["sha256"] for seed, spec in on_ray["backbones"].items()} == checksums  # the same weights
    assert all(str(tmp_path / "cache-ray") in spec["pretrained"] for spec in on_ray["backbones"].values())
    for folder in sorted((tmp_path / "here").glob("*/*-seed*/model.safetensors")):
        twin = tmp_path / "ray" / folder.relative_to(tmp_path / "here")
        assert file_sha256(twin) == file_sha256(folder), folder


def test_a_single_learning_rate_trains_every_row_without_a_sweep(tmp_path: Path) -> None:
    swept = PRESETS["quick"]
    single = dataclasses.replace(swept, learning_rates=(5e-4,))
    assert swept.swept_learning_rates == (3e-4, 1e-3, 3e-3) and single.swept_learning_rates == ()
    assert single.train_config("triplet", 0, None).learning_rate == 5e-4  # the preset's one rate
    assert swept.train_config("triplet", 0, None).learning_rate is None  # no choice made: the mode's default
    assert single.train_config("triplet", 0, 1e-3).learning_rate == 1e-3
    # quick trains 8 rows with 3 seeds, and sweeps each row's 3 rates once: twice the runs of no sweep.
    assert benchmark_work(swept, tmp_path / "a")["training"] == 2 * benchmark_work(single, tmp_path / "b")["training"]
    assert "learning rate 0.0005, the preset's one rate" in learning_rate_table({}, single.learning_rates)


def test_the_benchmark_dry_run_prices_the_work_left(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    preset = PRESETS["full"]
    work = benchmark_work(preset, tmp_path / "full")
    assert work["collection"] == (45 * 16 + 50 * 4) * 300 + 5 * 8 * 300  # training, evaluation, demonstrations
    assert work["backbone"] == 3 * preset.pretrain.max_steps * preset.pretrain.batch_size
    assert cli_main(["benchmark", "--preset", "full", "--out", str(tmp_path / "full"), "--dry-run"]) == 0
    total = sum(units * MEASURED_COSTS[stage] for stage, units in work.items()) / 3600
    assert f"{total:.1f} core-hours left" in capsys.readouterr().out
    assert not (tmp_path / "full").exists()
    (tmp_path / "costs.json").write_text(json.dumps({"collection": 1}))
    assert cli_main(["benchmark", "--dry-run", "--costs", str(tmp_path / "costs.json")]) == 1
    assert "must hold exactly the keys" in capsys.readouterr().err
    assert "not estimated" in describe_benchmark_estimate(PRESETS["paper"], tmp_path / "paper")
