"""``vlm-rewards bundle``: (re)train the reward model that ships with the package, and its model card.

The bundled model is the ``triplet-failures`` row of the benchmark preset ``bundled``: quick's settings (the
package's own backbone pretrained on the training frames, residual heads, learning rate chosen on validation
episodes, training until the validation loss flattens) on all 45 ML45 training tasks, training seed 0. The
command runs that benchmark (resumable, like every benchmark), then writes the checkpoint's release (config,
safetensors weights, no training state) into :data:`~vlm_reward_wrappers.models.BUNDLED_CHECKPOINT`, with a model
card whose results are the benchmark's tables: its row beside the references (Meta-World's reward, the frame-free
clocks, raw-pixel and backbone nearest neighbours), zero-shot and plain triplet, on new episodes of the 45 tasks
and on the 5 held-out ML45 test tasks, and the off-expert probe.

Example:
    >>> BUNDLED_ROW in PRESETS["bundled"].objectives
    True
    >>> build_bundled_model("runs/bundled")   # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlm_reward_wrappers.models import BUNDLED_CHECKPOINT
from vlm_reward_wrappers.models.checkpoint import pack_checkpoint
from vlm_reward_wrappers.study.benchmark import checkpoint_folder, run_benchmark
from vlm_reward_wrappers.study.presets import PRESETS
from vlm_reward_wrappers.study.report import off_expert_summary, results_tables

BUNDLED_ROW = "triplet-failures"
"""The row of preset ``bundled`` that ships, declared before that preset ran. On the ``quick`` benchmark it tied
the best time-balanced accuracy (0.695; R3M 0.697, triplet 0.693, no paired difference distinguishable), kept the
task discrimination a default for many tasks needs (goal-swap accuracy 0.93, where within-task triplet falls to
0.59), and passed the RL gate on more tasks than triplet (6.7 of 9 against 6.3)."""


def build_bundled_model(
    run: str | os.PathLike = "runs/bundled",
    out: str | os.PathLike = BUNDLED_CHECKPOINT,
    *,
    device: str | None = None,
    log: Callable[[str], None] = print,
) -> Path:
    """Run (or resume) the benchmark preset ``bundled`` into ``run`` and write the release of its
    :data:`BUNDLED_ROW` checkpoint, with its model card, into ``out`` (default: the package's bundled model)."""
    preset = PRESETS["bundled"]
    result = run_benchmark(preset, run, device=device, log=log)
    checkpoint = checkpoint_folder(Path(run), BUNDLED_ROW, preset.seeds[0])
    release = pack_checkpoint(checkpoint, out, results=bundled_results(result))
    log(f"the bundled reward model: {release} (from {checkpoint}; model card {release / 'README.md'})")
    return release


def bundled_results(result: dict[str, Any]) -> str:
    """The model card's results: the benchmark's tables for the bundled row and its comparisons."""
    machine = result["machine"]
    minutes = result["timings_all_runs_s"]["total"] / 60
    return "\n\n".join(
        [
            f"The package ships this model: `VLMRewardWrapper(env)` scores with it when no checkpoint is given. It "
            f"is the row `{BUNDLED_ROW}` of `vlm-rewards benchmark --preset bundled` (what `vlm-rewards bundle` "
            f"runs; {minutes:.0f} minutes on {machine['processor']}, {machine['cpus']} CPUs, GPU: "
            f"{machine['cuda'] or 'none'}). One training seed: the intervals resample evaluation episodes only, "
            "not the training draw. How to read the columns: the package's README and `docs/results.md`.",
            results_tables(result),
            "Off the expert path, training tasks (the RL gate: success AUC ≥ 0.85, the expert earning more than a "
            "random policy, at most 5% of random frames above the median success frame):",
            off_expert_summary(result),
        ]
    )


__all__ = ["BUNDLED_ROW", "build_bundled_model", "bundled_results"]
