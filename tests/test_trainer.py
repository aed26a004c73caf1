"""The trainer: checkpoints with a training summary, exact resume (also after SIGKILL), run
mismatches, non-finite losses, held-out tasks, two-process training, heads and zero-shot runs,
and the cached backbone pretraining.

Everything is real: the tiny Meta-World dataset, the ``vlmrw-nano`` backbone, real training
runs in-process, through the CLI in a subprocess, and under ``torch.distributed.run``.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vlm_reward_wrappers.configs import to_dict
from vlm_reward_wrappers.data import CollectionConfig, collect
from vlm_reward_wrappers.models import BackboneSpec, RewardModel, load_backbone
from vlm_reward_wrappers.models.backbone import file_sha256
from vlm_reward_wrappers.models.checkpoint import CONFIG_NAME, WEIGHTS_NAME
from vlm_reward_wrappers.models.features import backbone_features
from vlm_reward_wrappers.objectives import get_objective
from vlm_reward_wrappers.tasks import DEFAULT_BASELINE_TEXT, ML45_TEST, goal_text
from vlm_reward_wrappers.training.batches import FrameStore, TrajectorySampler
from vlm_reward_wrappers.training.plateau import has_flattened
from vlm_reward_wrappers.training.pretrain import BACKBONE_INFO, BACKBONE_WEIGHTS, PretrainConfig, pretrain_backbone
from vlm_reward_wrappers.training.trainer import (
    STATE_NAME,
    STATISTICS_FRAMES,
    NonFiniteLossError,
    RunMismatchError,
    TrainConfig,
    TrainingStep,
    choose_tasks,
    split_episodes,
    train,
)
from vlm_reward_wrappers.training.validation import validation_frames

REPO = Path(__file__).resolve().parents[1]
SMALL = dict(objective="triplet", finetune="lora", lora_rank=2, batch_size=8, eval_every=2)
"""The tiny_checkpoint fixture's run, less max_steps."""


def state_of(folder: Path) -> dict:
    return torch.load(folder / STATE_NAME, map_location="cpu", weights_only=False)


def summary_of(folder: Path) -> dict:
    return json.loads((folder / CONFIG_NAME).read_text())


