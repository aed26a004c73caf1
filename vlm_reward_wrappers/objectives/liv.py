"""LIV (Ma et al., 2023): CLIP InfoNCE on goal frames and texts, plus VIP with both goals.

``L = InfoNCE(final frames, task texts) + VIP(image goal) + VIP(language goal)``
with cosine similarity and ``gamma = 0.98``. The InfoNCE is the multi-positive,
de-duplicated one of :func:`~vlm_reward_wrappers.objectives.base.multi_positive_infonce`.
Reward: ``s(o, l)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from vlm_reward_wrappers.objectives.base import EncodedBatch, Objective, Slot, multi_positive_infonce
from vlm_reward_wrappers.objectives.vip import vip_terms


@dataclass
class LIV(Objective):
    """Goal-frame/text InfoNCE + image-goal VIP + language-goal VIP."""

    name: ClassVar[str] = "liv"
    order: ClassVar[int] = 5
    slots: ClassVar[tuple[Slot, ...]] = ("first", "t", "next", "last")
    gamma: float = 0.98
    clip_weight: float = 1.0

    def loss(self, batch: EncodedBatch) -> tuple[torch.Tensor, dict[str, float]]:
        contrastive = multi_positive_infonce(
            batch.image("last"), F.normalize(batch.texts, dim=-1), batch.task, batch.text_task, batch.logit_scale
        )
        image_goal = vip_terms(batch, "image", self.gamma)
        language_goal = vip_terms(batch, "language", self.gamma)
        loss = self.clip_weight * contrastive + image_goal + language_goal
        return loss, {
            "clip": float(contrastive.detach()),
            "vip_image": float(image_goal.detach()),
            "vip_language": float(language_goal.detach()),
        }
