"""A classical baseline without ground truth: colour matching plus depth segmentation.

The target is found by colour: every pixel's colour is compared (in CIE Lab,
where distances roughly follow perceived differences) with the target class's
palette from the catalog. Matching pixels are cleaned with morphology and split
into segments at depth discontinuities (neighbouring pixels more than ~2 cm apart
in depth belong to different surfaces, e.g. two products side by side), the
segments are ranked by colour match and plausible size, and grasps are planned
on the best ones with :func:`~graspsim.grasping.mask_grasps.mask_to_grasps`.

When colour segments exist but none yields a grasp that passes the checks, the
policy still aims at the best one (across its minor axis, opening clamped). When
nothing matches the colour at all it falls back to geometry alone: the depth
segment closest to the camera and to the image centre.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import cv2
import numpy as np

from graspsim.config import GripperSpec
from graspsim.grasping.mask_grasps import ScoredGrasp, fallback_grasp, object_grasps
from graspsim.policies.base import PolicyError, PolicyOutput, as_observation, catalog, copy_config, first_executable
from graspsim.policies.config import GraspPlanConfig, arg
from graspsim.types import GraspRect, Observation

# Typical product face size (metres) used to judge whether a segment's area is plausible.
_PRODUCT_SIZE_M = 0.06


def rgb_to_lab(rgb: np.ndarray) -> np.ndarray:
    """CIE Lab (..., 3) float32 (L in 0..100, a/b roughly -128..127) of uint8 RGB values (..., 3)."""
    arr = np.asarray(rgb, dtype=np.float32).reshape(-1, 1, 3) / 255.0
    lab = cv2.cvtColor(arr, cv2.COLOR_RGB2Lab)
    return lab.reshape(np.shape(rgb))


def palette_distance(rgb: np.ndarray, palette: Sequence[Sequence[float]], main: Sequence[bool],
                     lightness_weight: float = 0.5, secondary_penalty: float = 1.25) -> np.ndarray:
    """(H, W) float32: Lab distance of each pixel of ``rgb`` (H, W, 3 uint8) to the nearest palette colour.

    ``palette``: RGB triples 0..255. ``main`` flags the body colours; the distance to
    any other palette colour is multiplied by ``secondary_penalty`` (label colours
    are less reliable evidence). For coloured palette entries, lightness differences
    count ``lightness_weight`` times as much as chroma differences, because shading
    changes lightness far more than hue; for nearly grey entries (chroma < 20)
    lightness is all that tells white from grey from black, so it gradually regains full weight.
    """
    lab = rgb_to_lab(rgb)
    pal = rgb_to_lab(np.asarray(palette, dtype=np.float32).reshape(-1, 3))
    best = np.full(lab.shape[:2], np.inf, dtype=np.float32)
    for colour, is_main in zip(pal, main):
        chroma = float(np.hypot(colour[1], colour[2]))
        w_l = lightness_weight + (1.0 - lightness_weight) * max(0.0, 1.0 - chroma / 20.0)
        weights = np.array([w_l, 1.0, 1.0], dtype=np.float32)
        d = np.sqrt(np.sum(((lab - colour) * weights) ** 2, axis=-1))
        if not is_main:
            d *= secondary_penalty
        np.minimum(best, d, out=best)
    return best


def depth_edges(depth_m: np.ndarray, jump_m: float = 0.02) -> np.ndarray:
    """(H, W) bool: pixels on the far side of a depth jump larger than ``jump_m`` to a 4-neighbour.

    Marking the farther pixel keeps the nearer object's border intact while still
    separating it from what lies behind it; invalid depth (NaN, inf, <= 0) never
    makes an edge on its own.
    """
    d = np.asarray(depth_m, dtype=np.float32)
    d = np.where(np.isfinite(d) & (d > 0), d, np.nan)
    edges = np.zeros(d.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        for a, b, ea, eb in (
            (d[:, :-1], d[:, 1:], edges[:, :-1], edges[:, 1:]),
            (d[:-1, :], d[1:, :], edges[:-1, :], edges[1:, :]),
        ):
            jump = np.abs(a - b) > jump_m
            ea |= jump & (a > b)
            eb |= jump & (b > a)
    return edges


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """``mask`` (H, W) bool with enclosed holes (labels, text, specular spots) filled."""
    ys, xs = np.nonzero(mask)
    if len(ys) == 0:
        return mask
    y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
    crop = np.zeros((y1 - y0 + 2, x1 - x0 + 2), dtype=np.uint8)
    crop[1:-1, 1:-1] = mask[y0:y1, x0:x1]
    flood = crop.copy()
    ff_mask = np.zeros((crop.shape[0] + 2, crop.shape[1] + 2), dtype=np.uint8)
    cv2.floodFill(flood, ff_mask, (0, 0), 2)
    filled = mask.copy()
    filled[y0:y1, x0:x1] = (flood[1:-1, 1:-1] != 2)
    return filled


@dataclass(frozen=True)
class HeuristicPolicyConfig(GraspPlanConfig):
    """Every ``--policy-arg`` of the heuristic policy."""

    policy_name: ClassVar[str] = "heuristic"

    color_threshold: float = arg(22.0, min=0.0, min_open=True)
    """Lab distance below which a pixel matches the target's palette."""
    lightness_weight: float = arg(0.5, min=0.0)
    """Weight of lightness against chroma differences (see :func:`palette_distance`)."""
    depth_jump_m: float = arg(0.02, min=0.0, min_open=True)
    """Depth discontinuity (metres) that splits two segments."""
    min_area_px: int = arg(40, min=0)
    """Segments smaller than this (pixels) are ignored."""
    max_segments: int = arg(4, min=1)
    """Colour (or depth) segments tried for grasps, best first."""
    use_seen_variants: bool = True
    """Also match the colours of the seen (training) flavours of the class."""


