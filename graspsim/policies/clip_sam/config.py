"""Every ``--policy-arg`` of the ``clip_sam`` policy, checked before any model loads (no torch here).

:class:`ClipSamPolicyConfig` holds the arguments; :func:`resolve_model` maps a
``clip`` / ``sam`` value to what the loaders take, and
:meth:`ClipSamPolicyConfig.check_files` runs the cheap part of that (paths, the
weights store, the Hugging Face cache when offline) so that a model that is not
there is a one-line error before any worker starts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from graspsim.learn.checkpoint import METADATA_FILE, read_metadata_file, verify
from graspsim.policies.clip_sam.prompts import PROMPT_MODES
from graspsim.policies.config import GraspPlanConfig, arg
from graspsim.policies.robot_mask import RobotMaskConfig

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

# Mask verification beyond CLIP (README "clip_sam results"), chosen 2026-12-02 on validation picks (shelf-train +
# tabletop-train, --seed 5000, 100 each; plain / every product relabelled, --domain-rand labels), never on the test
# suites. Shape prior weight: 0 (CLIP alone) 179 / 64 of 200; 1.0: 179 / 90; 2.0: 178 / 93. The point sweep on
# top of weight 1.0: 0: 179 / 90; 48 masks: 182 / 117; 96: 182 / 110.
DEFAULT_SHAPE_WEIGHT = 1.0
SHAPE_PRIOR_OFF = "off"
DEFAULT_SWEEP_MAX = 48

# The pipeline's choices, checked here only (graspsim.policies.clip_sam.pipeline imports torch).
ATTENTION_METHODS = ("gradcam", "hirescam", "similarity")
TEXT_ENCODERS = ("clip", "minilm", "auto")

_SHIPPED_NAMES = ("", "default", "sim")
# The shipped CLIP fine-tuned with the Grad-CAM localisation term (graspsim train clip --cam-weight, README
# "clip_sam"): the CLIP a gradient map uses unless --clip names another. Its own metadata.json says how it was made.
GRADCAM_CLIP = "gradcam"
# Every shipped checkpoint by (kind, name): the directory under CHECKPOINTS it lives in.
_SHIPPED = {**{(kind, name): kind for kind in ("clip", "sam") for name in _SHIPPED_NAMES},
            ("clip", GRADCAM_CLIP): "clip_gradcam"}


class MissingModelError(FileNotFoundError):
    """A ``clip`` / ``sam`` model that is not on this machine (the message says what, where and how to get it)."""

    def __str__(self) -> str:  # FileNotFoundError would prefix an errno
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class ClipSamPolicyConfig(GraspPlanConfig, RobotMaskConfig):
    """Every ``--policy-arg`` of :class:`~.policy.ClipSamPolicy` (``--clip`` / ``--sam`` set the first two)."""

    policy_name: ClassVar[str] = "clip_sam"

    clip: str | None = None
    """CLIP model: None = the shipped sim-trained one (for gradcam / hirescam maps: the shipped Grad-CAM-trained
    one, ``gradcam``), ``gradcam``, a `graspsim weights` name, a Hugging Face id or a directory."""
    sam: str | None = None
    """SAM model: as ``clip``, or an official Segment Anything ``.pth`` checkpoint."""
    prompt_mode: str = arg(DEFAULT_PROMPT_MODE, choices=PROMPT_MODES)
    """How the attention map prompts SAM: one point, several points, a box, or a box with points."""
    zoom: bool = True
    """Second attention pass on a depth-sized window around the first map's peak."""
    cam_layer: int = -1
    """ViT layer whose input Grad-CAM / HiResCAM reads (negative: counted from the last)."""
    cam_method: str = arg(DEFAULT_ATTENTION, choices=ATTENTION_METHODS)
    """Attention map: dense patch-text ``similarity`` (default), ``gradcam`` or ``hirescam``."""
    n_negative: int = arg(0, min=0)
    """Negative (background) points added to point prompts."""
    k_points: int = arg(3, min=1)
    """Positive points of a ``points`` prompt."""
    threshold: float = arg(DEFAULT_BOX_THRESHOLD, min=0.0, max=1.0)
    """Box prompts: the region above this fraction of the attention peak."""
    verify: bool = True
    """Follow several attention peaks and keep the mask CLIP classifies as the named product."""
    n_candidates: int = arg(5, min=1)
    """Attention peaks followed when ``verify`` is on (then the next as many when none looks like the named
    product). 5 since 2026-12-02 (was 3): on validation scenes 179 vs 174 of 200 picks, 64 vs 57 of 200 with every
    product relabelled (8: 179 and 61); 1.4x the decision time (README "clip_sam results")."""
    text_encoder: str = arg("auto", choices=TEXT_ENCODERS)
    """Instruction text side: ``clip``, ``minilm`` (aligned all-MiniLM-L6-v2), ``auto`` (MiniLM for unknown words)."""
    threads: int | None = arg(None, min=1)
    """torch threads (None: torch's default)."""
    box_refine: int = arg(DEFAULT_BOX_REFINE, min=0)
    """Box prompts re-run with the box of SAM's previous mask this many times."""
    shape_prior: str | None = None
    """Shape prior (:mod:`.shape_prior`: class from a mask's 3-D shape) that joins CLIP in verifying masks: None
    = the shipped one, ``off``, or a directory written by ``graspsim train shape``."""
    shape_weight: float = arg(DEFAULT_SHAPE_WEIGHT, min=0.0)
    """Exponent of the shape prior's probabilities in the product with CLIP's (0: CLIP alone)."""
    sweep_max: int = arg(DEFAULT_SWEEP_MAX, min=0)
    """When no attention peak leads to a mask that looks like the named product, segment up to this many more
    masks from a grid of single points (SAM's "segment everything") and verify them too (0: off)."""

    def clip_model(self) -> str | None:
        """The CLIP to load: ``clip`` when given; else the shipped Grad-CAM-trained CLIP (:data:`GRADCAM_CLIP`)
        for the gradient maps (``cam_method`` gradcam / hirescam), None (the shipped CLIP) for ``similarity``."""
        if self.clip is not None:
            return self.clip
        return GRADCAM_CLIP if self.cam_method in ("gradcam", "hirescam") else None

    def shape_prior_dir(self) -> Path | None:
        """The shape prior's directory, or None when it is not used (``shape_prior="off"`` or ``shape_weight=0``,
        or ``verify`` off: it only takes part in verification)."""
        if not self.verify or self.shape_weight == 0 or self.shape_prior == SHAPE_PRIOR_OFF:
            return None
        return CHECKPOINTS / "shape" if self.shape_prior in (None, *_SHIPPED_NAMES) else Path(self.shape_prior)

    def check_files(self) -> None:
        """MissingModelError when the CLIP, SAM or shape prior named here is not on this machine (nothing is
        loaded), CheckpointError when a checkpoint trained here is damaged (its recorded sha256 differ)."""
        for kind, name in (("clip", self.clip_model()), ("sam", self.sam)):
            check_model(name, kind)
        shape = self.shape_prior_dir()
        if shape is not None:
            if not (shape / "config.json").is_file() or not (shape / METADATA_FILE).is_file():
                raise MissingModelError(f"shape prior {str(shape)!r} not found: no directory written by `graspsim "
                                        f"train shape` there (config.json + metadata.json); pass shape_prior=off "
                                        f"to verify with CLIP alone")
            verify(shape, read_metadata_file(shape / METADATA_FILE))
        self.check_robot_mask_files()


