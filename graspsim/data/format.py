"""On-disk format of a rendered grasp dataset (format version 1).

A dataset directory ``DIR`` holds::

    DIR/manifest.json
    DIR/shards/shard-XXXX/SCENEID/{rgb.png, depth.png, instance.png, class.png, part_seg.png, [robot_seg.png,]
                                   meta.json}

``manifest.json`` (strict JSON, written atomically):

* ``format_version`` (int, 1), ``suite`` (e.g. ``"tabletop-test"``), ``kind``
  (``"shelf"`` / ``"tabletop"``), ``variant_split`` (``"seen"`` / ``"unseen"``);
* ``robot`` (:data:`graspsim.types.ROBOTS`): ``"panda"`` (the default of
  ``graspsim render`` and ``render_dataset``): the Franka Panda stands on its
  mount (:class:`~graspsim.scenes.kinds.ArmMount`) at its parking place and pose
  in every image, exactly as ``PickEnv(robot="panda").reset`` shows the scene;
  ``"hand"``: no robot in the images (the floating hand exists only during an
  attempt). Datasets written before the robot was recorded have no ``robot``
  and show none (read them as ``"hand"``). ``--resume`` refuses another robot
  (naming ``robot``);
* ``scene_seeds``: every scene seed requested so far (sorted); ``skipped``:
  ``{seed: reason}`` for seeds whose scene could not be built;
* ``classes``: catalog class index -> name (``{"0": "soda_can", ...}``);
* ``parts``: class name -> its grasp part names in label order
  (:func:`graspsim.assets.parts.part_names`; ``{"soda_can": ["bottom", "body", "top"], ...}``);
* ``splits``: a note. There is no split inside a dataset: train / test /
  unseen data come from rendering the ``*-train`` / ``*-test`` / ``*-unseen``
  suites, whose scene-seed ranges are disjoint (``unseen`` also uses held-out
  product variants);
* ``config``: what generated the data: ``width``, ``height``, ``renderer``
  (requested; the one used is in each ``meta.json``), ``physics``
  (:class:`~graspsim.config.PhysicsConfig` as a dict), ``labels`` (the
  label-validation settings, :class:`graspsim.data.labels.LabelConfig`),
  ``graspsim_version``, and with ``--domain-rand light|full`` (training suites
  only) ``domain_rand``: the :class:`~graspsim.scenes.domain_rand.DomainRandSpec`
  as a dict (``level`` and every range; absent for unrandomised data).
  ``--resume`` refuses a directory whose config differs.

Scenes: ``SCENEID`` is ``scene-<seed>``; ``XXXX`` = ``(seed - suite first
seed) // 100`` zero-padded to 4 digits (100 scenes of the suite per shard).

* ``rgb.png``: (H, W, 3) uint8 RGB (as the robot camera sees it, lighting gain applied).
* ``depth.png``: (H, W) uint16, depth along the camera z axis in millimetres
  (rounded); 0 = no depth (nothing hit before the far plane). Metres =
  value / 1000 (``meta.depth_scale``).
* ``instance.png``: (H, W) uint16, 0 = not a product (background, furniture,
  floor), ``k + 1`` = product ``k`` of the scene plan (``meta.plan.products[k]``).
* ``class.png``: (H, W) uint8, 0 = not a product, ``c + 1`` = catalog class ``c``.
  Robot pixels are 0 in ``instance.png`` and ``class.png`` (not a product).
* ``part_seg.png``: (H, W) uint8 grasp parts, 0 = not a product, ``k + 1`` =
  part ``k`` of the pixel's product (``manifest.parts[class]``), from the same
  render: each product pixel deprojected into the product's settled frame and
  looked up in its part boxes (the env's privileged ``part_seg``,
  :func:`graspsim.sim.camera.part_segmentation`). Datasets from before it was
  stored have none.
* ``robot_seg.png`` (only with ``robot == "panda"``): (H, W) uint8, 0 = not the
  robot, 1 = the arm (pedestal link, links 1-7), 2 = the gripper (hand and both
  fingers), from pybullet's per-link segmentation of the same render as
  ``rgb.png`` (the env's privileged ``robot_seg``). With the default cameras the
  shelf's parking pose shows the arm and hand at the image's left edge (~8 % of
  the pixels), the table's only the hand at the bottom edge (~2.5 %, no arm
  link); neither hides a product (with EGL the arm's shadow also falls on the
  scene).
* ``meta.json``: ``scene_id``, ``scene_seed``, ``suite``, ``renderer`` (used),
  ``width``, ``height``, ``K`` (3x3, pixels), ``T_world_camera`` (4x4, OpenCV
  camera axes: x right, y down, z forward), ``approach_world`` (3,),
  ``depth_scale`` (0.001), ``plan`` (the :class:`~graspsim.scenes.plan.ScenePlan`
  as a JSON object; poses there are the *sampled* ones), ``robot`` (as in the
  manifest), with the arm ``arm``: the parked arm as the image shows it,
  ``T_world_base`` (4x4, ``panda_link0`` in the world), ``q_rad`` (7 arm joint
  angles) and ``finger_joints_m`` (2 finger joint positions; forward kinematics
  of pybullet_data's ``franka_panda/panda.urdf`` from these gives every link's
  pose), and ``objects``: one
  entry per product (also occluded ones) with ``product_index``, ``class_name``,
  ``class_index``, ``variant``, ``visible_px``, ``settled_pose`` (``position_m``,
  ``quat_xyzw`` after the scene settled: the pose the image shows),
  ``candidates_tried``, ``candidates_kept``, ``rejected`` (failure reason ->
  count) and ``grasps``: ``[{x, y, w, h, theta, quality, part}]``, rectangles in the
  convention of :class:`graspsim.types.GraspRect` (centre pixel, jaw opening
  ``w`` px, finger width ``h`` px, closing-axis angle ``theta`` rad in
  ``[-pi/2, pi/2)``), each one executed in simulation and held (see
  :mod:`graspsim.data.labels`); ``quality`` = the planner's score in [0, 1];
  ``part`` = the grasp part both fingers held in that execution (contact
  points at closure in the product's frame, :mod:`graspsim.sim.execute`; null
  when the two fingers were on different parts; absent in older datasets).
  Products with fewer than ``labels.min_visible_px`` visible pixels (scaled to
  the image area) have ``grasps: []`` and ``candidates_tried: 0``.
  With domain randomisation, ``domain_rand``: the scene's draw
  (:class:`~graspsim.scenes.domain_rand.Appearance`: ``level``, ``camera`` and
  ``lighting`` (also the plan's), ``tint`` (per-channel gain on ``rgb.png``),
  ``furniture_rgba``, ``floor_rgba``, ``background_rgb`` (top and bottom of the
  gradient painted where the camera hits nothing) and ``labels``: per plan
  product its random label design or null); depth, masks, poses and the
  labels' physics are those of the unrandomised scene.

Grasp labels measure the grasp, not the arm, whatever ``robot`` is: every
candidate is executed by the floating hand on its product alone (no arm, no
other product; :mod:`graspsim.data.labels`), so a label says the gripper holds
the product from that rectangle, not that the Panda can reach it from its mount
(``graspsim bench --robot panda`` measures that). The candidates are planned on
the product's mask as stored and the depth of the robot-free view (rendered
before the arm is added): the parked arm is not where a grasp is made, so its
pixels in ``depth.png`` are no obstacle to a label. As the parking poses hide no
product, every ``objects`` entry is the same for ``robot="panda"`` and
``robot="hand"``, and the robot-free depth is the stored one on every product
pixel, so the labels re-validate from the files on disk either way.

Crash safety: a scene is written to ``shard-XXXX/.tmp-SCENEID-PID`` (every
file fsync'd, ``meta.json`` last), then renamed into place with ``os.replace``;
a scene directory without ``meta.json`` is never produced, and stray ``.tmp-*``
directories of a killed run are removed by the next ``--resume``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np


FORMAT_VERSION = 1
MANIFEST = "manifest.json"
META = "meta.json"
SCENES_PER_SHARD = 100
DEPTH_SCALE = 0.001  # metres per depth.png unit
TMP_PREFIX = ".tmp-"
ROBOT_SEG = "robot_seg.png"
PART_SEG = "part_seg.png"


def scene_id(seed: int) -> str:
    return f"scene-{int(seed)}"


def scene_dir(root: Path, suite_first_seed: int, seed: int) -> Path:
    shard = (int(seed) - int(suite_first_seed)) // SCENES_PER_SHARD
    return Path(root) / "shards" / f"shard-{shard:04d}" / scene_id(seed)


def is_complete(path: Path) -> bool:
    """A scene directory is complete when its meta.json exists (it is written last)."""
    return (Path(path) / META).is_file()


def encode_depth(depth_m: np.ndarray, far_m: float | None = None) -> np.ndarray:
    """(H, W) metres -> uint16 millimetres; invalid, non-positive, at/after ``0.999 * far_m`` -> 0."""
    d = np.asarray(depth_m, dtype=np.float64)
    valid = np.isfinite(d) & (d > 0)
    if far_m is not None:
        valid &= d < 0.999 * far_m
    mm = np.where(valid, np.round(d / DEPTH_SCALE), 0)
    return np.clip(mm, 0, 65535).astype(np.uint16)


def decode_depth(depth_mm: np.ndarray) -> np.ndarray:
    """uint16 millimetres -> float32 metres (0 stays 0 = no depth)."""
    return (np.asarray(depth_mm, dtype=np.float32) * np.float32(DEPTH_SCALE)).astype(np.float32)


def encode_instance(instance_seg: np.ndarray, body_to_product: dict[int, int]) -> np.ndarray:
    """pybullet body ids -> uint16 (0 background/furniture, k + 1 = plan product k)."""
    inst = np.asarray(instance_seg)
    out = np.zeros(inst.shape, dtype=np.uint16)
    for body, k in body_to_product.items():
        out[inst == body] = k + 1
    return out


def encode_class(class_seg: np.ndarray) -> np.ndarray:
    """Catalog class (-1 = none) -> uint8 (0 none, c + 1 = class c)."""
    c = np.asarray(class_seg)
    return np.where(c >= 0, c + 1, 0).astype(np.uint8)


def _imread(path: Path, flags: int) -> np.ndarray:
    import cv2

    image = cv2.imread(str(path), flags) if Path(path).is_file() else None
    if image is None:
        raise DatasetError(f"{path} is missing or damaged (not a readable image)")
    return image


def read_scene(path: Path) -> dict[str, Any]:
    """One scene directory as numpy arrays + its meta (numpy and OpenCV only).

    Returns ``rgb`` (H, W, 3) uint8, ``depth_m`` (H, W) float32 metres (0 = no
    depth), ``depth_mm`` (H, W) uint16, ``instance`` (H, W) uint16 and ``class_map``
    (H, W) uint8 as stored (0 = none; see the module docstring), ``robot_seg``
    (H, W) uint8 (0 none, 1 arm, 2 gripper) or None when the scene has no arm, ``part_seg`` (H, W)
    uint8 (0 none, k + 1 = grasp part k) or None in datasets from before it was stored, ``K`` (3, 3),
    ``T_world_camera`` (4, 4), ``grasps`` (N, 5) float64 ``[x, y, w, h, theta]``,
    ``grasp_quality`` (N,), ``grasp_classes`` (N,) int64 catalog class,
    ``grasp_products`` (N,) int64 product index, ``grasp_parts`` (N,) list of the part each
    label held (None where unknown), and ``meta`` (the parsed meta.json).
    """
    import cv2

    path = Path(path)
    if not is_complete(path):
        raise FileNotFoundError(f"{path} is not a complete scene (no {META})")
    try:
        meta = json.loads((path / META).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{path / META} is damaged: not valid JSON ({exc})") from None
    rgb = cv2.cvtColor(_imread(path / "rgb.png", cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    depth_mm = _imread(path / "depth.png", cv2.IMREAD_UNCHANGED)
    instance = _imread(path / "instance.png", cv2.IMREAD_UNCHANGED)
    class_map = _imread(path / "class.png", cv2.IMREAD_UNCHANGED)
    # The file is what counts (meta's robot is absent in datasets from before it was recorded), but a
    # scene whose meta has the arm and no mask is damaged, not a scene without a robot.
    robot_seg = None
    if meta.get("robot") == "panda" or (path / ROBOT_SEG).exists():
        robot_seg = _imread(path / ROBOT_SEG, cv2.IMREAD_UNCHANGED)
    part_seg = _imread(path / PART_SEG, cv2.IMREAD_UNCHANGED) if (path / PART_SEG).exists() else None
    grasps = [(g, obj) for obj in meta["objects"] for g in obj["grasps"]]
    return {
        "rgb": rgb,
        "depth_mm": depth_mm,
        "depth_m": decode_depth(depth_mm),
        "instance": instance,
        "class_map": class_map,
        "robot_seg": robot_seg,
        "part_seg": part_seg,
        "K": np.asarray(meta["K"], dtype=np.float64),
        "T_world_camera": np.asarray(meta["T_world_camera"], dtype=np.float64),
        "grasps": np.asarray([[g[k] for k in ("x", "y", "w", "h", "theta")] for g, _ in grasps],
                             dtype=np.float64).reshape(-1, 5),
        "grasp_quality": np.asarray([g["quality"] for g, _ in grasps], dtype=np.float64),
        "grasp_classes": np.asarray([obj["class_index"] for _, obj in grasps], dtype=np.int64),
        "grasp_products": np.asarray([obj["product_index"] for _, obj in grasps], dtype=np.int64),
        "grasp_parts": [g.get("part") for g, _ in grasps],
        "meta": meta,
    }


def iter_scene_dirs(root: Path) -> list[Path]:
    """Complete scene directories of a dataset, sorted by shard then scene id."""
    return [d for d in sorted(Path(root).glob("shards/*/*")) if not d.parent.name.startswith(".")
            and d.is_dir() and not d.name.startswith(TMP_PREFIX) and is_complete(d)]


class DatasetError(ValueError):
    """The data directory is missing, not a rendered dataset, or holds no usable scene."""


def check_dataset(data_dir: str | Path) -> tuple[dict, list[Path]]:
    """``(manifest, scene_dirs)`` of a rendered dataset; :class:`DatasetError` with a one-line reason otherwise."""
    root = Path(data_dir)
    if not root.exists():
        raise DatasetError(f"data directory {root} does not exist (render one with `graspsim render`)")
    if not root.is_dir():
        raise DatasetError(f"{root} is not a directory")
    if not (root / MANIFEST).is_file():
        raise DatasetError(f"{root} is not a rendered dataset (no {MANIFEST}; make one with `graspsim render`)")
    try:
        manifest = json.loads((root / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DatasetError(f"{root / MANIFEST} cannot be read: {exc}") from None
    if isinstance(manifest, dict) and manifest.get("dataset") == "robot_views":
        raise DatasetError(f"{root} holds robot views (graspsim render-robot-views), not a grasp dataset")
    scenes = iter_scene_dirs(root)
    if not scenes:
        raise DatasetError(f"dataset {root} holds no complete scene")
    return manifest, scenes


def has_grasp_labels(manifest: dict) -> bool:
    """False for a dataset rendered with ``--no-grasps`` (``config.labels.max_candidates == 0``)."""
    labels = (manifest.get("config") or {}).get("labels") or {}
    return int(labels.get("max_candidates", 1)) > 0
