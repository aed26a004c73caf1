"""Backbones: any open_clip model, by name, with a pretrained tag, a local weights file, or none.

The package registers two small CLIP-architecture configs of its own with
open_clip: ``vlmrw-tiny`` (the offline default backbone, 64 px, 8M parameters)
and ``vlmrw-nano`` (32 px, for tests). Any other open_clip name works the same
way, e.g. ``BackboneSpec("ViT-B-16-SigLIP2", pretrained="webli")`` when the
weights can be downloaded, or ``pretrained="/path/open_clip_model.safetensors"``.

Images are preprocessed as batched uint8 tensors on the model's device (no
per-frame PIL round trip): resize to the tower's input size, scale, normalise
with the model's own mean and std.

Example:
    >>> spec = BackboneSpec("vlmrw-nano")                 # random init: tests only
    >>> backbone = load_backbone(spec)
    >>> frames = torch.zeros(2, 32, 32, 3, dtype=torch.uint8)
    >>> backbone.encode_images(frames).shape
    torch.Size([2, 32])
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

DEFAULT_BACKBONE_MODEL = "vlmrw-tiny"


class BackboneLoadError(RuntimeError):
    """A backbone's weights cannot be found or loaded; the message names them."""


@dataclass(frozen=True)
class BackboneSpec:
    """Which open_clip model and which weights.

    Args:
        model: an open_clip model name (``open_clip.list_models()``) or a
            package config (``vlmrw-tiny``, ``vlmrw-nano``).
        pretrained: an open_clip pretrained tag (needs the model hub), a path
            to a local weights file, or ``None`` for random initialisation.
        sha256: checksum of a local weights file, checked on load when given.
    """

    model: str = DEFAULT_BACKBONE_MODEL
    pretrained: str | None = None
    sha256: str | None = None

    @property
    def is_local_file(self) -> bool:
        return self.pretrained is not None and (os.sep in self.pretrained or Path(self.pretrained).suffix != "")

    @classmethod
    def from_file(cls, model: str, path: str | os.PathLike) -> BackboneSpec:
        """A spec for local weights, with their checksum recorded."""
        path = Path(path).resolve()
        if not path.is_file():
            raise BackboneLoadError(f"backbone weights {path} do not exist.")
        return cls(model=model, pretrained=str(path), sha256=file_sha256(path))


def file_sha256(path: str | os.PathLike) -> str:
    """SHA-256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


_registered = False


def register_package_configs() -> None:
    """Make the package's model configs known to open_clip (idempotent)."""
    global _registered
    if _registered:
        return
    import open_clip

    with resources.as_file(resources.files("vlm_reward_wrappers.models") / "configs") as folder:
        open_clip.add_model_config(folder)
    _registered = True


