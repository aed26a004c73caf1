"""Ranking accuracy: how often the learned reward orders two frames of a task as the ground truth does.

Example:
    >>> r = np.array([0.0, 1.0, 2.0, 3.0])
    >>> ranking_accuracy(r, 2 * r, np.array(["reach"] * 4), np.zeros(4, int)).overall
    1.0
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

import numpy as np

from vlm_reward_wrappers.metrics.registry import MetricResult, MetricSettings, Resample, ratio, register_metric
from vlm_reward_wrappers.metrics.table import FrameTable, check_arrays, mean_or_none

_CHUNK = 1 << 20  # pair ids decoded at once when scanning a whole pair space


@dataclass(frozen=True)
class RankingAccuracy:
    """Share of frame pairs that r̂ orders like R; ``None`` where a kind has no pair.

    ``num_within`` / ``num_across`` count the pairs actually scored (at most
    ``max_pairs`` per task and kind), not every valid pair.
    """

    within: float | None
    across: float | None
    overall: float | None
    num_within: int
    num_across: int
    per_task: dict[str, float | None]


@dataclass(frozen=True)
class _PairSpace:
    """All frame pairs (a, b) of a group with R(b) > R(a) + delta, without listing them.

    Frames are sorted by (group, R); the frame at sorted position k pairs with
    the frames at positions ``start[k]:end[k]`` (same group, R larger by more
    than delta). Numbering the pairs of positions lo:hi in that order gives ids
    0..total-1 that :func:`_decode` maps back to frames.
    """

    order: np.ndarray
    start: np.ndarray
    end: np.ndarray

    @property
    def counts(self) -> np.ndarray:
        return self.end - self.start


def _pair_space(groups: np.ndarray, values: np.ndarray, delta: float) -> _PairSpace:
    """Build the pair space of every group at once, in O(n log n) time and O(n) memory."""
    order = np.lexsort((values, groups))
    sorted_groups, sorted_values = groups[order], values[order]
    thresholds = sorted_values + delta
    levels = np.unique(np.concatenate([sorted_values, thresholds]))
    width = len(levels) + 1
    # (group, value) as one exact integer key, sorted like the frames.
    keys = sorted_groups * width + np.searchsorted(levels, sorted_values)
    start = np.searchsorted(keys, sorted_groups * width + np.searchsorted(levels, thresholds), side="right")
    end = np.searchsorted(sorted_groups, sorted_groups, side="right")
    return _PairSpace(order, start, end)


def _decode(space: _PairSpace, lo: int, hi: int, pair_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Frame indices (lower R, higher R) of the given pair ids, numbered over positions lo:hi."""
    counts = space.counts[lo:hi]
    cumulative = np.cumsum(counts)
    position = np.searchsorted(cumulative, pair_ids, side="right")
    partner = space.start[lo + position] + pair_ids - (cumulative[position] - counts[position])
    return space.order[lo + position], space.order[partner]


