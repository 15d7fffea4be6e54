"""Oracle, random and heuristic policies on synthetic observations (no simulator, no real catalog).

The catalog lookups are replaced by a fake ``graspsim.assets.catalog`` module, so
these tests hold whatever the real catalog contains.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import types
from types import SimpleNamespace

import numpy as np
import pytest

from graspsim.config import GripperSpec
from graspsim.grasping.rect_geometry import rect_polygon_mask
from graspsim.policies.base import Policy, PolicyError, PolicyOutput
from graspsim.policies.heuristic import HeuristicPolicy
from graspsim.policies.oracle import OraclePolicy
from graspsim.policies.random_policy import RandomPolicy
from graspsim.policies.registry import resolve_policy
from graspsim.types import CameraModel, GraspRect, Observation

H, W = 480, 640
K = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])
Z_OBJ, Z_BG = 0.8, 1.0
PX_PER_M = 500.0 / Z_OBJ
YY, XX = np.mgrid[:H, :W]

CLASSES = {"soda_can": 3, "cereal_box": 5}
PALETTES = {"soda_can": ((200, 30, 30), (240, 240, 240)), "cereal_box": ((30, 60, 200),)}
COLOURS = {3: (185, 35, 30), 5: (35, 60, 190)}  # rendered (slightly shaded) body colours
GREY = (128, 128, 128)


@pytest.fixture(autouse=True)
def fake_catalog(monkeypatch):
    fake = types.ModuleType("graspsim.assets.catalog")

    def class_index(name: str) -> int:
        return CLASSES[name]  # KeyError for unknown names, like a dict-backed catalog

    def get_class(name: str):
        return SimpleNamespace(name=name, palette=PALETTES[name])

    fake.class_index = class_index
    fake.get_class = get_class
    monkeypatch.setitem(sys.modules, "graspsim.assets.catalog", fake)
    return fake


def px(metres: float) -> float:
    return metres * PX_PER_M


def bar(cx, cy, across_m=0.04, along_m=0.10, theta=0.0) -> np.ndarray:
    """Mask of a bar ``across_m`` wide along ``theta`` (the grasp direction) and ``along_m`` long."""
    return rect_polygon_mask(GraspRect(cx, cy, px(across_m), px(along_m), theta), (H, W))


def make_obs(objects, target="soda_can", privileged=True) -> Observation:
    """``objects``: list of (mask, class index, body id); faces at 0.8 m on a 1.0 m table, grey background."""
    rgb = np.empty((H, W, 3), np.uint8)
    rgb[:] = GREY
    depth = np.full((H, W), Z_BG, np.float32)
    class_seg = np.full((H, W), -1, np.int32)
    instance_seg = np.full((H, W), -1, np.int32)
    for mask, cls, body in objects:
        rgb[mask] = COLOURS[cls]
        depth[mask] = Z_OBJ
        class_seg[mask] = cls
        instance_seg[mask] = body
    camera = CameraModel(K=K, width=W, height=H, T_world_camera=np.eye(4))
    return Observation(
        rgb=rgb,
        depth_m=depth,
        camera=camera,
        instruction=f"pick the {target.replace('_', ' ')}",
        target_class=target,
        scene_kind="tabletop",
        approach_world=np.array([0.0, 0.0, 1.0]),
        instance_seg=instance_seg if privileged else None,
        class_seg=class_seg if privileged else None,
    )


def angle_diff(a: float, b: float) -> float:
    return abs((a - b + math.pi / 2) % math.pi - math.pi / 2)


def on_mask(rect: GraspRect, mask: np.ndarray) -> bool:
    return bool(mask[int(round(rect.y)), int(round(rect.x))])


def test_policies_follow_protocol_and_registry():
    for name, cls in (("oracle", OraclePolicy), ("random", RandomPolicy), ("heuristic", HeuristicPolicy)):
        assert resolve_policy(name) is cls
        assert cls.name == name
        assert isinstance(cls(), Policy)
    assert OraclePolicy.needs_privileged and not RandomPolicy.needs_privileged
    assert not HeuristicPolicy.needs_privileged


# --------------------------------------------------------------------------- oracle


def test_oracle_closes_across_narrow_side():
    theta = math.radians(-35)
    target = bar(300, 250, theta=theta)
    policy = OraclePolicy()
    policy.reset(np.random.default_rng(0))
    out = policy.act(make_obs([(target, 3, 7)]))
    assert isinstance(out, PolicyOutput)
    assert on_mask(out.rect, target)
    assert angle_diff(out.rect.theta, theta) < math.radians(5)
    opening = out.rect.w * Z_OBJ / K[0, 0]
    assert 0.04 < opening <= GripperSpec().max_opening_m
    assert out.info["fallback"] is False and out.info["instance"] == 7
    assert np.array_equal(out.mask, target)
    assert all(isinstance(c, GraspRect) for c in out.candidates) and out.rect not in out.candidates
    out.rect.validate(W, H)


def test_oracle_ignores_other_class():
    target = bar(200, 240)
    other = bar(440, 240)  # same size and shape, another class
    out = OraclePolicy().act(make_obs([(other, 5, 2), (target, 3, 1)]))
    assert on_mask(out.rect, target) and not on_mask(out.rect, other)
    assert np.array_equal(out.mask, target)
    assert all(not on_mask(c, other) for c in out.candidates)


def test_oracle_picks_graspable_instance():
    disc = (XX - 200) ** 2 + (YY - 240) ** 2 <= px(0.05) ** 2  # larger, but 10 cm wide
    small = bar(450, 240, theta=math.pi / 2)
    out = OraclePolicy().act(make_obs([(disc, 3, 1), (small, 3, 2)]))
    assert out.info["instance"] == 2 and out.info["n_instances"] == 2
    assert on_mask(out.rect, small)
    assert angle_diff(out.rect.theta, math.pi / 2) < math.radians(5)


def test_oracle_fallback_when_nothing_graspable():
    disc = (XX - 320) ** 2 + (YY - 240) ** 2 <= px(0.05) ** 2
    out = OraclePolicy().act(make_obs([(disc, 3, 1)]))
    assert out.info["fallback"] is True
    assert out.rect.w * Z_OBJ / K[0, 0] == pytest.approx(GripperSpec().max_opening_m)
    assert on_mask(out.rect, disc)


def test_oracle_errors():
    other = bar(320, 240)
    with pytest.raises(PolicyError):
        OraclePolicy().act(make_obs([(other, 5, 1)]))  # target not visible
    with pytest.raises(PolicyError):
        OraclePolicy().act(make_obs([(other, 3, 1)], privileged=False))
    with pytest.raises(PolicyError):
        OraclePolicy().act(make_obs([(other, 3, 1)], target="unknown_thing"))


# --------------------------------------------------------------------------- random


def test_random_is_deterministic_and_covers_image():
    obs = make_obs([])
    policy = RandomPolicy()

    def draw(seed, n):
        policy.reset(np.random.default_rng(seed))
        return [policy.act(obs).rect for _ in range(n)]

    assert draw(42, 20) == draw(42, 20)
    assert draw(42, 20) != draw(43, 20)
    rects = draw(1, 2000)
    arr = np.array([r.as_array() for r in rects])
    x, y, w, h, theta = arr.T
    assert x.min() >= 0 and x.max() <= W - 1 and y.min() >= 0 and y.max() <= H - 1
    assert x.min() < 0.05 * W and x.max() > 0.95 * W and y.min() < 0.05 * H and y.max() > 0.95 * H
    # every quadrant of the image is hit about equally often
    quads = np.histogram2d(x, y, bins=[2, 2], range=[[0, W - 1], [0, H - 1]])[0]
    assert quads.min() > 400
    assert w.min() >= 10 and w.max() <= 120 and np.all(h == 20)
    assert theta.min() >= -math.pi / 2 and theta.max() < math.pi / 2
    assert theta.min() < -1.4 and theta.max() > 1.4
    for r in rects[:50]:
        r.validate(W, H)


# --------------------------------------------------------------------------- heuristic


def test_heuristic_finds_coloured_target():
    target = bar(220, 260, theta=math.radians(20))
    distractor = bar(430, 220)
    obs = make_obs([(target, 3, 1), (distractor, 5, 2)], privileged=False)
    policy = HeuristicPolicy()
    policy.reset(np.random.default_rng(0))
    out = policy.act(obs)
    assert out.info["fallback"] is False
    assert on_mask(out.rect, target)
    assert angle_diff(out.rect.theta, math.radians(20)) < math.radians(10)
    iou = (out.mask & target).sum() / (out.mask | target).sum()
    assert iou > 0.8
    assert out.attention is not None and out.attention.shape == (H, W)
    assert out.attention[target].mean() > 0.5 > out.attention[~target].mean()


def test_heuristic_splits_same_colour_neighbours_by_depth():
    # two touching targets of the same colour, one 5 cm nearer the camera
    left = bar(300, 240)
    right = bar(300 + px(0.04) + 1, 240)
    obs = make_obs([(left, 3, 1), (right, 3, 2)], privileged=False)
    depth = obs.depth_m.copy()
    depth[right] = Z_OBJ - 0.05
    obs = dataclasses.replace(obs, depth_m=depth)
    out = HeuristicPolicy().act(obs)
    # one product, not a grasp straddling both
    assert out.mask.sum() < 1.2 * left.sum()
    assert on_mask(out.rect, left) or on_mask(out.rect, right)


def test_heuristic_falls_back_to_nearest_central_blob():
    far_blob = bar(100, 100)
    near_blob = bar(330, 250)
    obs = make_obs([(far_blob, 5, 1), (near_blob, 5, 2)], privileged=False)  # no red anywhere
    depth = obs.depth_m.copy()
    depth[near_blob] = 0.7
    obs = dataclasses.replace(obs, depth_m=depth)
    out = HeuristicPolicy().act(obs)
    assert out.info["fallback"] is True
    assert on_mask(out.rect, near_blob)
    out.rect.validate(W, H)


def test_heuristic_aims_at_ungraspable_colour_match():
    disc = (XX - 300) ** 2 + (YY - 250) ** 2 <= px(0.05) ** 2  # red but 10 cm wide
    other = bar(500, 240)
    out = HeuristicPolicy().act(make_obs([(disc, 3, 1), (other, 5, 2)], privileged=False))
    assert out.info["fallback"] is True and out.info["fallback_kind"] == "colour_segment_minor_axis"
    assert on_mask(out.rect, disc)
    assert out.rect.w * Z_OBJ / K[0, 0] == pytest.approx(GripperSpec().max_opening_m)
