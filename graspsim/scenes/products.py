"""Where products stand, per scene kind: shelf facings and table clutter (numpy only).

Every draw comes from the generator passed in (see :func:`graspsim.scenes.sampling.sample_plan`),
in a fixed order, so the same generator state gives the same placements. World
frame and layouts as in :mod:`graspsim.scenes.layout`; positions in metres.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from graspsim.assets.catalog import CATALOG, variants
from graspsim.geometry import matrix_to_quat, rotation_about_axis
from graspsim.scenes.layout import ShelfLayout, TableLayout
from graspsim.scenes.plan import ProductPlacement

if TYPE_CHECKING:  # sampling imports the kinds, which import this module
    from graspsim.scenes.sampling import SceneOptions


def _choose_product(rng: np.random.Generator, split: str, max_height_m: float) -> tuple[str, int, np.ndarray]:
    """A random (class, variant, size_m) whose upright height fits under ``max_height_m``."""
    for _ in range(100):
        cls = CATALOG[int(rng.integers(len(CATALOG)))]
        options = variants(cls.name, split)
        variant = options[int(rng.integers(len(options)))]
        size = np.asarray(variant.size_m, dtype=np.float64)
        if size[2] <= max_height_m:
            return cls.name, int(variant.variant), size
    raise RuntimeError(f"no product fits under {max_height_m:.3f} m")


def _yaw_quat(yaw_rad: float, base: np.ndarray | None = None) -> tuple[float, ...]:
    R = rotation_about_axis([0, 0, 1], yaw_rad)
    if base is not None:
        R = R @ base
    return tuple(float(v) for v in matrix_to_quat(R))


_LYING = rotation_about_axis([1, 0, 0], math.pi / 2)  # product x stays horizontal


def sample_shelf_products(rng: np.random.Generator, split: str, options: SceneOptions,
                          layout: ShelfLayout) -> list[ProductPlacement]:
    """Facing rows on every level (1-3 facings of a product side by side), some items behind items."""
    placements: list[ProductPlacement] = []
    half_width = layout.inner_width_m / 2
    for level, board_top in enumerate(layout.board_tops_m):
        # Leave room above the tallest product to lift it clear of the board before retreating.
        max_height = layout.clearance_m(level) - 0.03
        # Leave a finger's room (>= 3.5 cm) between the side panels and the outermost products.
        x = -half_width + rng.uniform(0.035, 0.06)
        front: list[tuple[float, float, float]] = []  # (x centre, width, back face y)
        slot = 0
        while True:
            if rng.random() < 0.12:  # an empty facing: shelves are rarely full
                x += rng.uniform(0.05, 0.10)
            name, variant, size = _choose_product(rng, split, max_height)
            facings = int(rng.integers(1, 4))
            placed_any = False
            for _ in range(facings):
                if x + size[0] > half_width - 0.035:
                    break
                cx = x + size[0] / 2
                cy = rng.uniform(0.012, 0.03) + size[1] / 2
                yaw = rng.uniform(-0.05, 0.05)
                placements.append(ProductPlacement(
                    name, variant, (float(cx), float(cy), float(board_top + size[2] / 2 + 0.001)),
                    _yaw_quat(yaw), "upright", f"L{level}-front-{slot}"))
                front.append((cx, size[0], cy + size[1] / 2))
                slot += 1
                placed_any = True
                x += size[0] + rng.uniform(*options.shelf_gap_m)
            if not placed_any:
                break
        placements.extend(_shelf_back_row(rng, split, options, layout, level, board_top, max_height, front))
    return placements


def _shelf_back_row(rng, split, options, layout, level, board_top, max_height, front) -> list[ProductPlacement]:
    """Products standing behind front-row products (partly or fully hidden from the camera)."""
    placed: list[ProductPlacement] = []
    occupied: list[tuple[float, float]] = []  # x intervals already used in the back row
    for k, (fx, _fw, back_y) in enumerate(front):
        if rng.random() >= options.shelf_back_row_prob:
            continue
        name, variant, size = _choose_product(rng, split, max_height)
        cy = back_y + rng.uniform(0.015, 0.03) + size[1] / 2
        if cy + size[1] / 2 > layout.depth_m - 0.01:
            continue
        cx = fx + rng.uniform(-0.015, 0.015)
        lo, hi = cx - size[0] / 2 - 0.01, cx + size[0] / 2 + 0.01
        if lo < -layout.inner_width_m / 2 or hi > layout.inner_width_m / 2:
            continue
        if any(lo < o_hi and o_lo < hi for o_lo, o_hi in occupied):
            continue
        occupied.append((lo, hi))
        placed.append(ProductPlacement(
            name, variant, (float(cx), float(cy), float(board_top + size[2] / 2 + 0.001)),
            _yaw_quat(0.0), "upright", f"L{level}-back-{k}"))
    return placed


def _footprint_corners(cx, cy, half_x, half_y, yaw) -> np.ndarray:
    c, s = math.cos(yaw), math.sin(yaw)
    local = np.array([[-half_x, -half_y], [half_x, -half_y], [half_x, half_y], [-half_x, half_y]])
    return local @ np.array([[c, s], [-s, c]]) + [cx, cy]


def _polygons_overlap(a: np.ndarray, b: np.ndarray) -> bool:
    """Separating-axis test for two convex polygons (N, 2)."""
    for poly in (a, b):
        for i in range(len(poly)):
            edge = poly[(i + 1) % len(poly)] - poly[i]
            axis = np.array([-edge[1], edge[0]])
            pa, pb = a @ axis, b @ axis
            if pa.max() < pb.min() or pb.max() < pa.min():
                return False
    return True


def sample_table_products(rng: np.random.Generator, split: str, options: SceneOptions,
                          layout: TableLayout) -> list[ProductPlacement]:
    """Products scattered without overlap, upright or lying, at random yaw (OCID-like clutter)."""
    count = int(rng.integers(options.tabletop_products[0], options.tabletop_products[1] + 1))
    hx, hy = layout.spawn_half_extent_m
    placements: list[ProductPlacement] = []
    footprints: list[np.ndarray] = []
    for index in range(count):
        name, variant, size = _choose_product(rng, split, 1.0)
        poses = next(c.tabletop_poses for c in CATALOG if c.name == name)
        pose_name = poses[int(rng.integers(len(poses)))]
        base = _LYING if pose_name == "lying" else None
        # Footprint half sizes along the product's own (x, y) after the pose turn.
        half = (size[0] / 2, size[2] / 2) if pose_name == "lying" else (size[0] / 2, size[1] / 2)
        height = size[1] if pose_name == "lying" else size[2]
        for _ in range(40):
            yaw = rng.uniform(-math.pi, math.pi)
            cx, cy = rng.uniform(-hx, hx), rng.uniform(-hy, hy)
            # 1.5 cm of clearance keeps spawned products from touching.
            poly = _footprint_corners(cx, cy, half[0] + 0.0075, half[1] + 0.0075, yaw)
            if not any(_polygons_overlap(poly, other) for other in footprints):
                footprints.append(poly)
                placements.append(ProductPlacement(
                    name, variant, (float(cx), float(cy), float(layout.top_z_m + height / 2 + 0.001)),
                    _yaw_quat(yaw, base), pose_name, f"table-{index}"))
                break
    return placements
