"""A task given by demonstrations: progress and goal-image rewards, their checks, and the guard against leaks."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from vlm_reward_wrappers import VLMRewardWrapper, make_metaworld_env
from vlm_reward_wrappers.data import CollectionConfig, DemoDataset, collect
from vlm_reward_wrappers.evaluation import evaluate
from vlm_reward_wrappers.evaluation.scoring import load_table, score_dataset
from vlm_reward_wrappers.metrics import ranking_accuracy
from vlm_reward_wrappers.models import Demonstration, RewardModel, demonstration_goal
from vlm_reward_wrappers.models.demonstration import DemonstrationGoal, dataset_demonstrations
from vlm_reward_wrappers.study.presets import PRESETS
from vlm_reward_wrappers.study.report import study_rows
from vlm_reward_wrappers.training.adapt import AdaptConfig, adapt
from vlm_reward_wrappers.training.trainer import STATE_NAME
from vlm_reward_wrappers.wrappers import RewardSpec

SIZE = 32


def unit(vectors: list[list[float]]) -> torch.Tensor:
    return torch.nn.functional.normalize(torch.tensor(vectors, dtype=torch.float32), dim=-1)


def test_progress_is_the_mean_time_of_the_nearest_demonstration_frames() -> None:
    """Hand-made embeddings: a frame's reward is the mean demonstration time of its k most similar frames."""
    demo = unit([[1, 0, 0], [0.8, 0.6, 0], [0, 1, 0], [0, 0.6, 0.8], [0, 0, 1]])  # along the way from x to z
    times = torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0])
    goal = DemonstrationGoal("progress", demo, times, unit([[0, 0, 1]])[0], neighbours=1)
    queries = torch.tensor([[1.0, 0.05, 0], [0, 0.1, 3.0], [0.1, 2.0, 0.1]])  # unnormalised, as encode_images gives
    np.testing.assert_allclose(goal.rewards(queries).numpy(), [0.0, 1.0, 0.5])
    two = DemonstrationGoal("progress", demo, times, unit([[0, 0, 1]])[0], neighbours=2)
    np.testing.assert_allclose(two.rewards(queries).numpy(), [0.125, 0.875, (0.5 + 0.25) / 2], atol=1e-6)


def test_goal_image_reward_is_the_cosine_to_the_goal() -> None:
    goal = DemonstrationGoal("goal-image", unit([[1, 0]]), torch.zeros(1), unit([[0, 1]])[0], neighbours=3)
    rewards = goal.rewards(torch.tensor([[0.0, 2.0], [3.0, 0.0], [1.0, 1.0]]))
    np.testing.assert_allclose(rewards.numpy(), [1.0, 0.0, 2**-0.5], atol=1e-6)


