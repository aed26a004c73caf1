"""LIV (Ma et al., 2023): CLIP InfoNCE on goal frames and texts, plus VIP with both goals.

``L = clip_weight * InfoNCE(final frames, task texts) + VIP(image goal) + VIP(language goal)``
with cosine similarity and ``gamma = 0.98``. Reward: ``s(o, l)`` (LIV's own
``get_reward``).

* InfoNCE temperature (``clip_scale``): ``"one"`` (default) uses the cosines
  themselves as logits, temperature 1, as LIV's ``compute_clip_loss`` does
  (it never applies CLIP's ``logit_scale``); ``"model"`` multiplies them by
  the model's (exponentiated) logit scale, as CLIP pretraining does. The
  InfoNCE is the multi-positive, de-duplicated one of
  :func:`~vlm_reward_wrappers.objectives.base.multi_positive_infonce`.
* The VIP terms take ``value_scale`` and ``subtrajectory`` as
  :class:`~vlm_reward_wrappers.objectives.vip.VIP` does, with the same
  defaults (``V = S / (1 - gamma)`` as in LIV's ``compute_vip_loss``; random
  sub-trajectories), and share their frames: ``o_0``, ``(o_t, o_{t+1})`` and,
  for the image goal, the sub-trajectory's end.

Frames per trajectory: ``start, t, next, goal`` for the VIP terms and
``last`` for the InfoNCE (5; 4 with ``subtrajectory=False``, where ``last`` is
also the image goal).

Measured on the tiny real dataset of ``tests/conftest.py`` (LoRA rank 4, lr
1e-3, batch 16, 600 steps, 4 seeds, one held-out expert trajectory per task):
the Spearman correlation of ``s(o_t, l)`` with ``t`` on held-out trajectories
(untrained 0.08) is 0.38 ± 0.13 with the defaults, 0.39 ± 0.21 with
``clip_scale="model"``, 0.42 ± 0.15 with ``value_scale="cosine"`` and 0.43 ±
0.15 with the first version (cosine value, first and last frame, model
scale); on the training trajectories 0.61, 0.58, 0.47 and 0.44. No setting is
distinguishable on data this small; the defaults follow LIV's code.

Departures from the paper and the authors' code:

* InfoNCE: LIV's code labels the diagonal of a batch (one video per row), so
  two rows of the same task are each other's negatives; here every
  (frame, sentence) pair of the same task is a positive and sentences are
  de-duplicated. Its goal frame is the last frame (LIV's code does the same on
  robot data; on EPIC-KITCHENS it draws one of the last 5% of frames).
* Sub-trajectories: LIV's code draws them only for EPIC-KITCHENS pretraining;
  its in-domain data use the first and the last frame
  (``subtrajectory=False`` here). Both VIP terms share one sub-trajectory, as
  in its code; ``t`` is the batch's shared uniform step and ``(start, goal)``
  is drawn given it (see
  :func:`~vlm_reward_wrappers.training.batches.subtrajectory_steps`).
* Reward in the VIP terms: ``0`` for the step reaching the goal (the last or
  sub-trajectory's end frame, or the first success for the text), where LIV's
  code uses ``-1`` for every transition; see :mod:`.vip`.
* Backbone and weights: the shared backbone (with its adapter) instead of
  LIV's CLIP ResNet-50; ``visionweight`` and ``langweight`` are 1, the
  shuffled "negative" transitions (``num_negatives``) are not used.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F

from vlm_reward_wrappers.configs import check_choices
from vlm_reward_wrappers.objectives.base import EncodedBatch, GoalKind, Objective, Slot, multi_positive_infonce
from vlm_reward_wrappers.objectives.vip import ValueScale, vip_slots, vip_terms

ClipScale = Literal["one", "model"]


@dataclass
class LIV(Objective):
    """Goal-frame/text InfoNCE + image-goal VIP + language-goal VIP."""

    name: ClassVar[str] = "liv"
    order: ClassVar[int] = 5
    slots: ClassVar[tuple[Slot, ...]] = ("start", "t", "next", "goal", "last")
    native_goal: ClassVar[GoalKind] = "sentence"  # s(o, l), LIV's own reward
    gamma: float = 0.98
    clip_weight: float = 1.0
    clip_scale: ClipScale = "one"
    value_scale: ValueScale = "authors"
    subtrajectory: bool = True

    def __post_init__(self) -> None:
        check_choices(self)
        slots = vip_slots(("image", "language"), self.subtrajectory)
        self._set_slots(slots if "last" in slots else (*slots, "last"))

    def loss(self, batch: EncodedBatch) -> tuple[torch.Tensor, dict[str, float]]:
        scale = batch.logit_scale if self.clip_scale == "model" else torch.ones_like(batch.logit_scale)
        contrastive = multi_positive_infonce(
            batch.image("last"), F.normalize(batch.texts, dim=-1), batch.task, batch.text_task, scale
        )
        image_goal = vip_terms(batch, "image", self.gamma, self.value_scale, self.subtrajectory)
        language_goal = vip_terms(batch, "language", self.gamma, self.value_scale, self.subtrajectory)
        loss = self.clip_weight * contrastive + image_goal + language_goal
        return loss, {
            "clip": float(contrastive.detach()),
            "vip_image": float(image_goal.detach()),
            "vip_language": float(language_goal.detach()),
        }
