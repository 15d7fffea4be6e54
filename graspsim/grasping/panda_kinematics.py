"""Kinematic model of the Franka Panda arm of pybullet_data's ``franka_panda/panda.urdf`` (numpy only).

Forward kinematics, the geometric Jacobian and a damped-least-squares inverse
kinematics solver for the 7 revolute arm joints (``panda_joint1..7``, pybullet
joint indices 0..6). The frame of interest is the ``panda_hand`` link frame
(pybullet link index 8) relative to the robot base link ``panda_link0``:
``T_base_hand = fk_hand(q)``. The grasp point between the finger pads
(``panda_grasptarget``, link 11) is ``T_base_hand @ HAND_T_GRASPTARGET``.

Conventions: angles in rad, lengths in m, ``T_a_b`` is a (4, 4) homogeneous
transform mapping points in frame ``b`` to frame ``a``; all results are in the
base frame ``panda_link0``. Every function is deterministic (no random state).

The chain constants below are transcribed from the URDF (joint ``origin``
``xyz``/``rpy``, ``axis`` and ``limit`` elements). :func:`parse_urdf_chain`
reads the same numbers from a URDF file; the tests check that the transcription
equals the parse of the installed pybullet_data file and that :func:`fk_hand`
equals pybullet's own forward kinematics.
"""

from __future__ import annotations

import itertools
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass

import numpy as np

ARM_DOF = 7
"""Number of arm joints (``panda_joint1..7``; pybullet joint indices 0..6)."""

# --- Transcribed from pybullet_data/franka_panda/panda.urdf -------------------------------------------------
# (joint name, parent link, child link, origin xyz [m], origin rpy [rad], axis xyz) for panda_joint1..7.
JOINT_NAMES = tuple(f"panda_joint{i}" for i in range(1, 8))
"""URDF names of the 7 arm joints, in chain order."""
LINK_NAMES = tuple(f"panda_link{i}" for i in range(1, 8)) + ("panda_hand",)
"""Names of the frames returned by :func:`link_frames`, in order (pybullet link indices 0..6 and 8)."""
_HALF_PI = 1.57079632679  # as written in the URDF
_JOINT_ORIGIN_XYZ = np.array([
    [0.0, 0.0, 0.333],
    [0.0, 0.0, 0.0],
    [0.0, -0.316, 0.0],
    [0.0825, 0.0, 0.0],
    [-0.0825, 0.384, 0.0],
    [0.0, 0.0, 0.0],
    [0.088, 0.0, 0.0],
])
_JOINT_ORIGIN_RPY = np.array([
    [0.0, 0.0, 0.0],
    [-_HALF_PI, 0.0, 0.0],
    [_HALF_PI, 0.0, 0.0],
    [_HALF_PI, 0.0, 0.0],
    [-_HALF_PI, 0.0, 0.0],
    [_HALF_PI, 0.0, 0.0],
    [_HALF_PI, 0.0, 0.0],
])
_JOINT_AXIS = np.tile([0.0, 0.0, 1.0], (ARM_DOF, 1))
# Fixed joints from panda_link7 to panda_hand: panda_joint8 (xyz 0 0 0.107) then panda_hand_joint (rpy 0 0 -pi/4).
_LINK7_FIXED_TO_HAND = (
    ("panda_joint8", (0.0, 0.0, 0.107), (0.0, 0.0, 0.0)),
    ("panda_hand_joint", (0.0, 0.0, 0.0), (0.0, 0.0, -0.785398163397)),
)
_GRASPTARGET_XYZ = (0.0, 0.0, 0.105)  # fixed joint panda_grasptarget_hand: panda_hand -> panda_grasptarget

