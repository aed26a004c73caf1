"""The headline metric (time-balanced accuracy), the split ranking metrics, the off-expert probe and the same-scene
goal swap, against hand-computed values; and the property the headline is built for: no clock can pass it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from vlm_reward_wrappers.evaluation.references import frame_free_reference
from vlm_reward_wrappers.metrics import METRICS, FrameTable, MetricSettings, ranking_accuracy, summarize
from vlm_reward_wrappers.metrics.off_expert import gate, off_expert_probe
from vlm_reward_wrappers.metrics.time_balanced import episode_pairs, time_balanced_accuracy


def frames(truth: list[list[float]], kinds: list[str], first_success: list[int] | None = None) -> FrameTable:
    """One task's episodes with the given Meta-World rewards; kinds are expert, noisy or random."""
    lengths = [len(episode) for episode in truth]
    episode = np.repeat(np.arange(len(truth)), lengths)
    step = np.concatenate([np.arange(n) for n in lengths])
    first = np.repeat(first_success if first_success is not None else [-1] * len(truth), lengths)
    expert = np.repeat([kind != "random" for kind in kinds], lengths)
    noise = np.repeat([0.5 if kind == "noisy" else 0.0 for kind in kinds], lengths)
    ground_truth = np.concatenate([np.asarray(episode, float) for episode in truth])
    return FrameTable(
        predicted=np.zeros(len(episode)),
        ground_truth=ground_truth,
        success=ground_truth >= 9,
        task=np.array(["drawer-close-v3"] * len(episode)),
        episode=episode,
        step=step,
        first_success_step=first,
        is_expert=expert,
        noise_std=noise,
    )


def with_predictions(table: FrameTable, predicted: np.ndarray) -> FrameTable:
    return dataclasses.replace(table, predicted=predicted)


def test_hand_computed_rising_and_falling_pairs() -> None:
    # R = 0, 2, 4, 1 (delta 0.5): rising pairs (0,1) (0,2) (1,2) (0,3); falling (1,3) (2,3).
    truth = np.array([0.0, 2.0, 4.0, 1.0])
    predicted = np.array([0.0, 1.0, 0.5, 0.5])  # rising: right, right, wrong, right; falling: right, tie
    pairs = episode_pairs(predicted, truth, np.zeros(4, int), np.arange(4), 0.5)
    assert (pairs.rising_count[0], pairs.falling_count[0]) == (4, 2)
    assert (pairs.rising_score[0], pairs.falling_score[0]) == (3, 1.5)
    value = time_balanced_accuracy(predicted, truth, np.zeros(4, int), np.arange(4))
    assert value == pytest.approx(0.5 * (3 / 4 + 1.5 / 2))
    # The plain within-episode accuracy pools the six pairs: 4.5 / 6.
    table = with_predictions(frames([[0, 2, 4, 1]], ["noisy"]), predicted)
    within = METRICS["ranking_accuracy_within"].compute(table, MetricSettings())
    assert within.value == pytest.approx(4.5 / 6)
    assert within.details["ranking_accuracy_within_noisy"] == pytest.approx(4.5 / 6)
    assert within.details["ranking_accuracy_within_expert"] is None


def test_a_clock_wins_the_old_metrics_and_scores_exactly_one_half_on_the_headline() -> None:
    # Three experts whose reward rises every step (success at step 9), and one short random episode drifting down.
    expert = list(range(10))
    table = frames([expert] * 3 + [[3, 1.5, 0]], ["expert"] * 3 + ["random"], first_success=[9, 9, 9, -1])
    settings = MetricSettings()
    clock = frame_free_reference(table, "clock")
    oracle = frame_free_reference(table, "oracle")
    # A frame-based reward: noisy on the experts (every other neighbouring pair swapped), right off the expert path.
    wobble = np.where(table.is_expert, 1.2 * (-1.0) ** table.step, 0.0)
    learned = with_predictions(table, table.ground_truth + wobble)

    def score(name: str, candidate: FrameTable) -> float:
        value = METRICS[name].compute(candidate, settings).value
        assert value is not None
        return value

    # The clock beats the learned reward on the study's ranking accuracy, within episodes and on VOC ...
    assert score("ranking_accuracy", clock) > score("ranking_accuracy", learned)
    assert score("ranking_accuracy_within", clock) > score("ranking_accuracy_within", learned)
    assert score("voc", clock) == pytest.approx(1.0)
    assert score("voc", learned) < 0.99
    # ... and scores exactly one half on the headline, where the learned reward leads and the truth scores 1.
    assert score("time_balanced_accuracy", clock) == 0.5
    assert score("time_balanced_accuracy", learned) > 0.6
    assert score("time_balanced_accuracy", oracle) == 1.0


@pytest.mark.parametrize("seed", range(5))
def test_no_reward_that_grows_with_the_step_can_pass_the_headline(seed: int) -> None:
    # Any strictly increasing function of the step within each episode, whatever it knows about the episode
    # (its kind, its outcome, an arbitrary offset and scale), orders every rising pair right and every falling
    # pair wrong: exactly 0.5 by construction, on any data.
    rng = np.random.default_rng(seed)
    truth = [list(rng.uniform(0, 10, size=int(rng.integers(5, 40)))) for _ in range(12)]
    table = frames(truth, list(rng.choice(["expert", "noisy", "random"], size=12)))
    offsets, scales = rng.normal(size=12), rng.uniform(0.1, 5, size=12)
    codes = table.episode_codes
    predicted = offsets[codes] + scales[codes] * np.exp(table.step / 10) + 100 * table.is_expert
    value = METRICS["time_balanced_accuracy"].compute(with_predictions(table, predicted), MetricSettings()).value
    assert value == 0.5
    oracle = METRICS["time_balanced_accuracy"].compute(frame_free_reference(table, "oracle"), MetricSettings())
    assert oracle.value == 1.0


