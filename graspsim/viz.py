"""Drawing grasps and masks on RGB images (OpenCV), and saving them as PNG.

All images here are RGB (H, W, 3) uint8, not OpenCV's usual BGR; colours are RGB
triples. Every drawing function returns a new image and leaves its input alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterable, Sequence

import cv2
import numpy as np

from graspsim.grasping.rect_geometry import jaw_plates, rect_axes
from graspsim.types import GraspRect

BLUE = (0, 0, 255)
RED = (255, 0, 0)
GREEN = (0, 255, 0)


def _check_rgb(rgb: np.ndarray) -> np.ndarray:
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise ValueError(f"expected an (H, W, 3) uint8 RGB image, got shape {arr.shape} dtype {arr.dtype}")
    return arr


def _int_points(points: np.ndarray) -> np.ndarray:
    return np.round(np.asarray(points, dtype=np.float64)).astype(np.int32).reshape(-1, 1, 2)


def draw_grasp(rgb: np.ndarray, rect: GraspRect, *, thickness: int = 2, jaw_color: tuple[int, int, int] = BLUE,
               line_color: tuple[int, int, int] = RED) -> np.ndarray:
    """A copy of ``rgb`` (H, W, 3 uint8 RGB) with the grasp ``rect`` drawn on it.

    The two jaw plates are filled ``jaw_color`` (blue) rectangles ``h`` long and
    ``2 * thickness + 1`` px thick, lying just outside the opening at both ends of
    the closing axis (``w`` is the gap between the finger pads); a ``line_color``
    (red) line ``thickness`` px wide joins them through the centre along the
    closing axis.
    """
    out = _check_rgb(rgb).copy()
    thickness = max(1, int(thickness))
    plate_px = 2 * thickness + 1
    u, _ = rect_axes(rect.theta)
    c = np.array([rect.x, rect.y], dtype=np.float64)
    p0, p1 = (tuple(int(v) for v in np.round(c + s * (rect.w / 2) * u)) for s in (-1, 1))
    cv2.line(out, p0, p1, tuple(int(v) for v in line_color), thickness, cv2.LINE_8)
    for plate in jaw_plates(rect, plate_px):
        cv2.fillConvexPoly(out, _int_points(plate), tuple(int(v) for v in jaw_color), cv2.LINE_8)
    return out


def draw_grasps(rgb: np.ndarray, rects: Iterable[GraspRect], *, thickness: int = 1) -> np.ndarray:
    """A copy of ``rgb`` with several grasps drawn (e.g. a policy's candidates), later ones on top."""
    out = _check_rgb(rgb).copy()
    for rect in rects:
        out = draw_grasp(out, rect, thickness=thickness)
    return out


def overlay_mask(rgb: np.ndarray, mask: np.ndarray, color: Sequence[int] = GREEN, alpha: float = 0.4) -> np.ndarray:
    """A copy of ``rgb`` with ``mask`` (H, W bool) pixels blended towards ``color``.

    ``alpha`` in [0, 1]: 0 leaves the image unchanged, 1 paints the mask solid.
    """
    out = _check_rgb(rgb).copy()
    mask = np.asarray(mask).astype(bool)
    if mask.shape != out.shape[:2]:
        raise ValueError(f"mask shape {mask.shape} does not match image shape {out.shape[:2]}")
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    colour = np.asarray(color, dtype=np.float32).reshape(3)
    blended = (1.0 - alpha) * out[mask].astype(np.float32) + alpha * colour
    out[mask] = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    return out


def save_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write ``rgb`` ((H, W, 3) RGB or (H, W) grey, uint8) to ``path`` as PNG; returns the path.

    Creates missing parent folders. Raises ``OSError`` naming the path if OpenCV
    cannot write the file.
    """
    path = Path(path)
    arr = np.asarray(rgb)
    if arr.dtype != np.uint8 or not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] == 3)):
        raise ValueError(f"expected an (H, W, 3) or (H, W) uint8 image, got shape {arr.shape} dtype {arr.dtype}")
    if path.suffix.lower() != ".png":
        raise ValueError(f"save_png writes PNG files; {path} does not end in .png")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise OSError(f"cannot create folder {path.parent} for {path}: {exc}") from exc
    image = cv2.cvtColor(arr, cv2.COLOR_RGB2BGR) if arr.ndim == 3 else arr
    try:
        ok = cv2.imwrite(str(path), image)
    except cv2.error as exc:
        raise OSError(f"could not write PNG {path}: {exc}") from exc
    if not ok:
        raise OSError(f"could not write PNG {path} (cv2.imwrite failed; is the folder writable?)")
    return path
