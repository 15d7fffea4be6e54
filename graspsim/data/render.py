"""Render a suite's scenes into a grasp dataset (``graspsim render``), 1 or K worker processes.

Every scene depends only on its seed (and the config): each worker owns two
worlds, one for the full scene (build, settle, add the robot, render) and one
for the object-alone label validation (:mod:`graspsim.data.labels`), both reset
for every use. The robot (the arm by default, as everywhere) is
placed by :func:`graspsim.sim.scene.add_robot`, the code
:class:`~graspsim.envs.pick_env.PickEnv` resets with, so a scene's images are
the observation ``PickEnv(robot=...).reset`` shows for it. Workers write their
scenes directly (each scene is its own directory, written atomically); the
parent writes the manifest.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from graspsim.config import PhysicsConfig
from graspsim.data.format import (FORMAT_VERSION, DEPTH_SCALE, decode_depth, encode_class, encode_depth,
                                  encode_instance, scene_dir, scene_id)
from graspsim.data.labels import LabelConfig, label_objects
from graspsim.data.writer import render_scenes, write_scene
from graspsim.scenes.domain_rand import check_domain_rand
from graspsim.scenes.plan import ProductPlacement
from graspsim.types import DEFAULT_ROBOT, check_robot


@dataclass(frozen=True)
class RenderSpec:
    """What one worker needs to render scenes (plain values: it is pickled to the workers)."""

    suite: str
    width: int = 640
    height: int = 480
    renderer: str = "auto"
    physics: dict[str, Any] = field(default_factory=lambda: PhysicsConfig().to_dict())
    labels: dict[str, Any] = field(default_factory=lambda: LabelConfig().to_dict())
    robot: str = DEFAULT_ROBOT
    domain_rand: str = "none"  # a level of graspsim.scenes.domain_rand.LEVELS


#: Scenes per worker rendered with domain randomisation before fresh worker processes take over (bounds the memory
#: pybullet's renderers keep: measured ~12 MB per full-randomised shelf scene with EGL, ~2.4 GB per 200 scenes).
DR_SCENES_PER_PROCESS = 200




class SceneRenderer:
    """Two worlds (scene + label validation), built once per process."""

    def __init__(self, spec: RenderSpec):
        from graspsim.scenes.suites import get_suite
        from graspsim.scenes.sampling import SceneOptions
        from graspsim.sim.world import SimWorld

        self.spec = spec
        self.suite = get_suite(spec.suite)
        self.physics = PhysicsConfig.from_dict(spec.physics)
        self.label_config = LabelConfig(**spec.labels)
        self.options = SceneOptions(width=spec.width, height=spec.height)
        self.domain_rand = check_domain_rand(self.suite, spec.domain_rand)
        self.world = SimWorld(self.physics, spec.renderer)
        self.label_world = SimWorld(self.physics, "tiny")  # never renders

    def render_scene(self, seed: int) -> dict[str, Any]:
        """Build, render and label scene ``seed``: the arrays as stored (``robot_seg`` None without an arm,
        ``part_seg`` the grasp parts of the stored view) plus meta."""
        from graspsim.sim.camera import render, scene_look, scene_part_seg
        from graspsim.sim.scene import add_robot, build_settled_scene

        scene = build_settled_scene(self.world, self.suite.kind, seed, self.suite.variant_split, self.options,
                                    self.physics, domain_rand=self.domain_rand)
        body_to_product = {b: k for k, b in enumerate(scene.product_bodies) if b is not None}
        lighting, far_m = scene.plan.lighting, scene.camera.far_m
        # The grasp planner gets the depth of the robot-free view: the parked arm is not where a grasp
        # is made (it moves to make it), so its pixels are no obstacle, and a scene has the same labels
        # whatever the robot. That view is rendered only when candidates are planned (not --no-grasps).
        planning = self.label_config.max_candidates > 0
        bare = render(self.world, scene.camera, lighting, scene.body_to_class) if planning else None
        add_robot(self.world, scene, self.spec.robot, self.physics)
        if bare is not None and scene.arm is None:
            frames = bare  # no robot: the robot-free view is the stored one
        else:
            frames = render(self.world, scene.camera, lighting, scene.body_to_class, scene.robot_parts)
        frames = scene_part_seg(self.world, scene, frames)
        frames = scene_look(scene, frames)  # background and colour cast: image-space, after the render
        depth_mm = encode_depth(frames.depth_m, far_m)
        instance = encode_instance(frames.instance_seg, body_to_product)
        plan_depth_mm = depth_mm if bare is None or bare is frames else encode_depth(bare.depth_m, far_m)
        # Millimetre-rounded as stored, so the labels re-validate from disk: the two depths agree on every
        # product pixel, where conversion reads it (the parking poses hide no product). visible_px and the
        # masks are the stored ones.
        objects = label_objects(self.label_world, scene.plan, self._settled(scene), instance,
                                decode_depth(plan_depth_mm), scene.camera, scene.approach_world, self.physics,
                                self.label_config)
        meta = {
            "scene_id": scene_id(seed), "scene_seed": int(seed), "suite": self.suite.name,
            "renderer": self.world.renderer_name, "width": self.spec.width, "height": self.spec.height,
            "K": scene.camera.K, "T_world_camera": scene.camera.T_world_camera,
            "approach_world": scene.approach_world, "depth_scale": DEPTH_SCALE,
            "plan": json.loads(scene.plan.to_json()), "robot": self.spec.robot, "objects": objects,
        }
        if scene.arm is not None:
            meta["arm"] = arm_state(scene.arm)
        if scene.appearance is not None:
            meta["domain_rand"] = scene.appearance.to_dict()
        return {"rgb": frames.rgb, "depth_mm": depth_mm, "instance": instance,
                "class_map": encode_class(frames.class_seg), "robot_seg": frames.robot_seg,
                "part_seg": frames.part_seg, "meta": meta}

    def _settled(self, scene) -> list[ProductPlacement | None]:
        """Each plan product at the pose it settled to (None for a product not in the scene)."""
        settled = []
        for k, placement in enumerate(scene.plan.products):
            body = scene.product_bodies[k]
            if body is None:
                settled.append(None)
                continue
            position, quat = self.world.client.getBasePositionAndOrientation(body)
            settled.append(replace(placement, position_m=tuple(float(v) for v in position),
                                   quat_xyzw=tuple(float(v) for v in quat)))
        return settled

    def run(self, root: Path, seed: int) -> dict[str, Any]:
        """Render and write scene ``seed`` under ``root``; a small status dict for the parent."""
        from graspsim.sim.scene import SceneUnavailableError

        t0 = time.perf_counter()
        try:
            out = self.render_scene(seed)
        except SceneUnavailableError as exc:
            return {"seed": seed, "skipped": str(exc)}
        write_scene(scene_dir(root, self.suite.first_seed, seed), out["rgb"], out["depth_mm"], out["instance"],
                    out["class_map"], out["meta"], out["robot_seg"], out["part_seg"])
        objects = out["meta"]["objects"]
        return {"seed": seed, "labels": sum(o["candidates_kept"] for o in objects),
                "tried": sum(o["candidates_tried"] for o in objects), "seconds": time.perf_counter() - t0}

    def close(self) -> None:
        self.world.close()
        self.label_world.close()


def arm_state(arm) -> dict[str, Any]:
    """meta.json's ``arm``: the :class:`~graspsim.sim.panda.PandaArm` as the images show it, its base pose (4, 4)
    in the world, 7 arm joint angles (rad) and 2 finger joint positions (m); forward kinematics from these gives
    every link's pose."""
    from graspsim.sim.panda import FINGER_LINKS

    fingers = [float(s[0]) for s in arm.world.client.getJointStates(arm.body, FINGER_LINKS)]
    return {"T_world_base": arm.T_world_base, "q_rad": [float(v) for v in arm.q()], "finger_joints_m": fingers}


