"""Training a reward model with one objective: same backbone, same batches, same budget.

* Train/validation split by episode (seeded, per task).
* Batch ``k`` depends only on ``(seed, k)`` (:mod:`.batches`), so every
  objective sees the same data and a resumed run continues exactly.
* Validation ranking accuracy every ``eval_every`` steps; the checkpoint folder
  always holds the best weights so far, together with the state needed to
  resume (``training_state.pt``: last weights, optimizer, step, history).
* A non-finite loss stops training with an error before anything is written.
* Under ``torchrun`` it trains with DistributedDataParallel (gloo on CPU, nccl
  on GPU); each process takes a shard of every batch, rank 0 validates and saves.

Example:
    >>> config = TrainConfig(objective="triplet", max_steps=200)
    >>> model = train(config, "data/quick", "runs/triplet")     # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from vlm_reward_wrappers.configs import check_choices, resolve_device, to_dict
from vlm_reward_wrappers.data.storage import DemoDataset, config_id
from vlm_reward_wrappers.locking import writing
from vlm_reward_wrappers.models.adapters import FinetuneConfig, TrainableMode
from vlm_reward_wrappers.models.backbone import BackboneSpec, load_backbone
from vlm_reward_wrappers.models.checkpoint import WEIGHTS_NAME, recover_interrupted_save, write_checkpoint
from vlm_reward_wrappers.models.config import RewardModelConfig
from vlm_reward_wrappers.models.features import backbone_features
from vlm_reward_wrappers.models.reward_model import RewardModel
from vlm_reward_wrappers.objectives import EncodedBatch, get_objective
from vlm_reward_wrappers.tasks import ML45_TEST, expand_tasks, goal_text
from vlm_reward_wrappers.training import distributed
from vlm_reward_wrappers.training.batches import FrameStore, TrajectoryBatch, TrajectorySampler
from vlm_reward_wrappers.training.calibration import calibration_frames, progress_calibration
from vlm_reward_wrappers.training.plateau import has_flattened
from vlm_reward_wrappers.training.validation import (
    goal_image_embeddings,
    monitor,
    reward_statistics,
    validation_frames,
    validation_loss,
)

STATE_NAME = "training_state.pt"
STATISTICS_FRAMES = 2000
"""Training frames (at most) the reward statistics are measured on."""
DEFAULT_LEARNING_RATES = {"lora": 5e-4, "heads": 1e-3, "full": 1e-4, "frozen": 0.0}


Trajectories = Literal["successful-experts", "all"]
"""Which training episodes are trajectories: successful expert episodes, or every episode."""

SelectBy = Literal["validation_loss", "final"]
"""Which weights the checkpoint keeps: those with the lowest validation loss of the objective itself, or the last.
Never chosen by ground-truth rewards."""


class NonFiniteLossError(RuntimeError):
    """The loss became NaN or infinite; the last good checkpoint was kept."""


class RunMismatchError(ValueError):
    """The output folder holds a training run with another configuration."""


@dataclass
class TrainConfig:
    """One training run.

    Args:
        objective: objective name (``vlm_reward_wrappers.objectives.available_objectives()``).
        objective_options: its hyper-parameters (``--objective-options margin=0.2 goal=language``).
        finetune: ``lora``, ``heads`` (frozen backbone, cached embeddings) or ``full``.
        lora_rank: LoRA rank.
        batch_size: trajectories per step (frames per step: batch size x the objective's slots).
        max_steps: optimisation steps (the cap, when ``min_steps`` is set).
        min_steps: when set, training stops at the first validation from this step on at which the validation
            loss has flattened (:func:`~vlm_reward_wrappers.training.plateau.has_flattened`): each objective
            trains as long as its own loss asks, up to ``max_steps``. Unset: exactly ``max_steps`` steps.
        learning_rate: AdamW learning rate (default by mode: lora 5e-4, heads 1e-3, full 1e-4).
        weight_decay: AdamW weight decay.
        eval_every: steps between validations and checkpoint writes.
        val_fraction: share of each task's episodes held out for validation.
        seed: seeds the split, the batches and the initialisation.
        tasks: training tasks (default: every task in the data except the ML45 test tasks).
        trajectories: ``successful-experts`` (default) or ``all`` episodes as trajectories.
        text_augmentation: draw goal-sentence paraphrases.
        select_by: ``validation_loss`` keeps the weights with the lowest loss of the objective on
            validation trajectories; ``final`` keeps the last weights.
        val_frames_per_task: validation frames per task for the monitoring numbers (evenly drawn).
        val_batches: fixed batches of validation trajectories the validation loss averages.
        episodes_per_task: train on the first N successful expert episodes of each task only (default: all
            episodes): the demonstrations of ``vlm-rewards adapt``.
        init_from: a checkpoint to start from (``vlm-rewards adapt``): its trained weights and its tasks' goal
            sentences; the tasks trained on may then be ML45 test tasks. The backbone must be the checkpoint's.
            Goal images are stored for the tasks trained on only.
        store_rewards: at the end, compute and store the goal images, reward statistics and progress calibration
            of the kept weights (False for a run whose backbone alone is kept: pretraining).
    """

    objective: str = "triplet"
    objective_options: dict[str, Any] = field(default_factory=dict)
    finetune: TrainableMode = "lora"
    lora_rank: int = 8
    batch_size: int = 32
    max_steps: int = 300
    min_steps: int | None = None
    learning_rate: float | None = None
    weight_decay: float = 0.0
    eval_every: int = 50
    val_fraction: float = 0.15
    seed: int = 0
    tasks: tuple[str, ...] | None = None
    trajectories: Trajectories = "successful-experts"
    text_augmentation: bool = True
    select_by: SelectBy = "validation_loss"
    val_frames_per_task: int = 400
    val_batches: int = 4
    episodes_per_task: int | None = None
    init_from: str | None = None
    store_rewards: bool = True

    def __post_init__(self) -> None:
        check_choices(self)
        get_objective(self.objective, **self.objective_options)  # fails early with the list of objectives
        FinetuneConfig(mode=self.finetune, rank=self.lora_rank)
        if self.max_steps < 0 or self.batch_size < 1 or self.eval_every < 1:
            raise ValueError("max_steps must be >= 0, batch_size and eval_every >= 1")
        if self.min_steps is not None and self.min_steps < 1:
            raise ValueError(f"min_steps must be >= 1 (or unset), not {self.min_steps}")
        if self.tasks is not None:
            self.tasks = expand_tasks(self.tasks)

    @property
    def lr(self) -> float:
        return self.learning_rate if self.learning_rate is not None else DEFAULT_LEARNING_RATES[self.finetune]

    def resume_key(self) -> dict[str, Any]:
        """Fields a resumed run must share with the run it continues (``max_steps`` may grow)."""
        data = to_dict(self)
        data.pop("max_steps")
        return data


@dataclass
class _Split:
    train: list[int]
    val: list[int]


def split_episodes(
    dataset: DemoDataset, tasks: list[str], val_fraction: float, seed: int, episodes_per_task: int | None = None
) -> _Split:
    """Seeded per-task split of episode indices into train and validation.

    With ``episodes_per_task``, only the first that many successful expert episodes of each task are split.
    """
    rng = np.random.default_rng([seed, 7])
    train, val = [], []
    for task in tasks:
        indices = [i for i, e in enumerate(dataset.episodes) if e.task == task]
        if episodes_per_task is not None:
            indices = [i for i in indices if dataset.episodes[i].is_successful_expert][:episodes_per_task]
        rng.shuffle(indices)
        count = math.ceil(val_fraction * len(indices)) if len(indices) > 1 and val_fraction > 0 else 0
        val.extend(indices[:count])
        train.extend(indices[count:])
    return _Split(sorted(train), sorted(val))


def choose_tasks(dataset: DemoDataset, requested: tuple[str, ...] | None, *, adapting: bool = False) -> list[str]:
    """Training tasks: the requested ones, or every task in the data but the ML45 test tasks (unless adapting)."""
    if requested is None:
        return [task for task in dataset.tasks if adapting or task not in ML45_TEST]
    held_out = sorted(set(requested) & set(ML45_TEST))
    if held_out and not adapting:
        raise ValueError(
            f"{', '.join(held_out)} are ML45 test tasks, held out from every training stage; train on other tasks."
        )
    missing = sorted(set(requested) - set(dataset.tasks))
    if missing:
        raise ValueError(
            f"the data in {dataset.root} has no episodes of {', '.join(missing)}; it has {', '.join(dataset.tasks)}."
        )
    return list(requested)


class TrainingStep(nn.Module):
    """Encodes a batch and returns the objective's loss: the module DDP wraps."""

    def __init__(
        self, model: RewardModel, frames: FrameStore | None, feature_cache: dict[int, torch.Tensor] | None
    ) -> None:
        """``frames`` when images are encoded from frames, ``feature_cache`` when a frozen backbone's are cached."""
        super().__init__()
        self.model = model
        self.frames = frames
        self.feature_cache = feature_cache

    def forward(self, batch: TrajectoryBatch) -> tuple[torch.Tensor, dict[str, float]]:
        model = self.model
        slots = model.objective.slots
        episodes = np.concatenate([batch.episodes_of(slot) for slot in slots])
        steps = np.concatenate([batch.steps[slot] for slot in slots])
        if self.feature_cache is not None:
            features = torch.stack([self.feature_cache[int(e)][int(s)] for e, s in zip(episodes, steps, strict=False)])
            images = model.image_head(features)
        else:
            assert self.frames is not None  # frames are given whenever no features are cached
            images = model.encode_images(self.frames.gather(episodes, steps))
        per_slot = dict(zip(slots, images.split(len(batch.episode)), strict=False))
        device = images.device
        scale = model.backbone.clip.logit_scale.exp().clamp(max=100.0)
        encoded = EncodedBatch(
            images=per_slot,
            texts=model.encode_text(batch.texts),
            text_index=torch.as_tensor(batch.text_index, device=device),
            text_task=torch.as_tensor(batch.text_task, device=device),
            task=torch.as_tensor(batch.task, device=device),
            steps={slot: torch.as_tensor(values, device=device) for slot, values in batch.steps.items()},
            length=torch.as_tensor(batch.length, device=device),
            first_success=torch.as_tensor(batch.first_success, device=device),
            logit_scale=scale,
        )
        return model.objective.loss(encoded)


def _trainable_state(model: RewardModel) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.named_parameters() if p.requires_grad}


