"""What a benchmark run will cost before it runs (``vlm-rewards benchmark --dry-run``): its work left, in core-hours.

Each stage's work is counted in the unit its cost grows with, and priced at what that unit cost in the ``quick``
preset's run on a 2-core x86_64 CPU without GPU (:data:`MEASURED_COSTS`: the stage's wall time in ``timings.json``
times 2 cores, over the units that run did):

* collection: recorded frames (episodes x steps: an upper bound, since training episodes stop after success);
* backbone: pretraining steps x trajectories per step, for each seed whose final runs are not all trained (priced
  from the ``full`` preset's run, which cost more per trajectory than quick's 0.0122 core-seconds);
* training: training steps x trajectories per step, of the learning-rate sweep and of the final runs not
  finished (the cap ``train_steps``: an upper bound where runs stop at their plateau), x 17.5 for ``lora`` and
  ``full`` finetuning (``benchmarks/train_speed.py``: heads trained 17.5x more frames/s than LoRA);
* evaluation: evaluated frames x checkpoints not yet evaluated (the statistics and references ride on it).

Only the package's own backbone at 64 px is priced (another backbone or size is not estimated, and says so);
adaptations are not counted (100 steps on a few demonstrations each). A JSON file of the same keys gives another
machine's costs (``--costs FILE``: its ``timings.json`` after a ``quick`` run, over the units above).

Example:
    >>> from vlm_reward_wrappers.study.presets import PRESETS
    >>> work = benchmark_work(PRESETS["quick"], "runs/nowhere")
    >>> work["training"]
    2764800
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from vlm_reward_wrappers.data.storage import DemoDataset
from vlm_reward_wrappers.io_utils import read_positive_numbers
from vlm_reward_wrappers.models.checkpoint import is_checkpoint
from vlm_reward_wrappers.objectives import get_objective
from vlm_reward_wrappers.study.benchmark import checkpoint_folder
from vlm_reward_wrappers.study.presets import VARIANTS, Preset
from vlm_reward_wrappers.training.trainer import STATE_NAME

MEASURED_COSTS: dict[str, float] = {
    "collection": 0.00775,  # (53.7 + 227.1 s) x 2 cores / 72,463 frames
    "backbone": 0.0167,  # full's run: 1205 s x 2 / (1500 steps x 96 trajectories), per backbone
    "training": 0.000423,  # 209.2 s x 2 / (30,900 steps x 32 trajectories)
    "evaluation": 0.000400,  # 302.6 s x 2 / (27 checkpoints x 56,000 frames)
}
"""Core-seconds per unit of each stage, from the quick preset's run, the backbone's from the full preset's (see the
module's docstring)."""
FINETUNING_FACTOR = {"heads": 1.0, "frozen": 1.0, "lora": 17.5, "full": 17.5}


def read_costs(path: str | os.PathLike | None) -> dict[str, float]:
    """The costs in ``path`` (JSON: core-seconds per unit of each stage), or :data:`MEASURED_COSTS`."""
    if path is None:
        return dict(MEASURED_COSTS)
    return read_positive_numbers(path, MEASURED_COSTS, "cost", "core-seconds per unit")


def _episodes_left(preset_episodes: int, tasks: int, folder: Path) -> int:
    present = len(DemoDataset(folder)) if (folder / "episodes").is_dir() else 0
    return max(0, preset_episodes * tasks - present)


def _finished(folder: Path) -> bool:
    return is_checkpoint(folder) and (folder / STATE_NAME).is_file()


def benchmark_work(preset: Preset, out: str | os.PathLike) -> dict[str, int]:
    """The units of work of each stage that ``out`` does not hold yet (see the module's docstring)."""
    out = Path(out)
    frames = (
        _episodes_left(preset.train_episodes, len(preset.train_tasks), out / "data" / "train") * preset.episode_steps
        + _episodes_left(
            preset.eval_episodes, len(preset.train_tasks) + len(preset.held_out_tasks), out / "data" / "eval"
        )
        * preset.episode_steps
        + (
            _episodes_left(preset.demo_episodes, len(preset.held_out_tasks), out / "data" / "demos")
            * max(preset.episode_steps, 200)
            if preset.demonstrations
            else 0
        )
    )
    trained = [
        variant for variant in preset.objectives if get_objective(VARIANTS[variant][0], **VARIANTS[variant][1]).trains
    ]
    tuning_seed = max(preset.seeds) + 1
    runs = [
        out / "tuning" / f"{variant}-lr{rate:g}-seed{tuning_seed}"
        for variant in trained
        for rate in preset.swept_learning_rates
    ]
    runs += [out / "checkpoints" / f"{variant}-seed{seed}" for variant in trained for seed in preset.seeds]
    training_runs = sum(not _finished(folder) for folder in runs)
    seeds_left = [
        seed
        for seed in preset.seeds
        if any(not _finished(checkpoint_folder(out, variant, seed)) for variant in preset.objectives)
    ]
    evaluated_frames = (
        preset.eval_episodes * (len(preset.train_tasks) + len(preset.held_out_tasks)) * preset.episode_steps
    )
    evaluations = sum(
        not (out / "eval" / checkpoint_folder(out, variant, seed).name / "train-tasks" / "metrics.json").is_file()
        for variant in preset.objectives
        for seed in preset.seeds
    )
    return {
        "collection": frames,
        "backbone": 0 if preset.backbone else len(seeds_left) * preset.pretrain.max_steps * preset.pretrain.batch_size,
        "training": training_runs * preset.train_steps * preset.batch_size,
        "evaluation": evaluations * evaluated_frames,
    }


def describe_benchmark_estimate(
    preset: Preset, out: str | os.PathLike, costs: Mapping[str, float] = MEASURED_COSTS
) -> str:
    """The dry run's printout: each stage's work left and its core-hours (at ``costs``), and the total."""
    if preset.backbone is not None or preset.image_size != 64:
        return (
            f"preset {preset.name}: not estimated. The costs measured here are those of the package's own backbone at "
            "64 px; time a short run of this preset on your machine instead."
        )
    work = benchmark_work(preset, out)
    factor = FINETUNING_FACTOR[preset.finetune]
    hours = {stage: units * costs[stage] / 3600 for stage, units in work.items()}
    hours["training"] *= factor
    lines = ["| stage | work left | core-hours |", "|---|---|---|"]
    units = {
        "collection": "frames",
        "backbone": "trajectory-steps",
        "training": "trajectory-steps",
        "evaluation": "checkpoint-frames",
    }
    for stage, count in work.items():
        lines.append(f"| {stage} | {count:,} {units[stage]} | {hours[stage]:.1f} |")
    total = sum(hours.values())
    lines += [
        "",
        f"preset {preset.name} into {out}: {total:.1f} core-hours left, about {total / 2:.1f} hours on 2 cores "
        f"(core-seconds per unit: {', '.join(f'{stage} {cost:g}' for stage, cost in costs.items())}; upper bounds "
        "where episodes stop at success and runs at their plateau; adaptations not counted).",
    ]
    return "\n".join(lines)


__all__ = ["MEASURED_COSTS", "benchmark_work", "describe_benchmark_estimate", "read_costs"]
