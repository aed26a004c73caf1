"""Goal-swap accuracy against values counted by hand on tiny arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vlm_reward_wrappers.metrics import METRICS, FrameTable, MetricSettings, summarize
from vlm_reward_wrappers.metrics.goal_swap import goal_swap_accuracy, goal_swap_metric

GOALS = np.array(["reach-v3", "push-v3", "pick-place-v3"])


def table(
    predicted: np.ndarray,
    task: np.ndarray,
    episode: np.ndarray,
    goal_rewards: np.ndarray | None,
    goal_tasks: np.ndarray | None = GOALS,
) -> FrameTable:
    n = len(predicted)
    return FrameTable(
        predicted=predicted,
        ground_truth=np.arange(n, dtype=float),
        success=np.zeros(n, bool),
        task=task,
        episode=episode,
        step=np.arange(n),
        first_success_step=np.full(n, -1),
        is_expert=np.ones(n, bool),
        goal_rewards=goal_rewards,
        goal_tasks=goal_tasks if goal_rewards is not None else None,
    )


def test_goal_blind_reward_scores_exactly_one_half() -> None:
    # Every goal column equals the own-goal reward: every pair is a tie.
    rng = np.random.default_rng(0)
    predicted = rng.normal(size=12)
    task = np.repeat(GOALS, 4)
    result = goal_swap_metric(
        table(predicted, task, np.repeat(np.arange(6), 2), np.tile(predicted[:, None], (1, 3))), MetricSettings()
    )
    assert result.value == 0.5
    assert result.details == {"num_goal_swap_pairs": 24}  # 12 frames x 2 other goals


def test_perfect_goal_sensitivity_scores_one() -> None:
    task = np.repeat(GOALS, 2)
    own = (task[:, None] == GOALS[None, :]).astype(float)  # 1 for the own goal, 0 for the others
    result = goal_swap_metric(table(np.ones(6), task, np.arange(6), own), MetricSettings())
    assert result.value == 1.0


def test_hand_counted_case_with_a_tie_and_a_held_out_frame() -> None:
    # Frame 0 (reach, own 0.5): vs push 0.2 -> 1, vs pick-place 0.7 -> 0.   (the reach column is its own goal)
    # Frame 1 (push,  own 0.4): vs reach 0.4 -> 0.5 (tie), vs pick-place 0.1 -> 1.
    # Frame 2 (door-lock, held out, own 0.3): vs all three columns 0.1, 0.3, 0.9 -> 1, 0.5, 0.
    # Pooled: (1 + 0 + 0.5 + 1 + 1 + 0.5 + 0) / 7 = 4 / 7.
    predicted = np.array([0.5, 0.4, 0.3])
    task = np.array(["reach-v3", "push-v3", "door-lock-v3"])
    goal_rewards = np.array([[9.0, 0.2, 0.7], [0.4, 9.0, 0.1], [0.1, 0.3, 0.9]])
    result = goal_swap_metric(table(predicted, task, np.array([0, 0, 1]), goal_rewards), MetricSettings())
    assert result.value == pytest.approx(4 / 7)
    assert result.details == {"num_goal_swap_pairs": 7}
    assert goal_swap_accuracy(predicted, task, goal_rewards, GOALS) == pytest.approx(4 / 7)
    # Episode 1 (the held-out frame) drawn twice, episode 0 not at all: (1 + 0.5 + 0) / 3 either way.
    assert result.resample is not None
    assert result.resample(np.array([[0.0, 2.0]]))[0] == pytest.approx(1.5 / 3)
    assert np.isnan(result.resample(np.array([[0.0, 0.0]]))[0])  # no pair drawn: no value


def test_resample_equals_recomputing_on_a_resample_with_duplicated_episodes() -> None:
    rng = np.random.default_rng(1)
    n = 30
    task = np.repeat(GOALS, 10)
    episode = np.repeat(np.arange(6), 5)
    base = table(rng.normal(size=n), task, episode, rng.normal(size=(n, 3)))
    result = goal_swap_metric(base, MetricSettings())
    assert result.resample is not None
    copies = np.array([2, 0, 1, 3, 0, 1])
    rows = np.concatenate([np.flatnonzero(episode == e) for e in range(6) for _ in range(copies[e])])
    resample = FrameTable(
        predicted=base.predicted[rows],
        ground_truth=base.ground_truth[rows],
        success=base.success[rows],
        task=base.task[rows],
        episode=np.arange(len(rows)) // 5,  # each copy its own episode
        step=base.step[rows],
        first_success_step=base.first_success_step[rows],
        is_expert=base.is_expert[rows],
        goal_rewards=base.goal_rewards[rows] if base.goal_rewards is not None else None,
        goal_tasks=GOALS,
    )
    expected = goal_swap_metric(resample, MetricSettings()).value
    assert expected is not None and expected != pytest.approx(result.value)  # the resample really differs
    assert result.resample(copies[None, :].astype(float))[0] == pytest.approx(expected)


def test_none_without_goal_rewards() -> None:
    result = goal_swap_metric(table(np.zeros(3), GOALS, np.arange(3), None), MetricSettings())
    assert (result.value, result.resample) == (None, None)


def test_none_when_no_frame_has_another_goal() -> None:
    # One goal column, every frame of that very task: no pair.
    result = goal_swap_metric(
        table(np.zeros(2), GOALS[:1].repeat(2), np.arange(2), np.zeros((2, 1)), GOALS[:1]), MetricSettings()
    )
    assert result.value is None


def test_registered_and_summarized_with_interval() -> None:
    metric = METRICS["goal_swap_accuracy"]
    assert (metric.label, metric.chance, metric.interval, metric.headline, metric.order) == (
        "goal-swap acc.",
        0.5,
        True,
        True,
        5,
    )
    task = np.repeat(GOALS, 4)
    own = (task[:, None] == GOALS[None, :]).astype(float)
    own[0] = [0.0, 2.0, 2.0]  # one reach frame prefers both other goals: overall (24 - 2) / 24
    report = summarize(table(np.ones(12), task, np.repeat(np.arange(6), 2), own), num_resamples=50)
    assert json.loads(json.dumps(report)) == report
    overall = report["overall"]
    assert overall["goal_swap_accuracy"] == pytest.approx(22 / 24)
    low, high = overall["goal_swap_accuracy_ci"]
    assert low < 22 / 24 <= high == 1.0
    assert report["per_task"]["reach-v3"]["goal_swap_accuracy"] == pytest.approx(6 / 8)
    assert report["per_task"]["push-v3"]["goal_swap_accuracy_ci"] == [1.0, 1.0]
    without = summarize(table(np.ones(12), task, np.repeat(np.arange(6), 2), None), num_resamples=50)
    assert (without["overall"]["goal_swap_accuracy"], without["overall"]["goal_swap_accuracy_ci"]) == (None, None)
