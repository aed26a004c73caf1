"""Deterministic trajectory batches, the same for every objective.

Batch ``k`` of a run is a pure function of ``(seed, k)``: every objective
trained with the same seed sees exactly the same trajectories and frames, and a
resumed run continues with the batches an uninterrupted run would have drawn.

The slots ``first``, ``t``, ``next``, ``later``, ``far`` and ``last`` and the
sentences come from one generator seeded by ``(seed, k)``; the sub-trajectory
slots ``start`` and ``goal`` (VIP, LIV) come from a second one seeded by
``(seed, k, 1)``, and the ``success`` and ``failure`` slots from a third seeded
by ``(seed, k, 2)``, so adding them changed no draw of the others.

Example:
    >>> sampler = TrajectorySampler(dataset, episodes=[0, 1, 2], batch_size=8, seed=0)   # doctest: +SKIP
    >>> batch = sampler.batch(0)                                                          # doctest: +SKIP
    >>> batch.steps["t"] < batch.steps["next"]                                            # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from vlm_reward_wrappers.data.storage import DemoDataset
from vlm_reward_wrappers.objectives import Slot
from vlm_reward_wrappers.objectives.base import far_gap
from vlm_reward_wrappers.tasks import TASKS


@dataclass
class TrajectoryBatch:
    """Indices of one batch: which trajectories, which frame of each slot, which sentences."""

    episode: np.ndarray  # (B,) dataset episode indices
    failure_episode: np.ndarray  # (B,) episode of the ``failure`` slot (the trajectory's own when its task has none)
    task: np.ndarray  # (B,) task ids
    steps: dict[Slot, np.ndarray]  # slot -> (B,) steps
    length: np.ndarray  # (B,)
    first_success: np.ndarray  # (B,)
    texts: list[str]  # distinct sentences
    text_index: np.ndarray  # (B,) into texts
    text_task: np.ndarray  # (U,) task id of each sentence

    def shard(self, rank: int, world_size: int) -> TrajectoryBatch:
        """The part of the batch that one of ``world_size`` processes trains on."""
        keep = np.arange(rank, len(self.episode), world_size)
        used = np.unique(self.text_index[keep])
        remap = {old: new for new, old in enumerate(used)}
        return TrajectoryBatch(
            episode=self.episode[keep],
            failure_episode=self.failure_episode[keep],
            task=self.task[keep],
            steps={slot: values[keep] for slot, values in self.steps.items()},
            length=self.length[keep],
            first_success=self.first_success[keep],
            texts=[self.texts[i] for i in used],
            text_index=np.array([remap[i] for i in self.text_index[keep]]),
            text_task=self.text_task[used],
        )

    def episodes_of(self, slot: Slot) -> np.ndarray:
        """The episode each trajectory's frame of ``slot`` comes from (its own, but for ``failure``)."""
        return self.failure_episode if slot == "failure" else self.episode


