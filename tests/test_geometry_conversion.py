"""Rectangle <-> gripper pose conversion and pinhole geometry: known answers and round trips."""

from __future__ import annotations

import math

import numpy as np
import pytest

from graspsim.config import GripperSpec
from graspsim.geometry import (deproject, intrinsics_from_fov, invert_transform, look_at, make_transform,
                               matrix_to_quat, project, quat_to_matrix, rotation_about_axis, transform_points)
from graspsim.grasping.conversion import UnreachableGraspError, command_to_rect, grasp_depth_for, rect_to_command
from graspsim.grasping.workspace import clear_supports, in_reach, support_below
from graspsim.scenes.kinds import scene_kind
from graspsim.types import CameraModel, GraspRect, GripperCommand, InvalidRectError

W, H = 640, 480


def top_down_camera(height_m: float = 0.7) -> CameraModel:
    K = intrinsics_from_fov(W, H, 50.0)
    T = look_at([0.0, 0.0, 0.7 + height_m], [0.0, 0.0, 0.7], up=[0.0, 1.0, 0.0])
    return CameraModel(K=K, width=W, height=H, T_world_camera=T)


def test_quaternion_round_trip_and_known_rotation():
    rng = np.random.default_rng(0)
    for _ in range(50):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        q = q if q[3] >= 0 else -q
        assert np.allclose(matrix_to_quat(quat_to_matrix(q)), q, atol=1e-9)
    # 90 degrees about z maps x to y.
    R = quat_to_matrix([0, 0, math.sin(math.pi / 4), math.cos(math.pi / 4)])
    assert np.allclose(R @ [1, 0, 0], [0, 1, 0])
    assert np.allclose(rotation_about_axis([0, 0, 1], math.pi / 2), R)


def test_deproject_known_point_and_round_trip():
    K = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
    # The principal point at 2 m is straight ahead.
    assert np.allclose(deproject(K, (319.5, 239.5), 2.0), [0, 0, 2.0])
    # 100 px right of centre at 1 m is 0.2 m to the right.
    assert np.allclose(deproject(K, (419.5, 239.5), 1.0), [0.2, 0, 1.0])
    points = np.random.default_rng(1).uniform([-1, -1, 0.5], [1, 1, 3], size=(20, 3))
    assert np.allclose(deproject(K, project(K, points), points[:, 2]), points)


def test_look_at_points_camera_z_at_target_and_keeps_image_down_world_down():
    T = look_at([0, -1, 1], [0, 0, 1])
    assert np.allclose(T[:3, 2], [0, 1, 0])
    assert np.allclose(T[:3, 1], [0, 0, -1])  # image +y (down) is world down
    assert np.allclose(invert_transform(T) @ T, np.eye(4))
    assert np.allclose(transform_points(invert_transform(T), [0, 0, 1]), [0, 0, 1])


def flat_depth(camera: CameraModel, depth: float) -> np.ndarray:
    return np.full((camera.height, camera.width), depth, dtype=np.float32)


def test_rect_to_command_known_case_top_down():
    camera = top_down_camera()
    depth = flat_depth(camera, 0.5)  # a surface 0.5 m below the camera, i.e. at z = 0.9
    rect = GraspRect(x=(W - 1) / 2, y=(H - 1) / 2, w=50.0, h=20.0, theta=0.0)
    command = rect_to_command(rect, depth, camera, np.array([0, 0, -1.0]), grasp_depth_m=0.02)
    T = command.T_world_grasp
    opening = 50.0 * 0.5 / camera.K[0, 0]  # 4.86 cm
    # The grasp point sits opening/2 - 1 cm (1.43 cm) below the surface: about a round object's axis.
    assert opening / 2 - 0.01 == pytest.approx(0.01429, abs=1e-4)
    assert np.allclose(T[:3, 3], [0.0, 0.0, 0.9 - (opening / 2 - 0.01)], atol=1e-9)
    assert np.allclose(T[:3, 2], [0, 0, -1])  # approach straight down
    # theta = 0 closes along image x, which is world +x for this camera.
    assert np.allclose(np.abs(T[:3, 1]), [1, 0, 0], atol=1e-9)
    assert command.opening_m == pytest.approx(50.0 * 0.5 / camera.K[0, 0])
    assert command.clamped == ()
    assert np.allclose(T[:3, :3].T @ T[:3, :3], np.eye(3), atol=1e-9)
    assert np.linalg.det(T[:3, :3]) == pytest.approx(1.0)


def test_rect_pose_round_trip_many_rectangles():
    camera = top_down_camera()
    depth = flat_depth(camera, 0.6)
    rng = np.random.default_rng(3)
    for _ in range(40):
        rect = GraspRect(float(rng.integers(10, W - 10)), float(rng.integers(10, H - 10)), float(rng.uniform(10, 60)),
                         20.0, float(rng.uniform(-math.pi / 2, math.pi / 2)))
        command = rect_to_command(rect, depth, camera, np.array([0, 0, -1.0]))
        back = command_to_rect(command, camera)
        assert back.x == pytest.approx(rect.x, abs=1e-6)
        assert back.y == pytest.approx(rect.y, abs=1e-6)
        assert back.w == pytest.approx(rect.w, rel=1e-6)
        dtheta = (back.theta - rect.theta + math.pi / 2) % math.pi - math.pi / 2
        assert abs(dtheta) < 1e-6


