"""``vlm-rewards evaluate``: score a dataset with a checkpoint and compare with the ground truth.

Every checkpoint is scored with its native reward (the goal its objective
trains: a goal image for TCN and image-goal VIP, the sentence otherwise) and,
where that differs, also with the sentence reward. Writes to the output folder:

* ``metrics.json``: every metric overall and per task (:func:`~vlm_reward_wrappers.metrics.summarize`)
  for the native reward, the off-expert probe per task under ``off_expert``
  (:mod:`~vlm_reward_wrappers.metrics.off_expert`), ``sentence_reward`` likewise where it differs, and what
  was evaluated;
* ``predictions.csv``: one row per frame (task, episode, step, gt_reward, success, predicted_reward);
* ``predictions.npz`` (and ``predictions_sentence.npz``): the exact frame tables, for the benchmark's statistics;
* with ``demonstrations`` (tasks given by demonstrations): ``demo_progress_reward`` and ``demo_goal_image_reward``
  in ``metrics.json``, and their tables ``predictions_demo_progress.npz`` and ``predictions_demo_goal_image.npz``;
* ``report.md``: a markdown table per task;
* ``reward_curves.png``: learned and ground-truth reward over time, a few episodes per task;
* ``per_task.png``: ranking accuracy and VOC per task.

Example:
    >>> checkpoint = "runs/quick/checkpoints/triplet-seed0"
    >>> metrics = evaluate(checkpoint, "runs/quick/data/eval", "runs/eval")  # doctest: +SKIP
    >>> metrics["overall"]["ranking_accuracy"]                                # doctest: +SKIP
    0.87
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from vlm_reward_wrappers.configs import resolve_device
from vlm_reward_wrappers.data.storage import DemoDataset
from vlm_reward_wrappers.evaluation.plots import plot_per_task, plot_reward_curves
from vlm_reward_wrappers.evaluation.report import PROBE_LEGEND, gate_summary, legend, markdown_table, probe_table
from vlm_reward_wrappers.evaluation.scoring import (
    GoalChoice,
    ScoredDataset,
    check_compatible,
    save_table,
    score_dataset,
    write_predictions_csv,
)
from vlm_reward_wrappers.io_utils import write_json_atomic, write_text_atomic
from vlm_reward_wrappers.locking import writing
from vlm_reward_wrappers.metrics import DEFAULT_DELTA, summarize
from vlm_reward_wrappers.metrics.off_expert import off_expert_probe
from vlm_reward_wrappers.models import (
    Demonstration,
    DemoReward,
    RewardModel,
    demonstration_goal,
    read_checkpoint_config,
)
from vlm_reward_wrappers.models.reward_model import Goal

RewardChoice = Literal["native", "sentence", "demo-progress", "demo-goal-image"]
"""The rewards an evaluation scores: the objective's native goal, the sentence, or a demonstration's
progress or goal image (:mod:`vlm_reward_wrappers.models.demonstration`)."""
TABLE_FILES: dict[RewardChoice, str] = {
    "native": "predictions.npz",
    "sentence": "predictions_sentence.npz",
    "demo-progress": "predictions_demo_progress.npz",
    "demo-goal-image": "predictions_demo_goal_image.npz",
}
"""Where an evaluation folder keeps the exact frame table of each reward."""
METRICS_KEYS: dict[RewardChoice, str] = {
    "sentence": "sentence_reward",
    "demo-progress": "demo_progress_reward",
    "demo-goal-image": "demo_goal_image_reward",
}
"""Where ``metrics.json`` keeps the metrics of each reward but the native one (at its top level)."""
DEMO_REWARDS: dict[RewardChoice, DemoReward] = {"demo-progress": "progress", "demo-goal-image": "goal-image"}
EVALUATION_FORMAT = 2
"""What ``metrics.json`` holds: 2 added the time-balanced and split ranking metrics, same-scene goal swap, the
off-expert probe, and each frame's action noise in the tables. A benchmark re-evaluates an older evaluation."""


def check_no_leak(dataset: DemoDataset, demonstrations: Mapping[str, Sequence[Demonstration]]) -> None:
    """Refuse demonstrations that are episodes of the evaluated data: they would be scored against themselves."""
    evaluated = {str(info.path.resolve()) for info in dataset.episodes}
    for demos in demonstrations.values():
        for demo in demos:
            if demo.origin is not None and demo.origin in evaluated:
                raise ValueError(
                    f"demonstration {demo.name} is also an evaluated episode: a reward would be scored on the "
                    "demonstration it was given. Take demonstrations from another collection (another seed)."
                )


def _summary(scored: ScoredDataset, delta: float, seed: int, num_resamples: int) -> dict[str, Any]:
    if scored.table is None:
        return {"overall": None, "per_task": {}, "skipped_tasks": scored.skipped_tasks}
    summary = summarize(scored.table, delta=delta, seed=seed, num_resamples=num_resamples)
    return {**summary, "skipped_tasks": scored.skipped_tasks}


