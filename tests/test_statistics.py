"""The paired seed-and-episode bootstrap against values worked out by hand on tiny frame tables."""

from __future__ import annotations

import json

import numpy as np
import pytest

from vlm_reward_wrappers.metrics import FrameTable, MetricSettings
from vlm_reward_wrappers.study.statistics import (
    MIN_RESAMPLES,
    Draws,
    compare_objectives,
    draw_resamples,
    holm,
    macro_values,
    paired_bootstrap,
    pooled_values,
    shared_episodes,
    verdict,
)

GOALS = 20


def swap_table(
    correct: list[int], *, tasks: int = 2, frames: int = 5, episode_ids: list[int] | None = None
) -> FrameTable:
    """Episode e (task ``e % tasks``): each of its frames beats ``correct[e]`` of the 20 other goals.

    Its goal-swap accuracy is ``correct[e] / 20``; no goal column is a frame's own task.
    """
    ids = np.array(episode_ids if episode_ids is not None else range(len(correct)))
    n = len(correct) * frames
    row_episode = np.repeat(np.arange(len(correct)), frames)
    beaten = np.arange(GOALS)[None, :] < np.array(correct)[row_episode][:, None]
    return FrameTable(
        predicted=np.zeros(n),
        ground_truth=np.tile(np.arange(frames, dtype=float), len(correct)),
        success=np.zeros(n, bool),
        task=np.array([f"task-{e % tasks}" for e in range(len(correct))])[row_episode],
        episode=ids[row_episode],
        step=np.tile(np.arange(frames), len(correct)),
        first_success_step=np.full(n, -1),
        is_expert=np.ones(n, bool),
        goal_rewards=np.where(beaten, -1.0, 1.0),
        goal_tasks=np.array([f"goal-{j}" for j in range(GOALS)]),
    )


def ranking_table(seed: int, *, tasks: int = 2, episodes: int = 4, frames: int = 8) -> FrameTable:
    """Random rewards loosely following a rising ground truth, ``episodes`` per task."""
    rng = np.random.default_rng(seed)
    count = tasks * episodes
    n = count * frames
    truth = np.tile(np.arange(frames, dtype=float), count)
    episode = np.repeat(np.arange(count), frames)
    return FrameTable(
        predicted=truth + rng.normal(0, 3, n),
        ground_truth=truth,
        success=np.zeros(n, bool),
        task=np.array([f"task-{e % tasks}" for e in range(count)])[episode],
        episode=episode,
        step=np.tile(np.arange(frames), count),
        first_success_step=np.full(n, -1),
        is_expert=np.ones(n, bool),
    )


def test_same_seed_gives_identical_output_and_another_seed_other_intervals() -> None:
    tables = {name: [ranking_table(10 * k + s) for s in range(3)] for k, name in enumerate(["a", "b", "c"])}
    first = paired_bootstrap(tables, "ranking_accuracy", seed=3)
    second = paired_bootstrap(tables, "ranking_accuracy", seed=3)
    assert json.dumps(first) == json.dumps(second)
    assert json.loads(json.dumps(first)) == first
    other = paired_bootstrap(tables, "ranking_accuracy", seed=4)
    assert other["objectives"]["a"]["pooled"] == first["objectives"]["a"]["pooled"]
    assert other["objectives"]["a"]["pooled_ci"] != first["objectives"]["a"]["pooled_ci"]


def test_objective_against_an_identical_one_differs_by_exactly_zero() -> None:
    seeds = [ranking_table(s) for s in range(3)]
    copies = [ranking_table(s) for s in range(3)]  # equal arrays, other objects
    result = paired_bootstrap({"a": seeds, "b": copies}, "ranking_accuracy")
    low, high = result["objectives"]["b"]["pooled_ci"]
    assert low < high  # the resamples really vary; only their paired difference is 0
    assert result["best"] == "a"  # a tie goes to the first listed
    assert result["paired"] == {
        "b": {
            "difference": 0.0,
            "ci": [0.0, 0.0],
            "verdict": "not distinguishable",
            "p_value": 1.0,
            "skipped": 0,
            "holm_verdict": "not distinguishable",
            "macro_difference": 0.0,
            "macro_ci": [0.0, 0.0],
            "macro_verdict": "not distinguishable",
            "macro_p_value": 1.0,
            "macro_skipped": 0,
        }
    }