def test_grasp_depth_rule_known_values():
    assert grasp_depth_for(0.08, 0.025) == pytest.approx(0.025)  # capped by the finger reach
    assert grasp_depth_for(0.05, 0.025) == pytest.approx(0.015)  # a 3 cm neck + margins: its axis
    assert grasp_depth_for(0.01, 0.025) == pytest.approx(0.01)   # never less than 1 cm


def test_theta_and_theta_plus_pi_are_the_same_grasp():
    camera = top_down_camera()
    depth = flat_depth(camera, 0.6)
    a = rect_to_command(GraspRect(300, 200, 40, 20, 0.3), depth, camera, np.array([0, 0, -1.0]))
    b = rect_to_command(GraspRect(300, 200, 40, 20, 0.3 + math.pi), depth, camera, np.array([0, 0, -1.0]))
    assert np.allclose(a.T_world_grasp[:3, 3], b.T_world_grasp[:3, 3])
    assert np.allclose(np.abs(a.T_world_grasp[:3, 1] @ b.T_world_grasp[:3, 1]), 1.0)


def test_front_approach_on_shelf_camera():
    K = intrinsics_from_fov(W, H, 58.0)
    camera = CameraModel(K=K, width=W, height=H, T_world_camera=look_at([0, -0.8, 0.9], [0, 0, 0.9]))
    depth = flat_depth(camera, 0.8)  # the plane y = 0
    command = rect_to_command(GraspRect((W - 1) / 2, (H - 1) / 2, 60, 20, 0.0), depth, camera,
                              np.array([0, 1.0, 0]), grasp_depth_m=0.025)
    # 60 px at 0.8 m is an 11 cm request: clamped to 8 cm, so the full 2.5 cm grasp depth applies.
    assert command.clamped == ("opening",)
    assert np.allclose(command.T_world_grasp[:3, 3], [0, 0.025, 0.9], atol=1e-9)
    assert np.allclose(np.abs(command.T_world_grasp[:3, 1]), [1, 0, 0], atol=1e-9)  # jaws horizontal


def test_opening_is_clamped_and_recorded():
    camera = top_down_camera()
    command = rect_to_command(GraspRect(300, 200, 400, 20, 0.0), flat_depth(camera, 0.6), camera,
                              np.array([0, 0, -1.0]), gripper=GripperSpec())
    assert command.opening_m == GripperSpec().max_opening_m
    assert command.clamped == ("opening",)


@pytest.mark.parametrize("rect, message", [
    (GraspRect(float("nan"), 10, 10, 10, 0), "finite"),
    (GraspRect(10, 10, float("inf"), 10, 0), "finite"),
    (GraspRect(10, 10, -5, 10, 0), "positive"),
    (GraspRect(10, 10, 10, 0, 0), "positive"),
    (GraspRect(-3, 10, 10, 10, 0), "outside"),
    (GraspRect(10, H + 5, 10, 10, 0), "outside"),
])
def test_invalid_rectangles_name_the_problem(rect, message):
    camera = top_down_camera()
    with pytest.raises(InvalidRectError, match=message):
        rect_to_command(rect, flat_depth(camera, 0.6), camera, np.array([0, 0, -1.0]))


def test_wrong_shape_and_no_depth():
    with pytest.raises(InvalidRectError, match="5 numbers"):
        GraspRect.from_array([1, 2, 3])
    camera = top_down_camera()
    with pytest.raises(UnreachableGraspError):
        rect_to_command(GraspRect(300, 200, 30, 20, 0), flat_depth(camera, camera.far_m), camera,
                        np.array([0, 0, -1.0]))


def test_clear_supports_raises_fingers_above_the_table():
    T = make_transform(rotation_about_axis([1, 0, 0], math.pi), [0.0, 0.0, 0.705])  # z down, just above table
    command = GripperCommand(T_world_grasp=T, opening_m=0.05)
    table = scene_kind("tabletop")
    raised = clear_supports(table, command, GripperSpec())
    assert "height" in raised.clamped
    assert raised.T_world_grasp[2, 3] > 0.72
    high = GripperCommand(T_world_grasp=make_transform(T[:3, :3], [0, 0, 0.80]), opening_m=0.05)
    assert clear_supports(table, high, GripperSpec()) is high
    assert in_reach(table, np.array([0.0, 0.0, 0.8]))
    assert not in_reach(table, np.array([2.0, 0.0, 0.8]))


def test_supports_and_reach_of_the_shelf():
    shelf = scene_kind("shelf")
    boards = shelf.support_tops_m
    assert support_below(shelf, boards[1] + 0.05) == boards[1]
    assert support_below(shelf, boards[0] - 0.05) == boards[0]  # below every board: the lowest one
    assert in_reach(shelf, np.array([0.0, 0.1, boards[1] + 0.05]))
    assert not in_reach(shelf, np.array([0.0, -0.2, boards[1] + 0.05]))  # in front of the shelf
