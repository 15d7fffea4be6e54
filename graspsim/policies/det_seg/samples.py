"""det_seg / GR-ConvNet training samples: scenes of :class:`graspsim.data.reader.Datasets` letterboxed into memory.

Every scene is letterboxed once to the network input (:class:`~.targets.Letterbox`);
validation scenes also keep their source-resolution images and labels (the
metrics are computed in source pixels). :func:`augment` flips and
colour-jitters a sample per batch.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np

from graspsim.data.reader import Datasets, SceneRef


@dataclass
class Sample:
    """One scene letterboxed to the network input (network px) plus its source-pixel ground truth."""

    seed: int
    rgb: np.ndarray  # (S, S, 3) uint8
    seg: np.ndarray  # (S, S) int16: -1 padding, 0 background, c + 1 class c
    depth: np.ndarray | None  # (S, S) float32 metres (GR-ConvNet only)
    rects: np.ndarray  # (N, 5) network px
    quality: np.ndarray  # (N,)
    src_rects: np.ndarray  # (N, 5) source px
    src_rgb: np.ndarray | None  # (H, W, 3) uint8 (validation scenes only)
    src_depth: np.ndarray | None  # (H, W) float32 (validation scenes only)
    src_class_map: np.ndarray | None  # (H, W) uint8 (0 background, c + 1; validation scenes only)
    labelled: bool = True  # False: a --no-grasps scene (no grasp labels; segmentation loss only)
    suite: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return (self.suite, self.seed)


def load_samples(refs: list[SceneRef], size: int, with_depth: bool,
                 keep_source: Callable[[SceneRef], bool] = lambda ref: True) -> list[Sample]:
    """The scenes ``refs`` letterboxed to ``size``; source-resolution images kept only where ``keep_source(ref)``."""
    from graspsim.policies.det_seg.targets import Letterbox

    out = []
    for ref in refs:
        s = Datasets.read(ref)
        keep = keep_source(ref)
        h, w = s["rgb"].shape[:2]
        lb = Letterbox.for_shape(h, w, size)
        cmap = s["class_map"].astype(np.int16)  # 0 none, c + 1
        out.append(Sample(
            seed=int(s["meta"]["scene_seed"]),
            rgb=lb.image(s["rgb"]),
            seg=lb.image(cmap, nearest=True, fill=-1),
            depth=lb.image(s["depth_m"], nearest=True) if with_depth else None,
            rects=lb.rects_to_net(s["grasps"]),
            quality=s["grasp_quality"].astype(np.float64),
            src_rects=s["grasps"].astype(np.float64),
            src_rgb=s["rgb"] if keep else None, src_depth=s["depth_m"] if keep else None,
            src_class_map=s["class_map"] if keep else None, labelled=ref.labelled, suite=ref.suite,
        ))
    return out


def augment(sample: Sample, rng: np.random.Generator, enabled: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """``(rgb, seg, depth, rects)`` of a sample, flipped left-right with probability 1/2 and colour-jittered.

    The two draws happen even when ``enabled`` is False, so switching augmentation off does not change the
    order of the following samples' draws.
    """
    rgb, seg, depth, rects = sample.rgb, sample.seg, sample.depth, sample.rects
    flip = bool(rng.random() < 0.5)
    gain = rng.uniform(0.8, 1.2, size=3)
    if not enabled:
        return rgb, seg, depth, rects
    size = rgb.shape[1]
    if flip:
        rgb, seg = rgb[:, ::-1], seg[:, ::-1]
        depth = depth[:, ::-1] if depth is not None else None
        rects = rects.copy()
        rects[:, 0] = size - 1 - rects[:, 0]
        rects[:, 4] = (-rects[:, 4] + np.pi / 2) % np.pi - np.pi / 2
    rgb = np.clip(rgb.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb), np.ascontiguousarray(seg), (None if depth is None else np.ascontiguousarray(depth)), rects
