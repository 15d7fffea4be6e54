"""The shape prior: which product class a segmented mask is, from its 3-D shape alone (depth, no colour).

CLIP tells products apart by how they look, so a flavour whose label it has never seen (the unseen variants: new
colours, a new pattern, the layout mirrored) fools it; a product's size and shape do not change with its label.
Every RGB-D frame says how large the masked surface is: :func:`shape_features` back-projects the mask's pixels
with their depth into the world frame and measures it (gravity-aligned, so "how tall" means the same from every
camera). :class:`ShapePrior`, a small MLP trained on rendered scenes' instance masks (``graspsim train shape``,
:mod:`.train_shape`), turns those numbers into class probabilities; the clip_sam pipeline multiplies them with
CLIP's when it verifies its candidate masks (:mod:`.pipeline`). Nothing privileged is read: the mask is SAM's,
depth and camera pose are part of every observation.

Features (:data:`FEATURE_NAMES`, float32), from the mask's pixels eroded by one pixel (edge pixels mix the
product's depth with what is behind it) with valid depth, as world points (metres):

* ``log_height``: log of the world-z extent (3rd to 97th percentile, robust to stray pixels);
* ``log_h_major`` / ``log_h_minor``: log extents along the principal axes of the points' horizontal (x, y)
  spread;
* ``log_e1`` .. ``log_e3``: log extents along the 3-D principal axes, largest first;
* ``log_area``: log of the visible surface in m^2 (each pixel covers (z / fx) x (z / fy) at depth z);
* ``fill``: mask pixels / area of the mask's minimum-area rectangle (boxes ~1, cylinders seen from above less);
* ``solidity``: mask area / its convex hull's area;
* ``view_down``: cosine between the viewing ray at the mask's centre and straight down (0: seen from the side,
  as on a shelf; towards 1 from above), since what is visible of a product depends on it;
* ``shelf``: 1 for shelf scenes, 0 for tabletop scenes.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn as nn

from graspsim.masks import mask_bounds

FEATURE_NAMES = ("log_height", "log_h_major", "log_h_minor", "log_e1", "log_e2", "log_e3", "log_area", "fill",
                 "solidity", "view_down", "shelf")
N_FEATURES = len(FEATURE_NAMES)
#: Features that are logs of a length (a size change by a factor s adds log s to each); ``log_area`` adds 2 log s.
LOG_LENGTHS = slice(0, 6)
LOG_AREA = 6
#: Masks with fewer usable pixels than this say too little about their shape: no features (the prior abstains).
MIN_PIXELS = 40
_LO, _HI = 3.0, 97.0  # percentiles of the extents
_MIN_EXTENT_M = 1e-3  # extents below a millimetre (a flat visible face's thickness) are clamped before the log

CONFIG_FILE = "config.json"


def _extents(points: np.ndarray) -> np.ndarray:
    """(D,) robust extents (97th - 3rd percentile) of ``points`` (N, D) along their principal axes, largest first."""
    centred = points - points.mean(axis=0)
    _, axes = np.linalg.eigh(np.cov(centred.T))
    proj = centred @ axes
    lo, hi = np.percentile(proj, [_LO, _HI], axis=0)
    return np.sort(hi - lo)[::-1]


def shape_features(mask: np.ndarray, depth_m: np.ndarray, K: np.ndarray, T_world_camera: np.ndarray,
                   scene_kind: str) -> np.ndarray | None:
    """(:data:`N_FEATURES`,) float32 features of ``mask`` (H, W) bool (the module docstring), or None when fewer
    than :data:`MIN_PIXELS` of its pixels have a depth.

    ``depth_m`` (H, W) metric depth along the camera z axis (0 or non-finite: none); ``K`` (3, 3) intrinsics;
    ``T_world_camera`` (4, 4), OpenCV camera axes; ``scene_kind`` ``"shelf"`` or ``"tabletop"``.
    """
    mask = np.asarray(mask, dtype=bool)
    bounds = mask_bounds(mask, margin=1)  # the work is done on the mask's rectangle: the same result, faster
    if bounds is None:
        return None
    sub = mask[bounds]
    inner = cv2.erode(sub.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
    if inner.sum() < MIN_PIXELS:  # thin masks: keep their edge pixels rather than nothing
        inner = sub
    rows, cols = np.nonzero(inner)
    rows, cols = rows + bounds[0].start, cols + bounds[1].start
    z = np.asarray(depth_m, dtype=np.float64)[rows, cols]
    ok = np.isfinite(z) & (z > 0)
    if ok.sum() < MIN_PIXELS:
        return None
    rows, cols, z = rows[ok], cols[ok], z[ok]
    K = np.asarray(K, dtype=np.float64)
    T = np.asarray(T_world_camera, dtype=np.float64)
    cam = np.stack([(cols - K[0, 2]) / K[0, 0] * z, (rows - K[1, 2]) / K[1, 1] * z, z], axis=1)
    world = cam @ T[:3, :3].T + T[:3, 3]
    height = np.percentile(world[:, 2], _HI) - np.percentile(world[:, 2], _LO)
    horizontal = _extents(world[:, :2])
    spatial = _extents(world)
    area = float(np.sum((z / K[0, 0]) * (z / K[1, 1])))
    lengths = np.maximum(np.concatenate([[height], horizontal, spatial]), _MIN_EXTENT_M)

    contours, _ = cv2.findContours(sub.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE,
                                   offset=(bounds[1].start, bounds[0].start))
    outline = max(contours, key=cv2.contourArea)
    (_, _), (rect_w, rect_h), _ = cv2.minAreaRect(outline)
    n_px = float(sub.sum())
    fill = min(1.0, n_px / max(rect_w * rect_h, 1.0))
    solidity = min(1.0, cv2.contourArea(outline) / max(cv2.contourArea(cv2.convexHull(outline)), 1.0))

    ray_cam = np.array([(cols.mean() - K[0, 2]) / K[0, 0], (rows.mean() - K[1, 2]) / K[1, 1], 1.0])
    ray_world = T[:3, :3] @ (ray_cam / np.linalg.norm(ray_cam))
    view_down = float(-ray_world[2])
    return np.concatenate([np.log(lengths), [np.log(max(area, 1e-8)), fill, solidity, view_down,
                                             float(scene_kind == "shelf")]]).astype(np.float32)


class ShapePriorNet(nn.Module):
    """Features (N, :data:`N_FEATURES`) -> class logits (N, n_classes): standardised by ``mean`` / ``std``
    (buffers: the training features' statistics), then an MLP with two hidden layers of ``hidden`` units."""

    def __init__(self, n_classes: int = 24, hidden: int = 128):
        super().__init__()
        self.n_classes, self.hidden = int(n_classes), int(hidden)
        self.register_buffer("mean", torch.zeros(N_FEATURES))
        self.register_buffer("std", torch.ones(N_FEATURES))
        self.mlp = nn.Sequential(nn.Linear(N_FEATURES, hidden), nn.ReLU(), nn.Linear(hidden, hidden), nn.ReLU(),
                                 nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.mlp((x - self.mean) / self.std)


def save_shape_prior(net, out_dir: str | Path) -> None:
    """``out_dir/model.safetensors`` (float32) + ``config.json`` (classes, hidden width, feature names)."""
    from graspsim.learn.checkpoint import save_weights

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_weights(out, {k: v.detach().float().contiguous() for k, v in net.state_dict().items()})
    config = {"n_classes": net.n_classes, "hidden": net.hidden, "features": list(FEATURE_NAMES)}
    (out / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")


class ShapePrior:
    """A trained :class:`ShapePriorNet` for inference: :meth:`class_probs` of masks."""

    def __init__(self, net):
        self.net = net.eval()
        self.n_classes = net.n_classes

    def class_probs(self, masks: list[np.ndarray], depth_m: np.ndarray, K: np.ndarray, T_world_camera: np.ndarray,
                    scene_kind: str) -> np.ndarray:
        """(len(masks), n_classes) class probabilities from each mask's shape; a uniform row where a mask has no
        features (too few pixels with depth): the prior abstains there."""
        out = np.full((len(masks), self.n_classes), 1.0 / self.n_classes, dtype=np.float32)
        feats = [shape_features(m, depth_m, K, T_world_camera, scene_kind) if np.any(m) else None for m in masks]
        idx = [i for i, f in enumerate(feats) if f is not None]
        if idx:
            with torch.no_grad():
                logits = self.net(torch.from_numpy(np.stack([feats[i] for i in idx])))
            out[idx] = torch.softmax(logits, dim=-1).numpy()
        return out


def load_shape_prior(path: str | Path, check: bool = True) -> ShapePrior:
    """The :class:`ShapePrior` in directory ``path`` (written by ``graspsim train shape``); with ``check`` the
    weights' sha256 recorded in its metadata.json are verified (:mod:`graspsim.learn.checkpoint`)."""
    from graspsim.learn.checkpoint import load_weights, read_metadata

    path = Path(path)
    config: dict[str, Any] = json.loads((path / CONFIG_FILE).read_text(encoding="utf-8"))
    if tuple(config.get("features", ())) != FEATURE_NAMES:
        raise ValueError(f"{path}: shape prior trained on other features ({config.get('features')}); this graspsim "
                         f"computes {list(FEATURE_NAMES)}: retrain it with `graspsim train shape`")
    net = ShapePriorNet(config["n_classes"], config["hidden"])
    meta = read_metadata(path) if check else None
    net.load_state_dict(load_weights(path, meta))
    return ShapePrior(net)


def combine(clip_probs: np.ndarray, shape_probs: np.ndarray, weight: float) -> np.ndarray:
    """(N, C) class probabilities of CLIP (appearance) and the shape prior combined as a product of experts:
    ``p ~ clip * shape ** weight``, renormalised per row; ``weight = 0`` returns ``clip_probs``. Rows of
    ``clip_probs`` that are all zero (an empty mask) stay zero."""
    clip_probs = np.asarray(clip_probs, dtype=np.float64)
    if weight == 0:
        return clip_probs.astype(np.float32)
    joint = clip_probs * np.clip(np.asarray(shape_probs, dtype=np.float64), 1e-12, 1.0) ** float(weight)
    total = joint.sum(axis=1, keepdims=True)
    return np.where(total > 0, joint / np.where(total > 0, total, 1.0), 0.0).astype(np.float32)
