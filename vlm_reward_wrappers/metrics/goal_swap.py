"""Goal-swap accuracy: does the learned reward depend on the goal, or only on how far along a frame looks?

A goal-blind progress detector can score perfectly on ranking accuracy and VOC;
here it scores 0.5. Needs :attr:`~.table.FrameTable.goal_rewards`, the reward of
every frame for each of the other goals.

Example:
    >>> tasks = np.array(["reach-v3", "push-v3"])      # a reach frame, then a push frame
    >>> own = np.array([0.9, 0.2])                      # each frame's reward for its own task's goal
    >>> every_goal = np.array([[0.9, 0.3], [0.1, 0.2]])  # ... for the goals of reach-v3 and push-v3
    >>> goal_swap_accuracy(own, tasks, every_goal, tasks)  # 0.9 > 0.3 and 0.2 > 0.1
    1.0
"""

from __future__ import annotations

import numpy as np

from vlm_reward_wrappers.metrics.registry import MetricResult, MetricSettings, Resample, ratio, register_metric
from vlm_reward_wrappers.metrics.table import FrameTable, check_arrays
from vlm_reward_wrappers.tasks import same_scene_tasks


def _frame_scores(
    predicted: np.ndarray,
    task: np.ndarray,
    goal_rewards: np.ndarray,
    goal_tasks: np.ndarray,
    same_scene_only: bool = False,
) -> tuple[np.ndarray, np.ndarray]:
    """Per frame: the summed score of its (frame, other goal) pairs and their number.

    A pair scores 1 when the frame's own-goal reward is higher than its reward for
    the other goal, 0.5 on a tie and 0 when lower. A column is another goal when
    its task differs from the frame's (a held-out task's frame pairs with every column);
    with ``same_scene_only``, only the goals of tasks that share the frame's scene count.
    """
    other = goal_tasks[None, :] != task[:, None]
    if same_scene_only:
        names, code = np.unique(task, return_inverse=True)
        scene = np.array([np.isin(goal_tasks, same_scene_tasks(str(name))) for name in names]).reshape(
            -1, len(goal_tasks)
        )
        other &= scene[code.reshape(-1)]
    own = predicted[:, None]
    scores = (own > goal_rewards) + 0.5 * (own == goal_rewards)
    return (scores * other).sum(axis=1), other.sum(axis=1)


def goal_swap_accuracy(
    predicted: np.ndarray, task: np.ndarray, goal_rewards: np.ndarray, goal_tasks: np.ndarray
) -> float | None:
    """Share of (frame, other goal) pairs where the frame's reward is higher for its own task's goal.

    Args:
        predicted: ``(N,)`` r̂(o; goal of o's task).
        task: ``(N,)`` each frame's task.
        goal_rewards: ``(N, G)`` r̂(o; goal_j) for the ``G`` goals in ``goal_tasks``.
        goal_tasks: ``(G,)`` the task of each goal column.

    Every frame pairs with every goal column of another task; ties count half.
    The share is pooled over all pairs (so a frame of a held-out task, which
    pairs with all ``G`` columns, weighs more than one of a training task).
    ``None`` when there is no pair.

    Example:
        >>> goal_swap_accuracy(np.array([0.5, 0.5]), np.array(["a", "b"]),
        ...                    np.array([[0.5, 0.5], [0.5, 0.5]]), np.array(["a", "b"]))  # goal-blind
        0.5
    """
    arrays = check_arrays(predicted=predicted, task=task)
    goal_rewards, goal_tasks = np.asarray(goal_rewards, dtype=float), np.asarray(goal_tasks)
    if goal_rewards.shape != (len(arrays["predicted"]), len(goal_tasks)):
        raise ValueError(f"goal_rewards must be (frames, goals), got {goal_rewards.shape}")
    sums, counts = _frame_scores(arrays["predicted"].astype(float), arrays["task"], goal_rewards, goal_tasks)
    total = counts.sum()
    return float(sums.sum() / total) if total else None


def _goal_swap_resample(sums: np.ndarray, counts: np.ndarray, episode: np.ndarray) -> Resample:
    """Goal-swap accuracy on resamples, as a function of how often each episode (code) is drawn."""
    size = int(episode.max()) + 1
    episode_sums = np.bincount(episode, weights=sums, minlength=size)
    episode_counts = np.bincount(episode, weights=counts, minlength=size)
    return lambda copies: ratio(copies @ episode_sums, copies @ episode_counts)


@register_metric(
    "goal_swap_accuracy",
    label="goal-swap acc.",
    description="share of (frame, other task's goal) pairs, every frame with every other training task's goal, "
    "where the learned reward is higher for the frame's own goal (ties count half; 0.5 for a goal-blind reward)",
    chance=0.5,
    interval=True,
    headline=True,
    order=5,
)
def goal_swap_metric(table: FrameTable, settings: MetricSettings) -> MetricResult:
    """:func:`goal_swap_accuracy` of a frame table (``None`` without goal rewards), with its resampling function."""
    return _goal_swap_result(table, same_scene_only=False)


@register_metric(
    "same_scene_goal_swap_accuracy",
    label="same-scene goal-swap acc.",
    description="goal-swap accuracy over the goals of tasks that share the frame's scene only (drawer-open and "
    "drawer-close, window-open and window-close, ...: tasks.SAME_SCENE_PAIRS), where the objects in view say little "
    "about the goal",
    chance=0.5,
    interval=True,
    headline=True,
    order=6,
)
def same_scene_goal_swap_metric(table: FrameTable, settings: MetricSettings) -> MetricResult:
    """Goal-swap accuracy against same-scene goals only (``None`` where no such goal was scored)."""
    return _goal_swap_result(table, same_scene_only=True)


def _goal_swap_result(table: FrameTable, *, same_scene_only: bool) -> MetricResult:
    key = "num_same_scene_goal_swap_pairs" if same_scene_only else "num_goal_swap_pairs"
    if table.goal_rewards is None or table.goal_tasks is None:
        return MetricResult(None, None, {key: 0})
    sums, counts = _frame_scores(table.predicted, table.task, table.goal_rewards, table.goal_tasks, same_scene_only)
    total = int(counts.sum())
    if total == 0:
        return MetricResult(None, None, {key: 0})
    return MetricResult(float(sums.sum() / total), _goal_swap_resample(sums, counts, table.episode_codes), {key: total})
