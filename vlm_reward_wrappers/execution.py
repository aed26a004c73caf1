"""Where independent runs execute: a local pool of processes, or Ray (one machine or a cluster).

A sweep hands :func:`run_all` its runs as :class:`Job` s: a module-level function and its arguments, one CPU
each (and a GPU where the run asks for ``cuda``). Locally they run ``jobs`` at a time in spawned processes that
die with the sweep; with :class:`Backend` ``(ray=True)`` each is a Ray task, on a local Ray instance (started, or
joined when one runs) or on the cluster at ``address``. Ray is an optional dependency (the ``ray`` extra),
imported only then. A job that fails does not stop the others: its error comes back in its :class:`Outcome`, and
a Ray worker that dies (a killed process, a lost node) is retried, which the runs of this package survive since
they resume from their last save. A line per finished job says how the sweep stands (done, running, failed, time
left).

Example:
    >>> outcomes = run_all([Job("double 2", pow, (2, 2))], jobs=1)   # doctest: +SKIP
    >>> outcomes[0].error is None                                     # doctest: +SKIP
    True
"""

from __future__ import annotations

import ctypes
import multiprocessing
import signal
import sys
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from typing import Any

from vlm_reward_wrappers.extras import require

RETRIES = 3
"""How many times Ray runs a job again whose worker died (a system failure, not an error the job raised)."""


class RunsFailedError(RuntimeError):
    """Runs of a sweep failed; the others finished. The message names each failed run's folder and error;
    running the sweep again resumes them."""


@dataclass(frozen=True)
class Backend:
    """Where jobs run.

    Args:
        ray: run each job as a Ray task (default: a local pool of processes).
        address: the Ray cluster to join (``ray://host:10001`` or ``host:6379``); None starts a local Ray
            instance, or joins the one ``RAY_ADDRESS`` names.

    Example:
        >>> Backend().describe(), Backend(ray=True, address="head:6379").describe()
        ('a local pool of processes', 'Ray at head:6379')
    """

    ray: bool = False
    address: str | None = None

    def __post_init__(self) -> None:
        if self.address is not None and not self.ray:
            raise ValueError("a Ray address needs ray=True (--ray-address implies --ray)")

    def describe(self) -> str:
        if not self.ray:
            return "a local pool of processes"
        return f"Ray at {self.address}" if self.address else "a local Ray instance"


@dataclass(frozen=True)
class Job:
    """One independent run: ``function(*arguments)`` in a process of its own, labelled for the progress lines; on
    Ray it declares ``cpus`` CPUs and ``gpus`` GPUs (a local pool gives each job one process)."""

    label: str
    function: Callable[..., Any]
    arguments: tuple[Any, ...]
    gpus: float = 0.0
    cpus: int = 1


@dataclass(frozen=True)
class Outcome:
    """How a job ended: ``error`` is None when it finished, else its message; ``value`` is what it returned."""

    label: str
    error: str | None
    value: Any = None


class _Progress:
    """The line logged at each finished job: how many are done, running and failed, and the time left."""

    def __init__(self, total: int, parallel: int, log: Callable[[str], None]) -> None:
        self.total, self.parallel, self.log = total, parallel, log
        self.done = self.failed = 0
        self.started = time.perf_counter()

    def finished(self, label: str, error: str | None) -> None:
        self.done += 1
        self.failed += error is not None
        elapsed = time.perf_counter() - self.started
        left = self.total - self.done
        running = min(left, self.parallel)
        eta = f", about {elapsed / self.done * left / 60:.0f} min left" if left else ""
        verdict = "finished" if error is None else f"FAILED: {error.splitlines()[0] if error else error}"
        self.log(f"[{self.done}/{self.total} done, {running} running, {self.failed} failed{eta}] {label} {verdict}")


def run_all(
    jobs_to_run: Sequence[Job],
    *,
    jobs: int,
    backend: Backend | None = None,
    log: Callable[[str], None] = print,
) -> list[Outcome]:
    """Run every job, ``jobs`` at a time locally (Ray schedules by the CPUs and GPUs each declares), and return
    their outcomes in the order given."""
    backend = backend or Backend()
    if not jobs_to_run:
        return []
    finished = _run_on_ray(jobs_to_run, backend, log) if backend.ray else _run_in_pool(jobs_to_run, jobs, log)
    return [Outcome(job.label, *finished[index]) for index, job in enumerate(jobs_to_run)]


