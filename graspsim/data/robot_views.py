"""Render robot-segmentation data (``graspsim render-robot-views``): robots reaching into the scenes, with masks.

For each scene of a suite (built and settled as ``graspsim render`` builds it,
products in place) and each embodiment (:mod:`graspsim.sim.embodiments`), K
views: the robot on its mount in a sampled pose with its tool in the work area
(:func:`~graspsim.sim.embodiments.sample_configuration`: at a product, reaching
in among the products, or in free space), rendered with pybullet's per-link
segmentation into arm / gripper labels. The same pose rendered with the scene's
bodies moved out of the picture gives the pixels the scene hides, hence
``occluded_fraction``. Views whose robot covers fewer than
``min_robot_fraction`` of the image are skipped and recorded. The format is
:mod:`graspsim.data.robot_views_format`.

Cameras. The scene camera stands behind the robot's shoulder and looks along
its reach, so nothing stands between it and the robot: with cameras about it
only, 0 of 46 views of shelf-train scenes had a single robot pixel hidden by
the scene (and the tool targets then stayed at the products' front faces).
Two placements, drawn per view: a share ``1 - across_views`` orbit the scene
camera (a "scene" view: :func:`scene_camera_for_view`, the benchmark's
viewpoint, which the pick loop's robot masks will see), the others look across
the work area at the tool (an "across" view: :func:`across_camera`, eye boxes
per scene kind in :data:`ACROSS_CAMERAS`: beside the shelf, below or above it;
beyond or beside the table), and are chosen to see the robot partly hidden:
up to :data:`ACROSS_TRIES` placements are scored by ray tests along the
robot's kinematic chain (:func:`hidden_share`) and the first that hides a
share in :data:`ACROSS_HIDDEN_SHARE` is kept. Measured with the defaults
(``--scenes 6 --width 320 --height 240``, 3 robots x 4 views): views with at
least 10 % of the robot hidden (the summary's ``occluded_views``) shelf-train
34.7 % of 72 (across views 58 %, scene views 0 %), tabletop-train 42.9 % of 70
(across 70 %, scene 0 %); views skipped for too few robot pixels 0 of 72 and
2 of 72.

Every draw of a view comes from ``numpy.random.default_rng([scene seed,
embodiment key, k])`` (with ``across_views`` > 0 first the placement; a scene
view then draws its camera offset and then the pose, an across view the pose
and then its cameras), and the scene
world is rebuilt for every scene, so a view depends on its scene seed,
embodiment and index only: the same files with 1 or K workers, after a resume,
and whichever other embodiments are rendered beside it. Scenes are the unit of
work and of resume (one atomic directory each), through the shared pool
(:func:`graspsim.pool.run_jobs`) and the dataset directory checks of
:mod:`graspsim.data.writer`.

Videos (``--videos V``, default 0: none, and then the files are exactly those
without the option): per scene and robot, V videos: grasp executions by the Panda, the one robot
graspsim executes grasps with, and planned motions to a grasp by the other two (below). The
scene is built again, with the Panda parked on its mount as the benchmark
has it (:func:`~graspsim.sim.scene.add_arm`), and every video starts from that
state. Video ``k`` draws from ``numpy.random.default_rng([scene seed, Panda's
embodiment key, VIDEO_KEY, k])``: the camera first (the scene views' orbit and
jitter about the scene camera; videos have no across cameras), then the target, uniform over the classes the
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

The KUKA and the xArm (graspsim executes no grasps with them) get **planned-motion videos**, ``V`` per scene
each, in the image views' world: a straight joint-space line from the parking pose to a sampled pose crosses the
shelf in most draws (shelf-train scenes 0-2, 6 draws each: the KUKA 0 of 18 clear of the furniture and products
in all 24 frames, the xArm 4, the Panda 9), so the motion is planned (:mod:`graspsim.sim.joint_paths`). Video
``k`` draws from ``numpy.random.default_rng([scene seed, the robot's embodiment key, VIDEO_KEY, k])``: the camera
(as the Panda's videos), a grasp of a product (:func:`~graspsim.sim.embodiments.sample_configuration` with every
target at a product: collision-free, the mount slid to the product's bay), then the planner's samples and
shortcuts. The pre-grasp pose stands :data:`PLANNED_PRE_GRASP_M` back along the approach axis (inverse
kinematics from the grasp's joints); a grasp whose pre-grasp pose or straight approach touches the scene is
drawn again (:data:`PLANNED_GRASP_TRIES` at most); the robot starts at its mount's parking pose, or upright (all joints 0)
where that pose reaches into the furniture (the KUKA's at the shelf), and RRT-Connect (:data:`PLANNER`) finds a
path to the pre-grasp pose, shortened by random shortcuts; :data:`PLANNED_TRANSIT_FRAMES` frames evenly spaced
along it, then :data:`PLANNED_APPROACH_FRAMES` along the straight joint-space approach to the grasp (32 in all),
the gripper held at the grasp's opening. Every frame's pose is checked again (free within the sampler's
tolerances) before it is rendered. Poses are set, not simulated: the product is not lifted, and ``success`` is
null. A video is skipped, with its reason recorded, when no grasp pose, pre-grasp pose, free start, path or
approach is found. Measured (320x240, 1 worker, 6 scenes x 2 videos x 2 robots per suite, beside a training run
on the 2 cores): shelf-test 24 of 24 written, 4.4 s per video; tabletop-test 24 of 24, 2.4 s.
"""

