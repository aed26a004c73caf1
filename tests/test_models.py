"""Reward models: which parameters each finetuning mode trains, and the checkpoint format.

Real ``vlmrw-nano`` backbones (the session's pretrained weights file, or random
weights), real frames of the tiny Meta-World dataset, real optimizer steps.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from vlm_reward_wrappers.configs import to_dict
from vlm_reward_wrappers.models import (
    BackboneSpec,
    CheckpointError,
    FinetuneConfig,
    RewardModel,
    RewardModelConfig,
    load_backbone,
)
from vlm_reward_wrappers.models.backbone import file_sha256
from vlm_reward_wrappers.models.checkpoint import (
    BACKBONE_NAME,
    CONFIG_NAME,
    WEIGHTS_NAME,
    is_checkpoint,
    read_checkpoint_config,
    recover_interrupted_save,
    write_checkpoint,
)
from vlm_reward_wrappers.objectives import get_objective
from vlm_reward_wrappers.training.batches import FrameStore, TrajectorySampler
from vlm_reward_wrappers.training.trainer import TrainingStep

LOGIT_SCALE = "backbone.clip.logit_scale"
GOAL = "press the button"


def make_model(spec: BackboneSpec, mode: str, objective: str = "triplet", rank: int = 2) -> RewardModel:
    torch.manual_seed(0)
    config = RewardModelConfig(
        backbone=spec,
        finetune=FinetuneConfig(mode, rank=rank),
        objective=get_objective(objective).config(),
        image_size=32,
    )
    model = RewardModel(config, load_backbone(spec))
    model.train()
    return model


@pytest.fixture(scope="module")
def batch_and_frames(tiny_dataset):
    episodes = [i for i, e in enumerate(tiny_dataset.episodes) if e.is_successful_expert]
    return TrajectorySampler(tiny_dataset, episodes, batch_size=8, seed=0).batch(0), FrameStore(tiny_dataset, episodes)


@pytest.fixture(scope="module")
def frames(tiny_dataset) -> np.ndarray:
    button = next(i for i, e in enumerate(tiny_dataset.episodes) if e.task == "button-press-v3")
    return tiny_dataset.read_frames(button)[::4]


def train_steps(model: RewardModel, batch_and_frames, steps: int = 3, lr: float = 1e-2) -> None:
    """A few real optimizer steps, so that every trained tensor moves away from its initial value."""
    batch, store = batch_and_frames
    step = TrainingStep(model, store, None)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    for _ in range(steps):
        loss, _ = step(batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def tower(name: str) -> str:
    """Which part of the model a parameter belongs to: image, text or scale."""
    if name == LOGIT_SCALE:
        return "scale"
    if name.startswith(("backbone.clip.visual.", "heads.image.")):
        return "image"
    assert name.startswith(("backbone.clip.", "heads.text.")), name
    return "text"


# ------------------------------------------------------- trainable parameters


def expected_trainable(model: RewardModel, mode: str) -> set[str]:
    names = [n for n, _ in model.named_parameters()]
    if mode == "lora":
        return {n for n in names if n.endswith((".lora_a", ".lora_b"))} | {LOGIT_SCALE}
    if mode == "heads":
        return {n for n in names if n.startswith("heads.")} | {LOGIT_SCALE}
    if mode == "full":
        return {n for n in names if n.startswith("backbone.")}
    return set()


@pytest.mark.parametrize("mode", ["lora", "heads", "full"])
@pytest.mark.parametrize("objective", ["triplet", "tcn", "liv"])
def test_gradients_reach_exactly_the_trained_parameters(mode, objective, tiny_backbone, batch_and_frames):
    model = make_model(tiny_backbone, mode, objective)
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == expected_trainable(model, mode)
    if mode == "lora":
        # 4 adapted weights per transformer block (packed q/k/v, out_proj, c_fc, c_proj), one block per tower.
        assert len(trainable) == 2 * 2 * 4 + 1
        assert not any(n.endswith(".original") for n in trainable)
    if mode == "heads":
        assert {n.split(".")[1] for n in trainable if n != LOGIT_SCALE} == {"image", "text"}

    batch, store = batch_and_frames
    loss, _ = TrainingStep(model, store, None)(batch)
    assert float(loss.detach()) > 0  # the batch violates the objective somewhere, so gradients are informative
    loss.backward()

    used = {"image", "text", "scale"}
    if objective == "tcn":
        used = {"image"}  # TCN trains no language alignment and no temperature
    elif objective in ("triplet", "liv"):
        used = {"image", "text"}  # cosine, and LIV's InfoNCE at temperature 1: the model's temperature is unused
    for name, parameter in model.named_parameters():
        if not parameter.requires_grad:
            assert parameter.grad is None, name
            continue
        if tower(name) in used:
            assert parameter.grad is not None, f"{name} is trained and used by {objective} but got no gradient"
            assert torch.isfinite(parameter.grad).all(), name
            starts_at_zero_gradient = name.endswith(".lora_a") or name.startswith(("heads.image.up", "heads.text.up"))
            if not starts_at_zero_gradient:  # lora_b = 0 and the heads' down = 0 block these at the first step
                assert parameter.grad.abs().sum() > 0, name
        else:
            assert parameter.grad is None, f"{name} is not used by {objective} but got a gradient"


def test_frozen_mode_trains_nothing(tiny_backbone, batch_and_frames):
    model = make_model(tiny_backbone, "frozen", "triplet")
    assert not [n for n, p in model.named_parameters() if p.requires_grad]
    assert len(model.heads) == 0
    batch, store = batch_and_frames
    loss, _ = TrainingStep(model, store, None)(batch)
    assert not loss.requires_grad


@pytest.mark.parametrize("mode", ["lora", "heads"])
def test_adapters_start_as_the_identity(mode, tiny_backbone, frames):
    """LoRA's B and the heads' last layer start at zero: the untrained model scores like its backbone."""
    model = make_model(tiny_backbone, mode).eval()
    plain = load_backbone(tiny_backbone).eval()
    with torch.no_grad():
        assert torch.allclose(model.encode_images(frames), plain.encode_images(frames), atol=1e-5)
        assert torch.allclose(
            model.encode_text([GOAL, "open the drawer"]), plain.encode_text([GOAL, "open the drawer"]), atol=1e-5
        )


def test_lora_training_changes_both_towers_but_not_the_backbone_weights(tiny_backbone, batch_and_frames, frames):
    model = make_model(tiny_backbone, "lora")
    originals = {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}
    train_steps(model, batch_and_frames)
    assert all(torch.equal(originals[n], p) for n, p in model.named_parameters() if n in originals)
    plain = load_backbone(tiny_backbone).eval()
    model.eval()
    with torch.no_grad():
        assert not torch.allclose(model.encode_images(frames), plain.encode_images(frames), atol=1e-4)
        assert not torch.allclose(model.encode_text([GOAL]), plain.encode_text([GOAL]), atol=1e-4)


def test_empty_goal_is_rejected(tiny_backbone, frames):
    model = make_model(tiny_backbone, "lora")
    with pytest.raises(ValueError, match="goal text is empty"):
        model.reward(frames, "  ")


# ----------------------------------------------------------- checkpoint round trip


@pytest.mark.parametrize("mode", ["lora", "heads", "full"])
def test_checkpoint_round_trip_gives_identical_rewards(mode, tiny_backbone, batch_and_frames, frames, tmp_path):
    model = make_model(tiny_backbone, mode)
    train_steps(model, batch_and_frames)
    before = model.reward(frames, GOAL)
    untrained = make_model(tiny_backbone, mode).reward(frames, GOAL)
    assert not np.allclose(before, untrained, atol=1e-4)  # the trained weights matter

    path = model.save_pretrained(tmp_path / "ckpt")
    loaded = RewardModel.from_pretrained(path)
    assert np.array_equal(loaded.reward(frames, GOAL), before)
    assert {**to_dict(loaded.config), "backbone": None} == {**to_dict(model.config), "backbone": None}
    assert loaded.config.backbone.pretrained == str(path / "backbone.safetensors")  # the folder's own copy
    assert not loaded.training

    saved = load_file(str(path / WEIGHTS_NAME))
    if mode == "full":
        assert set(saved) == set(model.state_dict())
    else:
        assert set(saved) == expected_trainable(model, mode)
    for name, tensor in saved.items():
        assert torch.equal(tensor, model.state_dict()[name]), name
    payload = json.loads((path / CONFIG_NAME).read_text())
    assert payload["weights"]["sha256"] == file_sha256(path / WEIGHTS_NAME)
    assert payload["backbone"] == {**to_dict(tiny_backbone), "pretrained": "backbone.safetensors"}
    assert payload["finetune"]["mode"] == mode


def test_reward_normalisation_uses_the_stored_statistics(tiny_checkpoint, frames):
    model = RewardModel.from_pretrained(tiny_checkpoint)
    stats = model.config.reward_stats
    assert stats["std"] > 0
    raw = model.reward(frames, GOAL)
    assert np.allclose(model.reward(frames, GOAL, normalize=True), (raw - stats["mean"]) / stats["std"], atol=1e-5)
    assert np.allclose(model.reward(frames, GOAL, batch_size=3), raw, atol=1e-6)  # batching does not change rewards


def test_lora_checkpoint_stores_only_lora_factors_and_temperature(tiny_checkpoint, tiny_backbone, frames, tmp_path):
    saved = load_file(str(tiny_checkpoint / WEIGHTS_NAME))
    assert LOGIT_SCALE in saved and "goal_images" in saved
    assert all(name in (LOGIT_SCALE, "goal_images") or name.endswith((".lora_a", ".lora_b")) for name in saved)
    assert len(saved) == 2 * 2 * 4 + 2
    backbone_bytes = Path(tiny_backbone.pretrained).stat().st_size
    assert (tiny_checkpoint / WEIGHTS_NAME).stat().st_size < backbone_bytes / 10

    model = RewardModel.from_pretrained(tiny_checkpoint)
    assert model.config.backbone.sha256 == tiny_backbone.sha256 and model.config.finetune.mode == "lora"
    assert any(saved[n].abs().sum() > 0 for n in saved if n.endswith(".lora_b"))  # it was trained
    again = RewardModel.from_pretrained(model.save_pretrained(tmp_path / "copy"))
    assert np.array_equal(again.reward(frames, GOAL), model.reward(frames, GOAL))


def test_random_backbone_checkpoint_saves_all_weights_and_reloads_identically(batch_and_frames, frames, tmp_path):
    spec = BackboneSpec("vlmrw-nano")  # random initialisation: nothing to re-read the backbone from
    model = make_model(spec, "lora")
    train_steps(model, batch_and_frames, steps=1)
    before = model.reward(frames, GOAL)
    path = model.save_pretrained(tmp_path / "random")
    saved = load_file(str(path / WEIGHTS_NAME))
    assert set(saved) == set(model.state_dict())
    assert any(n.endswith(".original") for n in saved) and "backbone.clip.token_embedding.weight" in saved
    torch.manual_seed(123)  # the reload's random init differs; the saved weights must override all of it
    loaded = RewardModel.from_pretrained(path)
    assert np.array_equal(loaded.reward(frames, GOAL), before)


# ------------------------------------------------------------ bad checkpoints


@pytest.fixture
def ckpt_copy(tiny_checkpoint, tmp_path) -> Path:
    return Path(shutil.copytree(tiny_checkpoint, tmp_path / "ckpt"))


def _edit_config(folder: Path, **changes) -> None:
    path = folder / CONFIG_NAME
    payload = json.loads(path.read_text())
    for key, value in changes.items():
        target = payload
        *parents, last = key.split("__")
        for parent in parents:
            target = target[parent]
        target[last] = value
    path.write_text(json.dumps(payload))


def test_missing_checkpoint_folder(tmp_path):
    with pytest.raises(CheckpointError, match="does not exist") as error:
        RewardModel.from_pretrained(tmp_path / "nowhere")
    assert str(tmp_path / "nowhere") in str(error.value)


def test_a_save_killed_between_its_renames_reads_the_previous_checkpoint_and_the_writer_recovers(ckpt_copy):
    """Killed after moving the old folder aside: readers load it where it is; the next writer renames it back."""
    expected = RewardModel.from_pretrained(ckpt_copy).state_dict()
    leftover = ckpt_copy.parent / f".{ckpt_copy.name}.old-1a2b3c4d"
    staging = ckpt_copy.parent / f".{ckpt_copy.name}.staging-99aa88bb"
    ckpt_copy.rename(leftover)
    staging.mkdir()
    loaded = RewardModel.from_pretrained(ckpt_copy)
    assert all(torch.equal(expected[name], tensor) for name, tensor in loaded.state_dict().items())
    assert leftover.is_dir() and staging.is_dir() and not ckpt_copy.exists()  # a reader never writes
    recover_interrupted_save(ckpt_copy)
    assert ckpt_copy.is_dir() and not leftover.exists() and not staging.exists()
    recovered = RewardModel.from_pretrained(ckpt_copy)
    assert all(torch.equal(expected[name], tensor) for name, tensor in recovered.state_dict().items())


def test_readers_in_a_loop_never_break_a_save_in_progress(ckpt_copy):
    """Evaluating or watching a checkpoint while it is being saved: no save fails, no read fails."""
    model = RewardModel.from_pretrained(ckpt_copy)
    stop, failures, reads = threading.Event(), [], [0]

    def read_in_a_loop() -> None:
        while not stop.is_set():
            try:
                read_checkpoint_config(ckpt_copy)
                RewardModel.from_pretrained(ckpt_copy)
                reads[0] += 1
            except Exception as error:  # recorded, then asserted on
                failures.append(repr(error))

    reader = threading.Thread(target=read_in_a_loop)
    reader.start()
    try:
        for saves in range(1, 300):  # at least 15 saves, and until the reader has read 5 times meanwhile
            model.save_pretrained(ckpt_copy)
            if saves >= 15 and reads[0] >= 5:
                break
    finally:
        stop.set()
        reader.join()
    assert not failures, failures[:3]
    assert reads[0] >= 5 and is_checkpoint(ckpt_copy)


def test_folder_without_config(ckpt_copy):
    (ckpt_copy / CONFIG_NAME).unlink()
    with pytest.raises(CheckpointError, match=CONFIG_NAME) as error:
        RewardModel.from_pretrained(ckpt_copy)
    assert str(ckpt_copy) in str(error.value)


def test_unparsable_config(ckpt_copy):
    path = ckpt_copy / CONFIG_NAME
    path.write_text(path.read_text()[:50])
    with pytest.raises(CheckpointError) as error:
        RewardModel.from_pretrained(ckpt_copy)
    assert str(path) in str(error.value)


def test_truncated_weights(ckpt_copy):
    weights = ckpt_copy / WEIGHTS_NAME
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or changed") as error:
        RewardModel.from_pretrained(ckpt_copy)
    assert str(weights) in str(error.value)


def test_truncated_weights_with_a_matching_checksum(ckpt_copy):
    """Even if config.json's checksum is made to match, an unreadable weights file is a CheckpointError."""
    weights = ckpt_copy / WEIGHTS_NAME
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2])
    _edit_config(ckpt_copy, weights__sha256=file_sha256(weights))
    with pytest.raises(CheckpointError, match="cannot be read") as error:
        RewardModel.from_pretrained(ckpt_copy)
    assert str(weights) in str(error.value)


