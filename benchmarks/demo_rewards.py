"""Which reward one demonstration gives best: progress (k nearest frames), goal image, with or without the sentence.

On the held-out tasks of a benchmark's evaluation data, each successful expert
episode is used in turn as the demonstration and the task's other episodes are
scored (never the demonstration itself), for every seed of a benchmark row.
Prints, per reward, the mean ranking accuracy and VOC over those
(demonstration, seed) pairs:

* ``sentence``: the checkpoint's sentence reward (no demonstration);
* ``goal image``: cosine to the demonstration's frames from first success on;
* ``progress k=N``: mean demonstration time of the N nearest demonstration frames;
* ``progress + w x sentence``: both standardised (progress with its statistics on the
  demonstration, the sentence with the checkpoint's), summed with weight w.

    python benchmarks/demo_rewards.py --benchmark runs/quick --row triplet
"""

from __future__ import annotations

import argparse
import dataclasses
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np
import torch

from vlm_reward_wrappers.data import DemoDataset
from vlm_reward_wrappers.evaluation.scoring import score_dataset
from vlm_reward_wrappers.metrics import FrameTable, summarize
from vlm_reward_wrappers.models import Demonstration, RewardModel, demonstration_goal
from vlm_reward_wrappers.tasks import ML45_TEST


def accuracy(table: FrameTable) -> tuple[float, float]:
    """Ranking accuracy and VOC of a frame table."""
    overall = summarize(table, num_resamples=1)["overall"]
    return overall["ranking_accuracy"], overall["voc"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--benchmark", default="runs/quick", help="a `vlm-rewards benchmark` output folder")
    parser.add_argument("--row", default="triplet", help="the benchmark row whose checkpoints (every seed) to use")
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=UserWarning)
    torch.set_num_threads(1)
    dataset = DemoDataset(f"{args.benchmark}/data/eval", tasks=list(ML45_TEST))
    results: dict[str, list[tuple[float, float]]] = defaultdict(list)
    checkpoints = sorted(Path(args.benchmark).glob(f"checkpoints/{args.row}-seed*"))
    for checkpoint in checkpoints:
        model = RewardModel.from_pretrained(checkpoint)
        sentence_stats = model.config.reward_stats
        for index, info in enumerate(dataset.episodes):
            if not info.is_successful_expert:
                continue
            others = [i for i, e in enumerate(dataset.episodes) if e.task == info.task and i != index]
            demo = Demonstration.from_dataset(dataset, index)
            sentence = score_dataset(model, dataset, others, goal="sentence").table
            assert sentence is not None
            results["sentence"].append(accuracy(sentence))
            image_goal = demonstration_goal(model, demo, "goal-image")
            image = score_dataset(model, dataset, others, goal={info.task: image_goal})
            assert image.table is not None
            results["goal image"].append(accuracy(image.table))
            for neighbours in (1, 3, 5, 10):
                goal = demonstration_goal(model, demo, "progress", neighbours=neighbours)
                table = score_dataset(model, dataset, others, goal={info.task: goal}).table
                assert table is not None
                results[f"progress k={neighbours}"].append(accuracy(table))
                if neighbours != 3:
                    continue
                progress = (table.predicted - goal.reward_stats["mean"]) / goal.reward_stats["std"]
                standardised = (sentence.predicted - sentence_stats["mean"]) / sentence_stats["std"]
                for weight in (0.5, 1.0):
                    combined = dataclasses.replace(table, predicted=progress + weight * standardised)
                    results[f"progress k=3 + {weight} x sentence"].append(accuracy(combined))
    print(f"{args.row}, {len(checkpoints)} seeds, held-out tasks of {args.benchmark}/data/eval, one demonstration each")
    print(f"{'reward':34s} {'ranking acc.':>12s} {'VOC':>8s}  (n)")
    for name, values in results.items():
        ranking, voc = np.array(values, dtype=float).T
        print(f"{name:34s} {ranking.mean():12.3f} {np.nanmean(voc):8.3f}  ({len(values)})")


if __name__ == "__main__":
    main()
