"""Zero-shot VLM-RM (Rocamonde et al., 2024): no training, a goal-baseline projection.

With goal text embedding ``t``, baseline text embedding ``b`` (default "a robot
arm"), ``d = t - b`` and ``P = alpha * d d^T / |d|^2 + (1 - alpha) I``, the
reward is ``1 - 1/2 |(f(o) - t) P|^2`` on normalised embeddings. ``alpha = 0``
is the plain cosine similarity up to an affine map; the paper's partial
projection (here ``alpha = 0.5``) keeps only the direction that separates the
goal from the baseline, partly.

Example:
    >>> import torch
    >>> objective = ZeroShot(alpha=0.0)
    >>> goal = torch.tensor([1.0, 0.0])
    >>> objective.reward(torch.tensor([[1.0, 0.0], [0.0, 1.0]]), goal, torch.tensor([0.0, 1.0]))
    tensor([1., 0.])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F

from vlm_reward_wrappers.objectives.base import EncodedBatch, Objective


@dataclass
class ZeroShot(Objective):
    """VLM-RM goal-baseline projection reward; nothing is trained."""

    name: ClassVar[str] = "zero-shot"
    order: ClassVar[int] = 0
    trains: ClassVar[bool] = False
    uses_baseline: ClassVar[bool] = True
    alpha: float = 0.5

    def loss(self, batch: EncodedBatch) -> tuple[torch.Tensor, dict[str, float]]:
        raise RuntimeError("the zero-shot objective trains nothing; use its reward directly")

    def reward(self, image: torch.Tensor, goal: torch.Tensor, baseline: torch.Tensor | None = None) -> torch.Tensor:
        image, goal = F.normalize(image, dim=-1), F.normalize(goal, dim=-1)
        if baseline is None:
            raise ValueError("the zero-shot reward needs a baseline text embedding")
        direction = goal - F.normalize(baseline, dim=-1)
        projection = self.alpha * torch.outer(direction, direction) / direction.dot(direction).clamp_min(1e-12)
        projection = projection + (1 - self.alpha) * torch.eye(len(goal), device=goal.device, dtype=goal.dtype)
        return 1 - 0.5 * ((image - goal) @ projection).pow(2).sum(dim=-1)
