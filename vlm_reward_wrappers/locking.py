"""One writer per folder: a lock beside every folder a command writes, held while it writes.

Two commands that write one folder (two ``train --out X``, two ``rl`` sweeps into one folder, two ``collect
--mode append``) would undo each other's saves. Every writer therefore holds the lock ``.NAME.lock`` beside the
folder ``NAME`` (beside, since checkpoint saves swap the folder itself); a second writer waits for the first to
finish, after saying who holds the folder (host, process, command, since when), and then carries on with what
is left to do. The lock is an OS file lock (``flock``, through the ``filelock`` package): the OS releases it
when its process dies, however it dies, so a killed writer never leaves a stale lock behind. A process may take
the lock of a folder it already holds (a trainer's checkpoint saves).

Example:
    >>> import tempfile, pathlib
    >>> folder = pathlib.Path(tempfile.mkdtemp()) / "run"
    >>> with writing(folder):
    ...     with writing(folder):   # the same process again: fine
    ...         holder(folder)["pid"] == os.getpid()
    True
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout


def lock_path(folder: str | os.PathLike) -> Path:
    """The lock file of ``folder``: ``.NAME.lock`` beside it."""
    folder = Path(folder).resolve()
    return folder.parent / f".{folder.name}.lock"


def holder_path(folder: str | os.PathLike) -> Path:
    """Where the lock's holder is recorded: ``.NAME.holder`` beside ``folder``."""
    return lock_path(folder).with_suffix(".holder")


def holder(folder: str | os.PathLike) -> dict[str, Any] | None:
    """Who last took the lock of ``folder`` (host, pid, command, since); None when nobody ever did."""
    try:
        return dict(json.loads(holder_path(folder).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def describe_holder(folder: str | os.PathLike) -> str:
    """The holder of ``folder``'s lock in words."""
    record = holder(folder)
    if record is None:
        return "another process"
    since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(record.get("since", 0)))
    return f"process {record.get('pid')} on {record.get('host')} ({record.get('command')}, since {since})"


def _stderr(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _check_writable(folder: Path) -> None:
    """Fail at once, before any long work, when ``folder`` (or the nearest folder above it that exists) cannot be
    written: a real write, so the error is the OS's own (read-only, no permission, no space)."""
    existing = folder if folder.is_dir() else next(parent for parent in folder.parents if parent.is_dir())
    with tempfile.TemporaryFile(dir=existing):
        pass


@contextlib.contextmanager
def writing(folder: str | os.PathLike, *, say: Callable[[str], None] = _stderr) -> Iterator[None]:
    """Hold the lock of ``folder`` while the body writes it; wait (after saying who holds it) if another process
    does. Re-entrant within a process. Raises the OS's error at once when the folder cannot be written."""
    path = lock_path(folder)
    lock = FileLock(str(path), is_singleton=True)
    if lock.lock_counter == 0:  # not already held by this process (a trainer's checkpoint saves): check once
        _check_writable(Path(folder).absolute())
        path.parent.mkdir(parents=True, exist_ok=True)
    try:
        lock.acquire(timeout=0)
    except Timeout:
        say(f"{Path(folder)} is being written by {describe_holder(folder)}; waiting for it to finish (Ctrl-C stops)")
        lock.acquire()
    try:
        if lock.lock_counter == 1:
            record = {
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "command": " ".join(Path(sys.argv[0]).name.split() + sys.argv[1:])[:200],
                "since": time.time(),
            }
            holder_path(folder).write_text(json.dumps(record))
        yield
    finally:
        lock.release()


__all__ = ["describe_holder", "holder", "holder_path", "lock_path", "writing"]
