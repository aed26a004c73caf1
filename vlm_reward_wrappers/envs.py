"""Making Meta-World envs the way this package renders and scores them.

Meta-World v3 departs from the gymnasium API in two ways that
:class:`MetaWorldSeeding` repairs: ``reset(seed=...)`` is ignored (the goal
variant comes from the env's own generator), and the observation space is made
before the goal becomes visible (its goal bounds are zero, so observations lie
outside it and ``check_env`` fails).

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


class MetaWorldSeeding(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Makes ``reset(seed=...)`` seed Meta-World, and gives the true observation space.

    Example:
        >>> env = make_metaworld_env("reach-v3", image_size=32)
        >>> first, _ = env.reset(seed=3)
        >>> again, _ = env.reset(seed=3)
        >>> bool((first == again).all())
        True
    """

    def __init__(self, env: gym.Env) -> None:
        gym.utils.RecordConstructorArgs.__init__(self)
        super().__init__(env)
        env.reset()
        self.observation_space = env.unwrapped.sawyer_observation_space

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        if seed is not None:
            self.unwrapped.seed(seed)
        return self.env.reset(seed=seed, options=options)


def make_metaworld_env(
    task: str,
    *,
    seed: int | None = None,
    camera: str = DEFAULT_CAMERA,
    image_size: int = 224,
    max_episode_steps: int | None = None,
    **kwargs: Any,
) -> gym.Env:
    """A single-task Meta-World env (``Meta-World/MT1``) that renders RGB frames and follows gymnasium's seeding.

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
    env = gym.make(
        "Meta-World/MT1",
        env_name=resolve_task(task),
        seed=seed,
        render_mode="rgb_array",
        camera_name=camera,
        width=image_size,
        height=image_size,
        **kwargs,
    )
    return MetaWorldSeeding(env)
