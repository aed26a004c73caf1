"""Atomic file writes: a reader never sees a half-written file.

Every file this package writes (dataset episodes, manifests, checkpoints,
reports) goes to a temporary name in the same folder, is flushed to disk, and
is then renamed over the final name, which the OS does atomically.

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp())
    >>> write_json_atomic(folder / "a.json", {"x": 1})
    >>> read_json(folder / "a.json")
    {'x': 1}
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import Any

CACHE_VARIABLE = "VLM_REWARDS_CACHE"


def cache_dir() -> Path:
    """The package cache: ``$VLM_REWARDS_CACHE``, default ``~/.cache/vlm_reward_wrappers``."""
    return Path(os.environ.get(CACHE_VARIABLE, Path.home() / ".cache" / "vlm_reward_wrappers"))


class CorruptFileError(RuntimeError):
    """A file this package wrote earlier cannot be read back; the message names it."""


def read_positive_numbers(path: str | os.PathLike, keys: Collection[str], what: str, unit: str) -> dict[str, float]:
    """A JSON file of exactly ``keys``, each a positive number (``what`` names the file and its values in errors,
    ``unit`` their unit), as floats; :class:`CorruptFileError` otherwise.

    >>> read_positive_numbers("/nowhere.json", ["a"], "speed", "steps per second")
    Traceback (most recent call last):
    ...
    vlm_reward_wrappers.io_utils.CorruptFileError: speed file /nowhere.json cannot be read (...)
    """
    try:
        values = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise CorruptFileError(f"{what} file {path} cannot be read ({error})") from error
    if not isinstance(values, dict) or set(values) != set(keys):
        raise CorruptFileError(f"{what} file {path} must hold exactly the keys {sorted(keys)}")
    if not all(isinstance(value, (int, float)) and value > 0 for value in values.values()):
        raise CorruptFileError(f"{what} file {path}: {what}s must be positive numbers of {unit}")
    return {key: float(value) for key, value in values.items()}


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str = "") -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path``.

    If the body raises, the temporary file is removed and ``path`` is untouched.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{final.name}.", suffix=f"{suffix}.tmp", dir=final.parent)
    os.close(handle)
    temporary_path = Path(temporary)
    try:
        yield temporary_path
        with open(temporary_path, "rb") as written:
            os.fsync(written.fileno())
        give_default_permissions(temporary_path)  # mkstemp makes it private; the result is shared like any file
        os.replace(temporary_path, final)
    finally:
        temporary_path.unlink(missing_ok=True)


def give_default_permissions(path: str | os.PathLike) -> None:
    """Set a file's mode to what a plain ``open(path, "w")`` would give it (0o666 less the umask)."""
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def write_json_atomic(path: str | os.PathLike, payload: Any) -> None:
    """Write ``payload`` as indented JSON, atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write a text file atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def read_json(path: str | os.PathLike) -> Any:
    """Read a JSON file; a file that does not parse raises :class:`CorruptFileError` naming it."""
    try:
        return json.loads(Path(path).read_text())
    except json.JSONDecodeError as error:
        raise CorruptFileError(
            f"{path} is not valid JSON ({error}); it may be truncated. Delete or restore it."
        ) from error


def read_versioned_json(
    path: str | os.PathLike,
    *,
    file_format: str,
    version: int,
    what: str,
    also_reads: tuple[int, ...] = (),
    version_key: str = "format_version",
    error: type[Exception] = CorruptFileError,
) -> dict[str, Any]:
    """Read a JSON file this package wrote and check its ``format`` and version.

    Raises ``error`` (default :class:`CorruptFileError`) naming the file when
    it does not parse, is not a ``file_format`` file, or has a version other
    than ``version`` (the one written now) and ``also_reads`` (older ones still read).

    Example:
        >>> import tempfile, pathlib
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "m.json"
        >>> write_json_atomic(path, {"format": "demo", "format_version": 2})
        >>> read_versioned_json(path, file_format="demo", version=1, what="a demo file")
        Traceback (most recent call last):
        ...
        vlm_reward_wrappers.io_utils.CorruptFileError: ... has format version 2; this package reads version 1 ...
    """
    try:
        payload = read_json(path)
    except CorruptFileError as corrupt:
        raise error(str(corrupt)) from corrupt
    if not isinstance(payload, dict) or payload.get("format") != file_format:
        raise error(f"{path} is not {what} (its 'format' is not {file_format!r}).")
    if payload.get(version_key) not in (version, *also_reads):
        raise error(
            f"{path} has format version {payload.get(version_key)}; this package reads version {version} of {what}. "
            "Upgrade vlm_reward_wrappers, or make the file again with this version."
        )
    return payload


def remove_stale_temporaries(folder: str | os.PathLike) -> int:
    """Delete ``*.tmp`` files that an interrupted writer left under ``folder``; return how many."""
    removed = 0
    for leftover in Path(folder).rglob(".*.tmp"):
        leftover.unlink(missing_ok=True)
        removed += 1
    return removed