def test_objective_better_on_every_episode_is_better_although_its_interval_overlaps() -> None:
    # Episodes differ a lot in accuracy (wide intervals); "good" beats one more goal than "bad" in every episode.
    bad = [2, 18, 5, 15, 8, 12, 3, 17]
    good = [k + 1 for k in bad]
    result = paired_bootstrap({"bad": [swap_table(bad)] * 2, "good": [swap_table(good)] * 2}, "goal_swap_accuracy")
    assert result["best"] == "good"
    objectives = result["objectives"]
    assert objectives["good"]["pooled"] == pytest.approx(np.mean(good) / GOALS)
    assert objectives["good"]["pooled_ci"][0] < objectives["bad"]["pooled_ci"][1]  # unpaired: overlapping
    paired = result["paired"]["bad"]
    assert paired["difference"] == pytest.approx(1 / GOALS)
    assert paired["ci"] == pytest.approx([1 / GOALS, 1 / GOALS])  # the same episodes in every resample
    assert (paired["verdict"], paired["macro_verdict"], paired["holm_verdict"]) == ("better", "better", "better")
    assert paired["p_value"] == 0.0


def test_a_declared_reference_is_compared_with_its_family_only_and_holm_corrects_the_verdicts() -> None:
    bad = [2, 18, 5, 15, 8, 12, 3, 17]
    tables = {
        "oracle": [swap_table([GOALS] * 8)] * 2,  # a reference row: shown, never part of the family
        "plain": [swap_table(bad)] * 2,
        "better": [swap_table([k + 1 for k in bad])] * 2,
        "same": [swap_table(bad)] * 2,
    }
    result = paired_bootstrap(tables, "goal_swap_accuracy", reference="plain", family=["better", "same"])
    assert (result["best"], result["reference"]) == ("better", "plain")  # the best of the family, not the oracle
    assert set(result["paired"]) == {"better", "same"}
    assert result["paired"]["better"]["difference"] == pytest.approx(-1 / GOALS)  # reference − row
    assert result["paired"]["better"]["holm_verdict"] == "worse"  # the reference is worse than "better"
    assert result["paired"]["same"]["holm_verdict"] == "not distinguishable"
    # Without a declared reference, the comparison is against the best row, chosen after the data.
    assert paired_bootstrap(tables, "goal_swap_accuracy")["reference"] == "oracle"


def test_holm_is_stricter_than_each_test_alone() -> None:
    p_values = {"a": 0.02, "b": 0.03, "c": 0.04}  # each below 0.05 alone
    assert holm(p_values, 0.05) == {"a": False, "b": False, "c": False}  # 0.02 > 0.05 / 3
    assert holm({"a": 0.01, "b": 0.02}, 0.05) == {"a": True, "b": True}  # 0.01 <= 0.025, 0.02 <= 0.05


def test_verdicts() -> None:
    assert verdict([0.01, 0.2]) == "better"
    assert verdict([-0.2, -0.01]) == "worse"
    assert verdict([-0.01, 0.2]) == "not distinguishable"
    assert verdict([0.0, 0.2]) == "not distinguishable"
    assert verdict(None) == "not distinguishable"


