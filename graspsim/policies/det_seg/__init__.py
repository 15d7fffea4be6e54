"""det_seg: grasp detection + semantic segmentation + grasp refinement from RGB, and a GR-ConvNet baseline.

A CPU-scale reimplementation of Ainetter & Fraundorfer (ICRA 2021) next to a
GR-ConvNet-style pixel-wise baseline (Kumra et al., IROS 2020):

* :mod:`.model`: ``DetSegConfig``, ``DetSegNet`` (backbone + FPN, grasp
  detection with 18 orientation bins + "invalid", semantic segmentation,
  grasp refinement head);
* :mod:`.grconvnet`: ``GrConvNetConfig``, ``GrConvNet`` and map decoding;
* :mod:`.targets`: letterbox geometry and training-target encoding;
* :mod:`.checkpoint`: ``load_checkpoint`` (inference and ``--init``);
* :mod:`.samples`: letterboxed training samples and augmentation;
* :mod:`.train`: ``train_det_seg``, ``train_grconvnet`` on :mod:`graspsim.learn.loop`;
* :mod:`.config`: ``DetSegPolicyConfig``, ``GrConvNetPolicyConfig`` (every
  ``--policy-arg``, no torch) and where the checkpoints are;
* :mod:`.policy`: ``DetSegPolicy`` ("det_seg"), ``GrConvNetPolicy`` ("grconvnet");
* :mod:`.evaluate`: ``evaluate_grasps`` (offline Jaccard / seg-IoU metrics);
* :mod:`.cli`: click commands.

Importing this package does not import torch; the submodules do.
"""

from __future__ import annotations

from pathlib import Path

#: Where the shipped default checkpoints live (``det_seg/`` and ``grconvnet/``).
CHECKPOINT_ROOT = Path(__file__).resolve().parent / "checkpoints"

__all__ = ["CHECKPOINT_ROOT"]
