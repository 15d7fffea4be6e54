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

With the arm (``scene.arm``, a :class:`~graspsim.sim.panda.PandaArm`), the same
poses are reached by the Panda instead of a hand that appears: every pose of
steps 1-4 is first solved by inverse kinematics from the arm's mount (the base
slides along the shelf to the grasp's bay first); a pose without a solution
within the joint limits and the 5 mm / 3 degree tolerance is ``unreachable``
and nothing moves. Then the arm moves in joint space from where it waits to the
point 5 cm behind the pre-grasp pose, and through IK waypoints (2 cm apart)
along the straight lines from there through the pre-grasp pose to the grasp
and along the lift (:mod:`graspsim.grasping.arm_motion` plans them). A link other than the hand and fingers touching the
furniture or a product before the jaws close, or two links of the arm touching
each other, is ``arm_collision``; the hand or fingers touching the furniture
(or anything on the way to the pre-grasp pose) is ``collision_before_grasp`` as
for the floating hand. Afterwards the arm returns to its parking pose.

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
from graspsim.grasping.arm_motion import HandMotion, hand_motion, lift_waypoints, plan_arm_motion
from graspsim.grasping.workspace import in_reach
from graspsim.sim.gripper import FloatingHand
from graspsim.sim.panda import ARM_LINKS, GRIPPER_LINKS
from graspsim.sim.scene import BuiltScene, body_poses, tilt_deg
from graspsim.sim.world import SimWorld
from graspsim.types import FailureReason, GripperCommand, PickOutcome

_EMPTY_GAP_M = 0.002  # jaws closer than this after closing held nothing


def _touches(world: SimWorld, body_a: int, bodies: tuple[int, ...], tolerance_m: float = 0.001) -> bool:
    # contact[8]: the contact distance, negative when penetrating
    return any(contact[8] < -tolerance_m for body in bodies
               for contact in world.client.getContactPoints(bodyA=body_a, bodyB=body))


def execute_grasp(world: SimWorld, scene: BuiltScene, command: GripperCommand, target_class: str,
                  physics: PhysicsConfig) -> PickOutcome:
    """Run the pick motion for ``command`` in ``scene``; the hand is removed (the arm parked) afterwards."""
    grasp_point = command.T_world_grasp[:3, 3]
    if scene.arm is None and not in_reach(scene.kind, grasp_point):
        return PickOutcome(False, FailureReason.OUT_OF_REACH, details={"grasp_point": grasp_point.tolist()})
    motion = hand_motion(scene.kind, command, physics)
    if scene.arm is not None:
        return _execute_with_arm(world, scene, scene.arm, command, motion, target_class, physics)
    others = scene.live_bodies
    before = body_poses(world, others)
    hand = FloatingHand(world, motion.T_hand_pre, command.opening_m, physics)
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

        hand.move_linear(motion.T_hand_grasp, physics.approach_speed_mps, watch_furniture)
        steps += int(np.ceil(motion.approach_distance_m / physics.approach_speed_mps / physics.time_step_s))
        if hit_furniture:
            return PickOutcome(False, FailureReason.COLLISION_BEFORE_GRASP, steps=steps,
                               details={"collision": "furniture during approach"})

        def lift() -> int:
            # from where the hand is (its last target), as the arm lifts from where it is
            lift_steps, position = 0, hand.T_world_hand[:3, 3]
            for T in lift_waypoints(scene.kind, hand.T_world_hand, physics):
                lift_steps += int(np.ceil(np.linalg.norm(T[:3, 3] - position) / physics.lift_speed_mps
                                          / physics.time_step_s))
                hand.move_linear(T, physics.lift_speed_mps)
                position = T[:3, 3]
            return lift_steps

        return _grip_lift_judge(world, hand, scene, before, lift, target_class, physics, steps, {})
    finally:
        hand.remove()


