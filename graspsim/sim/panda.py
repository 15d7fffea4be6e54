"""The full Franka Panda of pybullet_data (7 arm joints, two fingers) on a mobile mount, driven joint by joint.

Frames: ``T_world_base`` is the arm's base link (``panda_link0``); the hand frame
is pybullet_data's ``panda_hand`` link, the same frame as the floating hand's
base (:mod:`graspsim.sim.gripper`): +z approach, +y closing axis. Joint targets
come from :mod:`graspsim.grasping.panda_kinematics` (numpy inverse kinematics
with joint limits and a rest pose in the null space, checked by forward
kinematics); the simulator then drives the joints with position control at the
Panda's velocity and torque limits, so what happens on the way (an elbow on a
shelf board, a forearm in a product) is simulated, not assumed.
"""

from __future__ import annotations

import numpy as np
import pybullet_data

from graspsim.config import PhysicsConfig
from graspsim.geometry import make_transform, matrix_to_quat, quat_to_matrix
from graspsim.grasping import panda_kinematics as kin
from graspsim.sim.bodies import place_base
from graspsim.sim.gripper import Jaws, cached_urdf
from graspsim.sim.world import SimWorld

ARM_JOINTS = tuple(range(kin.ARM_DOF))  # panda_joint1..7
HAND_LINK = 8  # panda_hand
FINGER_LINKS = (9, 10)  # panda_leftfinger, panda_rightfinger (their prismatic joints have the same indices)
#: Links whose contacts are "the arm": everything but the two fingers and the hand between them.
ARM_LINKS = tuple(range(-1, 8))
GRIPPER_LINKS = (HAND_LINK, *FINGER_LINKS)
# A motion has arrived when every joint is this close to its target (rad).
_JOINT_TOLERANCE_RAD = 0.002
# At the end of a straight line the joints get at most this long (s) to arrive at its last waypoint.
_ARRIVE_MAX_S = 0.25
# pybullet's position-control gain (its default, 0.1, lets the joints trail a moving target by centimetres).
_POSITION_GAIN = 1.0
# Straight lines slow down over their last this many metres (to a fifth of the speed at the end).
_BRAKE_M = 0.03


def _line_time_s(left_end_m: float, left_start_m: float, speed_mps: float) -> float:
    """Seconds to cover the stretch of a straight line between ``left_start_m`` and ``left_end_m`` metres before
    its end, at ``speed_mps`` but braking over the last :data:`_BRAKE_M`: the speed falls linearly with the
    distance left, to a fifth of ``speed_mps`` at the end (a hand arriving at full speed overshoots and shoves
    what is between its fingers). Exact for that profile, so the spacing of the waypoints does not change it."""
    if not np.isfinite(speed_mps):
        return 0.0
    ramp_m = 0.8 * _BRAKE_M  # where speed * (left / _BRAKE_M + 0.2) reaches speed
    cruise_m = max(left_start_m, ramp_m) - max(left_end_m, ramp_m)
    a, b = min(left_end_m, ramp_m), min(left_start_m, ramp_m)
    # dt = ds / (speed * (s / B + 0.2)): integrates to B / speed * ln((b / B + 0.2) / (a / B + 0.2))
    ramp_s = _BRAKE_M / speed_mps * np.log((b / _BRAKE_M + 0.2) / (a / _BRAKE_M + 0.2))
    return float(cruise_m / speed_mps + ramp_s)


def _max_joint_error(joint_states, q: np.ndarray) -> float:
    """Largest ``|angle - q|`` (rad) over pybullet's ``getJointStates`` of the arm joints and ``q`` (7,)."""
    return max(abs(state[0] - float(target)) for state, target in zip(joint_states, q))


def panda_urdf_path() -> str:
    """pybullet_data's ``franka_panda/panda.urdf`` drawn with its collision meshes (written once to the cache).

    The visual meshes are 1-2 MB per link and made loading the arm take 60-140 ms, a
    fifth of a whole attempt (the world is rebuilt for every scene); the collision
    meshes load in ~18 ms and are what the images then show: the robot's outline is
    exactly the geometry that collides, and its masks match it.
    """
    data = pybullet_data.getDataPath() + "/franka_panda/"
    with open(data + "panda.urdf", encoding="utf-8") as f:
        text = f.read().replace("package://", data).replace("meshes/visual/", "meshes/collision/")
    return cached_urdf("robots", "franka_panda", text)


