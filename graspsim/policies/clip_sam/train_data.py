"""Training samples for the sim-trained CLIP and SAM, drawn from rendered datasets (``graspsim render``).

Scenes of :class:`graspsim.data.reader.Datasets` are read once into memory
(:class:`SceneBank`: RGB, depth, class and instance maps, K). Samples are
drawn with an explicit ``numpy.random.Generator``:

* CLIP (:func:`clip_batch`): full images squashed to ``S x S`` (what the policy
  feeds CLIP), zoom windows around a product sized from depth
  (:data:`ZOOM_EXTENT_M`, as the policy's second Grad-CAM pass), each with the
  classes present and a per-patch class grid; and product crops (box of one
  instance, padded to a square) with their class, for crop classification.
* SAM (:func:`sam_batch`): a window around one product instance (from its
  box for box prompts, from depth around a point for point prompts, as at
  inference), the prompt in window pixels and the instance mask in the window.

Both trainers run on :mod:`graspsim.learn.loop` through :func:`train_run` and
record :func:`run_metadata`.

Classes: catalog index ``0..23``; :data:`BACKGROUND` (24) = not a product.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from graspsim.data.reader import Datasets
from graspsim.policies.clip_sam.windows import (CLIP_MEAN, CLIP_STD, SAM_MEAN, SAM_STD, ZOOM_EXTENT_M,
                                                box_to_window, box_window, centred_window, crop, crop_box,
                                                depth_window, normalise, point_window, squash, to_window)

N_CLASSES = 24
BACKGROUND = N_CLASSES
MIN_INSTANCE_PX = 300  # at 640x480: products smaller than this are not sampled


@dataclass
class Scene:
    rgb: np.ndarray          # (H, W, 3) uint8
    depth_m: np.ndarray      # (H, W) float32, 0 = none
    class_map: np.ndarray    # (H, W) int8, -1 = not a product
    instance: np.ndarray     # (H, W) int16, -1 = not a product
    K: np.ndarray            # (3, 3)
    kind: str                # "shelf" / "tabletop"
    seed: int
    instances: list[tuple[int, int, np.ndarray]]  # (instance id, class, box xyxy) with >= MIN_INSTANCE_PX pixels
    # the grasp labels (graspsam trains on them): (N, 5) [x, y, w, h, theta] image px, (N,) quality, (N,)
    # instance id (= plan product index, the ids of ``instance``)
    grasps: np.ndarray = field(default_factory=lambda: np.zeros((0, 5)))
    grasp_quality: np.ndarray = field(default_factory=lambda: np.zeros(0))
    grasp_instance: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))


class SceneBank:
    """The complete scenes of one or more dataset directories, in memory (a view of :class:`Datasets`).

    ``split``: "train" or "val" (the scene seeds :func:`~graspsim.data.reader.held_out_every` holds out).
    Raises :class:`~graspsim.data.format.DatasetError` for a directory that is not a
    rendered dataset, ValueError when the split holds no scene.
    """

    def __init__(self, data_dirs: list[str | Path], split: str):
        data = Datasets(list(data_dirs))
        self.scenes: list[Scene] = []
        self.sources: list[dict] = []
        for i, (d, manifest) in enumerate(zip(data.dirs, data.manifests)):
            refs = data.split_scenes(i, split)
            self.scenes += [_scene(Datasets.read(ref), manifest["kind"], ref.seed) for ref in refs]
            self.sources.append({"dir": str(d), "suite": manifest["suite"], "scenes": len(refs)})
        if not self.scenes:
            raise ValueError(f"no complete scenes in {', '.join(str(d) for d in data_dirs)} (split {split})")

    def __len__(self) -> int:
        return len(self.scenes)

    @functools.cached_property
    def by_kind(self) -> list[list[Scene]]:
        """The scenes grouped by scene kind ("shelf", "tabletop"; kinds in sorted order)."""
        kinds = sorted({s.kind for s in self.scenes})
        return [[s for s in self.scenes if s.kind == k] for k in kinds]


def _scene(s: dict, kind: str, seed: int) -> Scene:
    """A :class:`Scene` of a read scene (:func:`graspsim.data.format.read_scene`); ~3 MB per 640x480 scene."""
    cls = (s["class_map"].astype(np.int16) - 1).astype(np.int8)
    inst = (s["instance"].astype(np.int32) - 1).astype(np.int16)
    scale = inst.size / (640 * 480)
    ids, counts = np.unique(inst[inst >= 0], return_counts=True)
    instances = []
    for i, n in zip(ids, counts):
        if n < MIN_INSTANCE_PX * scale:
            continue
        ys, xs = np.nonzero(inst == i)
        c = int(np.bincount(cls[ys, xs]).argmax())
        instances.append((int(i), c, np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float32)))
    return Scene(rgb=s["rgb"], depth_m=s["depth_m"].astype(np.float32), class_map=cls, instance=inst,
                 K=np.asarray(s["K"], dtype=np.float64), kind=kind, seed=seed, instances=instances,
                 grasps=s["grasps"], grasp_quality=s["grasp_quality"], grasp_instance=s["grasp_products"])


def jitter_colour(rgb: np.ndarray, rng: np.random.Generator, strength: float = 0.15) -> np.ndarray:
    gain = 1.0 + rng.uniform(-strength, strength)
    tint = 1.0 + rng.uniform(-strength / 3, strength / 3, size=3)
    return np.clip(rgb.astype(np.float32) * gain * tint, 0, 255).astype(np.uint8)


def shift_product_hues(rgb: np.ndarray, instance: np.ndarray, rng: np.random.Generator, max_deg: float,
                       p: float = 0.5, value: float = 0.15, min_deg: float = 0.0) -> np.ndarray:
    """(H, W, 3) uint8 RGB with each product's colours turned round the hue circle: every instance of the
    (H, W) int ``instance`` map (-1 = not a product) is, with probability ``p``, given one hue shift of
    ``min_deg`` .. ``max_deg`` degrees either way and one brightness factor uniform in 1 +- ``value`` (what
    tells a catalog variant from another: its whole palette hue-shifted, its brightness scaled;
    :mod:`graspsim.assets.catalog`); shading is kept (saturation untouched, value scaled). The rest of the
    image is unchanged."""
    ids = np.unique(instance[instance >= 0])
    if ids.size == 0:
        return rgb
    picked = ids[rng.random(ids.size) < p]
    shifts = rng.uniform(min_deg, max_deg, size=picked.size) * rng.choice([-1.0, 1.0], size=picked.size)
    gains = rng.uniform(1.0 - value, 1.0 + value, size=picked.size)
    if picked.size == 0:
        return rgb
    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV_FULL).astype(np.float32)  # hue 0..255 for the full circle
    lut_shift = np.zeros(int(instance.max()) + 2, np.float32)
    lut_gain = np.ones(int(instance.max()) + 2, np.float32)
    lut_shift[picked + 1] = shifts * 256.0 / 360.0
    lut_gain[picked + 1] = gains
    idx = np.clip(instance.astype(np.int64) + 1, 0, len(lut_shift) - 1)
    hsv[..., 0] = np.mod(hsv[..., 0] + lut_shift[idx], 256.0)
    hsv[..., 2] = np.clip(hsv[..., 2] * lut_gain[idx], 0, 255)
    out = cv2.cvtColor(np.clip(np.round(hsv), 0, 255).astype(np.uint8), cv2.COLOR_HSV2RGB_FULL)
    return np.where((lut_shift[idx] != 0)[..., None] | (lut_gain[idx] != 1)[..., None], out, rgb)


def class_grid(class_map: np.ndarray, grid: int, min_frac: float = 0.3, bg_frac: float = 0.7) -> np.ndarray:
    """(grid, grid) int64 per-patch label of a square class map: the majority product class when it covers
    >= ``min_frac`` of the patch, :data:`BACKGROUND` when products cover < 1 - ``bg_frac``, else -100 (ignored)."""
    s = class_map.shape[0]
    cell = s // grid
    cm = class_map[: cell * grid, : cell * grid].reshape(grid, cell, grid, cell).transpose(0, 2, 1, 3)
    cm = cm.reshape(grid, grid, cell * cell).astype(np.int64)
    onehot = np.zeros((grid, grid, N_CLASSES + 1), dtype=np.float32)
    idx = np.where(cm < 0, BACKGROUND, cm)
    for c in range(N_CLASSES + 1):
        onehot[..., c] = (idx == c).mean(axis=-1)
    best = onehot[..., :N_CLASSES].argmax(-1)
    best_frac = onehot[..., :N_CLASSES].max(-1)
    out = np.full((grid, grid), -100, dtype=np.int64)
    out[best_frac >= min_frac] = best[best_frac >= min_frac]
    out[(onehot[..., BACKGROUND] >= bg_frac) & (best_frac < min_frac)] = BACKGROUND
    return out


def presence(class_map: np.ndarray, min_px: float) -> np.ndarray:
    """(24,) float32: 1 present (>= min_px pixels), 0 absent, -1 ambiguous (a few pixels: ignored)."""
    counts = np.bincount(class_map[class_map >= 0].ravel().astype(np.int64), minlength=N_CLASSES)[:N_CLASSES]
    out = np.where(counts >= min_px, 1.0, np.where(counts > 0, -1.0, 0.0))
    return out.astype(np.float32)


def _scene_rgb(scene: Scene, rng: np.random.Generator, hue_deg: float) -> np.ndarray:
    """The scene's RGB, its products' hues shifted by up to ``hue_deg`` (:func:`shift_product_hues`; 0: as is)."""
    return shift_product_hues(scene.rgb, scene.instance, rng, hue_deg) if hue_deg > 0 else scene.rgb


def clip_image_sample(scene: Scene, size: int, grid: int, rng: np.random.Generator, zoom: bool,
                      hue_deg: float = 0.0):
    """``(pixels (3,S,S), presence (24,), grid labels (g,g))`` for the full frame or a zoom window
    (``hue_deg``: :func:`shift_product_hues` first)."""
    scene_rgb = _scene_rgb(scene, rng, hue_deg)
    if zoom and scene.instances:
        _, _, box = scene.instances[int(rng.integers(len(scene.instances)))]
        xy = np.array([rng.uniform(box[0], box[2]), rng.uniform(box[1], box[3])])
        x0, y0, side = depth_window(scene.depth_m, scene.K, xy, ZOOM_EXTENT_M, default_frac=0.5)
        side *= rng.uniform(0.85, 1.15)
        win = (x0 + rng.uniform(-0.15, 0.15) * side, y0 + rng.uniform(-0.15, 0.15) * side, side)
        rgb = crop(scene_rgb, win, size)
        cm = crop(scene.class_map.astype(np.int16) + 1, win, size, cv2.INTER_NEAREST).astype(np.int16) - 1
    else:
        rgb = squash(scene_rgb, size)
        cm = squash(scene.class_map.astype(np.int16), size, cv2.INTER_NEAREST)
    rgb = jitter_colour(rgb, rng)
    # Presence threshold: a quarter of a patch.
    return normalise(rgb, CLIP_MEAN, CLIP_STD), presence(cm, 0.25 * (size / grid) ** 2), class_grid(cm, grid)


def clip_crop_sample(scene: Scene, size: int, rng: np.random.Generator, hue_deg: float = 0.0):
    """``(pixels (3,s,s), class)`` of one product instance, box jittered by up to 10 % (``hue_deg``:
    :func:`shift_product_hues` first)."""
    _, c, box = scene.instances[int(rng.integers(len(scene.instances)))]
    bw, bh = box[2] - box[0], box[3] - box[1]
    jitter = rng.uniform(-0.1, 0.1, size=4) * np.array([bw, bh, bw, bh])
    win = crop_box(box + jitter, pad=rng.uniform(0.05, 0.2))
    rgb = jitter_colour(crop(_scene_rgb(scene, rng, hue_deg), win, size), rng)
    return normalise(rgb, CLIP_MEAN, CLIP_STD), c


def scene_with_instances(bank: SceneBank, rng: np.random.Generator) -> Scene:
    """Random scenes of ``bank`` are drawn until one has a product instance to sample."""
    while True:
        scene = bank.scenes[int(rng.integers(len(bank)))]
        if scene.instances:
            return scene


def clip_batch(bank: SceneBank, rng: np.random.Generator, n_full: int, n_zoom: int, n_crops: int, size: int,
               grid: int, crop_size: int, hue_deg: float = 0.0) -> dict[str, np.ndarray]:
    """A CLIP training batch: ``images`` (n_full + n_zoom, 3, S, S), ``presence``, ``grid``; ``crops``, ``crop_class``
    (``hue_deg`` > 0: each sample's products hue-shifted, :func:`shift_product_hues`)."""
    imgs, pres, grids = zip(*[clip_image_sample(bank.scenes[int(rng.integers(len(bank)))], size, grid, rng,
                                                zoom=i >= n_full, hue_deg=hue_deg) for i in range(n_full + n_zoom)])
    crops, classes = zip(*[clip_crop_sample(scene_with_instances(bank, rng), crop_size, rng, hue_deg)
                           for _ in range(n_crops)])
    return {"images": np.stack(imgs), "presence": np.stack(pres), "grid": np.stack(grids),
            "crops": np.stack(crops), "crop_class": np.array(classes, dtype=np.int64)}


def interior_point(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A random pixel (x, y) of ``mask``, favouring the interior (weights = distance to the edge)."""
    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    ys, xs = np.nonzero(mask)
    w = dist[ys, xs].astype(np.float64) + 0.5
    i = int(rng.choice(len(xs), p=w / w.sum()))
    return np.array([xs[i], ys[i]], dtype=np.float64)


def noisy_box(box: np.ndarray, rng: np.random.Generator, sd: float = 0.08, hard: bool = False) -> np.ndarray:
    """The instance box with Gaussian side noise (``sd`` of its size), sometimes grown by up to 15 %.

    ``hard``: also boxes like the ones CLIP attention gives (measured on shelf-test): 25 % of the
    time a sub-box covering only part of the product (35-100 % of each side, e.g. the label band),
    15 % of the time a box 1.2-2x as large (reaching over neighbours), centred near the product.
    """
    bw, bh = box[2] - box[0], box[3] - box[1]
    if hard:
        u = rng.random()
        if u < 0.25:
            fw, fh = rng.uniform(0.35, 1.0, size=2)
            x0 = box[0] + rng.uniform(0, 1 - fw) * bw
            y0 = box[1] + rng.uniform(0, 1 - fh) * bh
            return np.array([x0, y0, x0 + max(2.0, fw * bw), y0 + max(2.0, fh * bh)])
        if u < 0.40:
            g = rng.uniform(1.2, 2.0)
            cx = (box[0] + box[2]) / 2 + rng.normal(0, 0.1) * bw
            cy = (box[1] + box[3]) / 2 + rng.normal(0, 0.1) * bh
            return np.array([cx - g * bw / 2, cy - g * bh / 2, cx + g * bw / 2, cy + g * bh / 2])
    noise = rng.normal(0.0, sd, size=4) * np.array([bw, bh, bw, bh])
    grow = rng.uniform(0.0, 0.15) * np.array([-bw, -bh, bw, bh]) if rng.random() < 0.3 else 0.0
    b = box + noise + grow
    return np.array([min(b[0], b[2] - 2), min(b[1], b[3] - 2), max(b[2], b[0] + 2), max(b[3], b[1] + 2)])


def sam_sample(scene: Scene, mode: str, size: int, mask_size: int, rng: np.random.Generator, max_points: int = 3,
               hard_boxes: bool = False):
    """One SAM sample for prompt ``mode`` in {"point", "box"} (box samples may carry points too).

    Returns ``pixels (3,S,S)``, ``points (max_points, 2)`` (window pixels at S), ``labels (max_points,)``
    (1 positive, 0 negative, -10 padding), ``box (4,)`` (window pixels at S; NaN if none), ``mask
    (mask_size, mask_size)`` float32 soft target.
    """
    inst_id, _, box = scene.instances[int(rng.integers(len(scene.instances)))]
    mask = scene.instance == inst_id
    points = np.zeros((max_points, 2))
    labels = np.full(max_points, -10, dtype=np.int64)
    box_out = np.full(4, np.nan)
    if mode == "point":
        n_pos = 1 if rng.random() < 0.6 else int(rng.integers(1, max_points + 1))
        pos = [interior_point(mask, rng) for _ in range(n_pos)]
        win = point_window(scene.depth_m, scene.K, pos[0])
        side = win[2] * rng.uniform(0.85, 1.15)
        win = centred_window(pos[0][0] + rng.uniform(-0.15, 0.15) * side, pos[0][1] + rng.uniform(-0.15, 0.15) * side,
                             side)
        pts = list(pos)
        labs = [1] * n_pos
        if len(pts) < max_points and rng.random() < 0.3:
            # a negative point on another product (or the background) inside the window
            others = (scene.instance >= 0) & ~mask
            if others.any():
                ys, xs = np.nonzero(others)
                j = int(rng.integers(len(xs)))
                pts.append(np.array([xs[j], ys[j]], dtype=np.float64))
                labs.append(0)
        for k, (p, lab) in enumerate(zip(pts, labs)):
            points[k] = to_window(p, win, size)
            labels[k] = lab
    else:
        b = noisy_box(box, rng, hard=hard_boxes)
        win = box_window(b, scale=rng.uniform(1.3, 1.8))
        box_out = box_to_window(b, win, size)
        if rng.random() < 0.3:
            points[0] = to_window(interior_point(mask, rng), win, size)
            labels[0] = 1
    rgb = jitter_colour(crop(scene.rgb, win, size), rng, 0.1)
    target = crop(mask.astype(np.float32), win, mask_size)
    return normalise(rgb, SAM_MEAN, SAM_STD), points, labels, box_out, target


def sam_batch(bank: SceneBank, rng: np.random.Generator, n: int, mode: str, size: int, mask_size: int,
              hard_boxes: bool = False):
    samples = [sam_sample(scene_with_instances(bank, rng), mode, size, mask_size, rng, hard_boxes=hard_boxes)
               for _ in range(n)]
    return {k: np.stack(v) for k, v in zip(("pixels", "points", "labels", "boxes", "masks"), zip(*samples))}


def train_run(kind: str, data_dirs: list[str | Path], out_dir: str | Path, settings: dict, stack, *, epochs: int = 12,
              steps_per_epoch: int = 100, lr: float = 1e-3, seed: int = 0, resume: bool = False,
              max_minutes: float | None = None, threads: int | None = None, progress: bool = True, log=print,
              bank=None) -> dict:
    """A CLIP / SAM / shape-prior run on :func:`graspsim.learn.loop.train`; returns its metadata. ``stack(cfg,
    settings, train_bank, val_bank)`` builds the run's :class:`~graspsim.learn.loop.Stack` (``settings``: the
    trainer's, after ``kind``, ``data`` and ``steps_per_epoch``); ``bank(data_dirs, split)`` reads a split
    (default :class:`SceneBank`; it needs ``sources`` and ``len``, as :func:`run_metadata` reads them).

    AdamW (weight decay 0.05), linear warm-up over 10 % of the steps (at most 100) then cosine decay to 5 %
    of ``lr``, gradient norm clipped at 1 over the trainable parameters."""
    from graspsim.learn.loop import LoopConfig, train
    from graspsim.learn.schedule import warmup_cosine

    settings = {"kind": kind, "data": [str(Path(d).resolve()) for d in data_dirs], "steps_per_epoch": steps_per_epoch,
                **settings}
    cfg = LoopConfig(epochs=epochs, lr=lr, seed=seed, weight_decay=0.05, grad_clip=1.0,
                     schedule=warmup_cosine(min(100, max(1, epochs * steps_per_epoch // 10))),
                     max_minutes=max_minutes, threads=threads, progress=progress, name=kind)

    def build():
        read = bank or SceneBank
        return stack(cfg, settings, read(data_dirs, split="train"), read(data_dirs, split="val"))

    return train(out_dir, settings, build, cfg, resume, log)


def rounded(metrics: dict) -> dict:
    """Validation numbers as recorded: floats to 5 decimals."""
    return {k: (round(v, 5) if isinstance(v, float) else v) for k, v in metrics.items()}


def run_metadata(kind: str, cfg, init: str | None, train_bank: SceneBank, val_bank: SceneBank, progress) -> dict:
    """The metadata of a CLIP / SAM / shape-prior run; ``metrics``: the last metrics row without training losses and duration."""
    import graspsim

    return {"kind": kind, "graspsim_version": graspsim.__version__, "seed": cfg.seed, "init": init, "lr": cfg.lr,
            "data": train_bank.sources, "val_scenes": len(val_bank), "train_scenes": len(train_bank),
            "epochs": progress.epochs_done, "history": progress.history,
            "metrics": {k: v for k, v in progress.last.items() if not k.startswith("train_") and k != "seconds"}}
