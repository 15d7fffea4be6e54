"""The lower-bound baseline: a uniformly random grasp rectangle anywhere in the image."""

from __future__ import annotations

import math
from typing import ClassVar

import numpy as np

from graspsim.policies.base import PolicyOutput
from graspsim.types import GraspRect, Observation


class RandomPolicy:
    """Uniformly random rectangles, from the generator passed to :meth:`reset`.

    Centre uniform over the image (pixels ``[0, W-1] x [0, H-1]``), ``theta``
    uniform in ``[-pi/2, pi/2)``, ``w`` uniform in ``[w_min_px, w_max_px]``
    (default 10..120 px), ``h = h_px`` (default 20 px). The same generator state
    gives the same rectangles.
    """

    name: ClassVar[str] = "random"
    needs_privileged: ClassVar[bool] = False

    def __init__(self, w_min_px: float = 10.0, w_max_px: float = 120.0, h_px: float = 20.0) -> None:
        if not 0 < w_min_px <= w_max_px:
            raise ValueError(f"need 0 < w_min_px <= w_max_px, got {w_min_px}, {w_max_px}")
        if h_px <= 0:
            raise ValueError(f"h_px must be positive, got {h_px}")
        self.w_min_px = float(w_min_px)
        self.w_max_px = float(w_max_px)
        self.h_px = float(h_px)
        # Used only if act() is called before any reset(): fixed seed, so still reproducible.
        self._rng = np.random.default_rng(0)

    def reset(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def act(self, obs: Observation) -> PolicyOutput:
        height, width = obs.depth_m.shape[:2]
        rng = self._rng
        x = rng.uniform(0.0, width - 1)
        y = rng.uniform(0.0, height - 1)
        theta = rng.uniform(-math.pi / 2, math.pi / 2)
        w = rng.uniform(self.w_min_px, self.w_max_px)
        rect = GraspRect(float(x), float(y), float(w), self.h_px, float(theta))
        return PolicyOutput(rect=rect, info={})
