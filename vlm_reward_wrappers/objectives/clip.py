"""CLIP contrastive pretraining on (frame, task sentence): how the default backbone is made.

Not one of the compared objectives: ``vlm-rewards pretrain-backbone`` trains
the package's own backbone with it, from random weights, on every frame
(expert, noisy and random episodes) of the training tasks. Texts are
de-duplicated and every pair of the same task is a positive
(:func:`~vlm_reward_wrappers.objectives.base.multi_positive_infonce`).

The caption loss alone makes every frame of a task share one positive
sentence, so it teaches which task a frame shows and discards where in the
episode it is. ``time_contrastive`` adds a self-supervised image loss that
keeps it: InfoNCE from each frame ``o_t`` to the next frame ``o_{t+1}`` of its
own trajectory, against the next frames of every other trajectory in the batch
(frames of the same task at other moments among them), at a fixed
temperature.

Example:
    >>> CLIPContrastive().slots
    ('t',)
    >>> CLIPContrastive(time_contrastive=1.0).slots
    ('t', 'next')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from vlm_reward_wrappers.objectives.base import EncodedBatch, Objective, Slot, multi_positive_infonce


@dataclass
class CLIPContrastive(Objective):
    """Multi-positive symmetric InfoNCE between frames and task sentences, plus an optional time-contrastive term.

    Args:
        time_contrastive: weight of the frame-to-next-frame InfoNCE (0: the caption loss alone).
        temperature: temperature of that InfoNCE.
    """

    name: ClassVar[str] = "clip"
    compared: ClassVar[bool] = False
    slots: ClassVar[tuple[Slot, ...]] = ("t",)
    time_contrastive: float = 0.0
    temperature: float = 0.1

    def __post_init__(self) -> None:
        if self.time_contrastive < 0 or self.temperature <= 0:
            raise ValueError(
                f"clip needs time_contrastive >= 0 and temperature > 0; got {self.time_contrastive}, {self.temperature}"
            )
        if self.time_contrastive > 0:
            self._set_slots(("t", "next"))

    def loss(self, batch: EncodedBatch) -> tuple[torch.Tensor, dict[str, float]]:
        texts = F.normalize(batch.texts, dim=-1)
        caption = multi_positive_infonce(batch.image("t"), texts, batch.task, batch.text_task, batch.logit_scale)
        if self.time_contrastive == 0:
            return caption, {"infonce": float(caption.detach())}
        logits = batch.image("t") @ batch.image("next").T / self.temperature
        time = F.cross_entropy(logits, torch.arange(len(logits), device=logits.device))
        return caption + self.time_contrastive * time, {
            "infonce": float(caption.detach()),
            "time_contrastive": float(time.detach()),
        }
