"""Value-implicit pre-training (Ma et al., 2022).

The value of a frame for a goal is ``V(o; g) = S(o, g)``, a function of the
cosine similarity ``S`` of normalised embeddings (the DESIGN allows cosine;
the paper's negative L2 distance is unbounded, which a text-aligned cosine
reward cannot follow). The goal is an image (``goal="image"``, the paper's
choice and the default) or the task text (``goal="language"``). Reward ``-1``
per step until the goal, ``0`` for the step that reaches it (for the language
goal: the first success), ``gamma = 0.98``:

``L = (1 - gamma) E[-V(o_0; g)] + log E[exp(-(r + gamma V(o_{t+1}; g) - V(o_t; g)))]``

Its native goal is an image for ``goal="image"`` and the sentence for
``goal="language"`` (:attr:`VIP.goal_kind`). The reward it gives at RL time
is the cosine ``S(o, g)`` whatever the value scale (the value is ``S`` or a
positive multiple of it: the same order of frames).

Value scale (``value_scale``):

* ``"authors"`` (default): ``V = S / (1 - gamma)``, as LIV's code does with
  its cosine similarity (``V`` in ``[-50, 50]`` for ``gamma = 0.98``). The
  value of a frame ``k`` steps before the goal is ``-(1 - gamma^k) / (1 -
  gamma)`` (``-1`` per step, discounted), down to ``-48`` at 150 steps; a
  cosine in ``[-1, 1]`` cannot follow that, the rescaled one can.
* ``"cosine"``: ``V = S``, this package's first version.

Which frames (``subtrajectory``):

* ``True`` (default): ``o_0`` and the image goal are the ends of a random
  sub-trajectory around ``(o_t, o_{t+1})`` (the ``start`` and ``goal`` slots,
  ``start <= t < t + 1 <= goal``), as VIP's code always does (LIV's on
  EPIC-KITCHENS): every frame is pushed up as a start and every later frame
  serves as a goal.
* ``False``: ``o_0`` is the first frame and the image goal the last one (the
  ``first`` and ``last`` slots).

Why those defaults:

* The toy of DESIGN §4 (``test_vip_free_value_optimum_...`` in
  ``tests/test_objectives.py``): free values ``S`` in ``[-1, 1]`` for every
  (frame, goal frame) pair of a 150-step trajectory (the goal frame's own
  ``S = 1``), the exact expected loss under the sampler's law, minimised. Only
  with both defaults does the optimal value rise (weakly) towards every goal;
  the Spearman correlation with time of the values towards the final frame is
  0.88 with both, -0.79 with the cosine value and sub-trajectories, 0.37 with
  the rescaled value from the first to the last frame and -0.02 with neither
  (the last two fall by 0.56 and 2.0 before they rise). The optimum satisfies
  ``V(o_t) - gamma V(o_{t+1}) = r + log(d(t) / p(t)) + c`` with ``d`` the
  discounted occupancy from the start frames and ``p`` the law of ``t``: from
  the first frame only, ``log(d / p)`` falls by ``log(1 / gamma)`` per step,
  so after ~``1 / (1 - gamma)`` steps early frames earn more than late ones and
  the value falls before it rises; starts spread along the trajectory flatten
  ``d / p``, and the rescaling gives the value the range to follow ``-1`` per
  step.
* The tiny real dataset of ``tests/conftest.py`` (3 tasks, 44-98-step expert
  trajectories, ``vlmrw-nano`` backbone, LoRA rank 4, lr 1e-3, batch 16, 600
  steps, 6 seeds, each holding out one expert trajectory per task; mean ±
  std over seeds): Spearman correlation of ``V(o_t; o_T)`` with ``t`` along
  held-out trajectories (untrained 0.15) is 0.52 ± 0.18 with both defaults, 0.46 ± 0.23 with the
  cosine value and sub-trajectories, 0.24 ± 0.18 rescaled from first to last
  and 0.33 ± 0.13 with neither; towards the task's goal image (the scoring
  goal; untrained 0.09): 0.44 ± 0.15, 0.35 ± 0.24, 0.04 ± 0.20, 0.13 ± 0.20.
  With the language goal (4 seeds), the Spearman correlation of ``s(o_t, l)``
  with ``t`` on held-out trajectories (untrained 0.08) is 0.73 ± 0.13 with both
  defaults, 0.80 ± 0.13 with the cosine value and sub-trajectories, 0.33 ±
  0.14 rescaled from first to last and 0.43 ± 0.11 with neither. So the
  sub-trajectories matter most for both goals; the rescaling helps the image
  goal a little and the language goal not (both within one standard
  deviation); it stays the default for the toy's reason and for fidelity.
  Overfitting one fixed real batch of 8 trajectories for 30 steps (image
  goal): 0.91 -> 0.14 with both, 0.92 -> 0.66 with the cosine value and
  sub-trajectories, 1.00 -> 0.78 with neither; the rescaled value lets the
  loss of a fixed batch run far below 0 (-16 from first to last, -11 for the
  language goal), its 8 pairs' values being up to 100 apart.

Departures from the paper and the authors' code:

* Similarity: cosine of the shared backbone's normalised embeddings, not the
  paper's (and VIP code's) negative L2 distance of a ResNet's; VIP's code does
  not rescale (its L2 value is unbounded), LIV's does, which ``"authors"``
  follows.
* Reward: both codes use ``r = -1`` for every sampled transition (their
  ``t + 1`` may equal the goal, and ``r`` is still ``-1``); here the step that
  reaches the goal (or, for the language goal, the first success and after)
  gets ``0``, the paper's ``r(o, g) = 1[o = g] - 1`` read on ``o_{t+1}``.
* Sampling: ``t`` is the batch's shared uniform step and ``(start, goal)`` is
  drawn given it from the authors' joint law (see
  :func:`~vlm_reward_wrappers.training.batches.subtrajectory_steps`), so the
  mix of sub-trajectories is reweighted to keep ``t`` uniform; the authors'
  optional shuffled "negative" transitions (``num_negatives``, 0 by default)
  and the L1/L2 embedding penalties of VIP's code are not used.
* Language goal: the paper trains image goals only; ``goal="language"``
  applies the same loss to the task text (LIV's language term), with the
  same sub-trajectory starts.
* No ``epsilon`` inside the log: the log-mean-exp is computed stably instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

import torch

from vlm_reward_wrappers.configs import check_choices
from vlm_reward_wrappers.objectives.base import EncodedBatch, GoalKind, Objective, Slot, cosine, vip_loss

VIPGoal = Literal["image", "language"]
ValueScale = Literal["authors", "cosine"]


def vip_value(similarity: torch.Tensor, gamma: float, value_scale: ValueScale) -> torch.Tensor:
    """The value ``V`` of a cosine similarity ``S``: ``S / (1 - gamma)`` (``"authors"``) or ``S`` (``"cosine"``)."""
    if value_scale == "authors":
        return similarity / (1 - gamma)
    if value_scale == "cosine":
        return similarity
    raise ValueError(f"value_scale must be 'authors' or 'cosine', got {value_scale!r}")


def vip_slots(goals: tuple[VIPGoal, ...], subtrajectory: bool) -> tuple[Slot, ...]:
    """The frames the VIP terms for ``goals`` need (the goal frame only for an image goal)."""
    slots: tuple[Slot, ...] = ("start" if subtrajectory else "first", "t", "next")
    if "image" in goals:
        slots += ("goal" if subtrajectory else "last",)
    return slots


def vip_terms(
    batch: EncodedBatch,
    goal_kind: VIPGoal,
    gamma: float,
    value_scale: ValueScale = "cosine",
    subtrajectory: bool = False,
) -> torch.Tensor:
    """The VIP loss of a batch with an image or a language goal.

    ``subtrajectory`` takes ``o_0`` and the image goal from the ``start`` and
    ``goal`` slots instead of ``first`` and ``last``.
    """
    if goal_kind == "image":
        end: Slot = "goal" if subtrajectory else "last"
        goal = batch.image(end)
        goal_step = batch.steps[end]
    elif goal_kind == "language":
        goal = batch.text()
        goal_step = batch.first_success
    else:
        raise ValueError(f"VIP goal must be 'image' or 'language', got {goal_kind!r}")
    reward = (batch.steps["next"] >= goal_step).float() - 1.0

    def value(slot: Slot) -> torch.Tensor:
        return vip_value(cosine(batch.image(slot), goal), gamma, value_scale)

    return vip_loss(value("start" if subtrajectory else "first"), value("t"), value("next"), reward, gamma)


@dataclass
class VIP(Objective):
    """VIP with an image (default) or language goal."""

    name: ClassVar[str] = "vip"
    order: ClassVar[int] = 3
    slots: ClassVar[tuple[Slot, ...]] = ("start", "t", "next", "goal")
    goal: VIPGoal = "image"
    gamma: float = 0.98
    value_scale: ValueScale = "authors"
    subtrajectory: bool = True

    def __post_init__(self) -> None:
        check_choices(self)
        self._set_slots(vip_slots((self.goal,), self.subtrajectory))

    @property
    def goal_kind(self) -> GoalKind:
        return "image" if self.goal == "image" else "sentence"

    def loss(self, batch: EncodedBatch) -> tuple[torch.Tensor, dict[str, float]]:
        loss = vip_terms(batch, self.goal, self.gamma, self.value_scale, self.subtrajectory)
        return loss, {f"vip_{self.goal}": float(loss.detach())}
