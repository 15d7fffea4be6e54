"""Attention map -> SAM prompts (numpy only).

The prompt modes of Muttaqien et al. (Fig. 5): a single point, several points,
a bounding box; plus a box with points. Input is an attention map ``att``
``(H, W)`` in ``[0, 1]`` at image resolution (see ``gradcam.upsample_cam``).

Conventions (graspsim's, see ``graspsim.types``): points are ``xy`` pixel
coordinates (x = column, y = row), float; a box is ``(x0, y0, x1, y1)`` with
inclusive pixel-centre coordinates (``x1`` is the last column inside). Labels
follow SAM: 1 = foreground (positive), 0 = background (negative).

A flat map (maximum <= 0, e.g. Grad-CAM found nothing) gives the image centre as
its point and the whole image as its box, so callers always get a prompt.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from graspsim.masks import mask_box

PROMPT_MODES: tuple[str, ...] = ("point", "points", "box", "box+points")


@dataclass
class Prompt:
    """A SAM prompt: ``points`` (N, 2) float32 xy, ``labels`` (N,) int64 in {0, 1}, ``box`` (4,) float32 or None."""

    mode: str
    points: np.ndarray
    labels: np.ndarray
    box: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.points = np.asarray(self.points, dtype=np.float32).reshape(-1, 2)
        self.labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        if self.points.shape[0] != self.labels.shape[0]:
            raise ValueError(f"{self.points.shape[0]} points but {self.labels.shape[0]} labels")
        if self.box is not None:
            self.box = np.asarray(self.box, dtype=np.float32).reshape(4)
        if self.points.shape[0] == 0 and self.box is None:
            raise ValueError("a prompt needs at least one point or a box")


def _check(att: np.ndarray) -> np.ndarray:
    a = np.asarray(att, dtype=np.float32)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"attention map must be a non-empty (H, W) array, got shape {a.shape}")
    return np.nan_to_num(a, nan=0.0, posinf=0.0, neginf=0.0)


def _centre(a: np.ndarray) -> np.ndarray:
    h, w = a.shape
    return np.array([[(w - 1) / 2.0, (h - 1) / 2.0]], dtype=np.float32)


def _spaced_points(a: np.ndarray, candidates: np.ndarray, k: int, radius_px: float | None, descending: bool
                   ) -> np.ndarray:
    """Up to ``k`` pixels of the bool map ``candidates`` as ``(n, 2)`` float32 xy, by value of ``a`` (highest first
    if ``descending``, ties in row-major order), each farther than ``radius_px`` (default ``max(4, 0.08 * max(H,
    W))``) from those already taken (greedy non-maximum suppression)."""
    radius = max(4.0, 0.08 * max(a.shape)) if radius_px is None else float(radius_px)
    rows, cols = np.nonzero(candidates)
    order = np.lexsort((cols, rows, -a[rows, cols] if descending else a[rows, cols]))
    chosen: list[tuple[float, float]] = []
    r2 = radius * radius
    for i in order:
        x, y = float(cols[i]), float(rows[i])
        if all((x - cx) ** 2 + (y - cy) ** 2 > r2 for cx, cy in chosen):
            chosen.append((x, y))
            if len(chosen) == k:
                break
    return np.asarray(chosen, dtype=np.float32).reshape(-1, 2)


def single_point(att: np.ndarray) -> np.ndarray:
    """``(1, 2)`` xy of the map's maximum (first one in row-major order on ties)."""
    a = _check(att)
    if float(a.max()) <= 0.0:
        return _centre(a)
    r, c = np.unravel_index(int(np.argmax(a)), a.shape)
    return np.array([[c, r]], dtype=np.float32)


def _local_maxima(a: np.ndarray) -> np.ndarray:
    """Bool mask of pixels that equal the maximum of their 3x3 neighbourhood (outside the map counts as -inf).

    A 3x3 grey dilation (OpenCV's max filter: ~30x faster than a numpy sliding window on a 640x480 map);
    its default border value leaves the image edge unaffected, as -inf padding does.
    """
    a32 = np.ascontiguousarray(a, dtype=np.float32)
    return a32 >= cv2.dilate(a32, np.ones((3, 3), np.uint8))


def multi_points(att: np.ndarray, k: int = 3, suppression_radius_px: float | None = None,
                 min_value: float = 0.5) -> np.ndarray:
    """Up to ``k`` peaks ``(n, 2)`` xy, strongest first, ``1 <= n <= k``.

    Candidates are local maxima (3x3) whose value is at least ``min_value`` times
    the map's maximum; they are taken greedily, strongest first, skipping any
    within ``suppression_radius_px`` (default ``max(4, 0.08 * max(H, W))``) of
    one already taken (non-maximum suppression). A smooth single-peaked blob
    therefore yields one point however wide it is.
    """
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    a = _check(att)
    peak = float(a.max())
    if peak <= 0.0:
        return _centre(a)
    return _spaced_points(a, _local_maxima(a) & (a >= min_value * peak), k, suppression_radius_px, descending=True)


