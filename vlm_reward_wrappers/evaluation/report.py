"""Markdown for metric results: cells, the per-task table and the legend, all listed from the metric registry.

Example:
    >>> cell({"voc": 0.41234, "voc_ci": [0.2, 0.6]}, "voc")
    '0.412 [0.20, 0.60]'
    >>> cell({"voc": None}, "voc")
    'n/a'
"""

from __future__ import annotations

from typing import Any

from vlm_reward_wrappers.metrics import METRICS, ordered_metrics
from vlm_reward_wrappers.metrics.off_expert import GATE_EXPLOITABLE_SHARE, GATE_SUCCESS_AUROC, gate


def cell(block: dict[str, Any], name: str, digits: int = 3) -> str:
    """A metric's value in a block, with its interval when the block has one."""
    value, interval = block.get(name), block.get(f"{name}_ci")
    if value is None:
        return "n/a"
    return f"{value:.{digits}f}" + (f" [{interval[0]:.2f}, {interval[1]:.2f}]" if interval else "")


def markdown_table(metrics: dict[str, Any]) -> str:
    """Per-task table of a :func:`~vlm_reward_wrappers.metrics.summarize` result, overall row last."""
    columns = ordered_metrics()
    header = "| task | frames | episodes | " + " | ".join(
        f"{metric.label} (95% CI)" if metric.interval else metric.label for metric in columns
    )
    lines = [header + " |", "|---|---|---|" + "---|" * len(columns)]
    for name, block in [*sorted(metrics["per_task"].items()), ("**all**", metrics["overall"])]:
        cells = " | ".join(cell(block, metric.name) for metric in columns)
        lines.append(f"| {name} | {block['num_frames']} | {block['num_episodes']} | {cells} |")
    return "\n".join(lines)


PROBE_COLUMNS = (
    ("success_auroc", "success AUC"),
    ("spearman_expert", "ρ with R: expert"),
    ("spearman_heavy_noise", "heavy noise"),
    ("spearman_random", "random"),
    ("expert_reward", "reward/step: expert"),
    ("random_reward", "random"),
    ("expert_above_random", "expert > random"),
    ("random_above_success_median", "random frames above success median"),
)
"""The off-expert probe's columns (:mod:`vlm_reward_wrappers.metrics.off_expert`) and their headers."""


def _probe_cell(value: Any) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    return f"{value:.2f}"


def probe_table(probe: dict[str, dict[str, Any]], first_column: str = "task", *, with_gate: bool = True) -> str:
    """The off-expert probe as a markdown table: one line per key of ``probe`` (tasks, or rows of a benchmark).

    ``with_gate`` adds the gate's verdict per line (:func:`~vlm_reward_wrappers.metrics.off_expert.gate`).

    Example:
        >>> print(probe_table({"reach-v3": {"success_auroc": 0.9, "expert_above_random": False}}).splitlines()[2])
        | reach-v3 | 0.90 | n/a | n/a | n/a | n/a | n/a | **no** | n/a | **fail**: expert reward below random |
    """
    headers = [header for _, header in PROBE_COLUMNS] + (["gate"] if with_gate else [])
    lines = [f"| {first_column} | " + " | ".join(headers) + " |", "|---|" + "---|" * len(headers)]
    for name, values in probe.items():
        cells = [_probe_cell(values.get(key)) for key, _ in PROBE_COLUMNS]
        if with_gate:
            reasons = gate(values)
            cells.append("pass" if not reasons else "**fail**: " + "; ".join(reasons))
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def gate_summary(probe: dict[str, dict[str, Any]]) -> str:
    """One line: how many tasks pass the gate, and which fail.

    Example:
        >>> summary = gate_summary({"reach-v3": {"success_auroc": 0.9, "expert_above_random": True},
        ...                         "drawer-close-v3": {"success_auroc": 0.6, "expert_above_random": False}})
        >>> summary.split(" (")[0], summary.split("; ")[-1]
        ('gate: 1 of 2 tasks pass', 'fails: drawer-close-v3')
    """
    failing = [task for task, values in probe.items() if gate(values)]
    rule = (
        f"success AUC >= {GATE_SUCCESS_AUROC}, expert above random, <= {GATE_EXPLOITABLE_SHARE:.0%} random frames "
        "above the success median"
    )
    return f"gate: {len(probe) - len(failing)} of {len(probe)} tasks pass ({rule})" + (
        f"; fails: {', '.join(failing)}" if failing else ""
    )


PROBE_LEGEND = (
    "Off the expert path (episodes run to their full length): success AUC of the reward for success frames against "
    "the others; Spearman ρ of the reward with Meta-World's reward within episodes of clean experts, experts with "
    "the heaviest action noise, and a random policy (mean over episodes); mean reward per step of clean experts and "
    "of the random policy; the share of random-policy frames scoring above the median success frame (optima an "
    "agent reaches without doing the task). The gate says whether an agent should train on the reward for that "
    "task: it fails a task whose success AUC is below 0.85, whose expert collects less reward than the random "
    "policy, or where more than 5% of random-policy frames score above the median success frame."
)


def legend(delta: float, names: list[str] | None = None) -> str:
    """One line per metric (all, or those named): what it measures and its chance level."""
    lines = []
    for metric in ordered_metrics():
        if names is not None and metric.name not in names:
            continue
        chance = f" Chance: {metric.chance}." if metric.chance is not None else ""
        lines.append(f"- {metric.label}: {metric.description}.{chance}".replace("delta", str(delta)))
    return "\n".join(lines)


__all__ = ["METRICS", "PROBE_LEGEND", "cell", "gate_summary", "legend", "markdown_table", "probe_table"]
