"""Clicks and boxes derived from a ground-truth mask, deterministically (numpy + OpenCV).

What the evaluation (``--prompt 1-click|3-click|box``) and the SAM baseline are given; coordinates are image
pixels ``(x, y)`` of the mask's (H, W) frame (x = column + 0.5 would be the pixel centre; we give the integer
column / row, as SAM's processors take them):

* **1-click**: the mask pixel farthest from the mask's boundary (the maximum of the Euclidean distance
  transform, the mask padded with background so the image edge counts as boundary; among tied maxima the
  one nearest their mean position, then the first in row-major order). It is the "most interior" click of interactive video-segmentation protocols.
* **3-click**: that click, then twice the pixel maximising ``min(distance to the boundary, distance to the
  clicks so far)``: interior points spread over the part (on a long arm: shoulder, elbow, wrist).
* **box**: the tight bounding box ``(x0, y0, x1, y1)`` of the mask's pixels, ``x1 = last column + 1`` (the
  pixel edges).

An empty mask has no click and no box (:func:`derive_prompt` returns None: the evaluation then scores an
empty prediction, as an annotator who sees no part gives no prompt).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class MaskPrompt:
    """``points`` (N, 2) float (x, y) image px with ``labels`` (N,) int (1 = on the part); ``box`` (4,) or None."""

    points: np.ndarray
    labels: np.ndarray
    box: np.ndarray | None = None


def _distance_inside(mask: np.ndarray) -> np.ndarray:
    """(H, W) float32: each mask pixel's distance to the nearest non-mask pixel (outside the image counts)."""
    import cv2

    padded = np.pad(mask.astype(np.uint8), 1)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def clicks(mask: np.ndarray, n: int) -> np.ndarray:
    """(n', 2) float (x, y): up to ``n`` interior clicks of a non-empty (H, W) mask (module docstring)."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return np.zeros((0, 2))
    inside = _distance_inside(mask)
    ys, xs = np.mgrid[:mask.shape[0], :mask.shape[1]]
    score = inside.copy()
    out = []
    for _ in range(n):
        y, x = _best(np.where(mask, score, -1.0))
        if out and score[y, x] <= 0:
            break
        out.append((float(x), float(y)))
        score = np.minimum(score, np.hypot(xs - x, ys - y))
    return np.asarray(out, dtype=np.float64)


def _best(score: np.ndarray) -> tuple[int, int]:
    """``(row, col)`` of the maximum of ``score``; among tied maxima (a plateau, e.g. the middle line of a
    rectangle) the one nearest their mean position, then the first in row-major order."""
    ys, xs = np.nonzero(score >= score.max() - 1e-4)
    d = (ys - ys.mean()) ** 2 + (xs - xs.mean()) ** 2
    k = int(np.argmin(d))
    return int(ys[k]), int(xs[k])


def box(mask: np.ndarray) -> np.ndarray | None:
    """(4,) float ``x0, y0, x1, y1`` (pixel edges) of the mask's pixels; None when empty."""
    ys, xs = np.nonzero(np.asarray(mask, dtype=bool))
    if not len(xs):
        return None
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)


def derive_prompt(mask: np.ndarray, mode: str) -> MaskPrompt | None:
    """The prompt of ``mode`` (``1-click``, ``3-click``, ``box``) for a ground-truth (H, W) mask; None for
    ``auto`` or an empty mask."""
    if mode == "auto" or not np.asarray(mask).any():
        return None
    if mode == "box":
        return MaskPrompt(np.zeros((0, 2)), np.zeros(0, dtype=np.int64), box(mask))
    pts = clicks(mask, 1 if mode == "1-click" else 3)
    return MaskPrompt(pts, np.ones(len(pts), dtype=np.int64))
