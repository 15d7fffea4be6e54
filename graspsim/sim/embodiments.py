"""Robots for robot-segmentation data: which model, loaded how, where it stands, which links are arm or gripper.

A small registry (:data:`EMBODIMENTS`) of the robots ``graspsim render-robot-views``
puts into the scenes (:mod:`graspsim.data.robot_views`), all from pybullet_data:

* ``"panda"``: Franka Emika Panda with the Franka hand
  (``franka_panda/panda.urdf``, drawn with its collision meshes as everywhere
  in graspsim: :func:`graspsim.sim.panda.panda_urdf_path`); its joint targets
  come from the numpy inverse kinematics of
  :mod:`graspsim.grasping.panda_kinematics`;
* ``"kuka_iiwa"``: KUKA LBR iiwa 14 with a Schunk WSG-50 gripper
  (``kuka_iiwa/kuka_with_gripper2.sdf``, its visual meshes);
* ``"xarm6"``: UFACTORY xArm 6 with the xArm gripper
  (``xarm/xarm6_with_gripper.urdf``, its visual meshes).

The last two are solved by pybullet's ``calculateInverseKinematics`` with their
joint limits. Which embodiments a model may train on is data too:
:data:`EMBODIMENT_SPLITS` (``panda`` and ``kuka_iiwa`` seen, ``xarm6`` held out
as the unseen embodiment), also in each :attr:`Embodiment.split`.

Every link of every model is either ``arm`` (label 1 of a robot mask) or
``gripper`` (label 2) by its name (:attr:`Embodiment.arm_links`,
:attr:`Embodiment.gripper_links`: the base/pedestal link and every link up to
the flange are the arm; the hand or gripper body, its fingers, knuckles and
tool frames are the gripper). Links without geometry (the xArm's ``world``, the
Panda's ``panda_link8`` and ``panda_grasptarget``) are listed too, so the part
map covers every link.

Frames: ``T_world_base`` is the model's base link frame (``panda_link0``,
``lbr_iiwa_link_0``, the xArm's ``world`` link = ``link_base``); each robot's
tool frame (:attr:`Embodiment.T_link_tcp`) sits between the fingertips, +z the
approach direction (out of the gripper), +y the jaws' closing axis, as the
grasp frame of :class:`graspsim.types.GripperCommand`. World z up, metres,
radians.

Where each robot stands per scene kind is an
:class:`~graspsim.scenes.kinds.ArmMount` (the Panda's is the scene kind's own
``arm_mount``; the KUKA's and the xArm's stand in the same places, moved for
their size); ``q_park`` of a mount holds that robot's arm joints (7 or 6) and
seeds its inverse kinematics. :func:`sample_configuration` draws one pose of a
robot with its tool in the scene's work area (reaching into the shelf, over the
table), rejecting configurations out of reach, touching themselves, or
penetrating the furniture or a product.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pybullet_data

from graspsim.geometry import invert_transform, make_transform, matrix_to_quat, quat_to_matrix
from graspsim.scenes.kinds import SCENE_KINDS, ArmMount, SceneKind, scene_kind
from graspsim.scenes.layout import ShelfLayout

if TYPE_CHECKING:  # the registry and its names load without pybullet (the command line checks names first)
    from graspsim.sim.world import SimWorld

#: Robot-mask labels (the ``robot_seg`` convention of :class:`graspsim.types.Frames`).
ARM, GRIPPER = 1, 2


@dataclass(frozen=True)
class Embodiment:
    """One robot model and how robot-view data uses it.

    * ``name``: the registry key (stored in manifests and meta.json);
      ``title``: the robot in words; ``split``: ``"seen"`` (may be trained on)
      or ``"unseen"`` (held out, evaluation only).
    * ``model``: the file, relative to pybullet_data (``.urdf`` or ``.sdf``).
    * ``arm_joints``: names of the revolute joints the sampler sets, in chain
      order; ``q_lower`` / ``q_upper``: their limits (rad), transcribed from the
      model file (a test compares them with what pybullet reads).
    * ``arm_links`` / ``gripper_links``: link names labelled 1 / 2 in masks
      (together: every link of the model, the base link included).
    * ``tcp_link``, ``tcp_offset_m``, ``tcp_yaw_rad``: the tool frame
      (:attr:`T_link_tcp`) is ``tcp_link``'s frame turned ``tcp_yaw_rad``
      about its +z axis, which points out of the gripper, and moved
      ``tcp_offset_m`` along it, to the point between the fingertips: +z the
      approach, +y the jaws' closing axis (as in
      :class:`graspsim.types.GripperCommand`).
    * ``finger_joints``: ``(joint name, open value, closed value)`` for every
      joint of the gripper (rad or m); a closure ``c`` in [0, 1] sets each to
      ``open + c * (closed - open)`` (the mimic joints of the xArm gripper too:
      pybullet does not enforce URDF ``mimic``); other movable joints (the
      KUKA's ``gripper_to_arm``, turning the gripper like ``J6``) stay at 0.
    * ``mounts``: scene-kind name -> :class:`~graspsim.scenes.kinds.ArmMount`
      (``q_park`` with ``len(arm_joints)`` angles).
    """

    name: str
    title: str
    split: str
    model: str
    arm_joints: tuple[str, ...]
    q_lower: tuple[float, ...]
    q_upper: tuple[float, ...]
    arm_links: tuple[str, ...]
    gripper_links: tuple[str, ...]
    tcp_link: str
    tcp_offset_m: float
    tcp_yaw_rad: float
    finger_joints: tuple[tuple[str, float, float], ...]
    mounts: dict[str, ArmMount] = field(hash=False)

    @property
    def dof(self) -> int:
        return len(self.arm_joints)

    def mount(self, kind: str) -> ArmMount:
        """Where this robot stands in scenes of ``kind`` (ValueError naming the kinds it has a mount for)."""
        try:
            return self.mounts[kind]
        except KeyError:
            raise ValueError(f"embodiment {self.name!r} has no mount for scene kind {kind!r}; "
                             f"it has {', '.join(self.mounts)}") from None

    @property
    def T_link_tcp(self) -> np.ndarray:
        """(4, 4) the tool frame in the ``tcp_link`` frame."""
        c, s = math.cos(self.tcp_yaw_rad), math.sin(self.tcp_yaw_rad)
        return make_transform(np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]), (0.0, 0.0, self.tcp_offset_m))

    @property
    def key(self) -> int:
        """A stable number of this embodiment for seeding (CRC-32 of its name: the same in every process)."""
        return zlib.crc32(self.name.encode())

    def to_json(self) -> dict[str, Any]:
        """What a dataset manifest records of this embodiment."""
        return {"title": self.title, "split": self.split, "model": self.model, "arm_joints": list(self.arm_joints),
                "arm_links": list(self.arm_links), "gripper_links": list(self.gripper_links)}


def _panda() -> Embodiment:
    from graspsim.grasping import panda_kinematics as kin

    return Embodiment(
        name="panda", title="Franka Emika Panda + Franka hand", split="seen", model="franka_panda/panda.urdf",
        arm_joints=kin.JOINT_NAMES, q_lower=tuple(map(float, kin.Q_LOWER)), q_upper=tuple(map(float, kin.Q_UPPER)),
        arm_links=("panda_link0",) + tuple(f"panda_link{i}" for i in range(1, 9)),
        gripper_links=("panda_hand", "panda_leftfinger", "panda_rightfinger", "panda_grasptarget"),
        tcp_link="panda_hand", tcp_offset_m=float(kin.HAND_T_GRASPTARGET[2, 3]),
        tcp_yaw_rad=0.0,  # panda_hand: +y is the closing axis
        finger_joints=(("panda_finger_joint1", 0.04, 0.0), ("panda_finger_joint2", 0.04, 0.0)),
        mounts={name: kind.arm_mount for name, kind in SCENE_KINDS.items()})


_SHELF_YAW = math.radians(60.0)  # turned towards the shelf, as the Panda's mobile base

#: The registry. Placement: the KUKA (shoulder 0.36 m above its base, 0.8 m reach to the flange) stands a
#: little further back and lower than the Panda, the smaller xArm (0.27 m, 0.7 m) a little closer.
EMBODIMENTS: dict[str, Embodiment] = {e.name: e for e in (
    _panda(),
    Embodiment(
        name="kuka_iiwa", title="KUKA LBR iiwa 14 + Schunk WSG-50", split="seen",
        model="kuka_iiwa/kuka_with_gripper2.sdf",
        arm_joints=tuple(f"J{i}" for i in range(7)),
        q_lower=(-2.96706, -2.0944, -2.96706, -2.0944, -2.96706, -2.0944, -3.05433),
        q_upper=(2.96706, 2.0944, 2.96706, 2.0944, 2.96706, 2.0944, 3.05433),
        arm_links=tuple(f"lbr_iiwa_link_{i}" for i in range(8)),
        gripper_links=("base_link", "left_finger", "left_finger_base", "left_finger_tip", "right_finger",
                       "right_finger_base", "right_finger_tip"),
        tcp_link="base_link", tcp_offset_m=0.19, tcp_yaw_rad=math.pi / 2,  # the WSG-50's jaws close along x
        # pybullet_data's kuka.py opens the jaws with the two base joints at -+0.3 rad and closes them towards 0.
        finger_joints=(("base_left_finger_joint", -0.3, 0.0), ("base_right_finger_joint", 0.3, 0.0),
                       ("left_base_tip_joint", 0.0, 0.0), ("right_base_tip_joint", 0.0, 0.0)),
        mounts={
            "shelf": ArmMount(base_xyz_m=(-0.45, -0.62, 0.30), yaw_rad=_SHELF_YAW, slide_x_m=(-0.85, 0.05),
                              park_x_m=-0.75, q_park=(0.3, 0.6, 0.0, -1.4, 0.0, 0.9, 0.0)),
            "tabletop": ArmMount(base_xyz_m=(0.0, -0.56, 0.52), yaw_rad=math.pi / 2, slide_x_m=None, park_x_m=0.0,
                                 q_park=(0.0, 0.7, 0.0, -1.2, 0.0, 1.0, 0.0)),
        }),
    Embodiment(
        name="xarm6", title="UFACTORY xArm 6 + xArm gripper", split="unseen", model="xarm/xarm6_with_gripper.urdf",
        arm_joints=tuple(f"joint{i}" for i in range(1, 7)),
        q_lower=(-6.28318530718, -2.059, -3.927, -6.28318530718, -1.69297, -6.28318530718),
        q_upper=(6.28318530718, 2.0944, 0.19198, 6.28318530718, 3.14159265359, 6.28318530718),
        arm_links=("world", "link_base") + tuple(f"link{i}" for i in range(1, 7)),
        gripper_links=("xarm_gripper_base_link", "left_outer_knuckle", "left_finger", "left_inner_knuckle",
                       "right_outer_knuckle", "right_finger", "right_inner_knuckle"),
        tcp_link="xarm_gripper_base_link", tcp_offset_m=0.15, tcp_yaw_rad=0.0,  # its jaws close along y
        finger_joints=tuple((j, 0.0, 0.85) for j in ("drive_joint", "left_finger_joint", "left_inner_knuckle_joint",
                                                      "right_outer_knuckle_joint", "right_finger_joint",
                                                      "right_inner_knuckle_joint")),
        mounts={
            "shelf": ArmMount(base_xyz_m=(-0.28, -0.40, 0.45), yaw_rad=_SHELF_YAW, slide_x_m=(-0.65, 0.10),
                              park_x_m=-0.55, q_park=(0.0, -0.3, -1.2, 0.0, 1.4, 0.0)),
            "tabletop": ArmMount(base_xyz_m=(0.0, -0.48, 0.70), yaw_rad=math.pi / 2, slide_x_m=None, park_x_m=0.0,
                                 q_park=(0.0, -0.2, -1.0, 0.0, 1.2, 0.0)),
        }),
)}

#: Which embodiments a model trains on ("seen") and which one is held out ("unseen"); ``all`` is both.
EMBODIMENT_SPLITS: dict[str, tuple[str, ...]] = {
    split: tuple(n for n, e in EMBODIMENTS.items() if e.split == split) for split in ("seen", "unseen")}


def get_embodiment(name: str) -> Embodiment:
    """The :class:`Embodiment` called ``name``; ValueError listing the valid names otherwise."""
    try:
        return EMBODIMENTS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown embodiment {name!r}; choose from {', '.join(EMBODIMENTS)}") from None


def parse_embodiments(text: str) -> tuple[str, ...]:
    """Comma-separated embodiment names or split words (``seen``, ``unseen``, ``all``) -> names, registry order.

    ValueError (one line, listing the valid names) for an unknown or empty entry.
    """
    names: set[str] = set()
    for word in (w.strip() for w in str(text).split(",")):
        if word == "all":
            names.update(EMBODIMENTS)
        elif word in EMBODIMENT_SPLITS:
            names.update(EMBODIMENT_SPLITS[word])
        elif word in EMBODIMENTS:
            names.add(word)
        else:
            raise ValueError(f"unknown embodiment {word!r}; choose from {', '.join(EMBODIMENTS)} "
                             f"(or {', '.join(EMBODIMENT_SPLITS)}, all), comma-separated")
    return tuple(n for n in EMBODIMENTS if n in names)


def model_path(embodiment: Embodiment) -> str:
    """The file pybullet loads for ``embodiment`` (the Panda's collision-mesh URDF from the cache)."""
    if embodiment.name == "panda":
        from graspsim.sim.panda import panda_urdf_path

        return panda_urdf_path()
    return f"{pybullet_data.getDataPath()}/{embodiment.model}"


# ------------------------------------------------------------------------------------------ a robot in a world


#: Where a robot waits while another is posed: a kilometre down, beyond every camera's far plane.
T_WORLD_AWAY = make_transform(t=(0.0, 0.0, -1000.0))


class RobotBody:
    """One :class:`Embodiment` loaded into a world (a fixed base, no motors: poses are set, not driven).

    ``link_index``: link name -> pybullet link index (-1 the base link); ``part``:
    link index -> :data:`ARM` or :data:`GRIPPER`; ``gripper_link_indices``: what
    :func:`graspsim.sim.camera.render` labels 2 (its ``robot`` argument is
    :attr:`parts`).

    There is deliberately no ``remove``: pybullet caches its inverse-kinematics
    helper and kinematic tree per body by the body's memory address and
    ``removeBody`` does not drop them (only ``resetSimulation`` does), so a robot
    loaded after another was removed could inherit the other's tree whenever the
    allocator reuses the address, and solve with the wrong kinematics (seen:
    the xArm failing every target, or not, with the size of the environment
    variables). Load every robot a world needs side by side, send the idle ones
    :meth:`away`, and let :meth:`SimWorld.reset <graspsim.sim.world.SimWorld.reset>`
    clear them.
    """

    def __init__(self, world: SimWorld, embodiment: Embodiment, T_world_base: np.ndarray | None = None):
        self.world, self.embodiment = world, embodiment
        c = world.client
        path = model_path(embodiment)
        if path.endswith(".sdf"):
            self.body = c.loadSDF(path)[0]
        else:
            self.body = c.loadURDF(path, useFixedBase=True)
        self.link_index = {c.getBodyInfo(self.body)[0].decode(): -1}
        joint_index, self._parent = {}, {}
        for j in range(c.getNumJoints(self.body)):
            info = c.getJointInfo(self.body, j)
            self.link_index[info[12].decode()] = j  # a link's index is its parent joint's
            joint_index[info[1].decode()] = j
            self._parent[j] = info[16]
        missing = set(self.link_index) ^ (set(embodiment.arm_links) | set(embodiment.gripper_links))
        if missing:  # the registry must name every link (a changed pybullet_data would show here)
            raise ValueError(f"{embodiment.name}: links not covered by the part map (or not in the model): "
                             f"{sorted(missing)}")
        self.part = {self.link_index[n]: ARM for n in embodiment.arm_links}
        self.part.update({self.link_index[n]: GRIPPER for n in embodiment.gripper_links})
        self.gripper_link_indices = tuple(sorted(self.link_index[n] for n in embodiment.gripper_links))
        self.arm_joint_indices = tuple(joint_index[n] for n in embodiment.arm_joints)
        self.finger_joint_indices = tuple(joint_index[n] for n, _, _ in embodiment.finger_joints)
        self.tcp_index = self.link_index[embodiment.tcp_link]
        self.movable = tuple(j for j in range(c.getNumJoints(self.body))
                             if c.getJointInfo(self.body, j)[2] != c.JOINT_FIXED)
        self._collision_pairs = self._self_collision_pairs()
        self.T_world_base = np.eye(4)
        self.set_base(np.eye(4) if T_world_base is None else T_world_base)
        for j in self.movable:
            c.resetJointState(self.body, j, 0.0)

    @property
    def parts(self) -> tuple[int, tuple[int, ...]]:
        """``(body id, gripper link indices)``: :func:`graspsim.sim.camera.render`'s ``robot`` argument."""
        return self.body, self.gripper_link_indices

    def set_base(self, T_world_base: np.ndarray) -> None:
        """Teleport the base link frame to ``T_world_base`` (4, 4)."""
        from graspsim.sim.bodies import place_base

        self.T_world_base = np.asarray(T_world_base, dtype=np.float64)
        place_base(self.world, self.body, self.T_world_base)

    def set_joints(self, q: np.ndarray, closure: float | None = None) -> None:
        """Arm joints to ``q`` (dof,) rad; the gripper to ``closure`` (0 open .. 1 closed) when given."""
        c = self.world.client
        for j, angle in zip(self.arm_joint_indices, np.asarray(q, dtype=np.float64)):
            c.resetJointState(self.body, j, float(angle))
        if closure is not None:
            for j, (_, opened, closed) in zip(self.finger_joint_indices, self.embodiment.finger_joints):
                c.resetJointState(self.body, j, float(opened + closure * (closed - opened)))

    def q(self) -> np.ndarray:
        """Arm joint angles (dof,) rad."""
        return np.array([s[0] for s in self.world.client.getJointStates(self.body, self.arm_joint_indices)])

    def finger_joints(self) -> dict[str, float]:
        """Gripper joint name -> position (rad or m)."""
        states = self.world.client.getJointStates(self.body, self.finger_joint_indices)
        return {n: float(s[0]) for (n, _, _), s in zip(self.embodiment.finger_joints, states)}

    def link_pose(self, link: int) -> np.ndarray:
        """(4, 4) world pose of link ``link``'s frame (the URDF/SDF link frame, not its centre of mass)."""
        c = self.world.client
        if link == -1:
            return self.T_world_base.copy()
        state = c.getLinkState(self.body, link, computeForwardKinematics=True)
        return make_transform(quat_to_matrix(state[5]), state[4])

    def T_world_tcp(self) -> np.ndarray:
        """(4, 4) tool frame in the world (:attr:`Embodiment.T_link_tcp`: +z approach, +y closing axis)."""
        return self.link_pose(self.tcp_index) @ self.embodiment.T_link_tcp

    def link_origins(self) -> dict[str, np.ndarray]:
        """Link name -> (3,) world position of the link frame's origin."""
        return {name: self.link_pose(i)[:3, 3] for name, i in self.link_index.items()}

    # ---------------------------------------------------------------------------------------------- collisions
    def _self_collision_pairs(self) -> list[tuple[int, int]]:
        """Link pairs checked for self-collision: both with geometry, neither the other's parent or grandparent
        (neighbours touch at their joints by design), not both in the gripper (knuckles and fingers of a
        linkage overlap by construction)."""
        c = self.world.client
        solid = [i for i in sorted(self.part) if c.getCollisionShapeData(self.body, i)]

        def near(a: int, b: int) -> bool:
            for x, y in ((a, b), (b, a)):
                up = self._parent.get(x, -2)
                if up == y or self._parent.get(up, -2) == y:
                    return True
            return False

        return [(a, b) for k, a in enumerate(solid) for b in solid[k + 1:]
                if not near(a, b) and not (self.part[a] == GRIPPER and self.part[b] == GRIPPER)]

    def self_colliding(self, tolerance_m: float = 0.002) -> bool:
        """Two non-neighbouring links interpenetrate deeper than ``tolerance_m``."""
        c = self.world.client
        for a, b in self._collision_pairs:
            for point in c.getClosestPoints(self.body, self.body, 0.0, linkIndexA=a, linkIndexB=b):
                if point[8] < -tolerance_m:
                    return True
        return False

    def penetration_m(self, bodies) -> float:
        """Deepest penetration (m, >= 0) of this robot into any of ``bodies``."""
        c = self.world.client
        deepest = 0.0
        for other in bodies:
            for point in c.getClosestPoints(self.body, other, 0.0):
                deepest = max(deepest, -float(point[8]))
        return deepest

    def away(self) -> None:
        """Out of every view and out of reach (:data:`T_WORLD_AWAY`) while another robot is posed."""
        self.set_base(T_WORLD_AWAY)


# ------------------------------------------------------------------------------------------ sampling poses


@dataclass(frozen=True)
class SamplerConfig:
    """How :func:`sample_configuration` draws robot poses (metres, radians).

    ``max_attempts``: targets tried before a view is given up; ``position_tol_m``
    / ``rotation_tol_deg``: how close the tool must come to a sampled target
    (tight enough that the gripper is where the target was drawn, loose enough
    for the 6-joint xArm, which cannot reach every orientation);
    ``self_tolerance_m`` / ``scene_tolerance_m``: the deepest interpenetration
    accepted between the robot's links, and between the robot and the furniture
    or a product (the images are teleported poses, never simulated, so a robot
    inside a product would show an impossible picture); ``product_prob``: the
    share of targets at a product (a grasp of it, the jaws around it: the robot
    reaches in among the products) rather than in free space;
    ``reach_prob``: the share of targets reaching in among the products without
    grasping one: deep in a shelf bay over the products and under the next
    board, or down at the table top beside a product (:func:`work_target`);
    there boards and products stand between most cameras and the gripper and
    wrist, which targets at a product's front face or in free space in front
    of the shelf never had (measured: 0 of 46 views partly hidden). The rest
    (``1 - product_prob - reach_prob``) are in free space.
    ``closure``: range of the gripper's closure (0 open, 1 closed) for free-space
    and reach targets; at a product the jaws are open to at most ``product_closure``.
    """

    max_attempts: int = 30
    position_tol_m: float = 0.01
    rotation_tol_deg: float = 10.0
    self_tolerance_m: float = 0.002
    scene_tolerance_m: float = 0.003
    product_prob: float = 0.35
    reach_prob: float = 0.45
    closure: tuple[float, float] = (0.0, 0.8)
    product_closure: float = 0.25

    def __post_init__(self) -> None:
        if not (0.0 <= self.product_prob and 0.0 <= self.reach_prob and self.product_prob + self.reach_prob <= 1.0):
            raise ValueError(f"product_prob and reach_prob must be >= 0 with a sum <= 1, got {self.product_prob} "
                             f"and {self.reach_prob}")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "SamplerConfig":
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items()})


