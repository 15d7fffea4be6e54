"""``GraspDataset``: the torch view of :class:`graspsim.data.reader.Datasets` (this module imports torch).

Each item is a dict:

* ``rgb``: (3, H, W) float32 in [0, 1]; ``depth``: (1, H, W) float32 metres (0 = no depth);
* ``class_map``: (H, W) int64 catalog class, -1 = not a product;
* ``instance_map``: (H, W) int64 plan product index, -1 = not a product;
* ``robot_seg`` (only for a scene rendered with the arm, ``robot="panda"``): (H, W)
  int64, 0 not the robot, 1 arm, 2 gripper (hand and fingers); absent otherwise;
* ``grasps``: (N, 5) float32 ``[x, y, w, h, theta]`` (pixels, radians), every
  validated grasp of every product; ``grasp_classes``: (N,) int64 catalog class
  of each grasp's product; ``grasp_quality``: (N,) float32;
* ``K``: (3, 3) float32; ``meta``: the scene's meta.json dict.

``N`` varies between scenes: batch with a custom ``collate_fn`` (e.g. ``list``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import torch

from graspsim.data.reader import Datasets


class GraspDataset(torch.utils.data.Dataset):
    """Scenes of the dataset at ``root`` (complete ones only, sorted by shard and scene id).

    ``split_filter``: optional predicate on a scene's meta dict (e.g.
    ``lambda m: m["scene_seed"] % 10 != 0`` for a validation hold-out); it reads
    every meta.json once at construction. Raises
    :class:`~graspsim.data.format.DatasetError` when ``root`` is not a rendered
    dataset with at least one complete scene.
    """

    def __init__(self, root: str | Path, split_filter: Callable[[dict], bool] | None = None):
        self.root = Path(root)
        self.reader = Datasets(self.root)
        refs = self.reader.scenes
        if split_filter is not None:
            refs = [r for r in refs if split_filter(json.loads((r.path / "meta.json").read_text(encoding="utf-8")))]
        self.scenes = refs
        self.scene_dirs = [r.path for r in refs]

    def __len__(self) -> int:
        return len(self.scenes)

    def __getitem__(self, index: int) -> dict:
        s = self.reader.read(self.scenes[index])
        item = {
            "rgb": torch.from_numpy(s["rgb"]).permute(2, 0, 1).contiguous().float() / 255.0,
            "depth": torch.from_numpy(s["depth_m"])[None].contiguous(),
            "class_map": torch.from_numpy(s["class_map"].astype("int64")) - 1,
            "instance_map": torch.from_numpy(s["instance"].astype("int64")) - 1,
            "grasps": torch.from_numpy(s["grasps"]).float().reshape(-1, 5),
            "grasp_classes": torch.from_numpy(s["grasp_classes"]).long(),
            "grasp_quality": torch.from_numpy(s["grasp_quality"]).float(),
            "K": torch.from_numpy(s["K"]).float(),
            "meta": s["meta"],
        }
        if s["robot_seg"] is not None:  # absent, not None: torch's default collate cannot batch None
            item["robot_seg"] = torch.from_numpy(s["robot_seg"].astype("int64"))
        return item
