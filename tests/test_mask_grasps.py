"""Known-answer tests for grasp-rectangle geometry and mask-based grasp planning.

Synthetic scenes: a flat background plane at 1.0 m, objects whose visible face is
at 0.8 m, a 640x480 camera with fx = fy = 500 px, so 1 cm on the object face is
6.25 px and 4 cm is 25 px.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from graspsim.config import GripperSpec
from graspsim.grasping.mask_grasps import ScoredGrasp, check_grasps, fallback_grasp, mask_to_grasps
from graspsim.grasping.rect_geometry import (
    convex_polygon_mask,
    jaw_plates,
    rect_corners,
    rect_polygon_mask,
)
from graspsim.types import GraspRect

H, W = 480, 640
K = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])
Z_OBJ, Z_BG = 0.8, 1.0
PX_PER_M = 500.0 / Z_OBJ  # 625 px per metre on the object face
YY, XX = np.mgrid[:H, :W]


def px(metres: float) -> float:
    return metres * PX_PER_M


def scene(*masks: np.ndarray) -> np.ndarray:
    depth = np.full((H, W), Z_BG, dtype=np.float32)
    for m in masks:
        depth[m] = Z_OBJ
    return depth


def bar(theta: float = 0.0, cx: float = 320, cy: float = 240, across_m: float = 0.04, along_m: float = 0.12):
    """Mask of a bar ``across_m`` wide along the direction ``theta`` and ``along_m`` long across it."""
    return rect_polygon_mask(GraspRect(cx, cy, px(across_m), px(along_m), theta), (H, W))


def angle_diff(a: float, b: float) -> float:
    """Smallest difference between two closing-axis angles (mod pi), radians."""
    return abs((a - b + math.pi / 2) % math.pi - math.pi / 2)


def sorted_set(points: np.ndarray) -> np.ndarray:
    return np.array(sorted(map(tuple, np.round(points, 9))))


# --------------------------------------------------------------------------- rect geometry


def test_rect_corners_axis_aligned():
    corners = rect_corners(GraspRect(100, 50, 40, 10, 0.0))
    np.testing.assert_allclose(corners, [[80, 45], [120, 45], [120, 55], [80, 55]])


def test_rect_corners_rotated_90_equals_swapped_sides():
    rotated = rect_corners(GraspRect(100, 50, 40, 10, math.pi / 2))
    swapped = rect_corners(GraspRect(100, 50, 10, 40, 0.0))
    np.testing.assert_allclose(sorted_set(rotated), sorted_set(swapped), atol=1e-9)


def test_rect_corners_theta_plus_pi_same_set():
    a = rect_corners(GraspRect(10, 20, 30, 8, 0.4))
    b = rect_corners(GraspRect(10, 20, 30, 8, 0.4 + math.pi))
    np.testing.assert_allclose(sorted_set(a), sorted_set(b), atol=1e-9)


def test_rect_corners_rotated_45():
    c = rect_corners(GraspRect(0, 0, 2 * math.sqrt(2), 2 * math.sqrt(2), math.pi / 4))
    np.testing.assert_allclose(sorted_set(c), sorted_set(np.array([[0, -2], [2, 0], [0, 2], [-2, 0]])), atol=1e-9)


def test_jaw_plates_outside_opening():
    minus, plus = jaw_plates(GraspRect(100, 50, 40, 10, 0.0), 4)
    np.testing.assert_allclose(plus, [[120, 45], [124, 45], [124, 55], [120, 55]])
    np.testing.assert_allclose(minus, [[76, 45], [80, 45], [80, 55], [76, 55]])
    # vertical closing axis: plates above and below
    minus, plus = jaw_plates(GraspRect(100, 50, 40, 10, math.pi / 2), 4)
    assert plus[:, 1].min() == pytest.approx(70) and plus[:, 1].max() == pytest.approx(74)
    assert minus[:, 1].min() == pytest.approx(26) and minus[:, 1].max() == pytest.approx(30)
    np.testing.assert_allclose(sorted(plus[:, 0]), [95, 95, 105, 105])


def test_rect_polygon_mask_counts_and_rotation():
    m = rect_polygon_mask(GraspRect(50, 40, 21, 11, 0.0), (100, 120))
    assert m.sum() == 21 * 11
    ys, xs = np.nonzero(m)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (40, 60, 35, 45)
    m90 = rect_polygon_mask(GraspRect(50, 40, 21, 11, math.pi / 2), (100, 120))
    ys, xs = np.nonzero(m90)
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (45, 55, 30, 50)
    # winding does not matter; a polygon outside the image gives an empty mask
    tri = np.array([[10, 10], [30, 10], [10, 30]])
    assert np.array_equal(convex_polygon_mask(tri, (50, 50)), convex_polygon_mask(tri[::-1], (50, 50)))
    assert not convex_polygon_mask(tri - 100, (50, 50)).any()


# --------------------------------------------------------------------------- mask_to_grasps


def test_upright_bar_closes_across_narrow_side():
    m = bar(0.0)
    grasps = mask_to_grasps(m, scene(m), K)
    assert grasps and all(isinstance(g, ScoredGrasp) for g in grasps)
    best = grasps[0]
    assert angle_diff(best.rect.theta, 0.0) < math.radians(3)
    assert best.width_m == pytest.approx(0.04, abs=0.002)
    assert best.opening_m == pytest.approx(0.04 + 2 * 0.012, abs=0.002)
    # w converts back to the opening with the centre depth, as the environment does
    assert best.rect.w * Z_OBJ / K[0, 0] == pytest.approx(best.opening_m, rel=1e-6)
    assert best.rect.h == pytest.approx(GripperSpec().finger_width_m * PX_PER_M, rel=1e-6)
    assert abs(best.rect.x - 320) < 1.5 and abs(best.rect.y - 240) < 10
    assert best.free_fraction == pytest.approx(1.0)
    assert 0.0 <= best.score <= 1.0


def test_rotated_bar_theta_follows():
    theta = math.radians(30)
    m = bar(theta)
    best = mask_to_grasps(m, scene(m), K)[0]
    assert angle_diff(best.rect.theta, theta) < math.radians(4)
    assert best.width_m == pytest.approx(0.04, abs=0.003)
    assert m[int(round(best.rect.y)), int(round(best.rect.x))]


def test_wide_disc_has_no_grasp():
    disc = (XX - 320) ** 2 + (YY - 240) ** 2 <= px(0.05) ** 2  # 10 cm diameter
    assert mask_to_grasps(disc, scene(disc), K) == []


def test_six_cm_object_graspable_with_smaller_margin():
    m = bar(0.0, across_m=0.06)
    best = mask_to_grasps(m, scene(m), K)[0]
    assert best.opening_m <= GripperSpec().max_opening_m + 1e-9
    assert best.width_m == pytest.approx(0.06, abs=0.002)
    # strict margin: 6 cm + 2 x 1.2 cm does not fit 8 cm, so nothing closes across the bar
    strict = mask_to_grasps(m, scene(m), K, min_margin_m=None)
    assert all(angle_diff(g.rect.theta, 0.0) > math.radians(20) for g in strict)
    assert all(g.width_m + 2 * 0.012 <= GripperSpec().max_opening_m + 1e-9 for g in strict)


def test_neighbour_along_whole_side_blocks_grasps_across():
    m = bar(0.0)
    gap_start = 320 + px(0.02) + px(0.01)  # 1 cm right of the bar's right face
    neighbour = (XX >= gap_start) & (XX <= gap_start + px(0.04)) & (np.abs(YY - 240) <= px(0.06))
    grasps = mask_to_grasps(m, scene(m, neighbour), K)
    # no grasp across the bar: the right finger would land on the neighbour
    assert all(angle_diff(g.rect.theta, 0.0) > math.radians(20) for g in grasps)
    # without the neighbour the across grasp is the best one
    assert angle_diff(mask_to_grasps(m, scene(m), K)[0].rect.theta, 0.0) < math.radians(3)


def test_short_neighbour_moves_grasp_to_free_part():
    m = bar(0.0)  # y from 202.5 to 277.5
    gap_start = 320 + px(0.02) + px(0.01)
    top = 240 + px(0.02)  # neighbour covers the lower 4 cm of the bar's side
    neighbour = (XX >= gap_start) & (XX <= gap_start + px(0.04)) & (YY >= top) & (YY <= 240 + px(0.06))
    grasps = mask_to_grasps(m, scene(m, neighbour), K)
    best = grasps[0]
    assert angle_diff(best.rect.theta, 0.0) < math.radians(3)
    finger_half = px(GripperSpec().finger_width_m) / 2
    for g in grasps:
        if angle_diff(g.rect.theta, 0.0) < math.radians(3):
            # the finger footprint stays above the neighbour
            assert g.rect.y + finger_half <= top + 1.0


def test_shelf_board_rejects_vertical_closing_axes():
    # a product 4 cm wide, 4.5 cm tall standing on a board seen edge-on at the same depth
    m = bar(0.0, across_m=0.04, along_m=0.045)
    bottom = int(np.nonzero(m)[0].max())
    board = (YY > bottom) & (YY <= bottom + 20)
    free = mask_to_grasps(m, scene(m), K)
    assert any(abs(math.sin(g.rect.theta)) > math.sin(math.radians(80)) for g in free)  # vertical possible alone
    grasps = mask_to_grasps(m, scene(m, board), K)
    assert grasps
    assert all(abs(math.sin(g.rect.theta)) < math.sin(math.radians(50)) for g in grasps)
    assert angle_diff(grasps[0].rect.theta, 0.0) < math.radians(3)


def test_candidates_sorted_and_bounded():
    m = bar(math.radians(-20), along_m=0.1)
    grasps = mask_to_grasps(m, scene(m), K, max_candidates=5)
    assert 1 <= len(grasps) <= 5
    scores = [g.score for g in grasps]
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert all(g.free_fraction >= 0.9 for g in grasps)
    assert all(-math.pi / 2 <= g.rect.theta < math.pi / 2 for g in grasps)


def test_empty_and_tiny_masks():
    depth = np.full((H, W), Z_BG, np.float32)
    assert mask_to_grasps(np.zeros((H, W), bool), depth, K) == []
    tiny = np.zeros((H, W), bool)
    tiny[100:102, 100:102] = True
    assert mask_to_grasps(tiny, depth, K) == []


def test_object_without_depth_gives_nothing():
    m = bar(0.0)
    depth = scene(m)
    depth[m] = np.nan
    assert mask_to_grasps(m, depth, K) == []


def test_mask_shape_mismatch_raises():
    with pytest.raises(ValueError):
        mask_to_grasps(np.zeros((10, 10), bool), np.zeros((11, 10)), K)


def test_fallback_grasp_clamps_to_max_opening():
    disc = (XX - 320) ** 2 + (YY - 240) ** 2 <= px(0.05) ** 2
    rect = fallback_grasp(disc, scene(disc), K)
    assert rect is not None
    assert rect.w * Z_OBJ / K[0, 0] == pytest.approx(GripperSpec().max_opening_m)
    assert abs(rect.x - 320) < 2 and abs(rect.y - 240) < 2
    assert fallback_grasp(np.zeros((H, W), bool), scene(), K) is None
    # an elongated mask: closing axis along its minor axis
    rect = fallback_grasp(bar(0.5), scene(bar(0.5)), K)
    assert angle_diff(rect.theta, 0.5) < math.radians(2)


# --------------------------------------------------------------------------- grasps proposed elsewhere


def test_check_grasps_centres_on_the_chord_and_measures_it():
    m = bar(0.0)  # 4 cm across x, 12 cm along y, centred at (320, 240)
    off = px(0.012)  # a centre 1.2 cm right of the bar's axis (a finger would land on the bar's top)
    chk = check_grasps(m, scene(m), K, np.array([[320 + off, 250.0], [320.0, 240.0]]), np.array([0.0, math.pi / 2]))
    # closing across the bar: the jaws slide back to the middle of the chord, which fits with clearance
    assert chk.mid[0] == pytest.approx([320.0, 250.0], abs=1.0)
    assert chk.width_m[0] == pytest.approx(0.04, abs=0.002)
    assert chk.opening_m[0] == pytest.approx(0.04 + 2 * 0.012, abs=0.002)
    assert chk.fits[0] and chk.free_fraction[0] == pytest.approx(1.0) and chk.clear[0]
    # closing along the bar: 12 cm does not fit the 8 cm jaws; the centre stays, nothing is clear
    assert chk.width_m[1] == pytest.approx(0.12, abs=0.003)
    assert not chk.fits[1] and not chk.clear[1] and chk.free_fraction[1] == 0.0
    assert chk.mid[1] == pytest.approx([320.0, 240.0])
    assert chk.opening_m[1] == GripperSpec().max_opening_m


def test_check_grasps_sees_a_neighbour_at_a_finger_and_agrees_with_the_planner():
    m = bar(0.0)
    gap_start = 320 + px(0.02) + px(0.01)
    neighbour = (XX >= gap_start) & (XX <= gap_start + px(0.04)) & (np.abs(YY - 240) <= px(0.06))
    centre = np.array([[320.0, 240.0]])
    blocked = check_grasps(m, scene(m, neighbour), K, centre, np.array([0.0]))
    assert blocked.fits[0] and blocked.free_fraction[0] < 0.9 and not blocked.clear[0]
    # the planner's own best grasp passes its check unchanged (same geometry, one home)
    best = mask_to_grasps(m, scene(m), K)[0]
    again = check_grasps(m, scene(m), K, np.array([[best.rect.x, best.rect.y]]), np.array([best.rect.theta]))
    assert again.clear[0]
    assert again.mid[0] == pytest.approx([best.rect.x, best.rect.y], abs=0.5)
    assert again.opening_m[0] == pytest.approx(best.opening_m, abs=0.001)
    assert again.free_fraction[0] == pytest.approx(best.free_fraction, abs=0.02)
