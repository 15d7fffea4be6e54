"""Fixed geometry of the two workspaces (numpy only; the simulator builds bodies from it).

World frame: z up, metres. The shelf's front edge runs along world x at y = 0 and
the shelf extends towards +y; the robot stands at -y and reaches in along +y.
The table top is centred on the origin; the robot reaches top-down (-z).
What else differs per kind (approach, reach, camera) is in :mod:`graspsim.scenes.kinds`.
"""

from __future__ import annotations

from dataclasses import dataclass


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


SHELF = ShelfLayout()
TABLE = TableLayout()
