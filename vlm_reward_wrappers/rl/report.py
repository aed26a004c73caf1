"""The RL sweep's report: a table (task x reward source) and success curves, from the run folders on disk.

For each task and reward source, over its seeds: the final success rate, the
mean success rate over the whole curve (its area, a sample-efficiency summary),
the env steps to the first evaluation at 50% success or more, and, for learned
sources, the offline measures on that task that ``evaluate`` gave their
checkpoints (the headline time-balanced accuracy and the success AUC; ranking
accuracy and VOC in ``summary.json``; none for a checkpoint outside a benchmark
folder) and the gate's verdict with the success AUC of its probe (any checkpoint). Each source is
compared with ``sparse`` at equal steps, seed by seed; across tasks with
rliable; and the offline measures with the online gain over ``sparse``.

Example:
    >>> table = write_rl_report("runs/rl-quick")   # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from vlm_reward_wrappers.evaluation.plots import new_figure
from vlm_reward_wrappers.evaluation.report import PROBE_LEGEND, probe_table
from vlm_reward_wrappers.io_utils import read_json, write_json_atomic, write_text_atomic
from vlm_reward_wrappers.rl.config import FAILURES_FILE, SWEEP_FILE
from vlm_reward_wrappers.rl.gate import GATE_FILE, PROBE_EPISODES
from vlm_reward_wrappers.rl.run import is_done, read_curve, read_run
from vlm_reward_wrappers.rl.sources import SPARSE
from vlm_reward_wrappers.rl.statistics import Scores, across_tasks, paired_interval, rank_correlation
from vlm_reward_wrappers.study.report import machine_description

SUCCESS_THRESHOLD = 0.5


@dataclass(frozen=True)
class RunResult:
    """One run as read back from its folder."""

    task: str
    source: str
    seed: int
    curve: list[dict[str, float]]
    record: dict[str, Any]
    done: bool

    @property
    def steps(self) -> np.ndarray:
        return np.array([row["step"] for row in self.curve])

    @property
    def success(self) -> np.ndarray:
        return np.array([row["success_rate"] for row in self.curve])

    def steps_to(self, threshold: float = SUCCESS_THRESHOLD) -> float:
        """Env steps at the first evaluation with success rate >= ``threshold`` (NaN if never)."""
        reached = np.flatnonzero(self.success >= threshold)
        return float(self.steps[reached[0]]) if reached.size else float("nan")


def read_results(out: str | os.PathLike) -> list[RunResult]:
    """Every run under ``out`` with at least one evaluation, sorted by task, source and seed."""
    results = []
    for record_path in sorted(Path(out).glob("*/*/seed*/run.json")):
        folder = record_path.parent
        if not (folder / "curve.csv").is_file():
            continue
        record = read_run(folder)
        results.append(
            RunResult(
                record["task"], record["source"], int(record["seed"]), read_curve(folder), record, is_done(folder)
            )
        )
    return sorted(results, key=lambda result: (result.task, result.source, result.seed))


OFFLINE_MEASURES = ("time_balanced_accuracy", "success_auroc", "ranking_accuracy", "voc")
"""What the report takes from a checkpoint's offline evaluation of a task."""


def offline_metrics(checkpoint: str | None, task: str) -> dict[str, float | None] | None:
    """The :data:`OFFLINE_MEASURES` of a benchmark checkpoint on ``task``, from the benchmark's ``evaluate`` output.

    A checkpoint ``X/checkpoints/NAME`` of ``vlm-rewards benchmark`` was evaluated into
    ``X/eval/NAME/<split>/metrics.json``; other checkpoints have none (None).
    """
    if checkpoint is None:
        return None
    path = Path(checkpoint)
    for metrics_path in sorted((path.parent.parent / "eval" / path.name).glob("*/metrics.json")):
        per_task = read_json(metrics_path).get("per_task", {})
        if task in per_task:
            return {measure: per_task[task].get(measure) for measure in OFFLINE_MEASURES}
    return None


