"""The one process pool of graspsim: K spawn workers, each building its heavy state once.

``bench`` (one environment + policy per worker) and ``render`` (one scene
renderer per worker) fan out the same way: every worker process builds one
*job runner* (``factory(*args)``, an object with ``run(*job)`` and ``close()``)
and then runs jobs until there are none left; results come back in completion
order. With one worker the runner is built in this process and no pool starts
(unless workers are recycled: ``run_jobs(..., jobs_per_pool=N)``).

Why spawn, not fork: pybullet clients and the EGL context must not be shared
across a fork (a forked child blocks inside Mesa). Why
:class:`concurrent.futures.ProcessPoolExecutor` rather than
``multiprocessing.Pool``: a worker that dies (killed, out of memory) raises
:class:`~concurrent.futures.process.BrokenProcessPool` in the parent instead of
leaving it waiting forever, so a long job fails fast and is resumed.

A worker that dies ends the run with :class:`WorkerDiedError`, which names the
job it was running: each worker reports the job it starts and finishes on a
queue, and the dead one is told apart from the workers the pool then stops by
its exit status (the pool stops the others with SIGTERM).

Workers keep llvmpipe's default render threads (one per core): limiting them to
LP_NUM_THREADS=1 per worker was measured with benchmarks/scaling.py (2 workers,
2 cores, 4 interleaved pairs of 40 shelf-test attempts) and gained nothing
(8.16 s vs 7.99 s mean wall time, within the run-to-run spread of +-7 %).
"""

from __future__ import annotations

import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterable, Iterator, Protocol

import multiprocessing


class JobRunner(Protocol):
    """What a worker builds once and reuses for every job."""

    def run(self, *job: Any) -> Any: ...

    def close(self) -> None: ...


# The runner of this worker process (built by the pool initializer) and the queue it reports its jobs on.
_RUNNER: JobRunner | None = None
_STARTED = None


class WorkerDiedError(RuntimeError):
    """A worker process died (killed, out of memory, crashed in C code) while running ``jobs``.

    ``jobs``: the job(s) the dead worker was running, as ``label`` formatted them
    (empty if it died between jobs). Results already yielded are not affected.
    """

    def __init__(self, jobs: list[str], exit_codes: list[int]):
        self.jobs = jobs
        how = ", ".join(_describe_exit(code) for code in exit_codes) or "died"
        what = f" while running {' / '.join(jobs)}" if jobs else ""
        super().__init__(f"a worker process {how}{what}; the results finished before are kept "
                         "(run again with --resume to finish)")


def _describe_exit(code: int | None) -> str:
    if code is not None and code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            pass
    return f"exited with status {code}"


