"""The offline default backbone: a small CLIP trained contrastively on Meta-World frames.

No web-pretrained CLIP or SigLIP weights can be downloaded on an offline
machine, so the package trains its own: the ``vlmrw-tiny`` config (64 px,
8M parameters), from random weights, on the frames of the *training* tasks
only (never the ML45 test tasks), with two losses: the CLIP loss on (frame,
task sentence) pairs, which teaches which task a frame shows, and a
time-contrastive InfoNCE from each frame to the next frame of its episode,
which keeps where in the episode it is (the caption loss alone discards it:
every frame of a task has the same positive sentence). It is not
web-pretrained and does not know language beyond the sentences it saw.

It is cached under ``$VLM_REWARDS_CACHE`` (default ``~/.cache/vlm_reward_wrappers``),
keyed by the data and the pretraining config, and trained once.

Example:
    >>> spec = default_backbone("data/quick")          # doctest: +SKIP
    >>> spec.pretrained                                 # doctest: +SKIP
    '/root/.cache/vlm_reward_wrappers/backbones/vlmrw-tiny-3f2a.../open_clip_model.safetensors'
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from safetensors.torch import save_file

from vlm_reward_wrappers.configs import from_dict, to_dict
from vlm_reward_wrappers.data.storage import DemoDataset
from vlm_reward_wrappers.io_utils import atomic_path, cache_dir, read_json, write_json_atomic
from vlm_reward_wrappers.models.backbone import DEFAULT_BACKBONE_MODEL, BackboneSpec
from vlm_reward_wrappers.training.trainer import TrainConfig, choose_tasks, train

BACKBONE_WEIGHTS = "open_clip_model.safetensors"
BACKBONE_INFO = "backbone.json"
PRETRAIN_MONITOR_FRAMES = 50
"""Validation frames per task for pretraining's monitoring numbers: only its validation loss selects, so few do."""


@dataclass(frozen=True)
class PretrainConfig:
    """Budget and settings of backbone pretraining.

    Args:
        model: the open_clip config to train from random weights (vlmrw-tiny; vlmrw-nano for tests).
        max_steps: optimisation steps.
        batch_size: (frame, sentence) pairs per step.
        learning_rate: AdamW learning rate.
        seed: seeds the batches and the initialisation.
        time_contrastive: weight of the time-contrastive image loss beside the caption loss (0: caption only;
            see :class:`~vlm_reward_wrappers.objectives.clip.CLIPContrastive`).
    """

    model: str = DEFAULT_BACKBONE_MODEL
    max_steps: int = 300
    batch_size: int = 128
    learning_rate: float = 5e-4
    seed: int = 0
    time_contrastive: float = 1.0


def _backbone_key(dataset: DemoDataset, tasks: tuple[str, ...], config: PretrainConfig) -> str:
    payload = json.dumps(
        {"collections": dataset.collections, "tasks": sorted(tasks), "config": to_dict(config)}, sort_keys=True
    )
    return hashlib.sha1(payload.encode()).hexdigest()[:12]


def pretrain_backbone(
    data: str | os.PathLike,
    out: str | os.PathLike | None = None,
    *,
    tasks: tuple[str, ...] | None = None,
    config: PretrainConfig = PretrainConfig(),
    progress: bool = True,
) -> BackboneSpec:
    """Train (or find in the cache) the contrastive backbone for ``data``; return its spec.

    Args:
        data: dataset folder; its training tasks (all but the ML45 test tasks,
            or ``tasks``) supply the (frame, sentence) pairs.
        out: folder for the backbone (default: the cache).
        tasks: restrict to these training tasks.
        config: pretraining budget.
        progress: show progress bars.
    """
    dataset = DemoDataset(data)
    chosen = tuple(choose_tasks(dataset, tasks))
    key = _backbone_key(dataset, chosen, config)
    folder = Path(out) if out is not None else cache_dir() / "backbones" / f"{config.model}-{key}"
    weights = folder / BACKBONE_WEIGHTS
    if weights.is_file() and (folder / BACKBONE_INFO).is_file():
        info = read_json(folder / BACKBONE_INFO)
        if info.get("key") != key:
            raise ValueError(
                f"{folder} holds a backbone pretrained on other data or with another config; "
                "choose another --out or delete that folder."
            )
        return from_dict(BackboneSpec, info["spec"])
    run = folder / "run"
    train_config = TrainConfig(
        objective="clip",
        objective_options={"time_contrastive": config.time_contrastive} if config.time_contrastive else {},
        finetune="full",
        batch_size=config.batch_size,
        max_steps=config.max_steps,
        learning_rate=config.learning_rate,
        eval_every=max(25, config.max_steps // 4),
        seed=config.seed,
        tasks=chosen,
        trajectories="all",
        select_by="validation_loss",
        val_frames_per_task=PRETRAIN_MONITOR_FRAMES,
        store_rewards=False,  # only the backbone is kept
    )
    model = train(train_config, data, run, backbone=BackboneSpec(config.model, pretrained=None), progress=progress)
    prefix = "backbone.clip."
    state = {
        name[len(prefix) :]: tensor.contiguous()
        for name, tensor in model.state_dict().items()
        if name.startswith(prefix)
    }
    with atomic_path(weights, suffix=".safetensors") as temporary:
        save_file(state, str(temporary))
    spec = BackboneSpec.from_file(config.model, weights)
    info = {
        "key": key,
        "spec": to_dict(spec),
        "pretrain": to_dict(config),
        "data": str(Path(data).resolve()),
        "tasks": list(chosen),
        "validation": model.config.training.get("best_validation"),
        "note": "trained from random weights on Meta-World frames and task sentences; not web-pretrained",
    }
    write_json_atomic(folder / BACKBONE_INFO, info)
    return spec


def default_backbone(
    data: str | os.PathLike, *, tasks: tuple[str, ...] | None = None, progress: bool = True
) -> BackboneSpec:
    """The default backbone for a dataset: cached, pretrained with :class:`PretrainConfig` defaults on first use."""
    return pretrain_backbone(data, tasks=tasks, progress=progress)