@pytest.mark.parametrize(
    ("frames", "first_success", "message"),
    [
        (np.zeros((0, 8, 8, 3), np.uint8), None, "has no frames"),
        (np.zeros((4, 8, 8, 3), np.uint8), -1, "never succeeds"),
        (np.zeros((4, 8, 8, 3), np.uint8), 4, "never succeeds"),
        (np.zeros((4, 8, 8, 3), np.float32), None, "must be uint8 frames"),
        (np.zeros((4, 8, 8), np.uint8), None, "must be uint8 frames"),
    ],
)
def test_bad_demonstrations_are_refused_with_their_name(frames, first_success, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Demonstration.from_frames(frames, first_success, name="my demo")


def test_a_folder_of_frames_is_a_demonstration_ending_in_success(tmp_path: Path) -> None:
    for index in range(3):
        Image.fromarray(np.full((8, 8, 3), 40 * index, np.uint8)).save(tmp_path / f"{index:03d}.png")
    demo = Demonstration.from_folder(tmp_path)
    assert len(demo) == 3 and demo.first_success == 2 and demo.frames[2, 0, 0, 0] == 80
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(ValueError, match="holds no"):
        Demonstration.from_folder(empty)


@pytest.fixture(scope="module")
def other_dataset(tmp_path_factory: pytest.TempPathFactory) -> DemoDataset:
    """Demonstrations from a collection of their own (another seed), as the benchmark takes them."""
    config = CollectionConfig(
        tasks=("reach-v3",),
        episodes_per_task=2,
        noise_levels=(0.0,),
        random_share=0.0,
        image_size=SIZE,
        max_steps=120,
        steps_after_success=5,
        seed=77,
    )
    return collect(config, tmp_path_factory.mktemp("demos") / "data", workers=1, progress=False)


def test_demonstration_rewards_of_a_real_model(tiny_checkpoint: Path, other_dataset: DemoDataset) -> None:
    """Progress is 0 at the demonstration's start and 1 at its success; a wrong-size demonstration is refused."""
    model = RewardModel.from_pretrained(tiny_checkpoint)
    demo = dataset_demonstrations(other_dataset, ["reach-v3"])["reach-v3"][0]
    goal = demonstration_goal(model, demo, "progress", neighbours=1)
    own = model.reward(demo.frames[: demo.first_success + 1], goal)
    assert own[0] == pytest.approx(0.0) and own[-1] == pytest.approx(1.0)
    assert np.all((own >= 0) & (own <= 1))
    assert goal.reward_stats["std"] > 0 and model.reward_stats_for(goal) is goal.reward_stats
    image_goal = demonstration_goal(model, demo, "goal-image")
    expected = torch.nn.functional.normalize(model.encode_images(demo.frames[-1:]).detach(), dim=-1)
    assert float(model.reward(demo.frames[-1:], image_goal)[0]) == pytest.approx(
        float(expected[0] @ image_goal.goal), abs=1e-5
    )
    big = Demonstration.from_frames(np.zeros((3, SIZE * 2, SIZE * 2, 3), np.uint8), name="big")
    with pytest.raises(ValueError, match=r"big.*64-px"):
        demonstration_goal(model, big)


def test_too_few_successful_episodes_for_the_demonstrations_asked(other_dataset: DemoDataset) -> None:
    with pytest.raises(ValueError, match="holds 2 successful expert episodes of reach-v3; 3 are needed"):
        dataset_demonstrations(other_dataset, ["reach-v3"], per_task=3)


def test_the_wrapper_rewards_progress_along_a_demonstration(tiny_checkpoint: Path, other_dataset: DemoDataset) -> None:
    demo = dataset_demonstrations(other_dataset, ["reach-v3"])["reach-v3"][0]
    env = VLMRewardWrapper(make_metaworld_env("reach-v3", image_size=SIZE), tiny_checkpoint, demonstration=demo)
    env.reset(seed=0)
    rewards, frames = [], []
    for _ in range(5):
        rewards.append(env.step(env.action_space.sample())[1])
        frames.append(env.frames.render())  # the frame the wrapper scored at this step
    model = RewardModel.from_pretrained(tiny_checkpoint)
    expected = model.reward(np.stack(frames), demonstration_goal(model, demo))
    np.testing.assert_allclose(rewards, expected, atol=1e-5)
    assert all(0.0 <= reward <= 1.0 for reward in rewards)
    env.close()
    with pytest.raises(ValueError, match="not goal and demonstration"):
        RewardSpec.of(tiny_checkpoint, goal="reach", demonstration=demo)


def test_evaluate_scores_demonstration_rewards_and_refuses_leaks(
    tiny_checkpoint: Path, tiny_dataset: DemoDataset, other_dataset: DemoDataset, tmp_path: Path
) -> None:
    """Demonstrations from another collection are scored; one that is an evaluated episode is refused."""
    demos = dataset_demonstrations(other_dataset, ["reach-v3"])
    metrics = evaluate(tiny_checkpoint, tiny_dataset.root, tmp_path / "eval", demonstrations=demos, plots=False)
    model = RewardModel.from_pretrained(tiny_checkpoint)
    reach = [i for i, info in enumerate(tiny_dataset.episodes) if info.task == "reach-v3"]
    for key, kind, table_file in (
        ("demo_progress_reward", "progress", "predictions_demo_progress.npz"),
        ("demo_goal_image_reward", "goal-image", "predictions_demo_goal_image.npz"),
    ):
        assert list(metrics[key]["per_task"]) == ["reach-v3"]
        # the table behind the metrics holds that demonstration reward of every reach frame
        goal = {"reach-v3": demonstration_goal(model, demos["reach-v3"], kind)}
        expected = score_dataset(model, tiny_dataset, reach, goal=goal).table
        assert expected is not None
        scored = load_table(tmp_path / "eval" / table_file)
        np.testing.assert_allclose(scored.predicted, expected.predicted, atol=1e-6)
        # and its ranking accuracy is that of those rewards
        recomputed = ranking_accuracy(expected.predicted, expected.ground_truth, expected.task, expected.episode)
        assert metrics[key]["overall"]["ranking_accuracy"] == pytest.approx(recomputed.overall, abs=1e-4)
    assert metrics["evaluated"]["demonstrations"] == {"reach-v3": [demos["reach-v3"][0].name]}
    leaking = dataset_demonstrations(tiny_dataset, ["reach-v3"])
    with pytest.raises(ValueError, match="is also an evaluated episode"):
        evaluate(tiny_checkpoint, tiny_dataset.root, tmp_path / "leak", demonstrations=leaking, plots=False)


def test_the_study_scores_demonstration_rewards_on_held_out_tasks_only() -> None:
    rows = [row for row in study_rows(PRESETS["full"]) if row.variant == "triplet"]
    assert [(row.label, row.splits) for row in rows] == [
        ("triplet", ("train-tasks", "held-out-tasks")),
        ("triplet (1 demo: progress)", ("held-out-tasks",)),
        ("triplet (1 demo: goal image)", ("held-out-tasks",)),
        ("triplet (adapted on 1 demo)", ("held-out-tasks",)),
        ("triplet (adapted on 5 demos)", ("held-out-tasks",)),
    ]
    # quick gives the held-out tasks by one demonstration and adapts nothing (preset full adapts).
    quick = [row.label for row in study_rows(PRESETS["quick"]) if row.variant == "triplet"]
    assert quick == [row.label for row in rows[:3]]
    collection = PRESETS["quick"].demo_collection()
    assert collection.seed not in (PRESETS["quick"].eval_collection().seed, PRESETS["quick"].train_collection().seed)
    assert collection.tasks == PRESETS["quick"].held_out_tasks and collection.random_share == 0.0


REPO = Path(__file__).resolve().parents[1]


def test_adapt_learns_the_new_task_from_its_first_successful_demonstrations(
    tiny_checkpoint: Path, other_dataset: DemoDataset, tmp_path: Path
) -> None:
    """The adapted checkpoint keeps the objective, starts from the checkpoint's weights, trains on k demonstrations
    and stores the new task's goal image; asking for more demonstrations than the data holds is refused."""
    base = RewardModel.from_pretrained(tiny_checkpoint)
    model = adapt(tiny_checkpoint, other_dataset.root, tmp_path / "one", AdaptConfig(max_steps=4, batch_size=4))
    training = model.config.training
    assert model.config.objective == base.config.objective
    mine, theirs = model.config.backbone, base.config.backbone
    assert (mine.model, mine.sha256) == (theirs.model, theirs.sha256)
    assert training["tasks"] == ["reach-v3"] and training["train_episodes"] == 1 and training["steps"] == 4
    assert model.config.goal_image_tasks == ["reach-v3"]
    assert set(base.config.goal_texts) <= set(model.config.goal_texts)
    moved = [name for name, value in model.weights_to_save().items() if name != "goal_images"]
    assert any(not torch.equal(model.weights_to_save()[name], base.weights_to_save()[name]) for name in moved)
    two = adapt(tiny_checkpoint, other_dataset.root, tmp_path / "two", AdaptConfig(demonstrations=2, max_steps=2))
    assert two.config.training["train_episodes"] == 2
    with pytest.raises(ValueError, match="holds 2 successful expert episodes of reach-v3; 3 are needed"):
        adapt(tiny_checkpoint, other_dataset.root, tmp_path / "three", AdaptConfig(demonstrations=3))


def test_adapt_killed_resumes_to_the_uninterrupted_result(
    tiny_checkpoint: Path, other_dataset: DemoDataset, tmp_path: Path, sigkill_when_written: Callable[..., None]
) -> None:
    """``vlm-rewards adapt`` killed with SIGKILL after a save, run again, ends with the uninterrupted run's state."""
    max_steps = 40
    out = tmp_path / "killed"
    command = [sys.executable, "-m", "vlm_reward_wrappers", "adapt", "--checkpoint", str(tiny_checkpoint)]
    command += ["--data", str(other_dataset.root), "--out", str(out), "--max-steps", str(max_steps)]
    command += ["--batch-size", "4", "--device", "cpu"]
    sigkill_when_written(command, out / STATE_NAME, tmp_path / "killed.log", cwd=REPO)
    if (out / STATE_NAME).exists():  # normally; a kill inside the save's swap leaves none
        killed_at = torch.load(out / STATE_NAME, map_location="cpu", weights_only=False)["step"]
        assert killed_at < max_steps, "the run finished before it could be killed"
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    config = AdaptConfig(max_steps=max_steps, batch_size=4)
    reference = adapt(tiny_checkpoint, other_dataset.root, tmp_path / "reference", config)
    resumed = torch.load(out / STATE_NAME, map_location="cpu", weights_only=False)
    expected = torch.load(tmp_path / "reference" / STATE_NAME, map_location="cpu", weights_only=False)
    assert resumed["step"] == expected["step"] == max_steps
    for name, tensor in expected["model"].items():
        assert torch.equal(resumed["model"][name], tensor), name
    assert RewardModel.from_pretrained(out).config.goal_image_tasks == reference.config.goal_image_tasks
