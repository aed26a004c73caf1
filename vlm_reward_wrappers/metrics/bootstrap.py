"""Percentile bootstrap intervals that resample whole episodes (example: :func:`bootstrap_interval`)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from vlm_reward_wrappers.metrics.registry import Resample
from vlm_reward_wrappers.metrics.table import check_arrays

MIN_BOOTSTRAP_VALUES = 10
"""A bootstrap estimate (an interval, a p-value) needs at least this many resamples with a value."""


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
    episode = check_arrays(episode=episode)["episode"]
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
    if len(values) < MIN_BOOTSTRAP_VALUES:
        return None
    tail = 50 * (1 - confidence)
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def copy_counts(num_episodes: int, *, num_resamples: int, seed: int) -> np.ndarray:
    """``(num_resamples, num_episodes)``: how often each episode is drawn in each resample of as many episodes.

    The draws are those of :func:`bootstrap_interval` with the same seed, resample by resample.
    """
    rng = np.random.default_rng(seed)
    copies = np.zeros((num_resamples, num_episodes))
    for row in copies:
        row += np.bincount(rng.integers(0, num_episodes, size=num_episodes), minlength=num_episodes)
    return copies


def resample_in_chunks(resample: Resample, copies: np.ndarray, chunk: int = 256) -> np.ndarray:
    """``resample(copies)`` a block of rows at a time, so that per-pair weights never fill the memory."""
    return np.concatenate([resample(copies[start : start + chunk]) for start in range(0, len(copies), chunk)])


def interval_from_resamples(
    resample: Resample, episode_codes: np.ndarray, *, num_resamples: int, seed: int, confidence: float = 0.95
) -> list[float] | None:
    """:func:`bootstrap_interval` of a metric written as a function of episode copy counts (:data:`Resample`).

    ``episode_codes`` numbers each frame's episode 0..E-1; a resample draws E
    episodes with replacement, and the metric sees how often each was drawn.
    """
    copies = copy_counts(int(np.max(episode_codes)) + 1, num_resamples=num_resamples, seed=seed)
    return percentile_interval(resample_in_chunks(resample, copies), confidence)


def percentile_interval(values: np.ndarray, confidence: float) -> list[float] | None:
    """Percentile interval of the non-NaN values (resamples without a value are skipped); None with fewer than 10.

    Example:
        >>> [round(bound, 6) for bound in percentile_interval(np.array([np.nan, *range(101)]), 0.9)]
        [5.0, 95.0]
    """
    values = values[~np.isnan(values)]
    if len(values) < MIN_BOOTSTRAP_VALUES:
        return None
    tail = 50 * (1 - confidence)
    low, high = np.percentile(values, [tail, 100 - tail])
    return [float(low), float(high)]
