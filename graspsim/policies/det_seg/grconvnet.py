"""A GR-ConvNet-style pixel-wise grasp network (Kumra et al., IROS 2020), CPU scale.

RGB-D in (letterboxed to ``input_size``, see :mod:`targets`), four maps out at
the input resolution: grasp quality, ``cos 2 theta``, ``sin 2 theta`` and the
jaw opening ``w / width_scale``. Architecture as GR-ConvNet: a 9x9 conv, two
strided 4x4 convs, ``num_residual`` residual blocks, two transposed convs back
up, a 9x9 conv and one 2x2-conv output head per map (channels scaled down).
The loss is GR-ConvNet's: smooth L1 on all four maps.

Decoding (:func:`decode_maps`, as GR-ConvNet's ``detect_grasps``): the quality
map is smoothed with a Gaussian (sigma ``blur_sigma``), local maxima at least
``min_distance`` px apart and above ``quality_threshold`` are the grasps, each
with the angle ``0.5 atan2(sin, cos)`` and opening of its pixel. GR-ConvNet has
no finger-size output; ``h`` is set to ``finger_px`` (network pixels; the
trainer stores the median finger size of the training grasps there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from graspsim.policies.det_seg.checkpoint import DictConfig


@dataclass
class GrConvNetConfig(DictConfig):
    """Sizes and decoding settings of :class:`GrConvNet` (JSON-able)."""

    input_size: int = 224
    channels: tuple[int, ...] = (12, 32, 64)  # GR-ConvNet: (32, 64, 128)
    num_residual: int = 3
    use_depth: bool = True
    use_rgb: bool = True
    width_scale: float = 60.0  # network px; width map = w / width_scale
    finger_px: float = 8.0  # h of decoded rectangles (network px)
    blur_sigma: float = 2.0
    min_distance: int = 4
    quality_threshold: float = 0.2
    max_detections: int = 20

    @property
    def in_channels(self) -> int:
        return 3 * int(self.use_rgb) + int(self.use_depth)


class ResidualBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.bn1(self.conv1(x)))
        return x + self.bn2(self.conv2(y))


class GrConvNet(nn.Module):
    """(B, C, S, S) RGB-D (see :func:`prepare_input`) -> dict of (B, 1, S, S) maps ``quality``, ``cos``, ``sin``, ``width``."""

    def __init__(self, config: GrConvNetConfig | None = None):
        super().__init__()
        self.config = cfg = config or GrConvNetConfig()
        c1, c2, c3 = cfg.channels
        if cfg.in_channels == 0:
            raise ValueError("GR-ConvNet needs RGB, depth or both")

        def cbr(cin, cout, k, s, p):
            return nn.Sequential(nn.Conv2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        def tbr(cin, cout, k, s, p, op):
            return nn.Sequential(nn.ConvTranspose2d(cin, cout, k, s, p, output_padding=op, bias=False),
                                 nn.BatchNorm2d(cout), nn.ReLU(inplace=True))

        self.down = nn.Sequential(cbr(cfg.in_channels, c1, 9, 1, 4), cbr(c1, c2, 4, 2, 1), cbr(c2, c3, 4, 2, 1))
        self.res = nn.Sequential(*[ResidualBlock(c3) for _ in range(cfg.num_residual)])
        self.up = nn.Sequential(tbr(c3, c2, 4, 2, 1, 0), tbr(c2, c1, 4, 2, 1, 0), nn.Conv2d(c1, c1, 9, 1, 4))
        self.heads = nn.ModuleDict({k: nn.Conv2d(c1, 1, 2, padding=1) for k in ("quality", "cos", "sin", "width")})

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        size = x.shape[-2:]
        f = self.up(self.res(self.down(x)))
        return {k: h(f)[..., : size[0], : size[1]] for k, h in self.heads.items()}

    def loss(self, out: dict[str, torch.Tensor], maps: dict[str, torch.Tensor],
             valid: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Smooth L1 on the four maps (``maps[k]``: (B, 1, S, S)); ``valid`` (B, 1, S, S) bool masks padding out."""
        parts = {}
        for k in ("quality", "cos", "sin", "width"):
            loss = F.smooth_l1_loss(out[k], maps[k], reduction="none")
            parts[k] = loss[valid].mean() if valid is not None else loss.mean()
        parts["total"] = sum(parts.values())
        return {k: (v if k == "total" else v.detach()) for k, v in parts.items()}


