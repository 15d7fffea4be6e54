"""Joint-space planning (graspsim.sim.joint_paths) in a 2-D configuration space with known obstacles."""

from __future__ import annotations

import numpy as np
import pytest

from graspsim.sim.joint_paths import path_length, resample, rrt_connect, segment_free, shortcut

LO, HI = [-1.0, -1.0], [2.0, 2.0]


def wall(q: np.ndarray, margin: float = 0.0) -> bool:
    """Free unless inside a wall x in [0.4, 0.6], y in [-0.8, 1.5] (grown by ``margin``): from (0, 0) to (1, 0) a
    path must go round it below (y < -0.8) or above (y > 1.5)."""
    return not (0.4 - margin <= q[0] <= 0.6 + margin and -0.8 - margin <= q[1] <= 1.5 + margin)


def planning_wall(q: np.ndarray) -> bool:
    """The wall grown by the planners' check resolution below (0.01): a path checked against it at that
    resolution never enters the real wall, whatever happens between the checks."""
    return wall(q, 0.01)


def _free_everywhere(path, is_free, resolution=0.002) -> bool:
    return all(segment_free(a, b, is_free, resolution) for a, b in zip(path[:-1], path[1:]))


def test_segment_free_finds_a_thin_obstacle_at_its_resolution():
    thin = lambda q: not (0.49 <= q[0] <= 0.51)  # noqa: E731
    assert not segment_free(np.zeros(2), np.array([1.0, 0.0]), thin, 0.05)  # x = 0.50 is a check point
    assert segment_free(np.zeros(2), np.array([0.4, 0.0]), thin, 0.05)
    assert not segment_free(np.zeros(2), np.array([1.0, 0.0]), lambda q: q[0] < 0.99, 0.3)  # the end is checked


def test_rrt_connect_goes_round_a_wall_and_is_deterministic():
    start, goal = np.array([0.0, 0.0]), np.array([1.0, 0.0])
    path = rrt_connect(start, goal, planning_wall, LO, HI, np.random.default_rng(3), step_rad=0.2, check_rad=0.01)
    assert path is not None
    assert np.array_equal(path[0], start) and np.array_equal(path[-1], goal)
    assert _free_everywhere(path, wall)
    assert min(q[1] for q in path) < -0.8 or max(q[1] for q in path) > 1.5  # it went round
    again = rrt_connect(start, goal, planning_wall, LO, HI, np.random.default_rng(3), step_rad=0.2,
                        check_rad=0.01)
    assert len(again) == len(path) and all(np.array_equal(a, b) for a, b in zip(again, path))


def test_rrt_connect_straight_line_when_free_none_when_enclosed_and_checked_ends():
    rng = np.random.default_rng(0)
    assert [q.tolist() for q in rrt_connect([0, 0], [1, 1], lambda q: True, LO, HI, rng)] == [[0, 0], [1, 1]]
    boxed = lambda q: not (0.3 <= np.max(np.abs(q - 1.0)) <= 0.5)  # noqa: E731  a square ring round (1, 1)
    assert rrt_connect([0, 0], [1, 1], boxed, LO, HI, rng, max_samples=200) is None
    with pytest.raises(ValueError, match="must both be free"):
        rrt_connect([0.5, 0.0], [1, 0], wall, LO, HI, rng)


def test_shortcut_keeps_the_ends_stays_free_and_never_lengthens():
    start, goal = np.array([0.0, 0.0]), np.array([1.0, 0.0])
    path = rrt_connect(start, goal, planning_wall, LO, HI, np.random.default_rng(5), step_rad=0.1, check_rad=0.01)
    short = shortcut(path, planning_wall, np.random.default_rng(0), check_rad=0.01, tries=100)
    assert np.array_equal(short[0], start) and np.array_equal(short[-1], goal)
    assert _free_everywhere(short, wall)
    assert path_length(short) <= path_length(path) + 1e-12
    # the shortest way round the wall's lower end is |(0,0)-(0.4,-0.8)| + 0.2 + |(0.6,-0.8)-(1,0)|
    assert path_length(short) >= 2 * np.hypot(0.4, 0.8) + 0.2 - 1e-9


def test_resample_is_even_by_arc_length():
    path = [np.array([0.0, 0.0]), np.array([1.0, 0.0]), np.array([1.0, 1.0])]
    assert resample(path, 5).tolist() == [[0, 0], [0.5, 0], [1, 0], [1, 0.5], [1, 1]]
    assert resample([np.array([2.0, 3.0])], 3).tolist() == [[2, 3]] * 3
    with pytest.raises(ValueError, match="at least 2"):
        resample(path, 1)
