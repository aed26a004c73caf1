"""Collecting demonstrations: Meta-World's scripted experts, with action noise.

Every episode is planned up front from the config (task, index, seed, noise,
expert or random actions), so a collection is reproducible, can be split over
worker processes in any order, and resumes after an interruption by skipping
the episodes already on disk.

Example:
    >>> config = CollectionConfig(tasks=("reach-v3", "door-open-v3"), episodes_per_task=4, image_size=64)
    >>> dataset = collect(config, "data/demo")   # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from vlm_reward_wrappers.data.storage import (
    DemoDataset,
    EpisodeRecord,
    config_id,
    episode_path,
    prepare_output,
    read_episode_info,
    write_episode,
)
from vlm_reward_wrappers.data.workers import run_in_workers
from vlm_reward_wrappers.io_utils import remove_stale_temporaries
from vlm_reward_wrappers.rendering import DEFAULT_CAMERA
from vlm_reward_wrappers.tasks import goal_text, resolve_task


@dataclass(frozen=True)
class CollectionConfig:
    """What to collect. Recorded in the dataset manifest.

    Args:
        tasks: Meta-World task names.
        episodes_per_task: episodes per task (expert and random together).
        noise_levels: std of the Gaussian noise added to expert actions
            (actions lie in [-1, 1]); episode ``i`` uses ``noise_levels[i % len]``.
        random_share: share of each task's episodes that take uniformly random
            actions instead of the expert's (they are the last ones).
        camera: camera to render.
        image_size: frame width and height in pixels.
        max_steps: step limit of an episode (Meta-World truncates at 500).
        steps_after_success: steps recorded after the first success before the
            episode stops; ``None`` runs every episode to ``max_steps``.
        seed: base seed; each episode's seed derives from it, the task and the index.
    """

    tasks: tuple[str, ...]
    episodes_per_task: int = 10
    noise_levels: tuple[float, ...] = (0.0, 0.1, 0.3, 0.5)
    random_share: float = 0.0
    camera: str = DEFAULT_CAMERA
    image_size: int = 64
    max_steps: int = 500
    steps_after_success: int | None = 10
    seed: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "tasks", tuple(resolve_task(t) for t in self.tasks))
        object.__setattr__(self, "noise_levels", tuple(float(n) for n in self.noise_levels))
        if not self.tasks:
            raise ValueError("give at least one task")
        if self.episodes_per_task < 1:
            raise ValueError(f"episodes_per_task must be at least 1, got {self.episodes_per_task}")
        if not self.noise_levels or any(n < 0 for n in self.noise_levels):
            raise ValueError(f"noise_levels must be non-negative, got {self.noise_levels}")
        if not 0.0 <= self.random_share <= 1.0:
            raise ValueError(f"random_share must lie in [0, 1], got {self.random_share}")
        if self.max_steps < 1 or self.image_size < 8:
            raise ValueError("max_steps must be >= 1 and image_size >= 8")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (as stored in the manifest)."""
        data = asdict(self)
        data["tasks"] = list(self.tasks)
        data["noise_levels"] = list(self.noise_levels)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CollectionConfig:
        values = dict(data)
        values["tasks"] = tuple(values["tasks"])
        values["noise_levels"] = tuple(values["noise_levels"])
        return cls(**values)

    def plan(self) -> list[EpisodeJob]:
        """Every episode of this collection, in a fixed order."""
        jobs = []
        num_random = round(self.episodes_per_task * self.random_share)
        for task in self.tasks:
            for index in range(self.episodes_per_task):
                is_random = index >= self.episodes_per_task - num_random
                jobs.append(
                    EpisodeJob(
                        task=task,
                        index=index,
                        seed=_episode_seed(self.seed, task, index),
                        kind="random" if is_random else "expert",
                        noise_std=0.0 if is_random else self.noise_levels[index % len(self.noise_levels)],
                    )
                )
        return jobs


@dataclass(frozen=True)
class EpisodeJob:
    """One planned episode."""

    task: str
    index: int
    seed: int
    kind: str
    noise_std: float


