"""``vlm-rewards benchmark``: the study as one offline command.

Stages, each cached in the output folder (re-running skips what is done and
resumes what was interrupted):

1. collect training demonstrations (training tasks only);
2. collect evaluation demonstrations with another seed: new episodes of the
   training tasks, and episodes of held-out tasks (ML45 test tasks, never seen
   by any training stage);
3. get the backbone: the package's own, pretrained on the training data and
   cached (``quick``, ``full``), or named weights (``paper``);
4. train every objective with the same backbone, batches, budget and seed;
5. evaluate every checkpoint on both evaluation splits; write ``report.md``,
   ``benchmark.json`` and ``benchmark.png``, and print the table.

Example:
    >>> result = run_benchmark(PRESETS["quick"], "runs/quick")   # doctest: +SKIP
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import torch

from vlm_reward_wrappers.configs import resolve_device, to_dict
from vlm_reward_wrappers.data import DemoDataset, collect
from vlm_reward_wrappers.data.storage import config_id
from vlm_reward_wrappers.evaluation import evaluate
from vlm_reward_wrappers.evaluation.evaluate import EVALUATION_FORMAT, METRICS_KEYS, TABLE_FILES
from vlm_reward_wrappers.evaluation.references import (
    NEAREST,
    PIXEL_SIDE,
    Embed,
    FrameFree,
    frame_free_reference,
    knn_progress_reference,
    pixel_vectors,
)
from vlm_reward_wrappers.evaluation.scoring import load_table, save_table
from vlm_reward_wrappers.execution import Backend, Job, check_outcomes, run_all
from vlm_reward_wrappers.io_utils import CACHE_VARIABLE, cache_dir, read_json, write_json_atomic, write_text_atomic
from vlm_reward_wrappers.locking import writing
from vlm_reward_wrappers.metrics import DEFAULT_DELTA, METRICS, FrameTable, MetricSettings
from vlm_reward_wrappers.metrics.off_expert import PROBE_KEYS, gate, off_expert_probe
from vlm_reward_wrappers.metrics.time_balanced import EPISODE_KINDS
from vlm_reward_wrappers.models import (
    BackboneSpec,
    Demonstration,
    RewardModel,
    is_checkpoint,
    read_checkpoint_config,
)
from vlm_reward_wrappers.models.demonstration import dataset_demonstrations
from vlm_reward_wrappers.models.features import backbone_features
from vlm_reward_wrappers.objectives import get_objective
from vlm_reward_wrappers.study.presets import PRESETS, SPLITS, VARIANTS, Preset
from vlm_reward_wrappers.study.report import (
    COMPARED_WITH,
    HEADLINE,
    Row,
    best_demonstration_row,
    data_summary,
    held_out_table,
    machine_description,
    off_expert_summary,
    plot_benchmark,
    plot_learning_curves,
    reference_rows,
    render_report,
    results_tables,
    study_rows,
    training_budget,
)
from vlm_reward_wrappers.study.statistics import compare_objectives
from vlm_reward_wrappers.training.adapt import AdaptConfig, adapt
from vlm_reward_wrappers.training.plateau import late_improvement
from vlm_reward_wrappers.training.pretrain import pretrain_backbone
from vlm_reward_wrappers.training.trainer import STATE_NAME, NonFiniteLossError, RunMismatchError, TrainConfig, train

__all__ = ["PRESETS", "run_benchmark"]


TIMINGS_NAME = "timings.json"
"""Wall time per stage, summed over every run of the benchmark into its folder (a run over several sittings)."""


class _StageClock:
    """Times the stages of a run, and keeps ``timings.json``: each stage's wall time summed over every run.

    The current stage's time so far is written every ``flush_every`` seconds and when it ends, so a run killed
    mid-stage loses at most that much; re-runs that find a stage done add the little time they spend checking it.
    """

    def __init__(self, out: Path, log: Callable[[str], None], flush_every: float = 30.0) -> None:
        self.path = out / TIMINGS_NAME
        self.log = log
        self.flush_every = flush_every
        earlier: dict[str, Any] = read_json(self.path) if self.path.is_file() else {"runs": 0, "stages": {}}
        self.runs: int = earlier["runs"] + 1
        self.earlier_runs: dict[str, float] = earlier["stages"]
        self.this_run: dict[str, float] = {}
        self._lock = threading.Lock()

    @property
    def all_runs(self) -> dict[str, float]:
        """Each stage's seconds summed over the earlier runs and this one."""
        with self._lock:
            stages = {**self.earlier_runs, **self.this_run}
            return {stage: self.earlier_runs.get(stage, 0.0) + self.this_run.get(stage, 0.0) for stage in stages}

    def _write(self) -> None:
        write_json_atomic(self.path, {"runs": self.runs, "stages": self.all_runs})

    @contextmanager
    def stage(self, name: str, message: str) -> Iterator[None]:
        """Log ``message``, run the block, and add its wall time to stage ``name``."""
        self.log(message)
        started = time.perf_counter()
        done = threading.Event()

        def tick() -> None:
            while not done.wait(self.flush_every):
                with self._lock:
                    self.this_run[name] = time.perf_counter() - started
                self._write()

        ticker = threading.Thread(target=tick, name=f"timing {name}", daemon=True)
        ticker.start()
        try:
            yield
        finally:
            done.set()
            ticker.join()
            with self._lock:
                self.this_run[name] = time.perf_counter() - started
            self._write()


