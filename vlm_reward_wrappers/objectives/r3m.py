"""R3M (Nair et al., 2022) in a shared vision-language backbone.

Sum of:

a. time-contrastive InfoNCE: ``o_t`` must be closer to ``o_{t+1}`` than to a
   far frame of its own trajectory and to the frames of the other trajectories
   in the batch (cosine similarity over a temperature ``tau``);
b. language-predictive ranking: the score of a later frame must beat that of
   an earlier frame of the same trajectory and the later frames of other
   tasks' trajectories. The score is ``s(o, l)`` itself (chosen over a head on
   ``(f(o_0), f(o_j), g(l))`` so that the trained score is the reward);
c. L1 and L2 penalties on the unnormalised embeddings (weights 1e-5, as in R3M).

Reward: ``s(o, l)``.

Departures from the paper and the authors' code:

* Similarity: cosine over a temperature ``tau`` (``s / tau``); R3M's code uses
  the negative L2 distance of unnormalised embeddings, temperature 1.
* Time-contrastive frames: R3M's code draws ``s0 < s1 <= s2`` uniformly and
  makes two InfoNCE terms (anchor ``s2``: positive ``s1``, negative ``s0``;
  anchor ``s0``: positive ``s1``, negative ``s2``), each with 3 shuffled other
  videos as negatives; here one term, anchor ``t``, positive ``t + 1``, one
  in-trajectory negative at least ``max(2, T // 4)`` steps away (``far``) and
  every other trajectory's anchor frame in the batch.
* Language: R3M scores ``(o_0, o_j, l)`` with a learned MLP on the two frame
  embeddings and a DistilBERT sentence embedding, and ranks (initial, goal),
  (earlier, later) and (later, latest) pairs against 3 shuffled videos; here
  the score is ``s(o, l)`` of the shared backbone's own text tower (so the
  trained score is the reward), ranking ``later`` over ``t`` and over other
  tasks' ``later`` frames, with the same ``tau``.
* Penalties: R3M adds ``l1weight * |z|_1 + l2weight * |z|_2`` (norms, not
  squared) over every encoded frame; here ``|z|_1`` and ``|z|_2^2`` of the
  ``t`` frames only, weights 1e-5.
* Backbone: the shared vision-language backbone with its adapter, fine-tuned,
  instead of a ResNet trained from scratch on Ego4D.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from vlm_reward_wrappers.objectives.base import EncodedBatch, Objective, Slot, cosine


@dataclass
class R3M(Objective):
    """Time-contrastive + language-ranking + embedding penalties."""

    name: ClassVar[str] = "r3m"
    order: ClassVar[int] = 4
    slots: ClassVar[tuple[Slot, ...]] = ("t", "next", "later", "far")
    tau: float = 0.1
    tcn_weight: float = 1.0
    language_weight: float = 1.0
    l1_weight: float = 1e-5
    l2_weight: float = 1e-5

    def loss(self, batch: EncodedBatch) -> tuple[torch.Tensor, dict[str, float]]:
        anchor, positive, far = batch.image("t"), batch.image("next"), batch.image("far")
        batch_size = len(anchor)
        others = anchor @ anchor.T
        others = others.masked_fill(torch.eye(batch_size, dtype=torch.bool, device=anchor.device), float("-inf"))
        logits = torch.cat([cosine(anchor, positive)[:, None], cosine(anchor, far)[:, None], others], dim=1) / self.tau
        target = torch.zeros(batch_size, dtype=torch.long, device=anchor.device)
        time_contrastive = F.cross_entropy(logits, target)

        text, later = batch.text(), batch.image("later")
        other_task = batch.task[:, None] != batch.task[None, :]
        cross = (text @ later.T).masked_fill(~other_task, float("-inf"))
        scores = torch.cat([cosine(later, text)[:, None], cosine(anchor, text)[:, None], cross], dim=1) / self.tau
        language = F.cross_entropy(scores, target)

        raw = batch.images["t"]
        penalty = self.l1_weight * raw.abs().sum(-1).mean() + self.l2_weight * raw.pow(2).sum(-1).mean()
        loss = self.tcn_weight * time_contrastive + self.language_weight * language + penalty
        return loss, {
            "time_contrastive": float(time_contrastive.detach()),
            "language": float(language.detach()),
            "penalty": float(penalty.detach()),
        }
