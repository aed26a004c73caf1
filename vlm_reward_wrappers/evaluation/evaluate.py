"""``vlm-rewards evaluate``: score a dataset with a checkpoint and compare with the ground truth.

Writes to the output folder:

* ``metrics.json``: every metric overall and per task (:func:`~.metrics.summarize`),
  with what was evaluated;
* ``predictions.csv``: one row per frame (task, episode, step, gt_reward, success, predicted_reward);
* ``report.md``: a markdown table per task;
* ``reward_curves.png``: learned and ground-truth reward over time, a few episodes per task;
* ``per_task.png``: ranking accuracy and VOC per task.

Example:
    >>> metrics = evaluate("runs/quick/checkpoints/triplet", "runs/quick/data/eval", "runs/quick/eval/triplet")  # doctest: +SKIP
    >>> metrics["overall"]["ranking_accuracy"]                                                                  # doctest: +SKIP
    0.87
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlm_reward_wrappers.data.storage import DemoDataset
from vlm_reward_wrappers.evaluation.metrics import summarize
from vlm_reward_wrappers.evaluation.plots import plot_per_task, plot_reward_curves
from vlm_reward_wrappers.evaluation.scoring import Predictions, check_compatible, score_dataset
from vlm_reward_wrappers.io_utils import write_json_atomic, write_text_atomic
from vlm_reward_wrappers.models.reward_model import RewardModel

DEFAULT_DELTA = 0.5
"""Ground-truth rewards closer than this (on Meta-World's 0-10 scale) are a tie: such pairs are not ranked."""


def compute_metrics(
    predictions: Predictions, *, delta: float = DEFAULT_DELTA, seed: int = 0, num_resamples: int = 200
) -> dict[str, Any]:
    """:func:`~.metrics.summarize` of a predictions table."""
    return summarize(
        predictions.predicted,
        predictions.gt_reward,
        predictions.success,
        predictions.task,
        predictions.episode,
        predictions.step,
        predictions.first_success_step,
        predictions.is_expert,
        delta=delta,
        seed=seed,
        num_resamples=num_resamples,
    )


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _interval(values: list[float] | None) -> str:
    return "" if not values else f" [{values[0]:.2f}, {values[1]:.2f}]"


def markdown_table(metrics: dict[str, Any]) -> str:
    """Per-task table of a :func:`compute_metrics` result, overall row last."""
    lines = [
        "| task | frames | episodes | ranking acc. (95% CI) | within | across | VOC (95% CI) | Spearman r̂~R | success AUROC |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    rows = [*sorted(metrics["per_task"].items()), ("**all**", metrics["overall"])]
    for name, block in rows:
        lines.append(
            f"| {name} | {block['num_frames']} | {block['num_episodes']} | {_fmt(block['ranking_accuracy'])}{_interval(block['ranking_accuracy_ci'])} "
            f"| {_fmt(block['ranking_accuracy_within'])} | {_fmt(block['ranking_accuracy_across'])} "
            f"| {_fmt(block['voc'])}{_interval(block['voc_ci'])} | {_fmt(block['spearman'])} | {_fmt(block['success_auroc'])} |"
        )
    return "\n".join(lines)


def evaluate(
    checkpoint: str | os.PathLike | RewardModel,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    tasks: Sequence[str] | None = None,
    delta: float = DEFAULT_DELTA,
    seed: int = 0,
    plots: bool = True,
) -> dict[str, Any]:
    """Evaluate a checkpoint on a dataset and write the report files to ``out``; return the metrics."""
    model = checkpoint if isinstance(checkpoint, RewardModel) else RewardModel.from_pretrained(checkpoint)
    dataset = DemoDataset(data, tasks=tasks)
    if len(dataset) == 0:
        raise ValueError(f"no episodes to evaluate in {data}" + (f" for tasks {', '.join(tasks)}" if tasks else ""))
    problems = check_compatible(model, dataset)
    predictions = score_dataset(model, dataset)
    metrics = compute_metrics(predictions, delta=delta, seed=seed)
    metrics["evaluated"] = {
        "checkpoint": str(checkpoint) if not isinstance(checkpoint, RewardModel) else None,
        "objective": model.config.objective,
        "data": str(Path(data).resolve()),
        "tasks": dataset.tasks,
        "delta": delta,
        "seed": seed,
        "warnings": problems,
        "voc_note": None
        if metrics["overall"]["voc"] is not None
        else "no successful expert episode in the data: VOC unavailable",
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "metrics.json", metrics)
    predictions.write_csv(out / "predictions.csv")
    title = f"# Reward accuracy of `{model.config.objective['name']}` on `{data}`\n\n"
    notes = "".join(f"> warning: {p}\n" for p in problems)
    legend = (
        f"\nRanking accuracy: share of frame pairs of one task whose ground-truth rewards differ by more than {delta} "
        "that the learned reward orders the same way (ties in the learned reward count half; chance 0.5). "
        "VOC: Spearman correlation of the learned reward with time on successful expert episodes, up to their first success.\n"
    )
    write_text_atomic(out / "report.md", title + notes + markdown_table(metrics) + "\n" + legend)
    if plots:
        plot_reward_curves(predictions, out / "reward_curves.png")
        plot_per_task(metrics, out / "per_task.png")
    return metrics