_DEFAULT_RUN = {
    field.name: field.default for field in dataclasses.fields(TrainConfig) if field.default is not dataclasses.MISSING
}


def is_trained(folder: Path, config: TrainConfig, steps: int, backbone: BackboneSpec | None = None) -> bool:
    """Whether ``folder`` holds a finished run of ``config`` that took ``steps`` steps (on ``backbone``, if given).

    Raises RunMismatchError when it holds a finished run of other settings, which a benchmark never reuses.
    """
    if not is_checkpoint(folder) or not (folder / STATE_NAME).is_file():
        return False
    stored_config = read_checkpoint_config(folder)[0]
    if backbone is not None and backbone.sha256 is not None and stored_config.backbone.sha256 != backbone.sha256:
        raise RunMismatchError(
            f"{folder} holds a run on another backbone (weights sha256 {stored_config.backbone.sha256}); run the "
            "benchmark into another --out, or delete that folder to train it again"
        )
    training = stored_config.training
    wanted = {key: value for key, value in config.resume_key().items() if key != "init_from"}  # a path's spelling
    # a setting added to TrainConfig after the run was trained took its default there
    stored = {**_DEFAULT_RUN, **training.get("config", {})}
    changed = sorted(key for key in wanted if stored.get(key) != wanted[key])
    if changed:
        raise RunMismatchError(
            f"{folder} holds a run with other settings (differs in: {', '.join(changed)}); run the benchmark "
            "into another --out, or delete that folder to train it again"
        )
    return training.get("steps") == steps or training.get("stopped") == "plateau"


def run_benchmark(
    preset: Preset,
    out: str | os.PathLike,
    *,
    backbone: BackboneSpec | None = None,
    log: Callable[[str], None] = print,
    progress: bool = True,
    device: str | None = None,
    backend: Backend | None = None,
) -> dict[str, Any]:
    """Run (or resume) a benchmark and write its report; return the results table.

    Args:
        preset: what to run (see :data:`PRESETS`).
        out: output folder; holds data, checkpoints, evaluations and the report.
        backbone: overrides the preset's backbone (e.g. local SigLIP2 weights).
        log: where stage messages go.
        progress: show progress bars inside stages.
        device: where training and evaluation run (default: ``cuda`` when torch sees a GPU, else ``cpu``); the
            package's own backbone is pretrained on the CPU.
        backend: where the independent runs of a stage go (backbones, trainings, adaptations, evaluations): one
            after another in this process (the default), or as Ray tasks (``Backend(ray=True)``), each declaring
            the CPUs of this process's torch threads and using as many, and this process's package cache, so that
            they compute what this process would. ``out`` and the cache must be folders every Ray node sees.

    A second benchmark into ``out`` waits for this one (one writer per folder), then finds its work done.
    """
    runner = _Runner(resolve_device(device), progress, backend or Backend(), log)
    with writing(out):
        # a Ray task need not start where this process did: it gets absolute paths
        return _run_locked(preset, Path(out).resolve() if runner.backend.ray else Path(out), backbone, runner)


