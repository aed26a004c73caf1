"""Vision-language models as reward functions for Meta-World, as drop-in gymnasium wrappers.

Example:
    >>> from vlm_reward_wrappers import make_metaworld_env, VLMRewardWrapper
    >>> checkpoint = "runs/quick/checkpoints/triplet-seed0"   # written by `vlm-rewards benchmark`
    >>> env = VLMRewardWrapper(make_metaworld_env("door-open-v3"), checkpoint)   # doctest: +SKIP
"""

from __future__ import annotations

import importlib
from typing import Any

from vlm_reward_wrappers.rendering import ensure_gl_backend, guard_triton
from vlm_reward_wrappers.version import __version__

# MuJoCo reads MUJOCO_GL once, when it is first imported: choose before that.
ensure_gl_backend()
# Triton and Mesa's software GL crash the process if Triton comes second.
guard_triton()

# Public names, imported on first use so that `import vlm_reward_wrappers` stays light.
_EXPORTS = {
    "CollectionConfig": "vlm_reward_wrappers.data",
    "DemoDataset": "vlm_reward_wrappers.data",
    "collect": "vlm_reward_wrappers.data",
    "FrameRenderer": "vlm_reward_wrappers.rendering",
    "make_metaworld_env": "vlm_reward_wrappers.envs",
    "TASKS": "vlm_reward_wrappers.tasks",
    "goal_text": "vlm_reward_wrappers.tasks",
    "VLMRewardWrapper": "vlm_reward_wrappers.wrappers",
    "FrameToInfo": "vlm_reward_wrappers.wrappers",
    "VectorVLMReward": "vlm_reward_wrappers.wrappers",
    "VLMRewardVecEnv": "vlm_reward_wrappers.wrappers",
    "RewardSpec": "vlm_reward_wrappers.wrappers",
    "RewardModel": "vlm_reward_wrappers.models",
    "evaluate": "vlm_reward_wrappers.evaluation",
}

__all__ = ["__version__", *sorted(_EXPORTS)]


def _register_envs() -> None:
    """gymnasium ids ``vlm_reward_wrappers/<task>`` for every Meta-World v3 task (see
    :mod:`vlm_reward_wrappers.wrappers.registration`); the entry points load on first ``gym.make``."""
    import gymnasium as gym

    from vlm_reward_wrappers.tasks import TASKS

    for task in TASKS:
        if f"vlm_reward_wrappers/{task}" not in gym.registry:
            gym.register(
                id=f"vlm_reward_wrappers/{task}",
                entry_point="vlm_reward_wrappers.wrappers.registration:make_env",
                vector_entry_point="vlm_reward_wrappers.wrappers.registration:make_vector_env",
                kwargs={"task": task},
                disable_env_checker=True,  # the inner Meta-World env's observations leave its declared space
            )


_register_envs()


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'vlm_reward_wrappers' has no attribute {name!r}")
