"""``--policy-arg robot_mask=none|robotseg|oracle``: validation, the shared exclusion helpers, and the three stacks
(clip_sam, det_seg, graspsam) never returning a mask pixel or a jaw on the robot's pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner

from graspsim.cli import main
from graspsim.policies.config import PolicyArgError
from graspsim.policies.robot_mask import (ROBOT_MASK_MODES, RobotPixels, drop_grasps_on_robot, exclude_robot,
                                          jaw_points, jaws_on_robot, robot_info, zero_on_robot)
from graspsim.types import CameraModel, GraspRect, Observation

STACKS = ("clip_sam", "det_seg", "graspsam")


def _config_class(policy: str):
    from graspsim.policies.registry import make_policy  # noqa: F401  (the registry knows the config classes)
    from graspsim.policies.clip_sam.config import ClipSamPolicyConfig
    from graspsim.policies.det_seg.config import DetSegPolicyConfig
    from graspsim.policies.graspsam.config import GraspSamPolicyConfig

    return {"clip_sam": ClipSamPolicyConfig, "det_seg": DetSegPolicyConfig, "graspsam": GraspSamPolicyConfig}[policy]


@pytest.mark.parametrize("policy", STACKS)
def test_bad_robot_mask_is_one_line_listing_the_values(policy):
    with pytest.raises(PolicyArgError) as err:
        _config_class(policy)(robot_mask="robot")
    message = str(err.value)
    assert "\n" not in message and "robot_mask" in message
    assert all(repr(mode) in message for mode in ROBOT_MASK_MODES)
    assert _config_class(policy)(robot_mask="oracle").robot_mask == "oracle"
    result = CliRunner().invoke(main, ["bench", "--policy", policy, "--episodes", "1", "--policy-arg",
                                       "robot_mask=robot"])
    assert result.exit_code == 2
    assert "robot_mask" in result.output and "'robotseg'" in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_missing_robotseg_checkpoint_is_reported_before_loading(tmp_path):
    result = CliRunner().invoke(main, ["bench", "--policy", "clip_sam", "--episodes", "1", "--policy-arg",
                                       "robot_mask=robotseg", "--policy-arg",
                                       f"robot_mask_checkpoint={tmp_path / 'nothing'}"])
    assert result.exit_code == 2 and "robotseg checkpoint" in result.output


def _synthetic_obs() -> Observation:
    """A 60x80 observation whose robot (robot_seg) fills the left 20 columns (arm) and a 10x10 gripper block."""
    h, w = 60, 80
    robot_seg = np.zeros((h, w), np.uint8)
    robot_seg[:, :20] = 1
    robot_seg[50:, 40:50] = 2
    K = np.array([[80.0, 0, 40], [0, 80.0, 30], [0, 0, 1]])
    camera = CameraModel(K=K, width=w, height=h, T_world_camera=np.eye(4), near_m=0.05, far_m=3.0)
    rgb = np.zeros((h, w, 3), np.uint8)
    return Observation(rgb=rgb, depth_m=np.ones((h, w), np.float32), camera=camera, instruction="pick the soda can",
                       target_class="soda_can", scene_kind="tabletop", approach_world=np.array([0.0, 0.0, -1.0]),
                       robot="panda", robot_seg=robot_seg)


def test_exclusion_helpers_on_a_synthetic_observation():
    obs = _synthetic_obs()
    assert RobotPixels("none")(obs) is None
    robot = RobotPixels("oracle")(obs)
    assert RobotPixels("oracle").needs_privileged and not RobotPixels("none").needs_privileged
    np.testing.assert_array_equal(robot, obs.robot_seg > 0)
    assert robot_info(robot) == {"robot_mask_px": 60 * 20 + 100} and robot_info(None) == {"robot_mask_px": None}
    product = np.zeros((60, 80), bool)
    product[10:40, 10:40] = True  # half of it under the arm's pixels
    kept = exclude_robot(product, robot)
    assert not (kept & robot).any() and kept.sum() == 30 * 20
    attention = np.ones((60, 80), np.float32)
    zeroed = zero_on_robot(attention, robot)
    assert zeroed[robot].max() == 0 and zeroed[~robot].min() == 1 and attention.min() == 1  # input untouched
    # jaw plates: the short sides at +-w/2 along the closing axis
    pts = jaw_points(GraspRect(50, 20, 20, 6, 0.0))
    assert set(np.round(pts[:, 0]).tolist()) == {40.0, 60.0} and pts[:, 1].min() == 17 and pts[:, 1].max() == 23
    on_arm = GraspRect(28, 20, 20, 6, 0.0)       # left jaw at x = 18: on the arm
    clear = GraspRect(50, 20, 16, 6, 0.0)        # jaws at x = 42 and 58, rows 17..23: no robot
    vertical = GraspRect(45, 38, 20, 4, math.pi / 2)  # jaws at rows 28 and 48 ... the lower one ends above 50
    under = GraspRect(45, 45, 20, 4, math.pi / 2)     # lower jaw at row 55: on the gripper block
    assert jaws_on_robot(on_arm, robot) and not jaws_on_robot(clear, robot)
    assert not jaws_on_robot(vertical, robot) and jaws_on_robot(under, robot)
    assert drop_grasps_on_robot([on_arm, clear, under, vertical], robot) == [1, 3]
    assert drop_grasps_on_robot([on_arm, clear], None) == [0, 1]
    with pytest.raises(ValueError, match="none, robotseg, oracle"):
        RobotPixels("everything")


@pytest.fixture(scope="module")
def shelf_obs():
    """A privileged shelf-test observation at 320x240 with the arm parked in view."""
    from graspsim.envs.pick_env import PickEnv

    env = PickEnv(suite="shelf-test", width=320, height=240, renderer="tiny", privileged=True, robot="panda")
    obs, _ = env.reset(seed=0)
    env.close()
    assert (obs["robot_seg"] > 0).any()
    return obs


@pytest.mark.parametrize("policy", STACKS)
def test_stacks_never_return_robot_pixels_with_the_oracle_mask(policy, shelf_obs):
    from graspsim.policies.base import PolicyError
    from graspsim.policies.registry import make_policy

    agent = make_policy(policy, robot_mask="oracle", **({"threads": 1} if policy != "det_seg" else {"num_threads": 1}))
    assert agent.needs_privileged  # the runner asks the environment for robot_seg
    agent.reset(np.random.default_rng(0))
    robot = shelf_obs["robot_seg"] > 0
    try:
        out = agent.act(shelf_obs)
    except PolicyError:
        pytest.skip(f"{policy} found no grasp on this scene")  # nothing returned: nothing to check
    assert out.info["robot_mask_px"] == int(robot.sum())
    if out.mask is not None:
        assert not (out.mask & robot).any()
    for rect in [out.rect, *out.candidates]:
        assert not jaws_on_robot(rect, robot)


@pytest.fixture(scope="module")
def tiny_robotseg(tmp_path_factory):
    """A tiny random-initialised RobotSeg checkpoint (no training, no download): enough to run the path."""
    import torch

    from graspsim.learn.checkpoint import save_weights, write_metadata
    from graspsim.policies.robotseg.config import RobotSegConfig
    from graspsim.policies.robotseg.model import RobotSegNet

    torch.manual_seed(1)  # its "whole" mask covers ~17 % of a picture: something to exclude, much left
    cfg = RobotSegConfig.from_dict({"image_size": 64, "hiera_dim": 8, "dim": 16, "decoder_heads": 2,
                                    "rpg_queries": 2, "rpg_layers": 1})
    net = RobotSegNet(cfg)
    out = tmp_path_factory.mktemp("robotseg") / "tiny"
    out.mkdir()
    save_weights(out, net.state_dict())
    write_metadata(out, {"model": "robotseg", "config": cfg.to_dict()})
    return out


@pytest.mark.parametrize("policy", STACKS)
def test_each_stack_runs_a_clear_scene_episode_with_robotseg(policy, tiny_robotseg, tmp_path):
    import json

    from graspsim.bench.runner import RunSpec, run_bench

    threads = {"num_threads": 1} if policy == "det_seg" else {"threads": 1}
    spec = RunSpec(policy=policy, suite="shelf-test", episodes=1, width=320, height=240, renderer="tiny",
                   clear_scene=True, max_attempts=2,
                   policy_kwargs={"robot_mask": "robotseg", "robot_mask_checkpoint": str(tiny_robotseg), **threads})
    summary = run_bench(spec, tmp_path / policy, progress=False)
    rows = [json.loads(line) for line in (tmp_path / policy / "results.jsonl").read_text().splitlines()]
    assert 1 <= len(rows) <= 2 and summary["clear_scene"]["scenes"] == 1
    for row in rows:
        info = row["policy_info"]
        if "policy_error" not in info:  # the policy decided: it says how many robot pixels it left out
            assert isinstance(info["robot_mask_px"], int) and info["robot_mask_px"] >= 0
    assert any("robot_mask_px" in r["policy_info"] for r in rows)  # RobotSeg ran in the policy
