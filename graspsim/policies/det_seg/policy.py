"""Policies ``det_seg`` and ``grconvnet``, and the predictors (numpy in, numpy out) they wrap.

The predictors keep the network (:mod:`.model`, :mod:`.grconvnet`) apart from
the image handling: letterbox the camera image to the network input, run the
network, decode, and map every rectangle back to **source image pixels**
(:class:`~graspsim.policies.det_seg.targets.Letterbox`).
"""

from __future__ import annotations

import re
import time
from typing import Any, ClassVar, Mapping

import numpy as np

from graspsim.policies.base import PolicyError, PolicyOutput, as_observation
from graspsim.policies.robot_mask import RobotPixels, drop_grasps_on_robot, exclude_robot, jaws_on_robot, robot_info
from graspsim.policies.det_seg.config import (DEFAULT_MIN_REGION_PX, DetSegPolicyConfig, GrConvNetPolicyConfig,
                                              resolve_checkpoint)
from graspsim.types import GraspRect, Observation

# Edge-aware upsampling of the class probabilities (guided.py): window radius in px of a 640x480 image (scaled
# with the image width), regulariser, and the grid step of the filter coefficients. Chosen on the same 60
# validation scenes, with min_region_px 300 (README "det_seg"): mean class IoU 0.799 with bilinear upsampling;
# radius 4, coefficients every 2 px: 0.852 / 0.856 / 0.839 for eps 1e-3 / 1e-4 / 1e-2 (radius 6 at 1e-3: 0.849);
# coefficients every 4 px (radius 4, eps 1e-4): 0.855 at ~1/3 of the cost (radius 8: 0.856); then leaving out
# classes whose coarse area is under the speck size: 0.860.
GUIDED_RADIUS_PX = 4
GUIDED_EPS = 1e-4
GUIDED_SUBSAMPLE = 4

def _clip_rects(rects: np.ndarray, width: int, height: int) -> np.ndarray:
    """Keep rectangles executable: centre inside the image, sizes at least 1 px, theta wrapped."""
    r = np.asarray(rects, dtype=np.float64).reshape(-1, 5).copy()
    r[:, 0] = np.clip(r[:, 0], 0, width - 1)
    r[:, 1] = np.clip(r[:, 1], 0, height - 1)
    r[:, 2:4] = np.maximum(r[:, 2:4], 1.0)
    r[:, 4] = (r[:, 4] + np.pi / 2) % np.pi - np.pi / 2
    return r


class DetSegPredictor:
    """Wraps a :class:`~.model.DetSegNet` (eval mode): :meth:`predict` maps an RGB image to grasps + segmentation."""

    def __init__(self, net, refine: bool | None = None, min_region_px: float = DEFAULT_MIN_REGION_PX,
                 guided: bool = True):
        self.net = net.eval()
        self.refine = refine
        if not min_region_px >= 0:
            raise ValueError(f"min_region_px must be >= 0, got {min_region_px}")
        self.min_region_px = float(min_region_px)  # at 640x480
        self.guided = bool(guided)  # edge-aware upsampling of the segmentation (guided.py)

    def predict(self, rgb: np.ndarray, with_seg: bool = True) -> dict[str, Any]:
        """(H, W, 3) uint8 RGB -> ``rects`` (K, 5) source px best first, ``scores`` (K,),
        ``seg`` (H, W) int64 labels (0 background, c + 1 catalog class c) or None, ``probs`` (h, w, C) float32
        class probabilities on the network's coarse map (same labels, the source's aspect ratio) or None,
        ``seconds``."""
        import torch

        from graspsim.policies.det_seg.model import remove_small_regions, seg_labels_from_logits, seg_probs_from_logits
        from graspsim.policies.det_seg.targets import Letterbox

        t0 = time.perf_counter()
        rgb = np.asarray(rgb)
        height, width = rgb.shape[:2]
        lb = Letterbox.for_shape(height, width, self.net.config.input_size)
        x = torch.from_numpy(lb.image(rgb)).permute(2, 0, 1)[None].float() / 255.0
        with torch.inference_mode():
            out = self.net(x)
            det = self.net.detect(out, refine=self.refine)[0]
            probs = seg_probs_from_logits(out["seg"], lb) if with_seg else None
            seg = seg_labels_from_logits(out["seg"], lb) if (with_seg and not self.guided) else None
        min_px = self.min_region_px * height * width / (640.0 * 480.0)
        if probs is not None and self.guided:
            from graspsim.policies.det_seg.guided import guided_labels

            scale = width / 640.0
            px_per_cell = height * width / (probs.shape[0] * probs.shape[1])
            seg = guided_labels(rgb, probs, radius=max(1, round(GUIDED_RADIUS_PX * scale)), eps=GUIDED_EPS,
                                subsample=max(1, round(GUIDED_SUBSAMPLE * scale)),
                                min_cells=max(1, int(min_px / px_per_cell)))
        if seg is not None and self.min_region_px > 0:
            seg = remove_small_regions(seg, min_px)
        rects = _clip_rects(lb.rects_to_src(det["rects"].double().numpy()), width, height)
        return {"rects": rects, "scores": det["scores"].double().numpy(), "seg": seg, "probs": probs,
                "seconds": time.perf_counter() - t0}


