"""What a policy sees on a suite's scenes, one scene at a time, for offline evaluations of perception.

``graspsim evaluate masks`` scores a stack on the very scenes and instructions
``graspsim bench`` uses, without executing grasps; its scoring code lives with
the stack (policies never import the simulator), and this observer is what the
command line hands it.
"""

from __future__ import annotations

from typing import Any


class SuiteObserver:
    """``observer(scene_seed)``: the environment's observation dict of that scene (with privileged masks; a policy
    reads it with :func:`graspsim.policies.base.as_observation`), or the reason the scene cannot be built (a
    ``str``: it is skipped, as bench skips it). Builds one environment, on first use."""

    def __init__(self, kind: str, variant_split: str, width: int = 640, height: int = 480, renderer: str = "auto",
                 privileged: bool = True):
        self.env_kwargs = dict(kind=kind, variant_split=variant_split, width=width, height=height,
                               renderer=renderer, privileged=privileged)
        self.env = None

    @classmethod
    def for_suite(cls, suite: str, **kwargs) -> "SuiteObserver":
        from graspsim.scenes.suites import get_suite

        suite_obj = get_suite(suite)
        return cls(suite_obj.kind, suite_obj.variant_split, **kwargs)

    def __call__(self, scene_seed: int) -> dict[str, Any] | str:
        from graspsim.envs.pick_env import PickEnv
        from graspsim.sim.scene import SceneUnavailableError

        if self.env is None:
            self.env = PickEnv(**self.env_kwargs)
        try:
            obs, _ = self.env.reset(seed=scene_seed)
        except SceneUnavailableError as exc:
            return str(exc)
        return obs

    def close(self) -> None:
        if self.env is not None:
            self.env.close()
            self.env = None
