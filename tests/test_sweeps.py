"""Robustness sweeps: parsing, applying a setting to a RunSpec, and each setting reaching the simulation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from graspsim.assets.catalog import get_variant
from graspsim.bench.runner import RunSpec, iter_rows
from graspsim.scenes.suites import get_suite
from graspsim.bench.sweeps import SWEEP_PARAMETERS, Sweep, apply_setting, parse_sweep, setting_label
from graspsim.config import PhysicsConfig
from graspsim.envs.pick_env import PickEnv

SMALL = dict(width=160, height=120, renderer="tiny")
SEED = get_suite("tabletop-test").scene_seeds(0, 1)[0]


# ----------------------------------------------------------------------------- parsing

@pytest.mark.parametrize("text, name, values", [
    ("friction=0.3,0.6,1.0", "friction", (0.3, 0.6, 1.0)),
    (" mass_scale = 0.5, 2 ", "mass_scale", (0.5, 2.0)),
    ("lighting=0,0.5,1.5", "lighting", (0.0, 0.5, 1.5)),
    ("camera_jitter=0.01", "camera_jitter", (0.01,)),
    ("depth_noise=0,1e-3,0.005", "depth_noise", (0.0, 0.001, 0.005)),
])
def test_parse_good_sweeps(text, name, values):
    assert parse_sweep(text) == Sweep(name, values)


@pytest.mark.parametrize("text, message", [
    ("friction", "NAME=V1,V2"),
    ("=0.3", "names no parameter"),
    ("gravity=1,2", "unknown sweep parameter 'gravity'"),
    ("friction=", "has no values"),
    ("friction=0.3,,1", "value 2 is empty"),
    ("friction=0.3,abc", "must be a number, got 'abc'"),
    ("friction=nan", "must be finite"),
    ("friction=-0.1", "must be >= 0"),
    ("mass_scale=0", "must be > 0"),
    ("depth_noise=-0.001", "must be >= 0"),
    ("camera_jitter=-1", "must be >= 0"),
    ("lighting=-0.5", "must be >= 0"),
    ("friction=0.3,0.30", "twice"),
])
def test_parse_bad_sweeps_names_the_problem(text, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_sweep(text)


def test_every_parameter_is_described_with_its_default():
    assert set(SWEEP_PARAMETERS) == {"friction", "mass_scale", "lighting", "camera_jitter", "depth_noise"}
    defaults = PhysicsConfig()
    assert SWEEP_PARAMETERS["friction"].default == defaults.product_lateral_friction
    assert SWEEP_PARAMETERS["mass_scale"].default == defaults.product_mass_scale == 1.0
    for parameter in SWEEP_PARAMETERS.values():
        assert parameter.description and parameter.unit


def test_setting_label_is_a_safe_directory_name():
    assert setting_label("friction", 0.3) == "friction=0.3"
    assert setting_label("mass_scale", 2.0) == "mass_scale=2"
    assert setting_label("depth_noise", 1e-5) == "depth_noise=1e-05"
    for name in SWEEP_PARAMETERS:
        for value in (0.0, 0.1, 1 / 3, 12.5, 1e-7):
            label = setting_label(name, value)
            assert "/" not in label and "\\" not in label and " " not in label
    with pytest.raises(ValueError):
        setting_label("nope", 1.0)


# ------------------------------------------------------------------------ apply_setting

@pytest.mark.parametrize("name, where, key", [
    ("friction", "physics", "product_lateral_friction"),
    ("mass_scale", "physics", "product_mass_scale"),
    ("lighting", "env_overrides", "lighting_gain"),
    ("camera_jitter", "env_overrides", "camera_jitter_m"),
    ("depth_noise", "env_overrides", "depth_noise_m"),
])
def test_apply_setting_changes_exactly_one_field(name, where, key):
    spec = RunSpec(policy="oracle", suite="tabletop-test", episodes=2, env_overrides={"lighting_jitter": False})
    changed = apply_setting(spec, name, 0.25)
    assert getattr(changed, where)[key] == 0.25
    before, after = dataclasses.asdict(spec), dataclasses.asdict(changed)
    after[where] = {k: v for k, v in after[where].items() if k != key}
    before[where] = {k: v for k, v in before[where].items() if k != key}
    assert before == after  # nothing else changed
    assert spec.physics["product_lateral_friction"] == PhysicsConfig().product_lateral_friction  # spec untouched
    assert spec.env_overrides == {"lighting_jitter": False}
    with pytest.raises(ValueError):
        apply_setting(spec, name, -1.0)


# ------------------------------------------------------------- settings reach the sim

def _dynamics(env: PickEnv) -> list[tuple[float, float, float]]:
    """(mass kg, lateral friction, catalog mass kg) of every product in the current scene."""
    scene, client = env._scene, env.world.client
    found = []
    for body, placement in zip(scene.product_bodies, scene.plan.products):
        info = client.getDynamicsInfo(body, -1)
        found.append((info[0], info[1], get_variant(placement.class_name, placement.variant).mass_kg))
    return found


def test_mass_scale_and_friction_reach_pybullet():
    env = PickEnv(kind="tabletop", physics=PhysicsConfig(product_mass_scale=2.5, product_lateral_friction=0.3),
                  **SMALL)
    try:
        env.reset(seed=SEED)
        dynamics = _dynamics(env)
        assert dynamics
        for mass, friction, catalog_mass in dynamics:
            assert mass == pytest.approx(2.5 * catalog_mass, rel=1e-6)
            assert friction == pytest.approx(0.3)
    finally:
        env.close()
    with pytest.raises(ValueError, match="product_mass_scale"):
        PhysicsConfig(product_mass_scale=0.0)


def test_depth_noise_is_deterministic_with_the_requested_std():
    std = 0.004
    clean_env = PickEnv(kind="tabletop", **SMALL)
    noisy_env = PickEnv(kind="tabletop", depth_noise_m=std, **SMALL)
    try:
        clean, _ = clean_env.reset(seed=SEED)
        noisy, _ = noisy_env.reset(seed=SEED)
        again, _ = noisy_env.reset(seed=SEED)
        np.testing.assert_array_equal(noisy["depth"], again["depth"])  # same seed, same noise
        other, _ = noisy_env.reset(seed=SEED + 1)
        camera = noisy_env._frames.camera
        valid = (clean["depth"] > camera.near_m) & (clean["depth"] < 0.999 * camera.far_m)
        assert valid.mean() > 0.5
        diff = noisy["depth"].astype(np.float64) - clean["depth"]
        assert np.std(diff[valid]) == pytest.approx(std, rel=0.2)
        assert abs(np.mean(diff[valid])) < std / 5
        np.testing.assert_array_equal(noisy["depth"][~valid], clean["depth"][~valid])  # background untouched
        assert np.all(noisy["depth"] > 0)
        # The grasp conversion uses the depth the robot perceived (the noisy one).
        np.testing.assert_array_equal(noisy_env._frames.depth_m, other["depth"])
        np.testing.assert_array_equal(noisy["rgb"], clean["rgb"])
    finally:
        clean_env.close()
        noisy_env.close()


def test_depth_noise_is_the_same_in_any_process_order():
    # The generator depends on the scene seed only: another scene first does not change it.
    first = PickEnv(kind="tabletop", depth_noise_m=0.003, **SMALL)
    second = PickEnv(kind="tabletop", depth_noise_m=0.003, **SMALL)
    try:
        second.reset(seed=SEED + 1)
        a, _ = first.reset(seed=SEED)
        b, _ = second.reset(seed=SEED)
        np.testing.assert_array_equal(a["depth"], b["depth"])
    finally:
        first.close()
        second.close()


def test_lighting_gain_scales_the_rgb():
    plain = PickEnv(kind="tabletop", **SMALL)
    dark = PickEnv(kind="tabletop", lighting_gain=0.5, **SMALL)
    try:
        a, _ = plain.reset(seed=SEED)
        b, _ = dark.reset(seed=SEED)
        np.testing.assert_array_equal(b["rgb"], (a["rgb"].astype(np.float32) * 0.5).astype(np.uint8))
        np.testing.assert_array_equal(a["depth"], b["depth"])
    finally:
        plain.close()
        dark.close()
    with pytest.raises(ValueError, match="lighting_gain"):
        PickEnv(kind="tabletop", lighting_gain=-1.0, **SMALL)
    with pytest.raises(ValueError, match="depth_noise_m"):
        PickEnv(kind="tabletop", depth_noise_m=float("nan"), **SMALL)


def test_low_friction_picks_no_more_than_high_friction():
    # The oracle's grasps are identical in both runs (same scenes, same perception);
    # only the products' friction differs, and slippery products slip out of the grip.
    base = RunSpec(policy="oracle", suite="tabletop-test", episodes=3, **SMALL)
    successes = {}
    for friction in (0.05, 1.0):
        spec = apply_setting(base, "friction", friction)
        rows = list(iter_rows(spec, spec.jobs(), workers=1))
        successes[friction] = sum(r["success"] for r in rows)
        assert {r["policy_info"].get("policy_error") for r in rows} == {None}
    assert successes[0.05] <= successes[1.0]
    assert successes[1.0] >= 2  # the comparison is not vacuous
