"""Fixed geometry of the two workspaces (numpy only; the simulator builds bodies from it).

World frame: z up, metres. The shelf's front edge runs along world x at y = 0 and
the shelf extends towards +y; the robot stands at -y and reaches in along +y.
The table top is centred on the origin; the robot reaches top-down (-z).
What else differs per kind (approach, reach, camera) is in :mod:`graspsim.scenes.kinds`.
"""

from __future__ import annotations

from dataclasses import dataclass

#: One box of the furniture: (half extents (3,), centre (3,), part name), metres, world frame.
Box = tuple[tuple[float, float, float], tuple[float, float, float], str]


@dataclass(frozen=True)
class ShelfLayout:
    """A store shelf unit: ``len(board_tops_m)`` levels with back and side panels.

    ``inner_width_m``: free width between the side panels (along x).
    ``depth_m``: board depth from the front edge (y = 0) to the back panel.
    ``board_tops_m``: z of the top surface of each level's board.
    ``board_thickness_m``: thickness of every board, the roof and the panels.
    ``roof_bottom_m``: z of the underside of the roof.
    """

    inner_width_m: float = 0.70
    depth_m: float = 0.30
    board_tops_m: tuple[float, ...] = (0.42, 0.68, 0.94)
    board_thickness_m: float = 0.02
    roof_bottom_m: float = 1.20

    def boxes(self) -> list[Box]:
        """The shelf unit as boxes: boards, plinth, roof, back panel, two side panels (the simulator's body)."""
        t = self.board_thickness_m
        half_w = self.inner_width_m / 2
        depth = self.depth_m
        boxes = [((half_w + t, depth / 2, t / 2), (0.0, depth / 2, top - t / 2), "board") for top in self.board_tops_m]
        # A plinth under the lowest board down to the floor.
        base_top = self.board_tops_m[0] - t
        boxes.append(((half_w + t, depth / 2, base_top / 2), (0.0, depth / 2, base_top / 2), "plinth"))
        boxes.append(((half_w + t, depth / 2, t / 2), (0.0, depth / 2, self.roof_bottom_m + t / 2), "roof"))
        height = self.roof_bottom_m + t
        boxes.append(((half_w + t, t / 2, height / 2), (0.0, depth + t / 2, height / 2), "back"))
        for side in (-1, 1):
            boxes.append(((t / 2, depth / 2 + t / 2, height / 2),
                          (side * (half_w + t / 2), depth / 2 + t / 2, height / 2), "side"))
        return boxes

    def clearance_m(self, level: int) -> float:
        """Free height above the board of ``level``."""
        tops = self.board_tops_m
        ceiling = tops[level + 1] - self.board_thickness_m if level + 1 < len(tops) else self.roof_bottom_m
        return ceiling - tops[level]


@dataclass(frozen=True)
class TableLayout:
    """An OCID-like table: products cluttered in a rectangle on a flat top.

    ``top_z_m``: height of the table surface; ``size_m``: table top (x, y) extent;
    ``spawn_half_extent_m``: products are placed inside +-this (x, y) around the centre.
    """

    top_z_m: float = 0.70
    size_m: tuple[float, float] = (0.90, 0.70)
    thickness_m: float = 0.04
    spawn_half_extent_m: tuple[float, float] = (0.24, 0.17)

    def boxes(self) -> list[Box]:
        """The table as boxes: the top and four legs (the simulator's body)."""
        hx, hy = self.size_m[0] / 2, self.size_m[1] / 2
        t = self.thickness_m
        top = self.top_z_m
        boxes = [((hx, hy, t / 2), (0.0, 0.0, top - t / 2), "top")]
        leg_h = (top - t) / 2
        for sx in (-1, 1):
            for sy in (-1, 1):
                boxes.append(((0.03, 0.03, leg_h), (sx * (hx - 0.05), sy * (hy - 0.05), leg_h), "leg"))
        return boxes


SHELF = ShelfLayout()
TABLE = TableLayout()
