"""Every registered environment: Gymnasium's checker, same-seed determinism, bad actions."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import graspsim  # noqa: F401  (registers the environments)
from graspsim.envs.registration import ENV_IDS

SMALL = dict(width=160, height=120, renderer="tiny")


def test_physics_dict_builds_the_nested_gripper_spec():
    from graspsim.config import GripperSpec
    from graspsim.envs.pick_env import PickEnv

    env = PickEnv(kind="tabletop", action_mode="pose", physics={"gripper": {"max_opening_m": 0.07}}, **SMALL)
    try:
        assert env.physics.gripper == GripperSpec(max_opening_m=0.07)
        assert env.action_space.high[7] == np.float32(0.07)  # the opening bound comes from the nested spec
    finally:
        env.close()
    with pytest.raises(ValueError, match="unknown GripperSpec field.*stroke_m"):
        PickEnv(kind="tabletop", physics={"gripper": {"stroke_m": 0.07}}, **SMALL)
    with pytest.raises(ValueError, match="unknown scene kind"):
        PickEnv(kind="desk", **SMALL)


def test_relabelled_training_scenes_change_only_the_products_pixels():
    """domain_rand="labels": the same scene (depth, masks, target), other colours on the products only."""
    from graspsim.envs.pick_env import PickEnv

    obs = {}
    for level in ("none", "labels"):
        env = PickEnv(suite="shelf-train", privileged=True, robot="hand", domain_rand=level, **SMALL)
        try:
            obs[level], info = env.reset(seed=3)
            obs[level]["target"] = info["target_class_name"]
        finally:
            env.close()
    plain, dr = obs["none"], obs["labels"]
    assert plain["target"] == dr["target"]
    for key in ("depth", "instance_seg", "class_seg"):
        assert np.array_equal(plain[key], dr[key]), key
    changed = np.any(plain["rgb"] != dr["rgb"], axis=-1)
    on_products = plain["class_seg"] >= 0
    assert changed[on_products].mean() > 0.3 and not changed[~on_products].any()
    for kwargs in ({"suite": "shelf-test"}, {"kind": "shelf", "variant_split": "unseen"}):
        with pytest.raises(ValueError, match="training"):
            PickEnv(domain_rand="labels", **kwargs, **SMALL)
    with pytest.raises(ValueError, match="choose one of"):
        PickEnv(suite="shelf-train", domain_rand="max", **SMALL)


@pytest.fixture(params=sorted(ENV_IDS))
def env_id(request):
    return request.param


def test_check_env_passes(env_id):
    env = gym.make(env_id, **SMALL)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_check_env_passes_with_privileged_and_pose_actions(env_id):
    env = gym.make(env_id, privileged=True, action_mode="pose", **SMALL)
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def _rollout(env_id: str, seed: int):
    env = gym.make(env_id, privileged=True, **SMALL)
    obs, info = env.reset(seed=seed)
    # A fixed action at the image centre: what it hits depends only on the scene.
    action = np.array([80.0, 60.0, 20.0, 6.0, 0.0], dtype=np.float32)
    obs2, reward, terminated, truncated, step_info = env.step(action)
    env.close()
    return obs, info, obs2, reward, step_info


def test_same_seed_same_rollout(env_id):
    a = _rollout(env_id, 5)
    b = _rollout(env_id, 5)
    for key in a[0]:
        if isinstance(a[0][key], np.ndarray):
            assert np.array_equal(a[0][key], b[0][key]), key
        else:
            assert a[0][key] == b[0][key], key
    assert a[1]["target_class_name"] == b[1]["target_class_name"]
    assert a[3] == b[3]
    assert a[4]["outcome"] == b[4]["outcome"]
    assert a[4]["gripper"] == b[4]["gripper"]
    c = _rollout(env_id, 6)
    assert not np.array_equal(a[0]["rgb"], c[0]["rgb"])


def test_observation_contents(env_id):
    env = gym.make(env_id, **SMALL)
    obs, info = env.reset(seed=1)
    assert obs["rgb"].shape == (120, 160, 3) and obs["rgb"].dtype == np.uint8
    assert obs["depth"].shape == (120, 160) and obs["depth"].dtype == np.float32
    assert obs["instruction"].startswith("pick the ")
    assert "instance_seg" not in obs  # privileged information is opt-in
    assert np.isfinite(obs["depth"]).all() and obs["depth"].min() > 0.05
    env.close()


@pytest.mark.parametrize("action, reason", [
    ([math.nan, 10, 10, 10, 0], "invalid_action"),
    ([10, 10, math.inf, 10, 0], "invalid_action"),
    ([10, 10, -4, 10, 0], "invalid_action"),
    ([500, 10, 10, 10, 0], "invalid_action"),
    ([1, 2, 3], "invalid_action"),
])
def test_invalid_actions_are_recorded_not_raised(action, reason):
    env = gym.make("graspsim/TabletopPick-v0", **SMALL)
    env.reset(seed=2)
    _, reward, terminated, _, info = env.step(np.asarray(action, dtype=np.float64))
    assert reward == 0.0 and terminated
    assert info["reason"] == reason
    assert info["outcome"]["error"]
    env.close()
