"""Metrics comparing a learned reward with Meta-World's ground truth, frame by frame.

Every function takes per-frame 1-D arrays of equal length: the learned reward
``predicted`` (r̂), the ground-truth dense reward ``ground_truth`` (R, 0-10), the
success flag, the task name, the episode id (unique across tasks), the step
within the episode, the episode's first success step (-1 if never) and whether
the episode is an expert one. Evaluation data mixes expert and perturbed
episodes, so R is not monotone in time; the metrics are therefore about *order*:

* :func:`ranking_accuracy`: how often r̂ orders two frames of a task like R does,
  for frame pairs within an episode and across episodes.
* :func:`value_order_correlation` (VOC): Spearman ρ between r̂ and time on
  successful expert episodes, up to their first success.
* :func:`reward_correlations`: Pearson and Spearman between r̂ and R.
* :func:`success_auroc`: how well r̂ separates success frames from the others.
* :func:`bootstrap_interval`: a percentile interval, resampling whole episodes.
* :func:`summarize`: all of the above, overall and per task, as a JSON-ready dict.

A metric that cannot be computed (no valid pairs, no qualifying episode, a
constant input) is ``None``, never a made-up 0.

Example:
    >>> r = np.array([0.0, 1.0, 2.0, 3.0])
    >>> ranking_accuracy(r, 2 * r, np.array(["reach"] * 4), np.zeros(4, int)).overall
    1.0
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import stats

_CHUNK = 1 << 20  # pair ids decoded at once when scanning a whole pair space
_MIN_BOOTSTRAP_VALUES = 10
_MIN_VOC_FRAMES = 3
_MIN_CORRELATION_POINTS = 3


def _check_arrays(**arrays: Any) -> dict[str, np.ndarray]:
    """Turn each argument into a 1-D array; all must be non-empty and of one length."""
    checked = {name: np.asarray(value) for name, value in arrays.items()}
    first_name, first = next(iter(checked.items()))
    for name, array in checked.items():
        if array.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
        if len(array) == 0:
            raise ValueError(f"{name} is empty")
        if len(array) != len(first):
            raise ValueError(f"{name} has length {len(array)} but {first_name} has length {len(first)}")
    for name in ("predicted", "ground_truth"):
        if name in checked and not np.all(np.isfinite(checked[name].astype(float))):
            raise ValueError(f"{name} contains NaN or infinite values")
    return checked


# --------------------------------------------------------------------------- ranking


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


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if len(values) else None


def _accuracy(pairs: _ScoredPairs, task_names: np.ndarray) -> RankingAccuracy:
    """Pool scored pairs into a :class:`RankingAccuracy`."""
    task_sums = np.bincount(pairs.task, weights=pairs.score, minlength=len(task_names))
    task_counts = np.bincount(pairs.task, minlength=len(task_names))
    return RankingAccuracy(
        within=_mean(pairs.score[pairs.within]),
        across=_mean(pairs.score[~pairs.within]),
        overall=_mean(pairs.score),
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
    arrays = _check_arrays(predicted=predicted, ground_truth=ground_truth, task=task, episode=episode)
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


# --------------------------------------------------------------------------- VOC


def _spearman_or_zero(x: np.ndarray, y: np.ndarray) -> float:
    """Spearman ρ, or 0.0 when either input is constant (no order to agree with)."""
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return 0.0
    return float(stats.spearmanr(x, y).statistic)


def _episode_correlations(
    predicted: np.ndarray,
    step: np.ndarray,
    episode: np.ndarray,
    first_success: np.ndarray,
    expert: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """The episodes that qualify for VOC and their Spearman ρ (see :func:`value_order_correlation`)."""
    order = np.lexsort((step, episode))
    sorted_episode = episode[order]
    episode_starts = np.flatnonzero(np.r_[True, sorted_episode[1:] != sorted_episode[:-1]])
    for name, values in (("first_success_step", first_success[order]), ("is_expert", expert[order].astype(int))):
        if np.any(np.minimum.reduceat(values, episode_starts) != np.maximum.reduceat(values, episode_starts)):
            raise ValueError(f"{name} must be constant within each episode")
    keep = order[expert[order] & (first_success[order] >= 0) & (step[order] <= first_success[order])]
    runs = np.split(keep, np.flatnonzero(episode[keep][1:] != episode[keep][:-1]) + 1) if len(keep) else []
    runs = [frames for frames in runs if len(frames) >= _MIN_VOC_FRAMES]
    return (
        np.array([episode[frames[0]] for frames in runs], dtype=episode.dtype),
        np.array([_spearman_or_zero(predicted[frames], step[frames]) for frames in runs], dtype=float),
    )


def value_order_correlation(
    predicted: np.ndarray,
    step: np.ndarray,
    episode: np.ndarray,
    first_success_step: np.ndarray,
    is_expert: np.ndarray,
) -> float | None:
    """VOC: mean Spearman ρ between r̂ and time over successful expert episodes.

    Only episodes with ``is_expert`` true and ``first_success_step >= 0`` count
    (both must be constant within an episode, else ``ValueError``), and only
    their frames with ``step <= first_success_step``: after the first success an
    expert has no more progress to make. Episodes with fewer than 3 such frames
    are skipped. An episode on which r̂ is constant contributes ρ = 0. Returns
    ``None`` when no episode qualifies (VOC unavailable, not 0).

    Example:
        >>> value_order_correlation(np.array([0.0, 1.0, 2.0, 3.0, 0.0]), np.arange(5),
        ...                         np.zeros(5, int), np.full(5, 3), np.ones(5, bool))
        1.0
    """
    arrays = _check_arrays(
        predicted=predicted,
        step=step,
        episode=episode,
        first_success_step=first_success_step,
        is_expert=is_expert,
    )
    _, correlations = _episode_correlations(
        arrays["predicted"].astype(float),
        arrays["step"],
        arrays["episode"],
        arrays["first_success_step"],
        arrays["is_expert"].astype(bool),
    )
    return _mean(correlations)


# --------------------------------------------------------------------------- frame-level metrics


def reward_correlations(predicted: np.ndarray, ground_truth: np.ndarray) -> tuple[float | None, float | None]:
    """(Pearson, Spearman) correlation of r̂ with R over all frames.

    Both are ``None`` when either input is constant or there are fewer than 3 frames.

    Example:
        >>> pearson, spearman = reward_correlations(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0]))
        >>> round(pearson, 6), round(spearman, 6)
        (0.5, 0.5)
    """
    arrays = _check_arrays(predicted=predicted, ground_truth=ground_truth)
    x, y = arrays["predicted"].astype(float), arrays["ground_truth"].astype(float)
    if len(x) < _MIN_CORRELATION_POINTS or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None, None
    return float(stats.pearsonr(x, y).statistic), float(stats.spearmanr(x, y).statistic)


def success_auroc(predicted: np.ndarray, success: np.ndarray) -> float | None:
    """AUROC of r̂ for telling success frames from the others; ties count half.

    Equals the Mann-Whitney U of the success frames over n_success · n_other.
    ``None`` when all frames are successes or none is.

    Example:
        >>> success_auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True]))
        0.75
    """
    arrays = _check_arrays(predicted=predicted, success=success)
    predicted, success = arrays["predicted"].astype(float), arrays["success"].astype(bool)
    positive, negative = predicted[success], predicted[~success]
    if len(positive) == 0 or len(negative) == 0:
        return None
    u_statistic = stats.mannwhitneyu(positive, negative, method="asymptotic").statistic
    return float(u_statistic / (len(positive) * len(negative)))


# --------------------------------------------------------------------------- bootstrap


def bootstrap_interval(
    metric: Callable[[np.ndarray, np.ndarray], float | None],
    episode: np.ndarray,
    *,
    num_resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of ``metric``, resampling whole episodes.

    Each resample draws as many episodes as there are, with replacement, and
    calls ``metric(indices, episode_ids)``: ``indices`` is an integer index
    array into the per-frame arrays holding the frames of every drawn episode
    (an episode drawn twice contributes its frames twice), and ``episode_ids``
    (same length) gives each frame a fresh episode id, the draw number, so two
    copies of one episode stay separate trajectories. The metric should group
    frames by ``episode_ids``, not by the original ids. Resamples where it
    returns ``None`` are ignored; the result is ``None`` when fewer than 10
    resamples gave a value.

    Example:
        >>> values = np.repeat([0.0, 1.0, 2.0, 3.0], 5)
        >>> episode = np.repeat([0, 1, 2, 3], 5)
        >>> low, high = bootstrap_interval(lambda idx, ids: float(values[idx].mean()), episode)
        >>> bool(low < 1.5 < high)
        True
    """
    episode = _check_arrays(episode=episode)["episode"]
    if num_resamples < 1:
        raise ValueError(f"num_resamples must be >= 1, got {num_resamples}")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    order = np.argsort(episode, kind="stable")
    _, first, lengths = np.unique(episode[order], return_index=True, return_counts=True)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(num_resamples):
        drawn = rng.integers(0, len(first), size=len(first))
        sizes = lengths[drawn]
        episode_ids = np.repeat(np.arange(len(drawn)), sizes)
        offsets = np.arange(sizes.sum()) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        value = metric(order[np.repeat(first[drawn], sizes) + offsets], episode_ids)
        if value is not None:
            values.append(value)
    if len(values) < _MIN_BOOTSTRAP_VALUES:
        return None
    tail = 50 * (1 - confidence)
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


