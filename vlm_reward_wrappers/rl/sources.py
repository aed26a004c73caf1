"""Reward sources of an RL run: what the agent is rewarded with, named by a short string, on one scale.

Every source pays on Meta-World's own scale, 0 to 10 per step (at which SAC's
default settings learn Meta-World's reward):

* ``gt``: Meta-World's own dense reward, times ``gt_reward_scale`` (default 1).
* ``sparse``: ``success_bonus`` (default 10) on steps where Meta-World reports success, else 0.
* ``bundled`` (the package's bundled reward model), a checkpoint folder (or a benchmark row
  such as ``triplet``, or a Hub repo id ``user/name``, see :func:`resolve_source`): the learned reward in
  ``learned_reward_mode`` (default ``shaped-progress``: ``gamma * p(o') - p(o)`` with p the
  per-task progress in [0, 1] from the checkpoint's calibration; ``progress``: p itself),
  times ``learned_reward_scale`` (default 5).
* ``<checkpoint>+sparse``: that plus the success bonus, ``10 * success + 5 * (gamma * p(o') - p(o))``
  by default (``success + 0.5 * shaped progress`` times 10): a success step pays more than any
  step of progress without it (how TimeRewarder, VLC and FuRL use learned rewards: a
  success term, a bounded learned term).

Every env made here reports ``info["gt_reward"]`` (Meta-World's reward, unscaled)
and ``info["is_success"]``, whatever the agent is rewarded with.

Example:
    >>> source = parse_source("runs/quick/checkpoints/triplet-seed0+sparse")
    >>> source.checkpoint, source.reward_mode, source.reward_scale, source.success_bonus
    ('runs/quick/checkpoints/triplet-seed0', 'shaped-progress', 5.0, 10.0)
    >>> parse_source("sparse").dense, parse_source("gt").dense, parse_source("gt").reward_scale
    ('none', 'gt', 1.0)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Literal, SupportsFloat

import gymnasium as gym

from vlm_reward_wrappers import info_keys
from vlm_reward_wrappers.rl.config import DEFAULT_LEARNED_REWARD_MODE, LearnedRewardMode
from vlm_reward_wrappers.wrappers import VLMRewardWrapper

SPARSE = "sparse"
GROUND_TRUTH = "gt"
BUNDLED = "bundled"
"""The reward model bundled with the package (:data:`~vlm_reward_wrappers.models.BUNDLED_CHECKPOINT`), as a source."""
SPARSE_SUFFIX = "+" + SPARSE


@dataclass(frozen=True)
class RewardSource:
    """What an agent is rewarded with.

    Args:
        name: the label in reports (``gt``, ``sparse``, ``triplet``, ``triplet+sparse``).
        dense: ``gt`` (Meta-World's reward), ``learned`` (the checkpoint's) or ``none``.
        checkpoint: the reward model's checkpoint folder, for ``learned``.
        success_bonus: added on steps where Meta-World reports success.
        reward_scale: multiplies the dense reward (``gt``, ``learned``).
        reward_mode: the learned reward's mode (``shaped-progress``, the default, ``progress`` or ``normalized``);
            None for the others.
    """

    name: str
    dense: Literal["gt", "learned", "none"]
    checkpoint: str | None = None
    success_bonus: float = 0.0
    reward_scale: float = 1.0
    reward_mode: LearnedRewardMode | None = None

    def __post_init__(self) -> None:
        if self.dense == "learned" and self.reward_mode is None:
            object.__setattr__(self, "reward_mode", DEFAULT_LEARNED_REWARD_MODE)
        if self.dense != "learned" and self.reward_mode is not None:
            raise ValueError(f"reward_mode is a learned source's option; source {self.name!r} is {self.dense!r}")

    @property
    def learned(self) -> bool:
        return self.dense == "learned"


def parse_source(
    text: str,
    *,
    name: str | None = None,
    success_bonus: float = 10.0,
    gt_reward_scale: float = 1.0,
    learned_reward_mode: LearnedRewardMode = DEFAULT_LEARNED_REWARD_MODE,
    learned_reward_scale: float = 5.0,
) -> RewardSource:
    """A :class:`RewardSource` from ``gt``, ``sparse``, ``PATH`` or ``PATH+sparse``.

    ``name`` labels it in reports (default: ``text``); ``success_bonus`` is the
    bonus of ``sparse`` and ``PATH+sparse``; the other options are the scales of the
    module's docstring (an :class:`~.config.RLConfig` holds them: ``config.source_options``).
    """
    label = name or text
    if text == GROUND_TRUTH:
        return RewardSource(label, "gt", reward_scale=gt_reward_scale)
    if text == SPARSE:
        return RewardSource(label, "none", success_bonus=success_bonus)
    checkpoint, bonus = (text[: -len(SPARSE_SUFFIX)], success_bonus) if text.endswith(SPARSE_SUFFIX) else (text, 0.0)
    if not checkpoint:
        raise ValueError(f"reward source {text!r}: give gt, sparse, a checkpoint folder, or CHECKPOINT+sparse")
    return RewardSource(label, "learned", os.fspath(checkpoint), bonus, learned_reward_scale, learned_reward_mode)


class SparseSuccessReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Replaces the reward by ``bonus`` on steps where ``info["success"]`` is true, else 0.

    Example:
        >>> from vlm_reward_wrappers import make_metaworld_env
        >>> env = SparseSuccessReward(make_metaworld_env("reach-v3", image_size=32))
        >>> _ = env.reset(seed=0)
        >>> _, reward, _, _, info = env.step(env.action_space.sample() * 0)
        >>> reward, info["is_success"], info["gt_reward"] > 0
        (0.0, False, True)
    """

    def __init__(self, env: gym.Env, bonus: float = 1.0) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, bonus=bonus)
        super().__init__(env)
        self.bonus = bonus

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        success = bool(info.get(info_keys.SUCCESS, False))
        info[info_keys.GT_REWARD] = float(reward)
        info[info_keys.IS_SUCCESS] = success
        return obs, self.bonus * success, terminated, truncated, info


