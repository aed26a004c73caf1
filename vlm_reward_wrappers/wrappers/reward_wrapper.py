"""VLMRewardWrapper: a vision-language model's score of the rendered frame as the env's reward."""

from __future__ import annotations

import os
from typing import Any, SupportsFloat

import gymnasium as gym
import numpy as np
from gymnasium.core import ActType, ObsType

from vlm_reward_wrappers import info_keys
from vlm_reward_wrappers.wrappers.frames import PicklableRenderer
from vlm_reward_wrappers.wrappers.scoring import ScorerGoal, load_reward_model, make_reward, metaworld_task
from vlm_reward_wrappers.wrappers.spec import FrameSettings, RewardSpec


class VLMRewardWrapper(gym.Wrapper[ObsType, ActType, ObsType, ActType], gym.utils.RecordConstructorArgs):
    """Replaces the reward by a reward model's score of the frame against a goal sentence.

    After every step the frame is rendered with :class:`~vlm_reward_wrappers.FrameRenderer`
    (camera and size of the checkpoint's training frames unless overridden)
    and scored against the goal. Observations, spaces, termination and
    truncation are those of the env.

    Args:
        env: the env; Meta-World envs render fast, any other env must have
            ``render_mode="rgb_array"``.
        checkpoint: a checkpoint folder, a Hub repo id, or a :class:`~.spec.RewardSpec`; not given: the reward
            model bundled with the package (trained on the 45 ML45 training tasks, 64-px corner frames).
        camera, image_size: override the checkpoint's camera and frame size (warns).
        **options: the reward options of :class:`~.spec.RewardSpec`: ``goal``,
            ``goal_image``, ``demonstration`` and ``demo_reward`` (a task given by
            demonstrations), ``reward_mode`` (``raw``, ``normalized``, ``progress``, ``shaped``, ``shaped-progress``),
            ``gamma``, ``reward_scale``, ``success_bonus``, ``device``.

    Pickling (``AsyncVectorEnv``, ``SubprocVecEnv``) carries the checkpoint
    path, not the model: each process loads it once. The GL context is opened
    at the first frame and again after unpickling. Worker processes forked
    from a process that had opened GL are refused (EGL hangs there): start
    them with ``spawn`` or ``forkserver``.

    Info keys added on every step (:mod:`vlm_reward_wrappers.info_keys`):
        ``gt_reward``: the env's own reward. ``vlm_reward``: the reward returned.
        ``vlm_score``: the raw model score of the frame. ``is_success``:
        ``bool(info["success"])``, when the env reports success (SB3 reads it).

    Raises:
        ValueError: empty goal, no goal for a non-Meta-World env, an env without
            ``rgb_array`` frames, an unknown reward mode.
        TypeError: an unknown option.
        CheckpointError: the checkpoint is missing or cannot be loaded (names the path).
        NonFiniteRewardError: the model scored a frame NaN or infinite.

    Example:
        >>> from vlm_reward_wrappers import make_metaworld_env, VLMRewardWrapper
        >>> checkpoint = "runs/quick/checkpoints/triplet-seed0"
        >>> env = VLMRewardWrapper(make_metaworld_env("reach-v3"), checkpoint)                       # doctest: +SKIP
        >>> obs, info = env.reset(seed=0)                                                             # doctest: +SKIP
        >>> obs, reward, terminated, truncated, info = env.step(env.action_space.sample())            # doctest: +SKIP
        >>> reward == info["vlm_reward"], info["gt_reward"]                                            # doctest: +SKIP
        (True, 0.84)
    """

    def __init__(
        self,
        env: gym.Env[ObsType, ActType],
        checkpoint: str | os.PathLike | RewardSpec | None = None,
        *,
        camera: str | None = None,
        image_size: int | None = None,
        **options: Any,
    ) -> None:
        spec = RewardSpec.of(checkpoint, **options)
        gym.utils.RecordConstructorArgs.__init__(self, **spec.to_record(), camera=camera, image_size=image_size)
        gym.Wrapper.__init__(self, env)
        config = load_reward_model(spec.checkpoint, spec.device).config
        frames = FrameSettings(metaworld_task(env), camera or config.camera, image_size or config.image_size)
        self.reward_spec = spec
        self.scorer, self.transform = make_reward(spec, [frames])
        self.frames = PicklableRenderer(env, frames.camera, frames.image_size)

    @property
    def goal(self) -> ScorerGoal:
        """What frames are scored against: the goal sentence, or the goal-image embedding."""
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
        success = info.get(info_keys.SUCCESS)
        reward = float(self.transform(score, None if success is None else np.array([success]))[0])
        info[info_keys.GT_REWARD] = float(gt_reward)
        info[info_keys.VLM_SCORE] = float(score[0])
        info[info_keys.VLM_REWARD] = reward
        if success is not None:
            info[info_keys.IS_SUCCESS] = bool(success)
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self.frames.close()
        super().close()