from __future__ import annotations

import json
import math
import time
import zlib
from dataclasses import dataclass, field, replace
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
#: The share of views whose camera looks across the work area at the robot (:data:`ACROSS_CAMERAS`) instead of
#: orbiting the scene camera. From behind the shoulder the camera looks along the arm's reach, so nothing stands
#: between it and the robot: 0 of 46 views of shelf-train scenes had any robot pixel hidden by the scene. The
#: rest (40 %) keep the benchmark's viewpoint, the one the pick loop's robot masks are for.
DEFAULT_ACROSS_VIEWS = 0.6
#: An across camera is kept when the scene hides this share of the robot's sight lines (:func:`hidden_share`):
#: partly hidden, neither in plain sight nor gone ...
ACROSS_HIDDEN_SHARE = (0.2, 0.7)
#: ... trying at most this many placements (then the one nearest the band is kept).
ACROSS_TRIES = 24
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
#: Planned-motion videos (the robots other than the Panda, module docstring): the pre-grasp pose stands this far
#: back from the grasp along the approach axis (m) ...
PLANNED_PRE_GRASP_M = 0.10
#: ... the frames: this many from the parking pose to the pre-grasp pose (both included), then this many more
#: along the straight approach to the grasp (VIDEO_MAX_FRAMES in all) ...
PLANNED_TRANSIT_FRAMES, PLANNED_APPROACH_FRAMES = 24, 8
#: ... grasps drawn per video until one has a free pre-grasp pose and approach ...
PLANNED_GRASP_TRIES = 5
#: ... and the joint-space planner's settings (:mod:`graspsim.sim.joint_paths`): step and collision-check
#: resolution (rad), uniform samples before giving up, shortcut tries.
PLANNER = {"step_rad": 0.2, "check_rad": 0.02, "max_samples": 1500, "shortcut_tries": 60}


@dataclass(frozen=True)
class AcrossCamera:
    """Where a camera that looks across the work area at the robot's tool stands, and how far it zooms.

    ``eye_boxes``: named world-axis-aligned boxes ``{name: ((x, y, z) low corner, (x, y, z) high corner)}``
    (m, world frame) where the eye stands before the camera jitter (+-``camera_jitter_m`` per axis moves it on:
    the boxes keep that far from the furniture); ``vertical_fov_deg``: ``(lo, hi)``, the field of view. A view
    draws one box uniformly, the eye uniformly in it, then the field of view uniformly.
    """

    eye_boxes: dict[str, tuple[tuple[float, float, float], tuple[float, float, float]]] = field(hash=False)
    vertical_fov_deg: tuple[float, float]

    def to_dict(self) -> dict[str, Any]:
        return {"eye_boxes": {name: [list(lo), list(hi)] for name, (lo, hi) in self.eye_boxes.items()},
                "vertical_fov_deg": list(self.vertical_fov_deg)}


