"""A grasp on a product as five discrete tokens, and back (numpy only).

Token order (:data:`TOKEN_TYPES`), each an index into its own vocabulary:

0. ``part``: the part word, an index of :data:`graspsim.assets.parts.PART_WORDS`
   (one global vocabulary: "cap" is the same token on a ketchup bottle and a
   water bottle, which is what lets a held-out (class, part) pair compose a
   known part with a known product);
1. ``angle``: the closing axis's angle theta (image frame, radians, as in
   :class:`~graspsim.types.GraspRect`) in ``n_angle`` bins of ``pi / n_angle``
   (a rectangle and the same one turned by pi are the same grasp). With
   ``angle_centred`` (the default) bin ``i`` is centred on ``-pi/2 + i pi / n_angle``
   and wraps around, so the horizontal and vertical closing axes (the commonest
   grasps on a shelf) have bins of their own; without it (checkpoints before
   it) bin ``i`` is ``[-pi/2 + i pi/n, -pi/2 + (i+1) pi/n)`` and a horizontal
   axis lies on the edge between two bins, where a grasp tilted by a whole bin
   scores as well as a level one;
2. ``opening``: the jaw opening ``w`` as a fraction of the crop side, ``n_open``
   bins over ``[0, open_max)`` (the last bin takes everything wider);
3. ``x``, 4. ``y``: the rectangle centre in ``n_pos`` bins over the crop box.

The crop box (:func:`crop_box`) is the square ``(x0, y0, side)`` in full-image
pixels around the product's mask, so every token except the part is relative
to the product as the network sees it; decoding needs the same box and the
finger size ``h`` (pixels, from depth: :func:`finger_px`). Decoding takes bin
centres: a rectangle round-trips within half a bin of each token.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from graspsim.assets.parts import PART_WORDS
from graspsim.types import GraspRect

TOKEN_TYPES = ("part", "angle", "opening", "x", "y")

#: Box margin on each side, as a fraction of the mask's longer side: fingers close on the product's outline, so
#: the box must show some background around it.
CROP_MARGIN = 0.15
#: The smallest crop side in pixels (a product a few pixels wide still gets a crop the decoder can place a grasp in).
MIN_CROP_PX = 24.0


@dataclass(frozen=True)
class TokenSpec:
    """The vocabulary sizes of the five token types (see the module docstring)."""

    n_angle: int = 12
    n_open: int = 10
    open_max: float = 1.25
    n_pos: int = 20
    angle_centred: bool = True

    def angle_bin(self, theta: float) -> int:
        """The angle token of closing-axis angle ``theta`` (radians, any value: taken modulo pi)."""
        width = math.pi / self.n_angle
        if self.angle_centred:
            return int(math.floor((theta + math.pi / 2) / width + 0.5)) % self.n_angle
        return _bin((theta + math.pi / 2) % math.pi - math.pi / 2, -math.pi / 2, math.pi / 2, self.n_angle)

    def angle_of(self, index: int) -> float:
        """The angle (radians) that angle token ``index`` decodes to: its bin's centre."""
        width = math.pi / self.n_angle
        return -math.pi / 2 + (int(index) + (0.0 if self.angle_centred else 0.5)) * width

    @property
    def sizes(self) -> tuple[int, int, int, int, int]:
        """Vocabulary size per token type, in :data:`TOKEN_TYPES` order."""
        return (len(PART_WORDS), self.n_angle, self.n_open, self.n_pos, self.n_pos)

    def check(self) -> None:
        for name in ("n_angle", "n_open", "n_pos"):
            if int(getattr(self, name)) < 2:
                raise ValueError(f"{name} must be >= 2, got {getattr(self, name)}")
        if not self.open_max > 0:
            raise ValueError(f"open_max must be > 0, got {self.open_max}")


def crop_box(mask: np.ndarray, margin: float = CROP_MARGIN) -> tuple[float, float, float]:
    """``(x0, y0, side)`` full-image pixels: the square around the bounding box of ``mask`` ((H, W) bool), grown
    by ``margin`` x its longer side on each side (at least :data:`MIN_CROP_PX`). It may reach outside the image.
    ValueError for an empty mask."""
    rows, cols = np.nonzero(mask)
    if rows.size == 0:
        raise ValueError("empty mask: no crop box")
    return box_around(cols.min(), rows.min(), cols.max() + 1, rows.max() + 1, margin)