def _spread(values: list[float], digits: int = 2) -> str:
    """``mean [min, max]`` of values (just the value for one)."""
    finite = [value for value in values if np.isfinite(value)]
    if not finite:
        return "—"
    mean = f"{np.mean(finite):.{digits}f}"
    return mean if len(finite) == 1 else f"{mean} [{min(finite):.{digits}f}, {max(finite):.{digits}f}]"


def _none_if_nan(value: float) -> float | None:
    """JSON has no NaN: never reached is null."""
    return None if np.isnan(value) else value


def _steps(count: float) -> str:
    """Env steps as ``12k`` (or ``600`` below a thousand)."""
    return f"{count / 1000:.0f}k" if count >= 1000 else f"{count:.0f}"


def _steps_to(values: list[float | None]) -> str:
    reached = [value for value in values if value is not None]
    if not reached:
        return f"not reached (0/{len(values)})"
    return f"{_steps(float(np.mean(reached)))} ({len(reached)}/{len(values)} seeds)"


def source_order(results: list[RunResult], out: str | os.PathLike | None = None) -> list[str]:
    """The reward sources of the runs: in the sweep's order where ``out/sweep.json`` gives it, then the rest."""
    recorded = []
    if out is not None and (Path(out) / SWEEP_FILE).is_file():
        recorded = list(read_json(Path(out) / SWEEP_FILE).get("sources", []))
    present = list(dict.fromkeys(result.source for result in results))
    return [source for source in recorded if source in present] + [s for s in present if s not in recorded]


