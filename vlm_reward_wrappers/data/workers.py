"""Collection worker processes.

Each worker is a fresh Python process running :func:`serve`, which reads
episode jobs (JSON lines) on stdin and answers with the number of steps it
recorded. Fresh processes, rather than ``multiprocessing``, because a
fork after OpenGL or thread start-up can deadlock, and ``spawn`` re-imports the
caller's script (every user script would need an ``if __name__ ==
"__main__"`` guard). A worker whose parent dies sees its stdin close and exits
after the episode in hand, which it writes whole or not at all.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO

from vlm_reward_wrappers.configs import from_dict, to_dict
from vlm_reward_wrappers.data.config import CollectionConfig, EpisodeJob
from vlm_reward_wrappers.data.recorder import EpisodeCollector


class WorkerError(RuntimeError):
    """A collection worker process failed; the message holds its error output."""


def run_in_workers(
    jobs: Sequence[EpisodeJob], config: CollectionConfig, root: Path, collection: str, workers: int
) -> Iterator[int]:
    """Run ``jobs`` in ``workers`` processes; yield each finished episode's step count."""
    pending: queue.Queue = queue.Queue()
    for job in jobs:
        pending.put(job)
    results: queue.Queue = queue.Queue()
    command = [
        sys.executable,
        "-c",
        "import sys; from vlm_reward_wrappers.data.workers import serve; serve(*sys.argv[1:])",
        json.dumps(to_dict(config)),
        str(root),
        collection,
    ]
    # stderr goes to files: a pipe that nobody drains would block a chatty worker.
    logs = [tempfile.TemporaryFile(mode="w+") for _ in range(workers)]  # noqa: SIM115 (closed in the finally)
    processes = [
        subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True) for log in logs
    ]

    def feed(process: subprocess.Popen, log: IO[str]) -> None:
        assert process.stdin is not None and process.stdout is not None  # both are pipes
        try:
            while True:
                try:
                    job = pending.get_nowait()
                except queue.Empty:
                    break
                process.stdin.write(json.dumps(to_dict(job)) + "\n")
                process.stdin.flush()
                answer = process.stdout.readline()
                if not answer:
                    process.wait()
                    log.seek(0)
                    raise WorkerError(f"a collection worker stopped on {job.task} episode {job.index}:\n{log.read()}")
                results.put(int(answer))
        except BaseException as error:  # handed to the consuming thread
            results.put(error)
        finally:
            results.put(None)

    threads = [threading.Thread(target=feed, args=pair, daemon=True) for pair in zip(processes, logs, strict=False)]
    for thread in threads:
        thread.start()
    try:
        finished = 0
        while finished < len(threads):
            item = results.get()
            if item is None:
                finished += 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        for process in processes:
            if process.stdin and not process.stdin.closed:
                with contextlib.suppress(BrokenPipeError):
                    process.stdin.close()
        for process in processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
        for log in logs:
            log.close()


def serve(config_json: str, root: str, collection: str) -> None:
    """A worker's loop: record the episode of each job read from stdin, print its step count."""
    worker = EpisodeCollector(from_dict(CollectionConfig, json.loads(config_json)), Path(root), collection)
    for line in sys.stdin:
        steps = worker(EpisodeJob(**json.loads(line)))
        sys.stdout.write(f"{steps}\n")
        sys.stdout.flush()
    worker.close()
