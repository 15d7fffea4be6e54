"""Drawing grasps and masks: colours land where the geometry says, inputs stay untouched."""

from __future__ import annotations

import math

import cv2
import numpy as np
import pytest

from graspsim.types import GraspRect
from graspsim.viz import draw_grasp, draw_grasps, overlay_mask, save_png

BLUE = (0, 0, 255)
RED = (255, 0, 0)
GREY = 128


def canvas() -> np.ndarray:
    return np.full((120, 160, 3), GREY, dtype=np.uint8)


def test_draw_grasp_theta_zero():
    img = canvas()
    before = img.copy()
    out = draw_grasp(img, GraspRect(80, 60, 40, 20, 0.0), thickness=2)
    assert np.array_equal(img, before)  # input not modified
    assert out is not img and out.shape == img.shape and out.dtype == np.uint8
    # red along the opening, between the jaws
    for x in (70, 80, 90):
        assert tuple(out[60, x]) == RED
    # blue plates just outside the opening (x = 80 +- (20 + ~2.5)), spanning h = 20
    for y in (52, 60, 68):
        assert tuple(out[y, 57]) == BLUE
        assert tuple(out[y, 103]) == BLUE
    # untouched far from the grasp, and beyond the plates' extent
    assert tuple(out[10, 10]) == (GREY,) * 3
    assert tuple(out[60 + 15, 57]) == (GREY,) * 3


def test_draw_grasp_theta_half_pi():
    img = canvas()
    out = draw_grasp(img, GraspRect(80, 60, 40, 20, math.pi / 2), thickness=2)
    for y in (50, 60, 70):
        assert tuple(out[y, 80]) == RED
    # plates above and below
    for x in (72, 80, 88):
        assert tuple(out[37, x]) == BLUE
        assert tuple(out[83, x]) == BLUE
    assert tuple(out[60, 57]) == (GREY,) * 3  # where theta=0 would have put a plate


def test_draw_grasps_and_bad_input():
    out = draw_grasps(canvas(), [GraspRect(40, 40, 20, 10, 0.0), GraspRect(120, 80, 20, 10, 0.3)])
    assert tuple(out[40, 40]) == RED and tuple(out[80, 120]) == RED
    with pytest.raises(ValueError):
        draw_grasp(np.zeros((10, 10), np.uint8), GraspRect(5, 5, 4, 2, 0.0))


def test_overlay_mask():
    img = canvas()
    mask = np.zeros(img.shape[:2], bool)
    mask[10:20, 10:20] = True
    out = overlay_mask(img, mask, (0, 255, 0), 0.5)
    assert np.array_equal(img, canvas())
    assert tuple(out[15, 15]) == (64, 192, 64)
    assert tuple(out[50, 50]) == (GREY,) * 3
    assert np.array_equal(overlay_mask(img, mask, (0, 255, 0), 0.0), img)
    with pytest.raises(ValueError):
        overlay_mask(img, mask[:5], (0, 255, 0), 0.5)


def test_save_png_roundtrip_rgb_order(tmp_path):
    img = canvas()
    img[0, 0] = RED
    path = save_png(tmp_path / "sub" / "grasp.png", img)
    back = cv2.imread(str(path), cv2.IMREAD_COLOR)
    assert back is not None
    assert tuple(back[0, 0]) == (0, 0, 255)  # BGR on disk == red
    assert np.array_equal(back[..., ::-1], img)


def test_save_png_errors(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(OSError):
        save_png(blocker / "x.png", canvas())
    with pytest.raises(ValueError):
        save_png(tmp_path / "x.jpg", canvas())
    with pytest.raises(ValueError):
        save_png(tmp_path / "x.png", canvas().astype(np.float32))
