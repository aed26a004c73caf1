"""Recording episodes: a scripted expert (or random actions) in a Meta-World env, frame by frame.

:func:`run_episode` runs one planned episode; :class:`EpisodeCollector` keeps
one env and renderer per task and writes each episode it runs into a dataset
folder. Both run in the collecting process or in a worker process.

Example:
    >>> from vlm_reward_wrappers.data.config import CollectionConfig
    >>> config = CollectionConfig(tasks=("reach-v3",), episodes_per_task=1, image_size=32, max_steps=5)
    >>> env = make_metaworld_env("reach-v3", seed=0, image_size=32)
    >>> with FrameRenderer(env, config.camera, 32, 32) as renderer:
    ...     record = run_episode(env, renderer, config.plan()[0], config)
    >>> record.frames.shape, record.task
    ((5, 32, 32, 3), 'reach-v3')
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlm_reward_wrappers import info_keys
from vlm_reward_wrappers.data.config import CollectionConfig, EpisodeJob
from vlm_reward_wrappers.data.storage import EpisodeRecord, episode_path, write_episode
from vlm_reward_wrappers.envs import make_metaworld_env
from vlm_reward_wrappers.rendering import FrameRenderer
from vlm_reward_wrappers.tasks import goal_text


def run_episode(env: Any, renderer: Any, job: EpisodeJob, config: CollectionConfig) -> EpisodeRecord:
    """Run one planned episode in ``env`` and record it.

    ``env`` is a single-task Meta-World env of ``job.task`` made by
    :func:`~vlm_reward_wrappers.envs.make_metaworld_env` (whose ``reset(seed=)``
    seeds Meta-World); ``renderer`` a
    :class:`~vlm_reward_wrappers.rendering.FrameRenderer` on it.
    """
    from metaworld.policies import ENV_POLICY_MAP  # metaworld is imported once the GL backend is chosen

    policy = ENV_POLICY_MAP[job.task]()  # type: ignore[abstract]  # each map entry is a concrete policy
    rng = np.random.default_rng(job.seed)
    low, high = env.action_space.low, env.action_space.high
    obs, _ = env.reset(seed=job.seed)  # make_metaworld_env makes this seed Meta-World's own generator
    frames, actions, rewards, successes = [], [], [], []
    first_success = -1
    for step in range(config.max_steps):
        if job.kind == "random":
            action = rng.uniform(low, high)
        else:
            with warnings.catch_warnings():  # "Constant(s) may be too high": the expert's own actions, clipped below
                warnings.filterwarnings("ignore", "Constant", UserWarning, "metaworld")
                action = policy.get_action(obs)
            if job.noise_std > 0:
                action = action + rng.normal(0.0, job.noise_std, size=action.shape)
        action = np.clip(action, low, high).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        frames.append(renderer.render())
        actions.append(action)
        rewards.append(float(reward))
        successes.append(bool(info[info_keys.SUCCESS]))
        if successes[-1] and first_success < 0:
            first_success = step
        keep = config.steps_after_success
        if (keep is not None and 0 <= first_success <= step - keep) or terminated or truncated:
            break
    return EpisodeRecord(
        task=job.task,
        goal_text=goal_text(job.task),
        seed=job.seed,
        camera=config.camera,
        image_size=config.image_size,
        noise_std=job.noise_std,
        kind=job.kind,
        frames=np.stack(frames),
        actions=np.stack(actions),
        gt_reward=np.asarray(rewards, dtype=np.float32),
        success=np.asarray(successes, dtype=bool),
    )


@dataclass
class EpisodeCollector:
    """Collects planned episodes into a dataset folder, one env and renderer per task (made on first use)."""

    config: CollectionConfig
    root: Path
    collection: str
    envs: dict[str, tuple[Any, Any]] = field(default_factory=dict)

    def __call__(self, job: EpisodeJob) -> int:
        if job.task not in self.envs:
            # run_episode resets with the episode's own seed, which fixes the whole episode
            # (make_metaworld_env); the env is made once per task and reused.
            env = make_metaworld_env(job.task, camera=self.config.camera, image_size=self.config.image_size)
            self.envs[job.task] = (
                env,
                FrameRenderer(env, self.config.camera, self.config.image_size, self.config.image_size),
            )
        env, renderer = self.envs[job.task]
        record = run_episode(env, renderer, job, self.config)
        write_episode(
            episode_path(self.root, job.task, self.collection, job.index),
            record,
            collection=self.collection,
            index=job.index,
        )
        return record.num_steps

    def close(self) -> None:
        for env, renderer in self.envs.values():
            renderer.close()
            env.close()
        self.envs.clear()
