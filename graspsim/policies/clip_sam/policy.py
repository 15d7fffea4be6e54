"""The ``clip_sam`` policy: :class:`~.pipeline.ClipSamPipeline` mask -> grasp rectangle.

The policy's arguments are the fields of :class:`~.config.ClipSamPolicyConfig` (checked
before any model loads). Models (``clip=`` / ``sam=``, or ``graspsim bench --clip
MODEL --sam MODEL``):

* default (None): the sim-trained checkpoints shipped in the package
  (``graspsim/policies/clip_sam/checkpoints/{clip,sam}``: small CLIP- and
  SAM-architecture models trained here with ``graspsim train clip|sam`` on
  rendered scenes; their ``metadata.json`` says on what and how well);
* a name from ``graspsim weights list`` (``clip-vit-base-patch32``,
  ``sam-vit-base``, ``sam_vit_b`` ...) once fetched into the weights store;
* a Hugging Face id (from the local Hugging Face cache) or a local directory
  written by ``save_pretrained``;
* for SAM, an official Segment Anything ``.pth`` checkpoint (vit_b/l/h),
  mapped onto ``transformers.SamModel`` by :mod:`.sam_convert`.

With ``robot_mask=robotseg|oracle`` the robot's pixels (:mod:`graspsim.policies.robot_mask`) are excluded
before perception: the attention maps are zero there and SAM's masks lose them (:mod:`.pipeline`), and planned
grasps whose jaw plates lie on them are dropped (a fallback rectangle there raises :class:`PolicyError`);
``info["robot_mask_px"]`` counts them (None for ``robot_mask=none``), ``info["robot_ms"]`` times RobotSeg.

The mask goes through the shared object-grasp planner
(:func:`graspsim.grasping.mask_grasps.object_grasps`, the oracle's and the
dataset labels' planner); when no candidate passes its checks, a rectangle
across the mask's minor axis (``info["fallback"]``). ``info`` records the
prompt mode, SAM's predicted IoU and the stage times.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any, ClassVar, Mapping

import numpy as np

from graspsim.config import GripperSpec
from graspsim.policies.base import PolicyError, PolicyOutput, as_observation, copy_config
from graspsim.policies.clip_sam.config import ClipSamPolicyConfig, resolve_model
from graspsim.policies.robot_mask import RobotPixels, drop_grasps_on_robot, jaws_on_robot, robot_info
from graspsim.types import Observation


def load_models(clip: str | os.PathLike | None = None, sam: str | os.PathLike | None = None, device: str = "cpu"):
    """``(clip_model, tokenizer, sam_model)`` in eval mode, float32.

    Raises :class:`~.models.WeightsNotFoundError` (what is missing, where it was
    looked for, which command fetches it) when weights are not available.
    """
    from graspsim.policies.clip_sam.models import load_any_sam

    clip_model, tokenizer = load_clip_and_tokenizer(clip, device)
    return clip_model, tokenizer, load_any_sam(sam, device=device)


def load_clip_and_tokenizer(clip: str | os.PathLike | None = None, device: str = "cpu"):
    """``(clip_model, tokenizer)`` in eval mode, float32 (None: the shipped CLIP); WeightsNotFoundError as
    :func:`load_models`."""
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from graspsim.policies.clip_sam.models import WeightsNotFoundError, load_clip

    # Loading bars and the "no torchvision, PIL image processor" notice are noise in a benchmark log.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    clip_name = resolve_model(clip, "clip")
    clip_model, processor = load_clip(clip_name, device=device)
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None:
        try:
            tokenizer = AutoTokenizer.from_pretrained(clip_name, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise WeightsNotFoundError(f"CLIP {clip_name!r} has no tokenizer files (tokenizer.json or "
                                       f"vocab.json + merges.txt) next to its weights") from exc
    return clip_model.float().eval(), tokenizer


def _crop_size(clip_model) -> int | None:
    """The crop size a model was trained to classify at (its metadata.json), else None (= its input size)."""
    meta = Path(str(getattr(clip_model, "name_or_path", "") or "")) / "metadata.json"
    if meta.is_file():
        return json.loads(meta.read_text(encoding="utf-8")).get("preprocess", {}).get("crop_size")
    return None


def _make_pipeline(cfg: ClipSamPolicyConfig, clip_model, tokenizer, sam_model):
    """The :class:`~.pipeline.ClipSamPipeline` of loaded models with the settings of ``cfg``; with the MiniLM text
    side aligned to ``clip_model`` when ``cfg.text_encoder`` asks for it (``auto``: if installed)."""
    from graspsim.policies.clip_sam import minilm
    from graspsim.policies.clip_sam.pipeline import ClipSamPipeline

    aligned = None
    if cfg.text_encoder == "minilm" or (cfg.text_encoder == "auto" and minilm.available()):
        aligned = minilm.AlignedText(clip_model, tokenizer)  # raises MiniLMUnavailableError if missing
    shape_dir = cfg.shape_prior_dir()
    shape_prior = None
    if shape_dir is not None:
        from graspsim.policies.clip_sam.shape_prior import load_shape_prior

        shape_prior = load_shape_prior(shape_dir)
    shared = ("cam_layer", "zoom", "threshold", "k_points", "n_negative", "n_candidates", "verify", "cam_method",
              "text_encoder", "box_refine", "shape_weight", "sweep_max")  # config fields that are pipeline settings of that name
    return ClipSamPipeline(clip_model, tokenizer, sam_model, crop_size=_crop_size(clip_model), aligned_text=aligned,
                           shape_prior=shape_prior, **{k: getattr(cfg, k) for k in shared})


class ClipSamPolicy:
    """CLIP attention prompts SAM; SAM's mask is grasped by the shared planner.

    The arguments are the fields of :class:`~.config.ClipSamPolicyConfig` (the attention map: ``cam_method``, by
    default the dense patch-text ``similarity``; models: the module docstring). Build it from a config
    (``ClipSamPolicy(ClipSamPolicyConfig(prompt_mode="box"))``) or its fields (``ClipSamPolicy(prompt_mode="box")``).
    """

    name: ClassVar[str] = "clip_sam"
    needs_privileged: ClassVar[bool] = False
    config_class: ClassVar[type[ClipSamPolicyConfig]] = ClipSamPolicyConfig

    def __init__(self, config: ClipSamPolicyConfig | None = None, **kwargs: Any):
        self.config = cfg = ClipSamPolicyConfig.resolve(config, kwargs)
        if cfg.threads:
            import torch

            torch.set_num_threads(cfg.threads)
        clip = cfg.clip_model()
        clip_model, tokenizer, sam_model = load_models(clip, cfg.sam)
        self.models = {"clip": str(clip or "sim"), "sam": str(cfg.sam or "sim")}
        self.pipeline = _make_pipeline(cfg, clip_model, tokenizer, sam_model)
        copy_config(self, cfg)  # self.prompt_mode, self.grasp_depth_m, ...
        self.gripper = cfg.gripper or GripperSpec()
        self.robot_pixels = RobotPixels(cfg.robot_mask, cfg.robot_mask_checkpoint)
        self.needs_privileged = self.robot_pixels.needs_privileged  # robot_mask=oracle reads robot_seg

    def reset(self, rng: np.random.Generator) -> None:
        pass  # deterministic: the models run in eval mode and nothing is sampled

    def act(self, obs: Observation | Mapping[str, Any]) -> PolicyOutput:
        obs = as_observation(obs)  # the environment's observation dict is accepted too
        from graspsim.grasping.mask_grasps import fallback_grasp, object_grasps

        t0 = time.perf_counter()
        robot = self.robot_pixels(obs)
        robot_ms = (time.perf_counter() - t0) * 1e3
        result = self.pipeline.run(obs.rgb, obs.depth_m, obs.camera.K, obs.instruction, self.prompt_mode,
                                   exclude=robot, T_world_camera=obs.camera.T_world_camera,
                                   scene_kind=obs.scene_kind)
        info: dict[str, Any] = {"prompt_mode": self.prompt_mode, "sam_score": round(result.sam_score, 4),
                                **robot_info(robot), "robot_ms": round(robot_ms, 1),
                                "mask_px": int(result.mask.sum()), "text": result.text,
                                "candidate": result.candidate, "n_candidates": result.n_candidates,
                                "text_encoder": self.pipeline.last_text_encoder,
                                "target_prob": None if np.isnan(result.target_prob) else round(result.target_prob, 4),
                                **{f"{k}_ms": round(v, 1) for k, v in result.stage_ms.items()}}
        if not result.mask.any():
            raise PolicyError(f"SAM returned an empty mask for {obs.instruction!r} ({self.prompt_mode} prompt)")
        t0 = time.perf_counter()
        grasps = object_grasps(result.mask, obs.depth_m, obs.camera, obs.scene_kind, obs.approach_world, self.gripper,
                               grasp_depth_m=self.grasp_depth_m, margin_m=self.margin_m,
                               max_candidates=self.max_candidates)
        info["grasp_ms"] = round((time.perf_counter() - t0) * 1e3, 1)
        kept = drop_grasps_on_robot([g.rect for g in grasps], robot)
        info["dropped_on_robot"] = len(grasps) - len(kept)
        grasps = [grasps[i] for i in kept]
        if grasps:
            best = grasps[0]
            info.update(fallback=False, grasp_score=round(best.score, 4), opening_m=round(best.opening_m, 4))
            return PolicyOutput(rect=best.rect, candidates=[g.rect for g in grasps[1:]], mask=result.mask,
                                attention=result.attention, info=info)
        rect = fallback_grasp(result.mask, obs.depth_m, obs.camera.K, self.gripper, margin_m=self.margin_m)
        if rect is None:
            raise PolicyError("no grasp on the segmented mask")
        if robot is not None and jaws_on_robot(rect, robot):
            raise PolicyError("the only grasp on the segmented mask has a jaw on the robot's pixels")
        info["fallback"] = True
        return PolicyOutput(rect=rect, mask=result.mask, attention=result.attention, info=info)
