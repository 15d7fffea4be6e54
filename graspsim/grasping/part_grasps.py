"""Grasps on one named part of a product, from a part mask and the depth image (numpy only).

A part-aware pick ("the ketchup bottle by its cap") succeeds only when both
fingers press on the named part (:mod:`graspsim.sim.execute`). Planning on the
part's pixels alone is not enough: a finger pad is 2.1 cm wide and closes on
whatever is widest in its path, so a grasp centred on a bottle cap whose pads
also reach the wider shoulder holds the shoulder. So each candidate's contacts
are predicted from what the camera sees, and only grasps whose predicted
contacts both lie on the part are kept:

1. Candidates: :func:`~graspsim.grasping.mask_grasps.object_grasps` on the
   product's pixels that carry the part's label (near its nearest surface,
   then, when none of those holds the part, on all of them).
2. Each becomes the command the robot would execute (the environment's
   conversion and support clearance), and the product's visible surface
   points (all its labelled pixels, deprojected) are moved into the grasp
   frame. A visible point of the product in front of the palm or under a
   finger's path outside the jaws rules the grasp out (the hand would run
   into the product). So that both contacts are in view, the closing axis
   must be at least 60 degrees off the camera's line of sight (both fingers
   then close on the product's outline as the camera sees it).
3. Points within a finger's path - across the pad's width
   (``finger_width_m``) and along the approach from the finger's base to its
   tip, 4 and 6 mm more for where the fingers may end up (the arm's IK
   tolerance), between the open jaws - are where the fingers can touch; on
   each side the finger stops at the point furthest out along the closing
   axis (the inner face is a flat pad at the tip and tapers back 2.5 mm
   towards the finger's base). The points within 1 mm of that extreme are
   the surface the finger presses (as the judge takes it); the part at their
   centre (on the finger's face, see
   :func:`_label_at_centre`) is the part under the finger, as the judge
   takes the centre of the pressed surface (:mod:`graspsim.sim.execute`).
   When the camera sees no point of the product where a pad goes (that side
   is hidden, e.g. behind a neighbour: what the pad meets is unknown) the
   contact is not called.

The environment asks the same question to decide which parts of a scene a
part-aware instruction may name (:meth:`graspsim.envs.pick_env.PickEnv`), and
the oracle uses it to choose its grasp, so both agree on what is graspable.
"""

from __future__ import annotations

import numpy as np

from graspsim.config import GripperSpec
from graspsim.geometry import deproject, invert_transform
from graspsim.grasping.mask_grasps import ScoredGrasp, object_grasps
from graspsim.grasping.workspace import executed_command
from graspsim.scenes.kinds import scene_kind
from graspsim.types import CameraModel, GraspRect, GripperCommand

#: The Franka finger's inner face (pybullet_data's collision/finger.obj): a flat pad over the finger's last
#: PAD_LENGTH_M, then tapering back from the pad plane by FACE_TAPER metres per metre towards the finger's base.
PAD_LENGTH_M = 0.018
FACE_TAPER = 0.0025 / 0.036
# Points this close (metres) to a side's outermost point are where that finger touches (the judge's band).
_CONTACT_BAND_M = 0.001
# A pressed surface's centre closer than this to a point of another part is too close to call.
_BOUNDARY_MARGIN_M = 0.005
# How much wider and longer than the finger the region it may touch is taken to be.
_SLACK_M = 0.004
_TIP_SLACK_M = 0.006
# The closing axis must be at least 60 degrees off the line of sight (|cos| <= 0.5).
_MAX_AXIS_COS = 0.5


def contact_labels(command: GripperCommand, labels: np.ndarray, depth_m: np.ndarray, camera: CameraModel,
                   gripper: GripperSpec = GripperSpec()) -> tuple[int, int]:
    """The label under each finger (+y side, -y side of the grasp frame) when ``command`` closes (0: none).

    ``command``: the grasp as executed (world frame, z = approach, y = closing
    axis). ``labels``: (H, W) int, > 0 on the pixels of the product to be
    grasped (its part labels, e.g. ``part_seg`` masked to one instance), 0
    elsewhere. ``depth_m``: (H, W) metres along camera z. Returns ``(0, 0)``
    when the hand would run into the product on its way (a visible point of it
    in front of the palm or under a finger). See the module docstring.
    """
    rows, cols = np.nonzero(labels > 0)
    if rows.size == 0:
        return 0, 0
    # Both contacts must face the camera's side: a closing axis far from square to the line of sight puts one
    # finger behind the product, where the camera cannot see what it will press.
    sight = command.T_world_grasp[:3, 3] - camera.T_world_camera[:3, 3]
    if abs(command.T_world_grasp[:3, 1] @ sight) > _MAX_AXIS_COS * np.linalg.norm(sight):
        return 0, 0
    T_grasp_camera = invert_transform(command.T_world_grasp) @ camera.T_world_camera
    p_camera = deproject(camera.K, np.stack([cols, rows], axis=1), depth_m[rows, cols])
    p = p_camera @ T_grasp_camera[:3, :3].T + T_grasp_camera[:3, 3]  # (N, 3) grasp frame
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    g = gripper
    finger_base = g.finger_base_m - g.palm_to_grasp_m  # along the approach from the grasp point (negative: back)
    tip = g.fingertip_beyond_grasp_m
    pad_start = tip - PAD_LENGTH_M
    half = command.opening_m / 2
    # The fingers may end up a few millimetres off (the arm's IK tolerance is 5 mm): widened by _SLACK_M, and
    # longer by _TIP_SLACK_M (a product widening just past the fingertips is where they end up pressing).
    along_fingers = ((np.abs(x) <= g.finger_width_m / 2 + _SLACK_M) & (z >= finger_base)
                     & (z <= tip + _TIP_SLACK_M))
    palm = ((z <= g.palm_front_m - g.palm_to_grasp_m) & (np.abs(y) <= g.palm_half_span_m)
            & (np.abs(x) <= g.palm_half_thickness_m))
    under_finger = along_fingers & (np.abs(y) > half) & (np.abs(y) <= half + g.finger_thickness_m)
    if palm.any() or under_finger.any():
        return 0, 0
    in_path = along_fingers & (np.abs(y) <= half)
    # How far out each point meets the finger's face: the tapered part of the face stands back.
    reach = np.abs(y) - FACE_TAPER * np.maximum(pad_start - z, 0.0)
    values = labels[rows, cols]
    out = []
    for side in (y > 0, y < 0):
        path = in_path & side
        if not np.any(path & (z >= pad_start)):  # the camera does not see where the pad goes: not called
            return 0, 0
        touch = path & (reach >= reach[path].max() - _CONTACT_BAND_M)
        out.append(_label_at_centre(np.stack([x[touch], z[touch]], axis=1), values[touch]))
    return out[0], out[1]