@dataclass(frozen=True)
class _Runner:
    """How a benchmark's stages run their independent runs: on ``device``, with progress bars or not, here or on
    Ray (``backend``), logging to ``log``."""

    device: str
    progress: bool
    backend: Backend
    log: Callable[[str], None]

    def run(self, jobs: list[Job]) -> list[Any]:
        """Each job's value. Here: called in this process, in order. On Ray: a task each, with this process's torch
        threads (the same computation, so the same results); a job that fails raises :class:`RunsFailedError`
        once every other job has ended, naming it."""
        if not self.backend.ray:
            return [job.function(*job.arguments) for job in jobs]
        threads, cache = torch.get_num_threads(), str(cache_dir().resolve())
        tasks = [
            Job(job.label, _as_here, (threads, cache, job.function, *job.arguments), job.gpus, cpus=threads)
            for job in jobs
        ]
        outcomes = run_all(tasks, jobs=len(tasks), backend=self.backend, log=self.log)
        check_outcomes(outcomes)
        return [outcome.value for outcome in outcomes]

    @property
    def gpus(self) -> float:
        return 1.0 if self.device.startswith("cuda") else 0.0

    @property
    def bars(self) -> bool:
        """Progress bars: only in this process (a Ray task's would interleave with the others')."""
        return self.progress and not self.backend.ray


def _as_here(threads: int, cache: str, function: Callable[..., Any], *arguments: Any) -> Any:
    """``function(*arguments)`` with this process's torch threads and package cache (where backbones and features
    are kept): a Ray task computes what the benchmark's own process would, from the same cache."""
    torch.set_num_threads(threads)
    os.environ[CACHE_VARIABLE] = cache
    return function(*arguments)


