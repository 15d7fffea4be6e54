"""Edge-aware upsampling of det_seg's class probabilities with a colour guided filter (He, Sun and Tang, 2013).

Why: the segmentation logits come out at stride 2 of the 320 px network
input, i.e. one logit per 4x4 pixels of a 640x480 camera image, so plain
bilinear upsampling puts every product boundary up to ~2 px off; on a shelf
of small, touching products that boundary band is most of what the
segmentation IoU loses. The guided filter fits, in every window of the full
resolution RGB image, a local linear model ``q = a . I + b`` of each class
probability on the colour, so class boundaries move onto the colour edges of
the image. It adds no weights and no training.

Speed: the "fast guided filter" variant (He and Sun, 2015): the linear
coefficients are computed at ``1 / subsample`` of the image size and only
their bilinear upsampling and ``a . I + b`` run at full resolution; only the
classes that win somewhere in the coarse map are filtered.
"""

from __future__ import annotations

import numpy as np


def _box(x: np.ndarray, radius: int) -> np.ndarray:
    """Mean over a (2r+1)^2 window (reflected border), per channel; x (H, W) or (H, W, C) float32."""
    import cv2

    k = (2 * radius + 1, 2 * radius + 1)
    if x.ndim == 3 and x.shape[2] > 4:  # OpenCV filters are fastest (and always supported) up to 4 channels
        return np.concatenate([_box(x[:, :, i:i + 4], radius) for i in range(0, x.shape[2], 4)], axis=2)
    out = cv2.boxFilter(x, -1, k, normalize=True, borderType=cv2.BORDER_REFLECT)
    return out.reshape(x.shape)


def guided_filter_coefficients(guide: np.ndarray, src: np.ndarray, radius: int, eps: float
                               ) -> tuple[np.ndarray, np.ndarray]:
    """Window-averaged coefficients of the colour guided filter.

    ``guide`` (h, w, 3) float32 in [0, 1]; ``src`` (h, w, C) float32;
    ``radius`` in pixels of these arrays; ``eps`` the regulariser (colour
    variance units: larger = smoother, less edge-following). Returns
    ``mean_a`` (h, w, 3, C) and ``mean_b`` (h, w, C) such that the filtered
    output is ``sum_i mean_a[..., i, :] * guide[..., i, None] + mean_b``.
    """
    guide = np.asarray(guide, dtype=np.float32)
    src = np.asarray(src, dtype=np.float32)
    if guide.ndim != 3 or guide.shape[2] != 3 or src.ndim != 3 or src.shape[:2] != guide.shape[:2]:
        raise ValueError(f"guide must be (h, w, 3) and src (h, w, C) of the same size; got {guide.shape}, {src.shape}")
    h, w, c = src.shape
    mean_i = _box(guide, radius)  # (h, w, 3)
    mean_p = _box(src, radius)  # (h, w, C)
    # colour covariance of the guide per window, regularised: (h, w, 3, 3)
    sigma = np.empty((h, w, 3, 3), dtype=np.float32)
    for i in range(3):
        for j in range(i, 3):
            sigma[..., i, j] = sigma[..., j, i] = (_box(guide[..., i] * guide[..., j], radius)
                                                   - mean_i[..., i] * mean_i[..., j])
    sigma += np.float32(eps) * np.eye(3, dtype=np.float32)
    # covariance of colour and each class probability: (h, w, 3, C)
    cov = np.stack([_box(guide[..., i:i + 1] * src, radius) - mean_i[..., i:i + 1] * mean_p for i in range(3)],
                   axis=2)
    inv = _inverse_sym3(sigma)
    a = np.stack([sum(inv[..., i, j, None] * cov[..., j, :] for j in range(3)) for i in range(3)], axis=2)  # (h,w,3,C)
    b = mean_p - _dot3(a, mean_i)
    mean_a = _box(a.reshape(h, w, 3 * c), radius).reshape(h, w, 3, c)
    return mean_a, _box(b, radius)