class Backbone(nn.Module):
    """An open_clip model with batched uint8 preprocessing and a tokenizer.

    Attributes:
        clip: the open_clip model (image and text towers, ``logit_scale``).
        spec: where its weights came from.
        image_size: the input size of the image tower.
    """

    clip: Any  # an open_clip CLIP, CustomTextCLIP or SigLIP model
    pixel_mean: torch.Tensor
    pixel_std: torch.Tensor

    def __init__(self, clip: nn.Module, tokenizer: Any, spec: BackboneSpec) -> None:
        super().__init__()
        self.clip = clip
        self.tokenizer = tokenizer
        self.spec = spec
        config = getattr(clip.visual, "preprocess_cfg", {}) or {}
        size = config.get("size", getattr(clip.visual, "image_size", 224))
        self.image_size: tuple[int, int] = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        mean = config.get("mean", (0.48145466, 0.4578275, 0.40821073))
        std = config.get("std", (0.26862954, 0.26130258, 0.27577711))
        self.register_buffer("pixel_mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("pixel_std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    @property
    def embed_dim(self) -> int:
        """Width of the joint embedding space."""
        output_dim = getattr(self.clip.visual, "output_dim", None)
        if output_dim is None:
            with torch.no_grad():
                output_dim = self.encode_text(["a"]).shape[-1]
        return int(output_dim)

    def preprocess(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """uint8 frames ``(B, H, W, 3)`` to a normalised float batch ``(B, 3, h, w)`` on the model's device."""
        device = self.pixel_mean.device
        images = torch.as_tensor(np.ascontiguousarray(frames) if isinstance(frames, np.ndarray) else frames).to(device)
        if images.dtype != torch.uint8 or images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                f"frames must be a uint8 array of shape (B, H, W, 3), got {tuple(images.shape)} {images.dtype}"
            )
        images = images.permute(0, 3, 1, 2).float().div_(255.0)
        height, width = images.shape[-2:]
        if height * self.image_size[1] != width * self.image_size[0]:
            warnings.warn(
                f"frames of {width}x{height} pixels are stretched to the backbone's {self.image_size[1]}x"
                f"{self.image_size[0]}, which changes their aspect ratio; crop them to that shape first",
                stacklevel=3,
            )
        if tuple(images.shape[-2:]) != self.image_size:
            images = F.interpolate(images, size=self.image_size, mode="bilinear", antialias=True, align_corners=False)
        return (images - self.pixel_mean) / self.pixel_std

    def encode_images(self, frames: torch.Tensor | np.ndarray) -> torch.Tensor:
        """Unnormalised image embeddings ``(B, D)`` of uint8 frames."""
        return self.clip.encode_image(self.preprocess(frames))

    def tokenize(self, texts: list[str]) -> torch.Tensor:
        return self.tokenizer(texts).to(self.pixel_mean.device)

    def encode_text(self, texts: list[str]) -> torch.Tensor:
        """Unnormalised text embeddings ``(B, D)``."""
        return self.clip.encode_text(self.tokenize(texts))


def cached_pretrained_file(spec: BackboneSpec) -> Path | None:
    """Where open_clip's Hugging Face cache holds the weights of a pretrained tag; found without the network.

    None when the tag is not a Hub tag of open_clip or its weights are not in the local cache.
    """
    import open_clip
    from huggingface_hub import try_to_load_from_cache

    if spec.pretrained is None or spec.is_local_file:
        return None
    hub = (open_clip.get_pretrained_cfg(spec.model, spec.pretrained) or {}).get("hf_hub", "")
    if not hub:
        return None
    repo_id, filename = os.path.split(hub)
    stem = Path(filename or "open_clip_pytorch_model.bin").stem
    for name in (f"{stem}.safetensors", "open_clip_model.safetensors", filename or "open_clip_pytorch_model.bin"):
        found = try_to_load_from_cache(repo_id, name)
        if isinstance(found, str):
            return Path(found)
    return None


def with_checksum(spec: BackboneSpec) -> BackboneSpec:
    """``spec`` with the checksum of its weights recorded when they can be found locally (a file, or a cached tag)."""
    if spec.sha256 is not None or spec.pretrained is None:
        return spec
    path = Path(spec.pretrained) if spec.is_local_file else cached_pretrained_file(spec)
    return BackboneSpec(spec.model, spec.pretrained, file_sha256(path)) if path and path.is_file() else spec


def check_cached_pretrained(spec: BackboneSpec) -> None:
    """Raise :class:`BackboneLoadError` when open_clip's cached weights of a tag differ from the recorded checksum."""
    cached = cached_pretrained_file(spec)
    if cached is not None and file_sha256(cached) != spec.sha256:
        raise BackboneLoadError(
            f"open_clip's cached weights {cached} for {spec.model} ({spec.pretrained}) are not the weights this "
            "checkpoint was trained on (their checksum differs): the tag's weights changed upstream. Delete that "
            "file to download them again, or use the original file with --backbone-weights PATH."
        )


class _DropRandomInitWarning(logging.Filter):
    """Drops open_clip's "No pretrained weights loaded" record, and only it."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("No pretrained weights loaded")


@contextlib.contextmanager
def _quiet_random_init_warning() -> Iterator[None]:
    """open_clip warns on the root logger when it builds a model without weights: silence that one message."""
    root, only_that = logging.getLogger(), _DropRandomInitWarning()
    root.addFilter(only_that)
    try:
        yield
    finally:
        root.removeFilter(only_that)


def load_backbone(spec: BackboneSpec, device: str | torch.device = "cpu") -> Backbone:
    """Build the open_clip model of ``spec`` and load its weights.

    Raises :class:`BackboneLoadError` naming the weights when they are missing,
    do not match their checksum, or do not fit the model.
    """
    import open_clip

    register_package_configs()
    known = set(open_clip.list_models())
    if spec.model not in known:
        import difflib

        close = difflib.get_close_matches(spec.model, sorted(known), n=3)
        raise BackboneLoadError(f"unknown open_clip model {spec.model!r}. Close names: {', '.join(close) or 'none'}.")
    if spec.is_local_file:
        path = Path(spec.pretrained)  # type: ignore[arg-type]
        if not path.is_file():
            raise BackboneLoadError(
                f"backbone weights {path} (for {spec.model}) do not exist. For the package's default backbone, "
                "re-create it with `vlm-rewards pretrain-backbone --data DIR`; for real pretrained weights, "
                "pass their path with --backbone-weights."
            )
        if spec.sha256 is not None and file_sha256(path) != spec.sha256:
            raise BackboneLoadError(
                f"backbone weights {path} do not match the checksum recorded for them (changed or corrupt)."
            )
    elif spec.pretrained is not None and spec.sha256 is not None:
        check_cached_pretrained(spec)
    try:
        with _quiet_random_init_warning():
            clip = open_clip.create_model(spec.model, pretrained=spec.pretrained, device=device)
    except Exception as error:
        raise BackboneLoadError(
            f"cannot load backbone {spec.model} with weights {spec.pretrained!r}: {error}"
        ) from error
    tokenizer = open_clip.get_tokenizer(spec.model)
    return Backbone(clip, tokenizer, spec).to(device)
