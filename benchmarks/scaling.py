"""Attempts per second by worker count and backend (local processes, Ray) for one policy on one suite.

Each configuration runs in a fresh Python process (so no renderer, Ray session
or warm cache carries over from the previous one) and is timed from the
moment it starts the run, through start-up (worker processes or Ray actors,
imports, renderer, environment), to the last row:

* ``wall_attempts_per_s``: attempts / wall time, start-up included;
* ``startup_s``: from the start to the first finished attempt;
* ``steady_attempts_per_s``: the throughput once every worker is running:
  (attempts - K) / (last arrival - K-th arrival) for K workers. (Counting
  from the very first arrival instead, (attempts - 1) / (last - first), would
  flatter K workers: their first K rows arrive together, so with 20 attempts
  an ideal 2 workers would score 2.11x one worker instead of 2x.);
* ``stage_ms``: the mean per-attempt time of each stage from the rows
  (``build_ms`` scene build and settle, ``render_ms``, ``perception_ms``,
  ``simulation_ms`` grasp execution, ``total_ms``), in milliseconds of wall
  time inside a worker;
* ``ratio_2_to_1`` (per backend): the 2-worker figure over the 1-worker one:
  ``paired`` is the median over repeats of the ratio within each repeat (the
  two runs minutes apart: the robust figure on a machine whose speed drifts),
  ``best`` compares the fastest run of each configuration, ``median`` the
  medians. The order of worker counts alternates between repeats so a drift
  in machine speed does not always favour the same one;
* ``cpu``: what the machine's CPUs did during the run, from ``/proc``:
  ``busy_s`` (all processes), ``ours_s`` (this run's process tree: driver,
  pool workers, Ray processes), ``others_s`` (busy_s - ours_s: other users'
  processes competing for the cores, which disturbs the timing) and
  ``steal_s`` (time the hypervisor gave our vCPUs to someone else). A run with
  large ``others_s`` or ``steal_s`` is not a clean measurement.

``--workers 1`` with the ``processes`` backend is what ``graspsim bench
--workers 1`` does: the attempts run in the calling process (no pool).

Usage::

    python benchmarks/scaling.py --episodes 40            # oracle on shelf-test, 1 and 2 workers, both backends
    python benchmarks/scaling.py --backends processes --workers 1,2 --episodes 20

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import threading
import time

STAGES = ("build_ms", "render_ms", "perception_ms", "simulation_ms", "total_ms")


def _clock_ticks() -> int:
    return os.sysconf("SC_CLK_TCK")


def _cpu_totals() -> tuple[float, float]:
    """(busy seconds, steal seconds) of all CPUs since boot, from /proc/stat."""
    with open("/proc/stat") as fh:
        fields = [int(x) for x in fh.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    tick = _clock_ticks()
    return (user + nice + system + irq + softirq) / tick, steal / tick


def _process_table() -> dict[int, tuple[int, float]]:
    """pid -> (parent pid, user + system CPU seconds) of every process."""
    table, tick = {}, _clock_ticks()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                text = fh.read()
        except OSError:  # exited meanwhile
            continue
        rest = text[text.rfind(")") + 2:].split()  # the command name may hold spaces
        table[int(entry)] = (int(rest[1]), (int(rest[11]) + int(rest[12])) / tick)
    return table


class CpuMonitor(threading.Thread):
    """Samples /proc every ``interval_s`` to split the machine's CPU time into ours and other processes'."""

    def __init__(self, interval_s: float = 0.25):
        super().__init__(daemon=True)
        self.interval_s = interval_s
        self._stop_event = threading.Event()
        self._first: dict[int, float] = {}
        self._last: dict[int, float] = {}
        self._start = _cpu_totals()
        self._sample(initial=True)

    def _sample(self, initial: bool = False) -> None:
        table = _process_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        ours, stack = set(), [os.getpid()]
        while stack:  # this process and all its descendants (pool workers, raylet, Ray workers)
            pid = stack.pop()
            ours.add(pid)
            stack.extend(children.get(pid, ()))
        for pid in ours:
            cpu = table[pid][1] if pid in table else 0.0
            # A process first seen after the start began during the run: all its CPU time counts.
            self._first.setdefault(pid, cpu if initial else 0.0)
            self._last[pid] = cpu

    def run(self) -> None:
        while not self._stop_event.wait(self.interval_s):
            self._sample()

    def stop(self) -> dict[str, float]:
        self._stop_event.set()
        self.join()
        self._sample()
        busy, steal = _cpu_totals()
        busy -= self._start[0]
        ours = sum(self._last[p] - self._first[p] for p in self._last)
        return {"busy_s": round(busy, 2), "ours_s": round(ours, 2), "others_s": round(max(busy - ours, 0.0), 2),
                "steal_s": round(steal - self._start[1], 2)}


def wait_until_idle(max_wait_s: float, busy_below: float = 0.1, window_s: float = 2.0) -> float:
    """Wait (up to ``max_wait_s``) until the CPUs were busy less than ``busy_below`` (a share of all cores)
    over ``window_s``; return the seconds waited. Called between runs, when nothing of ours is running,
    so what keeps the CPUs busy is someone else's work."""
    t0 = time.perf_counter()
    cores = os.cpu_count() or 1
    while True:
        before = _cpu_totals()[0]
        time.sleep(window_s)
        share = (_cpu_totals()[0] - before) / (window_s * cores)
        if share < busy_below or time.perf_counter() - t0 >= max_wait_s:
            return time.perf_counter() - t0