Q_LOWER = np.array([-2.9671, -1.8326, -2.9671, -3.1416, -2.9671, -0.0873, -2.9671])
"""(7,) lower joint limits [rad] (URDF ``limit lower``)."""
Q_UPPER = np.array([2.9671, 1.8326, 2.9671, 0.0, 2.9671, 3.8223, 2.9671])
"""(7,) upper joint limits [rad] (URDF ``limit upper``)."""
VELOCITY_LIMIT_RADPS = np.array([2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61])
"""(7,) joint velocity limits [rad/s] (URDF ``limit velocity``)."""
EFFORT_LIMIT_NM = np.array([87.0, 87.0, 87.0, 87.0, 12.0, 12.0, 12.0])
"""(7,) joint torque limits [N m] (URDF ``limit effort``)."""
FINGER_LIMITS_M = (0.0, 0.04)
"""Travel of each prismatic finger joint (pybullet joints 9 and 10) [m]."""
# -------------------------------------------------------------------------------------------------------------

Q_HOME = np.array([0.0, -1.5, 0.0, -2.9, 0.0, 1.6, 0.785])
"""(7,) folded parking pose [rad]: arm tucked over the base, hand pointing down, within limits."""
Q_REST = np.array([0.0, -0.3, 0.0, -2.2, 0.0, 2.0, 0.785])
"""(7,) neutral mid-range pose [rad]: hand in front of the base pointing down; null-space rest and IK seed."""

for _q in (Q_HOME, Q_REST):
    assert np.all((_q >= Q_LOWER) & (_q <= Q_UPPER))
    _q.flags.writeable = False
for _a in (Q_LOWER, Q_UPPER, VELOCITY_LIMIT_RADPS, EFFORT_LIMIT_NM):
    _a.flags.writeable = False


# --- Small rigid-transform helpers -----------------------------------------------------------------------------

