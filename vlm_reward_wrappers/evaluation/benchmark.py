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
import platform
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlm_reward_wrappers.data import CollectionConfig, DemoDataset, collect
from vlm_reward_wrappers.evaluation.evaluate import DEFAULT_DELTA, evaluate
from vlm_reward_wrappers.evaluation.plots import plot_benchmark
from vlm_reward_wrappers.io_utils import read_json, write_json_atomic, write_text_atomic
from vlm_reward_wrappers.models.backbone import BackboneSpec
from vlm_reward_wrappers.objectives import available_objectives
from vlm_reward_wrappers.tasks import ML45_TEST, ML45_TRAIN
from vlm_reward_wrappers.training.pretrain import PretrainConfig, pretrain_backbone
from vlm_reward_wrappers.training.trainer import STATE_NAME, TrainConfig, train

SPLITS = ("train-tasks", "held-out-tasks")
QUICK_TRAIN_TASKS = (
    "reach-v3",
    "push-v3",
    "button-press-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "door-open-v3",
    "window-open-v3",
    "plate-slide-v3",
)


@dataclass(frozen=True)
class Preset:
    """Everything a benchmark run holds fixed."""

    name: str
    description: str
    train_tasks: tuple[str, ...]
    held_out_tasks: tuple[str, ...]
    train_episodes: int
    eval_episodes: int
    image_size: int = 64
    episode_steps: int = 200
    noise_levels: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5)
    train_random_share: float = 0.1
    eval_random_share: float = 0.25
    backbone: BackboneSpec | None = None  # None: the package's own, pretrained with `pretrain`
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    finetune: str = "lora"
    lora_rank: int = 8
    train_steps: int = 150
    batch_size: int = 32
    eval_every: int = 50
    seeds: tuple[int, ...] = (0,)
    objectives: tuple[str, ...] = tuple(available_objectives())

    def train_collection(self) -> CollectionConfig:
        return CollectionConfig(
            tasks=self.train_tasks,
            episodes_per_task=self.train_episodes,
            noise_levels=self.noise_levels,
            random_share=self.train_random_share,
            image_size=self.image_size,
            max_steps=self.episode_steps,
            seed=0,
        )

    def eval_collection(self) -> CollectionConfig:
        return CollectionConfig(
            tasks=self.train_tasks + self.held_out_tasks,
            episodes_per_task=self.eval_episodes,
            noise_levels=self.noise_levels,
            random_share=self.eval_random_share,
            image_size=self.image_size,
            max_steps=self.episode_steps,
            seed=1000,
        )


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        name="quick",
        description="8 training tasks, the 5 ML45 test tasks held out; 64-px frames; about 15 minutes on a 2-core CPU",
        train_tasks=QUICK_TRAIN_TASKS,
        held_out_tasks=ML45_TEST,
        train_episodes=10,
        eval_episodes=4,
        pretrain=PretrainConfig(max_steps=200),
    ),
    "full": Preset(
        name="full",
        description="all 45 ML45 training tasks, the 5 ML45 test tasks held out, 3 seeds; an evening on a CPU",
        train_tasks=ML45_TRAIN,
        held_out_tasks=ML45_TEST,
        train_episodes=16,
        eval_episodes=4,
        episode_steps=300,
        pretrain=PretrainConfig(max_steps=3000),
        train_steps=1500,
        eval_every=250,
        seeds=(0, 1, 2),
    ),
    "paper": Preset(
        name="paper",
        description="SigLIP2 ViT-B-16 with LoRA at 224 px, all ML45 tasks, 3 seeds; for a GPU and the SigLIP2 weights",
        train_tasks=ML45_TRAIN,
        held_out_tasks=ML45_TEST,
        train_episodes=16,
        eval_episodes=4,
        image_size=224,
        episode_steps=300,
        backbone=BackboneSpec("ViT-B-16-SigLIP2", pretrained="webli"),
        lora_rank=16,
        train_steps=2000,
        eval_every=250,
        seeds=(0, 1, 2),
    ),
    "tiny": Preset(
        name="tiny",
        description="a smoke test: 2 tasks, 1 held out, a 32-px nano backbone, a few steps",
        train_tasks=("reach-v3", "button-press-v3"),
        held_out_tasks=("door-lock-v3",),
        train_episodes=3,
        eval_episodes=2,
        image_size=32,
        episode_steps=60,
        train_random_share=0.34,
        eval_random_share=0.5,
        pretrain=PretrainConfig(model="vlmrw-nano", max_steps=4, batch_size=16),
        lora_rank=2,
        train_steps=4,
        batch_size=8,
        eval_every=2,
    ),
}


def _stage(message: str, log: Callable[[str], None]) -> float:
    log(message)
    return time.perf_counter()


