"""Time-contrastive network (Sermanet et al., 2018), single view.

Anchor ``o_t``, positive ``o_{t+1}`` (within ``w_pos = 1`` step), negative a
frame at least ``T // 4`` steps away in the same trajectory:
``L = max(0, |f_t - f_p|^2 - |f_t - f_n|^2 + alpha)`` on normalised embeddings
(as in the paper; margin ``alpha = 0.2``). TCN trains no language alignment:
its native goal is an image (``native_goal = "image"``); the sentence reward
``s(o, l)`` is a reward it never trains.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch

from vlm_reward_wrappers.objectives.base import EncodedBatch, GoalKind, Objective, Slot


@dataclass
class TCN(Objective):
    """Single-view time-contrastive triplet loss on image embeddings."""

    name: ClassVar[str] = "tcn"
    order: ClassVar[int] = 2
    slots: ClassVar[tuple[Slot, ...]] = ("t", "next", "far")
    native_goal: ClassVar[GoalKind] = "image"
    margin: float = 0.2

    def loss(self, batch: EncodedBatch) -> tuple[torch.Tensor, dict[str, float]]:
        anchor, positive, negative = batch.image("t"), batch.image("next"), batch.image("far")
        close = (anchor - positive).pow(2).sum(-1)
        distant = (anchor - negative).pow(2).sum(-1)
        loss = torch.relu(close - distant + self.margin).mean()
        return loss, {
            "positive_distance": float(close.mean().detach()),
            "negative_distance": float(distant.mean().detach()),
        }