def _run_locked(preset: Preset, out: Path, backbone: BackboneSpec | None, runner: _Runner) -> dict[str, Any]:
    """:func:`run_benchmark`, by the process that holds the lock of ``out``."""
    log, progress = runner.log, runner.progress
    out.mkdir(parents=True, exist_ok=True)
    backbone = backbone or preset.backbone
    started = time.perf_counter()
    clock = _StageClock(out, log)

    tasks = f"{len(preset.train_tasks)} tasks x {preset.train_episodes} episodes"
    with clock.stage("collect training data", f"[1/5] collecting training demonstrations ({tasks})"):
        train_data = collect(preset.train_collection(), out / "data" / "train", progress=progress)

    with clock.stage(
        "collect evaluation data",
        f"[2/5] collecting evaluation demonstrations (another seed; {len(preset.held_out_tasks)} held-out tasks), "
        "and demonstrations that give the held-out tasks (a seed of their own)",
    ):
        eval_data = collect(preset.eval_collection(), out / "data" / "eval", progress=progress)
        demo_data: DemoDataset | None = None
        demonstrations: dict[str, list[Demonstration]] = {}
        if preset.demonstrations:
            demo_data = collect(preset.demo_collection(), out / "data" / "demos", progress=progress)
            demonstrations = dataset_demonstrations(demo_data, preset.held_out_tasks, preset.demonstrations)

    own = f"the package's own {preset.pretrain.model}, one pretrained on the training data per seed (cached)"
    with clock.stage("backbone", f"[3/5] backbone: {f'{backbone.model} ({backbone.pretrained})' if backbone else own}"):
        if backbone is not None:
            backbones = dict.fromkeys(preset.seeds, backbone)
        else:
            pretrain = [
                Job(f"backbone seed {seed}", _pretrain, (train_data.root, preset, seed, runner.bars))
                for seed in preset.seeds
            ]
            backbones = dict(zip(preset.seeds, runner.run(pretrain), strict=True))

    with clock.stage(
        "training",
        f"[4/5] training {len(preset.objectives)} objectives x {len(preset.seeds)} seed(s), "
        f"{training_budget(preset.train_steps, preset.train_min_steps)} each ({preset.finetune})",
    ):
        learning_rates = _choose_learning_rates(preset, out, train_data, backbones, runner)
        checkpoints = _train_objectives(preset, out, train_data, backbones, learning_rates, runner)
        if preset.adapt_demonstrations and demo_data is not None:
            counts = preset.adapt_demonstrations
            log(f"      adapting every checkpoint to the held-out tasks on {counts} demonstration(s)")
            checkpoints.update(_adapt_checkpoints(preset, out, checkpoints, demo_data, runner))

    with clock.stage(
        "evaluation and statistics",
        "[5/5] evaluating every checkpoint and the reference predictors on held-out episodes and held-out tasks; "
        "paired statistics; the off-expert probe",
    ):
        _evaluate_checkpoints(preset, out, checkpoints, eval_data, demonstrations, runner)
        rows = reference_rows(preset) + study_rows(preset)
        _score_references(preset, out, rows, checkpoints, train_data, eval_data)
        tables = {split: _frame_tables(out, rows, preset.seeds, split) for split in SPLITS}
        statistics = {split: _statistics(preset, rows, tables[split]) for split in SPLITS}
        held_out = [row for row in rows if "held-out-tasks" in row.splits and not row.reference]
        held_out_per_task = {row.label: _per_task(out, row, preset.seeds) for row in held_out}
        off_expert = _off_expert(tables["train-tasks"])
        by_kind = _by_episode_kind(tables["train-tasks"])

    trainings = {  # of the study's own training runs, not the adaptations
        variant: [read_checkpoint_config(checkpoints[(variant, s)])[0].training for s in preset.seeds]
        for variant in preset.objectives
    }
    histories = {variant: [run.get("history", []) for run in runs] for variant, runs in trainings.items()}
    all_runs = clock.all_runs
    result: dict[str, Any] = {
        "preset": to_dict(preset),
        "backbone": to_dict(backbones[preset.seeds[0]]),
        "backbones": {str(seed): to_dict(spec) for seed, spec in backbones.items()},
        "rows": [to_dict(row) for row in rows],
        "statistics": statistics,
        "learning_rates": learning_rates,
        "held_out_per_task": held_out_per_task,
        "off_expert": off_expert,
        "by_episode_kind": by_kind,
        "learning": {variant: [late_improvement(run) for run in runs] for variant, runs in histories.items()},
        "steps_trained": {variant: [run.get("steps", 0) for run in runs] for variant, runs in trainings.items()},
        "data": {"train": data_summary(train_data), "eval": data_summary(eval_data)},
        "timings_s": {**clock.this_run, "total": time.perf_counter() - started},
        "timings_all_runs_s": {**all_runs, "total": sum(all_runs.values())},
        "runs": clock.runs,
        "machine": machine_description(),
        "delta": DEFAULT_DELTA,
    }
    write_json_atomic(out / "benchmark.json", result)
    plot_learning_curves(histories, out / "learning_curves.png")
    plot_benchmark(statistics, out / "benchmark.png")
    write_text_atomic(out / "report.md", render_report(result))
    log("\n" + results_tables(result))
    log("\noff the expert path, training tasks (means over seeds; per task in the report)\n")
    log(off_expert_summary(result))
    if best_demonstration_row(result) is not None:
        headline = METRICS[HEADLINE].label
        log(f"\nheld-out tasks by how the task is given (pooled {headline} [95% interval] / pooled VOC)\n")
        log(held_out_table(result))
    minutes = result["timings_all_runs_s"]["total"] / 60
    summed = f" ({minutes:.1f} min summed over {clock.runs} runs into {out})" if clock.runs > 1 else ""
    machine = result["machine"]
    log(
        f"\nwall time {result['timings_s']['total'] / 60:.1f} min{summed} on {machine['processor']}, "
        f"{machine['cpus']} CPUs, GPU: {machine['cuda'] or 'none'}; report: {out / 'report.md'}"
    )
    return result


