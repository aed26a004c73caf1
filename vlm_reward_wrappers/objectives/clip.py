"""CLIP contrastive pretraining on (frame, task sentence): how the default backbone is made.

Not one of the compared objectives: ``vlm-rewards pretrain-backbone`` trains
the package's own backbone with it, from random weights, on every frame
(expert, noisy and random episodes) of the training tasks. Texts are
de-duplicated and every pair of the same task is a positive
(:func:`~vlm_reward_wrappers.objectives.base.multi_positive_infonce`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from vlm_reward_wrappers.objectives.base import EncodedBatch, Objective, Slot, multi_positive_infonce


@dataclass
class CLIPContrastive(Objective):
    """Multi-positive symmetric InfoNCE between frames and task sentences."""

    name: ClassVar[str] = "clip"
    compared: ClassVar[bool] = False
    slots: ClassVar[tuple[Slot, ...]] = ("t",)

    def loss(self, batch: EncodedBatch) -> tuple[torch.Tensor, dict[str, float]]:
        loss = multi_positive_infonce(
            batch.image("t"), F.normalize(batch.texts, dim=-1), batch.task, batch.text_task, batch.logit_scale
        )
        return loss, {"infonce": float(loss.detach())}