def assert_same_tensors(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


def assert_same_training(a: Path, b: Path) -> None:
    """Identical resumable state (last weights, optimizer, step), history and best step."""
    state_a, state_b = state_of(a), state_of(b)
    assert state_a["step"] == state_b["step"]
    assert_same_tensors(state_a["model"], state_b["model"])
    assert state_a["optimizer"]["param_groups"] == state_b["optimizer"]["param_groups"]
    assert state_a["optimizer"]["state"].keys() == state_b["optimizer"]["state"].keys()
    for index in state_a["optimizer"]["state"]:
        assert_same_tensors(state_a["optimizer"]["state"][index], state_b["optimizer"]["state"][index])
    assert state_a["history"] == state_b["history"] and state_a["best"] == state_b["best"]
    for key in ("history", "steps", "best_step", "best_validation"):
        assert summary_of(a)["training"][key] == summary_of(b)["training"][key], key


def folder_hashes(folder: Path) -> dict[str, str]:
    return {p.name: file_sha256(p) for p in sorted(folder.iterdir())}


@pytest.fixture(scope="module")
def frames(tiny_dataset) -> np.ndarray:
    button = next(i for i, e in enumerate(tiny_dataset.episodes) if e.task == "button-press-v3")
    return tiny_dataset.read_frames(button)[::4]


@pytest.fixture(scope="module")
def mini_dataset(tmp_path_factory):
    """One reach episode and one episode of an ML45 test task (door-lock), 6 steps at 16 px."""
    config = CollectionConfig(
        tasks=("reach-v3", "door-lock-v3"), episodes_per_task=1, image_size=16, max_steps=6, seed=0
    )
    return collect(config, tmp_path_factory.mktemp("mini") / "data", workers=1, progress=False)


# -------------------------------------------------------------- (a) summary


def test_train_writes_a_checkpoint_with_its_training_summary(tiny_checkpoint, tiny_dataset, tiny_backbone):
    payload = summary_of(tiny_checkpoint)
    training = payload["training"]
    assert training["steps"] == 4
    assert [entry["step"] for entry in training["history"]] == [2, 4]  # one entry per evaluation
    for entry in training["history"]:
        assert set(entry) == {"step", "validation_loss", "ranking_accuracy", "task_accuracy"}
        assert math.isfinite(entry["validation_loss"]) and entry["validation_loss"] > 0  # a triplet hinge loss
    # The kept weights have the lowest validation loss of the objective itself, not the best ranking accuracy.
    best_entry = min(training["history"], key=lambda e: e["validation_loss"])  # first of equal losses wins
    assert training["best_step"] == best_entry["step"]
    assert training["best_validation"] == {k: v for k, v in best_entry.items() if k != "step"}
    assert training["tasks"] == sorted(tiny_dataset.tasks) and training["config"]["max_steps"] == 4
    expected_trajectories = [i for i, e in enumerate(tiny_dataset.episodes) if e.is_successful_expert]
    assert 0 < training["trajectories"] <= len(expected_trajectories)
    assert training["train_episodes"] + training["val_episodes"] == len(tiny_dataset)
    # The stored statistics are those of the kept weights' sentence rewards on the training frames drawn for them.
    tasks = sorted(tiny_dataset.tasks)
    split = split_episodes(tiny_dataset, tasks, TrainConfig().val_fraction, seed=0)
    sample = validation_frames(tiny_dataset, split.train, STATISTICS_FRAMES // len(tasks), seed=1)
    model = RewardModel.from_pretrained(tiny_checkpoint)
    rewards = np.concatenate([model.reward(sample.frames[sample.task == task], goal_text(task)) for task in tasks])
    assert payload["reward_stats"] == pytest.approx({"mean": rewards.mean(), "std": rewards.std()}, abs=1e-5)
    assert rewards.std() > 1e-5
    recorded = {**to_dict(tiny_backbone), "pretrained": "backbone.safetensors"}  # the weights lie in the folder
    assert payload["backbone"] == recorded and payload["objective"]["name"] == "triplet"
    assert payload["goal_texts"] == {task: goal_text(task) for task in tiny_dataset.tasks}
    assert payload["image_size"] == 32 and payload["camera"] == "corner"
    with_goal_images = sorted({tiny_dataset.episodes[i].task for i in range(len(tiny_dataset))
                               if tiny_dataset.episodes[i].is_successful_expert})  # fmt: skip
    assert payload["goal_image_tasks"] == with_goal_images and payload["image_reward_stats"]["std"] > 1e-5

    state = state_of(tiny_checkpoint)
    assert state["step"] == 4 and state["history"] == training["history"]
    assert state["config"] == TrainConfig(**SMALL, max_steps=4).resume_key()
    # last (trained) vs kept weights, with the goal images computed at the end: see below
    assert set(state["model"]) | {"goal_images"} == set(load_file(str(tiny_checkpoint / WEIGHTS_NAME)))


# ------------------------------------------------------------- (b) resume


@pytest.fixture(scope="module")
def resume_runs(tiny_dataset, tiny_backbone, tmp_path_factory) -> dict[str, Path]:
    """A: 6 steps straight; B: 4 steps, then resumed to 6; C: 2 steps (the weights after step 2)."""
    root = tmp_path_factory.mktemp("resume")
    train(TrainConfig(**SMALL, max_steps=6), tiny_dataset.root, root / "a", backbone=tiny_backbone, progress=False)
    train(TrainConfig(**SMALL, max_steps=4), tiny_dataset.root, root / "b", backbone=tiny_backbone, progress=False)
    assert state_of(root / "b")["step"] == 4
    train(TrainConfig(**SMALL, max_steps=6), tiny_dataset.root, root / "b", backbone=tiny_backbone, progress=False)
    train(TrainConfig(**SMALL, max_steps=2), tiny_dataset.root, root / "c", backbone=tiny_backbone, progress=False)
    return {"a": root / "a", "b": root / "b", "c": root / "c"}


def test_resumed_run_equals_an_uninterrupted_run(resume_runs):
    assert_same_training(resume_runs["a"], resume_runs["b"])
    assert [e["step"] for e in summary_of(resume_runs["b"])["training"]["history"]] == [2, 4, 6]
    assert summary_of(resume_runs["b"])["training"]["steps"] == 6
    # The 2-step run's state is the 6-step run's trajectory at step 2 (batches depend only on (seed, k)).
    assert state_of(resume_runs["c"])["history"] == state_of(resume_runs["a"])["history"][:1]


def test_checkpoint_holds_the_weights_of_the_best_step(resume_runs):
    weights_after = {2: state_of(resume_runs["c"])["model"], 6: state_of(resume_runs["a"])["model"]}
    best_step = summary_of(resume_runs["a"])["training"]["best_step"]
    assert best_step in weights_after  # (this tiny run has its lowest validation loss at step 2 or 6)
    kept = load_file(str(resume_runs["a"] / WEIGHTS_NAME))
    assert kept.pop("goal_images").shape[0] == 3  # computed at the end, from the kept weights
    assert_same_tensors(kept, weights_after[best_step])


def test_resumed_run_writes_the_same_checkpoint_weights(resume_runs):
    assert_same_tensors(
        load_file(str(resume_runs["a"] / WEIGHTS_NAME)), load_file(str(resume_runs["b"] / WEIGHTS_NAME))
    )
    assert summary_of(resume_runs["a"])["reward_stats"] == summary_of(resume_runs["b"])["reward_stats"]


def test_rerunning_a_finished_run_changes_nothing(tiny_checkpoint, tiny_dataset, tiny_backbone, tmp_path):
    out = Path(shutil.copytree(tiny_checkpoint, tmp_path / "ckpt"))
    weights_before = folder_hashes(out)[WEIGHTS_NAME]
    train(TrainConfig(**SMALL, max_steps=4), tiny_dataset.root, out, backbone=tiny_backbone, progress=False)
    assert folder_hashes(out)[WEIGHTS_NAME] == weights_before
    assert_same_training(tiny_checkpoint, out)


def _cli_train(out: Path, data: Path, backbone: BackboneSpec, max_steps: int) -> list[str]:
    return [
        sys.executable, "-m", "vlm_reward_wrappers", "train", "--objective", "triplet",
        "--data", str(data), "--out", str(out), "--backbone", backbone.model, "--backbone-weights", backbone.pretrained,
        "--max-steps", str(max_steps), "--eval-every", "2", "--batch-size", "8", "--lora-rank", "2", "--device", "cpu",
    ]  # fmt: skip


def _env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONUNBUFFERED": "1"}


def test_cli_run_killed_with_sigkill_resumes_to_the_uninterrupted_result(
    tiny_dataset, tiny_backbone, tmp_path, sigkill_when_written
):
    max_steps = 16
    out = tmp_path / "killed"
    command = _cli_train(out, tiny_dataset.root, tiny_backbone, max_steps)
    sigkill_when_written(command, out / STATE_NAME, tmp_path / "killed.log", cwd=REPO, timeout=90)
    if (out / STATE_NAME).exists():  # normally; a kill between the two renames of the swap leaves no folder
        assert state_of(out)["step"] < max_steps

    done = subprocess.run(command, cwd=REPO, env=_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    assert state_of(out)["step"] == max_steps
    assert {CONFIG_NAME, WEIGHTS_NAME, STATE_NAME} <= {p.name for p in out.iterdir()}
    RewardModel.from_pretrained(out)

    # The uninterrupted run, with the TrainConfig the CLI builds from those arguments.
    reference = tmp_path / "reference"
    train(
        TrainConfig(**SMALL, max_steps=max_steps),
        tiny_dataset.root,
        reference,
        backbone=tiny_backbone,
        device="cpu",
        progress=False,
    )
    assert_same_training(reference, out)
    # model.safetensors (the "best" weights) is not compared here:
    # see test_resumed_run_writes_the_same_checkpoint_weights.


PLATEAU = dict(objective="r3m", finetune="heads", batch_size=8, eval_every=2, learning_rate=3e-3, min_steps=10)
"""A heads run whose validation loss falls for about 40 steps, then flattens (it stops at step 52)."""


def test_a_run_with_min_steps_stops_at_the_first_validation_where_its_loss_has_flattened(
    tiny_dataset, tiny_backbone, tmp_path
):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(TrainConfig(**PLATEAU, max_steps=80), tiny_dataset.root, straight, backbone=tiny_backbone, progress=False)
    training = summary_of(straight)["training"]
    history = training["history"]
    flat_at = [e["step"] for k, e in enumerate(history) if e["step"] >= 10 and has_flattened(history[: k + 1])]
    assert flat_at, "this run is set up to flatten within 80 steps"
    assert training["stopped"] == "plateau"
    assert training["steps"] == flat_at[0] == history[-1]["step"] < 80
    assert history[-1]["validation_loss"] < 0.8 * history[0]["validation_loss"]  # it learned, then flattened
    assert state_of(straight)["step"] == flat_at[0]
    # killed past min_steps but before its plateau (a shorter budget), resumed with the full one: the same run
    train(TrainConfig(**PLATEAU, max_steps=20), tiny_dataset.root, resumed, backbone=tiny_backbone, progress=False)
    assert summary_of(resumed)["training"]["stopped"] == "max_steps"
    train(TrainConfig(**PLATEAU, max_steps=80), tiny_dataset.root, resumed, backbone=tiny_backbone, progress=False)
    assert_same_training(straight, resumed)
    assert_same_tensors(load_file(str(straight / WEIGHTS_NAME)), load_file(str(resumed / WEIGHTS_NAME)))
    # a finished plateau run is finished: running it again, even with a larger cap, trains nothing
    before = folder_hashes(straight)[WEIGHTS_NAME]
    train(TrainConfig(**PLATEAU, max_steps=200), tiny_dataset.root, straight, backbone=tiny_backbone, progress=False)
    assert folder_hashes(straight)[WEIGHTS_NAME] == before
    assert state_of(straight)["step"] == flat_at[0]


def test_resume_key_lets_only_max_steps_grow():
    base = TrainConfig(**SMALL, max_steps=4)
    assert TrainConfig(**SMALL, max_steps=400).resume_key() == base.resume_key()
    assert "max_steps" not in base.resume_key()
    for change in (
        {"seed": 1},
        {"learning_rate": 1e-3},
        {"lora_rank": 4},
        {"objective_options": {"margin": 0.2}},
        {"tasks": ("reach-v3",)},
    ):
        assert TrainConfig(**{**SMALL, **change}, max_steps=4).resume_key() != base.resume_key(), change


@pytest.mark.parametrize(
    "change,message",
    [
        ({"finetune": "prefix"}, "finetune must be one of"),
        ({"lora_rank": 0}, "rank"),
        ({"trajectories": "experts"}, "trajectories"),
        ({"select_by": "loss"}, "select_by"),
        ({"max_steps": -1}, "max_steps"),
        ({"eval_every": 0}, "eval_every"),
        ({"min_steps": 0}, "min_steps"),
    ],
)
def test_train_config_rejects_bad_values(change, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**{**SMALL, "max_steps": 4, **change})


# ----------------------------------------------------------- (c) mismatch


def test_an_out_folder_with_another_run_is_refused_unless_overwrite(
    tiny_checkpoint, tiny_dataset, tiny_backbone, tmp_path
):
    out = Path(shutil.copytree(tiny_checkpoint, tmp_path / "ckpt"))
    before = folder_hashes(out)
    other = TrainConfig(**{**SMALL, "lora_rank": 4}, max_steps=2)
    with pytest.raises(RunMismatchError, match="lora_rank") as error:
        train(other, tiny_dataset.root, out, backbone=tiny_backbone, progress=False)
    assert "--overwrite" in str(error.value) and str(out) in str(error.value)
    assert folder_hashes(out) == before
    with pytest.raises(RunMismatchError, match="seed"):
        train(TrainConfig(**SMALL, max_steps=4, seed=1), tiny_dataset.root, out, backbone=tiny_backbone, progress=False)
    # The same episodes in another folder are the same data; one episode more is another run's data.
    moved = Path(shutil.copytree(tiny_dataset.root, tmp_path / "moved"))
    train(TrainConfig(**SMALL, max_steps=4), moved, out, backbone=tiny_backbone, progress=False)
    first = sorted((moved / "episodes").glob("*/*.h5"))[0]
    shutil.copy(first, first.with_name("added-00000.h5"))
    before = folder_hashes(out)
    with pytest.raises(RunMismatchError, match="other data"):
        train(TrainConfig(**SMALL, max_steps=4), moved, out, backbone=tiny_backbone, progress=False)
    assert folder_hashes(out) == before

    model = train(other, tiny_dataset.root, out, backbone=tiny_backbone, progress=False, overwrite=True)
    assert model.config.finetune.rank == 4 and summary_of(out)["training"]["steps"] == 2
    assert state_of(out)["config"] == other.resume_key()


def test_an_out_folder_holding_other_files_is_refused(tiny_dataset, tiny_backbone, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RunMismatchError, match="no resumable training run"):
        train(TrainConfig(**SMALL, max_steps=2), tiny_dataset.root, out, backbone=tiny_backbone, progress=False)
    assert (out / "notes.txt").read_text() == "mine"


# -------------------------------------------------------- (d) non-finite loss

DIVERGING = dict(SMALL, learning_rate=2000.0, eval_every=1000)
"""LoRA with a learning rate of 2000: the loss is finite for a few steps, then NaN (step 5 here)."""


def test_a_non_finite_loss_stops_training_and_keeps_the_last_checkpoint(tiny_dataset, tiny_backbone, tmp_path):
    out = tmp_path / "diverging"
    train(TrainConfig(**DIVERGING, max_steps=1), tiny_dataset.root, out, backbone=tiny_backbone, progress=False)
    before = folder_hashes(out)
    kept = RewardModel.from_pretrained(out)
    with pytest.raises(NonFiniteLossError) as error:  # resumes at step 1 and diverges later
        train(TrainConfig(**DIVERGING, max_steps=30), tiny_dataset.root, out, backbone=tiny_backbone, progress=False)
    message = str(error.value)
    step = int(re.search(r"at step (\d+)", message).group(1))
    assert 1 < step < 30
    assert str(out) in message
    assert "2000" in message  # the learning rate to lower
    assert folder_hashes(out) == before  # nothing written
    assert sorted(p.name for p in tmp_path.iterdir()) == [".diverging.holder", ".diverging.lock", "diverging"]
    reloaded = RewardModel.from_pretrained(out)
    assert_same_tensors(kept.state_dict(), reloaded.state_dict())


def test_weights_that_become_non_finite_before_an_evaluation_raise_non_finite_loss_error(
    tiny_dataset, tiny_backbone, tmp_path
):
    config = TrainConfig(**{**SMALL, "eval_every": 1}, max_steps=3, learning_rate=float("inf"))
    with pytest.raises(NonFiniteLossError):
        train(config, tiny_dataset.root, tmp_path / "inf", backbone=tiny_backbone, progress=False)


# ------------------------------------------------------- (e) held-out tasks


@pytest.mark.parametrize("tasks", [("door-lock-v3",), ("reach-v3", "box-close-v3")])
def test_training_on_ml45_test_tasks_is_refused(tasks, tiny_dataset, tiny_backbone, tmp_path):
    with pytest.raises(ValueError, match="ML45 test tasks"):
        train(
            TrainConfig(**SMALL, max_steps=2, tasks=tasks),
            tiny_dataset.root,
            tmp_path / "out",
            backbone=tiny_backbone,
            progress=False,
        )
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="ML45 test tasks"):
        pretrain_backbone(
            tiny_dataset.root,
            tmp_path / "bb",
            tasks=tasks,
            config=PretrainConfig(model="vlmrw-nano", max_steps=1, batch_size=4),
            progress=False,
        )
    assert not (tmp_path / "bb").exists()


def test_default_tasks_exclude_ml45_test_tasks(mini_dataset, tiny_dataset, tiny_backbone, tmp_path):
    assert set(mini_dataset.tasks) == {"reach-v3", "door-lock-v3"}
    assert choose_tasks(mini_dataset, None) == ["reach-v3"]
    assert choose_tasks(tiny_dataset, None) == sorted(tiny_dataset.tasks)
    with pytest.raises(ValueError, match="no episodes of door-open-v3"):
        choose_tasks(tiny_dataset, ("door-open-v3",))
    # A whole (zero-shot) run on the mixed data never names the held-out task.
    train(
        TrainConfig(objective="zero-shot"), mini_dataset.root, tmp_path / "zs", backbone=tiny_backbone, progress=False
    )
    payload = summary_of(tmp_path / "zs")
    assert payload["training"]["tasks"] == ["reach-v3"] and list(payload["goal_texts"]) == ["reach-v3"]
    assert payload["training"]["train_episodes"] + payload["training"]["val_episodes"] == 1
    assert not set(payload["goal_texts"]) & set(ML45_TEST)


# ------------------------------------------------------- (f) two processes


def test_two_process_gloo_run(tiny_dataset, tiny_backbone, tmp_path):
    out = tmp_path / "ddp"
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nnodes",
        "1",
        "--nproc_per_node",
        "2",
        "-m",
        *_cli_train(out, tiny_dataset.root, tiny_backbone, 4)[2:],
        # Within-task pairs only: a shard cannot see the other shard's tasks, so cross-task pairs would differ.
        "--objective-options",
        "cross_task_negatives=false",
    ]
    done = subprocess.run(
        command, cwd=REPO, env={**_env(), "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=180
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-4000:])
    model = RewardModel.from_pretrained(out)
    training = model.config.training
    assert training["steps"] == 4 and [e["step"] for e in training["history"]] == [2, 4]
    assert state_of(out)["step"] == 4
    assert any(
        t.abs().sum() > 0 for n, t in load_file(str(out / WEIGHTS_NAME)).items() if n.endswith("lora_b")
    )  # it trained
    # Each process takes half of every batch and DDP averages the gradients: for the per-item mean of the
    # triplet loss this is the single-process gradient, so the result is close to a single-process run.
    single = train(
        TrainConfig(**SMALL, max_steps=4, objective_options={"cross_task_negatives": False}),
        tiny_dataset.root,
        tmp_path / "single",
        backbone=tiny_backbone,
        progress=False,
    )
    ddp, one = state_of(out)["model"], state_of(tmp_path / "single")["model"]
    assert ddp.keys() == one.keys()
    for name in ddp:
        assert torch.allclose(ddp[name], one[name], atol=1e-5), name  # observed: ~1e-7; learning rate 5e-4
    assert single.config.training["steps"] == 4


# --------------------------------------------------- (g) heads and zero-shot


def test_cached_features_give_the_same_loss_as_encoding_frames(tiny_dataset, tiny_backbone):
    from vlm_reward_wrappers.models import FinetuneConfig, RewardModelConfig

    episodes = [i for i, e in enumerate(tiny_dataset.episodes) if e.is_successful_expert]
    torch.manual_seed(0)
    config = RewardModelConfig(
        backbone=tiny_backbone, finetune=FinetuneConfig("heads"), objective=get_objective("r3m").config()
    )
    model = RewardModel(config, load_backbone(tiny_backbone))
    with torch.no_grad():  # a non-zero head, so that the head is part of what is compared
        model.heads["image"].down.weight.normal_(0, 0.1)
    cache = backbone_features(model, tiny_dataset, episodes)
    assert set(cache) == set(episodes) and all(len(cache[i]) == tiny_dataset.episodes[i].num_steps for i in episodes)
    batch = TrajectorySampler(tiny_dataset, episodes, batch_size=8, seed=0).batch(3)
    cached, _ = TrainingStep(model, None, cache)(batch)
    encoded, _ = TrainingStep(model, FrameStore(tiny_dataset, episodes), None)(batch)
    assert float(cached.detach()) == pytest.approx(float(encoded.detach()), abs=1e-5)
    cached.backward()
    assert model.heads["image"].up.weight.grad is not None and model.heads["text"].down.weight.grad is not None


def test_failure_frames_come_from_the_failure_episodes_with_cached_features_or_frames(tiny_dataset, tiny_backbone):
    """The failure slot reads the failed episode's frame (not the trajectory's): cached features and encoded frames
    give the same triplet loss, and its failure term equals the hand-computed hinge on those frames."""
    from vlm_reward_wrappers.models import FinetuneConfig, RewardModelConfig

    experts = [i for i, e in enumerate(tiny_dataset.episodes) if e.is_successful_expert]
    failures = [i for i, e in enumerate(tiny_dataset.episodes) if e.first_success_step < 0]
    objective = get_objective("triplet", failure_negatives=True, cross_task_negatives=False)
    config = RewardModelConfig(backbone=tiny_backbone, finetune=FinetuneConfig("heads"), objective=objective.config())
    torch.manual_seed(0)
    model = RewardModel(config, load_backbone(tiny_backbone)).eval()
    cache = backbone_features(model, tiny_dataset, experts + failures)
    batch = TrajectorySampler(tiny_dataset, experts, batch_size=8, seed=0, failures=failures, text_augmentation=False)
    batch = batch.batch(1)
    cached, parts = TrainingStep(model, None, cache)(batch)
    encoded, _ = TrainingStep(model, FrameStore(tiny_dataset, experts + failures), None)(batch)
    assert float(cached.detach()) == pytest.approx(float(encoded.detach()), abs=1e-5)
    with torch.no_grad():

        def embedding(episodes, steps):
            return torch.nn.functional.normalize(
                model.image_head(torch.stack([cache[int(e)][int(s)] for e, s in zip(episodes, steps, strict=True)])),
                dim=-1,
            )

        texts = torch.nn.functional.normalize(model.encode_text([batch.texts[i] for i in batch.text_index]), dim=-1)
        success = (embedding(batch.episode, batch.steps["success"]) * texts).sum(-1)
        failure = (embedding(batch.failure_episode, batch.steps["failure"]) * texts).sum(-1)
    assert parts["failure"] == pytest.approx(float(torch.relu(0.1 - success + failure).mean()), abs=1e-5)
    assert set(batch.failure_episode.tolist()) <= set(failures)  # every tiny task has a random episode


def test_heads_mode_trains_only_the_heads(tiny_dataset, tiny_backbone, frames, tmp_path):
    config = TrainConfig(**{**SMALL, "finetune": "heads"}, max_steps=4)
    model = train(config, tiny_dataset.root, tmp_path / "heads", backbone=tiny_backbone, progress=False)
    saved = load_file(str(tmp_path / "heads" / WEIGHTS_NAME))
    assert set(saved) == {n for n, _ in model.named_parameters() if n.startswith("heads.")} | {
        "backbone.clip.logit_scale",
        "goal_images",
    }
    assert saved["heads.image.down.weight"].abs().sum() > 0 and saved["heads.text.down.weight"].abs().sum() > 0
    plain = load_backbone(tiny_backbone).eval()
    with torch.no_grad():  # the backbone itself is unchanged
        assert torch.equal(model.backbone_image_features(frames), plain.encode_images(frames))
        assert not torch.allclose(model.encode_images(frames), plain.encode_images(frames), atol=1e-5)
    assert model.config.training["steps"] == 4 and model.config.finetune.mode == "heads"


def test_zero_shot_run_writes_a_checkpoint_whose_reward_is_the_projection_reward(
    tiny_dataset, tiny_backbone, frames, tmp_path
):
    model = train(
        TrainConfig(objective="zero-shot", objective_options={"alpha": 0.5}),
        tiny_dataset.root,
        tmp_path / "zs",
        backbone=tiny_backbone,
        progress=False,
    )
    payload = summary_of(tmp_path / "zs")
    assert payload["training"]["steps"] == 0 and [e["step"] for e in payload["training"]["history"]] == [0]
    assert payload["finetune"]["mode"] == "frozen" and payload["objective"] == {"name": "zero-shot", "alpha": 0.5}
    assert payload["reward_stats"]["std"] > 0
    assert not [n for n, p in model.named_parameters() if p.requires_grad]

    plain = load_backbone(tiny_backbone).eval()
    with torch.no_grad():
        f = torch.nn.functional.normalize(plain.encode_images(frames), dim=-1)
        t = torch.nn.functional.normalize(plain.encode_text([goal_text("button-press-v3")])[0], dim=-1)
        b = torch.nn.functional.normalize(plain.encode_text([DEFAULT_BASELINE_TEXT])[0], dim=-1)
    d = t - b
    projection = 0.5 * torch.outer(d, d) / d.dot(d) + 0.5 * torch.eye(len(d))
    expected = (1 - 0.5 * ((f - t) @ projection).pow(2).sum(-1)).numpy()
    loaded = RewardModel.from_pretrained(tmp_path / "zs")
    assert np.allclose(loaded.reward(frames, goal_text("button-press-v3")), expected, atol=1e-5)
    assert np.allclose(model.reward(frames, goal_text("button-press-v3")), expected, atol=1e-5)
    assert not np.allclose(expected, expected[0])  # the frames are told apart


# ------------------------------------------------------- (8) pretraining cache

TINY_PRETRAIN = PretrainConfig(model="vlmrw-nano", max_steps=4, batch_size=16)
"""The config the tiny_backbone fixture was pretrained with (see conftest.py)."""


def test_pretrain_backbone_is_cached_and_its_weights_are_the_trained_ones(tiny_dataset, tiny_backbone, frames):
    folder = Path(tiny_backbone.pretrained).parent
    weights = folder / BACKBONE_WEIGHTS
    assert tiny_backbone.sha256 == file_sha256(weights)
    stamps = (
        weights.stat().st_mtime_ns,
        (folder / BACKBONE_INFO).stat().st_mtime_ns,
        (folder / "run" / WEIGHTS_NAME).stat().st_mtime_ns,
    )
    again = pretrain_backbone(tiny_dataset.root, folder, config=TINY_PRETRAIN, progress=False)
    assert again == tiny_backbone
    assert (
        weights.stat().st_mtime_ns,
        (folder / BACKBONE_INFO).stat().st_mtime_ns,
        (folder / "run" / WEIGHTS_NAME).stat().st_mtime_ns,
    ) == stamps

    info = json.loads((folder / BACKBONE_INFO).read_text())
    assert info["pretrain"] == asdict(TINY_PRETRAIN) and info["tasks"] == sorted(tiny_dataset.tasks)
    run = RewardModel.from_pretrained(folder / "run")  # the contrastive (clip, full finetuning) run
    assert run.config.objective["name"] == "clip" and run.config.training["steps"] == 4
    exported = load_backbone(tiny_backbone).eval()
    with torch.no_grad():
        assert torch.equal(exported.encode_images(frames), run.backbone.encode_images(frames))
        assert torch.equal(
            exported.encode_text(["reach the goal position"]), run.backbone.encode_text(["reach the goal position"])
        )
        random = load_backbone(BackboneSpec("vlmrw-nano")).eval()
        assert not torch.allclose(exported.encode_images(frames), random.encode_images(frames), atol=1e-3)


def test_pretrain_cache_is_keyed_by_data_and_config(mini_dataset, tmp_path, monkeypatch):
    monkeypatch.setenv("VLM_REWARDS_CACHE", str(tmp_path / "cache"))
    config = PretrainConfig(model="vlmrw-nano", max_steps=2, batch_size=4)
    spec = pretrain_backbone(mini_dataset.root, config=config, progress=False)
    folder = Path(spec.pretrained).parent
    assert folder.parent == tmp_path / "cache" / "backbones" and folder.name.startswith("vlmrw-nano-")
    assert json.loads((folder / BACKBONE_INFO).read_text())["tasks"] == ["reach-v3"]  # never the ML45 test task
    stamp = Path(spec.pretrained).stat().st_mtime_ns
    assert pretrain_backbone(mini_dataset.root, config=config, progress=False) == spec
    assert Path(spec.pretrained).stat().st_mtime_ns == stamp
    other = pretrain_backbone(
        mini_dataset.root, config=PretrainConfig(model="vlmrw-nano", max_steps=2, batch_size=4, seed=1), progress=False
    )
    assert Path(other.pretrained).parent != folder and other.sha256 != spec.sha256


def test_pretrain_into_a_folder_of_another_config_does_not_return_the_stale_backbone(
    tiny_dataset, tiny_backbone, tmp_path
):
    folder = Path(shutil.copytree(Path(tiny_backbone.pretrained).parent, tmp_path / "backbone"))
    other = PretrainConfig(model="vlmrw-nano", max_steps=2, batch_size=8, seed=1)
    try:
        spec = pretrain_backbone(tiny_dataset.root, folder, config=other, progress=False)
    except ValueError:
        return  # refusing, naming the mismatch, is fine too
    assert json.loads((folder / BACKBONE_INFO).read_text())["pretrain"] == asdict(other)
    assert spec.sha256 != tiny_backbone.sha256
