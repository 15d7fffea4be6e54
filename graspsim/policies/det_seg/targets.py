"""Training targets for the det_seg and GR-ConvNet networks, and the geometry they share.

Everything here works at **network scale**: the camera image (any ``W x H``)
is *letterboxed* into a square ``S x S`` network input (default ``S = 320``):
scaled by ``s = S / max(W, H)`` keeping the aspect ratio, then centred with
zero padding (a 640x480 image becomes 320x240 with 40 padding rows above and
below). Rectangles map as ``x_net = s * x + pad_x``, ``y_net = s * y + pad_y``,
``w_net = s * w``, ``h_net = s * h``, ``theta`` unchanged (the scale is
isotropic, so angles survive); :meth:`Letterbox.rects_to_src` is the inverse.

Grasp detection targets (one-stage version of the seed's RPN + grasp head):

* Every level ``l`` of the FPN (stride ``s_l``) has one axis-aligned square
  anchor per cell, centred at ``(s_l * j + (s_l - 1) / 2, s_l * i + (s_l - 1) / 2)``
  with side ``A_l = anchor_scale * s_l``.
* A ground-truth grasp is given to the level whose anchor side is closest (in
  log scale) to ``max(w, h)``; on that level the cells whose centre lies within
  ``pos_radius * s_l`` (Chebyshev distance) of the grasp centre are positives.
  A cell claimed by several grasps takes the nearest centre (ties: higher quality).
* Orientation class: ``theta`` in ``[-pi/2, pi/2)`` falls into one of
  ``num_bins = 18`` bins of 10 degrees (bin ``k`` covers
  ``[-90 + 10 k, -80 + 10 k)`` degrees, represented by its mean); negatives get
  the extra class ``num_bins`` ("invalid").
* Box regression (seed Eq. 7): ``t_x = (x* - x_a) / A``, ``t_y = (y* - y_a) / A``,
  ``t_w = log(w* / A)``, ``t_h = log(h* / A)``.

Refinement targets (seed Eq. 10), relative to a predicted grasp ``g``:
``t_x = ((x*-x) cos th + (y*-y) sin th) / w``, ``t_y = ((y*-y) cos th - (x*-x) sin th) / h``,
``t_w = log(w*/w)``, ``t_h = log(h*/h)``, ``t_th = wrap(th* - th) / pi``. The seed
takes ``(th* - th) mod pi`` in ``[0, pi)``; we wrap into ``[-pi/2, pi/2)``
instead so that a small correction is a small number of either sign (the same
grasp set, pi-periodic).

GR-ConvNet maps (GG-CNN / GR-ConvNet): for every ground-truth rectangle the
pixels of its *central third* (``w / 3`` along the closing axis, full ``h``
across) get quality 1, ``cos 2 theta``, ``sin 2 theta`` and width
``w / width_scale`` (rectangles drawn in increasing quality, so the best one
wins where they overlap).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

NUM_BINS = 18


@dataclass(frozen=True)
class Letterbox:
    """The map from a ``src_w x src_h`` image to the ``size x size`` network input (see the module docstring)."""

    src_w: int
    src_h: int
    size: int
    scale: float
    pad_x: int
    pad_y: int

    @classmethod
    def for_shape(cls, height: int, width: int, size: int) -> "Letterbox":
        scale = size / max(height, width)
        new_w, new_h = int(round(width * scale)), int(round(height * scale))
        return cls(int(width), int(height), int(size), float(scale), (size - new_w) // 2, (size - new_h) // 2)

    @property
    def inner_wh(self) -> tuple[int, int]:
        return int(round(self.src_w * self.scale)), int(round(self.src_h * self.scale))

    def image(self, img: np.ndarray, *, nearest: bool = False, fill: float = 0) -> np.ndarray:
        """(H, W[, C]) -> (size, size[, C]) of the same dtype; bilinear (area when shrinking) or nearest."""
        import cv2

        new_w, new_h = self.inner_wh
        interp = cv2.INTER_NEAREST if nearest else cv2.INTER_AREA if self.scale < 1 else cv2.INTER_LINEAR
        resized = src = np.ascontiguousarray(img)
        if (new_w, new_h) != (src.shape[1], src.shape[0]):
            conv = src.astype(np.float32) if src.dtype not in (np.uint8, np.uint16, np.float32) else src
            resized = cv2.resize(conv, (new_w, new_h), interpolation=interp).astype(img.dtype)
        out = np.full((self.size, self.size) + img.shape[2:], fill, dtype=img.dtype)
        out[self.pad_y:self.pad_y + new_h, self.pad_x:self.pad_x + new_w] = resized.reshape((new_h, new_w) + img.shape[2:])
        return out

    def rects_to_net(self, rects: np.ndarray) -> np.ndarray:
        """(N, 5) ``[x, y, w, h, theta]`` source pixels -> network pixels (float64)."""
        r = np.asarray(rects, dtype=np.float64).reshape(-1, 5).copy()
        r[:, 0] = r[:, 0] * self.scale + self.pad_x
        r[:, 1] = r[:, 1] * self.scale + self.pad_y
        r[:, 2:4] *= self.scale
        return r

    def rects_to_src(self, rects: np.ndarray) -> np.ndarray:
        """(N, 5) network pixels -> source pixels (float64); the inverse of :meth:`rects_to_net`."""
        r = np.asarray(rects, dtype=np.float64).reshape(-1, 5).copy()
        r[:, 0] = (r[:, 0] - self.pad_x) / self.scale
        r[:, 1] = (r[:, 1] - self.pad_y) / self.scale
        r[:, 2:4] /= self.scale
        return r


def wrap_angle(theta):
    """Wrap angles (array or float) into ``[-pi/2, pi/2)``."""
    return (np.asarray(theta, dtype=np.float64) + math.pi / 2) % math.pi - math.pi / 2


def angle_to_bin(theta, num_bins: int = NUM_BINS) -> np.ndarray:
    """Orientation class ``0 .. num_bins - 1`` of each angle (radians, any range; pi-periodic)."""
    t = wrap_angle(theta) + math.pi / 2  # [0, pi)
    return np.clip(np.floor(t / (math.pi / num_bins)).astype(np.int64), 0, num_bins - 1)


def bin_to_angle(bins, num_bins: int = NUM_BINS) -> np.ndarray:
    """The mean angle (radians) of each orientation class."""
    return -math.pi / 2 + (np.asarray(bins, dtype=np.float64) + 0.5) * (math.pi / num_bins)


def anchor_centres(size: int, stride: int) -> tuple[np.ndarray, np.ndarray]:
    """(n, n) arrays ``ax``, ``ay``: anchor centres (network pixels) of one level, ``stride`` a power of 2.

    ``n = ceil(size / stride)``: the side of the FPN level of a ``size x size`` input (each strided 3x3 conv
    with padding 1 halves it, rounding up).
    """
    n = -(-size // stride)
    centres = np.arange(n, dtype=np.float64) * stride + (stride - 1) / 2
    return tuple(np.meshgrid(centres, centres))


def assign_levels(rects_net: np.ndarray, anchor_sizes: list[float]) -> np.ndarray:
    """Index into ``anchor_sizes`` of the level each rectangle goes to (closest anchor side in log scale)."""
    r = np.asarray(rects_net, dtype=np.float64).reshape(-1, 5)
    if len(anchor_sizes) == 1 or len(r) == 0:
        return np.zeros(len(r), dtype=np.int64)
    m = np.maximum(np.maximum(r[:, 2], r[:, 3]), 1e-3)
    d = np.abs(np.log(m[:, None]) - np.log(np.asarray(anchor_sizes, dtype=np.float64)[None, :]))
    return np.argmin(d, axis=1).astype(np.int64)


def encode_box(rects: np.ndarray, ax: np.ndarray, ay: np.ndarray, a: float) -> np.ndarray:
    """(N, 4) regression targets (seed Eq. 7) of rectangles ``(N, 5)`` w.r.t. square anchors of side ``a``."""
    r = np.asarray(rects, dtype=np.float64).reshape(-1, 5)
    return np.stack([(r[:, 0] - ax) / a, (r[:, 1] - ay) / a,
                     np.log(np.maximum(r[:, 2], 1e-6) / a), np.log(np.maximum(r[:, 3], 1e-6) / a)], axis=1)


def decode_box(t: np.ndarray, ax, ay, a: float, theta) -> np.ndarray:
    """Inverse of :func:`encode_box`: (N, 4) targets + anchors + angles -> (N, 5) rectangles."""
    t = np.asarray(t, dtype=np.float64).reshape(-1, 4)
    tw = np.clip(t[:, 2], -6.0, 6.0)
    th = np.clip(t[:, 3], -6.0, 6.0)
    return np.stack([np.asarray(ax) + t[:, 0] * a, np.asarray(ay) + t[:, 1] * a,
                     a * np.exp(tw), a * np.exp(th), np.broadcast_to(theta, tw.shape)], axis=1)


def encode_det_targets(rects_net: np.ndarray, quality: np.ndarray | None, size: int, strides: list[int],
                       anchor_scale: float, pos_radius: float = 1.0, num_bins: int = NUM_BINS) -> list[dict]:
    """Dense targets per FPN level for one image.

    ``rects_net``: (N, 5) ground-truth rectangles at network scale. Returns one
    dict per level (same order as ``strides``) with ``cls`` (rows, cols) int64
    (orientation bin, ``num_bins`` = invalid), ``reg`` (rows, cols, 4) float32
    (zeros on negatives) and ``gt`` (rows, cols) int64 (index of the matched
    rectangle, -1 on negatives).
    """
    r = np.asarray(rects_net, dtype=np.float64).reshape(-1, 5)
    q = np.zeros(len(r)) if quality is None else np.asarray(quality, dtype=np.float64).reshape(-1)
    sizes = [anchor_scale * s for s in strides]
    levels = assign_levels(r, sizes)
    out = []
    for li, stride in enumerate(strides):
        ax, ay = anchor_centres(size, stride)
        rows, cols = ax.shape
        best_d = np.full((rows, cols), np.inf)
        best_q = np.full((rows, cols), -np.inf)
        gt = np.full((rows, cols), -1, dtype=np.int64)
        radius = pos_radius * stride
        for k in np.nonzero(levels == li)[0]:
            x, y = r[k, 0], r[k, 1]
            c0 = max(0, int(math.ceil((x - radius - (stride - 1) / 2) / stride)))
            c1 = min(cols - 1, int(math.floor((x + radius - (stride - 1) / 2) / stride)))
            r0 = max(0, int(math.ceil((y - radius - (stride - 1) / 2) / stride)))
            r1 = min(rows - 1, int(math.floor((y + radius - (stride - 1) / 2) / stride)))
            if c0 > c1 or r0 > r1:
                # centre outside every cell's reach (e.g. on the border): use the nearest cell
                c0 = c1 = int(np.clip(round((x - (stride - 1) / 2) / stride), 0, cols - 1))
                r0 = r1 = int(np.clip(round((y - (stride - 1) / 2) / stride), 0, rows - 1))
            sl = (slice(r0, r1 + 1), slice(c0, c1 + 1))
            d = np.hypot(ax[sl] - x, ay[sl] - y)
            better = (d < best_d[sl] - 1e-9) | ((np.abs(d - best_d[sl]) <= 1e-9) & (q[k] > best_q[sl]))
            best_d[sl] = np.where(better, d, best_d[sl])
            best_q[sl] = np.where(better, q[k], best_q[sl])
            gt[sl] = np.where(better, k, gt[sl])
        cls = np.full((rows, cols), num_bins, dtype=np.int64)
        reg = np.zeros((rows, cols, 4), dtype=np.float32)
        pos = gt >= 0
        if pos.any():
            m = r[gt[pos]]
            cls[pos] = angle_to_bin(m[:, 4], num_bins)
            reg[pos] = encode_box(m, ax[pos], ay[pos], sizes[li]).astype(np.float32)
        out.append({"cls": cls, "reg": reg, "gt": gt})
    return out


def encode_refinement(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """(N, 5) refinement targets of ground truth ``gt`` relative to predictions ``pred`` (both (N, 5))."""
    p = np.asarray(pred, dtype=np.float64).reshape(-1, 5)
    g = np.asarray(gt, dtype=np.float64).reshape(-1, 5)
    c, s = np.cos(p[:, 4]), np.sin(p[:, 4])
    dx, dy = g[:, 0] - p[:, 0], g[:, 1] - p[:, 1]
    return np.stack([(dx * c + dy * s) / p[:, 2], (dy * c - dx * s) / p[:, 3],
                     np.log(g[:, 2] / p[:, 2]), np.log(g[:, 3] / p[:, 3]),
                     wrap_angle(g[:, 4] - p[:, 4]) / math.pi], axis=1)


def apply_refinement(pred: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Inverse of :func:`encode_refinement` (theta wrapped into ``[-pi/2, pi/2)``)."""
    p = np.asarray(pred, dtype=np.float64).reshape(-1, 5)
    t = np.asarray(t, dtype=np.float64).reshape(-1, 5)
    c, s = np.cos(p[:, 4]), np.sin(p[:, 4])
    ax, ay = t[:, 0] * p[:, 2], t[:, 1] * p[:, 3]
    return np.stack([p[:, 0] + ax * c - ay * s, p[:, 1] + ax * s + ay * c,
                     p[:, 2] * np.exp(np.clip(t[:, 2], -6, 6)), p[:, 3] * np.exp(np.clip(t[:, 3], -6, 6)),
                     wrap_angle(p[:, 4] + t[:, 4] * math.pi)], axis=1)


