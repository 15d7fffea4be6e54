"""On-disk format of a robot-views dataset (``graspsim render-robot-views``; format version 1), and its reader.

Robot-segmentation data: the scenes of a suite with a robot reaching into them,
each image with its robot mask (arm, gripper, whole robot), for several robots
(:mod:`graspsim.sim.embodiments`), and optionally videos of grasps executed by
the Panda with a mask per frame. numpy + OpenCV only. A directory ``DIR``
holds::

    DIR/manifest.json
    DIR/shards/shard-XXXX/scene-<seed>/meta.json
    DIR/shards/shard-XXXX/scene-<seed>/<embodiment>-<kk>/{rgb.png, depth.png, robot_seg.png, meta.json}
    DIR/shards/shard-XXXX/scene-<seed>/panda-video-<kk>/frames/<tt>/{rgb.png, depth.png, robot_seg.png}
    DIR/shards/shard-XXXX/scene-<seed>/panda-video-<kk>/meta.json          (only with --videos V > 0)

Shards and scene directories as in :mod:`graspsim.data.format` (100 scenes of
the suite per shard, ``scene-<seed>``); a scene directory is written
atomically with all its views and videos (temp directory, every file fsync'd, the scene's
``meta.json`` last, then renamed), so a scene is there whole or not at all and
``--resume`` renders the missing ones.

``manifest.json`` (strict JSON):

* ``format_version`` (1), ``dataset``: ``"robot_views"`` (what tells it from a
  grasp dataset), ``suite``, ``kind``, ``variant_split`` as for grasp datasets;
* ``embodiments``: name -> ``{title, split, model, arm_joints, arm_links,
  gripper_links}`` for each robot rendered (registry order). ``split`` is
  ``"seen"`` (a model may train on it) or ``"unseen"`` (held out: evaluation
  only; :data:`graspsim.sim.embodiments.EMBODIMENT_SPLITS`: the Panda and the
  KUKA seen, the xArm unseen). ``arm_links`` / ``gripper_links`` name the links
  labelled 1 / 2 (every link of the model is in one of them);
* ``views_per_scene`` (K), ``scene_seeds`` (sorted, merged over resumes),
  ``skipped``: ``{seed: reason}`` for scenes that could not be built;
* ``config``: ``width``, ``height``, ``renderer`` (requested), ``physics``,
  ``views`` (``camera_jitter_m``, ``camera_orbit_deg``, ``min_robot_fraction``,
  ``sampler``: the :class:`~graspsim.sim.embodiments.SamplerConfig`,
  ``across_views``: the share of views with an across camera, ``across_camera``:
  the suite's kind's eye boxes ``{name: [[x, y, z] low, [x, y, z] high]}`` and
  ``vertical_fov_deg`` ``[lo, hi]`` of
  :data:`graspsim.data.robot_views.ACROSS_CAMERAS`, with ``hidden_share``
  ``[lo, hi]`` and ``tries``), ``graspsim_version``.
  ``--resume`` refuses other settings, other embodiments or another K;
* only with videos: ``videos_per_scene`` (V) and ``config.videos``
  (``embodiment``: ``"panda"``, ``policy``: ``"oracle"``, ``min_frames`` 16,
  ``max_frames`` 32; with the KUKA or the xArm among the embodiments also
  ``planned``: those robots, ``pre_grasp_m``, ``grasp_tries``, ``transit_frames``,
  ``approach_frames`` and the planner's settings); ``--resume`` refuses another V (0 included: a dataset
  without videos has neither key, exactly as before videos existed).

A scene's ``meta.json``: ``scene_id``, ``scene_seed``, ``suite``, ``renderer``
(used), ``width``, ``height``, ``depth_scale``, ``plan`` (the scene plan as
JSON), ``views`` (the view directories written, in order) and
``skipped_views``: view id -> reason, for views with no robot pose found
(``"no pose"``, with the rejection counts) or with fewer than ``min_robot_px``
robot pixels visible (``"too few robot pixels"``, with the count). With
videos also ``videos`` (the video directories written, in order) and
``skipped_videos``: video id -> reason (``"no product clearly visible"``, ``"the
oracle has no grasp: ..."``, or ``"<n> frames: the attempt (<reason>) took <N>
physics steps"`` for an attempt too short for 16 frames: nothing reachable).

A view ``<embodiment>-<kk>`` (``kk`` = 00 .. K-1; views of one embodiment in one
scene differ in robot pose and camera pose). Its camera is one of two kinds
(``camera_placement.mode``): ``"scene"``, the scene camera swung about its target
by up to ``camera_orbit_deg`` and jittered (behind the robot's shoulder: the
benchmark's viewpoint, the robot in plain sight), or ``"across"``, a camera
looking at the tool point across the work area from one of the kind's eye
boxes (shelf: ``side``, right of the shelf; ``low``, in front below the lowest
board; ``high``, in front above the roof; table: ``far``, ``left``, ``right``),
chosen among up to ``tries`` draws for a robot partly hidden by boards and
products (ray tests along the robot's chain: ``hidden_share``):

* ``rgb.png``: (H, W, 3) uint8 RGB; ``depth.png``: (H, W) uint16 millimetres
  along the camera z axis, 0 = nothing hit (robot included);
* ``robot_seg.png``: (H, W) uint8, 0 = not the robot, 1 = arm, 2 = gripper
  (the whole robot = nonzero), from pybullet's per-link segmentation of the
  same render as ``rgb.png`` (what the camera sees: parts hidden behind shelf
  boards, products or other robot links are not labelled);
* ``meta.json``: ``view_id``, ``scene_seed``, ``embodiment``, ``split``,
  ``view`` (k), the camera: ``K`` (3x3 px), ``T_world_camera`` (4x4, OpenCV
  axes), ``width``, ``height``, ``near_m``, ``far_m``; the robot:
  ``T_world_base`` (4x4, its base link), ``joint_names`` and ``q_rad`` (arm
  joints, rad), ``gripper_joints`` (name -> rad or m), ``closure`` (0 open,
  1 closed); forward kinematics of the model from these gives every link's
  pose (:class:`~graspsim.sim.embodiments.RobotBody`); how it was drawn:
  ``T_world_target`` (the tool pose sampled in the work area), ``T_world_tcp``
  (the tool pose reached), ``target`` (``"product"``: a grasp of a product,
  ``"reach"``: in among the products, deep in a shelf bay over them or at the
  table top beside one, ``"free"``: free space; :func:`~graspsim.sim.embodiments.work_target`),
  ``at_product`` (``target == "product"``), ``attempts`` and ``rejected`` (targets tried,
  why the others failed); ``camera_placement``: ``mode`` (``"scene"`` /
  ``"across"``) and for an across camera ``box`` (the eye box), ``vertical_fov_deg``,
  ``tries`` (placements drawn) and ``hidden_share`` (the kept placement's share of
  sight lines to the robot's chain that meet the scene first, a ray-test stand-in
  for ``occluded_fraction``); and the pixels: ``robot_px`` (visible pixels per
  part: ``arm``, ``gripper``, ``whole``), ``unoccluded_px`` (the same robot
  rendered alone from the same camera), ``occluded_fraction`` per part
  (``1 - robot_px / unoccluded_px``; 0 for a part with no pixels; the part of
  the robot hidden by boards and products).

A video ``panda-video-<kk>`` (``kk`` = 00 .. V-1): one grasp executed by the
Franka Panda, the one robot graspsim executes grasps with (the KUKA iiwa and
the xArm6 get planned motions instead: ``<robot>-video-<kk>``, at the end of
this section). The scene is
the settled scene of ``graspsim bench`` with the Panda parked on its mount; the
oracle (``graspsim bench --policy oracle``) plans a grasp on a target class
drawn uniformly among the classes the scene camera shows clearly, on the scene
camera's privileged view, and the attempt is executed as in the benchmark
(drive to the bay, joint motion to the pre-grasp pose, approach, close, lift,
hold; :mod:`graspsim.sim.execute`). It is filmed from a camera moved about the
scene camera like the image views' (the same orbit and jitter settings).
Frames are spread evenly over the attempt: with ``N`` physics steps in all, a
frame after every ``stride = ceil(N / 32)``-th step, so 16 to 32 frames (an
attempt of fewer than 16 steps, i.e. one where nothing moved, is skipped).
Every draw of video ``k`` comes from ``numpy.random.default_rng([scene seed,
crc32("panda"), crc32("video"), k])``: the camera, then the target.

* ``frames/<tt>/`` (``tt`` = 00 .. T-1, in time order): ``rgb.png``,
  ``depth.png`` and ``robot_seg.png`` as for a view (one render with
  segmentation per frame: the mask is the picture's; the whole robot = arm |
  gripper, i.e. nonzero);
* ``meta.json``: ``video_id``, ``scene_seed``, ``embodiment`` (``"panda"``),
  ``split``, ``video`` (k), the camera (``K``, ``T_world_camera``, ``width``,
  ``height``, ``near_m``, ``far_m``, fixed for the video); the task:
  ``target_class``, ``instruction``, ``rect`` (the oracle's rectangle in the
  scene camera's image, ``{x, y, w, h, theta}``, px / rad), ``T_world_grasp``
  (4x4) and ``opening_m`` (the command executed; null when the rectangle did not
  become one); the attempt: ``outcome`` (the benchmark's outcome row:
  ``success``, ``reason``, ``picked_class``, ``knocked_down``, ``dropped``,
  ``steps``, details), ``success`` and ``reason`` again at the top level;
  the timing: ``time_step_s`` (physics step, s), ``attempt_steps`` (N),
  ``stride``, ``frame_steps`` (the physics step after which each frame was
  taken: frame t shows the world after step ``(t + 1) * stride``, at ``step *
  time_step_s`` seconds into the attempt); the robot: ``T_world_base`` (4x4,
  ``panda_link0``, where the mount stands during the attempt), ``joint_names``
  and per frame ``frames[t]``: ``frame``, ``step``, ``q_rad`` (7 arm joints,
  rad), ``gripper_joints`` (finger joint name -> m) and ``robot_px`` (visible
  pixels per part, as for a view). Forward kinematics of the Panda from these
  gives every link's pose in every frame.

A video ``kuka_iiwa-video-<kk>`` / ``xarm6-video-<kk>``: a planned motion of
that robot from its parking (or upright) pose to a grasp of a product, posed
frame by frame in the settled scene, never simulated (the product stays; module
docstring of :mod:`graspsim.data.robot_views`). The same ``frames/<tt>/`` files
(32 frames); ``meta.json`` has the Panda video's camera keys, ``video_id``,
``scene_seed``, ``embodiment``, ``split`` (``"unseen"`` for the xArm), ``video``,
``T_world_base``, ``joint_names`` and per frame ``frame``, ``q_rad`` (the robot's
6 or 7 joints), ``gripper_joints`` and ``robot_px``; instead of the attempt:
``motion`` (``"planned"``), ``T_world_target`` (the grasp pose drawn),
``T_world_grasp`` (the tool pose reached: the last frame's), ``T_world_pregrasp``,
``closure`` (the gripper's opening, held), ``grasp_tries`` (grasps drawn for the video),
``grasp_attempts`` (the kept grasp's targets tried), ``start``
(``"park"`` / ``"upright"``), ``planner`` (its settings, ``nodes`` and
``waypoints`` of the path before and after shortcuts, ``length_rad``) and
``frame_steps`` null (no physics).

A reader: :func:`check_robot_videos` lists the videos of a dataset and
:func:`read_video` loads one as arrays; :func:`check_robot_views` /
:func:`read_view` serve the image views only, as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from graspsim.data.format import META, MANIFEST, DatasetError, _imread, decode_depth, is_complete, iter_scene_dirs

FORMAT_VERSION = 1
DATASET = "robot_views"
RGB, DEPTH, ROBOT_SEG = "rgb.png", "depth.png", "robot_seg.png"
#: Mask labels: 0 background, 1 arm, 2 gripper; the whole robot is every nonzero pixel.
PARTS = {"arm": 1, "gripper": 2}


def view_id(embodiment: str, k: int) -> str:
    """The directory name of view ``k`` of ``embodiment`` in a scene."""
    return f"{embodiment}-{int(k):02d}"


def video_id(embodiment: str, k: int) -> str:
    """The directory name of video ``k`` of ``embodiment`` in a scene."""
    return f"{embodiment}-video-{int(k):02d}"


def frame_dir(t: int) -> str:
    """Frame ``t``'s directory, relative to its video's."""
    return f"frames/{int(t):02d}"


def check_robot_views(root: str | Path) -> tuple[dict[str, Any], list[Path]]:
    """``(manifest, view directories)`` of a robot-views dataset, views in shard, scene, view order;
    :class:`~graspsim.data.format.DatasetError` with a one-line reason otherwise."""
    manifest = _manifest(root)
    views = [scene / v for scene in iter_scene_dirs(root) for v in _scene_meta(scene)["views"]]
    if not views:
        raise DatasetError(f"dataset {root} holds no complete robot view")
    return manifest, views


def check_robot_videos(root: str | Path) -> tuple[dict[str, Any], list[Path]]:
    """``(manifest, video directories)`` of a robot-views dataset, videos in shard, scene, video order;
    :class:`~graspsim.data.format.DatasetError` with a one-line reason otherwise (also for a dataset
    rendered without ``--videos``)."""
    manifest = _manifest(root)
    if not manifest.get("videos_per_scene"):
        raise DatasetError(f"dataset {root} has no videos (render them with `graspsim render-robot-views "
                           f"--videos V`)")
    videos = [scene / v for scene in iter_scene_dirs(root) for v in _scene_meta(scene).get("videos", [])]
    if not videos:
        raise DatasetError(f"dataset {root} holds no complete robot video")
    return manifest, videos


def _manifest(root: str | Path) -> dict[str, Any]:
    """The manifest of the robot-views dataset ``root`` (DatasetError naming what is wrong otherwise)."""
    root = Path(root)
    if not (root / MANIFEST).is_file():
        raise DatasetError(f"{root} is not a rendered dataset (no {MANIFEST}; make one with "
                           "`graspsim render-robot-views`)")
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{root / MANIFEST} cannot be read: {exc}") from None
    if manifest.get("dataset") != DATASET:
        raise DatasetError(f"{root} is a grasp dataset, not robot views (render those with "
                           "`graspsim render-robot-views`)")
    return manifest


def _scene_meta(scene_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(scene_dir) / META).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{Path(scene_dir) / META} is damaged: not valid JSON ({exc})") from None


def read_view(path: str | Path) -> dict[str, Any]:
    """One view as arrays: ``rgb`` (H, W, 3) uint8, ``depth_m`` (H, W) float32 metres (0 = no depth),
    ``robot_seg`` (H, W) uint8 (0 / 1 arm / 2 gripper), ``K`` (3, 3), ``T_world_camera`` (4, 4) and ``meta``."""
    path = Path(path)
    meta = _item_meta(path, "view")
    return {**_read_images(path), "K": np.asarray(meta["K"], dtype=np.float64),
            "T_world_camera": np.asarray(meta["T_world_camera"], dtype=np.float64), "meta": meta}


def read_video(path: str | Path) -> dict[str, Any]:
    """One video as arrays over its T frames: ``rgb`` (T, H, W, 3) uint8, ``depth_m`` (T, H, W) float32 metres
    (0 = no depth), ``robot_seg`` (T, H, W) uint8 (0 / 1 arm / 2 gripper; the whole robot = nonzero),
    ``q_rad`` (T, dof) arm joints per frame, ``frame_steps`` (T,) int physics steps (None for a planned motion,
    which has no physics), ``K`` (3, 3),
    ``T_world_camera`` (4, 4) (fixed for the video) and ``meta``."""
    path = Path(path)
    meta = _item_meta(path, "video")
    frames = [_read_images(path / frame_dir(t)) for t in range(len(meta["frames"]))]
    return {**{key: np.stack([f[key] for f in frames]) for key in ("rgb", "depth_m", "robot_seg")},
            "q_rad": np.asarray([f["q_rad"] for f in meta["frames"]], dtype=np.float64),
            "frame_steps": None if meta["frame_steps"] is None else np.asarray(meta["frame_steps"], dtype=np.int64),
            "K": np.asarray(meta["K"], dtype=np.float64),
            "T_world_camera": np.asarray(meta["T_world_camera"], dtype=np.float64), "meta": meta}


def _item_meta(path: Path, what: str) -> dict[str, Any]:
    """The meta.json of a view or video directory (DatasetError when it is missing or damaged)."""
    if not is_complete(path):
        raise DatasetError(f"{path} is not a complete robot {what} (no {META})")
    try:
        return json.loads((path / META).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{path / META} is damaged: not valid JSON ({exc})") from None


def _read_images(path: Path) -> dict[str, np.ndarray]:
    """``rgb``, ``depth_m`` and ``robot_seg`` of one picture (a view's or a video frame's directory)."""
    import cv2

    return {"rgb": cv2.cvtColor(_imread(path / RGB, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB),
            "depth_m": decode_depth(_imread(path / DEPTH, cv2.IMREAD_UNCHANGED)),
            "robot_seg": _imread(path / ROBOT_SEG, cv2.IMREAD_UNCHANGED)}
