"""PhysicsConfig / GripperSpec dict round trips (run.json and dataset manifests store ``to_dict()``)."""

from __future__ import annotations

import pytest

from graspsim.config import GripperSpec, PhysicsConfig


def test_from_dict_inverts_to_dict_with_a_nested_gripper():
    assert PhysicsConfig.from_dict(PhysicsConfig().to_dict()) == PhysicsConfig()
    custom = PhysicsConfig(product_mass_scale=1.5, gripper=GripperSpec(max_opening_m=0.1, finger_width_m=0.03))
    back = PhysicsConfig.from_dict(custom.to_dict())
    assert back == custom and isinstance(back.gripper, GripperSpec)


def test_from_dict_keeps_defaults_for_missing_keys():
    physics = PhysicsConfig.from_dict({"lift_height_m": 0.2, "gripper": {"max_opening_m": 0.07}})
    assert physics == PhysicsConfig(lift_height_m=0.2, gripper=GripperSpec(max_opening_m=0.07))
    assert GripperSpec.from_dict({}) == GripperSpec()


def test_from_dict_names_unknown_keys():
    with pytest.raises(ValueError, match="unknown PhysicsConfig field.*: frictionn, zeta;"):
        PhysicsConfig.from_dict({"zeta": 1, "frictionn": 0.5})
    with pytest.raises(ValueError, match="unknown GripperSpec field.*: stroke_m;"):
        PhysicsConfig.from_dict({"gripper": {"stroke_m": 0.04}})
