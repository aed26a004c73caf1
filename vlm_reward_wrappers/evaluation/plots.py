"""PNG plots of an evaluation (matplotlib, no display needed).

Each plot draws on its own ``Figure`` with an Agg canvas: nothing goes through
pyplot, so the user's matplotlib backend and open figures are left alone.

Example:
    >>> plot_reward_curves(predictions, "eval/reward_curves.png")   # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from vlm_reward_wrappers.metrics import FrameTable


def new_figure(width: float, height: float) -> Figure:
    """A figure with its own Agg canvas, independent of pyplot's state."""
    figure = Figure(figsize=(width, height))
    FigureCanvasAgg(figure)
    return figure


def bar_value(value: float | None) -> float:
    """A metric for a bar: NaN (no bar) only where the metric is unavailable; 0.0 stays 0.0."""
    return np.nan if value is None else float(value)


def _standardize(values: np.ndarray) -> np.ndarray:
    spread = values.std()
    return (values - values.mean()) / spread if spread > 0 else values - values.mean()


def plot_reward_curves(predictions: FrameTable, path: str | os.PathLike, episodes_per_task: int = 3) -> None:
    """Learned and ground-truth reward over time (each standardised per episode), a few episodes per task."""
    tasks = sorted(set(predictions.task))
    figure = new_figure(3.2 * episodes_per_task, 2.2 * len(tasks))
    axes = figure.subplots(len(tasks), episodes_per_task, squeeze=False)
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
                steps, _standardize(predictions.ground_truth[rows]), label="ground truth", color="black", linewidth=1
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


def plot_per_task(metrics: dict[str, Any], path: str | os.PathLike) -> None:
    """Bar chart of ranking accuracy and VOC per task."""
    tasks = sorted(metrics["per_task"])
    accuracy = [bar_value(metrics["per_task"][t]["ranking_accuracy"]) for t in tasks]
    voc = [bar_value(metrics["per_task"][t]["voc"]) for t in tasks]
    positions = np.arange(len(tasks))
    figure = new_figure(max(4.0, 0.8 * len(tasks) + 2), 3.2)
    axis = figure.subplots()
    axis.bar(positions - 0.2, accuracy, width=0.4, label="ranking accuracy")
    axis.bar(positions + 0.2, voc, width=0.4, label="VOC")
    axis.axhline(0.5, color="gray", linestyle="--", linewidth=0.8)
    axis.axhline(0.0, color="black", linewidth=0.5)
    axis.set_xticks(positions, tasks, rotation=45, ha="right", fontsize=7)
    axis.set_ylim(-1, 1)
    axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
