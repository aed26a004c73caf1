"""Scoring every frame of a dataset with a reward model, in batches.

Each frame is scored against its task's goal as the checkpoint knows it
(:meth:`~vlm_reward_wrappers.models.RewardModelConfig.goal_for`): the sentence
the model trained with, or the package's for tasks it never saw.

Example:
    >>> model = RewardModel.from_pretrained("runs/quick/checkpoints/triplet")   # doctest: +SKIP
    >>> predictions = score_dataset(model, DemoDataset("data/eval"))             # doctest: +SKIP
    >>> predictions.predicted[:3]                                                # doctest: +SKIP
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence

import numpy as np
import torch

from vlm_reward_wrappers.data.storage import DemoDataset
from vlm_reward_wrappers.io_utils import atomic_path
from vlm_reward_wrappers.metrics import FrameTable
from vlm_reward_wrappers.models.config import warn_if_unlike_training
from vlm_reward_wrappers.models.reward_model import RewardModel

PREDICTION_COLUMNS = ("task", "episode", "step", "gt_reward", "success", "predicted_reward")


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


def check_compatible(model: RewardModel, dataset: DemoDataset) -> list[str]:
    """Warn (and return the warnings) when the data was rendered unlike the model's training frames."""
    return warn_if_unlike_training(
        model.config, dataset.camera, dataset.image_size, where=f"the data in {dataset.root}", stacklevel=4
    )


@torch.no_grad()
def score_dataset(
    model: RewardModel, dataset: DemoDataset, episodes: Sequence[int] | None = None, batch_size: int = 256
) -> FrameTable:
    """The model's reward of every frame of the chosen episodes, each scored against its task's goal."""
    model.eval()
    selected = list(range(len(dataset))) if episodes is None else list(episodes)
    goals = np.array([model.config.goal_for(info.task) for info in dataset.episodes])
    predicted, parts = [], []
    for batch in dataset.iter_frame_batches(batch_size, selected):
        rewards = model.rewards_for_goals(model.encode_images(batch.frames), goals[batch.episode])
        if not np.all(np.isfinite(rewards)):
            raise FloatingPointError(f"the model gave non-finite rewards on {dataset.root}; the checkpoint is broken")
        predicted.append(rewards)
        parts.append(batch)
    if not parts:
        raise ValueError(f"no frames to score in {dataset.root}")
    episode = np.concatenate([p.episode for p in parts])
    infos = [dataset.episodes[i] for i in episode]
    return FrameTable(
        predicted=np.concatenate(predicted),
        ground_truth=np.concatenate([p.gt_reward for p in parts]),
        success=np.concatenate([p.success for p in parts]),
        task=np.array([info.task for info in infos]),
        episode=episode,
        step=np.concatenate([p.step for p in parts]),
        first_success_step=np.array([info.first_success_step for info in infos]),
        is_expert=np.array([info.kind == "expert" for info in infos]),
    )
