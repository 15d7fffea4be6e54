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
for the floating hand. The approach is a guarded move: where the hand housing
presses on the furniture with more than ``_GUARD_FORCE_N`` (a palm on a side
panel's front edge, within the 2 mm tolerance) it stops, its joints hold where
they are, and the lift is planned from there (``outcome.details
["approach_blocked"]``; likewise when the joints did not arrive at the grasp
pose), as the floating hand stops where its stiff constraint is held back.
Afterwards the arm returns to its parking pose.

Judgement after the hold: a product is *held* if both fingers touch it and it
rose at least half the lift height. Success = a held product of the target
class. Otherwise: ``wrong_object`` (another product is held), ``slipped``
(the jaws closed on something - they stopped more than 2 mm apart - but
nothing is held now), ``missed`` (the jaws closed on nothing).

Part-aware attempts (``target_part`` given, "pick the ketchup bottle by its
cap"): success also needs both fingers on the named part, else ``wrong_part``.
Where a finger holds is read right after the jaws closed, before the lift can
shift the product: the product's surface the finger presses, in the product's
frame at that moment - the points spread over the product's mesh
(:func:`graspsim.assets.parts.surface_samples`) across the finger's 2.1 cm
width and along its length that lie within 1 mm of the point pressed deepest
into the finger's inner face (a flat pad over the last 1.8 cm, standing back
by up to 2.5 mm towards the finger's base) - and the centre of that surface is
looked up in the product's grasp parts (:func:`graspsim.assets.parts.part_at`,
the nearest part for a point a hair outside). A pad lying flat on a face
presses the whole overlap; on a wall sloping away from it, a strip along its
edge. Not pybullet's contact points themselves (``getContactPoints``): for the
convex collision shapes it reports one point per finger, the deepest, which
for a pad lying flat on a face sits at an end of the pad (a pad covering the
top 1.4-3.1 cm of a gum pack reports its tip at 2.8 cm, in the bottom half).
The contact points say which fingers touch which product, and stand in for the
pressed surface when no mesh point lies within 2 mm of the finger (an edge or
a corner touches: their force-weighted centre). A finger not touching the product at
closure holds no part. The outcome records ``finger_parts`` (one per finger)
and ``held_part`` (their common part, None when they differ). Ordinary
attempts are judged and recorded exactly as before.

Side effects on the other products: ``knocked_down`` (up axis turned more than
``tip_angle_deg``) and ``dropped`` (sank more than ``drop_height_m``).
"""

from __future__ import annotations

import numpy as np

from graspsim.assets.catalog import get_variant
from graspsim.assets.parts import part_at, part_names, surface_samples
from graspsim.config import PhysicsConfig
from graspsim.grasping import panda_kinematics as kin
from graspsim.grasping.arm_motion import HandMotion, hand_motion, lift_waypoints, path_from, plan_arm_motion
from graspsim.grasping.part_grasps import FACE_TAPER, PAD_LENGTH_M
from graspsim.geometry import quat_to_matrix
from graspsim.grasping.workspace import in_reach
from graspsim.sim.gripper import FloatingHand
from graspsim.sim.panda import ARM_LINKS, GRIPPER_LINKS, HAND_LINK
from graspsim.sim.scene import BuiltScene, body_poses, tilt_deg
from graspsim.sim.world import SimWorld
from graspsim.types import FailureReason, GripperCommand, PickOutcome

_EMPTY_GAP_M = 0.002  # jaws closer than this after closing held nothing
# The arm's approach is a guarded move: it stops where the palm presses on the furniture harder than this (N).
_GUARD_FORCE_N = 50.0
# The surface a finger presses: the product's surface within _PRESSED_BAND_M of the point nearest the finger's
# face (or pressed deepest into it), when that point is within _PRESSED_GAP_M of the face; points pressed
# deeper than _PRESSED_DEPTH_M are on the far side of a thin product, not under this finger.
_PRESSED_BAND_M = 0.001
_PRESSED_GAP_M = 0.002
_PRESSED_DEPTH_M = 0.004


def _touches(world: SimWorld, body_a: int, bodies: tuple[int, ...], tolerance_m: float = 0.001) -> bool:
    # contact[8]: the contact distance, negative when penetrating
    return any(contact[8] < -tolerance_m for body in bodies
               for contact in world.client.getContactPoints(bodyA=body_a, bodyB=body))


def execute_grasp(world: SimWorld, scene: BuiltScene, command: GripperCommand, target_class: str,
                  physics: PhysicsConfig, target_part: str | None = None) -> PickOutcome:
    """Run the pick motion for ``command`` in ``scene``; the hand is removed (the arm parked) afterwards.

    ``target_part``: a grasp part of ``target_class`` (:mod:`graspsim.assets.parts`) for a part-aware
    attempt, None for an ordinary one (module docstring).
    """
    grasp_point = command.T_world_grasp[:3, 3]
    if scene.arm is None and not in_reach(scene.kind, grasp_point):
        return PickOutcome(False, FailureReason.OUT_OF_REACH, details={"grasp_point": grasp_point.tolist()})
    motion = hand_motion(scene.kind, command, physics)
    if scene.arm is not None:
        return _execute_with_arm(world, scene, scene.arm, command, motion, target_class, physics, target_part)
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

        return _grip_lift_judge(world, hand, scene, before, lift, target_class, physics, steps, {}, target_part)
    finally:
        hand.remove()


def _grip_lift_judge(world: SimWorld, robot, scene: BuiltScene, before, lift, target_class: str,
                     physics: PhysicsConfig, steps: int, details: dict, target_part: str | None = None) -> PickOutcome:
    """Steps 3-5 and the judgement, for the hand or the arm (``lift()`` moves it up and returns its steps)."""
    robot.close()
    steps += _close(world, robot, physics)
    gap_after_close = robot.finger_gap_m()
    grip_parts = _finger_parts(world, robot, physics, scene)  # where the fingers hold, before the lift shifts it
    steps += lift()
    hold_steps = int(physics.hold_time_s / physics.time_step_s)
    world.step(hold_steps)
    steps += hold_steps

    held = _held_bodies(world, robot, scene, before, physics)
    outcome = _judge(scene, held, gap_after_close, target_class, target_part, grip_parts)
    knocked, dropped = _side_effects(world, scene, before, held, physics)
    fingers = grip_parts.get(outcome[3], ()) if outcome[3] is not None else ()
    return PickOutcome(outcome[0], outcome[1], picked_class=outcome[2], picked_body=outcome[3],
                       knocked_down=knocked, dropped=dropped, steps=steps,
                       details={"gap_after_close_m": round(gap_after_close, 5), **details},
                       target_part=target_part, finger_parts=fingers)


def _execute_with_arm(world: SimWorld, scene: BuiltScene, arm, command: GripperCommand, motion: HandMotion,
                      target_class: str, physics: PhysicsConfig, target_part: str | None = None) -> PickOutcome:
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

    def watch(phase: str, gripper_bodies: tuple[int, ...], tolerance_m: float, guard: bool = False):
        """``on_step`` of a motion: records a collision in ``hit`` and stops; with ``guard``, also stops (without a
        failure: a guarded move) where the hand housing presses on the furniture harder than _GUARD_FORCE_N."""
        def check() -> bool:
            contacts = arm.contacts()
            if not contacts:  # most steps: nothing touches the robot
                return True
            if arm.touching(everything, ARM_LINKS, 0.0, contacts) or arm.self_colliding(contacts=contacts):
                hit.append((FailureReason.ARM_COLLISION, phase))
            elif arm.touching(gripper_bodies, GRIPPER_LINKS, tolerance_m, contacts):
                hit.append((FailureReason.COLLISION_BEFORE_GRASP, phase))
            elif guard and arm.pressing_n(scene.static_bodies, (HAND_LINK,), contacts) > _GUARD_FORCE_N:
                return False
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
            arrived, approach_steps = arm.follow(plan.approach, physics.approach_speed_mps,
                                                 watch("approach", scene.static_bodies, 0.002, guard=True))
            steps += approach_steps
        if hit:
            reason, phase = hit[0]
            return PickOutcome(False, reason, steps=steps, details={**details, "collision": phase})
        lift_path = plan.lift
        if not arrived:
            # Blocked short of the grasp pose: the palm met a shelf's front edge (within the approach's 2 mm
            # tolerance). Stop there, as a guarded move does, and lift from there: pressing on towards the
            # unreached pose at the torque limits buckles the arm (the hand rides up and turns) and the lift's
            # friction on the edge then shakes the product out of the jaws (path_from).
            details["approach_blocked"] = True
            q_now = arm.hold_where_it_is()
            T_now = plan.T_world_base @ kin.fk_hand(q_now)
            lift_path = path_from(plan.T_world_base, q_now, lift_waypoints(scene.kind, T_now, physics)) or plan.lift
        return _grip_lift_judge(world, arm, scene, before, lambda: arm.follow(lift_path, physics.lift_speed_mps)[1],
                                target_class, physics, steps, details, target_part)
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


def _finger_parts(world: SimWorld, robot, physics: PhysicsConfig, scene: BuiltScene) -> dict[int, tuple]:
    """Per product the fingers touch now: the grasp part each finger presses on (module docstring), one entry
    per finger in ``robot.finger_links`` order (None for a finger that does not touch it)."""
    touching: dict[int, dict[int, list]] = {}
    for contact in world.client.getContactPoints(bodyA=robot.body):
        # contact[2]: bodyB, [3]: link of A, [6]: position on B (world), [9]: normal force
        if contact[3] in robot.finger_links and contact[2] in scene.body_to_class_name:
            touching.setdefault(contact[2], {}).setdefault(contact[3], []).append(contact)
    # Each finger link's frame (URDF: origin at the finger's base, z along the finger, the pad's face in its
    # x-z plane, the same for the floating hand and the Panda); the pad is the last PAD_LENGTH_M of the finger.
    pad_start = physics.gripper.finger_length_m - PAD_LENGTH_M
    # (The link states of the last simulation step: reading them changes nothing in the simulation.)
    frames = {link: world.client.getLinkState(robot.body, link)[4:6] for link in robot.finger_links}
    out = {}
    for body, per_link in touching.items():
        class_name = scene.body_to_class_name[body]
        variant = scene.plan.products[scene.product_bodies.index(body)].variant
        position, quat = (np.asarray(v, dtype=np.float64) for v in world.client.getBasePositionAndOrientation(body))
        R = quat_to_matrix(quat)
        surface = surface_samples(class_name, variant)  # product frame
        surface_world = surface @ R.T + position
        parts = []
        for link, other in zip(robot.finger_links, robot.finger_links[::-1]):
            if link not in per_link:
                parts.append(None)
                continue
            origin, R_link = np.asarray(frames[link][0]), quat_to_matrix(frames[link][1])
            local = (surface_world - origin) @ R_link
            inward = 1.0 if (R_link.T @ (np.asarray(frames[other][0]) - origin))[1] >= 0 else -1.0
            # How far each point is from meeting the finger's face (negative: pressed in), the face standing
            # back along the taper towards the finger's base; the finger presses where this is least.
            gap = local[:, 1] * inward + FACE_TAPER * np.maximum(pad_start - local[:, 2], 0.0)
            on_finger = ((np.abs(local[:, 0]) <= physics.gripper.finger_width_m / 2) & (local[:, 2] >= 0)
                         & (local[:, 2] <= physics.gripper.finger_length_m) & (gap > -_PRESSED_DEPTH_M))
            if on_finger.any() and gap[on_finger].min() <= _PRESSED_GAP_M:
                pressed = on_finger & (gap <= gap[on_finger].min() + _PRESSED_BAND_M)
                centre = surface[pressed].mean(axis=0)
            else:  # no surface sample near the face (an edge or a corner touches): pybullet's contact points
                points = np.array([c[6] for c in per_link[link]], dtype=np.float64)
                force = np.array([max(c[9], 0.0) for c in per_link[link]])
                weights = force if force.sum() > 0 else np.ones(len(points))
                centre = R.T @ (weights @ points / weights.sum() - position)
            size = get_variant(class_name, variant).size_m
            parts.append(part_names(class_name)[part_at(class_name, size, centre[None])[0]])
        out[body] = tuple(parts)
    return out


def _judge(scene: BuiltScene, held: list[int], gap_after_close: float, target_class: str,
           target_part: str | None = None, finger_parts: dict[int, tuple[str | None, ...]] | None = None):
    """(success, reason, picked_class, picked_body) by the rule in the module docstring."""
    for body in held:
        if scene.body_to_class_name[body] == target_class:
            parts = (finger_parts or {}).get(body, (None,))
            if target_part is not None and any(part != target_part for part in parts):
                return False, FailureReason.WRONG_PART, target_class, body
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

