"""Backbones (open_clip), finetuning adapters, and the RewardModel checkpoint."""

from vlm_reward_wrappers.models.adapters import FINETUNE_MODES, FinetuneConfig
from vlm_reward_wrappers.models.backbone import (
    DEFAULT_BACKBONE_MODEL,
    Backbone,
    BackboneLoadError,
    BackboneSpec,
    load_backbone,
)
from vlm_reward_wrappers.models.reward_model import CheckpointError, RewardModel, RewardModelConfig

__all__ = [
    "DEFAULT_BACKBONE_MODEL",
    "FINETUNE_MODES",
    "Backbone",
    "BackboneLoadError",
    "BackboneSpec",
    "CheckpointError",
    "FinetuneConfig",
    "RewardModel",
    "RewardModelConfig",
    "load_backbone",
]
