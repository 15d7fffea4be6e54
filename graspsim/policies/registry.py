"""Policy registry: a name -> the policy class and its config class, as "module:attr", imported only when used.

Built-in policies are listed below; third-party packages add theirs through the
``graspsim.policies`` entry-point group, e.g. in their pyproject.toml::

    [project.entry-points."graspsim.policies"]
    my_policy = "my_package.policy:MyPolicy"

A third-party policy may name its config with a ``config_class`` attribute (a
:class:`~graspsim.policies.config.PolicyConfig` subclass; the policy is then
built as ``MyPolicy(config)``, like the built-ins); without one, its arguments
are checked against the keyword parameters of its ``__init__`` and passed as
keyword arguments.

Two steps, so that a bad argument fails before anything heavy loads:
:func:`check_policy_args` imports only the config class (no torch) and checks
the arguments; :func:`make_policy` checks them the same way and builds the
policy. ``graspsim bench`` runs the first in the parent process and the second
once in each worker. Importing this module imports no policy (and no torch).
"""

from __future__ import annotations

import importlib
from collections import Counter
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any, Mapping

from graspsim.policies.config import PolicyConfig, check_signature_keys

ENTRY_POINT_GROUP = "graspsim.policies"


@dataclass(frozen=True)
class PolicyTarget:
    """Where a policy lives: ``policy`` and ``config`` are "module:attr" strings (``config`` None: look for
    the policy class's ``config_class``, else check arguments against its ``__init__``)."""

    policy: str
    config: str | None = None


BUILTIN_POLICIES: dict[str, PolicyTarget] = {
    "oracle": PolicyTarget("graspsim.policies.oracle:OraclePolicy", "graspsim.policies.oracle:OraclePolicyConfig"),
    "random": PolicyTarget("graspsim.policies.random_policy:RandomPolicy",
                           "graspsim.policies.random_policy:RandomPolicyConfig"),
    "heuristic": PolicyTarget("graspsim.policies.heuristic:HeuristicPolicy",
                              "graspsim.policies.heuristic:HeuristicPolicyConfig"),
    "clip_sam": PolicyTarget("graspsim.policies.clip_sam.policy:ClipSamPolicy",
                             "graspsim.policies.clip_sam.config:ClipSamPolicyConfig"),
    "det_seg": PolicyTarget("graspsim.policies.det_seg.policy:DetSegPolicy",
                            "graspsim.policies.det_seg.config:DetSegPolicyConfig"),
    "grconvnet": PolicyTarget("graspsim.policies.det_seg.policy:GrConvNetPolicy",
                              "graspsim.policies.det_seg.config:GrConvNetPolicyConfig"),
    "semgrasp": PolicyTarget("graspsim.policies.semgrasp.policy:SemGraspPolicy",
                             "graspsim.policies.semgrasp.config:SemGraspPolicyConfig"),
    "graspsam": PolicyTarget("graspsim.policies.graspsam.policy:GraspSamPolicy",
                             "graspsim.policies.graspsam.config:GraspSamPolicyConfig"),
}

#: Policies built by :func:`make_policy` in this process, by name (a worker builds its policy once).
BUILT_IN_PROCESS: Counter[str] = Counter()


class UnknownPolicyError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


def _targets() -> dict[str, PolicyTarget]:
    found = {ep.name: PolicyTarget(ep.value) for ep in entry_points(group=ENTRY_POINT_GROUP)}
    found.update(BUILTIN_POLICIES)  # built-ins win on clashes
    return dict(sorted(found.items()))


def available_policies() -> dict[str, str]:
    """All policy names mapped to their policy class's "module:attr" target (built-ins win on clashes)."""
    return {name: target.policy for name, target in _targets().items()}


def policy_target(name: str) -> PolicyTarget:
    """Where policy ``name`` lives, importing nothing (UnknownPolicyError listing the names if there is none)."""
    targets = _targets()
    if name not in targets:
        raise UnknownPolicyError(f"unknown policy {name!r}; available: {', '.join(targets)}")
    return targets[name]


def _load(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    return getattr(importlib.import_module(module_name), attr)


def resolve_policy(name: str) -> type:
    """Import and return the policy class registered under ``name`` (UnknownPolicyError if there is none)."""
    return _load(policy_target(name).policy)


def resolve_config(name: str) -> type[PolicyConfig] | None:
    """The config class of policy ``name``: imported alone for built-ins; for a third-party policy its
    class's ``config_class`` (importing the policy), or None when it has none."""
    target = policy_target(name)
    if target.config is not None:
        return _load(target.config)
    config_class = getattr(_load(target.policy), "config_class", None)
    is_config = isinstance(config_class, type) and issubclass(config_class, PolicyConfig)
    return config_class if is_config else None


def check_policy_args(name: str, kwargs: Mapping[str, Any], check_files: bool = True) -> PolicyConfig | dict:
    """Check the arguments of policy ``name`` without building it: its config, or for a policy without a
    config class the checked ``kwargs`` as a dict.

    Raises UnknownPolicyError, :class:`~graspsim.policies.config.PolicyArgError`
    (one line: an unknown key with the valid keys, or a bad value with what the
    key accepts) and, with ``check_files``, FileNotFoundError for a model file
    the config names that is not there. Built-in policies import no torch here.
    """
    config_class = resolve_config(name)
    if config_class is None:
        check_signature_keys(name, resolve_policy(name), kwargs)
        return dict(kwargs)
    config = config_class.from_kwargs(kwargs)
    if check_files:
        config.check_files()
    return config


def make_policy(name: str, **kwargs: Any):
    """Build the policy registered under ``name`` from keyword arguments (checked as by :func:`check_policy_args`,
    except for model files, which the policy's loading reports itself)."""
    config = check_policy_args(name, kwargs, check_files=False)
    policy_class = resolve_policy(name)
    policy = policy_class(**config) if isinstance(config, dict) else policy_class(config)
    BUILT_IN_PROCESS[name] += 1
    return policy