class GrConvNetPredictor:
    """Wraps a :class:`~.grconvnet.GrConvNet` (eval mode): RGB-D image -> grasps (no segmentation)."""

    def __init__(self, net):
        self.net = net.eval()

    def predict(self, rgb: np.ndarray, depth_m: np.ndarray, with_seg: bool = False) -> dict[str, Any]:
        """(H, W, 3) uint8 + (H, W) metres -> ``rects`` (K, 5) source px best first, ``scores``, ``seg`` None."""
        import torch

        from graspsim.policies.det_seg.grconvnet import decode_maps, prepare_input
        from graspsim.policies.det_seg.targets import Letterbox

        t0 = time.perf_counter()
        cfg = self.net.config
        rgb = np.asarray(rgb)
        height, width = rgb.shape[:2]
        lb = Letterbox.for_shape(height, width, cfg.input_size)
        x = prepare_input(lb.image(rgb), lb.image(np.asarray(depth_m, dtype=np.float32), nearest=True), cfg)[None]
        with torch.inference_mode():
            out = self.net(x)
        maps = {k: v[0, 0].numpy() for k, v in out.items()}
        valid = lb.image(np.ones((height, width), np.uint8), nearest=True).astype(bool)
        rects, scores = decode_maps(maps, cfg, valid)
        rects = _clip_rects(lb.rects_to_src(rects), width, height)
        return {"rects": rects, "scores": scores, "seg": None, "seconds": time.perf_counter() - t0}


def make_predictor(model, refine: bool | None = None, min_region_px: float = DEFAULT_MIN_REGION_PX,
                   guided: bool = True):
    """The predictor for a loaded network (det_seg or GR-ConvNet); ``refine=False`` skips det_seg's refinement,
    ``min_region_px`` is det_seg's segmentation clean-up (0 = off), ``guided=False`` upsamples its segmentation
    bilinearly instead of along the image's edges."""
    from graspsim.policies.det_seg.grconvnet import GrConvNet

    if isinstance(model, GrConvNet):
        return GrConvNetPredictor(model)
    return DetSegPredictor(model, refine=refine, min_region_px=min_region_px, guided=guided)


def target_class_index(obs: Observation) -> int:
    """Catalog index of the class to pick: ``obs.target_class`` or, failing that, a class named in the instruction."""
    from graspsim.assets.catalog import CATALOG, class_index

    if obs.target_class:
        try:
            return class_index(obs.target_class)
        except KeyError:
            pass
    text = " " + re.sub(r"[^a-z0-9]+", " ", (obs.instruction or "").lower()) + " "
    best = None
    for c in CATALOG:  # the longest matching name wins ("water bottle" over "bottle")
        for name in {c.display_name.lower(), c.name.replace("_", " ")}:
            key = " " + re.sub(r"[^a-z0-9]+", " ", name).strip() + " "
            if key in text and (best is None or len(key) > best[0]):
                best = (len(key), c.index)
    if best is None:
        raise PolicyError(f"cannot tell the target class from target_class={obs.target_class!r} "
                          f"and instruction={obs.instruction!r}")
    return best[1]


