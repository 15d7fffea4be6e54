"""The numpy Panda kinematics against pybullet's own model of pybullet_data's panda.urdf."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest

from graspsim.grasping import panda_kinematics as pk

pybullet = pytest.importorskip("pybullet")
pybullet_data = pytest.importorskip("pybullet_data")

URDF = os.path.join(pybullet_data.getDataPath(), "franka_panda", "panda.urdf")
HAND_LINK = 8  # pybullet link index of panda_hand


@pytest.fixture(scope="module")
def panda():
    """(client, body) of panda.urdf in a DIRECT pybullet client, fixed base at the world origin."""
    client = pybullet.connect(pybullet.DIRECT)
    body = pybullet.loadURDF(URDF, useFixedBase=True, physicsClientId=client)
    yield client, body
    pybullet.disconnect(client)


def pybullet_link_pose(panda, q, link):
    """(4, 4) world pose of a link frame after resetting the arm joints to ``q``."""
    client, body = panda
    for j in range(pk.ARM_DOF):
        pybullet.resetJointState(body, j, float(q[j]), physicsClientId=client)
    state = pybullet.getLinkState(body, link, computeForwardKinematics=True, physicsClientId=client)
    T = np.eye(4)
    T[:3, :3] = np.array(pybullet.getMatrixFromQuaternion(state[5])).reshape(3, 3)
    T[:3, 3] = state[4]
    return T


def random_q(rng, n, margin=0.0):
    """(n, 7) joint vectors uniform within the limits shrunk by ``margin`` of each range on both sides."""
    pad = margin * (pk.Q_UPPER - pk.Q_LOWER)
    return rng.uniform(pk.Q_LOWER + pad, pk.Q_UPPER - pad, size=(n, pk.ARM_DOF))


def test_constants_match_the_urdf_and_pybullet(panda):
    chain = pk.parse_urdf_chain(URDF, "panda_link0", "panda_hand")
    assert [j["name"] for j in chain] == list(pk.JOINT_NAMES) + ["panda_joint8", "panda_hand_joint"]
    arm, fixed = chain[:pk.ARM_DOF], chain[pk.ARM_DOF:]
    assert all(j["type"] == "revolute" for j in arm) and all(j["type"] == "fixed" for j in fixed)
    np.testing.assert_array_equal([j["xyz"] for j in arm], pk._JOINT_ORIGIN_XYZ)
    np.testing.assert_array_equal([j["rpy"] for j in arm], pk._JOINT_ORIGIN_RPY)
    np.testing.assert_array_equal([j["axis"] for j in arm], pk._JOINT_AXIS)
    np.testing.assert_array_equal([j["lower"] for j in arm], pk.Q_LOWER)
    np.testing.assert_array_equal([j["upper"] for j in arm], pk.Q_UPPER)
    np.testing.assert_array_equal([j["velocity"] for j in arm], pk.VELOCITY_LIMIT_RADPS)
    np.testing.assert_array_equal([j["effort"] for j in arm], pk.EFFORT_LIMIT_NM)
    assert [(j["name"], tuple(j["xyz"]), tuple(j["rpy"])) for j in fixed] == list(pk._LINK7_FIXED_TO_HAND)
    (grasp,) = pk.parse_urdf_chain(URDF, "panda_hand", "panda_grasptarget")
    np.testing.assert_array_equal(grasp["xyz"], pk.HAND_T_GRASPTARGET[:3, 3])
    client, body = panda
    names = [pybullet.getJointInfo(body, j, physicsClientId=client)[1].decode() for j in range(pk.ARM_DOF)]
    assert names == list(pk.JOINT_NAMES)
    assert pybullet.getJointInfo(body, HAND_LINK, physicsClientId=client)[12].decode() == "panda_hand"
    for q in (pk.Q_HOME, pk.Q_REST):
        assert q.shape == (pk.ARM_DOF,) and np.all((q >= pk.Q_LOWER) & (q <= pk.Q_UPPER))
    assert pk.fk_hand(pk.Q_HOME)[2, 2] < -0.9 and pk.fk_hand(pk.Q_REST)[2, 2] < -0.9  # hand points down


def test_fk_matches_pybullet(panda):
    rng = np.random.default_rng(0)
    worst_pos = worst_rot = 0.0
    for q in random_q(rng, 100):
        frames = pk.link_frames(q)
        assert frames.shape == (8, 4, 4)
        np.testing.assert_array_equal(pk.fk_hand(q), frames[-1])
        for index, link in enumerate(list(range(pk.ARM_DOF)) + [HAND_LINK]):
            T_bullet = pybullet_link_pose(panda, q, link)
            worst_pos = max(worst_pos, float(np.abs(T_bullet[:3, 3] - frames[index, :3, 3]).max()))
            worst_rot = max(worst_rot, float(np.abs(T_bullet[:3, :3] - frames[index, :3, :3]).max()))
    assert worst_pos < 1e-6 and worst_rot < 1e-6, (worst_pos, worst_rot)


def test_jacobian_matches_finite_differences():
    rng = np.random.default_rng(1)
    h = 1e-6
    for q in random_q(rng, 20):
        J = pk.jacobian(q)
        assert J.shape == (6, pk.ARM_DOF)
        J_fd = np.empty((6, pk.ARM_DOF))
        for j in range(pk.ARM_DOF):
            dq = np.zeros(pk.ARM_DOF)
            dq[j] = h
            T_plus, T_minus = pk.fk_hand(q + dq), pk.fk_hand(q - dq)
            J_fd[:3, j] = (T_plus[:3, 3] - T_minus[:3, 3]) / (2 * h)
            J_fd[3:, j] = pk.rotation_log(T_plus[:3, :3] @ T_minus[:3, :3].T) / (2 * h)
        np.testing.assert_allclose(J, J_fd, atol=1e-6)


def test_reach_bound_holds():
    rng = np.random.default_rng(2)
    distances = [np.linalg.norm(pk.fk_hand(q)[:3, 3] - pk.SHOULDER_XYZ) for q in random_q(rng, 3000)]
    assert max(distances) <= pk.REACH_M
    assert pk.REACH_M - max(distances) < 0.02  # and it is tight


def test_ik_reaches_poses_of_random_configurations(panda):
    rng = np.random.default_rng(3)
    for k, q_true in enumerate(random_q(rng, 50, margin=0.05)):
        target = pk.fk_hand(q_true)
        result = pk.solve_ik(target)
        assert result.ok, (k, q_true, result)
        assert np.all((result.q >= pk.Q_LOWER) & (result.q <= pk.Q_UPPER))
        T = pk.fk_hand(result.q)
        assert np.linalg.norm(T[:3, 3] - target[:3, 3]) < 0.005
        assert pk.rotation_angle_deg(T[:3, :3], target[:3, :3]) < 3.0
        assert math.isclose(result.position_error_m, np.linalg.norm(T[:3, 3] - target[:3, 3]), abs_tol=1e-12)
        if k < 5:  # the returned joints put pybullet's hand there too
            T_bullet = pybullet_link_pose(panda, result.q, HAND_LINK)
            assert np.linalg.norm(T_bullet[:3, 3] - target[:3, 3]) < 0.005
            assert pk.rotation_angle_deg(T_bullet[:3, :3], target[:3, :3]) < 3.0
            assert pk.reachable(target)


def look_along(position, z_axis):
    """Hand pose at ``position`` whose z axis (approach direction) is ``z_axis``."""
    z = np.asarray(z_axis, dtype=float) / np.linalg.norm(z_axis)
    x = np.cross([0.0, 1.0, 0.0] if abs(z[1]) < 0.9 else [1.0, 0.0, 0.0], z)
    x /= np.linalg.norm(x)
    T = np.eye(4)
    T[:3, :3] = np.c_[x, np.cross(z, x), z]
    T[:3, 3] = position
    return T


@pytest.mark.parametrize("target", [
    look_along([1.5, 0.0, 0.3], [0, 0, -1]),  # far out of reach
    look_along([0.0, 0.0, 0.333], [0, 0, 1]),  # at the shoulder, inside the reach sphere
    look_along([0.82, 0.0, 0.333], [-1, 0, 0]),  # at the edge of reach, facing back at the base
], ids=["far", "at-shoulder", "stretched-facing-back"])
def test_ik_fails_gracefully_out_of_reach(target):
    result = pk.solve_ik(target)
    assert not result.ok and not pk.reachable(target)
    assert result.q.shape == (pk.ARM_DOF,) and np.all((result.q >= pk.Q_LOWER) & (result.q <= pk.Q_UPPER))
    assert result.position_error_m > 0.005 or result.rotation_error_deg > 3.0
    assert result.iterations <= 100 * 7


def test_ik_is_deterministic():
    rng = np.random.default_rng(4)
    targets = [pk.fk_hand(q) for q in random_q(rng, 5, margin=0.05)]
    targets.append(look_along([0.82, 0.0, 0.333], [-1, 0, 0]))  # a failing one goes through every restart
    for target in targets:
        a, b = pk.solve_ik(target, q_seed=pk.Q_HOME), pk.solve_ik(target.copy(), q_seed=pk.Q_HOME.copy())
        assert a.q.tobytes() == b.q.tobytes()
        assert (a.ok, a.position_error_m, a.rotation_error_deg, a.iterations) == \
            (b.ok, b.position_error_m, b.rotation_error_deg, b.iterations)


def test_null_space_term_pulls_towards_rest_without_breaking_convergence():
    """Seeded near (not at) a random solution, the pull towards Q_REST ends closer to Q_REST on average."""
    rng = np.random.default_rng(5)
    with_pull, without_pull = [], []
    for q_true in random_q(rng, 20, margin=0.15):
        target, seed = pk.fk_hand(q_true), q_true + 0.3
        a = pk.solve_ik(target, q_seed=seed)
        b = pk.solve_ik(target, q_seed=seed, null_space_gain=0.0)
        assert a.ok and b.ok
        with_pull.append(np.linalg.norm(a.q - pk.Q_REST))
        without_pull.append(np.linalg.norm(b.q - pk.Q_REST))
    assert np.mean(with_pull) < np.mean(without_pull) - 0.1, (np.mean(with_pull), np.mean(without_pull))


def test_ik_seed_and_input_checks():
    target = pk.fk_hand(pk.Q_REST)
    result = pk.solve_ik(target, q_seed=pk.Q_REST)
    assert result.ok and result.iterations == 0 and np.array_equal(result.q, pk.Q_REST)
    with pytest.raises(ValueError):
        pk.fk_hand(np.zeros(6))
    with pytest.raises(ValueError):
        pk.solve_ik(np.eye(3))
    with pytest.raises(ValueError):
        pk.solve_ik(np.full((4, 4), np.nan))


def test_rotation_log_near_pi():
    for axis in ([1.0, 0.0, 0.0], [0.0, 0.6, 0.8], [1.0, 1.0, 1.0]):
        axis = np.asarray(axis) / np.linalg.norm(axis)
        for angle in (math.pi - 1e-7, math.pi - 1e-3, 1e-8, 1.0):
            K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
            R = np.eye(3) + math.sin(angle) * K + (1 - math.cos(angle)) * K @ K
            np.testing.assert_allclose(pk.rotation_log(R), axis * angle, atol=1e-6)


def test_interpolate_cartesian():
    T_a = look_along([0.4, -0.2, 0.3], [0, 0, -1])
    T_b = look_along([0.5, 0.1, 0.2], [1, 0, -1])
    poses = pk.interpolate_cartesian(T_a, T_b, step_m=0.01, max_step_deg=2.0)
    np.testing.assert_allclose(poses[0], T_a, atol=1e-9)
    np.testing.assert_allclose(poses[-1], T_b, atol=1e-9)
    direction = (T_b[:3, 3] - T_a[:3, 3]) / np.linalg.norm(T_b[:3, 3] - T_a[:3, 3])
    for P, Q in zip(poses, poses[1:]):
        step = Q[:3, 3] - P[:3, 3]
        assert np.linalg.norm(step) <= 0.01 + 1e-9
        np.testing.assert_allclose(np.cross(step, direction), 0.0, atol=1e-12)  # on the straight line
        assert pk.rotation_angle_deg(P[:3, :3], Q[:3, :3]) <= 2.0 + 1e-6
    assert len(pk.interpolate_cartesian(T_a, T_a, step_m=0.01)) == 2


def test_module_imports_only_numpy():
    code = ("import sys, importlib.util; "
            "spec = importlib.util.spec_from_file_location('pk', sys.argv[1]); "
            "m = sys.modules['pk'] = importlib.util.module_from_spec(spec); spec.loader.exec_module(m); "
            "print(sorted(n for n in ('pybullet', 'torch', 'scipy', 'graspsim') if n in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code, pk.__file__], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_fast_kernels_equal_the_plain_numpy_formulas_bit_for_bit():
    """The solver's inner functions are written for few numpy calls (the arm's planning runs them thousands of
    times per attempt); they must give the very doubles of the plain formulas, or every arm result would move."""
    rng = np.random.default_rng(11)
    for q in random_q(rng, 200, margin=0.0):
        # forward kinematics: origin @ Rz(q) per joint (columns x c + y s and y c - x s), chained left to right
        # with matmul, then the fixed hand offset
        frames, cos, sin = [], np.cos(q), np.sin(q)
        for i in range(pk.ARM_DOF):
            c, s, origin = cos[i], sin[i], pk._T_ORIGIN[i]
            local = origin.copy()
            local[:, 0], local[:, 1] = c * origin[:, 0] + s * origin[:, 1], c * origin[:, 1] - s * origin[:, 0]
            T = local if i == 0 else T @ local
            frames.append(T)
        frames.append(T @ pk._T_LINK7_HAND)
        fast = pk._frames(q)
        assert fast.tobytes() == np.stack(frames).tobytes()
        # geometric Jacobian: z_i x (p_hand - p_i) over z_i
        z, r = fast[:7, :3, 2], fast[7, :3, 3] - fast[:7, :3, 3]
        assert pk._jacobian_from_frames(fast).tobytes() == np.vstack([np.cross(z, r).T, z.T]).tobytes()
        # the damped solve
        J = pk._jacobian_from_frames(fast)
        A, b = J @ J.T + 1e-3 * np.eye(6), rng.normal(size=6)
        assert pk._solve(A, b).tobytes() == np.linalg.solve(A, b).tobytes()
