"""The envs behind the gymnasium ids ``vlm_reward_wrappers/<task>`` (registered on ``import vlm_reward_wrappers``,
one per Meta-World v3 task), the reward checkpoint a keyword (default: the package's bundled model).

``gym.make`` gives the task's env in a :class:`~vlm_reward_wrappers.VLMRewardWrapper`; ``gym.make_vec`` gives
``num_envs`` of them, scored in one forward pass per step (:class:`~vlm_reward_wrappers.VectorVLMReward`). Every
other keyword is a reward option (``reward_mode``, ``success_bonus``, ``goal``...) or one of
:func:`~vlm_reward_wrappers.make_metaworld_env` (``seed``, ``max_episode_steps``). Tools that take an env id
(rl-zoo3, CleanRL's ``--env-id``) reach the wrappers after ``gym.register_envs(vlm_reward_wrappers)``.

Example:
    >>> import gymnasium as gym, vlm_reward_wrappers
    >>> gym.register_envs(vlm_reward_wrappers)
    >>> "vlm_reward_wrappers/drawer-close-v3" in gym.registry
    True
    >>> ckpt = "runs/quick/checkpoints/triplet-seed0"
    >>> env = gym.make("vlm_reward_wrappers/drawer-close-v3", checkpoint=ckpt)  # doctest: +SKIP
    >>> envs = gym.make_vec("vlm_reward_wrappers/drawer-close-v3", num_envs=4, checkpoint=ckpt)  # doctest: +SKIP
"""

from __future__ import annotations

import functools
import os
from typing import Any

import gymnasium as gym
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv, VectorEnv

from vlm_reward_wrappers.envs import make_metaworld_env
from vlm_reward_wrappers.wrappers.frames import FrameToInfo
from vlm_reward_wrappers.wrappers.reward_wrapper import VLMRewardWrapper
from vlm_reward_wrappers.wrappers.vector import VectorVLMReward

NAMESPACE = "vlm_reward_wrappers"
"""The ids' namespace: ``vlm_reward_wrappers/door-open-v3``."""
_ENV_OPTIONS = ("seed", "max_episode_steps")
"""Keywords that go to :func:`make_metaworld_env`; the rest are reward options."""


def _split(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    env_options = {name: options.pop(name) for name in _ENV_OPTIONS if name in options}
    return env_options, options


def make_env(task: str, checkpoint: str | os.PathLike | None = None, **options: Any) -> gym.Env:
    """The env of ``gym.make(f"vlm_reward_wrappers/{task}", checkpoint=..., **options)``."""
    env_options, reward_options = _split(dict(options))
    inner = make_metaworld_env(task, **env_options)
    return VLMRewardWrapper(inner, checkpoint, **reward_options)


def make_vector_env(
    task: str,
    num_envs: int = 1,
    checkpoint: str | os.PathLike | None = None,
    *,
    asynchronous: bool = False,
    **options: Any,
) -> VectorEnv:
    """The vector env of ``gym.make_vec(f"vlm_reward_wrappers/{task}", num_envs, checkpoint=..., **options)``:
    sub-env ``i`` is seeded ``seed + i`` when a ``seed`` is given; ``asynchronous`` steps them in processes."""
    env_options, reward_options = _split(dict(options))
    seed = env_options.pop("seed", None)
    factories = [
        functools.partial(_frame_env, task, checkpoint, None if seed is None else seed + index, env_options)
        for index in range(num_envs)
    ]
    envs = AsyncVectorEnv(factories) if asynchronous else SyncVectorEnv(factories)
    return VectorVLMReward(envs, checkpoint, **reward_options)


def _frame_env(
    task: str, checkpoint: str | os.PathLike | None, seed: int | None, env_options: dict[str, Any]
) -> gym.Env:
    """A sub-env that renders its frames as the checkpoint was trained on them."""
    return FrameToInfo(make_metaworld_env(task, seed=seed, **env_options), checkpoint)


__all__ = ["NAMESPACE", "make_env", "make_vector_env"]
