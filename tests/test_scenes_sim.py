"""Scene plans, building and settling, rendering geometry, grasp execution and its judgement."""

from __future__ import annotations

import math

import numpy as np
import pytest

import graspsim  # noqa: F401
from graspsim.scenes.suites import SUITES
from graspsim.config import PhysicsConfig
from graspsim.envs.pick_env import PickEnv
from graspsim.geometry import invert_transform, matrix_to_quat, project, rotation_about_axis, transform_points
from graspsim.policies.base import as_observation
from graspsim.policies.registry import make_policy
from graspsim.scenes import sampling
from graspsim.scenes.plan import ProductPlacement, ScenePlan
from graspsim.scenes.sampling import SceneOptions, sample_plan
from graspsim.sim.camera import render
from graspsim.sim.scene import build_settled_scene
from graspsim.sim.world import SimWorld

PHYSICS = PhysicsConfig()


@pytest.fixture(scope="module")
def world():
    w = SimWorld(PHYSICS, renderer="auto")
    yield w
    w.close()


@pytest.mark.parametrize("kind", ["shelf", "tabletop"])
def test_plans_are_deterministic_and_json_round_trip(kind):
    a = sample_plan(kind, 123)
    b = sample_plan(kind, 123)
    assert a.to_json() == b.to_json()
    assert ScenePlan.from_json(a.to_json()) == a
    assert sample_plan(kind, 124).to_json() != a.to_json()
    assert len(a.products) >= 5


def test_unseen_suites_use_only_unseen_variants():
    from graspsim.assets.catalog import get_class

    for kind in ("shelf", "tabletop"):
        for seed in range(5):
            for p in sample_plan(kind, seed, "unseen").products:
                assert p.variant in get_class(p.class_name).variants_unseen
            for p in sample_plan(kind, seed, "seen").products:
                assert p.variant in get_class(p.class_name).variants_seen


def test_scene_kinds_are_resolved_by_name_with_a_one_line_error():
    from graspsim.envs.registration import ENV_IDS
    from graspsim.scenes.kinds import SCENE_KINDS, scene_kind

    assert scene_kind("shelf").horizontal_approach and not scene_kind("tabletop").horizontal_approach
    assert {k.env_id: k.name for k in SCENE_KINDS.values()} == {i: kw["kind"] for i, kw in ENV_IDS.items()}
    assert all(s.env_id == scene_kind(s.kind).env_id for s in SUITES.values())
    with pytest.raises(ValueError, match=r"^unknown scene kind 'desk'; choose one of shelf, tabletop$"):
        scene_kind("desk")
    with pytest.raises(ValueError, match="unknown scene kind"):
        sample_plan("desk", 0)


def test_suite_seed_ranges_are_disjoint():
    ranges = sorted((s.kind, s.first_seed, s.first_seed + s.size) for s in SUITES.values())
    for (kind_a, lo_a, hi_a), (kind_b, lo_b, hi_b) in zip(ranges, ranges[1:]):
        assert kind_a != kind_b or hi_a <= lo_b


def test_settled_scene_is_bit_identical_for_the_same_seed(world):
    def final_poses():
        scene = build_settled_scene(world, "shelf", 77, "seen", SceneOptions(), PHYSICS)
        return [world.client.getBasePositionAndOrientation(b) for b in scene.live_bodies]

    assert final_poses() == final_poses()


def test_interpenetrating_plans_are_resampled(world, monkeypatch):
    real = sampling.sample_plan

    def fake(kind, seed, split="seen", options=SceneOptions(), attempt=0):
        plan = real(kind, seed, split, options, attempt)
        if attempt == 0:  # two soda cans in the same place: must be rejected
            can = ProductPlacement("soda_can", 0, (0.0, 0.0, 0.77), (0, 0, 0, 1))
            plan = ScenePlan(plan.kind, plan.seed, plan.variant_split, (can, can), plan.camera, plan.lighting, 0)
        return plan

    monkeypatch.setattr("graspsim.sim.scene.sample_plan", fake)
    scene = build_settled_scene(world, "tabletop", 5, "seen", SceneOptions(), PHYSICS)
    assert scene.plan.attempt == 1


def test_render_geometry_matches_the_pinhole_model(world):
    scene = build_settled_scene(world, "tabletop", 3, "seen", SceneOptions(width=320, height=240), PHYSICS)
    frames = render(world, scene.camera, scene.plan.lighting, scene.body_to_class)
    T_camera_world = invert_transform(frames.camera.T_world_camera)
    checked = 0
    for body in scene.live_bodies:
        position, quat = world.client.getBasePositionAndOrientation(body)
        aabb_top = world.client.getAABB(body)[1][2]
        top_centre = np.array([position[0], position[1], aabb_top])
        p_camera = transform_points(T_camera_world, top_centre)
        x, y = project(frames.camera.K, p_camera)
        col, row = int(round(x)), int(round(y))
        if not (0 <= col < 320 and 0 <= row < 240):
            continue
        if frames.instance_seg[row, col] != body:
            continue  # occluded by a neighbour or off the object's top at this pixel
        checked += 1
        # Depth along the camera axis at the product's top centre, within a centimetre.
        assert frames.depth_m[row, col] == pytest.approx(p_camera[2], abs=0.012)
        assert frames.class_seg[row, col] == scene.body_to_class[body]
    assert checked >= 3


