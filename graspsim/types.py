"""Plain values that flow between graspsim's stages.

No pybullet, no torch, no gymnasium here: every stage (scene planning, rendering,
policies, grasp conversion, scoring) speaks in these types, so each can be tested
alone.

Conventions used everywhere in graspsim:

* Units: metres, kilograms, seconds, radians; image coordinates in pixels.
* Pixel convention ``xy``: ``x`` grows to the right (column), ``y`` grows down
  (row); pixel centres sit at integer coordinates. ``rc`` names (row, column).
* Camera frame: OpenCV convention, +z looks forward along the optical axis,
  +x right, +y down.
* Poses: ``T_a_b`` is the 4x4 homogeneous transform that maps points expressed in
  frame ``b`` into frame ``a`` (``p_a = T_a_b @ p_b``).
* Quaternions are ``(x, y, z, w)`` as in pybullet.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np


class InvalidRectError(ValueError):
    """A grasp rectangle that cannot be executed (NaN, negative size, outside the image)."""


@dataclass(frozen=True)
class GraspRect:
    """A parallel-jaw grasp as an oriented rectangle in the image.

    The standard 5-D grasp representation (Lenz et al.; Cornell; Jacquard):

    * ``x``, ``y``: centre in pixels (``xy`` convention, x right, y down).
    * ``w``: opening width in pixels, measured along the jaw closing axis.
    * ``h``: jaw (finger) size in pixels, perpendicular to the closing axis.
    * ``theta``: angle in radians of the closing axis from the image +x axis,
      positive towards image +y (clockwise on screen). A rectangle and the same
      rectangle turned by pi are the same grasp; :meth:`normalized` maps theta to
      ``[-pi/2, pi/2)``.
    """

    x: float
    y: float
    w: float
    h: float
    theta: float

    def as_array(self) -> np.ndarray:
        """``(5,)`` float64 array ``[x, y, w, h, theta]``."""
        return np.array([self.x, self.y, self.w, self.h, self.theta], dtype=np.float64)

    @classmethod
    def from_array(cls, values: Any) -> "GraspRect":
        """Build from any 5-sequence ``[x, y, w, h, theta]``; raises InvalidRectError on bad shape."""
        arr = np.asarray(values, dtype=np.float64).reshape(-1)
        if arr.shape != (5,):
            raise InvalidRectError(f"a grasp rectangle has 5 numbers (x, y, w, h, theta), got shape {np.shape(values)}")
        return cls(*(float(v) for v in arr))

    def normalized(self) -> "GraspRect":
        """The same grasp with theta wrapped into ``[-pi/2, pi/2)``."""
        theta = (self.theta + math.pi / 2) % math.pi - math.pi / 2
        return GraspRect(self.x, self.y, self.w, self.h, theta)

    def validate(self, width_px: int, height_px: int) -> None:
        """Raise :class:`InvalidRectError` naming the problem if this rectangle cannot be executed."""
        for name, value in zip(("x", "y", "w", "h", "theta"), self.as_array()):
            if not math.isfinite(value):
                raise InvalidRectError(f"grasp rectangle {name} is {value}; all five numbers must be finite")
        if self.w <= 0 or self.h <= 0:
            raise InvalidRectError(f"grasp rectangle size must be positive, got w={self.w:g}, h={self.h:g} px")
        if not (0 <= self.x <= width_px - 1 and 0 <= self.y <= height_px - 1):
            raise InvalidRectError(f"grasp rectangle centre ({self.x:g}, {self.y:g}) lies outside the "
                                   f"{width_px}x{height_px} image")

    def to_dict(self) -> dict[str, float]:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h, "theta": self.theta}


@dataclass(frozen=True)
class Pose:
    """A rigid pose: ``position`` (3,) in metres and ``quat_xyzw`` (4,) unit quaternion."""

    position: tuple[float, float, float]
    quat_xyzw: tuple[float, float, float, float]

    def to_dict(self) -> dict[str, list[float]]:
        return {"position": list(self.position), "quat_xyzw": list(self.quat_xyzw)}


@dataclass(frozen=True)
class GripperCommand:
    """What the gripper executes: the grasp frame in the world plus the jaw opening.

    ``T_world_grasp`` (4, 4): the grasp frame, origin midway between the finger pads
    at the grasp depth; +z is the approach direction (from the hand towards the
    object), +y is the closing axis (the line joining the two fingers), +x = y cross z.
    ``opening_m``: the jaw opening to pre-shape to before closing, in metres.
    ``clamped``: names of limits that changed the request (e.g. ``"opening"``).
    """

    T_world_grasp: np.ndarray
    opening_m: float
    clamped: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        from graspsim.geometry import matrix_to_pose

        pose = matrix_to_pose(self.T_world_grasp)
        return {**pose.to_dict(), "opening_m": float(self.opening_m), "clamped": list(self.clamped)}


@dataclass(frozen=True)
class CameraModel:
    """A pinhole camera.

    ``K`` (3, 3) intrinsics in pixels; ``width``/``height`` image size in pixels;
    ``T_world_camera`` (4, 4) camera pose in the world, OpenCV camera axes (+z forward,
    +x right, +y down); ``near_m``/``far_m`` clipping planes in metres.
    """

    K: np.ndarray
    width: int
    height: int
    T_world_camera: np.ndarray
    near_m: float = 0.05
    far_m: float = 4.0


@dataclass(frozen=True)
class Frames:
    """One rendered view.

    * ``rgb``: (H, W, 3) uint8.
    * ``depth_m``: (H, W) float32 metric depth along the camera z axis, in metres
      (``far_m`` where nothing was hit).
    * ``instance_seg``: (H, W) int32 pybullet body id per pixel, -1 for background.
    * ``class_seg``: (H, W) int32 catalog class index per pixel, -1 for anything
      that is not a product (shelf, table, floor, background).
    * ``camera``: the :class:`CameraModel` that produced them.
    * ``robot_seg``: (H, W) uint8, 0 not the robot, 1 arm, 2 gripper (hand and
      fingers); None when no arm is in the scene.
    * ``part_seg``: (H, W) uint8, 0 not a product, ``k + 1`` = grasp part ``k``
      of the pixel's product (:func:`graspsim.assets.parts.part_names` of its
      class); None until :func:`graspsim.sim.camera.scene_part_seg` adds it.
    """

    rgb: np.ndarray
    depth_m: np.ndarray
    instance_seg: np.ndarray
    class_seg: np.ndarray
    camera: CameraModel
    robot_seg: np.ndarray | None = None
    part_seg: np.ndarray | None = None


#: Who executes grasps: "hand", the floating Franka hand of VGN-style benchmarks, or "panda", the full arm.
ROBOTS = ("hand", "panda")
#: The robot of the environments and of every command unless told otherwise: the arm, as a real cell has one.
DEFAULT_ROBOT = "panda"


def check_robot(name: str) -> str:
    """``name`` if it is one of :data:`ROBOTS`; ValueError listing them otherwise."""
    if name not in ROBOTS:
        raise ValueError(f"unknown robot {name!r}; choose one of {', '.join(ROBOTS)}")
    return name


class FailureReason(str, enum.Enum):
    """Why a pick attempt failed. Success has no reason (``None``)."""

    MISSED = "missed"  # the jaws closed on nothing
    WRONG_OBJECT = "wrong_object"  # a product of another class was held after the lift
    SLIPPED = "slipped"  # something was between the jaws after closing but not held after lift and hold
    COLLISION_BEFORE_GRASP = "collision_before_grasp"  # the hand hit the scene before the jaws closed
    OUT_OF_REACH = "out_of_reach"  # the grasp pose is outside the robot's workspace / no depth there
    UNREACHABLE = "unreachable"  # the arm has no IK solution (within tolerance and joint limits) for a pose
    ARM_COLLISION = "arm_collision"  # an arm link hit furniture or a product before closing, or the arm itself
    INVALID_ACTION = "invalid_action"  # NaN, infinite, negative-size or out-of-image action
    WRONG_PART = "wrong_part"  # part-aware task: the target class is held, but not (both fingers) by the named part


@dataclass(frozen=True)
class PickOutcome:
    """The result of one executed pick attempt.

    ``success`` is true only when an object of the target class is held after the
    lift and hold (see :mod:`graspsim.sim.execute` for the exact rule).
    ``picked_class`` is the class held after the lift, or ``None``.
    ``knocked_down`` counts other products that tipped over during the attempt;
    ``dropped`` counts other products that fell off their support.
    ``target_part``: the grasp part a part-aware attempt asked for (None: an
    ordinary attempt); ``finger_parts``: the grasp part under each finger of the
    held product right after closing (None for a finger not touching it; empty
    when nothing is held), see :mod:`graspsim.sim.execute`.
    """

    success: bool
    reason: FailureReason | None
    picked_class: str | None = None
    picked_body: int | None = None
    knocked_down: int = 0
    dropped: int = 0
    steps: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    target_part: str | None = None
    finger_parts: tuple[str | None, ...] = ()

    @property
    def held_part(self) -> str | None:
        """The grasp part both fingers held (None when nothing is held or the fingers are on different parts)."""
        parts = set(self.finger_parts)
        return parts.pop() if len(parts) == 1 else None

    def to_dict(self) -> dict[str, Any]:
        """The outcome as a results row has it; the part keys only for part-aware attempts (ordinary rows keep
        their format)."""
        out = {
            "success": self.success,
            "reason": None if self.reason is None else self.reason.value,
            "picked_class": self.picked_class,
            "knocked_down": self.knocked_down,
            "dropped": self.dropped,
            "steps": self.steps,
            **self.details,
        }
        if self.target_part is not None:
            out.update(target_part=self.target_part, held_part=self.held_part, finger_parts=list(self.finger_parts))
        return out


@dataclass(frozen=True)
class Observation:
    """What a perception policy sees for one pick attempt (numpy in, no simulator handles).

    * ``rgb``: (H, W, 3) uint8 camera image.
    * ``depth_m``: (H, W) float32 metric depth along the camera z axis, metres.
    * ``camera``: intrinsics K and pose ``T_world_camera`` (OpenCV axes).
    * ``instruction``: e.g. ``"pick the soda can"``.
    * ``target_class``: catalog class name of the product to pick (e.g. ``"soda_can"``).
    * ``scene_kind``: ``"shelf"`` (grasps approach horizontally from the front) or
      ``"tabletop"`` (grasps approach top-down).
    * ``approach_world``: (3,) unit vector, the direction the gripper moves in
      while approaching (world frame).
    * ``instance_seg`` / ``class_seg``: (H, W) int32 ground-truth segmentation
      (see :class:`Frames`), present only when the environment was asked for
      privileged information.
    * ``robot``: who will execute the grasp (:data:`ROBOTS`): a robot knows its
      own body, so planners may ask whether the arm reaches a grasp.
    * ``target_part``: the grasp part the instruction names (part-aware task,
      :mod:`graspsim.scenes.instructions`), e.g. ``"cap"``; None for an ordinary
      pick. ``part_seg``: (H, W) uint8 ground-truth grasp parts (see
      :class:`Frames`), privileged like ``class_seg``.
    * ``robot_seg``: (H, W) uint8 ground-truth robot pixels (0 not the robot, 1 arm, 2 hand and fingers),
      privileged, only with the arm (``--policy-arg robot_mask=oracle`` reads it).
    """

    rgb: np.ndarray
    depth_m: np.ndarray
    camera: CameraModel
    instruction: str
    target_class: str
    scene_kind: str
    approach_world: np.ndarray
    instance_seg: np.ndarray | None = None
    class_seg: np.ndarray | None = None
    robot: str = "hand"
    target_part: str | None = None
    part_seg: np.ndarray | None = None
    robot_seg: np.ndarray | None = None
