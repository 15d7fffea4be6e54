"""J, F and J&F of robot masks (graspsim/policies/robotseg/metrics.py) against masks computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from graspsim.policies.robotseg.metrics import (aggregate, boundary, boundary_f, boundary_prf, part_masks, part_scores,
                                                region_j, tolerance_px)


def _band(shape, first_col, last_col) -> np.ndarray:
    """Columns first_col..last_col over the full image height: its only boundaries are two columns (the top and
    bottom image edges are no boundary)."""
    m = np.zeros(shape, dtype=bool)
    m[:, first_col:last_col + 1] = True
    return m


def test_tolerance_is_0008_of_the_diagonal_rounded_up():
    assert tolerance_px((480, 640)) == 7  # 0.008 * 800 = 6.4
    assert tolerance_px((120, 160)) == 2  # 0.008 * 200 = 1.6
    assert tolerance_px((120, 160), 3) == 3  # >= 1: pixels
    assert tolerance_px((120, 160), 0.0) == 0


def test_identical_masks_score_one():
    m = np.zeros((48, 64), dtype=bool)
    m[10:30, 5:40] = True
    assert region_j(m, m) == 1.0 and boundary_prf(m, m) == (1.0, 1.0, 1.0)
    empty = np.zeros_like(m)
    assert region_j(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0  # nothing to find, nothing found
    labels = np.zeros((48, 64), dtype=np.uint8)
    labels[10:30, 5:30], labels[10:30, 30:40] = 1, 2
    assert part_scores(labels, labels) == {p: {"J": 1.0, "F": 1.0, "JF": 1.0} for p in ("arm", "gripper", "whole")}


def test_disjoint_and_missing_masks_score_zero():
    a, b = np.zeros((48, 64), dtype=bool), np.zeros((48, 64), dtype=bool)
    a[5:15, 5:15], b[30:40, 40:60] = True, True
    assert region_j(a, b) == 0.0 and boundary_prf(a, b) == (0.0, 0.0, 0.0)
    empty = np.zeros_like(a)
    assert region_j(empty, b) == 0.0 and boundary_prf(empty, b) == (1.0, 0.0, 0.0)  # DAVIS: P 1, R 0
    assert region_j(a, empty) == 0.0 and boundary_prf(a, empty) == (0.0, 1.0, 0.0)


def test_boundary_map_by_hand():
    gt = np.zeros((6, 6), dtype=bool)
    gt[1:3, 1:3] = True  # a 2x2 square
    expected = {(0, 0), (0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1), (2, 2)}
    assert set(zip(*np.nonzero(boundary(gt)))) == expected
    full = np.ones((6, 6), dtype=bool)
    assert not boundary(full).any()  # the image edge is no boundary


def test_small_example_computed_by_hand():
    """GT a 2x2 square, prediction 2x3 (one column more). Boundaries (pixels whose right, lower or lower-right
    neighbour differs): GT 8 pixels, prediction 10, 7 of them shared. J = 4 / 6. With exact matching (radius 0)
    P = 7/10, R = 7/8, F = 2PR / (P + R) = 7/9; within 1 px every boundary pixel has a partner: F = 1."""
    gt, pred = np.zeros((6, 6), dtype=bool), np.zeros((6, 6), dtype=bool)
    gt[1:3, 1:3], pred[1:3, 1:4] = True, True
    assert int(boundary(gt).sum()) == 8 and int(boundary(pred).sum()) == 10
    assert int((boundary(gt) & boundary(pred)).sum()) == 7
    assert region_j(pred, gt) == pytest.approx(4 / 6)
    p, r, f = boundary_prf(pred, gt, tolerance=0.0)
    assert (p, r, f) == (pytest.approx(0.7), pytest.approx(0.875), pytest.approx(7 / 9))
    assert boundary_prf(pred, gt, tolerance=1) == (1.0, 1.0, 1.0)
    labels_gt, labels_pred = gt.astype(np.uint8) * 2, pred.astype(np.uint8) * 2  # all gripper
    scores = part_scores(labels_pred, labels_gt, tolerance=0.0)
    assert scores["gripper"] == scores["whole"] == {"J": pytest.approx(2 / 3), "F": pytest.approx(7 / 9),
                                                    "JF": pytest.approx((2 / 3 + 7 / 9) / 2)}
    assert scores["arm"] == {"J": 1.0, "F": 1.0, "JF": 1.0}  # no arm in either


@pytest.mark.parametrize("shift, f_expected", [(1, 1.0), (5, 1.0), (7, 1.0), (8, 0.0), (20, 0.0)])
def test_boundary_tolerance_at_640x480(shift, f_expected):
    """A 100-column band shifted sideways: its two boundary columns move by ``shift`` px. Within the tolerance
    (7 px at 640x480) F stays 1 while J drops to (100 - s) / (100 + s); beyond it no boundary pixel matches."""
    gt, pred = _band((480, 640), 200, 299), _band((480, 640), 200 + shift, 299 + shift)
    assert region_j(pred, gt) == pytest.approx((100 - shift) / (100 + shift))
    assert boundary_f(pred, gt) == f_expected
    assert region_j(pred, gt) < 1.0


def test_tolerance_is_a_disc_not_a_square():
    """Single-pixel masks: each boundary is the 2x2 block (the pixel, and the ones left of, above and above-left
    of it). Moved (5, 5), the block's corners are 5.66, 6.40, 6.40 and 7.07 px from their nearest partner: within
    a 7 px disc three of four match both ways (a square window would match all four); moved (6, 6), none."""
    gt = np.zeros((200, 200), dtype=bool)
    gt[100, 100] = True
    assert set(zip(*np.nonzero(boundary(gt)))) == {(99, 99), (99, 100), (100, 99), (100, 100)}
    assert boundary_prf(np.roll(gt, (5, 5), axis=(0, 1)), gt, tolerance=7) == (0.75, 0.75, 0.75)
    assert boundary_prf(np.roll(gt, (6, 6), axis=(0, 1)), gt, tolerance=7) == (0.0, 0.0, 0.0)
    assert boundary_prf(np.roll(gt, (0, 7), axis=(0, 1)), gt, tolerance=7) == (1.0, 1.0, 1.0)


def test_part_masks_and_shapes():
    labels = np.array([[0, 1, 2], [2, 1, 0]], dtype=np.uint8)
    parts = part_masks(labels)
    assert parts["arm"].tolist() == [[False, True, False], [False, True, False]]
    assert parts["gripper"].tolist() == [[False, False, True], [True, False, False]]
    assert parts["whole"].tolist() == [[False, True, True], [True, True, False]]
    with pytest.raises(ValueError, match="same size"):
        region_j(np.zeros((2, 3)), np.zeros((3, 2)))


def test_aggregate_per_embodiment_and_per_sequence():
    def row(emb, j, f, seq=None):
        scores = {p: {"J": j, "F": f, "JF": (j + f) / 2} for p in ("arm", "gripper", "whole")}
        return {"embodiment": emb, "sequence": seq, "scores": scores}

    rows = [row("panda", 1.0, 0.5), row("panda", 0.5, 0.5), row("xarm6", 0.0, 1.0)]
    out = aggregate(rows)
    assert list(out) == ["panda", "xarm6", "all"]
    assert out["panda"]["whole"] == {"J": 0.75, "F": 0.5, "JF": 0.625} and out["panda"]["images"] == 2
    assert out["all"]["arm"]["J"] == pytest.approx(0.5) and out["all"]["images"] == 3
    # videos: a 3-frame sequence at J 1 and a 1-frame sequence at J 0 weigh the same
    video = [row("kuka_iiwa", 1.0, 1.0, "a")] * 3 + [row("kuka_iiwa", 0.0, 0.0, "b")]
    out = aggregate(video, sequence_key="sequence")
    assert out["kuka_iiwa"]["gripper"]["J"] == 0.5 and out["kuka_iiwa"]["sequences"] == 2
    assert aggregate(video)["kuka_iiwa"]["gripper"]["J"] == 0.75  # per frame
    assert aggregate([]) == {}
