"""Every ``--policy-arg`` of the ``det_seg`` and ``grconvnet`` policies, and where their checkpoints are.

No torch here: :class:`DetSegPolicyConfig` / :class:`GrConvNetPolicyConfig` are checked, and
their checkpoint found on disk (:func:`resolve_checkpoint`, a look at two file
names), before any network loads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from graspsim.policies.config import PolicyConfig, arg
from graspsim.policies.robot_mask import RobotMaskConfig

# Segmentation regions smaller than this (pixels of a 640x480 image, scaled with the image area) are merged into
# their surroundings (model.remove_small_regions). Chosen on the labelled validation scenes of the shipped
# checkpoint's training data (README "det_seg"); 0 switches it off. On those 60 scenes, mean class IoU for
# min 0 / 100 / 200 / 300 / 450 / 600 / 1000 px: 0.651 / 0.762 / 0.788 / 0.793 / 0.790 / 0.771 / 0.702
# (spurious classes per image 3.4 -> 0.37 at 300; larger values start to swallow small visible products).
DEFAULT_MIN_REGION_PX = 300.0

TRAIN_HINT = ("train one with `graspsim train {kind} --data DIR --out CKPT` (DIR from `graspsim render`) "
              "and pass `--policy-arg checkpoint=CKPT`")


def default_checkpoint(kind: str) -> Path:
    """The shipped default checkpoint directory of ``kind`` (``det_seg`` or ``grconvnet``)."""
    from graspsim.policies.det_seg import CHECKPOINT_ROOT  # read on each call: tests point it elsewhere

    return CHECKPOINT_ROOT / kind


def shipped_checkpoint(name: str) -> Path | None:
    """The shipped checkpoint directory called ``name`` (e.g. "det_seg_640"), or None if there is none."""
    from graspsim.policies.det_seg import CHECKPOINT_ROOT

    if not name or "/" in name or "\\" in name or name in (".", ".."):
        return None
    path = CHECKPOINT_ROOT / name
    return path if (path / "model.safetensors").is_file() and (path / "metadata.json").is_file() else None


def resolve_checkpoint(kind: str, checkpoint: str | Path | None) -> Path:
    """``checkpoint``: None (the shipped default of ``kind``), a directory, or the name of a shipped checkpoint
    (a directory of that name in the working directory wins). FileNotFoundError, saying how to train one, if
    there is no model.safetensors + metadata.json there."""
    path = Path(checkpoint) if checkpoint is not None else default_checkpoint(kind)
    if checkpoint is not None and not path.is_dir():
        path = shipped_checkpoint(str(checkpoint)) or path
    if not (path / "model.safetensors").is_file() or not (path / "metadata.json").is_file():
        what = "the shipped default checkpoint" if checkpoint is None else "checkpoint"
        raise FileNotFoundError(f"no {kind} {what} at {path} (model.safetensors + metadata.json); "
                                + TRAIN_HINT.format(kind=kind))
    return path


@dataclass(frozen=True)
class CheckpointPolicyConfig(PolicyConfig):
    """The arguments both networks take: which checkpoint, torch threads, how many further grasps."""

    checkpoint: str | None = None
    """A directory written by ``graspsim train det_seg|grconvnet``, or a shipped checkpoint's name (None: the
    shipped default)."""
    num_threads: int | None = arg(None, min=1)
    """torch threads (None: torch's default)."""
    max_candidates: int = arg(10, min=0)
    """Further grasps reported after the chosen one."""

    def check_files(self) -> None:
        """FileNotFoundError (saying how to train one) when the checkpoint is not there; CheckpointError when its
        metadata is damaged or a file's sha256 differs from the one recorded (a few ms: the weights are small)."""
        from graspsim.learn.checkpoint import read_metadata, verify

        path = resolve_checkpoint(self.policy_name, self.checkpoint)
        verify(path, read_metadata(path))

    def domain_warning(self, scene_kind: str) -> str | None:
        """The checkpoint's training suites (``metadata["data"]["suite"]``) name no ``scene_kind`` scene: say so."""
        from graspsim.learn.checkpoint import read_metadata
        from graspsim.scenes.suites import SUITES

        path = resolve_checkpoint(self.policy_name, self.checkpoint)
        data = read_metadata(path).get("data") or {}
        suites = [data["suite"]] if isinstance(data.get("suite"), str) else list(data.get("suite") or [])
        kinds = {SUITES[s].kind for s in suites if s in SUITES}
        if not kinds or scene_kind in kinds:
            return None
        return (f"{self.policy_name} checkpoint {path} was trained on {', '.join(suites)} scenes "
                f"({', '.join(sorted(kinds))}), not {scene_kind}: expect a lower pick rate than in its own domain")


@dataclass(frozen=True)
class GrConvNetPolicyConfig(CheckpointPolicyConfig):
    """Every ``--policy-arg`` of :class:`~.policy.GrConvNetPolicy`."""

    policy_name: ClassVar[str] = "grconvnet"


@dataclass(frozen=True)
class DetSegPolicyConfig(CheckpointPolicyConfig, RobotMaskConfig):
    """Every ``--policy-arg`` of :class:`~.policy.DetSegPolicy`: the checkpoint's, plus the segmentation's."""

    policy_name: ClassVar[str] = "det_seg"

    refine: bool | None = None
    """The grasp refinement head: None = as trained, false switches it off."""
    min_region_px: float = arg(DEFAULT_MIN_REGION_PX, min=0.0)
    """Segmentation specks smaller than this (pixels at 640x480) are merged into their surroundings (0: off)."""
    guided_seg: bool = True
    """Edge-aware (guided filter) upsampling of the segmentation; false: bilinear."""

    def check_files(self) -> None:
        """The checkpoint's checks, and the RobotSeg checkpoint's for robot_mask=robotseg."""
        super().check_files()
        self.check_robot_mask_files()
