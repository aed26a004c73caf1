"""What a sweep will cost before it runs (``vlm-rewards rl --dry-run``): its runs still to do, in core-hours.

Each run left costs its remaining SAC steps, plus its remaining evaluations (``eval_episodes`` episodes of
``max_episode_steps`` steps every ``eval_freq`` steps), divided by the SAC speed of its kind of reward on one
core: Meta-World's own reward (``gt``, ``sparse``) or a learned one (rendered and scored every step, in turn with
the agent's update). Evaluation steps are counted at the training speed: an upper bound, since they take no
gradient step. The speeds are those :data:`MEASURED_SPEEDS` records, or a JSON file of the same keys
(``benchmarks/rl_speed.py`` measures them on any machine). A run interrupted earlier counts only its steps left; a
folder that holds a run of other settings (reward scale or mode, budget, agent settings), finished or not, counts
in full and is named, since the sweep refuses it (``--mode overwrite`` runs it again).
Not counted: the gate's rollouts before the runs (6 episodes per task and learned source) and a benchmark the
sweep must train first.

Example:
    >>> from vlm_reward_wrappers.rl import RL_PRESETS
    >>> plan = estimate_sweep(RL_PRESETS["tiny"], "runs/nowhere")
    >>> [run.steps_left for run in plan]
    [180, 180]
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from vlm_reward_wrappers.io_utils import read_positive_numbers
from vlm_reward_wrappers.rl.config import RLConfig
from vlm_reward_wrappers.rl.run import STATE, differs_from, is_done, reward_and_agent
from vlm_reward_wrappers.rl.sources import GROUND_TRUTH, SPARSE, SPARSE_SUFFIX, parse_source
from vlm_reward_wrappers.rl.state import is_state, read_progress

MEASURED_SPEEDS: dict[str, float] = {"metaworld": 62.3, "learned": 31.8}
"""SAC steps/s on one core (one torch thread), the quick preset's agent on drawer-close: with Meta-World's reward,
and with a learned reward rendered and scored in turn. Measured by ``python benchmarks/rl_speed.py`` on a 2-core
x86_64 CPU without GPU (torch 2.14.1, quiet machine)."""


@dataclass(frozen=True)
class RunEstimate:
    """One run still to do: its folder, the env steps it has left (training and evaluation) and their cost;
    ``other_settings``: the settings in which the run its folder holds differs (that run is refused)."""

    task: str
    source: str
    seed: int
    folder: Path
    steps_left: int
    core_hours: float
    other_settings: tuple[str, ...] = ()


def source_name(text: str) -> str:
    """The name a reward source's run folders get: ``gt``, ``sparse``, a benchmark row as given, a checkpoint
    folder or Hub repo by its last part, each with its ``+sparse``.

    >>> source_name("runs/quick/checkpoints/r3m-seed0+sparse"), source_name("someone/triplet@v1")
    ('r3m-seed0+sparse', 'triplet@v1')
    """
    if text in (GROUND_TRUTH, SPARSE):
        return text
    row, suffix = (text[: -len(SPARSE_SUFFIX)], SPARSE_SUFFIX) if text.endswith(SPARSE_SUFFIX) else (text, "")
    return Path(row).name + suffix


def read_speeds(path: str | os.PathLike | None) -> dict[str, float]:
    """The speeds in ``path`` (JSON: ``{"metaworld": steps/s, "learned": steps/s}``), or :data:`MEASURED_SPEEDS`."""
    if path is None:
        return dict(MEASURED_SPEEDS)
    return read_positive_numbers(path, MEASURED_SPEEDS, "speed", "SAC steps per second")


def _steps_done(folder: Path) -> int:
    """The env steps a run's folder has trained (-1: the run is finished)."""
    if is_done(folder):
        return -1
    for saved in (folder / STATE, folder / f"{STATE}.old"):  # as a resumed run finds it (a kill inside the swap)
        if is_state(saved):
            return read_progress(saved).steps
    return 0


def estimate_sweep(
    config: RLConfig, out: str | os.PathLike, speeds: Mapping[str, float] = MEASURED_SPEEDS
) -> list[RunEstimate]:
    """The runs of ``config`` not finished in ``out``, each with its steps left and their core-hours."""
    plan = []
    for text in config.sources:
        name = source_name(text)
        speed = speeds["metaworld" if text in (GROUND_TRUTH, SPARSE) else "learned"]
        source = parse_source(text, **config.source_options)  # its scales and mode; the checkpoint stays unread
        for task in config.tasks:
            for seed in config.seeds_of(text):
                folder = Path(out) / task / name / f"seed{seed}"
                other = tuple(differs_from(folder, {"task": task, **reward_and_agent(source, seed, config)}))
                done = 0 if other else _steps_done(folder)
                if done < 0:
                    continue
                training = config.total_steps - done
                evaluations = training // config.eval_freq
                steps = training + evaluations * config.eval_episodes * config.max_episode_steps
                plan.append(RunEstimate(task, name, seed, folder, steps, steps / speed / 3600, other))
    return plan


def describe_estimate(plan: list[RunEstimate], config: RLConfig, speeds: Mapping[str, float]) -> str:
    """The dry run's printout: runs left per source, their steps and core-hours, and the total."""
    lines = ["| source | runs left | env steps left | core-hours |", "|---|---|---|---|"]
    for name in dict.fromkeys(run.source for run in plan):
        runs = [run for run in plan if run.source == name]
        steps, hours = sum(run.steps_left for run in runs), sum(run.core_hours for run in runs)
        lines.append(f"| {name} | {len(runs)} | {steps:,} | {hours:.1f} |")
    total = sum(run.core_hours for run in plan)
    cores = config.jobs or os.cpu_count() or 1
    refused = [run for run in plan if run.other_settings]
    if refused:
        lines += [
            "",
            f"{len(refused)} of them hold a run of other settings, which the sweep refuses (--mode overwrite runs "
            "it again; or sweep into another --out): "
            + "; ".join(f"{run.folder} (differs in: {', '.join(run.other_settings)})" for run in refused[:5])
            + ("; ..." if len(refused) > 5 else ""),
        ]
    lines += [
        "",
        f"{len(plan)} runs left: {total:.1f} core-hours, about {total / min(cores, max(len(plan), 1)):.1f} hours "
        f"with {cores} runs side by side (SAC steps/s per core: Meta-World's reward {speeds['metaworld']:g}, a "
        f"learned reward {speeds['learned']:g}; evaluation steps counted at the training speed; the gate's rollouts "
        "and a benchmark to train first are not counted).",
    ]
    return "\n".join(lines)


__all__ = ["MEASURED_SPEEDS", "RunEstimate", "describe_estimate", "estimate_sweep", "read_speeds", "source_name"]
