"""``vlm-rewards evaluate``: score a dataset with a checkpoint and compare with the ground truth.

Writes to the output folder:

* ``metrics.json``: every metric overall and per task (:func:`~.metrics.summarize`),
  with what was evaluated;
* ``predictions.csv``: one row per frame (task, episode, step, gt_reward, success, predicted_reward);
* ``report.md``: a markdown table per task;
* ``reward_curves.png``: learned and ground-truth reward over time, a few episodes per task;
* ``per_task.png``: ranking accuracy and VOC per task.

Example:
    >>> metrics = evaluate("runs/quick/checkpoints/triplet", "runs/quick/data/eval", "runs/eval")  # doctest: +SKIP
    >>> metrics["overall"]["ranking_accuracy"]                                                     # doctest: +SKIP
    0.87
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from vlm_reward_wrappers.data.storage import DemoDataset
from vlm_reward_wrappers.evaluation.plots import plot_per_task, plot_reward_curves
from vlm_reward_wrappers.evaluation.report import legend, markdown_table
from vlm_reward_wrappers.evaluation.scoring import check_compatible, score_dataset, write_predictions_csv
from vlm_reward_wrappers.io_utils import write_json_atomic, write_text_atomic
from vlm_reward_wrappers.metrics import DEFAULT_DELTA, summarize
from vlm_reward_wrappers.models import RewardModel, read_checkpoint_config


def evaluate(
    checkpoint: str | os.PathLike | RewardModel,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    tasks: Sequence[str] | None = None,
    delta: float = DEFAULT_DELTA,
    seed: int = 0,
    plots: bool = True,
) -> dict[str, Any]:
    """Evaluate a checkpoint on a dataset and write the report files to ``out``; return the metrics."""
    model = checkpoint if isinstance(checkpoint, RewardModel) else RewardModel.from_pretrained(checkpoint)
    weights_sha256 = None if isinstance(checkpoint, RewardModel) else read_checkpoint_config(checkpoint)[1]
    dataset = DemoDataset(data, tasks=tasks)
    if len(dataset) == 0:
        raise ValueError(f"no episodes to evaluate in {data}" + (f" for tasks {', '.join(tasks)}" if tasks else ""))
    problems = check_compatible(model, dataset)
    predictions = score_dataset(model, dataset)
    metrics = summarize(predictions, delta=delta, seed=seed)
    metrics["evaluated"] = {
        "checkpoint": str(checkpoint) if not isinstance(checkpoint, RewardModel) else None,
        "weights_sha256": weights_sha256,
        "objective": model.config.objective,
        "reward": "sentence",
        "native_goal": model.objective.goal_kind,
        "data": str(Path(data).resolve()),
        "tasks": dataset.tasks,
        "delta": delta,
        "seed": seed,
        "warnings": problems,
        "voc_note": None
        if metrics["overall"]["voc"] is not None
        else "no successful expert episode in the data: VOC unavailable",
    }
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "metrics.json", metrics)
    write_predictions_csv(predictions, out / "predictions.csv")
    title = f"# Reward accuracy of `{model.config.objective['name']}` on `{data}`\n\n"
    notes = "".join(f"> warning: {p}\n" for p in problems)
    goal = model.objective.goal_kind
    scored = (
        "Scored with the goal-sentence reward s(o, l), the reward this objective trains.\n\n"
        if goal == "sentence"
        else f"> note: scored with the goal-sentence reward s(o, l); this objective trains a {goal}-goal reward, "
        "so these numbers measure the backbone more than the objective.\n\n"
    )
    report = title + notes + scored + markdown_table(metrics) + "\n\n" + legend(delta) + "\n"
    write_text_atomic(out / "report.md", report)
    if plots:
        plot_reward_curves(predictions, out / "reward_curves.png")
        plot_per_task(metrics, out / "per_task.png")
    return metrics
