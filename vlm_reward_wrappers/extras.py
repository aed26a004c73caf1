"""Optional dependencies: the parts of the package that need an extra say which one to install.

The wrappers and the reward models need only the core dependencies; the RL sweeps and SB3's vector envs need
``stable-baselines3`` (the ``rl`` extra: ``pip install "vlm_reward_wrappers[rl]"``).

Example:
    >>> require("numpy", extra="rl", needed_by="this example").__name__
    'numpy'
"""

from __future__ import annotations

import importlib
from types import ModuleType


class MissingExtraError(ModuleNotFoundError):
    """An optional dependency is not installed; the message names the extra that installs it."""


def require(module: str, *, extra: str, needed_by: str) -> ModuleType:
    """Import ``module``, or raise :class:`MissingExtraError` saying which extra of the package installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module.split(".")[0]:
            raise
        raise MissingExtraError(
            f"{needed_by} needs {module.split('.')[0]}, which is not installed: "
            f'pip install "vlm_reward_wrappers[{extra}]"',
            name=error.name,
        ) from error


__all__ = ["MissingExtraError", "require"]
