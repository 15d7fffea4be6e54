"""Grasp rectangle (image pixels) <-> gripper command (world pose + opening).

The rule, in one place:

1. The rectangle centre ``(x, y)`` is deprojected with the depth image and K:
   the depth at the nearest pixel gives the visible surface point ``p_surface``
   (camera frame -> world frame with ``T_world_camera``).
2. The grasp point lies behind that surface along the scene's approach direction
   ``a`` (world frame): ``p_grasp = p_surface + d * a`` with
   ``d = clip(opening / 2 - 0.01, 0.01, grasp_depth_m)``: about the centre of a
   round object the jaws fit around (a bottle neck is grasped at its axis, not
   behind it), never deeper than the fingers reach well.
3. The closing axis is the image direction ``(cos theta, sin theta)`` lifted into
   the camera's x-y plane, turned into the world, and made perpendicular to
   ``a``. The grasp frame is ``z = a``, ``y = closing axis``, ``x = y cross z``.
4. The opening is ``w`` pixels at the surface depth: ``w * depth / fx`` metres,
   clamped to the gripper's maximum opening (the clamp is recorded).

:func:`command_to_rect` inverts this for a command whose grasp point is
``grasp_depth_m`` behind a surface seen by the camera; ``h`` comes back as the
finger width in pixels (the 5-D rectangle's ``h`` does not change the command).
"""

from __future__ import annotations

import math

import numpy as np

from graspsim.config import GRASP_DEPTH_M, GripperSpec
from graspsim.geometry import deproject, project, transform_points, invert_transform, make_transform
from graspsim.types import CameraModel, GraspRect, GripperCommand, InvalidRectError


class UnreachableGraspError(ValueError):
    """The rectangle is well formed but points at nothing the gripper can reach (no depth)."""


def surface_point_world(rect: GraspRect, depth_m: np.ndarray, camera: CameraModel) -> tuple[np.ndarray, float]:
    """World point (3,) seen at the rectangle centre and its depth along camera z (metres)."""
    depth = float(depth_m[int(round(rect.y)), int(round(rect.x))])
    if not math.isfinite(depth) or depth <= camera.near_m or depth >= camera.far_m * 0.999:
        raise UnreachableGraspError(f"no surface at the rectangle centre ({rect.x:.1f}, {rect.y:.1f}): "
                                    f"depth {depth:.3f} m")
    p_camera = deproject(camera.K, (rect.x, rect.y), depth)
    return transform_points(camera.T_world_camera, p_camera), depth


def closing_axis_world(theta: float, camera: CameraModel, approach_world: np.ndarray) -> np.ndarray:
    """Unit closing axis (3,) in the world, perpendicular to ``approach_world``."""
    d_camera = np.array([math.cos(theta), math.sin(theta), 0.0])
    d_world = camera.T_world_camera[:3, :3] @ d_camera
    a = np.asarray(approach_world, dtype=np.float64)
    y = d_world - np.dot(d_world, a) * a
    norm = np.linalg.norm(y)
    if norm < 1e-6:
        raise InvalidRectError("the rectangle's closing axis is parallel to the approach direction")
    return y / norm


def grasp_frame(p_grasp_world: np.ndarray, closing_axis: np.ndarray, approach_world: np.ndarray) -> np.ndarray:
    """``T_world_grasp`` (4, 4) with z = approach, y = closing axis, x = y cross z."""
    z = np.asarray(approach_world, dtype=np.float64)
    z = z / np.linalg.norm(z)
    y = closing_axis - np.dot(closing_axis, z) * z
    y = y / np.linalg.norm(y)
    x = np.cross(y, z)
    return make_transform(np.stack([x, y, z], axis=1), p_grasp_world)


def grasp_depth_for(opening_m: float, grasp_depth_m: float) -> float:
    """How far behind the visible surface the grasp point sits (rule 2 of the module docstring)."""
    return float(np.clip(opening_m / 2 - 0.01, 0.01, grasp_depth_m))


def rect_to_command(rect: GraspRect, depth_m: np.ndarray, camera: CameraModel, approach_world: np.ndarray,
                    gripper: GripperSpec = GripperSpec(), grasp_depth_m: float = GRASP_DEPTH_M) -> GripperCommand:
    """Turn an image rectangle into the gripper command the simulator executes.

    ``depth_m``: (H, W) metric depth (metres along camera z). ``approach_world``:
    (3,) unit vector, direction of the approach motion in the world frame.
    Raises :class:`InvalidRectError` for malformed rectangles and
    :class:`UnreachableGraspError` when there is no surface at the centre.
    """
    rect.validate(camera.width, camera.height)
    approach_world = np.asarray(approach_world, dtype=np.float64)
    approach_world = approach_world / np.linalg.norm(approach_world)
    p_surface, depth = surface_point_world(rect, depth_m, camera)
    opening_m = rect.w * depth / camera.K[0, 0]
    clamped = ("opening",) if opening_m > gripper.max_opening_m else ()
    opening_m = min(opening_m, gripper.max_opening_m)
    p_grasp = p_surface + grasp_depth_for(opening_m, grasp_depth_m) * approach_world
    T_world_grasp = grasp_frame(p_grasp, closing_axis_world(rect.theta, camera, approach_world), approach_world)
    return GripperCommand(T_world_grasp=T_world_grasp, opening_m=float(opening_m), clamped=clamped)


def command_to_rect(command: GripperCommand, camera: CameraModel, gripper: GripperSpec = GripperSpec(),
                    grasp_depth_m: float = GRASP_DEPTH_M) -> GraspRect:
    """The image rectangle of a gripper command (inverse of :func:`rect_to_command`).

    The surface point is taken :func:`grasp_depth_for` back from the grasp point
    along the approach axis (the grasp frame's z). Theta is normalised to [-pi/2, pi/2).
    """
    T = command.T_world_grasp
    approach = T[:3, 2]
    p_surface_world = T[:3, 3] - grasp_depth_for(command.opening_m, grasp_depth_m) * approach
    T_camera_world = invert_transform(camera.T_world_camera)
    p_camera = transform_points(T_camera_world, p_surface_world)
    if p_camera[2] <= 0:
        raise UnreachableGraspError("the grasp lies behind the camera")
    centre = project(camera.K, p_camera)
    # Project a short step along the closing axis to find the image angle.
    step_camera = T_camera_world[:3, :3] @ T[:3, 1]
    tip = project(camera.K, p_camera + 0.01 * step_camera)
    theta = math.atan2(tip[1] - centre[1], tip[0] - centre[0])
    fx = camera.K[0, 0]
    w = command.opening_m * fx / p_camera[2]
    h = gripper.finger_width_m * fx / p_camera[2]
    return GraspRect(float(centre[0]), float(centre[1]), float(w), float(h), theta).normalized()
