"""The clip_sam size check: masks back-projected with depth against the named product's catalog size."""

from __future__ import annotations

import numpy as np
import pytest

from graspsim.assets.catalog import get_class
from graspsim.policies.clip_sam.size_check import size_plausible, visible_extents_m

# 500 px focal length: at 1 m a pixel is 2 mm
K = np.array([[500.0, 0.0, 160.0], [0.0, 500.0, 120.0], [0.0, 0.0, 1.0]])


def _plane(h=240, w=320, z=1.0):
    return np.full((h, w), z, dtype=np.float32)


def _rect(x0, y0, w, h, shape=(240, 320)):
    m = np.zeros(shape, dtype=bool)
    m[y0:y0 + h, x0:x0 + w] = True
    return m


def test_extents_of_a_known_rectangle():
    """50 x 100 px at 1 m = 0.10 x 0.20 m; the robust range widened by 1 / 0.9 recovers the full extent."""
    e = visible_extents_m(_rect(100, 60, 50, 100), _plane(), K)
    assert e is not None and e[0] >= e[1]
    np.testing.assert_allclose(e, [0.20, 0.10], rtol=0.03)
    # twice as far away, half the pixels: the same metres
    np.testing.assert_allclose(visible_extents_m(_rect(100, 60, 25, 50), _plane(z=2.0), K), [0.20, 0.10], rtol=0.05)


def test_background_depth_on_the_rim_does_not_inflate_the_extents():
    depth = _plane()
    mask = _rect(100, 60, 50, 100)
    depth[60:160, 100] = 3.0  # one column of the mask sees the wall 2 m behind the product
    np.testing.assert_allclose(visible_extents_m(mask, depth, K), [0.20, 0.10], rtol=0.05)


def test_too_large_for_the_product_and_never_too_small():
    cereal_face = _rect(100, 60, 50, 100)  # 0.10 x 0.20 m: a cereal box (0.05 x 0.14 x 0.20) fits
    assert size_plausible(cereal_face, _plane(), K, get_class("cereal_box").size_m)
    assert not size_plausible(cereal_face, _plane(), K, get_class("gum_pack").size_m)  # 0.024 x 0.076 x 0.052
    # a sliver of a product (occluded) is plausible for anything, a huge one only with a huge tolerance
    sliver = _rect(100, 60, 8, 10)
    assert all(size_plausible(sliver, _plane(), K, get_class(c).size_m) for c in ("gum_pack", "cereal_box"))
    assert size_plausible(cereal_face, _plane(), K, get_class("gum_pack").size_m, tolerance=3.0)


def test_no_usable_depth_means_no_verdict():
    mask = _rect(100, 60, 50, 100)
    assert visible_extents_m(mask, np.zeros((240, 320), np.float32), K) is None
    assert size_plausible(mask, np.full((240, 320), np.nan, np.float32), K, get_class("gum_pack").size_m)
    assert visible_extents_m(_rect(0, 0, 3, 3), _plane(), K) is None  # too few pixels


@pytest.mark.parametrize("kind", ["shelf", "tabletop"])
def test_true_product_masks_are_never_too_large(kind):
    """Every product's own mask in rendered scenes passes its own class's check (and some other classes' fail)."""
    pytest.importorskip("pybullet")
    from graspsim.assets.catalog import CATALOG
    from graspsim.envs.pick_env import PickEnv
    from graspsim.policies.base import as_observation

    env = PickEnv(kind=kind, privileged=True, width=320, height=240)
    own, others = [], []
    try:
        for seed in (11, 12):
            o = as_observation(env.reset(seed=seed)[0])
            for body in np.unique(o.instance_seg[o.class_seg >= 0]):
                m = o.instance_seg == body
                if m.sum() < 80:
                    continue
                cls = int(np.bincount(o.class_seg[m][o.class_seg[m] >= 0]).argmax())
                own.append(size_plausible(m, o.depth_m, o.camera.K, CATALOG[cls].size_m))
                others += [size_plausible(m, o.depth_m, o.camera.K, c.size_m) for c in CATALOG if c.index != cls]
    finally:
        env.close()
    assert len(own) >= 5 and all(own)
    assert 0 < others.count(False) < len(others)