def box_around(x0: float, y0: float, x1: float, y1: float, margin: float = CROP_MARGIN) -> tuple[float, float, float]:
    """The crop box (see :func:`crop_box`) of the pixel box ``[x0, x1) x [y0, y1)``."""
    side = max(x1 - x0, y1 - y0)
    side = max(MIN_CROP_PX, side * (1.0 + 2.0 * margin))
    cx, cy = (x0 + x1) / 2.0, (y0 + y1) / 2.0
    return float(cx - side / 2.0), float(cy - side / 2.0), float(side)


def _bin(value: float, lo: float, hi: float, n: int) -> int:
    return int(np.clip(math.floor((value - lo) / (hi - lo) * n), 0, n - 1))


def _centre(index: int, lo: float, hi: float, n: int) -> float:
    return lo + (int(index) + 0.5) * (hi - lo) / n


def rect_to_tokens(rect: GraspRect, part: str | int, box: tuple[float, float, float],
                   spec: TokenSpec = TokenSpec()) -> np.ndarray:
    """(5,) int64 tokens of ``rect`` (full-image pixels) on ``part`` (a part word or its index) in crop ``box``.
    Values outside the box or the opening range take the nearest bin."""
    part_id = PART_WORDS.index(part) if isinstance(part, str) else int(part)
    x0, y0, side = box
    return np.array([part_id,
                     spec.angle_bin(rect.normalized().theta),
                     _bin(rect.w / side, 0.0, spec.open_max, spec.n_open),
                     _bin((rect.x - x0) / side, 0.0, 1.0, spec.n_pos),
                     _bin((rect.y - y0) / side, 0.0, 1.0, spec.n_pos)], dtype=np.int64)


def tokens_to_rect(tokens, box: tuple[float, float, float], h_px: float,
                   spec: TokenSpec = TokenSpec()) -> tuple[str, GraspRect]:
    """``(part word, rectangle in full-image pixels)`` of ``tokens`` (5 ints) in crop ``box``; ``h_px``: the
    finger size in pixels (:func:`finger_px`). Each value is its bin's centre."""
    part_id, a, o, bx, by = (int(t) for t in np.asarray(tokens).reshape(-1)[:5])
    x0, y0, side = box
    rect = GraspRect(x=x0 + side * _centre(bx, 0.0, 1.0, spec.n_pos), y=y0 + side * _centre(by, 0.0, 1.0, spec.n_pos),
                     w=side * _centre(o, 0.0, spec.open_max, spec.n_open), h=float(h_px),
                     theta=spec.angle_of(a))
    return PART_WORDS[part_id], rect.normalized()


def bin_widths(box: tuple[float, float, float], spec: TokenSpec = TokenSpec()) -> dict[str, float]:
    """Each continuous token's bin width: ``angle`` radians, ``opening`` / ``x`` / ``y`` pixels for ``box``."""
    side = box[2]
    return {"angle": math.pi / spec.n_angle, "opening": side * spec.open_max / spec.n_open,
            "x": side / spec.n_pos, "y": side / spec.n_pos}


def finger_px(depth_m: np.ndarray, x: float, y: float, fx: float, finger_width_m: float,
              mask: np.ndarray | None = None, radius: int = 4) -> float:
    """The finger pad's size in pixels at pixel ``(x, y)``: ``finger_width_m * fx / z``, with ``z`` the median
    valid depth (metres) within ``radius`` px there (on ``mask`` when it has pixels there; else the mask's median,
    else 1 m). The planner sizes its rectangles' ``h`` the same way."""
    hgt, wid = depth_m.shape
    c, r = int(round(x)), int(round(y))
    r0, r1, c0, c1 = max(0, r - radius), min(hgt, r + radius + 1), max(0, c - radius), min(wid, c + radius + 1)
    window = depth_m[r0:r1, c0:c1]
    valid = np.isfinite(window) & (window > 0)
    if mask is not None:
        on = valid & mask[r0:r1, c0:c1]
        valid = on if on.any() else valid
    z = float(np.median(window[valid])) if valid.any() else float("nan")
    if not math.isfinite(z) and mask is not None and mask.any():
        d = depth_m[mask & np.isfinite(depth_m) & (depth_m > 0)]
        z = float(np.median(d)) if d.size else float("nan")
    return float(finger_width_m * fx / (z if math.isfinite(z) and z > 0 else 1.0))