def manifest_for(spec: RenderSpec, seeds: list[int]) -> dict[str, Any]:
    import graspsim
    from graspsim.assets.catalog import CATALOG
    from graspsim.assets.parts import part_names
    from graspsim.scenes.suites import get_suite

    suite = get_suite(spec.suite)
    config = {"width": spec.width, "height": spec.height, "renderer": spec.renderer,
              "physics": spec.physics, "labels": spec.labels, "graspsim_version": graspsim.__version__}
    dr = check_domain_rand(suite, spec.domain_rand)
    if dr.enabled:  # absent when off: manifests (and resumes) of unrandomised datasets stay as they were
        config["domain_rand"] = dr.to_dict()
    return {
        "format_version": FORMAT_VERSION, "suite": suite.name, "kind": suite.kind,
        "variant_split": suite.variant_split, "robot": spec.robot, "scene_seeds": sorted(seeds), "skipped": {},
        "classes": {str(c.index): c.name for c in CATALOG},
        "parts": {c.name: list(part_names(c.name)) for c in CATALOG},
        "splits": ("no split inside a dataset: train/test/unseen data come from rendering the *-train/*-test/"
                   "*-unseen suites, whose scene-seed ranges are disjoint (unseen: held-out product variants)"),
        "config": config,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def render_dataset(suite: str, scenes: int, out_dir: Path, seed: int = 0, workers: int = 1, resume: bool = False,
                   width: int = 640, height: int = 480, renderer: str = "auto", progress: bool = True,
                   physics: PhysicsConfig | None = None, labels: LabelConfig | None = None,
                   robot: str = DEFAULT_ROBOT, domain_rand: str = "none") -> dict[str, Any]:
    """Render scenes ``seed .. seed + scenes - 1`` of ``suite`` into ``out_dir``; returns a summary dict.

    ``robot`` (:data:`graspsim.types.ROBOTS`; by default
    :data:`~graspsim.types.DEFAULT_ROBOT`, the arm, as for ``graspsim render
    --robot`` and the environments): ``"panda"`` renders the arm parked on its
    mount into every image and stores ``robot_seg.png``; ``"hand"`` renders no
    robot. The grasp labels do not depend on it (:mod:`graspsim.data.labels`).

    ``domain_rand``: a level of :data:`graspsim.scenes.domain_rand.LEVELS`; other than ``"none"`` (the default:
    the images every dataset had) only for training suites. Its settings are recorded in the manifest
    (``config.domain_rand``, absent when ``"none"``) and each scene's draw in its ``meta.json``.

    Raises :class:`~graspsim.scenes.suites.UnknownSuiteError`, ValueError (scenes
    outside the suite, an unknown robot or level),
    :class:`~graspsim.scenes.domain_rand.DomainRandError` (randomising an evaluation suite) and :class:`~graspsim.runs.RunDirError` (non-empty ``out_dir`` without ``resume``, or a resume with other
    settings).
    """
    from graspsim.scenes.suites import get_suite

    check_robot(robot)
    suite_obj = get_suite(suite)
    seeds = suite_obj.scene_seeds(seed, scenes)
    check_domain_rand(suite_obj, domain_rand)
    spec = RenderSpec(suite=suite_obj.name, width=width, height=height, renderer=renderer,
                      physics=(physics or PhysicsConfig()).to_dict(), labels=(labels or LabelConfig()).to_dict(),
                      robot=robot, domain_rand=domain_rand)
    out_dir = Path(out_dir)
    if resume:
        _check_resumed_domain_rand(out_dir, domain_rand)
    # Randomised labels are new textures for every scene, which pybullet's renderers never free: fresh worker
    # processes every DR_SCENES_PER_PROCESS scenes per worker keep the memory bounded.
    fan = render_scenes(out_dir, manifest_for(spec, seeds), suite_obj.first_seed, seeds, SceneRenderer, spec,
                        workers, resume, progress, f"render {suite}",
                        jobs_per_pool=DR_SCENES_PER_PROCESS * max(1, workers) if domain_rand != "none" else None)
    done, wall = fan["done"], fan["wall_s"]
    return {
        "out_dir": str(out_dir), "suite": suite_obj.name, "robot": robot, "requested": len(seeds),
        "rendered": len(done), "already_done": fan["already_done"], "skipped": fan["skipped"],
        "removed_temp_dirs": fan["removed_temp_dirs"], "labels": sum(r["labels"] for r in done),
        "candidates_tried": sum(r["tried"] for r in done),
        "labels_per_scene": (sum(r["labels"] for r in done) / len(done)) if done else 0.0,
        "wall_s": wall, "scenes_per_s": (len(done) / wall) if done and wall > 0 else 0.0,
        "workers": workers, **({"domain_rand": domain_rand} if domain_rand != "none" else {}),
    }


def _check_resumed_domain_rand(out_dir: Path, level: str) -> None:
    """One-line :class:`~graspsim.runs.RunDirError` when the dataset in ``out_dir`` was rendered with another
    ``--domain-rand`` level (the full settings check that follows would name ``config.domain_rand`` over
    several lines; it still catches changed ranges within a level)."""
    from graspsim.data.format import MANIFEST
    from graspsim.runs import RunDirError

    try:
        stored = json.loads((Path(out_dir) / MANIFEST).read_text(encoding="utf-8"))
        config = stored.get("config") or {}
    except (OSError, ValueError, AttributeError):
        return  # no or a damaged manifest: the settings check reports it
    stored_level = (config.get("domain_rand") or {}).get("level", "none")
    if stored_level != level:
        raise RunDirError(f"cannot resume {out_dir}: it was rendered with --domain-rand {stored_level}, not "
                          f"{level}; resume with --domain-rand {stored_level} or start a new dataset in another --out")
