"""The robot's own pixels, and how a perception stack leaves them out (``--policy-arg robot_mask=...``).

With the arm (``robot="panda"``) the robot is in every image: parked at its mount before the first attempt and
between the attempts of a clear-the-scene round (on shelves ~8 % of a 640x480 image at the left edge, on the
table the hand at the bottom edge). A perception stack that attends to, segments or grasps on those pixels
wastes its decision on the robot. ``robot_mask`` says where the robot's pixels come from:

* ``none`` (default): nothing is excluded (the stacks as they were);
* ``robotseg``: the shipped RobotSeg model (:mod:`graspsim.policies.robotseg`) on ``obs.rgb``, its ``whole``
  output (arm + gripper), automatic prompt: what a real robot could do;
* ``oracle``: the privileged ``robot_seg`` of the observation (the environment is then built with
  ``privileged=True``): the upper bound, for analysis.

:class:`RobotPixels` returns the (H, W) bool robot mask of an observation; the stacks use the small functions
below to exclude it *before* they decide (each stack's docstring says where):

* :func:`zero_on_robot`: attention / heat / quality maps set to 0 on robot pixels (no peak, no prompt there);
* :func:`exclude_robot`: a product mask with the robot's pixels removed;
* :func:`jaws_on_robot` / :func:`drop_grasps_on_robot`: grasp rectangles whose jaw plates lie on robot pixels are
  dropped (a jaw there would close on, or behind, the robot's own body).

Nothing here imports torch until ``robotseg`` is asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from graspsim.policies.config import PolicyConfig, arg

#: The values of ``--policy-arg robot_mask`` (module docstring).
ROBOT_MASK_MODES = ("none", "robotseg", "oracle")
#: Points sampled along each jaw plate of a rectangle by :func:`jaws_on_robot`.
JAW_SAMPLES = 5


@dataclass(frozen=True)
class RobotMaskConfig(PolicyConfig):
    """The two ``--policy-arg`` fields every stack that can exclude the robot takes (a mixin of their configs)."""

    robot_mask: str = arg("none", choices=ROBOT_MASK_MODES)
    """Robot pixels excluded before perception: none, robotseg (the shipped RobotSeg model on the RGB image) or
    oracle (the privileged robot_seg, for analysis)."""
    robot_mask_checkpoint: str | None = None
    """RobotSeg checkpoint directory for robot_mask=robotseg (None: the shipped one)."""

    def check_robot_mask_files(self) -> None:
        """FileNotFoundError when robot_mask=robotseg and its checkpoint is missing; CheckpointError when damaged."""
        if self.robot_mask != "robotseg":
            return
        from graspsim.learn.checkpoint import read_metadata, verify
        from graspsim.policies.robotseg.config import resolve_checkpoint

        path = resolve_checkpoint(self.robot_mask_checkpoint)
        verify(path, read_metadata(path))


class RobotPixels:
    """The robot's pixels in an observation, by one of :data:`ROBOT_MASK_MODES`.

    ``needs_privileged``: True for ``oracle`` (the runner then asks the environment for ``robot_seg``).
    The RobotSeg network loads once, here, when ``mode == "robotseg"``.
    """

    def __init__(self, mode: str = "none", checkpoint: str | None = None):
        if mode not in ROBOT_MASK_MODES:
            raise ValueError(f"unknown robot_mask {mode!r}; choose one of: {', '.join(ROBOT_MASK_MODES)}")
        self.mode = mode
        self.needs_privileged = mode == "oracle"
        self.predictor = None
        if mode == "robotseg":
            from graspsim.policies.robotseg.predictor import predictor_for

            self.predictor, _ = predictor_for(checkpoint)
            self.predictor.gripper_zoom = False  # the zoom pass redraws the gripper alone: "whole" is all used here

    def __call__(self, obs: Any) -> np.ndarray | None:
        """(H, W) bool robot pixels of ``obs`` (an :class:`~graspsim.types.Observation`), or None for ``none``.

        ``oracle`` without ``robot_seg`` in the observation (the floating hand: no robot in the image) gives an
        all-False mask; ``robotseg`` runs the network on ``obs.rgb`` (automatic prompt, ``whole`` output)."""
        if self.mode == "none":
            return None
        h, w = np.shape(obs.depth_m)[:2]
        if self.mode == "oracle":
            seg = getattr(obs, "robot_seg", None)
            return np.zeros((h, w), bool) if seg is None else np.asarray(seg) > 0
        return np.asarray(self.predictor.predict(np.asarray(obs.rgb)[..., :3]).masks["whole"], dtype=bool)


def robot_info(robot: np.ndarray | None) -> dict[str, Any]:
    """What a row records: ``robot_mask_px``, the robot pixels excluded (None when nothing is excluded)."""
    return {"robot_mask_px": None if robot is None else int(np.count_nonzero(robot))}


def zero_on_robot(values: np.ndarray, robot: np.ndarray | None) -> np.ndarray:
    """``values`` (H, W) (an attention or quality map) with robot pixels set to 0 (a copy; as is for None)."""
    if robot is None:
        return values
    return np.where(robot, np.zeros((), dtype=np.asarray(values).dtype), values)


def exclude_robot(mask: np.ndarray, robot: np.ndarray | None) -> np.ndarray:
    """(H, W) bool ``mask`` without the robot's pixels (as is for None)."""
    return mask if robot is None else np.asarray(mask, bool) & ~robot


def jaw_points(rect: Any) -> np.ndarray:
    """(2 * JAW_SAMPLES, 2) float64 image points (x, y) on the two jaw plates of ``rect`` (a GraspRect or a
    ``[x, y, w, h, theta]`` row): the rectangle's two short sides, at ``+-w/2`` along the closing axis, each
    sampled at ``JAW_SAMPLES`` points across its length ``h``."""
    x, y, w, h, theta = (float(v) for v in (rect.as_array() if hasattr(rect, "as_array") else rect))
    closing = np.array([math.cos(theta), math.sin(theta)])
    across = np.array([-math.sin(theta), math.cos(theta)])
    t = np.linspace(-h / 2.0, h / 2.0, JAW_SAMPLES)
    centre = np.array([x, y])
    plates = [centre + side * (w / 2.0) * closing + t[:, None] * across for side in (-1.0, 1.0)]
    return np.concatenate(plates, axis=0)


def jaws_on_robot(rect: Any, robot: np.ndarray) -> bool:
    """Whether a jaw plate of ``rect`` lies on a robot pixel of the (H, W) bool ``robot`` (points outside the
    image do not count)."""
    h, w = robot.shape
    pts = np.floor(jaw_points(rect) + 0.5).astype(int)
    inside = (pts[:, 0] >= 0) & (pts[:, 0] < w) & (pts[:, 1] >= 0) & (pts[:, 1] < h)
    pts = pts[inside]
    return bool(robot[pts[:, 1], pts[:, 0]].any())


def drop_grasps_on_robot(rects: Sequence[Any], robot: np.ndarray | None) -> list[int]:
    """Indices of the ``rects`` (best first) kept: those whose jaws lie on no robot pixel (all for None)."""
    if robot is None:
        return list(range(len(rects)))
    return [i for i, r in enumerate(rects) if not jaws_on_robot(r, robot)]
