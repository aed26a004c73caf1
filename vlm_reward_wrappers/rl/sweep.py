"""An RL sweep: every task x reward source x seed of an :class:`~.config.RLConfig`, one process per run.

Runs live in ``OUT/<task>/<source>/seed<k>/`` (see :mod:`.run`); finished
runs are skipped and interrupted ones resume, so the same command finishes
a sweep that a kill, a crash or the end of a session interrupted.

Before any run starts, every learned source is checked against every task:
its checkpoint must load and hold a goal for the task, and it goes through
the gate (:mod:`.gate`): the off-expert probe on rollouts of the task, with a
warning where it fails.

Example:
    >>> from vlm_reward_wrappers.rl import RL_PRESETS, run_sweep
    >>> runs = run_sweep(RL_PRESETS["quick"], "runs/rl-quick")   # doctest: +SKIP
"""

from __future__ import annotations

import ctypes
import dataclasses
import multiprocessing
import os
import signal
import sys
import warnings
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from pathlib import Path

from vlm_reward_wrappers.configs import to_dict
from vlm_reward_wrappers.io_utils import write_json_atomic
from vlm_reward_wrappers.locking import writing
from vlm_reward_wrappers.models import CheckpointError, is_checkpoint
from vlm_reward_wrappers.models.checkpoint import looks_like_repo_id, resolve_checkpoint
from vlm_reward_wrappers.models.reward_model import GoalUnavailableError
from vlm_reward_wrappers.rl.config import SWEEP_FILE, RLConfig
from vlm_reward_wrappers.rl.gate import gate_sources
from vlm_reward_wrappers.rl.run import RunSpec, is_done, run_one
from vlm_reward_wrappers.rl.sources import GROUND_TRUTH, SPARSE, SPARSE_SUFFIX, RewardSource, parse_source
from vlm_reward_wrappers.study import PRESETS, run_benchmark
from vlm_reward_wrappers.wrappers.scoring import load_reward_model


def resolve_source(text: str, seed: int, config: RLConfig) -> RewardSource:
    """The reward source ``text`` for agent seed ``seed``.

    A checkpoint folder is itself (named by its folder). A benchmark row (``triplet``, ``triplet+sparse``)
    names the checkpoint ``<benchmark>/checkpoints/<row>-seed<k>`` with ``k`` the agent seed (modulo the
    seeds the benchmark trained), so agent seeds also vary the reward model. Else a Hugging Face Hub repo id
    (``user/name``, ``user/name@revision``, also with ``+sparse``) is its snapshot in the local Hub cache,
    named ``name`` (``name@revision``).

    Example:
        >>> resolve_source("someone/triplet-metaworld@v1+sparse", 0, config).name  # doctest: +SKIP
        'triplet-metaworld@v1+sparse'
    """
    if text in (GROUND_TRUTH, SPARSE):
        return parse_source(text, success_bonus=config.success_bonus)
    row, suffix = (text[: -len(SPARSE_SUFFIX)], SPARSE_SUFFIX) if text.endswith(SPARSE_SUFFIX) else (text, "")
    if is_checkpoint(row):
        return parse_source(text, name=Path(row).name + suffix, success_bonus=config.success_bonus)
    folder = Path(config.benchmark) / "checkpoints"
    trained = sorted(
        (path for path in folder.glob(f"{row}-seed*") if path.name[len(row) + 5 :].isdigit() and is_checkpoint(path)),
        key=lambda path: int(path.name[len(row) + 5 :]),  # seed2 before seed10
    )
    if not trained and looks_like_repo_id(row):
        try:
            snapshot = resolve_checkpoint(row)
        except CheckpointError as error:
            raise FileNotFoundError(
                f"reward source {text!r} is neither a checkpoint folder nor a row of the benchmark in "
                f"{config.benchmark}: {error}"
            ) from error
        if not is_checkpoint(snapshot):
            raise FileNotFoundError(f"reward source {text!r}: {snapshot} is not a reward-model checkpoint folder")
        name = row.rpartition("/")[2]  # `user/name@v1` -> `name@v1`, as a folder is named by its last part
        return parse_source(f"{snapshot}{suffix}", name=name + suffix, success_bonus=config.success_bonus)
    if not trained:
        raise FileNotFoundError(
            f"reward source {text!r} is neither a checkpoint folder nor a row of the benchmark in {config.benchmark} "
            f"(no {folder}/{row}-seed*). Run `vlm-rewards benchmark --out {config.benchmark}` first, or pass a "
            "checkpoint folder or a Hub repo id (user/name)."
        )
    checkpoint = trained[seed % len(trained)]
    return parse_source(f"{checkpoint}{suffix}", name=text, success_bonus=config.success_bonus)


def benchmark_rows(config: RLConfig) -> list[str]:
    """The learned sources of ``config`` that name rows of the offline benchmark rather than checkpoint folders or
    Hub repo ids."""
    rows = [source.removesuffix(SPARSE_SUFFIX) for source in config.sources if source not in (GROUND_TRUTH, SPARSE)]
    return sorted({row for row in rows if not is_checkpoint(row) and not looks_like_repo_id(row)})


