"""Collision-free joint-space paths: RRT-Connect, shortcutting and even resampling (numpy only).

The robots of robot-segmentation videos other than the Panda (:mod:`graspsim.sim.embodiments`: the KUKA and the
xArm, whose poses are set, not driven) move from their parking pose to a pre-grasp pose in a shelf or over a table;
a straight joint-space line between the two crosses the furniture in most draws (measured: the KUKA 0 of 18 clear,
the xArm 4 of 18), so the motion is planned. Nothing here knows pybullet: the caller gives ``is_free(q) -> bool``
(the robot posed at ``q``, checked against itself and the scene), and every random draw comes from the caller's
numpy Generator, so the same generator state gives the same path.

Configurations are (dof,) float64 arrays of joint angles (rad); distances are Euclidean in joint space. A segment
counts as free when ``is_free`` holds at its ends and at points at most ``check_rad`` apart along it (the
resolution the caller chooses: the finest motion a link makes between two checks).

* :func:`segment_free`: one straight segment checked at that resolution;
* :func:`rrt_connect`: two trees grown towards uniform samples and each other (Kuffner and LaValle 2000) until
  they meet; the path start -> goal, or None after ``max_samples`` samples;
* :func:`shortcut`: random shortcuts that keep the path free and never lengthen it;
* :func:`resample`: ``n`` configurations evenly spaced by arc length along a path (on its segments, so free
  where the path's segments were checked).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

IsFree = Callable[[np.ndarray], bool]


def segment_free(q_a: np.ndarray, q_b: np.ndarray, is_free: IsFree, check_rad: float) -> bool:
    """Whether ``is_free`` holds at ``q_b`` and at points along ``q_a`` -> ``q_b`` at most ``check_rad`` apart
    (``q_a`` itself is taken as checked: every caller's start already is)."""
    q_a, q_b = np.asarray(q_a, dtype=np.float64), np.asarray(q_b, dtype=np.float64)
    n = max(1, int(np.ceil(np.linalg.norm(q_b - q_a) / check_rad)))
    return all(is_free(q_a + (q_b - q_a) * (i / n)) for i in range(1, n + 1))


class _Tree:
    """Nodes (k, dof) and each node's parent index (-1 for the root)."""

    def __init__(self, root: np.ndarray):
        self.nodes = [np.asarray(root, dtype=np.float64)]
        self.parent = [-1]

    def nearest(self, q: np.ndarray) -> int:
        return int(np.argmin(np.linalg.norm(np.asarray(self.nodes) - q, axis=1)))

    def add(self, q: np.ndarray, parent: int) -> int:
        self.nodes.append(q)
        self.parent.append(parent)
        return len(self.nodes) - 1

    def branch(self, k: int) -> list[np.ndarray]:
        """The configurations from the root to node ``k``."""
        out = []
        while k >= 0:
            out.append(self.nodes[k])
            k = self.parent[k]
        return out[::-1]


def _extend(tree: _Tree, q_to: np.ndarray, is_free: IsFree, step_rad: float, check_rad: float) -> int | None:
    """One step of at most ``step_rad`` from ``tree``'s nearest node towards ``q_to``: the new node's index, or
    None when that step is not free."""
    near = tree.nearest(q_to)
    q_near = tree.nodes[near]
    gap = q_to - q_near
    dist = float(np.linalg.norm(gap))
    q_new = q_to.copy() if dist <= step_rad else q_near + gap * (step_rad / dist)
    if not segment_free(q_near, q_new, is_free, check_rad):
        return None
    return tree.add(q_new, near)


def _connect(tree: _Tree, q_to: np.ndarray, is_free: IsFree, step_rad: float, check_rad: float) -> int | None:
    """Steps from ``tree`` towards ``q_to`` until it is reached (its node's index) or a step is blocked (None)."""
    while True:
        k = _extend(tree, q_to, is_free, step_rad, check_rad)
        if k is None:
            return None
        if np.array_equal(tree.nodes[k], q_to):
            return k


def rrt_connect(q_start: np.ndarray, q_goal: np.ndarray, is_free: IsFree, lower: Sequence[float],
                upper: Sequence[float], rng: np.random.Generator, step_rad: float = 0.2, check_rad: float = 0.05,
                max_samples: int = 1500) -> list[np.ndarray] | None:
    """A free path ``[q_start, ..., q_goal]`` (each consecutive pair a free segment), or None when ``max_samples``
    uniform samples within ``lower`` / ``upper`` (dof,) did not join the two trees. Both ends must be free
    (ValueError otherwise: the caller's poses are checked before planning). The straight segment is tried first."""
    q_start, q_goal = np.asarray(q_start, dtype=np.float64), np.asarray(q_goal, dtype=np.float64)
    if not (is_free(q_start) and is_free(q_goal)):
        raise ValueError("rrt_connect: the start and the goal must both be free")
    if segment_free(q_start, q_goal, is_free, check_rad):
        return [q_start, q_goal]
    lower, upper = np.asarray(lower, dtype=np.float64), np.asarray(upper, dtype=np.float64)
    a, b = _Tree(q_start), _Tree(q_goal)  # the tree that grows towards the sample, the one that follows
    a_is_start = True
    for _ in range(max_samples):
        k = _extend(a, rng.uniform(lower, upper), is_free, step_rad, check_rad)
        if k is not None:
            m = _connect(b, a.nodes[k], is_free, step_rad, check_rad)
            if m is not None:  # both trees hold the same configuration: join their branches there
                from_start, from_goal = (a.branch(k), b.branch(m)) if a_is_start else (b.branch(m), a.branch(k))
                return from_start + from_goal[::-1][1:]
        a, b, a_is_start = b, a, not a_is_start
    return None


def path_length(path: Sequence[np.ndarray]) -> float:
    """Joint-space length of a path (rad)."""
    return float(sum(np.linalg.norm(np.asarray(q1) - np.asarray(q0)) for q0, q1 in zip(path[:-1], path[1:])))


def shortcut(path: Sequence[np.ndarray], is_free: IsFree, rng: np.random.Generator, check_rad: float = 0.05,
             tries: int = 60) -> list[np.ndarray]:
    """``path`` with random shortcuts: ``tries`` times two points on the path (on its segments) are drawn and,
    when the straight segment between them is free, it replaces what lies between; the ends stay, the result is
    free wherever ``path`` was and never longer."""
    path = [np.asarray(q, dtype=np.float64) for q in path]
    for _ in range(tries):
        if len(path) < 3:
            break
        lengths = np.array([np.linalg.norm(q1 - q0) for q0, q1 in zip(path[:-1], path[1:])])
        cum = np.concatenate([[0.0], np.cumsum(lengths)])
        s, t = np.sort(rng.uniform(0.0, cum[-1], 2))
        i, j = int(np.searchsorted(cum, s, side="right")) - 1, int(np.searchsorted(cum, t, side="right")) - 1
        i, j = min(i, len(lengths) - 1), min(j, len(lengths) - 1)
        if i == j:
            continue
        q_s = _point_on(path, cum, lengths, s, i)
        q_t = _point_on(path, cum, lengths, t, j)
        if segment_free(q_s, q_t, is_free, check_rad):
            path = path[:i + 1] + [q_s, q_t] + path[j + 1:]
    return _drop_repeats(path)


def _point_on(path: list[np.ndarray], cum: np.ndarray, lengths: np.ndarray, s: float, i: int) -> np.ndarray:
    """The point at arc length ``s`` on segment ``i`` of ``path``."""
    f = 0.0 if lengths[i] == 0 else (s - cum[i]) / lengths[i]
    return path[i] + (path[i + 1] - path[i]) * float(np.clip(f, 0.0, 1.0))


def _drop_repeats(path: list[np.ndarray]) -> list[np.ndarray]:
    out = [path[0]]
    for q in path[1:]:
        if not np.allclose(q, out[-1], atol=1e-12):
            out.append(q)
    if len(out) == 1:
        out.append(path[-1])
    return out


def resample(path: Sequence[np.ndarray], n: int) -> np.ndarray:
    """(n, dof): ``n`` >= 2 configurations evenly spaced by arc length along ``path``, its two ends included."""
    if n < 2:
        raise ValueError(f"resample needs at least 2 configurations, got n={n}")
    path = [np.asarray(q, dtype=np.float64) for q in path]
    if len(path) == 1:
        return np.repeat(path[0][None], n, axis=0)
    lengths = np.array([np.linalg.norm(q1 - q0) for q0, q1 in zip(path[:-1], path[1:])])
    cum = np.concatenate([[0.0], np.cumsum(lengths)])
    out = []
    for s in np.linspace(0.0, cum[-1], n):
        i = min(int(np.searchsorted(cum, s, side="right")) - 1, len(lengths) - 1)
        out.append(_point_on(path, cum, lengths, s, i))
    out[-1] = path[-1]
    return np.asarray(out)
