"""The network's view of one product: its crop box resampled to a square RGB-D + mask tensor (numpy + OpenCV).

Training (ground-truth instance masks, jittered boxes) and the policy (clip_sam's
mask) both go through :func:`crop_input`, so the two see the same thing.
"""

from __future__ import annotations

import cv2
import numpy as np

#: Channels of a crop: R, G, B, relative depth, mask.
CHANNELS = 5
#: Depth is given relative to the product's median depth, in units of this many metres (a product is 5-25 cm deep).
DEPTH_UNIT_M = 0.1


def _affine(box: tuple[float, float, float], size: int) -> np.ndarray:
    x0, y0, side = box
    s = size / side
    # pixel centres: full-image pixel c maps to (c + 0.5) * s - 0.5 - x0 * s
    return np.array([[s, 0.0, (0.5 - x0) * s - 0.5], [0.0, s, (0.5 - y0) * s - 0.5]], dtype=np.float64)


def crop_input(rgb: np.ndarray, depth_m: np.ndarray, mask: np.ndarray, box: tuple[float, float, float],
               size: int) -> np.ndarray:
    """(5, size, size) float32: ``box`` ((x0, y0, side) full-image pixels) of the frame, resampled.

    ``rgb`` (H, W, 3) uint8 -> ``(v / 255 - 0.5) / 0.25``; ``depth_m`` (H, W) metres (0 = none) -> depth minus the
    median depth of ``mask``'s pixels, over :data:`DEPTH_UNIT_M`, clipped to [-3, 3] (0 where there is none);
    ``mask`` (H, W) bool, the product's pixels -> 0 / 1. Outside the image everything is 0.
    """
    m = _affine(box, size)
    dsize = (int(size), int(size))
    img = cv2.warpAffine(np.ascontiguousarray(rgb[..., :3]), m, dsize, flags=cv2.INTER_AREA
                         if box[2] > size else cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    depth = np.nan_to_num(np.asarray(depth_m, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    d = cv2.warpAffine(depth, m, dsize, flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
    mk = warp_labels(mask, box, size)
    on = mask & (depth > 0)
    z0 = float(np.median(depth[on])) if on.any() else 1.0
    rel = np.where(d > 0, np.clip((d - z0) / DEPTH_UNIT_M, -3.0, 3.0), 0.0)
    out = np.empty((CHANNELS, size, size), dtype=np.float32)
    out[:3] = (img.transpose(2, 0, 1).astype(np.float32) / 255.0 - 0.5) / 0.25
    out[3] = rel
    out[4] = mk
    return out


def warp_labels(labels: np.ndarray, box: tuple[float, float, float], size: int) -> np.ndarray:
    """(size, size) uint8: ``box`` ((x0, y0, side) pixels of ``labels``) of the label image ``labels`` ((H, W)
    bool or integers < 256), resampled by nearest neighbour (0 outside the image)."""
    return cv2.warpAffine(np.asarray(labels).astype(np.uint8), _affine(box, size), (int(size), int(size)),
                          flags=cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def labels_to_frame(crop_labels: np.ndarray, box: tuple[float, float, float], shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8: the inverse of :func:`warp_labels`: a (S, S) label crop of ``box`` put back into an
    (H, W) = ``shape`` frame by nearest neighbour (0 outside the box)."""
    size = crop_labels.shape[0]
    return cv2.warpAffine(np.asarray(crop_labels).astype(np.uint8), _affine(box, size), (int(shape[1]), int(shape[0])),
                          flags=cv2.INTER_NEAREST | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)
