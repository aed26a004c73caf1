"""VLMRewardWrapper: a vision-language model's score of the rendered frame as the env's reward."""

from __future__ import annotations

import os
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
import torch
from gymnasium.core import ActType, ObsType

from vlm_reward_wrappers.wrappers.scoring import (
    GoalScorer,
    PicklableRenderer,
    RewardTransform,
    load_reward_model,
    metaworld_task,
    resolve_goal,
    warn_if_unlike_training,
)


class VLMRewardWrapper(gym.Wrapper[ObsType, ActType, ObsType, ActType], gym.utils.RecordConstructorArgs):
    """Replaces the reward by a reward model's score of the frame against a goal sentence.

    After every step the frame is rendered with :class:`~vlm_reward_wrappers.FrameRenderer`
    (camera and size of the checkpoint's training frames unless overridden)
    and scored against the goal. Observations, spaces, termination and
    truncation are those of the env.

    Args:
        env: the env; Meta-World envs render fast, any other env must have
            ``render_mode="rgb_array"``.
        checkpoint: path of a checkpoint folder (``RewardModel.save_pretrained``).
            The model is loaded once per process and shared by all wrappers.
        goal: the goal sentence; default: the Meta-World task's goal.
        reward_mode: ``"raw"`` (the model score), ``"normalized"``
            (``(score - mean) / std`` with the checkpoint's reward statistics) or
            ``"shaped"`` (``gamma * phi(o') - phi(o)``, ``phi`` the normalized
            score, ``phi(o_0)`` from the reset frame).
        gamma: discount of the shaped reward (use the agent's).
        success_bonus: added to the reward on steps where ``info["success"]`` is true.
        camera, image_size: override the checkpoint's camera and frame size (warns).
        device: where the model runs (``"cpu"``, ``"cuda"``).

    Pickling (``AsyncVectorEnv``, ``SubprocVecEnv``) carries the checkpoint
    path, not the model: each process loads it once. The GL context is opened
    at the first frame and again after unpickling. Worker processes forked
    from a process that had opened GL are refused (EGL hangs there): start
    them with ``spawn`` or ``forkserver``.

    Info keys added on every step:
        ``gt_reward``: the env's own reward. ``vlm_reward``: the reward returned.
        ``vlm_score``: the raw model score of the frame. ``is_success``:
        ``bool(info["success"])``, when the env reports success (SB3 reads it).

    Raises:
        ValueError: empty goal, no goal for a non-Meta-World env, an env without
            ``rgb_array`` frames, an unknown reward mode.
        CheckpointError: the checkpoint is missing or cannot be loaded (names the path).
        NonFiniteRewardError: the model scored a frame NaN or infinite.

    Example:
        >>> from vlm_reward_wrappers import make_metaworld_env, VLMRewardWrapper
        >>> env = VLMRewardWrapper(make_metaworld_env("reach-v3"), "runs/quick/checkpoints/triplet")  # doctest: +SKIP
        >>> obs, info = env.reset(seed=0)                                                             # doctest: +SKIP
        >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())            # doctest: +SKIP
        >>> reward == info["vlm_reward"], info["gt_reward"]                                            # doctest: +SKIP
        (True, 0.84)
    """

    def __init__(
        self,
        env: gym.Env[ObsType, ActType],
        checkpoint: str | os.PathLike,
        *,
        goal: str | None = None,
        reward_mode: str = "raw",
        gamma: float = 0.99,
        success_bonus: float = 0.0,
        camera: str | None = None,
        image_size: int | None = None,
        device: str | torch.device = "cpu",
    ) -> None:
        gym.utils.RecordConstructorArgs.__init__(
            self,
            checkpoint=str(checkpoint),
            goal=goal,
            reward_mode=reward_mode,
            gamma=gamma,
            success_bonus=success_bonus,
            camera=camera,
            image_size=image_size,
            device=str(device),
        )
        gym.Wrapper.__init__(self, env)
        goal = resolve_goal(goal, None if goal is not None else metaworld_task(env))
        config = load_reward_model(checkpoint, device).config
        self.scorer = GoalScorer(checkpoint, goal, device)
        self.transform = RewardTransform(reward_mode, config.reward_stats, gamma, success_bonus)
        warn_if_unlike_training(config, str(checkpoint), camera or config.camera, image_size or config.image_size)
        self.frames = PicklableRenderer(env, camera or config.camera, image_size or config.image_size)

    @property
    def goal(self) -> str:
        """The goal sentence frames are scored against."""
        return self.scorer.goal

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        obs, info = self.env.reset(seed=seed, options=options)
        if self.transform.needs_first_frames:
            self.transform.start(self.scorer(self.frames.render()[None]))
        return obs, info

    def step(self, action: ActType) -> tuple[ObsType, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, gt_reward, terminated, truncated, info = self.env.step(action)
        score = self.scorer(self.frames.render()[None])
        success = info.get("success")
        reward = float(self.transform(score, None if success is None else np.array([success]))[0])
        info["gt_reward"] = float(gt_reward)
        info["vlm_score"] = float(score[0])
        info["vlm_reward"] = reward
        if success is not None:
            info["is_success"] = bool(success)
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self.frames.close()
        super().close()