def test_macro_is_the_mean_of_per_task_values_and_pooled_weighs_pairs() -> None:
    # Task A, one episode, R = 0, 1, 2, 3: 6 pairs; r̂ = R scores 1, r̂ = -R scores 0.
    # Task B, one episode, R = 0, 0.5, 1.0, 1.2, r̂ = 0, 5, 1, 2: 3 pairs (> 0.5 apart), 2 right (tests of ranking).
    def table(sign: float) -> FrameTable:
        return FrameTable(
            predicted=np.array([0.0, sign, 2 * sign, 3 * sign, 0.0, 5.0, 1.0, 2.0]),
            ground_truth=np.array([0.0, 1.0, 2.0, 3.0, 0.0, 0.5, 1.0, 1.2]),
            success=np.zeros(8, bool),
            task=np.repeat(["A", "B"], 4),
            episode=np.repeat([0, 1], 4),
            step=np.tile(np.arange(4), 2),
            first_success_step=np.full(8, -1),
            is_expert=np.ones(8, bool),
        )

    result = paired_bootstrap({"x": [table(1.0), table(-1.0)]}, "ranking_accuracy")["objectives"]["x"]
    assert result["macro_per_seed"] == pytest.approx([(1 + 2 / 3) / 2, (0 + 2 / 3) / 2])
    assert result["macro"] == pytest.approx(7 / 12)
    assert result["per_seed"] == pytest.approx([8 / 9, 2 / 9])
    assert result["pooled"] == pytest.approx(5 / 9)


def test_per_task_copies_follow_episode_ids_not_positions() -> None:
    # Episodes e0..e5 beat 1, 3, 5, 7, 9, 11 goals; task 0 holds e0, e2, e4, task 1 e1, e3, e5.
    # Their ids 10, 3, 7, 1, 20, 5 sort to codes: 0 = e3, 1 = e1, 2 = e5 (task 1); 3 = e2, 4 = e0, 5 = e4 (task 0).
    table = swap_table([1, 3, 5, 7, 9, 11], episode_ids=[10, 3, 7, 1, 20, 5])
    episodes = shared_episodes({"x": [table]})
    assert [codes.tolist() for codes in episodes.task_codes] == [[3, 4, 5], [0, 1, 2]]
    draws = Draws(np.array([[0.0, 1.0, 2.0, 3.0, 0.0, 0.0]]), np.ones((1, 1)))
    # Task 0 draws e2 three times: 5 / 20. Task 1 draws e1 once and e5 twice: (3 + 2 * 11) / 60.
    macro = macro_values([table], "goal_swap_accuracy", MetricSettings(), draws, episodes)
    assert macro.resampled[0, 0] == pytest.approx((5 / 20 + 25 / 60) / 2)
    pooled = pooled_values([table], "goal_swap_accuracy", MetricSettings(), draws)
    assert pooled.resampled[0, 0] == pytest.approx((3 + 2 * 11 + 3 * 5) / 120)


def test_draws_are_stratified_by_task_and_resample_seeds() -> None:
    episodes = shared_episodes({"x": [swap_table([1, 3, 5, 7, 9], tasks=2)]})  # task 0: 3 episodes, task 1: 2
    draws = draw_resamples(episodes, num_seeds=3, num_resamples=500, seed=0)
    assert np.all(draws.episode_copies[:, [0, 2, 4]].sum(axis=1) == 3)
    assert np.all(draws.episode_copies[:, [1, 3]].sum(axis=1) == 2)
    assert np.all(draws.seed_copies.sum(axis=1) == 3)
    assert len(np.unique(draws.seed_copies, axis=0)) == 10  # every multiset of 3 seeds out of 3 occurs


def test_interval_widens_when_seeds_disagree() -> None:
    # Within a seed every episode has the same accuracy: episode resampling alone gives a zero-width interval.
    agree = [swap_table([15] * 6)] * 3
    disagree = [swap_table([k] * 6) for k in (20, 15, 10)]  # 1.0, 0.75, 0.5
    result = paired_bootstrap({"agree": agree, "disagree": disagree}, "goal_swap_accuracy")["objectives"]
    assert result["agree"]["pooled_ci"] == pytest.approx([0.75, 0.75])
    assert result["disagree"]["pooled"] == pytest.approx(0.75)
    # Three seeds drawn with replacement: all three the worst (or best) seed has chance 1/27 > 2.5%.
    assert result["disagree"]["pooled_ci"] == pytest.approx([0.5, 1.0])