def check_outcomes(
    outcomes: Sequence[Outcome], where: Callable[[Outcome], str] = lambda outcome: outcome.label
) -> None:
    """Raise :class:`RunsFailedError` naming each failed job (by ``where``: its label, or say its folder) and its
    error, when any failed.

    >>> check_outcomes([Outcome("a", None), Outcome("b", "ValueError: no")])
    Traceback (most recent call last):
    ...
    vlm_reward_wrappers.execution.RunsFailedError: 1 of 2 runs failed (...): b: ValueError: no
    """
    failed = [outcome for outcome in outcomes if outcome.error is not None]
    if failed:
        raise RunsFailedError(
            f"{len(failed)} of {len(outcomes)} runs failed (the others finished; run the same command again to "
            "resume them): " + "; ".join(f"{where(outcome)}: {outcome.error}" for outcome in failed)
        )


def die_with_parent() -> None:
    """Pool worker start-up (Linux): the OS kills this worker when the parent dies, however it dies, so no orphan
    goes on writing a run that the next sweep resumes (elsewhere a worker ends at its next job)."""
    if sys.platform.startswith("linux"):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


_PR_SET_PDEATHSIG = 1


def _message(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


Finished = dict[int, tuple[str | None, Any]]
"""Each job's error (None: it finished) and returned value, by its index."""


def _run_in_pool(jobs_to_run: Sequence[Job], jobs: int, log: Callable[[str], None]) -> Finished:
    parallel = max(1, min(jobs, len(jobs_to_run)))
    progress = _Progress(len(jobs_to_run), parallel, log)
    finished: Finished = {}
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(parallel, mp_context=context, initializer=die_with_parent) as pool:
        futures: dict[Future[Any], int] = {
            pool.submit(job.function, *job.arguments): index for index, job in enumerate(jobs_to_run)
        }
        for future in as_completed(futures):
            index = futures[future]
            error = future.exception()
            finished[index] = (None, future.result()) if error is None else (_message(error), None)
            progress.finished(jobs_to_run[index].label, finished[index][0])
    return finished


def _run_on_ray(jobs_to_run: Sequence[Job], backend: Backend, log: Callable[[str], None]) -> Finished:
    ray = require("ray", extra="ray", needed_by="--ray")
    if not ray.is_initialized():
        ray.init(address=backend.address, include_dashboard=False, configure_logging=False, log_to_driver=True)
    parallel = max(1, int(ray.cluster_resources().get("CPU", 1)))
    log(f"Ray: {parallel} CPUs, {int(ray.cluster_resources().get('GPU', 0))} GPUs in the cluster")
    progress = _Progress(len(jobs_to_run), parallel, log)
    remotes: dict[tuple[Callable[..., Any], int, float], Any] = {}  # one Ray function per function and resources
    pending: dict[Any, int] = {}
    for index, job in enumerate(jobs_to_run):
        key = (job.function, job.cpus, job.gpus)
        if key not in remotes:
            remotes[key] = ray.remote(num_cpus=job.cpus, num_gpus=job.gpus, max_retries=RETRIES)(job.function)
        pending[remotes[key].remote(*job.arguments)] = index
    finished: Finished = {}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        index = pending.pop(ready[0])
        try:
            finished[index] = (None, ray.get(ready[0]))
        except ray.exceptions.RayTaskError as error:  # the job raised: its own error, not Ray's wrapping
            finished[index] = (_message(error.cause) if error.cause is not None else str(error), None)
        except ray.exceptions.RayError as error:  # its worker died RETRIES + 1 times, or the node is gone
            finished[index] = (_message(error), None)
        progress.finished(jobs_to_run[index].label, finished[index][0])
    return finished


__all__ = ["RETRIES", "Backend", "Job", "Outcome", "RunsFailedError", "check_outcomes", "die_with_parent", "run_all"]
