"""The gate before agents train: the off-expert probe of every learned reward on every task of a sweep.

A learned reward that does not tell success frames from the others, pays a
random policy more than the expert, or peaks where the task is not done, will
teach an agent the wrong thing, however long it trains. Before the runs start,
every learned source's checkpoint is probed on every task of the sweep
(:func:`~vlm_reward_wrappers.metrics.off_expert.probe_task`) on rollouts that
are not demonstrations: :data:`PROBE_EPISODES` full-length episodes per task
(clean experts, experts with heavy action noise, a random policy), collected once
per task into ``OUT/gate/`` with the checkpoint's camera and frame size. The
verdicts go to ``OUT/gate.json``; a failing task is logged as a warning and listed
in the sweep's report. The gate warns, it does not stop the sweep: an agent on a
failing reward is a result too.

Example:
    >>> verdicts = gate_sources(planned_runs(config), config, "runs/rl-quick")   # doctest: +SKIP
    >>> verdicts["triplet"]["drawer-close-v3"]["gate"]                          # doctest: +SKIP
    ['success AUC 0.58 < 0.85', 'expert reward below random']
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from vlm_reward_wrappers.data import CollectionConfig, DemoDataset, collect
from vlm_reward_wrappers.evaluation.scoring import score_dataset
from vlm_reward_wrappers.io_utils import write_json_atomic
from vlm_reward_wrappers.metrics.off_expert import gate, probe_task
from vlm_reward_wrappers.rl.config import RLConfig
from vlm_reward_wrappers.rl.run import RunSpec
from vlm_reward_wrappers.wrappers.scoring import load_reward_model

GATE_FILE = "gate.json"
PROBE_EPISODES = 6
"""Rollouts per task: 2 clean experts, 2 experts with action noise 1.0, 2 random policies."""
PROBE_SEED = 5000
"""Seed of the probe rollouts (the benchmark's collections use 0, 1000 and 2000)."""


def probe_rollouts(task: str, camera: str, image_size: int, max_steps: int, folder: str | os.PathLike) -> DemoDataset:
    """The probe's rollouts of ``task`` (collected into ``folder`` on first use, resumed if interrupted)."""
    config = CollectionConfig(
        tasks=(task,),
        episodes_per_task=PROBE_EPISODES,
        noise_levels=(0.0, 1.0),
        random_share=2 / PROBE_EPISODES,
        camera=camera,
        image_size=image_size,
        max_steps=max_steps,
        steps_after_success=None,
        seed=PROBE_SEED,
    )
    return collect(config, folder, workers=1, progress=False)


def gate_sources(
    runs: list[RunSpec], config: RLConfig, out: str | os.PathLike, *, log: Callable[[str], None] = print
) -> dict[str, dict[str, dict[str, Any]]]:
    """Probe every learned source's checkpoints on every task of ``runs``; write and return the verdicts.

    Per source and task: the probe of each distinct checkpoint (by folder name) and ``gate``, the reasons the
    checkpoint of the first seed fails (empty: it passes).
    """
    verdicts: dict[str, dict[str, dict[str, Any]]] = {}
    for spec in runs:
        checkpoint = spec.source.checkpoint
        if not spec.source.learned or checkpoint is None:
            continue
        entry = verdicts.setdefault(spec.source.name, {}).setdefault(spec.task, {"checkpoints": {}})
        name = Path(checkpoint).name
        if name in entry["checkpoints"]:
            continue
        model = load_reward_model(checkpoint)
        camera, size = model.config.camera, model.config.image_size
        folder = Path(out) / "gate" / f"{spec.task}-{camera}-{size}px-{config.max_episode_steps}steps"
        table = score_dataset(model, probe_rollouts(spec.task, camera, size, config.max_episode_steps, folder)).table
        assert table is not None  # check_runs made sure the checkpoint holds a goal for the task
        probe = probe_task(table)
        entry["checkpoints"][name] = {**probe, "gate": gate(probe)}
        if len(entry["checkpoints"]) == 1:
            entry["gate"] = gate(probe)
            if entry["gate"]:
                log(f"warning: the {spec.source.name} reward fails the gate on {spec.task}: {'; '.join(entry['gate'])}")
    write_json_atomic(Path(out) / GATE_FILE, verdicts)
    return verdicts
