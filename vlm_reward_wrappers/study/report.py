"""The benchmark's report: its rows, the results tables with paired verdicts, the figures, ``report.md``.

Example:
    >>> from vlm_reward_wrappers.study.presets import PRESETS
    >>> [row.label for row in study_rows(PRESETS["tiny"]) if row.splits == SPLITS]
    ['zero-shot', 'triplet', 'tcn (image goal)', 'tcn (sentence)']
    >>> [row.label for row in study_rows(PRESETS["tiny"]) if row.variant == "triplet"]
    ['triplet', 'triplet (1 demo: progress)', 'triplet (1 demo: goal image)', 'triplet (adapted on 1 demo)']
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vlm_reward_wrappers.data import DemoDataset
from vlm_reward_wrappers.evaluation.evaluate import TABLE_FILES, RewardChoice
from vlm_reward_wrappers.evaluation.plots import bar_value, new_figure
from vlm_reward_wrappers.evaluation.report import legend
from vlm_reward_wrappers.metrics import ordered_metrics
from vlm_reward_wrappers.objectives import get_objective
from vlm_reward_wrappers.study.presets import SPLITS, VARIANTS, Preset

FLAT_BELOW = 0.1
"""A run whose last quarter made less than this share of its validation-loss decrease has flattened."""


@dataclass(frozen=True)
class Row:
    """One row of the study's table: an objective variant scored with one reward.

    Args:
        label: the row's name in tables.
        variant: the study variant (objective and options, see ``presets.VARIANTS``).
        reward: ``native`` (the goal the objective trains) or ``sentence``.
        goal_kind: the kind of goal the row's reward uses.
        table_file: the evaluation's frame-table file of that reward.
        splits: the splits the row is scored on (demonstration rewards: held-out tasks only).
        checkpoint_suffix: after ``<variant>-seed<k>`` in the name of the evaluated checkpoint
            (``-adapted<n>``: adapted to the held-out tasks on n demonstrations).
    """

    label: str
    variant: str
    reward: RewardChoice
    goal_kind: str
    table_file: str
    splits: tuple[str, ...] = SPLITS
    checkpoint_suffix: str = ""


def study_rows(preset: Preset) -> list[Row]:
    """Every variant with its native reward; image-goal variants also with the sentence reward they never train;
    on held-out tasks, every variant also with the rewards of one demonstration (progress along it, its goal image)
    and adapted on the preset's numbers of demonstrations.
    """
    rows = []
    demos = f"{preset.demonstrations} demo" + ("s" if preset.demonstrations > 1 else "")
    for variant in preset.objectives:
        objective, options = VARIANTS[variant]
        kind = get_objective(objective, **options).goal_kind
        if kind == "sentence":
            rows.append(Row(variant, variant, "native", kind, TABLE_FILES["native"]))
        else:
            rows.append(Row(f"{variant} (image goal)", variant, "native", kind, TABLE_FILES["native"]))
            rows.append(Row(f"{variant} (sentence)", variant, "sentence", "sentence", TABLE_FILES["sentence"]))
        if preset.demonstrations:
            demo_rewards: tuple[tuple[RewardChoice, str], ...] = (
                ("demo-progress", "progress"),
                ("demo-goal-image", "goal image"),
            )
            for reward, name in demo_rewards:
                label = f"{variant} ({demos}: {name})"
                rows.append(Row(label, variant, reward, "demonstration", TABLE_FILES[reward], ("held-out-tasks",)))
        for count in preset.adapt_demonstrations:
            label = f"{variant} (adapted on {count} demo{'s' if count > 1 else ''})"
            table = TABLE_FILES["native"]
            rows.append(Row(label, variant, "native", kind, table, ("held-out-tasks",), f"-adapted{count}"))
    return rows


def _interval(value: float | None, interval: list[float] | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.3f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")


def _versus_best(comparison: dict[str, Any], label: str) -> str:
    """The row minus the best row, with its interval and verdict (the statistics hold best minus row)."""
    if comparison.get("best") == label:
        return "**best**"
    paired = comparison["paired"].get(label)
    difference = None if paired is None else paired["difference"]
    if paired is None or difference is None:
        return "n/a"
    interval = f" [{-paired['ci'][1]:+.2f}, {-paired['ci'][0]:+.2f}]" if paired["ci"] else ""
    text = f"{-difference:+.3f}{interval}"
    readout = {"better": "worse", "worse": "better", "not distinguishable": "not distinguishable"}[paired["verdict"]]
    return f"{text} {readout}"


def results_tables(result: dict[str, Any]) -> str:
    """One markdown table per split: pooled and macro values with intervals, and the paired verdict against the best."""
    metrics = [metric for metric in ordered_metrics(headline=True) if metric.interval]
    parts = []
    for split in SPLITS:
        statistics = result["statistics"][split]
        first = next(iter(statistics.values()))
        parts.append(
            f"**{split}** (mean over {first['num_seeds']} seeds; 95% intervals from a task-stratified bootstrap "
            f"over seeds and {first['num_episodes']} episodes, {first['num_resamples']} resamples, paired)"
        )
        header = ["objective", "goal"]
        for metric in metrics:
            header += [f"{metric.label} pooled", f"{metric.label} macro"]
        header.append("ranking acc. vs best (paired)")
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in result["rows"]:
            label = row["label"]
            if split not in row.get("splits", SPLITS):
                continue
            if label not in statistics["ranking_accuracy"]["objectives"]:
                lines.append(f"| {label} | {row['goal_kind']} |" + " n/a |" * (len(header) - 2))
                continue
            cells = [label, row["goal_kind"]]
            for metric in metrics:
                values = statistics[metric.name]["objectives"][label]
                cells += [
                    _interval(values["pooled"], values["pooled_ci"]),
                    _interval(values["macro"], values["macro_ci"]),
                ]
            cells.append(_versus_best(statistics["ranking_accuracy"], label))
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _specification(row: dict[str, Any]) -> str:
    """Which column of the held-out-task table a row belongs to (its label after the variant)."""
    rest = row["label"][len(row["variant"]) :].strip(" ()")
    return rest or "sentence"


def held_out_table(result: dict[str, Any]) -> str:
    """Held-out tasks by how the task is given: per objective, its sentence (or, for image-goal objectives, the
    sentence reward), one demonstration (progress, goal image) and adaptation; pooled ranking accuracy with its
    interval, and pooled VOC."""
    statistics = result["statistics"]["held-out-tasks"]
    ranking, voc = statistics["ranking_accuracy"]["objectives"], statistics["voc"]["objectives"]
    rows = [row for row in result["rows"] if row["label"] in ranking]
    columns = list(dict.fromkeys(_specification(row) for row in rows if _specification(row) != "image goal"))
    lines = [
        "| objective | " + " | ".join(columns) + " |",
        "|---|" + "---|" * len(columns),
    ]
    for variant in dict.fromkeys(row["variant"] for row in rows):
        cells = []
        for column in columns:
            match = [row["label"] for row in rows if row["variant"] == variant and _specification(row) == column]
            if not match:
                cells.append("n/a")
                continue
            rank, progress = ranking[match[0]], voc[match[0]]
            progress_text = "n/a" if progress["pooled"] is None else f"{progress['pooled']:.2f}"
            cells.append(f"{_interval(rank['pooled'], rank['pooled_ci'])} / {progress_text}")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_task_table(per_task: dict[str, dict[str, dict[str, float | None]]], label: str) -> str:
    """One row's ranking accuracy and VOC per held-out task (means over seeds)."""
    lines = ["| task | ranking acc. | VOC |", "|---|---|---|"]
    for task, values in per_task[label].items():
        voc = values["voc"]
        lines.append(f"| {task} | {values['ranking_accuracy']:.3f} | {'n/a' if voc is None else f'{voc:.3f}'} |")
    return "\n".join(lines)