def _pose_action(position, R, opening):
    return np.array([*position, *matrix_to_quat(R), opening], dtype=np.float64)


DOWN = rotation_about_axis([1, 0, 0], math.pi)  # grasp frame z pointing down


def test_pose_action_outcomes_known_cases():
    # The floating hand's outcomes (the arm's unreachable / arm_collision cases are in test_panda_arm.py).
    env = PickEnv(kind="tabletop", action_mode="pose", privileged=True, width=320, height=240, robot="hand")
    env.reset(seed=11)
    # Empty space above the table edge: the jaws close on nothing.
    _, reward, _, _, info = env.step(_pose_action([0.40, 0.30, 0.80], DOWN, 0.08))
    assert (reward, info["reason"]) == (0.0, "missed")
    env.reset(seed=11)
    # Far outside the workspace.
    _, _, _, _, info = env.step(_pose_action([1.5, 0.0, 0.8], DOWN, 0.08))
    assert info["reason"] == "out_of_reach"
    env.reset(seed=11)
    # Pointing the hand up from under the table top: it collides before grasping.
    _, _, _, _, info = env.step(_pose_action([0.0, 0.0, 0.69], np.eye(3), 0.08))
    assert info["reason"] in ("collision_before_grasp", "out_of_reach")
    env.close()


def test_pose_action_grasps_a_product_picked_from_ground_truth():
    env = PickEnv(kind="tabletop", action_mode="pose", privileged=True, width=320, height=240)
    obs, info = env.reset(seed=11)
    scene = env._scene
    body = next(b for b in scene.live_bodies if scene.body_to_class_name[b] == info["target_class_name"])
    position, quat = env.world.client.getBasePositionAndOrientation(body)
    top = env.world.client.getAABB(body)[1][2]
    from graspsim.geometry import quat_to_matrix

    R_product = quat_to_matrix(quat)
    x_axis = R_product[:, 0]  # the catalog guarantees the product's x side fits the gripper
    closing = x_axis - x_axis[2] * np.array([0, 0, 1.0])
    closing /= np.linalg.norm(closing)
    z = np.array([0, 0, -1.0])
    R = np.stack([np.cross(closing, z), closing, z], axis=1)
    _, reward, _, _, step_info = env.step(_pose_action([position[0], position[1], top - 0.025], R, 0.08))
    assert step_info["reason"] is None and reward == 1.0, step_info
    env.close()


@pytest.mark.parametrize("kind, seeds", [("shelf", [1_000_000, 1_000_001, 1_000_002]),
                                         ("tabletop", [11_000_000, 11_000_001, 11_000_002])])
def test_oracle_picks_the_target_on_suite_scenes(kind, seeds):
    env = PickEnv(kind=kind, privileged=True)
    oracle = make_policy("oracle")
    wins = 0
    for seed in seeds:
        obs, info = env.reset(seed=seed)
        oracle.reset(np.random.default_rng(seed))
        rect = oracle.act(as_observation(obs)).rect
        _, reward, _, _, step_info = env.step(rect.as_array())
        wins += reward
        if reward:
            assert step_info["outcome"]["picked_class"] == info["target_class_name"]
    env.close()
    assert wins == len(seeds)


def test_clear_the_scene_mode_removes_picked_products_and_stops():
    env = PickEnv(kind="tabletop", privileged=True, clear_scene=True, max_consecutive_failures=2, max_attempts=4,
                  width=320, height=240)
    oracle = make_policy("oracle")
    obs, info = env.reset(seed=11_000_003)
    start = len(env._scene.live_bodies)
    attempts = successes = 0
    done = False
    while not done:
        rect = oracle.act(as_observation(obs)).rect
        obs, reward, terminated, truncated, info = env.step(rect.as_array())
        attempts += 1
        successes += int(reward)
        done = terminated or truncated
    assert 1 < attempts <= 4
    assert len(env._scene.live_bodies) == start - successes
    env.close()


def test_images_do_not_depend_on_what_the_process_rendered_before():
    """Same scene, rendered first in a fresh world and after several other scenes: identical pixels."""
    def image_after(history):
        env = PickEnv(kind="shelf", width=320, height=240)
        for seed in history:
            env.reset(seed=seed)
        obs, _ = env.reset(seed=1_000_024)
        env.close()
        return obs

    fresh = image_after([])
    later = image_after([1_000_000, 1_000_001, 1_000_002])
    assert np.array_equal(fresh["rgb"], later["rgb"])
    assert np.array_equal(fresh["depth"], later["depth"])