def _pretrain(data: Path, preset: Preset, seed: int, progress: bool) -> BackboneSpec:
    """The package's own backbone of training seed ``seed`` (pretrained, or found in the cache)."""
    return pretrain_backbone(data, tasks=preset.train_tasks, config=preset.pretrain_config(seed), progress=progress)


def _train_once(
    folder: Path, config: TrainConfig, data: Path, backbone: BackboneSpec, progress: bool, device: str
) -> Path:
    """Train ``config`` into ``folder`` unless it holds that finished run already."""
    steps = config.max_steps if get_objective(config.objective, **config.objective_options).trains else 0
    if not is_trained(folder, config, steps, backbone):
        train(config, data, folder, backbone=backbone, progress=progress, device=device)
    return folder


def _tuning_loss(
    folder: Path, config: TrainConfig, data: Path, backbone: BackboneSpec, progress: bool, device: str
) -> float | None:
    """The validation loss of one run of the learning-rate sweep (trained unless done); None when it diverged."""
    try:
        _train_once(folder, config, data, backbone, progress, device)
    except NonFiniteLossError:
        return None
    loss = read_checkpoint_config(folder)[0].training["best_validation"].get("validation_loss")
    return loss if loss is not None and math.isfinite(loss) else None


def _choose_learning_rates(
    preset: Preset, out: Path, train_data: DemoDataset, backbones: dict[int, BackboneSpec], runner: _Runner
) -> dict[str, dict[str, Any]]:
    """Sweep the preset's learning rates for every trained row and choose, per row, the rate of the lowest
    validation loss (the row's own loss on the training tasks' validation episodes; no evaluation episode is ever
    looked at). The sweep runs on the first seed's backbone with a head seed no final run uses
    (:func:`tuning_seed`), so no final checkpoint is the winner of a selection. A rate whose training diverges
    loses. Returns, per row: each rate's loss (None: diverged) and the chosen rate."""
    seed, choices = tuning_seed(preset), {}
    swept = [
        variant
        for variant in preset.objectives
        if preset.swept_learning_rates and get_objective(VARIANTS[variant][0], **VARIANTS[variant][1]).trains
    ]
    runs = [(variant, rate) for variant in swept for rate in preset.swept_learning_rates]
    jobs = [
        Job(
            f"{variant} at learning rate {rate:g}",
            _tuning_loss,
            (
                out / "tuning" / f"{variant}-lr{rate:g}-seed{seed}",
                preset.train_config(variant, seed, rate),
                train_data.root,
                backbones[preset.seeds[0]],
                runner.bars,
                runner.device,
            ),
            runner.gpus,
        )
        for variant, rate in runs
    ]
    swept_losses = dict(zip(runs, runner.run(jobs), strict=True))
    for variant in swept:
        losses = {f"{rate:g}": swept_losses[(variant, rate)] for rate in preset.swept_learning_rates}
        finite = {rate: loss for rate, loss in losses.items() if loss is not None}
        if not finite:
            raise NonFiniteLossError(
                f"{variant} diverged at every learning rate of the sweep {preset.learning_rates}; "
                "give the preset smaller --learning-rates"
            )
        choices[variant] = {"validation_loss": losses, "chosen": float(min(finite, key=finite.__getitem__))}
    return choices


def tuning_seed(preset: Preset) -> int:
    """The head seed of the learning-rate sweep: one past the preset's seeds, so no final run is a sweep's run."""
    return max(preset.seeds) + 1