#: Across cameras per scene kind (world frame: :mod:`graspsim.scenes.layout`; the shelf's open front at y = 0,
#: 70 cm wide between side panels at x = +-0.36, boards at z = 0.42 / 0.68 / 0.94; the table top at z = 0.70,
#: x +-0.45, y +-0.35; the robots stand at -y). Shelf: "side": right of the shelf (the mounts stand left of the
#: tool, so the camera faces the gripper), from 35 cm in front of the side panel's front edge to 15 cm behind it,
#: looking along the rows: the side panel and the row's products hide what reaches into the bay; "low": in front of the shelf, below the
#: lowest board, looking up: the board under the gripper's level hides the reach; "high": in front, above the
#: roof, looking down: the board over the gripper's level hides it. Table: "far": beyond the table facing the
#: robot, "left" / "right": beside it, 10 to 40 cm above the top: the products stand between the camera and a
#: gripper among them. Fields of view from 35 degrees (zoomed in on the gripper: the image is then mostly
#: wrist and gripper) to the scene camera's.
ACROSS_CAMERAS: dict[str, AcrossCamera] = {
    "shelf": AcrossCamera({"side": ((0.60, -0.35, 0.35), (0.95, 0.15, 1.25)),
                           "low": ((-0.35, -0.85, 0.15), (0.35, -0.60, 0.30)),
                           "high": ((-0.35, -0.75, 1.40), (0.35, -0.50, 1.60))}, vertical_fov_deg=(35.0, 58.0)),
    "tabletop": AcrossCamera({"far": ((-0.55, 0.55, 0.80), (0.55, 0.85, 1.10)),
                              "left": ((-0.90, -0.20, 0.80), (-0.65, 0.45, 1.10)),
                              "right": ((0.65, -0.20, 0.80), (0.90, 0.45, 1.10))}, vertical_fov_deg=(35.0, 50.0)),
}


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
    across_views: float = DEFAULT_ACROSS_VIEWS
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
            name = robot.embodiment.name
            view_files, metas, why, _ = self._collect(lambda k: view_id(name, k), self.spec.views_per_scene,
                                                      lambda k, robot=robot: self._render_view(scene, robot, seed, k))
            files.update(view_files)
            views += metas
            skipped.update(why)
            robot.away()
        # The other robots' videos are planned motions in this world (the Panda's, executed, rebuild it below).
        planned = self._render_planned_videos(scene, [r for r in robots if r.embodiment.name != VIDEO_EMBODIMENT],
                                              seed) if self.spec.videos_per_scene else []
        meta = {"scene_id": scene_id(seed), "scene_seed": int(seed), "suite": self.suite.name,
                "renderer": self.world.renderer_name, "width": self.spec.width, "height": self.spec.height,
                "depth_scale": DEPTH_SCALE, "plan": json.loads(scene.plan.to_json()),
                "views": [v["view_id"] for v in views], "skipped_views": skipped}
        status = {"views": views, "skipped_views": skipped}
        if self.spec.videos_per_scene:  # the keys only with videos: a dataset without is byte for byte as before
            video_files, videos, skipped_videos, seconds = (
                self._render_videos(seed) if VIDEO_EMBODIMENT in self.spec.embodiments else ({}, [], {}, []))
            for more in planned:  # in the embodiments' order, after the Panda's
                video_files, videos = {**video_files, **more[0]}, videos + more[1]
                skipped_videos, seconds = {**skipped_videos, **more[2]}, seconds + more[3]
            files.update(video_files)
            meta.update(videos=[v["video_id"] for v in videos], skipped_videos=skipped_videos)
            status.update(videos=videos, skipped_videos=skipped_videos, video_seconds=seconds)
        files[META] = encode_meta(meta)
        return files, status

    def _render_view(self, scene, robot, seed: int, k: int) -> tuple[dict[str, Any], dict[str, bytes]] | str:
        """View ``k`` of ``robot`` in ``scene``: ``(meta, {file name: bytes})``, or why it is skipped."""
        import cv2

        from graspsim.sim.camera import camera_model_from_spec, render
        from graspsim.sim.embodiments import NoPoseFound, sample_configuration

        spec, embodiment = self.spec, robot.embodiment
        obstacles = list(scene.static_bodies) + scene.live_bodies
        products = [tuple(np.asarray(v) for v in self.world.client.getAABB(body)) for body in scene.live_bodies]
        rng = np.random.default_rng([int(seed), embodiment.key, k])  # draw order: module docstring
        # No draw for the mode when no view has an across camera (as jitter_camera draws nothing without jitter).
        across = spec.across_views > 0 and bool(rng.random() < spec.across_views)
        placement: dict[str, Any] = {"mode": "scene"}
        if not across:  # the camera first, then the pose, as before across cameras existed
            camera_spec = scene_camera_for_view(rng, scene.plan.camera, spec)
        try:
            pose = sample_configuration(robot, scene.kind, rng, obstacles, products, self.sampler)
        except NoPoseFound as exc:
            return str(exc)
        if across:  # aimed at the tool: the pose first
            camera_spec, placement = self._across_view_camera(rng, scene, robot, pose, obstacles)
        camera = camera_model_from_spec(camera_spec)
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
            "T_world_target": pose.T_world_target, "T_world_tcp": pose.T_world_tcp, "target": pose.target,
            "at_product": pose.at_product, "camera_placement": placement,
            "attempts": pose.attempts, "rejected": pose.rejected, "robot_px": visible, "unoccluded_px": unoccluded,
            "occluded_fraction": {p: (1.0 - visible[p] / unoccluded[p]) if unoccluded[p] else 0.0 for p in visible},
        }

        return meta, {RGB: encode_png(cv2.cvtColor(frames.rgb, cv2.COLOR_RGB2BGR)),
                      DEPTH: encode_png(encode_depth(frames.depth_m, camera.far_m)),
                      ROBOT_SEG: encode_png(frames.robot_seg), META: encode_meta(meta)}

    def _across_view_camera(self, rng: np.random.Generator, scene, robot, pose, obstacles: list[int]):
        """An across camera (:func:`across_camera`) for ``robot`` posed as ``pose``, chosen for a partly hidden
        robot: up to :data:`ACROSS_TRIES` placements are drawn, each scored by :func:`hidden_share` (sight lines
        only, no rendering); the first with a share in :data:`ACROSS_HIDDEN_SHARE` is kept, else the one nearest
        that band (the earliest on ties). ``(CameraSpec, record)``; the record adds ``tries`` and
        ``hidden_share`` (the kept placement's)."""
        from graspsim.sim.camera import camera_model_from_spec

        lo, hi = ACROSS_HIDDEN_SHARE
        points = robot_sight_points(robot)
        best = None
        for attempt in range(1, ACROSS_TRIES + 1):
            camera_spec, record = across_camera(rng, scene.plan.camera, ACROSS_CAMERAS[scene.kind.name],
                                                pose.T_world_tcp[:3, 3], self.spec.camera_jitter_m)
            share = hidden_share(self.world, camera_model_from_spec(camera_spec), robot.body, points, obstacles)
            miss = max(lo - share, share - hi, 0.0)
            if best is None or miss < best[0]:
                best = (miss, camera_spec, {**record, "tries": attempt, "hidden_share": share})
            if miss == 0.0:
                break
        _, camera_spec, record = best
        return camera_spec, {**record, "tries": attempt}

    def _render_planned_videos(self, scene, robots, seed: int) -> list[tuple[dict[str, bytes], list, dict, list]]:
        """Per robot of ``robots`` (not the Panda), its ``videos_per_scene`` planned-motion videos in ``scene``
        (:meth:`_render_planned_video`): ``(files, metas, {video id: why skipped}, seconds per video)`` each."""
        out = []
        for robot in robots:
            name = robot.embodiment.name
            out.append(self._collect(lambda k, name=name: video_id(name, k), self.spec.videos_per_scene,
                                     lambda k, robot=robot: self._render_planned_video(scene, robot, seed, k)))
            robot.away()
        return out

    @staticmethod
    def _collect(item_id, count: int, render_one) -> tuple[dict[str, bytes], list, dict, list]:
        """Items (views or videos) ``k = 0 .. count-1`` by ``render_one(k)`` (``(meta, {file name: bytes})`` or
        why it is skipped), each in directory ``item_id(k)``: ``(files, metas, {item id: why skipped}, seconds
        per item written)``."""
        files: dict[str, bytes] = {}
        metas, skipped, seconds = [], {}, []
        for k in range(count):
            t0 = time.perf_counter()
            result = render_one(k)
            vid = item_id(k)
            if isinstance(result, str):
                skipped[vid] = result
                continue
            meta, item_files = result
            files.update({f"{vid}/{name}": data for name, data in item_files.items()})
            metas.append(meta)
            seconds.append(time.perf_counter() - t0)
        return files, metas, skipped, seconds

    def _render_planned_video(self, scene, robot, seed: int, k: int) -> tuple[dict[str, Any], dict[str, bytes]] | str:
        """Video ``k`` of ``robot`` (not the Panda) in ``scene``, a planned motion (module docstring):
        ``(meta, {file name: bytes})``, or why it is skipped."""
        from graspsim.geometry import make_transform
        from graspsim.sim.camera import camera_model_from_spec, render
        from graspsim.sim.embodiments import NoPoseFound, collision_free, reach, sample_configuration
        from graspsim.sim.joint_paths import path_length, resample, rrt_connect, segment_free, shortcut

        spec, embodiment, world = self.spec, robot.embodiment, self.world
        obstacles = list(scene.static_bodies) + scene.live_bodies
        products = [tuple(np.asarray(v) for v in world.client.getAABB(body)) for body in scene.live_bodies]
        rng = np.random.default_rng([int(seed), embodiment.key, VIDEO_KEY, k])  # camera, grasp, plan, shortcuts
        camera = camera_model_from_spec(scene_camera_for_view(rng, scene.plan.camera, spec))
        grasps = replace(self.sampler, product_prob=1.0, reach_prob=0.0)
        closure = 0.0

        def is_free(q: np.ndarray) -> bool:
            robot.set_joints(q, closure)
            return collision_free(robot, obstacles, grasps)

        # A grasp whose pre-grasp pose is reachable and free, with a free straight approach: up to
        # PLANNED_GRASP_TRIES grasps drawn (the last one's failure is the video's reason when none is).
        for grasp_tries in range(1, PLANNED_GRASP_TRIES + 1):
            try:
                grasp = sample_configuration(robot, scene.kind, rng, obstacles, products, grasps)
            except NoPoseFound as exc:
                return f"no grasp pose: {exc}"
            closure = grasp.closure
            T_world_pregrasp = grasp.T_world_tcp @ make_transform(np.eye(3), [0.0, 0.0, -PLANNED_PRE_GRASP_M])
            q_pregrasp = reach(robot, T_world_pregrasp, grasp.q, grasps, closure)
            if q_pregrasp is None or not is_free(q_pregrasp):
                why = "the pre-grasp pose is out of reach or touches the scene"
            elif not segment_free(q_pregrasp, grasp.q, is_free, PLANNER["check_rad"]):
                why = "the straight approach from the pre-grasp pose touches the scene"
            else:
                break
        else:
            return f"{PLANNED_GRASP_TRIES} grasps drawn, none usable; the last: {why}"
        lo, hi = np.asarray(embodiment.q_lower), np.asarray(embodiment.q_upper)
        q_park = np.clip(np.asarray(embodiment.mount(scene.kind.name).q_park, dtype=np.float64), lo, hi)
        # From the mount's parking pose, or upright (all joints 0) where that one reaches into the furniture
        # (the KUKA's does at the shelf: it only seeds the inverse kinematics of image views).
        start = next((name for name, q in (("park", q_park), ("upright", np.zeros_like(q_park))) if is_free(q)), None)
        if start is None:
            return "the parking pose and the upright pose both touch the scene"
        q_start = q_park if start == "park" else np.zeros_like(q_park)
        path = rrt_connect(q_start, q_pregrasp, is_free, lo, hi, rng, PLANNER["step_rad"], PLANNER["check_rad"],
                           PLANNER["max_samples"])
        if path is None:
            return f"no collision-free path from the {start} pose in {PLANNER['max_samples']} samples"
        planned_nodes = len(path)
        path = shortcut(path, is_free, rng, PLANNER["check_rad"], PLANNER["shortcut_tries"])
        qs = np.concatenate([resample(path, PLANNED_TRANSIT_FRAMES),
                             resample([q_pregrasp, grasp.q], PLANNED_APPROACH_FRAMES + 1)[1:]])
        pictures = []
        for t, q in enumerate(qs):
            # Between the planner's checks a link moves up to ~2 cm: every frame shown is checked again, so no
            # picture has the robot inside the furniture or a product.
            if not is_free(q):
                return f"frame {t} of the planned motion touches the scene (between the planner's checks)"
            frames = render(world, camera, scene.plan.lighting, None, robot.parts)
            pictures.append((frames.rgb, frames.robot_seg, frames.depth_m, {
                "q_rad": q, "gripper_joints": robot.finger_joints()}))
        meta = {
            "video_id": video_id(embodiment.name, k), "scene_seed": int(seed), "embodiment": embodiment.name,
            "split": embodiment.split, "video": k, "motion": "planned", "K": camera.K,
            "T_world_camera": camera.T_world_camera, "width": camera.width, "height": camera.height,
            "near_m": camera.near_m, "far_m": camera.far_m,
            "T_world_target": grasp.T_world_target, "T_world_grasp": grasp.T_world_tcp,
            "T_world_pregrasp": T_world_pregrasp, "closure": closure, "grasp_tries": grasp_tries,
            "grasp_attempts": grasp.attempts,
            "start": start, "planner": {**PLANNER, "nodes": planned_nodes, "waypoints": len(path),
                        "length_rad": path_length(path)},
            "frame_steps": None, "T_world_base": grasp.T_world_base, "joint_names": list(embodiment.arm_joints),
        }
        return self._frames_files(camera, pictures, meta)

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

        def one(k: int):
            client.restoreState(start)
            return self._render_video(scene, seed, k)

        try:
            return self._collect(lambda k: video_id(VIDEO_EMBODIMENT, k), self.spec.videos_per_scene, one)
        finally:
            client.removeState(start)

    def _render_video(self, scene, seed: int, k: int) -> tuple[dict[str, Any], dict[str, bytes]] | str:
        """Video ``k`` of ``scene`` (the Panda parked in it): ``(meta, {file name: bytes})``, or why it is
        skipped."""
        from graspsim.envs.pick_env import visible_products
        from graspsim.policies.base import PolicyError
        from graspsim.policies.oracle import OraclePolicy
        from graspsim.scenes.instructions import pick_instruction
        from graspsim.sim.attempt import attempt_grasp
        from graspsim.sim.camera import camera_model_from_spec, render
        from graspsim.sim.embodiments import get_embodiment
        from graspsim.types import Observation
        from graspsim.video import FrameRecorder, record_evenly

        spec, world, arm = self.spec, self.world, scene.arm
        embodiment = get_embodiment(VIDEO_EMBODIMENT)
        rng = np.random.default_rng([int(seed), embodiment.key, VIDEO_KEY, k])  # the camera's draws, the target's
        camera = camera_model_from_spec(scene_camera_for_view(rng, scene.plan.camera, spec))
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
        from graspsim.scenes.instructions import pick_instruction

        pictures = [(rgb, seg, depth, {"step": step, "q_rad": snap["q_rad"], "gripper_joints": snap["gripper_joints"]})
                    for rgb, seg, depth, snap, step in zip(recorder.frames, recorder.robot_segs, recorder.depths,
                                                           recorder.snapshots, recorder.frame_steps)]
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
            "joint_names": list(embodiment.arm_joints),
        }
        return self._frames_files(camera, pictures, meta)

    @staticmethod
    def _frames_files(camera, pictures, meta: dict[str, Any]) -> tuple[dict[str, Any], dict[str, bytes]]:
        """A video's ``(meta, {file name: bytes})`` from its ``pictures`` in time order, each ``(rgb (H, W, 3)
        uint8, robot_seg (H, W) uint8, depth_m (H, W) float32, frame record)``: the frames' PNGs, and ``meta``
        with ``frames`` added (per frame ``frame``, the record's keys and ``robot_px``)."""
        import cv2

        files: dict[str, bytes] = {}
        frames = []
        for t, (rgb, seg, depth, record) in enumerate(pictures):
            files[f"{frame_dir(t)}/{RGB}"] = encode_png(cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
            files[f"{frame_dir(t)}/{DEPTH}"] = encode_png(encode_depth(depth, camera.far_m))
            files[f"{frame_dir(t)}/{ROBOT_SEG}"] = encode_png(seg)
            frames.append({"frame": t, **record, "robot_px": _part_px(seg)})
        meta = {**meta, "frames": frames}
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
               "views": [{**{k: v[k] for k in ("embodiment", "robot_px", "unoccluded_px", "occluded_fraction",
                                               "attempts", "at_product", "target")},
                          "camera": v["camera_placement"]["mode"]} for v in status["views"]]}
        if "videos" in status:
            out.update(skipped_videos=len(status["skipped_videos"]), videos=[
                {"seconds": sec, "frames": len(v["frames"]), "success": v.get("success"),
                 "robot_px": [f["robot_px"] for f in v["frames"]]}
                for v, sec in zip(status["videos"], status["video_seconds"])])
        return out

    def close(self) -> None:
        self.world.close()


