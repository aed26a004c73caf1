"""The checkpoint folder format, known here and nowhere else.

A checkpoint is a complete folder in the Hugging Face convention: everything
needed to score with it, and no absolute path::

    CKPT/config.json            format and version, the RewardModelConfig, and the
                                checksum of the weights file
    CKPT/model.safetensors      the model's tensors (see RewardModel.names_to_save)
    CKPT/backbone.safetensors   the backbone's weights, when no public name and tag
                                reach them (the package's own backbone, a local file)
    CKPT/...                    files a writer adds (the trainer's resumable state)

A backbone given by an open_clip name and pretrained tag is recorded as such,
with the checksum of open_clip's cached file, and loads through open_clip's
cache. The backbone file is hard-linked from the package's cache when it lies
on the same file system (no extra disk), else copied. A folder copied anywhere,
renamed, or used with an empty cache loads the same.

A folder names no file outside itself: a ``backbone.pretrained`` path that
leaves it (``..``, an absolute path, a link) is refused by every reader, since
a folder may come from anyone. Version 1 folders named their backbone by
absolute path; :func:`pack_checkpoint` (``vlm-rewards pack CKPT
--backbone-file WEIGHTS``) makes them complete from the file the user names.

A checkpoint path may also be a Hugging Face Hub repo id (``user/name``): it
resolves through ``huggingface_hub``'s local cache (``HF_HUB_OFFLINE=1`` never
touches the network); :func:`~vlm_reward_wrappers.models.hub.push_to_hub` publishes a
folder's release there.

Writes are atomic: the folder is staged beside its final name and swapped in
with two renames. Only a writer ever cleans up after a killed save
(:func:`recover_interrupted_save`); readers never write, and a reader that
meets a save in progress reads the previous checkpoint or retries.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "ckpt"
    >>> _ = write_checkpoint(folder, RewardModelConfig(), {"w": torch.zeros(2)})
    >>> is_checkpoint(folder), is_checkpoint(folder.parent)
    (True, False)
    >>> config, weights_sha256 = read_checkpoint_config(folder)
    >>> config.camera
    'corner'
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TypeVar

import torch
from safetensors.torch import load_file, save_file

from vlm_reward_wrappers.configs import from_dict, to_dict
from vlm_reward_wrappers.io_utils import cache_dir, give_default_permissions, read_versioned_json, write_json_atomic
from vlm_reward_wrappers.locking import writing
from vlm_reward_wrappers.models.backbone import BackboneSpec, file_sha256, with_checksum
from vlm_reward_wrappers.models.card import CARD_NAME, model_card
from vlm_reward_wrappers.models.config import RewardModelConfig
from vlm_reward_wrappers.version import __version__

CHECKPOINT_FORMAT = "vlm-reward-wrappers/reward-model"
CHECKPOINT_VERSION = 2
OLDER_VERSIONS = (1,)
"""Version 1: the backbone file was referenced by an absolute path instead of lying in the folder."""
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
BACKBONE_NAME = "backbone.safetensors"
BUNDLED_CHECKPOINT = Path(__file__).resolve().parents[1] / "bundled_model"
"""The reward model that ships with the package (``vlm-rewards bundle`` retrains it; its ``README.md`` is the
model card): what the wrappers score with when no checkpoint is given."""
_METADATA_KEYS = ("format", "format_version", "package_version", "weights")
_READ_ATTEMPTS = 20

T = TypeVar("T")


class CheckpointError(RuntimeError):
    """A checkpoint folder that cannot be loaded; the message names the file and the problem."""


def is_checkpoint(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a reward-model checkpoint folder (it holds a ``config.json``)."""
    return (Path(path) / CONFIG_NAME).is_file()


