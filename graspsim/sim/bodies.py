"""Create pybullet bodies: products from catalog assets, the shelf unit, the table, the floor.

Products are loaded from OBJ files written next to the asset cache: the EGL
renderer plugin only draws textured meshes that come from files (it cannot
read in-memory vertex arrays), and pybullet turns every ``o`` object of a
collision OBJ into one convex piece of a compound shape.
"""

from __future__ import annotations

from pathlib import Path

from graspsim.assets.library import ProductAsset, load_product_asset
from graspsim.config import PhysicsConfig
from graspsim.fileio import atomic_write_text
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


def spawn_product(world: SimWorld, class_name: str, variant: int, position_m, quat_xyzw,
                  physics: PhysicsConfig) -> int:
    """Create one product body (a rigid body in maximal coordinates: cheaper to simulate).

    Its mass is the catalog mass (kg) times ``physics.product_mass_scale``; its
    friction coefficients come from ``physics`` too.
    """
    c = world.client
    asset = load_product_asset(class_name, variant)
    visual_obj, collision_obj = product_obj_files(asset)
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


def spawn_floor(world: SimWorld, physics: PhysicsConfig) -> int:
    return _static_boxes(world, [((3.0, 3.0, 0.01), (0.0, 0.0, -0.01), _FLOOR_RGBA)], physics)


def spawn_shelf(world: SimWorld, layout: ShelfLayout, physics: PhysicsConfig) -> int:
    """The shelf unit: boards, roof, back panel and two side panels (one static body)."""
    t = layout.board_thickness_m
    half_w = layout.inner_width_m / 2
    depth = layout.depth_m
    boxes = []
    for top in layout.board_tops_m:
        boxes.append(((half_w + t, depth / 2, t / 2), (0.0, depth / 2, top - t / 2), _SHELF_RGBA))
    # A plinth under the lowest board down to the floor.
    base_top = layout.board_tops_m[0] - t
    boxes.append(((half_w + t, depth / 2, base_top / 2), (0.0, depth / 2, base_top / 2), _BACK_RGBA))
    boxes.append(((half_w + t, depth / 2, t / 2), (0.0, depth / 2, layout.roof_bottom_m + t / 2), _SHELF_RGBA))
    height = layout.roof_bottom_m + t
    boxes.append(((half_w + t, t / 2, height / 2), (0.0, depth + t / 2, height / 2), _BACK_RGBA))
    for side in (-1, 1):
        boxes.append(((t / 2, depth / 2 + t / 2, height / 2), (side * (half_w + t / 2), depth / 2 + t / 2, height / 2),
                      _SHELF_RGBA))
    return _static_boxes(world, boxes, physics)


def spawn_table(world: SimWorld, layout: TableLayout, physics: PhysicsConfig) -> int:
    """The table top and four legs (one static body)."""
    hx, hy = layout.size_m[0] / 2, layout.size_m[1] / 2
    t = layout.thickness_m
    top = layout.top_z_m
    boxes = [((hx, hy, t / 2), (0.0, 0.0, top - t / 2), _TABLE_RGBA)]
    leg_h = (top - t) / 2
    for sx in (-1, 1):
        for sy in (-1, 1):
            boxes.append(((0.03, 0.03, leg_h), (sx * (hx - 0.05), sy * (hy - 0.05), leg_h), _TABLE_RGBA))
    return _static_boxes(world, boxes, physics)


_FURNITURE_SPAWNERS = {ShelfLayout: spawn_shelf, TableLayout: spawn_table}


def spawn_furniture(world: SimWorld, furniture: ShelfLayout | TableLayout, physics: PhysicsConfig) -> int:
    """The static body of a scene kind's furniture (``SceneKind.furniture``), dispatched on its layout type."""
    return _FURNITURE_SPAWNERS[type(furniture)](world, furniture, physics)