def scene_camera_for_view(rng: np.random.Generator, scene_camera, spec: RobotViewSpec):
    """The scene camera (a :class:`~graspsim.scenes.plan.CameraSpec`) swung about its target by up to
    ``spec.camera_orbit_deg`` and jittered by ``spec.camera_jitter_m``
    (:func:`~graspsim.scenes.sampling.jitter_camera`): the camera of a "scene" view and of every video."""
    from graspsim.scenes.sampling import jitter_camera

    return jitter_camera(rng, scene_camera, spec.camera_jitter_m, spec.camera_orbit_deg)


def across_camera(rng: np.random.Generator, scene_camera, placement: AcrossCamera, tool_point: np.ndarray,
                  jitter_m: float):
    """A camera looking across the work area at the robot's tool: ``(CameraSpec, what was drawn)``.

    Draws, in order, one of ``placement``'s eye boxes (uniformly), the eye in it (uniform, three draws), the
    field of view, then moves the eye and the target (``tool_point`` (3,), world, m) by ``jitter_m``
    (:func:`~graspsim.scenes.sampling.jitter_camera`, without orbit), so the tool sits near, not at, the image
    centre. Image size and clipping planes are ``scene_camera``'s; image up is world +z. The record: ``mode``
    "across", ``box`` (the eye box's name), ``vertical_fov_deg``.
    """
    from graspsim.scenes.sampling import jitter_camera

    names = list(placement.eye_boxes)
    name = names[int(rng.integers(len(names)))]
    lo, hi = (np.asarray(c, dtype=np.float64) for c in placement.eye_boxes[name])
    eye = rng.uniform(lo, hi)
    fov = float(rng.uniform(*placement.vertical_fov_deg))
    spec = replace(scene_camera, eye_m=tuple(map(float, eye)), target_m=tuple(map(float, tool_point)),
                   up=(0.0, 0.0, 1.0), vertical_fov_deg=fov)
    return jitter_camera(rng, spec, jitter_m), {"mode": "across", "box": name, "vertical_fov_deg": fov}


