"""Value-implicit pre-training (Ma et al., 2022).

``V(o; g) = S(o, g)`` with ``S`` the cosine similarity of normalised
embeddings (the DESIGN allows cosine; the paper's negative L2 distance is
unbounded, which a text-aligned cosine reward cannot follow). The goal is the
trajectory's final frame (``goal="image"``, the paper's choice and the
default) or the task text (``goal="language"``). Reward ``-1`` per step until
the goal (for the language goal: until the first success), ``gamma = 0.98``:

``L = (1 - gamma) E[-V(o_0; g)] + log E[exp(-(r + gamma V(o_{t+1}; g) - V(o_t; g)))]``

Its native goal is an image for ``goal="image"`` and the sentence for
``goal="language"`` (:attr:`VIP.goal_kind`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from vlm_reward_wrappers.configs import check_choices
from vlm_reward_wrappers.objectives.base import EncodedBatch, GoalKind, Objective, Slot, cosine, vip_loss

VIPGoal = Literal["image", "language"]


def vip_terms(batch: EncodedBatch, goal_kind: VIPGoal, gamma: float) -> torch.Tensor:
    """The VIP loss of a batch with an image or a language goal."""
    if goal_kind == "image":
        goal = batch.image("last")
        goal_step = batch.length - 1
    elif goal_kind == "language":
        goal = batch.text()
        goal_step = batch.first_success
    else:
        raise ValueError(f"VIP goal must be 'image' or 'language', got {goal_kind!r}")
    reward = (batch.steps["next"] >= goal_step).float() - 1.0
    return vip_loss(
        cosine(batch.image("first"), goal),
        cosine(batch.image("t"), goal),
        cosine(batch.image("next"), goal),
        reward,
        gamma,
    )


@dataclass
class VIP(Objective):
    """VIP with an image (default) or language goal."""

    name: ClassVar[str] = "vip"
    order: ClassVar[int] = 3
    slots: ClassVar[tuple[Slot, ...]] = ("first", "t", "next", "last")
    goal: VIPGoal = "image"
    gamma: float = 0.98

    def __post_init__(self) -> None:
        check_choices(self)

    @property
    def goal_kind(self) -> GoalKind:
        return "image" if self.goal == "image" else "sentence"

    def loss(self, batch: EncodedBatch) -> tuple[torch.Tensor, dict[str, float]]:
        loss = vip_terms(batch, self.goal, self.gamma)
        return loss, {f"vip_{self.goal}": float(loss.detach())}
