"""What CLIP and SAM see: square image windows sized from depth, and the images' normalisation.

A window is ``(x0, y0, side)`` in image pixels (float; may extend past the
image, the outside is zero-padded). Sizes come from metric depth so that a
window covers a physical extent (e.g. 0.30 m, more than the largest catalog
product, 0.21 m) whatever the distance: ``side_px = extent_m * fx / z_m``.
Training (:mod:`.train_data`) and inference (:mod:`.pipeline`, :mod:`.segment`)
use these same functions; this module imports neither torch nor training code.
"""

from __future__ import annotations

import cv2
import numpy as np

MIN_SIDE_PX = 48.0
ZOOM_EXTENT_M = 0.45   # physical side of the Grad-CAM zoom window
POINT_EXTENT_M = 0.30  # physical side of the SAM window around a point prompt (> largest product, 0.21 m)

# CLIP's normalisation (of 0-1 pixel values); SAM's (and ImageNet's) on 0-255 values and on 0-1 values.
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073], dtype=np.float32)
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711], dtype=np.float32)
SAM_MEAN_255 = np.array([123.675, 116.28, 103.53], dtype=np.float32)
SAM_STD_255 = np.array([58.395, 57.12, 57.375], dtype=np.float32)
SAM_MEAN = SAM_MEAN_255 / 255.0
SAM_STD = SAM_STD_255 / 255.0


def depth_at(depth_m: np.ndarray, xy: np.ndarray, radius: int = 3) -> float:
    """Median valid depth (m) in a ``(2r+1)^2`` patch around pixel ``xy`` (x, y); NaN if none."""
    h, w = depth_m.shape
    x, y = int(round(float(xy[0]))), int(round(float(xy[1])))
    x0, x1 = max(0, x - radius), min(w, x + radius + 1)
    y0, y1 = max(0, y - radius), min(h, y + radius + 1)
    patch = np.asarray(depth_m[y0:y1, x0:x1], dtype=np.float64)
    good = patch[np.isfinite(patch) & (patch > 0)]
    return float(np.median(good)) if good.size else float("nan")


def centred_window(cx: float, cy: float, side: float) -> tuple[float, float, float]:
    return (float(cx) - side / 2.0, float(cy) - side / 2.0, float(side))


def box_window(box_xyxy: np.ndarray, scale: float = 1.5, pad_px: float = 8.0) -> tuple[float, float, float]:
    """Square window centred on a box, side = ``scale * max(box w, box h) + 2 pad``."""
    x0, y0, x1, y1 = (float(v) for v in box_xyxy)
    side = max(MIN_SIDE_PX, scale * max(x1 - x0, y1 - y0) + 2.0 * pad_px)
    return centred_window((x0 + x1) / 2.0, (y0 + y1) / 2.0, side)


def crop(image: np.ndarray, window: tuple[float, float, float], size: int,
         interpolation: int = cv2.INTER_LINEAR) -> np.ndarray:
    """Resample ``window`` of ``image`` (H, W[, C]) to ``(size, size[, C])``; outside pixels are 0."""
    x0, y0, side = window
    s = size / side
    # Affine map image -> crop: u = (x - x0) * s, with pixel centres handled as cv2 does.
    M = np.array([[s, 0.0, -x0 * s + 0.5 * s - 0.5], [0.0, s, -y0 * s + 0.5 * s - 0.5]], dtype=np.float64)
    if interpolation == cv2.INTER_LINEAR and s < 0.7:
        interpolation = cv2.INTER_AREA
    if interpolation == cv2.INTER_AREA:
        # warpAffine has no area filter: blur first to the target sampling rate.
        k = max(1, int(round(1.0 / s)))
        if k > 1 and image.dtype != bool:
            image = cv2.blur(image, (k, k))
        interpolation = cv2.INTER_LINEAR
    return cv2.warpAffine(image, M, (size, size), flags=interpolation, borderMode=cv2.BORDER_CONSTANT, borderValue=0)


def to_window(xy: np.ndarray, window: tuple[float, float, float], size: int) -> np.ndarray:
    """Image pixel coordinates (..., 2) -> crop pixel coordinates (continuous, pixel-centre convention)."""
    x0, y0, side = window
    return (np.asarray(xy, dtype=np.float64) + 0.5 - np.array([x0, y0])) * (size / side) - 0.5


def box_to_window(box_xyxy: np.ndarray, window: tuple[float, float, float], size: int) -> np.ndarray:
    """A box in image pixel-edge coordinates (x0, y0, x1, y1) -> the same box in crop coordinates (4,)."""
    x0, y0, side = window
    return (np.asarray(box_xyxy, dtype=np.float64).reshape(4) - np.array([x0, y0, x0, y0])) * (size / side)


def paste(map_crop: np.ndarray, window: tuple[float, float, float], out_hw: tuple[int, int]) -> np.ndarray:
    """Resample a (size, size) float map of ``window`` back onto the (H, W) image; 0 outside the window."""
    size = map_crop.shape[0]
    x0, y0, side = window
    s = size / side
    M = np.array([[s, 0.0, -x0 * s + 0.5 * s - 0.5], [0.0, s, -y0 * s + 0.5 * s - 0.5]], dtype=np.float64)
    h, w = out_hw
    return cv2.warpAffine(np.asarray(map_crop, dtype=np.float32), M, (w, h),
                          flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP, borderMode=cv2.BORDER_CONSTANT,
                          borderValue=0)


def depth_window(depth_m: np.ndarray, K: np.ndarray, xy: np.ndarray, extent_m: float,
                 default_frac: float) -> tuple[float, float, float]:
    """Window centred on ``xy`` covering ``extent_m`` at its depth (``extent_m * fx / z`` px; ``default_frac`` of
    the image's larger side where the depth is invalid), the side clamped to ``[MIN_SIDE_PX, max(H, W)]``."""
    h, w = depth_m.shape
    z = depth_at(depth_m, xy)
    side = extent_m * float(K[0, 0]) / z if np.isfinite(z) and z > 0 else default_frac * max(h, w)
    return centred_window(float(xy[0]), float(xy[1]), float(np.clip(side, MIN_SIDE_PX, max(h, w))))


def point_window(depth_m: np.ndarray, K: np.ndarray, xy: np.ndarray,
                 extent_m: float = POINT_EXTENT_M) -> tuple[float, float, float]:
    """SAM window around a point prompt: :data:`POINT_EXTENT_M` at the point's depth."""
    return depth_window(depth_m, K, xy, extent_m, default_frac=0.4)


def crop_box(box: np.ndarray, pad: float = 0.1) -> tuple[float, float, float]:
    """Square window around an instance box, ``pad`` of its larger side on each side."""
    return box_window(box, scale=1.0 + 2 * pad, pad_px=2.0)


def normalise(rgb_u8: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 -> (3, H, W) float32 normalised (``mean`` / ``std`` of 0-1 values)."""
    x = rgb_u8.astype(np.float32)
    x /= 255.0  # in place: the same float32 operations as (x / 255 - mean) / std, without three temporaries
    x -= mean
    x /= std
    return x.transpose(2, 0, 1)


def squash(image: np.ndarray, size: int, interpolation=cv2.INTER_AREA) -> np.ndarray:
    """Resize the whole image to ``size x size`` (aspect not kept: CLIP sees the full frame)."""
    return cv2.resize(image, (size, size), interpolation=interpolation)
