"""Native rewards: each objective scored with the goal it trains (a sentence or a goal image), stored in checkpoints."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from vlm_reward_wrappers import VLMRewardWrapper, make_metaworld_env
from vlm_reward_wrappers.data import DemoDataset
from vlm_reward_wrappers.models import RewardModel
from vlm_reward_wrappers.models.checkpoint import WEIGHTS_NAME
from vlm_reward_wrappers.models.reward_model import GoalUnavailableError
from vlm_reward_wrappers.objectives import get_objective
from vlm_reward_wrappers.training.trainer import TrainConfig, split_episodes, train

SIZE = 32


@pytest.fixture(scope="module")
def tcn_checkpoint(tmp_path_factory, tiny_dataset, tiny_backbone) -> Path:
    """A TCN checkpoint (an image-goal objective), heads finetuning, a few steps."""
    out = tmp_path_factory.mktemp("tcn") / "tcn"
    config = TrainConfig(objective="tcn", finetune="heads", batch_size=8, max_steps=4, eval_every=2)
    train(config, tiny_dataset.root, out, backbone=tiny_backbone, progress=False)
    return out


@pytest.fixture(scope="module")
def frames(tiny_dataset) -> np.ndarray:
    return tiny_dataset.read_frames(0)[:12]


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=-1, keepdims=True)) @ (b / np.linalg.norm(b))


@pytest.mark.parametrize(
    "name,options,kind",
    [
        ("zero-shot", {}, "sentence"),
        ("triplet", {}, "sentence"),
        ("tcn", {}, "image"),
        ("vip", {"goal": "image"}, "image"),
        ("vip", {"goal": "language"}, "sentence"),
        ("r3m", {}, "sentence"),
        ("liv", {}, "sentence"),
    ],
)
def test_each_objective_declares_the_goal_it_trains(name, options, kind):
    assert get_objective(name, **options).goal_kind == kind


def test_native_goal_dispatch(tiny_checkpoint, tcn_checkpoint, frames):
    triplet, tcn = RewardModel.from_pretrained(tiny_checkpoint), RewardModel.from_pretrained(tcn_checkpoint)
    assert triplet.native_goal("reach-v3") == "reach the goal position"
    goal = tcn.native_goal("reach-v3")
    assert isinstance(goal, torch.Tensor) and torch.equal(goal, tcn.goal_image("reach-v3"))
    embeddings = tcn.encode_images(frames).detach().numpy()
    np.testing.assert_allclose(tcn.reward(frames, goal), cosine(embeddings, goal.numpy()), atol=1e-5)


def test_goal_images_are_stored_and_survive_save_and_load(tcn_checkpoint, tiny_dataset, tmp_path):
    model = RewardModel.from_pretrained(tcn_checkpoint)
    with_successes = sorted({e.task for e in tiny_dataset.episodes if e.is_successful_expert})
    assert model.config.goal_image_tasks == with_successes
    assert model.goal_images is not None and model.goal_images.shape == (len(with_successes), 32)
    np.testing.assert_allclose(model.goal_images.norm(dim=-1).numpy(), 1.0, atol=1e-5)
    assert "goal_images" in load_file(str(tcn_checkpoint / WEIGHTS_NAME))
    model.save_pretrained(tmp_path / "copy")
    assert torch.equal(RewardModel.from_pretrained(tmp_path / "copy").goal_images, model.goal_images)


def test_the_stored_goal_image_is_the_mean_embedding_of_success_frames(tcn_checkpoint, tiny_dataset):
    model = RewardModel.from_pretrained(tcn_checkpoint)
    config = TrainConfig(**model.config.training["config"])
    split = split_episodes(tiny_dataset, sorted(tiny_dataset.tasks), config.val_fraction, config.seed)
    for task in model.config.goal_image_tasks:
        embeddings = []
        for index in split.train:  # the training episodes only: validation episodes never shape the goal
            info = tiny_dataset.episodes[index]
            if info.task == task and info.is_successful_expert:
                steps = np.arange(info.first_success_step, info.num_steps)
                embeddings.append(model.encode_images(tiny_dataset.read_frames(index, steps)).detach())
        normalized = torch.nn.functional.normalize(torch.cat(embeddings), dim=-1)
        expected = torch.nn.functional.normalize(normalized.mean(0), dim=-1)
        torch.testing.assert_close(model.goal_image(task), expected, atol=1e-5, rtol=0)


def test_an_image_goal_checkpoint_without_a_goal_image_for_the_task_says_pass_goal_image(tcn_checkpoint):
    env = make_metaworld_env("door-open-v3", image_size=SIZE)  # not a training task: no stored goal image
    with pytest.raises(GoalUnavailableError, match="goal_image="):
        VLMRewardWrapper(env, tcn_checkpoint)
    env.close()


def test_the_wrapper_gives_an_image_goal_objective_its_native_reward(tcn_checkpoint):
    env = VLMRewardWrapper(make_metaworld_env("reach-v3", image_size=SIZE), tcn_checkpoint)
    model = RewardModel.from_pretrained(tcn_checkpoint)
    env.reset(seed=3)
    _, reward, _, _, info = env.step(env.action_space.sample())
    frame = env.frames.render()[None]
    expected = cosine(model.encode_images(frame).detach().numpy(), model.goal_image("reach-v3").numpy())[0]
    assert reward == pytest.approx(float(expected), abs=1e-5) and info["vlm_score"] == pytest.approx(reward)
    env.close()


def test_goal_image_as_array_or_file(tiny_checkpoint, tmp_path, tiny_dataset):
    goal_frames = tiny_dataset.read_frames(1)[-3:]
    model = RewardModel.from_pretrained(tiny_checkpoint)
    expected_goal = model.embed_goal_frames(goal_frames).numpy()
    env = VLMRewardWrapper(make_metaworld_env("reach-v3", image_size=SIZE), tiny_checkpoint, goal_image=goal_frames)
    np.testing.assert_allclose(env.goal, expected_goal, atol=1e-6)  # an image goal, not the sentence
    env.reset(seed=0)
    _, reward, _, _, _ = env.step(env.action_space.sample())
    frame = env.frames.render()[None]
    assert reward == pytest.approx(
        float(cosine(model.encode_images(frame).detach().numpy(), expected_goal)[0]), abs=1e-5
    )
    env.close()
    Image.fromarray(goal_frames[-1]).save(tmp_path / "goal.png")
    from_file = VLMRewardWrapper(
        make_metaworld_env("reach-v3", image_size=SIZE), tiny_checkpoint, goal_image=str(tmp_path / "goal.png")
    )
    np.testing.assert_allclose(from_file.goal, model.embed_goal_frames(goal_frames[-1:]).numpy(), atol=1e-6)
    from_file.close()


@pytest.mark.parametrize(
    "goal_image,message",
    [
        (np.zeros((8, 8), np.uint8), "uint8 frame"),
        (np.zeros((8, 8, 3), np.float32), "uint8 frame"),
        ("/no/such/goal.png", "cannot be read as an image"),
    ],
)
def test_a_bad_goal_image_is_refused_clearly(tiny_checkpoint, goal_image, message):
    env = make_metaworld_env("reach-v3", image_size=SIZE)
    with pytest.raises(ValueError, match=message):
        VLMRewardWrapper(env, tiny_checkpoint, goal_image=goal_image)
    with pytest.raises(ValueError, match="not goal and goal_image"):
        VLMRewardWrapper(env, tiny_checkpoint, goal="reach", goal_image=np.zeros((8, 8, 3), np.uint8))
    env.close()


def test_checkpoint_selection_never_reads_ground_truth_rewards(tiny_dataset, tiny_backbone, tmp_path):
    """Shuffling the ground-truth rewards of the data changes nothing about which weights are kept."""
    shuffled = Path(shutil.copytree(tiny_dataset.root, tmp_path / "shuffled"))
    rng = np.random.default_rng(0)
    for path in sorted((shuffled / "episodes").rglob("*.h5")):
        with h5py.File(path, "r+") as h5:
            h5["gt_reward"][...] = rng.permutation(h5["gt_reward"][()]) + rng.uniform(0, 5)
    config = TrainConfig(objective="triplet", finetune="heads", batch_size=8, max_steps=6, eval_every=2)
    runs = [train(config, data, tmp_path / "runs" / name, backbone=tiny_backbone, progress=False)
            for name, data in (("original", tiny_dataset.root), ("shuffled", shuffled))]  # fmt: skip
    first, second = (run.config.training for run in runs)
    assert first["best_step"] == second["best_step"]
    assert [h["ranking_accuracy"] for h in first["history"]] != [h["ranking_accuracy"] for h in second["history"]]
    kept = [load_file(str(tmp_path / "runs" / name / WEIGHTS_NAME)) for name in ("original", "shuffled")]
    assert kept[0].keys() == kept[1].keys() and all(torch.equal(kept[0][k], kept[1][k]) for k in kept[0])
    assert DemoDataset(shuffled).episodes[0].gt_reward.tolist() != tiny_dataset.episodes[0].gt_reward.tolist()