class HeuristicPolicy:
    """Colour + depth segmentation of the target, then mask-based grasp planning.

    Parameters: the fields of :class:`HeuristicPolicyConfig`.

    ``PolicyOutput.mask`` is the chosen segment, ``attention`` the colour
    likelihood map (H, W float32 in [0, 1]); ``info["fallback"]`` is true when no
    colour segment gave a grasp.
    """

    name: ClassVar[str] = "heuristic"
    needs_privileged: ClassVar[bool] = False

    config_class: ClassVar[type[HeuristicPolicyConfig]] = HeuristicPolicyConfig

    def __init__(self, config: HeuristicPolicyConfig | None = None, **kwargs: Any) -> None:
        """Build from ``config`` or from its fields as keyword arguments (``HeuristicPolicy(min_area_px=60)``)."""
        self.config = cfg = HeuristicPolicyConfig.resolve(config, kwargs)
        copy_config(self, cfg)
        self.gripper = cfg.gripper or GripperSpec()

    def reset(self, rng: np.random.Generator) -> None:
        pass  # deterministic

    def _palette(self, target_class: str) -> tuple[list[tuple[float, ...]], list[bool]]:
        """``(colours, is_body_colour)``: the class palette, then the seen flavours' recoloured palettes."""
        cat = catalog()
        try:
            cls = cat.get_class(target_class)
        except (LookupError, ValueError) as exc:
            raise PolicyError(f"unknown target class {target_class!r}") from exc
        if not cls.palette:
            raise PolicyError(f"target class {target_class!r} has an empty palette")
        palettes = [cls.palette]
        # Flavours recolour the class palette. Only the seen (training) flavours are
        # known to a policy: using the unseen ones would leak the test split.
        if self.use_seen_variants and hasattr(cat, "variant_palette"):
            palettes += [cat.variant_palette(target_class, v) for v in getattr(cls, "variants_seen", ())]
        palette: list[tuple[float, ...]] = []
        main: list[bool] = []
        for pal in palettes:
            for i, colour in enumerate(tuple(float(c) for c in colour) for colour in pal):
                if colour not in palette:  # a repeated colour would only repeat its distance
                    palette.append(colour)
                    main.append(i == 0)
        return palette, main

    def _grasps(self, mask: np.ndarray, obs: Observation) -> list[ScoredGrasp]:
        return object_grasps(mask, obs.depth_m, obs.camera, obs.scene_kind, obs.approach_world, self.gripper,
                             grasp_depth_m=self.grasp_depth_m, margin_m=self.margin_m,
                             max_candidates=self.max_candidates)

    def _segments(self, candidate: np.ndarray, edges: np.ndarray) -> tuple[np.ndarray, list[tuple]]:
        """4-connected segments of ``candidate & ~edges`` ((H, W) bool) of at least ``min_area_px`` pixels.

        Returns ``(labels (H, W) int32, [(label, area px, window, region)])``: ``window`` the
        (rows, cols) slices of the segment's bounding box, ``region`` its (h, w) bool pixels there.
        """
        n, labels, stats = cv2.connectedComponentsWithStats((candidate & ~edges).astype(np.uint8), connectivity=4)[:3]
        segments = []
        for label in range(1, n):
            area = int(stats[label, cv2.CC_STAT_AREA])
            if area >= self.min_area_px:
                x, y, w, h = (int(stats[label, k]) for k in range(4))
                window = (slice(y, y + h), slice(x, x + w))
                segments.append((label, area, window, labels[window] == label))
        return labels, segments

    def act(self, obs: Observation | Mapping[str, Any]) -> PolicyOutput:
        obs = as_observation(obs)  # the environment's observation dict is accepted too
        palette, main = self._palette(obs.target_class)
        d = np.asarray(obs.depth_m)
        valid = np.isfinite(d) & (d > 0) & (d < 0.999 * obs.camera.far_m)  # the far plane: nothing was hit there
        dist = palette_distance(obs.rgb, palette, main, self.lightness_weight)
        sigma = self.color_threshold / 2.0
        likelihood = np.exp(-0.5 * (dist / sigma) ** 2).astype(np.float32)

        matches = ((dist < self.color_threshold) & valid).astype(np.uint8)
        # Opening drops speckle matches; closing bridges labels/text that break a face apart.
        matches = cv2.morphologyEx(matches, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
        matches = cv2.morphologyEx(matches, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
        edges = depth_edges(obs.depth_m, self.depth_jump_m)
        labels, regions = self._segments(matches.astype(bool) & valid, edges)

        segments: list[tuple[float, int]] = []
        depth = np.asarray(obs.depth_m, dtype=np.float64)
        fx, fy = float(obs.camera.K[0, 0]), float(obs.camera.K[1, 1])
        for label, area, window, region in regions:
            colour = float(likelihood[window][region].mean())
            z = float(np.median(depth[window][region]))
            expected = (_PRODUCT_SIZE_M**2) * fx * fy / max(z, 1e-3) ** 2  # a product face's area in px at z
            # Too small: a speck or a sliver of an occluded product; far too big: a wall
            # or a table that happens to share a palette colour.
            if area > 30.0 * expected:
                continue  # a support surface or the background, not a product
            size = min(1.0, area / (0.5 * expected)) * min(1.0, 8.0 * expected / area)
            segments.append((colour * size, label))
        segments.sort(key=lambda s: -s[0])

        best: tuple[float, ScoredGrasp, np.ndarray, float, list[ScoredGrasp]] | None = None
        for seg_score, label in segments[: self.max_segments]:
            mask = _fill_holes(labels == label)
            grasps = self._grasps(mask, obs)
            if not grasps:
                continue
            total = seg_score * (0.5 + 0.5 * grasps[0].score)
            if best is None or total > best[0]:
                best = (total, grasps[0], mask, seg_score, grasps)

        if best is not None:
            total, grasp, mask, seg_score, grasps = best
            info: dict[str, Any] = {"fallback": False, "segment_score": round(seg_score, 4),
                                    "grasp_score": round(grasp.score, 4), "n_segments": len(segments)}
            # With the arm: the best grasp of the segment it can execute (the floating hand takes the best).
            rects = [g.rect for g in grasps]
            chosen, checked = first_executable(rects, obs, self.gripper, self.grasp_depth_m)
            if checked:
                info.update(arm_checked=checked, arm_choice=chosen)
            return PolicyOutput(rect=rects[chosen], candidates=rects[:chosen] + rects[chosen + 1:], mask=mask,
                                attention=likelihood, info=info)

        if segments:
            # The colour found the target but no grasp passed the checks (too wide, or
            # crowded): still aim at it, across its minor axis, rather than elsewhere.
            mask = _fill_holes(labels == segments[0][1])
            rect = fallback_grasp(mask, obs.depth_m, obs.camera.K, self.gripper, margin_m=self.margin_m)
            if rect is not None:
                info = {"fallback": True, "fallback_kind": "colour_segment_minor_axis", "n_segments": len(segments)}
                return PolicyOutput(rect=rect, mask=mask, attention=likelihood, info=info)

        rect, mask, info = self._depth_fallback(obs, valid, edges)
        info["n_segments"] = len(segments)
        return PolicyOutput(rect=rect, mask=mask, attention=likelihood, info=info)

    def _depth_fallback(self, obs: Observation, valid: np.ndarray,
                        edges: np.ndarray) -> tuple[GraspRect, np.ndarray | None, dict[str, Any]]:
        """Grasp the depth segment nearest to the camera and the image centre."""
        height, width = valid.shape
        labels, regions = self._segments(valid, edges)
        depth = np.asarray(obs.depth_m, dtype=np.float64)
        centre = np.array([(width - 1) / 2, (height - 1) / 2])
        half_diag = math.hypot(width, height) / 2
        choices = []
        for label, area, window, region in regions:
            if area > 0.25 * height * width:  # supports (table, shelf boards, back wall) cover large parts
                continue
            z = float(np.median(depth[window][region]))
            ys, xs = np.nonzero(region)
            c = np.array([xs.mean() + window[1].start, ys.mean() + window[0].start])
            choices.append((z, float(np.linalg.norm(c - centre)) / half_diag, label))
        if choices:
            zs = np.array([c[0] for c in choices])
            z_span = max(float(zs.max() - zs.min()), 1e-6)
            ranked = sorted(choices, key=lambda c: (c[0] - zs.min()) / z_span + c[1])
            for _, _, label in ranked[: self.max_segments]:
                mask = labels == label
                grasps = self._grasps(mask, obs)
                if grasps:
                    return grasps[0].rect, mask, {"fallback": True, "fallback_kind": "depth_segment"}
            mask = labels == ranked[0][2]
            rect = fallback_grasp(mask, obs.depth_m, obs.camera.K, self.gripper, margin_m=self.margin_m)
            if rect is not None:
                return rect, mask, {"fallback": True, "fallback_kind": "depth_segment_minor_axis"}
        # Nothing at all: a maximum-opening grasp at the image centre.
        cx, cy = int(round(centre[0])), int(round(centre[1]))
        z = float(depth[cy, cx]) if valid[cy, cx] else 1.0
        fx = float(obs.camera.K[0, 0])
        rect = GraspRect(float(centre[0]), float(centre[1]), self.gripper.max_opening_m * fx / z,
                         self.gripper.finger_width_m * fx / z, 0.0)
        return rect, None, {"fallback": True, "fallback_kind": "image_centre"}
