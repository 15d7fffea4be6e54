"""Offline grasp-detection metrics (numpy only).

The evaluation protocol of the Cornell / Jacquard "rectangle metric" (Jaccard
index) and of the OCID_grasp class-level evaluation (Ainetter & Fraundorfer,
"End-to-end trainable deep neural network for robotic grasp detection and
semantic segmentation from RGB", Sec. VI-A and VI-D):

* A predicted grasp rectangle is **correct** when some ground-truth rectangle of
  the same image has ``IoU > 0.25`` (strictly greater) **and** an angle
  difference ``< 30 degrees`` (strictly less). Both thresholds can be changed
  (Table III sweeps the angle over 30/25/20/15/10/5 degrees with IoU 25 %;
  Table IV sweeps the IoU over 25/30/35 % with the angle at 30 degrees).
* Per image only the top (best-scoring) prediction is judged; the grasp
  accuracy is the share of images whose top prediction is correct.
* Segmentation quality is the class IoU ``|P & G| / |P | G|`` per class, and its
  mean over the classes that occur.
* OCID_grasp class level: for each object class of an image, the best-scoring
  predicted grasp whose centre pixel lies on the *predicted* segmentation mask
  of that class must be correct against the ground-truth grasps of that class.

Conventions are those of :class:`graspsim.types.GraspRect`: rectangles in
pixels (``x`` right, ``y`` down, pixel centres at integer coordinates), ``w``
the opening along the closing axis, ``h`` the finger size across it, ``theta``
in radians from image +x towards +y. Grasp angles are compared modulo pi: a
rectangle and the same rectangle turned by pi are the same grasp.

Threshold edges: a value within ``_EDGE_EPS`` of a threshold counts as *on* the
threshold and therefore fails the strict test (so an angle difference that is
30 degrees up to floating-point rounding is not ``< 30``, and an IoU of 0.25 up
to rounding is not ``> 0.25``). This makes the result independent of how the
rounding of ``theta`` or of the polygon clipping happens to fall.
"""

from __future__ import annotations

import math
from typing import Iterable, Mapping, Sequence

import numpy as np

from graspsim.grasping.rect_geometry import rect_corners, signed_area
from graspsim.types import GraspRect

#: Angle thresholds of Table III (degrees), IoU fixed at 25 %.
ANGLE_THRESHOLDS_DEG: tuple[float, ...] = (30.0, 25.0, 20.0, 15.0, 10.0, 5.0)
#: IoU thresholds of Table IV (fractions), angle fixed at 30 degrees.
IOU_THRESHOLDS: tuple[float, ...] = (0.25, 0.30, 0.35)

# Tolerance for "exactly on the threshold" (IoU as a fraction, angles in degrees).
_EDGE_EPS = 1e-9
# Relative tolerance for degenerate (zero-area) polygons and the inside test.
_GEOM_EPS = 1e-12


# --------------------------------------------------------------------------- polygons
#: (4, 2) float64 corners ``xy`` (pixels) of a rectangle; see :func:`rect_geometry.rect_corners`.
rect_polygon = rect_corners


def polygon_area(poly: np.ndarray) -> float:
    """Area (pixels^2, >= 0) of a simple polygon ``(N, 2)`` given in either winding; 0 for N < 3."""
    return abs(signed_area(np.asarray(poly, dtype=np.float64).reshape(-1, 2)))


