"""The RL sweep's statistics against values computed by hand: paired bootstrap intervals over seeds, and rliable's
interquartile mean and probability of improvement across tasks."""

from __future__ import annotations

import pytest

from vlm_reward_wrappers.rl.statistics import across_tasks, paired_interval, rank_correlation


def test_paired_intervals_are_the_bootstrap_percentiles_of_the_seeds_differences() -> None:
    assert paired_interval([]) is None
    assert paired_interval([0.2, 0.2, 0.2]) == (0.2, 0.2, 0.2)  # every resample has the same mean
    # Two seeds: resample means 0.1, 0.2, 0.3 with chances 1/4, 1/2, 1/4, so the 2.5% and 97.5% points are the ends.
    assert paired_interval([0.1, 0.3]) == (0.2, 0.1, 0.3)
    # Three seeds 0, 0, 1: a resample of three zeros has chance (2/3)^3 = 0.30 > 0.025; of three ones 1/27 > 0.025.
    mean, low, high = paired_interval([0.0, 0.0, 1.0])  # type: ignore[misc]
    assert (mean, low, high) == (pytest.approx(1 / 3), 0.0, 1.0)


def test_across_tasks_gives_rliable_s_iqm_and_probability_of_improvement() -> None:
    scores = {
        "sparse": {"reach-v3": {0: 0.0, 1: 0.0, 2: 0.0, 3: 0.0}},
        "triplet": {"reach-v3": {0: 0.0, 1: 1.0, 2: 2.0, 3: 3.0}, "door-open-v3": {0: 5.0}},  # no sparse there
    }
    summary = across_tasks(scores, resamples=500)
    triplet, sparse = summary["triplet"], summary["sparse"]
    assert triplet["tasks"] == ["reach-v3"] and triplet["runs"] == 4
    assert triplet["iqm"] == pytest.approx(1.5)  # the mean of the middle half of 0, 1, 2, 3
    # P(X > Y) + P(X = Y) / 2 over every pair of a triplet run and a sparse run: (0.5 + 1 + 1 + 1) / 4.
    assert triplet["probability_of_improvement"] == pytest.approx(0.875)
    low, high = triplet["probability_of_improvement_interval"]
    assert low <= 0.875 <= high <= 1.0
    assert sparse["iqm"] == 0.0 and sparse["probability_of_improvement"] is None


def test_rank_correlations_and_their_intervals() -> None:
    assert rank_correlation([1, 2], [1, 2]) is None  # below three pairs
    assert rank_correlation([1, 2, 3, 4], [40, 30, 20, 10]) == (-1.0, -1.0, -1.0)  # every resample: reversed ranks
    rho, low, high = rank_correlation([1, 2, 3, 4, 5, 6], [1, 3, 2, 5, 4, 6])  # type: ignore[misc]
    assert rho == pytest.approx(1 - 6 * (1 + 1 + 1 + 1) / (6 * 35))  # 1 - 6 sum(d^2) / (n (n^2 - 1))
    assert low < rho <= high <= 1.0
