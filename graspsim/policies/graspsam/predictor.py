"""GraspSAM inference: prompt -> SAM window -> maps -> grasp rectangle in image pixels (numpy in, numpy out).

Coordinates: prompts and rectangles are image pixels (``xy``; :class:`graspsim.types.GraspRect`); the network
sees a square *window* of the image (``(x0, y0, side)``, :mod:`graspsim.policies.clip_sam.windows`) resampled to
SAM's input side ``S`` and answers with ``M x M`` maps of the same window. The window comes from the prompt
(:func:`prompt_window`, the same function in training): around a box (1.5x its larger side, as clip_sam), around
the positive points (:data:`~graspsim.policies.clip_sam.windows.POINT_EXTENT_M` of physical space at their
depth), or the whole image for no prompt.

Decoding: the peaks of the smoothed quality map *inside the predicted mask* (GR-ConvNet's
:func:`~graspsim.policies.det_seg.grconvnet.decode_maps`), angle ``0.5 atan2(sin, cos)``, opening from the
width map - by default never less than the predicted mask's chord along the closing axis plus the planner's
clearance on each side (``opening="mask"``; the width map alone, the paper's decoding, is ``"map"``: on the first
shipped checkpoint its openings were often narrower than the product, and the jaws pushed it away); the finger
size ``h`` is the gripper's finger width at the depth of the grasp centre (``finger_width_m * fx / z``, as the
dataset labels). Placement (``placement="chord"``, default): each grasp slides along its closing axis to the middle
of the predicted mask's chord there, and grasps that the planner's depth checks refuse
(:func:`graspsim.grasping.mask_grasps.check_grasps`: too wide for the jaws, a finger plate or the palm on
something) go after the others; ``"peak"`` keeps the paper's plain peak. A prompt of points alone on a top-down
view is answered twice by default (``point_refine="box"``): the second pass adds the box around the first pass's
mask, whose window then fits the product. No training code is imported here.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np

from graspsim.config import GRASP_MARGIN_M, GripperSpec
from graspsim.masks import mask_box
from graspsim.policies.clip_sam.prompts import Prompt
from graspsim.policies.clip_sam.windows import (MIN_SIDE_PX, POINT_EXTENT_M, SAM_MEAN, SAM_STD, box_to_window,
                                                box_window, centred_window, crop, depth_at, normalise, paste,
                                                point_window, to_window)
from graspsim.policies.graspsam.config import GraspSamConfig, PromptMode

BOX_WINDOW_SCALE = 1.5  # as clip_sam.segment: the window a box is segmented in
#: How the jaw opening is decoded: "map" = the width map alone (the paper); "mask" = at least the predicted
#: mask's chord along the closing axis plus the planner's margin on each side (capped at the gripper's opening).
OPENINGS = ("mask", "map")
#: Where the jaws go: "chord" = centred on the predicted mask's chord through the quality peak along the closing
#: axis, grasps that the planner's depth checks would refuse last; "peak" = on the peak itself (the paper).
PLACEMENTS = ("chord", "peak")
#: What a prompt of points alone does with its first answer on a top-down view (``theta_range`` None: tables):
#: "box" = a second pass prompted by the same points plus the box around the first pass's mask (SAM's interaction
#: loop, as clip_sam's ``box_refine``); "off" = one pass (the paper). Never on shelves, where it lost on validation.
POINT_REFINES = ("box", "off")


def prompt_window(prompt: Prompt | None, depth_m: np.ndarray, K: np.ndarray) -> tuple[float, float, float]:
    """The image window ``(x0, y0, side)`` the network sees for ``prompt`` (None: the whole image)."""
    h, w = np.shape(depth_m)[:2]
    if prompt is None:
        return centred_window((w - 1) / 2.0, (h - 1) / 2.0, float(max(h, w)))
    if prompt.box is not None:
        return box_window(prompt.box, scale=BOX_WINDOW_SCALE)
    pos = prompt.points[prompt.labels == 1]
    pos = pos if len(pos) else prompt.points
    centre = pos.mean(axis=0)
    # the side from the depth at the positive point nearest the centroid (the centroid may miss the object)
    anchor = pos[int(np.argmin(((pos - centre) ** 2).sum(axis=1)))]
    return centred_window(float(centre[0]), float(centre[1]), point_window(depth_m, K, anchor)[2])


#: Physical side of the text prompt's windows (as a point prompt's, :data:`POINT_EXTENT_M`: the scale the
#: network segments products at; the whole image at SAM's 128 px leaves a product about one patch).
TEXT_TILE_M = POINT_EXTENT_M
TEXT_TILE_OVERLAP = 0.25


def text_tile_side(depth_m: np.ndarray, K: np.ndarray) -> float:
    """Side (px) of the text prompt's windows: :data:`TEXT_TILE_M` at the image's median valid depth (0.4 of the
    image's larger side without depth), within ``[MIN_SIDE_PX, max(H, W)]``."""
    h, w = np.shape(depth_m)[:2]
    z = np.asarray(depth_m)[np.isfinite(depth_m) & (np.asarray(depth_m) > 0)]
    side = TEXT_TILE_M * float(K[0, 0]) / float(np.median(z)) if z.size else 0.4 * max(h, w)
    return float(np.clip(side, MIN_SIDE_PX, max(h, w)))


def text_tiles(depth_m: np.ndarray, K: np.ndarray) -> list[tuple[float, float, float]]:
    """The windows ``(x0, y0, side)`` a text prompt looks through: squares of :func:`text_tile_side` covering the
    image edge to edge, neighbours overlapping by at least :data:`TEXT_TILE_OVERLAP` of the side (a side
    longer than the image is centred on it)."""
    h, w = np.shape(depth_m)[:2]
    side = text_tile_side(depth_m, K)
    stride = side * (1.0 - TEXT_TILE_OVERLAP)

    def starts(n_px: int) -> np.ndarray:
        span = n_px - side  # pixel centres run -0.5 .. n - 0.5
        if span <= 0:
            return np.array([span / 2.0 - 0.5])
        return np.linspace(-0.5, span - 0.5, int(math.ceil(span / stride)) + 1)

    return [(float(x0), float(y0), side) for y0 in starts(h) for x0 in starts(w)]


def sample_points(mask: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(min(k, n), 2) float64 distinct pixels (x, y) of the (H, W) bool ``mask``, drawn without replacement with
    weights ``distance to the mask's edge + 0.5`` (interior points, as clip_sam's SAM training favours)."""
    import cv2

    dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        raise ValueError("cannot sample prompt points on an empty mask")
    wgt = dist[ys, xs].astype(np.float64) + 0.5
    idx = rng.choice(len(xs), size=min(int(k), len(xs)), replace=False, p=wgt / wgt.sum())
    return np.stack([xs[idx], ys[idx]], axis=1).astype(np.float64)


def prompt_from_mask(mask: np.ndarray, mode: PromptMode, rng: np.random.Generator) -> Prompt | None:
    """The prompt of ``mode`` for the object ``mask`` (H, W) bool: K positive points on it, or its box; None for
    "none". (Offline evaluation on ground-truth masks; the policy's privileged modes on the environment's.)"""
    if mode.kind == "points":
        pts = sample_points(mask, mode.k, rng)
        return Prompt(str(mode), pts, np.ones(len(pts), dtype=np.int64))
    if mode.kind == "box":
        return Prompt("box", np.zeros((0, 2)), np.zeros(0), mask_box(mask))
    if mode.kind == "none":
        return None
    raise ValueError(f"prompt mode {mode} is not made from a mask")


def window_inputs(prompt: Prompt | None, window, size: int) -> dict[str, np.ndarray]:
    """The prompt in window pixels at ``size``: ``points`` (N, 2) float32 and ``labels`` (N,) int64 (empty when
    none), ``box`` (4,) float32 or None."""
    if prompt is None:
        return {"points": np.zeros((0, 2), np.float32), "labels": np.zeros(0, np.int64), "box": None}
    pts = to_window(prompt.points, window, size).astype(np.float32) if len(prompt.points) else np.zeros((0, 2), np.float32)
    box = None if prompt.box is None else box_to_window(prompt.box, window, size).astype(np.float32)
    return {"points": pts, "labels": prompt.labels.astype(np.int64), "box": box}


def decoding_config(cfg: GraspSamConfig, map_size: int):
    """GR-ConvNet's decoding settings for GraspSAM maps of side ``map_size`` (one decoder for both stacks)."""
    from graspsim.policies.det_seg.grconvnet import GrConvNetConfig

    return GrConvNetConfig(width_scale=cfg.width_frac * map_size, finger_px=1.0, blur_sigma=cfg.blur_sigma,
                           min_distance=cfg.min_distance, quality_threshold=cfg.quality_threshold,
                           max_detections=cfg.max_detections)


def map_rects_to_image(rects: np.ndarray, window, map_size: int) -> np.ndarray:
    """(K, 5) rectangles in map pixels -> image pixels (``h`` scaled too; theta unchanged: isotropic)."""
    x0, y0, side = window
    s = side / map_size
    r = np.asarray(rects, dtype=np.float64).reshape(-1, 5).copy()
    r[:, 0] = (r[:, 0] + 0.5) * s + x0 - 0.5  # the inverse of windows.to_window
    r[:, 1] = (r[:, 1] + 0.5) * s + y0 - 0.5
    r[:, 2:4] *= s
    return r


def mask_chord_px(mask: np.ndarray, x: float, y: float, theta: float, max_px: float) -> float:
    """Length in pixels of the (H, W) bool ``mask`` along the closing axis ``theta`` through ``(x, y)``: the
    run of mask pixels containing the centre, walked out both ways in 0.5 px steps (at most ``max_px`` each)."""
    h, w = mask.shape
    c, s = np.cos(theta), np.sin(theta)
    steps = np.arange(0.0, max_px, 0.5)
    total = 0.0
    for sign in (1.0, -1.0):
        cols = np.round(x + sign * steps * c).astype(int)
        rows = np.round(y + sign * steps * s).astype(int)
        inside = (cols >= 0) & (cols < w) & (rows >= 0) & (rows < h)
        on = np.zeros(len(steps), bool)
        on[inside] = mask[rows[inside], cols[inside]]
        off = np.nonzero(~on)[0]
        total += steps[off[0]] if len(off) else float(max_px)
    return float(total)


class GraspSamPredictor:
    """Wraps a :class:`~.model.GraspSamNet` (eval mode): :meth:`predict` for one prompt on one image."""

    def __init__(self, net, gripper: GripperSpec | None = None, opening: str = "mask", margin_m: float = GRASP_MARGIN_M,
                 placement: str = "chord", angle_search_deg: float = 60.0, point_refine: str = "box"):
        if opening not in OPENINGS:
            raise ValueError(f"opening must be one of {', '.join(OPENINGS)}, got {opening!r}")
        self.net = net.eval()
        self.gripper = gripper or GripperSpec()
        if placement not in PLACEMENTS:
            raise ValueError(f"placement must be one of {', '.join(PLACEMENTS)}, got {placement!r}")
        self.opening, self.margin_m = opening, float(margin_m)
        self.placement, self.angle_search_deg = placement, float(angle_search_deg)
        if point_refine not in POINT_REFINES:
            raise ValueError(f"point_refine must be one of {', '.join(POINT_REFINES)}, got {point_refine!r}")
        self.point_refine = point_refine
        self.decode_cfg = decoding_config(net.config, net.map_size)

    def maps(self, rgb: np.ndarray, prompt: Prompt | None, window, text_embed: np.ndarray | None = None
             ) -> dict[str, np.ndarray]:
        """The network's (M, M) float32 maps (``mask`` logits, ``quality``, ``cos``, ``sin``, ``width``) of
        ``window`` for ``prompt`` (image pixels) and / or ``text_embed`` (text_dim,) (the text prompt token)."""
        import torch

        size = self.net.image_size
        x = torch.from_numpy(normalise(crop(np.ascontiguousarray(rgb[..., :3]), window, size), SAM_MEAN, SAM_STD))[None]
        p = window_inputs(prompt, window, size)
        kw: dict[str, Any] = {}
        if len(p["points"]):
            kw["input_points"] = torch.from_numpy(p["points"])[None, None]
            kw["input_labels"] = torch.from_numpy(p["labels"])[None, None]
        if p["box"] is not None:
            kw["input_boxes"] = torch.from_numpy(p["box"])[None, None]
        if text_embed is not None:
            kw["text_embeds"] = torch.as_tensor(np.asarray(text_embed, np.float32)).reshape(1, -1)
        with torch.inference_mode():
            out = self.net(x, **kw)
        return {k: v[0].float().numpy() for k, v in out.items() if k != "sam_mask"}

    def find_text(self, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray, text_embed: np.ndarray,
                  exclude: np.ndarray | None = None) -> tuple[Prompt | None, np.ndarray]:
        """The text prompt's first pass: the text token ``text_embed`` (text_dim,) alone on every window of
        :func:`text_tiles` (one batch) -> ``(box prompt, (H, W) bool mask)``: the tiles' mask logits back on the
        image (the largest where tiles overlap), and the box (image px) around the connected part of the mask
        with the most confident pixel (several products of the class may be lit, and the box must hold one);
        None (and an empty mask) when nothing is found. ``exclude``: pixels (the robot's) the mask may not use.
        The second pass is the box prompt (:meth:`predict`)."""
        import cv2

        depth_m = np.asarray(depth_m, dtype=np.float32)
        h, w = np.shape(depth_m)[:2]
        tiles = text_tiles(depth_m, K)
        m = self.net.map_size
        logits = self.tile_logits(rgb, tiles, text_embed)
        image = np.full((h, w), -np.inf, np.float32)
        for t, lg in zip(tiles, logits):
            covered = paste(np.ones((m, m), np.float32), t, (h, w)) > 0.5
            image = np.where(covered, np.maximum(image, paste(lg, t, (h, w))), image)
        valid = image > 0.0
        if exclude is not None:
            valid &= ~np.asarray(exclude, bool)
        if not valid.any():
            return None, valid
        _, labels = cv2.connectedComponents(valid.astype(np.uint8), connectivity=8)
        mask = labels == labels.flat[int(np.argmax(np.where(valid, image, -np.inf)))]
        return Prompt("box", np.zeros((0, 2)), np.zeros(0), mask_box(mask)), mask

    def tile_logits(self, rgb: np.ndarray, windows: list, text_embed: np.ndarray) -> np.ndarray:
        """(N, M, M) float32 mask logits of the text token ``text_embed`` (text_dim,) alone in each of the N
        ``windows`` (one batch)."""
        import torch

        size = self.net.image_size
        rgb = np.ascontiguousarray(rgb[..., :3])
        x = torch.from_numpy(np.stack([normalise(crop(rgb, t, size), SAM_MEAN, SAM_STD) for t in windows]))
        text = torch.as_tensor(np.asarray(text_embed, np.float32)).reshape(1, -1).expand(len(windows), -1)
        with torch.inference_mode():
            return self.net(x, text_embeds=text)["mask"].float().numpy()

    def predict(self, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray, prompt: Prompt | None,
                exclude: np.ndarray | None = None, theta_range: tuple[float, float] | None = None,
                text_embed: np.ndarray | None = None) -> dict[str, Any]:
        """(H, W, 3) uint8 RGB, (H, W) metres, 3x3 K, a prompt in image pixels (None: no prompt), ``exclude``
        (H, W) bool pixels no grasp centre and no mask pixel may lie on (the robot's; None: none),
        ``theta_range`` the closing axes the planner allows here (its
        :func:`~graspsim.grasping.mask_grasps.closing_axis_range`; None: any angle, where the angle search
        turns grasps), ``text_embed`` (text_dim,) the text prompt token (with ``prompt`` None: the whole image) ->

        ``rects`` (k, 5) image px best first (at least one), ``scores`` (k,), ``mask`` (H, W) bool (the predicted
        object; for no prompt every object the network would grasp), ``window``, ``mask_empty`` (no pixel of
        the window passed: the peak was searched in the whole window), ``seconds`` (net, decode), ``refined``
        (a second pass ran: ``point_refine="box"``, a top-down view, a prompt of points alone whose first mask is
        not empty; its window and answer are returned, ``net`` seconds are both passes')."""
        depth_m = np.asarray(depth_m, dtype=np.float32)
        seen = self._look(rgb, depth_m, K, prompt, exclude, text_embed)
        refined = (self.point_refine == "box" and theta_range is None and prompt is not None and prompt.box is None
                   and len(prompt.points) > 0 and bool(seen["mask"].any()))
        if refined:
            # why: a point prompt's window has a fixed physical size and its mask is the network's weakest
            # (held-out table mask IoU 0.87 from 10 points, 0.94 from a box); the box of that first mask gives the
            # second pass a window fitted to the product. Validation Jaccard (dense labels, 10 points): tables
            # 91.2 -> 94.6, shelves 93.2 -> 90.1, where facings of one product stand side by side (README, GraspSAM).
            # Only the second pass is decoded.
            again = Prompt(prompt.mode, prompt.points, prompt.labels, mask_box(seen["mask"]))
            first_net_s = seen["net_s"]
            seen = self._look(rgb, depth_m, K, again, exclude, text_embed)
            seen["net_s"] += first_net_s
        out = self._decode(seen, depth_m, K, theta_range)
        out["refined"] = refined
        return out

    def _look(self, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray, prompt: Prompt | None,
              exclude: np.ndarray | None, text_embed: np.ndarray | None) -> dict[str, Any]:
        """One network pass for ``prompt``: ``maps``, ``window``, ``valid`` / ``in_image`` (M, M) bool map cells
        (inside the predicted mask and the image, off ``exclude``), ``mask_empty``, ``mask`` (H, W) bool on the
        image, ``net_s`` seconds."""
        t0 = time.perf_counter()
        window = prompt_window(prompt, depth_m, K)
        maps = self.maps(rgb, prompt, window, text_embed)
        net_s = time.perf_counter() - t0
        m = self.net.map_size
        valid = maps["mask"] > 0.0
        in_image = self._in_image(window, np.shape(depth_m), m)
        if exclude is not None:  # a map cell covering any excluded pixel is out
            in_image &= ~(crop(np.asarray(exclude, np.float32), window, m) > 0)
        valid &= in_image
        h, w = np.shape(depth_m)[:2]
        mask = (paste(maps["mask"], window, (h, w)) > 0.0) & (paste(np.ones((m, m), np.float32), window, (h, w)) > 0.5)
        if exclude is not None:
            mask &= ~np.asarray(exclude, bool)
        return {"maps": maps, "window": window, "valid": valid, "in_image": in_image, "mask_empty": not valid.any(),
                "mask": mask, "net_s": net_s}

    def _decode(self, seen: dict[str, Any], depth_m: np.ndarray, K: np.ndarray,
                theta_range: tuple[float, float] | None) -> dict[str, Any]:
        """:meth:`predict`'s answer from one :meth:`_look`: the quality peaks inside the mask, openings, placement."""
        from graspsim.policies.det_seg.grconvnet import decode_maps

        t1 = time.perf_counter()
        m, window, mask, empty = self.net.map_size, seen["window"], seen["mask"], seen["mask_empty"]
        rects, scores = decode_maps(seen["maps"], self.decode_cfg, seen["in_image"] if empty else seen["valid"])
        rects = map_rects_to_image(rects, window, m)
        h, w = np.shape(depth_m)[:2]
        fx = float(K[0, 0])
        fits = np.ones(len(rects), bool)
        for i, r in enumerate(rects):
            z = depth_at(depth_m, r[:2])
            r[3] = self.gripper.finger_width_m * fx / z if np.isfinite(z) and z > 0 else max(1.0, r[2] / 3.0)
            if self.opening == "mask" and np.isfinite(z) and z > 0:
                # the jaws must clear the object: never open less than the predicted mask's chord + margins
                chord = mask_chord_px(mask, r[0], r[1], r[4], max_px=window[2] / 2)
                need = chord + 2 * self.margin_m * fx / z
                fits[i] = need <= self.gripper.max_opening_m * fx / z
                r[2] = min(max(r[2], need), self.gripper.max_opening_m * fx / z)
        if self.placement == "chord" and mask.any():
            rects, scores, fits = self._on_chords(rects, scores, mask, depth_m, K, theta_range)
        rects[:, 0] = np.clip(rects[:, 0], 0, w - 1)
        rects[:, 1] = np.clip(rects[:, 1], 0, h - 1)
        rects[:, 2:4] = np.maximum(rects[:, 2:4], 1.0)
        t2 = time.perf_counter()
        return {"rects": rects, "scores": scores, "fits": fits, "mask": mask, "window": window, "mask_empty": empty,
                "seconds": {"net": seen["net_s"], "decode": t2 - t1}}

    def _on_chords(self, rects: np.ndarray, scores: np.ndarray, mask: np.ndarray, depth_m: np.ndarray,
                   K: np.ndarray, theta_range: tuple[float, float] | None = None
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``placement="chord"``: each rectangle (K, 5) image px moved to the midpoint of the predicted mask's chord
        along its closing axis (the chord of the mask's nearest surface, as the planner measures it, where the
        centre lies on that surface), with ``opening="mask"`` opened to the chord + clearance, and re-ranked:
        grasps that pass the planner's depth checks first, then those that fit with free fingers, then the rest,
        each group in quality order (and, with the angle search, each peak's turns nearest first). Returns
        ``(rects, scores, fits)``.

        Why: the quality target is a plateau over each labelled rectangle's central third, so the peak may sit
        a third of the opening off a can's axis, where a finger lands on the rim; and GraspSAM sees no depth,
        so nothing else keeps a finger off a neighbour. (Validation, tabletop-train: 40 of 100 approaches
        blocked with the plain peak, 22 with this, 16 with the angle search.)"""
        from graspsim.grasping.mask_grasps import MIN_FREE_FRACTION, check_grasps, near_surface

        if self.angle_search_deg > 0 and theta_range is None:
            # each grasp also turned by +-15, +-30 ... degrees up to the limit: where the map's angle is refused,
            # the nearest turn the checks keep stands in for it. Only where any closing axis is allowed (top-down
            # approaches): on shelves the planner keeps the axis near horizontal, and turns within that range
            # picked 82 of 100 validation scenes against 83 without (78 unrestricted).
            step = math.radians(15.0)
            steps = range(1, int(self.angle_search_deg // 15) + 1)
            turns = [0.0] + [sign * k * step for k in steps for sign in (1, -1)]
            n_peaks = len(rects)
            rects = np.concatenate([np.column_stack([rects[:, :4], rects[:, 4] + t]) for t in turns])
            rects[:, 4] = (rects[:, 4] + math.pi / 2) % math.pi - math.pi / 2
            scores = np.tile(scores, len(turns))
            turn_rank = np.repeat(np.arange(len(turns)), n_peaks)
            peak_rank = np.tile(np.arange(n_peaks), len(turns))
        else:
            turn_rank = np.zeros(len(rects), int)
            peak_rank = np.arange(len(rects))
        surface = near_surface(mask, depth_m)
        h, w = mask.shape
        cols = np.clip(np.round(rects[:, 0]).astype(int), 0, w - 1)
        rows = np.clip(np.round(rects[:, 1]).astype(int), 0, h - 1)
        on_surface = surface[rows, cols]
        n = len(rects)
        mid, opening = rects[:, :2].copy(), np.zeros(n)
        fits, clear, free = np.zeros(n, bool), np.zeros(n, bool), np.zeros(n, bool)
        for region, rows_in in ((surface, on_surface), (mask, ~on_surface)):
            idx = np.nonzero(rows_in)[0]
            if len(idx) == 0:
                continue
            chk = check_grasps(region, depth_m, K, rects[idx, :2], rects[idx, 4], self.gripper, margin_m=self.margin_m)
            mid[idx], opening[idx], fits[idx], clear[idx] = chk.mid, chk.opening_m, chk.fits, chk.clear
            free[idx] = chk.free_fraction >= MIN_FREE_FRACTION
        out = rects.copy()
        out[:, :2] = mid
        fx = float(K[0, 0])
        for i, r in enumerate(out):
            z = depth_at(depth_m, r[:2])
            if np.isfinite(z) and z > 0:
                r[3] = self.gripper.finger_width_m * fx / z
                if self.opening == "mask":
                    r[2] = opening[i] * fx / z
        order = np.lexsort((turn_rank, peak_rank, np.where(clear, 0, np.where(fits & free, 1, 2))))
        return out[order], scores[order], fits[order]

    @staticmethod
    def _in_image(window, shape, m: int) -> np.ndarray:
        """(m, m) bool: map pixels whose centre falls inside the image (a window may reach past its border)."""
        x0, y0, side = window
        c = (np.arange(m) + 0.5) * side / m - 0.5
        xs, ys = c + x0, c + y0
        return (((ys >= -0.5) & (ys <= shape[0] - 0.5))[:, None]) & (((xs >= -0.5) & (xs <= shape[1] - 0.5))[None, :])


def load_net(checkpoint: str | Path | None = None, sam=None, sam_name: str | None = None):
    """``(GraspSamNet in eval mode, metadata)`` of a checkpoint directory (None: the shipped one).

    The frozen SAM: ``sam`` (an already loaded SamModel, e.g. shared with clip_sam's pipeline) or loaded from
    ``sam_name`` (None: the name the checkpoint's metadata records, None there = clip_sam's shipped SAM).
    Raises FileNotFoundError (no checkpoint), CheckpointError (damaged), ValueError (weights of another shape).
    """
    from graspsim.learn.checkpoint import read_metadata
    from graspsim.policies.clip_sam.models import load_any_sam
    from graspsim.policies.graspsam.config import resolve_checkpoint
    from graspsim.policies.graspsam.model import GraspSamNet

    path = resolve_checkpoint(checkpoint)
    meta = read_metadata(path)
    if meta.get("model") != "graspsam":
        raise ValueError(f"{path} is not a graspsam checkpoint (metadata model={meta.get('model')!r})")
    if sam is None:
        sam = load_any_sam(sam_name if sam_name is not None else meta.get("sam"))
    net = GraspSamNet(sam, GraspSamConfig.from_dict(meta["config"]))
    load_trainable(net, path, meta)
    return net.eval(), meta


#: Trainable tensors a checkpoint may lack when it starts a run (``--init``) of a network that has them: the text
#: prompt's token projection and adapters, added later than the shipped checkpoints (they then start fresh).
NEW_PARTS = ("text_proj.", "text_adapters.")


def load_trainable(net, path: Path, meta: dict, allow_new: bool = False) -> None:
    """Load a checkpoint's trainable tensors (adapters, tokens, heads) into ``net`` (float32);
    CheckpointError when they do not fit its SAM and config (names or shapes). ``allow_new`` (a training run's
    ``--init``): tensors of :data:`NEW_PARTS` that the checkpoint lacks keep ``net``'s own values."""
    from graspsim.learn.checkpoint import CheckpointError, load_weights

    weights = load_weights(path, meta)
    want = net.trainable_state_dict()
    missing = sorted(k for k in set(want) - set(weights) if not (allow_new and k.startswith(NEW_PARTS)))
    bad = sorted(k for k in set(want) & set(weights) if tuple(want[k].shape) != tuple(weights[k].shape))
    if missing or bad or set(weights) - set(want):
        raise CheckpointError(f"{path} does not fit this SAM: missing {missing[:3]}, other shapes {bad[:3]} "
                              f"(was it trained on another --sam?)")
    net.load_state_dict({k: v.float() for k, v in weights.items()}, strict=False)
