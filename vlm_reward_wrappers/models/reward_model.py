"""RewardModel: a backbone, its adapter and an objective's reward, saved as a checkpoint folder.

A checkpoint is a folder in the Hugging Face convention::

    CKPT/config.json          backbone spec, finetuning mode, objective, goal texts,
                              camera and image size of the training frames,
                              reward statistics, package and format version
    CKPT/model.safetensors    only the tensors not in the named backbone
                              (LoRA factors, heads, temperature; everything for
                              full finetuning or a backbone without named weights)

Writes are atomic: the folder is written beside its final name and swapped in.

Example:
    >>> model = RewardModel.from_pretrained("runs/quick/checkpoints/triplet")      # doctest: +SKIP
    >>> model.reward(frames, "open the door")                                         # doctest: +SKIP
    array([0.12, 0.31, ...], dtype=float32)
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from vlm_reward_wrappers.io_utils import CorruptFileError, read_json, write_json_atomic
from vlm_reward_wrappers.models.adapters import FinetuneConfig, apply_finetuning
from vlm_reward_wrappers.models.backbone import Backbone, BackboneSpec, file_sha256, load_backbone
from vlm_reward_wrappers.objectives import Objective, objective_from_config
from vlm_reward_wrappers.tasks import DEFAULT_BASELINE_TEXT

CHECKPOINT_FORMAT = "vlm-reward-wrappers/reward-model"
CHECKPOINT_VERSION = 1
CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint folder that cannot be loaded; the message names the file and the problem."""


@dataclass
class RewardModelConfig:
    """Everything needed to rebuild a reward model (stored as ``config.json``)."""

    backbone: BackboneSpec = field(default_factory=BackboneSpec)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    objective: dict[str, Any] = field(default_factory=lambda: {"name": "triplet"})
    goal_texts: dict[str, str] = field(default_factory=dict)
    baseline_text: str = DEFAULT_BASELINE_TEXT
    camera: str = "corner"
    image_size: int = 64
    reward_stats: dict[str, float] = field(default_factory=lambda: {"mean": 0.0, "std": 1.0})
    training: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["backbone"] = self.backbone.to_dict()
        data["finetune"] = self.finetune.to_dict()
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RewardModelConfig:
        values = dict(data)
        values["backbone"] = BackboneSpec.from_dict(values["backbone"])
        values["finetune"] = FinetuneConfig.from_dict(values["finetune"])
        return cls(**values)