def _grip_lift_judge(world: SimWorld, robot, scene: BuiltScene, before, lift, target_class: str,
                     physics: PhysicsConfig, steps: int, details: dict) -> PickOutcome:
    """Steps 3-5 and the judgement, for the hand or the arm (``lift()`` moves it up and returns its steps)."""
    robot.close()
    steps += _close(world, robot, physics)
    gap_after_close = robot.finger_gap_m()
    steps += lift()
    hold_steps = int(physics.hold_time_s / physics.time_step_s)
    world.step(hold_steps)
    steps += hold_steps

    held = _held_bodies(world, robot, scene, before, physics)
    outcome = _judge(scene, held, gap_after_close, target_class)
    knocked, dropped = _side_effects(world, scene, before, held, physics)
    return PickOutcome(outcome[0], outcome[1], picked_class=outcome[2], picked_body=outcome[3],
                       knocked_down=knocked, dropped=dropped, steps=steps,
                       details={"gap_after_close_m": round(gap_after_close, 5), **details})


def _execute_with_arm(world: SimWorld, scene: BuiltScene, arm, command: GripperCommand, motion: HandMotion,
                      target_class: str, physics: PhysicsConfig) -> PickOutcome:
    """The pick with the Panda (module docstring): plan every pose by IK first, then move, watching for contacts."""
    plan = plan_arm_motion(scene.kind, motion)
    if isinstance(plan, str):
        T_world_base = scene.kind.arm_mount.T_world_base_for(motion.T_hand_grasp[:3, 3])
        return PickOutcome(False, FailureReason.UNREACHABLE,
                           details={"base_xyz_m": _rounded(T_world_base[:3, 3]), "unreachable": plan})
    details = {"base_xyz_m": _rounded(plan.T_world_base[:3, 3])}
    others = scene.live_bodies
    before = body_poses(world, others)
    everything = scene.static_bodies + tuple(others)
    hit: list[tuple[FailureReason, str]] = []

    def watch(phase: str, gripper_bodies: tuple[int, ...], tolerance_m: float):
        def check() -> bool:
            contacts = arm.contacts()
            if arm.touching(everything, ARM_LINKS, 0.0, contacts) or arm.self_colliding(contacts=contacts):
                hit.append((FailureReason.ARM_COLLISION, phase))
            elif arm.touching(gripper_bodies, GRIPPER_LINKS, tolerance_m, contacts):
                hit.append((FailureReason.COLLISION_BEFORE_GRASP, phase))
            return not hit
        return check

    try:
        arm.set_base(plan.T_world_base)
        arm.open_to(command.opening_m)
        # On the way there nothing may be touched at all (a planner would have gone round it).
        arrived, steps = arm.move_joints(plan.q_via, watch("to pre-grasp pose", everything, 0.0))
        if not arrived and not hit:
            hit.append((FailureReason.ARM_COLLISION, "to pre-grasp pose: blocked"))
        if not hit:
            steps += arm.follow(plan.approach, physics.approach_speed_mps,
                                watch("approach", scene.static_bodies, 0.002))[1]
        if hit:
            reason, phase = hit[0]
            return PickOutcome(False, reason, steps=steps, details={**details, "collision": phase})
        return _grip_lift_judge(world, arm, scene, before, lambda: arm.follow(plan.lift, physics.lift_speed_mps)[1],
                                target_class, physics, steps, details)
    finally:
        mount = scene.kind.arm_mount
        arm.park(mount.T_world_base_park(), np.asarray(mount.q_park))


def _rounded(values) -> list[float]:
    return [round(float(v), 4) for v in values]


def _close(world: SimWorld, hand, physics: PhysicsConfig) -> int:
    """Step until the fingers stop (closed on something or shut) or ``close_time_s`` passes."""
    max_steps = int(physics.close_time_s / physics.time_step_s)
    still = 0
    for step in range(1, max_steps + 1):
        world.client.stepSimulation()
        speeds = [abs(world.client.getJointState(hand.body, j)[1]) for j in hand.finger_links]
        still = still + 1 if max(speeds) < 1e-3 else 0
        if still >= 8:  # 1/30 s without finger motion: the grip force is established
            return step
    return max_steps


def _held_bodies(world: SimWorld, hand, scene: BuiltScene, before, physics: PhysicsConfig) -> list[int]:
    held = []
    for body in scene.live_bodies:
        touching = all(hand.contacts_with(body, link) for link in hand.finger_links)
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

