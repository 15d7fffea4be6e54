"""Where the robot can put the hand: reach limits and clearance above known supports.

The robot knows its workspace (the shelf's boards, the table top), as any
motion planner would, but nothing about the products. Two rules:

* A grasp point outside the reach box of the scene is ``out_of_reach``.
* A grasp whose fingertips would dig into a board or the table is raised until
  they clear it by ``clearance_m``; the change is recorded as the clamp
  ``"height"`` (the same way an opening beyond the gripper's stroke is clamped).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from graspsim.config import SUPPORT_CLEARANCE_M, GripperSpec
from graspsim.grasping.conversion import rect_to_command
from graspsim.scenes.kinds import SceneKind
from graspsim.types import CameraModel, GraspRect, GripperCommand


def in_reach(kind: SceneKind, point_world: np.ndarray) -> bool:
    """Whether the (3,) world point lies in the kind's reach box (bounds included)."""
    lo, hi = np.asarray(kind.reach_lo_m), np.asarray(kind.reach_hi_m)
    return bool(np.all(point_world >= lo) and np.all(point_world <= hi))


def lowest_finger_point_below_grasp(command: GripperCommand, gripper: GripperSpec) -> float:
    """How far (metres) the finger pads reach below the grasp point in world z."""
    T = command.T_world_grasp
    x_axis, y_axis, z_axis = T[:3, 0], T[:3, 1], T[:3, 2]
    beyond = gripper.fingertip_beyond_grasp_m  # fingertips past the grasp point
    half_span = command.opening_m / 2 + gripper.finger_thickness_m
    return (abs(x_axis[2]) * gripper.finger_width_m / 2 + abs(y_axis[2]) * half_span
            + max(0.0, -z_axis[2]) * beyond)


def support_below(kind: SceneKind, z: float) -> float:
    """Height of the support surface under a point at height ``z`` (the lowest one below them all)."""
    tops = [t for t in kind.support_tops_m if t <= z]
    return max(tops) if tops else kind.support_tops_m[0]


def clear_supports(kind: SceneKind, command: GripperCommand, gripper: GripperSpec,
                   clearance_m: float = SUPPORT_CLEARANCE_M) -> GripperCommand:
    """Raise the grasp so the fingers clear the support under it; records ``"height"`` when it does."""
    T = command.T_world_grasp.copy()
    drop = lowest_finger_point_below_grasp(command, gripper)
    floor = support_below(kind, float(T[2, 3])) + clearance_m
    if T[2, 3] - drop >= floor:
        return command
    T[2, 3] = floor + drop
    return replace(command, T_world_grasp=T, clamped=command.clamped + ("height",))


def executed_command(rect: GraspRect, depth_m: np.ndarray, camera: CameraModel, approach_world: np.ndarray,
                     kind: SceneKind, gripper: GripperSpec, grasp_depth_m: float) -> GripperCommand | None:
    """The command a robot executes for ``rect`` (:func:`~graspsim.grasping.conversion.rect_to_command`, then
    :func:`clear_supports`), as planners predict it; None when the rectangle is invalid or has no depth."""
    try:
        command = rect_to_command(rect, depth_m, camera, approach_world, gripper, grasp_depth_m)
    except ValueError:  # InvalidRectError / UnreachableGraspError
        return None
    return clear_supports(kind, command, gripper)
