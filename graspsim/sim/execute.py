"""Execute one grasp and judge it. Success is decided here and nowhere else.

The motion (all speeds and times from :class:`~graspsim.config.PhysicsConfig`):

1. The hand appears at the pre-grasp pose, ``approach_distance_m`` back from the
   grasp along the approach axis (on shelves at least far enough to start outside
   the shelf), jaws pre-shaped to the commanded opening. If it already touches
   anything: ``collision_before_grasp``.
2. Approach in a straight line to the grasp pose. Touching the furniture (shelf,
   table, floor) on the way: ``collision_before_grasp``. Products may be nudged.
3. Close the jaws with the bounded force ``gripper_force_n``.
4. Lift. Tabletop: straight up by ``lift_height_m``. Shelf: up 2 cm, back out of
   the shelf along the approach axis, then up to ``lift_height_m`` in total.
5. Hold still for ``hold_time_s``.

Judgement after the hold: a product is *held* if both fingers touch it and it
rose at least half the lift height. Success = a held product of the target
class. Otherwise: ``wrong_object`` (another product is held), ``slipped``
(the jaws closed on something - they stopped more than 2 mm apart - but
nothing is held now), ``missed`` (the jaws closed on nothing).
Side effects on the other products: ``knocked_down`` (up axis turned more than
``tip_angle_deg``) and ``dropped`` (sank more than ``drop_height_m``).
"""

from __future__ import annotations

import numpy as np

from graspsim.config import PhysicsConfig
from graspsim.grasping.workspace import in_reach
from graspsim.sim.gripper import FINGER_JOINTS, FloatingHand, hand_pose_from_grasp
from graspsim.sim.scene import BuiltScene, body_poses, tilt_deg
from graspsim.sim.world import SimWorld
from graspsim.types import FailureReason, GripperCommand, PickOutcome

_EMPTY_GAP_M = 0.002  # jaws closer than this after closing held nothing


def _shifted(T: np.ndarray, offset_world) -> np.ndarray:
    out = T.copy()
    out[:3, 3] = out[:3, 3] + np.asarray(offset_world, dtype=np.float64)
    return out


def _touches(world: SimWorld, body_a: int, bodies: tuple[int, ...], tolerance_m: float = 0.001) -> bool:
    # contact[8]: the contact distance, negative when penetrating
    return any(contact[8] < -tolerance_m for body in bodies
               for contact in world.client.getContactPoints(bodyA=body_a, bodyB=body))


def execute_grasp(world: SimWorld, scene: BuiltScene, command: GripperCommand, target_class: str,
                  physics: PhysicsConfig) -> PickOutcome:
    """Run the pick motion for ``command`` in ``scene``; the hand is removed afterwards."""
    grasp_point = command.T_world_grasp[:3, 3]
    if not in_reach(scene.kind, grasp_point):
        return PickOutcome(False, FailureReason.OUT_OF_REACH, details={"grasp_point": grasp_point.tolist()})

    approach = command.T_world_grasp[:3, 2]
    T_hand_grasp = hand_pose_from_grasp(command.T_world_grasp, physics)
    approach_distance = physics.approach_distance_m
    if scene.kind.horizontal_approach:
        # Start outside the shelf (fingertips in front of its front edge, y = 0), as an arm
        # reaching in would: a deep grasp pushes through whatever stands in front of it.
        fingertip_beyond = physics.gripper.fingertip_beyond_grasp_m
        approach_distance = max(approach_distance, float(grasp_point[1]) + fingertip_beyond + 0.01)
    T_hand_pre = _shifted(T_hand_grasp, -approach * approach_distance)
    others = scene.live_bodies
    before = body_poses(world, others)
    hand = FloatingHand(world, T_hand_pre, command.opening_m, physics)
    steps = 0
    try:
        world.client.performCollisionDetection()
        if _touches(world, hand.body, scene.static_bodies + tuple(others)):
            return PickOutcome(False, FailureReason.COLLISION_BEFORE_GRASP, steps=steps,
                               details={"collision": "pre-grasp pose"})

        hit_furniture = []

        def watch_furniture() -> bool:
            if _touches(world, hand.body, scene.static_bodies, tolerance_m=0.002):
                hit_furniture.append(True)
                return False
            return True

        hand.move_linear(T_hand_grasp, physics.approach_speed_mps, watch_furniture)
        steps += int(np.ceil(approach_distance / physics.approach_speed_mps / physics.time_step_s))
        if hit_furniture:
            return PickOutcome(False, FailureReason.COLLISION_BEFORE_GRASP, steps=steps,
                               details={"collision": "furniture during approach"})

        hand.close()
        steps += _close(world, hand, physics)
        gap_after_close = hand.finger_gap_m()

        steps += _lift(world, hand, scene, physics)
        hold_steps = int(physics.hold_time_s / physics.time_step_s)
        world.step(hold_steps)
        steps += hold_steps

        held = _held_bodies(world, hand, scene, before, physics)
        outcome = _judge(scene, held, gap_after_close, target_class)
        knocked, dropped = _side_effects(world, scene, before, held, physics)
        return PickOutcome(outcome[0], outcome[1], picked_class=outcome[2], picked_body=outcome[3],
                           knocked_down=knocked, dropped=dropped, steps=steps,
                           details={"gap_after_close_m": round(gap_after_close, 5)})
    finally:
        hand.remove()


