"""The off-expert probe: does the reward hold on the states an agent visits, not only on demonstrations?

An agent's rollouts are neither clean demonstrations nor cut at success. Per
task, on episodes run to their full length, the probe asks what an agent
trained on the reward would find:

* ``success_auroc``: do success frames score above the others?
* ``spearman_expert`` / ``spearman_heavy_noise`` / ``spearman_random``: within an
  episode, does the reward move with Meta-World's reward, for clean experts, experts
  with the largest action noise of the data, and a random policy (mean over episodes)?
* ``expert_reward`` and ``random_reward``: mean reward per step of clean experts and of
  the random policy; ``expert_above_random``: is the first higher?
* ``random_above_success_median``: the share of the random policy's non-success frames that
  score above the median success frame: optima an agent can reach without doing the task.

:func:`gate` turns a task's probe into a verdict before an agent trains on the
reward: it passes when the success AUC is at least :data:`GATE_SUCCESS_AUROC`, the
expert collects more reward than the random policy, and at most
:data:`GATE_EXPLOITABLE_SHARE` of the random policy's frames score above the median
success frame.

Example:
    >>> table = FrameTable(predicted=[0.0, 1.0, 2.0, 0.5, 0.2, 0.1], ground_truth=[0.0, 5.0, 10.0, 1.0, 0.5, 0.0],
    ...                    success=[False, False, True, False, False, False], task=["reach-v3"] * 6,
    ...                    episode=[0, 0, 0, 1, 1, 1], step=[0, 1, 2] * 2, first_success_step=[2, 2, 2, -1, -1, -1],
    ...                    is_expert=[True] * 3 + [False] * 3, noise_std=[0.0] * 6)
    >>> result = off_expert_probe(table)["reach-v3"]
    >>> result["success_auroc"], result["expert_above_random"], result["random_above_success_median"]
    (1.0, True, 0.0)
    >>> gate(result)
    []
    >>> gate({**result, "success_auroc": 0.6})
    ['success AUC 0.60 < 0.85']
"""

from __future__ import annotations

from typing import Any

import numpy as np

from vlm_reward_wrappers.metrics.frame import reward_correlations, success_auroc
from vlm_reward_wrappers.metrics.table import FrameTable, mean_or_none

PROBE_KEYS = (
    "success_auroc",
    "spearman_expert",
    "spearman_heavy_noise",
    "spearman_random",
    "expert_reward",
    "random_reward",
    "expert_above_random",
    "random_above_success_median",
)
"""What :func:`off_expert_probe` reports per task, in table order."""
GATE_SUCCESS_AUROC = 0.85
"""The least success AUC a reward needs to pass :func:`gate`."""
GATE_EXPLOITABLE_SHARE = 0.05
"""The largest share of random-policy frames above the median success frame that passes :func:`gate`."""


def _mean_spearman(table: FrameTable, episodes: np.ndarray) -> float | None:
    """Mean over ``episodes`` of the within-episode Spearman ρ of r̂ with R (episodes where either is constant skip)."""
    values = []
    for episode in episodes:
        where = table.episode == episode
        spearman = reward_correlations(table.predicted[where], table.ground_truth[where])[1]
        if spearman is not None:
            values.append(spearman)
    return mean_or_none(np.array(values))


def probe_task(table: FrameTable) -> dict[str, Any]:
    """The probe on one task's frames (see the module docstring); a value is None where its episodes are missing."""
    first = np.unique(table.episode, return_index=True)[1]
    episodes, expert = table.episode[first], table.is_expert[first]
    noise = table.noise_std[first] if table.noise_std is not None else np.zeros(len(first))
    clean, random_policy = episodes[expert & (noise == 0)], episodes[~expert]
    heavy = episodes[expert & (noise == noise.max())] if noise.max() > 0 else episodes[:0]
    in_clean, in_random = np.isin(table.episode, clean), np.isin(table.episode, random_policy)
    expert_reward = mean_or_none(table.predicted[in_clean])
    random_reward = mean_or_none(table.predicted[in_random])
    success_frames = table.predicted[table.success]
    above = (
        mean_or_none((table.predicted[in_random & ~table.success] > np.median(success_frames)).astype(float))
        if len(success_frames)
        else None
    )
    return {
        "success_auroc": success_auroc(table.predicted, table.success),
        "spearman_expert": _mean_spearman(table, clean),
        "spearman_heavy_noise": _mean_spearman(table, heavy),
        "spearman_random": _mean_spearman(table, random_policy),
        "expert_reward": expert_reward,
        "random_reward": random_reward,
        "expert_above_random": None
        if expert_reward is None or random_reward is None
        else bool(expert_reward > random_reward),
        "random_above_success_median": above,
    }


def off_expert_probe(table: FrameTable) -> dict[str, dict[str, Any]]:
    """:func:`probe_task` for every task of ``table``, by task name."""
    return {str(task): probe_task(table.of_task(str(task))) for task in np.unique(table.task)}


def gate(probe: dict[str, Any]) -> list[str]:
    """Why one task's probe fails the gate (empty: it passes); a missing measurement fails it too."""
    reasons = []
    auroc, above, share = (
        probe.get("success_auroc"),
        probe.get("expert_above_random"),
        probe.get("random_above_success_median"),
    )
    if auroc is None or auroc < GATE_SUCCESS_AUROC:
        reasons.append("no success frames" if auroc is None else f"success AUC {auroc:.2f} < {GATE_SUCCESS_AUROC}")
    if above is None:
        reasons.append("no clean expert or random rollouts")
    elif not above:
        reasons.append("expert reward below random")
    if share is not None and share > GATE_EXPLOITABLE_SHARE:
        reasons.append(f"{share:.0%} random frames above the success median > {GATE_EXPLOITABLE_SHARE:.0%}")
    return reasons
