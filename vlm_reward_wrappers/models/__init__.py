"""Backbones (open_clip), finetuning adapters, the reward-model config, its checkpoint folder (published on the
Hugging Face Hub with :func:`push_to_hub`), and RewardModel."""

from vlm_reward_wrappers.models.adapters import FinetuneConfig, FinetuneMode, TrainableMode
from vlm_reward_wrappers.models.backbone import (
    DEFAULT_BACKBONE_MODEL,
    Backbone,
    BackboneLoadError,
    BackboneSpec,
    load_backbone,
)
from vlm_reward_wrappers.models.checkpoint import (
    BUNDLED_CHECKPOINT,
    CheckpointError,
    is_checkpoint,
    read_checkpoint_config,
)
from vlm_reward_wrappers.models.config import RewardModelConfig
from vlm_reward_wrappers.models.demonstration import Demonstration, DemonstrationGoal, DemoReward, demonstration_goal
from vlm_reward_wrappers.models.hub import push_to_hub
from vlm_reward_wrappers.models.reward_model import RewardModel

__all__ = [
    "BUNDLED_CHECKPOINT",
    "DEFAULT_BACKBONE_MODEL",
    "Backbone",
    "BackboneLoadError",
    "BackboneSpec",
    "CheckpointError",
    "DemoReward",
    "Demonstration",
    "DemonstrationGoal",
    "FinetuneConfig",
    "FinetuneMode",
    "RewardModel",
    "RewardModelConfig",
    "TrainableMode",
    "demonstration_goal",
    "is_checkpoint",
    "load_backbone",
    "push_to_hub",
    "read_checkpoint_config",
]