def best_demonstration_row(result: dict[str, Any]) -> str | None:
    """The one-demonstration row with the highest pooled ranking accuracy on held-out tasks."""
    ranking = result["statistics"]["held-out-tasks"]["ranking_accuracy"]["objectives"]
    demo_rows = [row["label"] for row in result["rows"] if row["goal_kind"] == "demonstration"]
    demo_rows = [label for label in demo_rows if label in ranking]
    return max(demo_rows, key=lambda label: ranking[label]["pooled"], default=None)


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


def _held_out_section(result: dict[str, Any]) -> str:
    """The held-out tasks by task specification, and the best one-demonstration reward per task."""
    best = best_demonstration_row(result)
    if best is None:
        return ""
    return f"""### Held-out tasks by how the task is given

Pooled ranking accuracy [95% interval] / pooled VOC, on the held-out tasks' evaluation episodes. The
demonstrations come from a collection of their own (another seed), never from the evaluation episodes.

{held_out_table(result)}

Per task, the best one-demonstration reward (`{best}`, mean over seeds):

{per_task_table(result["held_out_per_task"], best)}
"""


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
    all_runs = result["timings_all_runs_s"]
    timings = "\n".join(
        f"| {stage} | {seconds:.0f} s | {all_runs.get(stage, seconds):.0f} s |"
        for stage, seconds in result["timings_s"].items()
    )
    finetune = f"`{preset['finetune']}`" + (f" (rank {preset['lora_rank']})" if preset["finetune"] == "lora" else "")
    learning = learning_summary(result["learning"])
    budget = f"{preset['train_steps']} steps of {preset['batch_size']} trajectories, seeds {list(preset['seeds'])}"
    train, evaluation = data["train"], data["eval"]
    gpu = machine["cuda"] or "none"
    return f"""# Reward-accuracy benchmark: preset `{preset["name"]}`

{preset["description"]}.

## Results

{results_tables(result)}

Every objective is scored with its native reward (the goal its loss trains: a goal image, the mean embedding of
the final frames of the task's successful training trajectories, for TCN and image-goal VIP; the sentence
otherwise); image-goal objectives are also scored with the sentence reward they never train. "pooled" is the
metric over all frames of the split, "macro" the mean over tasks (the study's average). "vs best": the row minus
the best row on the same resamples, read out as better, not distinguishable or worse. An image-goal reward has
no goal image for held-out tasks (n/a there).
{legend(result["delta"], [metric.name for metric in ordered_metrics(headline=True)])}

![benchmark](benchmark.png)

{_held_out_section(result)}

### Learning curves

{learning}

![learning curves](learning_curves.png)

`train-tasks`: new episodes (another seed) of the training tasks; `held-out-tasks`: tasks no training stage saw
({", ".join(preset["held_out_tasks"])}).

## What was run

- Backbone: {backbone_note}
- Finetuning: {finetune}, {budget}; every objective sees the same batches.
- Training data: {train["episodes"]} episodes, {train["frames"]} frames, {len(train["tasks"])} tasks,
  camera `{train["camera"]}`, {train["image_size"]} px.
- Evaluation data: {evaluation["episodes"]} episodes, {evaluation["frames"]} frames, {len(evaluation["tasks"])} tasks.
- Machine: {machine["processor"]}, {machine["cpus"]} CPUs, torch {machine["torch"]}
  ({machine["torch_threads"]} threads), GPU: {gpu}; {machine["platform"]}.

| stage | wall time, this run | summed over the {result["runs"]} run(s) into this folder |
|---|---|---|
{timings}

Per-objective reports (tables per task, reward curves): `eval/<objective>/<split>/report.md`.
"""


