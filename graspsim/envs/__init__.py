"""Gymnasium environments (the only package that imports gymnasium).

``import graspsim`` registers ``graspsim/ShelfPick-v0`` and ``graspsim/TabletopPick-v0``.
"""

from graspsim.envs.registration import ENV_IDS, register_envs

__all__ = ["ENV_IDS", "register_envs"]