def robot_sight_points(robot, spacing_m: float = 0.02) -> np.ndarray:
    """(N, 3) world points along ``robot``'s kinematic chain as posed: every ``spacing_m`` on the segments from
    each link's frame origin to its parent's, and from the tool link's origin to the tool point (between the
    fingertips). They lie inside or close to the links' bodies: a sight line to one meets the robot's surface
    first, unless something else stands in front (:func:`hidden_share`)."""
    c = robot.world.client
    origins = {i: robot.link_pose(i)[:3, 3] for i in robot.link_index.values()}
    segments = [(origins[c.getJointInfo(robot.body, i)[16]], origins[i]) for i in origins if i >= 0]
    segments.append((origins[robot.tcp_index], robot.T_world_tcp()[:3, 3]))
    points = []
    for a, b in segments:
        n = max(1, int(np.ceil(np.linalg.norm(b - a) / spacing_m)))
        points.append(a + np.linspace(0.0, 1.0, n + 1)[:, None] * (b - a))
    return np.concatenate(points)


def hidden_share(world, camera, robot_body: int, points: np.ndarray, scene_bodies: list[int]) -> float:
    """The share of ``points`` (N, 3) (:func:`robot_sight_points`) in ``camera``'s image (a
    :class:`~graspsim.types.CameraModel`) whose sight line from the camera first meets one of ``scene_bodies``
    rather than the robot (``robot_body``): pybullet ray tests on the collision shapes, no rendering. Points
    whose line meets neither (a chain segment outside the links' bodies) and points out of the picture do not
    count; 0.0 when none counts. A cheap stand-in for the rendered ``occluded_fraction``, to choose cameras."""
    T = camera.T_world_camera
    p_cam = (points - T[:3, 3]) @ T[:3, :3]  # camera frame (OpenCV: +z forward)
    z = p_cam[:, 2]
    uv = (p_cam[:, :2] / np.maximum(z, 1e-9)[:, None]) @ camera.K[:2, :2].T + camera.K[:2, 2]
    inside = (z > camera.near_m) & (uv[:, 0] >= 0) & (uv[:, 0] < camera.width) & (uv[:, 1] >= 0) \
        & (uv[:, 1] < camera.height)
    targets = points[inside]
    if not len(targets):
        return 0.0
    eye = T[:3, 3]
    # A little past each point: a point on the surface itself is then still met by its line.
    ends = targets + 0.01 * (targets - eye) / np.linalg.norm(targets - eye, axis=1)[:, None]
    hits = [h[0] for i in range(0, len(ends), 4000)
            for h in world.client.rayTestBatch([eye.tolist()] * len(ends[i:i + 4000]), ends[i:i + 4000].tolist())]
    scene = set(scene_bodies)
    robot = sum(h == robot_body for h in hits)
    hidden = sum(h in scene for h in hits)
    return hidden / (robot + hidden) if robot + hidden else 0.0


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
                             "sampler": spec.sampler, "across_views": spec.across_views,
                             "across_camera": {**ACROSS_CAMERAS[suite.kind].to_dict(),
                                               "hidden_share": list(ACROSS_HIDDEN_SHARE), "tries": ACROSS_TRIES}},
                   **({"videos": _videos_config(spec.embodiments)} if spec.videos_per_scene else {}),
                   "graspsim_version": graspsim.__version__},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


