"""Finetuning modes: LoRA on both towers, small heads on a frozen backbone, or full finetuning.

* ``lora``: a low-rank update ``W + (B @ A) * alpha / rank`` on every linear
  weight of both transformer towers, including the packed q/k/v projection of
  ``nn.MultiheadAttention``. It is a ``torch.nn.utils.parametrize``
  parametrization, so it works on any open_clip tower without changing its
  code. (peft was considered: its LoRA for ``nn.MultiheadAttention`` is marked
  experimental and it pulls in transformers; forty lines of parametrization do
  the same here.) ``B`` starts at zero: training starts from the backbone.
* ``heads``: the backbone is frozen and a residual MLP on each tower's
  embedding is trained (zero-initialised, so it starts as the identity). Image
  embeddings of a frozen backbone can be computed once and cached.
* ``full``: every backbone weight is trained.

The temperature (``logit_scale``) is trainable in every mode.

Example:
    >>> from vlm_reward_wrappers.models.backbone import BackboneSpec, load_backbone
    >>> backbone = load_backbone(BackboneSpec("vlmrw-nano"))
    >>> adapter = FinetuneConfig(mode="lora", rank=4)
    >>> heads = apply_finetuning(backbone, adapter)
    >>> sorted({n.split(".")[-1] for n, p in backbone.named_parameters() if p.requires_grad})
    ['logit_scale', 'lora_a', 'lora_b']
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn
from torch.nn.utils import parametrize

from vlm_reward_wrappers.configs import check_choices
from vlm_reward_wrappers.models.backbone import Backbone

FinetuneMode = Literal["lora", "heads", "full", "frozen"]
"""How the backbone is adapted; ``frozen`` trains nothing (zero-shot)."""

TrainableMode = Literal["lora", "heads", "full"]
"""The finetuning modes a training run can choose."""


@dataclass(frozen=True)
class FinetuneConfig:
    """How the backbone is adapted.

    Args:
        mode: ``lora``, ``heads``, ``full``, or ``frozen`` (nothing trains: zero-shot).
        rank: LoRA rank.
        alpha: LoRA scale numerator (update scaled by ``alpha / rank``).
    """

    mode: FinetuneMode = "lora"
    rank: int = 8
    alpha: float = 16.0

    def __post_init__(self) -> None:
        check_choices(self)
        if self.rank < 1:
            raise ValueError(f"LoRA rank must be at least 1, got {self.rank}")


class LoRA(nn.Module):
    """The parametrization ``W -> W + (lora_b @ lora_a) * scale``."""

    def __init__(self, out_features: int, in_features: int, rank: int, alpha: float) -> None:
        super().__init__()
        self.lora_a = nn.Parameter(torch.empty(rank, in_features))
        self.lora_b = nn.Parameter(torch.zeros(out_features, rank))
        nn.init.kaiming_uniform_(self.lora_a, a=math.sqrt(5))
        self.scale = alpha / rank

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight + (self.lora_b @ self.lora_a) * self.scale


class ResidualHead(nn.Module):
    """``x + W2 gelu(W1 x)`` with ``W2 = 0`` at the start (the identity)."""

    def __init__(self, dim: int, hidden: int | None = None) -> None:
        super().__init__()
        hidden = hidden or dim
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)
        nn.init.zeros_(self.down.weight)
        nn.init.zeros_(self.down.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.down(nn.functional.gelu(self.up(x)))


def _tower_modules(backbone: Backbone) -> list[nn.Module]:
    clip = backbone.clip
    towers = [clip.visual]
    text_tower = getattr(clip, "text", None)  # CustomTextCLIP (SigLIP)
    if text_tower is not None:
        towers.append(text_tower)
    else:
        towers.append(clip.transformer)
    return towers


def add_lora(backbone: Backbone, rank: int, alpha: float) -> int:
    """Parametrize every linear weight of both towers with LoRA; return how many."""
    count = 0
    for tower in _tower_modules(backbone):
        for module in list(tower.modules()):
            if isinstance(module, nn.MultiheadAttention) and module.in_proj_weight is not None:
                out_features, in_features = module.in_proj_weight.shape
                parametrize.register_parametrization(
                    module, "in_proj_weight", LoRA(out_features, in_features, rank, alpha)
                )
                count += 1
            elif isinstance(module, nn.Linear):
                parametrize.register_parametrization(
                    module, "weight", LoRA(module.out_features, module.in_features, rank, alpha)
                )
                count += 1
    return count


def apply_finetuning(backbone: Backbone, config: FinetuneConfig) -> nn.ModuleDict:
    """Set which parameters train, add LoRA if asked, and return the (maybe empty) heads.

    Returns a ``ModuleDict`` with ``image`` and ``text`` heads in ``heads``
    mode, empty otherwise.
    """
    backbone.requires_grad_(config.mode == "full")
    heads = nn.ModuleDict()
    if config.mode == "lora":
        add_lora(backbone, config.rank, config.alpha)  # new LoRA parameters require grad
    elif config.mode == "heads":
        dim = backbone.embed_dim
        heads["image"] = ResidualHead(dim)
        heads["text"] = ResidualHead(dim)
    for name in ("logit_scale", "logit_bias"):
        parameter = getattr(backbone.clip, name, None)
        if isinstance(parameter, nn.Parameter):
            parameter.requires_grad_(config.mode != "frozen")
    return heads
