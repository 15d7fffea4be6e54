"""The ``clip_sam`` policy: :class:`~.pipeline.ClipSamPipeline` mask -> grasp rectangle.

Models (``clip=`` / ``sam=``, or ``graspsim bench --clip MODEL --sam MODEL``):

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

The mask goes through the shared object-grasp planner
(:func:`graspsim.grasping.mask_grasps.object_grasps`, the oracle's and the
dataset labels' planner); when no candidate passes its checks, a rectangle
across the mask's minor axis (``info["fallback"]``). ``info`` records the
prompt mode, SAM's predicted IoU and the stage times.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from graspsim.config import GRASP_DEPTH_M, GRASP_MARGIN_M, GripperSpec
from graspsim.policies.base import PolicyError, PolicyOutput
from graspsim.types import Observation

CHECKPOINTS = Path(__file__).resolve().parent / "checkpoints"
DEFAULT_PROMPT_MODE = "points"
# Measured on shelf-test (README "clip_sam"): with the sim-trained CLIP the dense patch-text similarity
# localises the named product far better than Grad-CAM of the pooled score.
DEFAULT_ATTENTION = "similarity"
# Box prompts: the region above this fraction of the attention peak. The zoomed map spreads over the facings of
# the same product beside the target, so the paper-style 0.5 gives boxes ~2x too wide; chosen on 30 shelf-train
# scenes not used in training (`graspsim evaluate masks --suite shelf-train --seed 1600 --episodes 30 --threshold
# T`: box IoU 0.548 / 0.694 / 0.717 for T = 0.5 / 0.65 / 0.75), never on the test suites.
DEFAULT_BOX_THRESHOLD = 0.75
# Box prompts are re-run once with the box of SAM's first mask (see ClipSamPipeline.segment): on the same 30
# held-out shelf-train scenes box IoU 0.717 -> 0.752 (1 pass) -> 0.763 (3 passes); each pass is one more SAM call.
DEFAULT_BOX_REFINE = 1


def shipped_checkpoint(kind: str) -> Path:
    """Directory of the shipped sim-trained ``clip`` or ``sam`` model."""
    return CHECKPOINTS / kind


def _resolve(name: str | os.PathLike | None, kind: str) -> str:
    """A loadable name/path for ``name`` (None = shipped checkpoint)."""
    from graspsim.policies.clip_sam.models import WeightsNotFoundError

    if name is None or str(name) in ("", "default", "sim"):
        path = shipped_checkpoint(kind)
        if not (path / "config.json").is_file():
            raise WeightsNotFoundError(
                f"the shipped sim-trained {kind.upper()} is missing from {path} (a broken install?); train one with "
                f"`graspsim train {kind} --data DIR --out {kind}-model` and pass --{kind} {kind}-model")
        return str(path)
    text = os.fspath(name)
    from graspsim.weights.registry import REGISTRY, ALIASES

    if ALIASES.get(text, text) in REGISTRY:
        from graspsim.weights.store import WeightsUnavailableError, resolve

        try:
            return str(resolve(text))
        except WeightsUnavailableError as exc:
            raise WeightsNotFoundError(str(exc)) from None
    return text


def load_models(clip: str | os.PathLike | None = None, sam: str | os.PathLike | None = None, device: str = "cpu"):
    """``(clip_model, tokenizer, sam_model)`` in eval mode, float32.

    Raises :class:`~.models.WeightsNotFoundError` (what is missing, where it was
    looked for, which command fetches it) when weights are not available.
    """
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from graspsim.policies.clip_sam.models import WeightsNotFoundError, load_clip, load_sam

    # Loading bars and the "no torchvision, PIL image processor" notice are noise in a benchmark log.
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()

    clip_name = _resolve(clip, "clip")
    clip_model, processor = load_clip(clip_name, device=device)
    tokenizer = getattr(processor, "tokenizer", None)
    if tokenizer is None:
        try:
            tokenizer = AutoTokenizer.from_pretrained(clip_name, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise WeightsNotFoundError(f"CLIP {clip_name!r} has no tokenizer files (tokenizer.json or "
                                       f"vocab.json + merges.txt) next to its weights") from exc
    sam_name = _resolve(sam, "sam")
    if sam_name.endswith(".pth"):
        from graspsim.policies.clip_sam.sam_convert import load_official_sam

        sam_model = load_official_sam(sam_name, device=device)
    else:
        sam_model, _ = load_sam(sam_name, device=device)
    return clip_model.float().eval(), tokenizer, sam_model.float().eval()


def _flag(value) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def _crop_size(clip_model) -> int | None:
    """The crop size a model was trained to classify at (its metadata.json), else None (= its input size)."""
    import json

    meta = Path(str(getattr(clip_model, "name_or_path", "") or "")) / "metadata.json"
    if meta.is_file():
        return json.loads(meta.read_text(encoding="utf-8")).get("preprocess", {}).get("crop_size")
    return None


class ClipSamPolicy:
    """CLIP Grad-CAM prompts SAM; SAM's mask is grasped by the shared planner.

    Parameters: ``clip`` / ``sam`` (see the module docstring), ``prompt_mode``
    (``point`` / ``points`` / ``box`` / ``box+points``), ``zoom`` (second
    Grad-CAM pass on a depth-sized window), ``cam_layer`` (ViT layer whose input
    Grad-CAM reads), ``cam_method`` (``gradcam`` / ``hirescam``), ``n_negative``
    (negative points), ``verify`` and ``n_candidates`` (follow that many
    attention peaks and keep the mask CLIP classifies as the named product; see
    :mod:`.pipeline`), ``text_encoder`` (``clip``, ``minilm`` = the aligned
    all-MiniLM-L6-v2 sentence encoder of :mod:`.minilm`, ``auto`` = MiniLM for
    instructions with words CLIP's tokenizer does not know, when installed), ``threads`` (torch threads; None leaves torch's default),
    plus the grasp planner's settings.
    """

    name: ClassVar[str] = "clip_sam"
    needs_privileged: ClassVar[bool] = False

    def __init__(self, clip: str | None = None, sam: str | None = None, prompt_mode: str = DEFAULT_PROMPT_MODE,
                 zoom: bool = True, cam_layer: int = -1, cam_method: str = DEFAULT_ATTENTION, n_negative: int = 0,
                 k_points: int = 3, threshold: float = DEFAULT_BOX_THRESHOLD, verify: bool = True,
                 n_candidates: int = 3, text_encoder: str = "auto", threads: int | None = None,
                 box_refine: int = DEFAULT_BOX_REFINE,
                 gripper: GripperSpec | None = None,
                 grasp_depth_m: float = GRASP_DEPTH_M, margin_m: float = GRASP_MARGIN_M, max_candidates: int = 10):
        from graspsim.policies.clip_sam.prompts import PROMPT_MODES

        if prompt_mode not in PROMPT_MODES:
            raise ValueError(f"unknown prompt_mode {prompt_mode!r}; valid: {', '.join(PROMPT_MODES)}")
        zoom, verify = _flag(zoom), _flag(verify)
        import torch

        if threads:
            torch.set_num_threads(int(threads))
        from graspsim.policies.clip_sam.pipeline import ClipSamPipeline

        clip_model, tokenizer, sam_model = load_models(clip, sam)
        aligned = None
        from graspsim.policies.clip_sam import minilm

        if text_encoder == "minilm" or (text_encoder == "auto" and minilm.available()):
            aligned = minilm.AlignedText(clip_model, tokenizer)  # raises MiniLMUnavailableError if missing
        self.models = {"clip": str(clip or "sim"), "sam": str(sam or "sim")}
        self.pipeline = ClipSamPipeline(clip_model, tokenizer, sam_model, cam_layer=int(cam_layer), zoom=zoom,
                                        threshold=float(threshold), k_points=int(k_points),
                                        n_negative=int(n_negative), n_candidates=int(n_candidates), verify=verify,
                                        crop_size=_crop_size(clip_model), cam_method=str(cam_method),
                                        aligned_text=aligned, text_encoder=text_encoder,
                                        box_refine=int(box_refine))
        self.prompt_mode = prompt_mode
        self.gripper = gripper or GripperSpec()
        self.grasp_depth_m = float(grasp_depth_m)
        self.margin_m = float(margin_m)
        self.max_candidates = int(max_candidates)

    def reset(self, rng: np.random.Generator) -> None:
        # Deterministic: the models run in eval mode and nothing is sampled.
        pass

    def act(self, obs: Observation) -> PolicyOutput:
        from graspsim.grasping.mask_grasps import fallback_grasp, object_grasps

        result = self.pipeline.run(obs.rgb, obs.depth_m, obs.camera.K, obs.instruction, self.prompt_mode)
        info: dict[str, Any] = {"prompt_mode": self.prompt_mode, "sam_score": round(result.sam_score, 4),
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
        if grasps:
            best = grasps[0]
            info.update(fallback=False, grasp_score=round(best.score, 4), opening_m=round(best.opening_m, 4))
            return PolicyOutput(rect=best.rect, candidates=[g.rect for g in grasps[1:]], mask=result.mask,
                                attention=result.attention, info=info)
        rect = fallback_grasp(result.mask, obs.depth_m, obs.camera.K, self.gripper, margin_m=self.margin_m)
        if rect is None:
            raise PolicyError("no grasp on the segmented mask")
        info["fallback"] = True
        return PolicyOutput(rect=rect, mask=result.mask, attention=result.attention, info=info)