def likeliest_region(probs: np.ndarray, label: int, height: int, width: int) -> np.ndarray:
    """(height, width) bool: the connected region (8-neighbour) of the coarse map ``probs`` (h, w, C) around the
    cell where class ``label`` is most probable, of the cells where it is at least half that probable, resized
    (nearest) to the source size.

    For a target the segmentation's argmax shows nowhere (the instruction names a product that is in view, but
    an unfamiliar label made another class win its pixels): where the network still finds it likeliest.
    """
    import cv2

    p = np.asarray(probs, dtype=np.float32)[..., label]
    cells = (p >= 0.5 * p.max()).astype(np.uint8)
    _, regions = cv2.connectedComponents(cells, connectivity=8)
    region = regions == regions[np.unravel_index(int(p.argmax()), p.shape)]
    return cv2.resize(region.astype(np.uint8), (width, height), interpolation=cv2.INTER_NEAREST).astype(bool)


def _rect(row: np.ndarray) -> GraspRect:
    return GraspRect(*(float(v) for v in row))


def _on_mask(rects: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """(K,) bool: the centre pixel (rounded half up) of each rectangle lies on ``mask``."""
    h, w = mask.shape
    cols = np.clip(np.floor(rects[:, 0] + 0.5).astype(int), 0, w - 1)
    rows = np.clip(np.floor(rects[:, 1] + 0.5).astype(int), 0, h - 1)
    return mask[rows, cols]


class _NetPolicy:
    """What both network policies share: the config, torch threads, the checkpoint and its predictor."""

    needs_privileged: ClassVar[bool] = False

    def __init__(self, config=None, **kwargs: Any):
        """Build from ``config`` or from its fields as keyword arguments (``DetSegPolicy(checkpoint=CKPT)``)."""
        from graspsim.policies.det_seg.checkpoint import load_checkpoint

        self.config = cfg = self.config_class.resolve(config, kwargs)
        if cfg.num_threads is not None:
            import torch

            torch.set_num_threads(int(cfg.num_threads))
        path = resolve_checkpoint(self.name, cfg.checkpoint)
        self.checkpoint = str(path)
        # what each row records (info["checkpoint"]): the argument as given, or the shipped default's name
        self.checkpoint_name = str(cfg.checkpoint) if cfg.checkpoint is not None else path.name
        self.predictor = self._predictor(load_checkpoint(path, kind=self.name), cfg)
        self.max_candidates = cfg.max_candidates

    def reset(self, rng: np.random.Generator) -> None:
        pass  # deterministic


class DetSegPolicy(_NetPolicy):
    """det_seg: grasps from the detection branch, assigned to the target through the segmentation.

    As the seed does on OCID_grasp: the chosen grasp is the best-scoring one
    whose centre pixel lies on the *predicted* mask of the target class. If no
    detected grasp lands there, the policy plans on that predicted mask with
    :func:`graspsim.grasping.mask_grasps.object_grasps` (``info["fallback"] =
    True``); if the target class is nowhere in the predicted segmentation it
    raises :class:`PolicyError`. ``PolicyOutput.mask`` is the predicted target mask.

    ``robot_mask=robotseg|oracle`` (:mod:`graspsim.policies.robot_mask`): the robot's pixels are taken out of
    the predicted segmentation (they belong to no product, so never to the target mask) and detected or
    planned grasps whose jaw plates lie on them are dropped before the choice; ``info["robot_mask_px"]``.

    Arguments: the fields of :class:`~.config.DetSegPolicyConfig` (``checkpoint``,
    ``refine``, ``min_region_px``, ``guided_seg``, ``num_threads``, ``max_candidates``).
    """

    name: ClassVar[str] = "det_seg"
    config_class: ClassVar[type[DetSegPolicyConfig]] = DetSegPolicyConfig

    def __init__(self, config=None, **kwargs: Any):
        super().__init__(config, **kwargs)
        self.robot_pixels = RobotPixels(self.config.robot_mask, self.config.robot_mask_checkpoint)
        self.needs_privileged = self.robot_pixels.needs_privileged  # robot_mask=oracle reads robot_seg

    @staticmethod
    def _predictor(net, cfg: DetSegPolicyConfig) -> DetSegPredictor:
        return DetSegPredictor(net, refine=cfg.refine, min_region_px=cfg.min_region_px, guided=cfg.guided_seg)

    def act(self, obs: Observation | Mapping[str, Any]) -> PolicyOutput:
        obs = as_observation(obs)  # the environment's observation dict is accepted too
        cls = target_class_index(obs)
        height, width = np.asarray(obs.rgb).shape[:2]
        t0 = time.perf_counter()
        robot = self.robot_pixels(obs)
        robot_ms = (time.perf_counter() - t0) * 1e3
        pred = self.predictor.predict(obs.rgb)
        mask = exclude_robot(pred["seg"] == cls + 1, robot)
        info: dict[str, Any] = {"checkpoint": self.checkpoint_name, "target_class_index": cls,
                                "mask_px": int(mask.sum()),
                                "detections": int(len(pred["rects"])), "net_ms": round(1000 * pred["seconds"], 1),
                                **robot_info(robot), "robot_ms": round(robot_ms, 1)}
        info["likeliest_region"] = False
        if not mask.any() and pred["probs"] is not None:
            mask = exclude_robot(likeliest_region(pred["probs"], cls + 1, height, width), robot)
            info.update(likeliest_region=True, mask_px=int(mask.sum()))
        if not mask.any():
            raise PolicyError(f"det_seg: the predicted segmentation shows no pixel of class {cls} ({obs.target_class!r})")
        on = _on_mask(pred["rects"], mask) if len(pred["rects"]) else np.zeros(0, bool)
        if robot is not None and on.any():
            on &= np.array([not jaws_on_robot(r, robot) for r in pred["rects"]], dtype=bool)
        if on.any():
            idx = np.nonzero(on)[0]
            rect, *candidates = [_rect(pred["rects"][i]) for i in idx[: 1 + self.max_candidates]]
            info.update(fallback=False, score=round(float(pred["scores"][idx[0]]), 4), on_target=int(len(idx)))
        else:
            from graspsim.grasping.mask_grasps import object_grasps

            grasps = object_grasps(mask, obs.depth_m, obs.camera, obs.scene_kind, obs.approach_world)
            grasps = [grasps[i] for i in drop_grasps_on_robot([g.rect for g in grasps], robot)]
            if not grasps:
                raise PolicyError("det_seg: no detected grasp on the predicted target mask and no grasp planned on it")
            info.update(fallback=True, score=round(float(grasps[0].score), 4), on_target=0)
            rect = grasps[0].rect
            candidates = [g.rect for g in grasps[1 : 1 + self.max_candidates]]
        rect.validate(width, height)
        return PolicyOutput(rect=rect, candidates=candidates, mask=mask, info=info)


class GrConvNetPolicy(_NetPolicy):
    """grconvnet: the best grasp of a GR-ConvNet-style network, whatever object it is on.

    GR-ConvNet has no segmentation, so it cannot tell which product a grasp
    belongs to: the policy ignores the instruction and returns the
    highest-quality grasp in the image (``PolicyOutput.mask`` is None). This is
    the class-agnostic baseline; its pick success on a named target is expected
    to be low in cluttered scenes. Arguments: the fields of :class:`~.config.GrConvNetPolicyConfig`.
    """

    name: ClassVar[str] = "grconvnet"
    config_class: ClassVar[type[GrConvNetPolicyConfig]] = GrConvNetPolicyConfig

    @staticmethod
    def _predictor(net, cfg: GrConvNetPolicyConfig) -> GrConvNetPredictor:
        return GrConvNetPredictor(net)

    def act(self, obs: Observation | Mapping[str, Any]) -> PolicyOutput:
        obs = as_observation(obs)  # the environment's observation dict is accepted too
        height, width = np.asarray(obs.rgb).shape[:2]
        # the renderer reports far_m where nothing was hit; the datasets the network learnt from store 0 there
        # (graspsim.data.format.encode_depth), and prepare_input treats only positive depths as valid
        depth = np.asarray(obs.depth_m, dtype=np.float32)
        valid = np.isfinite(depth) & (depth > 0) & (depth < 0.999 * float(obs.camera.far_m))
        pred = self.predictor.predict(obs.rgb, np.where(valid, depth, np.float32(0.0)))
        if len(pred["rects"]) == 0:
            raise PolicyError("grconvnet: no grasp found")
        rect, *candidates = [_rect(r) for r in pred["rects"][: 1 + self.max_candidates]]
        rect.validate(width, height)
        info = {"checkpoint": self.checkpoint_name, "score": round(float(pred["scores"][0]), 4),
                "detections": len(pred["rects"]),
                "net_ms": round(1000 * pred["seconds"], 1), "class_agnostic": True}
        return PolicyOutput(rect=rect, candidates=candidates, info=info)

