"""Rigid transforms and pinhole projection (numpy only).

Frames and conventions are those of :mod:`graspsim.types`: ``T_a_b`` maps points
in frame ``b`` to frame ``a``; quaternions are ``(x, y, z, w)``; the camera frame
follows OpenCV (+z forward, +x right, +y down); pixels are ``xy`` (x right,
y down) with pixel centres at integer coordinates.
"""

from __future__ import annotations

import math

import numpy as np

from graspsim.types import Pose


def quat_to_matrix(quat_xyzw) -> np.ndarray:
    """(3, 3) rotation matrix of a quaternion ``(x, y, z, w)`` (normalised first)."""
    x, y, z, w = np.asarray(quat_xyzw, dtype=np.float64) / np.linalg.norm(quat_xyzw)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                     [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                     [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])


def matrix_to_quat(R: np.ndarray) -> np.ndarray:
    """Quaternion ``(x, y, z, w)`` with ``w >= 0`` of a (3, 3) rotation matrix."""
    R = np.asarray(R, dtype=np.float64)
    trace = R[0, 0] + R[1, 1] + R[2, 2]
    if trace > 0:
        s = 2.0 * math.sqrt(trace + 1.0)
        q = [(R[2, 1] - R[1, 2]) / s, (R[0, 2] - R[2, 0]) / s, (R[1, 0] - R[0, 1]) / s, 0.25 * s]
    elif R[0, 0] > R[1, 1] and R[0, 0] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[0, 0] - R[1, 1] - R[2, 2])
        q = [0.25 * s, (R[0, 1] + R[1, 0]) / s, (R[0, 2] + R[2, 0]) / s, (R[2, 1] - R[1, 2]) / s]
    elif R[1, 1] > R[2, 2]:
        s = 2.0 * math.sqrt(1.0 + R[1, 1] - R[0, 0] - R[2, 2])
        q = [(R[0, 1] + R[1, 0]) / s, 0.25 * s, (R[1, 2] + R[2, 1]) / s, (R[0, 2] - R[2, 0]) / s]
    else:
        s = 2.0 * math.sqrt(1.0 + R[2, 2] - R[0, 0] - R[1, 1])
        q = [(R[0, 2] + R[2, 0]) / s, (R[1, 2] + R[2, 1]) / s, 0.25 * s, (R[1, 0] - R[0, 1]) / s]
    q = np.asarray(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def make_transform(R: np.ndarray | None = None, t=None) -> np.ndarray:
    """(4, 4) homogeneous transform from rotation ``R`` (3, 3) and translation ``t`` (3,)."""
    T = np.eye(4)
    if R is not None:
        T[:3, :3] = R
    if t is not None:
        T[:3, 3] = np.asarray(t, dtype=np.float64)
    return T


def invert_transform(T: np.ndarray) -> np.ndarray:
    """Inverse of a rigid (4, 4) transform."""
    R, t = T[:3, :3], T[:3, 3]
    return make_transform(R.T, -R.T @ t)


def transform_points(T: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply (4, 4) ``T`` to points (..., 3)."""
    points = np.asarray(points, dtype=np.float64)
    return points @ T[:3, :3].T + T[:3, 3]


def matrix_to_pose(T: np.ndarray) -> Pose:
    q = matrix_to_quat(T[:3, :3])
    return Pose(tuple(float(v) for v in T[:3, 3]), tuple(float(v) for v in q))


def rotation_about_axis(axis, angle_rad: float) -> np.ndarray:
    """(3, 3) rotation of ``angle_rad`` about unit ``axis`` (Rodrigues)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    K = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle_rad) * K + (1 - math.cos(angle_rad)) * (K @ K)


def intrinsics_from_fov(width: int, height: int, vertical_fov_deg: float) -> np.ndarray:
    """(3, 3) K of a pinhole camera with square pixels and the given vertical field of view.

    The principal point is the image centre ``((W-1)/2, (H-1)/2)`` because pixel
    centres sit at integer coordinates.
    """
    f = 0.5 * height / math.tan(math.radians(vertical_fov_deg) / 2)
    return np.array([[f, 0, (width - 1) / 2], [0, f, (height - 1) / 2], [0, 0, 1.0]])


def project(K: np.ndarray, points_camera: np.ndarray) -> np.ndarray:
    """Pixels ``xy`` (..., 2) of camera-frame points (..., 3) with z > 0."""
    points_camera = np.asarray(points_camera, dtype=np.float64)
    return (points_camera @ K.T)[..., :2] / points_camera[..., 2:3]


def deproject(K: np.ndarray, xy, depth_m) -> np.ndarray:
    """Camera-frame points (..., 3) of pixels ``xy`` (..., 2) at metric depth (...) along +z."""
    xy = np.asarray(xy, dtype=np.float64)
    depth_m = np.asarray(depth_m, dtype=np.float64)
    x = (xy[..., 0] - K[0, 2]) / K[0, 0] * depth_m
    y = (xy[..., 1] - K[1, 2]) / K[1, 1] * depth_m
    return np.stack([x, y, depth_m], axis=-1)


def look_at(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """``T_world_camera`` (4, 4) for a camera at ``eye`` looking at ``target`` (OpenCV axes).

    Camera +z points at the target, +y is as close to world ``-up`` as possible
    (so image "down" is world down).
    """
    eye = np.asarray(eye, dtype=np.float64)
    z = np.asarray(target, dtype=np.float64) - eye
    z /= np.linalg.norm(z)
    up = np.asarray(up, dtype=np.float64)
    x = np.cross(z, up)
    if np.linalg.norm(x) < 1e-9:  # looking straight along up: pick any perpendicular x
        x = np.cross(z, [0.0, 1.0, 0.0])
        if np.linalg.norm(x) < 1e-9:
            x = np.cross(z, [1.0, 0.0, 0.0])
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return make_transform(np.stack([x, y, z], axis=1), eye)