def summary_rows(
    results: list[RunResult], sources: list[str] | None = None, gate: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One row per task and source: the values of the report's table (as numbers, for ``summary.json``); ``gate``
    is the sweep's ``gate.json`` (a learned source's verdict on the task: the gate's failures, [] for a pass)."""
    rows = []
    for task in sorted({result.task for result in results}):
        of_task = [result for result in results if result.task == task]
        sparse = {result.seed: result for result in of_task if result.source == SPARSE}
        for source in sources or source_order(results):
            if not any(result.source == source for result in of_task):
                continue
            runs = [result for result in of_task if result.source == source]
            offline = [offline_metrics(run.record.get("checkpoint"), task) for run in runs]
            gated = (gate or {}).get(source, {}).get(task, {})
            known = [metrics for metrics in offline if metrics is not None]
            versus_sparse = [
                float(np.mean(run.success) - np.mean(sparse[run.seed].success[: len(run.success)]))
                for run in runs
                if source != SPARSE and run.seed in sparse and len(sparse[run.seed].curve) >= len(run.curve)
            ]
            rows.append(
                {
                    "task": task,
                    "source": source,
                    "seeds": [run.seed for run in runs],
                    "steps": [int(run.steps[-1]) for run in runs],
                    "final_success": [float(run.success[-1]) for run in runs],
                    "mean_success": [float(np.mean(run.success)) for run in runs],
                    "steps_to_50": [_none_if_nan(run.steps_to()) for run in runs],
                    **{
                        measure: [metrics[measure] for metrics in known if metrics.get(measure) is not None]
                        for measure in OFFLINE_MEASURES
                    },
                    "gate": gated.get("gate"),
                    "gate_success_auroc": [
                        probe["success_auroc"]
                        for probe in gated.get("checkpoints", {}).values()
                        if probe.get("success_auroc") is not None  # none: no success frame in the rollouts
                    ],
                    "mean_success_minus_sparse": versus_sparse,
                    "minus_sparse_interval": paired_interval(versus_sparse),
                    "steps_per_s": [run.steps[-1] / max(run.curve[-1]["wall_s"], 1e-9) for run in runs],
                    "done": all(run.done for run in runs),
                }
            )
    return rows


def _verdict(failures: list[str] | None) -> str:
    """The gate's verdict on a task: pass, its failures, or — where the source was not gated (not learned)."""
    if failures is None:
        return "—"
    return "pass" if not failures else "fails: " + ", ".join(failures)


def _gate_auc(values: list[float]) -> str:
    """The gate probe's success AUC of a row's checkpoints (mean [min, max] over several), or nothing."""
    return f" ({_spread(values)})" if values else ""


def offline_online(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Across the rows (task, learned source) that have both: Spearman's ρ between each offline measure (the mean
    over the row's checkpoints) and the online gain over ``sparse`` (mean success over the curve minus sparse's,
    mean over paired seeds), with a bootstrap interval over the rows; None below 3 rows."""
    correlations = {}
    for measure in ("time_balanced_accuracy", "success_auroc", "gate_success_auroc"):
        pairs = [
            (float(np.mean(row[measure])), float(np.mean(row["mean_success_minus_sparse"])))
            for row in rows
            if row[measure] and row["mean_success_minus_sparse"]
        ]
        estimate = rank_correlation([offline for offline, _ in pairs], [gain for _, gain in pairs])
        correlations[measure] = {"rows": len(pairs), "spearman": estimate}
    return correlations


def _offline_online_section(correlations: dict[str, dict[str, Any]]) -> list[str]:
    labels = {
        "time_balanced_accuracy": "time-balanced accuracy (the headline)",
        "success_auroc": "success AUC",
        "gate_success_auroc": "success AUC on the gate's rollouts",
    }
    lines = [
        "## Offline measures against online success",
        "",
        "Does a reward's offline score predict how much it helps an agent? Per (task, learned source): the offline "
        "measure of its checkpoints on the task against its agents' mean success over the curve minus sparse's; "
        "Spearman's ρ over those rows with a 95% bootstrap interval (at least 3 rows).",
        "",
        "| offline measure | rows | Spearman ρ with the gain over sparse |",
        "|---|---|---|",
    ]
    for measure, entry in correlations.items():
        estimate = entry["spearman"]
        shown = "too few rows" if estimate is None else f"{estimate[0]:+.2f} [{estimate[1]:+.2f}, {estimate[2]:+.2f}]"
        lines.append(f"| {labels[measure]} | {entry['rows']} | {shown} |")
    return lines


def _interval(estimate: Sequence[float] | None, seeds: int) -> str:
    """A paired difference as ``+0.12 [+0.03, +0.20] (5 seeds)``."""
    if estimate is None:
        return "—"
    mean, low, high = estimate
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}] ({seeds} seed{'s' if seeds > 1 else ''})"


def markdown_table(rows: list[dict[str, Any]]) -> str:
    """The report's table: means with [min, max] over seeds, and the paired difference with sparse with its
    bootstrap interval."""
    lines = [
        "| task | reward | seeds | steps | final success | mean success over the curve | steps to 50% success "
        "| minus sparse (mean success over the curve, paired by seed, 95% interval) | offline time-balanced acc. "
        "| offline success AUC | gate (its probe's success AUC) | steps/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        steps = _steps(min(row["steps"])) + ("" if row["done"] else " (running)")
        lines.append(
            f"| {row['task']} | {row['source']} | {len(row['seeds'])} | {steps} | {_spread(row['final_success'])} "
            f"| {_spread(row['mean_success'])} | {_steps_to(row['steps_to_50'])} "
            f"| {_interval(row['minus_sparse_interval'], len(row['mean_success_minus_sparse']))} "
            f"| {_spread(row['time_balanced_accuracy'], 3)} | {_spread(row['success_auroc'], 3)} "
            f"| {_verdict(row['gate'])}{_gate_auc(row['gate_success_auroc'])} | {_spread(row['steps_per_s'], 0)} |"
        )
    return "\n".join(lines)


def plot_success_curves(results: list[RunResult], path: str | os.PathLike) -> None:
    """Success rate vs env steps, one panel per task: the mean over seeds, and its 95% bootstrap interval over
    seeds as a band."""
    tasks = sorted({result.task for result in results})
    sources = source_order(results, Path(path).parent)
    colors = {source: f"C{index}" for index, source in enumerate(sources)}
    figure = new_figure(4.0 * len(tasks), 3.2)
    axes = figure.subplots(1, len(tasks), squeeze=False)[0]
    for axis, task in zip(axes, tasks, strict=True):
        for source in sources:
            runs = [result for result in results if result.task == task and result.source == source]
            if not runs:
                continue
            length = min(len(run.curve) for run in runs)
            steps = runs[0].steps[:length]
            success = np.stack([run.success[:length] for run in runs])
            axis.plot(steps, success.mean(axis=0), color=colors[source], label=f"{source} ({len(runs)})")
            if len(runs) > 1:
                intervals = np.array([paired_interval(column) for column in success.T])  # (mean, low, high) per step
                axis.fill_between(steps, intervals[:, 1], intervals[:, 2], color=colors[source], alpha=0.2)
        axis.set_title(task)
        axis.set_xlabel("env steps")
        axis.set_ylim(-0.03, 1.03)
    axes[0].set_ylabel("success rate (evaluation)")
    axes[-1].legend(fontsize=8, loc="best")
    figure.suptitle("SAC success rate: mean over seeds (line), its 95% bootstrap interval (band); seeds in parentheses")
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def _reward_text(results: list[RunResult]) -> str:
    """What each source of the sweep paid per step, from the runs' records."""
    described = {}
    for result in results:
        record = result.record
        scale, bonus = record.get("reward_scale", 1.0), record.get("success_bonus", 0.0)
        if record.get("checkpoint"):
            learned = f"{scale:g} x {record.get('reward_mode') or 'normalized'}"
            described[result.source] = learned + (f" + {bonus:g} x success" if bonus else "")
        elif result.source == "gt":
            described[result.source] = f"{scale:g} x Meta-World's reward (0-10)"
        else:
            described[result.source] = f"{bonus:g} x success"
    return "; ".join(f"`{source}`: {text}" for source, text in described.items())


def _settings_text(results: list[RunResult]) -> str:
    settings = results[0].record["settings"]
    listed = ", ".join(f"{name} {value}" for name, value in sorted(settings.items()))
    return (
        f"SAC (stable-baselines3) on state observations, the same settings for every reward source: {listed}. "
        "They are SB3's SAC defaults except the replay buffer (as large as the run) and the random steps "
        f"before learning (1000, SB3: 100). Reward per step: {_reward_text(results)} (`progress`: the checkpoint's "
        "score mapped to per-task progress in [0, 1] by its calibration). Evaluation: deterministic actions on "
        "episodes with seeds never used in training; success means success at any step of an episode."
    )


def _gate_section(verdicts: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    """The gate's verdicts (``gate.json``): one line per learned source and task, the probe of its first checkpoint."""
    probes = {
        f"{source} on {task}": next(iter(entry["checkpoints"].values()))
        for source, tasks in verdicts.items()
        for task, entry in tasks.items()
    }
    failing = [name for name, probe in probes.items() if probe["gate"]]
    return [
        "## Gate: the learned rewards off the expert path",
        "",
        f"**Warning: {', '.join(failing)} fail the gate**; an agent may learn little from these rewards, or learn "
        "to exploit them."
        if failing
        else "Every learned reward passes the gate on every task.",
        "",
        probe_table(probes, "reward on task"),
        "",
        f"Measured before the runs on {PROBE_EPISODES} full-length rollouts per task (clean experts, experts with "
        "action noise 1.0, a random policy), for the checkpoint of the first agent seed. " + PROBE_LEGEND,
    ]


def _finished_scores(results: list[RunResult]) -> Scores:
    """The mean success over the curve of every finished run, by source, task and seed."""
    scores: dict[str, dict[str, dict[int, float]]] = {}
    for result in results:
        if result.done:
            scores.setdefault(result.source, {}).setdefault(result.task, {})[result.seed] = float(result.success.mean())
    return scores


def _across_tasks_section(aggregates: dict[str, dict[str, Any]]) -> list[str]:
    def interval(point: float | None, bounds: list[float] | None) -> str:
        return "—" if point is None or bounds is None else f"{point:.2f} [{bounds[0]:.2f}, {bounds[1]:.2f}]"

    lines = [
        "## Across tasks (rliable)",
        "",
        "Finished runs, on the tasks each source shares with `sparse`: the interquartile mean (IQM) of the mean "
        "success over the curve, and the probability that a run of the source beats a run of `sparse` on a task "
        "drawn at random, each with a 95% stratified bootstrap interval (rliable, Agarwal et al. 2021).",
        "",
        "| reward | tasks | runs per task | IQM of mean success over the curve | P(better than sparse) |",
        "|---|---|---|---|---|",
    ]
    for source, entry in aggregates.items():
        lines.append(
            f"| {source} | {len(entry['tasks'])} | {entry['runs']} | {interval(entry['iqm'], entry['iqm_interval'])} "
            f"| {interval(entry['probability_of_improvement'], entry['probability_of_improvement_interval'])} |"
        )
    return lines


def write_rl_report(out: str | os.PathLike) -> str:
    """Write ``report.md``, ``summary.json`` and ``success_curves.png`` into ``out``; return the table."""
    out = Path(out)
    results = read_results(out)
    if not results:
        raise FileNotFoundError(f"no RL runs with an evaluation under {out}: run `vlm-rewards rl --out {out}` first")
    gate_path = out / GATE_FILE
    verdicts = read_json(gate_path) if gate_path.is_file() else {}
    rows = summary_rows(results, source_order(results, out), verdicts)
    table = markdown_table(rows)
    plot_success_curves(results, out / "success_curves.png")
    warnings_given = sorted({f"{r.task} {r.source}: {w}" for r in results for w in r.record.get("warnings", [])})
    machine = machine_description()
    lines = [
        "# RL on learned rewards",
        "",
        _settings_text(results),
        "",
        table,
        "",
        "Final success: the last evaluation. Mean success over the curve: the mean of all evaluations (higher means "
        "success came earlier). Minus sparse: this source's mean success over the curve minus that of `sparse` with "
        "the same agent seed, with a 95% percentile bootstrap interval over those seeds (with two seeds it only "
        "spans their two differences). Offline metrics: `evaluate` on held-out episodes of this task, for the "
        "checkpoints of these runs. Elsewhere, brackets give the smallest and largest value over seeds, not an "
        "interval.",
        "",
        "![success curves](success_curves.png)",
        "",
        f"Machine: {machine['processor']}, {machine['cpus']} CPUs, torch {machine['torch']}"
        + (f", {machine['cuda']}" if machine["cuda"] else ", no GPU")
        + ".",
    ]
    aggregates = across_tasks(_finished_scores(results))
    if aggregates:
        lines += ["", *_across_tasks_section(aggregates)]
    correlations = offline_online(rows)
    lines += ["", *_offline_online_section(correlations)]
    if verdicts:
        lines += ["", *_gate_section(verdicts)]
    if (out / FAILURES_FILE).is_file():
        failed = read_json(out / FAILURES_FILE)
        lines += ["", "## Failed runs", "", "The last sweep's runs that failed (the same command resumes them):", ""]
        lines += [f"- {label} (`{entry['folder']}`): {entry['error']}" for label, entry in failed.items()]
    if warnings_given:
        lines += ["", "## Warnings", "", *[f"- {warning}" for warning in warnings_given]]
    write_text_atomic(out / "report.md", "\n".join(lines) + "\n")
    summary = {"rows": rows, "across_tasks": aggregates, "offline_online": correlations, "machine": machine}
    write_json_atomic(out / "summary.json", summary)
    return table
