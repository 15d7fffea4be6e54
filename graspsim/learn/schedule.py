"""Learning-rate schedules: ``factor(step, total_steps)``; the loop sets ``lr = base_lr * factor`` before each step.

``step`` counts optimiser steps from 0 over the whole run (resumes included),
``total_steps = epochs * steps_per_epoch``.
"""

from __future__ import annotations

import math
from typing import Callable

Schedule = Callable[[int, int], float]


def warmup_cosine(warmup_steps: int, floor: float = 0.05) -> Schedule:
    """Linear warm-up over ``warmup_steps``, then cosine decay to ``floor`` of the peak (CLIP / SAM)."""

    def factor(step: int, total: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        t = (step - warmup_steps) / max(1, total - warmup_steps)
        return floor + (1.0 - floor) * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))

    return factor


def cosine_with_ramp(ramp_steps: int = 50) -> Schedule:
    """Cosine decay to 0 over the run, multiplied by a linear ramp over the first ``ramp_steps`` (det_seg)."""

    def factor(step: int, total: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * min(step, total) / total)) * min(1.0, (step + 1) / ramp_steps)

    return factor