def encode_grconvnet_maps(rects_net: np.ndarray, quality: np.ndarray | None, size: int,
                          width_scale: float) -> dict[str, np.ndarray]:
    """(size, size) float32 maps ``quality``, ``cos``, ``sin``, ``width`` drawn from the rectangles.

    Quality 1 on the central third of each rectangle; ``cos``/``sin`` of
    ``2 theta``; ``width = w / width_scale``. Zero elsewhere.
    """
    from graspsim.grasping.rect_geometry import rect_polygon_mask
    from graspsim.types import GraspRect

    r = np.asarray(rects_net, dtype=np.float64).reshape(-1, 5)
    q = np.zeros(len(r)) if quality is None else np.asarray(quality, dtype=np.float64).reshape(-1)
    maps = {k: np.zeros((size, size), dtype=np.float32) for k in ("quality", "cos", "sin", "width")}
    for k in np.argsort(q, kind="stable"):
        x, y, w, h, th = r[k]
        m = rect_polygon_mask(GraspRect(x, y, max(w / 3.0, 1.0), max(h, 1.0), th), (size, size))
        if not m.any():
            xi, yi = int(round(x)), int(round(y))
            if 0 <= xi < size and 0 <= yi < size:
                m[yi, xi] = True
        maps["quality"][m] = 1.0
        maps["cos"][m] = math.cos(2 * th)
        maps["sin"][m] = math.sin(2 * th)
        maps["width"][m] = w / width_scale
    return maps
