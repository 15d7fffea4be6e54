"""Render RGB, metric depth and segmentation from a :class:`~graspsim.types.CameraModel`.

pybullet wants OpenGL matrices; graspsim speaks OpenCV (K, +z forward, +y down).
The conversions live here and nowhere else.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pybullet

from graspsim.assets.catalog import get_variant
from graspsim.assets.parts import part_at
from graspsim.geometry import deproject, intrinsics_from_fov, invert_transform, look_at, quat_to_matrix
from graspsim.scenes.plan import CameraSpec, Lighting
from graspsim.sim.world import SimWorld
from graspsim.types import CameraModel, Frames

# OpenCV camera axes (x right, y down, z forward) -> OpenGL (x right, y up, z backward).
_CV_TO_GL = np.diag([1.0, -1.0, -1.0, 1.0])


def camera_model_from_spec(spec: CameraSpec) -> CameraModel:
    """The pinhole camera described by a plan's :class:`CameraSpec`."""
    K = intrinsics_from_fov(spec.width, spec.height, spec.vertical_fov_deg)
    T_world_camera = look_at(spec.eye_m, spec.target_m, spec.up)
    return CameraModel(K=K, width=spec.width, height=spec.height, T_world_camera=T_world_camera,
                       near_m=spec.near_m, far_m=spec.far_m)


def view_matrix(camera: CameraModel) -> list[float]:
    """pybullet's column-major 4x4 view matrix (world -> OpenGL eye)."""
    T_gl_world = _CV_TO_GL @ invert_transform(camera.T_world_camera)
    return T_gl_world.T.reshape(-1).tolist()


def projection_matrix(camera: CameraModel) -> list[float]:
    """pybullet's column-major OpenGL projection matrix matching K exactly.

    Pixel centres are at integer coordinates, so pixel column ``u`` maps to NDC
    ``x = (2 u + 1) / W - 1``; the principal point (cx, cy) lands accordingly.
    """
    K, W, H = camera.K, camera.width, camera.height
    n, f = camera.near_m, camera.far_m
    P = np.zeros((4, 4))
    P[0, 0] = 2 * K[0, 0] / W
    P[1, 1] = 2 * K[1, 1] / H
    P[0, 2] = 1 - (2 * K[0, 2] + 1) / W
    P[1, 2] = (2 * K[1, 2] + 1) / H - 1
    P[2, 2] = -(f + n) / (f - n)
    P[2, 3] = -2 * f * n / (f - n)
    P[3, 2] = -1
    return P.T.reshape(-1).tolist()


def linearize_depth(zbuffer: np.ndarray, near_m: float, far_m: float) -> np.ndarray:
    """Metric depth (metres along camera z) from pybullet's non-linear z-buffer in [0, 1]."""
    zbuffer = np.asarray(zbuffer, dtype=np.float64)
    return (far_m * near_m / (far_m - (far_m - near_m) * zbuffer)).astype(np.float32)


def render(world: SimWorld, camera: CameraModel, lighting: Lighting = Lighting(),
           body_to_class: dict[int, int] | None = None, robot: tuple[int, tuple[int, ...]] | None = None) -> Frames:
    """Render one view. ``body_to_class`` maps product body ids to catalog class indices.

    ``robot``: ``(arm body id, gripper link indices)`` to label ``robot_seg`` from
    pybullet's per-link segmentation (links of the gripper 2, the rest of the arm 1).
    """
    # Per-link segmentation only with an arm: a pixel then holds body + ((link + 1) << 24).
    flags = {"flags": pybullet.ER_SEGMENTATION_MASK_OBJECT_AND_LINKINDEX} if robot is not None else {}
    rgb, zbuffer, seg = _camera_image(world, camera, lighting, **flags)
    H, W = camera.height, camera.width
    depth_m = linearize_depth(np.asarray(zbuffer).reshape(H, W), camera.near_m, camera.far_m)
    raw = np.asarray(seg, dtype=np.int32).reshape(H, W)
    instance = np.where(raw >= 0, raw & ((1 << 24) - 1), -1).astype(np.int32)
    robot_seg = None
    if robot is not None:
        body, gripper_links = robot
        on_arm = instance == body  # (only where raw >= 0)
        robot_seg = on_arm.astype(np.uint8)
        # The link of the arm's pixels only (a small part of the image): 2 on the gripper's links.
        robot_seg[on_arm] += np.isin((raw[on_arm] >> 24) - 1, gripper_links).astype(np.uint8)
    class_seg = np.full((H, W), -1, dtype=np.int32)
    if body_to_class:
        ids = np.fromiter(body_to_class.keys(), dtype=np.int32)
        classes = np.fromiter(body_to_class.values(), dtype=np.int32)
        lut = np.full(max(int(ids.max()), int(instance.max()), 0) + 2, -1, dtype=np.int32)
        lut[ids] = classes
        class_seg = np.where(instance >= 0, lut[np.clip(instance, 0, None)], -1).astype(np.int32)
    return Frames(rgb=np.ascontiguousarray(rgb), depth_m=depth_m, instance_seg=instance, class_seg=class_seg,
                  camera=camera, robot_seg=robot_seg)


def render_rgb(world: SimWorld, camera: CameraModel, lighting: Lighting = Lighting()) -> np.ndarray:
    """(H, W, 3) uint8: the colour image :func:`render` gives, without the segmentation pass (video frames)."""
    return _camera_image(world, camera, lighting, flags=pybullet.ER_NO_SEGMENTATION_MASK)[0]


