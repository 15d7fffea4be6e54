"""Offline grasp-detection metrics of the det_seg / grconvnet networks on a rendered dataset.

Protocol (:mod:`graspsim.grasping.metrics`, seed Sec. VI): for every scene of
the dataset that has at least one ground-truth grasp, the network runs on the
RGB (det_seg) or RGB-D (grconvnet) image at the dataset's resolution; its
top-1 grasp is judged against *all* ground-truth rectangles of the image
(``grasp_accuracy``, ``accuracy_by_angle``, ``accuracy_by_iou``). det_seg also
gets ``seg_iou`` (mean over images of the per-image mean class IoU over the 25
labels background + 24 products that occur in the image's ground truth or
prediction: strict, a missed small product counts 0), ``seg_iou_seed_protocol``
(the seed authors' OCID_grasp script: per image, the mean IoU over the product
classes *predicted* on >= 100 px of a 640x480 image; background and missed
classes left out), ``seg_class_recall`` (share of the ground-truth products of
>= 100 px that the prediction shows: what the seed protocol leaves out),
``seg_miou_dataset`` (pixels pooled over the dataset, 25 classes: the usual
semantic-segmentation mIoU) and ``class_level_accuracy``
(OCID_grasp: per object class of the image, the best grasp whose centre lies on
the predicted mask of that class, judged against that class's ground truth),
also at each angle threshold (``class_level_by_angle``).
grconvnet has no segmentation: both are ``null``. ``fps`` = images per second
of the predictor (letterbox + forward + decoding, incl. the segmentation map at
the source size), single process, the current torch thread count.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from graspsim.data.format import read_scene
from graspsim.fileio import atomic_write_json, to_jsonable
from graspsim.grasping import metrics as gm
from graspsim.types import GraspRect

POLICIES = ("det_seg", "grconvnet")


SEED_MIN_PRED_PX = 100  # the seed authors' OCID_grasp script skips predicted classes under 100 px (640x480)


def _nanmean(values) -> float | None:
    v = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(v)) if v.size and np.isfinite(v).any() else None


class _Tally:
    """What the scenes of one evaluation give, pooled as they come in (image pixels, radians).

    Per scene with ground-truth grasps: the top-1 prediction (``preds``, a
    GraspRect or None) and all ground-truth rectangles (``gts``); with
    segmentation also the strict and seed-protocol IoUs, the class recall, the
    (25, 25) pixel ``confusion`` and the class-level matches per angle threshold
    (key ``"%g"`` degrees; ``"30"`` is the seed's class_level_accuracy).
    """

    def __init__(self, has_seg: bool):
        from graspsim.policies.det_seg.model import NUM_SEG_CLASSES

        self.has_seg, self.num_classes = has_seg, NUM_SEG_CLASSES
        self.preds, self.gts, self.ious, self.ious_seed, self.recalls = [], [], [], [], []
        self.confusion = np.zeros((NUM_SEG_CLASSES, NUM_SEG_CLASSES), dtype=np.int64)
        self.per_class_by_angle: dict[str, list] = {f"{t:g}": [] for t in gm.ANGLE_THRESHOLDS_DEG}
        self.seconds, self.skipped = 0.0, 0
        self.resolution = None  # [width, height] of the last scene read

    def add(self, scene: dict, out: dict) -> None:
        """One scene (:func:`~graspsim.data.format.read_scene`) and the predictor's output on it."""
        self.seconds += out["seconds"]
        rects = [GraspRect(*r) for r in out["rects"]]
        self.preds.append(rects[0] if rects else None)
        gt = [GraspRect(*r) for r in scene["grasps"]]
        self.gts.append(gt)
        if self.has_seg:
            self._add_segmentation(out["seg"], scene, list(zip(rects, out["scores"].tolist())), gt)

    def _add_segmentation(self, seg: np.ndarray, scene: dict, scored: list, gt: list[GraspRect]) -> None:
        """``seg`` (H, W) predicted labels (0 background, catalog index + 1); ``scored`` (rect, score) pairs."""
        gt_map = scene["class_map"].astype(np.int64)
        self.ious.append(gm.segmentation_iou(seg, gt_map, self.num_classes)["mean_iou"])
        # the seed's 100 px at 640x480, scaled with the image area
        min_px = max(1, round(SEED_MIN_PRED_PX * gt_map.size / (640 * 480)))
        self.ious_seed.append(gm.segmentation_iou_seed_protocol(seg, gt_map, min_pred_px=min_px)["mean_iou"])
        self.recalls.append(gm.segmentation_class_recall(seg, gt_map, min_px=min_px))
        self.confusion += gm.segmentation_confusion(seg, gt_map, self.num_classes)
        by_class: dict[int, list] = {}
        for g, c in zip(gt, scene["grasp_classes"]):
            by_class.setdefault(int(c), []).append(g)
        # predicted map in catalog indices (-1 background) to match grasp_classes
        for t in gm.ANGLE_THRESHOLDS_DEG:
            self.per_class_by_angle[f"{t:g}"].append(
                gm.class_level_match(scored, seg - 1, by_class, angle_threshold_deg=float(t)))


def _run_scenes(predictor, scene_dirs: list[Path], has_seg: bool, progress: bool, desc: str) -> _Tally:
    """Predict on every scene with ground-truth grasps (RGB for det_seg, RGB-D otherwise); the tally."""
    from tqdm import tqdm

    tally = _Tally(has_seg)
    for d in tqdm(scene_dirs, desc=desc, unit="scene", leave=False, disable=not progress):
        s = read_scene(d)
        tally.resolution = [int(s["rgb"].shape[1]), int(s["rgb"].shape[0])]
        if len(s["grasps"]) == 0:
            tally.skipped += 1
            continue
        tally.add(s, predictor.predict(s["rgb"], s["depth_m"]) if not has_seg else predictor.predict(s["rgb"]))
    return tally


def _metrics(t: _Tally, run: dict) -> dict:
    """The metrics.json content: ``run`` (policy, checkpoint, settings, data, suite) then the scores of ``t``."""
    n, seg = len(t.preds), t.has_seg
    return {
        **run,
        "scenes": n,
        "scenes_without_grasps": t.skipped,
        "grasp_accuracy": gm.grasp_accuracy(t.preds, t.gts) if n else None,
        "accuracy_by_angle": gm.accuracy_by_angle(t.preds, t.gts) if n else None,
        "accuracy_by_iou": gm.accuracy_by_iou(t.preds, t.gts) if n else None,
        "seg_iou": _nanmean(t.ious) if seg else None,
        "seg_iou_seed_protocol": _nanmean(t.ious_seed) if seg else None,
        "seg_class_recall": _nanmean(t.recalls) if seg else None,
        "seg_miou_dataset": gm.miou_from_confusion(t.confusion)["mean_iou"] if (seg and t.confusion.any()) else None,
        "class_level_accuracy": gm.class_level_accuracy(t.per_class_by_angle["30"]) if seg else None,
        # image-level accuracy saturates with ~100 labels per cluttered image; per class it discriminates
        # (Det_Seg vs Det_Seg_Refine at strict angles)
        "class_level_by_angle": ({k: gm.class_level_accuracy(v) for k, v in t.per_class_by_angle.items()}
                                 if seg else None),
        "fps": (n / t.seconds) if t.seconds > 0 else None,
        "resolution": t.resolution if n else None,
    }


def evaluate_grasps(policy_name: str, data_dir: str | Path, out_dir: str | Path, checkpoint: str | Path | None = None,
                    max_scenes: int | None = None, progress: bool = False, refine: bool | None = None,
                    min_region_px: float | None = None, guided: bool = True) -> dict:
    """Run the network of ``policy_name`` on every scene of ``data_dir``; write ``out_dir/metrics.json``; return it.

    ``checkpoint`` None = the shipped default. ``refine=False`` runs det_seg
    without its refinement head (Det_Seg vs Det_Seg_Refine on the same
    weights; recorded as ``metrics["refine"]``); ``min_region_px`` overrides
    the segmentation clean-up (None = the policy's default, 0 = off; recorded
    as ``metrics["min_region_px"]``); ``guided=False`` upsamples the
    segmentation bilinearly instead of with the guided filter (``metrics["guided_seg"]``). Raises
    :class:`~.train.DatasetError` for a bad dataset and FileNotFoundError for a
    missing checkpoint.
    """
    from graspsim.data.format import check_dataset
    from graspsim.policies.det_seg.checkpoint import load_checkpoint
    from graspsim.policies.det_seg.config import DEFAULT_MIN_REGION_PX, resolve_checkpoint
    from graspsim.policies.det_seg.policy import make_predictor

    if policy_name not in POLICIES:
        raise ValueError(f"unknown policy {policy_name!r}; choose one of {', '.join(POLICIES)}")
    manifest, scene_dirs = check_dataset(data_dir)
    if max_scenes is not None:
        scene_dirs = scene_dirs[: max(0, int(max_scenes))]
    ckpt = resolve_checkpoint(policy_name, checkpoint)
    net = load_checkpoint(ckpt, kind=policy_name)
    min_region = DEFAULT_MIN_REGION_PX if min_region_px is None else float(min_region_px)
    has_refine = getattr(net, "refine", None) is not None  # det_seg trained with its refinement head
    has_seg = policy_name == "det_seg"
    tally = _run_scenes(make_predictor(net, refine=refine, min_region_px=min_region, guided=guided), scene_dirs,
                        has_seg, progress, f"evaluate {policy_name}")
    metrics = to_jsonable(_metrics(tally, {
        "policy": policy_name,
        "checkpoint": str(ckpt),
        "refine": (refine is not False) if has_refine else None,
        "min_region_px": min_region if has_seg else None,
        "guided_seg": bool(guided) if has_seg else None,
        "data": str(Path(data_dir).resolve()),
        "suite": manifest.get("suite"),
    }))
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(out_dir) / "metrics.json", metrics)
    return metrics


