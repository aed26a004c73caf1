"""The metric registry: a metric is one function, registered once, and reaches every report.

A metric takes a :class:`~.table.FrameTable` (all frames, or one task's) and
:class:`MetricSettings`, and returns a :class:`MetricResult`: its value, how
to recompute it for a bootstrap resample of whole episodes (optional), and
extra named numbers. :func:`~.summary.summarize` computes every registered
metric overall and per task; ``vlm-rewards evaluate``, the benchmark and their
reports list them from :data:`METRICS`.

Example:
    >>> [metric.name for metric in ordered_metrics()][:2]
    ['time_balanced_accuracy', 'ranking_accuracy_within']
    >>> METRICS["voc"].label
    'VOC'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from vlm_reward_wrappers.metrics.table import FrameTable

DEFAULT_DELTA = 0.5
"""Ground-truth rewards closer than this (on Meta-World's 0-10 scale) are a tie: such pairs are not ranked."""


@dataclass(frozen=True)
class MetricSettings:
    """What every metric computation shares.

    Args:
        delta: ground-truth differences up to this are ties (ranking pairs).
        seed: seeds pair sampling and the bootstrap.
        num_resamples: bootstrap resamples of whole episodes.
        max_pairs: ranking pairs scored per task and kind at most.
    """

    delta: float = DEFAULT_DELTA
    seed: int = 0
    num_resamples: int = 200
    max_pairs: int = 20000

    def __post_init__(self) -> None:
        if self.delta < 0:
            raise ValueError(f"delta must be >= 0, got {self.delta}")
        if self.num_resamples < 1 or self.max_pairs < 1:
            raise ValueError("num_resamples and max_pairs must be >= 1")


MetricFunction = Callable[[FrameTable, "MetricSettings"], "MetricResult"]
"""A metric: frames and settings in, a result out."""


Resample = Callable[[np.ndarray], np.ndarray]
"""A metric on bootstrap resamples: ``(R, E)`` copy counts of each episode in R resamples in, ``(R,)`` values out
(NaN where the metric cannot be computed on a resample)."""


@dataclass(frozen=True)
class MetricResult:
    """A metric's value on a frame table.

    Args:
        value: the metric (None: it cannot be computed on these frames).
        resample: the metric on bootstrap resamples, as a function of how often each episode (by
            ``FrameTable.episode_codes``) was drawn in each (see :data:`Resample`); None when no interval is
            reported. Copies re-weight what was computed once (pairs, per-episode correlations): no frame is copied.
        details: further numbers for the report (``{"time_balanced_rising": 0.8}``).
    """

    value: float | None
    resample: Resample | None = None
    details: dict[str, Any] = field(default_factory=dict)


def ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """``numerator / denominator`` elementwise, NaN where the denominator is 0 (a resample without a value)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(denominator > 0, numerator / np.where(denominator > 0, denominator, 1), np.nan)


@dataclass(frozen=True)
class Metric:
    """A registered metric.

    Args:
        name: its key in ``metrics.json``.
        label: its column header.
        description: one sentence for reports.
        compute: the function.
        chance: the value a reward unrelated to the ground truth gets (None: none defined).
        interval: whether a bootstrap interval ``<name>_ci`` is reported.
        headline: whether the benchmark's main table shows it.
        order: position in tables.
    """

    name: str
    label: str
    description: str
    compute: MetricFunction
    chance: float | None = None
    interval: bool = False
    headline: bool = False
    order: int = 100


METRICS: dict[str, Metric] = {}
"""Every metric by name."""


def register_metric(
    name: str,
    *,
    label: str,
    description: str,
    chance: float | None = None,
    interval: bool = False,
    headline: bool = False,
    order: int = 100,
) -> Callable[[MetricFunction], MetricFunction]:
    """Decorator that registers a metric function under ``name``."""

    def register(compute: MetricFunction) -> MetricFunction:
        if name in METRICS:
            raise ValueError(f"a metric named {name!r} is already registered")
        METRICS[name] = Metric(name, label, description, compute, chance, interval, headline, order)
        return compute

    return register


def ordered_metrics(*, headline: bool | None = None) -> list[Metric]:
    """Registered metrics in table order (only the headline ones, or only the others, when asked)."""
    chosen = [metric for metric in METRICS.values() if headline is None or metric.headline == headline]
    return sorted(chosen, key=lambda metric: (metric.order, metric.name))
