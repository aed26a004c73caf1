"""RL on learned rewards: stable-baselines3 SAC agents trained on each reward source, evaluated and compared.

Example:
    >>> from vlm_reward_wrappers.rl import RL_PRESETS, run_sweep
    >>> report = run_sweep(RL_PRESETS["quick"], "runs/rl-quick")   # doctest: +SKIP
"""

from vlm_reward_wrappers.extras import require

require("stable_baselines3", extra="rl", needed_by="vlm_reward_wrappers.rl (SAC agents on learned rewards)")

from vlm_reward_wrappers.rl.config import RL_PRESETS, RL_PRESETS_HELP, RLConfig
from vlm_reward_wrappers.rl.report import write_rl_report
from vlm_reward_wrappers.rl.run import RunSpec, read_curve, run_one
from vlm_reward_wrappers.rl.sources import RewardSource, parse_source
from vlm_reward_wrappers.rl.sweep import run_sweep

__all__ = [
    "RL_PRESETS",
    "RL_PRESETS_HELP",
    "RLConfig",
    "RewardSource",
    "RunSpec",
    "parse_source",
    "read_curve",
    "run_one",
    "run_sweep",
    "write_rl_report",
]
