"""SAM on a square window of the image (what the policy and ``graspsim train sam`` validation run).

SAM's image encoder works on a fixed square input (1024 px for the released
models, 128 px for the sim-trained one). Running it on the whole 640x480 frame
at 128 px would leave a shelf product 10 pixels wide; instead the prompt
decides a window (around the box, or :data:`~.windows.POINT_EXTENT_M` of
physical space around a point, sized from depth), the window is resampled to
SAM's input size, and the mask is pasted back - the "zoom in on the prompt"
that SAM's own automatic mask generator does with its crop layers. The sim
SAM is trained on exactly these windows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from graspsim.policies.clip_sam.windows import (SAM_MEAN, SAM_STD, box_to_window, box_window, crop, normalise,
                                                paste, point_window, to_window)
from graspsim.policies.clip_sam.prompts import Prompt

BOX_WINDOW_SCALE = 1.5


@dataclass
class WindowMask:
    """``mask`` (H, W) bool in the image; ``score`` SAM's predicted IoU."""

    mask: np.ndarray
    score: float


def prompt_window(prompt: Prompt, depth_m: np.ndarray, K: np.ndarray) -> tuple[float, float, float]:
    """The window a prompt is segmented in: around its box if it has one, else around its first positive point."""
    if prompt.box is not None:
        return box_window(prompt.box, scale=BOX_WINDOW_SCALE)
    pos = prompt.points[prompt.labels == 1]
    anchor = pos[0] if len(pos) else prompt.points[0]
    return point_window(depth_m, K, anchor)


@torch.no_grad()
def segment_windows(model, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray, prompts: list[Prompt],
                    windows: list[tuple[float, float, float]] | None = None) -> list[WindowMask]:
    """SAM's best mask (highest predicted IoU of its 3) for each prompt, segmented in its window, in ONE batched
    SAM call.

    ``rgb`` (H, W, 3) uint8; ``depth_m`` (H, W) metres (sizes point windows); ``K`` 3x3;
    prompt coordinates in image pixels (x, y); ``windows`` overrides :func:`prompt_window`. Point lists of
    different lengths are padded with SAM's padding label (-10, ignored by the prompt encoder); prompts must
    agree on having a box or not (a mode's prompts always do).
    """
    if not prompts:
        return []
    windows = windows or [prompt_window(p, depth_m, K) for p in prompts]
    if len({p.box is None for p in prompts}) > 1:
        return [segment_windows(model, rgb, depth_m, K, [p], [win])[0] for p, win in zip(prompts, windows)]
    h, w = rgb.shape[:2]
    size = int(model.config.vision_config.image_size)
    pixels = np.stack([normalise(crop(rgb, win, size), SAM_MEAN, SAM_STD) for win in windows])
    inputs: dict[str, torch.Tensor] = {"pixel_values": torch.from_numpy(pixels)}
    n_pts = max(p.points.shape[0] for p in prompts)
    if n_pts:
        pts = np.zeros((len(prompts), n_pts, 2), dtype=np.float32)
        labels = np.full((len(prompts), n_pts), -10, dtype=np.int64)
        for i, (p, win) in enumerate(zip(prompts, windows)):
            k = p.points.shape[0]
            if k:
                pts[i, :k] = to_window(p.points, win, size)
                labels[i, :k] = p.labels
        inputs["input_points"] = torch.from_numpy(pts)[:, None]
        inputs["input_labels"] = torch.from_numpy(labels)[:, None]
    if prompts[0].box is not None:
        boxes = np.stack([box_to_window(p.box, win, size) for p, win in zip(prompts, windows)]).astype(np.float32)
        inputs["input_boxes"] = torch.from_numpy(boxes)[:, None]
    device = next(model.parameters()).device
    out = model(**{k: v.to(device) for k, v in inputs.items()}, multimask_output=True)
    results = []
    for i, win in enumerate(windows):
        iou = out.iou_scores[i, 0].float()
        best = int(torch.argmax(iou))
        low = out.pred_masks[i, 0, best].float().cpu().numpy()
        logits = paste(low, win, (h, w))
        inside = paste(np.ones_like(low), win, (h, w)) > 0.5
        results.append(WindowMask(mask=(logits > 0.0) & inside, score=float(iou[best])))
    return results

