"""Every registered metric, overall and per task, as a JSON-ready dict.

Example:
    >>> n = 8
    >>> table = FrameTable(np.arange(n) * 1.0, np.arange(n) * 1.0, np.arange(n) >= 6, np.array(["reach"] * n),
    ...                    np.repeat([0, 1], 4), np.tile(np.arange(4), 2), np.full(n, 3), np.ones(n, bool))
    >>> report = summarize(table, num_resamples=20)
    >>> report["overall"]["ranking_accuracy"], report["per_task"]["reach"]["voc"]
    (1.0, 1.0)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vlm_reward_wrappers.metrics.bootstrap import interval_from_resamples
from vlm_reward_wrappers.metrics.registry import DEFAULT_DELTA, MetricSettings, ordered_metrics
from vlm_reward_wrappers.metrics.table import FrameTable


def summarize_block(table: FrameTable, settings: MetricSettings) -> dict[str, Any]:
    """Every registered metric on one frame table (whole episodes), with ``<name>_ci`` intervals where defined."""
    block: dict[str, Any] = {}
    for metric in ordered_metrics():
        result = metric.compute(table, settings)
        block[metric.name] = result.value
        if metric.interval:
            block[f"{metric.name}_ci"] = (
                interval_from_resamples(
                    result.resample, table.episode_codes, num_resamples=settings.num_resamples, seed=settings.seed
                )
                if result.resample is not None
                else None
            )
        block.update(result.details)
    block.update(num_frames=len(table), num_episodes=table.num_episodes)
    return block


def summarize(
    table: FrameTable, *, delta: float = DEFAULT_DELTA, seed: int = 0, num_resamples: int = 200
) -> dict[str, Any]:
    """All metrics, overall and per task: ``{"overall": block, "per_task": {task: block}}``.

    Each block holds every registered metric (``None`` where it cannot be
    computed), ``<name>_ci`` (``[low, high]`` 95% bootstrap intervals over the
    block's episodes) for metrics with intervals, their details, ``num_frames``
    and ``num_episodes``. Values are plain floats, ints or ``None``. Per-task
    ranking pairs are drawn per task with a task-specific seed, so a task's
    block matches its share of the overall pairs. Bootstrap resamples re-weight
    the computed pairs and per-episode correlations by how often each episode
    was drawn instead of recomputing them.
    """
    settings = MetricSettings(delta=delta, seed=seed, num_resamples=num_resamples)
    return {
        "overall": summarize_block(table, settings),
        "per_task": {str(task): summarize_block(table.of_task(str(task)), settings) for task in np.unique(table.task)},
    }
