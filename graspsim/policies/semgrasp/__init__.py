"""semgrasp: a part-aware grasp as a short sequence of discrete tokens, generated from an image crop and the instruction.

After SemGrasp (a grasp as discrete tokens aligned with language): for a
parallel gripper on a retail product the semantics is *which part* the jaws
hold, so a grasp is five tokens, ``[part word, closing-axis angle bin, opening
bin, x bin, y bin]`` (:mod:`.tokens`), generated autoregressively by a small
transformer decoder (:mod:`.model`) whose memory is the product's RGB-D crop
(a small CNN's feature grid) and the instruction's MiniLM token states.

* :mod:`.config`: ``SemGraspNetConfig`` (the network) and ``SemGraspPolicyConfig``
  (every ``--policy-arg``; no torch);
* :mod:`.tokens`: crop box, rectangle <-> tokens (numpy only);
* :mod:`.model`: ``SemGraspNet`` (nn.Module only);
* :mod:`.text`: instruction -> MiniLM token states;
* :mod:`.samples`: training samples from rendered datasets (numpy + OpenCV);
* :mod:`.predictor`: crop + text states -> ranked rectangles (numpy in, numpy out);
* :mod:`.train`: batches and the step for :mod:`graspsim.learn.loop` (``graspsim train semgrasp``);
* :mod:`.evaluate`: token accuracy per token type, held-out pairs;
* :mod:`.policy`: ``SemGraspPolicy`` (clip_sam mask -> crop -> tokens -> rectangle);
* :mod:`.cli`: the click commands.

Importing this package does not import torch.
"""

from __future__ import annotations

from pathlib import Path

#: Where the shipped checkpoint lives (``checkpoints/semgrasp``).
CHECKPOINT_ROOT = Path(__file__).resolve().parent / "checkpoints"

__all__ = ["CHECKPOINT_ROOT"]
