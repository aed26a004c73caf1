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
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from vlm_reward_wrappers.data import DemoDataset
from vlm_reward_wrappers.evaluation.evaluate import TABLE_FILES, RewardChoice
from vlm_reward_wrappers.evaluation.plots import bar_value, new_figure
from vlm_reward_wrappers.evaluation.report import PROBE_LEGEND, legend, probe_table
from vlm_reward_wrappers.metrics import METRICS, ordered_metrics
from vlm_reward_wrappers.objectives import get_objective
from vlm_reward_wrappers.study.presets import SPLITS, VARIANTS, Preset
from vlm_reward_wrappers.training.plateau import FLAT_BELOW


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
    reference: bool = False


REFERENCE_LABELS: dict[str, str] = {
    "oracle": "ref: Meta-World reward (oracle)",
    "clock": "ref: clock, step / first success",
    "clock-capped": "ref: clock capped at success",
    "expert-flag": "ref: expert flag + 0.001·step",
    "pixel-knn": "ref: raw-pixel kNN",
    "backbone-knn": "ref: backbone kNN",
}
"""The reference rows (:mod:`vlm_reward_wrappers.evaluation.references`) by name, and their labels."""
COMPARED_WITH = "triplet"
"""The row every objective is compared with, declared before any data: the study's finding is that the triplet
loss beats the other objectives."""


def reference_rows(preset: Preset) -> list[Row]:
    """The reference rows, printed first: the frame-free ones on both splits; the nearest-neighbour ones on training
    tasks only (they need labelled training frames of the task), the backbone probe only with a frozen backbone.

    >>> from vlm_reward_wrappers.study.presets import PRESETS
    >>> [row.label for row in reference_rows(PRESETS["tiny"]) if "held-out-tasks" in row.splits][1:]
    ['ref: clock, step / first success', 'ref: clock capped at success', 'ref: expert flag + 0.001·step']
    """
    rows = []
    for name, label in REFERENCE_LABELS.items():
        if name == "backbone-knn" and preset.finetune not in ("heads", "frozen"):
            continue
        splits = ("train-tasks",) if name.endswith("knn") else SPLITS
        rows.append(Row(label, f"ref-{name}", "native", "reference", TABLE_FILES["native"], splits, reference=True))
    return rows


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


HEADLINE = "time_balanced_accuracy"
"""The metric the study's verdicts are read on: a reward rising strictly with the step scores 0.5 on it
(see :mod:`~vlm_reward_wrappers.metrics.time_balanced`)."""


def _versus_reference(comparison: dict[str, Any], label: str) -> str:
    """The row minus the reference row, its interval, and its verdict after Holm's correction (the statistics hold
    reference minus row); blank for rows outside the compared family (the reference predictors)."""
    if comparison.get("reference") == label:
        return "**compared with**"
    paired = comparison["paired"].get(label)
    if paired is None or paired["difference"] is None:
        return ""
    interval = f" [{-paired['ci'][1]:+.2f}, {-paired['ci'][0]:+.2f}]" if paired["ci"] else ""
    readout = {"better": "worse", "worse": "better", "not distinguishable": "not distinguishable"}
    return f"{-paired['difference']:+.3f}{interval} {readout[paired['holm_verdict']]}"


def _backbone_per_seed(result: dict[str, Any]) -> bool:
    """Whether the run's seeds pretrained backbones of their own (the package's own backbone), or shared one."""
    return len({spec["sha256"] or spec["pretrained"] for spec in result["backbones"].values()}) > 1


