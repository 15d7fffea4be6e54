"""The poses of a pick, and the arm's joint plan for them (numpy only: the simulator and the planners use it).

:func:`hand_motion` gives the hand poses every robot goes through (world frame,
the Franka hand frame of :mod:`graspsim.sim.gripper`: +z approach, +y closing):
the pre-grasp pose back along the approach (on shelves far enough back to start
outside the shelf), the grasp pose, and the lift waypoints (tabletop: straight
up; shelf: up 2 cm, back out 30 cm, then up). :func:`plan_arm_motion` solves
them for the Panda from its mount (:class:`~graspsim.scenes.kinds.ArmMount`),
and :func:`arm_can_execute` is that plan's yes / no plus a check of the arm
(spheres from the upper arm to the wrist) against the furniture the robot
knows, which is what the oracle and the heuristic ask before choosing a grasp,
as a motion planner would.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from graspsim.config import PhysicsConfig
from graspsim.geometry import make_transform
from graspsim.grasping import panda_kinematics as kin
from graspsim.grasping.workspace import executed_command
from graspsim.scenes.kinds import SceneKind
from graspsim.types import CameraModel, GraspRect, GripperCommand

# Shelf lifts: rise this much, then back out this far along the approach before rising to the lift height.
_SHELF_FIRST_RISE_M = 0.02
_SHELF_BACK_OUT_M = 0.30
# The arm's joint-space move ends this far behind the pre-grasp pose along the approach; the rest is a straight line.
VIA_BACK_M = 0.05
# Consecutive IK waypoints (WAYPOINT_STEP_M apart) further apart than this in any joint: the straight line would need the arm to
# flip its configuration (through a singularity), which no controller does on the way.
MAX_JOINT_JUMP_RAD = 0.35
#: Spacing of the IK waypoints along the straight lines [m]. Between two, the joints move on a straight line in
#: joint space: the hand leaves the Cartesian line by under a millimetre at this spacing (0.5 mm at most on the
#: first shelf-test scenes).
WAYPOINT_STEP_M = 0.02


@dataclass(frozen=True)
class HandMotion:
    """The hand poses of one pick, world frame, (4, 4) each; ``approach_distance_m``: pre-grasp to grasp."""

    T_hand_pre: np.ndarray
    T_hand_grasp: np.ndarray
    lift: tuple[np.ndarray, ...]
    approach_distance_m: float


@dataclass(frozen=True)
class ArmPlan:
    """The Panda's joint plan for a :class:`HandMotion` from base pose ``T_world_base``.

    ``q_via`` (7,): where the joint-space move ends (the hand :data:`VIA_BACK_M`
    behind the pre-grasp pose); ``approach`` / ``lift``: joint vectors of IK
    waypoints at most :data:`WAYPOINT_STEP_M` apart along the straight lines via -> pre-grasp ->
    grasp and grasp -> lift waypoints.
    """

    T_world_base: np.ndarray
    q_via: np.ndarray
    approach: tuple[np.ndarray, ...]
    lift: tuple[np.ndarray, ...]


def shifted(T: np.ndarray, offset_world) -> np.ndarray:
    """A copy of pose ``T`` (4, 4) translated by ``offset_world`` (3,)."""
    out = T.copy()
    out[:3, 3] = out[:3, 3] + np.asarray(offset_world, dtype=np.float64)
    return out


def hand_pose_from_grasp(T_world_grasp: np.ndarray, physics: PhysicsConfig) -> np.ndarray:
    """Hand base pose that puts the grasp point between the finger pads."""
    return T_world_grasp @ make_transform(None, [0.0, 0.0, -physics.gripper.palm_to_grasp_m])


def lift_waypoints(kind: SceneKind, T_hand_start: np.ndarray, physics: PhysicsConfig) -> list[np.ndarray]:
    """Hand poses of the lift from ``T_hand_start`` (see the module docstring)."""
    up = np.array([0.0, 0.0, 1.0])
    if kind.horizontal_approach:  # back out of the shelf before rising
        approach = T_hand_start[:3, 2]
        waypoints = [shifted(T_hand_start, up * _SHELF_FIRST_RISE_M)]
        waypoints.append(shifted(waypoints[-1], -approach * _SHELF_BACK_OUT_M))
        waypoints.append(shifted(T_hand_start, up * physics.lift_height_m - approach * _SHELF_BACK_OUT_M))
        return waypoints
    return [shifted(T_hand_start, up * physics.lift_height_m)]


def hand_motion(kind: SceneKind, command: GripperCommand, physics: PhysicsConfig) -> HandMotion:
    """The hand poses of executing ``command`` in a scene of ``kind``."""
    grasp_point = command.T_world_grasp[:3, 3]
    approach = command.T_world_grasp[:3, 2]
    T_hand_grasp = hand_pose_from_grasp(command.T_world_grasp, physics)
    approach_distance = physics.approach_distance_m
    if kind.horizontal_approach:
        # Start outside the shelf (fingertips in front of its front edge, y = 0), as an arm
        # reaching in would: a deep grasp pushes through whatever stands in front of it.
        fingertip_beyond = physics.gripper.fingertip_beyond_grasp_m
        approach_distance = max(approach_distance, float(grasp_point[1]) + fingertip_beyond + 0.01)
    T_hand_pre = shifted(T_hand_grasp, -approach * approach_distance)
    return HandMotion(T_hand_pre, T_hand_grasp, tuple(lift_waypoints(kind, T_hand_grasp, physics)),
                      approach_distance)


def plan_arm_motion(kind: SceneKind, motion: HandMotion, step_m: float = WAYPOINT_STEP_M) -> ArmPlan | str:
    """The :class:`ArmPlan` of ``motion`` from the mount of ``kind`` (its base at the grasp's bay), or a string
    naming the first pose without an IK solution within tolerance and joint limits (or a straight segment that
    would need a jump in joint space).

    A pure function of its arguments, remembered for the last few: the oracle plans the grasp it chooses and
    the simulator then plans the same command again.
    """
    key = b"".join([kind.name.encode(), np.float64(step_m).tobytes(), motion.T_hand_pre.tobytes(),
                    motion.T_hand_grasp.tobytes(), *(T.tobytes() for T in motion.lift)])
    if key not in _RECENT_PLANS:
        _RECENT_PLANS[key] = _plan(kind, motion, step_m)
        while len(_RECENT_PLANS) > 8:
            _RECENT_PLANS.pop(next(iter(_RECENT_PLANS)))
    return _RECENT_PLANS[key]


_RECENT_PLANS: dict[bytes, ArmPlan | str] = {}


def _plan(kind: SceneKind, motion: HandMotion, step_m: float) -> ArmPlan | str:
    T_world_base = kind.arm_mount.T_world_base_for(motion.T_hand_grasp[:3, 3])
    T_base_world = np.linalg.inv(T_world_base)
    T_hand_via = shifted(motion.T_hand_pre, -motion.T_hand_pre[:3, 2] * VIA_BACK_M)
    failure = "pre-grasp pose"
    # Seeded from the parking pose first, where the arm starts (the nearest solution: the shortest move
    # there); from the neutral rest pose when the lines cannot be followed from that solution.
    for seed in _seeds(kind):
        first = _solve_from(T_base_world @ T_hand_via, seed)
        if not first.ok:
            break  # the later seeds' restarts are among this one's: they would fail alike
        paths = _lines(T_base_world, first.q, (("approach", [T_hand_via, motion.T_hand_pre, motion.T_hand_grasp]),
                                                ("lift", [motion.T_hand_grasp, *motion.lift])), step_m)
        if isinstance(paths, str):
            failure = paths
            continue
        return ArmPlan(T_world_base, first.q, paths[0], paths[1])
    return failure


def path_from(T_world_base: np.ndarray, q_start: np.ndarray, poses, step_m: float = WAYPOINT_STEP_M
              ) -> tuple[np.ndarray, ...] | None:
    """Joint waypoints (7,) each along straight lines from where the hand is, the arm at joints ``q_start``
    (7,) on base ``T_world_base`` (4, 4, world), through hand ``poses`` ((4, 4) each, world); None when a line
    has no IK continuation (or would need a jump in joint space).

    What the arm does after an approach blocked short of its grasp pose (the palm against a shelf's front
    edge): following the planned lines would drive the hand back towards the unreached pose, pressing into
    the furniture at the torque limits through the close and the lift, and the friction then twists the hand
    and shakes the product out of the jaws (:func:`~graspsim.sim.execute.execute_grasp`).
    """
    q_start = np.asarray(q_start, dtype=np.float64)
    T_world_hand = T_world_base @ kin.fk_hand(q_start)
    paths = _lines(np.linalg.inv(T_world_base), q_start, (("path", [T_world_hand, *poses]),), step_m)
    return None if isinstance(paths, str) else paths[0]


def _solve_from(T_base_hand: np.ndarray, q_seed: np.ndarray) -> kin.IKResult:
    """``kin.solve_ik(T_base_hand, q_seed)`` (with its restarts), remembered for the last few: the planner's
    quick check (:func:`arm_can_execute`) and the plan then start from the same via pose and seed."""
    key = T_base_hand.tobytes() + np.asarray(q_seed, dtype=np.float64).tobytes()
    if key not in _RECENT_STARTS:
        result = _RECENT_STARTS[key] = kin.solve_ik(T_base_hand, q_seed)
        result.q.flags.writeable = False  # shared by every caller (and the plans made from it)
        while len(_RECENT_STARTS) > 8:
            _RECENT_STARTS.pop(next(iter(_RECENT_STARTS)))
    return _RECENT_STARTS[key]


_RECENT_STARTS: dict[bytes, kin.IKResult] = {}


def _seeds(kind: SceneKind) -> tuple[np.ndarray, np.ndarray]:
    return np.asarray(kind.arm_mount.q_park), kin.Q_REST


def _lines(T_base_world: np.ndarray, q: np.ndarray, lines, step_m: float) -> list[tuple[np.ndarray, ...]] | str:
    """IK waypoints ``step_m`` apart along each named line of poses, from joints ``q``; or the failing line's
    name."""
    paths = []
    for name, poses in lines:
        path = []
        for T_a, T_b in zip(poses[:-1], poses[1:]):
            for T in kin.interpolate_cartesian(T_a, T_b, step_m)[1:]:
                # A continuation from the previous waypoint: no restarts (a restart's solution lies on
                # another branch, a jump in joint space the line could not follow anyway).
                result = kin.solve_ik(T_base_world @ T, q, restarts=0)
                if not result.ok or np.max(np.abs(result.q - q)) > MAX_JOINT_JUMP_RAD:
                    return f"{name} line"
                q = result.q
                path.append(q)
        paths.append(tuple(path))
    return paths


@functools.cache
def _box_arrays(furniture) -> tuple[np.ndarray, np.ndarray]:
    """(m, 3) half extents and (m, 3) centres of the furniture's boxes, built once per layout (checked per
    waypoint)."""
    boxes = furniture.boxes()
    return np.array([b[0] for b in boxes]), np.array([b[1] for b in boxes])


def arm_sphere_centres(T_world_base: np.ndarray, q: np.ndarray) -> np.ndarray:
    """(n, 3) world centres of the spheres (radius :data:`ARM_SPHERE_RADIUS_M`) that cover the arm from the
    upper arm to the wrist at joints ``q`` (7,): every link frame origin from ``panda_link3`` on, and points
    every 5 cm between consecutive ones (the links' offsets, such as the wrist under the flange, included)."""
    origins = (T_world_base[:3, :3] @ kin.link_frames(q)[2:, :3, 3].T).T + T_world_base[:3, 3]
    # a + (b - a) * (k / n) for every segment at once (the same doubles as segment by segment)
    start, end = origins[_SPHERE_SEGMENT], origins[_SPHERE_SEGMENT + 1]
    return np.concatenate([origins[:1], start + (end - start) * _SPHERE_FRACTION])


def _sphere_spacing() -> tuple[np.ndarray, np.ndarray]:
    """(segment index, fraction k / n) (m,) and (m, 1) of the points :func:`arm_sphere_centres` puts between
    consecutive link origins (k = 1..n, n = ceil(length / 5 cm), at least 1). The lengths are those of rigid
    links, the same at every q: computed once."""
    origins = kin.link_frames(kin.Q_REST)[2:, :3, 3]
    segments, fractions = [], []
    for i, (a, b) in enumerate(zip(origins[:-1], origins[1:])):
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / 0.05)))
        segments += [i] * n
        fractions.append(np.arange(1, n + 1) / n)
    return np.array(segments), np.concatenate(fractions)[:, None]


