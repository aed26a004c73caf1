"""The per-task progress calibration stored in a checkpoint and the ``progress`` reward mode built on it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from vlm_reward_wrappers import VLMRewardWrapper, make_metaworld_env
from vlm_reward_wrappers.data import DemoDataset
from vlm_reward_wrappers.models import RewardModel
from vlm_reward_wrappers.models.reward_model import CalibrationError
from vlm_reward_wrappers.training.calibration import (
    ONE_PERCENTILE,
    ZERO_PERCENTILE,
    calibration_frames,
    calibration_range,
    progress_calibration,
)
from vlm_reward_wrappers.training.trainer import split_episodes
from vlm_reward_wrappers.wrappers.scoring import RewardTransform


def test_calibration_range_is_the_two_percentiles() -> None:
    first = np.arange(101.0)  # the 5th percentile of 0..100 is 5
    success = np.arange(200.0, 301.0)  # the 95th of 200..300 is 295
    assert calibration_range(first, success) == (5.0, 295.0)
    assert (ZERO_PERCENTILE, ONE_PERCENTILE) == (5.0, 95.0)


def test_calibration_frames_are_first_and_success_frames(tiny_dataset: DemoDataset) -> None:
    episodes = [0, 1, 2, 3, 4]
    first, success = calibration_frames(tiny_dataset, episodes)
    assert first.episode.tolist() == episodes and first.step.tolist() == [0] * 5
    expected = sorted((e, int(s)) for e in episodes for s in np.flatnonzero(tiny_dataset.episodes[e].success))
    assert expected, "the tiny experts succeed"
    assert list(zip(success.episode.tolist(), success.step.tolist(), strict=True)) == expected
    for sample in (first, success):
        for row, (episode, step) in enumerate(zip(sample.episode, sample.step, strict=True)):
            np.testing.assert_array_equal(sample.frames[row], tiny_dataset.read_frames(int(episode), [int(step)])[0])
    unread, _ = calibration_frames(tiny_dataset, episodes, read_frames=False)
    assert unread.frames.shape == (5, 0, 0, 3) and unread.step.tolist() == first.step.tolist()


def test_trained_checkpoint_stores_the_calibration_of_its_training_episodes(
    tiny_checkpoint: Path, tiny_dataset: DemoDataset
) -> None:
    model = RewardModel.from_pretrained(tiny_checkpoint)
    stored = model.config.progress_calibration
    tasks = model.config.training["tasks"]
    assert sorted(stored["sentence"]) == sorted(tasks)
    split = split_episodes(tiny_dataset, tasks, 0.15, seed=0)  # the fixture trains with seed 0
    first, success = calibration_frames(tiny_dataset, split.train)
    assert progress_calibration(model, first, success) == stored
    for task in tasks:  # the progress reward maps the calibration frames' percentiles to 0 and 1
        zero, one = stored["sentence"][task]
        if not one > zero:  # a 4-step model may not separate them yet; the refusal is tested below
            continue
        goal = model.config.goal_for(task)
        transform = RewardTransform("progress", model.config.reward_stats, progress_range=(zero, one))
        scores_first = model.reward(first.frames[first.task == task], goal).astype(float)
        scores_success = model.reward(success.frames[success.task == task], goal).astype(float)
        edges = transform(np.array([np.percentile(scores_first, ZERO_PERCENTILE), np.percentile(scores_success, 95)]))
        np.testing.assert_allclose(edges, [0.0, 1.0], atol=1e-5)
        assert transform(scores_first).min() == 0.0 and transform(scores_success).max() == 1.0


def _with_calibration(checkpoint: Path, out: Path, calibration: dict) -> Path:
    model = RewardModel.from_pretrained(checkpoint)
    model.config.progress_calibration = calibration
    model.save_pretrained(out)
    return out


def test_progress_reward_in_the_wrapper(tiny_checkpoint: Path, tmp_path: Path) -> None:
    zero, one = -0.2, 0.4
    checkpoint = _with_calibration(tiny_checkpoint, tmp_path / "calibrated", {"sentence": {"reach-v3": [zero, one]}})
    env = VLMRewardWrapper(make_metaworld_env("reach-v3", image_size=32), checkpoint, reward_mode="progress")
    env.reset(seed=0)
    for action in np.random.default_rng(0).uniform(-1, 1, size=(4, 4)):
        _, reward, *_, info = env.step(action)
        assert reward == pytest.approx(np.clip((info["vlm_score"] - zero) / (one - zero), 0.0, 1.0), abs=1e-12)
    env.close()


def test_progress_reward_refuses_what_it_has_no_calibration_for(tiny_checkpoint: Path, tmp_path: Path) -> None:
    old = tmp_path / "old"  # a checkpoint written before calibration existed: no key in its config.json
    _with_calibration(tiny_checkpoint, old, {})
    config = json.loads((old / "config.json").read_text())
    config.pop("progress_calibration")
    (old / "config.json").write_text(json.dumps(config))
    assert RewardModel.from_pretrained(old).config.progress_calibration == {}  # old checkpoints still load
    with pytest.raises(CalibrationError, match=r"holds no progress calibration.*normalized"):
        VLMRewardWrapper(make_metaworld_env("reach-v3", image_size=32), old, reward_mode="progress")
    calibrated = _with_calibration(tiny_checkpoint, tmp_path / "calibrated", {"sentence": {"reach-v3": [0.0, 1.0]}})
    with pytest.raises(CalibrationError, match="no progress calibration for drawer-close-v3"):
        VLMRewardWrapper(make_metaworld_env("drawer-close-v3", image_size=32), calibrated, reward_mode="progress")
    with pytest.raises(CalibrationError, match="own goal"):
        VLMRewardWrapper(
            make_metaworld_env("reach-v3", image_size=32), calibrated, reward_mode="progress", goal="open the door"
        )
    flat = _with_calibration(tiny_checkpoint, tmp_path / "flat", {"sentence": {"reach-v3": [0.3, 0.3]}})
    with pytest.raises(CalibrationError, match="no higher than first frames"):
        VLMRewardWrapper(make_metaworld_env("reach-v3", image_size=32), flat, reward_mode="progress")
