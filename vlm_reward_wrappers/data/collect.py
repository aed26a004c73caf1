"""Collecting a demonstration dataset: plan the episodes, skip those on disk, record the rest.

Re-running the same call resumes: the episodes already written are kept (and
checked), only the missing ones are recorded, in this process or in worker
processes (:mod:`.workers`).

Example:
    >>> config = CollectionConfig(tasks=("reach-v3", "door-open-v3"), episodes_per_task=4, image_size=64)
    >>> dataset = collect(config, "data/demo")   # doctest: +SKIP
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

from tqdm.auto import tqdm

from vlm_reward_wrappers.configs import to_dict
from vlm_reward_wrappers.data.config import CollectionConfig
from vlm_reward_wrappers.data.recorder import EpisodeCollector
from vlm_reward_wrappers.data.storage import (
    DemoDataset,
    OutputMode,
    config_id,
    episode_path,
    prepare_output,
    read_episode_info,
)
from vlm_reward_wrappers.data.workers import run_in_workers
from vlm_reward_wrappers.io_utils import remove_stale_temporaries
from vlm_reward_wrappers.locking import writing


def collect(
    config: CollectionConfig,
    out: str | os.PathLike,
    *,
    mode: OutputMode = "resume",
    workers: int | None = None,
    progress: bool = True,
) -> DemoDataset:
    """Collect ``config`` into the dataset folder ``out`` and return the dataset.

    Re-running the same call resumes: episodes already on disk are kept and
    only the missing ones are collected.

    Args:
        config: what to collect.
        out: dataset folder (created if needed).
        mode: ``"resume"``, ``"append"`` or ``"overwrite"``; see
            :func:`~vlm_reward_wrappers.data.storage.prepare_output`.
        workers: worker processes (default: up to 2, one per CPU).
        progress: show a progress bar with episodes and frames/s.
    """
    root = Path(out)
    with writing(root):  # one writer: a second collect into this folder waits for this one
        prepare_output(root, to_dict(config), mode=mode)
        remove_stale_temporaries(root)
        collection = config_id(to_dict(config))
        todo = []
        for job in config.plan():
            path = episode_path(root, job.task, collection, job.index)
            if path.exists():
                read_episode_info(path)  # raises, naming the file, if it is damaged
            else:
                todo.append(job)
        workers = max(1, min(workers or min(2, os.cpu_count() or 1), len(todo) or 1))
        total = len(config.plan())
        bar = tqdm(total=total, initial=total - len(todo), unit="episode", disable=not progress, desc="collect")
        frames, started = 0, time.perf_counter()
        try:
            if workers == 1:
                worker = EpisodeCollector(config, root, collection)
                steps_done: Iterator[int] = (worker(job) for job in todo)
            else:
                steps_done = run_in_workers(todo, config, root, collection, workers)
            for steps in steps_done:
                frames += steps
                bar.update(1)
                bar.set_postfix(frames=frames, fps=f"{frames / (time.perf_counter() - started):.0f}")
            if workers == 1:
                worker.close()
        finally:
            bar.close()
    return DemoDataset(root)
