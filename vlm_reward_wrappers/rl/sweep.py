"""An RL sweep: every task x reward source x seed of an :class:`~.config.RLConfig`, one process per run, on this
machine or on Ray (:mod:`vlm_reward_wrappers.execution`).

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

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path

from vlm_reward_wrappers.configs import to_dict
from vlm_reward_wrappers.execution import Backend, Job, check_outcomes, run_all
from vlm_reward_wrappers.extras import require
from vlm_reward_wrappers.io_utils import write_json_atomic
from vlm_reward_wrappers.locking import writing
from vlm_reward_wrappers.models import BUNDLED_CHECKPOINT, CheckpointError, is_checkpoint
from vlm_reward_wrappers.models.checkpoint import looks_like_repo_id, resolve_checkpoint
from vlm_reward_wrappers.models.reward_model import CalibrationError, GoalUnavailableError
from vlm_reward_wrappers.rl.config import FAILURES_FILE, SWEEP_FILE, RLConfig
from vlm_reward_wrappers.rl.estimate import source_name
from vlm_reward_wrappers.rl.gate import gate_sources
from vlm_reward_wrappers.rl.run import RunSpec, differs_from, is_done, run_one, run_record
from vlm_reward_wrappers.rl.sources import BUNDLED, GROUND_TRUTH, SPARSE, SPARSE_SUFFIX, RewardSource, parse_source
from vlm_reward_wrappers.study import PRESETS, run_benchmark
from vlm_reward_wrappers.training.trainer import RunMismatchError
from vlm_reward_wrappers.wrappers.scoring import load_reward_model
from vlm_reward_wrappers.wrappers.spec import CALIBRATED_MODES


def resolve_source(text: str, seed: int, config: RLConfig) -> RewardSource:
    """The reward source ``text`` for agent seed ``seed``.

    ``bundled`` is the package's bundled reward model. A checkpoint folder is itself (named by its folder). A
    benchmark row (``triplet``, ``triplet+sparse``) names the checkpoint ``<benchmark>/checkpoints/<row>-seed<k>``
    with ``k`` the agent seed (modulo the seeds the benchmark trained), so agent seeds also vary the reward model.
    Else a Hugging Face Hub repo id (``user/name``, ``user/name@revision``, also with ``+sparse``) is its snapshot
    in the local Hub cache, named ``name`` (``name@revision``).

    Example:
        >>> resolve_source("someone/triplet-metaworld@v1+sparse", 0, config).name  # doctest: +SKIP
        'triplet-metaworld@v1+sparse'
    """
    if text in (GROUND_TRUTH, SPARSE):
        return parse_source(text, **config.source_options)
    row, suffix = (text[: -len(SPARSE_SUFFIX)], SPARSE_SUFFIX) if text.endswith(SPARSE_SUFFIX) else (text, "")
    if row == BUNDLED:
        return parse_source(f"{BUNDLED_CHECKPOINT}{suffix}", name=text, **config.source_options)
    if is_checkpoint(row):
        return parse_source(text, name=source_name(text), **config.source_options)
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
        return parse_source(f"{snapshot}{suffix}", name=source_name(text), **config.source_options)
    if not trained:
        raise FileNotFoundError(
            f"reward source {text!r} is neither a checkpoint folder nor a row of the benchmark in {config.benchmark} "
            f"(no {folder}/{row}-seed*). Run `vlm-rewards benchmark --out {config.benchmark}` first, or pass a "
            "checkpoint folder or a Hub repo id (user/name)."
        )
    checkpoint = trained[seed % len(trained)]
    return parse_source(f"{checkpoint}{suffix}", name=source_name(text), **config.source_options)


def benchmark_rows(config: RLConfig) -> list[str]:
    """The learned sources of ``config`` that name rows of the offline benchmark rather than checkpoint folders or
    Hub repo ids."""
    rows = [source.removesuffix(SPARSE_SUFFIX) for source in config.sources if source not in (GROUND_TRUTH, SPARSE)]
    return sorted({row for row in rows if row != BUNDLED and not is_checkpoint(row) and not looks_like_repo_id(row)})


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
    """Fail before any training when a learned source cannot reward a task (no goal, no progress calibration for
    it, an unreadable checkpoint)."""
    for spec in runs:
        if not spec.source.learned:
            continue
        assert spec.source.checkpoint is not None
        model = load_reward_model(spec.source.checkpoint)
        try:
            goal = model.native_goal(spec.task)
            if spec.source.reward_mode in CALIBRATED_MODES:
                model.progress_range(spec.task, goal)
        except GoalUnavailableError as error:
            raise ValueError(
                f"reward source {spec.source.name!r} has no goal for {spec.task}: {error} "
                "Drop the task, or use a checkpoint trained on it."
            ) from error
        except CalibrationError as error:
            raise ValueError(
                f"reward source {spec.source.name!r} cannot give progress on {spec.task}: {error} "
                "(learned_reward_mode='normalized', on the command line --learned-reward-mode normalized)"
            ) from error


def _run_in_worker(spec: RunSpec, config: RLConfig, folder: str, overwrite: bool) -> str:
    import torch

    torch.set_num_threads(1)  # one core per run: the pool runs `jobs` of them side by side
    run_one(spec, config, folder, log=lambda line: print(line, flush=True), overwrite=overwrite)
    return spec.label


def run_sweep(
    config: RLConfig,
    out: str | os.PathLike,
    *,
    log: Callable[[str], None] = print,
    overwrite: bool = False,
    backend: Backend | None = None,
) -> list[RunSpec]:
    """Run (or resume) every run of ``config`` into ``out``; return the runs.

    Locally, ``config.jobs`` runs go side by side, each in its own (spawned) process with one torch thread, which
    dies with the sweep; on Ray (``backend``), each run is a task of one CPU (and one GPU for ``cuda``), on this
    machine or a cluster whose nodes all see ``out``. The results do not depend on where a run ran. A run that
    fails does not stop the others: after the sweep, :class:`RunsFailedError` names them (``failures.json``
    too). A run folder that holds the run with other settings is refused, naming them (``overwrite`` replaces
    it). A second sweep into ``out`` waits for this one, then finds its runs done; a run locks its own folder too.
    """
    with writing(out):
        return _sweep_locked(config, out, log, overwrite, backend or Backend())


def _sweep_locked(
    config: RLConfig, out: str | os.PathLike, log: Callable[[str], None], overwrite: bool, backend: Backend
) -> list[RunSpec]:
    """:func:`run_sweep`, by the process that holds the lock of ``out``."""
    if config.wandb is not None:  # before any training: every run would fail on it
        require("wandb", extra="wandb", needed_by="vlm-rewards rl --wandb")
    ensure_benchmark_rows(config, log=log)
    runs = planned_runs(config)
    check_runs(runs)
    gate_sources(runs, config, out, log=log)
    sources = [resolve_source(text, config.seeds_of(text)[0], config).name for text in config.sources]
    write_json_atomic(Path(out) / SWEEP_FILE, {"config": to_dict(config), "sources": sources})
    finished = [spec for spec in runs if is_done(run_folder(out, spec))]
    other = {
        spec.label: fields
        for spec in finished
        if (fields := differs_from(run_folder(out, spec), run_record(spec, config, [])))
    }
    if other and not overwrite:  # a finished run of other settings must not pass for this one in the report
        raise RunMismatchError(
            f"{out} holds finished runs of other settings: "
            + "; ".join(f"{label} (differs in: {', '.join(fields)})" for label, fields in other.items())
            + ". Sweep into another --out, or pass --mode overwrite to run them again."
        )
    todo = [spec for spec in runs if overwrite or spec not in finished]
    log(f"{len(runs)} runs, {len(runs) - len(todo)} done, {len(todo)} to run into {out} on {backend.describe()}")
    jobs = max(1, min(config.jobs or os.cpu_count() or 1, len(todo) or 1))
    if config.reward_worker == "auto":  # a worker per run only where it has a core of its own (a Ray task has one)
        spare_core = not backend.ray and 2 * jobs <= (os.cpu_count() or 1)
        config = dataclasses.replace(config, reward_worker="on" if spare_core else "off")
    gpus = 1.0 if config.device.startswith("cuda") else 0.0
    outcomes = run_all(
        [  # absolute folders: a Ray worker need not start where the sweep did
            Job(spec.label, _run_in_worker, (spec, config, str(run_folder(out, spec).resolve()), overwrite), gpus)
            for spec in todo
        ],
        jobs=jobs,
        backend=backend,
        log=log,
    )
    folders = {spec.label: str(run_folder(out, spec)) for spec in todo}
    failed = {
        outcome.label: {"folder": folders[outcome.label], "error": outcome.error}
        for outcome in outcomes
        if outcome.error is not None
    }
    failures = Path(out) / FAILURES_FILE
    if failed:
        write_json_atomic(failures, failed)
    else:
        failures.unlink(missing_ok=True)
    check_outcomes(outcomes, where=lambda outcome: folders[outcome.label])
    return runs
