"""A floating Franka Emika hand (pybullet_data's meshes) carried by a fixed constraint.

As in VGN's simulated benchmark, the hand is not attached to an arm: a fixed
constraint holds its base and is moved with ``changeConstraint``. Hand frame
(as in the Franka URDF): +z is the approach direction (palm towards the
fingertips), +y the closing axis, fingers slide along +-y from 0 to 0.04 m.
"""

from __future__ import annotations

import os
import zlib

import numpy as np
import pybullet_data

from graspsim.assets.library import cache_dir
from graspsim.config import PhysicsConfig
from graspsim.geometry import matrix_to_quat
from graspsim.sim.world import SimWorld

_URDF_TEMPLATE = """<?xml version="1.0"?>
<robot name="graspsim_franka_hand">
  <link name="hand">
    <inertial><origin xyz="0 0 0"/><mass value="0.81"/>
      <inertia ixx="0.003" ixy="0" ixz="0" iyy="0.003" iyz="0" izz="0.003"/></inertial>
    <visual><geometry><mesh filename="{data}/franka_panda/meshes/visual/hand.obj"/></geometry></visual>
    <collision><geometry><mesh filename="{data}/franka_panda/meshes/collision/hand.obj"/></geometry></collision>
  </link>
""" + "".join(f"""  <link name="{side}_finger">
    <contact><friction_anchor/><stiffness value="30000.0"/><damping value="1000.0"/>
      <spinning_friction value="0.1"/><lateral_friction value="{{friction}}"/></contact>
    <inertial><origin xyz="0 {y} 0.02"/><mass value="0.1"/>
      <inertia ixx="0.0001" ixy="0" ixz="0" iyy="0.0001" iyz="0" izz="0.0001"/></inertial>
    <visual>{turn}<geometry><mesh filename="{{data}}/franka_panda/meshes/visual/finger.obj"/></geometry></visual>
    <collision>{turn}<geometry><mesh filename="{{data}}/franka_panda/meshes/collision/finger.obj"/></geometry></collision>
  </link>
""" for side, y, turn in (("left", "0.01", ""),  # the right finger is the left one turned half a turn about z
                          ("right", "-0.01", '<origin rpy="0 0 3.14159265359"/>\n      '))) + "".join(f"""  <joint name="{side}_finger_joint" type="prismatic">
    <parent link="hand"/><child link="{side}_finger"/><origin xyz="0 0 0.0584"/><axis xyz="0 {axis} 0"/>
    <limit effort="100" lower="0.0" upper="0.04" velocity="0.2"/>
  </joint>
""" for side, axis in (("left", "1"), ("right", "-1"))) + "</robot>\n"

FINGER_JOINTS = (0, 1)  # link indices of the left and right finger


def cached_urdf(folder: str, stem: str, text: str) -> str:
    """Write (once) URDF ``text`` into the asset cache as ``folder/stem_<crc>.urdf``; its path."""
    # A stable content hash (Python's hash() changes from process to process).
    path = cache_dir() / folder / f"{stem}_{zlib.crc32(text.encode()):08x}.urdf"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(text)
        tmp.replace(path)
    return str(path)


def hand_urdf_path(physics: PhysicsConfig) -> str:
    """Write (once) the hand URDF pointing at pybullet_data's Franka meshes."""
    text = _URDF_TEMPLATE.format(data=pybullet_data.getDataPath(), friction=physics.finger_lateral_friction)
    return cached_urdf("gripper", "franka_hand", text)


class Jaws:
    """The two fingers of the Franka hand on whatever carries them (the floating hand, the arm).

    Needs ``world``, ``physics``, ``body`` and ``finger_links`` (the fingers' prismatic joints, which have
    the same indices as the finger links).
    """

    finger_links: tuple[int, ...]

    def hold_fingers(self, half_opening_m: float) -> None:
        c = self.world.client
        for joint in self.finger_links:
            c.setJointMotorControl2(self.body, joint, c.POSITION_CONTROL, targetPosition=float(half_opening_m),
                                    force=self.physics.gripper_force_n, maxVelocity=self.physics.finger_speed_mps)

    def close(self) -> None:
        """Drive both fingers shut with the bounded force of :class:`PhysicsConfig`."""
        self.hold_fingers(0.0)

    def finger_gap_m(self) -> float:
        """Current distance between the finger pads (sum of both finger joint positions)."""
        c = self.world.client
        return float(sum(c.getJointState(self.body, j)[0] for j in self.finger_links))

    def contacts_with(self, body: int, link: int | None = None) -> list:
        c = self.world.client
        if link is None:
            return c.getContactPoints(bodyA=self.body, bodyB=body)
        return c.getContactPoints(bodyA=self.body, bodyB=body, linkIndexA=link)


class FloatingHand(Jaws):
    """The hand in one world; ``T_world_hand`` is the pose of the hand base frame."""

    finger_links = FINGER_JOINTS

    def __init__(self, world: SimWorld, T_world_hand: np.ndarray, opening_m: float, physics: PhysicsConfig):
        self.world = world
        self.physics = physics
        c = world.client
        position, quat = T_world_hand[:3, 3], matrix_to_quat(T_world_hand[:3, :3])
        self.body = c.loadURDF(hand_urdf_path(physics), list(position), list(quat), useFixedBase=False)
        half = float(np.clip(opening_m / 2, 0.0, 0.04))
        for joint in FINGER_JOINTS:
            c.resetJointState(self.body, joint, half)
            c.changeDynamics(self.body, joint, lateralFriction=physics.finger_lateral_friction)
        self.constraint = c.createConstraint(self.body, -1, -1, -1, c.JOINT_FIXED, [0, 0, 0], [0, 0, 0],
                                             list(position), childFrameOrientation=list(quat))
        self.T_world_hand = np.array(T_world_hand, dtype=np.float64)
        self.hold_fingers(half)

    def set_target(self, T_world_hand: np.ndarray) -> None:
        c = self.world.client
        self.T_world_hand = np.array(T_world_hand, dtype=np.float64)
        c.changeConstraint(self.constraint, list(T_world_hand[:3, 3]),
                           jointChildFrameOrientation=list(matrix_to_quat(T_world_hand[:3, :3])),
                           maxForce=self.physics.constraint_max_force_n)

    def move_linear(self, T_goal: np.ndarray, speed_mps: float, on_step=None) -> bool:
        """Move the base target in a straight line; ``on_step()`` returning False stops early."""
        start = self.T_world_hand.copy()
        distance = float(np.linalg.norm(T_goal[:3, 3] - start[:3, 3]))
        steps = max(1, int(np.ceil(distance / speed_mps / self.physics.time_step_s)))
        for i in range(1, steps + 1):
            T = T_goal.copy()
            T[:3, 3] = start[:3, 3] + (T_goal[:3, 3] - start[:3, 3]) * (i / steps)
            self.set_target(T)
            self.world.client.stepSimulation()
            if on_step is not None and on_step() is False:
                return False
        return True

    def remove(self) -> None:
        c = self.world.client
        c.removeConstraint(self.constraint)
        c.removeBody(self.body)
