"""The lower-bound baseline: a uniformly random grasp rectangle anywhere in the image."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping

import numpy as np

from graspsim.policies.base import PolicyOutput, copy_config, as_observation
from graspsim.policies.config import PolicyConfig, arg
from graspsim.types import GraspRect, Observation


@dataclass(frozen=True)
class RandomPolicyConfig(PolicyConfig):
    """Every ``--policy-arg`` of the random policy: the rectangle sizes, pixels."""

    policy_name: ClassVar[str] = "random"

    w_min_px: float = arg(10.0, min=0.0, min_open=True)
    """Smallest jaw opening drawn, pixels."""
    w_max_px: float = arg(120.0, min=0.0, min_open=True)
    """Largest jaw opening drawn, pixels (>= w_min_px)."""
    h_px: float = arg(20.0, min=0.0, min_open=True)
    """Jaw (finger) size, pixels."""

    def check(self) -> None:
        if self.w_min_px > self.w_max_px:
            raise self.invalid(f"need 0 < w_min_px <= w_max_px, got {self.w_min_px:g}, {self.w_max_px:g}")


class RandomPolicy:
    """Uniformly random rectangles, from the generator passed to :meth:`reset`.

    Centre uniform over the image (pixels ``[0, W-1] x [0, H-1]``), ``theta``
    uniform in ``[-pi/2, pi/2)``, ``w`` uniform in ``[w_min_px, w_max_px]``
    (default 10..120 px), ``h = h_px`` (default 20 px). The same generator state
    gives the same rectangles.
    """

    name: ClassVar[str] = "random"
    needs_privileged: ClassVar[bool] = False

    config_class: ClassVar[type[RandomPolicyConfig]] = RandomPolicyConfig

    def __init__(self, config: RandomPolicyConfig | None = None, **kwargs: Any) -> None:
        """Build from ``config`` or from its fields as keyword arguments (``RandomPolicy(h_px=15)``)."""
        self.config = RandomPolicyConfig.resolve(config, kwargs)
        copy_config(self, self.config)
        # Used only if act() is called before any reset(): fixed seed, so still reproducible.
        self._rng = np.random.default_rng(0)

    def reset(self, rng: np.random.Generator) -> None:
        self._rng = rng

    def act(self, obs: Observation | Mapping[str, Any]) -> PolicyOutput:
        obs = as_observation(obs)  # the environment's observation dict is accepted too
        height, width = obs.depth_m.shape[:2]
        rng = self._rng
        x = rng.uniform(0.0, width - 1)
        y = rng.uniform(0.0, height - 1)
        theta = rng.uniform(-math.pi / 2, math.pi / 2)
        w = rng.uniform(self.w_min_px, self.w_max_px)
        return PolicyOutput(rect=GraspRect(float(x), float(y), float(w), self.h_px, float(theta)), info={})
