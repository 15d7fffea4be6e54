"""Weights management for the learned perception stacks: registry, local store, CLI.

``graspsim weights list|fetch|verify``; see :mod:`graspsim.weights.store` for the
on-disk layout and :mod:`graspsim.weights.registry` for what can be fetched.
"""

from graspsim.weights.registry import REGISTRY, FileSpec, UnknownWeightsError, WeightSpec, get_spec
from graspsim.weights.store import (WeightsError, WeightsIntegrityError, WeightsUnavailableError, fetch, resolve,
                                    status, verify, weights_dir)

__all__ = [
    "REGISTRY", "FileSpec", "UnknownWeightsError", "WeightSpec", "get_spec",
    "WeightsError", "WeightsIntegrityError", "WeightsUnavailableError",
    "fetch", "resolve", "status", "verify", "weights_dir",
]
