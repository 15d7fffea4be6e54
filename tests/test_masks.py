"""graspsim.masks: the bounding-rectangle shortcuts give exactly what the whole-frame computations give."""

import cv2
import numpy as np
import pytest

from graspsim.masks import component_at, mask_bounds, mask_box, mask_pixels


def _whole_frame_component_at(mask, points_xy):
    """The reference: connected components of the whole frame (the code before the shortcut)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if n <= 2:
        return mask
    h, w = mask.shape
    for x, y in np.asarray(points_xy).reshape(-1, 2):
        c, r = int(round(float(x))), int(round(float(y)))
        if 0 <= r < h and 0 <= c < w and labels[r, c] > 0:
            return labels == labels[r, c]
    return labels == (1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA])))


def test_bounds_and_box_known_answer():
    mask = np.zeros((6, 8), dtype=bool)
    mask[2:4, 3:7] = True
    mask[5, 1] = True
    assert mask_bounds(mask) == (slice(2, 6), slice(1, 7))
    assert mask_bounds(mask, margin=1) == (slice(1, 6), slice(0, 8))  # clipped to the image
    np.testing.assert_array_equal(mask_box(mask), np.array([1, 2, 7, 6], dtype=np.float32))
    assert mask_bounds(np.zeros((3, 3), dtype=bool)) is None
    with pytest.raises(ValueError, match="empty mask"):
        mask_box(np.zeros((3, 3), dtype=bool))
    rows, cols = mask_pixels(np.zeros((3, 3), dtype=bool))
    assert rows.size == cols.size == 0


def test_same_as_whole_frame_on_random_masks():
    rng = np.random.default_rng(0)
    for trial in range(60):
        h, w = rng.integers(20, 90, size=2)
        mask = np.zeros((h, w), dtype=bool)
        for _ in range(rng.integers(1, 5)):  # a few blobs, some touching the image edge
            r0, c0 = rng.integers(-5, h), rng.integers(-5, w)
            mask[max(0, r0): r0 + rng.integers(1, 15), max(0, c0): c0 + rng.integers(1, 15)] = True
        mask &= rng.random((h, w)) > 0.1  # holes and specks: several components
        rows, cols = mask_pixels(mask)
        ref_rows, ref_cols = np.nonzero(mask)
        np.testing.assert_array_equal(rows, ref_rows)
        np.testing.assert_array_equal(cols, ref_cols)
        points = rng.uniform(-3, max(h, w) + 3, size=(3, 2))
        for pts in (points, np.zeros((0, 2)), points[:1]):
            np.testing.assert_array_equal(component_at(mask, pts), _whole_frame_component_at(mask, pts))
        if mask.any():
            ys, xs = np.nonzero(mask)
            np.testing.assert_array_equal(mask_box(mask), [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1])


def test_component_at_picks_the_clicked_component_else_the_largest():
    mask = np.zeros((10, 10), dtype=bool)
    mask[0:2, 0:2] = True          # 4 pixels
    mask[5:9, 5:9] = True          # 16 pixels
    mask[0, 8] = True              # 1 pixel
    np.testing.assert_array_equal(component_at(mask, np.array([[0.6, 1.2]])), mask & (np.arange(10)[:, None] < 3)
                                  & (np.arange(10)[None] < 3))
    largest = np.zeros_like(mask)
    largest[5:9, 5:9] = True
    np.testing.assert_array_equal(component_at(mask, np.array([[3.0, 3.0]])), largest)  # on no component
    one = np.zeros_like(mask)
    one[2:4, 2:4] = True
    assert component_at(one, np.zeros((0, 2))) is one  # a single component: the mask itself
