"""Time-balanced accuracy: the headline metric, one that no clock rising with the step can pass.

Within an episode, Meta-World's reward R mostly rises with time on an expert's
path, so a reward that only counts steps orders most same-episode pairs right
(time alone: 0.93 of them on the quick preset). Off the expert path R also
falls: a noisy expert knocks the object away, a random policy drifts. This
metric scores every pair of frames of one episode whose R differ by more than
``delta``, splits them by whether R *rises* or *falls* from the earlier frame to
the later, and averages the two accuracies:

    acc = ½ · (accuracy on rising pairs + accuracy on falling pairs)

Any reward that increases strictly with the step within each episode orders
every rising pair right and every falling pair wrong, so it scores exactly 0.5,
whatever else it knows about the episode (expert flag, noise, outcome): within
one episode that knowledge is a constant. Meta-World's own reward scores 1.
Every pair of every episode counts (no sampling cap); ties in r̂ count half.

Example:
    >>> truth = np.array([0.0, 2.0, 4.0, 1.0])     # rises, then falls
    >>> step = np.arange(4)
    >>> one = dict(ground_truth=truth, episode=np.zeros(4, int), step=step)
    >>> time_balanced_accuracy(predicted=step * 1.0, **one)   # a clock
    0.5
    >>> time_balanced_accuracy(predicted=truth, **one)        # the ground truth
    1.0
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

from vlm_reward_wrappers.metrics.registry import MetricResult, MetricSettings, ratio, register_metric
from vlm_reward_wrappers.metrics.table import FrameTable, check_arrays

EPISODE_KINDS = ("expert", "noisy", "random")
"""How a frame table's episodes are split in the details: clean experts (no action noise), experts with action
noise, and random-action episodes (without ``noise_std``, every expert episode counts as ``expert``)."""


@dataclass(frozen=True)
class EpisodePairs:
    """Per episode: the summed scores and the counts of its rising and falling pairs (arrays indexed by code)."""

    rising_score: np.ndarray
    rising_count: np.ndarray
    falling_score: np.ndarray
    falling_count: np.ndarray

    def rising(self, copies: np.ndarray) -> np.ndarray:
        """Accuracy on rising pairs with each episode weighted by ``(R, E)`` copy counts: ``(R,)``, NaN for none."""
        return ratio(copies @ self.rising_score, copies @ self.rising_count)

    def falling(self, copies: np.ndarray) -> np.ndarray:
        """Accuracy on falling pairs, likewise."""
        return ratio(copies @ self.falling_score, copies @ self.falling_count)

    def balanced(self, copies: np.ndarray) -> np.ndarray:
        """The time-balanced accuracy, likewise: NaN where rising or falling pairs are missing."""
        return 0.5 * (self.rising(copies) + self.falling(copies))

    def within(self, copies: np.ndarray) -> np.ndarray:
        """Plain within-episode ranking accuracy, likewise: every pair weighs the same, rising or falling."""
        return ratio(
            copies @ (self.rising_score + self.falling_score), copies @ (self.rising_count + self.falling_count)
        )

    @property
    def all_episodes(self) -> np.ndarray:
        """Copy counts ``(1, E)`` of the table itself: every episode once."""
        return np.ones((1, len(self.rising_count)))


def _value(values: np.ndarray) -> float | None:
    """The one value of a ``(1,)`` result, None for NaN."""
    return None if np.isnan(values[0]) else float(values[0])


def episode_pairs(
    predicted: np.ndarray, ground_truth: np.ndarray, episode_code: np.ndarray, step: np.ndarray, delta: float
) -> EpisodePairs:
    """Score every same-episode pair with |ΔR| > ``delta``; sum per episode (codes 0..E-1) and direction."""
    size = int(episode_code.max()) + 1
    sums = np.zeros((4, size))
    order = np.lexsort((step, episode_code))
    bounds = np.flatnonzero(np.r_[True, np.diff(episode_code[order]) != 0, True])
    for begin, end in itertools.pairwise(bounds):
        frames = order[begin:end]
        earlier, later = _later_pairs(len(frames))  # every pair (i, j) with frame j after frame i
        truth, reward = ground_truth[frames], predicted[frames]
        truth_change = truth[later] - truth[earlier]
        reward_change = reward[later] - reward[earlier]
        on_rise, on_fall = reward_change[truth_change > delta], reward_change[truth_change < -delta]
        code = episode_code[frames[0]]  # a tie of the reward scores half
        sums[0, code] = np.count_nonzero(on_rise > 0) + 0.5 * np.count_nonzero(on_rise == 0)
        sums[1, code] = len(on_rise)
        sums[2, code] = np.count_nonzero(on_fall < 0) + 0.5 * np.count_nonzero(on_fall == 0)
        sums[3, code] = len(on_fall)
    return EpisodePairs(*sums)


@functools.lru_cache(maxsize=16)
def _later_pairs(length: int) -> tuple[np.ndarray, np.ndarray]:
    """Indices ``(i, j)`` of every pair with ``i < j`` among ``length`` frames (an episode's length repeats)."""
    return np.triu_indices(length, k=1)


def table_episode_pairs(table: FrameTable, delta: float) -> EpisodePairs:
    """:func:`episode_pairs` of a frame table, computed once per table and delta (several metrics read them)."""
    return table.cached(
        ("episode_pairs", delta),
        lambda: episode_pairs(table.predicted, table.ground_truth, table.episode_codes, table.step, delta),
    )


def time_balanced_accuracy(
    predicted: np.ndarray, ground_truth: np.ndarray, episode: np.ndarray, step: np.ndarray, *, delta: float = 0.5
) -> float | None:
    """½ · (accuracy on pairs where R rises with time + accuracy on pairs where it falls), within episodes.

    Pairs are two frames of one episode whose ground-truth rewards differ by more
    than ``delta``, all of them; each scores 1 when r̂ orders it like R, 0.5 on a
    tie of r̂, 0 otherwise; accuracies pool the pairs of all episodes. ``None``
    when there is no rising or no falling pair.

    Example:
        >>> time_balanced_accuracy(np.array([3.0, 2.0, 1.0]), np.array([0.0, 2.0, 0.0]),
        ...                        np.zeros(3, int), np.arange(3))   # right on the fall, wrong on the rise
        0.5
    """
    arrays = check_arrays(predicted=predicted, ground_truth=ground_truth, episode=episode, step=step)
    codes = np.unique(arrays["episode"], return_inverse=True)[1].reshape(-1)
    pairs = episode_pairs(
        arrays["predicted"].astype(float), arrays["ground_truth"].astype(float), codes, arrays["step"], delta
    )
    return _value(pairs.balanced(pairs.all_episodes))


def episode_kinds(table: FrameTable) -> np.ndarray:
    """Each episode's kind (by episode code): ``expert``, ``noisy`` or ``random`` (see :data:`EPISODE_KINDS`)."""
    first = np.unique(table.episode_codes, return_index=True)[1]
    noisy = table.noise_std[first] > 0 if table.noise_std is not None else np.zeros(len(first), bool)
    return np.where(~table.is_expert[first], "random", np.where(noisy, "noisy", "expert"))


@register_metric(
    "time_balanced_accuracy",
    label="time-balanced acc.",
    description="within each episode, every pair of frames whose Meta-World rewards differ by more than delta; the "
    "mean of the accuracy on pairs where that reward rises with time and on pairs where it falls (a reward that "
    "only counts steps scores exactly 0.5; Meta-World's reward 1)",
    chance=0.5,
    interval=True,
    headline=True,
    order=0,
)
def time_balanced_metric(table: FrameTable, settings: MetricSettings) -> MetricResult:
    """:func:`time_balanced_accuracy` with its resampling function; details: rising, falling, per episode kind."""
    pairs = table_episode_pairs(table, settings.delta)
    value = _value(pairs.balanced(pairs.all_episodes))
    kinds = episode_kinds(table)
    details: dict[str, float | int | None] = {
        "time_balanced_rising": _value(pairs.rising(pairs.all_episodes)),
        "time_balanced_falling": _value(pairs.falling(pairs.all_episodes)),
        "num_rising_pairs": int(pairs.rising_count.sum()),
        "num_falling_pairs": int(pairs.falling_count.sum()),
    }
    for kind in EPISODE_KINDS:
        details[f"time_balanced_{kind}"] = _value(pairs.balanced((kinds == kind)[None, :].astype(float)))
    return MetricResult(value, pairs.balanced if value is not None else None, details)


@register_metric(
    "ranking_accuracy_within",
    label="within-episode acc.",
    description="ranking accuracy over every same-episode pair of frames whose Meta-World rewards differ by more "
    "than delta (all pairs, no cap; a clock scores high here on expert episodes)",
    chance=0.5,
    interval=True,
    headline=True,
    order=1,
)
def within_episode_metric(table: FrameTable, settings: MetricSettings) -> MetricResult:
    """Plain within-episode ranking accuracy over all pairs, with its resampling function; details per episode kind."""
    pairs = table_episode_pairs(table, settings.delta)
    value = _value(pairs.within(pairs.all_episodes))
    kinds = episode_kinds(table)
    details = {
        f"ranking_accuracy_within_{kind}": _value(pairs.within((kinds == kind)[None, :].astype(float)))
        for kind in EPISODE_KINDS
    }
    return MetricResult(value, pairs.within if value is not None else None, details)
