"""Paired differences between two benchmark runs that share their evaluation episodes (another finetuning, say).

``vlm-rewards benchmark`` pairs the rows of one study. Two studies run into
different folders from the same data (the same evaluation episodes, the same
seeds) can be paired the same way: this reads each row's saved frame tables
from both folders and prints, per row present in both, each study's pooled
value and the paired difference (other minus reference) with its 95% interval,
resampling seeds and evaluation episodes together (the study's own bootstrap).

    vlm-rewards benchmark --out runs/quick
    cp -al runs/quick/data runs/quick-lora/    # optional: the same preset collects the same episodes again
    vlm-rewards benchmark --out runs/quick-lora --finetune lora --learning-rates 5e-4
    python benchmarks/compare_studies.py runs/quick runs/quick-lora
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from vlm_reward_wrappers.evaluation.evaluate import TABLE_FILES
from vlm_reward_wrappers.evaluation.scoring import load_table
from vlm_reward_wrappers.io_utils import read_json
from vlm_reward_wrappers.metrics import FrameTable
from vlm_reward_wrappers.study.benchmark import checkpoint_folder
from vlm_reward_wrappers.study.statistics import paired_bootstrap

METRICS = ("time_balanced_accuracy", "ranking_accuracy_within", "voc")


def seed_tables(study: Path, row: str, seeds: list[int], split: str) -> list[FrameTable] | None:
    """The row's frame table of every seed in ``study``, or None when one is missing."""
    names = [checkpoint_folder(study, row, seed).name for seed in seeds]
    paths = [study / "eval" / name / split / TABLE_FILES["native"] for name in names]
    return [load_table(path) for path in paths] if all(path.is_file() for path in paths) else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("reference", type=Path, help="a finished benchmark folder")
    parser.add_argument("other", type=Path, help="a finished benchmark folder on the same data and seeds")
    parser.add_argument("--split", default="train-tasks")
    parser.add_argument("--num-resamples", type=int, default=2000)
    args = parser.parse_args()
    records = [read_json(study / "benchmark.json") for study in (args.reference, args.other)]
    seeds = [list(record["preset"]["seeds"]) for record in records]
    if seeds[0] != seeds[1]:
        raise SystemExit(f"the two studies trained other seeds ({seeds[0]} and {seeds[1]}): nothing to pair")
    rows = [row for row in records[1]["preset"]["objectives"] if row in records[0]["preset"]["objectives"]]
    print(f"| row | metric | {args.reference.name} | {args.other.name} | paired difference [95%] |")
    print("|---|---|---|---|---|")
    for row in rows:
        reference, other = (seed_tables(study, row, seeds[0], args.split) for study in (args.reference, args.other))
        if reference is None or other is None:
            continue
        tables = {"reference": reference, "other": other}
        for metric in METRICS:
            result = paired_bootstrap(
                tables, metric, num_resamples=args.num_resamples, reference="reference", family=["other"]
            )
            values = f"{_value(result, 'reference')} | {_value(result, 'other')} | {_delta(result)}"
            print(f"| {row} | {metric} | {values} |")


def _value(result: dict[str, Any], name: str) -> str:
    summary = result["objectives"][name]
    low, high = summary["pooled_ci"] or (float("nan"), float("nan"))
    return f"{summary['pooled']:.3f} [{low:.2f}, {high:.2f}]"


def _delta(result: dict[str, Any]) -> str:
    """Other minus reference (the bootstrap's ``difference`` is reference minus other)."""
    paired = result["paired"]["other"]
    low, high = paired["ci"] or (float("nan"), float("nan"))
    return f"{-paired['difference']:+.3f} [{-high:+.3f}, {-low:+.3f}]"


if __name__ == "__main__":
    main()
