"""Rendered grasp datasets: ``graspsim render`` writes them, :class:`GraspDataset` reads them.

See :mod:`graspsim.data.format` for the on-disk format. Importing this package
does not import torch (only :mod:`graspsim.data.dataset` does, lazily).
"""

from graspsim.data.format import FORMAT_VERSION, read_scene

__all__ = ["FORMAT_VERSION", "read_scene"]