class TrajectorySampler:
    """Draws batches of trajectories (tasks uniformly, then episodes) and frame slots in each.

    Args:
        dataset: the demonstrations.
        episodes: dataset episode indices to draw from.
        batch_size: trajectories per batch.
        seed: batch ``k`` depends only on ``(seed, k)``.
        task_ids: task name -> id (shared with evaluation; default: sorted order).
        text_augmentation: draw each trajectory's sentence among the task's
            paraphrases instead of always its goal sentence.
        failures: dataset episodes that never succeed, drawn by the ``failure`` slot of the trajectories
            of their task.
    """

    def __init__(
        self,
        dataset: DemoDataset,
        episodes: Sequence[int],
        batch_size: int,
        seed: int,
        task_ids: dict[str, int] | None = None,
        text_augmentation: bool = True,
        failures: Sequence[int] = (),
    ) -> None:
        if not episodes:
            raise ValueError("no episodes to train on")
        self.dataset = dataset
        self.batch_size = batch_size
        self.seed = seed
        self.text_augmentation = text_augmentation
        by_task: dict[str, list[int]] = {}
        for index in episodes:
            if dataset.episodes[index].num_steps < 2:
                continue
            by_task.setdefault(dataset.episodes[index].task, []).append(index)
        if not by_task:
            raise ValueError("every episode is shorter than 2 steps")
        self.tasks = sorted(by_task)
        self.episodes_by_task = [np.array(by_task[task]) for task in self.tasks]
        self.task_ids = task_ids or {task: i for i, task in enumerate(self.tasks)}
        self.failures_by_task: dict[str, np.ndarray] = {}
        for index in failures:
            if dataset.episodes[index].first_success_step >= 0:
                raise ValueError(f"episode {index} of {dataset.root} succeeds: it cannot be a failure")
            task = dataset.episodes[index].task
            self.failures_by_task[task] = np.append(self.failures_by_task.get(task, []), index).astype(np.int64)

    def batch(self, step: int) -> TrajectoryBatch:
        """The batch of training step ``step``."""
        rng = np.random.default_rng([self.seed, step])
        task_choice = rng.integers(len(self.tasks), size=self.batch_size)
        episodes = np.array([rng.choice(self.episodes_by_task[t]) for t in task_choice])
        infos = [self.dataset.episodes[i] for i in episodes]
        length = np.array([info.num_steps for info in infos])
        t = (rng.random(self.batch_size) * (length - 1)).astype(int)  # [0, T-2]
        later = t + 1 + (rng.random(self.batch_size) * (length - 1 - t)).astype(int)  # [t+1, T-1]
        far = np.array([_far_step(rng, int(step_t), int(n)) for step_t, n in zip(t, length, strict=False)])
        steps: dict[Slot, np.ndarray] = {
            "first": np.zeros_like(t),
            "t": t,
            "next": t + 1,
            "later": later,
            "far": far,
            "last": length - 1,
        }
        first_success = np.array(
            [info.first_success_step if info.first_success_step >= 0 else info.num_steps - 1 for info in infos]
        )
        sentences = []
        for info in infos:
            options = TASKS[info.task].sentences if self.text_augmentation and info.task in TASKS else (info.goal_text,)
            sentences.append(options[int(rng.integers(len(options)))])
        texts = list(dict.fromkeys(sentences))
        lookup = {text: i for i, text in enumerate(texts)}
        text_task = np.zeros(len(texts), dtype=np.int64)
        for sentence, info in zip(sentences, infos, strict=False):
            text_task[lookup[sentence]] = self.task_ids[info.task]
        # Drawn after (and apart from) everything above: the other slots keep their draws.
        steps["start"], steps["goal"] = subtrajectory_steps(np.random.default_rng([self.seed, step, 1]), t, length)
        failure_episode, steps["success"], steps["failure"] = self._success_and_failure(
            np.random.default_rng([self.seed, step, 2]), episodes, first_success, length
        )
        return TrajectoryBatch(
            episode=episodes,
            failure_episode=failure_episode,
            task=np.array([self.task_ids[info.task] for info in infos]),
            steps=steps,
            length=length,
            first_success=first_success,
            texts=texts,
            text_index=np.array([lookup[s] for s in sentences]),
            text_task=text_task,
        )

    def _success_and_failure(
        self, rng: np.random.Generator, episodes: np.ndarray, first_success: np.ndarray, length: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The ``failure`` slot's episodes, and the steps of the ``success`` and ``failure`` slots."""
        success = first_success + (rng.random(len(episodes)) * (length - first_success)).astype(int)
        failure_episode, failure = episodes.copy(), np.zeros_like(episodes)
        for i, episode in enumerate(episodes):
            pool = self.failures_by_task.get(self.dataset.episodes[episode].task)
            if pool is not None:
                failure_episode[i] = pool[int(rng.integers(len(pool)))]
                failure[i] = int(rng.integers(self.dataset.episodes[failure_episode[i]].num_steps))
        return failure_episode, success, failure


def subtrajectory_steps(rng: np.random.Generator, t: np.ndarray, length: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(start, goal)`` of a random sub-trajectory around each ``(t, t + 1)``: ``start <= t < t + 1 <= goal``.

    VIP's and LIV's code draw ``start`` uniformly in ``[0, T-3]``, ``goal``
    uniformly in ``[start + 1, T-1]`` and then ``t`` uniformly in
    ``[start, goal - 1]``. Here ``t`` is the shared slot (uniform in
    ``[0, T-2]``, drawn first), so ``(start, goal)`` is drawn from that joint
    law conditioned on ``t``:

    ``P(start = s, goal = e | t) ∝ 1 / ((T - 1 - s) (e - s))`` for
    ``0 <= s <= min(t, T-3)`` and ``t < e <= T-1``

    (``s = 0`` when ``T = 2``): given the sub-trajectory, ``t`` is as likely at
    any of its steps as in the authors' code, only the mix of sub-trajectories
    is reweighted to keep ``t`` uniform. Two uniforms per trajectory, by
    inverse CDF over harmonic numbers: ``O(T)`` per trajectory.
    """
    uniforms = rng.random((len(t), 2))
    harmonic = np.concatenate([[0.0], np.cumsum(1.0 / np.arange(1, int(np.max(length)) + 1))])
    start = np.zeros(len(t), dtype=np.int64)
    goal = np.zeros(len(t), dtype=np.int64)
    for i, (step, n) in enumerate(zip(t.tolist(), length.tolist(), strict=True)):
        s = np.arange(max(0, min(step, n - 3)) + 1)
        # sum over e in (t, T-1] of 1 / (e - s) = H(T-1-s) - H(t-s)
        goal_mass = harmonic[n - 1 - s] - harmonic[step - s]
        start_cdf = np.cumsum(goal_mass / (n - 1 - s))
        start[i] = s[min(int(np.searchsorted(start_cdf, uniforms[i, 0] * start_cdf[-1], side="right")), len(s) - 1)]
        e = np.arange(step + 1, n)
        goal_cdf = harmonic[e - start[i]] - harmonic[step - start[i]]
        goal[i] = e[min(int(np.searchsorted(goal_cdf, uniforms[i, 1] * goal_cdf[-1], side="right")), len(e) - 1)]
    return start, goal


def _far_step(rng: np.random.Generator, t: int, length: int) -> int:
    """A step at least :func:`~vlm_reward_wrappers.objectives.base.far_gap` from ``t``; the farther end if none is."""
    gap = far_gap(length)
    candidates = np.concatenate([np.arange(0, max(0, t - gap + 1)), np.arange(min(length, t + gap), length)])
    if len(candidates) == 0:
        return 0 if t >= length - 1 - t else length - 1
    return int(rng.choice(candidates))


class FrameStore:
    """Frames of chosen episodes: held in memory when they fit a budget, else read from disk per batch."""

    def __init__(self, dataset: DemoDataset, episodes: Sequence[int], memory_budget_bytes: float = 2e9) -> None:
        self.dataset = dataset
        size = dataset.image_size
        total = sum(dataset.episodes[i].num_steps for i in episodes) * size * size * 3
        self.in_memory = total <= memory_budget_bytes
        self._frames = {int(i): dataset.read_frames(int(i)) for i in episodes} if self.in_memory else {}

    def gather(self, episodes: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """Frames ``(N, H, W, 3)`` at ``(episodes[k], steps[k])``."""
        if self.in_memory:
            return np.stack([self._frames[int(e)][int(s)] for e, s in zip(episodes, steps, strict=False)])
        out = np.empty((len(episodes), self.dataset.image_size, self.dataset.image_size, 3), dtype=np.uint8)
        for episode in np.unique(episodes):
            where = np.flatnonzero(episodes == episode)
            out[where] = self.dataset.read_frames(int(episode), steps[where])
        return out
