"""Checkpoints that travel: complete folders, no absolute path, identical scores anywhere, old formats, the Hub."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import huggingface_hub
import numpy as np
import pytest
import torch

from vlm_reward_wrappers.models import BackboneSpec, CheckpointError, FinetuneConfig, RewardModel, RewardModelConfig
from vlm_reward_wrappers.models.backbone import (
    BackboneLoadError,
    cached_pretrained_file,
    check_cached_pretrained,
    file_sha256,
    with_checksum,
)
from vlm_reward_wrappers.models.card import CARD_NAME
from vlm_reward_wrappers.models.checkpoint import BACKBONE_NAME, CONFIG_NAME, WEIGHTS_NAME, pack_checkpoint

REPO = Path(__file__).resolve().parents[1]
SCORE_SCRIPT = """
import sys
import numpy as np
from vlm_reward_wrappers.models import RewardModel
frames = np.load(sys.argv[2])
print(RewardModel.from_pretrained(sys.argv[1]).reward(frames, "reach the goal position").tobytes().hex())
"""


@pytest.fixture(scope="module")
def frames(tiny_dataset) -> np.ndarray:
    return tiny_dataset.read_frames(0)[:24]


def strings(value: object) -> list[str]:
    """Every string in a JSON value."""
    if isinstance(value, dict):
        return [text for item in value.values() for text in strings(item)]
    if isinstance(value, list):
        return [text for item in value for text in strings(item)]
    return [value] if isinstance(value, str) else []


def score_in_a_fresh_process(checkpoint: Path, frames: np.ndarray, tmp_path: Path, cache: Path) -> np.ndarray:
    """Scores of ``frames`` by ``checkpoint``, loaded by another process whose package cache is ``cache``."""
    np.save(tmp_path / "frames.npy", frames)
    env = {**os.environ, "VLM_REWARDS_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCORE_SCRIPT, str(checkpoint), str(tmp_path / "frames.npy")],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return np.frombuffer(bytes.fromhex(done.stdout.split()[-1]), dtype=np.float32)


def test_a_checkpoint_folder_is_complete_and_holds_no_absolute_path(tiny_checkpoint, tiny_backbone):
    payload = json.loads((tiny_checkpoint / CONFIG_NAME).read_text())
    assert payload["backbone"]["pretrained"] == BACKBONE_NAME
    assert payload["backbone"]["sha256"] == tiny_backbone.sha256 == file_sha256(tiny_checkpoint / BACKBONE_NAME)
    absolute = [text for text in strings(payload) if os.path.isabs(text)]
    assert not absolute, absolute


def test_a_copied_renamed_checkpoint_scores_bit_identically_with_an_empty_cache(tiny_checkpoint, frames, tmp_path):
    expected = RewardModel.from_pretrained(tiny_checkpoint).reward(frames, "reach the goal position")
    copy = Path(shutil.copytree(tiny_checkpoint, tmp_path / "elsewhere" / "renamed"))
    empty_cache = tmp_path / "empty-cache"
    empty_cache.mkdir()
    scores = score_in_a_fresh_process(copy, frames, tmp_path, empty_cache)
    assert scores.dtype == expected.dtype and np.array_equal(scores, expected)
    assert not any(empty_cache.iterdir())  # nothing was fetched or trained into the cache


def test_the_folder_needs_no_file_outside_it(tiny_backbone, frames, tmp_path):
    """The backbone file the model was trained on is deleted: the folder still loads and scores the same."""
    weights = Path(shutil.copyfile(tiny_backbone.pretrained, tmp_path / "mine.safetensors"))
    spec = BackboneSpec.from_file(tiny_backbone.model, weights)
    model = RewardModel(RewardModelConfig(backbone=spec, finetune=FinetuneConfig("lora", rank=2), image_size=32))
    expected = model.reward(frames, "press the button")
    model.save_pretrained(tmp_path / "ckpt")
    weights.unlink()
    assert np.array_equal(RewardModel.from_pretrained(tmp_path / "ckpt").reward(frames, "press the button"), expected)


def test_a_missing_or_altered_backbone_file_is_named(tiny_checkpoint, tmp_path):
    missing = Path(shutil.copytree(tiny_checkpoint, tmp_path / "missing"))
    (missing / BACKBONE_NAME).unlink()
    with pytest.raises(CheckpointError, match=r"incomplete.*Copy the whole checkpoint folder") as error:
        RewardModel.from_pretrained(missing)
    assert str(missing / BACKBONE_NAME) in str(error.value)
    altered = Path(shutil.copytree(tiny_checkpoint, tmp_path / "altered"))
    with open(altered / BACKBONE_NAME, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(CheckpointError, match="checksum") as error:
        RewardModel.from_pretrained(altered)
    assert str(altered / BACKBONE_NAME) in str(error.value)


def make_version_1(checkpoint: Path, folder: Path, backbone_file: Path) -> Path:
    """A checkpoint as version 0.1 of the package wrote it: the backbone referenced by an absolute path."""
    shutil.copytree(checkpoint, folder)
    (folder / BACKBONE_NAME).unlink()
    payload = json.loads((folder / CONFIG_NAME).read_text())
    payload.update(format_version=1, package_version="0.1.0")
    payload["backbone"]["pretrained"] = str(backbone_file)
    (folder / CONFIG_NAME).write_text(json.dumps(payload))
    return folder


def test_version_1_checkpoints_are_refused_and_pack_with_the_named_backbone(
    tiny_checkpoint, tiny_backbone, frames, tmp_path
):
    """A version-1 folder names its backbone by absolute path: loaders refuse it (a folder never points outside
    itself), and ``pack --backbone-file`` completes it from the file the user names, checked by its checksum."""
    expected = RewardModel.from_pretrained(tiny_checkpoint).reward(frames, "close the drawer")
    backbone_file = Path(shutil.copyfile(tiny_backbone.pretrained, tmp_path / "cached.safetensors"))
    old = make_version_1(tiny_checkpoint, tmp_path / "old", backbone_file)
    with pytest.raises(
        CheckpointError, match=rf"outside the checkpoint folder.*vlm-rewards pack {old} --backbone-file"
    ):
        RewardModel.from_pretrained(old)
    with pytest.raises(CheckpointError, match="outside the checkpoint folder"):
        pack_checkpoint(old, tmp_path / "refused")  # without the user's word, the recorded path is not followed
    assert not (tmp_path / "refused").exists()

    other = Path(shutil.copyfile(backbone_file, tmp_path / "other.safetensors"))
    with open(other, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(CheckpointError, match="checksum"):
        pack_checkpoint(old, tmp_path / "wrong", backbone_file=other)

    packed = pack_checkpoint(old, tmp_path / "packed", backbone_file=backbone_file)
    backbone_file.unlink()  # the colleague's machine: no such file
    assert np.array_equal(RewardModel.from_pretrained(packed).reward(frames, "close the drawer"), expected)
    assert json.loads((packed / CONFIG_NAME).read_text())["format_version"] == 2
    # a release: the checkpoint's own files and its model card, no training state (no pickle) to publish
    assert sorted(p.name for p in packed.iterdir()) == sorted([BACKBONE_NAME, CONFIG_NAME, WEIGHTS_NAME, CARD_NAME])
    card = (packed / CARD_NAME).read_text()
    assert card.startswith("---\nlibrary_name: vlm_reward_wrappers") and "# packed: a vision-language" in card
    assert "A `triplet` reward model" in card and "Tasks: button-press-v3, drawer-close-v3, reach-v3." in card
    assert "learning rate the finetuning mode's default, seed 0" in card


def test_pack_never_links_or_exposes_a_file_it_did_not_write(tiny_checkpoint, tiny_backbone, tmp_path):
    """The user's weights file is copied into the packed folder, not hard-linked, and keeps its private mode; a
    link planted in the folder is refused, not followed into the published copy."""
    private = Path(shutil.copyfile(tiny_backbone.pretrained, tmp_path / "private.safetensors"))
    private.chmod(0o600)
    old = make_version_1(tiny_checkpoint, tmp_path / "old", private)
    packed = pack_checkpoint(old, tmp_path / "packed", backbone_file=private)
    assert private.stat().st_mode & 0o777 == 0o600 and private.stat().st_nlink == 1
    assert not (packed / BACKBONE_NAME).samefile(private)

    secret = tmp_path / "secret.txt"
    secret.write_text("not for publishing")
    (packed / "notes.txt").symlink_to(secret)
    with pytest.raises(CheckpointError, match=r"holds links \(notes.txt\)"):
        pack_checkpoint(packed, tmp_path / "published")
    assert not (tmp_path / "published").exists()


def test_cli_pack_in_place(tiny_checkpoint, tiny_backbone, tmp_path):
    backbone_file = Path(shutil.copyfile(tiny_backbone.pretrained, tmp_path / "cached.safetensors"))
    old = make_version_1(tiny_checkpoint, tmp_path / "old", backbone_file)
    done = subprocess.run(
        [sys.executable, "-m", "vlm_reward_wrappers", "pack", str(old), "--backbone-file", str(backbone_file)],
        capture_output=True,
        text=True,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr
    assert "complete checkpoint" in done.stdout and (old / BACKBONE_NAME).is_file()
    assert json.loads((old / CONFIG_NAME).read_text())["backbone"]["pretrained"] == BACKBONE_NAME
    assert {"training_state.pt", CARD_NAME} <= {p.name for p in old.iterdir()}  # in place: training can go on


def fake_hub_snapshot(cache: Path, repo_id: str, files: dict[str, Path | bytes]) -> Path:
    """A repo as huggingface_hub's cache lays it out after a download: refs/main names a snapshot folder."""
    revision = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    snapshot = repo / "snapshots" / revision
    snapshot.mkdir(parents=True)
    (repo / "blobs").mkdir()
    for name, content in files.items():  # each file a link to its blob, as huggingface_hub lays them out
        data = content.read_bytes() if isinstance(content, Path) else content
        blob = repo / "blobs" / hashlib.sha256(data).hexdigest()
        blob.write_bytes(data)
        (snapshot / name).symlink_to(os.path.relpath(blob, snapshot))
    return snapshot


