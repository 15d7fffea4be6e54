"""The ONE reader of rendered datasets (:mod:`graspsim.data.format`): every trainer and ``GraspDataset`` use it.

:class:`Datasets` checks one or more dataset directories (:class:`DatasetError`
with a one-line reason) and lists their complete scenes as :class:`SceneRef`
values; scenes are read on demand (numpy + OpenCV). What a trainer keeps in
memory, and how, is its own view (det_seg's letterboxed samples, clip_sam's
scene bank, the torch ``GraspDataset``). It lives in data/, which owns the
format both ways (writer and reader): learn/ and the policies import it, and
data/ imports neither.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graspsim.data.format import DatasetError, check_dataset, has_grasp_labels, read_scene  # noqa: F401


@dataclass(frozen=True)
class SceneRef:
    """One complete scene; ``source``: the index of its dataset in :attr:`Datasets.dirs`."""

    path: Path
    suite: str
    seed: int
    labelled: bool  # False: its dataset was rendered with --no-grasps (no grasp labels)
    source: int

    @property
    def key(self) -> tuple[str, int]:
        """``(suite, seed)``: the same key renders the same scene, whichever dataset holds it."""
        return (self.suite, self.seed)


def scene_seed_of(scene_dir: str | Path) -> int:
    """The scene seed from a scene directory name (``scene-<seed>``)."""
    return int(Path(scene_dir).name.split("-", 1)[1])


class Datasets:
    """The complete scenes of one dataset directory or a list of them, in dataset then shard/scene order."""

    def __init__(self, data_dirs: str | Path | list):
        dirs = [data_dirs] if isinstance(data_dirs, (str, Path)) else list(data_dirs)
        if not dirs:
            raise DatasetError("no data directory given")
        self.dirs = [Path(d) for d in dirs]
        self.manifests: list[dict] = []
        self.scenes: list[SceneRef] = []
        for i, d in enumerate(self.dirs):
            manifest, scene_dirs = check_dataset(d)
            self.manifests.append(manifest)
            labelled, suite = has_grasp_labels(manifest), str(manifest.get("suite"))
            self.scenes += [SceneRef(sd, suite, scene_seed_of(sd), labelled, i) for sd in scene_dirs]

    def unique(self) -> list[SceneRef]:
        """One scene per ``(suite, seed)``, sorted by it: the first labelled copy, else the first copy."""
        found: dict[tuple[str, int], SceneRef] = {}
        for ref in self.scenes:
            if ref.key not in found or (ref.labelled and not found[ref.key].labelled):
                found[ref.key] = ref
        return [found[k] for k in sorted(found)]

    def split_scenes(self, source: int, split: str) -> list[SceneRef]:
        """The complete scenes of dataset ``source`` (an index into :attr:`dirs`) in ``split``: ``"val"`` the
        scenes :func:`held_out_every` holds out, ``"train"`` the others; ValueError for another split."""
        if split not in ("train", "val"):
            raise ValueError(f"split must be train/val, got {split!r}")
        return [r for r in self.scenes if r.source == source and held_out_every(r.seed) == (split == "val")]

    @staticmethod
    def read(ref: SceneRef) -> dict:
        """The scene's arrays and meta (:func:`graspsim.data.format.read_scene`)."""
        return read_scene(ref.path)


def split_random(keys: list, fraction: float, seed: int) -> tuple[set, set]:
    """``(train, val)`` sets of sortable scene keys: ``ceil(fraction * n)`` keys (at least 1, at most ``n - 1``)
    drawn by ``numpy.random.default_rng(seed).permutation`` of the sorted keys; ``fraction = 0`` (or fewer than
    2 keys): validation on the training keys."""
    keys = sorted(set(keys))
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0 or len(keys) < 2:
        return set(keys), set(keys)
    perm = np.random.default_rng(seed).permutation(len(keys))
    n_val = min(len(keys) - 1, max(1, int(math.ceil(fraction * len(keys)))))
    val = {keys[i] for i in perm[:n_val]}
    return set(keys) - val, val


def split_tail(keys: list, fraction: float) -> tuple[set, set]:
    """``(train, val)`` sets of ``(suite, seed)`` scene keys: per suite the ``ceil(fraction * n)`` keys with the
    highest seeds (at least 1, at most ``n - 1``) are validation. A suite's seeds are drawn in order, so these
    are the scenes a growing dataset got last, and a benchmark on the suite's last indices (``--seed``) runs on
    scenes no training item came from. ``fraction = 0``: validation on the training keys."""
    keys = sorted(set(keys))
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {fraction}")
    if fraction == 0.0:
        return set(keys), set(keys)
    val: set = set()
    for suite in sorted({k[0] for k in keys}):
        mine = [k for k in keys if k[0] == suite]  # sorted by seed
        if len(mine) >= 2:
            val.update(mine[len(mine) - min(len(mine) - 1, max(1, int(math.ceil(fraction * len(mine))))):])
    if not val:
        return set(keys), set(keys)
    return set(keys) - val, val


def held_out_every(seed: int, every: int = 10) -> bool:
    """The fixed hold-out of the clip_sam trainers: scene seeds divisible by ``every``."""
    return seed % every == 0
