"""Parallel-jaw grasp rectangles from an object mask and a depth image (numpy + OpenCV).

Shared by every mask-based policy (the ground-truth oracle, the colour/depth
heuristic, and learned segmenters such as CLIP+SAM): give it the pixels of one
object and the metric depth image, get ranked :class:`GraspRect` candidates that
the environment can execute.

The environment executes a rectangle as :mod:`graspsim.grasping.conversion`
describes (grasp point behind the surface seen at the centre pixel, jaws opened
to ``w * depth / fx`` metres), so the fingers must be able to move in beside the
object down to that depth: anything in front of the finger footprints (a
neighbouring product, the shelf board under a product) makes the grasp fail.

Method, per mask:

1. Candidate centres: the peak of the mask's distance transform plus the best
   interior point of each cell of a coarse grid (cells about half the largest
   inscribed radius wide), keeping points well inside the mask.
2. For each centre and each of ``n_angles`` closing-axis angles (plus the mask's
   minor principal axis), the chord of the mask through the centre along the
   closing axis gives the object width, converted to metres with the median
   object depth near the centre.
3. Widths that do not fit the gripper with a margin on both sides are rejected.
4. Each finger footprint (a plate just outside a chord end, ``margin +
   finger_thickness`` long outward and ``finger_width`` across) must be free: its
   depth must lie at least ``grasp_depth_m - 5 mm`` behind the surface at the
   centre, or be invalid / out of the image; mask pixels inside it are blocked.
5. Score in [0, 1]: free fraction, centrality (distance-transform value and
   closeness to the mask centroid), narrowness, and alignment with the mask's
   minor principal axis. Near-duplicates are suppressed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from graspsim.config import GRASP_DEPTH_M, GRASP_MARGIN_M, GripperSpec
from graspsim.grasping.conversion import grasp_depth_for
from graspsim.grasping.rect_geometry import rect_axes
from graspsim.masks import mask_bounds
from graspsim.scenes import kinds
from graspsim.types import CameraModel, GraspRect

# Footprints with less free space than this are rejected outright.
MIN_FREE_FRACTION = 0.9
MAX_PALM_BLOCKED = 0.03  # share of the hand-body footprint allowed in front of the palm
# The depth beside the object must be at least this much less than the grasp depth
# behind the surface (metres): the fingertips stop a little short of the grasp point.
_DEPTH_SLACK_M = 0.005
# Score weights (sum to 1 so the score stays in [0, 1]).
_W_FREE, _W_CENTRAL, _W_NARROW, _W_ALIGN = 0.2, 0.3, 0.25, 0.25


@dataclass(frozen=True)
class ScoredGrasp:
    """One grasp candidate.

    * ``rect``: the grasp (image pixels; centre at the chord midpoint, ``w`` =
      jaw opening in pixels at the centre depth, ``h`` = finger width in pixels,
      ``theta`` normalised to ``[-pi/2, pi/2)``).
    * ``score``: higher is better, in [0, 1].
    * ``opening_m``: jaw opening, metres: object width along the closing axis plus
      a margin on each side (never more than the gripper's maximum opening).
    * ``width_m``: object width along the closing axis through the centre, metres.
    * ``free_fraction``: share of finger-footprint samples that are free space.
    * ``palm_blocked``: the hand body would hit something in front of the palm
      (such grasps are returned only after every unblocked one).
    """

    rect: GraspRect
    score: float
    opening_m: float
    width_m: float
    free_fraction: float
    palm_blocked: bool = False


def _valid_depth(depth: np.ndarray) -> np.ndarray:
    return np.isfinite(depth) & (depth > 0)


def _candidate_centres(mask_crop: np.ndarray, max_centres: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Interior points of a (cropped) mask: ``(centres (N, 2) xy in crop pixels, dt values (N,), dt max)``."""
    dt = cv2.distanceTransform(mask_crop.astype(np.uint8), cv2.DIST_L2, 5)
    dt_max = float(dt.max())
    if dt_max < 1.0:
        return np.zeros((0, 2)), np.zeros(0), dt_max
    # One point per grid cell (its highest distance value): spreads the centres along
    # the medial axis without scanning every pixel.
    stride = max(2, int(round(dt_max / 2)))
    h, w = dt.shape
    hp, wp = -(-h // stride) * stride, -(-w // stride) * stride
    padded = np.zeros((hp, wp), dtype=np.float32)
    padded[:h, :w] = dt
    cells = padded.reshape(hp // stride, stride, wp // stride, stride).transpose(0, 2, 1, 3)
    cells = cells.reshape(hp // stride, wp // stride, stride * stride)
    arg = cells.argmax(axis=-1)
    best = np.take_along_axis(cells, arg[..., None], axis=-1)[..., 0]
    cy, cx = np.nonzero(best >= max(1.5, 0.3 * dt_max))  # well inside, not on the rim
    vals = best[cy, cx]
    ys = cy * stride + arg[cy, cx] // stride
    xs = cx * stride + arg[cy, cx] % stride
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    # The global peak always takes part, and so does the centroid when it is well
    # inside (grasping a convex object at its centroid keeps it from swinging).
    py, px = np.unravel_index(int(np.argmax(dt)), dt.shape)
    extra, extra_vals = [[px, py]], [dt_max]
    ys_m, xs_m = np.nonzero(mask_crop)
    gx, gy = int(round(xs_m.mean())), int(round(ys_m.mean()))
    if dt[gy, gx] >= max(1.5, 0.3 * dt_max):
        extra.append([gx, gy])
        extra_vals.append(float(dt[gy, gx]))
    pts = np.vstack([extra, pts])
    vals = np.concatenate([extra_vals, vals])
    # Most interior first; among (nearly) equal values, e.g. along a long bar's medial
    # axis, those nearest the centroid first, so truncation keeps the middle.
    to_centroid = np.hypot(pts[:, 0] - xs_m.mean(), pts[:, 1] - ys_m.mean())
    order = np.lexsort((to_centroid, -np.round(vals, 1)))[:max_centres]
    pts, vals = pts[order], vals[order]
    # drop the duplicate of the peak if its cell picked the same pixel
    _, keep = np.unique(pts, axis=0, return_index=True)
    keep = np.sort(keep)
    return pts[keep], vals[keep], dt_max


def _minor_axis(mask_crop: np.ndarray) -> tuple[float, float, np.ndarray, float]:
    """``(minor axis angle, elongation in [0, 1], centroid xy (crop), major-axis std px)`` of a mask."""
    ys, xs = np.nonzero(mask_crop)
    pts = np.stack([xs, ys], axis=1).astype(np.float64)
    centroid = pts.mean(axis=0)
    cov = np.cov((pts - centroid).T) if len(pts) > 1 else np.eye(2)
    evals, evecs = np.linalg.eigh(cov)  # ascending
    minor = evecs[:, 0]
    angle = math.atan2(minor[1], minor[0])
    lam_min, lam_max = max(evals[0], 0.0), max(evals[1], 1e-9)
    elongation = 1.0 - lam_min / lam_max
    return angle, float(elongation), centroid, math.sqrt(lam_max)


def _gather(img: np.ndarray, xy: np.ndarray, fill) -> tuple[np.ndarray, np.ndarray]:
    """Nearest-pixel lookup of ``img`` at ``xy`` (..., 2); returns ``(values, in_image)``."""
    h, w = img.shape[:2]
    ix = np.floor(xy[..., 0] + 0.5).astype(np.intp)
    iy = np.floor(xy[..., 1] + 0.5).astype(np.intp)
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    return np.where(inside, img[np.clip(iy, 0, h - 1), np.clip(ix, 0, w - 1)], fill), inside


_CHORD_STEP = 0.5  # px between chord samples
_CHORD_GAP = 3  # off-mask samples in a row (1.5 px) that end a chord


def _chord_ends(mask: np.ndarray, centres: np.ndarray, u: np.ndarray, t_max: float) -> tuple[np.ndarray, np.ndarray]:
    """Distances (px) from each centre (N, 2) to the mask edge along ``+u`` and ``-u`` (A, 2).

    Returns ``(t_plus, t_minus)``, each (N, A); ``inf`` where the mask goes on past
    ``t_max``. Samples sit at odd multiples of a quarter pixel so that none falls
    exactly between two pixels (which would round differently on the two sides of
    a symmetric object); the edge is placed midway between the last sample on the
    mask and the first one off it. A gap shorter than ``_CHORD_GAP`` samples does
    not end the chord: a slanted edge rasterised into steps (or a one-pixel
    segmentation hole) would otherwise cut it a pixel short.
    """
    step = _CHORD_STEP
    ts = step * (np.arange(int(math.ceil(t_max / step)) + 1) + 0.5)  # (S,)
    ends = []
    for sign in (1.0, -1.0):
        pts = centres[:, None, None, :] + sign * ts[None, None, :, None] * u[None, :, None, :]  # (N, A, S, 2)
        inside, _ = _gather(mask, pts, False)
        out = ~inside
        # a run of _CHORD_GAP off-mask samples starting here (past the end counts as off)
        run = out.copy()
        for k in range(1, _CHORD_GAP):
            run[..., :-k] &= out[..., k:]
        first_out = np.argmax(run, axis=-1)  # index of the first sample of the first long gap
        t_edge = ts[first_out] - step / 2
        ends.append(np.where(run.any(axis=-1), t_edge, np.inf))
    return ends[0], ends[1]


def _centre_depth(depth: np.ndarray, xy: np.ndarray, default: float) -> float:
    """Depth at the pixel the environment reads for a rectangle centred at ``xy`` (``default`` if invalid)."""
    # Same rounding as graspsim.grasping.conversion (Python's round: half to even).
    col, row = int(round(float(xy[0]))), int(round(float(xy[1])))
    z = float(depth[row, col]) if 0 <= row < depth.shape[0] and 0 <= col < depth.shape[1] else math.nan
    return z if math.isfinite(z) and z > 0 else default


def _local_depth(depth: np.ndarray, mask: np.ndarray, centres: np.ndarray, radius: int = 2) -> np.ndarray:
    """(N,) median valid depth of mask pixels in a (2r+1)^2 window around each centre (NaN if none)."""
    off = np.arange(-radius, radius + 1)
    oy, ox = np.meshgrid(off, off, indexing="ij")
    xy = centres[:, None, :] + np.stack([ox.ravel(), oy.ravel()], axis=1)[None].astype(np.float64)
    d, inside = _gather(depth, xy, np.nan)
    m, _ = _gather(mask, xy, False)
    d = np.where(inside & m & _valid_depth(d), d, np.nan)
    out = np.full(len(centres), np.nan)
    ok = np.any(np.isfinite(d), axis=1)
    if ok.any():
        out[ok] = np.nanmedian(d[ok], axis=1)
    return out


def palm_blocked_fraction(rect: GraspRect, depth_m: np.ndarray, K: np.ndarray, gripper: GripperSpec,
                          grasp_depth_m: float) -> float:
    """Share of the hand body's footprint where something stands in front of the palm.

    The hand body (``2 * palm_half_span_m`` along the closing axis,
    ``2 * palm_half_thickness_m`` across it) arrives at the grasp depth with its
    front ``palm_behind_grasp_m`` behind the grasp point. Sampled on a 25 x 9 grid
    of the footprint at the rectangle centre's depth; depth nearer than the palm's
    front (3 mm tolerance) blocks. Assumes the camera looks roughly along the
    approach, as both scene kinds' cameras do.
    """
    H, W = depth_m.shape
    col, row = int(round(rect.x)), int(round(rect.y))
    if not (0 <= col < W and 0 <= row < H):
        return 1.0
    z_surface = float(depth_m[row, col])
    fx = float(K[0, 0])
    opening = rect.w * z_surface / fx
    palm_depth = z_surface + grasp_depth_for(opening, grasp_depth_m) - gripper.palm_behind_grasp_m
    half_u = gripper.palm_half_span_m * fx / z_surface
    half_v = gripper.palm_half_thickness_m * fx / z_surface
    u, v = rect_axes(rect.theta)
    a, b = np.meshgrid(np.linspace(-half_u, half_u, 25), np.linspace(-half_v, half_v, 9))
    pts = np.array([rect.x, rect.y]) + a.reshape(-1, 1) * u + b.reshape(-1, 1) * v
    cols = np.clip(np.round(pts[:, 0]).astype(int), 0, W - 1)
    rows = np.clip(np.round(pts[:, 1]).astype(int), 0, H - 1)
    samples = depth_m[rows, cols]
    return float((_valid_depth(samples) & (samples < palm_depth - 0.003)).mean())


def near_surface(mask: np.ndarray, depth_m: np.ndarray, slab_m: float = 0.02) -> np.ndarray:
    """The part of ``mask`` within ``slab_m`` metres of its nearest surface (2nd depth percentile).

    For a top-down camera that is an object's top, for a camera in front of a
    shelf its front face: where a gripper approaching along the view reaches
    first. Grasps centred there do not slide off the object's side, which under
    perspective fills much of the mask of a tall object near the image edge.
    (H, W) bool in and out; returns ``mask`` itself when it has no valid depth.
    """
    mask = np.asarray(mask, dtype=bool)
    depths = np.asarray(depth_m)[mask]
    depths = depths[_valid_depth(depths)]
    if depths.size == 0:
        return mask
    nearest = float(np.percentile(depths, 2))
    return mask & (np.asarray(depth_m) <= nearest + slab_m)


def _padded_crop(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(crop, offset)``: the bounding box of ``mask`` (H, W) bool and the image xy (2,) of crop pixel (0, 0).

    The crop is padded with one empty pixel all round so the distance transform
    sees a border even where the object leaves the image.
    """
    rows, cols = mask_bounds(mask)
    crop = np.pad(mask[rows, cols], 1)
    return crop, np.array([cols.start - 1, rows.start - 1], dtype=np.float64)


@dataclass(frozen=True)
class _Interior:
    """Where grasps on one mask may be centred, and the mask's shape; image pixels (x right, y down).

    ``centres`` (N, 2) xy with ``dt`` (N,) their distance to the mask edge and
    ``z`` (N,) the median object depth around them (metres); ``dt_max`` the
    largest inscribed radius (px); ``minor_angle`` the image angle (rad) of the
    minor principal axis, ``elongation`` in [0, 1] (0: no preferred axis),
    ``centroid`` (2,) xy, ``major_std`` the spread along the major axis (px).
    """

    centres: np.ndarray
    dt: np.ndarray
    z: np.ndarray
    dt_max: float
    minor_angle: float
    elongation: float
    centroid: np.ndarray
    major_std: float


def _mask_interior(mask: np.ndarray, depth: np.ndarray, max_centres: int) -> _Interior | None:
    """Candidate centres of ``mask`` that have object depth around them (None if there are none)."""
    crop, offset = _padded_crop(mask)
    centres, dt_vals, dt_max = _candidate_centres(crop, max_centres)
    if len(centres) == 0:
        return None
    minor_angle, elongation, centroid, major_std = _minor_axis(crop)
    centres = centres + offset
    z_c = _local_depth(depth, mask, centres)
    ok = np.isfinite(z_c)
    if not ok.any():
        return None
    return _Interior(centres[ok], dt_vals[ok], z_c[ok], dt_max, minor_angle, elongation, centroid + offset, major_std)


def _closing_axes(n_angles: int, minor_angle: float, theta_range: tuple[float, float] | None,
                  fx: float, fy: float) -> tuple[np.ndarray, ...]:
    """``n_angles`` axes over [0, pi) plus the minor axis, limited to ``theta_range`` (see :func:`mask_to_grasps`).

    The A axes as ``(theta (A,) image angles (rad), u (A, 2) unit closing directions,
    v (A, 2) along the finger pads, m_per_px_u, m_per_px_v (A,))``, the last two metres
    per pixel along u / v per metre of depth (they differ when fx != fy).
    """
    thetas = np.concatenate([np.arange(n_angles) * (math.pi / max(1, n_angles)), [minor_angle % math.pi]])
    if theta_range is not None:
        # Only closing axes near a preferred one (e.g. horizontal for upright products on a
        # shelf, where a tilted axis puts a finger on the board or across a corner).
        centre_theta, half_range = theta_range
        off = np.abs((thetas - centre_theta + math.pi / 2) % math.pi - math.pi / 2)
        thetas = np.concatenate([thetas[off <= half_range], [centre_theta % math.pi]])
    return _axes(thetas, fx, fy)


def _axes(thetas: np.ndarray, fx: float, fy: float) -> tuple[np.ndarray, ...]:
    """The closing axes of image angles ``thetas`` (A,) as :func:`_closing_axes` returns them."""
    thetas = np.asarray(thetas, dtype=np.float64)
    u = np.stack([np.cos(thetas), np.sin(thetas)], axis=1)
    v = np.stack([-np.sin(thetas), np.cos(thetas)], axis=1)
    return (thetas, u, v, np.sqrt((u[:, 0] / fx) ** 2 + (u[:, 1] / fy) ** 2),
            np.sqrt((v[:, 0] / fx) ** 2 + (v[:, 1] / fy) ** 2))


@dataclass(frozen=True)
class _Candidates:
    """(centre, axis) pairs whose chord fits the gripper, flattened to M rows.

    ``ci`` (M,) indexes the interior's centres; ``width_m``, ``margin_m`` (clearance
    per side) and ``opening_m`` (M,) metres; ``mid`` (M, 2) chord midpoint xy and
    ``half_w`` (M,) half the chord, image pixels; ``z`` (M,) object depth at the
    centre, metres; ``theta``, ``u``, ``v``, ``m_per_px_u``, ``m_per_px_v``: the
    candidate's closing axis (rows of :func:`_closing_axes`).
    """

    ci: np.ndarray
    theta: np.ndarray
    width_m: np.ndarray
    margin_m: np.ndarray
    opening_m: np.ndarray
    mid: np.ndarray
    half_w: np.ndarray
    z: np.ndarray
    u: np.ndarray
    v: np.ndarray
    m_per_px_u: np.ndarray
    m_per_px_v: np.ndarray


def _fitting_chords(mask: np.ndarray, interior: _Interior, axes: tuple[np.ndarray, ...], max_width_m: float,
                    margin_m: float, max_opening_m: float) -> _Candidates | None:
    """March from every centre along +-u to the mask edge; keep the chords no wider than ``max_width_m``."""
    centres, z_c = interior.centres, interior.z
    theta, u, v, m_per_px_u, m_per_px_v = axes
    t_max = max_width_m / (float(z_c.min()) * float(m_per_px_u.min())) + 2.0  # longest chord worth measuring
    t_plus, t_minus = _chord_ends(mask, centres, u, t_max)  # (N, A) px from the centre to the mask edge
    width_px = t_plus + t_minus
    width_m = width_px * z_c[:, None] * m_per_px_u[None, :]
    fits = np.isfinite(width_m) & (width_m <= max_width_m)
    if not fits.any():
        return None
    ci, ai = np.nonzero(fits)
    w_m = width_m[ci, ai]
    # The margin shrinks (down to min_margin_m, which max_width_m allows for) before the opening passes the maximum.
    margin = np.minimum(margin_m, (max_opening_m - w_m) / 2)
    mid = centres[ci] + ((t_plus[ci, ai] - t_minus[ci, ai]) / 2)[:, None] * u[ai]
    return _Candidates(ci, theta[ai], w_m, margin, w_m + 2 * margin, mid, width_px[ci, ai] / 2, z_c[ci], u[ai], v[ai],
                       m_per_px_u[ai], m_per_px_v[ai])


def _free_samples(pts: np.ndarray, c: _Candidates, depth: np.ndarray, mask: np.ndarray, K: np.ndarray,
                  grasp_depth_m: float) -> np.ndarray:
    """(M, n_u, n_v) bool: which footprint samples ``pts`` (M, n_u, n_v, 2) image xy leave a finger through."""
    fx, fy, cx, cy = float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2])
    d, in_img = _gather(depth, pts, np.nan)
    on_mask, _ = _gather(mask, pts, False)
    behind = d >= (c.z + grasp_depth_m - _DEPTH_SLACK_M)[:, None, None]
    # Under perspective an object's own side faces (parallel to the approach) show up
    # beside it in the image. In 3D they lie between the jaws, not in the fingers'
    # path: a sample whose 3D point is closer to the grasp axis than the pads is free.
    U3 = np.stack([c.u[:, 0] / fx, c.u[:, 1] / fy], axis=1)  # 3D closing direction (camera x, y)
    U3 = U3 / np.linalg.norm(U3, axis=1, keepdims=True)
    lateral = (((pts[..., 0] - cx) * d - ((c.mid[:, 0] - cx) * c.z)[:, None, None]) / fx * U3[:, None, None, 0]
               + ((pts[..., 1] - cy) * d - ((c.mid[:, 1] - cy) * c.z)[:, None, None]) / fy * U3[:, None, None, 1])
    between_jaws = np.abs(lateral) < (c.opening_m / 2)[:, None, None]
    # Outside the image or no depth: nothing seen there, assume free.
    return ~in_img | ((~_valid_depth(d) | behind | between_jaws) & ~on_mask)


def _free_fraction(c: _Candidates, depth: np.ndarray, mask: np.ndarray, K: np.ndarray,
                   gripper: GripperSpec, grasp_depth_m: float) -> np.ndarray:
    """(M,) share of the samples of both finger plates that are free space (see :func:`_free_samples`).

    A plate lies just outside a chord end, ``margin + finger_thickness`` long
    outward (along u) and ``finger_width`` across (along v).
    """
    plate_len = (c.margin_m + gripper.finger_thickness_m) * (1.0 / (c.z * c.m_per_px_u))  # (M,) px
    plate_span = gripper.finger_width_m * (1.0 / (c.z * c.m_per_px_v))  # (M,) px
    # about one sample per pixel, at most 10 x 10 per plate: an obstacle that matters
    # covers >= 10 % of the footprint, so a coarser grid still sees it
    n_u = int(np.clip(np.ceil(plate_len.max()) + 1, 3, 10))
    n_v = int(np.clip(np.ceil(plate_span.max()) + 1, 3, 10))
    fu = np.linspace(0.0, 1.0, n_u)
    fv = np.linspace(-0.5, 0.5, n_v)
    # First samples 1.5 px off the chord end: nearest-pixel chord ends are up to ~0.7 px
    # off on slanted edges, and the object's own jagged rim must not count against
    # the footprint (the finger pads stay >= min_margin_m away from the object anyway).
    s = (c.half_w + 1.5)[:, None] + fu[None, :] * np.maximum(plate_len - 1.5, 0.0)[:, None]  # (M, n_u) along u
    r = fv[None, :] * plate_span[:, None]  # (M, n_v) offset along v
    free_count = np.zeros(len(c.ci))
    for sign in (1.0, -1.0):
        pts = (c.mid[:, None, None, :] + sign * s[:, :, None, None] * c.u[:, None, None, :]
               + r[:, None, :, None] * c.v[:, None, None, :])  # (M, n_u, n_v, 2)
        free_count += _free_samples(pts, c, depth, mask, K, grasp_depth_m).reshape(len(c.ci), -1).sum(axis=1)
    return free_count / (2 * n_u * n_v)


def _scores(c: _Candidates, interior: _Interior, free_fraction: np.ndarray, max_width_m: float) -> np.ndarray:
    """(M,) scores in [0, 1]: free space, centrality, narrowness and alignment with the minor axis."""
    dt_norm = np.clip(interior.dt[c.ci] / max(interior.dt_max, 1e-9), 0.0, 1.0)
    to_centroid = np.linalg.norm(c.mid - interior.centroid, axis=1) / max(2.0 * interior.major_std, 1.0)
    centrality = 0.7 * dt_norm + 0.3 * np.clip(1.0 - to_centroid, 0.0, 1.0)
    narrowness = np.clip(1.0 - c.width_m / max_width_m, 0.0, 1.0)
    # Alignment only matters for elongated masks: a disc has no preferred axis.
    # Linear in the angle error (reaching 0 at 45 degrees) so that a few degrees off the
    # minor axis cost more than the pixel noise of chord widths.
    d_angle = np.abs((c.theta - interior.minor_angle + math.pi / 2) % math.pi - math.pi / 2)
    alignment = 1.0 - interior.elongation * np.clip(d_angle / (math.pi / 4), 0.0, 1.0)
    free_term = np.clip((free_fraction - MIN_FREE_FRACTION) / (1.0 - MIN_FREE_FRACTION), 0.0, 1.0)
    score = _W_FREE * free_term + _W_CENTRAL * centrality + _W_NARROW * narrowness + _W_ALIGN * alignment
    return np.clip(score, 0.0, 1.0)


def _near_duplicate(xy: np.ndarray, theta: float, half_w: float, kept: list[tuple[np.ndarray, float]]) -> bool:
    """Whether a grasp at ``xy`` (image px) with axis ``theta`` (rad) nearly repeats one in ``kept``."""
    for kept_xy, kept_theta in kept:
        dth = abs((theta - kept_theta + math.pi / 2) % math.pi - math.pi / 2)
        if np.linalg.norm(xy - kept_xy) < max(2.0, 0.15 * half_w * 2) and dth < math.radians(10):
            return True
    return False


def _distinct_grasps(c: _Candidates, order: np.ndarray, score: np.ndarray, free_fraction: np.ndarray,
                     depth: np.ndarray, K: np.ndarray, gripper: GripperSpec, grasp_depth_m: float, check_palm: bool,
                     max_candidates: int) -> list[ScoredGrasp]:
    """Candidates ``order`` (best first) as :class:`ScoredGrasp`, near duplicates dropped, palm-blocked ones last."""
    fx = float(K[0, 0])  # the environment converts w with fx
    out: list[ScoredGrasp] = []
    blocked: list[ScoredGrasp] = []
    kept: list[tuple[np.ndarray, float]] = []
    for k in order:
        th = float(c.theta[k])
        if _near_duplicate(c.mid[k], th, c.half_w[k], kept):
            continue
        # The environment reads the depth at the centre pixel itself: convert w with it.
        z_env = _centre_depth(depth, c.mid[k], float(c.z[k]))
        rect = GraspRect(x=float(c.mid[k, 0]), y=float(c.mid[k, 1]), w=float(c.opening_m[k] * fx / z_env),
                         h=float(gripper.finger_width_m * fx / z_env), theta=th).normalized()
        palm_blocked = check_palm and palm_blocked_fraction(rect, depth, K, gripper, grasp_depth_m) > MAX_PALM_BLOCKED
        grasp = ScoredGrasp(rect=rect, score=float(score[k]), opening_m=float(c.opening_m[k]),
                            width_m=float(c.width_m[k]), free_fraction=float(free_fraction[k]),
                            palm_blocked=palm_blocked)
        # The hand body would hit something before the fingers arrive: keep it only as a last resort.
        (blocked if palm_blocked else out).append(grasp)
        kept.append((c.mid[k], th))
        if len(out) >= max_candidates:
            break
    return (out + blocked)[:max_candidates]


def mask_to_grasps(mask: np.ndarray, depth_m: np.ndarray, K: np.ndarray, gripper: GripperSpec = GripperSpec(), *,
                   grasp_depth_m: float = GRASP_DEPTH_M, margin_m: float = GRASP_MARGIN_M,
                   min_margin_m: float | None = 0.004, n_angles: int = 12, max_candidates: int = 10,
                   max_centres: int = 24, check_palm: bool = True,
                   theta_range: tuple[float, float] | None = None) -> list[ScoredGrasp]:
    """Ranked parallel-jaw grasps on one object, best first (``[]`` if nothing is graspable).

    * ``mask``: (H, W) bool (or 0/1), the object's pixels.
    * ``depth_m``: (H, W) metric depth along the camera z axis, metres (NaN, inf
      or <= 0 count as invalid: nothing there).
    * ``K``: (3, 3) camera intrinsics (pixels).
    * ``gripper``: finger sizes and maximum opening.
    * ``grasp_depth_m``: how far past the visible surface the grasp point sits
      along the approach (the environment's setting).
    * ``margin_m``: clearance added on each side of the object to the opening.
    * ``min_margin_m``: if ``width + 2 * margin_m`` exceeds the maximum opening the
      margin shrinks, down to this value, before the width is rejected (so objects
      up to ``max_opening - 2 * min_margin_m`` wide stay graspable); ``None``
      disables shrinking (reject when ``width + 2 * margin_m > max_opening``).
    * ``n_angles``: closing-axis angles tried in ``[0, pi)`` (the mask's minor
      principal axis is always tried as well).
    * ``max_candidates``: the most grasps returned; ``max_centres``: the most
      candidate centres evaluated.
    * ``theta_range``: ``(theta, half_range)`` radians: try only closing axes within
      ``half_range`` of ``theta`` (modulo pi); ``None`` tries all.
    * ``check_palm``: return grasps whose hand body would hit something in front
      of the palm (:func:`palm_blocked_fraction` above ``MAX_PALM_BLOCKED``) only
      after every unblocked one.

    The returned rectangles' ``w`` converts back to ``opening_m`` with the depth at
    the rectangle's centre pixel (as the environment does): ``w * depth / fx``.
    """
    mask = np.asarray(mask).astype(bool)
    depth = np.asarray(depth_m, dtype=np.float64)
    if mask.shape != depth.shape[:2] or mask.ndim != 2:
        raise ValueError(f"mask {mask.shape} and depth {depth.shape} must be (H, W) images of the same size")
    K = np.asarray(K, dtype=np.float64)
    fx, fy = float(K[0, 0]), float(K[1, 1])
    if mask.sum() < 9:
        return []
    min_margin = margin_m if min_margin_m is None else min(min_margin_m, margin_m)
    max_width_m = gripper.max_opening_m - 2 * min_margin
    if max_width_m <= 0:
        return []
    interior = _mask_interior(mask, depth, max_centres)
    if interior is None:
        return []
    axes = _closing_axes(n_angles, interior.minor_angle, theta_range, fx, fy)
    cands = _fitting_chords(mask, interior, axes, max_width_m, margin_m, gripper.max_opening_m)
    if cands is None:
        return []
    free_fraction = _free_fraction(cands, depth, mask, K, gripper, grasp_depth_m)
    keep = free_fraction >= MIN_FREE_FRACTION
    if not keep.any():
        return []
    score = _scores(cands, interior, free_fraction, max_width_m)
    idx = np.nonzero(keep)[0]
    idx = idx[np.argsort(-score[idx], kind="stable")]
    return _distinct_grasps(cands, idx, score, free_fraction, depth, K, gripper, grasp_depth_m, check_palm,
                            max_candidates)


@dataclass(frozen=True)
class GraspCheck:
    """:func:`check_grasps` for N given grasps on one object (arrays of length N; image px, metres).

    ``mid`` (N, 2): the midpoint of the object's chord along each closing axis through the given centre (where
    the jaws centre on the object); ``width_m``: that chord, metres (inf where the mask runs on past the
    gripper's reach); ``opening_m``: width + clearance on each side, at most the gripper's opening; ``fits``:
    the chord fits between the jaws with at least the minimum clearance; ``free_fraction``: share of both
    finger plates' footprints that is free space (as the planner's candidates; 0 where it does not fit);
    ``palm_blocked``: the hand body meets something in front of the palm (:func:`palm_blocked_fraction`; only
    measured where the fingers are free: False elsewhere).
    """

    mid: np.ndarray
    width_m: np.ndarray
    opening_m: np.ndarray
    fits: np.ndarray
    free_fraction: np.ndarray
    palm_blocked: np.ndarray

    @property
    def clear(self) -> np.ndarray:
        """(N,) bool: fits, free fingers (>= MIN_FREE_FRACTION) and an unblocked palm: the planner would keep it."""
        return self.fits & (self.free_fraction >= MIN_FREE_FRACTION) & ~self.palm_blocked


def check_grasps(mask: np.ndarray, depth_m: np.ndarray, K: np.ndarray, centres: np.ndarray, thetas: np.ndarray,
                 gripper: GripperSpec = GripperSpec(), *, grasp_depth_m: float = GRASP_DEPTH_M,
                 margin_m: float = GRASP_MARGIN_M, min_margin_m: float = 0.004) -> GraspCheck:
    """Measure grasps proposed elsewhere (a network's centres ``(N, 2)`` image xy and closing angles ``(N,)``
    rad) on the object ``mask`` (H, W) bool with the planner's own geometry (:func:`mask_to_grasps` steps 2-4):
    the chord through each centre, whether it fits the gripper, the free space at the finger plates and in
    front of the palm. ``depth_m`` (H, W) metres, ``K`` 3x3."""
    mask = np.asarray(mask).astype(bool)
    depth = np.asarray(depth_m, dtype=np.float64)
    K = np.asarray(K, dtype=np.float64)
    centres = np.asarray(centres, dtype=np.float64).reshape(-1, 2)
    n = len(centres)
    theta, u, v, m_u, m_v = _axes(np.asarray(thetas, dtype=np.float64).reshape(-1), float(K[0, 0]), float(K[1, 1]))
    z = _local_depth(depth, mask, centres)
    for i in np.nonzero(~np.isfinite(z))[0]:  # no object depth right there: the centre pixel's, else the mask's
        z[i] = _centre_depth(depth, centres[i], float(np.nanmedian(np.where(mask & _valid_depth(depth), depth,
                                                                                 np.nan))) if mask.any() else 1.0)
    z = np.where(np.isfinite(z) & (z > 0), z, 1.0)
    max_width_m = gripper.max_opening_m - 2 * min(min_margin_m, margin_m)
    t_max = gripper.max_opening_m / (float(z.min()) * float(m_u.min())) + 2.0
    idx = np.arange(n)
    ends = [_chord_ends(mask, centres[i:i + 1], u[i:i + 1], t_max) for i in range(n)]  # one axis per centre
    t_plus = np.array([e[0][0, 0] for e in ends]).reshape(n)
    t_minus = np.array([e[1][0, 0] for e in ends]).reshape(n)
    width_m = (t_plus + t_minus) * z * m_u
    fits = np.isfinite(width_m) & (width_m <= max_width_m)
    w_fit = np.where(fits, width_m, 0.0)
    margin = np.minimum(margin_m, (gripper.max_opening_m - w_fit) / 2)
    opening = np.where(fits, w_fit + 2 * margin, gripper.max_opening_m)
    # where the chord does not fit (or runs on past the reach: inf) the centre stays where it was proposed
    shift = np.zeros(n)
    shift[fits] = (t_plus[fits] - t_minus[fits]) / 2
    mid = centres + shift[:, None] * u
    half_w = opening / 2 / (z * m_u)
    half_w[fits] = (t_plus[fits] + t_minus[fits]) / 2
    cands = _Candidates(idx, theta, w_fit, margin, opening, mid, half_w, z, u, v, m_u, m_v)
    free = np.where(fits, _free_fraction(cands, depth, mask, K, gripper, grasp_depth_m), 0.0)
    fx = float(K[0, 0])
    palm = np.zeros(n, bool)
    for i in np.nonzero(free >= MIN_FREE_FRACTION)[0]:  # (only these can be clear)
        z_env = _centre_depth(depth, mid[i], float(z[i]))
        rect = GraspRect(x=float(mid[i, 0]), y=float(mid[i, 1]), w=float(opening[i] * fx / z_env),
                         h=float(gripper.finger_width_m * fx / z_env), theta=float(theta[i]))
        palm[i] = palm_blocked_fraction(rect, depth, K, gripper, grasp_depth_m) > MAX_PALM_BLOCKED
    return GraspCheck(mid, width_m, opening, fits, free, palm)


def fallback_grasp(mask: np.ndarray, depth_m: np.ndarray, K: np.ndarray, gripper: GripperSpec = GripperSpec(), *,
                   margin_m: float = GRASP_MARGIN_M) -> GraspRect | None:
    """A best-effort rectangle when :func:`mask_to_grasps` finds nothing (``None`` for an empty mask).

    Centre at the mask's most interior pixel, closing axis along the mask's minor
    principal axis, opening = chord width there + margins, clamped to the
    gripper's maximum opening (converted to pixels with the depth at the centre).
    """
    mask = np.asarray(mask).astype(bool)
    if not mask.any():
        return None
    depth = np.asarray(depth_m, dtype=np.float64)
    fx = float(np.asarray(K)[0, 0])
    crop, offset = _padded_crop(mask)
    dt = cv2.distanceTransform(crop.astype(np.uint8), cv2.DIST_L2, 5)
    py, px = np.unravel_index(int(np.argmax(dt)), dt.shape)
    centre = np.array([px, py], dtype=np.float64) + offset
    theta = _minor_axis(crop)[0] if mask.sum() > 1 else 0.0
    u = np.array([math.cos(theta), math.sin(theta)])
    t_plus, t_minus = (float(t[0, 0]) for t in _chord_ends(mask, centre[None], u[None], float(sum(mask.shape))))
    width_px = t_plus + t_minus
    mid = centre + (t_plus - t_minus) / 2 * u
    z = _local_depth(depth, mask, mid[None])[0]
    z_env = _centre_depth(depth, mid, z)
    if not math.isfinite(z_env):
        z_env = 1.0  # no depth anywhere on the object: any positive scale keeps the rectangle valid
    z = z_env if not math.isfinite(z) else z
    opening = min(width_px * z / fx + 2 * margin_m, gripper.max_opening_m)
    return GraspRect(x=float(mid[0]), y=float(mid[1]), w=float(opening * fx / z_env),
                     h=float(gripper.finger_width_m * fx / z_env), theta=float(theta)).normalized()


def horizontal_theta_range(camera: CameraModel, approach_world: np.ndarray,
                           half_range_rad: float = math.radians(25)) -> tuple[float, float]:
    """Image angles ``(theta, half_range)`` of roughly horizontal closing axes for a sideways approach.

    Products stand upright on shelf boards: a horizontal closing axis grips their
    side faces and keeps both fingers off the board. The world's horizontal axis
    perpendicular to the approach, projected into the image, gives the centre.
    A vertical approach has no such axis: every angle is allowed.
    """
    approach = np.asarray(approach_world, dtype=np.float64)
    horizontal = np.cross(approach, [0.0, 0.0, 1.0])
    if np.linalg.norm(horizontal) < 1e-6:
        return 0.0, math.pi / 2
    R_camera_world = np.asarray(camera.T_world_camera)[:3, :3].T
    d = R_camera_world @ (horizontal / np.linalg.norm(horizontal))
    return math.atan2(d[1] * camera.K[1, 1], d[0] * camera.K[0, 0]), half_range_rad


def closing_axis_range(camera: CameraModel, scene_kind: str, approach_world: np.ndarray,
                       half_range_rad: float = math.radians(25)) -> tuple[float, float] | None:
    """The planner's allowed closing axes in a scene kind: ``(theta, half_range)`` image radians around the
    horizontal for a sideways approach (:func:`horizontal_theta_range`: upright products on shelf boards), None
    (any angle) for a top-down one."""
    if kinds.scene_kind(scene_kind).horizontal_approach:
        return horizontal_theta_range(camera, approach_world, half_range_rad)
    return None


def object_grasps(mask: np.ndarray, depth_m: np.ndarray, camera: CameraModel, scene_kind: str,
                  approach_world: np.ndarray, gripper: GripperSpec = GripperSpec(), *,
                  surface_slab_m: float = 0.02, shelf_half_range_rad: float = math.radians(25),
                  **kwargs) -> list[ScoredGrasp]:
    """Ranked grasps on one object as every mask-based planner in graspsim makes them.

    Tries the part of ``mask`` the approaching hand meets first
    (:func:`near_surface`), then the whole mask; on shelves only roughly
    horizontal closing axes (:func:`horizontal_theta_range`). ``kwargs`` go to
    :func:`mask_to_grasps` (grasp_depth_m, margin_m, n_angles, max_candidates).
    """
    theta_range = closing_axis_range(camera, scene_kind, approach_world, shelf_half_range_rad)
    for region in (near_surface(mask, depth_m, surface_slab_m), mask):
        if not np.any(region):
            continue
        grasps = mask_to_grasps(region, depth_m, camera.K, gripper, theta_range=theta_range, **kwargs)
        if grasps:
            return grasps
    return []
