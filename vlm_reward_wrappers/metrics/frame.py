"""Frame-level agreement: correlations of the learned reward with the ground truth, and success AUROC.

Example:
    >>> success_auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True]))
    0.75
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from vlm_reward_wrappers.metrics.registry import MetricResult, MetricSettings, register_metric
from vlm_reward_wrappers.metrics.table import FrameTable, check_arrays

_MIN_CORRELATION_POINTS = 3


def reward_correlations(predicted: np.ndarray, ground_truth: np.ndarray) -> tuple[float | None, float | None]:
    """(Pearson, Spearman) correlation of r̂ with R over all frames.

    Both are ``None`` when either input is constant or there are fewer than 3 frames.

    Example:
        >>> pearson, spearman = reward_correlations(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0]))
        >>> round(pearson, 6), round(spearman, 6)
        (0.5, 0.5)
    """
    arrays = check_arrays(predicted=predicted, ground_truth=ground_truth)
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
    arrays = check_arrays(predicted=predicted, success=success)
    predicted, success = arrays["predicted"].astype(float), arrays["success"].astype(bool)
    positive, negative = predicted[success], predicted[~success]
    if len(positive) == 0 or len(negative) == 0:
        return None
    u_statistic = stats.mannwhitneyu(positive, negative, method="asymptotic").statistic
    return float(u_statistic / (len(positive) * len(negative)))


@register_metric(
    "pearson",
    label="Pearson r̂~R",
    description="Pearson correlation of the learned and the ground-truth reward",
    order=10,
)
def pearson_metric(table: FrameTable, settings: MetricSettings) -> MetricResult:
    return MetricResult(reward_correlations(table.predicted, table.ground_truth)[0])


@register_metric(
    "spearman",
    label="Spearman r̂~R",
    description="Spearman correlation of the learned and the ground-truth reward",
    order=11,
)
def spearman_metric(table: FrameTable, settings: MetricSettings) -> MetricResult:
    return MetricResult(reward_correlations(table.predicted, table.ground_truth)[1])


@register_metric(
    "success_auroc",
    label="success AUROC",
    description="how well the learned reward separates success frames from the others (0.5: not at all)",
    chance=0.5,
    order=12,
)
def success_auroc_metric(table: FrameTable, settings: MetricSettings) -> MetricResult:
    return MetricResult(success_auroc(table.predicted, table.success))
