"""Training items of semgrasp from rendered datasets: (scene, product, part, grasps held on that part).

For every complete scene (:class:`graspsim.data.reader.Datasets`) and every product
with at least ``min_px`` visible pixels, the grasps on each of its parts:

* the validated labels (``meta.json``: each executed in simulation and held;
  ``part`` = the part both fingers held), best quality first;
* with ``planned=True``, also the oracle's part planner on the ground-truth part
  mask (:func:`graspsim.grasping.part_grasps.part_grasps`: grasps whose
  predicted finger contacts are both on the part). The label planner validates
  grasps on the whole product, so a product's validated labels hold one or two
  of its parts; the parts task asks for any part the part planner finds
  graspable (the environment asks it the same question), so the planner's
  grasps give the parts without a validated label their targets.

Each product keeps a square window around its crop box (1.4 x its side,
resampled to ``1.4 x crop_px`` px) so that batches can jitter the box (shift,
scale) without the full frame in memory: :func:`jittered_crop`.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graspsim.fileio import atomic_write
from graspsim.assets.parts import PART_WORDS, label_to_word, part_names
from graspsim.data.reader import Datasets, SceneRef
from graspsim.policies.semgrasp.crops import crop_input
from graspsim.policies.semgrasp.tokens import crop_box
from graspsim.types import GraspRect

#: Part of the cache files' names: items cached by an older layout of :class:`Product` are rebuilt.
CACHE_VERSION = "v2"
#: Window around the crop box kept per product, as a multiple of the box side (room for the box jitter).
WINDOW = 1.4
#: Box jitter in training: centre shift (fraction of the side, each axis) and scale range; clip_sam's masks
#: miss or add a few pixels at the product's edges, which moves the box about this much.
SHIFT = 0.06
SCALE = (0.9, 1.15)


@dataclass
class Product:
    """One product of one scene: its window (``rgb`` (S, S, 3) uint8, ``depth`` (S, S) float32 metres, ``mask``
    (S, S) bool, ``part`` (S, S) uint8 = 1 + the :data:`PART_WORDS` index of the part under each of the
    product's pixels, 0 off the product or where the scene has no ``part_seg``), where that window lies in the
    frame (``window`` (x0, y0, side) full-image px), its nominal crop box (``box``), and its grasps per part
    (part word -> (N, 5) rects in full-image px, best first)."""

    key: tuple[str, int]
    index: int
    class_name: str
    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray
    window: tuple[float, float, float]
    box: tuple[float, float, float]
    grasps: dict[str, np.ndarray]
    validated: dict[str, int]
    part: np.ndarray | None = None


def _window(s: dict, mask: np.ndarray, words: np.ndarray, box, size: int):
    """The product's window (see :class:`Product`): ``(rgb, depth, mask, part, window box)``; ``words``: (H, W)
    uint8 part-word labels of the product's pixels."""
    x0, y0, side = box
    cx, cy = x0 + side / 2, y0 + side / 2
    wside = side * WINDOW
    win = (cx - wside / 2, cy - wside / 2, wside)
    import cv2

    from graspsim.policies.semgrasp.crops import _affine, warp_labels

    m = _affine(win, size)
    rgb = cv2.warpAffine(s["rgb"], m, (size, size), flags=cv2.INTER_AREA if wside > size else cv2.INTER_LINEAR)
    depth = cv2.warpAffine(s["depth_m"].astype(np.float32), m, (size, size), flags=cv2.INTER_NEAREST)
    return rgb, depth, warp_labels(mask, win, size).astype(bool), warp_labels(words, win, size), win


def part_words(part_seg: np.ndarray | None, mask: np.ndarray, class_name: str) -> np.ndarray:
    """(H, W) uint8: 1 + the :data:`PART_WORDS` index of the part under each pixel of ``mask`` (one product of
    class ``class_name``; ``part_seg`` value ``k + 1`` = its part ``k``), 0 elsewhere (all 0 without
    ``part_seg``)."""
    out = np.zeros(mask.shape, dtype=np.uint8)
    if part_seg is not None:
        out[mask] = label_to_word(class_name)[np.asarray(part_seg)[mask].astype(np.uint8)]
    return out


def _planned(s: dict, ref_kind: str, k: int, mask: np.ndarray, class_name: str, skip: set) -> dict[str, np.ndarray]:
    """Part planner grasps on product ``k`` (part word -> (N, 5)) on its parts not in ``skip`` (those with
    validated labels: the planner takes a third of a second a part); see the module docstring."""
    from graspsim.config import GRASP_DEPTH_M, GRASP_MARGIN_M, GripperSpec
    from graspsim.grasping.part_grasps import part_grasps
    from graspsim.scenes.kinds import scene_kind
    from graspsim.types import CameraModel

    kind = scene_kind(ref_kind)
    meta = s["meta"]
    cam = CameraModel(K=s["K"], width=int(meta["width"]), height=int(meta["height"]),
                      T_world_camera=s["T_world_camera"], near_m=kind.camera.near_m, far_m=kind.camera.far_m)
    out = {}
    for label, part in enumerate(part_names(class_name), start=1):
        if part in skip:
            continue
        gs = part_grasps(label, mask, s["part_seg"], s["depth_m"], cam, ref_kind, np.asarray(meta["approach_world"]),
                         GripperSpec(), grasp_depth_m=GRASP_DEPTH_M, margin_m=GRASP_MARGIN_M, max_candidates=12)
        if gs:
            out[part] = np.array([g.rect.as_array() for g in gs[:4]], dtype=np.float64)
    return out


def scene_products(ref: SceneRef, crop_px: int, min_px: int = 150, planned: bool = True,
                   cache_dir: str | Path | None = None) -> list[Product]:
    """The :class:`Product` items of one scene (products with at least ``min_px`` visible pixels and a grasp).

    ``cache_dir``: where the items of each scene are kept once built (the part planner takes seconds a scene),
    one pickle per (suite, seed, crop_px, planned); a scene directory newer than its cache file is rebuilt.
    """
    if cache_dir is None:
        return _scene_products(ref, crop_px, min_px, planned)
    path = Path(cache_dir) / f"{ref.suite}-{ref.seed}-{crop_px}-{min_px}-{int(planned)}-{CACHE_VERSION}.pkl"
    if path.is_file() and path.stat().st_mtime >= (ref.path / "meta.json").stat().st_mtime:
        with open(path, "rb") as f:
            return pickle.load(f)
    out = _scene_products(ref, crop_px, min_px, planned)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: tmp.write_bytes(pickle.dumps(out, protocol=pickle.HIGHEST_PROTOCOL)))
    return out


