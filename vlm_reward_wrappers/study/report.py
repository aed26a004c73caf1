"""The benchmark's report: seeds combined, the results table, the figure, ``report.md``.

Example:
    >>> block = {"ranking_accuracy": 0.8, "ranking_accuracy_ci": [0.7, 0.9], "voc": 0.5, "voc_ci": None}
    >>> print(results_table({"triplet": {"train-tasks": block, "held-out-tasks": block}}))
    (95% bootstrap CI over episodes)
    <BLANKLINE>
    | objective | train-tasks: ranking acc. | train-tasks: VOC | held-out-tasks: ranking acc. | held-out-tasks: VOC |
    |---|---|---|---|---|
    | triplet | 0.800 [0.70, 0.90] | 0.500 | 0.800 [0.70, 0.90] | 0.500 |
"""

from __future__ import annotations

import os
import platform
from typing import Any

import numpy as np
import torch

from vlm_reward_wrappers.data import DemoDataset
from vlm_reward_wrappers.evaluation.plots import bar_value, new_figure
from vlm_reward_wrappers.evaluation.report import cell, legend
from vlm_reward_wrappers.metrics import ordered_metrics
from vlm_reward_wrappers.study.presets import SPLITS


def combine_seeds(blocks: list[dict[str, Any]]) -> dict[str, Any]:
    """One seed: its numbers and bootstrap intervals. Several: for each headline metric, the mean and the min-max."""
    if len(blocks) == 1:
        return dict(blocks[0])
    combined: dict[str, Any] = {}
    for metric in ordered_metrics(headline=True):
        values = [b[metric.name] for b in blocks if b[metric.name] is not None]
        combined[metric.name] = float(np.mean(values)) if values else None
        combined[f"{metric.name}_ci"] = [float(min(values)), float(max(values))] if values else None
    combined["num_frames"] = blocks[0]["num_frames"]
    return combined


def results_table(
    table: dict[str, dict[str, dict[str, Any]]], seeds: int = 1, native_goals: dict[str, str] | None = None
) -> str:
    """Markdown table: objective x headline metrics per split.

    Objectives whose native goal (``native_goals``) is not the sentence are
    marked: the table scores every objective with the sentence reward.
    """
    interval = "95% bootstrap CI over episodes" if seeds == 1 else f"mean and range over {seeds} seeds"
    metrics = ordered_metrics(headline=True)
    header = "| objective | " + " | ".join(f"{split}: {metric.label}" for split in SPLITS for metric in metrics) + " |"
    lines = [f"({interval})", "", header, "|---|" + "---|" * (len(SPLITS) * len(metrics))]
    for objective, splits in table.items():
        goal = (native_goals or {}).get(objective, "sentence")
        name = objective if goal == "sentence" else f"{objective} (trains a {goal} goal)"
        cells = " | ".join(cell(splits[split], metric.name) for split in SPLITS for metric in metrics)
        lines.append(f"| {name} | {cells} |")
    return "\n".join(lines)


def data_summary(dataset: DemoDataset) -> dict[str, Any]:
    """What a dataset of the run holds, for the report."""
    return {
        "episodes": len(dataset),
        "frames": dataset.num_frames,
        "tasks": dataset.tasks,
        "camera": dataset.camera,
        "image_size": dataset.image_size,
    }


def machine_description() -> dict[str, Any]:
    """What the benchmark ran on."""
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
    finetune = f"`{preset['finetune']}` (rank {preset['lora_rank']})"
    budget = f"{preset['train_steps']} steps of {preset['batch_size']} trajectories, seeds {list(preset['seeds'])}"
    train, evaluation = data["train"], data["eval"]
    gpu = machine["cuda"] or "none"
    return f"""# Reward-accuracy benchmark: preset `{preset["name"]}`

{preset["description"]}.

## Results

{results_table(result["table"], len(preset["seeds"]), result["native_goals"])}

Every objective is scored with the goal-sentence reward s(o, l); an objective marked "trains an image goal" never
trains that reward, so its row measures the backbone more than the objective.
{legend(result["delta"], [metric.name for metric in ordered_metrics(headline=True)])}

`train-tasks`: new episodes (another seed) of the training tasks; `held-out-tasks`: tasks no training stage saw
({", ".join(preset["held_out_tasks"])}).

![benchmark](benchmark.png)

## What was run

- Backbone: {backbone_note}
- Finetuning: {finetune}, {budget}; every objective sees the same batches.
- Training data: {train["episodes"]} episodes, {train["frames"]} frames, {len(train["tasks"])} tasks,
  camera `{train["camera"]}`, {train["image_size"]} px.
- Evaluation data: {evaluation["episodes"]} episodes, {evaluation["frames"]} frames, {len(evaluation["tasks"])} tasks.
- Machine: {machine["processor"]}, {machine["cpus"]} CPUs, torch {machine["torch"]}
  ({machine["torch_threads"]} threads), GPU: {gpu}; {machine["platform"]}.

| stage | wall time |
|---|---|
{timings}

Per-objective reports (tables per task, reward curves): `eval/<objective>/<split>/report.md`.
"""


def plot_benchmark(table: dict[str, dict[str, dict[str, Any]]], path: str | os.PathLike) -> None:
    """Grouped bars: ranking accuracy of each objective on each split, with intervals."""
    objectives = list(table)
    splits = list(next(iter(table.values())))
    positions = np.arange(len(objectives))
    width = 0.8 / max(1, len(splits))
    figure = new_figure(max(5.0, 1.1 * len(objectives) + 2), 3.4)
    axis = figure.subplots()
    for index, split in enumerate(splits):
        values = [bar_value(table[o][split]["ranking_accuracy"]) for o in objectives]
        low = [
            v - (table[o][split]["ranking_accuracy_ci"] or [v, v])[0] for o, v in zip(objectives, values, strict=False)
        ]
        high = [
            (table[o][split]["ranking_accuracy_ci"] or [v, v])[1] - v for o, v in zip(objectives, values, strict=False)
        ]
        axis.bar(
            positions + (index - (len(splits) - 1) / 2) * width,
            values,
            width=width,
            yerr=[low, high],
            capsize=2,
            label=split,
        )
    axis.axhline(0.5, color="gray", linestyle="--", linewidth=0.8)
    axis.set_xticks(positions, objectives)
    axis.set_ylabel("ranking accuracy")
    axis.set_ylim(0.3, 1.0)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
