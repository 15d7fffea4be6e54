"""The policy protocol: observations in, grasp rectangles out.

A policy never touches the simulator or the Gymnasium environment: it receives
an :class:`~graspsim.types.Observation` (numpy arrays, camera model,
instruction) and returns a :class:`PolicyOutput`. The benchmark runner builds one
policy per worker process and calls :meth:`Policy.reset` with a fresh seeded
generator before every attempt, so randomised policies are reproducible and
independent of how attempts are spread over workers.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from graspsim.types import GraspRect, Observation


@dataclass
class PolicyOutput:
    """A policy's decision for one attempt.

    * ``rect``: the grasp to execute (image pixels, see :class:`GraspRect`).
    * ``candidates``: further grasps, best first (``rect`` is not repeated).
    * ``mask``: (H, W) bool, the policy's estimate of the target, if it has one.
    * ``attention``: (H, W) float32 in [0, 1], an attention map, if it has one.
    * ``info``: small JSON-serialisable facts for the results file (e.g. the
      prompt mode used).
    """

    rect: GraspRect
    candidates: list[GraspRect] = field(default_factory=list)
    mask: np.ndarray | None = None
    attention: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Policy(Protocol):
    """What ``graspsim bench`` needs of a perception policy.

    ``name``: registry name. ``needs_privileged``: true if the policy reads
    ground-truth segmentation (the environment only provides it on request).

    The built-in policies also name their arguments' frozen dataclass as
    ``config_class`` (a :class:`~graspsim.policies.config.PolicyConfig`) and are
    built as ``Policy(config)``; ``graspsim bench`` checks the arguments with
    that class alone before any worker builds the policy.
    """

    name: ClassVar[str]
    needs_privileged: ClassVar[bool]

    def reset(self, rng: np.random.Generator) -> None:
        """Start a new attempt; ``rng`` is the only randomness the policy may use."""

    def act(self, obs: Observation) -> PolicyOutput:
        """Choose a grasp for ``obs``."""


class PolicyError(RuntimeError):
    """A policy could not produce a grasp (recorded as an invalid action)."""


def catalog():
    """:mod:`graspsim.assets.catalog`, imported on use: policy modules import without it (tests swap it)."""
    return importlib.import_module("graspsim.assets.catalog")


def copy_config(policy: Any, config: Any) -> None:
    """Every field of a policy's ``config`` dataclass also as an attribute of ``policy`` (``policy.n_angles``)."""
    for f in fields(config):
        setattr(policy, f.name, getattr(config, f.name))