def _train_objectives(
    preset: Preset,
    out: Path,
    train_data: DemoDataset,
    backbones: dict[int, BackboneSpec],
    learning_rates: dict[str, dict[str, Any]],
    runner: _Runner,
) -> dict[tuple[str, int], Path]:
    """Train (or find trained) every row of the preset with every seed on that seed's backbone, at its chosen
    learning rate (without a sweep: the preset's one rate, or the finetuning mode's default)."""
    runs = [(variant, seed) for seed in preset.seeds for variant in preset.objectives]
    jobs = [
        Job(
            f"{variant} seed {seed}",
            _train_once,
            (
                checkpoint_folder(out, variant, seed),
                preset.train_config(variant, seed, learning_rates.get(variant, {}).get("chosen")),
                train_data.root,
                backbones[seed],
                runner.bars,
                runner.device,
            ),
            runner.gpus,
        )
        for variant, seed in runs
    ]
    return dict(zip(runs, runner.run(jobs), strict=True))


def _adapt_checkpoints(
    preset: Preset,
    out: Path,
    checkpoints: dict[tuple[str, int], Path],
    demo_data: DemoDataset,
    runner: _Runner,
) -> dict[tuple[str, int], Path]:
    """Adapt (or find adapted) every checkpoint to the held-out tasks on each number of demonstrations."""
    runs, jobs = [], []
    for (variant, seed), folder in checkpoints.items():
        objective, options = VARIANTS[variant]
        steps = preset.adapt_steps if get_objective(objective, **options).trains else 0
        for count in preset.adapt_demonstrations:
            adapted_folder = out / "adapted" / f"{folder.name}-adapted{count}"
            adapt_config = AdaptConfig(demonstrations=count, max_steps=preset.adapt_steps, seed=seed)
            arguments = (folder, demo_data.root, adapted_folder, adapt_config, steps, runner.bars, runner.device)
            runs.append((f"{variant}-adapted{count}", seed))
            jobs.append(Job(f"{folder.name} adapted on {count}", _adapt_once, arguments, runner.gpus))
    return dict(zip(runs, runner.run(jobs), strict=True))


def _adapt_once(
    folder: Path, data: Path, out: Path, config: AdaptConfig, steps: int, progress: bool, device: str
) -> Path:
    """Adapt the checkpoint ``folder`` into ``out`` unless it holds that finished adaptation already."""
    if not is_trained(out, config.train_config(folder, tuple(DemoDataset(data).tasks)), steps):
        adapt(folder, data, out, config, progress=progress, device=device)
    return out


def _evaluate_checkpoints(
    preset: Preset,
    out: Path,
    checkpoints: dict[tuple[str, int], Path],
    eval_data: DemoDataset,
    demonstrations: dict[str, list[Demonstration]],
    runner: _Runner,
) -> None:
    """Evaluate every checkpoint on its splits, unless its weights and demonstrations were evaluated already."""
    jobs = []
    split_tasks = {"train-tasks": list(preset.train_tasks), "held-out-tasks": list(preset.held_out_tasks)}
    split_demos = {"train-tasks": {}, "held-out-tasks": demonstrations}
    for (variant, seed), folder in checkpoints.items():
        weights_sha256 = read_checkpoint_config(folder)[1]
        is_adapted = "-adapted" in variant
        for split, tasks in split_tasks.items():
            if is_adapted and split != "held-out-tasks":
                continue
            target = out / "eval" / folder.name / split
            metrics_file = target / "metrics.json"
            demos = {} if is_adapted else split_demos[split]
            wanted = {task: [demo.name for demo in given] for task, given in demos.items()}
            evaluated = read_json(metrics_file)["evaluated"] if metrics_file.is_file() else {}
            if (
                evaluated.get("weights_sha256") != weights_sha256
                or evaluated.get("demonstrations", {}) != wanted
                or evaluated.get("format") != EVALUATION_FORMAT
            ):
                plots = seed == preset.seeds[0]  # reward curves of one seed per row: the figures cost seconds each
                arguments = (folder, eval_data.root, target, tasks, demos, plots, runner.device)
                jobs.append(Job(f"evaluate {folder.name} on {split}", _evaluate_once, arguments, runner.gpus))
    runner.run(jobs)


def _evaluate_once(
    folder: Path,
    data: Path,
    out: Path,
    tasks: list[str],
    demonstrations: dict[str, list[Demonstration]],
    plots: bool,
    device: str,
) -> None:
    """One evaluation of the benchmark: a checkpoint on one split's tasks, with the given demonstrations."""
    evaluate(folder, data, out, tasks=tasks, seed=0, demonstrations=demonstrations, plots=plots, device=device)