# --------------------------------------------------------------------------- summary


def _ranking_given_copies(pairs: _ScoredPairs, episode: np.ndarray) -> Callable[[np.ndarray], float | None]:
    """Overall ranking accuracy as a function of how often each episode (code) is drawn.

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

    def accuracy(copies: np.ndarray) -> float | None:
        weights = copies[first] * copies[second]
        total = weights @ pair_counts
        return float(weights @ score_sums / total) if total else None

    return accuracy


def _bootstrap_given_copies(
    given_copies: Callable[[np.ndarray], float | None],
    frames: np.ndarray,
    episode: np.ndarray,
    episode_size: np.ndarray,
    *,
    num_resamples: int,
    seed: int,
) -> list[float] | None:
    """:func:`bootstrap_interval` over the episodes of ``frames`` for a metric of episode copy counts."""

    def metric(indices: np.ndarray, _episode_ids: np.ndarray) -> float | None:
        return given_copies(np.bincount(episode[frames[indices]], minlength=len(episode_size)) / episode_size)

    interval = bootstrap_interval(metric, episode[frames], num_resamples=num_resamples, seed=seed)
    return list(interval) if interval else None


def _voc_given_copies(episodes: np.ndarray, correlations: np.ndarray) -> Callable[[np.ndarray], float | None]:
    """VOC as a function of how often each episode (code) is drawn: copies share one ρ."""

    def voc(copies: np.ndarray) -> float | None:
        weights = copies[episodes]
        total = weights.sum()
        return float(weights @ correlations / total) if total else None

    return voc


def summarize(
    predicted: np.ndarray,
    ground_truth: np.ndarray,
    success: np.ndarray,
    task: np.ndarray,
    episode: np.ndarray,
    step: np.ndarray,
    first_success_step: np.ndarray,
    is_expert: np.ndarray,
    *,
    delta: float = 0.5,
    seed: int = 0,
    num_resamples: int = 200,
) -> dict[str, Any]:
    """All metrics, overall and per task, as a JSON-ready dict.

    Returns ``{"overall": block, "per_task": {task: block}}``; each block has
    ``ranking_accuracy`` (+ ``_within``, ``_across``), ``voc``, ``pearson``,
    ``spearman``, ``success_auroc``, ``num_frames``, ``num_episodes``,
    ``num_pairs`` (ranking pairs scored) and ``ranking_accuracy_ci`` / ``voc_ci``:
    ``[low, high]`` 95 % bootstrap intervals over the block's episodes, or
    ``None``. Values are plain Python floats/ints or ``None``.

    Ranking pairs (default ``max_pairs``) and per-episode VOC are computed once;
    a task block holds exactly the task's share of them, so its numbers match
    ``ranking_accuracy(...).per_task``. Bootstrap resamples re-weight them by how
    often each episode was drawn instead of recomputing, which keeps this at a
    second or two on ~10k frames.

    Example:
        >>> n = 8
        >>> report = summarize(np.arange(n) * 1.0, np.arange(n) * 1.0, np.arange(n) >= 6,
        ...                    np.array(["reach"] * n), np.repeat([0, 1], 4), np.tile(np.arange(4), 2),
        ...                    np.full(n, 3), np.ones(n, bool), num_resamples=20)
        >>> report["overall"]["ranking_accuracy"], report["per_task"]["reach"]["voc"]
        (1.0, 1.0)
    """
    arrays = _check_arrays(
        predicted=predicted,
        ground_truth=ground_truth,
        success=success,
        task=task,
        episode=episode,
        step=step,
        first_success_step=first_success_step,
        is_expert=is_expert,
    )
    if delta < 0:
        raise ValueError(f"delta must be >= 0, got {delta}")
    predicted, ground_truth = arrays["predicted"].astype(float), arrays["ground_truth"].astype(float)
    task_names, task_code = np.unique(arrays["task"], return_inverse=True)
    _, episode_code = np.unique(arrays["episode"], return_inverse=True)
    episode_size = np.bincount(episode_code)
    pairs = _score_pairs(
        predicted, ground_truth, task_names, task_code, episode_code, delta=delta, max_pairs=20000, seed=seed
    )
    voc_episodes, voc_values = _episode_correlations(
        predicted, arrays["step"], episode_code, arrays["first_success_step"], arrays["is_expert"].astype(bool)
    )

    def block(frames: np.ndarray) -> dict[str, Any]:
        """Every metric on the frames at ``frames`` (whole episodes of whole tasks)."""
        block_pairs = pairs.select(np.isin(pairs.task, task_code[frames]))
        ranks = _accuracy(block_pairs, task_names)
        in_block = np.isin(voc_episodes, episode_code[frames])
        pearson, spearman = reward_correlations(predicted[frames], ground_truth[frames])
        resampling = {
            "episode": episode_code,
            "episode_size": episode_size,
            "num_resamples": num_resamples,
            "seed": seed,
        }
        intervals = {
            "ranking": _bootstrap_given_copies(_ranking_given_copies(block_pairs, episode_code), frames, **resampling),
            "voc": _bootstrap_given_copies(
                _voc_given_copies(voc_episodes[in_block], voc_values[in_block]), frames, **resampling
            ),
        }
        return {
            "ranking_accuracy": ranks.overall,
            "ranking_accuracy_within": ranks.within,
            "ranking_accuracy_across": ranks.across,
            "ranking_accuracy_ci": intervals["ranking"],
            "voc": _mean(voc_values[in_block]),
            "voc_ci": intervals["voc"],
            "pearson": pearson,
            "spearman": spearman,
            "success_auroc": success_auroc(predicted[frames], arrays["success"][frames]),
            "num_frames": len(frames),
            "num_episodes": len(np.unique(episode_code[frames])),
            "num_pairs": ranks.num_within + ranks.num_across,
        }

    return {
        "overall": block(np.arange(len(predicted))),
        "per_task": {str(name): block(np.flatnonzero(task_code == index)) for index, name in enumerate(task_names)},
    }
