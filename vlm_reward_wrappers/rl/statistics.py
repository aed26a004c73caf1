"""Statistics of an RL sweep: paired intervals over seeds, and rliable's aggregates across tasks.

The primary metric of a run is its mean success over the curve (the area under its success curve, over its
evaluations). Per task, a source is compared with ``sparse`` paired by agent seed: the mean of the per-seed
differences with a percentile bootstrap interval over those seeds (with two seeds it can only span their two
differences; five or more make it an interval worth reading). Across tasks, `rliable
<https://github.com/google-research/rliable>`_ (Agarwal et al., 2021) gives each source's interquartile mean (IQM)
with a stratified bootstrap interval over runs, and its probability of improvement over ``sparse``: the chance
that a run of the source beats a run of ``sparse`` on a task drawn at random.

Example:
    >>> paired_interval([0.1, 0.3])
    (0.2, 0.1, 0.3)
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

RESAMPLES = 10_000
"""Bootstrap resamples of every interval."""

Scores = Mapping[str, Mapping[str, Mapping[int, float]]]
"""Mean success over the curve by source, then task, then agent seed."""


def paired_interval(
    differences: Sequence[float], resamples: int = RESAMPLES, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float] | None:
    """The mean of paired per-seed ``differences`` and its percentile bootstrap interval (None for no seeds)."""
    values = np.asarray(differences, dtype=float)
    if values.size == 0:
        return None
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, size=(resamples, values.size))].mean(axis=1)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return round(float(values.mean()), 12), round(float(low), 12), round(float(high), 12)


def rank_correlation(
    x: Sequence[float], y: Sequence[float], resamples: int = RESAMPLES, seed: int = 0, confidence: float = 0.95
) -> tuple[float, float, float] | None:
    """Spearman's rank correlation of paired values, and its percentile bootstrap interval over the pairs (None
    below 3 pairs; resamples where either side is constant, which have no rank correlation, are left out).

    >>> rank_correlation([1, 2, 3, 4], [10, 20, 30, 40])
    (1.0, 1.0, 1.0)
    """
    from scipy.stats import spearmanr

    first, second = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if first.size < 3:
        return None
    rng = np.random.default_rng(seed)
    values = []
    for picks in rng.integers(0, first.size, size=(resamples, first.size)):
        if np.ptp(first[picks]) > 0 and np.ptp(second[picks]) > 0:
            values.append(spearmanr(first[picks], second[picks]).statistic)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail]) if values else (np.nan, np.nan)
    return round(float(spearmanr(first, second).statistic), 12), round(float(low), 12), round(float(high), 12)


def _runs_by_tasks(by_task: Mapping[str, Mapping[int, float]], tasks: Sequence[str]) -> np.ndarray:
    """``(runs, tasks)`` scores: the seeds every task has, in order."""
    seeds = sorted(set.intersection(*(set(by_task[task]) for task in tasks)))
    return np.array([[by_task[task][seed] for task in tasks] for seed in seeds], dtype=float)


def across_tasks(
    scores: Scores, reference: str = "sparse", resamples: int = RESAMPLES, seed: int = 0
) -> dict[str, dict[str, Any]]:
    """Per source, on the tasks it shares with ``reference``: rliable's IQM of the runs' scores and its interval,
    and the probability of improvement over ``reference`` with its interval (None for the reference itself or where
    it did not run). Needs the ``rl`` extra (rliable)."""
    summary: dict[str, dict[str, Any]] = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="random_state is deprecated", category=FutureWarning)  # arch's
        for source in scores:
            entry = _source_summary(scores, source, reference, resamples, seed)
            if entry is not None:
                summary[source] = entry
    return summary


def _source_summary(scores: Scores, source: str, reference: str, resamples: int, seed: int) -> dict[str, Any] | None:
    from rliable import library, metrics

    by_task = scores[source]
    tasks = sorted(task for task in by_task if reference not in scores or task in scores[reference])
    runs = _runs_by_tasks(by_task, tasks) if tasks else np.empty((0, 0))
    if runs.size == 0:
        return None

    def iqm(values: np.ndarray) -> np.ndarray:
        return np.array([metrics.aggregate_iqm(values)])

    point, interval = library.get_interval_estimates(
        {source: runs}, iqm, reps=resamples, random_state=np.random.RandomState(seed)
    )
    entry: dict[str, Any] = {
        "tasks": tasks,
        "runs": int(runs.shape[0]),
        "iqm": float(point[source][0]),
        "iqm_interval": [float(bound) for bound in interval[source][:, 0]],
        "probability_of_improvement": None,
        "probability_of_improvement_interval": None,
    }
    if source != reference and reference in scores:
        pair = (runs, _runs_by_tasks(scores[reference], tasks))
        improvement, bounds = library.get_interval_estimates(
            {source: pair},
            metrics.probability_of_improvement,
            reps=resamples,
            random_state=np.random.RandomState(seed),
        )
        entry["probability_of_improvement"] = float(improvement[source])
        entry["probability_of_improvement_interval"] = [float(bound) for bound in np.ravel(bounds[source])]
    return entry


__all__ = ["RESAMPLES", "Scores", "across_tasks", "paired_interval", "rank_correlation"]
