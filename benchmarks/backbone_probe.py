"""Which backbone pretraining keeps progress: the nearest-neighbour probe on validation rollouts, and its cost.

The backbone of the study is frozen (``heads`` finetuning): what its features
keep of where a frame is in its episode bounds every objective trained on top.
This pretrains the package's ``vlmrw-tiny`` backbone with several settings on a
benchmark's training data and probes each on *validation* rollouts of the
training tasks (a collection of their own, seed 3000: 8 full-length episodes per
task, clean experts, noisy experts and a random policy; never the benchmark's
evaluation episodes). The probe is the benchmark's ``backbone-knn`` reference:
the mean progress of the 5 nearest training frames of the same task (cosine), scored
by the time-balanced accuracy against Meta-World's reward. Raw 32-px pixels with
the same nearest neighbours are the bar. Prints the probe, the pretraining time
and its ratio to the caption-only setting, measured in one run on this machine.

    python benchmarks/backbone_probe.py --benchmark runs/quick
    python benchmarks/backbone_probe.py --benchmark runs/quick --settings "" "max_steps=300"
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from vlm_reward_wrappers.configs import from_dict, to_dict
from vlm_reward_wrappers.data import CollectionConfig, DemoDataset, collect
from vlm_reward_wrappers.evaluation.references import knn_progress_reference, pixel_vectors
from vlm_reward_wrappers.evaluation.scoring import frame_table
from vlm_reward_wrappers.metrics import FrameTable
from vlm_reward_wrappers.metrics.time_balanced import time_balanced_accuracy
from vlm_reward_wrappers.models.backbone import load_backbone
from vlm_reward_wrappers.models.reward_model import in_batches
from vlm_reward_wrappers.study.presets import PRESETS
from vlm_reward_wrappers.training.pretrain import BACKBONE_WEIGHTS, PretrainConfig, pretrain_backbone

SETTINGS = ("time_contrastive=0,batch_size=128", "batch_size=128", "batch_size=96")
"""Changes to the preset's pretraining, one setting each ("" is the preset's own): the caption loss alone, and the
time-contrastive loss at two batch sizes (the README's table)."""


def probe(table: FrameTable, train: DemoDataset, validation: DemoDataset, embed, metric) -> float | None:  # type: ignore[no-untyped-def]
    predicted = knn_progress_reference(table, train, validation, embed, metric=metric)
    assert predicted is not None
    return time_balanced_accuracy(predicted.predicted, predicted.ground_truth, predicted.episode, predicted.step)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--benchmark", default="runs/quick", help="a benchmark folder: its data/train is used")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), help="key=value,... changes to pretrain")
    parser.add_argument("--out", default=None, help="folder for the backbones (default: BENCHMARK/backbone-probe)")
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    preset = PRESETS[args.preset]
    root = Path(args.benchmark)
    train = collect(preset.train_collection(), root / "data" / "train")
    validation = collect(
        CollectionConfig(
            tasks=preset.train_tasks,
            episodes_per_task=8,
            noise_levels=(0.0, 0.3, 1.0),
            random_share=0.25,
            image_size=preset.image_size,
            max_steps=preset.episode_steps,
            steps_after_success=None,
            seed=3000,
        ),
        root / "data" / "backbone-validation",
    )
    batches = list(validation.iter_frame_batches(4096, with_frames=False))
    table = frame_table(validation, batches, np.zeros(sum(len(batch.episode) for batch in batches)))
    print(f"raw pixels: probe {probe(table, train, validation, pixel_vectors, 'euclidean'):.3f}")
    out = Path(args.out) if args.out else root / "backbone-probe"
    baseline_seconds = None
    for setting in args.settings:
        changes = dict(item.split("=", 1) for item in setting.split(",") if item)
        config = from_dict(
            PretrainConfig, {**to_dict(preset.pretrain), **{k: json.loads(v) for k, v in changes.items()}}
        )
        folder = out / (setting or "preset")
        cached = (folder / BACKBONE_WEIGHTS).is_file()
        started = time.perf_counter()
        spec = pretrain_backbone(train.root, folder, tasks=preset.train_tasks, config=config)
        seconds = time.perf_counter() - started
        backbone = load_backbone(spec).eval()

        @torch.no_grad()
        def embed(dataset: DemoDataset, episodes, backbone=backbone) -> dict[int, np.ndarray]:  # type: ignore[no-untyped-def]
            return {int(i): in_batches(backbone.encode_images, dataset.read_frames(int(i))).numpy() for i in episodes}

        value = probe(table, train, validation, embed, "cosine")
        if cached:
            cost = "pretrained before (cached)"
        else:
            baseline_seconds = baseline_seconds or seconds
            cost = f"pretraining {seconds:5.0f} s ({seconds / baseline_seconds:.2f}x the first setting pretrained here)"
        print(f"{setting or 'the preset':40s} probe {value:.3f}  {cost}")


if __name__ == "__main__":
    main()
