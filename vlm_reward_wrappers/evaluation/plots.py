"""PNG plots of an evaluation (matplotlib, no display needed).

Example:
    >>> plot_reward_curves(predictions, "eval/reward_curves.png")   # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from vlm_reward_wrappers.evaluation.scoring import Predictions


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _standardize(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else values - values.mean()


def plot_reward_curves(predictions: Predictions, path: str | os.PathLike, episodes_per_task: int = 3) -> None:
    """Learned and ground-truth reward over time (each standardised per episode), a few episodes per task."""
    plt = _pyplot()
    tasks = sorted(set(predictions.task))
    figure, axes = plt.subplots(
        len(tasks), episodes_per_task, figsize=(3.2 * episodes_per_task, 2.2 * len(tasks)), squeeze=False
    )
    for row, task in enumerate(tasks):
        episodes = list(dict.fromkeys(predictions.episode[predictions.task == task]))[:episodes_per_task]
        for column in range(episodes_per_task):
            axis = axes[row][column]
            if column >= len(episodes):
                axis.axis("off")
                continue
            rows = np.flatnonzero(predictions.episode == episodes[column])
            rows = rows[np.argsort(predictions.step[rows])]
            steps = predictions.step[rows]
            axis.plot(
                steps, _standardize(predictions.gt_reward[rows]), label="ground truth", color="black", linewidth=1
            )
            axis.plot(steps, _standardize(predictions.predicted[rows]), label="learned", color="tab:red", linewidth=1)
            first = int(predictions.first_success_step[rows[0]])
            if first >= 0:
                axis.axvline(first, color="tab:green", linestyle=":", linewidth=1)
            axis.set_title(f"{task} #{episodes[column]}", fontsize=8)
            axis.tick_params(labelsize=6)
    axes[0][0].legend(fontsize=6)
    figure.suptitle("reward over time (standardised per episode; dotted: first success)", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_per_task(metrics: dict[str, Any], path: str | os.PathLike) -> None:
    """Bar chart of ranking accuracy and VOC per task."""
    plt = _pyplot()
    tasks = sorted(metrics["per_task"])
    accuracy = [metrics["per_task"][t]["ranking_accuracy"] or np.nan for t in tasks]
    voc = [metrics["per_task"][t]["voc"] if metrics["per_task"][t]["voc"] is not None else np.nan for t in tasks]
    positions = np.arange(len(tasks))
    figure, axis = plt.subplots(figsize=(max(4.0, 0.8 * len(tasks) + 2), 3.2))
    axis.bar(positions - 0.2, accuracy, width=0.4, label="ranking accuracy")
    axis.bar(positions + 0.2, voc, width=0.4, label="VOC")
    axis.axhline(0.5, color="gray", linestyle="--", linewidth=0.8)
    axis.axhline(0.0, color="black", linewidth=0.5)
    axis.set_xticks(positions, tasks, rotation=45, ha="right", fontsize=7)
    axis.set_ylim(-1, 1)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_benchmark(table: dict[str, dict[str, dict[str, Any]]], path: str | os.PathLike) -> None:
    """Grouped bars: ranking accuracy of each objective on each split, with intervals."""
    plt = _pyplot()
    objectives = list(table)
    splits = list(next(iter(table.values())))
    positions = np.arange(len(objectives))
    width = 0.8 / max(1, len(splits))
    figure, axis = plt.subplots(figsize=(max(5.0, 1.1 * len(objectives) + 2), 3.4))
    for index, split in enumerate(splits):
        values = [table[o][split]["ranking_accuracy"] or np.nan for o in objectives]
        low = [v - (table[o][split]["ranking_accuracy_ci"] or [v, v])[0] for o, v in zip(objectives, values, strict=False)]
        high = [(table[o][split]["ranking_accuracy_ci"] or [v, v])[1] - v for o, v in zip(objectives, values, strict=False)]
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
    plt.close(figure)