def results_tables(result: dict[str, Any], aggregate: str = "pooled") -> str:
    """One markdown table per split: every headline metric with its interval (``pooled`` over all frames of the
    split, or ``macro``, the mean over tasks), reference rows first, and each objective against the declared
    comparison row on the headline metric (paired, Holm-corrected over the objectives)."""
    metrics = [metric for metric in ordered_metrics(headline=True) if metric.interval]
    parts = []
    for split in SPLITS:
        statistics = result["statistics"][split]
        first = statistics[HEADLINE]
        seeds = "each its own backbone and heads" if _backbone_per_seed(result) else "one backbone, heads per seed"
        parts.append(
            f"**{split}**, {aggregate} (mean over {first['num_seeds']} seeds, {seeds}; 95% intervals from a "
            f"task-stratified bootstrap over seeds and {first['num_episodes']} episodes, "
            f"{first['num_resamples']} resamples, paired)"
        )
        header = ["row", "goal", *(metric.label for metric in metrics)]
        compared = aggregate == "pooled"  # Holm's correction is made on the pooled metric
        if compared:
            header.append(f"{METRICS[HEADLINE].label} vs {first['reference'] or 'the compared row'} (paired, Holm)")
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for row in result["rows"]:
            label = row["label"]
            if split not in row.get("splits", SPLITS):
                continue
            if label not in statistics[HEADLINE]["objectives"]:
                lines.append(f"| {label} | {row['goal_kind']} |" + " n/a |" * (len(header) - 2))
                continue
            cells = [label, row["goal_kind"]]
            for metric in metrics:
                values = statistics[metric.name]["objectives"][label]
                cells.append(_interval(values[aggregate], values[f"{aggregate}_ci"]))
            if compared:
                cells.append(_versus_reference(statistics[HEADLINE], label))
            lines.append("| " + " | ".join(cells) + " |")
        parts.append("\n".join(lines))
    return "\n\n".join(parts)


def _specification(row: dict[str, Any]) -> str:
    """Which column of the held-out-task table a row belongs to (its label after the variant)."""
    rest = row["label"][len(row["variant"]) :].strip(" ()")
    return rest or "sentence"