def _label_at_centre(xz: np.ndarray, values: np.ndarray) -> int:
    """The label at the centre of the pressed surface seen as points ``xz`` (N, 2) on the finger's face.

    The camera sees the pressed strip only in places (densely where the surface
    faces it, hardly where it turns away), so the centre is that of the strip's
    extent (the middle of its bounding box on the face), not the mean of the
    points, which the judge's centre of the pressed area resembles. The label
    of the point nearest that centre wins, unless a point of another label
    lies within 5 mm of it (the centre is on a part boundary: 0).
    """
    centre = (xz.min(axis=0) + xz.max(axis=0)) / 2
    distance = np.linalg.norm(xz - centre, axis=1)
    label = values[int(np.argmin(distance))]
    return 0 if np.any((values != label) & (distance < _BOUNDARY_MARGIN_M)) else int(label)


def part_grasps(label: int, instance_mask: np.ndarray, part_seg: np.ndarray, depth_m: np.ndarray,
                camera: CameraModel, kind: str, approach_world: np.ndarray, gripper: GripperSpec = GripperSpec(),
                *, grasp_depth_m: float, **planner) -> list[ScoredGrasp]:
    """Ranked grasps (best first) on part ``label`` of one product whose predicted contacts are both on it.

    ``instance_mask``: (H, W) bool, the product's pixels; ``part_seg``: (H, W)
    part labels (``k + 1`` = part ``k``); ``depth_m``: (H, W) metres;
    ``kind``: the scene kind's name; ``planner``: keyword arguments of
    :func:`~graspsim.grasping.mask_grasps.object_grasps` (margin_m, n_angles,
    max_candidates, surface_slab_m). Empty when the part shows no grasp.
    """
    labels = np.where(instance_mask, part_seg, 0).astype(np.int64)
    part_mask = labels == label
    if not part_mask.any():
        return []
    # The planner's grasps near the part's nearest surface first; when none of them holds the part, those on
    # the whole part (a slab as deep as the scene: near_surface keeps every pixel).
    for slab in (planner.pop("surface_slab_m", 0.02), np.inf):
        kept = [grasp for grasp in object_grasps(part_mask, depth_m, camera, kind, approach_world, gripper,
                                                 surface_slab_m=slab, grasp_depth_m=grasp_depth_m, **planner)
                if holds_part(grasp.rect, label, labels, depth_m, camera, kind, approach_world, gripper,
                              grasp_depth_m)]
        if kept:
            return kept
    return []


def holds_part(rect: GraspRect, label: int, labels: np.ndarray, depth_m: np.ndarray, camera: CameraModel,
               kind: str, approach_world: np.ndarray, gripper: GripperSpec, grasp_depth_m: float) -> bool:
    """Whether both fingers of grasp ``rect`` (image px), executed as the environment would, are predicted to
    press on part ``label`` of ``labels`` ((H, W) int part labels of one product, 0 elsewhere): see
    :func:`contact_labels`."""
    command = executed_command(rect, depth_m, camera, approach_world, scene_kind(kind), gripper, grasp_depth_m)
    return command is not None and contact_labels(command, labels, depth_m, camera, gripper) == (label, label)


def scene_points(mask: np.ndarray, depth_m: np.ndarray, camera: CameraModel, stride: int = 2) -> np.ndarray:
    """World points (N, 3) metres of the pixels of ``mask`` (H, W) with depth (``depth_m``, metres along camera z),
    every ``stride``-th row and column: what the camera sees there, e.g. as obstacles for the arm."""
    sub = np.zeros_like(mask, dtype=bool)
    sub[::stride, ::stride] = True
    rows, cols = np.nonzero(mask & sub & np.isfinite(depth_m) & (depth_m > 0))
    p_camera = deproject(camera.K, np.stack([cols, rows], axis=1), depth_m[rows, cols])
    T = np.asarray(camera.T_world_camera)
    return p_camera @ T[:3, :3].T + T[:3, 3]
