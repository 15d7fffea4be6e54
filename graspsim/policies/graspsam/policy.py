"""The ``graspsam`` policy: a prompt for the named product -> GraspSAM's mask and maps -> the grasp rectangle.

Prompt modes (``--policy-arg prompt=...``, :func:`~.config.parse_prompt`):

* ``language`` (default): the instruction becomes a box through clip_sam's attention stack (CLIP attention ->
  SAM mask, CLIP-verified; :class:`~graspsim.policies.clip_sam.pipeline.ClipSamPipeline` in box mode), the
  box around that mask prompts GraspSAM - the paper's grounding detector + GraspSAM. Nothing privileged.
* ``points:K`` / ``point`` / ``box``: K points sampled on (or the box of) the largest visible instance of the
  target class in the privileged instance segmentation: the upper bound of a perfect prompter.
* ``text``: the instruction's CLIP text embedding (the checkpoint's text encoder, by default clip_sam's shipped
  CLIP) as one learned sparse prompt token (with the text adapters) on depth-sized tiles of the image; the box
  around the part of the predicted mask GraspSAM is surest of then prompts it again
  (:meth:`~.predictor.GraspSamPredictor.find_text`). GraspSAM grounds the product itself: no attention map, no
  second model's mask. Nothing privileged.
* ``none``: no prompt, the whole image: the best grasp on any product (category-agnostic).

``robot_mask=robotseg|oracle`` (:mod:`graspsim.policies.robot_mask`) excludes the robot's pixels before
perception: the language stage's attention and masks skip them (:mod:`graspsim.policies.clip_sam.pipeline`),
GraspSAM's quality peaks are searched only off them and its mask loses them
(:meth:`~.predictor.GraspSamPredictor.predict`), and grasps whose jaw plates lie on them are dropped;
``info["robot_mask_px"]``.

The grasp is the quality map's peak inside the predicted mask (:class:`~.predictor.GraspSamPredictor`); the
further peaks are the candidates. ``info``: prompt, mask size, whether the mask was empty, stage times
(language stages of clip_sam, then ``net_ms`` and ``decode_ms``).
"""

from __future__ import annotations

import time
from typing import Any, ClassVar, Mapping

import numpy as np

from graspsim.policies.base import PolicyError, PolicyOutput, as_observation, catalog
from graspsim.policies.graspsam.config import GraspSamPolicyConfig
from graspsim.policies.robot_mask import RobotPixels, drop_grasps_on_robot, robot_info
from graspsim.types import GraspRect, Observation