def cores_available() -> int:
    """CPU cores this process may run on (its affinity mask: a container's or ``taskset``'s limit, not the host's)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def torch_threads_per_worker(workers: int) -> int | None:
    """The torch threads each of ``workers`` processes gets (None for one worker: torch's own default)."""
    return max(1, cores_available() // workers) if workers > 1 else None


def share_torch_threads(workers: int) -> None:
    """Give each of ``workers`` processes an equal share of the available cores for torch (at least one thread).

    Only when the runner already imported torch (learned policies): K processes with
    torch's default of one thread per core each oversubscribe the CPU, which made a
    2-worker clip_sam run several times slower than 1 thread per worker on 2 cores.
    """
    if workers > 1 and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(torch_threads_per_worker(workers))


def _init_worker(factory: Callable[..., JobRunner], args: tuple, workers: int, started) -> None:
    global _RUNNER, _STARTED
    _STARTED = started
    _RUNNER = factory(*args)
    share_torch_threads(workers)


def _run_job(index: int, job: tuple) -> Any:
    _STARTED.put((os.getpid(), index))
    result = _RUNNER.run(*job)
    _STARTED.put((os.getpid(), None))
    return result


def _dead_worker_error(executor: ProcessPoolExecutor, processes: dict, started, jobs: list[tuple],
                       label: Callable[[tuple], str]) -> WorkerDiedError:
    """Which job the worker that broke the pool was running (see the module docstring)."""
    processes.update(getattr(executor, "_processes", None) or {})
    current: dict[int, int | None] = {}
    while not started.empty():
        pid, index = started.get()
        current[pid] = index
    executor.shutdown(wait=True, cancel_futures=True)  # every worker has exited after this
    # The pool stops the surviving workers with SIGTERM; the one that broke it died otherwise.
    dead = {pid: p.exitcode for pid, p in processes.items() if p.exitcode not in (0, -signal.SIGTERM)}
    running = [current.get(pid) for pid in (dead or current)]
    return WorkerDiedError([label(jobs[i]) for i in running if i is not None], list(dead.values()))


def run_jobs(factory: Callable[..., JobRunner], args: tuple, jobs: Iterable[tuple], workers: int,
             label: Callable[[tuple], str] = repr, jobs_per_pool: int | None = None) -> Iterator[Any]:
    """Run every job of ``jobs`` on ``workers`` processes; yield each result as it finishes.

    A job is the tuple of arguments of one ``runner.run(*job)`` call.
    ``factory`` and ``args`` must be picklable (a module-level class or function):
    each worker calls ``factory(*args)`` once. Results come in completion order
    when ``workers > 1``, in job order otherwise. Closing the iterator early (or
    an exception in the caller) cancels the jobs not yet started. A worker that
    dies raises :class:`WorkerDiedError` naming its job (``label(job)``).

    ``jobs_per_pool``: run the jobs in batches of this many, each batch on a new pool of fresh processes (also
    with one worker, which then runs in a child process), so no process runs more jobs than that. For runners
    whose native libraries keep memory they never free (pybullet's renderers keep every texture they loaded:
    ``render --domain-rand`` loads new ones for every scene).
    """
    jobs = list(jobs)
    if not jobs:
        return
    if jobs_per_pool is not None:
        if jobs_per_pool < 1:
            raise ValueError(f"jobs_per_pool must be >= 1, got {jobs_per_pool}")
        for start in range(0, len(jobs), jobs_per_pool):
            yield from _run_pool(factory, args, jobs[start:start + jobs_per_pool], max(1, workers), label)
        return
    if workers <= 1:
        runner = factory(*args)
        try:
            for job in jobs:
                yield runner.run(*job)
        finally:
            runner.close()
        return
    yield from _run_pool(factory, args, jobs, workers, label)


def _run_pool(factory: Callable[..., JobRunner], args: tuple, jobs: list[tuple], workers: int,
              label: Callable[[tuple], str]) -> Iterator[Any]:
    """:func:`run_jobs` on a new pool of ``min(workers, len(jobs))`` spawn processes."""
    context = multiprocessing.get_context("spawn")
    n = min(workers, len(jobs))
    started = context.SimpleQueue()
    executor = ProcessPoolExecutor(n, mp_context=context, initializer=_init_worker,
                                   initargs=(factory, args, workers, started))
    processes: dict = {}
    try:
        # Keep only a few jobs queued per worker, so an interrupted run has not
        # shipped the whole job list to the workers.
        pending_jobs = iter(enumerate(jobs))
        index_of: dict = {}  # future -> its job's index
        running = set()

        def submit(index: int, job: tuple) -> None:
            future = executor.submit(_run_job, index, job)
            index_of[future] = index
            running.add(future)

        for index, job in pending_jobs:
            submit(index, job)
            if len(running) >= 2 * n:
                break
        while running:
            processes.update(getattr(executor, "_processes", None) or {})  # pid -> Process, to read exit codes
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            # wait() returns a set: futures that finished together are taken in job order, so one worker's
            # results come in job order (as run_jobs promises), whatever the set's iteration order.
            for future in sorted(finished, key=index_of.pop):
                try:
                    for index, job in pending_jobs:
                        submit(index, job)
                        break
                    result = future.result()
                except BrokenProcessPool:
                    raise _dead_worker_error(executor, processes, started, jobs, label) from None
                yield result
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
