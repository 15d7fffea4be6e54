"""Perception policies: observations in, grasp rectangles out (:mod:`graspsim.policies.base`).

``make_policy(name, **kwargs)`` builds a registered policy; ``policy.act(obs)``
takes an :class:`~graspsim.types.Observation` or an environment's observation
dict; ``policy_rng(scene_seed)`` is the generator ``graspsim bench`` resets a
policy with for that scene.
"""

from graspsim.policies.base import as_observation, policy_rng
from graspsim.policies.registry import make_policy

__all__ = ["as_observation", "make_policy", "policy_rng"]
