"""graspsam's settings, checked before any model loads (no torch here).

* :class:`GraspSamConfig`: the network's sizes and the map decoding (JSON in a checkpoint's metadata).
* :class:`GraspSamPolicyConfig`: every ``--policy-arg`` of the ``graspsam`` policy.
* :func:`parse_prompt`: the prompt modes ``points:K`` / ``point`` / ``box`` / ``language`` / ``text`` / ``none``.
* :func:`resolve_checkpoint`: the shipped checkpoint or a directory written by ``graspsim train graspsam``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from graspsim.policies.config import PolicyArgError, PolicyConfig, arg
from graspsim.policies.det_seg.checkpoint import DictConfig
from graspsim.policies.robot_mask import RobotMaskConfig

#: The prompt modes in words (the one-line error lists them).
PROMPT_MODES = ("points:10", "points:K", "point", "box", "language", "text", "none")
#: The paper's evaluation prompt: 10 points sampled on the object's ground-truth mask.
EVAL_PROMPT = "points:10"
MAX_POINTS = 64


@dataclass(frozen=True)
class PromptMode:
    """A parsed prompt mode: ``kind`` in {"points", "box", "language", "text", "none"}; ``k`` points for "points".

    ``language``: the instruction -> a box through clip_sam's attention stack (the paper's grounding detector);
    ``text``: the instruction's CLIP text embedding -> one learned sparse prompt token (needs a checkpoint
    trained with ``text_dim`` > 0)."""

    kind: str
    k: int = 0

    def __str__(self) -> str:
        return f"points:{self.k}" if self.kind == "points" else self.kind

    @property
    def needs_target(self) -> bool:
        """Points and boxes come from a target mask (ground truth offline, privileged online)."""
        return self.kind in ("points", "box")


def parse_prompt(text: str) -> PromptMode:
    """``"points:10"`` -> PromptMode("points", 10), ``"point"`` = ``"points:1"``, ``"box"``, ``"language"``,
    ``"text"``, ``"none"``; ValueError (one line, listing the modes) for anything else."""
    s = str(text).strip().lower()
    if s in ("box", "language", "text", "none"):
        return PromptMode(s)
    if s == "point":
        return PromptMode("points", 1)
    if s.startswith("points:"):
        try:
            k = int(s.split(":", 1)[1])
        except ValueError:
            k = 0
        if 1 <= k <= MAX_POINTS:
            return PromptMode("points", k)
    raise ValueError(f"bad prompt {text!r}: expected one of {', '.join(PROMPT_MODES)} (K = 1..{MAX_POINTS})")


@dataclass
class GraspSamConfig(DictConfig):
    """The trainable parts of :class:`~.model.GraspSamNet` and how its maps are decoded (JSON-able).

    Map geometry: SAM's window of ``S x S`` pixels (128 for the shipped SAM) gives an embedding grid of
    ``S / patch``; the fused feature map is 4x that grid (SAM's own upscaling), 8x with ``hires``. Widths are
    stored as ``w / (width_frac * map side)`` (window-relative, so the same for every window size).
    """

    adapter_tokens: int = 16  # Rein-style learnable tokens per encoder block (0: no adapters)
    adapter_rank: int = 32  # bottleneck of each adapter's residual
    early_layer: int = 0  # the encoder block whose output is the fused map's early feature
    hires: bool = False  # one more 2x upsampling of the fused map (8x the embedding grid; 4x is SAM-HQ's)
    width_frac: float = 0.25
    blur_sigma: float = 1.0  # map px; the quality map is smoothed before the peak search
    min_distance: int = 2  # map px between reported peaks
    quality_threshold: float = 0.05
    max_detections: int = 10
    # > 0: a text prompt token: a text embedding of this many numbers (the shipped CLIP's text side) through a
    # learned projection becomes one sparse prompt token (0: none; checkpoints from before have none)
    text_dim: int = 0
    text_adapter_rank: int = 32  # with text_dim > 0: the rank of the text adapter after each encoder block (0: none)


def prompt_arg(value: str) -> str:
    """The ``prompt`` policy argument normalised (``"point"`` -> ``"points:1"``); PolicyArgError if bad."""
    try:
        return str(parse_prompt(value))
    except ValueError as exc:
        raise PolicyArgError(f"bad --policy-arg prompt for policy graspsam: {exc}") from None


def resolve_checkpoint(checkpoint: str | Path | None) -> Path:
    """``checkpoint`` (None: the shipped one) as a directory holding model.safetensors + metadata.json;
    FileNotFoundError saying how to train one otherwise."""
    from graspsim.policies.graspsam import DEFAULT_CHECKPOINT

    path = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
    if not (path / "model.safetensors").is_file() or not (path / "metadata.json").is_file():
        what = "the shipped checkpoint" if checkpoint is None else "checkpoint"
        raise FileNotFoundError(f"no graspsam {what} at {path} (model.safetensors + metadata.json); train one with "
                                f"`graspsim train graspsam --data DIR --out CKPT` and pass --policy-arg checkpoint=CKPT")
    return path


def resolve_init(init: str | Path) -> Path:
    """The absolute checkpoint directory ``--init`` names (``"shipped"``: the shipped one); FileNotFoundError as
    :func:`resolve_checkpoint`."""
    return resolve_checkpoint(None if str(init) == "shipped" else Path(init)).resolve()


@dataclass(frozen=True)
class GraspSamPolicyConfig(RobotMaskConfig):
    """Every ``--policy-arg`` of :class:`~.policy.GraspSamPolicy`."""

    policy_name: ClassVar[str] = "graspsam"

    prompt: str = "language"
    """points:K (K points on the target's mask; privileged), point, box (the target's box; privileged),
    language (the instruction -> a box through clip_sam's attention stack), text (the instruction's CLIP text
    embedding as a learned sparse prompt token on tiles of the image, then GraspSAM's own box around what it
    found; needs a checkpoint with a text token, as the shipped one) or none (the best grasp anywhere)."""
    checkpoint: str | None = None
    """A directory written by ``graspsim train graspsam`` (None: the shipped one)."""
    sam: str | None = None
    """Where the checkpoint's frozen SAM is (None: as its metadata records; the weights must be the same)."""
    clip: str | None = None
    """CLIP model of the language prompt (None: clip_sam's shipped one)."""
    opening: str = arg("mask", choices=("mask", "map"))
    """Jaw opening: ``mask`` = at least the predicted mask's chord + clearance; ``map`` = the width map alone."""
    placement: str = arg("chord", choices=("chord", "peak"))
    """``chord``: the jaws centred on the predicted mask's chord through the quality peak, grasps the planner's
    depth checks refuse (a finger or the palm on something, too wide) after the others; ``peak``: centred on
    the quality peak itself (the paper's decoding)."""
    angle_search: float = arg(60.0, min=0, max=90)
    """With ``placement=chord`` on top-down approaches (tables): each grasp also turned by 15-degree steps up to
    this many degrees, the nearest turn the planner's checks keep standing in where they refuse the map's
    angle (0: off)."""
    point_refine: str = arg("box", choices=("box", "off"))
    """Prompts of points alone (``points:K``, ``point``) on top-down views (tables): ``box`` = a second pass
    prompted by the same points and the box around the first pass's mask (SAM's interaction loop); ``off`` = one
    pass (the paper). Shelves always take one pass."""
    language_refine: str = arg("all", choices=("all", "chosen", "off"))
    """``prompt=language``: which of the language stage's candidate masks get clip_sam's box refinement (a second
    SAM pass prompted by the box of the first mask) before the box around the chosen one prompts GraspSAM:
    ``all`` (before CLIP's verification, as clip_sam does), ``chosen`` (only the one the verification keeps) or
    ``off`` (none: GraspSAM's own box-prompted pass is the only refinement)."""
    language_candidates: int = arg(3, min=1)
    """``prompt=language``: how many of the global attention map's peaks become candidates (zoomed attention,
    a SAM mask each, CLIP's verification keeps one; clip_sam's ``n_candidates``, 5 there). Fewer is faster
    (each candidate costs a CLIP zoom window, two SAM windows and a verification crop) and risks missing the
    named product when it is not among the strongest peaks (the escalation to the next peaks still runs).
    3 was chosen on the validation scenes by a rule fixed before the runs (README, GraspSAM's speed)."""
    threads: int | None = arg(None, min=1)
    """torch threads (None: torch's default)."""
    max_candidates: int = arg(5, min=0)
    """Further grasps reported after the chosen one."""

    def __post_init__(self) -> None:
        super().__post_init__()
        object.__setattr__(self, "prompt", prompt_arg(self.prompt))

    @property
    def prompt_mode(self) -> PromptMode:
        return parse_prompt(self.prompt)

    @property
    def needs_privileged(self) -> bool:
        return self.prompt_mode.needs_target or self.robot_mask == "oracle"

    def check_files(self) -> None:
        """FileNotFoundError when the checkpoint is missing, CheckpointError when a recorded sha256 differs,
        PolicyArgError for ``prompt=text`` on a checkpoint without a text token."""
        from graspsim.learn.checkpoint import read_metadata, verify

        path = resolve_checkpoint(self.checkpoint)
        meta = read_metadata(path)
        verify(path, meta)
        if self.prompt_mode.kind == "text" and not int(meta.get("config", {}).get("text_dim", 0)):
            raise PolicyArgError(f"graspsam prompt=text needs a checkpoint with a text token; {path} has none "
                                 f"(train one with `graspsim train graspsam --text-prompts P`)")
        self.check_robot_mask_files()
