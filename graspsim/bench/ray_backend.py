"""Run a benchmark's attempts on Ray actors (optional: ``pip install "graspsim[ray]"``).

Each of ``num_workers`` actors builds one :class:`~graspsim.bench.runner.EpisodeRunner`
(environment, renderer and policy models) when it starts and reuses it for all
the attempts it is given, exactly as a local worker process does. The driver
keeps one attempt in flight per actor and hands the next one to whichever
actor finishes first, yielding rows as they arrive: the caller writes each row
at once, so a run killed half-way keeps every finished attempt and resumes
with ``--resume`` (with Ray or without: the backend is not part of what must
match on resume).

Rows are the same as with local processes (every attempt depends only on its
scene seed). ``ray`` is imported only inside these functions, so graspsim
imports without it.
"""

from __future__ import annotations

import os
from collections import deque
from typing import TYPE_CHECKING, Any, Iterator

if TYPE_CHECKING:
    from graspsim.bench.runner import RunSpec

INSTALL_HINT = 'pip install "graspsim[ray]"'


class RayUnavailableError(RuntimeError):
    """``--ray`` was asked for but the ray package is not installed."""


class _EpisodeActor:
    """One EpisodeRunner in one Ray worker process (wrapped with ``ray.remote`` at run time)."""

    def __init__(self, spec: "RunSpec"):
        from graspsim.bench.runner import EpisodeRunner

        self.runner = EpisodeRunner(spec)
        self.attempts = 0

    def run(self, episode_id: int, scene_seed: int) -> dict[str, Any]:
        self.attempts += 1
        return self.runner.run(episode_id, scene_seed)

    def stats(self) -> dict[str, Any]:
        """This actor's process id, how many EpisodeRunners and policies its process built, and attempts run."""
        from graspsim.bench.runner import EpisodeRunner
        from graspsim.policies.registry import BUILT_IN_PROCESS

        return {"pid": os.getpid(), "runners_built": EpisodeRunner.built_in_process,
                "policies_built": sum(BUILT_IN_PROCESS.values()), "attempts": self.attempts}

    def close(self) -> None:
        self.runner.close()


def iter_rows_ray(spec: "RunSpec", jobs: list[tuple[int, int]], address: str | None, num_workers: int,
                  actor_stats: list[dict[str, Any]] | None = None) -> Iterator[dict[str, Any]]:
    """Run ``jobs`` ((episode_id, scene_seed) pairs) on ``num_workers`` Ray actors; yield rows as they finish.

    ``address``: an existing Ray cluster (``"ray://host:10001"``, ``"auto"``,
    ``"host:6379"``), or None to start a local one with ``num_workers`` CPUs. If
    Ray is already initialised in this process, that session is used as is. Ray
    is shut down at the end only if this function started it. ``actor_stats``:
    if a list is given, each actor's :meth:`_EpisodeActor.stats` is appended to
    it once all jobs are done (to check that every actor built its runner once).

    Raises RuntimeError (with the install hint) if ray is not installed; an
    exception raised by an attempt is re-raised here (as Ray's wrapper of it).
    """
    try:
        import ray
    except ImportError as exc:
        raise RayUnavailableError(f"the Ray backend needs the 'ray' package ({exc}); "
                                  f"install it with: {INSTALL_HINT}") from None
    num_workers = max(1, int(num_workers))
    jobs = list(jobs)
    if not jobs:
        return
    started = not ray.is_initialized()
    if started:  # a local cluster (no address) gets one CPU slot per actor
        ray.init(address=address or None, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True,
                 **({} if address else {"num_cpus": num_workers}))
    actors = []
    try:
        # num_cpus=1 per actor: at most one actor per core, as with local worker processes.
        actor_class = ray.remote(num_cpus=1)(_EpisodeActor)
        actors = [actor_class.remote(spec) for _ in range(min(num_workers, len(jobs)))]
        todo = deque(jobs)
        in_flight: dict[Any, Any] = {}  # ObjectRef -> actor running it
        for actor in actors:
            in_flight[actor.run.remote(*todo.popleft())] = actor
        while in_flight:
            (ref,), _ = ray.wait(list(in_flight), num_returns=1)
            actor = in_flight.pop(ref)
            row = ray.get(ref)
            if todo:  # keep the idle actor busy before handing the row back
                in_flight[actor.run.remote(*todo.popleft())] = actor
            yield row
        if actor_stats is not None:
            actor_stats.extend(ray.get([a.stats.remote() for a in actors]))
        ray.get([a.close.remote() for a in actors])
    finally:
        for actor in actors:
            try:
                ray.kill(actor)
            except Exception:  # already dead or Ray shutting down: nothing left to free
                pass
        if started:
            ray.shutdown()
