"""RobotSeg settings: the network's size (:class:`RobotSegConfig`), the prompt modes, the shipped checkpoint.

numpy-free and torch-free, so the CLI can check ``--prompt`` and find the checkpoint before loading anything.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

#: Prompt modes of ``graspsim evaluate robot-masks --prompt``: ``auto`` (the robot prompt generator alone, no
#: clicks), ``1-click`` / ``3-click`` (points inside the part's true mask) and ``box`` (its bounding box); how
#: clicks and boxes are derived: :mod:`graspsim.policies.robotseg.prompts`.
PROMPT_MODES = ("auto", "1-click", "3-click", "box")
#: The three outputs, in the order of the mask decoder's three multimask slots.
OUTPUTS = ("arm", "gripper", "whole")
#: Where the shipped checkpoint lives (``checkpoints/robotseg``: model.safetensors + metadata.json).
CHECKPOINT_ROOT = Path(__file__).resolve().parent / "checkpoints"
SHIPPED = CHECKPOINT_ROOT / "robotseg"
TRAIN_HINT = "train one with `graspsim train robotseg --data DIR --out MODEL`"


def parse_prompt_mode(text: str) -> str:
    """``text`` if it is one of :data:`PROMPT_MODES`; ValueError listing them otherwise."""
    mode = str(text).strip().lower()
    if mode not in PROMPT_MODES:
        raise ValueError(f"unknown prompt mode {text!r}; choose one of: {', '.join(PROMPT_MODES)}")
    return mode


@dataclass(frozen=True)
class RobotSegConfig:
    """Size of the RobotSeg network (:class:`~.model.RobotSegNet`), a small SAM 2 built from scratch.

    ``image_size`` S: the square input (a 320x240 render is letterboxed to S x 3S/4 and padded); the Hiera
    backbone has 4 stages of widths ``hiera_dim * (1, 2, 4, 8)`` at strides 4, 8, 16, 32 and ``blocks``
    blocks each; the FPN, prompt encoder and mask decoder work at width ``dim`` on the stride-16 grid
    (S/16 x S/16) with stride-4 and stride-8 skip features; masks come out at S/4 x S/4.
    ``rpg_queries``: learned queries of the robot prompt generator (the prompt tokens it makes);
    ``memory``: whether the video memory encoder exists (the previous frame's three masks as a dense prompt).
    ``refine``: channels of the full-resolution refinement head (:class:`~.model.Refiner`, after SAM-HQ's
    high-quality output: the S/4 masks refined at S x S with the picture's own pixels); 0: none, the S/4 masks
    are upsampled as they are (the first shipped checkpoint's layout).
    ``part_head``: channels of the part head (:class:`~.model.PartHead`: a correction to the decoder's three
    S/4 masks from the encoder's features); 0: none.
    """

    image_size: int = 256
    hiera_dim: int = 32
    blocks: tuple[int, int, int, int] = (1, 1, 2, 1)
    heads: tuple[int, int, int, int] = (1, 1, 2, 4)
    windows: tuple[int, int, int, int] = (8, 4, 8, 4)
    dim: int = 64
    decoder_heads: int = 4
    rpg_queries: int = 4
    rpg_layers: int = 2
    memory: bool = True
    refine: int = 0
    part_head: int = 0

    def __post_init__(self) -> None:
        if self.image_size % 32 or self.image_size < 64:
            raise ValueError(f"image_size must be a multiple of 32 and >= 64, got {self.image_size}")
        if len(self.blocks) != 4 or len(self.heads) != 4 or len(self.windows) != 4 or min(self.blocks) < 1:
            raise ValueError("blocks, heads and windows need 4 entries each (blocks >= 1)")
        if self.dim % self.decoder_heads or self.dim % 8:
            raise ValueError(f"dim ({self.dim}) must be a multiple of 8 and of decoder_heads")
        if self.rpg_queries < 1 or self.rpg_layers < 1:
            raise ValueError("rpg_queries and rpg_layers must be >= 1")
        if self.refine < 0:
            raise ValueError(f"refine must be >= 0 (0: no refinement head), got {self.refine}")
        if self.part_head < 0:
            raise ValueError(f"part_head must be >= 0 (0: no part head), got {self.part_head}")

    def to_dict(self) -> dict[str, Any]:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> "RobotSegConfig":
        """From :meth:`to_dict` output; ValueError naming unknown keys."""
        d = dict(d or {})
        names = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - names)
        if unknown:
            raise ValueError(f"unknown RobotSegConfig fields: {', '.join(unknown)} (known: {', '.join(sorted(names))})")
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in d.items()})


def resolve_checkpoint(checkpoint: str | Path | None) -> Path:
    """The checkpoint directory (None: the shipped one); FileNotFoundError saying how to train one when it
    lacks model.safetensors + metadata.json."""
    path = SHIPPED if checkpoint is None else Path(checkpoint).expanduser()
    if not (path / "model.safetensors").is_file() or not (path / "metadata.json").is_file():
        what = "the shipped robotseg checkpoint" if checkpoint is None else "robotseg checkpoint"
        raise FileNotFoundError(f"no {what} at {path} (model.safetensors + metadata.json); {TRAIN_HINT}")
    return path
