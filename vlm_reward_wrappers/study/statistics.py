"""Seeds and paired statistics: one bootstrap over training seeds and evaluation episodes, shared by all objectives.

Every objective is trained with the same seeds and scored on the same
evaluation episodes, so objectives are compared on the *same* resamples
(DESIGN §5, "Intervals and comparisons"). A resample draws S training seeds
with replacement and, within each task, that task's episodes with
replacement; every objective's metric is recomputed on it from its
``resample`` function (no frame is copied). The result gives each
objective's pooled and macro (mean over tasks) value with 95% percentile
intervals, and the paired difference of each objective to one row: a row declared
before the data (``reference``), else the best one (an exploratory comparison),
with verdicts corrected for multiple comparisons (Holm).

Example:
    >>> from vlm_reward_wrappers.metrics import FrameTable
    >>> def frames(predicted):
    ...     n = len(predicted)
    ...     return FrameTable(predicted, np.arange(n) * 1.0, np.zeros(n, bool), ["reach-v3"] * n,
    ...                       np.arange(n) // 3, np.arange(n) % 3, np.full(n, -1), np.ones(n, bool))
    >>> rising, falling = frames(np.arange(12) * 1.0), frames(-np.arange(12) * 1.0)
    >>> result = paired_bootstrap({"rising": [rising, rising], "falling": [falling, falling]}, "ranking_accuracy")
    >>> result["best"], result["objectives"]["falling"]["pooled"], result["paired"]["falling"]["verdict"]
    ('rising', 0.0, 'better')
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from vlm_reward_wrappers.metrics import METRICS, FrameTable, MetricSettings, ordered_metrics
from vlm_reward_wrappers.metrics.bootstrap import MIN_BOOTSTRAP_VALUES, percentile_interval, resample_in_chunks
from vlm_reward_wrappers.metrics.registry import Resample

MIN_RESAMPLES = 2000
"""DESIGN §5 asks for at least this many resamples; fewer are refused."""

_Estimate = tuple["float | None", np.ndarray]
"""A point estimate and its ``(R,)`` resampled values (NaN: skipped)."""


@dataclass(frozen=True)
class Episodes:
    """The evaluation episodes every table shares.

    Args:
        ids: the sorted episode ids; an episode's position is its code (``FrameTable.episode_codes``).
        task_names: the sorted task names.
        task_codes: for each task, the codes of its episodes (sorted), i.e. where its
            sub-table's own episode codes land among all episodes.
    """

    ids: np.ndarray
    task_names: np.ndarray
    task_codes: tuple[np.ndarray, ...]


@dataclass(frozen=True)
class Draws:
    """One set of bootstrap draws shared by all objectives.

    Args:
        episode_copies: ``(R, E)`` how often each episode is drawn in each resample
            (every task's episodes drawn with replacement, as many as it has).
        seed_copies: ``(R, S)`` how often each training seed is drawn.
    """

    episode_copies: np.ndarray
    seed_copies: np.ndarray


@dataclass(frozen=True)
class SeedValues:
    """One objective's metric for every training seed: ``point`` ``(S,)`` and ``resampled`` ``(R, S)``, NaN for None."""

    point: np.ndarray
    resampled: np.ndarray


def shared_episodes(tables: Mapping[str, Sequence[FrameTable]]) -> Episodes:
    """The episodes (and their tasks) of the tables; ``ValueError`` unless every table has the same ones."""
    reference: tuple[np.ndarray, np.ndarray] | None = None
    for objective, seeds in tables.items():
        for index, table in enumerate(seeds):
            ids, first = np.unique(table.episode, return_index=True)
            episode_task = table.task[first]
            if np.any(table.task != episode_task[table.episode_codes]):
                raise ValueError(f"{objective} (seed {index}): an episode spans several tasks")
            if reference is None:
                reference = ids, episode_task
            elif not (np.array_equal(ids, reference[0]) and np.array_equal(episode_task, reference[1])):
                raise ValueError(f"{objective} (seed {index}) is scored on other episodes than the first table")
    if reference is None:
        raise ValueError("no tables given")
    ids, episode_task = reference
    task_names = np.unique(episode_task)
    return Episodes(ids, task_names, tuple(np.flatnonzero(episode_task == name) for name in task_names))


def draw_resamples(episodes: Episodes, num_seeds: int, num_resamples: int, seed: int) -> Draws:
    """Task-stratified episode copy counts and seed copy counts for ``num_resamples`` resamples."""
    rng = np.random.default_rng(seed)
    episode_copies = np.zeros((num_resamples, len(episodes.ids)))
    for codes in episodes.task_codes:
        episode_copies[:, codes] = _copy_counts(rng, num_resamples, len(codes))
    return Draws(episode_copies, _copy_counts(rng, num_resamples, num_seeds))


def _copy_counts(rng: np.random.Generator, rows: int, size: int) -> np.ndarray:
    """``(rows, size)``: per row, how often each of ``size`` items is drawn in ``size`` draws with replacement."""
    if size == 0:
        return np.zeros((rows, 0))
    drawn = rng.integers(0, size, size=(rows, size)) + size * np.arange(rows)[:, None]
    return np.bincount(drawn.ravel(), minlength=rows * size).reshape(rows, size).astype(float)


def _resampled(resample: Resample | None, copies: np.ndarray) -> np.ndarray:
    """The metric on each row of copy counts (NaN where it has no value, or everywhere without a function)."""
    if resample is None:
        return np.full(len(copies), np.nan)
    return resample_in_chunks(resample, copies)


def _checked_resample(name: str, value: float | None, resample: Resample | None) -> Resample | None:
    if value is not None and resample is None:
        raise ValueError(f"metric {name!r} has no resample function: it cannot be bootstrapped")
    return resample


def pooled_values(seeds: Sequence[FrameTable], metric: str, settings: MetricSettings, draws: Draws) -> SeedValues:
    """The metric over all frames of each seed's table, and on every resample."""
    point, resampled = [], []
    for table in seeds:
        result = METRICS[metric].compute(table, settings)
        resample = _checked_resample(metric, result.value, result.resample)
        point.append(np.nan if result.value is None else result.value)
        resampled.append(_resampled(resample, draws.episode_copies))
    return SeedValues(np.array(point, dtype=float), np.stack(resampled, axis=1))


def macro_values(
    seeds: Sequence[FrameTable], metric: str, settings: MetricSettings, draws: Draws, episodes: Episodes
) -> SeedValues:
    """The mean over tasks of the metric on each task's frames, for each seed and on every resample.

    A seed's macro averages the tasks where its metric has a value; a
    resample where one of those tasks has none is NaN (skipped).
    """
    point, resampled = [], []
    for table in seeds:
        task_points, task_resampled = [], []
        for name, codes in zip(episodes.task_names, episodes.task_codes, strict=True):
            result = METRICS[metric].compute(table.of_task(name), settings)
            if result.value is None:
                continue
            resample = _checked_resample(metric, result.value, result.resample)
            task_points.append(result.value)
            # The sub-table numbers its episodes 0..n_t-1 in id order: the columns ``codes`` of all episodes.
            task_resampled.append(_resampled(resample, draws.episode_copies[:, codes]))
        point.append(np.mean(task_points) if task_points else np.nan)
        resampled.append(np.mean(task_resampled, axis=0) if task_resampled else np.full(len(draws.seed_copies), np.nan))
    return SeedValues(np.array(point, dtype=float), np.stack(resampled, axis=1))


def mean_over_seeds(values: SeedValues, seed_copies: np.ndarray) -> _Estimate:
    """Point estimate (mean over seeds; None if a seed has no value) and ``(R,)`` resampled means.

    A resample's value is the mean over its drawn seeds (with their copy
    counts); it is NaN (skipped) when a drawn seed has no value.
    """
    point = None if np.isnan(values.point).any() else float(values.point.mean())
    missing = ((seed_copies > 0) & np.isnan(values.resampled)).any(axis=1)
    means = (seed_copies * np.nan_to_num(values.resampled)).sum(axis=1) / seed_copies.shape[1]
    means[missing] = np.nan
    return point, means


def verdict(interval: list[float] | None) -> str:
    """Verdict on best − other: "better" if its interval lies above 0, "worse" if below, else "not distinguishable"."""
    if interval is not None and interval[0] > 0:
        return "better"
    if interval is not None and interval[1] < 0:
        return "worse"
    return "not distinguishable"


def _difference(reference: _Estimate, other: _Estimate, confidence: float) -> dict[str, Any]:
    """Paired difference reference − other: point, interval on the shared resamples, verdict, two-sided bootstrap
    p-value (twice the share of resamples on the far side of 0), skipped resamples."""
    differences = reference[1] - other[1]
    interval = percentile_interval(differences, confidence)
    point = None if reference[0] is None or other[0] is None else reference[0] - other[0]
    known = differences[~np.isnan(differences)]
    p_value = min(1.0, 2 * min(np.mean(known <= 0), np.mean(known >= 0))) if len(known) >= MIN_BOOTSTRAP_VALUES else 1.0
    return {
        "difference": point,
        "ci": interval,
        "verdict": verdict(interval),
        "p_value": float(p_value),
        "skipped": int(np.isnan(differences).sum()),
    }


def holm(p_values: Mapping[str, float], alpha: float) -> dict[str, bool]:
    """Holm's step-down correction: which hypotheses are rejected at family-wise level ``alpha``.

    Example:
        >>> holm({"a": 0.01, "b": 0.04, "c": 0.03}, 0.05)   # 0.01 <= 0.05/3; 0.03 > 0.05/2 stops there
        {'a': True, 'b': False, 'c': False}
    """
    rejected = dict.fromkeys(p_values, False)
    for rank, name in enumerate(sorted(p_values, key=p_values.__getitem__)):
        if p_values[name] > alpha / (len(p_values) - rank):
            break
        rejected[name] = True
    return rejected


def _check_inputs(tables: Mapping[str, Sequence[FrameTable]], num_resamples: int, confidence: float) -> int:
    """The number of seeds (0 for no objectives); ``ValueError`` on unequal seed counts or bad settings."""
    if num_resamples < MIN_RESAMPLES:
        raise ValueError(f"num_resamples must be >= {MIN_RESAMPLES} (DESIGN §5), got {num_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    counts = {len(seeds) for seeds in tables.values()}
    if len(counts) > 1 or 0 in counts:
        raise ValueError(f"every objective needs the same (non-zero) number of seed tables, got {sorted(counts)}")
    return counts.pop() if counts else 0


def _optional(values: np.ndarray) -> list[float | None]:
    return [None if np.isnan(value) else float(value) for value in values]


def _summary(
    pooled: _Estimate, macro: _Estimate, seeds: tuple[SeedValues, SeedValues], confidence: float
) -> dict[str, Any]:
    """One objective's JSON-ready entry."""
    return {
        "pooled": pooled[0],
        "pooled_ci": percentile_interval(pooled[1], confidence),
        "macro": macro[0],
        "macro_ci": percentile_interval(macro[1], confidence),
        "per_seed": _optional(seeds[0].point),
        "macro_per_seed": _optional(seeds[1].point),
        "pooled_skipped": int(np.isnan(pooled[1]).sum()),
        "macro_skipped": int(np.isnan(macro[1]).sum()),
    }


def _paired(
    pooled: dict[str, _Estimate],
    macro: dict[str, _Estimate],
    confidence: float,
    reference: str | None,
    family: Sequence[str] | None,
) -> tuple[str | None, str | None, dict[str, Any]]:
    """The best row of the family and the reference (highest pooled point estimate, the first listed on a tie),
    the row every other is compared with (``reference`` when given, else the best: then the comparison was
    chosen after the data), and the paired differences of ``family`` (default: every other row) with
    Holm-corrected verdicts on the pooled metric."""
    members = [name for name in (family if family is not None else pooled) if name in pooled]
    if reference is not None and reference in pooled and reference not in members:
        members.insert(0, reference)
    points = {name: value for name in members if (value := pooled[name][0]) is not None}
    if not points:
        return None, None, {}
    best = max(points, key=points.__getitem__)
    against = reference if reference is not None and reference in pooled else best
    compared = [name for name in members if name != against]
    paired = {}
    for name in compared:
        macro_difference = _difference(macro[against], macro[name], confidence)
        paired[name] = _difference(pooled[against], pooled[name], confidence) | {
            f"macro_{key}": value for key, value in macro_difference.items()
        }
    rejected = holm({name: entry["p_value"] for name, entry in paired.items()}, 1 - confidence)
    for name, entry in paired.items():
        direction = "better" if (entry["difference"] or 0) > 0 else "worse"
        entry["holm_verdict"] = direction if rejected[name] else "not distinguishable"
    return best, against, paired


def paired_bootstrap(
    tables: Mapping[str, Sequence[FrameTable]],
    metric: str,
    *,
    num_resamples: int = MIN_RESAMPLES,
    seed: int = 0,
    confidence: float = 0.95,
    settings: MetricSettings | None = None,
    reference: str | None = None,
    family: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Compare objectives on one registered metric, resampling training seeds and evaluation episodes.

    Args:
        tables: objective → one frame table per training seed (the same seeds in
            the same order for every objective; all tables of the same episodes).
        metric: a registered metric with a ``resample`` function.
        num_resamples: bootstrap resamples (at least :data:`MIN_RESAMPLES`).
        seed: seeds the draws (and, without ``settings``, the metric's pair sampling).
        confidence: of the percentile intervals.
        settings: for the metric (default ``MetricSettings(seed=seed)``).
        reference: the row every row of ``family`` is compared with, declared before the data (default: the best
            row, chosen after it: an exploratory comparison).
        family: the rows compared with the reference (default: every other row); their verdicts are corrected
            for multiple comparisons together (Holm).

    Returns:
        A JSON-ready dict: ``metric``, ``num_resamples``, ``seed``, ``confidence``,
        ``num_seeds``, ``num_episodes``, ``num_tasks``, ``best`` (the objective
        with the highest pooled point estimate; None if none has one), ``reference``
        (the row the others were compared with: the given one, else the best),
        ``objectives`` (per objective: ``pooled``, ``pooled_ci``, ``macro``,
        ``macro_ci``, ``per_seed`` and ``macro_per_seed`` point values, and
        ``pooled_skipped`` / ``macro_skipped``, the resamples without a value)
        and ``paired`` (per compared row: ``difference`` reference − row, ``ci``,
        ``verdict`` (from the interval alone), ``p_value``, ``holm_verdict`` (the
        reference is ``better``, ``worse`` or ``not distinguishable``, corrected
        over the family) and ``skipped`` for the pooled metric, and the same as
        ``macro_difference``, ``macro_ci``, ``macro_verdict``, ``macro_p_value``,
        ``macro_skipped`` for the macro one). No objectives: empty
        ``objectives`` and ``paired``, zero counts.

    Each resample draws the seeds and, within each task, the task's episodes
    with replacement, once for all objectives. An objective's value on a
    resample is the mean over its drawn seeds of the metric recomputed from
    episode copy counts; a resample where the metric is None for a drawn seed
    (or, for a difference, for either objective) is skipped and counted.
    Point estimates are the mean over seeds (None if a seed has no value).
    Intervals are percentile intervals, None with fewer than 10 values; a
    missing interval gives the verdict "not distinguishable".
    """
    num_seeds = _check_inputs(tables, num_resamples, confidence)
    settings = settings if settings is not None else MetricSettings(seed=seed)
    episodes = shared_episodes(tables) if tables else Episodes(np.empty(0), np.empty(0), ())
    draws = draw_resamples(episodes, num_seeds, num_resamples, seed)
    pooled, macro, objectives = {}, {}, {}
    for name, seeds in tables.items():
        values = pooled_values(seeds, metric, settings, draws), macro_values(seeds, metric, settings, draws, episodes)
        pooled[name] = mean_over_seeds(values[0], draws.seed_copies)
        macro[name] = mean_over_seeds(values[1], draws.seed_copies)
        objectives[name] = _summary(pooled[name], macro[name], values, confidence)
    best, against, paired = _paired(pooled, macro, confidence, reference, family)
    return {
        "metric": metric,
        "num_resamples": num_resamples,
        "seed": seed,
        "confidence": confidence,
        "num_seeds": num_seeds,
        "num_episodes": len(episodes.ids),
        "num_tasks": len(episodes.task_names),
        "best": best,
        "reference": against,
        "objectives": objectives,
        "paired": paired,
    }


def compare_objectives(
    tables: Mapping[str, Sequence[FrameTable]],
    metrics: Sequence[str] | None = None,
    **options: Any,
) -> dict[str, dict[str, Any]]:
    """:func:`paired_bootstrap` of several metrics (default: the headline metrics with intervals), by name.

    Every metric sees the same draws (same ``seed``, same episodes and seeds).
    """
    names = metrics if metrics is not None else [m.name for m in ordered_metrics(headline=True) if m.interval]
    return {name: paired_bootstrap(tables, name, **options) for name in names}