def _dot3(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``sum_i a[..., i, :] * g[..., i, None]``: a (..., 3, C), g (..., 3) -> (..., C) (faster than einsum here)."""
    return a[..., 0, :] * g[..., 0, None] + a[..., 1, :] * g[..., 1, None] + a[..., 2, :] * g[..., 2, None]


def _inverse_sym3(m: np.ndarray) -> np.ndarray:
    """Inverse of a stack (..., 3, 3) of symmetric positive-definite matrices by cofactors (a batched LAPACK
    solve costs ~5x more for 3x3 systems)."""
    a, b, c = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    d, e, f = m[..., 1, 1], m[..., 1, 2], m[..., 2, 2]
    c00, c01, c02 = d * f - e * e, c * e - b * f, b * e - c * d
    c11, c12, c22 = a * f - c * c, b * c - a * e, a * d - b * b
    det = a * c00 + b * c01 + c * c02
    inv = np.stack([np.stack([c00, c01, c02], -1), np.stack([c01, c11, c12], -1), np.stack([c02, c12, c22], -1)], -2)
    return inv / det[..., None, None]


def _check_args(guide_rgb: np.ndarray, radius: int, eps: float, subsample: int) -> np.ndarray:
    rgb = np.asarray(guide_rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(f"guide_rgb must be (H, W, 3), got {rgb.shape}")
    if subsample < 1 or radius < 1 or not eps > 0:
        raise ValueError(f"need subsample >= 1, radius >= 1 and eps > 0; got {subsample}, {radius}, {eps}")
    return rgb


def _packed_coefficients(rgb: np.ndarray, probs: np.ndarray, radius: int, eps: float, subsample: int
                         ) -> tuple[np.ndarray, np.ndarray]:
    """The full-resolution guide (H, W, 3) float32 in [0, 1] and the filter coefficients on the
    ``1 / subsample`` grid packed as (h, w, 4C): ``mean_a`` (3C, colour-major) then ``mean_b`` (C)."""
    import cv2

    big_h, big_w = rgb.shape[:2]
    guide = rgb.astype(np.float32) / (255.0 if rgb.dtype == np.uint8 else 1.0)
    small_w, small_h = max(1, round(big_w / subsample)), max(1, round(big_h / subsample))
    guide_small = cv2.resize(guide, (small_w, small_h), interpolation=cv2.INTER_AREA) if subsample > 1 else guide
    p = np.asarray(probs, dtype=np.float32)
    mean_a, mean_b = guided_filter_coefficients(guide_small, _resize_channels(p, small_w, small_h),
                                                max(1, round(radius / subsample)), eps)
    return guide, np.concatenate([mean_a.reshape(small_h, small_w, 3 * p.shape[2]), mean_b], axis=2)


def _apply(coef: np.ndarray, guide: np.ndarray) -> np.ndarray:
    """Packed coefficients (..., 4C) and guide colours (..., 3) -> filter output (..., C)."""
    c = coef.shape[-1] // 4
    return _dot3(coef[..., :3 * c].reshape(*coef.shape[:-1], 3, c), guide) + coef[..., 3 * c:]


def guided_upsample(guide_rgb: np.ndarray, probs: np.ndarray, radius: int, eps: float, subsample: int = 2
                    ) -> np.ndarray:
    """Class probabilities (h, w, C), any resolution, -> (H, W, C) filtered at the guide's resolution.

    ``guide_rgb`` (H, W, 3) uint8 (or float in [0, 1]) is the camera image;
    ``radius`` is in full-resolution pixels; the coefficients are computed at
    ``(H / subsample, W / subsample)`` (1 = the exact guided filter) and
    upsampled bilinearly (the reference that :func:`guided_labels` approximates).
    """
    rgb = _check_args(guide_rgb, radius, eps, subsample)
    guide, coef = _packed_coefficients(rgb, probs, radius, eps, subsample)
    return _apply(_resize_channels(coef, rgb.shape[1], rgb.shape[0]), guide)


def _resize_channels(x: np.ndarray, width: int, height: int) -> np.ndarray:
    """Bilinear resize of (h, w, C) float32 for any C (OpenCV takes at most 512 channels per call)."""
    import cv2

    if x.shape[1] == width and x.shape[0] == height:
        return x
    parts = [cv2.resize(np.ascontiguousarray(x[:, :, i:i + 512]), (width, height), interpolation=cv2.INTER_LINEAR)
             for i in range(0, x.shape[2], 512)]
    return np.concatenate([q.reshape(height, width, -1) for q in parts], axis=2)


def _bilinear_at(maps: np.ndarray, rows: np.ndarray, cols: np.ndarray, scale: float) -> np.ndarray:
    """Bilinear samples of ``maps`` (h, w, K) float32 at full-resolution pixel centres ``rows``, ``cols`` (N,) of an
    image ``scale`` times larger (the pixel-centre convention of ``cv2.resize``; borders replicated) -> (N, K)."""
    import cv2

    n = len(rows)
    width = 256  # cv2.remap wants maps under 32767 px a side: lay the N points out as rows of 256
    pad = (-n) % width
    map_x = np.pad(((cols + 0.5) / scale - 0.5).astype(np.float32), (0, pad)).reshape(-1, width)
    map_y = np.pad(((rows + 0.5) / scale - 0.5).astype(np.float32), (0, pad)).reshape(-1, width)
    maps = np.asarray(maps, dtype=np.float32)
    parts = [cv2.remap(np.ascontiguousarray(maps[:, :, i:i + 512]), map_x, map_y, cv2.INTER_LINEAR,
                       borderMode=cv2.BORDER_REPLICATE).reshape(-1, min(512, maps.shape[2] - i))[:n]
             for i in range(0, maps.shape[2], 512)]
    return np.concatenate(parts, axis=1)


def guided_labels(guide_rgb: np.ndarray, probs: np.ndarray, radius: int, eps: float, subsample: int = 2,
                  min_cells: int = 1) -> np.ndarray:
    """(H, W) int64 argmax labels of the guided-upsampled ``probs`` (h, w, C) at the guide's resolution.

    Only classes that are the argmax of at least ``min_cells`` cells of
    ``probs`` compete (after a smoothing filter the others cannot win in
    practice, and specks of a few cells are removed downstream anyway; leaving
    them out keeps the cost proportional to the products in view). The filter
    output is evaluated on a half-resolution grid, and at full resolution only
    in the band where those labels change within 3x3 cells; elsewhere the
    half-resolution label is kept (the same labels as :func:`guided_upsample`
    on >99.9 % of the pixels of shelf images, several times cheaper).
    """
    import cv2

    rgb = _check_args(guide_rgb, radius, eps, subsample)
    p = np.asarray(probs, dtype=np.float32)
    winners, cells = np.unique(p.argmax(-1), return_counts=True)
    present = winners[cells >= min_cells] if (cells >= min_cells).any() else winners[[cells.argmax()]]
    big_h, big_w = rgb.shape[:2]
    if len(present) == 1:
        return np.full((big_h, big_w), int(present[0]), dtype=np.int64)
    guide, coef = _packed_coefficients(rgb, p[:, :, present], radius, eps, subsample)
    # labels on a grid of half the full resolution (or the coefficient grid, if that is finer) ...
    mid_w, mid_h = max(coef.shape[1], (big_w + 1) // 2), max(coef.shape[0], (big_h + 1) // 2)
    if (mid_w, mid_h) == (big_w, big_h):
        return present[_apply(_resize_channels(coef, big_w, big_h), guide).argmax(-1)].astype(np.int64)
    guide_mid = cv2.resize(guide, (mid_w, mid_h), interpolation=cv2.INTER_AREA)
    lab_mid = _apply(_resize_channels(coef, mid_w, mid_h), guide_mid).argmax(-1).astype(np.uint8)
    # ... and at full resolution only where those labels change within 3x3 cells (the class boundaries)
    kernel = np.ones((3, 3), np.uint8)
    band_mid = (cv2.dilate(lab_mid, kernel) != cv2.erode(lab_mid, kernel)).astype(np.uint8)
    labels = cv2.resize(lab_mid, (big_w, big_h), interpolation=cv2.INTER_NEAREST)
    band = cv2.resize(band_mid, (big_w, big_h), interpolation=cv2.INTER_NEAREST).astype(bool)
    rows, cols = np.nonzero(band)
    if len(rows):
        coef_at = _bilinear_at(coef, rows, cols, big_w / coef.shape[1])  # (N, 4C)
        labels[rows, cols] = _apply(coef_at, guide[rows, cols]).argmax(-1)
    return present[labels].astype(np.int64)