def peak_region(att: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Bool ``(H, W)``: the connected region above ``threshold * max`` that contains the peak."""
    a = _check(att)
    peak = float(a.max())
    if peak <= 0.0:
        return np.ones_like(a, dtype=bool)
    r, c = np.unravel_index(int(np.argmax(a)), a.shape)
    _, labels = cv2.connectedComponents((a >= threshold * peak).astype(np.uint8), connectivity=8)
    return labels == labels[r, c]  # the 8-connected component holding the peak (which is above the threshold)


def box_prompt(att: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """``(4,)`` float32 ``x0, y0, x1, y1`` around the region above ``threshold * max`` containing the peak.

    Of the connected (8-neighbour) regions above the threshold, the one holding
    the global maximum is used, not merely the largest: a big weak blob elsewhere
    must not steal the box from the strongest evidence.
    """
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    return mask_box(peak_region(att, threshold)) - np.array([0, 0, 1, 1], dtype=np.float32)  # last pixels


def box_and_points(att: np.ndarray, threshold: float = 0.5, k: int = 3, suppression_radius_px: float | None = None,
                   min_value: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """``(box (4,), points (n, 2))``: the peak box and the :func:`multi_points` peaks inside it (at least the peak)."""
    box = box_prompt(att, threshold)
    pts = multi_points(att, k=k, suppression_radius_px=suppression_radius_px, min_value=min_value)
    inside = (pts[:, 0] >= box[0]) & (pts[:, 0] <= box[2]) & (pts[:, 1] >= box[1]) & (pts[:, 1] <= box[3])
    pts = pts[inside]
    if pts.shape[0] == 0:
        pts = single_point(att)
    return box, pts


def negative_points(att: np.ndarray, k: int = 2, box: np.ndarray | None = None, margin: float = 0.25,
                    max_value: float = 0.2, suppression_radius_px: float | None = None,
                    threshold: float = 0.5) -> np.ndarray:
    """Up to ``k`` background points ``(n, 2)`` xy (``n`` may be 0), lowest attention first.

    Looked for in the margin around the box (``box`` or :func:`box_prompt` at
    ``threshold``): the box grown by ``margin`` times its size on every side,
    clipped to the image, minus the box itself; if that ring is empty (box fills
    the image) inside the box. Only pixels with attention below ``max_value``
    times the maximum qualify; points are spaced by non-maximum suppression as in
    :func:`multi_points`.
    """
    a = _check(att)
    h, w = a.shape
    peak = float(a.max())
    if peak <= 0.0 or k < 1:
        return np.zeros((0, 2), dtype=np.float32)
    b = box_prompt(a, threshold) if box is None else np.asarray(box, dtype=np.float32).reshape(4)
    bw, bh = b[2] - b[0] + 1, b[3] - b[1] + 1
    gx0 = int(max(0, np.floor(b[0] - margin * bw)))
    gy0 = int(max(0, np.floor(b[1] - margin * bh)))
    gx1 = int(min(w - 1, np.ceil(b[2] + margin * bw)))
    gy1 = int(min(h - 1, np.ceil(b[3] + margin * bh)))
    region = np.zeros((h, w), dtype=bool)
    region[gy0 : gy1 + 1, gx0 : gx1 + 1] = True
    inner = np.zeros((h, w), dtype=bool)
    inner[int(b[1]) : int(b[3]) + 1, int(b[0]) : int(b[2]) + 1] = True
    ring = region & ~inner
    if not ring.any():
        ring = inner
    return _spaced_points(a, ring & (a < max_value * peak), k, suppression_radius_px, descending=False)


def make_prompts(att: np.ndarray, mode: str, k: int = 3, threshold: float = 0.5, n_negative: int = 0,
                 suppression_radius_px: float | None = None, min_value: float = 0.5) -> Prompt:
    """Build the :class:`Prompt` for ``mode`` (one of :data:`PROMPT_MODES`).

    * ``"point"``: the peak, label 1; no box.
    * ``"points"``: :func:`multi_points` (up to ``k``), labels 1; no box.
    * ``"box"``: :func:`box_prompt`; no points.
    * ``"box+points"``: the box and the peaks inside it (:func:`box_and_points`).

    ``n_negative > 0`` appends up to that many :func:`negative_points` (label 0)
    to every mode except ``"box"``.
    """
    if mode not in PROMPT_MODES:
        raise ValueError(f"unknown prompt mode {mode!r}; valid modes: {', '.join(PROMPT_MODES)}")
    a = _check(att)
    box = None
    if mode == "point":
        pos = single_point(a)
    elif mode == "points":
        pos = multi_points(a, k=k, suppression_radius_px=suppression_radius_px, min_value=min_value)
    elif mode == "box":
        return Prompt(mode, np.zeros((0, 2)), np.zeros((0,)), box_prompt(a, threshold))
    else:
        box, pos = box_and_points(a, threshold, k, suppression_radius_px, min_value)
    labels = np.ones(pos.shape[0], dtype=np.int64)
    if n_negative > 0:
        neg = negative_points(a, k=n_negative, box=box, threshold=threshold)
        pos = np.concatenate([pos, neg], axis=0)
        labels = np.concatenate([labels, np.zeros(neg.shape[0], dtype=np.int64)])
    return Prompt(mode, pos, labels, box)
