"""VectorVLMReward: batched reward-model rewards for gymnasium vector envs, one forward pass per step.

Each sub-env is wrapped in :class:`~.frames.FrameToInfo`, which renders the
frame after every reset and step into ``info["vlm_frame"]``;
:class:`VectorVLMReward` gathers those frames and scores them in one batch
(:class:`~.sb3.VLMRewardVecEnv` does the same for stable-baselines3).

Example:
    >>> import gymnasium as gym
    >>> from vlm_reward_wrappers import make_metaworld_env
    >>> ckpt = "runs/quick/checkpoints/triplet-seed0"
    >>> envs = gym.vector.SyncVectorEnv(
    ...     [lambda i=i: FrameToInfo(make_metaworld_env("reach-v3", seed=i), ckpt) for i in range(8)])  # doctest: +SKIP
    >>> envs = VectorVLMReward(envs, ckpt)                                                        # doctest: +SKIP
    >>> obs, info = envs.reset(seed=0)                                                            # doctest: +SKIP
    >>> obs, rewards, terminated, truncated, info = envs.step(envs.action_space.sample())         # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from gymnasium.core import ActType, ObsType
from gymnasium.vector import AutoresetMode, VectorEnv, VectorWrapper

from vlm_reward_wrappers import info_keys
from vlm_reward_wrappers.wrappers.frames import FrameToInfo
from vlm_reward_wrappers.wrappers.scoring import ScorerGoal, make_reward
from vlm_reward_wrappers.wrappers.spec import RewardSpec

__all__ = ["FrameToInfo", "VectorVLMReward", "not_wrapped_error"]


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
        >>> ckpt = "runs/quick/checkpoints/triplet-seed0"
        >>> envs = VectorVLMReward(gym.vector.SyncVectorEnv(env_fns), ckpt)  # doctest: +SKIP
    """

    def __init__(
        self, env: VectorEnv, checkpoint: str | os.PathLike | RewardSpec | None = None, **options: Any
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
        self.reward_spec = RewardSpec.of(checkpoint, **options)
        self.scorer, self.transform = make_reward(self.reward_spec, settings)
        self.autoreset_mode = AutoresetMode(env.metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP))
        self._resetting = np.zeros(self.num_envs, dtype=bool)

    @property
    def goal(self) -> ScorerGoal:
        """What frames are scored against: the goal sentence, or the goal-image embedding."""
        return self.scorer.goal

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[ObsType, dict[str, Any]]:
        obs, infos = self.env.reset(seed=seed, options=options)
        started = np.asarray(infos[f"_{info_keys.FRAME}"], dtype=bool)
        if self.transform.needs_first_frames:
            self.transform.start(self.scorer(infos[info_keys.FRAME][started]), started)
        self._resetting[started] = False
        return obs, infos

    def step(self, actions: ActType) -> tuple[ObsType, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, gt_rewards, terminated, truncated, infos = self.env.step(actions)
        frames = infos[info_keys.FRAME]
        success, reported = _per_env(infos, info_keys.SUCCESS, self.num_envs)
        # SAME_STEP: sub-envs that ended now were reset already; their terminal step is in final_info.
        ended = np.asarray(infos.get("_final_info", np.zeros(self.num_envs, dtype=bool)), dtype=bool)
        step_frames = frames
        if ended.any():
            final = infos["final_info"]
            step_frames = frames.copy()
            step_frames[ended] = final[info_keys.FRAME][ended]
            final_success, final_reported = _per_env(final, info_keys.SUCCESS, self.num_envs)
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
        added = {
            info_keys.GT_REWARD: (np.asarray(gt_rewards, dtype=np.float64), everywhere),
            info_keys.VLM_REWARD: (rewards, everywhere),
            info_keys.VLM_SCORE: (np.where(stepped, scores[: self.num_envs], 0.0), stepped),
        }
        if reported.any():
            added[info_keys.IS_SUCCESS] = (success > 0, reported)
        for key, (values, mask) in added.items():
            infos[key], infos[f"_{key}"] = values, mask
        return obs, rewards, terminated, truncated, infos
