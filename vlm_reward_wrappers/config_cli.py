"""Command-line flags derived from config dataclasses: one source for names, types, defaults, choices and help.

Every field of a config becomes a flag (``batch_size`` -> ``--batch-size``):
``int``/``float``/``str`` fields take one value; ``bool`` fields are
``--flag``/``--no-flag``; ``Literal`` fields list their choices; tuple fields
take several values; ``X | None`` fields also accept ``none``; a ``dict``
field takes ``KEY=VALUE`` pairs (values parsed as JSON when they parse). Help
texts are the ``Args:`` section of the class docstring, so documenting a field
documents its flag. The ``vlm-rewards`` commands and the example scripts use it.

Example:
    >>> import argparse
    >>> from dataclasses import dataclass
    >>> @dataclass
    ... class Args:
    ...     '''Args:
    ...         steps: how many steps.
    ...         fast: skip the checks.
    ...     '''
    ...     steps: int = 10
    ...     fast: bool = False
    >>> parser = argparse.ArgumentParser()
    >>> add_config_arguments(parser, Args)
    >>> config_from_args(Args, parser.parse_args(["--steps", "3", "--fast"]))
    Args(steps=3, fast=True)
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import inspect
import json
import re
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar, get_args, get_origin

from vlm_reward_wrappers.configs import field_types, literal_choices, unwrap_optional

T = TypeVar("T")


class UsageError(ValueError):
    """A command line that asks for something that cannot be (``vlm-rewards`` exits with 2), as opposed to a run
    that fails on the way (exit code 1)."""


@functools.cache
def field_help(cls: type) -> dict[str, str]:
    """Help text of each field, from the ``Args:`` section of the class docstring."""
    doc = inspect.getdoc(cls) or ""
    section = re.search(r"^Args:\n((?:[ \t]+.*\n?|\n)*)", doc, flags=re.MULTILINE)
    helps: dict[str, str] = {}
    if not section:
        return helps
    current: list[str] = []
    for line in section.group(1).splitlines():
        entry = re.match(r"^ {4}([\w, ]+):\s*(.*)$", line)
        if entry:
            current = [name.strip() for name in entry.group(1).split(",")]
            for name in current:
                helps[name] = entry.group(2).strip()
        elif line.strip() and current:
            for name in current:
                helps[name] = f"{helps[name]} {line.strip()}"
    return {name: _plain_text(text) for name, text in helps.items()}


def _plain_text(text: str) -> str:
    """Docstring markup as a terminal shows it: ``:data:`~a.B``` -> B, ````x```` -> x."""
    text = re.sub(r":\w+:`~?(?:[\w.]+\.)?([^`]+)`", r"\1", text)
    return text.replace("``", "")


def _none_or(convert: Callable[[str], Any]) -> Callable[[str], Any]:
    def parse(text: str) -> Any:
        return None if text.lower() == "none" else convert(text)

    parse.__name__ = getattr(convert, "__name__", "value")
    return parse


def parse_key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE parsed as JSON when it parses (``margin=0.2``, ``goal=language``)."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.replace("-", "_"), json.loads(value)
    except json.JSONDecodeError:
        return key.replace("-", "_"), value


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_config_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    cls: type,
    *,
    exclude: Collection[str] = (),
    overrides: bool = False,
) -> None:
    """Add a flag for every field of the dataclass ``cls`` but ``exclude``.

    With ``overrides=True`` no flag has a default: only the flags given end up
    in the parsed namespace, to be applied to a base config with
    :func:`config_from_args`'s ``base``.
    """
    helps = field_help(cls)
    kinds = field_types(cls)
    for field in dataclasses.fields(cls):
        if field.name in exclude:
            continue
        kind, optional = unwrap_optional(kinds[field.name])
        has_default = field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING
        default = field.default if field.default is not dataclasses.MISSING else None
        if field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        options: dict[str, Any] = {"help": helps.get(field.name, "").replace("%", "%%")}  # argparse formats help
        if overrides:
            options["default"] = argparse.SUPPRESS
        elif has_default:
            options["default"] = default
            options["help"] += f" (default: {default})" if not isinstance(default, dict) else ""
        else:
            options["required"] = True
        choices = literal_choices(kind)
        origin = get_origin(kind)
        if kind is bool:
            options["action"] = argparse.BooleanOptionalAction
        elif choices is not None:
            options.update(choices=list(choices), type=_none_or(type(choices[0])) if optional else type(choices[0]))
        elif origin is tuple:
            item = get_args(kind)[0]
            options.update(nargs="+", type=item if item in (int, float, str) else str)
            if optional:
                options["help"] += " ('none' for none)"
                options["type"] = _none_or(options["type"])
        elif origin is dict or kind is dict:
            options.update(action="extend", nargs="+", type=parse_key_value, metavar="KEY=VALUE")
            if not overrides:
                options["default"] = []
        elif kind in (int, float, str):
            options["type"] = _none_or(kind) if optional else kind
            options["metavar"] = kind.__name__.upper()
        else:
            raise TypeError(f"{cls.__name__}.{field.name}: no command-line form for {kind!r}; exclude it")
        parser.add_argument(_flag(field.name), dest=field.name, **options)


def _value(kind: Any, value: Any) -> Any:
    kind, _ = unwrap_optional(kind)
    if value is None:
        return None
    if get_origin(kind) is dict or kind is dict:
        return dict(value)
    if get_origin(kind) is tuple:
        if value == [None] or value is None:
            return None
        return tuple(value)
    return value


def config_values(cls: type, args: argparse.Namespace) -> dict[str, Any]:
    """The values of ``cls``'s fields present in ``args``, converted to the fields' types."""
    kinds = field_types(cls)
    given = vars(args)
    return {name: _value(kind, given[name]) for name, kind in kinds.items() if name in given}


def config_from_args(cls: type[T], args: argparse.Namespace, *, base: T | None = None, **values: Any) -> T:
    """A ``cls`` from the parsed flags (applied over ``base`` when given) and explicit ``values``.

    A value the config refuses raises :class:`UsageError` with the config's message.
    """
    merged = {**config_values(cls, args), **values}
    try:
        if base is not None:
            return dataclasses.replace(base, **merged)  # type: ignore[type-var]
        return cls(**merged)
    except (ValueError, TypeError) as error:
        raise UsageError(str(error)) from error


def parse_config(cls: type[T], argv: Sequence[str] | None = None, description: str | None = None) -> T:
    """Parse ``argv`` (default: ``sys.argv[1:]``) into a ``cls``: the whole command line of a script.

    Example:
        >>> from dataclasses import dataclass
        >>> @dataclass
        ... class Args:
        ...     '''Args:
        ...         lr: learning rate.
        ...     '''
        ...     lr: float = 0.1
        >>> parse_config(Args, ["--lr", "0.5"])
        Args(lr=0.5)
    """
    parser = argparse.ArgumentParser(description=description or (inspect.getdoc(cls) or "").split("\n\n")[0])
    add_config_arguments(parser, cls)
    try:
        return config_from_args(cls, parser.parse_args(argv))
    except UsageError as error:  # exits with 2 and the usage, as for a flag argparse refuses
        parser.error(str(error))