#: A product as the sampler sees it: the (3,) low and high corners of its world-axis-aligned bounding box (m).
ProductBox = tuple[np.ndarray, np.ndarray]


#: What a work target is: at a product (a grasp of it), reaching in among the products, or in free space.
TARGET_KINDS = ("product", "reach", "free")


def work_target(kind: SceneKind, rng: np.random.Generator, products: list[ProductBox] = (),
                product_prob: float = 0.5, reach_prob: float = 0.0) -> tuple[np.ndarray, str]:
    """A tool pose (4, 4), world frame (+z approach, +y closing axis), in ``kind``'s work area, and what it is
    (one of :data:`TARGET_KINDS`).

    One uniform draw (only when there are ``products``) picks the target:
    below ``product_prob`` a grasp of a product drawn uniformly from
    ``products``: shelf: the tool point at the product's middle height and
    across, from its front face to 4 cm behind it, pointing into the shelf
    (+y) turned up to 15 degrees sideways and tilted up to 15 degrees, jaws
    closing horizontally (+-15 degrees); table: the tool point 1 to 4 cm below
    the product's top, pointing down tilted up to 20 degrees, any roll.
    The next ``reach_prob`` reach in among the products: shelf: on one of the
    levels (uniform), 28 cm either side of the middle, 6 to 22 cm deep into
    the bay (the back panel is at 30 cm), 3 to 7 cm above the highest product
    within 7 cm of that x on the level (the board if none), at most up to 3 cm
    under the next board: over the products and under the board, pointing into the shelf turned up to 20 degrees
    sideways and 10 degrees down to 5 up, jaws closing horizontally (+-15
    degrees: the flat side of the hand up); table: beside a product drawn
    uniformly, 3 to 7 cm out from its box in a uniform direction, the tool point
    2 to 8 cm above the top, pointing down tilted up to 20 degrees, any roll.
    Otherwise a point in free space: shelf: on one of the
    levels (uniform), 5 cm above its board to 5 cm under the next, within 30
    cm of the middle, from 15 cm in front of the boards' front edge to 22 cm
    inside, pointing into the shelf turned up to 35 degrees sideways and tilted
    25 degrees down to 10 up; table: 30 x 22 cm around the middle, 4 to 35 cm
    above the top, pointing down tilted up to 35 degrees. Rolls about the
    approach axis are uniform in [-pi, pi) unless said otherwise. With
    ``reach_prob`` 0 the draws are those of a product-or-free-space sampler.
    """
    furniture = kind.furniture
    shelf = isinstance(furniture, ShelfLayout)
    u = rng.random() if len(products) > 0 else 1.0
    target = "product" if u < product_prob else "reach" if u < product_prob + reach_prob else "free"
    if target == "product":
        lo, hi = products[int(rng.integers(len(products)))]
        if shelf:
            point = np.array([(lo[0] + hi[0]) / 2, lo[1] + rng.uniform(0.01, 0.06), (lo[2] + hi[2]) / 2])
            approach = _tilted((0.0, 1.0, 0.0), rng, np.radians(15), np.radians(15))
            roll = math.pi / 2 * rng.choice([-1.0, 1.0]) + rng.uniform(-np.radians(15), np.radians(15))
        else:
            point = np.array([(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, hi[2] - rng.uniform(0.01, 0.04)])
            approach = _tilted((0.0, 0.0, -1.0), rng, np.radians(20))
            roll = rng.uniform(-math.pi, math.pi)
    elif target == "reach" and shelf:
        level = int(rng.integers(len(furniture.board_tops_m)))
        top = furniture.board_tops_m[level]
        x = rng.uniform(-0.28, 0.28)
        # The products standing on this level (their boxes start at its board) within 7 cm of x: reach over them.
        under = [hi[2] for lo, hi in products if abs(lo[2] - top) < 0.02 and lo[0] < x + 0.07 and hi[0] > x - 0.07]
        # Kept 3 cm under the next board: over a product that leaves no room, the hand touches the board (and
        # the pose is refused like any other touching one).
        z = min(max([top, *under]) + rng.uniform(0.03, 0.07), top + furniture.clearance_m(level) - 0.03)
        point = np.array([x, rng.uniform(0.06, 0.22), z])
        approach = _tilted((0.0, 1.0, 0.0), rng, np.radians(20), (-np.radians(10), np.radians(5)))
        roll = math.pi / 2 * rng.choice([-1.0, 1.0]) + rng.uniform(-np.radians(15), np.radians(15))
    elif target == "reach":
        lo, hi = products[int(rng.integers(len(products)))]
        heading = rng.uniform(-math.pi, math.pi)
        direction = np.array([math.cos(heading), math.sin(heading)])
        # From the box's centre to its edge along the heading, then 3 to 7 cm further out.
        half = (hi[:2] - lo[:2]) / 2
        edge = float(np.min(half / np.maximum(np.abs(direction), 1e-9)))
        xy = (lo[:2] + hi[:2]) / 2 + direction * (edge + rng.uniform(0.03, 0.07))
        point = np.array([xy[0], xy[1], furniture.top_z_m + rng.uniform(0.02, 0.08)])
        approach = _tilted((0.0, 0.0, -1.0), rng, np.radians(20))
        roll = rng.uniform(-math.pi, math.pi)
    elif shelf:
        level = int(rng.integers(len(furniture.board_tops_m)))
        top = furniture.board_tops_m[level]
        point = np.array([rng.uniform(-0.30, 0.30), rng.uniform(-0.15, 0.22),
                          top + rng.uniform(0.05, furniture.clearance_m(level) - 0.05)])
        approach = _tilted((0.0, 1.0, 0.0), rng, np.radians(35), (-np.radians(25), np.radians(10)))
        roll = rng.uniform(-math.pi, math.pi)
    else:
        point = np.array([rng.uniform(-0.30, 0.30), rng.uniform(-0.22, 0.22),
                          furniture.top_z_m + rng.uniform(0.04, 0.35)])
        approach = _tilted((0.0, 0.0, -1.0), rng, np.radians(35))
        roll = rng.uniform(-math.pi, math.pi)
    return make_transform(tool_rotation(approach, roll), point), target


def _tilted(direction, rng: np.random.Generator, yaw_or_tilt: float, pitch=None) -> np.ndarray:
    """A unit direction near ``direction`` (3,): horizontal ones turned by a uniform yaw in +-``yaw_or_tilt``
    and pitched by a uniform angle in ``pitch`` (a (lo, hi) pair, or +-pitch); vertical ones tilted by a
    uniform angle up to ``yaw_or_tilt`` towards a uniform azimuth."""
    d = np.asarray(direction, dtype=np.float64)
    if abs(d[2]) > 0.5:  # vertical: tilt towards a random azimuth
        tilt, azimuth = rng.uniform(0.0, yaw_or_tilt), rng.uniform(-math.pi, math.pi)
        return np.array([math.sin(tilt) * math.cos(azimuth), math.sin(tilt) * math.sin(azimuth),
                         math.copysign(math.cos(tilt), d[2])])
    lo, hi = pitch if isinstance(pitch, tuple) else (-pitch, pitch)
    yaw, up = rng.uniform(-yaw_or_tilt, yaw_or_tilt), rng.uniform(lo, hi)
    heading = math.atan2(d[0], d[1]) + yaw  # from +y towards +x
    return np.array([math.sin(heading) * math.cos(up), math.cos(heading) * math.cos(up), math.sin(up)])


def tool_rotation(approach: np.ndarray, roll_rad: float) -> np.ndarray:
    """(3, 3) tool orientation whose +z is the unit ``approach`` (world frame), turned ``roll_rad`` about it;
    at roll 0 its +x is horizontal (its +y then lies in the vertical plane through the approach)."""
    z = np.asarray(approach, dtype=np.float64) / np.linalg.norm(approach)
    ref = np.array([0.0, 0.0, 1.0]) if abs(z[2]) < 0.9 else np.array([1.0, 0.0, 0.0])
    x = np.cross(ref, z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    c, s = math.cos(roll_rad), math.sin(roll_rad)
    return np.stack([c * x + s * y, -s * x + c * y, z], axis=1)


class NoPoseFound(RuntimeError):
    """Every target of :func:`sample_configuration` failed; ``rejected``: reason -> count."""

    def __init__(self, rejected: dict[str, int]):
        self.rejected = {k: v for k, v in rejected.items() if v}
        reasons = ", ".join(f"{k} {v}" for k, v in self.rejected.items())
        super().__init__(f"no pose: {sum(self.rejected.values())} targets failed ({reasons})")


@dataclass(frozen=True)
class RobotConfiguration:
    """One sampled pose of a robot: what a view's meta.json records.

    ``T_world_base`` (4, 4); ``q`` (dof,) arm joint angles (rad, within the
    limits); ``closure`` (0 open .. 1 closed); ``T_world_target`` (4, 4): the
    tool pose drawn; ``T_world_tcp`` (4, 4): the tool pose reached; ``target``:
    what the target was (:data:`TARGET_KINDS`);
    ``attempts``: targets drawn for this pose (the last one succeeded);
    ``rejected``: reason -> count over the failed attempts.
    """

    T_world_base: np.ndarray
    q: np.ndarray
    closure: float
    T_world_target: np.ndarray
    T_world_tcp: np.ndarray
    target: str
    attempts: int
    rejected: dict[str, int]

    @property
    def at_product(self) -> bool:
        """Whether the target was a grasp of a product."""
        return self.target == "product"


def _solve(robot: RobotBody, T_world_tcp: np.ndarray, q_seed: np.ndarray) -> np.ndarray:
    """Arm joints (dof,) within the limits that put the tool at ``T_world_tcp`` as well as the solver can
    (the caller checks how well by forward kinematics)."""
    e = robot.embodiment
    lo, hi = np.asarray(e.q_lower), np.asarray(e.q_upper)
    T_world_link = T_world_tcp @ invert_transform(e.T_link_tcp)
    if e.name == "panda":
        from graspsim.grasping import panda_kinematics as kin

        result = kin.solve_ik(invert_transform(robot.T_world_base) @ T_world_link, q_seed=q_seed,
                              position_tol_m=0.005, rotation_tol_deg=5.0)
        return np.clip(result.q, lo, hi)
    # pybullet's solver starts from the current joints and moves every movable joint: the arm's within their
    # limits, pulled towards the seed in the null space; what it does with the others (the gripper's, the
    # KUKA's flange joint) is dropped, as they keep their values (they stand still at their current angle
    # when their range is given as zero, which the null-space solver cannot take).
    c = robot.world.client
    robot.set_joints(q_seed)
    arm = {j: k for k, j in enumerate(robot.arm_joint_indices)}
    lower = [float(lo[arm[j]]) if j in arm else -math.pi for j in robot.movable]
    upper = [float(hi[arm[j]]) if j in arm else math.pi for j in robot.movable]
    rest = [float(q_seed[arm[j]]) if j in arm else c.getJointState(robot.body, j)[0] for j in robot.movable]
    ranges = [u - l for l, u in zip(lower, upper)]
    position, quat = list(T_world_link[:3, 3]), list(matrix_to_quat(T_world_link[:3, :3]))
    q = np.asarray(q_seed, dtype=np.float64)
    for k in range(8):  # the solver's answer improves when it starts again from its own last answer
        null_space = dict(lowerLimits=lower, upperLimits=upper, jointRanges=ranges, restPoses=rest) if k < 2 else {}
        solution = c.calculateInverseKinematics(robot.body, robot.tcp_index, position, quat, maxNumIterations=100,
                                                residualThreshold=1e-5, **null_space)
        q = np.clip([solution[robot.movable.index(j)] for j in robot.arm_joint_indices], lo, hi)
        robot.set_joints(q)
    return q


def reach(robot: RobotBody, T_world_tcp: np.ndarray, q_seed: np.ndarray, config: SamplerConfig = SamplerConfig(),
          closure: float | None = None) -> np.ndarray | None:
    """Arm joints (dof,) that put ``robot``'s tool at ``T_world_tcp`` (4, 4) within ``config``'s position and
    rotation tolerances, solved from ``q_seed`` (the robot is left posed there, the gripper at ``closure`` when
    given), or None when the solver's answer misses (forward kinematics decides). Collisions are not checked."""
    q = _solve(robot, T_world_tcp, q_seed)
    robot.set_joints(q, closure)
    T_tcp = robot.T_world_tcp()
    position_error = float(np.linalg.norm(T_tcp[:3, 3] - T_world_tcp[:3, 3]))
    cos_angle = np.clip((np.trace(T_tcp[:3, :3].T @ T_world_tcp[:3, :3]) - 1.0) / 2.0, -1.0, 1.0)
    if position_error > config.position_tol_m or math.degrees(math.acos(cos_angle)) > config.rotation_tol_deg:
        return None
    return q


def collision_free(robot: RobotBody, obstacles, config: SamplerConfig = SamplerConfig()) -> bool:
    """Whether ``robot`` as posed keeps within ``config``'s tolerances: no two non-neighbouring links
    interpenetrating deeper than ``self_tolerance_m``, no penetration of ``obstacles`` deeper than
    ``scene_tolerance_m`` (the checks :func:`sample_configuration` keeps a pose by)."""
    return not robot.self_colliding(config.self_tolerance_m) and \
        robot.penetration_m(obstacles) <= config.scene_tolerance_m


def sample_configuration(robot: RobotBody, kind: str | SceneKind, rng: np.random.Generator, obstacles=(),
                         products: list[ProductBox] = (),
                         config: SamplerConfig = SamplerConfig()) -> RobotConfiguration:
    """Draw a pose of ``robot`` with its tool at a :func:`work_target` of ``kind``; :class:`NoPoseFound` when
    ``config.max_attempts`` targets all failed. The robot is left in the returned pose.

    Each attempt draws a target (:func:`work_target`; ``products``: the boxes
    of the products it may reach for), drives the mount to it (a mobile base slides
    to the target's bay: :meth:`~graspsim.scenes.kinds.ArmMount.T_world_base_for`),
    solves the inverse kinematics from the mount's ``q_park`` with +-0.3 rad of
    noise per joint (different elbows and wrists from view to view), and keeps
    the pose when forward kinematics puts the tool within the tolerances, no two
    non-neighbouring links interpenetrate, and the robot does not penetrate any
    body of ``obstacles`` (furniture, floor, products). Every draw comes from
    ``rng``: the same generator state gives the same pose.
    """
    kind = scene_kind(kind) if isinstance(kind, str) else kind
    e = robot.embodiment
    mount = e.mount(kind.name)
    lo, hi = np.asarray(e.q_lower), np.asarray(e.q_upper)
    rejected = {"ik": 0, "self_collision": 0, "scene_collision": 0}
    for attempt in range(1, config.max_attempts + 1):
        T_target, target = work_target(kind, rng, products, config.product_prob, config.reach_prob)
        q_seed = np.clip(np.asarray(mount.q_park) + rng.uniform(-0.3, 0.3, e.dof), lo, hi)
        closure = float(rng.uniform(0.0, config.product_closure) if target == "product"
                        else rng.uniform(*config.closure))
        robot.set_base(mount.T_world_base_for(T_target[:3, 3]))
        robot.set_joints(q_seed, closure)  # pybullet's solver starts from the current state: make it this draw's
        q = reach(robot, T_target, q_seed, config, closure)
        if q is None:
            rejected["ik"] += 1
        elif robot.self_colliding(config.self_tolerance_m):
            rejected["self_collision"] += 1
        elif robot.penetration_m(obstacles) > config.scene_tolerance_m:
            rejected["scene_collision"] += 1
        else:
            return RobotConfiguration(T_world_base=robot.T_world_base.copy(), q=q, closure=closure,
                                      T_world_target=T_target, T_world_tcp=robot.T_world_tcp(), target=target,
                                      attempts=attempt, rejected={k: v for k, v in rejected.items() if v})
    raise NoPoseFound(rejected)