class GroundTruthReward(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """The env's reward times ``scale``; the env's own reward is reported as ``info["gt_reward"]`` beside
    ``info["is_success"]``.

    Example:
        >>> from vlm_reward_wrappers import make_metaworld_env
        >>> env = GroundTruthReward(make_metaworld_env("reach-v3", image_size=32), scale=0.1)
        >>> _ = env.reset(seed=0)
        >>> _, reward, _, _, info = env.step(env.action_space.sample() * 0)
        >>> bool(abs(reward - 0.1 * info["gt_reward"]) < 1e-12)
        True
    """

    def __init__(self, env: gym.Env, scale: float = 1.0) -> None:
        gym.utils.RecordConstructorArgs.__init__(self, scale=scale)
        super().__init__(env)
        self.scale = scale

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info[info_keys.GT_REWARD] = float(reward)
        info[info_keys.IS_SUCCESS] = bool(info.get(info_keys.SUCCESS, False))
        return obs, self.scale * float(reward), terminated, truncated, info


def with_reward(
    env: gym.Env,
    source: RewardSource,
    *,
    gamma: float = 0.99,
    camera: str | None = None,
    image_size: int | None = None,
) -> gym.Env:
    """``env`` rewarded by ``source``, on the scale the source holds.

    ``camera`` and ``image_size`` override the checkpoint's for the frames a learned reward scores.
    """
    if source.dense == "gt":
        return GroundTruthReward(env, source.reward_scale)
    if source.dense == "none":
        return SparseSuccessReward(env, source.success_bonus)
    assert source.checkpoint is not None
    return VLMRewardWrapper(
        env,
        source.checkpoint,
        camera=camera,
        image_size=image_size,
        reward_mode=source.reward_mode,
        reward_scale=source.reward_scale,
        gamma=gamma,
        success_bonus=source.success_bonus,
    )