def held_out_table(result: dict[str, Any]) -> str:
    """Held-out tasks by how the task is given: per objective, its sentence (or, for image-goal objectives, the
    sentence reward), one demonstration (progress, goal image) and adaptation; the pooled headline metric with its
    interval, and pooled VOC."""
    statistics = result["statistics"]["held-out-tasks"]
    headline, voc = statistics[HEADLINE]["objectives"], statistics["voc"]["objectives"]
    rows = [row for row in result["rows"] if row["label"] in headline and not row.get("reference")]
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
            value, progress = headline[match[0]], voc[match[0]]
            progress_text = "n/a" if progress["pooled"] is None else f"{progress['pooled']:.2f}"
            cells.append(f"{_interval(value['pooled'], value['pooled_ci'])} / {progress_text}")
        lines.append(f"| {variant} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_task_table(per_task: dict[str, dict[str, dict[str, float | None]]], label: str) -> str:
    """One row's headline metric and VOC per held-out task (means over seeds)."""
    lines = [f"| task | {METRICS[HEADLINE].label} | VOC |", "|---|---|---|"]
    for task, values in per_task[label].items():
        cells = ["n/a" if values[name] is None else f"{values[name]:.3f}" for name in (HEADLINE, "voc")]
        lines.append(f"| {task} | {' | '.join(cells)} |")
    return "\n".join(lines)


def best_demonstration_row(result: dict[str, Any]) -> str | None:
    """The one-demonstration row with the highest pooled headline metric on held-out tasks."""
    ranking = result["statistics"]["held-out-tasks"][HEADLINE]["objectives"]
    demo_rows = [row["label"] for row in result["rows"] if row["goal_kind"] == "demonstration"]
    demo_rows = [label for label in demo_rows if label in ranking and ranking[label]["pooled"] is not None]
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

Pooled time-balanced accuracy [95% interval] / pooled VOC, on the held-out tasks' evaluation episodes. The
demonstrations come from a collection of their own (another seed), never from the evaluation episodes.

{held_out_table(result)}

Per task, the best one-demonstration reward (`{best}`, mean over seeds):

{per_task_table(result["held_out_per_task"], best)}
"""


def off_expert_summary(result: dict[str, Any]) -> str:
    """One line per row of the training tasks: the off-expert probe summed up over tasks (means over seeds)."""
    lines = [
        "| row | success AUC: mean (lowest task) | expert > random, tasks | random frames above success median: "
        "mean (highest task) | ρ with R on random episodes | gate: tasks passing |",
        "|---|---|---|---|---|---|",
    ]
    for label, per_task in result["off_expert"].items():
        tasks = list(per_task)

        def values(key: str, tasks: list[str] = tasks, per_task: dict[str, Any] = per_task) -> np.ndarray:
            found = [per_task[task].get(key) for task in tasks if per_task[task].get(key) is not None]
            return np.array(found, dtype=float)

        auc, above, exploit, spearman, passing = (
            values(key)
            for key in (
                "success_auroc",
                "expert_above_random",
                "random_above_success_median",
                "spearman_random",
                "gate_pass",
            )
        )
        cells = [
            f"{auc.mean():.2f} ({auc.min():.2f})" if len(auc) else "n/a",
            f"{above.sum():.1f} of {len(above)}" if len(above) else "n/a",
            f"{exploit.mean():.2f} ({exploit.max():.2f})" if len(exploit) else "n/a",
            f"{spearman.mean():+.2f}" if len(spearman) else "n/a",
            f"{passing.sum():.1f} of {len(tasks)}" if len(passing) else "n/a",
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def by_kind_table(result: dict[str, Any]) -> str:
    """Per row on the training tasks: the headline and the within-episode accuracy on each kind of episode."""
    kinds = ("expert", "noisy", "random")
    header = [f"{METRICS[HEADLINE].label}: {kind}" for kind in kinds] + [f"within-episode: {kind}" for kind in kinds]
    lines = ["| row | " + " | ".join(header) + " |", "|---|" + "---|" * len(header)]
    for label, values in result["by_episode_kind"].items():
        cells = [
            "n/a" if (value := values[f"{prefix}_{kind}"]) is None else f"{value:.3f}"
            for prefix in ("time_balanced", "ranking_accuracy_within")
            for kind in kinds
        ]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _off_expert_section(result: dict[str, Any]) -> str:
    details = "\n\n".join(
        f"#### {label}\n\n{probe_table(per_task, with_gate=False)}" for label, per_task in result["off_expert"].items()
    )
    return f"""### Off the expert path (training tasks)

The evaluation episodes run to their full length, past success: clean experts, experts with action noise up to
the heaviest level, and a random policy, the kinds of states an agent visits. Means over seeds ("expert > random,
tasks": summed over tasks of the share of seeds where the clean experts' mean reward per step is above the random
policy's).

{off_expert_summary(result)}

{PROBE_LEGEND}

<details><summary>Per task</summary>

{details}

</details>
"""


def reading_notes(result: dict[str, Any]) -> str:
    """How to read the tables: what the references are, what the headline guarantees, what the verdicts compare,
    and what two rows cannot show."""
    reference = result["statistics"]["train-tasks"][HEADLINE]["reference"]
    declared = f"the `{reference}` row, declared before the data" if reference == COMPARED_WITH else f"`{reference}`"
    backbones = (
        "Each seed pretrains its own backbone, so the intervals include the backbone draw."
        if _backbone_per_seed(result)
        else "Every seed shares one backbone: the intervals are conditional on it."
    )
    return f"""- **References** (rows `ref: ...`, computed on the same frames and pairs): Meta-World's reward is the
  ceiling; the clocks (step / first-success step, step / episode length without success; capped: held at 1 from
  success on) and the expert flag never look at a frame; the nearest-neighbour rows predict the mean progress
  (step / first success, 1 after it) of the 5 nearest frames of the task's successful training demonstrations, in
  raw pixels (averaged down to at most 32 × 32) or in the frozen backbone's features (a probe of how much progress
  the backbone keeps).
- **The headline** is the time-balanced accuracy: within each episode, the mean of the accuracy on frame pairs where
  Meta-World's reward rises with time and on pairs where it falls. A reward that rises strictly with the step scores
  exactly 0.5, whatever it knows about the episode; one that stays flat for a while earns half points on the pairs
  it ties (the capped clock's row shows how much). The within-episode accuracy, the study's ranking accuracy and VOC
  can be won by a clock, the across-episode accuracy by the expert flag: their reference rows show how far.
- **Verdicts** compare each objective with {declared}, on the headline metric: paired differences on shared
  resamples of seeds and episodes, Holm-corrected over the objectives. {backbones} Single figures vary between
  machines within these intervals (float differences grow through training).
- **zero-shot** on the package's own backbone is not VLM-RM: the backbone was pretrained on the training tasks'
  sentences only, and the baseline sentence of VLM-RM's projection ("a robot arm") is made of tokens pretraining
  never saw. The row measures the pretrained backbone with no objective.
- **triplet-failures** is the triplet that also trains on the training episodes that never succeed (random policy,
  failed noisy experts): a success frame must outscore a frame of a failed episode of the same task. Every other
  row trains on successful expert episodes only, as its paper does (docs/rewards-off-the-expert-path.md).
- **Held-out sentences** ask whether a text tower that read only the training tasks' sentences composes a new one;
  a one-token difference that no training sentence holds (lock / unlock) cannot be read.
"""


def render_report(result: dict[str, Any]) -> str:
    """The benchmark's ``report.md``."""
    preset, backbone, data, machine = result["preset"], result["backbone"], result["data"], result["machine"]
    own = backbone["model"].startswith("vlmrw-")
    backbone_note = (
        f"`{backbone['model']}`, the package's own backbone, trained from random weights on the training tasks' "
        "frames and sentences only, with a CLIP loss (which task a frame shows)"
        + (
            " and a time-contrastive loss between consecutive frames (where in its episode it is)"
            if preset["pretrain"].get("time_contrastive")
            else ""
        )
        + ". It is **not web-pretrained**: it does not know the words of tasks it never saw."
        if own
        else f"`{backbone['model']}` with weights `{backbone['pretrained']}`."
    )
    all_runs = result["timings_all_runs_s"]
    timings = "\n".join(
        f"| {stage} | {seconds:.0f} s | {all_runs.get(stage, seconds):.0f} s |"
        for stage, seconds in result["timings_s"].items()
    )
    finetune = f"`{preset['finetune']}`" + (f" (rank {preset['lora_rank']})" if preset["finetune"] == "lora" else "")
    learning = learning_summary(result["learning"], result.get("steps_trained", {}))
    steps = training_budget(preset["train_steps"], preset.get("train_min_steps"))
    budget = f"{steps}, {preset['batch_size']} trajectories a step, seeds {list(preset['seeds'])}"
    train, evaluation = data["train"], data["eval"]
    gpu = machine["cuda"] or "none"
    return f"""# Reward-accuracy benchmark: preset `{preset["name"]}`

{preset["description"]}.

## Results

{results_tables(result)}

Every objective is scored with its native reward (the goal its loss trains: a goal image, the mean embedding of
the final frames of the task's successful training trajectories, for TCN and image-goal VIP; the sentence
otherwise); image-goal objectives are also scored with the sentence reward they never train. Values are pooled
over all frames of the split; the macro values (mean over tasks, the study's average) follow below. The last
column is the row minus the compared row on the same resamples, read out after Holm's correction as
better, not distinguishable or worse. An image-goal reward has no goal image for held-out tasks (n/a there).

{reading_notes(result)}
{legend(result["delta"], [metric.name for metric in ordered_metrics(headline=True)])}

![benchmark](benchmark.png)

### By kind of episode (training tasks)

Means over seeds; "expert": clean expert episodes, "noisy": experts with action noise, "random": the random policy.
Episodes run to their full length, past success.

{by_kind_table(result)}

{_off_expert_section(result)}
{_held_out_section(result)}
### Macro values (mean over tasks)

{results_tables(result, "macro")}

### Learning rates and curves

{learning_rate_table(result["learning_rates"], result["preset"].get("learning_rates", ()))}

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
    """Grouped bars: the pooled headline metric of each row on each split, with its interval."""
    splits = [split for split in statistics if statistics[split][HEADLINE]["objectives"]]
    labels = list(dict.fromkeys(label for split in splits for label in statistics[split][HEADLINE]["objectives"]))
    positions = np.arange(len(labels))
    width = 0.8 / max(1, len(splits))
    figure = new_figure(max(5.0, 1.0 * len(labels) + 2), 3.6)
    axis = figure.subplots()
    for index, split in enumerate(splits):
        rows = statistics[split][HEADLINE]["objectives"]
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
    axis.set_ylabel(f"{METRICS[HEADLINE].label} (pooled)")
    axis.set_ylim(0.3, 1.0)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)


def learning_rate_table(learning_rates: dict[str, dict[str, Any]], preset_rates: Sequence[float] = ()) -> str:
    """Per trained row: the validation loss of each swept learning rate (first seed) and the rate every seed used."""
    if not learning_rates:
        if len(preset_rates) == 1:
            return f"Every row trained at learning rate {preset_rates[0]:g}, the preset's one rate (no sweep)."
        return "Every row trained at its finetuning mode's default learning rate (no sweep in this preset)."
    rates = list(next(iter(learning_rates.values()))["validation_loss"])
    lines = [
        "| row | " + " | ".join(f"validation loss at {rate}" for rate in rates) + " | chosen |",
        "|---|" + "---|" * (len(rates) + 1),
    ]
    for variant, sweep in learning_rates.items():
        losses = " | ".join(f"{sweep['validation_loss'][rate]:.4f}" for rate in rates)
        lines.append(f"| {variant} | {losses} | {sweep['chosen']:g} |")
    return "\n".join(lines) + (
        "\n\nEach row's own loss on validation episodes of the training tasks, on the first seed's backbone with a "
        "head seed no final run uses; the rate with the lowest one trains every seed. Evaluation episodes play no "
        "part in the choice."
    )


def training_budget(train_steps: int, train_min_steps: int | None) -> str:
    """A preset's training budget in words (the benchmark's log and its report).

    >>> training_budget(1800, 600)
    '600 steps, then until the validation loss flattens (at most 1800)'
    """
    if train_min_steps is None:
        return f"{train_steps} steps"
    return f"{train_min_steps} steps, then until the validation loss flattens (at most {train_steps})"


def learning_summary(learning: dict[str, list[float | None]], steps_trained: dict[str, list[int]]) -> str:
    """Per objective: the steps each seed trained, and the share of its validation-loss improvement made in the
    last quarter of training.

    >>> print(learning_summary({"tcn": [0.02, 0.3]}, {"tcn": [600, 1800]}).splitlines()[2])
    | tcn | 600, 1800 | 0.02, 0.30 | still improving |
    """
    lines = [
        "| objective | steps, per seed | late improvement, per seed | verdict (mean over seeds) |",
        "|---|---|---|---|",
    ]
    for variant, values in learning.items():
        steps = ", ".join(str(count) for count in steps_trained.get(variant, [])) or "n/a"
        known = [value for value in values if value is not None]
        if not known:
            lines.append(f"| {variant} | {steps} | n/a | nothing trained, or fewer than 3 validations |")
            continue
        verdict = "flat" if float(np.mean(known)) < FLAT_BELOW else "still improving"
        lines.append(f"| {variant} | {steps} | {', '.join(f'{value:.2f}' for value in known)} | {verdict} |")
    return (
        "\n".join(lines)
        + f"\n\nLate improvement: the share of a run's validation-loss decrease made in its last quarter of steps; "
        f"below {FLAT_BELOW} on average over seeds the curve is called flat."
    )


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
