"""The interface every learning objective implements, and the batch it receives.

An objective is a loss on an :class:`EncodedBatch` and a reward for frames and
a goal. Every objective sees the same sampled trajectories; ``slots`` says
which of the sampled frames of each trajectory its loss needs, so only those
are encoded.

Frame slots of each sampled trajectory (length ``T``, steps ``0 .. T-1``):

========  =====================================================
``first`` step 0
``t``     a uniformly drawn step in ``[0, T-2]``
``next``  ``t + 1``
``later`` a uniformly drawn step in ``[t + 1, T-1]``
``far``   a step at least :func:`far_gap` ``= max(2, T // 4)`` away from ``t``
          (uniform over those steps; the farther end when none is)
``last``  ``T - 1``, the final frame (the goal image)
``start`` start of a random sub-trajectory around ``(t, t + 1)``: ``start <= t``
``goal``  its end, ``t + 1 <= goal <= T-1`` (VIP's and LIV's sampling, see
          :func:`~vlm_reward_wrappers.training.batches.subtrajectory_steps`)
``success`` a uniformly drawn step from the first success on, ``[first_success, T-1]``
``failure`` a frame of *another* episode of the same task that never succeeds (a random
          policy's, a failed noisy expert's), uniform over its steps; the
          trajectory's own first frame when the task has no such episode
========  =====================================================

The trainer encodes only the slots an objective lists (``B x len(slots)``
frames per step), so a slot costs only the objectives that ask for it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, ClassVar, Literal

import torch
import torch.nn.functional as F

Slot = Literal["first", "t", "next", "later", "far", "last", "start", "goal", "success", "failure"]
"""A frame of a sampled trajectory that an objective's loss can ask for (see the table above)."""

GoalKind = Literal["sentence", "image"]
"""What a reward is computed against: a goal sentence, or a goal image (frame embedding)."""


REGISTRY: dict[str, type[Objective]] = {}
"""Every objective class by name: a subclass of :class:`Objective` that sets ``name`` registers itself."""


@dataclass
class EncodedBatch:
    """Embeddings of one batch of ``B`` trajectories.

    Attributes:
        images: slot -> unnormalised image embeddings ``(B, D)``.
        texts: unnormalised embeddings of the distinct sentences ``(U, D)``.
        text_index: ``(B,)`` which sentence belongs to each trajectory.
        text_task: ``(U,)`` task id of each sentence.
        task: ``(B,)`` task id of each trajectory.
        steps: slot name -> ``(B,)`` step index of that frame.
        length: ``(B,)`` trajectory lengths ``T``.
        first_success: ``(B,)`` first successful step of each trajectory.
        logit_scale: the model's (exponentiated) contrastive temperature.
    """

    images: dict[Slot, torch.Tensor]
    texts: torch.Tensor
    text_index: torch.Tensor
    text_task: torch.Tensor
    task: torch.Tensor
    steps: dict[Slot, torch.Tensor]
    length: torch.Tensor
    first_success: torch.Tensor
    logit_scale: torch.Tensor

    def image(self, slot: Slot) -> torch.Tensor:
        """L2-normalised image embeddings of a slot."""
        return F.normalize(self.images[slot], dim=-1)

    def text(self) -> torch.Tensor:
        """L2-normalised text embedding of each trajectory ``(B, D)``."""
        return F.normalize(self.texts, dim=-1)[self.text_index]