_SPHERE_SEGMENT, _SPHERE_FRACTION = _sphere_spacing()


#: Radius of the planner's spheres: the Panda's links are about 0.12 m thick.
ARM_SPHERE_RADIUS_M = 0.06
#: Clearance the planner keeps between its spheres and the furniture: the spheres are a coarse model (the
#: forearm's housing sticks out of them), and a real planner keeps a margin too.
PLANNER_MARGIN_M = 0.02


def hits_furniture(kind: SceneKind, T_world_base: np.ndarray, q: np.ndarray, margin_m: float = 0.0) -> bool:
    """Whether the arm at joints ``q`` (its spheres, see :func:`arm_sphere_centres`) reaches into a box of the
    kind's furniture (``kind.furniture.boxes()``, known to the robot as its workspace)."""
    centres = arm_sphere_centres(T_world_base, q)
    half, centre = _box_arrays(kind.furniture)
    # distance from each sphere centre to each box: (n spheres, m boxes)
    outside = np.maximum(np.abs(centres[:, None, :] - centre[None]) - half[None], 0.0)
    return bool((np.linalg.norm(outside, axis=2) < ARM_SPHERE_RADIUS_M + margin_m).any())


def _clear_of_furniture(kind: SceneKind, T_world_base: np.ndarray, T_base_world: np.ndarray, poses,
                        q: np.ndarray) -> bool | None:
    """Whether the IK solutions of ``poses`` from joints ``q`` keep the arm's spheres out of the furniture; None
    when the first pose has no solution at all (from any seed: its restarts are the same for every ``q``)."""
    for i, T in enumerate(poses):
        # the first pose from anywhere; the next ones continue from it along the approach line
        result = _solve_from(T_base_world @ T, q) if i == 0 else kin.solve_ik(T_base_world @ T, q, restarts=0)
        if not result.ok and i == 0:
            return None
        if not result.ok or hits_furniture(kind, T_world_base, result.q, PLANNER_MARGIN_M):
            return False
        q = result.q
    return True


