"""The study as a pipeline: presets, the benchmark that drives every stage, and its report.

Example:
    >>> from vlm_reward_wrappers.study import PRESETS, run_benchmark
    >>> result = run_benchmark(PRESETS["tiny"], "runs/tiny")   # doctest: +SKIP
"""

from vlm_reward_wrappers.study.benchmark import run_benchmark
from vlm_reward_wrappers.study.presets import PRESETS, Preset

__all__ = ["PRESETS", "Preset", "run_benchmark"]