def render_robot_views(suite: str, scenes: int, out_dir: Path, embodiments: str | tuple[str, ...] = "all",
                       views_per_scene: int = DEFAULT_VIEWS_PER_SCENE, seed: int = 0, workers: int = 1,
                       resume: bool = False, width: int = 640, height: int = 480, renderer: str = "auto",
                       progress: bool = True, camera_jitter_m: float = DEFAULT_CAMERA_JITTER_M,
                       min_robot_fraction: float = DEFAULT_MIN_ROBOT_FRACTION,
                       physics: PhysicsConfig | None = None,
                       videos_per_scene: int = DEFAULT_VIDEOS_PER_SCENE,
                       across_views: float = DEFAULT_ACROSS_VIEWS) -> dict[str, Any]:
    """Render robot views of scenes ``seed .. seed + scenes - 1`` of ``suite`` into ``out_dir``; a summary dict.

    ``embodiments``: names, or a comma-separated string of names and the words
    ``seen`` / ``unseen`` / ``all`` (:func:`~graspsim.sim.embodiments.parse_embodiments`).
    The summary has the views written and skipped, views per second (wall
    clock), and per embodiment the mean visible robot fraction of the image,
    the mean and median occluded fraction of the whole robot, and the
    attempts per kept pose. With ``videos_per_scene`` > 0 (per robot: the Panda's
    executed grasps, the others' planned motions; module docstring) also
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
    if not 0.0 <= across_views <= 1.0:
        raise ValueError(f"--across-views is the share of views with an across camera, in [0, 1]; got "
                         f"{across_views}")
    check_videos(videos_per_scene)
    suite_obj = get_suite(suite)
    seeds = suite_obj.scene_seeds(seed, scenes)
    spec = RobotViewSpec(suite=suite_obj.name, embodiments=names, views_per_scene=views_per_scene, width=width,
                         height=height, renderer=renderer, physics=(physics or PhysicsConfig()).to_dict(),
                         camera_jitter_m=camera_jitter_m, min_robot_fraction=min_robot_fraction,
                         videos_per_scene=int(videos_per_scene), across_views=float(across_views))
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
        "occluded_views": float(np.mean([v["occluded_fraction"]["whole"] >= OCCLUDED_VIEW_FRACTION
                                         for v in views])) if views else 0.0,
        "per_embodiment": {n: _view_stats([v for v in views if v["embodiment"] == n], width * height)
                           for n in names},
        "per_camera": {mode: _view_stats([v for v in views if v["camera"] == mode], width * height)
                       for mode in ("scene", "across")},
        **videos,
    }


def check_videos(videos_per_scene: Any) -> int:
    """``videos_per_scene`` as an int; ValueError (one line) unless it is a whole number >= 0."""
    if isinstance(videos_per_scene, bool) or not isinstance(videos_per_scene, (int, np.integer)) \
            or videos_per_scene < 0:
        raise ValueError(f"--videos takes a whole number of grasp videos per scene (0 or more), got "
                         f"{videos_per_scene!r}")
    return int(videos_per_scene)


def _videos_config(embodiments: tuple[str, ...]) -> dict[str, Any]:
    """The manifest's ``config.videos``: the Panda's executed grasps as before (``embodiment``, the same keys
    when it is the only robot, so such datasets resume as they did) and, with other robots, ``planned``: which
    robots move by planned motions and with what settings."""
    config: dict[str, Any] = {"embodiment": VIDEO_EMBODIMENT, "policy": "oracle", "min_frames": VIDEO_MIN_FRAMES,
                              "max_frames": VIDEO_MAX_FRAMES}
    others = [n for n in embodiments if n != VIDEO_EMBODIMENT]
    if others:
        config["planned"] = {"embodiments": others, "pre_grasp_m": PLANNED_PRE_GRASP_M,
                             "grasp_tries": PLANNED_GRASP_TRIES,
                             "transit_frames": PLANNED_TRANSIT_FRAMES, "approach_frames": PLANNED_APPROACH_FRAMES,
                             **PLANNER}
    return config


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
            # over the executed grasps (the Panda's); planned motions grasp nothing
            "success": float(np.mean(executed)) if (executed := [v["success"] for v in videos
                                                                  if v["success"] is not None]) else None,
            **{f"{p}_fraction": float(np.mean([f[p] for f in px]) / image_px) for p in ("whole", "arm", "gripper")}}


#: A view counts as partly occluded in the summary when the scene hides at least this share of its robot.
OCCLUDED_VIEW_FRACTION = 0.1


def _view_stats(views: list[dict[str, Any]], image_px: int) -> dict[str, Any]:
    """Figures over some views (those of one embodiment, or of one camera mode): the ones ``render-robot-views``
    prints. ``occluded_quartiles``: the 25th, 50th and 75th percentiles of the whole robot's occluded fraction;
    ``occluded_views``: the share of views with at least :data:`OCCLUDED_VIEW_FRACTION` of it hidden."""
    if not views:
        return {"views": 0}
    occluded = np.array([v["occluded_fraction"]["whole"] for v in views])
    return {"views": len(views),
            **{f"{p}_fraction": float(np.mean([v["robot_px"][p] for v in views]) / image_px)
               for p in ("whole", "arm", "gripper")},
            "occluded_mean": float(occluded.mean()), "occluded_median": float(np.median(occluded)),
            "occluded_quartiles": [float(q) for q in np.percentile(occluded, [25, 50, 75])],
            "occluded_views": float(np.mean(occluded >= OCCLUDED_VIEW_FRACTION)),
            "occluded_over_half": float(np.mean(occluded > 0.5)),
            "at_product": float(np.mean([v["at_product"] for v in views])),
            "reach": float(np.mean([v["target"] == "reach" for v in views])),
            "attempts_per_pose": float(np.mean([v["attempts"] for v in views]))}
