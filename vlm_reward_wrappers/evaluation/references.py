"""Reference predictors: the floor and the ceiling every learned reward is read between.

Each reference scores the same frames as a checkpoint and returns a
:class:`~vlm_reward_wrappers.metrics.FrameTable`, so the benchmark puts it in
every table as a row of its own, computed on the same pairs and episodes:

* ``oracle``: Meta-World's own reward (the ceiling of every ranking metric).
* ``clock``: step / first-success step (step / episode length for episodes
  that never succeed). It never looks at a frame, but knows each episode's outcome.
* ``clock-capped``: the same, held at 1 from the first success on (flat, so its ties
  after success earn half points on every pair there).
* ``expert-flag``: 1 for expert episodes, 0 for random ones, plus 0.001 · step.
* ``pixel-knn``: progress of the ``k`` nearest training frames of the same task in raw pixels
  (frames averaged down to at most 32 × 32), a simple baseline that needs no model.
* ``backbone-knn``: the same on the frozen backbone's image features: how much of
  a task's progress the backbone keeps near its surface (a probe of the backbone).

The two nearest-neighbour references are labelled with *progress*: the step over
the first-success step (1 from success on), on the successful expert episodes of
the training data, the frames a demonstration-based reward would see. ``k`` is
fixed at :data:`NEAREST` before any evaluation, not tuned.

Example:
    >>> from vlm_reward_wrappers.metrics import FrameTable
    >>> table = FrameTable(predicted=[0.0] * 3, ground_truth=[1.0, 5.0, 9.0], success=[False, False, True],
    ...                    task=["reach-v3"] * 3, episode=[0] * 3, step=[0, 1, 2], first_success_step=[2] * 3,
    ...                    is_expert=[True] * 3)
    >>> frame_free_reference(table, "clock").predicted.tolist()
    [0.0, 0.5, 1.0]
    >>> frame_free_reference(table, "oracle").predicted.tolist()
    [1.0, 5.0, 9.0]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np

from vlm_reward_wrappers.data.storage import DemoDataset
from vlm_reward_wrappers.metrics import FrameTable

FrameFree = Literal["oracle", "clock", "clock-capped", "expert-flag"]
FRAME_FREE: tuple[FrameFree, ...] = ("oracle", "clock", "clock-capped", "expert-flag")
"""The references that never look at a frame (the oracle reads Meta-World's state-based reward)."""
NEAREST = 5
"""Neighbours averaged by the nearest-neighbour references (fixed a priori)."""
PIXEL_SIDE = 32
"""Frames are averaged down to at most this many pixels a side for the raw-pixel reference."""

Embed = Callable[[DemoDataset, Sequence[int]], dict[int, np.ndarray]]
"""Vectors ``(T, D)`` of every frame of the given episodes of a dataset, by episode index."""


def frame_free_reference(table: FrameTable, name: FrameFree) -> FrameTable:
    """``table`` with its predictions replaced by the frame-free reference ``name`` (see the module docstring)."""
    if name == "oracle":
        predicted = table.ground_truth.astype(float)
    elif name in ("clock", "clock-capped"):
        length = np.zeros(int(table.episode_codes.max()) + 1)
        np.maximum.at(length, table.episode_codes, table.step + 1)
        horizon = np.where(table.first_success_step > 0, table.first_success_step, length[table.episode_codes])
        predicted = table.step / horizon
        if name == "clock-capped":
            predicted = np.minimum(predicted, 1.0)
    elif name == "expert-flag":
        predicted = table.is_expert + 0.001 * table.step
    else:
        raise ValueError(f"unknown frame-free reference {name!r}; choose from {', '.join(FRAME_FREE)}")
    return _with_predictions(table, predicted)


def _with_predictions(table: FrameTable, predicted: np.ndarray) -> FrameTable:
    """The table's frames with other predictions and no goal-swap columns (a reference has no goal)."""
    return dataclasses.replace(table, predicted=predicted, goal_rewards=None, goal_tasks=None)


def progress_labels(dataset: DemoDataset, episode: int) -> np.ndarray | None:
    """Step over first-success step, 1 from success on, for a successful expert episode; None for any other."""
    info = dataset.episodes[episode]
    if not info.is_successful_expert:
        return None
    return np.minimum(np.arange(info.num_steps) / max(info.first_success_step, 1), 1.0)


def pixel_vectors(dataset: DemoDataset, episodes: Sequence[int]) -> dict[int, np.ndarray]:
    """Raw frames averaged down to at most :data:`PIXEL_SIDE` pixels a side, flattened, in [0, 1]."""
    vectors = {}
    for index in episodes:
        frames = dataset.read_frames(int(index)).astype(np.float32) / 255.0
        factor = max(1, -(-frames.shape[1] // PIXEL_SIDE))  # ceil: at most PIXEL_SIDE pixels a side
        height, width = frames.shape[1] // factor * factor, frames.shape[2] // factor * factor
        pooled = frames[:, :height, :width].reshape(len(frames), height // factor, factor, width // factor, factor, 3)
        vectors[int(index)] = pooled.mean(axis=(2, 4)).reshape(len(frames), -1)
    return vectors


def knn_progress_reference(
    table: FrameTable,
    train: DemoDataset,
    evaluated: DemoDataset,
    embed: Embed,
    *,
    metric: Literal["euclidean", "cosine"] = "euclidean",
    nearest: int = NEAREST,
) -> FrameTable | None:
    """``table`` (frames of ``evaluated``) predicted by the mean progress of the nearest training frames of each task.

    Args:
        table: the frames to predict, episodes numbered as in ``evaluated``.
        train: the training data: its successful expert episodes, labelled with :func:`progress_labels`.
        evaluated: the data ``table`` was scored on.
        embed: maps frames to vectors (:func:`pixel_vectors`, or backbone features).
        metric: distance between vectors.
        nearest: neighbours averaged.

    Returns None when a task of ``table`` has no successful expert episode in ``train`` (no labels); raises
    ValueError when ``table``'s episode numbers do not point at episodes of its tasks in ``evaluated``.
    """
    predicted = np.zeros(len(table))
    for task in np.unique(table.task):
        labelled = [
            (index, labels)
            for index, info in enumerate(train.episodes)
            if info.task == task and (labels := progress_labels(train, index)) is not None
        ]
        if not labelled:
            return None
        train_vectors = embed(train, [index for index, _ in labelled])
        pool = np.concatenate([train_vectors[index] for index, _ in labelled])
        labels = np.concatenate([labels for _, labels in labelled])
        rows = np.flatnonzero(table.task == task)
        episodes = np.unique(table.episode[rows])
        unlike = [int(e) for e in episodes if e >= len(evaluated) or evaluated.episodes[int(e)].task != task]
        if unlike:
            raise ValueError(
                f"the table's {task} episodes {unlike[:3]} are not {task} episodes of {evaluated.root}: pass the "
                "dataset the table was scored on, with the same task selection (its episodes are numbered within it)"
            )
        query_vectors = embed(evaluated, [int(e) for e in episodes])
        queries = np.stack(
            [
                query_vectors[int(episode)][step]
                for episode, step in zip(table.episode[rows], table.step[rows], strict=True)
            ]
        )
        predicted[rows] = _neighbour_mean(queries, pool, labels, metric, nearest)
    return _with_predictions(table, predicted)


def _neighbour_mean(queries: np.ndarray, pool: np.ndarray, labels: np.ndarray, metric: str, nearest: int) -> np.ndarray:
    """Mean label of the ``nearest`` pool vectors closest to each query (deterministic for the same inputs)."""
    if metric == "cosine":
        queries = queries / np.linalg.norm(queries, axis=1, keepdims=True).clip(1e-12)
        pool = pool / np.linalg.norm(pool, axis=1, keepdims=True).clip(1e-12)
        distance = -queries @ pool.T
    else:
        distance = (queries**2).sum(1)[:, None] - 2 * queries @ pool.T + (pool**2).sum(1)[None, :]
    count = min(nearest, len(pool))
    closest = np.argpartition(distance, count - 1, axis=1)[:, :count]
    return labels[closest].mean(axis=1)
