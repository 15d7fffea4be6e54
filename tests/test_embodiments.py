"""The robots of robot-segmentation data (graspsim/sim/embodiments.py): loading, part maps, limits, tool frames,
mounts and the pose sampler (TinyRenderer worlds, no rendering but where said)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from graspsim.config import PhysicsConfig
from graspsim.geometry import invert_transform, transform_points
from graspsim.scenes.kinds import SCENE_KINDS
from graspsim.sim.embodiments import (ARM, EMBODIMENT_SPLITS, EMBODIMENTS, GRIPPER, T_WORLD_AWAY, NoPoseFound,
                                      RobotBody, SamplerConfig, get_embodiment, parse_embodiments,
                                      sample_configuration, work_target)
from graspsim.sim.world import SimWorld

#: The two links holding each robot's fingertips (their boxes straddle the tool point along its +y).
FINGERTIPS = {"panda": ("panda_leftfinger", "panda_rightfinger"),
              "kuka_iiwa": ("left_finger_tip", "right_finger_tip"), "xarm6": ("left_finger", "right_finger")}


@pytest.fixture(scope="module")
def world():
    w = SimWorld(PhysicsConfig(), "tiny")
    yield w
    w.close()


@pytest.fixture(scope="module")
def robots(world):
    return {name: RobotBody(world, e) for name, e in EMBODIMENTS.items()}


def test_registry_and_splits():
    assert tuple(EMBODIMENTS) == ("panda", "kuka_iiwa", "xarm6") and set(FINGERTIPS) == set(EMBODIMENTS)
    assert EMBODIMENT_SPLITS == {"seen": ("panda", "kuka_iiwa"), "unseen": ("xarm6",)}
    assert parse_embodiments("all") == ("panda", "kuka_iiwa", "xarm6")
    assert parse_embodiments("xarm6, panda") == ("panda", "xarm6")  # registry order, spaces ignored
    assert parse_embodiments("seen") == ("panda", "kuka_iiwa") and parse_embodiments("unseen,xarm6") == ("xarm6",)
    with pytest.raises(ValueError, match=r"^unknown embodiment 'ur5'; choose from panda, kuka_iiwa, xarm6 "):
        parse_embodiments("panda,ur5")
    with pytest.raises(ValueError, match="unknown embodiment ''"):
        parse_embodiments("panda,")
    with pytest.raises(ValueError, match="choose from panda, kuka_iiwa, xarm6"):
        get_embodiment("ur5")
    # the Panda stands where the environments put it
    assert all(EMBODIMENTS["panda"].mount(k) is SCENE_KINDS[k].arm_mount for k in SCENE_KINDS)


@pytest.mark.parametrize("name", list(EMBODIMENTS))
def test_loads_with_a_part_map_covering_every_link(world, robots, name):
    robot, e = robots[name], EMBODIMENTS[name]
    c = world.client
    links = {c.getBodyInfo(robot.body)[0].decode()} | {c.getJointInfo(robot.body, j)[12].decode()
                                                       for j in range(c.getNumJoints(robot.body))}
    assert links == set(e.arm_links) | set(e.gripper_links) and not set(e.arm_links) & set(e.gripper_links)
    assert sorted(robot.part) == [-1] + list(range(c.getNumJoints(robot.body)))
    assert {robot.part[i] for i in robot.gripper_link_indices} == {GRIPPER}
    assert robot.part[-1] == ARM and robot.part[robot.link_index[e.arm_links[-1]]] == ARM
    # every link with geometry is drawn (so it can show in a mask): the gripper and the arm both have some
    drawn = {v[1] for v in c.getVisualShapeData(robot.body)}
    assert drawn & set(robot.gripper_link_indices) and drawn - set(robot.gripper_link_indices)


@pytest.mark.parametrize("name", list(EMBODIMENTS))
def test_transcribed_joint_limits_are_the_model_files(world, robots, name):
    robot, e = robots[name], EMBODIMENTS[name]
    info = [world.client.getJointInfo(robot.body, j) for j in robot.arm_joint_indices]
    assert [i[1].decode() for i in info] == list(e.arm_joints)
    assert all(i[2] == world.client.JOINT_REVOLUTE for i in info)
    assert np.allclose([i[8] for i in info], e.q_lower, atol=1e-6)
    assert np.allclose([i[9] for i in info], e.q_upper, atol=1e-6)
    for kind in SCENE_KINDS:
        q_park = np.asarray(e.mount(kind).q_park)
        assert q_park.shape == (e.dof,) and np.all((q_park >= e.q_lower) & (q_park <= e.q_upper))


@pytest.mark.parametrize("name", list(EMBODIMENTS))
def test_tool_frame_sits_between_the_fingertips_closing_along_y(world, robots, name):
    robot, e = robots[name], EMBODIMENTS[name]
    c = world.client
    q = np.asarray(e.mount("tabletop").q_park)
    gaps = []
    for closure in (0.0, 1.0):
        robot.set_joints(q, closure)
        T_tool_world = invert_transform(robot.T_world_tcp())
        left, right = (transform_points(T_tool_world, np.mean(c.getAABB(robot.body, robot.link_index[n]), axis=0))
                       for n in FINGERTIPS[name])
        assert abs(left[0]) < 0.03 and abs(right[0]) < 0.03  # both in the plane of the tool's y and z axes
        assert abs(left[2]) < 0.03 and abs(right[2]) < 0.03  # at the tool point's depth
        assert left[1] * right[1] < 0 and abs(left[1] + right[1]) < 0.005  # on either side, symmetric
        gaps.append(abs(left[1] - right[1]))
    assert gaps[0] > 0.1 and gaps[1] < 0.05  # open, then closed along the tool's y axis


@pytest.mark.parametrize("name", list(EMBODIMENTS))
def test_base_placement_is_the_link_frame(robots, name):
    robot = robots[name]
    T = np.eye(4)
    T[:3, :3] = [[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    T[:3, 3] = (0.3, -0.2, 0.5)
    robot.set_base(T)
    robot.set_joints(np.zeros(EMBODIMENTS[name].dof))
    first = robot.link_index[EMBODIMENTS[name].arm_links[1]]  # the link after the base, on a joint at its z axis
    assert np.allclose(robot.link_pose(first)[:2, 3], (0.3, -0.2), atol=1e-6)


def test_work_targets_lie_in_the_work_area():
    rng = np.random.default_rng(3)
    shelf, table = SCENE_KINDS["shelf"], SCENE_KINDS["tabletop"]
    box = (np.array([-0.05, 0.03, 0.42]), np.array([0.03, 0.09, 0.60]))  # a product on the bottom board
    for _ in range(200):
        T, target = work_target(shelf, rng, [box], product_prob=0.5)
        assert target in ("product", "free")  # no reach targets unless asked for
        assert np.allclose(T[:3, :3].T @ T[:3, :3], np.eye(3), atol=1e-9)
        x, y, z = T[:3, 3]
        if target == "product":
            assert (x, z) == pytest.approx((-0.01, 0.51)) and 0.04 <= y <= 0.09
            assert abs(T[2, 1]) < math.sin(math.radians(16))  # jaws close horizontally (+-15 degrees)
        else:
            assert abs(x) <= 0.30 and -0.15 <= y <= 0.22 and 0.47 <= z <= 1.15
        assert T[1, 2] > math.cos(math.radians(36)) * 0.9  # the tool points into the shelf
        T, target = work_target(table, rng)
        assert target == "free" and abs(T[0, 3]) <= 0.30 and 0.74 <= T[2, 3] <= 1.05
        assert T[2, 2] <= -math.cos(math.radians(35)) + 1e-9  # pointing down, tilted at most 35 degrees


def test_reach_targets_go_deep_into_the_bay_over_the_products_and_down_beside_them_on_the_table():
    """Shelf: 6-22 cm deep, 3-7 cm over the highest product within 7 cm of x on its level (the board elsewhere),
    at least 3 cm under the next board, jaws horizontal. Table: 3-7 cm out from a product's box, 2-8 cm above
    the top."""
    rng = np.random.default_rng(4)
    shelf, table = SCENE_KINDS["shelf"], SCENE_KINDS["tabletop"]
    tops, thickness = shelf.furniture.board_tops_m, shelf.furniture.board_thickness_m
    box = (np.array([-0.05, 0.03, 0.421]), np.array([0.03, 0.09, 0.60]))  # 18 cm tall, on the bottom board
    counts = {"product": 0, "reach": 0, "free": 0}
    over_the_box = 0
    for _ in range(300):
        T, target = work_target(shelf, rng, [box], product_prob=0.2, reach_prob=0.6)
        counts[target] += 1
        if target != "reach":
            continue
        x, y, z = T[:3, 3]
        assert abs(x) <= 0.28 and 0.06 <= y <= 0.22
        level = max(i for i, top in enumerate(tops) if top <= z)
        floor = 0.60 if level == 0 and abs(x - (-0.01)) < 0.04 + 0.07 else tops[level]
        over_the_box += floor == 0.60
        ceiling = tops[level + 1] - thickness if level + 1 < len(tops) else shelf.furniture.roof_bottom_m
        assert min(floor + 0.03, ceiling - 0.03) <= z <= min(floor + 0.07, ceiling - 0.03) + 1e-12, (x, z)
        assert abs(T[2, 1]) < math.sin(math.radians(16))  # jaws close horizontally: the flat of the hand up
        assert T[1, 2] >= math.cos(math.radians(20)) * math.cos(math.radians(10)) - 1e-9  # into the shelf
    assert counts["reach"] > 150 and counts["product"] > 30 and counts["free"] > 30 and over_the_box > 10
    table_box = (np.array([0.10, -0.05, 0.70]), np.array([0.16, 0.03, 0.85]))
    for _ in range(100):
        T, target = work_target(table, rng, [table_box], product_prob=0.0, reach_prob=1.0)
        assert target == "reach"
        x, y, z = T[:3, 3]
        # along the ray from the box's centre: 3 to 7 cm past where it leaves the box
        centre, half = (table_box[0][:2] + table_box[1][:2]) / 2, (table_box[1][:2] - table_box[0][:2]) / 2
        ray = np.array([x, y]) - centre
        edge = np.min(half / np.maximum(np.abs(ray / np.linalg.norm(ray)), 1e-9))
        assert 0.03 - 1e-9 <= np.linalg.norm(ray) - edge <= 0.07 + 1e-9
        assert 0.72 <= z <= 0.78 and T[2, 2] <= -math.cos(math.radians(20)) + 1e-9
    with pytest.raises(ValueError, match="sum <= 1"):
        SamplerConfig(product_prob=0.6, reach_prob=0.5)


@pytest.mark.parametrize("kind", list(SCENE_KINDS))
def test_sampled_poses_are_within_limits_collision_free_and_reach_the_target(kind):
    """In a settled scene: every embodiment, 3 poses each, checked again from scratch in the world."""
    from graspsim.scenes.sampling import SceneOptions
    from graspsim.scenes.suites import SUITES
    from graspsim.sim.scene import build_settled_scene

    suite = SUITES[f"{kind}-test"]
    world = SimWorld(PhysicsConfig(), "tiny")
    try:
        scene = build_settled_scene(world, kind, suite.first_seed, "seen", SceneOptions(width=64, height=48),
                                    PhysicsConfig())
        obstacles = list(scene.static_bodies) + scene.live_bodies
        products = [tuple(np.asarray(v) for v in world.client.getAABB(b)) for b in scene.live_bodies]
        config = SamplerConfig()
        robots = {name: RobotBody(world, e, T_WORLD_AWAY) for name, e in EMBODIMENTS.items()}  # none removed
        for name, e in EMBODIMENTS.items():
            robot = robots[name]
            poses = [sample_configuration(robot, kind, np.random.default_rng([5, k]), obstacles, products, config)
                     for k in range(3)]
            for p in poses:
                assert np.all(p.q >= np.asarray(e.q_lower)) and np.all(p.q <= np.asarray(e.q_upper))
                robot.set_base(p.T_world_base)
                robot.set_joints(p.q, p.closure)
                T = robot.T_world_tcp()
                assert np.allclose(T, p.T_world_tcp)
                assert np.linalg.norm(T[:3, 3] - p.T_world_target[:3, 3]) <= config.position_tol_m
                angle = math.degrees(math.acos(np.clip((np.trace(T[:3, :3].T @ p.T_world_target[:3, :3]) - 1) / 2,
                                                       -1, 1)))
                assert angle <= config.rotation_tol_deg
                assert not robot.self_colliding(config.self_tolerance_m)
                assert robot.penetration_m(obstacles) <= config.scene_tolerance_m
                assert np.allclose(p.T_world_base, e.mount(kind).T_world_base_for(p.T_world_target[:3, 3]))
            # the same generator state gives the same pose, whatever the robot did before
            again = sample_configuration(robot, kind, np.random.default_rng([5, 0]), obstacles, products, config)
            assert np.array_equal(again.q, poses[0].q) and again.attempts == poses[0].attempts
            robot.away()
    finally:
        world.close()


def test_a_pose_inside_the_furniture_is_rejected(world, robots):
    """Obstacles count: with the table top where the tool must go, no pose is accepted."""
    c = world.client
    top = c.createMultiBody(0, c.createCollisionShape(c.GEOM_BOX, halfExtents=[0.6, 0.5, 0.2]), -1, [0, 0, 0.85])
    try:
        with pytest.raises(NoPoseFound, match=r"^no pose: 5 targets failed \(scene_collision 5\)$"):
            sample_configuration(robots["xarm6"], "tabletop", np.random.default_rng(0), [top],
                                 config=SamplerConfig(max_attempts=5))
    finally:
        c.removeBody(top)
