"""Policy registry: name -> "module:attr", imported only when used.

Built-in policies are listed below; third-party packages add theirs through the
``graspsim.policies`` entry-point group, e.g. in their pyproject.toml::

    [project.entry-points."graspsim.policies"]
    my_policy = "my_package.policy:MyPolicy"

Importing this module imports no policy (and no torch).
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

ENTRY_POINT_GROUP = "graspsim.policies"

BUILTIN_POLICIES: dict[str, str] = {
    "oracle": "graspsim.policies.oracle:OraclePolicy",
    "random": "graspsim.policies.random_policy:RandomPolicy",
    "heuristic": "graspsim.policies.heuristic:HeuristicPolicy",
    "clip_sam": "graspsim.policies.clip_sam.policy:ClipSamPolicy",
    "det_seg": "graspsim.policies.det_seg.policy:DetSegPolicy",
    "grconvnet": "graspsim.policies.det_seg.policy:GrConvNetPolicy",
}


class UnknownPolicyError(KeyError):
    def __str__(self) -> str:  # KeyError quotes its message; we want plain text
        return str(self.args[0])


def available_policies() -> dict[str, str]:
    """All policy names mapped to their "module:attr" target (built-ins win on clashes)."""
    found: dict[str, str] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = ep.value
    found.update(BUILTIN_POLICIES)
    return dict(sorted(found.items()))


def resolve_policy(name: str) -> type:
    """Import and return the policy class registered under ``name``."""
    targets = available_policies()
    if name not in targets:
        raise UnknownPolicyError(
            f"unknown policy {name!r}; available: {', '.join(targets)}"
        )
    module_name, _, attr = targets[name].partition(":")
    module = importlib.import_module(module_name)
    return getattr(module, attr)


def make_policy(name: str, **kwargs: Any):
    """Build the policy registered under ``name`` with keyword arguments."""
    return resolve_policy(name)(**kwargs)