def arm_can_execute(kind: SceneKind, command: GripperCommand, physics: PhysicsConfig) -> bool:
    """Whether the Panda has a plan for ``command`` that keeps its arm out of the furniture on the way in, as a
    motion planner that knows the shelf or table (but not the products) would judge it."""
    motion = hand_motion(kind, command, physics)
    # The three poses that decide most candidates first (a few ms), the full plan only for those that pass:
    # it is what the simulator then executes (remembered by plan_arm_motion).
    T_world_base = kind.arm_mount.T_world_base_for(motion.T_hand_grasp[:3, 3])
    T_base_world = np.linalg.inv(T_world_base)
    key_poses = (shifted(motion.T_hand_pre, -motion.T_hand_pre[:3, 2] * VIA_BACK_M), motion.T_hand_pre,
                 motion.T_hand_grasp)
    for seed in _seeds(kind):
        clear = _clear_of_furniture(kind, T_world_base, T_base_world, key_poses, seed)
        if clear is not False:
            break
    if not clear:
        return False
    plan = plan_arm_motion(kind, motion)
    return isinstance(plan, ArmPlan) and not any(hits_furniture(kind, plan.T_world_base, q, PLANNER_MARGIN_M)
                                                 for q in (plan.q_via, *plan.approach))


def arm_clear_of_points(kind: SceneKind, command: GripperCommand, physics: PhysicsConfig,
                        points_world: np.ndarray) -> bool:
    """Whether the arm's spheres (:func:`arm_sphere_centres`) keep :data:`PLANNER_MARGIN_M` clear of
    ``points_world`` (N, 3) metres, world frame (e.g. the products the camera sees beside the target) from the
    via pose along the approach to the grasp, on the plan :func:`plan_arm_motion` makes for ``command`` (False
    without a plan)."""
    from scipy.spatial import cKDTree

    plan = plan_arm_motion(kind, hand_motion(kind, command, physics))
    if isinstance(plan, str):
        return False
    if len(points_world) == 0:
        return True
    tree = cKDTree(points_world)
    centres = np.concatenate([arm_sphere_centres(plan.T_world_base, q) for q in (plan.q_via, *plan.approach)])
    distance, _ = tree.query(centres, distance_upper_bound=ARM_SPHERE_RADIUS_M + PLANNER_MARGIN_M)
    return bool(np.isinf(distance).all())


def first_executable(rects: list[GraspRect], depth_m: np.ndarray, camera: CameraModel, approach_world: np.ndarray,
                     kind: SceneKind, physics: PhysicsConfig, grasp_depth_m: float, max_checked: int = 8,
                     obstacles: np.ndarray | None = None) -> tuple[int | None, int]:
    """``(index, checked)``: the first of ``rects`` (best first) the Panda has a plan for (:func:`arm_can_execute`
    on the command the robot would execute, :func:`~graspsim.grasping.workspace.executed_command`), at most
    ``max_checked`` tried; index None when none of them is executable. ``obstacles``: (N, 3) world points the
    arm must also keep clear of on the way in (:func:`arm_clear_of_points`); None: the furniture only."""
    checked = 0
    for index, rect in enumerate(rects[:max_checked]):
        checked += 1
        command = executed_command(rect, depth_m, camera, approach_world, kind, physics.gripper, grasp_depth_m)
        if command is not None and arm_can_execute(kind, command, physics) and (
                obstacles is None or arm_clear_of_points(kind, command, physics, obstacles)):
            return index, checked
    return None, checked