def test_missing_weights_file(ckpt_copy):
    (ckpt_copy / WEIGHTS_NAME).unlink()
    with pytest.raises(CheckpointError, match="missing") as error:
        RewardModel.from_pretrained(ckpt_copy)
    assert str(ckpt_copy / WEIGHTS_NAME) in str(error.value)


@pytest.mark.parametrize("version", [3, 0, None])
def test_unknown_format_version(ckpt_copy, version):
    _edit_config(ckpt_copy, format_version=version)
    with pytest.raises(CheckpointError, match="format version") as error:
        RewardModel.from_pretrained(ckpt_copy)
    assert str(ckpt_copy / CONFIG_NAME) in str(error.value) and str(version) in str(error.value)


def test_foreign_config(ckpt_copy):
    _edit_config(ckpt_copy, format="something/else")
    with pytest.raises(CheckpointError, match="not a vlm_reward_wrappers") as error:
        RewardModel.from_pretrained(ckpt_copy)
    assert str(ckpt_copy / CONFIG_NAME) in str(error.value)


@pytest.mark.parametrize(
    "changes,named",
    [
        ({"reward_stats__std": 0}, "reward_stats.std must be a positive number"),
        ({"image_size": "abc"}, "image_size must be a positive integer"),
        ({"goal_texts": {}}, "goal_texts has no sentence for the trained task"),
        ({"image_reward_stats__mean": None}, "image_reward_stats.mean must be a finite number"),
    ],
)
def test_invalid_config_values_are_refused_naming_the_field(ckpt_copy, changes, named):
    _edit_config(ckpt_copy, **changes)
    with pytest.raises(
        CheckpointError, match=rf"{re.escape(str(ckpt_copy / CONFIG_NAME))} holds invalid values: .*{named}"
    ):
        RewardModel.from_pretrained(ckpt_copy)


