"""Learning objectives, one module each, behind one registry.

Every module of this package is imported here, and every :class:`Objective`
subclass that sets ``name`` registers itself: a new objective is one new
module (see :mod:`.triplet` for a short one) plus its tests.

Example:
    >>> from vlm_reward_wrappers.objectives import available_objectives, get_objective
    >>> available_objectives()
    ['zero-shot', 'triplet', 'tcn', 'vip', 'r3m', 'liv']
    >>> get_objective("triplet", margin=0.2).config()
    {'name': 'triplet', 'margin': 0.2, 'cross_task_negatives': True, 'failure_negatives': False}
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from typing import Any

from vlm_reward_wrappers.objectives.base import REGISTRY, EncodedBatch, GoalKind, Objective, Slot

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")


class UnknownObjectiveError(ValueError):
    """An objective name that is not registered."""


def available_objectives() -> list[str]:
    """Names of the compared objectives, in the study's order (``clip`` pretrains the backbone and is also accepted)."""
    compared = [cls for cls in REGISTRY.values() if cls.compared]
    return [cls.name for cls in sorted(compared, key=lambda cls: (cls.order, cls.name))]


def get_objective(name: str, **options: Any) -> Objective:
    """An objective by name, with hyper-parameters overriding its defaults."""
    if name not in REGISTRY:
        close = difflib.get_close_matches(name, list(REGISTRY), n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise UnknownObjectiveError(
            f"unknown objective {name!r}.{hint} Available: {', '.join(available_objectives())} "
            "(and 'clip' for backbone pretraining)."
        )
    try:
        return REGISTRY[name](**options)
    except TypeError as error:
        raise ValueError(f"bad options for objective {name!r}: {error}") from error


def objective_from_config(config: dict[str, Any]) -> Objective:
    """Rebuild an objective from :meth:`Objective.config` output."""
    options = dict(config)
    return get_objective(options.pop("name"), **options)


__all__ = [
    "REGISTRY",
    "EncodedBatch",
    "GoalKind",
    "Objective",
    "Slot",
    "UnknownObjectiveError",
    "available_objectives",
    "get_objective",
    "objective_from_config",
]
