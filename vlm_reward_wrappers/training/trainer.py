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

from vlm_reward_wrappers.configs import check_choices, to_dict
from vlm_reward_wrappers.data.storage import DemoDataset
from vlm_reward_wrappers.metrics import ranking_accuracy
from vlm_reward_wrappers.models.adapters import FinetuneConfig, TrainableMode
from vlm_reward_wrappers.models.backbone import BackboneSpec, load_backbone
from vlm_reward_wrappers.models.checkpoint import WEIGHTS_NAME, recover_interrupted_save, write_checkpoint
from vlm_reward_wrappers.models.config import RewardModelConfig
from vlm_reward_wrappers.models.reward_model import RewardModel, in_batches
from vlm_reward_wrappers.objectives import EncodedBatch, get_objective
from vlm_reward_wrappers.tasks import ML45_TEST, expand_tasks, goal_text
from vlm_reward_wrappers.training import distributed
from vlm_reward_wrappers.training.batches import FrameStore, TrajectoryBatch, TrajectorySampler

STATE_NAME = "training_state.pt"
DEFAULT_LEARNING_RATES = {"lora": 5e-4, "heads": 1e-3, "full": 1e-4, "frozen": 0.0}


Trajectories = Literal["successful-experts", "all"]
"""Which training episodes are trajectories: successful expert episodes, or every episode."""