def test_seeds_are_paired_across_objectives() -> None:
    # Seeds disagree widely, but on each seed "high" beats "low" by exactly 0.1: seed draws are shared.
    high = [swap_table([k] * 6) for k in (20, 15, 10)]
    low = [swap_table([k - 2] * 6) for k in (20, 15, 10)]
    paired = paired_bootstrap({"low": low, "high": high}, "goal_swap_accuracy")["paired"]["low"]
    assert paired["ci"] == pytest.approx([0.1, 0.1])
    assert paired["verdict"] == "better"


def test_resamples_without_a_value_are_skipped_and_counted() -> None:
    # Only episode 0 is a successful expert one: VOC is None on resamples that do not draw it.
    table = ranking_table(0, tasks=1, episodes=4)
    voc_table = FrameTable(
        table.predicted,
        table.ground_truth,
        table.success,
        table.task,
        table.episode,
        table.step,
        np.where(table.episode == 0, 6, -1),
        table.is_expert,
    )
    result = paired_bootstrap({"x": [voc_table]}, "voc", seed=5)["objectives"]["x"]
    draws = draw_resamples(shared_episodes({"x": [voc_table]}), 1, MIN_RESAMPLES, 5)
    missing = int((draws.episode_copies[:, 0] == 0).sum())
    assert missing > 0
    assert (result["pooled_skipped"], result["macro_skipped"]) == (missing, missing)
    assert result["pooled_ci"] is not None


def test_no_value_anywhere_gives_no_best() -> None:
    tables = {"a": [ranking_table(0)], "b": [ranking_table(1)]}  # no goal rewards
    result = paired_bootstrap(tables, "goal_swap_accuracy")
    assert (result["best"], result["paired"]) == (None, {})
    assert result["objectives"]["a"]["pooled"] is None
    assert result["objectives"]["a"]["pooled_ci"] is None


def test_more_resamples_allowed_fewer_refused() -> None:
    tables = {"a": [swap_table([3, 9, 12, 18])]}
    assert paired_bootstrap(tables, "goal_swap_accuracy", num_resamples=2500)["num_resamples"] == 2500
    with pytest.raises(ValueError, match="num_resamples"):
        paired_bootstrap(tables, "goal_swap_accuracy", num_resamples=MIN_RESAMPLES - 1)


def test_inputs_must_share_episodes_and_seed_counts() -> None:
    with pytest.raises(ValueError, match="other episodes"):
        paired_bootstrap({"a": [swap_table([1, 2])], "b": [swap_table([1, 2, 3])]}, "goal_swap_accuracy")
    with pytest.raises(ValueError, match="number of seed tables"):
        paired_bootstrap({"a": [swap_table([1, 2])], "b": [swap_table([1, 2])] * 2}, "goal_swap_accuracy")
    with pytest.raises(ValueError, match="resample"):
        paired_bootstrap({"a": [ranking_table(0)]}, "pearson")


def test_compare_objectives_runs_the_headline_metrics_on_shared_draws() -> None:
    tables = {"a": [ranking_table(0)], "b": [ranking_table(1)]}
    results = compare_objectives(tables, seed=2)
    assert list(results) == [
        "time_balanced_accuracy",
        "ranking_accuracy_within",
        "ranking_accuracy_across",
        "ranking_accuracy",
        "voc",
        "goal_swap_accuracy",
        "same_scene_goal_swap_accuracy",
    ]
    assert results["ranking_accuracy"] == paired_bootstrap(tables, "ranking_accuracy", seed=2)


def test_no_objectives_gives_an_empty_comparison() -> None:
    result = paired_bootstrap({}, "ranking_accuracy")
    assert (result["best"], result["objectives"], result["paired"], result["num_episodes"]) == (None, {}, {}, 0)
