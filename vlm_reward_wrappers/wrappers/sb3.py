"""VLMRewardVecEnv: batched reward-model rewards for stable-baselines3 vector envs.

Example:
    >>> from stable_baselines3.common.vec_env import DummyVecEnv
    >>> from vlm_reward_wrappers import make_metaworld_env
    >>> from vlm_reward_wrappers.wrappers import FrameToInfo, VLMRewardVecEnv
    >>> ckpt = "runs/quick/checkpoints/triplet-seed0"
    >>> make = lambda i: lambda: FrameToInfo(make_metaworld_env("reach-v3", seed=i), ckpt)
    >>> venv = DummyVecEnv([make(i) for i in range(8)])                           # doctest: +SKIP
    >>> venv = VLMRewardVecEnv(venv, ckpt, reward_mode="normalized")              # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np
from stable_baselines3.common.vec_env import VecEnv, VecEnvWrapper
from stable_baselines3.common.vec_env.base_vec_env import VecEnvObs, VecEnvStepReturn

from vlm_reward_wrappers import info_keys
from vlm_reward_wrappers.wrappers.scoring import ScorerGoal, make_reward
from vlm_reward_wrappers.wrappers.spec import RewardSpec
from vlm_reward_wrappers.wrappers.vector import not_wrapped_error


class VLMRewardVecEnv(VecEnvWrapper):
    """Replaces an SB3 vector env's rewards by reward-model scores, one forward pass per step.

    The sub-envs must be wrapped in :class:`~vlm_reward_wrappers.wrappers.FrameToInfo`;
    put this wrapper directly on the ``DummyVecEnv``/``SubprocVecEnv`` and
    ``VecMonitor``/``VecNormalize`` above it. ``checkpoint`` and the reward
    options are those of :class:`~vlm_reward_wrappers.VLMRewardWrapper`
    (:class:`~.spec.RewardSpec`).

    SB3 resets a sub-env inside the step that ends its episode and returns
    that step's info (with ``terminal_observation``): the reward of a
    terminal step is the score of its own frame, from that info; the reset
    frame (``venv.reset_infos``) sets the shaped potential of the next episode.

    Info keys added to every sub-env's info: ``gt_reward``, ``vlm_reward``,
    ``vlm_score``, and ``is_success`` when the env reports ``success``.
    """

    def __init__(self, venv: VecEnv, checkpoint: str | os.PathLike | RewardSpec | None = None, **options: Any) -> None:
        if not venv.has_attr("frame_settings"):  # SubprocVecEnv workers die on a missing get_attr
            raise not_wrapped_error(type(self).__name__)
        settings = venv.get_attr("frame_settings")
        super().__init__(venv)
        self.reward_spec = RewardSpec.of(checkpoint, **options)
        self.scorer, self.transform = make_reward(self.reward_spec, settings)

    @property
    def goal(self) -> ScorerGoal:
        """What frames are scored against: the goal sentence, or the goal-image embedding."""
        return self.scorer.goal

    def _reset_frames(self) -> np.ndarray:
        """The frames of the sub-envs' latest resets (SB3 keeps reset infos on the innermost vector env)."""
        return np.stack([info[info_keys.FRAME] for info in self.venv.unwrapped.reset_infos])

    def reset(self) -> VecEnvObs:
        obs = self.venv.reset()
        if self.transform.needs_first_frames:
            self.transform.start(self.scorer(self._reset_frames()))
        return obs

    def step_wait(self) -> VecEnvStepReturn:
        obs, gt_rewards, dones, infos = self.venv.step_wait()
        step_frames = np.stack([info[info_keys.FRAME] for info in infos])
        starting = np.asarray(dones, dtype=bool) & self.transform.needs_first_frames
        batch = np.concatenate([step_frames, self._reset_frames()[starting]]) if starting.any() else step_frames
        scores = self.scorer(batch)
        success = np.array([float(info.get(info_keys.SUCCESS, 0.0)) for info in infos])
        rewards = self.transform(scores[: self.num_envs], success)
        self.transform.start(scores[self.num_envs :], starting)
        for index, info in enumerate(infos):
            info[info_keys.GT_REWARD] = float(gt_rewards[index])
            info[info_keys.VLM_SCORE] = float(scores[index])
            info[info_keys.VLM_REWARD] = float(rewards[index])
            if info_keys.SUCCESS in info:
                info[info_keys.IS_SUCCESS] = bool(info[info_keys.SUCCESS])
        return obs, rewards.astype(np.float32), dones, infos