SelectBy = Literal["ranking_accuracy", "task_accuracy"]
"""The validation number that chooses the kept checkpoint."""


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
        max_steps: optimisation steps.
        learning_rate: AdamW learning rate (default by mode: lora 5e-4, heads 1e-3, full 1e-4).
        weight_decay: AdamW weight decay.
        eval_every: steps between validations and checkpoint writes.
        val_fraction: share of each task's episodes held out for validation.
        seed: seeds the split, the batches and the initialisation.
        tasks: training tasks (default: every task in the data except the ML45 test tasks).
        trajectories: ``successful-experts`` (default) or ``all`` episodes as trajectories.
        text_augmentation: draw goal-sentence paraphrases.
        select_by: ``ranking_accuracy`` or ``task_accuracy`` chooses the best checkpoint.
        val_frames_per_task: validation frames per task (evenly drawn).
    """

    objective: str = "triplet"
    objective_options: dict[str, Any] = field(default_factory=dict)
    finetune: TrainableMode = "lora"
    lora_rank: int = 8
    batch_size: int = 32
    max_steps: int = 300
    learning_rate: float | None = None
    weight_decay: float = 0.0
    eval_every: int = 50
    val_fraction: float = 0.15
    seed: int = 0
    tasks: tuple[str, ...] | None = None
    trajectories: Trajectories = "successful-experts"
    text_augmentation: bool = True
    select_by: SelectBy = "ranking_accuracy"
    val_frames_per_task: int = 400

    def __post_init__(self) -> None:
        check_choices(self)
        get_objective(self.objective, **self.objective_options)  # fails early with the list of objectives
        FinetuneConfig(mode=self.finetune, rank=self.lora_rank)
        if self.max_steps < 0 or self.batch_size < 1 or self.eval_every < 1:
            raise ValueError("max_steps must be >= 0, batch_size and eval_every >= 1")
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


def split_episodes(dataset: DemoDataset, tasks: list[str], val_fraction: float, seed: int) -> _Split:
    """Seeded per-task split of episode indices into train and validation."""
    rng = np.random.default_rng([seed, 7])
    train, val = [], []
    for task in tasks:
        indices = [i for i, e in enumerate(dataset.episodes) if e.task == task]
        rng.shuffle(indices)
        count = math.ceil(val_fraction * len(indices)) if len(indices) > 1 and val_fraction > 0 else 0
        val.extend(indices[:count])
        train.extend(indices[count:])
    return _Split(sorted(train), sorted(val))


def choose_tasks(dataset: DemoDataset, requested: tuple[str, ...] | None) -> list[str]:
    """Training tasks: the requested ones, or every task in the data but the ML45 test tasks."""
    if requested is None:
        return [task for task in dataset.tasks if task not in ML45_TEST]
    held_out = sorted(set(requested) & set(ML45_TEST))
    if held_out:
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
        episodes = np.concatenate([batch.episode for _ in slots])
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


@dataclass
class _Validation:
    frames: np.ndarray
    task: np.ndarray
    episode: np.ndarray
    gt_reward: np.ndarray


def _validation_frames(dataset: DemoDataset, episodes: list[int], per_task: int, seed: int) -> _Validation:
    rng = np.random.default_rng([seed, 11])
    frames, tasks, episode_ids, rewards = [], [], [], []
    by_task: dict[str, list[tuple[int, int]]] = {}
    for index in episodes:
        by_task.setdefault(dataset.episodes[index].task, []).extend(
            (index, s) for s in range(dataset.episodes[index].num_steps)
        )
    for task, pairs in by_task.items():
        chosen = sorted(rng.choice(len(pairs), size=min(per_task, len(pairs)), replace=False))
        for index in sorted({pairs[c][0] for c in chosen}):
            steps = [pairs[c][1] for c in chosen if pairs[c][0] == index]
            frames.append(dataset.read_frames(index, steps))
            tasks.extend([task] * len(steps))
            episode_ids.extend([index] * len(steps))
            rewards.append(dataset.episodes[index].gt_reward[steps])
    if not frames:
        return _Validation(np.zeros((0, 1, 1, 3), np.uint8), np.array([]), np.array([]), np.array([]))
    return _Validation(np.concatenate(frames), np.array(tasks), np.array(episode_ids), np.concatenate(rewards))


@torch.no_grad()
def _rewards_by_task(model: RewardModel, frames: np.ndarray, tasks: np.ndarray) -> tuple[np.ndarray, torch.Tensor]:
    features = in_batches(model.encode_images, frames)
    return model.rewards_for_goals(features, [model.config.goal_for(str(task)) for task in tasks]), features


@torch.no_grad()
def validate(model: RewardModel, validation: _Validation, train_tasks: list[str]) -> dict[str, float | None]:
    """Ranking accuracy of the reward and task-identification accuracy on validation frames."""
    if len(validation.frames) == 0:
        return {"ranking_accuracy": None, "task_accuracy": None}
    model.eval()
    try:
        rewards, features = _rewards_by_task(model, validation.frames, validation.task)
        accuracy = ranking_accuracy(rewards, validation.gt_reward, validation.task, validation.episode)
        goals = torch.stack([model.goal_embedding(model.config.goal_for(t)) for t in train_tasks])
        similarities = nn.functional.normalize(features, dim=-1) @ nn.functional.normalize(goals, dim=-1).T
        predicted = np.array(train_tasks)[similarities.argmax(dim=1).cpu().numpy()]
        task_accuracy = float(np.mean(predicted == validation.task))
    finally:
        model.train()
    return {"ranking_accuracy": accuracy.overall, "task_accuracy": task_accuracy}


@torch.no_grad()
def reward_statistics(
    model: RewardModel, dataset: DemoDataset, episodes: list[int], seed: int, max_frames: int = 2000
) -> dict[str, float]:
    """Mean and std of the model's rewards on (a sample of) its training frames."""
    sample = _validation_frames(
        dataset, episodes, max(1, max_frames // max(1, len({dataset.episodes[i].task for i in episodes}))), seed + 1
    )
    if len(sample.frames) == 0:
        return {"mean": 0.0, "std": 1.0}
    model.eval()
    rewards, _ = _rewards_by_task(model, sample.frames, sample.task)
    model.train()
    return {"mean": float(rewards.mean()), "std": float(max(rewards.std(), 1e-6))}


@torch.no_grad()
def cache_backbone_features(
    model: RewardModel, dataset: DemoDataset, episodes: list[int], batch_size: int = 256
) -> dict[int, torch.Tensor]:
    """Backbone image embeddings of every frame of the episodes (a frozen backbone needs them once)."""
    return {
        index: in_batches(model.backbone_image_features, dataset.read_frames(index), batch_size) for index in episodes
    }


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
    rank, world_size = distributed.setup()
    if config.batch_size < world_size:
        raise ValueError(
            f"batch_size {config.batch_size} is smaller than the {world_size} processes: each process needs at "
            "least one trajectory"
        )
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and world_size > 1:
        device = f"cuda:{rank % torch.cuda.device_count()}"
    dataset = DemoDataset(data)
    tasks = choose_tasks(dataset, config.tasks)
    split = split_episodes(dataset, tasks, config.val_fraction, config.seed)
    objective = get_objective(config.objective, **config.objective_options)
    finetune = FinetuneConfig(mode=config.finetune if objective.trains else "frozen", rank=config.lora_rank)
    model_config = RewardModelConfig(
        backbone=backbone,
        finetune=finetune,
        objective=objective.config(),
        goal_texts={task: goal_text(task) for task in tasks},
        camera=dataset.camera,
        image_size=dataset.image_size,
    )
    torch.manual_seed(config.seed)
    model = RewardModel(model_config, load_backbone(backbone, device=device)).to(device)
    model.train()

    trajectories = [i for i in split.train if config.trajectories == "all" or dataset.episodes[i].is_successful_expert]
    if objective.trains and not trajectories:
        raise ValueError(
            f"no successful expert episodes among the training episodes of {', '.join(tasks)}; collect more "
            "expert episodes."
        )
    validation = _validation_frames(dataset, split.val, config.val_frames_per_task, config.seed)

    state = _load_state(out, config, overwrite) if rank == 0 else None
    distributed.barrier()  # rank 0 may have cleared the folder (overwrite) before the others read it
    if rank != 0:
        state = _load_state(out, config, overwrite=False)
    history: list[dict[str, Any]] = state["history"] if state else []
    start_step = state["step"] if state else 0
    best: dict[str, Any] = state["best"] if state else {"metric": -math.inf, "step": 0, "validation": {}}
    best_weights: dict[str, torch.Tensor] = _read_best_weights(out) if state else {}
    parameters = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.lr, weight_decay=config.weight_decay) if parameters else None
    if state:
        model.load_state_dict(state["model"], strict=False)
        if optimizer is not None:
            optimizer.load_state_dict(state["optimizer"])

    summary_base = {
        "config": to_dict(config),
        "data": str(Path(data).resolve()),
        "tasks": tasks,
        "train_episodes": len(split.train),
        "val_episodes": len(split.val),
        "trajectories": len(trajectories),
    }

    def save(step: int, final: bool = False) -> None:
        """Validate, keep the best weights, and write the checkpoint with the resumable state."""
        nonlocal best_weights
        if not history or history[-1]["step"] != step:
            metrics = validate(model, validation, tasks)
            history.append({"step": step, **metrics})
            score = metrics[config.select_by]
            if not best_weights or (score is not None and score > best["metric"]):
                best.update(metric=score if score is not None else -math.inf, step=step, validation=metrics)
                best_weights = model.weights_to_save()
        last = {
            "config": config.resume_key(),
            "step": step,
            "model": _trainable_state(model),
            "optimizer": optimizer.state_dict() if optimizer is not None else {},
            "best": best,
            "history": history,
        }
        if final:  # reward statistics of the best weights, on training frames
            model.load_state_dict(best_weights, strict=False)
            model_config.reward_stats = reward_statistics(model, dataset, split.train, config.seed)
        model_config.training = {
            **summary_base,
            "steps": step,
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
        dataset, trajectories, config.batch_size, config.seed, text_augmentation=config.text_augmentation
    )
    frames = FrameStore(dataset, trajectories) if finetune.mode != "heads" else None
    cache = cache_backbone_features(model, dataset, trajectories) if finetune.mode == "heads" else None
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
        for step in range(start_step, config.max_steps):
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
                    bar.set_postfix(
                        loss=f"{float(loss.detach()):.4f}",
                        val=f"{history[-1][config.select_by]}",
                        best=f"{best['metric']:.3f}",
                    )
                distributed.barrier()
        if rank == 0:
            save(max(start_step, config.max_steps), final=True)
        distributed.barrier()
    finally:
        bar.close()
        distributed.teardown()
    return RewardModel.from_pretrained(out, device=device)


def _load_state(out: Path, config: TrainConfig, overwrite: bool) -> dict[str, Any] | None:
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
    return state


def _read_best_weights(out: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(out / WEIGHTS_NAME))