def test_a_hub_repo_id_loads_offline_from_the_hub_cache(tiny_checkpoint, frames, tmp_path, monkeypatch):
    assert huggingface_hub.constants.HF_HUB_OFFLINE  # conftest sets HF_HUB_OFFLINE=1: the network is never tried
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    fake_hub_snapshot(tmp_path / "hub", "someone/triplet-metaworld", {p.name: p for p in tiny_checkpoint.iterdir()})
    expected = RewardModel.from_pretrained(tiny_checkpoint).reward(frames, "reach the goal position")
    loaded = RewardModel.from_pretrained("someone/triplet-metaworld")
    assert np.array_equal(loaded.reward(frames, "reach the goal position"), expected)

    started = time.perf_counter()
    with pytest.raises(CheckpointError, match=r"not a checkpoint folder.*Hub repo id") as error:
        RewardModel.from_pretrained("someone/not-downloaded")
    assert time.perf_counter() - started < 10 and "\n" not in str(error.value)


def test_a_hub_revision_is_taken_by_keyword_and_by_repo_at_revision(tiny_checkpoint, frames, tmp_path, monkeypatch):
    """``revision="v1"`` and ``someone/x@v1`` load the snapshot its ref names; no revision loads ``main``."""
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    main = fake_hub_snapshot(tmp_path / "hub", "someone/x", {p.name: p for p in tiny_checkpoint.iterdir()})
    older = Path(shutil.copytree(tiny_checkpoint, tmp_path / "older"))
    model = RewardModel.from_pretrained(older)
    with torch.no_grad():
        next(p for name, p in model.named_parameters() if "lora_b" in name).add_(0.5)  # other weights: revision v1
    model.save_pretrained(older)
    revision = "fedcba9876543210fedcba9876543210fedcba98"
    (main.parent.parent / "refs" / "v1").write_text(revision)
    shutil.copytree(older, main.parent / revision)
    expected = {name: RewardModel.from_pretrained(folder).reward(frames, "reach the goal position")
                for name, folder in (("main", tiny_checkpoint), ("v1", older))}  # fmt: skip
    assert not np.array_equal(expected["main"], expected["v1"])
    for loaded, name in (
        (RewardModel.from_pretrained("someone/x"), "main"),
        (RewardModel.from_pretrained("someone/x", revision="v1"), "v1"),
        (RewardModel.from_pretrained("someone/x@v1"), "v1"),
    ):
        assert np.array_equal(loaded.reward(frames, "reach the goal position"), expected[name]), name


