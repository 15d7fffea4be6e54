"""Known-answer tests for the offline grasp metrics (rectangle metric, segmentation IoU, OCID class level)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from graspsim.grasping.metrics import (
    accuracy_by_angle,
    accuracy_by_iou,
    angle_difference,
    class_level_accuracy,
    class_level_match,
    convex_polygon_intersection,
    grasp_accuracy,
    jaccard_match,
    polygon_area,
    rect_iou,
    rect_polygon,
    miou_from_confusion,
    segmentation_class_recall,
    segmentation_confusion,
    segmentation_iou,
    segmentation_iou_seed_protocol,
)
from graspsim.types import GraspRect

RAD = math.radians


def sq(x: float, y: float, s: float = 10.0, theta: float = 0.0) -> GraspRect:
    return GraspRect(x, y, s, s, theta)


# --------------------------------------------------------------------------- polygons and IoU


def test_polygon_area_and_rect_polygon():
    r = GraspRect(50.0, 40.0, 20.0, 10.0, RAD(33.0))
    poly = rect_polygon(r)
    assert poly.shape == (4, 2)
    assert polygon_area(poly) == pytest.approx(200.0)
    assert polygon_area(poly[::-1]) == pytest.approx(200.0)
    assert polygon_area(np.zeros((2, 2))) == 0.0


def test_iou_identical_is_one():
    r = GraspRect(30.0, 20.0, 17.0, 6.0, RAD(12.0))
    assert rect_iou(r, r) == pytest.approx(1.0)


def test_iou_disjoint_is_zero():
    assert rect_iou(sq(10, 10), sq(100, 100)) == 0.0
    assert convex_polygon_intersection(rect_polygon(sq(10, 10)), rect_polygon(sq(100, 100))).shape == (0, 2)


def test_iou_half_offset_squares():
    # 10x10 squares offset by 5 px in x: overlap 5x10 = 50, union 150
    assert rect_iou(sq(50, 50), sq(55, 50)) == pytest.approx(50.0 / 150.0)
    inter = convex_polygon_intersection(rect_polygon(sq(50, 50)), rect_polygon(sq(55, 50)))
    assert polygon_area(inter) == pytest.approx(50.0)


def test_iou_square_and_square_rotated_45():
    s = 10.0
    inter = 2.0 * s * s * (math.sqrt(2.0) - 1.0)  # regular octagon
    expected = inter / (2.0 * s * s - inter)
    assert rect_iou(sq(50, 50, s), sq(50, 50, s, RAD(45.0))) == pytest.approx(expected, rel=1e-12)
    assert expected == pytest.approx(0.70710678, rel=1e-6)  # = 1/sqrt(2)


def test_iou_touching_edges_and_corners_is_zero():
    assert rect_iou(sq(5, 5), sq(15, 5)) == 0.0  # shared edge x = 10
    assert rect_iou(sq(5, 5), sq(15, 15)) == 0.0  # shared corner (10, 10)
    assert rect_iou(sq(5, 5), sq(5, 5 + 10, theta=RAD(90.0))) == 0.0  # shared edge y = 10, rotated copy


def test_iou_zero_size_rectangles():
    zero_w = GraspRect(50.0, 50.0, 0.0, 10.0, 0.3)
    zero_both = GraspRect(50.0, 50.0, 0.0, 0.0, 0.0)
    assert rect_iou(zero_w, sq(50, 50)) == 0.0
    assert rect_iou(sq(50, 50), zero_w) == 0.0
    assert rect_iou(zero_both, zero_both) == 0.0
    assert rect_iou(zero_w, zero_w) == 0.0
    assert rect_iou(GraspRect(math.nan, 0, 1, 1, 0), sq(0, 0)) == 0.0


def test_iou_identical_polygons_intersection():
    p = rect_polygon(GraspRect(20.0, 20.0, 12.0, 8.0, RAD(20.0)))
    inter = convex_polygon_intersection(p, p)
    assert polygon_area(inter) == pytest.approx(96.0)


def test_iou_contained():
    assert rect_iou(sq(50, 50, 20), sq(52, 51, 10)) == pytest.approx(100.0 / 400.0)


@pytest.mark.parametrize(
    "a, b",
    [
        (GraspRect(40, 30, 25, 8, 0.3), GraspRect(43, 28, 20, 12, 1.1)),
        (GraspRect(40, 30, 25, 8, -0.7), GraspRect(35, 33, 30, 5, 0.2)),
        (sq(0, 0, 10, 0.1), sq(3, 4, 7, 2.0)),
    ],
)
def test_iou_symmetric_and_pi_periodic(a, b):
    iou = rect_iou(a, b)
    assert 0.0 < iou < 1.0
    assert rect_iou(b, a) == pytest.approx(iou, abs=1e-12)
    a_turned = GraspRect(a.x, a.y, a.w, a.h, a.theta + math.pi)
    b_turned = GraspRect(b.x, b.y, b.w, b.h, b.theta - math.pi)
    assert rect_iou(a_turned, b) == pytest.approx(iou, abs=1e-12)
    assert rect_iou(a_turned, b_turned) == pytest.approx(iou, abs=1e-12)


# --------------------------------------------------------------------------- angles


def test_angle_difference_known_values():
    assert math.degrees(angle_difference(RAD(89), RAD(-89))) == pytest.approx(2.0)
    assert angle_difference(0.0, math.pi) == pytest.approx(0.0, abs=1e-12)
    assert math.degrees(angle_difference(RAD(10), RAD(100))) == pytest.approx(90.0)
    assert math.degrees(angle_difference(RAD(10), RAD(370))) == pytest.approx(0.0, abs=1e-9)
    assert math.degrees(angle_difference(RAD(-170), RAD(170))) == pytest.approx(20.0)
    for a in np.linspace(-7, 7, 29):
        for b in np.linspace(-5, 6, 23):
            d = angle_difference(a, b)
            assert 0.0 <= d <= math.pi / 2 + 1e-12
            assert d == pytest.approx(angle_difference(b, a))


# --------------------------------------------------------------------------- jaccard_match


def test_jaccard_angle_threshold_edge():
    gt = [sq(50, 50, 20)]
    # rotated copies of a square overlap by >= 1/sqrt(2), so only the angle decides
    assert not jaccard_match(sq(50, 50, 20, RAD(30.0)), gt)
    assert jaccard_match(sq(50, 50, 20, RAD(29.9)), gt)
    assert not jaccard_match(sq(50, 50, 20, RAD(-30.0)), gt)
    # the same edge away from zero and across the wrap-around
    gt2 = [sq(50, 50, 20, RAD(75.0))]
    assert not jaccard_match(sq(50, 50, 20, RAD(-75.0)), gt2)  # 30 deg apart modulo 180
    assert jaccard_match(sq(50, 50, 20, RAD(-75.1)), gt2)  # 29.9 deg apart
    assert not jaccard_match(sq(50, 50, 20, RAD(10.0)), [sq(50, 50, 20, RAD(40.0))])


def test_jaccard_iou_threshold_edge():
    gt = [sq(50, 50)]
    assert not jaccard_match(sq(56, 50), gt)  # IoU 40/160 = 0.25 exactly: not > 0.25
    assert jaccard_match(sq(55.9, 50), gt)  # 41/159 > 0.25
    assert jaccard_match(sq(56, 50), gt, iou_threshold=0.2)


def test_jaccard_needs_both_conditions_on_the_same_gt():
    pred = sq(50, 50, 20, 0.0)
    good_iou_bad_angle = sq(50, 50, 20, RAD(60.0))
    good_angle_bad_iou = sq(80, 50, 20, 0.0)
    assert not jaccard_match(pred, [good_iou_bad_angle, good_angle_bad_iou])
    assert jaccard_match(pred, [good_iou_bad_angle, good_angle_bad_iou, sq(52, 50, 20, RAD(5))])


def test_jaccard_none_and_empty():
    assert not jaccard_match(None, [sq(0, 0)])
    assert not jaccard_match(sq(0, 0), [])
    with pytest.raises(ValueError):
        jaccard_match(sq(0, 0), [sq(0, 0)], iou_threshold=25.0)


# --------------------------------------------------------------------------- accuracy tables


def test_accuracy_by_angle_table():
    gts = [[sq(50, 50, 20)] for _ in range(4)]
    preds = [
        sq(50, 50, 20, RAD(3.0)),  # passes every threshold
        sq(50, 50, 20, RAD(-12.0)),  # passes 30, 25, 20, 15
        sq(50, 50, 20, RAD(180.0 + 27.0)),  # passes 30 only
        None,  # no prediction: always a miss
    ]
    table = accuracy_by_angle(preds, gts)
    assert table == pytest.approx({"30": 0.75, "25": 0.5, "20": 0.5, "15": 0.5, "10": 0.25, "5": 0.25})
    assert list(table) == ["30", "25", "20", "15", "10", "5"]
    assert grasp_accuracy(preds, gts) == pytest.approx(0.75)


def test_accuracy_by_iou_table():
    gts = [[sq(50, 50)] for _ in range(4)]
    preds = [
        sq(50, 50),  # IoU 1
        sq(55, 50),  # IoU 1/3: passes 25 and 30
        sq(55.6, 50),  # IoU 4.4 / 15.6 = 0.282: passes 25 only
        sq(58, 50),  # IoU 2 / 18: fails all
    ]
    table = accuracy_by_iou(preds, gts)
    assert table == pytest.approx({"25": 0.75, "30": 0.5, "35": 0.25})
    assert list(table) == ["25", "30", "35"]


def test_grasp_accuracy_errors_and_empty():
    with pytest.raises(ValueError):
        grasp_accuracy([None], [])
    assert math.isnan(grasp_accuracy([], []))


# --------------------------------------------------------------------------- segmentation IoU

GT_SEG = np.array(
    [
        [0, 0, 1, 1],
        [0, 0, 1, 1],
        [2, 2, 1, 1],
        [2, 2, -1, -1],
    ]
)
PRED_SEG = np.array(
    [
        [0, 0, 0, 1],
        [0, 0, 1, 1],
        [2, 1, 1, 1],
        [2, 2, 2, 2],
    ]
)


def test_segmentation_iou_known_answer():
    out = segmentation_iou(PRED_SEG, GT_SEG, num_classes=3)
    # class 0: inter 4, union 5; class 1: inter 5, union 7; class 2: inter 3, union 4 (ignored pixels left out)
    assert out["per_class"] == pytest.approx({0: 0.8, 1: 5 / 7, 2: 0.75})
    assert out["mean_iou"] == pytest.approx((0.8 + 5 / 7 + 0.75) / 3)


def test_segmentation_iou_ignore_index_and_absent_classes():
    pred = PRED_SEG.copy()
    pred[3, 2:] = 0  # whatever is predicted on ignored pixels does not count
    out = segmentation_iou(pred, GT_SEG, num_classes=5)
    assert out["per_class"] == pytest.approx({0: 0.8, 1: 5 / 7, 2: 0.75})  # classes 3, 4 absent: not listed
    gt = GT_SEG.copy()
    gt[gt == -1] = 255
    out255 = segmentation_iou(PRED_SEG, gt, num_classes=3, ignore_index=255)
    assert out255["per_class"] == pytest.approx({0: 0.8, 1: 5 / 7, 2: 0.75})
    # a class only in the prediction counts with IoU 0
    pred3 = PRED_SEG.copy()
    pred3[0, 0] = 3
    out3 = segmentation_iou(pred3, GT_SEG, num_classes=4)
    assert out3["per_class"][3] == 0.0
    assert out3["per_class"][0] == pytest.approx(3 / 5)
    assert out3["mean_iou"] == pytest.approx((0.6 + 5 / 7 + 0.75 + 0.0) / 4)


def test_segmentation_iou_errors():
    with pytest.raises(ValueError):
        segmentation_iou(PRED_SEG, GT_SEG[:3], num_classes=3)
    with pytest.raises(ValueError):
        segmentation_iou(PRED_SEG, GT_SEG, num_classes=2)  # gt label 2 out of range
    assert math.isnan(segmentation_iou(np.zeros((2, 2)), -np.ones((2, 2)), num_classes=2)["mean_iou"])


def test_seed_protocol_iou_known_answer():
    # no ignored pixels in this protocol: GT_SEG's -1 pixels are just "not class c"
    # class 1: pred 6 px, gt 6 px, overlap 5 -> 5/7; class 2: pred 5 px, gt 4 px, overlap 3 -> 3/6; background left out
    out = segmentation_iou_seed_protocol(PRED_SEG, GT_SEG, min_pred_px=1)
    assert out["per_class"] == pytest.approx({1: 5 / 7, 2: 0.5})
    assert out["mean_iou"] == pytest.approx((5 / 7 + 0.5) / 2)
    # predicted classes under min_pred_px are skipped (class 2 has 5 px)
    assert segmentation_iou_seed_protocol(PRED_SEG, GT_SEG, min_pred_px=6)["per_class"] == pytest.approx({1: 5 / 7})
    assert math.isnan(segmentation_iou_seed_protocol(PRED_SEG, GT_SEG, min_pred_px=7)["mean_iou"])


def test_seed_protocol_ignores_missed_classes_and_recall_counts_them():
    pred = PRED_SEG.copy()
    pred[pred == 2] = 0  # class 2 missed entirely: the seed's protocol does not see it ...
    assert segmentation_iou_seed_protocol(pred, GT_SEG, min_pred_px=1)["mean_iou"] == pytest.approx(5 / 7)
    # ... the strict per-image IoU does (class 2 IoU 0), and the class recall counts it
    assert segmentation_iou(pred, GT_SEG, num_classes=3)["per_class"][2] == 0.0
    assert segmentation_class_recall(pred, GT_SEG, min_px=1) == pytest.approx(0.5)
    assert segmentation_class_recall(PRED_SEG, GT_SEG, min_px=1) == 1.0
    # a class the ground truth holds on fewer than min_px pixels is not asked for (class 2: 4 px)
    assert segmentation_class_recall(pred, GT_SEG, min_px=5) == 1.0
    assert math.isnan(segmentation_class_recall(pred, np.zeros_like(GT_SEG), min_px=1))
    with pytest.raises(ValueError):
        segmentation_iou_seed_protocol(PRED_SEG, GT_SEG[:3])


def test_dataset_level_miou_known_answer():
    m = segmentation_confusion(np.array([[0, 1], [2, 2]]), np.array([[0, 1], [1, 2]]), num_classes=3)
    m = m + segmentation_confusion(np.array([[2, 2], [2, 0]]), np.array([[2, 2], [2, 2]]), num_classes=3)
    assert m.tolist() == [[1, 0, 0], [0, 1, 1], [1, 0, 4]]  # rows ground truth, columns prediction
    out = miou_from_confusion(m)
    assert out["per_class"] == pytest.approx({0: 0.5, 1: 0.5, 2: 4 / 6})
    assert out["mean_iou"] == pytest.approx(5 / 9)
    # pooled over the dataset, unlike the per-image mean of segmentation_iou (2/3 and 3/8 here)
    per_image = [segmentation_iou(np.array([[0, 1], [2, 2]]), np.array([[0, 1], [1, 2]]), 3)["mean_iou"],
                 segmentation_iou(np.array([[2, 2], [2, 0]]), np.array([[2, 2], [2, 2]]), 3)["mean_iou"]]
    assert per_image == pytest.approx([2 / 3, 3 / 8])
    # ignored ground truth is left out; labels out of range are errors
    m_ign = segmentation_confusion(PRED_SEG, GT_SEG, num_classes=3)
    assert m_ign.sum() == 14
    assert miou_from_confusion(m_ign)["per_class"] == pytest.approx({0: 0.8, 1: 5 / 7, 2: 0.75})
    with pytest.raises(ValueError):
        segmentation_confusion(PRED_SEG + 1, GT_SEG, num_classes=3)
    with pytest.raises(ValueError):
        miou_from_confusion(np.zeros((2, 3)))


# --------------------------------------------------------------------------- OCID_grasp class level


def _class_map() -> np.ndarray:
    cmap = np.ones((20, 20), dtype=np.int64)  # cols 0..9: class 1
    cmap[:, 10:] = 2  # cols 10..19: class 2
    return cmap


G1 = GraspRect(5.0, 10.0, 6.0, 4.0, 0.0)
G2 = GraspRect(15.0, 10.0, 6.0, 4.0, 0.0)
G3 = GraspRect(5.0, 15.0, 6.0, 4.0, 0.0)
GT_BY_CLASS = {1: [G1], 2: [G2], 3: [G3]}


def test_class_level_best_grasp_on_mask_decides():
    preds = [
        (GraspRect(15.0, 10.0, 6.0, 4.0, 0.0), 0.99),  # on class 2, matches G2
        (GraspRect(5.0, 10.0, 6.0, 4.0, 0.05), 0.6),  # on class 1, would match G1
        (GraspRect(9.4, 10.0, 6.0, 4.0, math.pi / 2), 0.7),  # centre col 9 -> class 1, best there, wrong angle
    ]
    result = class_level_match(preds, _class_map(), GT_BY_CLASS)
    assert result == {1: False, 2: True, 3: False}  # class 3: no prediction on its (absent) mask

    # centre at x = 9.5 rounds to column 10: now on class 2 (lower score than the 0.99 grasp)
    preds_shifted = preds[:2] + [(GraspRect(9.5, 10.0, 6.0, 4.0, math.pi / 2), 0.7)]
    result2 = class_level_match(preds_shifted, _class_map(), GT_BY_CLASS)
    assert result2 == {1: True, 2: True, 3: False}

    assert class_level_accuracy([result, result2]) == pytest.approx(3 / 6)


def test_class_level_uses_predicted_mask_not_geometry():
    cmap = np.full((20, 20), 2, dtype=np.int64)  # everything predicted as class 2
    preds = [(G1, 0.9), (G2, 0.5)]
    # G1's copy lies on the class-2 mask and is the best grasp there, but does not match G2
    assert class_level_match(preds, cmap, {1: [G1], 2: [G2]}) == {1: False, 2: False}
    # a grasp only matches ground truth of its own class
    assert class_level_match([(G2, 0.9)], cmap, {1: [G2], 2: [G1]}) == {1: False, 2: False}


def test_class_level_edge_cases():
    cmap = _class_map()
    outside = (GraspRect(25.0, 10.0, 6.0, 4.0, 0.0), 1.0)  # centre outside the image: ignored
    assert class_level_match([outside, (G2, 0.1)], cmap, {2: [G2], 1: []}) == {2: True}  # empty gt class skipped
    assert class_level_match([], cmap, {1: [G1]}) == {1: False}
    assert math.isnan(class_level_accuracy([]))
    assert class_level_accuracy([{1: True}, {1: False, 2: True, 4: True}]) == pytest.approx(0.75)
