"""The ``semgrasp`` policy: instruction + RGB-D -> clip_sam mask -> crop -> five tokens -> grasp rectangle.

A full learned stack: clip_sam's pipeline (:class:`~graspsim.policies.clip_sam.pipeline.ClipSamPipeline`, which
steers part instructions itself) finds the named product's mask; the semgrasp network (:mod:`.predictor`) reads
the product's crop and the FULL instruction (MiniLM token states) and writes ``[part, angle, opening, x, y]``
tokens, decoded into a rectangle the environment executes. The part token is restricted to the parts of the class
clip_sam reads from the instruction (its text-side class, not ``Observation.target_class``); the part itself
comes from the instruction text only (``Observation.target_part`` is never read).

``mask=oracle`` (privileged, for analysis): the target class's largest visible instance from the ground-truth
segmentation instead, and the part token restricted to that class's parts; it separates localisation errors
from part errors.

Where the fingers go (``placement``): the tokens place a grasp to half a bin (about 4 mm on a product), and a
grasp decoded from bin centres often misses the product's edge or closes too narrow. ``rerank`` (default): the
shared mask planner proposes grasps that fit the product (on the whole mask, and with ``strips`` on the strip of
the mask along each decoded grasp's closing axis), and the network ranks them by the log-probability of their
angle, opening and position tokens given the decoded part: the tokens choose which part and where on it, the
planner measures the chord. With a part head, the network also segments the product's parts, and
``part_rank`` orders the planner's grasps by that segmentation first: grasps whose chord on the product is
mostly the decoded part (:func:`part_share`) and/or whose predicted finger contacts
(:func:`~graspsim.grasping.part_grasps.holds_part`, the test the oracle runs on the true ``part_seg``, with
the part planner's grasps on the part's predicted pixels added) both lie on it. ``snap``: each decoded rectangle
replaced by the nearest planner grasp within ``snap_bins`` token bins. ``decoded``: the decoded rectangles as they are. ``grasp_candidates`` angle bins are
decoded; with the arm, the first rectangle it has a motion plan for is executed
(:func:`~graspsim.policies.base.first_executable`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Mapping

import numpy as np

from graspsim.assets.parts import part_index, part_names, word_to_label
from graspsim.config import GripperSpec
from graspsim.policies.base import PolicyError, PolicyOutput, as_observation, catalog, copy_config, first_executable
from graspsim.policies.semgrasp.config import SemGraspPolicyConfig, resolve_checkpoint
from graspsim.types import Observation


def strip_distance(shape: tuple[int, int], rect) -> np.ndarray:
    """(H, W) float: each pixel's distance (px) from the line through ``rect``'s centre along its closing axis."""
    from graspsim.grasping.rect_geometry import rect_axes

    _, v = rect_axes(rect.theta)
    rows, cols = np.indices(shape, dtype=np.float64)
    return np.abs((cols - rect.x) * v[0] + (rows - rect.y) * v[1])


def part_share(rects: list, labels: np.ndarray, label: int, mask: np.ndarray) -> np.ndarray:
    """(N,) float: for each grasp rectangle, the share of the product's pixels under it (``mask`` (H, W) bool
    inside the rectangle) that ``labels`` ((H, W) int) gives part ``label``; 0 for a rectangle off the product.
    Where the camera cannot see the pads' contacts (a can lying on its side, seen from above), the chord the
    jaws close across says which end they hold."""
    from graspsim.grasping.rect_geometry import rect_polygon_mask

    out = np.zeros(len(rects))
    for i, rect in enumerate(rects):
        under = rect_polygon_mask(rect, mask.shape) & mask
        if under.any():
            out[i] = float(np.mean(labels[under] == label))
    return out


#: Alternatives returned beside the executed rectangle (for reports; reranking ranks up to planner_candidates).
MAX_OTHER_CANDIDATES = 8


class SemGraspPolicy:
    """Part-aware grasps as language-aligned tokens (module docstring); arguments: :class:`SemGraspPolicyConfig`."""

    name: ClassVar[str] = "semgrasp"
    needs_privileged: ClassVar[bool] = False  # per instance: True with mask=oracle
    config_class: ClassVar[type[SemGraspPolicyConfig]] = SemGraspPolicyConfig

    def __init__(self, config: SemGraspPolicyConfig | None = None, **kwargs: Any):
        self.config = cfg = SemGraspPolicyConfig.resolve(config, kwargs)
        import torch

        from graspsim.policies.semgrasp.predictor import SemGraspPredictor, load_net
        from graspsim.policies.semgrasp.text import TextStates

        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        copy_config(self, cfg)
        self.gripper = cfg.gripper or GripperSpec()
        self.needs_privileged = cfg.mask == "oracle"
        self.pipeline = None
        minilm = None
        if cfg.mask == "clip_sam":
            from graspsim.policies.clip_sam.policy import _make_pipeline, load_models

            self.pipeline = _make_pipeline(cfg, *load_models(cfg.clip_model(), cfg.sam))
            minilm = getattr(self.pipeline.aligned_text, "minilm", None)  # one MiniLM in memory, not two
        self.checkpoint_dir = resolve_checkpoint(cfg.checkpoint)
        net, self.meta = load_net(self.checkpoint_dir)
        self.predictor = SemGraspPredictor(net, TextStates(net.config.max_text, minilm), self.gripper)

    def reset(self, rng: np.random.Generator) -> None:
        pass  # deterministic: eval mode, greedy decoding

    def _mask(self, obs: Observation, info: dict) -> tuple[np.ndarray, np.ndarray | None, str]:
        """``(mask (H, W) bool, attention or None, class name whose parts the part token may take)``."""
        if self.pipeline is None:
            if obs.class_seg is None or obs.instance_seg is None:
                raise PolicyError("semgrasp with mask=oracle needs privileged segmentation (class_seg, instance_seg)")
            target = np.asarray(obs.class_seg) == catalog().class_index(obs.target_class)
            ids, counts = np.unique(np.asarray(obs.instance_seg)[target], return_counts=True)
            if not len(ids):
                raise PolicyError(f"no visible pixel of target class {obs.target_class!r}")
            return target & (np.asarray(obs.instance_seg) == ids[int(np.argmax(counts))]), None, obs.target_class
        from graspsim.policies.clip_sam.gradcam import part_steered_text

        result = self.pipeline.run(obs.rgb, obs.depth_m, obs.camera.K, obs.instruction, self.prompt_mode,
                                   T_world_camera=obs.camera.T_world_camera, scene_kind=obs.scene_kind)
        info.update(sam_score=round(result.sam_score, 4), clip_text=result.text,
                    **{f"{k}_ms": round(v, 1) for k, v in result.stage_ms.items()})
        if not result.mask.any():
            raise PolicyError(f"SAM returned an empty mask for {obs.instruction!r}")
        class_name = catalog().CATALOG[self.pipeline.text_class(part_steered_text(obs.instruction))].name
        return result.mask, result.attention, class_name

    def _planned(self, obs: Observation, mask: np.ndarray, decoded: list, box: tuple) -> list:
        """Grasp rectangles of the shared mask planner on the product: on the whole mask (``planner_candidates``
        at most, best first), then (``strips``) on the strip of the mask along each decoded rectangle's closing
        axis through its centre (coarse to fine: the tokens say where along the product, the planner measures
        the chord there; on the whole mask the planner's centres lie on a grid too coarse for a 2 cm cap)."""
        from graspsim.grasping.mask_grasps import mask_to_grasps, object_grasps

        n_angle = self.predictor.net.config.n_angle
        kw = dict(grasp_depth_m=self.grasp_depth_m, margin_m=self.margin_m, n_angles=n_angle)
        out = [g.rect for g in object_grasps(mask, obs.depth_m, obs.camera, obs.scene_kind, obs.approach_world,
                                             self.gripper, max_candidates=self.planner_candidates,
                                             max_centres=max(24, self.planner_candidates // 2), **kw)]
        if self.strips:
            half = box[2] / self.predictor.net.config.n_pos / 2  # half a position bin either side of the line
            for d in decoded:
                strip = mask & (strip_distance(mask.shape, d.rect) <= half)
                out += [g.rect for g in mask_to_grasps(strip, obs.depth_m, obs.camera.K, self.gripper,
                                                       max_candidates=6, theta_range=(d.rect.theta, np.pi / n_angle / 2),
                                                       **kw)]
        return out

    def _snap(self, planned: list, box: tuple, rects: list) -> list:
        """Per rectangle its snapped replacement (:func:`~.predictor.snap`) or False."""
        from graspsim.policies.semgrasp.predictor import snap

        out = []
        for r in rects:
            found = snap(r, planned, box, self.predictor.net.config.tokens, self.snap_bins)
            out.append(False if found is None else found[0])
        return out

    def _place(self, obs: Observation, mask: np.ndarray, box: tuple, decoded: list, class_name: str,
               info: dict) -> list:
        """The rectangles to try, best first, by ``placement`` (see the config); ``info["placed"]`` says which
        kind they are (``decoded``, ``snap`` or ``rerank``)."""
        info["placed"] = self.placement
        rects = [d.rect for d in decoded]
        if self.placement == "decoded":
            return rects
        planned = self._planned(obs, mask, decoded, box)
        info["planned"] = len(planned)
        if self.placement == "snap":
            snapped = self._snap(planned, box, rects)
            info["snapped"] = [s is not False for s in snapped]
            return [r if s is False else s for r, s in zip(rects, snapped)]
        keys = []  # sort keys, most significant last (np.lexsort)
        labels = self._part_labels(obs, mask, box, class_name) if self.part_rank != "none" else None
        if labels is not None and decoded[0].part in part_names(class_name):
            label = part_index(class_name, decoded[0].part) + 1
            if "contacts" in self.part_rank:
                planned, on_part = self._on_part(obs, mask, labels, label, planned)
                info["on_part"] = int(on_part.sum())
                keys.append(~on_part)
            if "share" in self.part_rank:
                mostly = part_share(planned, labels, label, mask) >= 0.5
                info["mostly_on_part"] = int(mostly.sum())
                keys.append(~mostly)
        if not planned:
            info["placed"] = "decoded"
            return rects
        logp = self.predictor.score(obs.rgb, obs.depth_m, mask, obs.instruction, decoded[0].part, planned, box)
        order = np.lexsort((np.arange(len(planned)), -logp, *keys))  # the part keys first, then logp
        info["rerank_logp"] = round(float(logp[order[0]]), 3)
        return [planned[i] for i in order]

    def _part_labels(self, obs: Observation, mask: np.ndarray, box: tuple, class_name: str) -> np.ndarray | None:
        """(H, W) int64 part labels of the product (``k + 1`` = part ``k`` of ``class_name``, as ``part_seg``)
        from the part head, or None without one."""
        words = self.predictor.part_words(obs.rgb, obs.depth_m, mask, box, part_names(class_name))
        return None if words is None else word_to_label(class_name)[words]

    def _on_part(self, obs: Observation, mask: np.ndarray, labels: np.ndarray, label: int,
                 planned: list) -> tuple[list, np.ndarray]:
        """``(planned + the part planner's grasps on part label, (N,) bool: predicted contacts both on it)``."""
        from graspsim.grasping.part_grasps import holds_part, part_grasps

        n_angle = self.predictor.net.config.n_angle
        extra = [g.rect for g in part_grasps(label, mask, labels, obs.depth_m, obs.camera, obs.scene_kind,
                                             obs.approach_world, self.gripper, grasp_depth_m=self.grasp_depth_m,
                                             margin_m=self.margin_m, n_angles=n_angle, max_candidates=20)]
        on = [holds_part(r, label, labels, obs.depth_m, obs.camera, obs.scene_kind, obs.approach_world, self.gripper,
                         self.grasp_depth_m) for r in planned]
        return planned + extra, np.array(on + [True] * len(extra), dtype=bool)

    def act(self, obs: Observation | Mapping[str, Any]) -> PolicyOutput:
        obs = as_observation(obs)
        info: dict[str, Any] = {"mask_source": self.mask}
        mask, attention, class_name = self._mask(obs, info)
        allowed = part_names(class_name) if self.restrict_parts else None
        box, decoded = self.predictor.predict(obs.rgb, obs.depth_m, mask, obs.camera.K, obs.instruction, allowed,
                                              self.grasp_candidates)
        rects = self._place(obs, mask, box, decoded, class_name, info)
        index, checked = first_executable(rects, obs, self.gripper, self.grasp_depth_m)
        best = decoded[0] if info["placed"] == "rerank" else decoded[index]
        info.update(mask_px=int(mask.sum()), perceived_class=class_name, part=best.part,
                    tokens=[int(t) for t in best.tokens], logp=round(best.logp, 3), box=[round(v, 1) for v in box],
                    candidate=index, arm_checked=checked)
        others = [r for i, r in enumerate(rects) if i != index][:MAX_OTHER_CANDIDATES]
        return PolicyOutput(rect=rects[index], candidates=others, mask=mask, attention=attention, info=info)