def _close(world: SimWorld, hand: FloatingHand, physics: PhysicsConfig) -> int:
    """Step until the fingers stop (closed on something or shut) or ``close_time_s`` passes."""
    max_steps = int(physics.close_time_s / physics.time_step_s)
    still = 0
    for step in range(1, max_steps + 1):
        world.client.stepSimulation()
        speeds = [abs(world.client.getJointState(hand.body, j)[1]) for j in FINGER_JOINTS]
        still = still + 1 if max(speeds) < 1e-3 else 0
        if still >= 8:  # 1/30 s without finger motion: the grip force is established
            return step
    return max_steps


def _lift(world: SimWorld, hand: FloatingHand, scene: BuiltScene, physics: PhysicsConfig) -> int:
    """Lift (and for shelves retreat) with the closed hand; returns the steps taken."""
    dt = physics.time_step_s
    start = hand.T_world_hand.copy()
    up = np.array([0.0, 0.0, 1.0])
    if scene.kind.horizontal_approach:  # back out of the shelf before rising
        approach = start[:3, 2]
        waypoints = [_shifted(start, up * 0.02)]
        waypoints.append(_shifted(waypoints[-1], -approach * 0.30))
        waypoints.append(_shifted(start, up * physics.lift_height_m - approach * 0.30))
    else:
        waypoints = [_shifted(start, up * physics.lift_height_m)]
    steps = 0
    position = start[:3, 3]
    for T in waypoints:
        steps += int(np.ceil(np.linalg.norm(T[:3, 3] - position) / physics.lift_speed_mps / dt))
        hand.move_linear(T, physics.lift_speed_mps)
        position = T[:3, 3]
    return steps


def _held_bodies(world: SimWorld, hand: FloatingHand, scene: BuiltScene, before, physics: PhysicsConfig) -> list[int]:
    held = []
    for body in scene.live_bodies:
        touching = all(hand.contacts_with(body, link) for link in FINGER_JOINTS)
        rise = world.client.getBasePositionAndOrientation(body)[0][2] - before[body][0][2]
        if touching and rise >= 0.5 * physics.lift_height_m:
            held.append(body)
    return held


def _judge(scene: BuiltScene, held: list[int], gap_after_close: float, target_class: str):
    """(success, reason, picked_class, picked_body) by the rule in the module docstring."""
    for body in held:
        if scene.body_to_class_name[body] == target_class:
            return True, None, target_class, body
    if held:
        body = held[0]
        return False, FailureReason.WRONG_OBJECT, scene.body_to_class_name[body], body
    if gap_after_close > _EMPTY_GAP_M:
        return False, FailureReason.SLIPPED, None, None
    return False, FailureReason.MISSED, None, None


def _side_effects(world: SimWorld, scene: BuiltScene, before, held: list[int], physics: PhysicsConfig) -> tuple[int, int]:
    after = body_poses(world, [b for b in scene.live_bodies if b not in held])
    knocked = dropped = 0
    for body, (position, R) in after.items():
        position_before, R_before = before[body]
        if position_before[2] - position[2] > physics.drop_height_m:
            dropped += 1
        elif tilt_deg(R_before, R) > physics.tip_angle_deg:
            knocked += 1
    return knocked, dropped