def test_frames_of_another_aspect_ratio_are_scored_with_a_warning(tiny_checkpoint):
    model = RewardModel.from_pretrained(tiny_checkpoint)
    with pytest.warns(UserWarning, match=r"frames of 200x117 pixels are stretched .* crop them"):
        model.reward(np.zeros((1, 117, 200, 3), np.uint8), "close the drawer")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.reward(np.zeros((1, 48, 48, 3), np.uint8), "close the drawer")  # square: resized without a word


def test_missing_backbone_weights_never_give_a_random_model(ckpt_copy):
    (ckpt_copy / BACKBONE_NAME).unlink()
    with pytest.raises(CheckpointError, match=r"incomplete.*are missing.*Copy the whole checkpoint folder") as error:
        RewardModel.from_pretrained(ckpt_copy)
    assert str(ckpt_copy / BACKBONE_NAME) in str(error.value)


@pytest.mark.parametrize("recorded", ["../outside.safetensors", "/etc/hostname", "sub/../../outside.safetensors"])
def test_a_backbone_path_outside_the_folder_is_refused_naming_the_field(ckpt_copy, tiny_backbone, recorded):
    """A crafted config.json cannot make a loader open a file outside the checkpoint folder, even one that exists
    and holds the right weights."""
    shutil.copyfile(tiny_backbone.pretrained, ckpt_copy.parent / "outside.safetensors")
    _edit_config(ckpt_copy, backbone__pretrained=recorded)
    for load in (RewardModel.from_pretrained, read_checkpoint_config):
        with pytest.raises(CheckpointError, match=r"backbone.pretrained is .*outside the checkpoint folder") as error:
            load(ckpt_copy)
        assert str(ckpt_copy / CONFIG_NAME) in str(error.value)


