"""Frames for the reward wrappers: rendered late (so a process can still fork), again after unpickling.

* :class:`PicklableRenderer` renders an env's frames with :class:`~vlm_reward_wrappers.FrameRenderer`.
* :class:`FrameToInfo` puts the frame after every reset and step into
  ``info["vlm_frame"]``, for the vector wrappers' batched scoring.

Example: see :class:`FrameToInfo`.
"""

from __future__ import annotations

import os
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.core import ActType, ObsType

from vlm_reward_wrappers import info_keys
from vlm_reward_wrappers.models import BUNDLED_CHECKPOINT, read_checkpoint_config
from vlm_reward_wrappers.rendering import FrameRenderer, check_camera, is_metaworld_env
from vlm_reward_wrappers.wrappers.scoring import metaworld_task
from vlm_reward_wrappers.wrappers.spec import FrameSettings


class PicklableRenderer:
    """A :class:`FrameRenderer` of an env, opened at the first frame and dropped when pickled.

    Meta-World frames need a GL context, which is opened late so that the
    process can still be forked (``AsyncVectorEnv`` makes one env in the
    parent before it forks its workers); it is made again after unpickling.
    (:class:`FrameRenderer` refuses GL in a process forked after its parent
    opened GL, saying how to start the workers instead.)
    """

    def __init__(self, env: Any, camera: str, image_size: int) -> None:
        self.env = env
        self.camera = camera
        self.image_size = image_size
        self._renderer: FrameRenderer | None = None
        if is_metaworld_env(env):
            check_camera(env.unwrapped.model, camera)
        else:  # frames come from env.render(); this checks its render mode and opens nothing
            self._renderer = FrameRenderer(env, camera, image_size, image_size)

    def render(self) -> np.ndarray:
        """The env's current frame, upright, ``(image_size, image_size, 3)`` uint8 (Meta-World)."""
        if self._renderer is None:
            self._renderer = FrameRenderer(self.env, self.camera, self.image_size, self.image_size)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_renderer": None}


class FrameToInfo(gym.Wrapper[ObsType, ActType, ObsType, ActType], gym.utils.RecordConstructorArgs):
    """Puts the frame after every reset and step into ``info["vlm_frame"]``, for batched scoring.

    Args:
        env: the env (Meta-World, or any env with ``render_mode="rgb_array"``).
        checkpoint: a checkpoint folder or Hub repo id whose camera and frame size to use (only its
            ``config.json`` is read); default: the bundled model's (``corner``, 64 px).
        camera, image_size: override them.

    Example:
        >>> from vlm_reward_wrappers import make_metaworld_env
        >>> env = FrameToInfo(make_metaworld_env("reach-v3", seed=0), camera="corner", image_size=32)
        >>> obs, info = env.reset(seed=0)
        >>> info["vlm_frame"].shape
        (32, 32, 3)
    """

    def __init__(
        self,
        env: gym.Env[ObsType, ActType],
        checkpoint: str | os.PathLike | None = None,
        *,
        camera: str | None = None,
        image_size: int | None = None,
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self, checkpoint=None if checkpoint is None else str(checkpoint), camera=camera, image_size=image_size
        )
        gym.Wrapper.__init__(self, env)
        config = read_checkpoint_config(BUNDLED_CHECKPOINT if checkpoint is None else checkpoint)[0]
        self.frame_settings = FrameSettings(
            metaworld_task(env), camera or config.camera, image_size or config.image_size
        )
        self.frames = PicklableRenderer(env, self.frame_settings.camera, self.frame_settings.image_size)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        info[info_keys.FRAME] = self.frames.render()
        return obs, info

    def step(self, action: ActType) -> tuple[ObsType, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info[info_keys.FRAME] = self.frames.render()
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self.frames.close()
        super().close()