def train(
    config: TrainConfig,
    data: str | os.PathLike,
    out: str | os.PathLike,
    *,
    backbone: BackboneSpec,
    device: str | None = None,
    progress: bool = True,
    overwrite: bool = False,
) -> RewardModel:
    """Train a reward model on ``backbone`` and write its checkpoint folder ``out``; return the best model.

    Re-running the same call after an interruption resumes from the last
    checkpoint and ends where an uninterrupted run would. For the package's
    own backbone, get its spec from
    :func:`~vlm_reward_wrappers.training.pretrain.default_backbone` first.
    """
    out = Path(out)
    device = resolve_device(device)
    rank, world_size = distributed.setup()
    with writing(out) if rank == 0 else contextlib.nullcontext():  # one writer: a second train on --out waits
        return _train(config, data, out, backbone, device, progress, overwrite, rank, world_size)


def _train(
    config: TrainConfig,
    data: str | os.PathLike,
    out: Path,
    backbone: BackboneSpec,
    device: str,
    progress: bool,
    overwrite: bool,
    rank: int,
    world_size: int,
) -> RewardModel:
    """:func:`train`, by the process that holds the lock of ``out`` (or a DDP process of lower rank)."""
    if config.batch_size < world_size:
        raise ValueError(
            f"batch_size {config.batch_size} is smaller than the {world_size} processes: each process needs at "
            "least one trajectory"
        )
    if device == "cuda" and world_size > 1:
        device = f"cuda:{rank % torch.cuda.device_count()}"
    dataset = DemoDataset(data)
    tasks = choose_tasks(dataset, config.tasks, adapting=config.init_from is not None)
    split = split_episodes(dataset, tasks, config.val_fraction, config.seed, config.episodes_per_task)
    objective = get_objective(config.objective, **config.objective_options)
    finetune = FinetuneConfig(mode=config.finetune if objective.trains else "frozen", rank=config.lora_rank)
    base = RewardModel.from_pretrained(config.init_from, device=device) if config.init_from else None
    if base is not None and base.config.backbone != backbone:
        raise ValueError(f"adapting {config.init_from}: train on its own backbone, {base.config.backbone.model}")
    model_config = RewardModelConfig(
        backbone=backbone,
        finetune=finetune,
        objective=objective.config(),
        goal_texts={**(base.config.goal_texts if base else {}), **{task: goal_text(task) for task in tasks}},
        camera=dataset.camera,
        image_size=dataset.image_size,
    )
    torch.manual_seed(config.seed)
    model = RewardModel(model_config, load_backbone(backbone, device=device)).to(device)
    if base is not None:  # start from its weights (its goal images belong to its old weights: not kept)
        model.load_state_dict({k: v for k, v in base.weights_to_save().items() if k != "goal_images"}, strict=False)
    model.train()

    trajectories = [i for i in split.train if config.trajectories == "all" or dataset.episodes[i].is_successful_expert]
    if objective.trains and not trajectories:
        raise ValueError(
            f"no successful expert episodes among the training episodes of {', '.join(tasks)}; collect more "
            "expert episodes."
        )
    frozen = finetune.mode in ("heads", "frozen")  # a frozen backbone: its features of every frame, computed once
    validation = validation_frames(dataset, split.val, config.val_frames_per_task, config.seed, read_frames=not frozen)
    per_task = max(1, STATISTICS_FRAMES // max(1, len(tasks)))
    training_sample = validation_frames(  # for reward statistics
        dataset, split.train, per_task, config.seed + 1, read_frames=not frozen
    )
    calibration_first, calibration_success = calibration_frames(  # scored only when the run stores its rewards
        dataset, split.train if config.store_rewards else [], read_frames=not frozen
    )
    all_features: dict[int, torch.Tensor] = {}
    if frozen:
        all_features = backbone_features(model, dataset, range(len(dataset)))
        for sample in (validation, training_sample, calibration_first, calibration_success):
            sample.use_features(all_features)
    val_trajectories = [
        i for i in split.val if config.trajectories == "all" or dataset.episodes[i].is_successful_expert
    ]
    uses_failures = "failure" in objective.slots  # episodes that never succeed, for the failure slot
    failures, val_failures = (
        [i for i in part if uses_failures and dataset.episodes[i].first_success_step < 0]
        for part in (split.train, split.val)
    )

    data_fingerprint = dataset.fingerprint()
    state = _load_state(out, config, data_fingerprint, overwrite) if rank == 0 else None
    distributed.barrier()  # rank 0 may have cleared the folder (overwrite) before the others read it
    if rank != 0:
        state = _load_state(out, config, data_fingerprint, overwrite=False)
    history: list[dict[str, Any]] = state["history"] if state else []
    start_step = state["step"] if state else 0
    plateau_step = start_step if _stops_at(config, start_step, history) else None  # a run resumed at its plateau
    best: dict[str, Any] = state["best"] if state else {"metric": math.inf, "step": 0, "validation": {}}
    best_weights: dict[str, torch.Tensor] = _read_best_weights(out) if state else {}
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay) if parameters else None
    if state:
        model.load_state_dict(state["model"], strict=False)
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])

    validation_batches: list[TrajectoryBatch] = []
    if objective.trains and val_trajectories:  # fixed batches: the loss of one set of weights is one number
        val_sampler = TrajectorySampler(
            dataset,
            val_trajectories,
            config.batch_size,
            config.seed + 1,
            text_augmentation=False,
            failures=val_failures,
        )
        validation_batches = [val_sampler.batch(k) for k in range(config.val_batches)]

    summary_base = {
        "config": to_dict(config),
        # what the data was, not where it lay: a checkpoint holds no absolute path
        "data": {"folder": Path(data).resolve().name, "collections": [config_id(c) for c in dataset.collections]},
        "tasks": tasks,
        "train_episodes": len(split.train),
        "val_episodes": len(split.val),
        "trajectories": len(trajectories),
    }

    def measure() -> dict[str, Any]:
        """The objective's validation loss (which selects) and the monitoring numbers (which do not)."""
        loss = validation_loss(validation_step, model, validation_batches) if objective.trains else None
        return {"validation_loss": loss, **monitor(model, validation, tasks)}

    def save(step: int, final: bool = False) -> None:
        """Validate, keep the selected weights, and write the checkpoint with the resumable state."""
        nonlocal best_weights
        if not history or history[-1]["step"] != step:
            metrics = measure()
            history.append({"step": step, **metrics})
            loss = metrics["validation_loss"]
            keep = config.select_by == "final" or loss is None or loss < best["metric"]
            if not best_weights or keep:
                best.update(metric=loss if loss is not None else math.inf, step=step, validation=metrics)
                best_weights = model.weights_to_save()
        last = {
            "config": config.resume_key(),
            "data": data_fingerprint,
            "step": step,
            "model": _trainable_state(model),
            "optimizer": optimizer.state_dict() if optimizer is not None else {},
            "best": best,
            "history": history,
        }
        if final and config.store_rewards:  # goal images, reward statistics, progress calibration, on training frames
            model.load_state_dict(best_weights, strict=False)
            model.set_goal_images(goal_image_embeddings(model, dataset, split.train, all_features or None))
            model_config.reward_stats = reward_statistics(model, training_sample, native=False)
            model_config.image_reward_stats = reward_statistics(model, training_sample, native=True)
            model_config.progress_calibration = progress_calibration(model, calibration_first, calibration_success)
            best_weights = model.weights_to_save()
        model_config.training = {
            **summary_base,
            "steps": step,
            "stopped": "plateau" if plateau_step is not None else "max_steps",
            "best_step": best["step"],
            "best_validation": best["validation"],
            "history": history,
        }
        write_checkpoint(out, model_config, best_weights, {STATE_NAME: lambda path: torch.save(last, path)})

    if not objective.trains:
        if rank == 0:
            save(0, final=True)
        distributed.barrier()
        distributed.teardown()
        return RewardModel.from_pretrained(out, device=device)

    assert optimizer is not None  # an objective that trains has parameters to train
    sampler = TrajectorySampler(
        dataset,
        trajectories,
        config.batch_size,
        config.seed,
        text_augmentation=config.text_augmentation,
        failures=failures,
    )
    encoded = trajectories + val_trajectories + failures + val_failures
    frames = FrameStore(dataset, encoded) if finetune.mode != "heads" else None
    cache = {index: all_features[index] for index in encoded} if finetune.mode == "heads" else None
    validation_step = TrainingStep(model, frames, cache)  # measure() uses it from the first validation on
    step_module = distributed.wrap(TrainingStep(model, frames, cache), device)
    frames_per_step = config.batch_size * len(objective.slots)
    bar = tqdm(
        total=config.max_steps,
        initial=start_step,
        desc=f"train {objective.name}",
        unit="step",
        disable=not progress or rank != 0,
    )
    started, done = time.perf_counter(), 0
    try:
        for step in range(start_step, config.max_steps if plateau_step is None else start_step):
            batch = sampler.batch(step).shard(rank, world_size)
            loss, parts = step_module(batch)
            if not distributed.all_finite(loss):
                raise NonFiniteLossError(
                    f"the {objective.name} loss became {float(loss.detach())} at step {step} ({json.dumps(parts)}); "
                    f"training stopped and the last good checkpoint in {out} was kept. Lower the learning rate "
                    f"(now {config.lr}) or check the data."
                )
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, 1.0)
            optimizer.step()
            if not distributed.all_finite(torch.stack([p.detach().abs().max() for p in parameters])):
                raise NonFiniteLossError(
                    f"the weights became non-finite at step {step} of {objective.name}; training stopped and the last "
                    f"good checkpoint in {out} was kept. Lower the learning rate (now {config.lr})."
                )
            done += 1
            bar.update(1)
            bar.set_postfix(
                loss=f"{float(loss.detach()):.4f}",
                fps=f"{done * frames_per_step / (time.perf_counter() - started):.0f}",
            )
            if (step + 1) % config.eval_every == 0 and step + 1 < config.max_steps:
                if rank == 0:
                    save(step + 1)
                    validated = history[-1]["validation_loss"]  # None without validation trajectories
                    shown = "n/a" if validated is None else f"{validated:.4f}"
                    bar.set_postfix(loss=f"{float(loss.detach()):.4f}", val=shown)
                if distributed.any_process(rank == 0 and _stops_at(config, step + 1, history), device):
                    plateau_step = step + 1
                    break
                distributed.barrier()
        if rank == 0:
            save(plateau_step or max(start_step, config.max_steps), final=True)
        distributed.barrier()
    finally:
        bar.close()
        distributed.teardown()
    return RewardModel.from_pretrained(out, device=device)


