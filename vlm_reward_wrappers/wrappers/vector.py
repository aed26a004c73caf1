"""Batched scoring for vector envs: one forward pass per step for all sub-envs.

Each sub-env is wrapped in :class:`FrameToInfo`, which renders the frame after
every reset and step into ``info["vlm_frame"]``; :class:`VectorVLMReward`
(gymnasium) and :class:`~vlm_reward_wrappers.wrappers.sb3.VLMRewardVecEnv`
(stable-baselines3) gather those frames and score them in one batch.

Example:
    >>> import gymnasium as gym
    >>> from vlm_reward_wrappers import make_metaworld_env
    >>> ckpt = "runs/quick/checkpoints/triplet"
    >>> envs = gym.vector.SyncVectorEnv(
    ...     [lambda i=i: FrameToInfo(make_metaworld_env("reach-v3", seed=i), ckpt) for i in range(8)])  # doctest: +SKIP
    >>> envs = VectorVLMReward(envs, ckpt)                                                        # doctest: +SKIP
    >>> obs, info = envs.reset(seed=0)                                                            # doctest: +SKIP
    >>> obs, rewards, terminated, truncated, info = envs.step(envs.action_space.sample())         # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from gymnasium.core import ActType, ObsType
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from vlm_reward_wrappers.models.reward_model import RewardModelConfig, read_checkpoint_config
from vlm_reward_wrappers.wrappers.scoring import (
    GoalScorer,
    PicklableRenderer,
    RewardTransform,
    load_reward_model,
    metaworld_task,
    resolve_goal,
    warn_if_unlike_training,
)

FRAME_KEY = "vlm_frame"
"""The info key under which :class:`FrameToInfo` puts each frame."""


@dataclass(frozen=True)
class FrameSettings:
    """What a :class:`FrameToInfo` env's frames show: which Meta-World task (if any), camera, size."""

    task: str | None
    camera: str
    image_size: int


