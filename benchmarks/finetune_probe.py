"""Does finetuning the backbone (LoRA, full) beat heads on a frozen backbone? Scored on validation rollouts.

The quick preset trains every objective's residual heads on a frozen backbone
(``heads``): 17x faster than LoRA (``benchmarks/train_speed.py``), but the
objective cannot get back what the frozen features dropped. This trains one row
of the study (the triplet by default) on a finished benchmark's training data
and its seed's backbone with each finetuning mode, and scores each checkpoint's
sentence reward on the *validation* rollouts of ``benchmarks/backbone_probe.py``
(seed 3000: 8 full-length episodes per training task, clean experts, noisy
experts and a random policy; never the benchmark's evaluation episodes). Raw
32-px pixels with nearest neighbours are the bar. Prints, per mode, the
time-balanced and within-episode accuracy, VOC, success AUC, the backbone probe
of ``benchmarks/backbone_probe.py`` on the checkpoint's own image features (the
finetuned tower's: nearest training frames by cosine), the training time and its
ratio to the first mode, measured in one run on this machine.

    python benchmarks/backbone_probe.py --benchmark runs/quick --settings ""   # the validation rollouts, once
    python benchmarks/finetune_probe.py --benchmark runs/quick
    python benchmarks/finetune_probe.py --benchmark runs/quick --modes heads lora:1e-3 --row triplet-within-task
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from vlm_reward_wrappers.data import DemoDataset
from vlm_reward_wrappers.evaluation.references import knn_progress_reference, pixel_vectors
from vlm_reward_wrappers.evaluation.scoring import frame_table, score_dataset
from vlm_reward_wrappers.metrics import FrameTable
from vlm_reward_wrappers.metrics.summary import summarize
from vlm_reward_wrappers.metrics.time_balanced import time_balanced_accuracy
from vlm_reward_wrappers.models import BackboneSpec, RewardModel
from vlm_reward_wrappers.models.reward_model import in_batches
from vlm_reward_wrappers.study.benchmark import is_trained
from vlm_reward_wrappers.study.presets import PRESETS
from vlm_reward_wrappers.training.trainer import train

COLUMNS = ("time_balanced_accuracy", "ranking_accuracy_within", "voc", "success_auroc")


def pixel_reference(validation: DemoDataset, train_data: DemoDataset) -> dict[str, float | None]:
    """The raw-pixel nearest-neighbour reference on the validation rollouts, in the same columns."""
    predicted = knn_progress_reference(unscored(validation), train_data, validation, pixel_vectors, metric="euclidean")
    assert predicted is not None
    return columns(predicted)


def unscored(dataset: DemoDataset) -> FrameTable:
    """Every frame of ``dataset`` with its ground truth, and no prediction yet."""
    batches = list(dataset.iter_frame_batches(4096, with_frames=False))
    return frame_table(dataset, batches, np.zeros(sum(len(batch.episode) for batch in batches)))


def feature_probe(model: RewardModel, validation: DemoDataset, train_data: DemoDataset) -> float | None:
    """The backbone probe on the model's own image features: progress of the 5 nearest training frames (cosine)."""

    @torch.no_grad()
    def embed(dataset: DemoDataset, episodes: Sequence[int]) -> dict[int, np.ndarray]:
        return {int(i): in_batches(model.encode_images, dataset.read_frames(int(i))).numpy() for i in episodes}

    model.eval()
    predicted = knn_progress_reference(unscored(validation), train_data, validation, embed, metric="cosine")
    assert predicted is not None
    return time_balanced_accuracy(predicted.predicted, predicted.ground_truth, predicted.episode, predicted.step)


def columns(table: FrameTable) -> dict[str, float | None]:
    overall = summarize(table, num_resamples=1)["overall"]
    return {name: overall[name] for name in COLUMNS}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmark", default="runs/quick", help="a finished benchmark folder")
    parser.add_argument("--preset", default="quick", help="the benchmark's preset")
    parser.add_argument("--row", default="triplet", help="a row of the study (its objective and options)")
    parser.add_argument("--seed", type=int, default=0, help="the seed (its backbone, batches and heads)")
    parser.add_argument(
        "--modes", nargs="+", default=["heads", "lora"], help="finetuning modes, each MODE or MODE:LEARNING_RATE"
    )
    args = parser.parse_args()
    preset = PRESETS[args.preset]
    root = Path(args.benchmark)
    record = json.loads((root / "benchmark.json").read_text())
    backbone = BackboneSpec(**record["backbones"][str(args.seed)])
    chosen_rate = record["learning_rates"].get(args.row, {}).get("chosen")
    validation_root = root / "data" / "backbone-validation"
    if not validation_root.is_dir():
        raise SystemExit(f"no validation rollouts at {validation_root}: run benchmarks/backbone_probe.py first")
    train_data, validation = DemoDataset(root / "data" / "train"), DemoDataset(validation_root)
    print(f"{'raw-pixel kNN (the bar)':28s}", _format(pixel_reference(validation, train_data)))
    first_seconds = None
    for mode_and_rate in args.modes:
        mode, _, rate = mode_and_rate.partition(":")
        learning_rate = float(rate) if rate else (chosen_rate if mode == preset.finetune else None)
        config = dataclasses.replace(preset.train_config(args.row, args.seed, learning_rate), finetune=mode)
        folder = root / "finetune-probe" / f"{args.row}-seed{args.seed}-{mode}-lr{config.lr:g}"
        cached = is_trained(folder, config, config.max_steps, backbone)
        started = time.perf_counter()
        train(config, train_data.root, folder, backbone=backbone, progress=False)
        seconds = time.perf_counter() - started
        model = RewardModel.from_pretrained(folder)
        scored = score_dataset(model, validation)
        assert scored.table is not None
        if cached:
            cost = "trained before (cached)"
        else:
            first_seconds = first_seconds or seconds
            cost = f"training {seconds:6.0f} s ({seconds / first_seconds:.1f}x the first mode trained here)"
        values = {**columns(scored.table), "feature_probe": feature_probe(model, validation, train_data)}
        print(f"{mode + f' lr {config.lr:g}':28s}", _format(values), cost)


def _format(values: dict[str, float | None]) -> str:
    return "  ".join(f"{name} {value:.3f}" if value is not None else f"{name} n/a" for name, value in values.items())


if __name__ == "__main__":
    main()
