"""Create pybullet bodies: products from catalog assets, the shelf unit, the table, the floor.

Products are loaded from OBJ files written next to the asset cache: the EGL
renderer plugin only draws textured meshes that come from files (it cannot
read in-memory vertex arrays), and pybullet turns every ``o`` object of a
collision OBJ into one convex piece of a compound shape.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from graspsim.assets.library import ProductAsset, load_product_asset
from graspsim.config import PhysicsConfig
from graspsim.fileio import atomic_write_text
from graspsim.geometry import make_transform, matrix_to_quat, quat_to_matrix
from graspsim.scenes.layout import ShelfLayout, TableLayout
from graspsim.sim.world import SimWorld

_SHELF_RGBA = (0.78, 0.74, 0.68, 1.0)
_BACK_RGBA = (0.62, 0.66, 0.70, 1.0)
_TABLE_RGBA = (0.55, 0.42, 0.30, 1.0)
_FLOOR_RGBA = (0.35, 0.36, 0.38, 1.0)


def product_obj_files(asset: ProductAsset) -> tuple[str, str]:
    """Paths of (visual OBJ with its MTL/texture, collision OBJ) for ``asset``, written once."""
    texture = Path(asset.texture_path)
    stem = texture.with_suffix("")
    visual, mtl, collision = Path(f"{stem}.visual.obj"), Path(f"{stem}.visual.mtl"), Path(f"{stem}.collision.obj")
    if not (visual.exists() and mtl.exists()):
        atomic_write_text(mtl, f"newmtl label\nKa 1 1 1\nKd 1 1 1\nKs 0.1 0.1 0.1\nmap_Kd {texture.name}\n")
        lines = [f"mtllib {mtl.name}", "o product"]
        lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in asset.vertices]
        lines += [f"vt {u:.6f} {v:.6f}" for u, v in asset.uvs]
        lines += [f"vn {x:.6f} {y:.6f} {z:.6f}" for x, y, z in asset.normals]
        lines.append("usemtl label")
        tris = asset.indices.reshape(-1, 3) + 1
        lines += [f"f {a}/{a}/{a} {b}/{b}/{b} {c}/{c}/{c}" for a, b, c in tris]
        atomic_write_text(visual, "\n".join(lines) + "\n")
    if not collision.exists():
        from scipy.spatial import ConvexHull

        lines = []
        offset = 1
        for k, hull in enumerate(asset.collision_hulls):
            lines.append(f"o hull{k}")
            lines += [f"v {x:.6f} {y:.6f} {z:.6f}" for x, y, z in hull]
            lines += [f"f {a + offset} {b + offset} {c + offset}" for a, b, c in ConvexHull(hull).simplices]
            offset += len(hull)
        atomic_write_text(collision, "\n".join(lines) + "\n")
    return str(visual), str(collision)


def relabelled_obj_file(asset: ProductAsset, texture_rgb: np.ndarray, folder: Path, name: str) -> str:
    """A visual OBJ of ``asset``'s mesh wearing ``texture_rgb`` ((256, 256, 3) uint8 RGB atlas), written as
    ``folder/name.{png,mtl,obj}``; its path.

    A new file per texture, because the EGL renderer plugin ignores ``changeVisualShape``'s texture (measured:
    the image does not change) and may cache a mesh by its file name: pass a ``name`` unique in the process.
    """
    import cv2

    folder = Path(folder)
    visual, _ = product_obj_files(asset)
    png, mtl, obj = folder / f"{name}.png", folder / f"{name}.mtl", folder / f"{name}.obj"
    if not cv2.imwrite(str(png), cv2.cvtColor(np.ascontiguousarray(texture_rgb), cv2.COLOR_RGB2BGR)):
        raise OSError(f"could not write texture {png}")
    mtl.write_text(f"newmtl label\nKa 1 1 1\nKd 1 1 1\nKs 0.1 0.1 0.1\nmap_Kd {png.name}\n")
    geometry = Path(visual).read_text().split("\n", 1)[1]  # all but the cached file's mtllib line
    obj.write_text(f"mtllib {mtl.name}\n{geometry}")
    return str(obj)


def spawn_product(world: SimWorld, class_name: str, variant: int, position_m, quat_xyzw,
                  physics: PhysicsConfig, visual_obj: str | None = None) -> int:
    """Create one product body (a rigid body in maximal coordinates: cheaper to simulate).

    Its mass is the catalog mass (kg) times ``physics.product_mass_scale``; its
    friction coefficients come from ``physics`` too. ``visual_obj``: another look
    for the same mesh (:func:`relabelled_obj_file`); None: the variant's own label.
    """
    c = world.client
    asset = load_product_asset(class_name, variant)
    own_visual, collision_obj = product_obj_files(asset)
    visual_obj = visual_obj or own_visual
    collision = c.createCollisionShape(c.GEOM_MESH, fileName=collision_obj)
    visual = c.createVisualShape(c.GEOM_MESH, fileName=visual_obj)
    body = c.createMultiBody(
        baseMass=float(asset.variant.mass_kg) * float(physics.product_mass_scale),
        baseCollisionShapeIndex=collision,
        baseVisualShapeIndex=visual,
        basePosition=list(position_m),
        baseOrientation=list(quat_xyzw),
        useMaximalCoordinates=True,
    )
    c.changeDynamics(
        body, -1,
        lateralFriction=physics.product_lateral_friction,
        rollingFriction=physics.product_rolling_friction,
        spinningFriction=physics.product_spinning_friction,
        restitution=0.0,
        activationState=c.ACTIVATION_STATE_ENABLE_SLEEPING,
    )
    return body


def _static_boxes(world: SimWorld, boxes: list[tuple[tuple, tuple, tuple]], physics: PhysicsConfig) -> int:
    """One static body made of boxes: each (half_extents, centre, rgba)."""
    c = world.client
    halves = [list(b[0]) for b in boxes]
    centres = [list(b[1]) for b in boxes]
    collision = c.createCollisionShapeArray(
        shapeTypes=[c.GEOM_BOX] * len(boxes), halfExtents=halves, collisionFramePositions=centres)
    visual = c.createVisualShapeArray(
        shapeTypes=[c.GEOM_BOX] * len(boxes), halfExtents=halves, visualFramePositions=centres,
        rgbaColors=[list(b[2]) for b in boxes])
    body = c.createMultiBody(0, collision, visual, [0, 0, 0])
    c.changeDynamics(body, -1, lateralFriction=physics.support_lateral_friction)
    return body


def spawn_floor(world: SimWorld, physics: PhysicsConfig, rgba: tuple | None = None) -> int:
    """The floor: a 6 x 6 m slab with its top at z = 0, coloured ``rgba`` (default: grey)."""
    return _static_boxes(world, [((3.0, 3.0, 0.01), (0.0, 0.0, -0.01), rgba or _FLOOR_RGBA)], physics)


_PART_RGBA = {"board": _SHELF_RGBA, "plinth": _BACK_RGBA, "roof": _SHELF_RGBA, "back": _BACK_RGBA,
              "side": _SHELF_RGBA, "top": _TABLE_RGBA, "leg": _TABLE_RGBA}


def spawn_furniture(world: SimWorld, furniture: ShelfLayout | TableLayout, physics: PhysicsConfig,
                    colours: dict[str, tuple] | None = None) -> int:
    """A scene kind's furniture (``SceneKind.furniture``) as one static body of its boxes (``furniture.boxes()``:
    the shelf unit, or the table top and legs), the same boxes the arm's planner knows.

    ``colours``: part name -> RGBA in [0, 1] for the parts to recolour (domain randomisation; the others keep
    their default colour). Colours are set at creation: the EGL renderer colours a body's boxes all alike
    when ``changeVisualShape`` picks one of them.
    """
    rgba = {**_PART_RGBA, **(colours or {})}
    return _static_boxes(world, [(half, centre, rgba[part]) for half, centre, part in furniture.boxes()], physics)


def place_base(world: SimWorld, body: int, T_world_base: np.ndarray) -> None:
    """Teleport ``body``'s base link frame to ``T_world_base`` (4, 4), world frame (a robot's mount moving).

    pybullet places a base by its centre of mass (``loadURDF`` by its link frame, ``loadSDF`` by the
    file's model pose): the base link's inertial offset is added here, so every robot is placed by its link frame.
    """
    c = world.client
    inertial_xyz, inertial_quat = c.getDynamicsInfo(body, -1)[3:5]
    T_com = np.asarray(T_world_base, dtype=np.float64) @ make_transform(quat_to_matrix(inertial_quat), inertial_xyz)
    c.resetBasePositionAndOrientation(body, list(T_com[:3, 3]), list(matrix_to_quat(T_com[:3, :3])))
