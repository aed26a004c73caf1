"""Making Meta-World envs the way this package renders and scores them.

Example:
    >>> env = make_metaworld_env("reach", seed=0, image_size=64)
    >>> obs, info = env.reset(seed=0)
    >>> env.render().shape  # Meta-World's own frame; FrameRenderer gives it upright and faster
    (64, 64, 3)
    >>> env.close()
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym

from vlm_reward_wrappers.rendering import DEFAULT_CAMERA, ensure_gl_backend
from vlm_reward_wrappers.tasks import resolve_task


def make_metaworld_env(
    task: str,
    *,
    seed: int | None = None,
    camera: str = DEFAULT_CAMERA,
    image_size: int = 224,
    max_episode_steps: int | None = None,
    **kwargs: Any,
) -> gym.Env:
    """A single-task Meta-World env (``Meta-World/MT1``) that renders RGB frames.

    Args:
        task: a task name such as ``"door-open-v3"`` (the ``-v3`` may be left out).
        seed: seeds the env and its random choice of goal positions.
        camera: camera for ``env.render()``; the reward wrappers use the same one.
        image_size: width and height of ``env.render()`` frames.
        max_episode_steps: truncation limit (Meta-World's default is 500).
        **kwargs: passed on to ``gym.make``.
    """
    ensure_gl_backend()
    import metaworld  # noqa: F401  (registers the Meta-World envs)

    if max_episode_steps is not None:
        kwargs["max_episode_steps"] = max_episode_steps
    return gym.make(
        "Meta-World/MT1",
        env_name=resolve_task(task),
        seed=seed,
        render_mode="rgb_array",
        camera_name=camera,
        width=image_size,
        height=image_size,
        **kwargs,
    )
