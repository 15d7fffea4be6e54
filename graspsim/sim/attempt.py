"""One grasp attempt from what the robot perceived: rectangle or pose -> command -> support clearance -> execution.

The environment's ``step`` and the dataset's label validation both run this,
so a label is kept exactly when the same rectangle would succeed as an action.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from graspsim.config import GRASP_DEPTH_M, PhysicsConfig
from graspsim.grasping.conversion import UnreachableGraspError, command_to_rect, rect_to_command
from graspsim.grasping.workspace import clear_supports
from graspsim.sim.execute import execute_grasp
from graspsim.sim.scene import BuiltScene
from graspsim.sim.world import SimWorld
from graspsim.types import CameraModel, FailureReason, GraspRect, GripperCommand, InvalidRectError, PickOutcome


@dataclass(frozen=True)
class Attempt:
    """What one attempt did.

    ``rect``: the grasp as an image rectangle (the one given, or the projection
    of a given pose; None when that projection failed). ``command``: the command
    executed, after support clearance (None when the grasp never became one).
    ``outcome``: the judged outcome (``invalid_action`` / ``out_of_reach`` when
    the conversion failed).
    """

    rect: GraspRect | None
    command: GripperCommand | None
    outcome: PickOutcome


def attempt_grasp(world: SimWorld, scene: BuiltScene, grasp: GraspRect | GripperCommand, depth_m: np.ndarray,
                  camera: CameraModel, target_class: str, physics: PhysicsConfig,
                  grasp_depth_m: float = GRASP_DEPTH_M, target_part: str | None = None) -> Attempt:
    """Convert ``grasp`` with the perceived ``depth_m`` / ``camera`` and execute it in ``scene``.

    ``grasp``: a rectangle (pixels, in ``camera``'s image) or a gripper command
    (``T_world_grasp`` in the world frame, z = approach). ``depth_m``: (H, W)
    metres along camera z, the depth the robot sees (possibly noisy, possibly
    from another scene than ``scene``: the label validation executes on the
    product alone). The approach is ``scene.approach_world``. ``target_part``:
    the grasp part a part-aware attempt must hold (None: an ordinary attempt).
    """
    rect = grasp if isinstance(grasp, GraspRect) else None
    try:
        if rect is not None:
            command = rect_to_command(rect, depth_m, camera, scene.approach_world, physics.gripper, grasp_depth_m)
        else:
            command = grasp
            rect = command_to_rect(command, camera, physics.gripper, grasp_depth_m)
    except InvalidRectError as exc:
        return Attempt(rect, None, PickOutcome(False, FailureReason.INVALID_ACTION, details={"error": str(exc)}))
    except UnreachableGraspError as exc:
        return Attempt(rect, None, PickOutcome(False, FailureReason.OUT_OF_REACH, details={"error": str(exc)}))
    command = clear_supports(scene.kind, command, physics.gripper)
    return Attempt(rect, command, execute_grasp(world, scene, command, target_class, physics, target_part))