def looks_like_repo_id(text: str) -> bool:
    """Whether ``text`` reads as a Hub repo id, ``user/name`` or ``user/name@revision`` (a checkpoint path that
    does not exist and reads so is looked up in the local Hub cache).

    Example:
        >>> looks_like_repo_id("someone/triplet@v1"), looks_like_repo_id("runs/quick/checkpoints/triplet-seed0")
        (True, False)
    """
    return re.fullmatch(r"[\w.-]+/[\w.-]+(@[\w./-]+)?", text) is not None


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The local folder of a checkpoint: ``path`` itself, or a Hub repo id's snapshot in the local Hub cache.

    A repo id resolves through ``huggingface_hub.snapshot_download``, at a revision (a branch, tag or commit)
    written ``user/name@revision`` (the default: ``main``), so every place that takes a checkpoint takes one;
    with ``HF_HUB_OFFLINE=1`` only the local cache is read, and a repo that is not there is a one-line
    :class:`CheckpointError`.
    """
    folder = Path(path).expanduser()
    if folder.exists() or _previous(folder) is not None or not looks_like_repo_id(str(path)):
        return folder
    if "@" not in str(path) and folder.parent.is_dir() and str(folder.parent) not in ("", "."):  # `runs/nope`
        raise CheckpointError(
            f"no checkpoint at {folder}: {folder.parent} is a local folder without it (as a Hub repo id, "
            f"{path} would shadow that folder; rename it to use the repo)."
        )
    from huggingface_hub import snapshot_download

    repo_id, _, revision = str(path).partition("@")
    try:
        return Path(snapshot_download(repo_id, revision=revision or None))
    except Exception as error:  # offline cache misses, unknown repos, network errors
        reason = str(error).splitlines()[0] if str(error) else type(error).__name__
        raise CheckpointError(
            f"{path} is not a checkpoint folder, and as a Hugging Face Hub repo id it cannot be had here ({reason})."
        ) from error


def save_stamp(path: str | os.PathLike) -> int | None:
    """A number that changes whenever the checkpoint at ``path`` is saved again (None: no checkpoint there)."""
    config = Path(path) / CONFIG_NAME
    return config.stat().st_mtime_ns if config.is_file() else None


def _save_in_progress(folder: Path) -> bool:
    return any(folder.parent.glob(f".{folder.name}.staging-*")) or any(folder.parent.glob(f".{folder.name}.old-*"))


def _previous(folder: Path) -> Path | None:
    """The checkpoint a save in progress has moved aside (between its two renames), if any."""
    moved = sorted(folder.parent.glob(f".{folder.name}.old-*"), key=lambda path: path.stat().st_mtime)
    return moved[-1] if moved else None


def read_while_saving(folder: str | os.PathLike, read: Callable[[Path], T]) -> T:
    """``read(folder)``, retried while a save of that folder is in progress.

    A save swaps folders with two renames; a reader that lands between them, or
    reads files that the swap replaces, gets a :class:`CheckpointError` and
    tries again (the previous checkpoint serves while the new one is missing).
    """
    folder = resolve_checkpoint(folder)
    for attempt in range(_READ_ATTEMPTS):
        target = folder if folder.exists() else (_previous(folder) or folder)
        try:
            return read(target)
        except (CheckpointError, FileNotFoundError):
            # A swap may have completed while we read: try the new folder twice before calling it broken.
            swapped_meanwhile = attempt < 2 and folder.exists()
            if attempt == _READ_ATTEMPTS - 1 or not (_save_in_progress(folder) or swapped_meanwhile):
                raise
            time.sleep(0.05)
    raise AssertionError("unreachable")


def read_checkpoint_config(path: str | os.PathLike) -> tuple[RewardModelConfig, str]:
    """A checkpoint's config and the checksum of its weights, read without loading the weights.

    Raises :class:`CheckpointError` naming the folder or file when the folder
    is missing, has no readable ``config.json``, or is of another format or version.
    Never writes.
    """
    return read_while_saving(path, read_config_file)


def read_config_file(folder: Path) -> tuple[RewardModelConfig, str]:
    """:func:`read_checkpoint_config` without the retries: for code that already retries."""
    config, payload = _parse_config(folder)
    backbone = config.backbone
    if backbone.is_local_file:
        config.backbone = replace(backbone, pretrained=str(_file_inside(folder, str(backbone.pretrained))))
        if not Path(config.backbone.pretrained or "").is_file():
            raise CheckpointError(
                f"checkpoint {folder} is incomplete: its backbone weights {config.backbone.pretrained} are missing. "
                "Copy the whole checkpoint folder."
            )
    return config, payload["weights"]["sha256"]


def _parse_config(folder: Path) -> tuple[RewardModelConfig, dict]:
    """The config of a checkpoint folder and the raw payload, its paths not yet checked."""
    config_path = folder / CONFIG_NAME
    if not folder.is_dir():
        raise CheckpointError(
            f"no checkpoint at {folder}: it does not exist. Make one with `vlm-rewards train` or "
            "`vlm-rewards benchmark`, or give a Hub repo id (user/name) that is in the local Hub cache."
        )
    if not config_path.is_file():
        raise CheckpointError(f"checkpoint {folder} has no {CONFIG_NAME}; it is not a reward-model checkpoint.")
    payload = read_versioned_json(
        config_path,
        file_format=CHECKPOINT_FORMAT,
        version=CHECKPOINT_VERSION,
        what="a vlm_reward_wrappers reward-model config",
        also_reads=OLDER_VERSIONS,
        error=CheckpointError,
    )
    fields = {key: value for key, value in payload.items() if key not in _METADATA_KEYS}
    try:
        config = from_dict(RewardModelConfig, fields)
    except (TypeError, ValueError) as error:
        raise CheckpointError(f"{config_path} does not describe a reward model: {error}") from error
    problems = config.problems()
    if problems:
        raise CheckpointError(f"{config_path} holds invalid values: {'; '.join(problems)}")
    return config, payload


def _file_inside(folder: Path, recorded: str) -> Path:
    """The file a checkpoint's ``backbone.pretrained`` names, which must lie inside the folder (links followed; in
    a Hugging Face cache snapshot, they may lead to the repo's ``blobs``, as the Hub lays files out).

    A folder may come from anyone: a path outside it would make a loader reveal, and ``pack`` publish, a file
    of this machine. Version-1 folders named their backbone by absolute path; ``pack --backbone-file`` takes it
    from the user instead.
    """
    path = Path(recorded)
    roots = [folder.resolve()]
    if folder.parent.name == "snapshots":  # a Hub cache snapshot: its files are links to the repo's blobs
        roots.append(folder.parent.parent.resolve() / "blobs")
    if not path.is_absolute() and any((folder / path).resolve().is_relative_to(root) for root in roots):
        return folder / path
    hint = (
        f" If you wrote this checkpoint with an older version of the package, put its backbone inside with "
        f"`vlm-rewards pack {folder} --backbone-file WEIGHTS`."
        if path.is_absolute()
        else ""
    )
    raise CheckpointError(
        f"{folder / CONFIG_NAME}: backbone.pretrained is {recorded!r}, a path outside the checkpoint folder; a "
        f"checkpoint may only name files inside it, so this folder is refused.{hint}"
    )


def write_checkpoint(
    path: str | os.PathLike,
    config: RewardModelConfig,
    weights: dict[str, torch.Tensor],
    extra_files: Mapping[str, Callable[[Path], None]] | None = None,
) -> Path:
    """Write a checkpoint folder atomically: staged beside ``path``, then swapped in.

    ``extra_files`` maps file names to functions that write them (e.g. the
    trainer's resumable state), so they change together with the weights.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    with writing(final):  # one writer (re-entrant: a trainer holds it for its whole run)
        recover_interrupted_save(final)
        _write_staged(final, config, weights, extra_files)
    return final


def _write_staged(
    final: Path,
    config: RewardModelConfig,
    weights: dict[str, torch.Tensor],
    extra_files: Mapping[str, Callable[[Path], None]] | None,
) -> None:
    """Stage the checkpoint beside ``final`` and swap it in."""
    staging = final.parent / f".{final.name}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        recorded = replace(config, backbone=_backbone_into(config.backbone, staging, final))
        weights_path = staging / WEIGHTS_NAME
        save_file(weights, str(weights_path))
        for name, writer in (extra_files or {}).items():
            writer(staging / name)
        for written in staging.iterdir():
            with open(written, "rb") as handle:
                os.fsync(handle.fileno())
            if written.stat().st_nlink == 1:  # a file written here (a hard link is another's file: left as it is)
                give_default_permissions(written)  # readable by whoever may read any other file written here
        payload = {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "package_version": __version__,
            **to_dict(recorded),
            "weights": {"file": WEIGHTS_NAME, "sha256": file_sha256(weights_path)},
        }
        write_json_atomic(staging / CONFIG_NAME, payload)
        _swap_in(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _backbone_into(spec: BackboneSpec, staging: Path, final: Path) -> BackboneSpec:
    """The backbone as the folder records it: a local weights file goes into the folder (a relative name);
    a pretrained tag keeps its name, with the checksum of open_clip's cached file.

    The file is hard-linked when the package wrote it (its cache, or the folder ``final`` being rewritten) and
    copied otherwise: a link to a user's file would share its permissions with the published folder.
    """
    if not spec.is_local_file:
        return with_checksum(spec)
    source = Path(str(spec.pretrained))
    if not source.is_file():
        raise CheckpointError(
            f"the backbone weights {source} do not exist, so the checkpoint cannot be made complete; pack it on "
            "the machine that has them (`vlm-rewards pack CKPT`)."
        )
    target = staging / BACKBONE_NAME
    ours = any(source.resolve().is_relative_to(root.resolve()) for root in (cache_dir(), final))
    try:
        if not ours:
            raise OSError("not the package's file: copied")
        os.link(source, target)  # no extra disk where both lie on one file system; the file stays whole
    except OSError:
        shutil.copyfile(source, target)
    checksum = file_sha256(target)
    if spec.sha256 is not None and checksum != spec.sha256:
        raise CheckpointError(
            f"the backbone weights {source} do not match their recorded checksum (changed or corrupt)"
        )
    return BackboneSpec(spec.model, BACKBONE_NAME, checksum)


def pack_checkpoint(
    path: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    backbone_file: str | os.PathLike | None = None,
    repo_id: str | None = None,
    results: str | None = None,
) -> Path:
    """Make a checkpoint complete (its backbone weights in the folder), in place or as a release at ``out``.

    Both get a model card (``README.md``, :mod:`~vlm_reward_wrappers.models.card`). In place, the files a
    writer added (the trainer's resumable state) are kept, so training can go on; a release at ``out`` holds
    the checkpoint's own files and the card only, nothing else and no pickle, ready to publish
    (``hf upload NAME OUT .``). A link in the folder is refused, never followed.

    ``backbone_file`` converts a version-1 folder, which pointed at its backbone by an absolute path: the user
    names the weights file (a path read from a folder is never followed outside it), and its checksum must be
    the one the folder recorded. ``repo_id`` is the Hub repo the release is published as, for its card's usage
    example (:func:`~vlm_reward_wrappers.models.hub.push_to_hub` names it); ``results`` is the card's "Results"
    section (markdown).
    """
    folder = resolve_checkpoint(path)
    if backbone_file is None:
        config, weights_sha256 = read_checkpoint_config(folder)
    else:
        config, payload = _parse_config(folder)
        weights_sha256 = payload["weights"]["sha256"]
        given = Path(backbone_file).resolve()
        if config.backbone.sha256 is None:
            raise CheckpointError(f"{folder} records no checksum of its backbone, so {given} cannot be checked")
        config.backbone = replace(config.backbone, pretrained=str(given))
    links = [item.name for item in folder.iterdir() if item.is_symlink()]
    if links:
        raise CheckpointError(
            f"{folder} holds links ({', '.join(links)}); a checkpoint folder holds files only. Replace each link by "
            "the file it points at, if you mean to publish it."
        )
    weights_path = folder / WEIGHTS_NAME
    if not weights_path.is_file() or file_sha256(weights_path) != weights_sha256:
        raise CheckpointError(f"checkpoint weights {weights_path} are missing or do not match their checksum.")
    own = (CONFIG_NAME, WEIGHTS_NAME, BACKBONE_NAME, CARD_NAME)
    extra: dict[str, Callable[[Path], None]] = {
        item.name: functools.partial(shutil.copyfile, item)
        for item in folder.iterdir()
        if out is None and item.is_file() and item.name not in own
    }
    final = Path(out) if out is not None else folder
    extra[CARD_NAME] = card_writer(config, final.resolve().name, repo_id, results)
    return write_checkpoint(final, config, load_file(str(weights_path)), extra)


def card_writer(
    config: RewardModelConfig, name: str, repo_id: str | None = None, results: str | None = None
) -> Callable[[Path], None]:
    """A writer of the model card (``README.md``) of a checkpoint named ``name``, for ``extra_files`` of
    :func:`write_checkpoint`."""
    return functools.partial(_write_card, config, name, repo_id, results)


def _write_card(config: RewardModelConfig, name: str, repo_id: str | None, results: str | None, path: Path) -> None:
    path.write_text(model_card(config, name, repo_id, results))


def recover_interrupted_save(final: str | os.PathLike) -> None:
    """Undo what a save killed mid-way left beside ``final`` (for writers only).

    A save stages a new folder, renames the current one to ``.NAME.old-*`` and
    the staged one into place. Killed between the renames, the previous
    checkpoint is the ``.old`` folder: it is renamed back. Staging folders of
    killed saves are removed. Only the process that writes ``final`` may call
    this: a staging folder of a save in progress looks like a killed one.
    """
    final = Path(final)
    if not final.parent.is_dir():
        return
    for staging in final.parent.glob(f".{final.name}.staging-*"):
        shutil.rmtree(staging, ignore_errors=True)
    previous = sorted(final.parent.glob(f".{final.name}.old-*"), key=lambda p: p.stat().st_mtime)
    if previous and not final.exists():
        os.rename(previous.pop(), final)
    for leftover in previous:
        shutil.rmtree(leftover, ignore_errors=True)


def _swap_in(staging: Path, final: Path) -> None:
    """Replace ``final`` by ``staging`` with two renames; the old folder is removed last."""
    if final.exists():
        old = final.parent / f".{final.name}.old-{uuid.uuid4().hex[:8]}"
        os.rename(final, old)
        os.rename(staging, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(staging, final)
