"""The semgrasp network's config and every ``--policy-arg`` of the ``semgrasp`` policy (no torch here).

:class:`SemGraspNetConfig` describes the network (stored in a checkpoint's
``metadata.json``); :class:`SemGraspPolicyConfig` is checked, and the
checkpoint found on disk, before any model loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from graspsim.config import check_fields
from graspsim.policies.clip_sam.config import ClipSamPolicyConfig
from graspsim.policies.config import arg
from graspsim.policies.semgrasp.tokens import TokenSpec

MASK_SOURCES = ("clip_sam", "oracle")
PLACEMENTS = ("decoded", "snap", "rerank")
PART_RANKS = ("share", "contacts", "share+contacts", "none")
TRAIN_HINT = ("train one with `graspsim train semgrasp --data DIR --out CKPT` (DIR from `graspsim render` on a "
              "*-parts-train suite) and pass `--policy-arg checkpoint=CKPT`")


@dataclass(frozen=True)
class SemGraspNetConfig:
    """The network (:class:`~.model.SemGraspNet`) and its token vocabularies (:class:`~.tokens.TokenSpec`).

    ``crop_px``: side of the square crop (pixels); ``grid``: the crop encoder's feature grid (``grid**2`` memory
    tokens); ``channels``: its stem and patch channels; ``d_model`` / ``heads`` / ``layers`` / ``ff``: the
    transformer decoder; ``text_dim``: the text encoder's token-state size (MiniLM: 384); ``max_text``: most
    text tokens kept; ``dropout``: in the decoder; ``part_head``: a part-segmentation head on the crop encoder
    (:class:`~.model.PartHead`: which part word lies under each pixel of the crop).
    """

    crop_px: int = 64
    grid: int = 8
    channels: tuple[int, ...] = (32, 128)
    d_model: int = 128
    heads: int = 4
    layers: int = 2
    ff: int = 256
    text_dim: int = 384
    max_text: int = 24
    dropout: float = 0.1
    n_angle: int = 12
    n_open: int = 10
    open_max: float = 1.25
    n_pos: int = 20
    angle_centred: bool = True
    part_head: bool = True

    def __post_init__(self):
        if self.grid < 1 or self.crop_px < 2 * self.grid or self.crop_px % (2 * self.grid):
            raise ValueError(f"crop_px must be a multiple of 2 * grid = {2 * self.grid}, got {self.crop_px}")
        if len(self.channels) != 2 or min(self.channels) < 8 or any(c % 8 for c in self.channels):
            raise ValueError(f"channels must be two multiples of 8 (stem, patch), got {list(self.channels)}")
        if self.d_model % self.heads:
            raise ValueError(f"d_model ({self.d_model}) must be divisible by heads ({self.heads})")
        for name in ("d_model", "heads", "layers", "ff", "text_dim", "max_text"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        self.tokens.check()

    @property
    def tokens(self) -> TokenSpec:
        return TokenSpec(self.n_angle, self.n_open, self.open_max, self.n_pos, self.angle_centred)

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}

    @classmethod
    def from_checkpoint(cls, data: dict) -> "SemGraspNetConfig":
        """The config stored in a checkpoint's metadata: one written before ``angle_centred`` existed has the old
        angle bins (:mod:`.tokens`), one written before ``part_head`` existed has no part head."""
        return cls.from_dict({"angle_centred": False, "part_head": False, **data})

    @classmethod
    def from_dict(cls, data: dict) -> "SemGraspNetConfig":
        """Strict: unknown keys are refused (ValueError naming them)."""
        check_fields(cls, data)
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


def default_checkpoint() -> Path:
    from graspsim.policies.semgrasp import CHECKPOINT_ROOT  # read on each call: tests point it elsewhere

    return CHECKPOINT_ROOT / "semgrasp"


def resolve_checkpoint(checkpoint: str | Path | None) -> Path:
    """The checkpoint directory: ``checkpoint`` or the shipped default; FileNotFoundError (saying how to train
    one) when it lacks model.safetensors + metadata.json."""
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint()
    if not (path / "model.safetensors").is_file() or not (path / "metadata.json").is_file():
        what = "semgrasp checkpoint (the shipped default)" if checkpoint is None else "semgrasp checkpoint"
        raise FileNotFoundError(f"no {what} at {path} (model.safetensors + metadata.json); {TRAIN_HINT}")
    return path


@dataclass(frozen=True)
class SemGraspPolicyConfig(ClipSamPolicyConfig):
    """Every ``--policy-arg`` of :class:`~.policy.SemGraspPolicy`: clip_sam's (it finds the product's mask) plus
    the token decoder's."""

    policy_name: ClassVar[str] = "semgrasp"

    checkpoint: str | None = None
    """A directory written by ``graspsim train semgrasp`` (None: the shipped one)."""
    mask: str = arg("clip_sam", choices=MASK_SOURCES)
    """Where the product's mask comes from: ``clip_sam`` (learned, default) or ``oracle`` (privileged
    ground truth: the target class's largest visible instance; separates localisation from part errors)."""
    grasp_candidates: int = arg(3, min=1)
    """Rectangles decoded (one per best angle bin), best first. ``placement=decoded|snap``: these are tried (with
    the arm the first it can execute wins); ``rerank``: each adds its strip's planner grasps (``strips``)."""
    restrict_parts: bool = True
    """Restrict the part token to the parts of the class clip_sam reads from the instruction."""
    placement: str = arg("rerank", choices=PLACEMENTS)
    """Where the fingers go: ``decoded`` (the rectangles the tokens decode to, bin centres), ``snap`` (each
    decoded rectangle replaced by the nearest of the shared mask planner's grasps on the product's mask within
    ``snap_bins`` token bins, else kept) or ``rerank`` (the planner's grasps on the mask ranked by the network's
    log-probability of their angle / opening / x / y tokens on the decoded part: the tokens choose, the planner
    places; the decoded rectangles when the planner finds none)."""
    snap_bins: float = arg(1.5, min=0.0)
    """``placement=snap``: how far (in token bins) a planner grasp may be from the decoded rectangle to replace it."""
    planner_candidates: int = arg(80, min=1)
    """``placement=snap|rerank``: the most grasps the mask planner proposes on the whole product."""
    strips: bool = True
    """``placement=snap|rerank``: also plan on the strip of the mask along each decoded rectangle's closing axis
    (half a position bin either side of its centre line), so that a grasp where the tokens point is proposed."""

    part_rank: str = arg("share", choices=PART_RANKS)
    """``placement=rerank`` with a checkpoint that has a part head (which segments the product's parts): how
    its segmentation orders the planner's grasps before the network's log-probability does. ``share``: grasps
    whose footprint on the product (the rectangle's pixels on the mask) is mostly the decoded part come first;
    ``contacts``: the part planner also proposes grasps on the part's predicted pixels, and grasps whose
    predicted finger contacts are both on the part (the oracle's contact test on the learned segmentation) come
    first; ``share+contacts``: both, share first; ``none``: the part head is not used."""

    def check_files(self) -> None:
        """clip_sam's model checks, then the checkpoint: FileNotFoundError when it is missing, CheckpointError
        when its metadata is damaged or a file's sha256 differs from the one recorded."""
        from graspsim.learn.checkpoint import read_metadata, verify

        if self.mask == "clip_sam":
            super().check_files()
        path = resolve_checkpoint(self.checkpoint)
        verify(path, read_metadata(path))
