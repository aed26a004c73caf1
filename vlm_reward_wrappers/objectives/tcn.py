"""Time-contrastive network (Sermanet et al., 2018), single view.

Anchor ``o_t``, positive ``o_p`` with ``|t - p| <= w_pos``, negative ``o_n``
with ``|t - n| >= w_neg``, all of the same trajectory:
``L = max(0, |f_t - f_p|^2 - |f_t - f_n|^2 + alpha)`` on normalised
embeddings (margin ``alpha = 0.2``). TCN trains no language alignment: its
native goal is an image (``native_goal = "image"``); the sentence reward
``s(o, l)`` is a reward it never trains.

The windows, exactly:

* ``w_pos = 1``: the positive is ``o_{t+1}`` (the ``next`` slot), always.
* ``w_neg = max(2, floor(negative_gap * T))`` steps, ``negative_gap = 0.25``
  by default: the negative is the ``far`` slot, uniform over the steps of the
  trajectory at least :func:`~vlm_reward_wrappers.objectives.base.far_gap`
  ``= max(2, T // 4)`` from ``t`` (the farther end when there is none, which
  happens only in trajectories of 3 steps or fewer). The sampler draws ``far``
  for every objective alike, so a larger ``negative_gap`` keeps only the
  triplets whose negative is far enough (then uniform over the narrower
  window; fewer triplets per batch, their share logged as ``kept_triplets``);
  a smaller one is refused.

Departures from the paper and the authors' code:

* Single view only (the paper's multi-view TCN pairs simultaneous frames of
  two cameras; Meta-World demonstrations here have one camera).
* The paper draws the positive within a small window (``w_pos`` a hyper-
  parameter) and the negative outside a margin range given in time; here
  ``w_pos = 1`` and ``w_neg`` is a share of the trajectory's length, so that
  short and long demonstrations get comparable negatives.
* One triplet per trajectory and batch, no semi-hard or hard-negative mining
  (the paper's multi-view code mines within the batch); the embedding is the
  shared backbone's (with its adapter), L2-normalised, not an Inception
  network's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from vlm_reward_wrappers.objectives.base import EncodedBatch, GoalKind, Objective, Slot

SAMPLER_NEGATIVE_GAP = 0.25
"""The share of the trajectory's length that the sampler's ``far`` slot is at least away from ``t``."""


@dataclass
class TCN(Objective):
    """Single-view time-contrastive triplet loss on image embeddings."""

    name: ClassVar[str] = "tcn"
    order: ClassVar[int] = 2
    slots: ClassVar[tuple[Slot, ...]] = ("t", "next", "far")
    native_goal: ClassVar[GoalKind] = "image"
    margin: float = 0.2
    negative_gap: float = SAMPLER_NEGATIVE_GAP

    def __post_init__(self) -> None:
        if not SAMPLER_NEGATIVE_GAP <= self.negative_gap < 1:
            raise ValueError(
                f"TCN.negative_gap must be in [{SAMPLER_NEGATIVE_GAP}, 1) (the sampler draws no negative closer "
                f"than {SAMPLER_NEGATIVE_GAP} of the trajectory); got {self.negative_gap!r}"
            )

    def loss(self, batch: EncodedBatch) -> tuple[torch.Tensor, dict[str, float]]:
        anchor, positive, negative = batch.image("t"), batch.image("next"), batch.image("far")
        close = (anchor - positive).pow(2).sum(-1)
        distant = (anchor - negative).pow(2).sum(-1)
        violation = torch.relu(close - distant + self.margin)
        parts: dict[str, float] = {}
        if self.negative_gap > SAMPLER_NEGATIVE_GAP:
            gap = torch.clamp(torch.floor(self.negative_gap * batch.length.float()), min=2)
            keep = ((batch.steps["far"] - batch.steps["t"]).abs() >= gap).float()
            loss = (violation * keep).sum() / keep.sum().clamp(min=1)
            parts["kept_triplets"] = float(keep.mean())
        else:
            loss = violation.mean()
        return loss, {
            "positive_distance": float(close.mean().detach()),
            "negative_distance": float(distant.mean().detach()),
            **parts,
        }