def _scene_products(ref: SceneRef, crop_px: int, min_px: int, planned: bool) -> list[Product]:
    s = Datasets.read(ref)
    meta = s["meta"]
    kind = meta["plan"]["kind"]
    size = int(round(crop_px * WINDOW))
    out = []
    for obj in meta["objects"]:
        k, class_name = int(obj["product_index"]), obj["class_name"]
        mask = s["instance"] == k + 1
        if mask.sum() < min_px:
            continue
        grasps: dict[str, list] = {}
        sel = np.nonzero(s["grasp_products"] == k)[0]
        for i in sel[np.argsort(-s["grasp_quality"][sel], kind="stable")]:
            part = s["grasp_parts"][i]
            if part in PART_WORDS:
                grasps.setdefault(part, []).append(s["grasps"][i])
        validated = {p: len(v) for p, v in grasps.items()}
        if planned and s["part_seg"] is not None:
            for part, rects in _planned(s, kind, k, mask, class_name, skip=set(grasps)).items():
                grasps.setdefault(part, []).extend(rects)
        if not grasps:
            continue
        box = crop_box(mask)
        rgb, depth, mk, words, win = _window(s, mask, part_words(s["part_seg"], mask, class_name), box, size)
        out.append(Product(ref.key, k, class_name, rgb, depth, mk, win, box,
                           {p: np.asarray(v, dtype=np.float64).reshape(-1, 5) for p, v in grasps.items()}, validated,
                           words if s["part_seg"] is not None else None))
    return out


def jittered_crop(p: Product, crop_px: int, rng: np.random.Generator | None) -> tuple[np.ndarray, tuple]:
    """``(crop (5, crop_px, crop_px), box (x0, y0, side) full-image px)`` of product ``p``: the nominal box, or
    with ``rng`` shifted and scaled (:data:`SHIFT`, :data:`SCALE`) and the mask channel eroded or dilated a pixel
    (clip_sam's masks are not pixel-exact)."""
    x0, y0, side = p.box
    mask = p.mask
    if rng is not None:
        side2 = side * rng.uniform(*SCALE)
        cx = x0 + side / 2 + rng.uniform(-SHIFT, SHIFT) * side
        cy = y0 + side / 2 + rng.uniform(-SHIFT, SHIFT) * side
        x0, y0, side = cx - side2 / 2, cy - side2 / 2, side2
        op = rng.integers(3)
        if op:
            import cv2

            fn = cv2.erode if op == 1 else cv2.dilate
            mask = fn(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    crop = crop_input(p.rgb, p.depth, mask, _in_window(p, (x0, y0, side)), crop_px)
    return crop, (x0, y0, side)


def _in_window(p: Product, box: tuple[float, float, float]) -> tuple[float, float, float]:
    """Crop ``box`` (x0, y0, side), full-image px, in the pixels of product ``p``'s window."""
    wx0, wy0, wside = p.window
    s = p.rgb.shape[0] / wside  # window px per full-image px
    x0, y0, side = box
    return (x0 - wx0) * s, (y0 - wy0) * s, side * s


def part_target(p: Product, box: tuple[float, float, float], crop_px: int) -> np.ndarray:
    """(crop_px, crop_px) int64 part-segmentation target of product ``p`` for the crop ``box`` (full-image px,
    e.g. from :func:`jittered_crop`): the :data:`PART_WORDS` index under each of the product's pixels, -1
    (ignored) off the product and for a product without part labels."""
    from graspsim.policies.semgrasp.crops import warp_labels

    if p.part is None:
        return np.full((crop_px, crop_px), -1, dtype=np.int64)
    return warp_labels(p.part, _in_window(p, box), crop_px).astype(np.int64) - 1


def pick_rect(rects: np.ndarray, rng: np.random.Generator | None) -> GraspRect:
    """One of a part's grasps: the best (first) without ``rng``, else one of the first three at random."""
    i = 0 if rng is None else int(rng.integers(min(3, len(rects))))
    return GraspRect.from_array(rects[i])