def rpy_to_matrix(rpy) -> np.ndarray:
    """(3, 3) rotation of URDF roll-pitch-yaw angles [rad]: ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``."""
    r, p, y = (float(v) for v in rpy)
    cr, sr, cp, sp, cy, sy = math.cos(r), math.sin(r), math.cos(p), math.sin(p), math.cos(y), math.sin(y)
    return np.array([[cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
                     [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
                     [-sp, cp * sr, cp * cr]])


def _transform(xyz, rpy) -> np.ndarray:
    T = np.eye(4)
    T[:3, :3] = rpy_to_matrix(rpy)
    T[:3, 3] = xyz
    return T


def rotation_log(R: np.ndarray) -> np.ndarray:
    """(3,) rotation vector (axis * angle [rad], angle in [0, pi]) of a (3, 3) rotation matrix."""
    (r00, r01, r02), (r10, r11, r12), (r20, r21, r22) = R.tolist()  # Python floats: cheaper than R[i, j]
    cos_a = min(1.0, max(-1.0, 0.5 * (r00 + r11 + r22 - 1.0)))
    w = np.array([r21 - r12, r02 - r20, r10 - r01])
    angle = math.acos(cos_a)
    if angle < 1e-6:
        return 0.5 * w  # first order: R ~ I + [w]x
    if angle < math.pi - 1e-4:
        return w * (angle / (2.0 * math.sin(angle)))
    # Near pi the skew part vanishes: take the axis from the symmetric part, sign from the skew part.
    B = 0.5 * (R + R.T) - cos_a * np.eye(3)  # = (1 - cos a) * axis axis^T
    i = int(np.argmax(np.diag(B)))
    axis = B[i] / math.sqrt(max(B[i, i], 1e-300) * (1.0 - cos_a))
    if axis @ w < 0:
        axis = -axis
    return axis * angle


def rotation_angle_deg(R_a: np.ndarray, R_b: np.ndarray) -> float:
    """Angle [deg] of the relative rotation between two (3, 3) rotation matrices."""
    cos_a = 0.5 * (float(np.sum(R_a * R_b)) - 1.0)  # trace(R_a^T R_b) = sum of elementwise products
    return math.degrees(math.acos(min(1.0, max(-1.0, cos_a))))


# --- URDF parsing (used by the tests to check the transcription; usable for other arms with revolute chains) ---

def parse_urdf_chain(urdf_path, base_link: str = "panda_link0", tip_link: str = "panda_hand") -> list[dict]:
    """Joints from ``base_link`` to ``tip_link`` of a URDF file, in chain order.

    Returns a list of dicts with keys ``name``, ``type`` (``"revolute"``, ``"fixed"``, ...), ``parent``,
    ``child``, ``xyz`` (3,) [m], ``rpy`` (3,) [rad], ``axis`` (3,) and, for joints with a ``limit`` element,
    ``lower``/``upper`` [rad or m], ``velocity``, ``effort``. Raises ``ValueError`` when there is no chain.
    """
    root = ET.parse(str(urdf_path)).getroot()
    by_child = {}
    for j in root.findall("joint"):
        origin, axis, limit = j.find("origin"), j.find("axis"), j.find("limit")
        entry = {
            "name": j.get("name"), "type": j.get("type"),
            "parent": j.find("parent").get("link"), "child": j.find("child").get("link"),
            "xyz": np.array([float(v) for v in (origin.get("xyz", "0 0 0") if origin is not None
                                                else "0 0 0").split()]),
            "rpy": np.array([float(v) for v in (origin.get("rpy", "0 0 0") if origin is not None
                                                else "0 0 0").split()]),
            "axis": np.array([float(v) for v in (axis.get("xyz") if axis is not None else "1 0 0").split()]),
        }
        if limit is not None:
            for key in ("lower", "upper", "velocity", "effort"):
                if limit.get(key) is not None:
                    entry[key] = float(limit.get(key))
        by_child[entry["child"]] = entry
    chain, link = [], tip_link
    while link != base_link:
        if link not in by_child:
            raise ValueError(f"no joint chain from {base_link!r} to {tip_link!r} in {urdf_path}")
        chain.append(by_child[link])
        link = by_child[link]["parent"]
    return chain[::-1]


# --- Forward kinematics ------------------------------------------------------------------------------------------

_T_ORIGIN = np.stack([_transform(x, r) for x, r in zip(_JOINT_ORIGIN_XYZ, _JOINT_ORIGIN_RPY)])  # (7, 4, 4)
_T_LINK7_HAND = _transform(*_LINK7_FIXED_TO_HAND[0][1:]) @ _transform(*_LINK7_FIXED_TO_HAND[1][1:])
HAND_T_GRASPTARGET = _transform(_GRASPTARGET_XYZ, (0.0, 0.0, 0.0))
"""(4, 4) pose of ``panda_grasptarget`` (between the finger pads) in the ``panda_hand`` frame."""
HAND_T_GRASPTARGET.flags.writeable = False
assert np.array_equal(_JOINT_AXIS, np.tile([0.0, 0.0, 1.0], (ARM_DOF, 1)))  # _frames relies on z axes


def _as_q(q) -> np.ndarray:
    q = np.asarray(q, dtype=np.float64)
    if q.shape != (ARM_DOF,):
        raise ValueError(f"joint vector must have shape ({ARM_DOF},), got {q.shape}")
    return q


# (7, 4, 2): the first two columns (x, y) of each joint origin, and (y, -x): origin @ Rz(q) has
# cos(q) * (x, y) + sin(q) * (y, -x) there (x - y sin is x + (-y) sin: the same doubles).
_T_ORIGIN_XY = np.ascontiguousarray(_T_ORIGIN[:, :, :2])
_T_ORIGIN_Y_NEGX = np.ascontiguousarray(np.stack([_T_ORIGIN[:, :, 1], -_T_ORIGIN[:, :, 0]], axis=-1))


def _frames(q: np.ndarray) -> np.ndarray:
    """(8, 4, 4) T_base_link for panda_link1..7 and panda_hand (no input checks)."""
    # Every joint turns about its own z axis: origin @ Rz(q) mixes the origin's first two columns.
    # (The inverse kinematics evaluates this a few times per iteration: written for few numpy calls, and the
    # products stay the same matmuls in the same order, so the results are the same to the last bit.)
    local = _T_ORIGIN.copy()
    local[:, :, :2] = np.cos(q)[:, None, None] * _T_ORIGIN_XY + np.sin(q)[:, None, None] * _T_ORIGIN_Y_NEGX
    out = np.empty((ARM_DOF + 1, 4, 4))
    frames, local = list(out), list(local)  # views, made once
    frames[0][...] = local[0]
    matmul = np.matmul
    for i in range(1, ARM_DOF):
        matmul(frames[i - 1], local[i], out=frames[i])
    matmul(frames[ARM_DOF - 1], _T_LINK7_HAND, out=frames[ARM_DOF])
    return out


def link_frames(q) -> np.ndarray:
    """Poses of the arm links for joint angles ``q`` (7,) [rad].

    Returns (8, 4, 4): ``T_base_link`` for ``panda_link1..7`` (pybullet link indices 0..6; the frame of link
    ``i`` is the frame of joint ``i``, rotating about its z axis) followed by ``panda_hand`` (link index 8),
    in the ``panda_link0`` base frame. See :data:`LINK_NAMES`.
    """
    return _frames(_as_q(q))


def fk_hand(q) -> np.ndarray:
    """(4, 4) ``T_base_hand``: pose of the ``panda_hand`` frame in the base frame for joint angles ``q`` (7,) [rad]."""
    return _frames(_as_q(q))[ARM_DOF]


def _jacobian_from_frames(frames: np.ndarray) -> np.ndarray:
    z = frames[:ARM_DOF, :3, 2]  # (7, 3) joint axes (z of each joint frame) in the base frame
    r = frames[ARM_DOF, :3, 3] - frames[:ARM_DOF, :3, 3]  # (7, 3) joint origin -> hand origin
    J = np.empty((6, ARM_DOF))
    # z x r, all three components in two products of shifted columns (zz[:, 1:4] is z1 z2 z0, zz[:, 2:5] is
    # z2 z0 z1): (z1 r2 - z2 r1, z2 r0 - z0 r2, z0 r1 - z1 r0)
    zz, rr = np.concatenate((z, z), axis=1), np.concatenate((r, r), axis=1)
    J[:3] = (zz[:, 1:4] * rr[:, 2:5] - zz[:, 2:5] * rr[:, 1:4]).T
    J[3:] = z.T
    return J


def jacobian(q) -> np.ndarray:
    """(6, 7) geometric Jacobian of the ``panda_hand`` frame origin at joint angles ``q`` (7,) [rad].

    Rows 0..2: linear velocity [m/s] of the hand origin, rows 3..5: angular velocity [rad/s] of the hand,
    both in the base frame, per unit joint velocity [rad/s].
    """
    return _jacobian_from_frames(_frames(_as_q(q)))


# --- Inverse kinematics -------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class IKResult:
    """Outcome of :func:`solve_ik`.

    ``q`` (7,) [rad] is the best joint vector found (within the joint limits even when ``ok`` is False);
    ``ok`` is True when ``fk_hand(q)`` is within both tolerances of the target; ``position_error_m`` [m] and
    ``rotation_error_deg`` [deg] are those of ``fk_hand(q)``; ``iterations`` counts solver iterations over all
    attempts (restarts included).
    """

    q: np.ndarray
    ok: bool
    position_error_m: float
    rotation_error_deg: float
    iterations: int


# Fixed restart configurations (rad). Column 0 is an offset from the target's azimuth (the base joint turned
# towards the target), columns 1..5 are absolute; joint 7 is set from the target orientation (see _seed_for).
_RESTART_SEEDS = np.array([
    [0.0, 0.3, 0.0, -1.6, 0.0, 1.9, 0.0],  # arm stretched further out
    [0.0, -0.8, 0.0, -2.7, 0.0, 1.9, 0.0],  # folded, close to the base
    [0.0, 0.4, 0.0, -1.2, 0.0, 1.0, 0.0],  # reaching forward and up, wrist bent less
    [0.6, -0.2, -0.9, -2.0, 0.9, 2.2, 0.0],  # elbow to one side
    [-0.6, -0.2, 0.9, -2.0, -0.9, 2.2, 0.0],  # elbow to the other side
    [0.0, -0.3, 0.0, -2.2, 1.6, 1.6, 0.0],  # wrist turned one way
    [0.0, -0.3, 0.0, -2.2, -1.6, 1.6, 0.0],  # wrist turned the other way
    [math.pi, -0.6, 0.0, -1.2, 0.0, 0.3, 0.0],  # over the top, hand behind the shoulder
])
_RESTART_SEEDS.flags.writeable = False


def _wrap_into_limits(angle: float, i: int, prefer: float) -> float:
    """``angle`` + 2 pi k inside the limits of joint ``i`` (closest to ``prefer``), else clamped."""
    candidates = [angle + k * 2.0 * math.pi for k in (-2, -1, 0, 1, 2)]
    inside = [a for a in candidates if Q_LOWER[i] <= a <= Q_UPPER[i]]
    if not inside:
        return float(np.clip(angle, Q_LOWER[i], Q_UPPER[i]))
    return min(inside, key=lambda a: abs(a - prefer))


def _align_wrist_roll(q: np.ndarray, T_target: np.ndarray, prefer: float) -> np.ndarray:
    """``q`` with joint 7 turned so the hand's roll about its z axis (joint 7's axis) matches the target."""
    R = _frames(q)[ARM_DOF, :3, :3]
    M = R.T @ T_target[:3, :3]  # target orientation seen from the current hand frame
    roll = math.atan2(M[1, 0] - M[0, 1], M[0, 0] + M[1, 1])  # best rotation about z
    out = q.copy()
    out[6] = _wrap_into_limits(q[6] + roll, 6, prefer)
    return out


def _seeds(T_target: np.ndarray, q_seed, q_rest: np.ndarray):
    """Attempt seeds, lazily, in order: q_seed, q_rest, then q_rest and the restart configurations turned
    towards the target azimuth with the wrist roll matched to the target (deterministic)."""
    if q_seed is not None:
        yield np.clip(q_seed, Q_LOWER, Q_UPPER)
    yield q_rest
    azimuth = math.atan2(T_target[1, 3], T_target[0, 3])
    for base in [q_rest] + list(_RESTART_SEEDS):
        q = np.array(base, dtype=np.float64)
        offset = 0.0 if base is q_rest else base[0]
        q[0] = _wrap_into_limits(azimuth + offset, 0, 0.0)
        yield _align_wrist_roll(np.clip(q, Q_LOWER, Q_UPPER), T_target, q_rest[6])


def _pose_error(T_target: np.ndarray, T: np.ndarray) -> np.ndarray:
    """(6,) error [position m; rotation vector rad] that takes ``T`` to ``T_target``, in the base frame."""
    e = np.empty(6)
    e[:3] = T_target[:3, 3] - T[:3, 3]
    e[3:] = rotation_log(T_target[:3, :3] @ T[:3, :3].T)
    return e


SHOULDER_XYZ = np.array([0.0, 0.0, 0.333])
"""(3,) position [m] of the shoulder in the base frame: origin of joints 1 and 2, fixed for all q."""
# Upper bound of the distance from the shoulder to the panda_hand origin. Consecutive offsets come in
# perpendicular pairs whose lengths do not depend on q: joint 2 -> joint 4 (0.316 along joint 3's axis, 0.0825
# across), joint 4 -> joint 6 (0.384 along joint 5's axis, 0.0825 across), joint 6 -> hand (0.088 across joint
# 7's axis, 0.107 along it). The triangle inequality over the three gives the bound (tested by sampling).
REACH_M = math.hypot(0.316, 0.0825) + math.hypot(0.384, 0.0825) + math.hypot(0.088, 0.107)
"""Largest distance [m] from :data:`SHOULDER_XYZ` to the ``panda_hand`` origin (about 0.858 m)."""
SHOULDER_XYZ.flags.writeable = False


def _dls_step(Jw: np.ndarray, ew: np.ndarray, damping: float, dq_secondary: np.ndarray) -> np.ndarray:
    """Damped least-squares joint step (7,) for the weighted Jacobian (6, 7) and error (6,), plus the
    secondary step projected onto the Jacobian's null space."""
    JJt = Jw @ Jw.T
    dq = Jw.T @ _solve(JJt + damping * _EYE6, ew)
    if dq_secondary.any():
        # Projector with a tiny damping, so the secondary task hardly leaks into the pose (the leak of the task
        # damping would fight convergence); its eigenvalues stay in (0, 1] even at singularities.
        dq += dq_secondary - Jw.T @ _solve(JJt + 1e-8 * _EYE6, Jw @ dq_secondary)
    return dq


try:
    # np.linalg.solve's own kernel (LAPACK gesv), so the same result to the last bit, without its wrapper's
    # checks and error-state switching (two thirds of its 14 us; the solver calls it twice per iteration).
    # The matrices solved here are symmetric positive definite (damped), never singular.
    from numpy.linalg._umath_linalg import solve1 as _gesv

    def _solve(A: np.ndarray, b: np.ndarray) -> np.ndarray:
        """``np.linalg.solve(A, b)`` for a (6, 6) float64 ``A`` and (6,) ``b``."""
        return _gesv(A, b, signature="dd->d")
except ImportError:  # a numpy without that module: the public call
    _solve = np.linalg.solve


_EYE6 = np.eye(6)
_sum = np.add.reduce  # what np.sum runs for an array, without its dispatch (the same pairwise sum)
_STALL_WINDOW = 10  # iterations
_STALL_FRACTION = 0.05  # least relative decrease of the weighted squared error over a window


def _attempt(T_target, q0, q_rest, weights, converge_pos, converge_rot, max_iterations, null_gain, max_step):
    """One damped least-squares descent from ``q0``; returns (q, fk_hand(q) (4, 4), iterations).

    Stops when both errors are within ``converge_pos`` [m] / ``converge_rot`` [rad], after ``max_iterations``,
    when no step lowers the weighted squared error any more (damping blown up), or when the last
    ``_STALL_WINDOW`` iterations lowered it by less than ``_STALL_FRACTION`` (a local minimum or a pose out of
    reach: a restart from another seed is the better use of time).
    """
    q = np.minimum(np.maximum(q0, Q_LOWER), Q_UPPER)
    frames = _frames(q)
    e = _pose_error(T_target, frames[ARM_DOF])
    we = weights * e
    cost = float(_sum(we ** 2))
    weights_column = weights[:, None]
    J = None  # the weighted Jacobian at q, made when an iteration needs it (not after the last accepted step)
    lam2 = 1e-4  # squared damping, adapted Levenberg-Marquardt style (plus the current cost)
    it, window_cost = 0, cost
    while it < max_iterations:
        if math.sqrt(e[:3] @ e[:3]) <= converge_pos and math.sqrt(e[3:] @ e[3:]) <= converge_rot:
            break
        it += 1
        if it % _STALL_WINDOW == 0:
            if cost > (1.0 - _STALL_FRACTION) * window_cost:
                break
            window_cost = cost
        if J is None:
            J = _jacobian_from_frames(frames) * weights_column
        pull = null_gain * (q_rest - q)
        dq = _dls_step(J, we, lam2 + cost, pull)
        blocked = ((q <= Q_LOWER) & (dq < 0.0)) | ((q >= Q_UPPER) & (dq > 0.0))
        if blocked.any():  # joints pushing into their limits: solve again without them (active set)
            Jb = J.copy()
            Jb[:, blocked] = 0.0
            dq = _dls_step(Jb, we, lam2 + cost, np.where(blocked, 0.0, pull))
            dq[blocked] = 0.0
        step = float(np.abs(dq).max())
        if step > max_step:
            dq *= max_step / step
        q_new = np.minimum(np.maximum(q + dq, Q_LOWER), Q_UPPER)
        frames_new = _frames(q_new)
        e_new = _pose_error(T_target, frames_new[ARM_DOF])
        we_new = weights * e_new
        cost_new = float(_sum(we_new ** 2))
        if cost_new < cost:
            q, frames, e, we, cost, J = q_new, frames_new, e_new, we_new, cost_new, None
            lam2 = max(lam2 * 0.3, 1e-6)
        else:
            lam2 *= 10.0
            if lam2 > 1e3:  # no descent direction left (joint limits or singular): give up this attempt
                break
    return q, frames[ARM_DOF], it


#: Further attempts from fixed seeds when the first ends outside the tolerances (:func:`solve_ik`).
DEFAULT_RESTARTS = 6


def solve_ik(T_base_hand_target, q_seed=None, q_rest=Q_REST, position_tol_m: float = 0.005,
             rotation_tol_deg: float = 3.0, max_iterations: int = 100, restarts: int = DEFAULT_RESTARTS,
             null_space_gain: float = 0.2) -> IKResult:
    """Joint angles that put the ``panda_hand`` frame at ``T_base_hand_target`` (4, 4), base frame.

    Damped least squares (Levenberg-Marquardt damping) on the 6-D pose error (position and rotation vector,
    rotation weighted by ``position_tol_m / rotation_tol``), joints clamped to their limits at every
    iteration (joints pushing into a limit are taken out of that iteration's solve), and a secondary task in
    the null space of the Jacobian that pulls the joints towards ``q_rest`` (7,) [rad] with gain
    ``null_space_gain`` per iteration (0 disables it; it acts while the solver iterates, so a seed that
    already solves the pose is returned as it is). Each attempt runs up to ``max_iterations`` iterations and
    stops early once the errors are a tenth of the tolerances, no descent is left or progress stalls. When an
    attempt ends outside the tolerances, up to ``restarts`` further attempts start from fixed seeds, in
    order: ``q_seed`` (7,) (if given), ``q_rest``, ``q_rest`` with joint 1 turned towards the target, then
    fixed elbow/wrist configurations (see ``_RESTART_SEEDS``); all but the first two get joint 7 set to
    match the target's roll. A target farther from the shoulder than :data:`REACH_M` fails at once
    (``iterations`` 0, ``q`` the first seed). Cost: ``(1 + restarts) * max_iterations`` iterations at most,
    each about two FK evaluations and two 6x6 solves. Deterministic: the same inputs give bitwise the same
    result. ``ok`` is judged on the recomputed ``fk_hand`` of the returned ``q``; on failure ``q`` is the
    attempt ending closest to the target (tolerance-normalised), always within the limits.
    """
    T_target = np.asarray(T_base_hand_target, dtype=np.float64)
    if T_target.shape != (4, 4) or not np.isfinite(T_target).all():
        raise ValueError("T_base_hand_target must be a finite (4, 4) transform")
    if q_rest is not Q_REST:  # (Q_REST is within the limits: checked at import)
        q_rest = np.clip(_as_q(q_rest), Q_LOWER, Q_UPPER)
    rot_tol = math.radians(rotation_tol_deg)
    weights = np.array([1.0, 1.0, 1.0] + [position_tol_m / max(rot_tol, 1e-9)] * 3)
    if q_seed is not None:
        q_seed = _as_q(q_seed)
    attempts = 1 + max(0, int(restarts))
    if np.linalg.norm(T_target[:3, 3] - SHOULDER_XYZ) > REACH_M + position_tol_m:
        attempts, max_iterations = 1, 0  # out of reach whatever the joints: report the first seed as it is
    best, total_iterations = None, 0
    for seed in itertools.islice(_seeds(T_target, q_seed, q_rest), attempts):
        q, T, it = _attempt(T_target, seed, q_rest, weights, 0.1 * position_tol_m, 0.1 * rot_tol,
                            max_iterations, null_space_gain, max_step=0.5)
        total_iterations += it
        pos_err = float(np.linalg.norm(T_target[:3, 3] - T[:3, 3]))
        rot_err = rotation_angle_deg(T_target[:3, :3], T[:3, :3])
        ok = pos_err <= position_tol_m and rot_err <= rotation_tol_deg
        score = (pos_err / position_tol_m) ** 2 + (rot_err / max(rotation_tol_deg, 1e-9)) ** 2
        if best is None or score < best[0]:
            best = (score, q, ok, pos_err, rot_err)
        if ok:
            break
    _, q, ok, pos_err, rot_err = best
    return IKResult(q=q, ok=ok, position_error_m=pos_err, rotation_error_deg=rot_err, iterations=total_iterations)


def reachable(T_base_hand_target, q_seed=None, **kwargs) -> bool:
    """Whether :func:`solve_ik` finds joint angles within limits for the hand pose ``T_base_hand_target`` (4, 4).

    Keyword arguments are passed on to :func:`solve_ik` (tolerances, iterations, restarts).
    """
    return solve_ik(T_base_hand_target, q_seed=q_seed, **kwargs).ok


# --- Cartesian interpolation --------------------------------------------------------------------------------------

def _quat_from_matrix(R: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) of a (3, 3) rotation matrix."""
    rv = rotation_log(R)
    angle = float(np.linalg.norm(rv))
    if angle < 1e-12:
        return np.array([0.0, 0.0, 0.0, 1.0])
    return np.concatenate([rv / angle * math.sin(0.5 * angle), [math.cos(0.5 * angle)]])


def _matrix_from_quat(qt: np.ndarray) -> np.ndarray:
    x, y, z, w = qt / np.linalg.norm(qt)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def interpolate_cartesian(T_a, T_b, step_m: float, max_step_deg: float = 5.0) -> list[np.ndarray]:
    """Poses (4, 4) on the straight line from ``T_a`` to ``T_b`` with slerped orientation, both ends included.

    The number of segments is the smallest that keeps each step within ``step_m`` [m] of translation and
    ``max_step_deg`` [deg] of rotation (at least one segment, so at least 2 poses).
    """
    if step_m <= 0 or max_step_deg <= 0:
        raise ValueError("step_m and max_step_deg must be positive")
    T_a, T_b = np.asarray(T_a, dtype=np.float64), np.asarray(T_b, dtype=np.float64)
    qa, qb = _quat_from_matrix(T_a[:3, :3]), _quat_from_matrix(T_b[:3, :3])
    dot = float(qa @ qb)
    if dot < 0.0:  # shorter arc
        qb, dot = -qb, -dot
    theta = math.acos(min(1.0, dot))  # half the rotation angle
    n = max(1, math.ceil(np.linalg.norm(T_b[:3, 3] - T_a[:3, 3]) / step_m - 1e-9),
            math.ceil(math.degrees(2.0 * theta) / max_step_deg - 1e-9))
    poses = []
    for k in range(n + 1):
        s = k / n
        if theta < 1e-9:
            qt = qa
        else:
            qt = (math.sin((1.0 - s) * theta) * qa + math.sin(s * theta) * qb) / math.sin(theta)
        T = np.eye(4)
        T[:3, :3] = _matrix_from_quat(qt)
        T[:3, 3] = (1.0 - s) * T_a[:3, 3] + s * T_b[:3, 3]
        poses.append(T)
    return poses