def _score_references(
    preset: Preset,
    out: Path,
    rows: list[Row],
    checkpoints: dict[tuple[str, int], Path],
    train_data: DemoDataset,
    eval_data: DemoDataset,
) -> None:
    """Write the reference rows' frame tables, on the frames of the first sentence row's native tables.

    The frame-free ones are recomputed every run (they cost nothing); a nearest-neighbour table is kept while
    its ``reference.json`` matches what it was computed from (evaluated frames, training data, backbone, settings).
    """
    template_variant = next(
        (row.variant for row in rows if not row.reference and row.goal_kind == "sentence" and row.reward == "native"),
        None,
    )
    if template_variant is None:  # only image-goal rows (a sweep training TCN alone): no table covers every task
        return
    split_data = {  # as each evaluation selected them: a table numbers its episodes within its selection
        "train-tasks": DemoDataset(eval_data.root, tasks=preset.train_tasks),
        "held-out-tasks": DemoDataset(eval_data.root, tasks=preset.held_out_tasks),
    }
    computed: dict[str, FrameTable | None] = {}
    for seed in preset.seeds:
        model: RewardModel | None = None
        template_folder = out / "eval" / checkpoint_folder(out, template_variant, seed).name
        for split in SPLITS:
            template = load_table(template_folder / split / TABLE_FILES["native"])
            evaluated = split_data[split]
            for row in (row for row in rows if row.reference and split in row.splits):
                target = out / "eval" / checkpoint_folder(out, row.variant, seed).name / split / row.table_file
                name = row.variant.removeprefix("ref-")
                table: FrameTable | None
                made_from: dict[str, Any] | None = None
                if name not in ("pixel-knn", "backbone-knn"):
                    table = frame_free_reference(template, cast(FrameFree, name))
                else:
                    model = model or RewardModel.from_pretrained(checkpoints[(preset.objectives[0], seed)])
                    made_from = {
                        "format": REFERENCE_FORMAT,
                        "frames": hashlib.sha256(template.episode.tobytes() + template.step.tobytes()).hexdigest(),
                        "evaluated": [str(info.path.relative_to(evaluated.root)) for info in evaluated.episodes],
                        "train": [config_id(collection) for collection in train_data.collections],
                        "backbone": model.config.backbone.sha256 if name == "backbone-knn" else None,
                        "nearest": NEAREST,
                        "pixel_side": PIXEL_SIDE,
                    }
                    record = target.parent / f"{target.stem}.reference.json"
                    if target.is_file() and record.is_file() and read_json(record) == made_from:
                        continue
                    key = json.dumps(made_from, sort_keys=True)  # the same inputs (pixels of every seed): computed once
                    if key not in computed:
                        embed = pixel_vectors if name == "pixel-knn" else _backbone_embedding(model)
                        metric: Literal["euclidean", "cosine"] = "euclidean" if name == "pixel-knn" else "cosine"
                        computed[key] = knn_progress_reference(template, train_data, evaluated, embed, metric=metric)
                    table = computed[key]
                if table is not None:
                    target.parent.mkdir(parents=True, exist_ok=True)
                    save_table(table, target)
                    if made_from is not None:  # after the table: a kill in between leaves a table without a record
                        write_json_atomic(target.parent / f"{target.stem}.reference.json", made_from)


REFERENCE_FORMAT = 2
"""Bumped when a reference predictor's definition changes: stored nearest-neighbour tables are then recomputed."""


def _backbone_embedding(model: RewardModel) -> Embed:
    """The frozen backbone's image features of a dataset's frames, as arrays (cached like every evaluation's)."""

    def embed(dataset: DemoDataset, episodes: Sequence[int]) -> dict[int, np.ndarray]:
        return {
            index: value.float().cpu().numpy() for index, value in backbone_features(model, dataset, episodes).items()
        }

    return embed


