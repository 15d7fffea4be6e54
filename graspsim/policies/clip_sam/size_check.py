"""Is a candidate mask the size of the named product? A product-database prior for clip_sam's verification.

A retailer knows every product's dimensions (its master data); graspsim's catalog holds each class's nominal
size (``ProductClass.size_m``, variants within :data:`~graspsim.assets.catalog.SIZE_JITTER` of it). A new label
design changes what a product looks like, not how big it is, so a mask much larger than anything the named
product could show (a milk carton for "the gum pack", a cereal box for "the candy bar") is another product, or
SAM's mask leaked over a neighbour.

Only "too large" is tested: a product partly hidden by its neighbours, a shelf board or the robot shows less
of itself, so a small mask proves nothing. The mask's visible surface is back-projected with depth to camera
coordinates (metres); its two principal extents (robust: the 5-95 % range along each principal axis, widened
by 1 / 0.9 to the full extent of a uniform spread) are compared with the class's two largest dimensions
(any face of the product may face the camera, in any roll).
"""

from __future__ import annotations

import numpy as np

from graspsim.geometry import deproject

# Slack on the class's nominal dimensions: variants are within 2.5 % of them, depth edges and SAM's mask
# boundary add ~1 cm, and the two principal axes of a visible corner can run diagonally across a face.
DEFAULT_SIZE_TOLERANCE = 0.25
SIZE_MARGIN_M = 0.015
_MIN_POINTS = 30


def visible_extents_m(mask: np.ndarray, depth_m: np.ndarray, K: np.ndarray) -> np.ndarray | None:
    """``(e1, e2)`` metres, e1 >= e2: the principal extents of the mask's back-projected surface; None when too
    few pixels have a valid depth. ``mask`` (H, W) bool and ``depth_m`` (H, W) metres in the camera ``K``."""
    ys, xs = np.nonzero(mask)
    if xs.size < _MIN_POINTS:
        return None
    z = np.asarray(depth_m, dtype=np.float64)[ys, xs]
    valid = np.isfinite(z) & (z > 0)
    if valid.sum() < _MIN_POINTS:
        return None
    xs, ys, z = xs[valid], ys[valid], z[valid]
    # A mask's rim can take the depth of what lies behind the product: keep the surface near the median depth.
    near = np.abs(z - np.median(z)) < 0.25
    points = deproject(K, np.stack([xs[near] + 0.5, ys[near] + 0.5], axis=-1), z[near])
    if points.shape[0] < _MIN_POINTS:
        return None
    centred = points - points.mean(axis=0)
    _, _, axes = np.linalg.svd(centred, full_matrices=False)
    along = centred @ axes[:2].T  # (N, 2) coordinates along the two main axes
    low, high = np.percentile(along, [5.0, 95.0], axis=0)
    e = (high - low) / 0.9
    return np.sort(e)[::-1]


def size_plausible(mask: np.ndarray, depth_m: np.ndarray, K: np.ndarray, size_m: tuple[float, float, float],
                   tolerance: float = DEFAULT_SIZE_TOLERANCE, margin_m: float = SIZE_MARGIN_M) -> bool:
    """False when the mask's visible extents exceed the product's two largest dimensions (``size_m``: x, y, z
    metres) by more than ``tolerance`` (a fraction) plus ``margin_m``; True otherwise, also when depth cannot tell."""
    e = visible_extents_m(mask, depth_m, K)
    if e is None:
        return True
    d = np.sort(np.asarray(size_m, dtype=np.float64))[::-1][:2]
    return bool(np.all(e <= d * (1.0 + tolerance) + margin_m))
