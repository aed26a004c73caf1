"""What a training run measures on held-out episodes, and what it stores at the end.

* :func:`validation_loss`: the objective's own loss on fixed batches of
  validation trajectories. It alone chooses the kept checkpoint: selection never
  reads ground-truth rewards.
* :func:`monitor`: ranking accuracy of the sentence reward against the ground
  truth and task-identification accuracy, recorded in the history for the
  learning curves only.
* :func:`goal_image_embeddings`: per training task, the goal-image embedding a
  checkpoint stores (mean embedding of the frames from first success on of the
  task's successful training trajectories).
* :func:`reward_statistics`: mean and std of the rewards on training frames.

Example:
    >>> frames = validation_frames(dataset, episodes=[3, 7], per_task=100, seed=0)   # doctest: +SKIP
    >>> monitor(model, frames, ["reach-v3"])                                          # doctest: +SKIP
    {'ranking_accuracy': 0.71, 'task_accuracy': 1.0}
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from vlm_reward_wrappers.data.storage import DemoDataset
from vlm_reward_wrappers.metrics import ranking_accuracy
from vlm_reward_wrappers.models.reward_model import Goal, RewardModel, in_batches
from vlm_reward_wrappers.training.batches import TrajectoryBatch


@dataclass
class ValidationFrames:
    """Frames drawn evenly from validation episodes, with their task, episode, step and ground-truth reward.

    ``features``, when set, holds the frozen backbone's features of the frames
    (``heads`` finetuning), so that each validation runs only the heads.
    """

    frames: np.ndarray
    task: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    gt_reward: np.ndarray
    features: torch.Tensor | None = None

    def encode(self, model: RewardModel) -> torch.Tensor:
        """Image embeddings of the frames (through the heads only, when the backbone's features are given)."""
        if self.features is not None:
            return model.image_head(self.features)
        return in_batches(model.encode_images, self.frames)

    def use_features(self, features: dict[int, torch.Tensor]) -> None:
        """Take the frames' backbone features from a per-episode cache."""
        if len(self.frames):
            self.features = torch.stack(
                [features[int(e)][int(s)] for e, s in zip(self.episode, self.step, strict=True)]
            )


def validation_frames(
    dataset: DemoDataset, episodes: Sequence[int], per_task: int, seed: int, *, read_frames: bool = True
) -> ValidationFrames:
    """Up to ``per_task`` frames of each task's episodes, drawn without replacement with a fixed seed.

    ``read_frames=False`` draws the same frames without reading their images (empty ``(n, 0, 0, 3)``), for a
    caller that takes their features from a cache (:meth:`ValidationFrames.use_features`).
    """
    rng = np.random.default_rng([seed, 11])
    frames, tasks, episode_ids, step_ids, rewards = [], [], [], [], []
    by_task: dict[str, list[tuple[int, int]]] = {}
    for index in episodes:
        by_task.setdefault(dataset.episodes[index].task, []).extend(
            (index, s) for s in range(dataset.episodes[index].num_steps)
        )
    for task, pairs in by_task.items():
        chosen = sorted(rng.choice(len(pairs), size=min(per_task, len(pairs)), replace=False))
        for index in sorted({pairs[c][0] for c in chosen}):
            steps = [pairs[c][1] for c in chosen if pairs[c][0] == index]
            frames.append(
                dataset.read_frames(index, steps) if read_frames else np.empty((len(steps), 0, 0, 3), np.uint8)
            )
            tasks.extend([task] * len(steps))
            episode_ids.extend([index] * len(steps))
            step_ids.extend(steps)
            rewards.append(dataset.episodes[index].gt_reward[steps])
    if not frames:
        empty = np.array([])
        return ValidationFrames(np.zeros((0, 1, 1, 3), np.uint8), empty, empty, empty, empty)
    return ValidationFrames(
        np.concatenate(frames), np.array(tasks), np.array(episode_ids), np.array(step_ids), np.concatenate(rewards)
    )


@torch.no_grad()
def rewards_for_tasks(model: RewardModel, sample: ValidationFrames, native: bool) -> np.ndarray:
    """Each frame's reward for its task's goal: the native goal, or the sentence."""
    features, tasks = sample.encode(model), sample.task
    rewards = np.zeros(len(tasks), dtype=np.float32)
    for task in np.unique(tasks):
        where = np.flatnonzero(tasks == task)
        goal: Goal = model.native_goal(str(task)) if native else model.config.goal_for(str(task))
        rewards[where] = model.reward_from_features(features[where], goal).float().cpu().numpy()
    return rewards


@torch.no_grad()
def monitor(model: RewardModel, validation: ValidationFrames, train_tasks: list[str]) -> dict[str, float | None]:
    """Ranking accuracy of the sentence reward and task-identification accuracy on validation frames."""
    if len(validation.frames) == 0:
        return {"ranking_accuracy": None, "task_accuracy": None}
    was_training = model.training
    model.eval()
    try:
        features = validation.encode(model)
        goals = [model.config.goal_for(str(task)) for task in validation.task]
        rewards = model.rewards_for_goals(features, goals)
        accuracy = ranking_accuracy(rewards, validation.gt_reward, validation.task, validation.episode)
        sentences = torch.stack([model.goal_embedding(model.config.goal_for(t)) for t in train_tasks])
        similarities = nn.functional.normalize(features, dim=-1) @ nn.functional.normalize(sentences, dim=-1).T
        predicted = np.array(train_tasks)[similarities.argmax(dim=1).cpu().numpy()]
        task_accuracy = float(np.mean(predicted == validation.task))
    finally:
        model.train(was_training)
    return {"ranking_accuracy": accuracy.overall, "task_accuracy": task_accuracy}


@torch.no_grad()
def validation_loss(
    loss_of: Callable[[TrajectoryBatch], tuple[torch.Tensor, dict[str, float]]],
    model: RewardModel,
    batches: Sequence[TrajectoryBatch],
) -> float | None:
    """The mean of the objective's loss over fixed validation batches (None without validation trajectories)."""
    if not batches:
        return None
    was_training = model.training
    model.eval()
    try:
        return float(np.mean([float(loss_of(batch)[0]) for batch in batches]))
    finally:
        model.train(was_training)


@torch.no_grad()
def goal_image_embeddings(
    model: RewardModel,
    dataset: DemoDataset,
    episodes: Sequence[int],
    features: dict[int, torch.Tensor] | None = None,
) -> dict[str, torch.Tensor]:
    """Per task: the mean normalised embedding of the frames from first success on of its successful expert episodes.

    ``features``: the frozen backbone's features of those episodes (``heads``), so that only the heads run.
    """
    parts_by_task: dict[str, list[torch.Tensor]] = {}
    was_training = model.training
    model.eval()
    try:
        for index in episodes:
            info = dataset.episodes[index]
            if info.is_successful_expert:
                steps = np.arange(info.first_success_step, info.num_steps)
                embedded = (
                    model.image_head(features[int(index)][torch.as_tensor(steps)])
                    if features is not None
                    else in_batches(model.encode_images, dataset.read_frames(index, steps))
                )
                parts_by_task.setdefault(info.task, []).append(nn.functional.normalize(embedded, dim=-1))
    finally:
        model.train(was_training)
    return {
        task: nn.functional.normalize(torch.cat(parts).mean(dim=0), dim=-1) for task, parts in parts_by_task.items()
    }


@torch.no_grad()
def reward_statistics(model: RewardModel, sample: ValidationFrames, native: bool) -> dict[str, float]:
    """Mean and std of the model's rewards (native goal or sentence) on a sample of its training frames."""
    if len(sample.frames) == 0:
        return {"mean": 0.0, "std": 1.0}
    was_training = model.training
    model.eval()
    try:
        rewards = rewards_for_tasks(model, sample, native)
    finally:
        model.train(was_training)
    return {"mean": float(rewards.mean()), "std": float(max(rewards.std(), 1e-6))}
