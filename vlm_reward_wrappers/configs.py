"""Configs are frozen-or-plain dataclasses: one (de)serialiser and one validator for all of them.

* :func:`to_dict` gives the JSON-ready form (nested dataclasses become dicts, tuples lists).
* :func:`from_dict` rebuilds a config from it, recursing into dataclass fields and
  turning lists back into tuples where the field is a tuple; unknown keys are
  an error that names them.
* :func:`check_choices` checks every ``Literal`` field of a config against its
  choices, so a mode is declared once, as a type, and checked in one place.
* :func:`check_device` refuses a device torch cannot use here, before any work; :func:`resolve_device` picks one.

Example:
    >>> from dataclasses import dataclass
    >>> from typing import Literal
    >>> @dataclass(frozen=True)
    ... class Schedule:
    ...     mode: Literal["fast", "slow"] = "fast"
    ...     sizes: tuple[int, ...] = (1, 2)
    ...     def __post_init__(self) -> None:
    ...         check_choices(self)
    >>> to_dict(Schedule())
    {'mode': 'fast', 'sizes': [1, 2]}
    >>> from_dict(Schedule, {"mode": "slow", "sizes": [3]})
    Schedule(mode='slow', sizes=(3,))
    >>> Schedule(mode="medium")
    Traceback (most recent call last):
    ...
    ValueError: Schedule.mode must be one of 'fast', 'slow'; got 'medium'
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

T = TypeVar("T")


_FIELD_TYPES: dict[type, dict[str, Any]] = {}


def field_types(cls: type) -> dict[str, Any]:
    """The resolved type of every field of a dataclass (string annotations evaluated), computed once per class.

    Each class's annotations are resolved in its own module, base classes included.
    """
    if cls not in _FIELD_TYPES:
        hints = typing.get_type_hints(cls)
        _FIELD_TYPES[cls] = {field.name: hints[field.name] for field in dataclasses.fields(cls)}
    return _FIELD_TYPES[cls]


def unwrap_optional(kind: Any) -> tuple[Any, bool]:
    """``(X, True)`` for ``X | None``, ``(kind, False)`` otherwise."""
    if get_origin(kind) in (Union, types.UnionType):
        members = [member for member in get_args(kind) if member is not type(None)]
        if len(members) == 1 and len(get_args(kind)) == 2:
            return members[0], True
    return kind, False


def literal_choices(kind: Any) -> tuple[Any, ...] | None:
    """The choices of a ``Literal`` type (also inside ``X | None``), else None."""
    kind, _ = unwrap_optional(kind)
    return get_args(kind) if get_origin(kind) is Literal else None


def check_choices(config: Any) -> None:
    """Raise ``ValueError`` when a ``Literal`` field of ``config`` holds a value outside its choices."""
    for name, kind in field_types(type(config)).items():
        choices = literal_choices(kind)
        value = getattr(config, name)
        if choices is not None and value not in choices and value is not None:
            listed = ", ".join(repr(choice) for choice in choices)
            raise ValueError(f"{type(config).__name__}.{name} must be one of {listed}; got {value!r}")


def to_dict(config: Any) -> dict[str, Any]:
    """The JSON-ready form of a dataclass config."""
    return {field.name: _plain(getattr(config, field.name)) for field in dataclasses.fields(config)}


def _plain(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_dict(value)
    if isinstance(value, (tuple, list)):
        return [_plain(item) for item in value]
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    return value


def from_dict(cls: type[T], data: Mapping[str, Any]) -> T:
    """Rebuild a dataclass config from :func:`to_dict` output.

    Missing keys take the field defaults; unknown keys raise ``ValueError``
    naming them (a config written by another version of the package).
    """
    if not isinstance(data, Mapping):
        raise ValueError(f"a {cls.__name__} must be given as a mapping, got {type(data).__name__}")
    kinds = field_types(cls)
    unknown = sorted(set(data) - set(kinds))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} fields: {', '.join(unknown)} (known: {', '.join(kinds)})")
    return cls(**{name: _typed(kinds[name], value) for name, value in data.items()})


def _typed(kind: Any, value: Any) -> Any:
    kind, optional = unwrap_optional(kind)
    if value is None and optional:
        return None
    if isinstance(kind, type) and dataclasses.is_dataclass(kind):
        return from_dict(kind, value)
    if get_origin(kind) is tuple and isinstance(value, (list, tuple)):
        arguments = get_args(kind)
        item_kind = arguments[0] if len(arguments) == 2 and arguments[1] is Ellipsis else Any
        return tuple(_typed(item_kind, item) for item in value)
    return value


def check_device(device: str | None) -> None:
    """Refuse a device torch cannot use here, with what to use instead (None, ``cpu`` and a visible GPU pass).

    >>> check_device("cpu")
    >>> check_device("gpu")
    Traceback (most recent call last):
    ...
    ValueError: device 'gpu': not a device name; use cpu, cuda or cuda:N
    """
    if device is None or device == "cpu":
        return
    kind, _, index = device.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise ValueError(f"device {device!r}: not a device name; use cpu, cuda or cuda:N")
    import torch  # only for a CUDA device: configs stays light to import

    if not torch.cuda.is_available():
        raise ValueError(f"device {device!r}: no CUDA GPU is visible to torch here; use --device cpu")
    if index and int(index) >= torch.cuda.device_count():
        raise ValueError(
            f"device {device!r}: torch sees {torch.cuda.device_count()} GPU(s), cuda:0 to "
            f"cuda:{torch.cuda.device_count() - 1}"
        )


def resolve_device(device: str | None) -> str:
    """``device`` checked by :func:`check_device`; None is ``cuda`` when torch sees a GPU, else ``cpu``.

    >>> resolve_device("cpu")
    'cpu'
    """
    check_device(device)
    if device is not None:
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
