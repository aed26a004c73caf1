"""The frame table every metric reads: one row per frame, with its ground truth and the learned reward.

Example:
    >>> table = FrameTable(predicted=[0.1, 0.5], ground_truth=[0.0, 9.0], success=[False, True], task=["reach-v3"] * 2,
    ...                    episode=[7, 7], step=[0, 1], first_success_step=[1, 1], is_expert=[True, True])
    >>> len(table), table.episode_codes.tolist()
    (2, [0, 0])
    >>> FrameTable(predicted=[0.1], ground_truth=[0.0, 1.0], success=[False], task=["reach-v3"], episode=[0],
    ...            step=[0], first_success_step=[-1], is_expert=[True])
    Traceback (most recent call last):
    ...
    ValueError: ground_truth has length 2 but predicted has length 1
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Hashable
from functools import cached_property
from typing import Any, TypeVar

import numpy as np

_Value = TypeVar("_Value")


def check_arrays(**arrays: Any) -> dict[str, np.ndarray]:
    """Turn each argument into a 1-D array; all must be non-empty and of one length.

    ``predicted`` and ``ground_truth``, when given, must be finite.
    """
    checked = {name: np.asarray(value) for name, value in arrays.items()}
    first_name, first = next(iter(checked.items()))
    for name, array in checked.items():
        if array.ndim != 1:
            raise ValueError(f"{name} must be 1-D, got shape {array.shape}")
        if len(array) == 0:
            raise ValueError(f"{name} is empty")
        if len(array) != len(first):
            raise ValueError(f"{name} has length {len(array)} but {first_name} has length {len(first)}")
    for name in ("predicted", "ground_truth"):
        if name in checked and not np.all(np.isfinite(checked[name].astype(float))):
            raise ValueError(f"{name} contains NaN or infinite values")
    return checked


def mean_or_none(values: np.ndarray) -> float | None:
    """The mean, or None for no values (a metric that cannot be computed is never a made-up 0)."""
    return float(values.mean()) if len(values) else None


@dataclasses.dataclass(frozen=True, eq=False)
class FrameTable:
    """Per-frame arrays of equal length, checked on construction.

    Args:
        predicted: the learned reward r̂.
        ground_truth: Meta-World's dense reward R (0-10).
        success: Meta-World's success flag.
        task: the task name.
        episode: the episode id (unique across tasks).
        step: the step within the episode.
        first_success_step: the episode's first successful step (-1: never).
        is_expert: whether the episode is an expert one.
        goal_rewards: optional ``(N, G)`` learned reward of every frame for each of
            ``G`` other goals (the training tasks' goals), for goal-sensitivity metrics.
        goal_tasks: the ``G`` task names of those goals' columns.
        noise_std: optional std of the action noise of each frame's episode (0 for random-action episodes):
            which expert rollouts are clean and which heavily perturbed, for the off-expert probe.
    """

    predicted: np.ndarray
    ground_truth: np.ndarray
    success: np.ndarray
    task: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    first_success_step: np.ndarray
    is_expert: np.ndarray
    goal_rewards: np.ndarray | None = None
    goal_tasks: np.ndarray | None = None
    noise_std: np.ndarray | None = None

    def __post_init__(self) -> None:
        columns = [
            field.name
            for field in dataclasses.fields(self)
            if field.name not in ("goal_rewards", "goal_tasks") and getattr(self, field.name) is not None
        ]
        checked = check_arrays(**{name: getattr(self, name) for name in columns})
        if (self.goal_rewards is None) != (self.goal_tasks is None):
            raise ValueError("give goal_rewards and goal_tasks together")
        if self.goal_rewards is not None and self.goal_tasks is not None:
            goal_rewards, goal_tasks = np.asarray(self.goal_rewards, dtype=float), np.asarray(self.goal_tasks)
            if goal_rewards.shape != (len(checked["predicted"]), len(goal_tasks)):
                raise ValueError(
                    f"goal_rewards must be (frames, goals) = ({len(checked['predicted'])}, "
                    f"{len(goal_tasks)}), got {goal_rewards.shape}"
                )
            checked["goal_rewards"], checked["goal_tasks"] = goal_rewards, goal_tasks
        checked["predicted"] = checked["predicted"].astype(float)
        checked["ground_truth"] = checked["ground_truth"].astype(float)
        checked["success"] = checked["success"].astype(bool)
        checked["is_expert"] = checked["is_expert"].astype(bool)
        if "noise_std" in checked:
            checked["noise_std"] = checked["noise_std"].astype(float)
        for name, array in checked.items():
            object.__setattr__(self, name, array)

    def __len__(self) -> int:
        return len(self.predicted)

    def select(self, mask: np.ndarray) -> FrameTable:
        """The rows where ``mask`` is true (or at the indices ``mask`` lists)."""
        rows = {
            field.name: getattr(self, field.name)[mask]
            for field in dataclasses.fields(self)
            if field.name != "goal_tasks" and getattr(self, field.name) is not None
        }
        return FrameTable(**rows, goal_tasks=self.goal_tasks)

    def of_task(self, task: str) -> FrameTable:
        """The rows of one task, as one table per task and table (so the pairs its metrics share are computed
        once; see :meth:`cached`)."""
        return self.cached(("task", task), lambda: self.select(self.task == task))

    @cached_property
    def episode_codes(self) -> np.ndarray:
        """Episode ids renumbered 0..E-1 (the index the bootstrap's copy counts use)."""
        return np.unique(self.episode, return_inverse=True)[1].reshape(-1)

    @cached_property
    def num_episodes(self) -> int:
        return len(np.unique(self.episode))

    @cached_property
    def _memo(self) -> dict[Hashable, Any]:
        return {}

    def cached(self, key: Hashable, compute: Callable[[], _Value]) -> _Value:
        """``compute()``, computed once per table and ``key``: the pairs several metrics of one table share.

        >>> table = FrameTable(predicted=[0.1], ground_truth=[0.0], success=[False], task=["reach-v3"],
        ...                    episode=[0], step=[0], first_success_step=[-1], is_expert=[True])
        >>> table.cached("answer", lambda: 42), table.cached("answer", lambda: 0)
        (42, 42)
        """
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]