def measure(args: argparse.Namespace, backend: str, workers: int) -> dict:
    """Run one configuration in this process and return its timings."""
    from graspsim.bench.runner import RunSpec, iter_rows

    spec = RunSpec(policy=args.policy, suite=args.suite, episodes=args.episodes, seed=args.seed,
                   renderer=args.renderer, width=args.width, height=args.height, robot=args.robot)
    jobs = spec.jobs()
    arrivals, rows = [], []
    monitor = CpuMonitor()
    monitor.start()
    t0 = time.perf_counter()
    for row in iter_rows(spec, jobs, workers, use_ray=backend == "ray"):
        arrivals.append(time.perf_counter() - t0)
        rows.append(row)
    wall_s = time.perf_counter() - t0
    cpu = monitor.stop()
    done = [r for r in rows if not r.get("skipped")]
    k = min(workers, len(rows))
    steady_s = arrivals[-1] - arrivals[k - 1]
    return {
        "backend": backend, "workers": workers, "attempts": len(rows), "successes": sum(r["success"] for r in done),
        "renderer": rows[0].get("renderer") if rows else None,
        "wall_s": round(wall_s, 3),
        "startup_s": round(arrivals[0], 3),
        "wall_attempts_per_s": round(len(rows) / wall_s, 3),
        "steady_attempts_per_s": round((len(rows) - k) / steady_s, 3) if steady_s > 0 else None,
        "stage_ms": {k: round(sum(r[k] for r in done) / len(done), 1) for k in STAGES if done},
        "cpu": cpu,
        # CPU seconds of our process tree per attempt: if it grows with K, the workers slow each other down.
        "cpu_s_per_attempt": round(cpu["ours_s"] / len(rows), 3) if rows else None,
        # What the user set; unset means graspsim's default for worker processes (1) and llvmpipe's (one per core) here.
        "lp_num_threads": os.environ.get("LP_NUM_THREADS"),
    }


def main() -> None:
    from graspsim.types import DEFAULT_ROBOT, ROBOTS  # plain values (numpy only): start-up is timed in --one runs

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--policy", default="oracle")
    parser.add_argument("--suite", default="shelf-test")
    parser.add_argument("--episodes", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    parser.add_argument("--backends", default="processes,ray", help="comma-separated: processes, ray")
    parser.add_argument("--renderer", default="auto")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--robot", default=DEFAULT_ROBOT, choices=ROBOTS)
    parser.add_argument("--repeats", type=int, default=1,
                        help="runs of each configuration, interleaved (the machine may be shared: compare the best)")
    parser.add_argument("--wait-idle", type=float, default=0.0, metavar="SECONDS",
                        help="before each run, wait up to this long for other processes to leave the CPUs idle")
    parser.add_argument("--one", nargs=2, metavar=("BACKEND", "WORKERS"), help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.one:  # child: one configuration, JSON on the last stdout line
        result = measure(args, args.one[0], int(args.one[1]))
        sys.stdout.flush()
        print("\n" + json.dumps(result))
        return

    workers = [int(w) for w in args.workers.split(",")]
    backends = [b.strip() for b in args.backends.split(",")]
    passthrough = [f"--{k}={getattr(args, k)}" for k in ("policy", "suite", "episodes", "seed", "renderer", "width",
                                                          "height", "robot")]
    results = []
    for repeat in range(args.repeats):  # interleaved, so a burst of outside load hits no single configuration
        for backend in backends:
            for count in (workers if repeat % 2 == 0 else workers[::-1]):
                waited = wait_until_idle(args.wait_idle) if args.wait_idle > 0 else 0.0
                proc = subprocess.run([sys.executable, __file__, *passthrough, "--one", backend, str(count)],
                                      capture_output=True, text=True)
                if proc.returncode != 0:
                    results.append({"backend": backend, "workers": count, "repeat": repeat,
                                    "error": proc.stderr.strip()[-2000:]})
                    continue
                results.append({**json.loads(proc.stdout.strip().splitlines()[-1]), "repeat": repeat,
                                "waited_for_idle_s": round(waited, 1)})
    keys = ("wall_attempts_per_s", "steady_attempts_per_s")
    best, median = {}, {}
    for backend in backends:
        for count in workers:
            runs = [r for r in results if r["backend"] == backend and r["workers"] == count and "error" not in r]
            for key in keys:
                values = [r[key] for r in runs if r.get(key)]
                if values:
                    best.setdefault(backend, {}).setdefault(count, {})[key] = max(values)
                    median.setdefault(backend, {}).setdefault(count, {})[key] = round(statistics.median(values), 3)
    ratios = {}
    for name, table in (("best", best), ("median", median)):
        for backend, by_count in table.items():
            if 1 in by_count and 2 in by_count:
                ratios.setdefault(backend, {})[name] = {
                    key: round(by_count[2][key] / by_count[1][key], 3) for key in keys
                    if key in by_count[1] and key in by_count[2]}
    for backend in backends:
        per_repeat = []
        for repeat in range(args.repeats):
            pair = {r["workers"]: r for r in results
                    if r["backend"] == backend and r["repeat"] == repeat and "error" not in r}
            if 1 in pair and 2 in pair:
                per_repeat.append({key: pair[2][key] / pair[1][key] for key in keys
                                   if pair[1].get(key) and pair[2].get(key)})
        if per_repeat:
            ratios.setdefault(backend, {})["paired"] = {
                key: round(statistics.median(p[key] for p in per_repeat if key in p), 3) for key in keys}
            ratios[backend]["paired_each_repeat"] = [{k: round(v, 3) for k, v in p.items()} for p in per_repeat]
    print(json.dumps({"policy": args.policy, "suite": args.suite, "episodes": args.episodes,
                      "renderer": args.renderer, "size": [args.width, args.height], "cpus": os.cpu_count(),
                      "repeats": args.repeats, "results": results, "best": best, "median": median,
                      "ratio_2_to_1": ratios}, indent=2))


if __name__ == "__main__":
    main()