def _camera_image(world: SimWorld, camera: CameraModel, lighting: Lighting, **flags):
    """``(rgb (H, W, 3) uint8 with the lighting gain applied, z-buffer, segmentation)`` of one pybullet render."""
    _, _, rgba, zbuffer, seg = world.render_image(
        width=camera.width,
        height=camera.height,
        viewMatrix=view_matrix(camera),
        projectionMatrix=projection_matrix(camera),
        lightDirection=list(lighting.direction),
        lightAmbientCoeff=lighting.ambient,
        lightDiffuseCoeff=lighting.diffuse,
        lightSpecularCoeff=lighting.specular,
        shadow=int(lighting.shadow),
        **flags,
    )
    rgb = np.asarray(rgba, dtype=np.uint8).reshape(camera.height, camera.width, 4)[:, :, :3]
    if lighting.gain != 1.0:
        rgb = np.clip(rgb.astype(np.float32) * lighting.gain, 0, 255).astype(np.uint8)
    return rgb, zbuffer, seg


def part_segmentation(world: SimWorld, instance_seg: np.ndarray, depth_m: np.ndarray, camera: CameraModel,
                      products: dict[int, tuple[str, int]]) -> np.ndarray:
    """Grasp-part labels (H, W) uint8 of a rendered view: 0 not a product, ``k + 1`` = part ``k`` of the
    pixel's product (:func:`graspsim.assets.parts.part_names` of its class).

    ``instance_seg`` (H, W) body ids and ``depth_m`` (H, W) metres along camera z must come from the same
    (noise-free) render; ``products``: body id -> (class name, variant). Each product pixel is deprojected
    with K and its depth, moved into the product's frame with the body's pose from pybullet (the product
    frame is the body frame: the bounding-box centre) and labelled with the part box containing it, or the
    nearest one (:func:`~graspsim.assets.parts.part_at`): a silhouette pixel whose depth grazes the mesh
    edge still gets the part it belongs to.
    """
    out = np.zeros(instance_seg.shape, dtype=np.uint8)
    T_world_camera = np.asarray(camera.T_world_camera, dtype=np.float64)
    for body, (class_name, variant) in products.items():
        rows, cols = np.nonzero(instance_seg == body)
        if rows.size == 0:
            continue
        p_camera = deproject(camera.K, np.stack([cols, rows], axis=1), depth_m[rows, cols])
        p_world = p_camera @ T_world_camera[:3, :3].T + T_world_camera[:3, 3]
        position, quat = world.client.getBasePositionAndOrientation(body)
        p_product = (p_world - np.asarray(position)) @ quat_to_matrix(quat)  # R^T (p - t), row-wise
        out[rows, cols] = part_at(class_name, get_variant(class_name, variant).size_m, p_product) + 1
    return out


def scene_part_seg(world: SimWorld, scene, frames: Frames) -> Frames:
    """``frames`` with ``part_seg`` (:func:`part_segmentation`) for the products of ``scene`` (a
    :class:`~graspsim.sim.scene.BuiltScene` standing in ``world`` as it was rendered)."""
    products = {body: (placement.class_name, placement.variant)
                for placement, body in zip(scene.plan.products, scene.product_bodies) if body is not None}
    return replace(frames, part_seg=part_segmentation(world, frames.instance_seg, frames.depth_m, frames.camera,
                                                      products))


def scene_look(scene, frames: Frames) -> Frames:
    """``frames`` with the image-space part of ``scene``'s randomised look (its
    :class:`~graspsim.scenes.domain_rand.Appearance`: the background gradient where no body was hit, then the colour
    cast), as datasets store it and the environment observes it; ``frames`` itself when the scene is not randomised."""
    if scene.appearance is None:
        return frames
    return replace(frames, rgb=scene.appearance.apply_to_image(frames.rgb, frames.instance_seg < 0))


def add_depth_noise(depth_m: np.ndarray, camera: CameraModel, std_m: float, rng: np.random.Generator) -> np.ndarray:
    """A copy of ``depth_m`` (metres) with zero-mean Gaussian noise of std ``std_m`` (metres) on valid pixels.

    Valid pixels are finite and strictly between ``near_m`` and ``0.999 * far_m``
    (the range :mod:`graspsim.grasping.conversion` accepts); background (depth at
    the far plane) and invalid pixels are returned unchanged, so noise never
    invents a surface where the camera saw none. Noisy values are clipped to at
    least ``near_m``, so depth stays > 0. One normal draw is taken per pixel of
    the whole image (valid or not), so the noise at a pixel depends only on
    ``rng``'s state, not on which other pixels are valid.
    """
    depth = np.asarray(depth_m, dtype=np.float32)
    if std_m < 0 or not np.isfinite(std_m):
        raise ValueError(f"depth noise std must be finite and >= 0 metres, got {std_m!r}")
    noise = rng.normal(0.0, std_m, size=depth.shape) if std_m > 0 else np.zeros(depth.shape)
    valid = np.isfinite(depth) & (depth > camera.near_m) & (depth < camera.far_m * 0.999)
    noisy = np.maximum(depth.astype(np.float64) + noise, camera.near_m).astype(np.float32)
    return np.where(valid, noisy, depth).astype(np.float32)