class RewardModel(nn.Module):
    """Scores frames against goal sentences with a (finetuned) vision-language backbone.

    Args:
        config: backbone, adapter, objective and metadata.
        backbone: an already loaded backbone of ``config.backbone`` (loaded if omitted).
    """

    def __init__(self, config: RewardModelConfig, backbone: Backbone | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone if backbone is not None else load_backbone(config.backbone)
        self.heads = apply_finetuning(self.backbone, config.finetune)
        self.objective: Objective = objective_from_config(config.objective)
        self._text_cache: dict[str, torch.Tensor] = {}

    @property
    def device(self) -> torch.device:
        return self.backbone.pixel_mean.device

    def backbone_image_features(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Image embeddings before the head (what a frozen backbone lets one cache)."""
        return self.backbone.encode_images(frames)

    def image_head(self, features: torch.Tensor) -> torch.Tensor:
        return self.heads["image"](features) if "image" in self.heads else features

    def encode_images(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Unnormalised image embeddings ``(B, D)`` of uint8 frames ``(B, H, W, 3)``."""
        return self.image_head(self.backbone_image_features(frames))

    def encode_text(self, texts: Sequence[str]) -> torch.Tensor:
        """Unnormalised text embeddings ``(B, D)``."""
        features = self.backbone.encode_text(list(texts))
        return self.heads["text"](features) if "text" in self.heads else features

    def goal_embedding(self, goal: str) -> torch.Tensor:
        """Text embedding of a goal sentence, computed once per sentence and cached (eval only)."""
        if not goal or not goal.strip():
            raise ValueError("the goal text is empty; pass a sentence such as 'open the door'")
        if self.training:
            return self.encode_text([goal])[0]
        if goal not in self._text_cache:
            with torch.no_grad():
                self._text_cache[goal] = self.encode_text([goal])[0]
        return self._text_cache[goal]

    def train(self, mode: bool = True) -> RewardModel:
        if mode:
            self._text_cache.clear()  # weights change while training
        return super().train(mode)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        self._text_cache.clear()
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def reward_from_features(self, image_features: torch.Tensor, goal: str) -> torch.Tensor:
        """Rewards of image embeddings (from :meth:`encode_images`) for one goal."""
        baseline = self.goal_embedding(self.config.baseline_text) if self.objective.name == "zero-shot" else None
        return self.objective.reward(image_features, self.goal_embedding(goal), baseline)

    def rewards_for_goals(self, image_features: torch.Tensor, goals: Sequence[str] | np.ndarray) -> np.ndarray:
        """Rewards of image embeddings, each against its own goal sentence (one text embedding per distinct goal)."""
        goals = np.asarray(goals)
        rewards = np.zeros(len(goals), dtype=np.float32)
        for goal in np.unique(goals):
            where = np.flatnonzero(goals == goal)
            rewards[where] = self.reward_from_features(image_features[where], str(goal)).float().cpu().numpy()
        return rewards

    @torch.no_grad()
    def reward(
        self, frames: torch.Tensor | np.ndarray, goal: str, *, normalize: bool = False, batch_size: int = 256
    ) -> np.ndarray:
        """Rewards ``(B,)`` of uint8 frames ``(B, H, W, 3)`` for a goal sentence.

        ``normalize=True`` standardises with the mean and std of the rewards
        the model gave on its training data.
        """
        was_training = self.training
        self.eval()
        try:
            rewards = (
                self.reward_from_features(in_batches(self.encode_images, frames, batch_size), goal)
                if len(frames)
                else torch.zeros(0)
            )
        finally:
            self.train(was_training)
        values = rewards.float().cpu().numpy()
        if normalize:
            stats = self.config.reward_stats
            values = (values - stats["mean"]) / max(stats["std"], 1e-8)
        return values

    # ----------------------------------------------------------- persistence

    def names_to_save(self) -> set[str]:
        """Names of the tensors that are not in the named backbone's weights."""
        state_names = set(self.state_dict(keep_vars=True))
        if self.config.finetune.mode == "full" or self.config.backbone.pretrained is None:
            return state_names
        return {name for name, parameter in self.named_parameters() if parameter.requires_grad} & state_names

    def weights_to_save(self) -> dict[str, torch.Tensor]:
        """Copies, on the CPU, of the tensors :meth:`names_to_save` names."""
        names = self.names_to_save()
        # Copies: tensors that share memory with the parameters would follow later optimizer steps.
        return {
            name: tensor.detach().to("cpu", copy=True).contiguous()
            for name, tensor in self.state_dict().items()
            if name in names
        }

    def save_pretrained(self, path: str | os.PathLike) -> Path:
        """Write the checkpoint folder atomically; return its path."""
        return write_checkpoint(path, self.config, self.weights_to_save())

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike, device: str | torch.device = "cpu") -> RewardModel:
        """Load a checkpoint folder written by :meth:`save_pretrained`.

        Raises :class:`CheckpointError` naming the file when the folder is
        missing, truncated, of an unknown format version, or its backbone
        cannot be loaded. Never returns a silently random model.
        """
        folder = Path(path)
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        config, weights_sha256 = read_checkpoint_config(folder)
        if not weights_path.is_file():
            raise CheckpointError(f"checkpoint weights {weights_path} are missing.")
        if file_sha256(weights_path) != weights_sha256:
            raise CheckpointError(
                f"checkpoint weights {weights_path} do not match the checksum in {config_path} (truncated or changed)."
            )
        try:
            backbone = load_backbone(config.backbone, device=device)
        except Exception as error:
            raise CheckpointError(f"checkpoint {folder}: its backbone cannot be loaded: {error}") from error
        model = cls(config, backbone).to(device)
        try:
            saved = load_file(str(weights_path), device=str(device))
        except (SafetensorError, OSError) as error:
            raise CheckpointError(f"checkpoint weights {weights_path} cannot be read: {error}") from error
        expected = model.names_to_save()
        if set(saved) != expected:
            missing, unexpected = sorted(expected - set(saved))[:3], sorted(set(saved) - expected)[:3]
            raise CheckpointError(
                f"checkpoint weights {weights_path} do not fit the model (missing {missing}, unexpected {unexpected})."
            )
        try:
            model.load_state_dict(saved, strict=False)
        except RuntimeError as error:
            raise CheckpointError(
                f"checkpoint weights {weights_path} do not fit the model described by {config_path}: {error}"
            ) from error
        model.eval()
        return model


def in_batches(
    encode: Callable[[Any], torch.Tensor], frames: torch.Tensor | np.ndarray, batch_size: int = 256
) -> torch.Tensor:
    """``encode`` applied to ``frames`` ``batch_size`` at a time, results concatenated."""
    return torch.cat([encode(frames[start : start + batch_size]) for start in range(0, len(frames), batch_size)])


def read_checkpoint_config(path: str | os.PathLike) -> tuple[RewardModelConfig, str]:
    """A checkpoint's config and the checksum of its weights, read without loading the weights.

    Raises :class:`CheckpointError` naming the folder or file when the folder
    is missing, has no readable ``config.json``, or is of another format or version.
    """
    folder = Path(path)
    config_path = folder / CONFIG_NAME
    recover_interrupted_save(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint {folder} does not exist. Train one with `vlm-rewards train`.")
    if not config_path.is_file():
        raise CheckpointError(f"checkpoint {folder} has no {CONFIG_NAME}; it is not a reward-model checkpoint.")
    try:
        payload = read_json(config_path)
    except CorruptFileError as error:
        raise CheckpointError(str(error)) from error
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{config_path} is not a vlm_reward_wrappers reward-model config.")
    if payload.get("format_version") != CHECKPOINT_VERSION:
        raise CheckpointError(
            f"{config_path} has format version {payload.get('format_version')}, this package reads version "
            f"{CHECKPOINT_VERSION}: upgrade vlm_reward_wrappers or retrain the checkpoint."
        )
    fields = {k: v for k, v in payload.items() if k not in ("format", "format_version", "package_version", "weights")}
    return RewardModelConfig.from_dict(fields), payload["weights"]["sha256"]


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
    from vlm_reward_wrappers import __version__

    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    recover_interrupted_save(final)
    staging = final.parent / f".{final.name}.staging-{uuid.uuid4().hex[:8]}"
    staging.mkdir()
    try:
        weights_path = staging / WEIGHTS_NAME
        save_file(weights, str(weights_path))
        for name, writer in (extra_files or {}).items():
            writer(staging / name)
        for written in staging.iterdir():
            with open(written, "rb") as handle:
                os.fsync(handle.fileno())
        payload = {
            "format": CHECKPOINT_FORMAT,
            "format_version": CHECKPOINT_VERSION,
            "package_version": __version__,
            **config.to_dict(),
            "weights": {"file": WEIGHTS_NAME, "sha256": file_sha256(weights_path)},
        }
        write_json_atomic(staging / CONFIG_NAME, payload)
        _swap_in(staging, final)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return final


def recover_interrupted_save(final: str | os.PathLike) -> None:
    """Undo what a save killed mid-way left beside ``final``.

    A save stages a new folder, renames the current one to ``.NAME.old-*`` and
    the staged one into place. Killed between the renames, the previous
    checkpoint is the ``.old`` folder: it is renamed back. Staging folders of
    killed saves are removed.
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
