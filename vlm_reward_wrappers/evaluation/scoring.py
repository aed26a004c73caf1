"""Scoring every frame of a dataset with a reward model, in batches, against native or sentence goals.

Each frame is scored against its task's goal as the checkpoint knows it:
``goal="native"`` is the goal its objective trains (the stored goal image for
TCN and image-goal VIP, the sentence otherwise), ``goal="sentence"`` the goal
sentence the model trained with (or the package's, for tasks it never saw).
Every frame is also scored against the goals of all training tasks, for the
goal-swap accuracy. A frozen backbone's features are computed once per dataset
and shared by every checkpoint on it (:mod:`vlm_reward_wrappers.models.features`).

Example:
    >>> model = RewardModel.from_pretrained("runs/quick/checkpoints/triplet-seed0")   # doctest: +SKIP
    >>> scored = score_dataset(model, DemoDataset("data/eval"))                  # doctest: +SKIP
    >>> scored.table.predicted[:3], scored.skipped_tasks                         # doctest: +SKIP
"""

from __future__ import annotations

import csv
import dataclasses
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from vlm_reward_wrappers.data.storage import DemoDataset, FrameBatch
from vlm_reward_wrappers.io_utils import atomic_path
from vlm_reward_wrappers.metrics import FrameTable
from vlm_reward_wrappers.models.config import warn_if_unlike_training
from vlm_reward_wrappers.models.features import backbone_features
from vlm_reward_wrappers.models.reward_model import Goal, GoalUnavailableError, RewardModel

GoalChoice = Literal["native", "sentence"]
"""``native``: the goal the objective trains (goal image or sentence); ``sentence``: the goal sentence."""

PREDICTION_COLUMNS = ("task", "episode", "step", "gt_reward", "success", "predicted_reward")


@dataclass
class ScoredDataset:
    """The frame table of the scored frames, and the tasks left out because no such goal exists for them."""

    table: FrameTable | None
    skipped_tasks: list[str]


