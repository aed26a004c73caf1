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


def probe_table(probe: dict[str, dict[str, Any]], first_column: str = "task") -> str:
    """The off-expert probe as a markdown table: one line per key of ``probe`` (tasks, or rows of a benchmark).

    Example:
        >>> print(probe_table({"reach-v3": {"success_auroc": 0.9, "expert_above_random": False}}).splitlines()[2])
        | reach-v3 | 0.90 | n/a | n/a | n/a | n/a | n/a | **no** | n/a |
    """
    lines = [
        f"| {first_column} | " + " | ".join(header for _, header in PROBE_COLUMNS) + " |",
        "|---|" + "---|" * len(PROBE_COLUMNS),
    ]
    for name, values in probe.items():
        lines.append(f"| {name} | " + " | ".join(_probe_cell(values.get(key)) for key, _ in PROBE_COLUMNS) + " |")
    return "\n".join(lines)


PROBE_LEGEND = (
    "Off the expert path (episodes run to their full length): success AUC of the reward for success frames against "
    "the others; Spearman ρ of the reward with Meta-World's reward within episodes of clean experts, experts with "
    "the heaviest action noise, and a random policy (mean over episodes); mean reward per step of clean experts and "
    "of the random policy; the share of random-policy frames scoring above the median success frame (optima an "
    "agent reaches without doing the task)."
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


__all__ = ["METRICS", "PROBE_LEGEND", "cell", "legend", "markdown_table", "probe_table"]
