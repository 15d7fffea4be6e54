"""Image-space geometry of grasp rectangles (numpy only).

Conventions are those of :class:`graspsim.types.GraspRect`: pixels ``xy`` with
``x`` right and ``y`` down, pixel centres at integer coordinates; ``theta`` is the
angle of the jaw closing axis from image +x towards image +y (radians); ``w`` is
the opening measured along the closing axis and ``h`` the finger size across it.

Two unit vectors describe a rectangle's frame in the image:

* ``u = (cos theta, sin theta)``: the closing axis (the fingers sit at ``-u`` and ``+u``);
* ``v = (-sin theta, cos theta)``: across the closing axis (along the finger pads).
"""

from __future__ import annotations

import math

import numpy as np

from graspsim.types import GraspRect


def rect_axes(theta: float) -> tuple[np.ndarray, np.ndarray]:
    """``(u, v)``: (2,) unit vectors (xy pixels) along and across the closing axis of angle ``theta``."""
    c, s = math.cos(theta), math.sin(theta)
    return np.array([c, s]), np.array([-s, c])


def _box(center: np.ndarray, u: np.ndarray, v: np.ndarray, u0: float, u1: float, v0: float, v1: float) -> np.ndarray:
    """(4, 2) corners of the box ``u0..u1`` along ``u`` and ``v0..v1`` along ``v`` around ``center``."""
    return np.stack([center + a * u + b * v for a, b in ((u0, v0), (u1, v0), (u1, v1), (u0, v1))])


def rect_corners(rect: GraspRect) -> np.ndarray:
    """(4, 2) float64 corner pixels ``xy`` of ``rect``.

    Order: ``c - w/2 u - h/2 v``, ``c + w/2 u - h/2 v``, ``c + w/2 u + h/2 v``,
    ``c - w/2 u + h/2 v`` (for ``theta = 0``: top-left, top-right, bottom-right,
    bottom-left, i.e. clockwise on screen). The first two and last two corners
    are joined by the ``w`` sides; corners 1-2 and 3-0 are the jaw (``h``) sides.
    """
    u, v = rect_axes(rect.theta)
    c = np.array([rect.x, rect.y], dtype=np.float64)
    return _box(c, u, v, -rect.w / 2, rect.w / 2, -rect.h / 2, rect.h / 2)


def jaw_plates(rect: GraspRect, plate_thickness_px: float) -> tuple[np.ndarray, np.ndarray]:
    """The two finger plates of ``rect`` as (4, 2) float64 polygons (pixels ``xy``).

    ``w`` is the gap between the finger pads, so each plate lies just outside the
    opening: from ``w/2`` to ``w/2 + plate_thickness_px``
    along the closing axis from the centre, spanning ``h`` across it. Returns
    ``(plate_minus, plate_plus)``: the plate on the ``-u`` side, then the one on
    the ``+u`` side (corner order as in :func:`rect_corners`).
    """
    if plate_thickness_px <= 0:
        raise ValueError(f"plate thickness must be positive, got {plate_thickness_px:g} px")
    u, v = rect_axes(rect.theta)
    c = np.array([rect.x, rect.y], dtype=np.float64)
    near, far = rect.w / 2, rect.w / 2 + plate_thickness_px
    plate_plus = _box(c, u, v, near, far, -rect.h / 2, rect.h / 2)
    plate_minus = _box(c, u, v, -far, -near, -rect.h / 2, rect.h / 2)
    return plate_minus, plate_plus


def signed_area(poly: np.ndarray) -> float:
    """Shoelace area (pixels^2) of a polygon (N, 2) ``xy``: positive when counter-clockwise in a y-up frame
    (clockwise on screen); 0 for N < 3."""
    if len(poly) < 3:
        return 0.0
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * float(np.sum(x * np.roll(y, -1) - np.roll(x, -1) * y))


def convex_polygon_mask(polygon: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """(H, W) bool: pixels whose centre lies inside (or on) the convex ``polygon`` (N, 2) ``xy``.

    ``shape`` is ``(H, W)`` (extra trailing entries are ignored). Either vertex
    winding works. Only the polygon's bounding box is evaluated, so small
    polygons in large images are cheap.
    """
    poly = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    height, width = int(shape[0]), int(shape[1])
    out = np.zeros((height, width), dtype=bool)
    if len(poly) < 3 or not np.all(np.isfinite(poly)):
        return out
    x0 = max(0, int(math.floor(poly[:, 0].min())))
    x1 = min(width - 1, int(math.ceil(poly[:, 0].max())))
    y0 = max(0, int(math.floor(poly[:, 1].min())))
    y1 = min(height - 1, int(math.ceil(poly[:, 1].max())))
    if x0 > x1 or y0 > y1:
        return out
    xs, ys = np.meshgrid(np.arange(x0, x1 + 1, dtype=np.float64), np.arange(y0, y1 + 1, dtype=np.float64))
    edges = np.roll(poly, -1, axis=0) - poly
    # Signed area tells the winding; a point is inside when it is on the inner side of every edge.
    sign = 1.0 if signed_area(poly) >= 0 else -1.0
    scale = max(1.0, float(np.abs(edges).max()))
    eps = 1e-9 * scale  # tolerate rounding for pixel centres exactly on an edge
    inside = np.ones(xs.shape, dtype=bool)
    for (px, py), (ex, ey) in zip(poly, edges):
        cross = ex * (ys - py) - ey * (xs - px)
        inside &= sign * cross >= -eps
    out[y0 : y1 + 1, x0 : x1 + 1] = inside
    return out


def rect_polygon_mask(rect: GraspRect, shape: tuple[int, ...]) -> np.ndarray:
    """(H, W) bool: pixels whose centre lies inside (or on the border of) ``rect``."""
    return convex_polygon_mask(rect_corners(rect), shape)
