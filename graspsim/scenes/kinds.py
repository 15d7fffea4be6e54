"""Scene kinds: everything that differs between a shelf and a tabletop scene, as data.

Plans, results rows and dataset manifests store a kind's *name*
(``ScenePlan.kind``, ``Suite.kind``). Code whose behaviour depends on the kind
resolves the name once with :func:`scene_kind` and asks the object
(``kind.horizontal_approach``, ``kind.reach_lo_m``, ...) instead of comparing
strings. numpy only: the simulator turns ``kind.furniture`` into a body with
:func:`graspsim.sim.bodies.spawn_furniture`. World frame and furniture geometry
as in :mod:`graspsim.scenes.layout` (z up, metres).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from graspsim.scenes.layout import SHELF, TABLE, ShelfLayout, TableLayout
from graspsim.scenes.plan import CameraSpec, ProductPlacement
from graspsim.scenes.products import sample_shelf_products, sample_table_products

#: ``(rng, variant_split, options, furniture) -> placements``; see :mod:`graspsim.scenes.products`.
ProductSampler = Callable[..., list[ProductPlacement]]


@dataclass(frozen=True)
class ArmMount:
    """Where the Panda stands for a scene kind (world frame, z up, metres, radians).

    ``base_xyz_m``: the arm's base link origin (``panda_link0``, on top of its
    pedestal or mobile base) for a grasp at world x = 0; ``yaw_rad``: the base's
    rotation about world z (its +x axis is the arm's forward direction);
    ``slide_x_m``: ``(lo, hi)`` for a mobile base that drives along the shelf to
    the grasp's bay before the attempt (its x is the grasp point's x plus
    ``base_xyz_m[0]``, kept in this range), None for a fixed pedestal;
    ``park_x_m``: the base's x while it waits (out of the camera's way as far as
    a real installation would be); ``q_park``: the arm's 7 joint angles (rad)
    while it waits, a ready pose with the hand facing the work (shelf: found by
    inverse kinematics for the hand in front of the middle level; table: the
    hand pointing down 13 cm in from the table's near edge). Both park poses
    put the robot at the edge of the scene camera's image (8 % and 6 % of the
    pixels) without hiding any product there.
    """

    base_xyz_m: tuple[float, float, float]
    yaw_rad: float
    slide_x_m: tuple[float, float] | None
    park_x_m: float
    q_park: tuple[float, ...]

    def _T(self, x: float) -> np.ndarray:
        c, s = np.cos(self.yaw_rad), np.sin(self.yaw_rad)
        T = np.eye(4)
        T[:3, :3] = [[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]
        T[:3, 3] = (x, self.base_xyz_m[1], self.base_xyz_m[2])
        return T

    def T_world_base_for(self, grasp_point_world: np.ndarray) -> np.ndarray:
        """(4, 4) base pose for an attempt at ``grasp_point_world`` (3,)."""
        if self.slide_x_m is None:
            return self._T(self.base_xyz_m[0])
        lo, hi = self.slide_x_m
        return self._T(float(np.clip(grasp_point_world[0] + self.base_xyz_m[0], lo, hi)))

    def T_world_base_park(self) -> np.ndarray:
        """(4, 4) base pose while the arm waits between attempts."""
        return self._T(self.park_x_m)


@dataclass(frozen=True)
class SceneKind:
    """One kind of scene.

    * ``name``: the string stored in plans, rows and manifests.
    * ``env_id``: its Gymnasium environment id.
    * ``furniture``: the static geometry the products stand on (a
      :class:`ShelfLayout` or :class:`TableLayout`); the simulator spawns it.
    * ``approach_world``: (3,) unit direction, world frame, the hand moves along
      to reach a grasp.
    * ``reach_lo_m`` / ``reach_hi_m``: (3,) world corners of the box a grasp point
      must lie in (outside: ``out_of_reach``).
    * ``support_tops_m``: heights (world z, ascending) of the surfaces products
      stand on; the robot knows them, as a motion planner would.
    * ``camera``: camera placement and field of view before the per-scene jitter
      (the image size comes from :class:`~graspsim.scenes.sampling.SceneOptions`).
    * ``sample_products``: draws the product placements (:data:`ProductSampler`).
    * ``arm_mount``: where the Panda stands (:class:`ArmMount`).
    """

    name: str
    env_id: str
    furniture: ShelfLayout | TableLayout
    approach_world: tuple[float, float, float]
    reach_lo_m: tuple[float, float, float]
    reach_hi_m: tuple[float, float, float]
    support_tops_m: tuple[float, ...]
    camera: CameraSpec
    sample_products: ProductSampler
    arm_mount: ArmMount

    @property
    def horizontal_approach(self) -> bool:
        """Whether the hand enters sideways (a shelf's open front) rather than from above.

        A sideways approach starts outside the furniture, backs out before it
        lifts, and closes across roughly horizontal axes (fingers off the board).
        """
        return self.approach_world[2] == 0.0


_HALF_SHELF = SHELF.inner_width_m / 2
_HALF_TABLE = (TABLE.size_m[0] / 2, TABLE.size_m[1] / 2)

SCENE_KINDS: dict[str, SceneKind] = {k.name: k for k in (
    SceneKind(
        name="shelf", env_id="graspsim/ShelfPick-v0", furniture=SHELF,
        approach_world=(0.0, 1.0, 0.0),  # horizontally into the shelf
        # The grasp point may sit up to 3 cm in front of the boards' front edge (y = 0).
        reach_lo_m=(-_HALF_SHELF, -0.03, SHELF.board_tops_m[0]),
        reach_hi_m=(_HALF_SHELF, SHELF.depth_m, SHELF.roof_bottom_m),
        support_tops_m=SHELF.board_tops_m,
        # In front of the shelf at a mobile robot's head height, looking slightly down.
        camera=CameraSpec(eye_m=(0.0, -0.78, 0.90), target_m=(0.0, 0.15, 0.78), up=(0.0, 0.0, 1.0),
                          vertical_fov_deg=58.0),
        sample_products=sample_shelf_products,
        # A mobile base in front of the shelf that drives to 30 cm left of the grasp's bay, the arm turned
        # 60 degrees towards the shelf: a Panda cannot point its hand straight ahead at shoulder height (joint
        # 6's limit), but it reaches every level sideways-forward from there (README "The arm").
        arm_mount=ArmMount(base_xyz_m=(-0.30, -0.45, 0.40), yaw_rad=np.radians(60.0), slide_x_m=(-0.70, 0.10),
                           park_x_m=-0.60, q_park=(1.0, -0.984, -1.677, -2.64, -1.571, 3.71, -0.597)),
    ),
    SceneKind(
        name="tabletop", env_id="graspsim/TabletopPick-v0", furniture=TABLE,
        approach_world=(0.0, 0.0, -1.0),  # straight down
        reach_lo_m=(-_HALF_TABLE[0], -_HALF_TABLE[1], TABLE.top_z_m),
        reach_hi_m=(_HALF_TABLE[0], _HALF_TABLE[1], TABLE.top_z_m + 0.45),
        support_tops_m=(TABLE.top_z_m,),
        # Above the table looking straight down; image "up" is world +y (away from the robot).
        camera=CameraSpec(eye_m=(0.0, 0.0, TABLE.top_z_m + 0.72), target_m=(0.0, 0.0, TABLE.top_z_m),
                          up=(0.0, 1.0, 0.0), vertical_fov_deg=50.0),
        sample_products=sample_table_products,
        # A pedestal at the middle of the table's long side, facing across it, shoulder above the table top.
        arm_mount=ArmMount(base_xyz_m=(0.0, -0.50, TABLE.top_z_m), yaw_rad=np.pi / 2, slide_x_m=None,
                           park_x_m=0.0, q_park=(0.0, -0.6, 0.0, -2.4, 0.0, 1.8, 0.785)),
    ),
)}


def scene_kind(name: str) -> SceneKind:
    """The :class:`SceneKind` called ``name``; ValueError (listing the valid names) otherwise."""
    try:
        return SCENE_KINDS[name]
    except (KeyError, TypeError):
        raise ValueError(f"unknown scene kind {name!r}; choose one of {', '.join(SCENE_KINDS)}") from None
