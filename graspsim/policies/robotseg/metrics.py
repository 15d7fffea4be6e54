"""Robot-mask metrics as DAVIS and the VRS benchmark report them: J, F and J&F per part (numpy + OpenCV only).

Masks are (H, W) boolean arrays (True = the part); label maps are (H, W)
integer arrays in the ``robot_seg`` convention (0 background, 1 arm, 2
gripper), from which :func:`part_masks` takes the three parts VRS scores:
``arm`` (== 1), ``gripper`` (== 2) and ``whole`` (> 0).

* **J** (region similarity, :func:`region_j`): the intersection over union of
  prediction and ground truth; 1 when both are empty (DAVIS: nothing to find,
  nothing found).
* **F** (contour accuracy, :func:`boundary_f`): the F-measure of the two masks'
  boundaries. A boundary pixel of one counts as matched when a boundary pixel of
  the other lies within ``ceil(0.008 * image diagonal)`` pixels (a disc: 7 px at
  640x480, 2 px at 160x120); precision = matched share of the predicted
  boundary, recall = matched share of the true one, F = 2PR / (P + R) (0 when
  both are 0). Empty boundaries as DAVIS: both empty -> P = R = 1; only the
  prediction's empty -> P = 1, R = 0; only the truth's empty -> P = 0, R = 1.
  A mask's boundary (:func:`boundary`) is every pixel whose mask value differs
  from its right, lower or lower-right neighbour (the image edge continues the
  mask, so a mask cut off by the image border has no boundary there), which is
  the boundary map DAVIS's evaluation takes from the Berkeley benchmark.
* **J&F**: the mean of J and F.

Aggregation (:func:`aggregate`) averages per group (an embodiment, a split):
over images, or for videos first over each sequence's frames and then over
sequences, as DAVIS averages per sequence.
"""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any, Iterable

import numpy as np

#: The parts VRS scores, and which labels each covers.
PARTS = ("arm", "gripper", "whole")
#: Boundary match tolerance as a fraction of the image diagonal (DAVIS, VRS).
BOUNDARY_TOLERANCE = 0.008


