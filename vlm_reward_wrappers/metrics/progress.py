"""Value-order correlation (VOC): does the learned reward rise with an expert's progress?

Example:
    >>> value_order_correlation(np.array([0.0, 1.0, 2.0, 3.0, 0.0]), np.arange(5),
    ...                         np.zeros(5, int), np.full(5, 3), np.ones(5, bool))
    1.0
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from vlm_reward_wrappers.metrics.registry import MetricResult, MetricSettings, Resample, ratio, register_metric
from vlm_reward_wrappers.metrics.table import FrameTable, check_arrays, mean_or_none

_MIN_VOC_FRAMES = 3


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
    arrays = check_arrays(
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
    return mean_or_none(correlations)


def _voc_resample(episodes: np.ndarray, correlations: np.ndarray) -> Resample:
    """VOC on resamples, as a function of how often each episode (code) is drawn: copies share one ρ."""

    def voc(copies: np.ndarray) -> np.ndarray:
        weights = copies[:, episodes]
        return ratio(weights @ correlations, weights.sum(axis=1))

    return voc


@register_metric(
    "voc",
    label="VOC",
    description="Spearman correlation between the learned reward and time on successful expert episodes, up to "
    "their first success, averaged over episodes",
    chance=0.0,
    interval=True,
    headline=True,
    order=4,
)
def voc_metric(table: FrameTable, settings: MetricSettings) -> MetricResult:
    """:func:`value_order_correlation` of a frame table, with its resampling function."""
    episodes, correlations = _episode_correlations(
        table.predicted, table.step, table.episode_codes, table.first_success_step, table.is_expert
    )
    value = mean_or_none(correlations)
    return MetricResult(value, _voc_resample(episodes, correlations) if value is not None else None)
