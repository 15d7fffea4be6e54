"""graspsim: a PyBullet benchmark harness for robotic picking of retail products."""

__version__ = "0.1.0"

from graspsim.envs.registration import register_envs as _register_envs

_register_envs()
