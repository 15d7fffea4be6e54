"""The Panda executing grasps in the simulator: reach, arm collisions, robot masks, environment checks."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

import graspsim  # noqa: F401
from graspsim.envs.pick_env import PickEnv
from graspsim.geometry import project
from graspsim.grasping import panda_kinematics as kin
from graspsim.policies.base import as_observation, policy_rng
from graspsim.policies.registry import make_policy
from graspsim.scenes import kinds
from graspsim.sim.execute import execute_grasp
from graspsim.types import FailureReason, GripperCommand

SMALL = dict(width=160, height=120, renderer="tiny")


def _grasp_command(point, approach, closing, opening_m=0.05) -> GripperCommand:
    z = np.asarray(approach, float) / np.linalg.norm(approach)
    y = np.asarray(closing, float) / np.linalg.norm(closing)
    T = np.eye(4)
    T[:3, :3] = np.stack([np.cross(y, z), y, z], axis=1)
    T[:3, 3] = point
    return GripperCommand(T_world_grasp=T, opening_m=opening_m)


@pytest.fixture(scope="module")
def shelf_env():
    env = PickEnv(kind="shelf", robot="panda", privileged=True, **SMALL)
    yield env
    env.close()


@pytest.mark.parametrize("kind, seed", [("shelf", 1_000_001), ("tabletop", 11_000_002)])
def test_the_parked_arm_is_in_the_image_and_masks_but_hides_no_product(kind, seed):
    views = {}
    for robot in ("hand", "panda"):
        env = PickEnv(kind=kind, robot=robot, privileged=True, **SMALL)
        views[robot] = env.reset(seed=seed)[0]
        if robot == "panda":
            arm = env._scene.arm
            assert np.allclose(arm.q(), env._scene.kind.arm_mount.q_park, atol=1e-3)
        env.close()
    obs = views["panda"]
    assert obs["robot"] == 1 and as_observation(obs).robot == "panda" and views["hand"]["robot"] == 0
    assert obs["robot_seg"].dtype == np.uint8 and set(np.unique(obs["robot_seg"])) <= {0, 1, 2}
    assert (obs["robot_seg"] > 0).sum() > 100  # at the edge of the picture, as a real robot's own arm is
    assert np.array_equal(obs["class_seg"], views["hand"]["class_seg"])  # the same scene, nothing hidden
    assert obs["instruction"] == views["hand"]["instruction"]


def test_a_pose_out_of_the_arms_reach_is_unreachable(shelf_env):
    shelf_env.reset(seed=1_000_002)
    scene = shelf_env._scene
    # 1.6 m above the floor at the back of the shelf: beyond the arm from its mount
    command = _grasp_command([0.0, 0.25, 1.9], approach=[0, 1, 0], closing=[1, 0, 0])
    outcome = execute_grasp(shelf_env.world, scene, command, "soda_can", shelf_env.physics)
    assert outcome.reason is FailureReason.UNREACHABLE and "unreachable" in outcome.details
    assert np.allclose(scene.arm.q(), scene.kind.arm_mount.q_park, atol=1e-3)  # nothing moved


def _on_an_empty_shelf(shelf_env, command: GripperCommand) -> dict:
    """The outcome of ``command`` by the arm (in ``shelf_env``) and by the floating hand, on the shelf of scene
    1,000,000 with its products removed: only the furniture can be hit."""
    outcomes = {}
    for robot in ("panda", "hand"):
        env = shelf_env if robot == "panda" else PickEnv(kind="shelf", robot="hand", **SMALL)
        env.reset(seed=1_000_000)
        scene = env._scene
        for body in list(scene.live_bodies):
            scene.remove_body(env.world, body)
        outcomes[robot] = execute_grasp(env.world, scene, command, "soda_can", env.physics)
        if env is not shelf_env:
            env.close()
    return outcomes


def test_a_deep_grasp_just_above_a_board_drives_the_wrist_into_it(shelf_env):
    # 5 cm above the middle board, 25 cm deep: the hand fits, but the Panda's wrist (link 6, under the
    # flange) meets the board's front edge on the way in. The floating hand has no wrist: no collision.
    command = _grasp_command([0.0, 0.25, 0.73], approach=[0, 1, 0], closing=[1, 0, 0])
    outcomes = _on_an_empty_shelf(shelf_env, command)
    assert outcomes["panda"].reason is FailureReason.ARM_COLLISION
    assert outcomes["panda"].details["collision"] == "approach"
    assert outcomes["hand"].reason is FailureReason.MISSED  # nothing there, nothing hit


def test_robot_seg_shows_the_gripper_where_the_hand_is():
    env = PickEnv(kind="tabletop", robot="panda", privileged=True, **SMALL)
    env.reset(seed=11_000_003)
    scene = env._scene
    arm = scene.arm
    # The hand top-down over the table, as while grasping, seen by the camera above.
    T_world_hand = np.eye(4)
    T_world_hand[:3, :3] = np.diag([1.0, -1.0, -1.0])  # z = down
    T_world_hand[:3, 3] = [0.05, 0.0, 0.95]
    arm.set_base(scene.kind.arm_mount.T_world_base_for(T_world_hand[:3, 3]))
    result = kin.solve_ik(arm.base_hand_target(T_world_hand), kin.Q_REST)
    assert result.ok
    arm.reset_joints(result.q, 0.03)
    env._observe_and_choose_target()
    frames = env._frames
    T_camera_world = np.linalg.inv(frames.camera.T_world_camera)
    # every gripper pixel lies inside the projection of the gripper's box (the hand housing is 0.21 m across
    # its closing axis and reaches 0.07 m ahead of its frame, the fingers 0.11 m), and there are plenty of them
    corners = np.array([[x, y, z] for x in (-0.045, 0.045) for y in (-0.11, 0.11) for z in (-0.01, 0.12)])
    world = corners @ arm.T_world_hand[:3, :3].T + arm.T_world_hand[:3, 3]
    uv = project(frames.camera.K, world @ T_camera_world[:3, :3].T + T_camera_world[:3, 3])
    rows, cols = np.nonzero(frames.robot_seg == 2)
    assert len(rows) > 20
    assert cols.min() >= uv[:, 0].min() - 2 and cols.max() <= uv[:, 0].max() + 2
    assert rows.min() >= uv[:, 1].min() - 2 and rows.max() <= uv[:, 1].max() + 2
    assert (frames.robot_seg == 1).sum() > 20  # the rest of the arm is in the picture too
    robot_px = frames.robot_seg > 0
    assert (frames.instance_seg[robot_px] == arm.body).all() and (frames.class_seg[robot_px] == -1).all()
    env.close()


def test_oracle_picks_with_the_arm_on_shelf_and_table():
    successes = 0
    for kind, seeds in (("shelf", (1_000_000, 1_000_004)), ("tabletop", (11_000_000, 11_000_001))):
        env = PickEnv(kind=kind, robot="panda", privileged=True, width=320, height=240)
        policy = make_policy("oracle")
        for seed in seeds:
            obs, info = env.reset(seed=seed)
            policy.reset(policy_rng(seed))
            _, reward, _, _, info = env.step(policy.act(obs).rect.as_array())
            successes += int(reward)
            assert info["reason"] in (None, "missed", "slipped", "wrong_object", "unreachable", "arm_collision",
                                      "collision_before_grasp")
        env.close()
    assert successes >= 3


def test_same_seed_same_rollout_with_the_arm():
    outcomes = []
    for _ in range(2):
        env = PickEnv(kind="tabletop", robot="panda", **SMALL)
        obs, info = env.reset(seed=11_000_003)
        _, reward, _, _, info = env.step(np.array([80, 60, 30, 10, 0.3], dtype=np.float32))
        outcomes.append((obs["rgb"].tobytes(), reward, info["reason"], info["outcome"]["steps"]))
        env.close()
    assert outcomes[0] == outcomes[1]


def test_check_env_with_the_arm():
    from gymnasium.utils.env_checker import check_env

    env = PickEnv(kind="tabletop", robot="panda", privileged=True, **SMALL)
    check_env(env, skip_render_check=True)
    env.close()


def test_unknown_robot_is_one_clear_error():
    with pytest.raises(ValueError, match="unknown robot 'ur5'; choose one of hand, panda"):
        PickEnv(robot="ur5")


def test_mount_slides_to_the_bay_and_parks():
    mount = kinds.scene_kind("shelf").arm_mount
    T = mount.T_world_base_for(np.array([0.2, 0.1, 0.8]))
    assert T[0, 3] == pytest.approx(0.2 + mount.base_xyz_m[0]) and T[1, 3] == mount.base_xyz_m[1]
    assert mount.T_world_base_for(np.array([5.0, 0.1, 0.8]))[0, 3] == mount.slide_x_m[1]
    fixed = replace(mount, slide_x_m=None)
    assert fixed.T_world_base_for(np.array([0.2, 0.1, 0.8]))[0, 3] == mount.base_xyz_m[0]
    assert mount.T_world_base_park()[0, 3] == mount.park_x_m


def test_parking_poses_are_within_the_joint_limits_and_face_the_work():
    for name in ("shelf", "tabletop"):
        mount = kinds.scene_kind(name).arm_mount
        q = np.asarray(mount.q_park)
        assert q.shape == (7,) and np.all(q >= kin.Q_LOWER) and np.all(q <= kin.Q_UPPER)
        approach = (mount.T_world_base_park()[:3, :3] @ kin.fk_hand(q)[:3, :3])[:, 2]
        assert np.dot(approach, kinds.scene_kind(name).approach_world) > 0.99


def test_planner_spheres_cover_the_arm_every_5_cm():
    """The planner's spheres (arm_motion.arm_sphere_centres): every link origin from panda_link3 to the hand, and
    points at most 5 cm apart between them (2 + 8 + 1 + 2 + 3 along the Panda's links: 17 centres), in the world."""
    from graspsim.geometry import make_transform
    from graspsim.grasping.arm_motion import arm_sphere_centres

    rng = np.random.default_rng(5)
    T_world_base = make_transform(kinds.scene_kind("shelf").arm_mount.T_world_base_park()[:3, :3], [0.3, -0.8, 0.4])
    for q in [kin.Q_REST, kin.Q_HOME, *rng.uniform(kin.Q_LOWER, kin.Q_UPPER, size=(20, kin.ARM_DOF))]:
        centres = arm_sphere_centres(T_world_base, q)
        origins = (T_world_base[:3, :3] @ kin.link_frames(q)[2:, :3, 3].T).T + T_world_base[:3, 3]
        assert centres.shape == (17, 3)
        assert np.linalg.norm(np.diff(centres, axis=0), axis=1).max() <= 0.05 + 1e-12
        # each origin is a centre, in chain order (the wrist's two coincide)
        at = [int(np.argmin(np.linalg.norm(centres - o, axis=1))) for o in origins]
        assert at == [0, 2, 10, 10, 13, 16] and np.abs(centres[at] - origins).max() < 1e-12
        # between two origins, on the segment: the same doubles as a + (b - a) * k / n segment by segment
        assert centres[1].tobytes() == (origins[0] + (origins[1] - origins[0]) * (1 / 2)).tobytes()
        assert centres[5].tobytes() == (origins[1] + (origins[2] - origins[1]) * (3 / 8)).tobytes()


def test_a_palm_blocked_by_a_shelf_edge_stops_there_as_the_floating_hand_does(shelf_env, monkeypatch):
    """A grasp 8 cm from the bay's left side panel with a horizontal closing axis: the hand housing (21 cm
    across) meets the panel's front edge before the grasp pose. The arm's approach is a guarded move: it stops
    where the palm presses on the edge (no arm collision, no buckling: the hand keeps its height and
    orientation), about where the floating hand's stiff constraint stops, and it lifts from there."""
    from graspsim.sim import execute
    from graspsim.sim.panda import PandaArm
    from graspsim.scenes.layout import SHELF

    x = -SHELF.inner_width_m / 2 + 0.08
    command = _grasp_command([x, 0.06, SHELF.board_tops_m[1] + 0.06], approach=[0, 1, 0], closing=[1, 0, 0])
    stops = {}
    original_hold = PandaArm.hold_where_it_is

    def hold(arm):
        stops["panda"] = arm.T_world_hand
        return original_hold(arm)

    monkeypatch.setattr(PandaArm, "hold_where_it_is", hold)
    original_judge = execute._grip_lift_judge

    def judge(world, robot, *args, **kwargs):
        if not isinstance(robot, PandaArm):
            position, _ = world.client.getBasePositionAndOrientation(robot.body)
            stops["hand"] = np.asarray(position)
        return original_judge(world, robot, *args, **kwargs)

    monkeypatch.setattr(execute, "_grip_lift_judge", judge)
    outcomes = _on_an_empty_shelf(shelf_env, command)
    # nothing to grasp: the jaws close on nothing, and neither robot is said to have collided
    assert outcomes["panda"].reason is FailureReason.MISSED and outcomes["hand"].reason is FailureReason.MISSED
    assert outcomes["panda"].details["approach_blocked"] is True
    T_hand_grasp = execute.hand_motion(shelf_env._scene.kind, command, shelf_env.physics).T_hand_grasp
    short_m = T_hand_grasp[1, 3] - stops["panda"][1, 3]
    assert short_m > 0.005  # stopped before the grasp pose, along the approach (+y)
    assert abs(short_m - (T_hand_grasp[1, 3] - stops["hand"][1])) < 0.005  # where the floating hand stops
    assert np.allclose(stops["panda"][[0, 2], 3], T_hand_grasp[[0, 2], 3], atol=0.002)  # no riding up the edge
    turned = np.degrees(np.arccos(np.clip((np.trace(T_hand_grasp[:3, :3].T @ stops["panda"][:3, :3]) - 1) / 2, -1, 1)))
    assert turned < 1.0