def _episode_seed(base_seed: int, task: str, index: int) -> int:
    digest = hashlib.sha256(f"{base_seed}:{task}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF


def run_episode(env: Any, renderer: Any, job: EpisodeJob, config: CollectionConfig) -> EpisodeRecord:
    """Run one planned episode in ``env`` and record it.

    ``env`` is a single-task Meta-World env of ``job.task`` made by
    :func:`~vlm_reward_wrappers.envs.make_metaworld_env` (whose ``reset(seed=)``
    seeds Meta-World); ``renderer`` a
    :class:`~vlm_reward_wrappers.rendering.FrameRenderer` on it.
    """
    from metaworld.policies import ENV_POLICY_MAP

    policy = ENV_POLICY_MAP[job.task]()
    rng = np.random.default_rng(job.seed)
    low, high = env.action_space.low, env.action_space.high
    obs, _ = env.reset(seed=job.seed)  # make_metaworld_env makes this seed Meta-World's own generator
    frames, actions, rewards, successes = [], [], [], []
    first_success = -1
    for step in range(config.max_steps):
        if job.kind == "random":
            action = rng.uniform(low, high)
        else:
            action = policy.get_action(obs)
            if job.noise_std > 0:
                action = action + rng.normal(0.0, job.noise_std, size=action.shape)
        action = np.clip(action, low, high).astype(np.float32)
        obs, reward, terminated, truncated, info = env.step(action)
        frames.append(renderer.render())
        actions.append(action)
        rewards.append(float(reward))
        successes.append(bool(info["success"]))
        if successes[-1] and first_success < 0:
            first_success = step
        after_success = first_success >= 0 and config.steps_after_success is not None
        if (after_success and step - first_success >= config.steps_after_success) or terminated or truncated:
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
        from vlm_reward_wrappers.envs import make_metaworld_env
        from vlm_reward_wrappers.rendering import FrameRenderer

        if job.task not in self.envs:
            # The construction seed fixes MT1's set of 50 goal variants: keep it
            # the collection's, so an episode depends on its own seed only.
            env = make_metaworld_env(
                job.task, seed=self.config.seed, camera=self.config.camera, image_size=self.config.image_size
            )
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


def collect(
    config: CollectionConfig,
    out: str | os.PathLike,
    *,
    mode: str = "resume",
    workers: int | None = None,
    progress: bool = True,
) -> DemoDataset:
    """Collect ``config`` into the dataset folder ``out`` and return the dataset.

    Re-running the same call resumes: episodes already on disk are kept and
    only the missing ones are collected.

    Args:
        config: what to collect.
        out: dataset folder (created if needed).
        mode: ``"resume"``, ``"append"`` or ``"overwrite"``; see
            :func:`~vlm_reward_wrappers.data.storage.prepare_output`.
        workers: worker processes (default: up to 2, one per CPU).
        progress: show a progress bar with episodes and frames/s.
    """
    from tqdm.auto import tqdm

    root = Path(out)
    prepare_output(root, config.to_dict(), mode=mode)
    remove_stale_temporaries(root)
    collection = config_id(config.to_dict())
    todo = []
    for job in config.plan():
        path = episode_path(root, job.task, collection, job.index)
        if path.exists():
            read_episode_info(path)  # raises, naming the file, if it is damaged
        else:
            todo.append(job)
    workers = max(1, min(workers or min(2, os.cpu_count() or 1), len(todo) or 1))
    total = len(config.plan())
    bar = tqdm(total=total, initial=total - len(todo), unit="episode", disable=not progress, desc="collect")
    frames, started = 0, time.perf_counter()
    try:
        if workers == 1:
            worker = EpisodeCollector(config, root, collection)
            steps_done = (worker(job) for job in todo)
        else:
            steps_done = run_in_workers(todo, config, root, collection, workers)
        for steps in steps_done:
            frames += steps
            bar.update(1)
            bar.set_postfix(frames=frames, fps=f"{frames / (time.perf_counter() - started):.0f}")
        if workers == 1:
            worker.close()
    finally:
        bar.close()
    return DemoDataset(root)