def write_predictions_csv(predictions: FrameTable, path: str | os.PathLike) -> None:
    """One row per frame: ``task, episode, step, gt_reward, success, predicted_reward``."""
    with atomic_path(path, suffix=".csv") as temporary, open(temporary, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(PREDICTION_COLUMNS)
        rows = zip(
            predictions.task,
            predictions.episode,
            predictions.step,
            predictions.ground_truth,
            predictions.success,
            predictions.predicted,
            strict=True,
        )
        for task, episode, step, truth, success, predicted in rows:
            writer.writerow([task, int(episode), int(step), f"{truth:.6g}", int(success), f"{predicted:.6g}"])


def save_table(table: FrameTable, path: str | os.PathLike) -> None:
    """The whole frame table, exactly (``.npz``), for statistics recomputed later."""
    arrays = {field.name: getattr(table, field.name) for field in dataclasses.fields(table)}
    with atomic_path(path, suffix=".npz") as temporary, open(temporary, "wb") as handle:
        np.savez_compressed(handle, **{name: value for name, value in arrays.items() if value is not None})


def load_table(path: str | os.PathLike) -> FrameTable:
    """A frame table written by :func:`save_table`."""
    with np.load(path, allow_pickle=False) as stored:
        return FrameTable(**{name: stored[name] for name in stored.files})


def check_compatible(model: RewardModel, dataset: DemoDataset) -> list[str]:
    """Warn (and return the warnings) when the data was rendered unlike the model's training frames."""
    return warn_if_unlike_training(
        model.config, dataset.camera, dataset.image_size, where=f"the data in {dataset.root}", stacklevel=4
    )


def _goal(model: RewardModel, task: str, choice: GoalChoice | Mapping[str, Goal]) -> Goal:
    """``task``'s goal: native, sentence, or given (a mapping without the task raises GoalUnavailableError)."""
    if isinstance(choice, Mapping):
        if task not in choice:
            raise GoalUnavailableError(f"no goal given for {task}")
        return choice[task]
    return model.native_goal(task) if choice == "native" else model.config.goal_for(task)


@torch.no_grad()
def score_dataset(
    model: RewardModel,
    dataset: DemoDataset,
    episodes: Sequence[int] | None = None,
    *,
    goal: GoalChoice | Mapping[str, Goal] = "native",
    batch_size: int = 256,
) -> ScoredDataset:
    """The model's reward of every frame of the chosen episodes for its task's goal, and for every training goal.

    ``goal`` is ``native``, ``sentence``, or a goal per task (demonstrations of held-out tasks, say): tasks
    without one are skipped. The goal-swap rewards use the training tasks' native goals.
    """
    model.eval()
    selected = list(range(len(dataset))) if episodes is None else list(episodes)
    goals: dict[str, Goal] = {}
    skipped = []
    for task in dict.fromkeys(dataset.episodes[i].task for i in selected):
        try:
            goals[task] = _goal(model, task, goal)
        except GoalUnavailableError:
            skipped.append(task)
    selected = [i for i in selected if dataset.episodes[i].task in goals]
    if not selected:
        return ScoredDataset(None, skipped)
    training_goals: list[Goal] = []
    training_tasks = []
    for task in sorted(model.config.goal_texts):  # tasks with a goal of this kind (adapted checkpoints: fewer images)
        try:
            training_goals.append(_goal(model, task, "native" if isinstance(goal, Mapping) else goal))
            training_tasks.append(task)
        except GoalUnavailableError:
            continue
    frozen = model.config.finetune.mode in ("heads", "frozen")
    cached = backbone_features(model, dataset, selected) if frozen else {}
    own, others, parts = [], [], []
    for batch in dataset.iter_frame_batches(batch_size, selected, with_frames=not frozen):
        if frozen:
            features = model.image_head(
                torch.cat([cached[int(e)][int(s)][None] for e, s in zip(batch.episode, batch.step, strict=True)])
            )
        else:
            features = model.encode_images(batch.frames)
        tasks = np.array([dataset.episodes[int(e)].task for e in batch.episode])
        rewards = np.zeros(len(tasks))
        for task in np.unique(tasks):
            where = np.flatnonzero(tasks == task)
            rewards[where] = model.reward_from_features(features[where], goals[str(task)]).double().cpu().numpy()
        swapped = [model.reward_from_features(features, other).double().cpu().numpy() for other in training_goals]
        if not np.all(np.isfinite(rewards)):
            raise FloatingPointError(f"the model gave non-finite rewards on {dataset.root}; the checkpoint is broken")
        own.append(rewards)
        others.append(np.stack(swapped, axis=1) if swapped else np.zeros((len(rewards), 0)))
        parts.append(batch)
    table = frame_table(dataset, parts, np.concatenate(own))
    table = dataclasses.replace(table, goal_rewards=np.concatenate(others), goal_tasks=np.array(training_tasks))
    return ScoredDataset(table, skipped)


def frame_table(dataset: DemoDataset, batches: Sequence[FrameBatch], predicted: np.ndarray) -> FrameTable:
    """The frames of ``batches`` (from ``dataset.iter_frame_batches``) with their ground truth and ``predicted``.

    Example:
        >>> batches = list(dataset.iter_frame_batches(4096, with_frames=False))                  # doctest: +SKIP
        >>> truth = frame_table(dataset, batches, np.zeros(dataset.num_frames))                    # doctest: +SKIP
    """
    episode = np.concatenate([batch.episode for batch in batches])
    infos = [dataset.episodes[i] for i in episode]
    return FrameTable(
        predicted=predicted,
        ground_truth=np.concatenate([batch.gt_reward for batch in batches]),
        success=np.concatenate([batch.success for batch in batches]),
        task=np.array([info.task for info in infos]),
        episode=episode,
        step=np.concatenate([batch.step for batch in batches]),
        first_success_step=np.array([info.first_success_step for info in infos]),
        is_expert=np.array([info.kind == "expert" for info in infos]),
        noise_std=np.array([info.noise_std for info in infos]),
    )
