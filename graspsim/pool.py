"""The one process pool of graspsim: K spawn workers, each building its heavy state once.

``bench`` (one environment + policy per worker) and ``render`` (one scene
renderer per worker) fan out the same way: every worker process builds one
*job runner* (``factory(*args)``, an object with ``run(*job)`` and ``close()``)
and then runs jobs until there are none left; results come back in completion
order. With one worker the runner is built in this process and no pool starts.

Why spawn, not fork: pybullet clients and the EGL context must not be shared
across a fork (a forked child blocks inside Mesa). Why
:class:`concurrent.futures.ProcessPoolExecutor` rather than
``multiprocessing.Pool``: a worker that dies (killed, out of memory) raises
:class:`~concurrent.futures.process.BrokenProcessPool` in the parent instead of
leaving it waiting forever, so a long job fails fast and is resumed.

Workers keep llvmpipe's default render threads (one per core): limiting them to
LP_NUM_THREADS=1 per worker was measured with benchmarks/scaling.py (2 workers,
2 cores, 4 interleaved pairs of 40 shelf-test attempts) and gained nothing
(8.16 s vs 7.99 s mean wall time, within the run-to-run spread of +-7 %).
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from typing import Any, Callable, Iterable, Iterator, Protocol

import multiprocessing


class JobRunner(Protocol):
    """What a worker builds once and reuses for every job."""

    def run(self, *job: Any) -> Any: ...

    def close(self) -> None: ...


# The runner of this worker process (built by the pool initializer).
_RUNNER: JobRunner | None = None


def share_torch_threads(workers: int) -> None:
    """Give each of ``workers`` processes an equal share of the cores for torch (at least one thread).

    Only when the runner already imported torch (learned policies): K processes with
    torch's default of one thread per core each oversubscribe the CPU, which made a
    2-worker clip_sam run several times slower than 1 thread per worker on 2 cores.
    """
    if workers > 1 and "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(max(1, (os.cpu_count() or 1) // workers))


def _init_worker(factory: Callable[..., JobRunner], args: tuple, workers: int) -> None:
    global _RUNNER
    _RUNNER = factory(*args)
    share_torch_threads(workers)


def _run_job(job: tuple) -> Any:
    return _RUNNER.run(*job)


def run_jobs(factory: Callable[..., JobRunner], args: tuple, jobs: Iterable[tuple], workers: int) -> Iterator[Any]:
    """Run every job of ``jobs`` on ``workers`` processes; yield each result as it finishes.

    A job is the tuple of arguments of one ``runner.run(*job)`` call.
    ``factory`` and ``args`` must be picklable (a module-level class or function):
    each worker calls ``factory(*args)`` once. Results come in completion order
    when ``workers > 1``, in job order otherwise. Closing the iterator early (or
    an exception in the caller) cancels the jobs not yet started.
    """
    jobs = list(jobs)
    if not jobs:
        return
    if workers <= 1:
        runner = factory(*args)
        try:
            for job in jobs:
                yield runner.run(*job)
        finally:
            runner.close()
        return
    context = multiprocessing.get_context("spawn")
    n = min(workers, len(jobs))
    executor = ProcessPoolExecutor(n, mp_context=context, initializer=_init_worker, initargs=(factory, args, workers))
    try:
        # Keep only a few jobs queued per worker, so an interrupted run has not
        # shipped the whole job list to the workers.
        pending_jobs = iter(jobs)
        running = set()
        for job in pending_jobs:
            running.add(executor.submit(_run_job, job))
            if len(running) >= 2 * n:
                break
        while running:
            finished, running = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                for job in pending_jobs:
                    running.add(executor.submit(_run_job, job))
                    break
                yield future.result()
    finally:
        executor.shutdown(wait=True, cancel_futures=True)
