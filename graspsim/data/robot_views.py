"""Render robot-segmentation data (``graspsim render-robot-views``): robots reaching into the scenes, with masks.

For each scene of a suite (built and settled as ``graspsim render`` builds it,
products in place) and each embodiment (:mod:`graspsim.sim.embodiments`), K
views: the robot on its mount in a sampled pose with its tool in the work area
(:func:`~graspsim.sim.embodiments.sample_configuration`), seen from the scene
camera moved by a random offset (:func:`~graspsim.scenes.sampling.jitter_camera`),
rendered with pybullet's per-link segmentation into arm / gripper labels. The
same pose rendered with the scene's bodies moved out of the picture gives the
pixels the scene hides, hence ``occluded_fraction``. Views
whose robot covers fewer than ``min_robot_fraction`` of the image are skipped
and recorded. The format is :mod:`graspsim.data.robot_views_format`.

Every draw of a view comes from ``numpy.random.default_rng([scene seed,
embodiment key, k])`` (the camera offset first, then the pose), and the scene
world is rebuilt for every scene, so a view depends on its scene seed,
embodiment and index only: the same files with 1 or K workers, after a resume,
and whichever other embodiments are rendered beside it. Scenes are the unit of
work and of resume (one atomic directory each), through the shared pool
(:func:`graspsim.pool.run_jobs`) and the dataset directory checks of
:mod:`graspsim.data.writer`.

Videos (``--videos V``, default 0: none, and then the files are exactly those
without the option): per scene, V grasp executions by the Panda, the one robot
graspsim executes grasps with (the KUKA and the xArm get image views only). The
scene is built again, with the Panda parked on its mount as the benchmark
has it (:func:`~graspsim.sim.scene.add_arm`), and every video starts from that
state. Video ``k`` draws from ``numpy.random.default_rng([scene seed, Panda's
embodiment key, VIDEO_KEY, k])``: the camera first (the image views' orbit and
jitter about the scene camera), then the target, uniform over the classes the
scene camera shows clearly (:func:`graspsim.envs.pick_env.visible_products`, as
the environment chooses its targets). The oracle plans on the scene camera's
privileged view as in ``graspsim bench --policy oracle`` and the rectangle is
executed by the one attempt function (:func:`graspsim.sim.attempt.attempt_grasp`),
recorded with the step hook (:class:`graspsim.video.FrameRecorder`, every frame
one render with segmentation) over :data:`VIDEO_MAX_FRAMES` evenly spaced frames
at most (:func:`graspsim.video.record_evenly`: a dry run counts the attempt's
physics steps, the recorded run takes every ``ceil(steps / 32)``-th, 16 to 32
frames). An attempt too short for :data:`VIDEO_MIN_FRAMES` frames (nothing
reachable: the arm never moved) or with no target is skipped and recorded.
The KUKA and the xArm get no videos: graspsim executes no grasps with them, and
teleported joint-space motions from the parking pose to a sampled pose (tried)
cross the shelf in most draws (shelf-train scenes 0-2, 6 draws each: the KUKA 0
of 18 clear of the furniture and products in all 24 frames, the xArm 4, the
Panda 9), so they would need a motion planner first.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from graspsim.config import PhysicsConfig
from graspsim.data.format import DEPTH_SCALE, META, encode_depth, scene_dir, scene_id
from graspsim.data.robot_views_format import (DATASET, DEPTH, FORMAT_VERSION, PARTS, RGB, ROBOT_SEG, frame_dir,
                                              video_id, view_id)
from graspsim.data.writer import encode_meta, encode_png, render_scenes, write_dir

#: Defaults of ``graspsim render-robot-views``.
DEFAULT_VIEWS_PER_SCENE = 4
#: Camera eye and target offsets per view, uniform in +-this per world axis (m): several camera poses.
DEFAULT_CAMERA_JITTER_M = 0.10
#: Before that, the eye swings around the camera's target by up to this much sideways (half of it up or down,
#: degrees): the scene camera sits right behind the robot's shoulder, where the arm hides its own gripper and
#: nothing stands between camera and robot; from the side the gripper shows, and products hide parts of it.
DEFAULT_CAMERA_ORBIT_DEG = 30.0
#: A view is kept when the visible robot covers at least this fraction of the image (0.5 %: 1536 px at 640x480).
DEFAULT_MIN_ROBOT_FRACTION = 0.005
#: Grasp videos per scene (``--videos``); 0 writes exactly the files of a dataset without videos.
DEFAULT_VIDEOS_PER_SCENE = 0
#: The frames of a video: at most this many, evenly spaced over the attempt ...
VIDEO_MAX_FRAMES = 32
#: ... and at least this many (an attempt of fewer physics steps is skipped).
VIDEO_MIN_FRAMES = 16
#: The robot that executes the grasps of videos (graspsim executes grasps with the Panda only).
VIDEO_EMBODIMENT = "panda"
#: Keeps the videos' random draws apart from the image views' (CRC-32 of "video", like Embodiment.key).
VIDEO_KEY = zlib.crc32(b"video")


def _sampler_defaults() -> dict[str, Any]:
    from graspsim.sim.embodiments import SamplerConfig

    return SamplerConfig().to_dict()


@dataclass(frozen=True)
class RobotViewSpec:
    """What a worker needs to render robot views (plain values: pickled to the workers)."""

    suite: str
    embodiments: tuple[str, ...]
    views_per_scene: int = DEFAULT_VIEWS_PER_SCENE
    width: int = 640
    height: int = 480
    renderer: str = "auto"
    physics: dict[str, Any] = field(default_factory=lambda: PhysicsConfig().to_dict())
    camera_jitter_m: float = DEFAULT_CAMERA_JITTER_M
    camera_orbit_deg: float = DEFAULT_CAMERA_ORBIT_DEG
    min_robot_fraction: float = DEFAULT_MIN_ROBOT_FRACTION
    sampler: dict[str, Any] = field(default_factory=_sampler_defaults)
    videos_per_scene: int = DEFAULT_VIDEOS_PER_SCENE

    @property
    def min_robot_px(self) -> int:
        return int(math.ceil(self.min_robot_fraction * self.width * self.height))


def _part_px(seg: np.ndarray) -> dict[str, int]:
    """Pixels per part of a 0/1/2 mask: ``arm``, ``gripper`` and ``whole`` (nonzero)."""
    counts = {name: int((seg == label).sum()) for name, label in PARTS.items()}
    return {**counts, "whole": counts["arm"] + counts["gripper"]}


class RobotViewRenderer:
    """Per worker: one world (scene, robots), built once and reset for every scene."""

    def __init__(self, spec: RobotViewSpec):
        from graspsim.scenes.sampling import SceneOptions
        from graspsim.scenes.suites import get_suite
        from graspsim.sim.embodiments import SamplerConfig, get_embodiment
        from graspsim.sim.world import SimWorld

        self.spec = spec
        self.suite = get_suite(spec.suite)
        self.physics = PhysicsConfig.from_dict(spec.physics)
        self.options = SceneOptions(width=spec.width, height=spec.height)
        self.sampler = SamplerConfig.from_dict(spec.sampler)
        self.embodiments = [get_embodiment(n) for n in spec.embodiments]
        self.world = SimWorld(self.physics, spec.renderer)

    def _unoccluded_mask(self, robot, camera, lighting, scene_bodies: list[int]) -> np.ndarray:
        """``robot_seg`` of ``robot`` as posed, with ``scene_bodies`` (furniture, floor, products) taken out of
        the picture for one render, then the world restored exactly (pybullet's saved state: setting the poses
        back would renormalise their quaternions in the last bits).

        In the same world, not a second one: two EGL worlds in one process share the plugin's state, and the
        second world's robot was drawn in stale poses (measured: 'unoccluded' masks smaller than the visible
        ones in 1 of 4 views).
        """
        from graspsim.sim.camera import render
        from graspsim.sim.embodiments import T_WORLD_AWAY

        c = self.world.client
        state = c.saveState()
        try:
            for body in scene_bodies:
                c.resetBasePositionAndOrientation(body, list(T_WORLD_AWAY[:3, 3]), [0.0, 0.0, 0.0, 1.0])
            return render(self.world, camera, lighting, None, robot.parts).robot_seg
        finally:
            c.restoreState(state)
            c.removeState(state)

    def render_scene(self, seed: int) -> tuple[dict[str, bytes], dict[str, Any]]:
        """Build scene ``seed`` and render every view: ``(files to write, {"views": metas, "skipped_views":
        {view id: reason}})``."""
        from graspsim.sim.embodiments import T_WORLD_AWAY, RobotBody
        from graspsim.sim.scene import build_settled_scene

        scene = build_settled_scene(self.world, self.suite.kind, seed, self.suite.variant_split, self.options,
                                    self.physics)
        files: dict[str, bytes] = {}
        views, skipped = [], {}
        # Every robot in the world at once, each away while another is posed: never one loaded after another
        # was removed (pybullet's stale kinematics caches, see RobotBody); the next scene's reset clears them.
        robots = [RobotBody(self.world, e, T_WORLD_AWAY) for e in self.embodiments]
        for robot in robots:
            for k in range(self.spec.views_per_scene):
                vid = view_id(robot.embodiment.name, k)
                out = self._render_view(scene, robot, seed, k)
                if isinstance(out, str):
                    skipped[vid] = out
                    continue
                meta, view_files = out
                files.update({f"{vid}/{name}": data for name, data in view_files.items()})
                views.append(meta)
            robot.away()
        meta = {"scene_id": scene_id(seed), "scene_seed": int(seed), "suite": self.suite.name,
                "renderer": self.world.renderer_name, "width": self.spec.width, "height": self.spec.height,
                "depth_scale": DEPTH_SCALE, "plan": json.loads(scene.plan.to_json()),
                "views": [v["view_id"] for v in views], "skipped_views": skipped}
        status = {"views": views, "skipped_views": skipped}
        if self.spec.videos_per_scene:  # the keys only with videos: a dataset without is byte for byte as before
            video_files, videos, skipped_videos, seconds = self._render_videos(seed)
            files.update(video_files)
            meta.update(videos=[v["video_id"] for v in videos], skipped_videos=skipped_videos)
            status.update(videos=videos, skipped_videos=skipped_videos, video_seconds=seconds)
        files[META] = encode_meta(meta)
        return files, status

    def _render_view(self, scene, robot, seed: int, k: int) -> tuple[dict[str, Any], dict[str, bytes]] | str:
        """View ``k`` of ``robot`` in ``scene``: ``(meta, {file name: bytes})``, or why it is skipped."""
        import cv2

        from graspsim.scenes.sampling import jitter_camera
        from graspsim.sim.camera import camera_model_from_spec, render
        from graspsim.sim.embodiments import NoPoseFound, sample_configuration

        spec, embodiment = self.spec, robot.embodiment
        obstacles = list(scene.static_bodies) + scene.live_bodies
        products = [tuple(np.asarray(v) for v in self.world.client.getAABB(body)) for body in scene.live_bodies]
        rng = np.random.default_rng([int(seed), embodiment.key, k])  # the camera's draws, then the pose's
        camera = camera_model_from_spec(jitter_camera(rng, scene.plan.camera, spec.camera_jitter_m,
                                                      spec.camera_orbit_deg))
        try:
            pose = sample_configuration(robot, scene.kind, rng, obstacles, products, self.sampler)
        except NoPoseFound as exc:
            return str(exc)
        frames = render(self.world, camera, scene.plan.lighting, None, robot.parts)
        visible = _part_px(frames.robot_seg)
        if visible["whole"] < spec.min_robot_px:
            return f"too few robot pixels: {visible['whole']} < {spec.min_robot_px}"
        unoccluded = _part_px(self._unoccluded_mask(robot, camera, scene.plan.lighting, obstacles))
        meta = {
            "view_id": view_id(embodiment.name, k), "scene_seed": int(seed), "embodiment": embodiment.name,
            "split": embodiment.split, "view": k, "K": camera.K, "T_world_camera": camera.T_world_camera,
            "width": camera.width, "height": camera.height, "near_m": camera.near_m, "far_m": camera.far_m,
            "T_world_base": pose.T_world_base, "joint_names": list(embodiment.arm_joints), "q_rad": pose.q,
            "gripper_joints": robot.finger_joints(), "closure": pose.closure,
            "T_world_target": pose.T_world_target, "T_world_tcp": pose.T_world_tcp, "at_product": pose.at_product,
            "attempts": pose.attempts, "rejected": pose.rejected, "robot_px": visible, "unoccluded_px": unoccluded,
            "occluded_fraction": {p: (1.0 - visible[p] / unoccluded[p]) if unoccluded[p] else 0.0 for p in visible},
        }
        return meta, {RGB: encode_png(cv2.cvtColor(frames.rgb, cv2.COLOR_RGB2BGR)),
                      DEPTH: encode_png(encode_depth(frames.depth_m, camera.far_m)),
                      ROBOT_SEG: encode_png(frames.robot_seg), META: encode_meta(meta)}

    def _render_videos(self, seed: int) -> tuple[dict[str, bytes], list[dict[str, Any]], dict[str, str], list[float]]:
        """The grasp videos of scene ``seed`` (module docstring): ``(files, metas, {video id: why skipped},
        seconds per video)``.

        The scene is built again (the world reset drops the image views' robots, so a video depends on its
        scene and index only) with the Panda parked, and each video starts from that saved state.
        """
        from graspsim.sim.scene import add_arm, build_settled_scene

        scene = build_settled_scene(self.world, self.suite.kind, seed, self.suite.variant_split, self.options,
                                    self.physics)
        add_arm(self.world, scene, self.physics)
        client = self.world.client
        start = client.saveState()
        files: dict[str, bytes] = {}
        metas, skipped, seconds = [], {}, []
        try:
            for k in range(self.spec.videos_per_scene):
                client.restoreState(start)
                t0 = time.perf_counter()
                out = self._render_video(scene, seed, k)
                vid = video_id(VIDEO_EMBODIMENT, k)
                if isinstance(out, str):
                    skipped[vid] = out
                    continue
                meta, video_files = out
                files.update({f"{vid}/{name}": data for name, data in video_files.items()})
                metas.append(meta)
                seconds.append(time.perf_counter() - t0)
        finally:
            client.removeState(start)
        return files, metas, skipped, seconds

    def _render_video(self, scene, seed: int, k: int) -> tuple[dict[str, Any], dict[str, bytes]] | str:
        """Video ``k`` of ``scene`` (the Panda parked in it): ``(meta, {file name: bytes})``, or why it is
        skipped."""
        from graspsim.envs.pick_env import visible_products
        from graspsim.policies.base import PolicyError
        from graspsim.policies.oracle import OraclePolicy
        from graspsim.scenes.instructions import pick_instruction
        from graspsim.scenes.sampling import jitter_camera
        from graspsim.sim.attempt import attempt_grasp
        from graspsim.sim.camera import camera_model_from_spec, render
        from graspsim.sim.embodiments import get_embodiment
        from graspsim.types import Observation
        from graspsim.video import FrameRecorder, record_evenly

        spec, world, arm = self.spec, self.world, scene.arm
        embodiment = get_embodiment(VIDEO_EMBODIMENT)
        rng = np.random.default_rng([int(seed), embodiment.key, VIDEO_KEY, k])  # the camera's draws, the target's
        camera = camera_model_from_spec(jitter_camera(rng, scene.plan.camera, spec.camera_jitter_m,
                                                      spec.camera_orbit_deg))
        # What the robot perceives: the scene camera, as the benchmark's observation.
        seen = render(world, scene.camera, scene.plan.lighting, scene.body_to_class, scene.robot_parts)
        classes = sorted({scene.body_to_class_name[b] for b in visible_products(world, scene, seen)})
        if not classes:
            return "no product clearly visible"
        target = classes[int(rng.integers(len(classes)))]
        obs = Observation(rgb=seen.rgb, depth_m=seen.depth_m, camera=seen.camera,
                          instruction=pick_instruction(target), target_class=target, scene_kind=scene.kind.name,
                          approach_world=scene.approach_world, instance_seg=seen.instance_seg,
                          class_seg=seen.class_seg, robot=VIDEO_EMBODIMENT)
        try:
            rect = OraclePolicy().act(obs).rect
        except PolicyError as exc:
            return f"the oracle has no grasp: {exc}"
        finger_names = [name for name, _, _ in embodiment.finger_joints]

        def snapshot() -> dict[str, Any]:
            fingers = world.client.getJointStates(arm.body, arm.finger_links)
            return {"T_world_base": arm.T_world_base.copy(), "q_rad": arm.q(),
                    "gripper_joints": {n: float(f[0]) for n, f in zip(finger_names, fingers)}}

        attempt, recorder, steps = record_evenly(
            world, lambda: attempt_grasp(world, scene, rect, seen.depth_m, seen.camera, target, self.physics),
            lambda stride: FrameRecorder(world, camera, scene.plan.lighting, stride, scene.robot_parts, snapshot),
            VIDEO_MAX_FRAMES)
        outcome = attempt.outcome
        n = len(recorder.frames)
        if not VIDEO_MIN_FRAMES <= n <= VIDEO_MAX_FRAMES:
            reason = "success" if outcome.success else outcome.reason.value
            return f"{n} frames: the attempt ({reason}) took {steps} physics steps"
        return self._video_files(k, seed, embodiment, camera, target, attempt, recorder, steps)

    def _video_files(self, k: int, seed: int, embodiment, camera, target: str, attempt, recorder,
                     steps: int) -> tuple[dict[str, Any], dict[str, bytes]]:
        """A recorded video's ``(meta, {file name: bytes})`` (layout in the format module): ``attempt`` (an
        :class:`~graspsim.sim.attempt.Attempt`) filmed by ``recorder`` (a :class:`~graspsim.video.FrameRecorder`
        with segmentation and snapshots) from ``camera``, ``steps`` physics steps in all."""
        import cv2

        from graspsim.scenes.instructions import pick_instruction

        files: dict[str, bytes] = {}
        frames = []
        for t, (rgb, seg, depth, snap, step) in enumerate(zip(recorder.frames, recorder.robot_segs, recorder.depths,
                                                              recorder.snapshots, recorder.frame_steps)):
            files[f"{frame_dir(t)}/{RGB}"] = encode_png(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            files[f"{frame_dir(t)}/{DEPTH}"] = encode_png(encode_depth(depth, camera.far_m))
            files[f"{frame_dir(t)}/{ROBOT_SEG}"] = encode_png(seg)
            frames.append({"frame": t, "step": step, "q_rad": snap["q_rad"], "gripper_joints": snap["gripper_joints"],
                           "robot_px": _part_px(seg)})
        command, outcome = attempt.command, attempt.outcome
        meta = {
            "video_id": video_id(embodiment.name, k), "scene_seed": int(seed), "embodiment": embodiment.name,
            "split": embodiment.split, "video": k, "K": camera.K, "T_world_camera": camera.T_world_camera,
            "width": camera.width, "height": camera.height, "near_m": camera.near_m, "far_m": camera.far_m,
            "target_class": target, "instruction": pick_instruction(target),
            "rect": None if attempt.rect is None else attempt.rect.to_dict(),
            "T_world_grasp": None if command is None else command.T_world_grasp,
            "opening_m": None if command is None else command.opening_m,
            "outcome": outcome.to_dict(), "success": outcome.success,
            "reason": None if outcome.reason is None else outcome.reason.value,
            "time_step_s": self.physics.time_step_s, "attempt_steps": steps, "stride": recorder.stride,
            "frame_steps": recorder.frame_steps, "T_world_base": recorder.snapshots[0]["T_world_base"],
            "joint_names": list(embodiment.arm_joints), "frames": frames,
        }
        files[META] = encode_meta(meta)
        return meta, files

    def run(self, root: Path, seed: int) -> dict[str, Any]:
        """Render and write scene ``seed`` under ``root``; a small status dict for the parent."""
        from graspsim.sim.scene import SceneUnavailableError

        t0 = time.perf_counter()
        try:
            files, status = self.render_scene(seed)
        except SceneUnavailableError as exc:
            return {"seed": seed, "skipped": str(exc)}
        write_dir(scene_dir(root, self.suite.first_seed, seed), files)
        out = {"seed": seed, "seconds": time.perf_counter() - t0, "skipped_views": len(status["skipped_views"]),
               "views": [{k: v[k] for k in ("embodiment", "robot_px", "unoccluded_px", "occluded_fraction",
                                            "attempts", "at_product")} for v in status["views"]]}
        if "videos" in status:
            out.update(skipped_videos=len(status["skipped_videos"]), videos=[
                {"seconds": sec, "frames": len(v["frames"]), "success": v["success"],
                 "robot_px": [f["robot_px"] for f in v["frames"]]}
                for v, sec in zip(status["videos"], status["video_seconds"])])
        return out

    def close(self) -> None:
        self.world.close()


def manifest_for(spec: RobotViewSpec, seeds: list[int]) -> dict[str, Any]:
    """The dataset's manifest.json (see :mod:`graspsim.data.robot_views_format`)."""
    import graspsim
    from graspsim.scenes.suites import get_suite
    from graspsim.sim.embodiments import get_embodiment

    suite = get_suite(spec.suite)
    return {
        "format_version": FORMAT_VERSION, "dataset": DATASET, "suite": suite.name, "kind": suite.kind,
        "variant_split": suite.variant_split,
        "embodiments": {n: get_embodiment(n).to_json() for n in spec.embodiments},
        "views_per_scene": spec.views_per_scene, "scene_seeds": sorted(seeds), "skipped": {},
        # Only with videos: the manifest of a dataset without them stays as it was (and resumes as before).
        **({"videos_per_scene": spec.videos_per_scene} if spec.videos_per_scene else {}),
        "splits": ("train / test scenes come from the *-train / *-test suites (disjoint seeds); the unseen "
                   "embodiment (embodiments.<name>.split == 'unseen') is for evaluation only"),
        "config": {"width": spec.width, "height": spec.height, "renderer": spec.renderer, "physics": spec.physics,
                   "views": {"camera_jitter_m": spec.camera_jitter_m, "camera_orbit_deg": spec.camera_orbit_deg,
                             "min_robot_fraction": spec.min_robot_fraction,
                             "sampler": spec.sampler},
                   **({"videos": {"embodiment": VIDEO_EMBODIMENT, "policy": "oracle", "min_frames": VIDEO_MIN_FRAMES,
                                  "max_frames": VIDEO_MAX_FRAMES}} if spec.videos_per_scene else {}),
                   "graspsim_version": graspsim.__version__},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def render_robot_views(suite: str, scenes: int, out_dir: Path, embodiments: str | tuple[str, ...] = "all",
                       views_per_scene: int = DEFAULT_VIEWS_PER_SCENE, seed: int = 0, workers: int = 1,
                       resume: bool = False, width: int = 640, height: int = 480, renderer: str = "auto",
                       progress: bool = True, camera_jitter_m: float = DEFAULT_CAMERA_JITTER_M,
                       min_robot_fraction: float = DEFAULT_MIN_ROBOT_FRACTION,
                       physics: PhysicsConfig | None = None,
                       videos_per_scene: int = DEFAULT_VIDEOS_PER_SCENE) -> dict[str, Any]:
    """Render robot views of scenes ``seed .. seed + scenes - 1`` of ``suite`` into ``out_dir``; a summary dict.

    ``embodiments``: names, or a comma-separated string of names and the words
    ``seen`` / ``unseen`` / ``all`` (:func:`~graspsim.sim.embodiments.parse_embodiments`).
    The summary has the views written and skipped, views per second (wall
    clock), and per embodiment the mean visible robot fraction of the image,
    the mean and median occluded fraction of the whole robot, and the
    attempts per kept pose. With ``videos_per_scene`` > 0 (grasp videos by the
    Panda, module docstring; the Panda must be among ``embodiments``) also
    ``videos`` (the summary of :func:`_video_stats`).

    Raises :class:`~graspsim.scenes.suites.UnknownSuiteError`, ValueError
    (scenes outside the suite, an unknown embodiment, bad numbers) and
    :class:`~graspsim.runs.RunDirError` (non-empty ``out_dir`` without
    ``resume``, or a resume with other settings).
    """
    from graspsim.scenes.suites import get_suite
    from graspsim.sim.embodiments import parse_embodiments

    names = parse_embodiments(embodiments if isinstance(embodiments, str) else ",".join(embodiments))
    if views_per_scene < 1:
        raise ValueError(f"views per scene must be at least 1, got {views_per_scene}")
    if not 0.0 <= min_robot_fraction < 1.0 or camera_jitter_m < 0:
        raise ValueError("min_robot_fraction must be in [0, 1) and camera_jitter_m >= 0")
    check_videos(videos_per_scene, names)
    suite_obj = get_suite(suite)
    seeds = suite_obj.scene_seeds(seed, scenes)
    spec = RobotViewSpec(suite=suite_obj.name, embodiments=names, views_per_scene=views_per_scene, width=width,
                         height=height, renderer=renderer, physics=(physics or PhysicsConfig()).to_dict(),
                         camera_jitter_m=camera_jitter_m, min_robot_fraction=min_robot_fraction,
                         videos_per_scene=int(videos_per_scene))
    out_dir = Path(out_dir)
    fan = render_scenes(out_dir, manifest_for(spec, seeds), suite_obj.first_seed, seeds, RobotViewRenderer, spec,
                        workers, resume, progress, f"robot views {suite}")
    done, wall = fan["done"], fan["wall_s"]
    views = [v for r in done for v in r["views"]]
    videos = {}
    if videos_per_scene:
        videos["videos"] = _video_stats([v for r in done for v in r["videos"]], sum(r["skipped_videos"] for r in done),
                                        width * height)
    return {
        "out_dir": str(out_dir), "suite": suite_obj.name, "embodiments": list(names), "requested": len(seeds),
        "rendered": len(done), "already_done": fan["already_done"], "skipped": fan["skipped"],
        "removed_temp_dirs": fan["removed_temp_dirs"], "views": len(views), "skipped_views": sum(r["skipped_views"] for r in done),
        "wall_s": wall, "views_per_s": len(views) / wall if views and wall > 0 else 0.0, "workers": workers,
        "per_embodiment": {n: _view_stats([v for v in views if v["embodiment"] == n], width * height)
                           for n in names},
        **videos,
    }


def check_videos(videos_per_scene: Any, embodiments: tuple[str, ...]) -> int:
    """``videos_per_scene`` as an int; ValueError (one line) unless it is a whole number >= 0 and, when > 0,
    the Panda (:data:`VIDEO_EMBODIMENT`, the robot that executes the grasps) is among ``embodiments``."""
    if isinstance(videos_per_scene, bool) or not isinstance(videos_per_scene, (int, np.integer)) \
            or videos_per_scene < 0:
        raise ValueError(f"--videos takes a whole number of grasp videos per scene (0 or more), got "
                         f"{videos_per_scene!r}")
    if videos_per_scene and VIDEO_EMBODIMENT not in embodiments:
        raise ValueError(f"--videos needs {VIDEO_EMBODIMENT} among --embodiments (got {', '.join(embodiments)}): "
                         f"the grasps of videos are executed by the Panda only")
    return int(videos_per_scene)


def _video_stats(videos: list[dict[str, Any]], skipped: int, image_px: int) -> dict[str, Any]:
    """The video figures ``render-robot-views`` prints: videos written and skipped, seconds per video (worker
    wall clock: perception, oracle, dry run, recorded run, PNG encoding), frames per video, the share of
    successful attempts and the mean robot fraction of a frame (whole, arm, gripper)."""
    if not videos:
        return {"written": 0, "skipped": skipped}
    px = [f for v in videos for f in v["robot_px"]]
    return {"written": len(videos), "skipped": skipped,
            "seconds_per_video": float(np.mean([v["seconds"] for v in videos])),
            "frames_per_video": float(np.mean([v["frames"] for v in videos])),
            "success": float(np.mean([v["success"] for v in videos])),
            **{f"{p}_fraction": float(np.mean([f[p] for f in px]) / image_px) for p in ("whole", "arm", "gripper")}}


def _view_stats(views: list[dict[str, Any]], image_px: int) -> dict[str, Any]:
    """Means over the views of one embodiment (the figures ``render-robot-views`` prints)."""
    if not views:
        return {"views": 0}
    occluded = np.array([v["occluded_fraction"]["whole"] for v in views])
    return {"views": len(views),
            **{f"{p}_fraction": float(np.mean([v["robot_px"][p] for v in views]) / image_px)
               for p in ("whole", "arm", "gripper")},
            "occluded_mean": float(occluded.mean()), "occluded_median": float(np.median(occluded)),
            "occluded_over_half": float(np.mean(occluded > 0.5)),
            "at_product": float(np.mean([v["at_product"] for v in views])),
            "attempts_per_pose": float(np.mean([v["attempts"] for v in views]))}
