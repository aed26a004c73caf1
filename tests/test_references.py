"""Reference predictors on real Meta-World frames: the clock, the oracle, and nearest neighbours in pixels and
in a real backbone's features."""

from __future__ import annotations

import numpy as np
import pytest

from vlm_reward_wrappers.evaluation.references import (
    frame_free_reference,
    knn_progress_reference,
    pixel_vectors,
    progress_labels,
)
from vlm_reward_wrappers.evaluation.scoring import score_dataset
from vlm_reward_wrappers.models import RewardModel


@pytest.fixture(scope="module")
def table(tiny_checkpoint, tiny_dataset):
    scored = score_dataset(RewardModel.from_pretrained(tiny_checkpoint), tiny_dataset)
    assert scored.table is not None
    return scored.table


def test_frame_free_references_by_hand(table):
    clock = frame_free_reference(table, "clock")
    for episode in np.unique(table.episode):
        rows = table.episode == episode
        first = table.first_success_step[rows][0]
        horizon = first if first > 0 else rows.sum()
        assert np.allclose(clock.predicted[rows], table.step[rows] / horizon)
        assert np.all(np.diff(clock.predicted[rows][np.argsort(table.step[rows])]) > 0)  # strictly rising
    flag = frame_free_reference(table, "expert-flag")
    assert np.allclose(flag.predicted, table.is_expert + 0.001 * table.step)
    oracle = frame_free_reference(table, "oracle")
    assert np.array_equal(oracle.predicted, table.ground_truth) and oracle.goal_rewards is None
    with pytest.raises(ValueError, match="unknown frame-free reference"):
        frame_free_reference(table, "sundial")  # type: ignore[arg-type]


def test_pixel_neighbours_of_the_training_frames_themselves_give_back_their_progress(table, tiny_dataset):
    # Scored on its own training data with one neighbour, each successful expert frame finds itself (distance 0).
    predicted = knn_progress_reference(table, tiny_dataset, tiny_dataset, pixel_vectors, nearest=1)
    assert predicted is not None
    for index, info in enumerate(tiny_dataset.episodes):
        labels = progress_labels(tiny_dataset, index)
        rows = np.flatnonzero(table.episode == index)
        if labels is not None:
            assert np.allclose(predicted.predicted[rows], labels[table.step[rows]])
            assert labels[info.first_success_step] == 1.0 and labels[0] == 0.0
        else:
            assert progress_labels(tiny_dataset, index) is None and not info.is_successful_expert
    assert np.all((predicted.predicted >= 0) & (predicted.predicted <= 1))


def test_pixel_vectors_are_averaged_down(tiny_dataset):
    vectors = pixel_vectors(tiny_dataset, [0])[0]
    side = tiny_dataset.image_size  # 32 px: already at most 32 a side, kept as is
    assert vectors.shape == (tiny_dataset.episodes[0].num_steps, side * side * 3)
    frames = tiny_dataset.read_frames(0).astype(np.float32) / 255
    assert np.allclose(vectors, frames.reshape(len(frames), -1))


def test_backbone_neighbours_use_real_features(table, tiny_checkpoint, tiny_dataset):
    model = RewardModel.from_pretrained(tiny_checkpoint)

    def embed(dataset, episodes):
        return {int(e): model.backbone_image_features(dataset.read_frames(int(e))).detach().numpy() for e in episodes}

    predicted = knn_progress_reference(table, tiny_dataset, tiny_dataset, embed, metric="cosine", nearest=3)
    assert predicted is not None and predicted.predicted.shape == table.predicted.shape
    assert np.ptp(predicted.predicted) > 0
    # Each frame gets the mean progress of the 3 training frames of its task with the highest cosine, by brute force.
    for task in ("reach-v3", "drawer-close-v3"):
        labelled = [
            (index, labels)
            for index, info in enumerate(tiny_dataset.episodes)
            if info.task == task and (labels := progress_labels(tiny_dataset, index)) is not None
        ]
        pool = np.concatenate([embed(tiny_dataset, [index])[index] for index, _ in labelled])
        pool /= np.linalg.norm(pool, axis=1, keepdims=True)
        labels = np.concatenate([labels for _, labels in labelled])
        row = np.flatnonzero(table.task == task)[7]
        query = embed(tiny_dataset, [table.episode[row]])[int(table.episode[row])][table.step[row]]
        nearest = np.argsort(-(pool @ (query / np.linalg.norm(query))))[:3]
        assert predicted.predicted[row] == pytest.approx(labels[nearest].mean(), abs=1e-6)


def test_a_task_without_labelled_training_frames_gives_no_reference(table, tiny_dataset):
    others = tiny_dataset.__class__(tiny_dataset.root, tasks=["reach-v3"])
    assert knn_progress_reference(table, others, tiny_dataset, pixel_vectors) is None


def test_a_table_scored_on_another_selection_of_the_data_is_refused(table, tiny_dataset):
    # Episode numbers count within the selection a table was scored on: another selection is another numbering.
    reach_only = tiny_dataset.__class__(tiny_dataset.root, tasks=["reach-v3", "drawer-close-v3"])
    with pytest.raises(ValueError, match="pass the dataset the table was scored on"):
        knn_progress_reference(table, tiny_dataset, reach_only, pixel_vectors)
