"""Learning objectives, one module each, behind one registry.

Example:
    >>> from vlm_reward_wrappers.objectives import available_objectives, get_objective
    >>> available_objectives()
    ['zero-shot', 'triplet', 'tcn', 'vip', 'r3m', 'liv']
    >>> get_objective("triplet", margin=0.2).config()
    {'name': 'triplet', 'margin': 0.2, 'cross_task_negatives': False}
"""

from __future__ import annotations

import difflib
from typing import Any

from vlm_reward_wrappers.objectives.base import SLOTS, EncodedBatch, Objective
from vlm_reward_wrappers.objectives.clip import CLIPContrastive
from vlm_reward_wrappers.objectives.liv import LIV
from vlm_reward_wrappers.objectives.r3m import R3M
from vlm_reward_wrappers.objectives.tcn import TCN
from vlm_reward_wrappers.objectives.triplet import Triplet
from vlm_reward_wrappers.objectives.vip import VIP
from vlm_reward_wrappers.objectives.zero_shot import ZeroShot

COMPARED = (ZeroShot, Triplet, TCN, VIP, R3M, LIV)
"""The objectives the study compares, in its order."""

OBJECTIVES: dict[str, type[Objective]] = {cls.name: cls for cls in (*COMPARED, CLIPContrastive)}


class UnknownObjectiveError(ValueError):
    """An objective name that is not registered."""


def available_objectives() -> list[str]:
    """Names of the compared objectives (``clip`` pretrains the backbone and is also accepted)."""
    return [cls.name for cls in COMPARED]


def get_objective(name: str, **options: Any) -> Objective:
    """An objective by name, with hyper-parameters overriding its defaults."""
    if name not in OBJECTIVES:
        close = difflib.get_close_matches(name, list(OBJECTIVES), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownObjectiveError(
            f"unknown objective {name!r}.{hint} Available: {', '.join(available_objectives())} (and 'clip' for backbone pretraining)."
        )
    try:
        return OBJECTIVES[name](**options)
    except TypeError as error:
        raise ValueError(f"bad options for objective {name!r}: {error}") from error


def objective_from_config(config: dict[str, Any]) -> Objective:
    """Rebuild an objective from :meth:`Objective.config` output."""
    options = dict(config)
    return get_objective(options.pop("name"), **options)


__all__ = [
    "OBJECTIVES",
    "SLOTS",
    "EncodedBatch",
    "Objective",
    "UnknownObjectiveError",
    "available_objectives",
    "get_objective",
    "objective_from_config",
]