def resolve_model(name: str | os.PathLike | None, kind: str) -> str:
    """What the loaders take for ``name`` (``kind`` ``"clip"`` or ``"sam"``): the shipped checkpoint for None
    (or ``"default"`` / ``"sim"``; for CLIP also :data:`GRADCAM_CLIP`, the Grad-CAM-trained one), the weights
    store's copy of a registered name, else ``name`` itself.

    Raises MissingModelError when the shipped checkpoint or a registered model is missing.
    """
    shipped = _SHIPPED.get((kind, "" if name is None else str(name)))
    if shipped is not None:
        path = CHECKPOINTS / shipped  # a shipped sim-trained model
        if not (path / "config.json").is_file():
            raise MissingModelError(
                f"the shipped sim-trained {kind.upper()} is missing from {path} (a broken install?); train one with "
                f"`graspsim train {kind} --data DIR --out {kind}-model` and pass --{kind} {kind}-model")
        return str(path)
    text = os.fspath(name)
    from graspsim.weights.registry import ALIASES, REGISTRY

    if ALIASES.get(text, text) in REGISTRY:
        from graspsim.weights.store import WeightsUnavailableError, resolve

        try:
            return str(resolve(text))
        except WeightsUnavailableError as exc:
            raise MissingModelError(str(exc)) from None
    return text


def check_model(name: str | None, kind: str) -> None:
    """MissingModelError unless the ``clip`` / ``sam`` model ``name`` can be loaded here, as far as a look at
    the file system tells: a local path must hold a model (or be a ``.pth`` file for SAM); a Hugging Face id
    must be in the local cache when downloads are off (``HF_HUB_OFFLINE``); online it may still be fetched."""
    text = resolve_model(name, kind)
    official = kind == "sam" and text.endswith(".pth")  # the policy loads these as files, whatever they look like
    if official or _looks_like_path(text):
        path = Path(text).expanduser().absolute()
        if not (path.is_file() if official else (path / "config.json").is_file()):
            what = "file" if official else "model directory (config.json + weights written by save_pretrained)"
            raise MissingModelError(f"{kind.upper()} weights {text!r} not found: no {what} at {path}; fetch a "
                                    f"registered model with `graspsim weights fetch NAME` (see `graspsim weights "
                                    f"list`) or pass a local directory")
        if not official and (path / METADATA_FILE).is_file():  # trained here: check the recorded sha256
            verify(path, read_metadata_file(path / METADATA_FILE))
    elif _offline():
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(text, "config.json"), str):
            raise MissingModelError(f"{kind.upper()} weights {text!r} not found: no cached copy in the Hugging Face "
                                    f"cache and downloads are off (HF_HUB_OFFLINE); fetch it on a machine with "
                                    f"network access with `graspsim weights fetch {text}`")


def _looks_like_path(name: str) -> bool:
    # The loaders' rule too (models._load): "owner/name" is a Hugging Face id unless it exists on disk.
    parts = name.split("/")
    hub_id = len(parts) == 2 and all(parts) and not name.startswith((".", "/", "~"))
    return name.startswith((".", "/", "~")) or (os.sep in name and not hub_id) or os.path.exists(name)


def _offline() -> bool:
    # The loaders' rule too (models._load): either variable set to a true value turns downloads off.
    return any(os.environ.get(v, "").strip().lower() in ("1", "true", "yes", "on")
               for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