def evaluate(
    checkpoint: str | os.PathLike | RewardModel,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    tasks: Sequence[str] | None = None,
    delta: float = DEFAULT_DELTA,
    seed: int = 0,
    num_resamples: int = 200,
    plots: bool = True,
    demonstrations: Mapping[str, Sequence[Demonstration]] | None = None,
    device: str | None = None,
) -> dict[str, Any]:
    """Evaluate a checkpoint on a dataset and write the report files to ``out``; return the metrics.

    Tasks without a goal of the native kind (a held-out task of an image-goal
    objective: the checkpoint stores goal images of its training tasks only)
    are left out of the native report and listed under ``skipped_tasks``.

    ``demonstrations`` (task: its demonstrations) adds the two demonstration rewards for those tasks;
    demonstrations that are episodes of ``data`` are refused. ``device`` scores the frames (default: ``cuda``
    when torch sees a GPU, else ``cpu``; a checkpoint given as a model stays where it is). One writer per ``out``:
    a second evaluation into it waits for this one.
    """
    device = resolve_device(device)
    with writing(out):
        return _evaluate_locked(checkpoint, data, out, tasks, delta, seed, num_resamples, plots, demonstrations, device)


def _evaluate_locked(
    checkpoint: str | os.PathLike | RewardModel,
    data: str | os.PathLike,
    out: str | os.PathLike,
    tasks: Sequence[str] | None,
    delta: float,
    seed: int,
    num_resamples: int,
    plots: bool,
    demonstrations: Mapping[str, Sequence[Demonstration]] | None,
    device: str,
) -> dict[str, Any]:
    """:func:`evaluate`, by the process that holds the lock of ``out``."""
    if isinstance(checkpoint, RewardModel):
        model = checkpoint
    else:
        model = RewardModel.from_pretrained(checkpoint, device=device)
    weights_sha256 = None if isinstance(checkpoint, RewardModel) else read_checkpoint_config(checkpoint)[1]
    dataset = DemoDataset(data, tasks=tasks)
    if len(dataset) == 0:
        raise ValueError(f"no episodes to evaluate in {data}" + (f" for tasks {', '.join(tasks)}" if tasks else ""))
    problems = check_compatible(model, dataset)
    goal_kind = model.objective.goal_kind
    choices: list[GoalChoice] = ["native"] if goal_kind == "sentence" else ["native", "sentence"]
    scored: dict[RewardChoice, ScoredDataset] = {
        choice: score_dataset(model, dataset, goal=choice) for choice in choices
    }
    if demonstrations:
        check_no_leak(dataset, demonstrations)
        for choice, kind in DEMO_REWARDS.items():
            goals: dict[str, Goal] = {
                task: demonstration_goal(model, demos, kind) for task, demos in demonstrations.items()
            }
            scored[choice] = score_dataset(model, dataset, goal=goals)
    metrics = _summary(scored["native"], delta, seed, num_resamples)
    native_table = scored["native"].table
    metrics["off_expert"] = off_expert_probe(native_table) if native_table is not None else {}
    for choice, key in METRICS_KEYS.items():
        if choice in scored:
            metrics[key] = _summary(scored[choice], delta, seed, num_resamples)
    overall = metrics["overall"]
    metrics["evaluated"] = {
        "format": EVALUATION_FORMAT,
        "checkpoint": str(checkpoint) if not isinstance(checkpoint, RewardModel) else None,
        "weights_sha256": weights_sha256,
        "objective": model.config.objective,
        "reward": goal_kind,
        "data": str(Path(data).resolve()),
        "tasks": dataset.tasks,
        "delta": delta,
        "seed": seed,
        "warnings": problems,
        "demonstrations": {task: [demo.name for demo in demos] for task, demos in (demonstrations or {}).items()},
        "voc_note": None
        if overall is None or overall["voc"] is not None
        else "no successful expert episode in the data: VOC unavailable",
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for choice, result in scored.items():
        if result.table is not None:
            save_table(result.table, out / TABLE_FILES[choice])
    write_json_atomic(out / "metrics.json", metrics)
    native = scored["native"].table
    if native is not None:
        write_predictions_csv(native, out / "predictions.csv")
    write_text_atomic(out / "report.md", _report(model, data, metrics, problems, delta))
    if plots and native is not None:
        plot_reward_curves(native, out / "reward_curves.png")
        plot_per_task(metrics, out / "per_task.png")
    return metrics


def _report(
    model: RewardModel, data: str | os.PathLike, metrics: dict[str, Any], problems: list[str], delta: float
) -> str:
    goal = model.objective.goal_kind
    lines = [f"# Reward accuracy of `{model.config.objective['name']}` on `{data}`", ""]
    lines += [f"> warning: {problem}" for problem in problems]
    lines += [f"## Native reward ({goal} goal)", ""]
    lines.append(
        markdown_table(metrics) if metrics["overall"] is not None else "n/a: no goal of this kind for these tasks"
    )
    if metrics["skipped_tasks"]:
        lines += ["", f"Left out (no stored goal image; pass a demonstration): {', '.join(metrics['skipped_tasks'])}."]
    if metrics["off_expert"]:
        probe = metrics["off_expert"]
        lines += ["", "## Off the expert path", "", probe_table(probe), "", PROBE_LEGEND, "", gate_summary(probe)]
    if "sentence_reward" in metrics:
        lines += ["", "## Sentence reward s(o, l), which this objective never trains", ""]
        lines.append(markdown_table(metrics["sentence_reward"]))
    for key, title in (
        ("demo_progress_reward", "Progress along a demonstration (the task given by demonstrations)"),
        ("demo_goal_image_reward", "Goal image from a demonstration (the task given by demonstrations)"),
    ):
        if key in metrics and metrics[key]["overall"] is not None:
            lines += ["", f"## {title}", "", markdown_table(metrics[key])]
    lines += ["", legend(delta), ""]
    return "\n".join(lines)