def ensure_benchmark_rows(config: RLConfig, *, log: Callable[[str], None] = print) -> None:
    """Train the benchmark rows the sweep rewards with when their checkpoints are missing.

    Only when ``config.benchmark`` is ``runs/<preset>`` of an offline preset: its
    stages run for those rows alone (``vlm-rewards benchmark`` later adds the rest).
    """
    folder = Path(config.benchmark)
    missing = [row for row in benchmark_rows(config) if not any(folder.glob(f"checkpoints/{row}-seed*"))]
    if not missing or folder.name not in PRESETS:
        return
    preset = dataclasses.replace(PRESETS[folder.name], objectives=tuple(missing))
    log(f"no checkpoints of {', '.join(missing)} in {folder}: running the {preset.name} benchmark for them first")
    run_benchmark(preset, folder, log=log)


def planned_runs(config: RLConfig) -> list[RunSpec]:
    """Every run of the sweep, in the order they start (slowest sources first, so the pool ends together)."""
    names: dict[str, str] = {}
    for text in config.sources:
        name = resolve_source(text, config.seeds_of(text)[0], config).name
        if name in names:
            raise ValueError(
                f"reward sources {names[name]!r} and {text!r} would share the run folders of {name!r}: "
                "give checkpoints whose folders have different names"
            )
        names[name] = text
    runs = [
        RunSpec(task, resolve_source(source, seed, config), seed)
        for source in config.sources
        for task in config.tasks
        for seed in config.seeds_of(source)
    ]
    return sorted(runs, key=lambda run: not run.source.learned)


def run_folder(out: str | os.PathLike, spec: RunSpec) -> Path:
    return Path(out) / spec.task / spec.source.name / f"seed{spec.seed}"


def check_runs(runs: list[RunSpec]) -> None:
    """Fail before any training when a learned source cannot reward a task (no goal, unreadable checkpoint)."""
    for spec in runs:
        if not spec.source.learned:
            continue
        assert spec.source.checkpoint is not None
        model = load_reward_model(spec.source.checkpoint)
        try:
            model.native_goal(spec.task)
        except GoalUnavailableError as error:
            raise ValueError(
                f"reward source {spec.source.name!r} has no goal for {spec.task}: {error} "
                "Drop the task, or use a checkpoint trained on it."
            ) from error


def _die_with_parent() -> None:
    """Pool worker start-up (Linux): the OS kills this worker when the sweep's process dies, however it dies, so
    no orphan goes on writing a run that the next sweep resumes (elsewhere a worker ends at its next task)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_PR_SET_PDEATHSIG = 1


def _run_in_worker(spec: RunSpec, config: RLConfig, folder: str, overwrite: bool) -> str:
    import torch

    torch.set_num_threads(1)  # one core per run: the pool runs `jobs` of them side by side
    warnings.filterwarnings("ignore", message=".*not within the observation space")
    warnings.filterwarnings("ignore", message=".*maximum and minimum values are equal")
    run_one(spec, config, folder, log=lambda line: print(line, flush=True), overwrite=overwrite)
    return spec.label


def run_sweep(
    config: RLConfig, out: str | os.PathLike, *, log: Callable[[str], None] = print, overwrite: bool = False
) -> list[RunSpec]:
    """Run (or resume) every run of ``config`` into ``out``; return the runs.

    ``config.jobs`` runs go side by side, each in its own (spawned) process with one torch thread, which dies
    with the sweep. A run folder that holds the run with other settings is refused, naming them (``overwrite``
    replaces it). A second sweep into ``out`` waits for this one, then finds its runs done.
    """
    with writing(out):
        return _sweep_locked(config, out, log, overwrite)


def _sweep_locked(
    config: RLConfig, out: str | os.PathLike, log: Callable[[str], None], overwrite: bool
) -> list[RunSpec]:
    """:func:`run_sweep`, by the process that holds the lock of ``out``."""
    ensure_benchmark_rows(config, log=log)
    runs = planned_runs(config)
    check_runs(runs)
    gate_sources(runs, config, out, log=log)
    sources = [resolve_source(text, config.seeds_of(text)[0], config).name for text in config.sources]
    write_json_atomic(Path(out) / SWEEP_FILE, {"config": to_dict(config), "sources": sources})
    todo = [spec for spec in runs if overwrite or not is_done(run_folder(out, spec))]
    log(f"{len(runs)} runs, {len(runs) - len(todo)} done, {len(todo)} to run into {out}")
    jobs = max(1, min(config.jobs or os.cpu_count() or 1, len(todo) or 1))
    if config.reward_worker == "auto":  # a worker per run only where it has a core of its own
        config = dataclasses.replace(config, reward_worker="on" if 2 * jobs <= (os.cpu_count() or 1) else "off")
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_die_with_parent) as pool:
        futures = [pool.submit(_run_in_worker, spec, config, str(run_folder(out, spec)), overwrite) for spec in todo]
        for future in as_completed(futures):
            log(f"finished {future.result()}")
    return runs
