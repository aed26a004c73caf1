"""Gymnasium and stable-baselines3 wrappers that reward an agent with a reward model's scores.

* :class:`VLMRewardWrapper`: one env, scored every step.
* :class:`FrameToInfo` + :class:`VectorVLMReward`: a gymnasium vector env,
  all sub-envs scored in one forward pass per step.
* :class:`FrameToInfo` + :class:`VLMRewardVecEnv`: the same for SB3's vector envs.

All three take a checkpoint and the same reward options, declared once in :class:`RewardSpec`.

Example:
    >>> from vlm_reward_wrappers import make_metaworld_env
    >>> from vlm_reward_wrappers.wrappers import VLMRewardWrapper
    >>> env = VLMRewardWrapper(make_metaworld_env("reach-v3"), "runs/quick/checkpoints/triplet-seed0")  # doctest: +SKIP
"""

from vlm_reward_wrappers.wrappers.frames import FrameToInfo
from vlm_reward_wrappers.wrappers.reward_wrapper import VLMRewardWrapper
from vlm_reward_wrappers.wrappers.sb3 import VLMRewardVecEnv
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