def plot_benchmark(statistics: dict[str, dict[str, Any]], path: str | os.PathLike) -> None:
    """Grouped bars: pooled ranking accuracy of each row on each split, with its interval."""
    splits = [split for split in statistics if statistics[split]["ranking_accuracy"]["objectives"]]
    labels = list(
        dict.fromkeys(label for split in splits for label in statistics[split]["ranking_accuracy"]["objectives"])
    )
    positions = np.arange(len(labels))
    width = 0.8 / max(1, len(splits))
    figure = new_figure(max(5.0, 1.0 * len(labels) + 2), 3.6)
    axis = figure.subplots()
    for index, split in enumerate(splits):
        rows = statistics[split]["ranking_accuracy"]["objectives"]
        values = [bar_value(rows[label]["pooled"]) if label in rows else np.nan for label in labels]
        intervals = [
            (rows.get(label) or {}).get("pooled_ci") or [v, v] for label, v in zip(labels, values, strict=True)
        ]
        low = [v - interval[0] for v, interval in zip(values, intervals, strict=True)]
        high = [interval[1] - v for v, interval in zip(values, intervals, strict=True)]
        offset = (index - (len(splits) - 1) / 2) * width
        axis.bar(positions + offset, values, width=width, yerr=[low, high], capsize=2, label=split)
    axis.axhline(0.5, color="gray", linestyle="--", linewidth=0.8)
    axis.set_xticks(positions, labels, rotation=30, ha="right", fontsize=7)
    axis.set_ylabel("ranking accuracy (pooled)")
    axis.set_ylim(0.3, 1.0)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def learning_summary(learning: dict[str, list[float | None]]) -> str:
    """Per objective: the share of its validation-loss improvement made in the last quarter of training."""
    lines = ["| objective | late improvement, per seed | verdict (mean over seeds) |", "|---|---|---|"]
    for variant, values in learning.items():
        known = [value for value in values if value is not None]
        if not known:
            lines.append(f"| {variant} | n/a | nothing trained, or fewer than 3 validations |")
            continue
        verdict = "flat" if float(np.mean(known)) < FLAT_BELOW else "still improving"
        lines.append(f"| {variant} | {', '.join(f'{value:.2f}' for value in known)} | {verdict} |")
    return (
        "\n".join(lines)
        + f"\n\nLate improvement: the share of a run's validation-loss decrease made in its last quarter of steps; "
        f"below {FLAT_BELOW} on average over seeds the curve is called flat."
    )


