"""Training data of RobotSeg: robot views and video frames (``graspsim render-robot-views``) in memory, and the
samples drawn from them (numpy + OpenCV; one ``numpy.random.Generator`` passed in).

* :class:`RobotBank`: every complete view of the seen embodiments and every video frame of the ``--data``
  directories, letterboxed to S x S (:func:`~.predictor.letterbox`; labels by nearest neighbour). Scenes
  whose seed is divisible by 10 are held out for validation (:func:`graspsim.data.reader.held_out_every`),
  the rest train. Views of an ``unseen`` embodiment (the xArm6) are never loaded for training.
* **Label-efficient** (``label_efficient=True``): only the videos, and of each only one frame's masks are
  labels (the seed's "first-frame" supervision): the first frame that shows the robot (:func:`labelled_frame`;
  as video object segmentation annotates an object where it first appears: a planned-motion video may start
  with the robot above the camera's picture); the other frames are loaded as unlabelled pictures.
* **Augmentation** (:func:`augment_colour`): per sample a random global hue rotation, saturation, brightness,
  contrast and, half the time, a recolouring of the robot's pixels alone (its own hue / saturation / value
  change), so that a robot is not learnt as "the white or the orange thing" (the held-out xArm6 is white and
  grey; the KUKA orange); optionally (``scene_recolour``) a recolouring of everything BUT the robot, so that
  saturated products of any colour are seen as not-robot; a horizontal flip (with the masks and the memory).
* **Gripper crops** (:func:`gripper_crop`, ``keep_full=True``): a square window around the gripper cut from the
  render at its own resolution and letterboxed to S, what the predictor's gripper zoom feeds the network; **arm
  crops** (:func:`arm_crop`): the same around a random arm pixel, with or without a gripper in it; **first-pass
  crops** (:func:`window_crop`): the window a first pass's gripper mask gives (the zoom's input at inference).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graspsim.data.reader import held_out_every
from graspsim.data.robot_views_format import (_manifest, check_robot_videos, check_robot_views, read_video,
                                              read_view)
from graspsim.policies.robotseg.predictor import letterbox


@dataclass
class Picture:
    """One letterboxed picture: ``rgb`` (S, S, 3) uint8, ``seg`` (S, S) uint8 (0 / 1 arm / 2 gripper) or None
    when unlabelled; ``video``: index into :attr:`RobotBank.videos` (None for a view), ``t`` its frame."""

    rgb: np.ndarray
    seg: np.ndarray | None
    embodiment: str
    seed: int
    video: int | None = None
    t: int = 0
    full_rgb: np.ndarray | None = None  # (H, W, 3) the render as read, kept for gripper crops (keep_full)
    full_seg: np.ndarray | None = None


def targets(seg: np.ndarray) -> np.ndarray:
    """(3, H, W) float32 arm / gripper / whole targets of a (H, W) label map."""
    return np.stack([seg == 1, seg == 2, seg > 0]).astype(np.float32)


def mask_logits(seg: np.ndarray, low: int) -> np.ndarray:
    """(3, low, low) float32: a label map as confident mask logits at the decoder's resolution (the memory a
    perfect previous prediction would leave): ``16 * (area fraction - 0.5)``, i.e. +-8 inside / outside."""
    import cv2

    t = targets(seg)
    small = np.stack([cv2.resize(c, (low, low), interpolation=cv2.INTER_AREA) for c in t])
    return (16.0 * (small - 0.5)).astype(np.float32)


def labelled_frame(robot_seg: np.ndarray) -> int:
    """The frame of a video whose masks the label-efficient variant keeps: the first of the (T, H, W) robot label
    maps with a robot pixel (> 0), frame 0 when none has one."""
    shown = np.flatnonzero(np.asarray(robot_seg).reshape(len(robot_seg), -1).any(axis=1))
    return int(shown[0]) if shown.size else 0


class RobotBank:
    """The pictures of ``data_dirs`` for ``split`` ("train" / "val"); see the module docstring."""

    def __init__(self, data_dirs: list[str | Path], split: str, size: int, label_efficient: bool = False,
                 keep_full: bool = False):
        if split not in ("train", "val"):
            raise ValueError(f"split must be train/val, got {split!r}")
        self.size, self.label_efficient, self.keep_full = size, label_efficient, keep_full
        self.pictures: list[Picture] = []
        self.videos: list[list[int]] = []  # picture indices of each video's frames, in time order
        self.sources: list[dict] = []
        self.unseen_skipped = 0
        for d in data_dirs:
            manifest = _manifest(d)
            n_views, n_videos = 0, 0
            if not label_efficient:
                n_views = self._load_views(d, split)
            if manifest.get("videos_per_scene"):
                n_videos = self._load_videos(d, split)
            self.sources.append({"dir": str(Path(d).resolve()), "suite": manifest.get("suite"), "views": n_views,
                                 "videos": n_videos})
        if not self.labelled():
            what = "video first frames" if label_efficient else "robot views or video frames"
            raise ValueError(f"no labelled {what} of the {split} split in {', '.join(str(d) for d in data_dirs)}"
                             + (" (the label-efficient variant needs datasets rendered with --videos V)"
                                if label_efficient else ""))

    def _keep(self, seed: int, split: str) -> bool:
        return held_out_every(seed) == (split == "val")

    def _load_views(self, d, split: str) -> int:
        _, views = check_robot_views(d)
        n = 0
        for v in views:
            seed = int(v.parent.name.split("-")[-1])
            if not self._keep(seed, split):
                continue
            item = read_view(v)
            if item["meta"].get("split") == "unseen":
                self.unseen_skipped += 1
                continue
            self.pictures.append(self._picture(item["rgb"], item["robot_seg"], item["meta"]["embodiment"], seed))
            n += 1
        return n

    def _load_videos(self, d, split: str) -> int:
        _, videos = check_robot_videos(d)
        n = 0
        for v in videos:
            seed = int(v.parent.name.split("-")[-1])
            if not self._keep(seed, split):
                continue
            video = read_video(v)
            if video["meta"].get("split") == "unseen":  # the held-out robot is never trained on, videos neither
                self.unseen_skipped += 1
                continue
            ids = []
            keep = labelled_frame(video["robot_seg"]) if self.label_efficient else None
            for t in range(len(video["rgb"])):
                seg = video["robot_seg"][t] if (keep is None or t == keep) else None
                ids.append(len(self.pictures))
                self.pictures.append(self._picture(video["rgb"][t], seg, video["meta"]["embodiment"], seed,
                                                   len(self.videos), t))
            self.videos.append(ids)
            n += 1
        return n

    def _picture(self, rgb, seg, embodiment, seed, video=None, t=0) -> Picture:
        boxed, _ = letterbox(rgb, self.size)
        boxed_seg = None if seg is None else letterbox(seg, self.size, "nearest")[0]
        full = (rgb, seg) if self.keep_full else (None, None)
        return Picture(boxed, boxed_seg, embodiment, seed, video, t, *full)

    def labelled(self) -> list[int]:
        """Indices of the pictures with masks."""
        return [i for i, p in enumerate(self.pictures) if p.seg is not None]

    def __len__(self) -> int:
        return len(self.pictures)


def gripper_crop(rgb: np.ndarray, seg: np.ndarray, size: int,
                 rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """``(rgb (S, S, 3), seg (S, S))``: a square crop of a full-resolution picture around its gripper, letterboxed
    to S, as the predictor's gripper zoom sees one (:func:`~.predictor.zoom_window`'s size on the true gripper),
    with the side scaled by 0.75-1.35 and the centre moved by up to 15 % of the side from the gripper's (a first
    pass's gripper box is not the true one); None when no gripper pixel is visible (or, rarely, none is left in
    the crop)."""
    from graspsim.policies.robotseg.predictor import ZOOM_CONTEXT, ZOOM_MIN_SIDE, gripper_box, square_inside

    box = gripper_box(seg == 2)
    if box is None:
        return None
    x, y, bw, bh = box
    side = max(ZOOM_CONTEXT * max(bw, bh), ZOOM_MIN_SIDE) * rng.uniform(0.75, 1.35)
    cx = x + bw / 2.0 + rng.uniform(-0.15, 0.15) * side
    cy = y + bh / 2.0 + rng.uniform(-0.15, 0.15) * side
    x0, y0, x1, y1 = square_inside(cx, cy, side, *seg.shape)
    if not (seg[y0:y1, x0:x1] == 2).any():
        return None
    return _letterboxed_window(rgb, seg, (x0, y0, x1, y1), size)


def arm_crop(rgb: np.ndarray, seg: np.ndarray, size: int,
             rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray] | None:
    """``(rgb (S, S, 3), seg (S, S))``: a square crop around a random arm pixel of a full-resolution picture,
    letterboxed to S, its side uniform from the zoom's smallest window (40 px) to half the picture's smaller
    side, or None when no arm pixel is visible. Why: the zoom pass also sees windows where the first pass
    took the wrist for the gripper; crops that only ever hold a gripper teach the zoom network to find one in
    every window."""
    from graspsim.policies.robotseg.predictor import ZOOM_MIN_SIDE, square_inside

    rows, cols = np.nonzero(seg == 1)
    if rows.size == 0:
        return None
    i = int(rng.integers(rows.size))
    side = rng.uniform(ZOOM_MIN_SIDE, max(ZOOM_MIN_SIDE, 0.5 * min(seg.shape)))
    return _letterboxed_window(rgb, seg, square_inside(float(cols[i]), float(rows[i]), side, *seg.shape), size)


def window_crop(rgb: np.ndarray, seg: np.ndarray, window: tuple[int, int, int, int], size: int,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """``(rgb (S, S, 3), seg (S, S))``: a given square ``(x0, y0, x1, y1)`` window of a full-resolution picture (a
    first pass's zoom window, :func:`~.predictor.zoom_window`), its side scaled by 0.85-1.2 and its centre moved by
    up to 10 % of the side, letterboxed to S; it may hold no gripper (its labels then say so). Why: the zoom pass
    sees the windows a first pass chose, on the wrist or on an arm whose gripper is hidden as often as on a
    gripper, and crops centred on the true gripper never show it those."""
    from graspsim.policies.robotseg.predictor import ZOOM_MIN_SIDE, square_inside

    x0, y0, x1, y1 = window
    side = max((x1 - x0) * rng.uniform(0.85, 1.2), ZOOM_MIN_SIDE)
    cx = (x0 + x1) / 2.0 + rng.uniform(-0.1, 0.1) * side
    cy = (y0 + y1) / 2.0 + rng.uniform(-0.1, 0.1) * side
    return _letterboxed_window(rgb, seg, square_inside(cx, cy, side, *seg.shape), size)


def _letterboxed_window(rgb: np.ndarray, seg: np.ndarray, window: tuple[int, int, int, int],
                        size: int) -> tuple[np.ndarray, np.ndarray]:
    """``(rgb (S, S, 3), seg (S, S))``: the ``(x0, y0, x1, y1)`` window (pixel edges) of a picture and its labels,
    letterboxed to S (linear for the picture, nearest for the labels), what the zoom pass feeds its network."""
    x0, y0, x1, y1 = window
    crop_rgb, crop_seg = np.ascontiguousarray(rgb[y0:y1, x0:x1]), np.ascontiguousarray(seg[y0:y1, x0:x1])
    return letterbox(crop_rgb, size)[0], letterbox(crop_seg, size, "nearest")[0]


def _hsv_shift(rgb: np.ndarray, hue: float, sat: float, val: float) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 with its hue rotated by ``hue`` (0..180 OpenCV units) and saturation / value scaled."""
    import cv2

    hsv = cv2.cvtColor(rgb, cv2.COLOR_RGB2HSV).astype(np.float32)
    hsv[..., 0] = (hsv[..., 0] + hue) % 180.0
    hsv[..., 1] = np.clip(hsv[..., 1] * sat, 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] * val, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


@dataclass(frozen=True)
class ColourJitter:
    """One draw of :func:`augment_colour`'s parameters (so a pair of video frames can share it)."""

    hue: float
    sat: float
    val: float
    contrast: float
    robot: tuple[float, float, float] | None
    grey: bool
    scene: tuple[float, float, float] | None = None


def _hsv_draw(rng: np.random.Generator) -> tuple[float, float, float]:
    """A strong recolouring: any hue turn, saturation x0.3-2.5, value x0.5-1.4 (:func:`_hsv_shift`'s arguments)."""
    return float(rng.uniform(0, 180)), float(rng.uniform(0.3, 2.5)), float(rng.uniform(0.5, 1.4))


def draw_colour(rng: np.random.Generator, scene_share: float = 0.0) -> ColourJitter:
    """One :class:`ColourJitter`. ``scene_share`` > 0: with that probability everything but the robot is
    recoloured too, by its own draw (the robot-only recolouring makes any saturated colour a possible robot;
    products of every colour that are NOT the robot teach it otherwise). With 0 the generator is advanced
    exactly as before the option existed, so older runs draw the same batches."""
    robot = _hsv_draw(rng) if rng.random() < 0.5 else None
    jitter = ColourJitter(float(rng.uniform(-20, 20)), float(rng.uniform(0.6, 1.4)), float(rng.uniform(0.6, 1.4)),
                          float(rng.uniform(0.7, 1.3)), robot, bool(rng.random() < 0.1))
    if scene_share > 0 and rng.random() < scene_share:
        jitter = ColourJitter(jitter.hue, jitter.sat, jitter.val, jitter.contrast, robot, jitter.grey, _hsv_draw(rng))
    return jitter


def augment_colour(rgb: np.ndarray, seg: np.ndarray | None, jitter: ColourJitter) -> np.ndarray:
    """``rgb`` (H, W, 3) uint8 recoloured (module docstring); the robot-only and the scene-only recolouring
    need ``seg``."""
    out = rgb
    if jitter.robot is not None and seg is not None and (seg > 0).any():
        recoloured = _hsv_shift(rgb, *jitter.robot)
        out = np.where((seg > 0)[..., None], recoloured, rgb)
    if jitter.scene is not None and seg is not None:
        out = np.where((seg > 0)[..., None], out, _hsv_shift(rgb, *jitter.scene))
    out = _hsv_shift(out, jitter.hue, jitter.sat, jitter.val).astype(np.float32)
    mean = out.mean()
    out = np.clip((out - mean) * jitter.contrast + mean, 0, 255)
    if jitter.grey:
        out = np.repeat(out.mean(axis=2, keepdims=True), 3, axis=2)
    return out.astype(np.uint8)


def perturb_memory(seg: np.ndarray, low: int, rng: np.random.Generator) -> np.ndarray:
    """(3, low, low) memory logits from a label map moved as a robot moves between frames and blurred as a
    prediction is: shifted by up to 6 % of the side, dilated or eroded a few pixels (why: at inference the
    memory is the previous frame's imperfect prediction, not this frame's truth)."""
    import cv2

    side = seg.shape[0]
    dy, dx = (rng.integers(-int(0.06 * side), int(0.06 * side) + 1, size=2)).tolist()
    moved = np.roll(seg, (dy, dx), axis=(0, 1))
    k = int(rng.integers(-4, 5))
    if k:
        kernel = np.ones((2 * abs(k) + 1, 2 * abs(k) + 1), np.uint8)
        op = cv2.dilate if k > 0 else cv2.erode
        moved = op(moved, kernel)
    return mask_logits(moved, low)
