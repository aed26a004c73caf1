"""What a collection records: its config and the plan of every episode.

Every episode is planned up front from the config (task, index, seed, noise,
expert or random actions), so a collection is reproducible, can be split over
worker processes in any order, and resumes after an interruption by skipping
the episodes already on disk.

Example:
    >>> config = CollectionConfig(tasks=("reach-v3",), episodes_per_task=4, random_share=0.25)
    >>> [(job.index, job.kind, job.noise_std) for job in config.plan()]
    [(0, 'expert', 0.0), (1, 'expert', 0.1), (2, 'expert', 0.3), (3, 'random', 0.0)]
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Literal

from vlm_reward_wrappers.configs import check_choices
from vlm_reward_wrappers.rendering import DEFAULT_CAMERA
from vlm_reward_wrappers.tasks import expand_tasks

EpisodeKind = Literal["expert", "random"]
"""``expert``: Meta-World's scripted policy, with action noise; ``random``: uniform random actions."""


@dataclass(frozen=True)
class CollectionConfig:
    """What to collect. Recorded in the dataset manifest.

    Args:
        tasks: Meta-World task names (split names MT10, ML45-train and ML45-test expand to their tasks).
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
        object.__setattr__(self, "tasks", expand_tasks(self.tasks))
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
    kind: EpisodeKind
    noise_std: float

    def __post_init__(self) -> None:
        check_choices(self)


def _episode_seed(base_seed: int, task: str, index: int) -> int:
    digest = hashlib.sha256(f"{base_seed}:{task}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "little") & 0x7FFFFFFF