class GraspSamPolicy:
    """GraspSAM on the shipped (or a given) checkpoint; arguments: :class:`~.config.GraspSamPolicyConfig`."""

    name: ClassVar[str] = "graspsam"
    needs_privileged: ClassVar[bool] = False  # the instance attribute says True for points / box prompts
    config_class: ClassVar[type[GraspSamPolicyConfig]] = GraspSamPolicyConfig

    def __init__(self, config: GraspSamPolicyConfig | None = None, **kwargs: Any):
        from graspsim.learn.checkpoint import read_metadata
        from graspsim.policies.clip_sam.models import load_any_sam
        from graspsim.policies.graspsam.config import resolve_checkpoint
        from graspsim.policies.graspsam.predictor import GraspSamPredictor, load_net

        self.config = cfg = GraspSamPolicyConfig.resolve(config, kwargs)
        if cfg.threads:
            import torch

            torch.set_num_threads(cfg.threads)
        self.mode = cfg.prompt_mode
        self.robot_pixels = RobotPixels(cfg.robot_mask, cfg.robot_mask_checkpoint)
        # read by the runner to ask for instance_seg (point / box prompts) or robot_seg (robot_mask=oracle)
        self.needs_privileged = cfg.needs_privileged
        path = resolve_checkpoint(cfg.checkpoint)
        meta = read_metadata(path)
        sam_name = cfg.sam if cfg.sam is not None else meta.get("sam")
        self.pipeline = self.text_encoder = None
        if self.mode.kind == "text":
            from graspsim.policies.graspsam.text import TextEncoder

            cfg.check_files()  # PolicyArgError without a text token
            self.text_encoder = TextEncoder(cfg.clip if cfg.clip is not None else meta.get("text_encoder"))
        if self.mode.kind == "language":
            from graspsim.policies.clip_sam.config import DEFAULT_BOX_REFINE, ClipSamPolicyConfig
            from graspsim.policies.clip_sam.policy import _make_pipeline, load_models

            clip_model, tokenizer, sam = load_models(cfg.clip, sam_name)
            # one SAM instance serves both: GraspSAM never modifies it
            refine = 0 if cfg.language_refine == "off" else DEFAULT_BOX_REFINE
            self.pipeline = _make_pipeline(ClipSamPolicyConfig(clip=cfg.clip, sam=sam_name, prompt_mode="box",
                                                               box_refine=refine, n_candidates=cfg.language_candidates),
                                           clip_model, tokenizer, sam)
            self.pipeline.refine_chosen = cfg.language_refine == "chosen"
        else:
            sam = load_any_sam(sam_name)
        net, _ = load_net(path, sam=sam)
        self.checkpoint = str(path)
        self.predictor = GraspSamPredictor(net, opening=cfg.opening, placement=cfg.placement,
                                           angle_search_deg=cfg.angle_search, point_refine=cfg.point_refine)
        self.rng = np.random.default_rng(0)

    def reset(self, rng: np.random.Generator) -> None:
        self.rng = rng  # privileged point prompts are sampled from it

    def _prompt(self, obs: Observation, info: dict, robot: np.ndarray | None = None):
        """``(prompt in image pixels or None, text embedding or None)``: None for "none" (and for a text prompt
        whose token found nothing: its embedding then prompts the whole image); the language stage's times go
        into ``info``."""
        from graspsim.policies.graspsam.predictor import prompt_from_mask

        if self.mode.kind == "none":
            return None, None
        if self.mode.kind == "language":
            return self.language_prompt(obs.rgb, obs.depth_m, obs.camera.K, obs.instruction, info, robot,
                                        T_world_camera=obs.camera.T_world_camera, scene_kind=obs.scene_kind), None
        if self.mode.kind == "text":
            return self.text_prompt(obs.rgb, obs.depth_m, obs.camera.K, obs.instruction, info, robot)
        if obs.instance_seg is None or obs.class_seg is None:
            raise PolicyError(f"graspsam prompt={self.mode} needs the privileged instance segmentation")
        target = np.asarray(obs.class_seg) == catalog().class_index(obs.target_class)
        if not target.any():
            raise PolicyError(f"no visible pixel of target class {obs.target_class!r}")
        ids, counts = np.unique(np.asarray(obs.instance_seg)[target], return_counts=True)
        mask = target & (np.asarray(obs.instance_seg) == ids[int(np.argmax(counts))])
        return prompt_from_mask(mask, self.mode, self.rng), None

    def language_prompt(self, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray, instruction: str, info: dict,
                        robot: np.ndarray | None = None, T_world_camera: np.ndarray | None = None,
                        scene_kind: str | None = None):
        """The box prompt (image pixels) of ``instruction``: clip_sam's box-mode pipeline (``robot`` pixels
        excluded), then the box around its mask; its stage times and CLIP's target probability go into ``info``.
        PolicyError if it finds nothing."""
        from graspsim.policies.clip_sam.prompts import Prompt
        from graspsim.masks import mask_box

        res = self.pipeline.run(rgb, depth_m, K, instruction, "box", exclude=robot, T_world_camera=T_world_camera,
                                scene_kind=scene_kind)
        info.update({f"lang_{k}_ms": round(v, 1) for k, v in res.stage_ms.items()})
        info["lang_target_prob"] = None if np.isnan(res.target_prob) else round(res.target_prob, 4)
        if not res.mask.any():
            raise PolicyError(f"graspsam: the language stage found no mask for {instruction!r}")
        return Prompt("box", np.zeros((0, 2)), np.zeros(0), mask_box(res.mask))

    def text_prompt(self, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray, instruction: str, info: dict,
                    robot: np.ndarray | None = None):
        """``(box prompt, None)``: the box (image pixels) GraspSAM's text token finds for ``instruction``
        (``robot`` pixels excluded); ``(None, text embedding)`` when its mask is empty (the caller then decodes the
        text-prompted whole image, as for an empty mask of any prompt). The pass's milliseconds, mask size and
        ``text_found`` go into ``info``."""
        t0 = time.perf_counter()
        embedding = self.text_encoder.embed([instruction])[0]
        t1 = time.perf_counter()
        prompt, mask = self.predictor.find_text(rgb, depth_m, K, embedding, exclude=robot)
        info.update(text_embed_ms=round((t1 - t0) * 1e3, 1), text_find_ms=round((time.perf_counter() - t1) * 1e3, 1),
                    text_mask_px=int(mask.sum()), text_found=prompt is not None)
        return (prompt, None) if prompt is not None else (None, embedding)

    def act(self, obs: Observation | Mapping[str, Any]) -> PolicyOutput:
        obs = as_observation(obs)
        info: dict[str, Any] = {"prompt": str(self.mode)}
        t0 = time.perf_counter()
        robot = self.robot_pixels(obs)
        info.update(robot_info(robot), robot_ms=round((time.perf_counter() - t0) * 1e3, 1))
        t0 = time.perf_counter()
        prompt, text_embed = self._prompt(obs, info, robot)
        info["prompt_ms"] = round((time.perf_counter() - t0) * 1e3, 1)
        from graspsim.grasping.mask_grasps import closing_axis_range

        out = self.predictor.predict(obs.rgb, obs.depth_m, obs.camera.K, prompt, exclude=robot,
                                     theta_range=closing_axis_range(obs.camera, obs.scene_kind, obs.approach_world),
                                     text_embed=text_embed)
        info.update(mask_px=int(out["mask"].sum()), mask_empty=bool(out["mask_empty"]), refined=out["refined"],
                    score=round(float(out["scores"][0]), 4), fits=bool(out["fits"][0]),
                    **{f"{k}_ms": round(v * 1e3, 1) for k, v in out["seconds"].items()})
        if prompt is not None:
            info["prompt_points"] = int(len(prompt.points))
            if prompt.box is not None:
                info["prompt_box"] = [round(float(v), 1) for v in prompt.box]
        rects = [GraspRect(*(float(v) for v in r)).normalized() for r in out["rects"]]
        kept = drop_grasps_on_robot(rects, robot)
        info["dropped_on_robot"] = len(rects) - len(kept)
        if not kept:
            raise PolicyError("graspsam: every grasp found has a jaw on the robot's pixels")
        rects = [rects[i] for i in kept]
        h, w = np.shape(obs.depth_m)[:2]
        rects[0].validate(w, h)
        return PolicyOutput(rect=rects[0], candidates=rects[1: 1 + self.config.max_candidates], mask=out["mask"],
                            info=info)