def _statistics(preset: Preset, rows: list[Row], tables: dict[str, list[FrameTable]]) -> dict[str, Any]:
    """Every headline metric of every row's tables on a split, paired; objectives compared with
    :data:`COMPARED_WITH`."""
    family = [row.label for row in rows if not row.reference and row.label in tables]
    return compare_objectives(
        tables,
        num_resamples=preset.num_resamples,
        reference=COMPARED_WITH if COMPARED_WITH in tables else None,
        family=family,
    )


def _off_expert(train_tables: dict[str, list[FrameTable]]) -> dict[str, dict[str, dict[str, Any]]]:
    """The off-expert probe of every row on the training tasks' evaluation episodes: per task, the mean over seeds
    (for yes/no answers: the share of seeds answering yes; ``gate_pass``: the share of seeds passing the gate)."""
    probes = {}
    for label, tables in train_tables.items():
        per_seed = [off_expert_probe(table) for table in tables]
        probes[label] = {
            task: {
                **{key: _mean_answer([probe[task][key] for probe in per_seed]) for key in PROBE_KEYS},
                "gate_pass": float(np.mean([not gate(probe[task]) for probe in per_seed])),
            }
            for task in per_seed[0]
        }
    return probes


def _by_episode_kind(train_tables: dict[str, list[FrameTable]]) -> dict[str, dict[str, float | None]]:
    """Per row on the training tasks: the headline and the within-episode accuracy on each kind of episode
    (clean experts, noisy experts, random policy), means over seeds."""
    keys = [f"{prefix}_{kind}" for prefix in ("time_balanced", "ranking_accuracy_within") for kind in EPISODE_KINDS]
    settings = MetricSettings()
    result = {}
    for label, tables in train_tables.items():
        details = [
            {
                **METRICS[HEADLINE].compute(table, settings).details,
                **METRICS["ranking_accuracy_within"].compute(table, settings).details,
            }
            for table in tables
        ]
        result[label] = {key: _mean_answer([found[key] for found in details]) for key in keys}
    return result


def _mean_answer(values: list[Any]) -> float | None:
    """The mean of the seeds' values (booleans count as 0 and 1); None when a seed has none."""
    return None if any(value is None for value in values) else float(np.mean([float(value) for value in values]))


def checkpoint_folder(out: Path, variant: str, seed: int) -> Path:
    """Where the benchmark keeps the checkpoint of one objective and seed."""
    return out / "checkpoints" / f"{variant}-seed{seed}"


def _per_task(out: Path, row: Row, seeds: tuple[int, ...]) -> dict[str, dict[str, float | None]]:
    """A row's headline metric and VOC per held-out task, means over seeds (from the evaluations' metrics)."""
    values: dict[str, dict[str, list[float]]] = {}
    key = METRICS_KEYS.get(row.reward)
    for seed in seeds:
        folder = out / "eval" / (checkpoint_folder(out, row.variant, seed).name + row.checkpoint_suffix)
        metrics_file = folder / "held-out-tasks" / "metrics.json"
        if not metrics_file.is_file():
            continue
        metrics = read_json(metrics_file)
        block = metrics.get(key, {}) if key else metrics
        for task, task_metrics in block.get("per_task", {}).items():
            for name in (HEADLINE, "voc"):
                if task_metrics.get(name) is not None:
                    values.setdefault(task, {}).setdefault(name, []).append(task_metrics[name])
    return {
        task: {name: float(np.mean(found[name])) if found.get(name) else None for name in (HEADLINE, "voc")}
        for task, found in values.items()
    }


def _frame_tables(out: Path, rows: list[Row], seeds: tuple[int, ...], split: str) -> dict[str, list[FrameTable]]:
    """Each row's frame table of every seed on a split; rows without one (image goals, held-out tasks) are left out."""
    tables = {}
    for row in rows:
        names = [checkpoint_folder(out, row.variant, seed).name + row.checkpoint_suffix for seed in seeds]
        paths = [out / "eval" / name / split / row.table_file for name in names]
        if all(path.is_file() for path in paths):
            tables[row.label] = [load_table(path) for path in paths]
    return tables
