"""graspsam: GraspSAM (Noh et al., ICRA 2025, arXiv 2409.12521) at CPU scale: a frozen SAM prompted by points, a
box, the instruction (through clip_sam's attention stack) or nothing, predicting the prompted product's mask and
GR-ConvNet-style grasp maps (quality, cos 2 theta, sin 2 theta, width).

* :mod:`.config`: ``GraspSamConfig`` (the network's sizes, JSON), ``GraspSamPolicyConfig`` (every
  ``--policy-arg``), prompt-mode parsing, where the shipped checkpoint is; no torch.
* :mod:`.model`: ``GraspSamNet`` (frozen SAM + Rein-style adapters, HQ mask token, four grasp tokens, fused
  high-resolution feature map) and ``ReinAdapter``.
* :mod:`.predictor`: prompt -> SAM window -> maps -> rectangle in image pixels (numpy in, numpy out), checkpoint
  loading; no training imports.
* :mod:`.train`: batches, losses, validation on :mod:`graspsim.learn.loop` (``graspsim train graspsam``).
* :mod:`.evaluate`: offline Jaccard metrics per prompt mode (``graspsim evaluate grasps --policy graspsam``).
* :mod:`.policy`: ``GraspSamPolicy`` ("graspsam").

Importing this package does not import torch.
"""

from __future__ import annotations

from pathlib import Path

#: The shipped trained checkpoint (adapters, tokens, heads; the frozen SAM is clip_sam's shipped one).
CHECKPOINT_ROOT = Path(__file__).resolve().parent / "checkpoints"
DEFAULT_CHECKPOINT = CHECKPOINT_ROOT / "graspsam"

__all__ = ["CHECKPOINT_ROOT", "DEFAULT_CHECKPOINT"]
