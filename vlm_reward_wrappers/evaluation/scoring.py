"""Scoring every frame of a dataset with a reward model, in batches.

Example:
    >>> model = RewardModel.from_pretrained("runs/quick/checkpoints/triplet")   # doctest: +SKIP
    >>> predictions = score_dataset(model, DemoDataset("data/eval"))             # doctest: +SKIP
    >>> predictions.predicted[:3]                                                # doctest: +SKIP
"""

from __future__ import annotations

import csv
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from vlm_reward_wrappers.data.storage import DemoDataset
from vlm_reward_wrappers.models.reward_model import RewardModel


@dataclass
class Predictions:
    """One row per frame: where it comes from, its ground truth and the learned reward."""

    task: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    gt_reward: np.ndarray
    success: np.ndarray
    predicted: np.ndarray
    first_success_step: np.ndarray
    is_expert: np.ndarray

    def __len__(self) -> int:
        return len(self.predicted)

    def select(self, mask: np.ndarray) -> Predictions:
        """The rows where ``mask`` is true."""
        return Predictions(**{name: getattr(self, name)[mask] for name in self.__dataclass_fields__})

    def write_csv(self, path: str | os.PathLike) -> None:
        """``task, episode, step, gt_reward, success, predicted_reward`` per frame."""
        from vlm_reward_wrappers.io_utils import atomic_path

        with atomic_path(path, suffix=".csv") as temporary, open(temporary, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["task", "episode", "step", "gt_reward", "success", "predicted_reward"])
            for row in zip(self.task, self.episode, self.step, self.gt_reward, self.success, self.predicted, strict=False):
                writer.writerow([row[0], int(row[1]), int(row[2]), f"{row[3]:.6g}", int(row[4]), f"{row[5]:.6g}"])


def check_compatible(model: RewardModel, dataset: DemoDataset) -> list[str]:
    """Warn (and return the warnings) when the data was rendered unlike the model's training frames."""
    problems = []
    if dataset.camera != model.config.camera:
        problems.append(
            f"the data in {dataset.root} was rendered with camera {dataset.camera!r}, the model was trained on {model.config.camera!r} frames"
        )
    if dataset.image_size != model.config.image_size:
        problems.append(
            f"the data in {dataset.root} has {dataset.image_size}-px frames, the model was trained on {model.config.image_size}-px frames"
        )
    for problem in problems:
        warnings.warn(f"{problem}; its scores may not mean what they mean on its own data.", UserWarning, stacklevel=3)
    return problems


@torch.no_grad()
def score_dataset(
    model: RewardModel, dataset: DemoDataset, episodes: Sequence[int] | None = None, batch_size: int = 256
) -> Predictions:
    """The model's reward of every frame of the chosen episodes, each scored against its episode's goal text."""
    model.eval()
    selected = list(range(len(dataset))) if episodes is None else list(episodes)
    goals = np.array([dataset.episodes[i].goal_text for i in range(len(dataset))])
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
    return Predictions(
        task=np.array([info.task for info in infos]),
        episode=episode,
        step=np.concatenate([p.step for p in parts]),
        gt_reward=np.concatenate([p.gt_reward for p in parts]),
        success=np.concatenate([p.success for p in parts]),
        predicted=np.concatenate(predicted),
        first_success_step=np.array([info.first_success_step for info in infos]),
        is_expert=np.array([info.kind == "expert" for info in infos]),
    )