def _check_pair(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    pred, gt = np.asarray(pred), np.asarray(gt)
    if pred.shape != gt.shape or pred.ndim != 2:
        raise ValueError(f"prediction and ground truth must be (H, W) of the same size, got {pred.shape} and "
                         f"{gt.shape}")
    return pred.astype(bool), gt.astype(bool)


def part_masks(labels: np.ndarray) -> dict[str, np.ndarray]:
    """The ``arm`` (label 1), ``gripper`` (label 2) and ``whole`` (nonzero) masks (H, W) bool of a label map."""
    labels = np.asarray(labels)
    return {"arm": labels == 1, "gripper": labels == 2, "whole": labels > 0}


def region_j(pred: np.ndarray, gt: np.ndarray) -> float:
    """J: intersection over union of two (H, W) masks; 1.0 when both are empty."""
    pred, gt = _check_pair(pred, gt)
    union = int(np.count_nonzero(pred | gt))
    return float(np.count_nonzero(pred & gt) / union) if union else 1.0


def boundary(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool: pixels whose value differs from the right, lower or lower-right neighbour (the border
    replicated, so the image edge is no boundary)."""
    m = np.asarray(mask, dtype=bool)
    padded = np.pad(m, ((0, 1), (0, 1)), mode="edge")
    return (m != padded[:-1, 1:]) | (m != padded[1:, :-1]) | (m != padded[1:, 1:])


def tolerance_px(shape: tuple[int, ...], tolerance: float = BOUNDARY_TOLERANCE) -> int:
    """The match radius in pixels: ``ceil(tolerance * diagonal)`` for a fraction < 1, else ``tolerance`` px."""
    if tolerance >= 1:
        return int(round(tolerance))
    return int(math.ceil(tolerance * math.hypot(shape[0], shape[1])))


def _disc(radius: int) -> np.ndarray:
    """(2r+1, 2r+1) uint8 structuring element: the pixels within ``radius`` (Euclidean) of the centre."""
    yy, xx = np.mgrid[-radius:radius + 1, -radius:radius + 1]
    return (xx * xx + yy * yy <= radius * radius).astype(np.uint8)


def boundary_prf(pred: np.ndarray, gt: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> tuple[float, float,
                                                                                                     float]:
    """``(precision, recall, F)`` of the boundaries of two (H, W) masks (see the module docstring);
    ``tolerance``: a fraction of the image diagonal (< 1) or a radius in pixels (>= 1)."""
    import cv2

    pred, gt = _check_pair(pred, gt)
    pb, gb = boundary(pred), boundary(gt)
    n_pred, n_gt = int(np.count_nonzero(pb)), int(np.count_nonzero(gb))
    if n_pred == 0 or n_gt == 0:
        precision, recall = (1.0 if n_pred == 0 else 0.0), (1.0 if n_gt == 0 else 0.0)
    else:
        disc = _disc(tolerance_px(pred.shape, tolerance))
        near_gt = cv2.dilate(gb.astype(np.uint8), disc).astype(bool)
        near_pred = cv2.dilate(pb.astype(np.uint8), disc).astype(bool)
        precision = np.count_nonzero(pb & near_gt) / n_pred
        recall = np.count_nonzero(gb & near_pred) / n_gt
    f = 2.0 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return float(precision), float(recall), float(f)


def boundary_f(pred: np.ndarray, gt: np.ndarray, tolerance: float = BOUNDARY_TOLERANCE) -> float:
    """F: the boundary F-measure of two (H, W) masks (:func:`boundary_prf`)."""
    return boundary_prf(pred, gt, tolerance)[2]


def part_scores(pred_labels: np.ndarray, gt_labels: np.ndarray,
                tolerance: float = BOUNDARY_TOLERANCE) -> dict[str, dict[str, float]]:
    """``{part: {"J", "F", "JF"}}`` for ``arm``, ``gripper`` and ``whole`` of two (H, W) label maps (0/1/2)."""
    pred, gt = part_masks(pred_labels), part_masks(gt_labels)
    scores = {}
    for part in PARTS:
        j, f = region_j(pred[part], gt[part]), boundary_f(pred[part], gt[part], tolerance)
        scores[part] = {"J": j, "F": f, "JF": (j + f) / 2.0}
    return scores


def aggregate(rows: Iterable[dict[str, Any]], group_key: str = "embodiment",
              sequence_key: str | None = None) -> dict[str, dict[str, Any]]:
    """Mean J, F and J&F per part and per group of scored images or frames.

    ``rows``: dicts with ``scores`` (a :func:`part_scores` result), the group
    under ``group_key`` (e.g. ``"embodiment"`` or ``"split"``) and, for videos,
    the sequence under ``sequence_key`` (frames of one sequence are averaged
    first, then sequences, so a long video weighs as much as a short one).
    Returns ``{group: {part: {"J", "F", "JF"}, "images": n, "sequences": m}}``
    with groups sorted, plus ``"all"`` over every row (averaged the same way).
    """
    rows = list(rows)
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        groups[str(row[group_key])].append(row)
    out = {g: _mean_scores(groups[g], sequence_key) for g in sorted(groups)}
    if rows:
        out["all"] = _mean_scores(rows, sequence_key)
    return out


def _mean_scores(rows: list[dict[str, Any]], sequence_key: str | None) -> dict[str, Any]:
    units: dict[Any, list[dict[str, Any]]] = defaultdict(list)  # a sequence, or each image on its own
    for k, row in enumerate(rows):
        units[row[sequence_key] if sequence_key else k].append(row["scores"])
    out: dict[str, Any] = {}
    for part in PARTS:
        per_unit = [{m: float(np.mean([s[part][m] for s in unit])) for m in ("J", "F", "JF")}
                    for unit in units.values()]
        out[part] = {m: float(np.mean([u[m] for u in per_unit])) for m in ("J", "F", "JF")}
    out["images"] = len(rows)
    out["sequences"] = len(units) if sequence_key else 0
    return out
