"""Build a :class:`~graspsim.scenes.plan.ScenePlan` in a world, let it settle, check it.

A scene is used only if it comes to rest within ``settle_max_time_s``, no two
bodies interpenetrate deeper than ``max_penetration_m``, and no product tipped
over or fell while settling; otherwise the seed is resampled (attempt 1, 2, ...)
and the attempt number is recorded in the plan.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from graspsim.assets.catalog import class_index
from graspsim.config import PhysicsConfig
from graspsim.geometry import quat_to_matrix
from graspsim.scenes.domain_rand import Appearance, DomainRandSpec, randomise_plan, sample_appearance
from graspsim.scenes.kinds import SceneKind, scene_kind
from graspsim.scenes.plan import ScenePlan
from graspsim.scenes.sampling import SceneOptions, sample_plan
from graspsim.sim.bodies import relabelled_obj_file, spawn_floor, spawn_furniture, spawn_product
from graspsim.sim.camera import camera_model_from_spec
from graspsim.sim.world import SimWorld
from graspsim.types import CameraModel, check_robot


class SceneRejected(RuntimeError):
    """A sampled scene did not settle or interpenetrated."""


class SceneUnavailableError(RuntimeError):
    """No attempt of a seed produced a usable scene."""


@dataclass
class BuiltScene:
    """A scene standing in a world.

    ``camera``: the plan's camera; ``product_bodies[i]`` is the body of
    ``plan.products[i]`` (None once removed); ``static_bodies``: floor and
    furniture; ``approach_world``: (3,) grasp approach direction, world frame
    (the scene kind's); ``arm``: the :class:`~graspsim.sim.panda.PandaArm` that
    executes grasps (None: the floating hand of VGN-style benchmarks);
    ``appearance``: the :class:`~graspsim.scenes.domain_rand.Appearance` it was
    built with (None: not randomised).
    """

    plan: ScenePlan
    camera: CameraModel
    product_bodies: list[int | None]
    static_bodies: tuple[int, ...]
    body_to_class: dict[int, int]
    body_to_class_name: dict[int, str]
    approach_world: np.ndarray
    settle_steps: int = 0
    removed: list[int] = field(default_factory=list)
    arm: Any = None
    appearance: Any = None

    @property
    def kind(self) -> SceneKind:
        """The scene kind named by ``plan.kind``."""
        return scene_kind(self.plan.kind)

    @property
    def robot_parts(self) -> tuple[int, tuple[int, ...]] | None:
        """``(arm body id, gripper link indices)``: :func:`~graspsim.sim.camera.render`'s ``robot`` argument
        (labels ``robot_seg``); None without an arm in the scene."""
        if self.arm is None:
            return None
        from graspsim.sim.panda import GRIPPER_LINKS

        return self.arm.body, GRIPPER_LINKS

    @property
    def live_bodies(self) -> list[int]:
        return [b for b in self.product_bodies if b is not None]

    def remove_body(self, world: SimWorld, body: int) -> None:
        world.client.removeBody(body)
        self.product_bodies[self.product_bodies.index(body)] = None
        self.removed.append(body)
        self.body_to_class.pop(body, None)
        self.body_to_class_name.pop(body, None)


def build_plan(world: SimWorld, plan: ScenePlan, physics: PhysicsConfig, look: Appearance | None = None) -> BuiltScene:
    """Reset the world and create the floor, the kind's furniture and the plan's products (not yet settled).

    The one scene builder: a subset of a scene is ``replace(plan, products=...)``. ``look``: a randomised
    appearance (:mod:`graspsim.scenes.domain_rand`) for the floor, furniture and product labels; it changes
    visual shapes only (collision shapes, masses and friction are the same), so the scene settles as without it.
    Its camera and lighting are the plan's to carry (:func:`~graspsim.scenes.domain_rand.randomise_plan`).
    """
    kind = scene_kind(plan.kind)
    world.reset()
    look = look if look is not None and look.level != "none" else None
    static = (spawn_floor(world, physics, look.floor_rgba if look else None),
              spawn_furniture(world, kind.furniture, physics, look.furniture_rgba if look else None))
    bodies: list[int | None] = []
    body_to_class: dict[int, int] = {}
    body_to_name: dict[int, str] = {}
    relabel = look is not None and any(d is not None for d in look.labels)
    # New label files live only while their bodies are created (pybullet reads them then).
    with tempfile.TemporaryDirectory(prefix="graspsim-labels-") if relabel else contextlib.nullcontext() as folder:
        for k, placement in enumerate(plan.products):
            visual = _relabelled(placement, look.labels[k], folder) if look and look.labels[k] else None
            body = spawn_product(world, placement.class_name, placement.variant, placement.position_m,
                                 placement.quat_xyzw, physics, visual)
            bodies.append(body)
            body_to_class[body] = class_index(placement.class_name)
            body_to_name[body] = placement.class_name
    return BuiltScene(plan=plan, camera=camera_model_from_spec(plan.camera), product_bodies=bodies,
                      static_bodies=static, body_to_class=body_to_class, body_to_class_name=body_to_name,
                      approach_world=np.asarray(kind.approach_world, dtype=np.float64), appearance=look)


_LABEL_FILES = itertools.count()  # unique file names in the process (see relabelled_obj_file)


def _relabelled(placement, draw, folder: str) -> str:
    """The visual OBJ of ``placement``'s product wearing the random label ``draw``."""
    from graspsim.assets.library import load_product_asset
    from graspsim.assets.random_textures import make_random_texture

    texture = make_random_texture(placement.class_name, placement.variant, draw)
    return relabelled_obj_file(load_product_asset(placement.class_name, placement.variant), texture, Path(folder),
                               f"label-{os.getpid()}-{next(_LABEL_FILES)}")


def build_at_rest(world: SimWorld, plan: ScenePlan, physics: PhysicsConfig) -> BuiltScene:
    """Build a plan whose products already stand at their settled poses, asleep as :func:`settle` leaves them."""
    scene = build_plan(world, plan, physics)
    _sleep(world, scene.live_bodies)
    return scene


def _sleep(world: SimWorld, bodies: list[int]) -> None:
    # Products at rest sleep until something touches them: the hand's contacts
    # wake exactly the products it disturbs, and sleeping ones cost nothing.
    c = world.client
    for body in bodies:
        c.changeDynamics(body, -1, activationState=c.ACTIVATION_STATE_SLEEP)


def body_poses(world: SimWorld, bodies: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """Position (3,) and rotation matrix (3, 3) of each body."""
    poses = {}
    for body in bodies:
        position, quat = world.client.getBasePositionAndOrientation(body)
        poses[body] = (np.asarray(position), quat_to_matrix(quat))
    return poses


def tilt_deg(R_before: np.ndarray, R_after: np.ndarray) -> float:
    """Angle between a body's up axis (its local z) before and after, in degrees."""
    cos = float(np.clip(np.dot(R_before[:, 2], R_after[:, 2]), -1.0, 1.0))
    return math.degrees(math.acos(cos))


def settle(world: SimWorld, scene: BuiltScene, physics: PhysicsConfig, max_time_s: float | None = None) -> int:
    """Step until every product is at rest; return the steps taken or raise :class:`SceneRejected`."""
    c = world.client
    max_steps = int((max_time_s or physics.settle_max_time_s) / physics.time_step_s)
    chunk = 12
    steps = 0
    while steps < max_steps:
        world.step(chunk)
        steps += chunk
        velocities = (c.getBaseVelocity(body) for body in scene.live_bodies)
        if not any(np.linalg.norm(linear) > physics.settle_speed_mps
                   or np.linalg.norm(angular) > physics.settle_angular_speed_rps for linear, angular in velocities):
            _sleep(world, scene.live_bodies)
            return steps
    raise SceneRejected(f"products still moving after {max_time_s or physics.settle_max_time_s:.1f} s")


def deepest_penetration_m(world: SimWorld, bodies: list[int]) -> float:
    """Largest penetration depth among contacts of ``bodies`` (0 if none penetrate)."""
    deepest = 0.0
    for body in bodies:
        for contact in world.client.getContactPoints(bodyA=body):
            deepest = max(deepest, -float(contact[8]))
    return deepest


def add_arm(world: SimWorld, scene: BuiltScene, physics: PhysicsConfig) -> None:
    """Put the scene kind's Panda at its parking place (after settling: the same scenes with and without it)."""
    from graspsim.sim.panda import PandaArm

    mount = scene.kind.arm_mount
    scene.arm = PandaArm(world, mount.T_world_base_park(), physics, np.asarray(mount.q_park))


def add_robot(world: SimWorld, scene: BuiltScene, robot: str, physics: PhysicsConfig) -> None:
    """Put ``robot``'s body (:data:`graspsim.types.ROBOTS`) into a settled scene, as every image of it shows it.

    ``"panda"``: the arm at its parking place (:func:`add_arm`); ``"hand"``: nothing (the
    floating hand exists only during an attempt, so the images show no robot).
    """
    if check_robot(robot) == "panda":
        add_arm(world, scene, physics)


def build_settled_scene(world: SimWorld, kind: str, seed: int, variant_split: str, options: SceneOptions,
                        physics: PhysicsConfig, max_attempts: int = 8,
                        domain_rand: DomainRandSpec | None = None) -> BuiltScene:
    """Sample, build and settle scene ``seed``; resample (attempt 1, 2, ...) until it is usable.

    ``domain_rand``: randomise the scene's look (:mod:`graspsim.scenes.domain_rand`; drawn from the plan's seed
    and attempt): the plan gets the randomised camera and lighting, the scene the random colours and labels.
    The same attempts are accepted as without it (the physics is the same).
    """
    reasons = []
    for attempt in range(max_attempts):
        plan = sample_plan(kind, seed, variant_split, options, attempt)
        look = None
        if domain_rand is not None and domain_rand.enabled:
            look = sample_appearance(domain_rand, plan)
            plan = randomise_plan(plan, look)
        scene = build_plan(world, plan, physics, look)
        before = body_poses(world, scene.live_bodies)
        try:
            scene.settle_steps = settle(world, scene, physics)
            after = body_poses(world, scene.live_bodies)
            for body in scene.live_bodies:
                if tilt_deg(before[body][1], after[body][1]) > 20.0:
                    raise SceneRejected(f"{scene.body_to_class_name[body]} tipped over while settling")
                if before[body][0][2] - after[body][0][2] > 0.02:
                    raise SceneRejected(f"{scene.body_to_class_name[body]} fell while settling")
            depth = deepest_penetration_m(world, scene.live_bodies)
            if depth > physics.max_penetration_m:
                raise SceneRejected(f"interpenetration of {depth * 1000:.1f} mm")
            return scene
        except SceneRejected as exc:
            reasons.append(f"attempt {attempt}: {exc}")
    raise SceneUnavailableError(f"scene {kind} seed {seed} unusable after {max_attempts} attempts: {'; '.join(reasons)}")
