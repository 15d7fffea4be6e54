"""Known answers and invariants of the guided-filter segmentation upsampling (graspsim.policies.det_seg.guided)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from graspsim.policies.det_seg.guided import (
    _bilinear_at,
    _inverse_sym3,
    guided_filter_coefficients,
    guided_labels,
    guided_upsample,
)


def _edge_scene(edge_col: int = 37, height: int = 48, width: int = 96):
    """An RGB image with a sharp colour edge at ``edge_col`` (left red-ish, right blue-ish, mild texture) and
    2-class probabilities at 1/8 resolution that only know the edge to within a cell."""
    rng = np.random.default_rng(0)
    rgb = np.zeros((height, width, 3), np.float32)
    rgb[:, :edge_col] = (0.8, 0.3, 0.2)
    rgb[:, edge_col:] = (0.2, 0.3, 0.8)
    rgb += rng.normal(0, 0.01, rgb.shape).astype(np.float32)
    rgb_u8 = np.clip(rgb * 255, 0, 255).astype(np.uint8)
    truth = np.where(np.arange(width)[None, :] < edge_col, 0, 1).repeat(height, 0)
    # coarse probabilities: the true map box-averaged over 8x8 cells (class 1 = right)
    coarse_right = cv2.resize(truth.astype(np.float32), (width // 8, height // 8), interpolation=cv2.INTER_AREA)
    probs = np.stack([1 - coarse_right, coarse_right], axis=-1).astype(np.float32)
    return rgb_u8, probs, truth


def test_inverse_sym3_matches_numpy():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(64, 3, 3))
    spd = a @ a.transpose(0, 2, 1) + 0.05 * np.eye(3)
    assert np.allclose(_inverse_sym3(spd), np.linalg.inv(spd), atol=1e-8)


def test_bilinear_at_matches_cv2_resize():
    rng = np.random.default_rng(2)
    maps = rng.random((6, 8, 5)).astype(np.float32)
    full = cv2.resize(maps, (32, 24), interpolation=cv2.INTER_LINEAR)
    rows, cols = np.nonzero(np.ones((24, 32), bool))
    assert np.allclose(_bilinear_at(maps, rows, cols, 4.0), full.reshape(-1, 5), atol=1e-6)


def test_constant_probabilities_pass_through_and_guide_channel_is_reproduced():
    rng = np.random.default_rng(3)
    guide = rng.random((20, 30, 3)).astype(np.float32)
    const = np.full((20, 30, 2), 0.25, np.float32)
    a, b = guided_filter_coefficients(guide, const, radius=2, eps=1e-4)
    assert np.allclose(a, 0, atol=1e-4) and np.allclose(b, 0.25, atol=1e-5)
    # a source that is a linear function of the guide is reproduced (a local linear model fits it exactly)
    src = (0.5 * guide[..., 1] + 0.1)[..., None]
    a, b = guided_filter_coefficients(guide, src, radius=2, eps=1e-8)
    out = (a[..., 0] * guide).sum(-1) + b[..., 0]
    assert np.allclose(out, src[..., 0], atol=2e-3)


def test_boundary_snaps_to_the_image_edge():
    rgb, probs, truth = _edge_scene(edge_col=37)
    # bilinear upsampling of the coarse probabilities puts the boundary where the cells say (~40), not at 37
    bilinear = cv2.resize(probs, (rgb.shape[1], rgb.shape[0]), interpolation=cv2.INTER_LINEAR).argmax(-1)
    assert (bilinear != truth).sum() >= rgb.shape[0]  # at least one column wrong
    for subsample in (1, 2, 4):
        labels = guided_labels(rgb, probs, radius=4, eps=1e-4, subsample=subsample)
        assert labels.shape == truth.shape and labels.dtype == np.int64
        assert (labels == truth).all(), (subsample, np.nonzero(labels != truth))


def test_band_evaluation_equals_full_evaluation():
    rng = np.random.default_rng(4)
    rgb = np.zeros((64, 96, 3), np.uint8)
    # three coloured products on a grey background, at positions off the coarse grid
    rgb[:] = 120
    rgb[5:40, 7:33] = (200, 40, 40)
    rgb[22:61, 41:70] = (40, 180, 60)
    rgb[9:30, 75:93] = (30, 60, 200)
    rgb = np.clip(rgb.astype(np.int16) + rng.integers(-4, 5, rgb.shape), 0, 255).astype(np.uint8)
    truth = np.zeros((64, 96), np.int64)
    truth[5:40, 7:33], truth[22:61, 41:70], truth[9:30, 75:93] = 3, 7, 9
    onehot = np.eye(12, dtype=np.float32)[truth]
    probs = cv2.resize(onehot, (24, 16), interpolation=cv2.INTER_AREA)
    present = np.unique(probs.argmax(-1))
    for subsample in (2, 4):
        fast = guided_labels(rgb, probs, radius=4, eps=1e-4, subsample=subsample)
        full = present[guided_upsample(rgb, probs[:, :, present], 4, 1e-4, subsample).argmax(-1)]
        assert (fast == full).mean() > 0.999
        assert (fast == truth).mean() > 0.99  # and the products come out where the image shows them


def test_single_class_min_cells_and_errors():
    rgb = np.zeros((16, 16, 3), np.uint8)
    probs = np.zeros((4, 4, 5), np.float32)
    probs[..., 3] = 1.0
    assert (guided_labels(rgb, probs, 2, 1e-4) == 3).all()
    probs[0, 0] = 0
    probs[0, 0, 1] = 1.0  # one cell of class 1: dropped with min_cells=2, so everything is class 3
    assert (guided_labels(rgb, probs, 2, 1e-4, subsample=1, min_cells=2) == 3).all()
    with pytest.raises(ValueError):
        guided_labels(rgb[..., 0], probs, 2, 1e-4)
    with pytest.raises(ValueError):
        guided_labels(rgb, probs, 0, 1e-4)
    with pytest.raises(ValueError):
        guided_labels(rgb, probs, 2, 0.0)
    with pytest.raises(ValueError):
        guided_filter_coefficients(np.zeros((4, 4, 3), np.float32), np.zeros((5, 4, 2), np.float32), 1, 1e-3)
