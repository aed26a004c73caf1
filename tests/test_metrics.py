"""Reward metrics against values counted by hand on tiny arrays."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vlm_reward_wrappers.metrics import (
    FrameTable,
    RankingAccuracy,
    bootstrap_interval,
    ranking_accuracy,
    reward_correlations,
    success_auroc,
    summarize,
    value_order_correlation,
)

BLOCK_KEYS = {
    "time_balanced_accuracy",
    "time_balanced_accuracy_ci",
    "time_balanced_rising",
    "time_balanced_falling",
    "time_balanced_expert",
    "time_balanced_noisy",
    "time_balanced_random",
    "num_rising_pairs",
    "num_falling_pairs",
    "ranking_accuracy_within",
    "ranking_accuracy_within_ci",
    "ranking_accuracy_within_expert",
    "ranking_accuracy_within_noisy",
    "ranking_accuracy_within_random",
    "ranking_accuracy_across",
    "ranking_accuracy_across_ci",
    "num_across_pairs",
    "ranking_accuracy",
    "ranking_accuracy_ci",
    "voc",
    "voc_ci",
    "pearson",
    "spearman",
    "success_auroc",
    "num_frames",
    "num_episodes",
    "num_pairs",
    "goal_swap_accuracy",
    "goal_swap_accuracy_ci",
    "num_goal_swap_pairs",
    "same_scene_goal_swap_accuracy",
    "same_scene_goal_swap_accuracy_ci",
    "num_same_scene_goal_swap_pairs",
}


def one_task(n: int) -> np.ndarray:
    return np.array(["reach-v3"] * n)


# --------------------------------------------------------------------------- ranking accuracy


def test_perfect_ranking_scores_one() -> None:
    truth = np.arange(5.0)
    result = ranking_accuracy(2 * truth + 1, truth, one_task(5), np.zeros(5, int))
    assert result == RankingAccuracy(
        within=1.0, across=None, overall=1.0, num_within=10, num_across=0, per_task={"reach-v3": 1.0}
    )


def test_reversed_ranking_scores_zero() -> None:
    truth = np.arange(6.0)
    result = ranking_accuracy(-truth, truth, one_task(6), np.repeat([0, 1], 3))
    assert (result.within, result.across, result.overall) == (0.0, 0.0, 0.0)


def test_constant_prediction_scores_chance() -> None:
    truth = np.arange(6.0)
    result = ranking_accuracy(np.full(6, 3.0), truth, one_task(6), np.repeat([0, 1], 3))
    assert (result.within, result.across, result.overall) == (0.5, 0.5, 0.5)


def test_pairs_closer_than_delta_are_excluded() -> None:
    # R = 0, 0.5, 1.0, 1.2 with delta 0.5: a difference of exactly 0.5 is not "more than delta",
    # so the valid pairs are (0, 1.0), (0, 1.2), (0.5, 1.2). The prediction orders the first two
    # correctly and gets (0.5, 1.2) wrong (5 > 2): accuracy 2/3.
    truth = np.array([0.0, 0.5, 1.0, 1.2])
    result = ranking_accuracy(np.array([0.0, 5.0, 1.0, 2.0]), truth, one_task(4), np.zeros(4, int))
    assert result.num_within == 3
    assert result.within == pytest.approx(2 / 3)
    # With delta 0.1 every one of the 6 pairs is valid; (0, 0.5) and (1.0, 1.2) are right,
    # (0.5, 1.0) is wrong: 4/6.
    wider = ranking_accuracy(np.array([0.0, 5.0, 1.0, 2.0]), truth, one_task(4), np.zeros(4, int), delta=0.1)
    assert wider.num_within == 6
    assert wider.within == pytest.approx(4 / 6)


def test_tied_predictions_count_half() -> None:
    # Pairs (0, 2), (0, 4), (2, 4): the first is a tie in r̂, the others right: (0.5 + 1 + 1) / 3.
    result = ranking_accuracy(np.array([1.0, 1.0, 2.0]), np.array([0.0, 2.0, 4.0]), one_task(3), np.zeros(3, int))
    assert result.within == pytest.approx(2.5 / 3)


def test_within_and_across_are_separated() -> None:
    # Episode 0: R 0, 1; episode 1: R 2, 3. Both episodes are ordered right inside (2 within pairs),
    # but every frame of episode 0 gets a higher r̂ than any of episode 1 (4 across pairs, all wrong).
    truth = np.array([0.0, 1.0, 2.0, 3.0])
    predicted = np.array([0.0, 1.0, -10.0, -9.0])
    result = ranking_accuracy(predicted, truth, one_task(4), np.array([0, 0, 1, 1]))
    assert (result.num_within, result.num_across) == (2, 4)
    assert (result.within, result.across) == (1.0, 0.0)
    assert result.overall == pytest.approx(2 / 6)


def test_pairs_never_cross_tasks() -> None:
    # Task a is ranked right inside, task b too; comparing a with b would be all wrong.
    truth = np.array([0.0, 1.0, 5.0, 6.0])
    predicted = np.array([10.0, 11.0, 0.0, 1.0])
    task = np.array(["a", "a", "b", "b"])
    result = ranking_accuracy(predicted, truth, task, np.array([0, 0, 1, 1]))
    assert (result.num_within, result.num_across) == (2, 0)
    assert result.across is None
    assert result.overall == 1.0
    assert result.per_task == {"a": 1.0, "b": 1.0}


def test_no_valid_pair_gives_none() -> None:
    result = ranking_accuracy(np.array([0.0, 1.0]), np.array([3.0, 3.2]), one_task(2), np.array([0, 1]))
    assert (result.within, result.across, result.overall) == (None, None, None)
    assert (result.num_within, result.num_across, result.per_task) == (0, 0, {"reach-v3": None})


def random_dataset(num_episodes: int, length: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    n = num_episodes * length
    truth = rng.uniform(0, 10, n)
    predicted = truth + rng.normal(0, 3, n)
    return predicted, truth, one_task(n), np.repeat(np.arange(num_episodes), length)


def test_sampling_is_capped_and_deterministic() -> None:
    data = random_dataset(num_episodes=5, length=40)
    first = ranking_accuracy(*data, max_pairs=50, seed=3)
    again = ranking_accuracy(*data, max_pairs=50, seed=3)
    assert (first.num_within, first.num_across) == (50, 50)
    assert first == again
    assert first.overall > 0.6  # the noisy reward still orders most sampled pairs (0.77 on all of them)


def test_sampled_accuracy_estimates_the_full_one() -> None:
    data = random_dataset(num_episodes=6, length=50)
    full = ranking_accuracy(*data, max_pairs=10**9)
    sampled = ranking_accuracy(*data, max_pairs=3000)
    assert full.num_within > 3000 and full.num_across > 3000
    assert sampled.num_within == sampled.num_across == 3000
    # A uniform sample of 3000 pairs has a standard error of about 0.008.
    assert sampled.within == pytest.approx(full.within, abs=0.03)
    assert sampled.across == pytest.approx(full.across, abs=0.03)


def test_large_task_is_sampled_without_quadratic_work() -> None:
    # 20k frames of one task: 2e8 valid pairs, far too many to list.
    data = random_dataset(num_episodes=100, length=200)
    result = ranking_accuracy(*data, max_pairs=20000)
    assert (result.num_within, result.num_across) == (20000, 20000)
    assert 0.7 < result.overall < 1.0


def test_task_result_does_not_depend_on_other_tasks() -> None:
    predicted, truth, _, episode = random_dataset(num_episodes=6, length=30)
    task = np.repeat(["a", "b"], 90)
    both = ranking_accuracy(predicted, truth, task, episode, max_pairs=100)
    alone = ranking_accuracy(predicted[:90], truth[:90], task[:90], episode[:90], max_pairs=100)
    assert both.per_task["a"] == alone.overall


@pytest.mark.parametrize(
    "arguments, message",
    [
        ((np.zeros(3), np.zeros(4), one_task(3), np.zeros(3, int)), "ground_truth"),
        ((np.zeros(3), np.zeros(3), one_task(3), np.zeros(2, int)), "episode"),
        ((np.zeros(0), np.zeros(0), one_task(0), np.zeros(0, int)), "empty"),
        ((np.array([0.0, np.nan]), np.zeros(2), one_task(2), np.zeros(2, int)), "predicted"),
    ],
)
def test_ranking_rejects_bad_inputs(arguments: tuple, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ranking_accuracy(*arguments)


# --------------------------------------------------------------------------- VOC


def voc_of(predicted: list[float], first_success: int, *, expert: bool = True) -> float | None:
    n = len(predicted)
    return value_order_correlation(
        np.array(predicted), np.arange(n), np.zeros(n, int), np.full(n, first_success), np.full(n, expert)
    )


def test_voc_of_monotone_and_reversed_progress() -> None:
    assert voc_of([0.0, 0.1, 0.5, 0.9], first_success=3) == pytest.approx(1.0)
    assert voc_of([3.0, 2.0, 1.0, 0.0], first_success=3) == pytest.approx(-1.0)


def test_voc_ignores_frames_after_first_success() -> None:
    # Rising until the first success at step 3, then collapsing: only the rise counts.
    assert voc_of([0.0, 1.0, 2.0, 3.0, -5.0, -6.0], first_success=3) == pytest.approx(1.0)
    assert voc_of([0.0, 1.0, 2.0, 3.0, -5.0, -6.0], first_success=5) < 0.5


def test_voc_orders_frames_by_step_and_averages_episodes() -> None:
    # Episode 7 rises (ρ = 1) and episode 9 has a constant reward (ρ = 0); frames are shuffled.
    predicted = np.array([0.0, 1.0, 2.0, 4.0, 4.0, 4.0])
    step = np.array([0, 1, 2, 0, 1, 2])
    episode = np.array([7, 7, 7, 9, 9, 9])
    shuffle = np.array([5, 2, 0, 4, 1, 3])
    voc = value_order_correlation(
        predicted[shuffle], step[shuffle], episode[shuffle], np.full(6, 2)[shuffle], np.ones(6, bool)
    )
    assert voc == pytest.approx(0.5)


def test_voc_ignores_non_expert_and_unsuccessful_episodes() -> None:
    # Episode 0: successful expert, rising. Episode 1: perturbed (not expert), falling.
    # Episode 2: expert that never succeeds, falling. Only episode 0 counts.
    rising, falling = [0.0, 1.0, 2.0, 3.0], [3.0, 2.0, 1.0, 0.0]
    voc = value_order_correlation(
        np.array(rising + falling + falling),
        np.tile(np.arange(4), 3),
        np.repeat([0, 1, 2], 4),
        np.repeat([3, 3, -1], 4),
        np.repeat([True, False, True], 4),
    )
    assert voc == pytest.approx(1.0)


def test_voc_is_none_when_no_episode_qualifies() -> None:
    assert voc_of([0.0, 1.0, 2.0], first_success=-1) is None
    assert voc_of([0.0, 1.0, 2.0], first_success=2, expert=False) is None
    assert voc_of([0.0, 1.0, 2.0], first_success=1) is None  # only 2 frames up to the success


def test_voc_rejects_per_episode_flags_that_vary() -> None:
    with pytest.raises(ValueError, match="first_success_step"):
        value_order_correlation(np.zeros(3), np.arange(3), np.zeros(3, int), np.array([2, 2, 1]), np.ones(3, bool))


# --------------------------------------------------------------------------- frame-level metrics


def test_reward_correlations_by_hand() -> None:
    # Ranks (1, 2, 3) vs (1, 3, 2): Σd² = 2, ρ = 1 − 6·2 / (3·8) = 0.5; Pearson is the same here.
    pearson, spearman = reward_correlations(np.array([1.0, 2.0, 3.0]), np.array([1.0, 3.0, 2.0]))
    assert pearson == pytest.approx(0.5)
    assert spearman == pytest.approx(0.5)


def test_reward_correlations_none_for_constant_or_tiny_input() -> None:
    assert reward_correlations(np.full(4, 2.0), np.arange(4.0)) == (None, None)
    assert reward_correlations(np.arange(4.0), np.full(4, 2.0)) == (None, None)
    assert reward_correlations(np.array([0.0, 1.0]), np.array([0.0, 1.0])) == (None, None)


def test_success_auroc_by_hand() -> None:
    # Successes 0.35, 0.8 vs failures 0.1, 0.4: 0.35 beats 0.1, 0.8 beats both: 3 of 4 pairs.
    assert success_auroc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1])) == pytest.approx(0.75)
    # Successes 1, 2 vs failure 1: a tie (0.5) and a win (1): 1.5 / 2.
    assert success_auroc(np.array([1.0, 1.0, 2.0]), np.array([False, True, True])) == pytest.approx(0.75)


def test_success_auroc_none_when_one_class_is_absent() -> None:
    assert success_auroc(np.arange(3.0), np.zeros(3, bool)) is None
    assert success_auroc(np.arange(3.0), np.ones(3, bool)) is None


# --------------------------------------------------------------------------- bootstrap


def test_bootstrap_interval_contains_the_estimate() -> None:
    values = np.repeat(np.linspace(0.0, 1.0, 20), 3)
    episode = np.repeat(np.arange(20), 3)
    interval = bootstrap_interval(lambda indices, ids: float(values[indices].mean()), episode, num_resamples=200)
    assert interval is not None
    low, high = interval
    assert low < values.mean() < high
    assert high - low < 0.5


def test_bootstrap_gives_duplicated_episodes_fresh_ids() -> None:
    episode = np.array([5, 5, 8, 8, 8, 9])
    seen = []

    def metric(indices: np.ndarray, ids: np.ndarray) -> float:
        seen.append((indices, ids))
        return 0.0

    bootstrap_interval(metric, episode, num_resamples=30)
    sizes = {5: 2, 8: 3, 9: 1}
    for indices, ids in seen:
        assert len(indices) == len(ids)
        assert sorted(set(ids.tolist())) == [0, 1, 2]  # three draws, three trajectories
        for draw in range(3):
            drawn = episode[indices[ids == draw]]
            assert len(set(drawn.tolist())) == 1 and len(drawn) == sizes[drawn[0]]


def test_bootstrap_interval_none_with_too_few_values() -> None:
    episode = np.arange(5)
    assert bootstrap_interval(lambda indices, ids: None, episode) is None
    assert bootstrap_interval(lambda indices, ids: 1.0, episode, num_resamples=5) is None


# --------------------------------------------------------------------------- summary


def small_run(seed: int = 0) -> dict[str, np.ndarray]:
    """Two tasks, six 20-step episodes each: experts (succeed at step 14) and perturbed ones."""
    rng = np.random.default_rng(seed)
    columns: dict[str, list] = {key: [] for key in ("predicted", "ground_truth", "success", "task", "episode")}
    columns.update(step=[], first_success_step=[], is_expert=[])
    for number in range(12):
        expert = number % 2 == 0
        step = np.arange(20)
        truth = np.clip(step / 2 + rng.normal(0, 0.5 if expert else 3, 20), 0, 10)
        first_success = 14 if expert else -1
        columns["predicted"].append(truth + rng.normal(0, 1, 20))
        columns["ground_truth"].append(truth)
        columns["success"].append(step >= first_success if expert else np.zeros(20, bool))
        columns["task"].append(np.full(20, "reach-v3" if number < 6 else "push-v3"))
        columns["episode"].append(np.full(20, 100 + number))
        columns["step"].append(step)
        columns["first_success_step"].append(np.full(20, first_success))
        columns["is_expert"].append(np.full(20, expert))
    return {key: np.concatenate(value) for key, value in columns.items()}


def test_summarize_is_json_ready_with_documented_keys() -> None:
    run = small_run()
    report = summarize(FrameTable(**run), num_resamples=50)
    assert json.loads(json.dumps(report)) == report
    assert set(report) == {"overall", "per_task"}
    assert set(report["per_task"]) == {"reach-v3", "push-v3"}
    for block in [report["overall"], *report["per_task"].values()]:
        assert set(block) == BLOCK_KEYS
        low, high = block["ranking_accuracy_ci"]
        assert low <= block["ranking_accuracy"] <= high
    overall = report["overall"]
    assert (overall["num_frames"], overall["num_episodes"]) == (240, 12)
    ranks = ranking_accuracy(run["predicted"], run["ground_truth"], run["task"], run["episode"])
    assert overall["ranking_accuracy"] == ranks.overall
    assert overall["num_pairs"] == ranks.num_within + ranks.num_across
    assert report["per_task"]["push-v3"]["ranking_accuracy"] == ranks.per_task["push-v3"]
    voc = value_order_correlation(
        run["predicted"], run["step"], run["episode"], run["first_success_step"], run["is_expert"]
    )
    assert overall["voc"] == pytest.approx(voc)


def test_summarize_interval_matches_recomputing_each_resample() -> None:
    # With every pair scored, re-weighting the pairs is exactly a recomputation on the resample.
    run = small_run(seed=1)
    report = summarize(FrameTable(**run), num_resamples=30, seed=4)

    def ranking(indices: np.ndarray, ids: np.ndarray) -> float | None:
        return ranking_accuracy(
            run["predicted"][indices], run["ground_truth"][indices], run["task"][indices], ids, max_pairs=10**9
        ).overall

    expected = bootstrap_interval(ranking, run["episode"], num_resamples=30, seed=4)
    assert report["overall"]["ranking_accuracy_ci"] == pytest.approx(list(expected))


def test_summarize_keeps_unavailable_metrics_none() -> None:
    run = small_run()
    run["is_expert"] = np.zeros_like(run["is_expert"])
    run["success"] = np.zeros_like(run["success"])
    report = summarize(FrameTable(**run), num_resamples=20)
    for block in [report["overall"], *report["per_task"].values()]:
        assert (block["voc"], block["voc_ci"], block["success_auroc"]) == (None, None, None)
    json.dumps(report)


def test_summarize_names_the_bad_argument() -> None:
    run = small_run()
    run["step"] = run["step"][:-1]
    with pytest.raises(ValueError, match="step"):
        summarize(FrameTable(**run))
