"""On-disk format of a robot-views dataset (``graspsim render-robot-views``; format version 1), and its reader.

Robot-segmentation data: the scenes of a suite with a robot reaching into them,
each image with its robot mask (arm, gripper, whole robot), for several robots
(:mod:`graspsim.sim.embodiments`). numpy + OpenCV only. A directory ``DIR``
holds::

    DIR/manifest.json
    DIR/shards/shard-XXXX/scene-<seed>/meta.json
    DIR/shards/shard-XXXX/scene-<seed>/<embodiment>-<kk>/{rgb.png, depth.png, robot_seg.png, meta.json}

Shards and scene directories as in :mod:`graspsim.data.format` (100 scenes of
the suite per shard, ``scene-<seed>``); a scene directory is written
atomically with all its views (temp directory, every file fsync'd, the scene's
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
  ``views`` (``camera_jitter_m``, ``min_robot_fraction``, ``sampler``: the
  :class:`~graspsim.sim.embodiments.SamplerConfig`), ``graspsim_version``.
  ``--resume`` refuses other settings, other embodiments or another K.

A scene's ``meta.json``: ``scene_id``, ``scene_seed``, ``suite``, ``renderer``
(used), ``width``, ``height``, ``depth_scale``, ``plan`` (the scene plan as
JSON), ``views`` (the view directories written, in order) and
``skipped_views``: view id -> reason, for views with no robot pose found
(``"no pose"``, with the rejection counts) or with fewer than ``min_robot_px``
robot pixels visible (``"too few robot pixels"``, with the count).

A view ``<embodiment>-<kk>`` (``kk`` = 00 .. K-1; views of one embodiment in one
scene differ in robot pose and camera pose):

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
  (the tool pose reached), ``attempts`` and ``rejected`` (targets tried,
  why the others failed); and the pixels: ``robot_px`` (visible pixels per
  part: ``arm``, ``gripper``, ``whole``), ``unoccluded_px`` (the same robot
  rendered alone from the same camera), ``occluded_fraction`` per part
  (``1 - robot_px / unoccluded_px``; 0 for a part with no pixels; the part of
  the robot hidden by boards and products).

Videos (frame sequences of grasp executions with per-frame masks) are not in
this format yet: they will be written as views whose directory holds
``frames/<t>/{rgb.png, depth.png, robot_seg.png}`` plus the view's meta.json,
from the attempt-frame recorder of the pick loop (``graspsim/video.py``, being
built beside this), so the reader below will list them with the images.
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


def check_robot_views(root: str | Path) -> tuple[dict[str, Any], list[Path]]:
    """``(manifest, view directories)`` of a robot-views dataset, views in shard, scene, view order;
    :class:`~graspsim.data.format.DatasetError` with a one-line reason otherwise."""
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
    views = [scene / v for scene in iter_scene_dirs(root) for v in _scene_meta(scene)["views"]]
    if not views:
        raise DatasetError(f"dataset {root} holds no complete robot view")
    return manifest, views


def _scene_meta(scene_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((Path(scene_dir) / META).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{Path(scene_dir) / META} is damaged: not valid JSON ({exc})") from None


def read_view(path: str | Path) -> dict[str, Any]:
    """One view as arrays: ``rgb`` (H, W, 3) uint8, ``depth_m`` (H, W) float32 metres (0 = no depth),
    ``robot_seg`` (H, W) uint8 (0 / 1 arm / 2 gripper), ``K`` (3, 3), ``T_world_camera`` (4, 4) and ``meta``."""
    import cv2

    path = Path(path)
    if not is_complete(path):
        raise DatasetError(f"{path} is not a complete robot view (no {META})")
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{path / META} is damaged: not valid JSON ({exc})") from None
    return {
        "rgb": cv2.cvtColor(_imread(path / RGB, cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB),
        "depth_m": decode_depth(_imread(path / DEPTH, cv2.IMREAD_UNCHANGED)),
        "robot_seg": _imread(path / ROBOT_SEG, cv2.IMREAD_UNCHANGED),
        "K": np.asarray(meta["K"], dtype=np.float64),
        "T_world_camera": np.asarray(meta["T_world_camera"], dtype=np.float64),
        "meta": meta,
    }