class PandaArm(Jaws):
    """The arm in one world, loaded at ``T_world_base`` with the joints at ``q`` (default: the parking pose)."""

    finger_links = FINGER_LINKS

    def __init__(self, world: SimWorld, T_world_base: np.ndarray, physics: PhysicsConfig,
                 q: np.ndarray = kin.Q_HOME):
        self.world = world
        self.physics = physics
        c = world.client
        T = np.asarray(T_world_base, dtype=np.float64)
        self.body = c.loadURDF(panda_urdf_path(), list(T[:3, 3]),
                               list(matrix_to_quat(T[:3, :3])), useFixedBase=True,
                               flags=c.URDF_USE_SELF_COLLISION | c.URDF_USE_SELF_COLLISION_EXCLUDE_ALL_PARENTS)
        self.T_world_base = T
        # Bound once: asked after every physics step of a motion (BulletClient builds a partial per lookup).
        self._contact_points = c.getContactPoints
        for link in FINGER_LINKS:  # the finger pads of the floating hand (gripper.py's URDF), so grips compare
            c.changeDynamics(self.body, link, lateralFriction=physics.finger_lateral_friction,
                             spinningFriction=0.1, frictionAnchor=True, contactStiffness=30000.0,
                             contactDamping=1000.0)
        self.reset_joints(q)
        self.hold_fingers(0.04)

    # ------------------------------------------------------------ state
    def q(self) -> np.ndarray:
        """Arm joint angles (7,) rad."""
        return np.array([s[0] for s in self.world.client.getJointStates(self.body, ARM_JOINTS)])

    def reset_joints(self, q: np.ndarray, half_opening_m: float | None = None) -> None:
        """Teleport the arm to ``q`` (7,) (and the fingers to ``half_opening_m``) and hold it there."""
        c = self.world.client
        for joint, angle in zip(ARM_JOINTS, q):
            c.resetJointState(self.body, joint, float(angle))
        if half_opening_m is not None:
            for link in FINGER_LINKS:
                c.resetJointState(self.body, link, float(half_opening_m))
        self._drive(np.asarray(q, dtype=np.float64))

    def set_base(self, T_world_base: np.ndarray) -> None:
        """Move the (fixed) base: the mobile mount drives to a new place before an attempt."""
        T = np.asarray(T_world_base, dtype=np.float64)
        place_base(self.world, self.body, T)
        self.T_world_base = T

    @property
    def T_world_hand(self) -> np.ndarray:
        """The current ``panda_hand`` pose in the world (4, 4)."""
        state = self.world.client.getLinkState(self.body, HAND_LINK, computeForwardKinematics=True)
        return make_transform(quat_to_matrix(state[5]), state[4])

    def base_hand_target(self, T_world_hand: np.ndarray) -> np.ndarray:
        """``T_world_hand`` in the base frame (what the kinematics solves for)."""
        return np.linalg.inv(self.T_world_base) @ np.asarray(T_world_hand, dtype=np.float64)

    # ---------------------------------------------------------- motion
    def _drive(self, q_target: np.ndarray) -> None:
        """Hold (or move towards) ``q_target`` (7,) by position control within the velocity and torque limits."""
        c = self.world.client
        for i, joint in enumerate(ARM_JOINTS):
            c.setJointMotorControl2(self.body, joint, c.POSITION_CONTROL, targetPosition=float(q_target[i]),
                                    force=float(kin.EFFORT_LIMIT_NM[i]),
                                    maxVelocity=float(kin.VELOCITY_LIMIT_RADPS[i]), positionGain=_POSITION_GAIN,
                                    velocityGain=1.0)

    def hold_where_it_is(self) -> np.ndarray:
        """Make the joints' present angles their targets (a blocked motion stops there instead of pressing on
        at the torque limits, as a guarded move does); returns those angles (7,)."""
        q = self.q()
        self._drive(q)
        return q

    def move_joints(self, q_goal: np.ndarray, on_step=None) -> tuple[bool, int]:
        """Joint-space motion to ``q_goal`` (7,): a straight line in joint space, as fast as the slowest joint's
        velocity limit allows (every joint arrives together). ``(arrived, steps)`` as :meth:`follow`."""
        return self.follow([np.asarray(q_goal, dtype=np.float64)], np.inf, on_step)

    def follow(self, path: list[np.ndarray], speed_mps: float, on_step=None) -> tuple[bool, int]:
        """Drive through joint ``path`` (a list of (7,), e.g. IK solutions of Cartesian waypoints) so the hand
        moves at about ``speed_mps`` (no joint above its velocity limit).

        Returns ``(arrived, steps)``: the simulation steps taken, and whether the joints reached the path's end
        (False when ``on_step()`` returned False, which stops the motion, or when they were held back).

        The joint targets move every step along the straight joint-space line between waypoints (with that
        line's velocity as feed-forward), so the hand stays within millimetres of the Cartesian line.
        """
        c = self.world.client
        dt = self.physics.time_step_s
        taken = 0
        q_from = self.q()
        # One bound method for the whole motion: BulletClient builds a new functools.partial on every attribute
        # lookup, and this call runs every physics step (as do the two below).
        set_motors, step, joint_states = c.setJointMotorControlArray, c.stepSimulation, c.getJointStates
        gains = dict(forces=list(kin.EFFORT_LIMIT_NM), positionGains=[_POSITION_GAIN] * kin.ARM_DOF,
                     velocityGains=[1.0] * kin.ARM_DOF)
        # The array call below cannot set maxVelocity, and pybullet keeps the last one per motor (a joint-space
        # move may have left a joint nearly frozen): reset them to the Panda's limits first.
        self._drive(q_from)
        hand_points = [kin.fk_hand(q_from)[:3, 3]] + [kin.fk_hand(q)[:3, 3] for q in path]
        lengths = np.linalg.norm(np.diff(hand_points, axis=0), axis=1)
        remaining = np.cumsum(lengths[::-1])[::-1] - lengths  # path length left after each segment
        for q_next, step_m, left_m in zip(path, lengths, remaining):
            q_next = np.asarray(q_next)
            joint_s = float(np.max(np.abs(q_next - q_from) / kin.VELOCITY_LIMIT_RADPS))
            steps = max(1, int(np.ceil(max(_line_time_s(left_m, left_m + step_m, speed_mps), joint_s) / dt)))
            velocity = list((q_next - q_from) / (steps * dt))
            # Every step's target at once, q_from + (q_next - q_from) * (k / steps) for k = 1..steps: the same
            # operations on the same doubles as one step at a time, so the same targets to the last bit.
            targets = (q_from + (q_next - q_from) * (np.arange(1, steps + 1) / steps)[:, None]).tolist()
            for target in targets:
                set_motors(self.body, ARM_JOINTS, c.POSITION_CONTROL, targetPositions=target,
                           targetVelocities=velocity, **gains)
                step()
                taken += 1
                if on_step is not None and on_step() is False:
                    return False, taken
            q_from = q_next
        if len(path) == 0:
            return True, taken
        self._drive(q_from)
        # Position control trails its target a little: let the joints arrive at the line's end
        # (the floating hand, carried by a stiff constraint, is there when its target is).
        for _ in range(int(_ARRIVE_MAX_S / dt)):
            if _max_joint_error(joint_states(self.body, ARM_JOINTS), q_from) < _JOINT_TOLERANCE_RAD:
                return True, taken
            step()
            taken += 1
            if on_step is not None and on_step() is False:
                return False, taken
        return bool(_max_joint_error(joint_states(self.body, ARM_JOINTS), q_from) < _JOINT_TOLERANCE_RAD), taken

    # --------------------------------------------------------- fingers
    def open_to(self, opening_m: float) -> None:
        """Pre-shape the jaws to ``opening_m`` (teleported, as the floating hand is)."""
        half = float(np.clip(opening_m / 2, 0.0, 0.04))
        for link in FINGER_LINKS:
            self.world.client.resetJointState(self.body, link, half)
        self.hold_fingers(half)

    # ------------------------------------------------------- collisions
    def contacts(self) -> list[tuple[int, int, float, float]]:
        """``(arm link, other body, contact distance in m: negative = penetration, normal force in N)`` of every
        contact of the arm after the last simulation step (one query; the other body is the arm itself for
        self-contacts)."""
        return [(contact[3], contact[2], contact[8], contact[9]) for contact in self._contact_points(bodyA=self.body)]

    def touching(self, bodies, links, tolerance_m: float = 0.001, contacts=None) -> bool:
        """Whether any of ``links`` penetrates any of ``bodies`` deeper than ``tolerance_m``."""
        bodies = set(bodies)
        return any(distance < -tolerance_m and link in links and other in bodies
                   for link, other, distance, _ in (self.contacts() if contacts is None else contacts))

    def self_colliding(self, tolerance_m: float = 0.001, contacts=None) -> bool:
        """Two non-adjacent links of the arm touch each other."""
        return any(other == self.body and distance < -tolerance_m
                   for _, other, distance, _ in (self.contacts() if contacts is None else contacts))

    def pressing_n(self, bodies, links, contacts=None) -> float:
        """Total normal force (N) with which ``links`` press on ``bodies``."""
        bodies = set(bodies)
        return sum(force for link, other, _, force in (self.contacts() if contacts is None else contacts)
                   if link in links and other in bodies)

    def park(self, T_world_base: np.ndarray, q: np.ndarray) -> None:
        """Back to the parking place and pose ``q`` (7,), jaws open (after an attempt; teleported: the motion
        there is not part of the attempt)."""
        self.set_base(T_world_base)
        self.reset_joints(q, 0.04)
        self.hold_fingers(0.04)

    def remove(self) -> None:
        self.world.client.removeBody(self.body)