def _within_pairs(
    space: _PairSpace, lo: int, hi: int, max_pairs: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """All same-episode pairs of one task, or max_pairs of them drawn without replacement."""
    total = int(space.counts[lo:hi].sum())
    pair_ids = np.arange(total) if total <= max_pairs else rng.choice(total, size=max_pairs, replace=False)
    return _decode(space, lo, hi, pair_ids)


def _across_pairs(
    space: _PairSpace,
    lo: int,
    hi: int,
    num_across: int,
    max_pairs: int,
    episode: np.ndarray,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    """All different-episode pairs of one task, or max_pairs of them drawn without replacement.

    Candidates come from the task's pair space (both kinds) and same-episode
    ones are rejected, so memory stays O(n + max_pairs · total / num_across).
    """
    total = int(space.counts[lo:hi].sum())
    if num_across <= max_pairs:
        lower_parts, higher_parts = [np.empty(0, int)], [np.empty(0, int)]
        for first in range(0, total, _CHUNK):
            lower, higher = _decode(space, lo, hi, np.arange(first, min(total, first + _CHUNK)))
            keep = episode[lower] != episode[higher]
            lower_parts.append(lower[keep])
            higher_parts.append(higher[keep])
        return np.concatenate(lower_parts), np.concatenate(higher_parts)
    size = min(total, int(1.2 * max_pairs * total / num_across) + 64)
    while True:
        # A shuffled draw without replacement: its first max_pairs accepted pairs are a uniform sample.
        lower, higher = _decode(space, lo, hi, rng.choice(total, size=size, replace=False))
        keep = episode[lower] != episode[higher]
        if keep.sum() >= max_pairs:
            return lower[keep][:max_pairs], higher[keep][:max_pairs]
        size = min(total, 2 * size)


@dataclass(frozen=True)
class _ScoredPairs:
    """Scored ranking pairs: frame indices (lower R first), score, kind and task code."""

    lower: np.ndarray
    higher: np.ndarray
    score: np.ndarray
    within: np.ndarray
    task: np.ndarray

    def select(self, keep: np.ndarray) -> _ScoredPairs:
        return _ScoredPairs(self.lower[keep], self.higher[keep], self.score[keep], self.within[keep], self.task[keep])


def _score_pairs(
    predicted: np.ndarray,
    ground_truth: np.ndarray,
    task_names: np.ndarray,
    task_code: np.ndarray,
    episode_code: np.ndarray,
    *,
    delta: float,
    max_pairs: int,
    seed: int,
) -> _ScoredPairs:
    """Draw the ranking pairs of every task and kind (see :func:`ranking_accuracy`) and score them."""
    # (task, episode) codes ordered by task first, so a task's frames stay contiguous in both spaces.
    _, run_code = np.unique(task_code * (episode_code.max() + 1) + episode_code, return_inverse=True)
    within_space = _pair_space(run_code, ground_truth, delta)
    task_space = _pair_space(task_code, ground_truth, delta)
    within_bounds = np.searchsorted(task_code[within_space.order], np.arange(len(task_names) + 1))
    task_bounds = np.searchsorted(task_code[task_space.order], np.arange(len(task_names) + 1))
    lower_parts, higher_parts, within_parts = [], [], []
    for index, name in enumerate(task_names):
        rng = np.random.default_rng([seed, zlib.crc32(str(name).encode())])
        w_lo, w_hi = within_bounds[index], within_bounds[index + 1]
        t_lo, t_hi = task_bounds[index], task_bounds[index + 1]
        num_across = int(task_space.counts[t_lo:t_hi].sum() - within_space.counts[w_lo:w_hi].sum())
        for is_within, (lower, higher) in (
            (True, _within_pairs(within_space, w_lo, w_hi, max_pairs, rng)),
            (False, _across_pairs(task_space, t_lo, t_hi, num_across, max_pairs, episode_code, rng)),
        ):
            lower_parts.append(lower)
            higher_parts.append(higher)
            within_parts.append(np.full(len(lower), is_within))
    lower, higher = np.concatenate(lower_parts), np.concatenate(higher_parts)
    difference = predicted[higher] - predicted[lower]
    score = (difference > 0) + 0.5 * (difference == 0)
    return _ScoredPairs(lower, higher, score, np.concatenate(within_parts), task_code[lower])


def _accuracy(pairs: _ScoredPairs, task_names: np.ndarray) -> RankingAccuracy:
    """Pool scored pairs into a :class:`RankingAccuracy`."""
    task_sums = np.bincount(pairs.task, weights=pairs.score, minlength=len(task_names))
    task_counts = np.bincount(pairs.task, minlength=len(task_names))
    return RankingAccuracy(
        within=mean_or_none(pairs.score[pairs.within]),
        across=mean_or_none(pairs.score[~pairs.within]),
        overall=mean_or_none(pairs.score),
        num_within=int(pairs.within.sum()),
        num_across=int((~pairs.within).sum()),
        per_task={
            str(name): float(total / count) if count else None
            for name, total, count in zip(task_names, task_sums, task_counts, strict=False)
        },
    )


def ranking_accuracy(
    predicted: np.ndarray,
    ground_truth: np.ndarray,
    task: np.ndarray,
    episode: np.ndarray,
    *,
    delta: float = 0.5,
    max_pairs: int = 20000,
    seed: int = 0,
) -> RankingAccuracy:
    """Share of frame pairs of a task whose r̂ order matches their R order.

    A pair is two frames of the same task whose R differ by more than
    ``delta``; it is *within* when both frames come from one episode and
    *across* otherwise. Pairs never mix tasks. A pair scores 1 when
    sign(r̂(a) − r̂(b)) == sign(R(a) − R(b)), 0 when the signs are opposite, and
    0.5 when r̂(a) == r̂(b). The half point for ties deviates from a plain sign
    match on purpose: a constant reward then scores exactly 0.5 (chance), not 0.

    For each task and kind, all valid pairs are scored when there are at most
    ``max_pairs``, else ``max_pairs`` pairs drawn uniformly without replacement.
    The draw is deterministic: each task uses its own generator seeded with
    ``(seed, crc32(task))``, so a task's result does not depend on which other
    tasks are passed. Pairs are counted and drawn from R sorted per task and
    never all listed, so memory grows with n and ``max_pairs``, not n²; across
    pairs are drawn by rejecting same-episode candidates.

    ``within``, ``across`` and ``overall`` pool the scored pairs of all tasks
    (``overall`` pools both kinds), so each is weighted by pair count;
    ``per_task`` is the pooled accuracy of each task's pairs.

    Example:
        >>> truth = np.array([0.0, 0.5, 1.0, 1.2])  # only 3 pairs differ by more than 0.5
        >>> result = ranking_accuracy(np.array([0.0, 5.0, 1.0, 2.0]), truth,
        ...                           np.array(["reach"] * 4), np.zeros(4, int))
        >>> round(result.within, 4), result.num_within, result.across
        (0.6667, 3, None)
    """
    arrays = check_arrays(predicted=predicted, ground_truth=ground_truth, task=task, episode=episode)
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    if max_pairs < 1:
        raise ValueError(f"max_pairs must be >= 1, got {max_pairs}")
    task_names, task_code = np.unique(arrays["task"], return_inverse=True)
    _, episode_code = np.unique(arrays["episode"], return_inverse=True)
    pairs = _score_pairs(
        arrays["predicted"].astype(float),
        arrays["ground_truth"].astype(float),
        task_names,
        task_code,
        episode_code,
        delta=delta,
        max_pairs=max_pairs,
        seed=seed,
    )
    return _accuracy(pairs, task_names)


def _ranking_resample(pairs: _ScoredPairs, episode: np.ndarray) -> Resample:
    """Ranking accuracy on resamples, as a function of how often each episode (code) is drawn.

    A frame whose episode is drawn c times appears c times in a resample, and
    every copy of a pair is again a valid pair (copies of one episode pair up as
    separate trajectories), so a pair counts c(a) · c(b) times. This equals
    rescoring the resample when no pair was sampled away by ``max_pairs`` and
    approximates it otherwise, at a tiny fraction of the cost.
    """
    size = int(episode.max()) + 1
    keys, inverse = np.unique(episode[pairs.lower] * size + episode[pairs.higher], return_inverse=True)
    score_sums = np.bincount(inverse, weights=pairs.score, minlength=len(keys))
    pair_counts = np.bincount(inverse, minlength=len(keys))
    first, second = np.divmod(keys, size)

    def accuracy(copies: np.ndarray) -> np.ndarray:
        weights = copies[:, first] * copies[:, second]
        return ratio(weights @ score_sums, weights @ pair_counts)

    return accuracy


def _table_pairs(table: FrameTable, settings: MetricSettings) -> tuple[_ScoredPairs, np.ndarray]:
    """The scored ranking pairs of a frame table (see :func:`ranking_accuracy`) and its task names, computed once
    per table and settings (two metrics read them)."""

    def compute() -> tuple[_ScoredPairs, np.ndarray]:
        task_names, task_code = np.unique(table.task, return_inverse=True)
        pairs = _score_pairs(
            table.predicted,
            table.ground_truth,
            task_names,
            task_code.reshape(-1),
            table.episode_codes,
            delta=settings.delta,
            max_pairs=settings.max_pairs,
            seed=settings.seed,
        )
        return pairs, task_names

    return table.cached(("ranking_pairs", settings.delta, settings.max_pairs, settings.seed), compute)


@register_metric(
    "ranking_accuracy",
    label="ranking acc.",
    description="the study's metric: share of frame pairs of one task, with ground-truth rewards more than delta "
    "apart, that the learned reward orders like the ground truth (up to max_pairs pairs per task within episodes "
    "and as many across, so the mix depends on that cap; ties in the learned reward count half)",
    chance=0.5,
    interval=True,
    headline=True,
    order=3,
)
def ranking_metric(table: FrameTable, settings: MetricSettings) -> MetricResult:
    """:func:`ranking_accuracy` of a frame table, with its resampling function and pair counts."""
    pairs, task_names = _table_pairs(table, settings)
    ranks = _accuracy(pairs, task_names)
    return MetricResult(
        ranks.overall,
        _ranking_resample(pairs, table.episode_codes),
        {"num_pairs": ranks.num_within + ranks.num_across},
    )


@register_metric(
    "ranking_accuracy_across",
    label="across-episode acc.",
    description="ranking accuracy over pairs of frames of one task from two different episodes, whose ground-truth "
    "rewards differ by more than delta (a uniform sample of max_pairs pairs per task; the expert flag scores high "
    "here, since experts are further along than random episodes)",
    chance=0.5,
    interval=True,
    headline=True,
    order=2,
)
def across_episode_metric(table: FrameTable, settings: MetricSettings) -> MetricResult:
    """Ranking accuracy of the across-episode pairs alone, with its resampling function.

    On a resample, the pairs of two distinct episodes count c(a) · c(b) times; two copies of one episode are
    not paired with each other (they are one trajectory drawn twice, not two episodes).
    """
    pairs, _ = _table_pairs(table, settings)
    across = pairs.select(~pairs.within)
    if not len(across.score):
        return MetricResult(None, None, {"num_across_pairs": 0})
    return MetricResult(
        float(across.score.mean()),
        _ranking_resample(across, table.episode_codes),
        {"num_across_pairs": len(across.score)},
    )
