"""Training throughput of each finetuning mode on the default backbone, measured in one run.

For ``lora``, ``full`` and ``heads`` (frozen backbone, image embeddings cached
once) it times optimisation steps of the triplet objective on the same batches
and prints training frames/s; the last line is the ratio of cached-embedding
head training to LoRA training.

    python benchmarks/train_speed.py                 # collects a small dataset in a temp folder
    python benchmarks/train_speed.py --data runs/quick/data/train
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import torch

from vlm_reward_wrappers.data import CollectionConfig, DemoDataset, collect
from vlm_reward_wrappers.models import BackboneSpec, FinetuneConfig, RewardModel, RewardModelConfig, load_backbone
from vlm_reward_wrappers.models.features import backbone_features
from vlm_reward_wrappers.objectives import get_objective
from vlm_reward_wrappers.training.batches import FrameStore, TrajectorySampler
from vlm_reward_wrappers.training.trainer import TrainingStep


def measure(dataset: DemoDataset, mode: str, model_name: str, steps: int, batch_size: int) -> dict[str, float]:
    objective = get_objective("triplet")
    config = RewardModelConfig(
        backbone=BackboneSpec(model_name),
        finetune=FinetuneConfig(mode=mode),
        objective=objective.config(),
        image_size=dataset.image_size,
    )
    torch.manual_seed(0)
    model = RewardModel(config, load_backbone(config.backbone))
    model.train()
    episodes = [i for i, e in enumerate(dataset.episodes) if e.is_successful_expert]
    sampler = TrajectorySampler(dataset, episodes, batch_size, seed=0)
    started = time.perf_counter()
    cache = backbone_features(model, dataset, episodes) if mode == "heads" else None
    cache_seconds = time.perf_counter() - started
    step_module = TrainingStep(model, FrameStore(dataset, episodes), cache)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def one_step(index: int) -> None:
        loss, _ = step_module(sampler.batch(index))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    for index in range(2):  # warm-up
        one_step(index)
    started = time.perf_counter()
    for index in range(steps):
        one_step(2 + index)
    seconds = time.perf_counter() - started
    frames = steps * batch_size * len(objective.slots)
    cached_frames = sum(dataset.episodes[i].num_steps for i in episodes) if mode == "heads" else 0
    return {"frames_per_s": frames / seconds, "cache_s": cache_seconds, "cached_frames": cached_frames}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default=None, help="dataset folder (default: collect 4 tasks x 4 episodes, 64 px)")
    parser.add_argument("--model", default="vlmrw-tiny")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        if args.data is None:
            config = CollectionConfig(
                tasks=("reach-v3", "button-press-v3", "drawer-close-v3", "window-open-v3"),
                episodes_per_task=4,
                noise_levels=(0.0, 0.1),
                image_size=64,
            )
            dataset = collect(config, folder, progress=False)
        else:
            dataset = DemoDataset(args.data)
        results = {
            mode: measure(dataset, mode, args.model, args.steps, args.batch_size) for mode in ("lora", "full", "heads")
        }
    print(
        f"machine: {os.cpu_count()} cpus, torch {torch.__version__} ({torch.get_num_threads()} threads); "
        f"backbone {args.model}, "
        f"{dataset.image_size} px, triplet objective, {args.batch_size} trajectories x 2 frames per step"
    )
    for mode, result in results.items():
        extra = (
            f" (+ {result['cache_s']:.1f} s once to cache {result['cached_frames']} frames)" if mode == "heads" else ""
        )
        print(f"{mode:6s} training: {result['frames_per_s']:8.1f} frames/s{extra}")
    print(
        "cached-embedding heads vs LoRA training: "
        f"{results['heads']['frames_per_s'] / results['lora']['frames_per_s']:.1f}x"
    )


if __name__ == "__main__":
    main()
