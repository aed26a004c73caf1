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


def legend(delta: float, names: list[str] | None = None) -> str:
    """One line per metric (all, or those named): what it measures and its chance level."""
    lines = []
    for metric in ordered_metrics():
        if names is not None and metric.name not in names:
            continue
        chance = f" Chance: {metric.chance}." if metric.chance is not None else ""
        lines.append(f"- {metric.label}: {metric.description}.{chance}".replace("delta", str(delta)))
    return "\n".join(lines)


__all__ = ["METRICS", "cell", "legend", "markdown_table"]
