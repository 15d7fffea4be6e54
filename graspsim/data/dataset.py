"""A ``torch.utils.data.Dataset`` over a rendered grasp dataset (this module imports torch).

Each item is a dict:

* ``rgb``: (3, H, W) float32 in [0, 1]; ``depth``: (1, H, W) float32 metres (0 = no depth);
* ``class_map``: (H, W) int64 catalog class, -1 = not a product;
* ``instance_map``: (H, W) int64 plan product index, -1 = not a product;
* ``grasps``: (N, 5) float32 ``[x, y, w, h, theta]`` (pixels, radians), every
  validated grasp of every product; ``grasp_classes``: (N,) int64 catalog class
  of each grasp's product; ``grasp_quality``: (N,) float32;
* ``K``: (3, 3) float32; ``meta``: the scene's meta.json dict.

``N`` varies between scenes: batch with a custom ``collate_fn`` (e.g. ``list``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import torch

from graspsim.data.format import iter_scene_dirs, read_scene


class GraspDataset(torch.utils.data.Dataset):
    """Scenes of the dataset at ``root`` (complete ones only, sorted by shard and scene id).

    ``split_filter``: optional predicate on a scene's meta dict (e.g.
    ``lambda m: m["scene_seed"] % 10 != 0`` for a validation hold-out); it reads
    every meta.json once at construction.
    """

    def __init__(self, root: str | Path, split_filter: Callable[[dict], bool] | None = None):
        import json

        self.root = Path(root)
        dirs = iter_scene_dirs(self.root)
        if split_filter is not None:
            dirs = [d for d in dirs if split_filter(json.loads((d / "meta.json").read_text(encoding="utf-8")))]
        self.scene_dirs = dirs

    def __len__(self) -> int:
        return len(self.scene_dirs)

    def __getitem__(self, index: int) -> dict:
        s = read_scene(self.scene_dirs[index])
        instance = torch.from_numpy(s["instance"].astype("int64")) - 1
        class_map = torch.from_numpy(s["class_map"].astype("int64")) - 1
        return {
            "rgb": torch.from_numpy(s["rgb"]).permute(2, 0, 1).contiguous().float() / 255.0,
            "depth": torch.from_numpy(s["depth_m"])[None].contiguous(),
            "class_map": class_map,
            "instance_map": instance,
            "grasps": torch.from_numpy(s["grasps"]).float().reshape(-1, 5),
            "grasp_classes": torch.from_numpy(s["grasp_classes"]).long(),
            "grasp_quality": torch.from_numpy(s["grasp_quality"]).float(),
            "K": torch.from_numpy(s["K"]).float(),
            "meta": s["meta"],
        }
