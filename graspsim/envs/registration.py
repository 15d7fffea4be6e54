"""Register graspsim's environments with Gymnasium (idempotent; imports no simulator)."""

from __future__ import annotations

from gymnasium.envs.registration import register, registry

ENV_IDS = {
    "graspsim/ShelfPick-v0": {"kind": "shelf"},
    "graspsim/TabletopPick-v0": {"kind": "tabletop"},
}


def register_envs() -> None:
    for env_id, kwargs in ENV_IDS.items():
        if env_id not in registry:
            register(id=env_id, entry_point="graspsim.envs.pick_env:PickEnv", kwargs=dict(kwargs),
                     max_episode_steps=None)
