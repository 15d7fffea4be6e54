"""Physically validated grasp labels (as Jacquard's were): every kept rectangle held in simulation.

For each product showing at least ``min_visible_px`` pixels (scaled with the
image area from 300 px at 640x480):

1. Candidate rectangles from :func:`~graspsim.grasping.mask_grasps.mask_to_grasps`
   on its instance mask, first on the part near its nearest surface
   (:func:`~graspsim.grasping.mask_grasps.near_surface`), then on the whole mask
   if that gave nothing, with closing axes restricted by
   :func:`~graspsim.grasping.mask_grasps.horizontal_theta_range` in shelf scenes - exactly as
   the oracle plans. At most ``max_candidates`` per product.
2. Each candidate is converted to a gripper command with the full scene's depth
   image and camera and executed with the product's class as target by
   :func:`~graspsim.sim.attempt.attempt_grasp` (exactly as
   :class:`~graspsim.envs.pick_env.PickEnv` executes an action), in a world
   holding the furniture and that product ALONE, at the pose it settled to in
   the full scene (rebuilt from scratch for every candidate, so each check is
   deterministic and independent of the others). Candidates that succeed are
   kept; ``quality`` is the planner's score, ``part`` the grasp part its
   fingers held (contact points at closure, :mod:`graspsim.sim.execute`).

Labels measure the grasp, not the arm: with ``graspsim render --robot panda``
the arm is in the stored images, but never in the validation world (the
floating hand executes every candidate, whatever the dataset's robot), and
:mod:`graspsim.data.render` gives the planner the depth of the robot-free view
(the parked arm is not where a grasp is made), so a scene's labels are the same
for every robot as long as the arm hides no product (it hides none in the
built-in scene kinds).

The labels are computed with the depth millimetre-rounded as stored (the
robot-free one equals ``depth.png`` on every product pixel, where conversion
reads it), so they can be re-validated from the files on disk. Limitation: the
other products are absent during validation, so a kept grasp can still fail in
the cluttered scene (a neighbour in the fingers' path that the depth check of
``mask_to_grasps`` did not catch).
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from graspsim.config import GRASP_DEPTH_M, GRASP_MARGIN_M, PhysicsConfig
from graspsim.grasping.mask_grasps import object_grasps
from graspsim.scenes.plan import ProductPlacement, ScenePlan
from graspsim.sim.attempt import attempt_grasp
from graspsim.sim.scene import build_at_rest
from graspsim.sim.world import SimWorld
from graspsim.types import CameraModel, GraspRect


@dataclass(frozen=True)
class LabelConfig:
    """Label-validation settings (stored in the manifest)."""

    min_visible_px_640x480: int = 300
    max_candidates: int = 6
    surface_slab_m: float = 0.02
    grasp_depth_m: float = GRASP_DEPTH_M
    margin_m: float = GRASP_MARGIN_M
    n_angles: int = 12
    shelf_theta_half_range_deg: float = 25.0

    def min_visible_px(self, width: int, height: int) -> int:
        return max(1, int(round(self.min_visible_px_640x480 * width * height / (640 * 480))))

    def to_dict(self) -> dict:
        return asdict(self)


def validate_rect(world: SimWorld, plan: ScenePlan, placement: ProductPlacement, rect: GraspRect,
                  depth_m: np.ndarray, camera: CameraModel, physics: PhysicsConfig,
                  config: LabelConfig) -> tuple[bool, str | None, str | None]:
    """Execute ``rect`` on ``placement`` alone (see the module docstring): ``(success, failure reason, held part)``,
    the held part being the grasp part both fingers held at closure (None if nothing was held or the two
    fingers were on different parts; :mod:`graspsim.sim.execute`).

    ``depth_m`` / ``camera``: the full scene's (H, W) depth in metres and its camera.
    """
    scene = build_at_rest(world, replace(plan, products=(placement,)), physics)
    attempt = attempt_grasp(world, scene, rect, depth_m, camera, placement.class_name, physics, config.grasp_depth_m)
    outcome = attempt.outcome
    return bool(outcome.success), (None if outcome.reason is None else outcome.reason.value), outcome.held_part


def label_objects(world: SimWorld, plan: ScenePlan, settled: list[ProductPlacement | None], instance: np.ndarray,
                  depth_m: np.ndarray, camera: CameraModel, approach_world: np.ndarray, physics: PhysicsConfig,
                  config: LabelConfig) -> list[dict[str, Any]]:
    """The ``objects`` entries of meta.json. ``instance``: (H, W) product index + 1 (0 = none).

    ``settled[k]`` is product ``k`` at its settled pose (None if it is not in the scene).
    """
    from graspsim.assets.catalog import class_index

    min_px = config.min_visible_px(camera.width, camera.height)
    counts = np.bincount(instance.ravel().astype(np.int64), minlength=len(plan.products) + 1)
    objects = []
    for k, placement in enumerate(settled):
        if placement is None:
            continue
        visible = int(counts[k + 1])
        entry: dict[str, Any] = {
            "product_index": k, "class_name": placement.class_name,
            "class_index": class_index(placement.class_name), "variant": placement.variant,
            "visible_px": visible,
            "settled_pose": {"position_m": list(placement.position_m), "quat_xyzw": list(placement.quat_xyzw)},
            "candidates_tried": 0, "candidates_kept": 0, "rejected": {}, "grasps": [],
        }
        # max_candidates 0 (--no-grasps): skip the planner, whose candidates would all be cut off anyway.
        if visible >= min_px and config.max_candidates > 0:
            rejected: Counter = Counter()
            # Ranked ScoredGrasp candidates for the product's mask.
            for grasp in object_grasps(instance == k + 1, depth_m, camera, plan.kind, approach_world, physics.gripper,
                                       surface_slab_m=config.surface_slab_m,
                                       shelf_half_range_rad=math.radians(config.shelf_theta_half_range_deg),
                                       grasp_depth_m=config.grasp_depth_m, margin_m=config.margin_m,
                                       n_angles=config.n_angles, max_candidates=config.max_candidates):
                entry["candidates_tried"] += 1
                ok, reason, part = validate_rect(world, plan, placement, grasp.rect, depth_m, camera, physics,
                                                 config)
                if ok:
                    r = grasp.rect
                    entry["grasps"].append({"x": r.x, "y": r.y, "w": r.w, "h": r.h, "theta": r.theta,
                                            "quality": round(float(grasp.score), 6), "part": part})
                else:
                    rejected[reason or "unknown"] += 1
            entry["candidates_kept"] = len(entry["grasps"])
            entry["rejected"] = dict(sorted(rejected.items()))
        objects.append(entry)
    return objects


def revalidate(scene: dict[str, Any], world: SimWorld, physics: PhysicsConfig | None = None,
               config: LabelConfig | None = None) -> list[tuple[int, dict, bool, str | None]]:
    """Re-execute every stored grasp of a scene read by :func:`graspsim.data.format.read_scene`.

    Uses only what is on disk (plan, settled poses, depth.png, K, T_world_camera);
    returns ``(product_index, grasp dict, success, failure reason)`` per grasp.
    ``physics`` / ``config`` default to the defaults (pass the manifest's when they differ).
    """
    physics = physics or PhysicsConfig()
    config = config or LabelConfig()
    meta = scene["meta"]
    plan = ScenePlan.from_json(__import__("json").dumps(meta["plan"]))
    camera = CameraModel(K=np.asarray(meta["K"], dtype=np.float64), width=int(meta["width"]),
                         height=int(meta["height"]), T_world_camera=np.asarray(meta["T_world_camera"], dtype=np.float64),
                         near_m=plan.camera.near_m, far_m=plan.camera.far_m)
    out = []
    for obj in meta["objects"]:
        pose = obj["settled_pose"]
        placement = replace(plan.products[obj["product_index"]], position_m=tuple(pose["position_m"]),
                            quat_xyzw=tuple(pose["quat_xyzw"]))
        for g in obj["grasps"]:
            rect = GraspRect(x=g["x"], y=g["y"], w=g["w"], h=g["h"], theta=g["theta"])
            ok, reason, _ = validate_rect(world, plan, placement, rect, scene["depth_m"], camera, physics, config)
            out.append((obj["product_index"], g, ok, reason))
    return out
