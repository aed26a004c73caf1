"""Evaluation of a checkpoint against the ground truth: scoring a dataset, the metrics report, plots.

Example:
    >>> from vlm_reward_wrappers.evaluation import evaluate
    >>> metrics = evaluate("runs/quick/checkpoints/triplet-seed0", "runs/quick/data/eval", "runs/e")  # doctest: +SKIP
"""

from vlm_reward_wrappers.evaluation.evaluate import evaluate
from vlm_reward_wrappers.evaluation.scoring import score_dataset

__all__ = ["evaluate", "score_dataset"]
