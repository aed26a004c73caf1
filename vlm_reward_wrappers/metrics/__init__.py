"""Metrics comparing a learned reward with Meta-World's ground truth, frame by frame.

Evaluation data mixes expert and perturbed episodes, so the ground-truth
reward is not monotone in time; the metrics are about *order*:

* :func:`ranking_accuracy` (:mod:`.ranking`): how often r̂ orders two frames of
  a task like R does, for pairs within and across episodes.
* :func:`value_order_correlation` (VOC, :mod:`.progress`): Spearman ρ between
  r̂ and time on successful expert episodes, up to their first success.
* :func:`reward_correlations`, :func:`success_auroc` (:mod:`.frame`).
* :func:`bootstrap_interval` (:mod:`.bootstrap`): percentile intervals, resampling whole episodes.
* :func:`summarize` (:mod:`.summary`): every registered metric overall and per task.

A metric is registered once (:mod:`.registry`); every module of this package
is imported here, so a new metric is one new module with a
:func:`register_metric` function, and it reaches ``evaluate``, the benchmark
and their reports. A metric that cannot be computed is ``None``, never a made-up 0.

This package imports nothing else of ``vlm_reward_wrappers``: training and
evaluation both use it.
"""

from __future__ import annotations

import importlib
import pkgutil

from vlm_reward_wrappers.metrics.bootstrap import bootstrap_interval
from vlm_reward_wrappers.metrics.frame import reward_correlations, success_auroc
from vlm_reward_wrappers.metrics.progress import value_order_correlation
from vlm_reward_wrappers.metrics.ranking import RankingAccuracy, ranking_accuracy
from vlm_reward_wrappers.metrics.registry import (
    DEFAULT_DELTA,
    METRICS,
    Metric,
    MetricResult,
    MetricSettings,
    ordered_metrics,
    register_metric,
)
from vlm_reward_wrappers.metrics.summary import summarize
from vlm_reward_wrappers.metrics.table import FrameTable

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = [
    "DEFAULT_DELTA",
    "METRICS",
    "FrameTable",
    "Metric",
    "MetricResult",
    "MetricSettings",
    "RankingAccuracy",
    "bootstrap_interval",
    "ordered_metrics",
    "ranking_accuracy",
    "register_metric",
    "reward_correlations",
    "success_auroc",
    "summarize",
    "value_order_correlation",
]