def test_resampling_reweights_episodes_exactly() -> None:
    table = with_predictions(
        frames([[0, 2, 4, 1], [5, 1, 0, 3]], ["noisy", "random"]), np.array([0, 1, 2, 3, 3, 2, 1, 0.0])
    )
    result = METRICS["time_balanced_accuracy"].compute(table, MetricSettings())
    assert result.resample is not None
    doubled = frames([[0, 2, 4, 1], [5, 1, 0, 3], [5, 1, 0, 3]], ["noisy", "random", "random"])
    predicted = np.array([0, 1, 2, 3, 3, 2, 1, 0, 3, 2, 1, 0.0])
    expected = METRICS["time_balanced_accuracy"].compute(with_predictions(doubled, predicted), MetricSettings())
    assert result.resample(np.array([[1.0, 2.0]]))[0] == pytest.approx(expected.value)
    assert result.resample(np.array([[1.0, 0.0]]))[0] == 0.5  # the first episode alone: rising right, falling wrong
    assert np.isnan(result.resample(np.array([[0.0, 0.0]]))[0])  # no pair at all: no value


def test_across_episode_accuracy_counts_only_pairs_of_two_episodes() -> None:
    table = with_predictions(frames([[0, 4], [2, 6]], ["expert", "expert"]), np.array([0.0, 1.0, 3.0, 2.0]))
    ranks = ranking_accuracy(table.predicted, table.ground_truth, table.task, table.episode)
    result = METRICS["ranking_accuracy_across"].compute(table, MetricSettings())
    # Across pairs (R 0<2, 0<6, 4<6, 2<4 as (ep1 step0, ep0 step1)): right, right, right, wrong.
    assert result.value == ranks.across == pytest.approx(3 / 4)


def test_same_scene_goal_swap_uses_only_goals_of_the_same_scene() -> None:
    tasks = np.array(["drawer-open-v3", "drawer-open-v3"])
    goal_tasks = np.array(["drawer-open-v3", "drawer-close-v3", "reach-v3"])
    own = np.array([0.5, 0.5])
    goal_rewards = np.array([[0.5, 0.9, 0.1], [0.5, 0.2, 0.1]])  # beats reach twice, drawer-close once
    table = FrameTable(
        predicted=own,
        ground_truth=[0.0, 1.0],
        success=[False, False],
        task=tasks,
        episode=[0, 1],
        step=[0, 0],
        first_success_step=[-1, -1],
        is_expert=[True, True],
        goal_rewards=goal_rewards,
        goal_tasks=goal_tasks,
    )
    assert METRICS["goal_swap_accuracy"].compute(table, MetricSettings()).value == pytest.approx(3 / 4)
    same_scene = METRICS["same_scene_goal_swap_accuracy"].compute(table, MetricSettings())
    assert same_scene.value == pytest.approx(1 / 2)
    assert same_scene.details == {"num_same_scene_goal_swap_pairs": 2}


def test_off_expert_probe_by_hand() -> None:
    table = frames(
        [[0, 5, 9, 10], [0, 2, 1, 0], [1, 0, 2, 0]], ["expert", "noisy", "random"], first_success=[2, -1, -1]
    )
    # The learned reward: right on the expert, high on the random policy's last frames (an exploitable optimum).
    table = with_predictions(table, np.array([0.0, 0.4, 0.8, 0.9, 0.1, 0.3, 0.2, 0.1, 0.2, 0.5, 0.85, 0.95]))
    probe = off_expert_probe(table)["drawer-close-v3"]
    # Success frames (R >= 9): 0.8 and 0.9 against 10 others, of which 0.95 beats both and 0.85 beats 0.8.
    assert probe["success_auroc"] == pytest.approx((20 - 3) / 20)
    assert probe["spearman_expert"] == pytest.approx(1.0)
    assert probe["spearman_heavy_noise"] is not None
    assert probe["expert_reward"] == pytest.approx(np.mean([0.0, 0.4, 0.8, 0.9]))
    assert probe["random_reward"] == pytest.approx(np.mean([0.2, 0.5, 0.85, 0.95]))
    assert probe["expert_above_random"] is False
    assert probe["random_above_success_median"] == pytest.approx(1 / 4)  # above the median success frame, 0.85
    # AUC 0.85 is just enough; the other two conditions fail.
    assert gate(probe) == ["expert reward below random", "25% random frames above the success median > 5%"]


def test_gate_passes_only_when_every_condition_holds() -> None:
    passing = {"success_auroc": 0.85, "expert_above_random": True, "random_above_success_median": 0.05}
    assert gate(passing) == []
    assert gate({**passing, "success_auroc": 0.84}) == ["success AUC 0.84 < 0.85"]
    assert gate({**passing, "random_above_success_median": 0.06}) == ["6% random frames above the success median > 5%"]
    assert gate({**passing, "expert_above_random": None}) == ["no clean expert or random rollouts"]
    assert gate({**passing, "success_auroc": None}) == ["no success frames"]


def test_summary_reports_the_headline_per_episode_kind() -> None:
    table = with_predictions(
        frames([[0, 2, 4, 1], [4, 2, 0, 3]], ["expert", "random"]), np.array([0, 1, 2, 0.5, 2, 1, 0, 1.5])
    )
    block = summarize(table, num_resamples=20)["overall"]
    assert block["time_balanced_expert"] == pytest.approx(1.0)
    assert block["time_balanced_random"] == pytest.approx(1.0)
    assert block["time_balanced_noisy"] is None
    assert block["num_rising_pairs"] + block["num_falling_pairs"] == 12
