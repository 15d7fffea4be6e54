"""Speed of the numpy Panda kinematics: FK, Jacobian and IK for reachable and unreachable targets.

Reachable targets are the hand poses of random joint vectors (5 % away from the limits). Unreachable ones are
of two kinds: ``far`` (1.5 m from the shoulder: rejected by the reach bound without iterating) and
``in_reach_bad_orientation`` (0.82 m from the shoulder, the hand facing back at it: every restart runs).
Prints one JSON object: per kind the median/p90/max time [ms], success rate and median iterations.

Usage::

    python benchmarks/panda_ik_speed.py --targets 200
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from graspsim.grasping import panda_kinematics as pk


def _stats(times_s, results) -> dict:
    ms = np.asarray(times_s) * 1e3
    return {
        "n": len(ms),
        "median_ms": round(float(np.median(ms)), 3),
        "p90_ms": round(float(np.percentile(ms, 90)), 3),
        "max_ms": round(float(ms.max()), 3),
        "success_rate": round(float(np.mean([r.ok for r in results])), 4),
        "median_iterations": float(np.median([r.iterations for r in results])),
    }


def _time_ik(targets) -> dict:
    times, results = [], []
    for T in targets:
        t0 = time.perf_counter()
        results.append(pk.solve_ik(T))
        times.append(time.perf_counter() - t0)
    out = _stats(times, results)
    ok = [r for r in results if r.ok]
    if ok:
        out["max_position_error_m"] = float(max(r.position_error_m for r in ok))
        out["max_rotation_error_deg"] = float(max(r.rotation_error_deg for r in ok))
    return out


def _facing_shoulder(direction, distance_m) -> np.ndarray:
    d = np.asarray(direction, dtype=float) / np.linalg.norm(direction)
    z = -d
    x = np.cross([0.0, 0.0, 1.0], z) if abs(z[2]) < 0.99 else np.array([1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3] = np.c_[x, np.cross(z, x), z]
    T[:3, 3] = pk.SHOULDER_XYZ + distance_m * d
    return T


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=200, help="reachable targets (unreachable: a quarter each)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random joint vectors and directions")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    pad = 0.05 * (pk.Q_UPPER - pk.Q_LOWER)
    qs = rng.uniform(pk.Q_LOWER + pad, pk.Q_UPPER - pad, size=(args.targets, pk.ARM_DOF))

    n = 2000
    t0 = time.perf_counter()
    for i in range(n):
        pk.fk_hand(qs[i % len(qs)])
    fk_us = (time.perf_counter() - t0) / n * 1e6
    t0 = time.perf_counter()
    for i in range(n):
        pk.jacobian(qs[i % len(qs)])
    jac_us = (time.perf_counter() - t0) / n * 1e6

    n_bad = max(1, args.targets // 4)
    directions = rng.normal(size=(n_bad, 3))
    directions[:, 2] = np.abs(directions[:, 2])
    report = {
        "fk_hand_us": round(fk_us, 2),
        "jacobian_us": round(jac_us, 2),
        "ik_reachable": _time_ik([pk.fk_hand(q) for q in qs]),
        "ik_unreachable_far": _time_ik([_facing_shoulder(d, 1.5) for d in directions]),
        "ik_unreachable_in_reach_bad_orientation": _time_ik([_facing_shoulder(d, 0.82) for d in directions]),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
