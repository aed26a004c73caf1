"""Per-task progress calibration: the scores a checkpoint's ``progress`` reward maps to 0 and 1.

A reward model's score has no unit: its range differs by task and by
objective, so a success bonus or a comparison across tasks means nothing on it.
At the end of training, for every training task and each kind of goal the
checkpoint can score (its sentence and, when stored, its goal image), two scores
are recorded from the *training* episodes:

* ``zero``: the :data:`ZERO_PERCENTILE` th percentile of the scores of the
  task's first frames (every training episode's, experts and random alike);
* ``one``: the :data:`ONE_PERCENTILE` th percentile of the scores of its success
  frames (frames whose success flag is set, at most :data:`SUCCESS_FRAMES` per task).

The ``progress`` reward mode is then ``clip((score - zero) / (one - zero), 0, 1)``:
per-task progress in [0, 1], so a success bonus of 1 or more is the largest
reward an agent can collect in a step.

Example:
    >>> calibration_range(np.array([0.1, 0.2, 0.3]), np.array([0.8, 0.9]))   # doctest: +ELLIPSIS
    (0.11..., 0.895...)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from vlm_reward_wrappers.data.storage import DemoDataset
from vlm_reward_wrappers.models.reward_model import Goal, RewardModel
from vlm_reward_wrappers.training.validation import ValidationFrames

ZERO_PERCENTILE = 5.0
ONE_PERCENTILE = 95.0
SUCCESS_FRAMES = 256
"""Success frames per task scored for the calibration (evenly spaced among all of them)."""


def calibration_range(first_scores: np.ndarray, success_scores: np.ndarray) -> tuple[float, float]:
    """``(zero, one)``: the low percentile of first-frame scores and the high percentile of success-frame scores."""
    return float(np.percentile(first_scores, ZERO_PERCENTILE)), float(np.percentile(success_scores, ONE_PERCENTILE))


def calibration_frames(
    dataset: DemoDataset, episodes: Sequence[int], *, read_frames: bool = True
) -> tuple[ValidationFrames, ValidationFrames]:
    """The first frames and (up to :data:`SUCCESS_FRAMES` per task) success frames of ``episodes``.

    ``read_frames=False`` reads no image (features come from a cache, :meth:`ValidationFrames.use_features`).
    """
    first: list[tuple[str, int, int]] = []
    success: dict[str, list[tuple[str, int, int]]] = {}
    for index in episodes:
        info = dataset.episodes[index]
        first.append((info.task, int(index), 0))
        success.setdefault(info.task, []).extend((info.task, int(index), int(s)) for s in np.flatnonzero(info.success))
    chosen: list[tuple[str, int, int]] = []
    for frames in success.values():
        if frames:
            keep = np.unique(np.linspace(0, len(frames) - 1, min(SUCCESS_FRAMES, len(frames))).round().astype(int))
            chosen.extend(frames[i] for i in keep)
    return _frames(dataset, first, read_frames), _frames(dataset, chosen, read_frames)


def _frames(dataset: DemoDataset, where: list[tuple[str, int, int]], read_frames: bool) -> ValidationFrames:
    """The frames at ``(task, episode, step)``, ordered by episode and step (each episode read once)."""
    where = sorted(where, key=lambda item: item[1:])
    episodes = np.array([episode for _, episode, _ in where], dtype=np.int64)
    steps = np.array([step for _, _, step in where], dtype=np.int64)
    if read_frames and where:
        frames = np.concatenate([dataset.read_frames(int(e), steps[episodes == e]) for e in np.unique(episodes)])
    else:
        frames = np.empty((len(where), 0, 0, 3), np.uint8)
    return ValidationFrames(
        frames=frames,
        task=np.array([task for task, _, _ in where]),
        episode=episodes,
        step=steps,
        gt_reward=np.array([dataset.episodes[e].gt_reward[s] for e, s in zip(episodes, steps, strict=True)]),
    )


@torch.no_grad()
def progress_calibration(
    model: RewardModel, first: ValidationFrames, success: ValidationFrames
) -> dict[str, dict[str, list[float]]]:
    """Per kind of goal (``sentence``; ``image`` for tasks with a stored goal image) and task: ``[zero, one]``.

    Tasks without a success frame get no calibration (their ``progress`` reward is refused).
    """
    if not len(first.task) or not len(success.task):
        return {}
    was_training = model.training
    model.eval()
    try:
        first_features, success_features = first.encode(model), success.encode(model)
        calibration: dict[str, dict[str, list[float]]] = {"sentence": {}, "image": {}}
        for task in sorted(set(success.task.tolist())):
            goals: dict[str, Goal] = {"sentence": model.config.goal_for(task)}
            if task in model.config.goal_image_tasks:
                goals["image"] = model.goal_image(task)
            own_first, own_success = first.task == task, success.task == task
            if not own_first.any():
                continue
            for kind, goal in goals.items():
                scores_first = model.reward_from_features(first_features[own_first], goal).double().cpu().numpy()
                scores_success = model.reward_from_features(success_features[own_success], goal).double().cpu().numpy()
                calibration[kind][task] = list(calibration_range(scores_first, scores_success))
    finally:
        model.train(was_training)
    return {kind: tasks for kind, tasks in calibration.items() if tasks}