def _stops_at(config: TrainConfig, step: int, history: list[dict[str, Any]]) -> bool:
    """Whether a run with ``min_steps`` stops at ``step`` (a validation step before the cap): its curve has
    flattened. The same answer on a resumed run, which continues from its last validation."""
    reached = config.min_steps is not None and config.min_steps <= step < config.max_steps
    return reached and bool(history) and history[-1]["step"] == step and has_flattened(history)


def _load_state(out: Path, config: TrainConfig, data_fingerprint: str, overwrite: bool) -> dict[str, Any] | None:
    path = out / STATE_NAME
    recover_interrupted_save(out)
    if not out.exists():
        return None
    if overwrite:
        import shutil

        shutil.rmtree(out)
        return None
    if not path.exists():
        if any(out.iterdir()):
            raise RunMismatchError(
                f"{out} exists and holds no resumable training run; choose another --out or pass --overwrite."
            )
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:
        raise RunMismatchError(
            f"the training state {path} cannot be read ({error}); pass --overwrite to start again."
        ) from error
    if state["config"] != config.resume_key():
        changed = sorted(k for k in state["config"] if state["config"][k] != config.resume_key().get(k))
        raise RunMismatchError(
            f"{out} holds a run with another configuration (differs in: {', '.join(changed)}); pass "
            "--overwrite or choose another --out."
        )
    if state.get("data", data_fingerprint) != data_fingerprint:  # a state written before this check has none
        raise RunMismatchError(
            f"{out} holds a run trained on other data: the dataset's episodes are not the ones that run split "
            "and trained on (episodes were added, removed or recorded again); pass --overwrite or choose another "
            "--out."
        )
    return state


def _read_best_weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / WEIGHTS_NAME))