@dataclass
class Objective:
    """Base class: a learning objective with its hyper-parameters as dataclass fields."""

    name: ClassVar[str]
    slots: ClassVar[tuple[Slot, ...]] = ()
    """The sampled frames the loss needs; an objective whose frames depend on a hyper-parameter sets its
    instance's with :meth:`_set_slots` (the class value is then that of the default hyper-parameters)."""
    trains: ClassVar[bool] = True
    """False for an objective that has no loss (zero-shot): nothing is finetuned."""
    uses_baseline: ClassVar[bool] = False
    """True when :meth:`reward` needs the embedding of the baseline sentence (VLM-RM's projection)."""
    native_goal: ClassVar[GoalKind] = "sentence"
    """The goal the loss trains the reward for; TCN trains only image embeddings."""
    compared: ClassVar[bool] = True
    """Whether the study compares it (the benchmark trains every compared objective)."""
    order: ClassVar[int] = 100
    """Position in listings and tables (the study's order for its six objectives)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "name" in cls.__dict__:
            if cls.name in REGISTRY:
                raise ValueError(
                    f"two objectives are named {cls.name!r}: {REGISTRY[cls.name].__name__} and {cls.__name__}"
                )
            REGISTRY[cls.name] = cls

    @property
    def goal_kind(self) -> GoalKind:
        """The goal this objective's loss trains its reward for (a hyper-parameter may choose it)."""
        return self.native_goal

    def _set_slots(self, slots: tuple[Slot, ...]) -> None:
        """Set this instance's :attr:`slots`, shadowing the class's (not a hyper-parameter: not in :meth:`config`)."""
        object.__setattr__(self, "slots", slots)

    def loss(self, batch: EncodedBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """The scalar loss and named parts of it for logging."""
        raise NotImplementedError

    def reward(self, image: torch.Tensor, goal: torch.Tensor, baseline: torch.Tensor | None = None) -> torch.Tensor:
        """Reward of frames ``(N, D)`` for one goal text embedding ``(D,)``: cosine similarity."""
        return F.normalize(image, dim=-1) @ F.normalize(goal, dim=-1)

    def config(self) -> dict[str, Any]:
        """Name and hyper-parameters, as stored in a checkpoint."""
        return {"name": self.name, **asdict(self)}


def far_gap(length: int) -> int:
    """The least distance in steps of the ``far`` slot from ``t`` in a trajectory of ``length`` steps."""
    return max(2, length // 4)


def cosine(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Row-wise cosine similarity of two ``(B, D)`` batches of normalised vectors."""
    return (a * b).sum(dim=-1)


def multi_positive_infonce(
    images: torch.Tensor, texts: torch.Tensor, image_task: torch.Tensor, text_task: torch.Tensor, scale: torch.Tensor
) -> torch.Tensor:
    """Symmetric CLIP loss where every image-text pair of the same task is a positive.

    With a few distinct sentences, a batch holds many images per sentence;
    texts are de-duplicated and each side's loss is ``-log`` of the softmax
    mass on all its positives (image -> distinct texts, text -> images).
    ``images`` and ``texts`` are normalised.
    """
    logits = scale * images @ texts.T  # (B, U)
    positive = image_task[:, None] == text_task[None, :]
    masked = logits.masked_fill(~positive, float("-inf"))
    image_to_text = torch.logsumexp(logits, dim=1) - torch.logsumexp(masked, dim=1)
    has_image = positive.any(dim=0)
    text_to_image = torch.logsumexp(logits.T[has_image], dim=1) - torch.logsumexp(masked.T[has_image], dim=1)
    return 0.5 * (image_to_text.mean() + text_to_image.mean())


def vip_loss(
    value_first: torch.Tensor, value_t: torch.Tensor, value_next: torch.Tensor, reward: torch.Tensor, gamma: float
) -> torch.Tensor:
    """The VIP objective for values ``V(o; g)`` of first, current and next frames.

    ``(1 - gamma) E[-V(o_0)] + log E[exp(-(r + gamma V(o_{t+1}) - V(o_t)))]``,
    the log-mean-exp computed stably as ``logsumexp - log B``.
    """
    temporal = -(reward + gamma * value_next - value_t)
    log_mean_exp = torch.logsumexp(temporal, dim=0) - torch.log(torch.tensor(float(len(temporal))))
    return (1 - gamma) * (-value_first).mean() + log_mean_exp
