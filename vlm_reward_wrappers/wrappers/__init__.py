"""Gymnasium and stable-baselines3 wrappers that reward an agent with a reward model's scores.

* :class:`VLMRewardWrapper`: one env, scored every step.
* :class:`FrameToInfo` + :class:`VectorVLMReward`: a gymnasium vector env,
  all sub-envs scored in one forward pass per step.
* :class:`FrameToInfo` + :class:`VLMRewardVecEnv`: the same for SB3's vector envs.

All three take a checkpoint and the same reward options, declared once in :class:`RewardSpec`.
:class:`VLMRewardVecEnv` is imported on first use: it needs stable-baselines3 (the ``rl`` extra), the others do not.

Example:
    >>> from vlm_reward_wrappers import make_metaworld_env
    >>> from vlm_reward_wrappers.wrappers import VLMRewardWrapper
    >>> env = VLMRewardWrapper(make_metaworld_env("reach-v3"), "runs/quick/checkpoints/triplet-seed0")  # doctest: +SKIP
"""

from typing import Any

from vlm_reward_wrappers.extras import require
from vlm_reward_wrappers.wrappers.frames import FrameToInfo
from vlm_reward_wrappers.wrappers.reward_wrapper import VLMRewardWrapper
from vlm_reward_wrappers.wrappers.scoring import NonFiniteRewardError, load_reward_model
from vlm_reward_wrappers.wrappers.spec import FrameSettings, RewardMode, RewardSpec
from vlm_reward_wrappers.wrappers.vector import VectorVLMReward

__all__ = [
    "FrameSettings",
    "FrameToInfo",
    "NonFiniteRewardError",
    "RewardMode",
    "RewardSpec",
    "VLMRewardVecEnv",
    "VLMRewardWrapper",
    "VectorVLMReward",
    "load_reward_model",
]


def __getattr__(name: str) -> Any:
    if name == "VLMRewardVecEnv":
        require("stable_baselines3", extra="rl", needed_by="VLMRewardVecEnv")
        from vlm_reward_wrappers.wrappers.sb3 import VLMRewardVecEnv

        return VLMRewardVecEnv
    raise AttributeError(f"module 'vlm_reward_wrappers.wrappers' has no attribute {name!r}")
