"""Register graspsim's environments with Gymnasium (idempotent; imports no simulator)."""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

from graspsim.scenes.kinds import SCENE_KINDS

#: One environment per scene kind: id -> PickEnv keyword arguments.
ENV_IDS = {kind.env_id: {"kind": kind.name} for kind in SCENE_KINDS.values()}


def register_envs() -> None:
    for env_id, kwargs in ENV_IDS.items():
        if env_id not in registry:
            register(id=env_id, entry_point="graspsim.envs.pick_env:PickEnv", kwargs=dict(kwargs),
                     max_episode_steps=None)