def prepare_input(rgb: np.ndarray | torch.Tensor, depth_m: np.ndarray | torch.Tensor,
                  cfg: GrConvNetConfig) -> torch.Tensor:
    """Letterboxed (S, S, 3) uint8 / (3, S, S) float RGB and (S, S) metres depth -> (C, S, S) float32 input.

    RGB: [0, 1] minus 0.5. Depth (GR-ConvNet): minus the mean of the valid
    (positive) depths, clipped to +-0.5 m; invalid pixels 0.
    """
    parts = []
    if cfg.use_rgb:
        t = torch.as_tensor(np.asarray(rgb) if not torch.is_tensor(rgb) else rgb)
        if t.ndim == 3 and t.shape[-1] == 3 and t.shape[0] != 3:
            t = t.permute(2, 0, 1)
        t = t.float()
        if t.max() > 1.5:
            t = t / 255.0
        parts.append(t - 0.5)
    if cfg.use_depth:
        d = torch.as_tensor(np.asarray(depth_m) if not torch.is_tensor(depth_m) else depth_m).float()
        d = d.reshape(1, *d.shape[-2:])
        valid = d > 0
        mean = d[valid].mean() if valid.any() else torch.tensor(0.0)
        parts.append(torch.where(valid, (d - mean).clamp(-0.5, 0.5), torch.zeros_like(d)))
    return torch.cat(parts, 0)


def decode_maps(maps: dict[str, np.ndarray], cfg: GrConvNetConfig,
                valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(S, S) maps of one image -> ``(rects (K, 5) network px, scores (K,))``, best first.

    Peaks of the Gaussian-smoothed quality map (local maxima in a
    ``(2 min_distance + 1)`` window, above ``quality_threshold``; when none
    passes the threshold the global maximum is still returned, so there is
    always a top-1 prediction). ``valid``: optional (S, S) bool mask of pixels
    allowed as centres (the letterbox's unpadded area).
    """
    import cv2

    q = np.asarray(maps["quality"], dtype=np.float32)
    if cfg.blur_sigma > 0:
        k = int(2 * math.ceil(3 * cfg.blur_sigma) + 1)
        q = cv2.GaussianBlur(q, (k, k), cfg.blur_sigma)
    if valid is not None:
        q = np.where(valid, q, -np.inf).astype(np.float32)
    k = 2 * cfg.min_distance + 1
    dil = cv2.dilate(q, np.ones((k, k), np.uint8))
    peaks = (q >= dil) & (q > cfg.quality_threshold) & np.isfinite(q)
    ys, xs = np.nonzero(peaks)
    if len(ys) == 0:
        flat = int(np.nanargmax(np.where(np.isfinite(q), q, -1e9)))
        ys, xs = np.array([flat // q.shape[1]]), np.array([flat % q.shape[1]])
    scores = q[ys, xs]
    order = np.argsort(-scores, kind="stable")[: cfg.max_detections]
    ys, xs, scores = ys[order], xs[order], scores[order]
    theta = 0.5 * np.arctan2(np.asarray(maps["sin"])[ys, xs], np.asarray(maps["cos"])[ys, xs])
    theta = (theta + math.pi / 2) % math.pi - math.pi / 2
    width = np.maximum(np.asarray(maps["width"])[ys, xs] * cfg.width_scale, 1.0)
    rects = np.stack([xs.astype(np.float64), ys.astype(np.float64), width,
                      np.full(len(xs), cfg.finger_px), theta], axis=1)
    return rects.astype(np.float64), scores.astype(np.float64)
