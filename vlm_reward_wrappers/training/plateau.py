"""When a training run has flattened: the share of its validation-loss decrease made in its last quarter of steps.

The benchmark reports it per row, and a run with ``TrainConfig.min_steps`` stops at the first validation from
that step on where its curve has flattened, so each objective gets the budget its own loss asks for.

Example:
    >>> curve = [{"step": s, "validation_loss": 1 / s} for s in range(1, 9)]
    >>> has_flattened(curve)
    True
    >>> has_flattened([{"step": s, "validation_loss": 10.0 - s} for s in range(1, 9)])
    False
"""

from __future__ import annotations

from typing import Any

import numpy as np

FLAT_BELOW = 0.1
"""A run whose last quarter made less than this share of its validation-loss decrease has flattened."""


def late_improvement(history: list[dict[str, Any]]) -> float | None:
    """The share of a run's validation-loss decrease made in its last quarter of steps (small: it has flattened).

    ``(mean L over the third quarter - mean L over the last quarter) / (L(first) - mean L over the last
    quarter)``, with ``L`` the validation losses recorded in those quarters of the steps (means, so that one
    noisy evaluation does not decide). None without an evaluation in each quarter, or without a decrease.

    >>> round(late_improvement([{"step": s, "validation_loss": 1 / s} for s in range(1, 9)]), 3)
    0.057
    """
    points = [(e["step"], e["validation_loss"]) for e in history if e.get("validation_loss") is not None]
    steps = np.array([step for step, _ in points], dtype=float)
    losses = np.array([loss for _, loss in points], dtype=float)
    if len(points) < 3:
        return None
    third = losses[(steps > 0.5 * steps[-1]) & (steps <= 0.75 * steps[-1])]
    last = losses[steps > 0.75 * steps[-1]]
    if not len(third) or not len(last):
        return None
    total = losses[0] - last.mean()
    return float((third.mean() - last.mean()) / total) if total > 0 else None


def has_flattened(history: list[dict[str, Any]]) -> bool:
    """Whether the validation curve has flattened: its late improvement is below :data:`FLAT_BELOW`, or its loss
    has not decreased at all (nothing left to gain). False while there are too few validations to tell."""
    points = [e for e in history if e.get("validation_loss") is not None]
    if len(points) < 3:
        return False
    improvement = late_improvement(points)
    return improvement is None or improvement < FLAT_BELOW