class FrameToInfo(gym.Wrapper[ObsType, ActType, ObsType, ActType], gym.utils.RecordConstructorArgs):
    """Puts the frame after every reset and step into ``info["vlm_frame"]``, for batched scoring.

    Args:
        env: the env (Meta-World, or any env with ``render_mode="rgb_array"``).
        checkpoint: a checkpoint folder whose camera and frame size to use
            (only its ``config.json`` is read); default ``corner``, 64 px.
        camera, image_size: override them.

    Example:
        >>> from vlm_reward_wrappers import make_metaworld_env
        >>> env = FrameToInfo(make_metaworld_env("reach-v3", seed=0), camera="corner", image_size=32)
        >>> obs, info = env.reset(seed=0)
        >>> info["vlm_frame"].shape
        (32, 32, 3)
        >>> env.close()
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
        config = read_checkpoint_config(checkpoint)[0] if checkpoint is not None else RewardModelConfig()
        self.frame_settings = FrameSettings(
            metaworld_task(env), camera or config.camera, image_size or config.image_size
        )
        self.frames = PicklableRenderer(env, self.frame_settings.camera, self.frame_settings.image_size)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        info[FRAME_KEY] = self.frames.render()
        return obs, info

    def step(self, action: ActType) -> tuple[ObsType, Any, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        info[FRAME_KEY] = self.frames.render()
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self.frames.close()
        super().close()


def batch_scoring(
    settings: Sequence[FrameSettings],
    checkpoint: str | os.PathLike,
    *,
    goal: str | None,
    reward_mode: str,
    gamma: float,
    success_bonus: float,
    device: str | torch.device,
) -> tuple[GoalScorer, RewardTransform]:
    """The scorer and reward transform of a vector env whose sub-envs have ``settings``."""
    tasks = {setting.task for setting in settings}
    if goal is None and len(tasks) > 1:
        raise ValueError(
            f"the sub-envs run different tasks ({sorted(map(str, tasks))}): pass goal='...' or make one vector env per task."
        )
    goal = resolve_goal(goal, None if goal is not None else tasks.pop())
    config = load_reward_model(checkpoint, device).config
    for camera, image_size in {(setting.camera, setting.image_size) for setting in settings}:
        warn_if_unlike_training(config, str(checkpoint), camera, image_size)
    scorer = GoalScorer(checkpoint, goal, device)
    return scorer, RewardTransform(reward_mode, config.reward_stats, gamma, success_bonus, num_envs=len(settings))


def not_wrapped_error(owner: str) -> ValueError:
    """The error for sub-envs that give no frames to score."""
    return ValueError(
        f"{owner} scores the frames that FrameToInfo puts in each sub-env's info, but the sub-envs are not wrapped "
        "in it: make each one as FrameToInfo(env, checkpoint)."
    )


def _per_env(infos: dict[str, Any], key: str, num_envs: int) -> tuple[np.ndarray, np.ndarray]:
    """``infos[key]`` as float64 (0 where a sub-env did not report it) and the mask of those that did."""
    if key not in infos:
        return np.zeros(num_envs), np.zeros(num_envs, dtype=bool)
    reported = np.asarray(infos[f"_{key}"], dtype=bool)
    return np.where(reported, np.asarray(infos[key], dtype=np.float64), 0.0), reported


class VectorVLMReward(VectorWrapper):
    """Replaces a vector env's rewards by reward-model scores, one forward pass per step.

    The sub-envs must be wrapped in :class:`FrameToInfo`. Arguments and reward
    modes are those of :class:`~vlm_reward_wrappers.VLMRewardWrapper`; the
    goal defaults to the sub-envs' common Meta-World task.

    Every step's reward is the score of that step's frame, under each autoreset mode:

    * ``NEXT_STEP`` (gymnasium's default): the step after an episode ends only
      resets that sub-env; as in gymnasium, its reward is 0 (its ``vlm_score``
      is masked out); the reset frame sets the shaped potential.
    * ``SAME_STEP``: the terminal step's frame is read from
      ``info["final_info"]``; the new episode's first frame, in ``info``, sets
      the shaped potential.
    * ``DISABLED``: frames of the sub-envs reset with ``options={"reset_mask": ...}``
      set their shaped potentials.

    Info keys (arrays with ``_key`` masks): ``gt_reward``, ``vlm_reward``,
    ``vlm_score``, ``is_success`` (where sub-envs report ``success``);
    ``vlm_frame`` from :class:`FrameToInfo`.

    Example:
        >>> envs = VectorVLMReward(gym.vector.SyncVectorEnv(env_fns), "runs/quick/checkpoints/triplet")  # doctest: +SKIP
    """

    def __init__(
        self,
        env: VectorEnv,
        checkpoint: str | os.PathLike,
        *,
        goal: str | None = None,
        reward_mode: str = "raw",
        gamma: float = 0.99,
        success_bonus: float = 0.0,
        device: str | torch.device = "cpu",
    ) -> None:
        super().__init__(env)
        get_attr = getattr(env.unwrapped, "get_attr", None)  # Sync- and AsyncVectorEnv reach their sub-envs
        if get_attr is None:
            raise TypeError(
                f"{type(self).__name__} reads its sub-envs' frame settings: use a SyncVectorEnv or AsyncVectorEnv."
            )
        try:
            settings = list(get_attr("frame_settings"))
        except AttributeError as error:
            raise not_wrapped_error(type(self).__name__) from error
        self.scorer, self.transform = batch_scoring(
            settings,
            checkpoint,
            goal=goal,
            reward_mode=reward_mode,
            gamma=gamma,
            success_bonus=success_bonus,
            device=device,
        )
        self.autoreset_mode = AutoresetMode(env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))
        self._resetting = np.zeros(self.num_envs, dtype=bool)

    @property
    def goal(self) -> str:
        return self.scorer.goal

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        obs, infos = self.env.reset(seed=seed, options=options)
        started = np.asarray(infos[f"_{FRAME_KEY}"], dtype=bool)
        if self.transform.needs_first_frames:
            self.transform.start(self.scorer(infos[FRAME_KEY][started]), started)
        self._resetting[started] = False
        return obs, infos

    def step(self, actions: ActType) -> tuple[ObsType, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, gt_rewards, terminated, truncated, infos = self.env.step(actions)
        frames = infos[FRAME_KEY]
        success, reported = _per_env(infos, "success", self.num_envs)
        # SAME_STEP: sub-envs that ended now were reset already; their terminal step is in final_info.
        ended = np.asarray(infos.get("_final_info", np.zeros(self.num_envs, dtype=bool)), dtype=bool)
        step_frames = frames
        if ended.any():
            final = infos["final_info"]
            step_frames = frames.copy()
            step_frames[ended] = final[FRAME_KEY][ended]
            final_success, final_reported = _per_env(final, "success", self.num_envs)
            success[ended], reported[ended] = final_success[ended], final_reported[ended]
        starting = ended if self.transform.needs_first_frames else np.zeros_like(ended)
        scores = self.scorer(np.concatenate([step_frames, frames[starting]]) if starting.any() else step_frames)
        # The transform takes each frame's potential as the sub-env's next phi; for NEXT_STEP
        # resets the frame is the new episode's first, so phi(o_0) is set here too.
        rewards = self.transform(scores[: self.num_envs], success)
        self.transform.start(scores[self.num_envs :], starting)
        stepped = ~self._resetting
        rewards[~stepped] = 0.0
        if self.autoreset_mode == AutoresetMode.NEXT_STEP:
            self._resetting = terminated | truncated

        everywhere = np.ones(self.num_envs, dtype=bool)
        infos.update(
            gt_reward=np.asarray(gt_rewards, dtype=np.float64),
            _gt_reward=everywhere,
            vlm_reward=rewards,
            _vlm_reward=everywhere,
            vlm_score=np.where(stepped, scores[: self.num_envs], 0.0),
            _vlm_score=stepped,
        )
        if reported.any():
            infos.update(is_success=success > 0, _is_success=reported)
        return obs, rewards, terminated, truncated, infos