def convex_polygon_intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection of two convex polygons (Sutherland-Hodgman clipping).

    ``a`` and ``b`` are ``(N, 2)`` / ``(M, 2)`` vertex lists in either winding.
    Returns the intersection polygon as ``(K, 2)`` float64 in the winding with
    positive :func:`signed_area`, or an empty ``(0, 2)`` array when the
    polygons do not overlap with positive area: disjoint polygons, polygons
    that only touch along an edge or at a corner, and degenerate inputs (fewer
    than 3 vertices, zero area, non-finite coordinates).
    """
    empty = np.zeros((0, 2), dtype=np.float64)
    pa = np.asarray(a, dtype=np.float64).reshape(-1, 2)
    pb = np.asarray(b, dtype=np.float64).reshape(-1, 2)
    if len(pa) < 3 or len(pb) < 3 or not (np.all(np.isfinite(pa)) and np.all(np.isfinite(pb))):
        return empty
    scale = max(1.0, float(np.ptp(pa, axis=0).max()), float(np.ptp(pb, axis=0).max()))  # for relative tolerances
    area_eps = _GEOM_EPS * scale * scale
    sa, sb = signed_area(pa), signed_area(pb)
    if abs(sa) <= area_eps or abs(sb) <= area_eps:
        return empty
    pa, pb = (pa if sa > 0 else pa[::-1]), (pb if sb > 0 else pb[::-1])  # both with positive signed area

    output = list(pa)
    n = len(pb)
    for i in range(n):
        if not output:
            break
        e0, e1 = pb[i], pb[(i + 1) % n]
        edge = e1 - e0
        edge_len = float(np.hypot(edge[0], edge[1]))
        if edge_len == 0.0:
            continue  # repeated vertex in the clip polygon
        tol = _GEOM_EPS * scale * edge_len

        def side(p: np.ndarray) -> float:
            # > 0: on the inner (left, for positive winding) side of the edge
            return float(edge[0] * (p[1] - e0[1]) - edge[1] * (p[0] - e0[0]))

        inp, output = output, []
        for j in range(len(inp)):
            cur, prev = inp[j], inp[j - 1]
            s_cur, s_prev = side(cur), side(prev)
            cur_in, prev_in = s_cur >= -tol, s_prev >= -tol
            if cur_in != prev_in:  # the edge crosses the clip line: keep the crossing point
                output.append(prev + (cur - prev) * (s_prev / (s_prev - s_cur)))
            if cur_in:
                output.append(cur)

    if len(output) < 3:
        return empty
    poly = np.asarray(output, dtype=np.float64)
    # drop consecutive duplicates produced by vertices on clip edges
    keep = np.linalg.norm(poly - np.roll(poly, 1, axis=0), axis=1) > _GEOM_EPS * scale
    poly = poly[keep]
    return poly if signed_area(poly) > area_eps else empty  # (0 for fewer than 3 vertices)


def _as_rect(rect: GraspRect | Sequence[float]) -> GraspRect:
    return rect if isinstance(rect, GraspRect) else GraspRect.from_array(rect)


def rect_iou(a: GraspRect, b: GraspRect) -> float:
    """Intersection over union of two grasp rectangles, in ``[0, 1]``.

    Areas are in pixels^2 of the exact (continuous) rectangles, not pixel counts.
    Returns 0 when the union is 0 (two zero-size rectangles), when the
    rectangles only touch, and when a rectangle has non-finite numbers.
    Symmetric in ``a`` and ``b``; ``theta`` and ``theta + pi`` give the same value.
    """
    ra, rb = _as_rect(a), _as_rect(b)
    if not (np.all(np.isfinite(ra.as_array())) and np.all(np.isfinite(rb.as_array()))):
        return 0.0
    pa, pb = rect_polygon(ra), rect_polygon(rb)
    area_a, area_b = polygon_area(pa), polygon_area(pb)
    inter = polygon_area(convex_polygon_intersection(pa, pb))
    union = area_a + area_b - inter
    return float(min(1.0, max(0.0, inter / union))) if union > 0.0 else 0.0


# --------------------------------------------------------------------------- angles
def angle_difference(a_theta: float, b_theta: float) -> float:
    """Smallest difference (radians, in ``[0, pi/2]``) between two grasp angles modulo pi.

    Grasp angles are pi-periodic: 89 deg vs -89 deg differ by 2 deg, 0 vs 180
    deg by 0, 10 vs 100 deg by 90 deg. Returns NaN for non-finite input.
    """
    diff = abs(float(a_theta) - float(b_theta))
    if not math.isfinite(diff):
        return float("nan")
    d = math.fmod(diff, math.pi)
    return min(d, math.pi - d)


# --------------------------------------------------------------------------- rectangle metric
def _check_thresholds(iou_threshold: float, angle_threshold_deg: float) -> None:
    if not 0.0 <= iou_threshold < 1.0:
        raise ValueError(f"iou_threshold is a fraction in [0, 1), got {iou_threshold!r}")
    if not 0.0 < angle_threshold_deg <= 90.0:
        raise ValueError(f"angle_threshold_deg is in degrees, in (0, 90], got {angle_threshold_deg!r}")


def jaccard_match(pred: GraspRect | None, gts: Iterable[GraspRect], iou_threshold: float = 0.25,
                  angle_threshold_deg: float = 30.0) -> bool:
    """Cornell / Jacquard rectangle metric for one predicted grasp (see the module docstring).

    True when one ground-truth rectangle in ``gts`` passes both strict tests, IoU
    (a fraction) and angle difference (degrees). ``pred=None`` and an empty ``gts`` give False.
    """
    _check_thresholds(iou_threshold, angle_threshold_deg)
    if pred is None:
        return False
    p = _as_rect(pred)
    return any(math.degrees(angle_difference(p.theta, g.theta)) < angle_threshold_deg - _EDGE_EPS
               and rect_iou(p, g) > iou_threshold + _EDGE_EPS for g in map(_as_rect, gts))


def grasp_accuracy(preds: Sequence[GraspRect | None], gts: Sequence[Sequence[GraspRect]], iou_threshold: float = 0.25,
                   angle_threshold_deg: float = 30.0) -> float:
    """Share of images (in ``[0, 1]``) whose top prediction passes :func:`jaccard_match`.

    ``preds[i]`` is the single best-scoring predicted rectangle of image ``i``
    (``None`` when the detector gave none: counted as a miss); ``gts[i]`` the
    list of ground-truth rectangles of image ``i``. Raises ValueError when the
    lengths differ; returns NaN for zero images.
    """
    _check_thresholds(iou_threshold, angle_threshold_deg)
    if len(preds) != len(gts):
        raise ValueError(f"{len(preds)} predictions but {len(gts)} ground-truth lists; one of each per image")
    if len(preds) == 0:
        return float("nan")
    hits = sum(jaccard_match(p, g, iou_threshold, angle_threshold_deg) for p, g in zip(preds, gts))
    return hits / len(preds)


def _key(value: float) -> str:
    return f"{value:g}"


def accuracy_by_angle(preds: Sequence[GraspRect | None], gts: Sequence[Sequence[GraspRect]],
                      angle_thresholds_deg: Sequence[float] = ANGLE_THRESHOLDS_DEG,
                      iou_threshold: float = 0.25) -> dict[str, float]:
    """Table III: accuracy per angle threshold (degrees) at IoU > 25 %.

    Returns ``{"30": acc, "25": acc, "20": acc, "15": acc, "10": acc, "5": acc}``
    (keys are the thresholds in degrees written with ``%g``; values fractions).
    """
    return {_key(t): grasp_accuracy(preds, gts, iou_threshold, float(t)) for t in angle_thresholds_deg}


def accuracy_by_iou(preds: Sequence[GraspRect | None], gts: Sequence[Sequence[GraspRect]],
                    iou_thresholds: Sequence[float] = IOU_THRESHOLDS,
                    angle_threshold_deg: float = 30.0) -> dict[str, float]:
    """Table IV: accuracy per IoU threshold at angle difference < 30 degrees.

    Returns ``{"25": acc, "30": acc, "35": acc}`` (keys are the IoU thresholds in
    percent written with ``%g``; values fractions).
    """
    return {_key(round(100.0 * t, 9)): grasp_accuracy(preds, gts, float(t), angle_threshold_deg) for t in iou_thresholds}


# --------------------------------------------------------------------------- segmentation
def _checked_maps(pred_labels: np.ndarray, gt_labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred_labels), np.asarray(gt_labels)
    if pred.shape != gt.shape:
        raise ValueError(f"label maps differ in shape: pred {pred.shape}, gt {gt.shape}")
    return pred, gt


def segmentation_iou(pred_labels: np.ndarray, gt_labels: np.ndarray, num_classes: int, ignore_index: int = -1) -> dict:
    """Per-class and mean intersection over union of two label maps.

    ``pred_labels`` and ``gt_labels`` are integer arrays of the same shape
    (e.g. ``(H, W)``) with class indices ``0 .. num_classes - 1``. Pixels whose
    ground truth equals ``ignore_index`` are left out entirely (whatever was
    predicted there). A predicted label outside ``0 .. num_classes - 1`` belongs
    to no class (it only counts against the ground-truth class of its pixel).

    Returns ``{"mean_iou": float, "per_class": {class_index: iou}}``; only
    classes present in the ground truth or the prediction (on non-ignored
    pixels) are listed and averaged. ``mean_iou`` is NaN when no class is present.
    Raises ValueError on shape mismatch or a ground-truth label out of range.
    """
    pred, gt = _checked_maps(pred_labels, gt_labels)
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    valid = gt != ignore_index
    bad = valid & ((gt < 0) | (gt >= num_classes))
    if np.any(bad):
        raise ValueError(f"ground-truth labels must lie in [0, {num_classes}) or equal ignore_index={ignore_index}; "
                         f"found {np.unique(gt[bad])[:5].tolist()}")
    g = gt[valid].astype(np.int64).ravel()
    p = pred[valid].astype(np.int64).ravel()
    p_in = (p >= 0) & (p < num_classes)
    gt_count = np.bincount(g, minlength=num_classes)
    pred_count = np.bincount(p[p_in], minlength=num_classes)
    inter = np.bincount(g[p == g], minlength=num_classes)
    union = gt_count + pred_count - inter
    return _iou_result({int(c): float(inter[c] / union[c]) for c in range(num_classes) if union[c] > 0})


def _iou_result(per_class: dict[int, float]) -> dict:
    """``{"mean_iou": mean of per_class (NaN if empty), "per_class": per_class}``."""
    return {"mean_iou": float(np.mean(list(per_class.values()))) if per_class else float("nan"), "per_class": per_class}


def segmentation_iou_seed_protocol(pred_labels: np.ndarray, gt_labels: np.ndarray, min_pred_px: int = 100,
                                   background: int = 0) -> dict:
    """Segmentation IoU of one image as the seed's authors compute it for OCID_grasp (their evaluation script).

    For every label ``c != background`` that occurs in ``pred_labels`` on at
    least ``min_pred_px`` pixels: IoU of the masks ``pred == c`` and ``gt == c``
    (whole image, no ignored pixels); the image's value is the mean over those
    labels. Unlike :func:`segmentation_iou` it leaves out the background,
    classes the prediction misses entirely and predicted specks under
    ``min_pred_px`` (100 px of a 640x480 image in the seed's protocol), so it
    is more lenient; report it beside :func:`segmentation_class_recall`, which
    counts what it leaves out.

    Returns ``{"mean_iou": float (NaN if no label qualifies), "per_class": {c: iou}}``.
    """
    pred, gt = _checked_maps(pred_labels, gt_labels)
    labels, counts = np.unique(pred, return_counts=True)
    per_class = {}
    for c, n in zip(labels.tolist(), counts.tolist()):
        if c == background or n < min_pred_px:
            continue
        p, g = pred == c, gt == c
        per_class[int(c)] = float(np.count_nonzero(p & g) / np.count_nonzero(p | g))
    return _iou_result(per_class)


def segmentation_class_recall(pred_labels: np.ndarray, gt_labels: np.ndarray, min_px: int = 100, background: int = 0,
                              ignore_index: int = -1) -> float:
    """Share of the ground-truth classes of one image (not ``background`` or ``ignore_index``, at least
    ``min_px`` pixels) that the prediction shows on at least ``min_px`` pixels of the same image (anywhere).
    NaN if no class qualifies."""
    pred, gt = _checked_maps(pred_labels, gt_labels)
    g_labels, g_counts = np.unique(gt, return_counts=True)
    wanted = [int(c) for c, n in zip(g_labels.tolist(), g_counts.tolist())
              if c not in (background, ignore_index) and n >= min_px]
    if not wanted:
        return float("nan")
    p_labels, p_counts = np.unique(pred, return_counts=True)
    shown = {int(c) for c, n in zip(p_labels.tolist(), p_counts.tolist()) if n >= min_px}
    return float(np.mean([c in shown for c in wanted]))


def segmentation_confusion(pred_labels: np.ndarray, gt_labels: np.ndarray, num_classes: int,
                           ignore_index: int = -1) -> np.ndarray:
    """``(num_classes, num_classes)`` int64 pixel counts, rows = ground truth, columns = prediction.

    Pixels with ground truth ``ignore_index`` are left out. Sum the matrices
    of a dataset for the standard dataset-level mIoU (:func:`miou_from_confusion`).
    Raises ValueError on shape mismatch or a label (either map) out of ``0 .. num_classes - 1``.
    """
    pred, gt = _checked_maps(pred_labels, gt_labels)
    valid = gt != ignore_index
    g = gt[valid].astype(np.int64).ravel()
    p = pred[valid].astype(np.int64).ravel()
    for name, v in (("ground-truth", g), ("predicted", p)):
        out = (v < 0) | (v >= num_classes)
        if np.any(out):
            raise ValueError(f"{name} labels must lie in [0, {num_classes}); found {np.unique(v[out])[:5].tolist()}")
    m = np.bincount(g * num_classes + p, minlength=num_classes * num_classes)
    return m.reshape(num_classes, num_classes).astype(np.int64)


def miou_from_confusion(confusion: np.ndarray) -> dict:
    """Dataset-level IoU per class from a summed :func:`segmentation_confusion` matrix (the usual semantic
    segmentation mIoU, VOC / Cityscapes style): ``inter = M[c, c]``, ``union = row c + column c - inter``.

    Returns ``{"mean_iou": float, "per_class": {c: iou}}`` over the classes with a non-zero union (NaN if none).
    """
    m = np.asarray(confusion, dtype=np.int64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion matrix must be square, got shape {m.shape}")
    inter = np.diag(m)
    union = m.sum(axis=1) + m.sum(axis=0) - inter
    return _iou_result({int(c): float(inter[c] / union[c]) for c in range(m.shape[0]) if union[c] > 0})


# --------------------------------------------------------------------------- OCID_grasp class level
def _centre_pixel(rect: GraspRect, height: int, width: int) -> tuple[int, int] | None:
    """(row, col) of the pixel holding the rectangle centre (rounded half up), or None if outside."""
    if not (math.isfinite(rect.x) and math.isfinite(rect.y)):
        return None
    col, row = math.floor(rect.x + 0.5), math.floor(rect.y + 0.5)
    return (row, col) if 0 <= row < height and 0 <= col < width else None


def class_level_match(pred_grasps: Sequence[tuple[GraspRect, float]], pred_class_map: np.ndarray,
                      gt_grasps_by_class: Mapping[int, Sequence[GraspRect]], iou_threshold: float = 0.25,
                      angle_threshold_deg: float = 30.0) -> dict[int, bool]:
    """OCID_grasp class-level Jaccard index for one image: ``{class: correct}``.

    ``pred_grasps``: ``(rect, score)`` pairs (higher is better); ``pred_class_map``:
    the predicted ``(H, W)`` integer segmentation; ``gt_grasps_by_class``: class ->
    ground-truth rectangles (classes with none are skipped). Per class, the
    best-scoring grasp whose centre pixel (rounded half up) shows that class on the
    predicted map is judged with :func:`jaccard_match`; a class without one is False.
    """
    _check_thresholds(iou_threshold, angle_threshold_deg)
    cmap = np.asarray(pred_class_map)
    if cmap.ndim != 2:
        raise ValueError(f"pred_class_map must be (H, W), got shape {cmap.shape}")
    # class of the predicted map under each grasp centre (None when outside the image)
    pixels = [_centre_pixel(_as_rect(rect), *cmap.shape) for rect, _score in pred_grasps]
    centre_class = [None if px is None else int(cmap[px]) for px in pixels]
    result: dict[int, bool] = {}
    for cls, gts in gt_grasps_by_class.items():
        gts = list(gts)
        if not gts:
            continue
        best: GraspRect | None = None
        best_score = -math.inf
        for (rect, score), c in zip(pred_grasps, centre_class):
            score = float(score)  # a NaN score ranks nowhere; ties go to the earlier grasp
            if c == int(cls) and not math.isnan(score) and (best is None or score > best_score):
                best, best_score = _as_rect(rect), score
        result[int(cls)] = jaccard_match(best, gts, iou_threshold, angle_threshold_deg)
    return result


def class_level_accuracy(per_image: Iterable[Mapping[int, bool]]) -> float:
    """Mean correctness over all (image, class) pairs of :func:`class_level_match` results; NaN if none."""
    flags = [bool(v) for d in per_image for v in d.values()]
    return sum(flags) / len(flags) if flags else float("nan")