def test_a_mistyped_local_path_is_not_taken_for_a_hub_repo_id(tmp_path, monkeypatch):
    """``runs/nope`` beside an existing ``runs`` folder is a missing local checkpoint, not a Hub lookup."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    with pytest.raises(CheckpointError, match=r"no checkpoint at runs/nope: runs is a local folder without it"):
        RewardModel.from_pretrained("runs/nope")


def test_a_pretrained_tag_records_the_checksum_of_open_clips_cached_file(tmp_path, monkeypatch):
    """Tags load through open_clip's cache; the checksum catches weights that changed upstream.

    Downloading real weights cannot be tested here (no network): the cache is laid out by hand.
    """
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    tag = BackboneSpec("ViT-B-16-SigLIP2", pretrained="webli")
    assert cached_pretrained_file(tag) is None and with_checksum(tag).sha256 is None
    snapshot = fake_hub_snapshot(tmp_path / "hub", "timm/ViT-B-16-SigLIP2", {"open_clip_model.safetensors": b"w" * 64})
    assert cached_pretrained_file(tag) == snapshot / "open_clip_model.safetensors"
    recorded = with_checksum(tag)
    assert recorded.sha256 == file_sha256(snapshot / "open_clip_model.safetensors")
    check_cached_pretrained(recorded)  # the same file: no error
    (snapshot / "open_clip_model.safetensors").write_bytes(b"v" * 64)
    with pytest.raises(BackboneLoadError, match="changed upstream"):
        check_cached_pretrained(recorded)


# ------------------------------------------------------------ publishing on the Hub (the network stubbed)


@pytest.fixture
def hub_calls(tmp_path, monkeypatch) -> dict:
    """``HfApi``'s network calls, recorded instead of made; each upload's folder is copied to ``calls["uploaded"]``
    (as it was when uploaded: the staging folder is gone afterwards)."""
    calls: dict = {}

    def create_repo(self, repo_id, **options):
        calls["create_repo"] = {"repo_id": repo_id, **options}
        return huggingface_hub.RepoUrl(f"https://huggingface.co/{repo_id}")

    def create_branch(self, repo_id, **options):
        calls["create_branch"] = {"repo_id": repo_id, **options}

    def upload_folder(self, **options):
        calls["upload_folder"] = options
        calls["uploaded"] = Path(shutil.copytree(options["folder_path"], tmp_path / "uploaded", symlinks=True))
        url = f"https://huggingface.co/{options['repo_id']}/commit/{'ab' * 20}"
        return huggingface_hub.CommitInfo(url, options["commit_message"], "", "ab" * 20)

    for stub in (create_repo, create_branch, upload_folder):
        monkeypatch.setattr(huggingface_hub.HfApi, stub.__name__, stub)
    return calls


def test_push_to_hub_uploads_the_release_only_and_the_repo_id_then_loads(
    tiny_checkpoint, frames, tmp_path, monkeypatch, hub_calls
):
    """A training checkpoint is published as its release: config, weights, backbone and a card that names the
    objective and the repo; no trainer state, no pickle. The checkpoint is left as it was, and the uploaded files,
    laid in the Hub cache, load by repo id to the same scores."""
    from vlm_reward_wrappers.models import push_to_hub

    assert "training_state.pt" in {p.name for p in tiny_checkpoint.iterdir()}  # a pickle that must stay here
    before = {p.name: file_sha256(p) for p in tiny_checkpoint.iterdir() if p.is_file()}
    url = push_to_hub(tiny_checkpoint, "someone/triplet-metaworld", commit_message="first release")
    assert url == f"https://huggingface.co/someone/triplet-metaworld/commit/{'ab' * 20}"
    assert {p.name: file_sha256(p) for p in tiny_checkpoint.iterdir() if p.is_file()} == before

    uploaded = hub_calls["uploaded"]
    assert sorted(p.name for p in uploaded.iterdir()) == sorted([BACKBONE_NAME, CARD_NAME, CONFIG_NAME, WEIGHTS_NAME])
    assert not any(p.is_symlink() or p.suffix in (".pt", ".pkl", ".pickle", ".bin") for p in uploaded.iterdir())
    card = (uploaded / CARD_NAME).read_text()
    assert card.startswith("---\nlibrary_name: vlm_reward_wrappers") and "# triplet-metaworld:" in card
    assert "A `triplet` reward model" in card and '"someone/triplet-metaworld")' in card
    assert hub_calls["create_repo"] == {"repo_id": "someone/triplet-metaworld", "token": None, "exist_ok": True}
    assert "create_branch" not in hub_calls  # main: no branch to make
    upload = hub_calls["upload_folder"]
    assert (upload["repo_id"], upload["revision"], upload["commit_message"]) == (
        "someone/triplet-metaworld", None, "first release",
    )  # fmt: skip

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    fake_hub_snapshot(tmp_path / "hub", "someone/triplet-metaworld", {p.name: p for p in uploaded.iterdir()})
    expected = RewardModel.from_pretrained(tiny_checkpoint).reward(frames, "reach the goal position")
    loaded = RewardModel.from_pretrained("someone/triplet-metaworld")
    assert np.array_equal(loaded.reward(frames, "reach the goal position"), expected)


def test_reward_model_push_to_hub_passes_revision_private_and_token(tiny_checkpoint, tmp_path, hub_calls):
    """``RewardModel.push_to_hub`` uploads what ``save_pretrained`` writes, card included; ``revision`` is the
    branch committed to (made if missing), ``private`` and ``token`` reach the Hub's calls, and
    ``user/name@revision`` says the same as ``revision=``."""
    model = RewardModel.from_pretrained(tiny_checkpoint)
    saved = model.save_pretrained(tmp_path / "saved")
    assert sorted(p.name for p in saved.iterdir()) == sorted([BACKBONE_NAME, CARD_NAME, CONFIG_NAME, WEIGHTS_NAME])
    assert "A `triplet` reward model" in (saved / CARD_NAME).read_text()

    url = model.push_to_hub("someone/x", revision="v1", private=True, token="hf_secret")
    assert url.startswith("https://huggingface.co/someone/x/commit/")
    assert hub_calls["create_repo"] == {"repo_id": "someone/x", "token": "hf_secret", "exist_ok": True, "private": True}
    assert hub_calls["create_branch"] == dict(repo_id="someone/x", branch="v1", token="hf_secret", exist_ok=True)
    upload = hub_calls["upload_folder"]
    assert (upload["repo_id"], upload["revision"], upload["token"]) == ("someone/x", "v1", "hf_secret")
    assert "vlm_reward_wrappers" in upload["commit_message"]
    uploaded = hub_calls["uploaded"]
    assert sorted(p.name for p in uploaded.iterdir()) == sorted([BACKBONE_NAME, CARD_NAME, CONFIG_NAME, WEIGHTS_NAME])
    assert '"someone/x@v1")' in (uploaded / CARD_NAME).read_text()
    assert json.loads((uploaded / CONFIG_NAME).read_text()) == json.loads((saved / CONFIG_NAME).read_text())

    shutil.rmtree(uploaded)
    model.push_to_hub("someone/x@v1")
    assert hub_calls["upload_folder"]["revision"] == hub_calls["create_branch"]["branch"] == "v1"
    assert "private" not in hub_calls["create_repo"]  # not given: the Hub's default, an existing repo unchanged
    with pytest.raises(ValueError, match="names revision 'v1', but revision='v2'"):
        model.push_to_hub("someone/x@v1", revision="v2")


def test_the_push_command_publishes_the_release(tiny_checkpoint, hub_calls, capsys):
    """``vlm-rewards push CHECKPOINT REPO_ID`` is ``push_to_hub`` on the command line: the same release, the options
    passed on, the commit's URL printed."""
    from vlm_reward_wrappers.cli import main

    assert main(["push", str(tiny_checkpoint), "someone/cli-push", "--revision", "v2", "--private"]) == 0
    assert capsys.readouterr().out.strip().endswith(f"https://huggingface.co/someone/cli-push/commit/{'ab' * 20}")
    assert hub_calls["create_repo"]["private"] is True and hub_calls["upload_folder"]["revision"] == "v2"
    uploaded = sorted(p.name for p in hub_calls["uploaded"].iterdir())
    assert uploaded == sorted([BACKBONE_NAME, CARD_NAME, CONFIG_NAME, WEIGHTS_NAME])
