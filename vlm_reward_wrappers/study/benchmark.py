"""``vlm-rewards benchmark``: the study as one offline command.

Stages, each cached in the output folder (re-running skips what is done and
resumes what was interrupted):

1. collect training demonstrations (training tasks only);
2. collect evaluation demonstrations with another seed: new episodes of the
   training tasks, and episodes of held-out tasks (ML45 test tasks, never seen
   by any training stage);
3. get the backbone: the package's own, pretrained on the training data and
   cached (``quick``, ``full``), or named weights (``paper``);
4. train every objective with the same backbone, batches, budget and seed;
5. evaluate every checkpoint on both evaluation splits; write ``report.md``,
   ``benchmark.json`` and ``benchmark.png``, and print the table.

Example:
    >>> result = run_benchmark(PRESETS["quick"], "runs/quick")   # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlm_reward_wrappers.configs import to_dict
from vlm_reward_wrappers.data import collect
from vlm_reward_wrappers.evaluation import evaluate
from vlm_reward_wrappers.io_utils import read_json, write_json_atomic, write_text_atomic
from vlm_reward_wrappers.metrics import DEFAULT_DELTA
from vlm_reward_wrappers.models import BackboneSpec, is_checkpoint, read_checkpoint_config
from vlm_reward_wrappers.objectives import get_objective
from vlm_reward_wrappers.study.presets import PRESETS, SPLITS, Preset
from vlm_reward_wrappers.study.report import (
    combine_seeds,
    data_summary,
    machine_description,
    plot_benchmark,
    render_report,
    results_table,
)
from vlm_reward_wrappers.training.pretrain import pretrain_backbone
from vlm_reward_wrappers.training.trainer import STATE_NAME, TrainConfig, train

__all__ = ["PRESETS", "run_benchmark"]


def _stage(message: str, log: Callable[[str], None]) -> float:
    log(message)
    return time.perf_counter()


def _trained(folder: Path, steps: int) -> bool:
    """Whether a checkpoint folder holds a finished run of ``steps`` steps."""
    if not is_checkpoint(folder) or not (folder / STATE_NAME).is_file():
        return False
    return read_checkpoint_config(folder)[0].training.get("steps") == steps


def run_benchmark(
    preset: Preset,
    out: str | os.PathLike,
    *,
    backbone: BackboneSpec | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
) -> dict[str, Any]:
    """Run (or resume) a benchmark and write its report; return the results table.

    Args:
        preset: what to run (see :data:`PRESETS`).
        out: output folder; holds data, checkpoints, evaluations and the report.
        backbone: overrides the preset's backbone (e.g. local SigLIP2 weights).
        log: where stage messages go.
        progress: show progress bars inside stages.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    backbone = backbone or preset.backbone
    started = time.perf_counter()
    timings: dict[str, float] = {}

    t = _stage(
        f"[1/5] collecting training demonstrations ({len(preset.train_tasks)} tasks x "
        f"{preset.train_episodes} episodes)",
        log,
    )
    train_data = collect(preset.train_collection(), out / "data" / "train", progress=progress)
    timings["collect training data"] = time.perf_counter() - t

    t = _stage(
        f"[2/5] collecting evaluation demonstrations (another seed; {len(preset.held_out_tasks)} held-out tasks)", log
    )
    eval_data = collect(preset.eval_collection(), out / "data" / "eval", progress=progress)
    timings["collect evaluation data"] = time.perf_counter() - t

    t = _stage(
        "[3/5] backbone: "
        + (
            f"{backbone.model} ({backbone.pretrained})"
            if backbone
            else f"the package's own {preset.pretrain.model}, pretrained on the training data (cached)"
        ),
        log,
    )
    if backbone is None:
        backbone = pretrain_backbone(
            train_data.root, tasks=preset.train_tasks, config=preset.pretrain, progress=progress
        )
    timings["backbone"] = time.perf_counter() - t

    t = _stage(
        f"[4/5] training {len(preset.objectives)} objectives x {len(preset.seeds)} seed(s), "
        f"{preset.train_steps} steps each",
        log,
    )
    checkpoints: dict[tuple[str, int], Path] = {}
    for seed in preset.seeds:
        for objective in preset.objectives:
            folder = out / "checkpoints" / (objective if len(preset.seeds) == 1 else f"{objective}-seed{seed}")
            config = TrainConfig(
                objective=objective,
                finetune=preset.finetune,
                lora_rank=preset.lora_rank,
                batch_size=preset.batch_size,
                max_steps=preset.train_steps,
                eval_every=preset.eval_every,
                seed=seed,
                tasks=preset.train_tasks,
            )
            expected_steps = preset.train_steps if get_objective(objective).trains else 0
            if not _trained(folder, expected_steps):
                train(config, train_data.root, folder, backbone=backbone, progress=progress)
            checkpoints[(objective, seed)] = folder
            log(f"      {objective} (seed {seed}) -> {folder}")
    timings["training"] = time.perf_counter() - t

    t = _stage("[5/5] evaluating every checkpoint on held-out episodes and held-out tasks", log)
    split_tasks = {"train-tasks": list(preset.train_tasks), "held-out-tasks": list(preset.held_out_tasks)}
    per_seed: dict[str, dict[str, list[dict[str, Any]]]] = {o: {s: [] for s in SPLITS} for o in preset.objectives}
    for (objective, seed), folder in checkpoints.items():
        for split, tasks in split_tasks.items():
            target = out / "eval" / folder.name / split
            metrics_file = target / "metrics.json"
            weights_sha256 = read_checkpoint_config(folder)[1]
            if metrics_file.is_file() and read_json(metrics_file)["evaluated"].get("weights_sha256") == weights_sha256:
                metrics = read_json(metrics_file)
            else:
                metrics = evaluate(folder, eval_data.root, target, tasks=tasks, seed=seed)
            per_seed[objective][split].append(metrics["overall"])
    timings["evaluation"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started

    table = {
        objective: {split: combine_seeds(per_seed[objective][split]) for split in SPLITS}
        for objective in preset.objectives
    }
    result: dict[str, Any] = {
        "preset": to_dict(preset),
        "backbone": to_dict(backbone),
        "native_goals": {objective: get_objective(objective).goal_kind for objective in preset.objectives},
        "table": table,
        "data": {"train": data_summary(train_data), "eval": data_summary(eval_data)},
        "timings_s": timings,
        "machine": machine_description(),
        "delta": DEFAULT_DELTA,
    }
    write_json_atomic(out / "benchmark.json", result)
    plot_benchmark(table, out / "benchmark.png")
    write_text_atomic(out / "report.md", render_report(result))
    log("\n" + results_table(table, len(preset.seeds), result["native_goals"]))
    log(f"\nwall time {timings['total'] / 60:.1f} min; report: {out / 'report.md'}")
    return result
