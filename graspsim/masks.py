"""Bounds, boxes and pixels of sparse (H, W) boolean masks, found without scanning the whole frame twice.

A product's mask covers a few percent of a 640x480 frame, yet ``np.nonzero`` and OpenCV's connected
components / contours / morphology cost time in proportion to the whole frame. The perception stages call
them many times per decision (every SAM window's mask, every verified candidate), so they crop to the mask's
bounding rectangle first: :func:`mask_bounds` finds it from two ``any`` reductions (a few microseconds
per row and column), and the functions here give exactly what the whole-frame call gives (same pixels,
same order, same labels), only faster. numpy + cv2 only.
"""

from __future__ import annotations

import cv2
import numpy as np


def mask_bounds(mask: np.ndarray, margin: int = 0) -> tuple[slice, slice] | None:
    """``(rows, cols)`` slices of the smallest rectangle holding every True pixel of ``mask`` (H, W), grown by
    ``margin`` pixels on each side and clipped to the image; None for an empty mask."""
    rows = np.flatnonzero(mask.any(axis=1))
    if rows.size == 0:
        return None
    cols = np.flatnonzero(mask.any(axis=0))
    h, w = mask.shape
    return (slice(max(0, int(rows[0]) - margin), min(h, int(rows[-1]) + 1 + margin)),
            slice(max(0, int(cols[0]) - margin), min(w, int(cols[-1]) + 1 + margin)))


def mask_box(mask: np.ndarray) -> np.ndarray:
    """(4,) float32 ``(x0, y0, x1, y1)`` pixel-edge box of a non-empty (H, W) bool mask (x1, y1 one past the
    last pixel); ValueError for an empty one."""
    bounds = mask_bounds(mask)
    if bounds is None:
        raise ValueError("mask_box of an empty mask")
    rows, cols = bounds
    return np.array([cols.start, rows.start, cols.stop, rows.stop], dtype=np.float32)


def mask_pixels(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, cols)`` int64 of the True pixels of ``mask`` (H, W), in ``np.nonzero``'s (row-major) order."""
    bounds = mask_bounds(mask)
    if bounds is None:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    rows, cols = np.nonzero(mask[bounds])
    return rows + bounds[0].start, cols + bounds[1].start


def component_at(mask: np.ndarray, points_xy: np.ndarray) -> np.ndarray:
    """The 8-connected component of ``mask`` (H, W) bool holding the first of ``points_xy`` ((n, 2) pixels x, y,
    rounded) that lies on it, else its largest component (the first in raster order among equals); ``mask``
    itself when it has at most one component. Computed on the mask's bounding rectangle."""
    bounds = mask_bounds(mask)
    if bounds is None:
        return mask
    rs, cs = bounds
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask[bounds].astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    h, w = mask.shape
    keep = None
    for x, y in np.asarray(points_xy).reshape(-1, 2):
        c, r = int(round(float(x))), int(round(float(y)))
        if rs.start <= r < rs.stop and cs.start <= c < cs.stop and labels[r - rs.start, c - cs.start] > 0:
            keep = labels[r - rs.start, c - cs.start]
            break
    if keep is None:
        keep = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    out = np.zeros((h, w), dtype=bool)
    out[bounds] = labels == keep
    return out