def test_a_backbone_link_out_of_the_folder_is_refused(ckpt_copy, tiny_backbone):
    (ckpt_copy / BACKBONE_NAME).unlink()
    (ckpt_copy / BACKBONE_NAME).symlink_to(Path(tiny_backbone.pretrained).resolve())
    with pytest.raises(CheckpointError, match="outside the checkpoint folder"):
        RewardModel.from_pretrained(ckpt_copy)


def test_changed_backbone_weights_are_detected(ckpt_copy):
    changed = ckpt_copy / BACKBONE_NAME
    with open(changed, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(CheckpointError, match="checksum") as error:
        RewardModel.from_pretrained(ckpt_copy)
    assert str(changed) in str(error.value)


def test_weights_of_another_finetuning_mode_do_not_fit(ckpt_copy):
    _edit_config(ckpt_copy, finetune__mode="heads")
    with pytest.raises(CheckpointError, match="do not fit") as error:
        RewardModel.from_pretrained(ckpt_copy)
    assert str(ckpt_copy / WEIGHTS_NAME) in str(error.value)


def test_weights_of_another_lora_rank_do_not_fit(ckpt_copy):
    _edit_config(ckpt_copy, finetune__rank=4)
    with pytest.raises(CheckpointError) as error:
        RewardModel.from_pretrained(ckpt_copy)
    assert str(ckpt_copy / WEIGHTS_NAME) in str(error.value)


# ---------------------------------------------------------------- atomic write


def test_saving_over_a_checkpoint_leaves_one_complete_folder(tiny_backbone, batch_and_frames, frames, tmp_path):
    model = make_model(tiny_backbone, "heads")
    path = model.save_pretrained(tmp_path / "ckpt")
    first_sha = file_sha256(path / WEIGHTS_NAME)
    train_steps(model, batch_and_frames, steps=1)
    assert model.save_pretrained(tmp_path / "ckpt") == path
    # no staging or old folders; the lock of its one writer beside it
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ckpt.holder", ".ckpt.lock", "ckpt"]
    assert sorted(p.name for p in path.iterdir()) == ["README.md", "backbone.safetensors", CONFIG_NAME, WEIGHTS_NAME]
    assert file_sha256(path / WEIGHTS_NAME) != first_sha
    assert np.array_equal(RewardModel.from_pretrained(path).reward(frames, GOAL), model.reward(frames, GOAL))


def test_a_failed_save_leaves_the_previous_checkpoint_untouched(tiny_backbone, tmp_path):
    model = make_model(tiny_backbone, "heads")
    path = model.save_pretrained(tmp_path / "ckpt")
    before = {p.name: file_sha256(p) for p in path.iterdir()}

    def failing_writer(target: Path) -> None:
        target.write_bytes(b"partial")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_checkpoint(path, model.config, {"x": torch.zeros(3)}, {"extra.bin": failing_writer})
    assert sorted(p.name for p in tmp_path.iterdir()) == [".ckpt.holder", ".ckpt.lock", "ckpt"]
    assert {p.name: file_sha256(p) for p in path.iterdir()} == before
    RewardModel.from_pretrained(path)  # still loads