def late_improvement(history: list[dict[str, Any]]) -> float | None:
    """The share of a run's validation-loss decrease made in its last quarter of steps (small: it has flattened).

    ``(mean L over the third quarter - mean L over the last quarter) / (L(first) - mean L over the last
    quarter)``, with ``L`` the validation losses recorded in those quarters of the steps (means, so that one
    noisy evaluation does not decide). None without an evaluation in each quarter, or without a decrease.

    >>> round(late_improvement([{"step": s, "validation_loss": 1 / s} for s in range(1, 9)]), 3)
    0.057
    """
    points = [(e["step"], e["validation_loss"]) for e in history if e.get("validation_loss") is not None]
    steps = np.array([step for step, _ in points], dtype=float)
    losses = np.array([loss for _, loss in points], dtype=float)
    if len(points) < 3:
        return None
    third = losses[(steps > 0.5 * steps[-1]) & (steps <= 0.75 * steps[-1])]
    last = losses[steps > 0.75 * steps[-1]]
    if not len(third) or not len(last):
        return None
    total = losses[0] - last.mean()
    return float((third.mean() - last.mean()) / total) if total > 0 else None


def plot_learning_curves(histories: dict[str, list[list[dict[str, Any]]]], path: str | os.PathLike) -> None:
    """Validation loss against training step: one panel per objective, one line per seed."""
    names = [name for name, runs in histories.items() if any(len(run) > 1 for run in runs)]
    if not names:
        return
    columns = min(4, len(names))
    rows = -(-len(names) // columns)
    figure = new_figure(3.2 * columns, 2.4 * rows)
    axes = figure.subplots(rows, columns, squeeze=False)
    for index, axis in enumerate(axes.flat):
        if index >= len(names):
            axis.axis("off")
            continue
        for seed, run in enumerate(histories[names[index]]):
            points = [(e["step"], e["validation_loss"]) for e in run if e.get("validation_loss") is not None]
            if points:
                axis.plot(*zip(*points, strict=True), linewidth=1, label=f"seed {seed}")
        axis.set_title(names[index], fontsize=8)
        axis.tick_params(labelsize=6)
    axes[0][0].legend(fontsize=6)
    figure.suptitle("validation loss of each objective (its own loss, on held-out trajectories)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