def _trained(folder: Path, steps: int) -> bool:
    """Whether a checkpoint folder holds a finished run of ``steps`` steps."""
    config = folder / "config.json"
    if not config.is_file() or not (folder / STATE_NAME).is_file():
        return False
    return read_json(config).get("training", {}).get("steps") == steps


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
        f"[1/5] collecting training demonstrations ({len(preset.train_tasks)} tasks x {preset.train_episodes} episodes)",
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
        f"[4/5] training {len(preset.objectives)} objectives x {len(preset.seeds)} seed(s), {preset.train_steps} steps each",
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
            expected_steps = preset.train_steps if config.objective != "zero-shot" else 0
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
            if metrics_file.is_file() and metrics_file.stat().st_mtime >= (folder / "config.json").stat().st_mtime:
                metrics = read_json(metrics_file)
            else:
                metrics = evaluate(folder, eval_data.root, target, tasks=tasks, seed=seed)
            per_seed[objective][split].append(metrics["overall"])
    timings["evaluation"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - started

    table = {
        objective: {split: _combine(per_seed[objective][split]) for split in SPLITS} for objective in preset.objectives
    }
    result = {
        "preset": _preset_dict(preset),
        "backbone": backbone.to_dict(),
        "table": table,
        "data": {"train": _data_summary(train_data), "eval": _data_summary(eval_data)},
        "timings_s": timings,
        "machine": machine_description(),
        "delta": DEFAULT_DELTA,
    }
    write_json_atomic(out / "benchmark.json", result)
    plot_benchmark(table, out / "benchmark.png")
    write_text_atomic(out / "report.md", render_report(result))
    log("\n" + results_table(table, len(preset.seeds)))
    log(f"\nwall time {timings['total'] / 60:.1f} min; report: {out / 'report.md'}")
    return result


def _combine(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """One seed: its numbers and bootstrap intervals. Several: the mean and the min-max over seeds."""
    if len(blocks) == 1:
        return dict(blocks[0])
    combined: dict[str, Any] = {}
    for key in ("ranking_accuracy", "voc"):
        values = [b[key] for b in blocks if b[key] is not None]
        combined[key] = float(np.mean(values)) if values else None
        combined[f"{key}_ci"] = [float(min(values)), float(max(values))] if values else None
    combined["num_frames"] = blocks[0]["num_frames"]
    return combined


def _cell(block: dict[str, Any], key: str) -> str:
    value, interval = block.get(key), block.get(f"{key}_ci")
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")


def results_table(table: dict[str, dict[str, dict[str, Any]]], seeds: int = 1) -> str:
    """Markdown table: objective x {ranking accuracy, VOC} per split."""
    interval = "95% bootstrap CI over episodes" if seeds == 1 else f"mean and range over {seeds} seeds"
    header = "| objective | " + " | ".join(f"{split}: ranking acc. | {split}: VOC" for split in SPLITS) + " |"
    lines = [f"({interval})", "", header, "|---|" + "---|---|" * len(SPLITS)]
    for objective, splits in table.items():
        lines.append(
            f"| {objective} | "
            + " | ".join(f"{_cell(splits[s], 'ranking_accuracy')} | {_cell(splits[s], 'voc')}" for s in SPLITS)
            + " |"
        )
    return "\n".join(lines)


def _data_summary(dataset: DemoDataset) -> dict[str, Any]:
    return {
        "episodes": len(dataset),
        "frames": dataset.num_frames,
        "tasks": dataset.tasks,
        "camera": dataset.camera,
        "image_size": dataset.image_size,
    }


def _preset_dict(preset: Preset) -> dict[str, Any]:
    data = asdict(preset)
    data["backbone"] = preset.backbone.to_dict() if preset.backbone else None
    return data


def machine_description() -> dict[str, Any]:
    """What the benchmark ran on."""
    import torch

    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }


def render_report(result: dict[str, Any]) -> str:
    """The benchmark's ``report.md``."""
    preset, backbone, data, machine = result["preset"], result["backbone"], result["data"], result["machine"]
    own = backbone["model"].startswith("vlmrw-")
    backbone_note = (
        f"`{backbone['model']}`, the package's own backbone, trained from random weights with a CLIP loss on the "
        "training tasks' frames and sentences only. It is **not web-pretrained**: it knows which task a frame shows, "
        "not the words of tasks it never saw."
        if own
        else f"`{backbone['model']}` with weights `{backbone['pretrained']}`."
    )
    timings = "\n".join(f"| {stage} | {seconds:.0f} s |" for stage, seconds in result["timings_s"].items())
    return f"""# Reward-accuracy benchmark: preset `{preset["name"]}`

{preset["description"]}.

## Results

{results_table(result["table"], len(preset["seeds"]))}

Ranking accuracy: share of frame pairs of one task, with ground-truth rewards more than {result["delta"]} apart on
Meta-World's 0-10 scale, that the learned reward orders like the ground truth (chance 0.5; pairs within and across
episodes). VOC: Spearman correlation between the learned reward and time on successful expert episodes up to their
first success. `train-tasks`: new episodes (another seed) of the training tasks; `held-out-tasks`: tasks no training
stage saw ({", ".join(preset["held_out_tasks"])}).

![benchmark](benchmark.png)

## What was run

- Backbone: {backbone_note}
- Finetuning: `{preset["finetune"]}` (rank {preset["lora_rank"]}), {preset["train_steps"]} steps of {preset["batch_size"]} trajectories, seeds {list(preset["seeds"])}; every objective sees the same batches.
- Training data: {data["train"]["episodes"]} episodes, {data["train"]["frames"]} frames, {len(data["train"]["tasks"])} tasks, camera `{data["train"]["camera"]}`, {data["train"]["image_size"]} px.
- Evaluation data: {data["eval"]["episodes"]} episodes, {data["eval"]["frames"]} frames, {len(data["eval"]["tasks"])} tasks.
- Machine: {machine["processor"]}, {machine["cpus"]} CPUs, torch {machine["torch"]} ({machine["torch_threads"]} threads), GPU: {machine["cuda"] or "none"}; {machine["platform"]}.

| stage | wall time |
|---|---|
{timings}

Per-objective reports (tables per task, reward curves): `eval/<objective>/<split>/report.md`.
"""