def format_table(m: dict) -> str:
    """A small text table of a metrics dict."""
    def pct(v):
        return "   -  " if v is None else f"{100 * v:6.2f}"

    lines = [f"policy {m['policy']}  data {m['data']}  scenes {m['scenes']}",
             f"{'grasp acc':>14} {pct(m['grasp_accuracy'])}   seg IoU {pct(m['seg_iou'])}   "
             f"class-level {pct(m['class_level_accuracy'])}   fps {m['fps'] or 0:.1f}"]
    if m.get("seg_iou") is not None:
        lines.append(f"seg IoU: strict {pct(m['seg_iou'])}  seed protocol {pct(m.get('seg_iou_seed_protocol'))}  "
                     f"class recall {pct(m.get('seg_class_recall'))}  dataset mIoU {pct(m.get('seg_miou_dataset'))}")
    if m.get("accuracy_by_angle"):
        lines.append("angle (IoU>25%) " + "  ".join(f"{k}deg {pct(v)}" for k, v in m["accuracy_by_angle"].items()))
    if m.get("class_level_by_angle"):
        lines.append("class-level     " + "  ".join(f"{k}deg {pct(v)}" for k, v in m["class_level_by_angle"].items()))
    if m.get("accuracy_by_iou"):
        lines.append("IoU (<30deg)    " + "  ".join(f"{k}% {pct(v)}" for k, v in m["accuracy_by_iou"].items()))
    return "\n".join(lines)
