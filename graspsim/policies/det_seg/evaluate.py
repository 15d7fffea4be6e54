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

import json
import math
from pathlib import Path

import numpy as np

from graspsim.fileio import atomic_write_text

POLICIES = ("det_seg", "grconvnet")


SEED_MIN_PRED_PX = 100  # the seed authors' OCID_grasp script skips predicted classes under 100 px (640x480)


def _nanmean(values) -> float | None:
    v = np.asarray(values, dtype=np.float64)
    return float(np.nanmean(v)) if v.size and np.isfinite(v).any() else None


def _clean(v):
    if isinstance(v, dict):
        return {k: _clean(x) for k, x in v.items()}
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


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
    from graspsim.data.format import read_scene
    from graspsim.grasping.metrics import (ANGLE_THRESHOLDS_DEG, accuracy_by_angle, accuracy_by_iou,
                                           class_level_accuracy, class_level_match, grasp_accuracy,
                                           miou_from_confusion, segmentation_class_recall, segmentation_confusion,
                                           segmentation_iou, segmentation_iou_seed_protocol)
    from graspsim.policies.det_seg.model import NUM_SEG_CLASSES
    from graspsim.policies.det_seg.policy import DEFAULT_MIN_REGION_PX, _resolve_checkpoint, make_predictor
    from graspsim.data.format import check_dataset
    from graspsim.policies.det_seg.checkpoint import load_checkpoint
    from graspsim.types import GraspRect

    if policy_name not in POLICIES:
        raise ValueError(f"unknown policy {policy_name!r}; choose one of {', '.join(POLICIES)}")
    manifest, scene_dirs = check_dataset(data_dir)
    if max_scenes is not None:
        scene_dirs = scene_dirs[: max(0, int(max_scenes))]
    ckpt = _resolve_checkpoint(policy_name, checkpoint)
    net = load_checkpoint(ckpt, kind=policy_name)
    min_region = DEFAULT_MIN_REGION_PX if min_region_px is None else float(min_region_px)
    predictor = make_predictor(net, refine=refine, min_region_px=min_region, guided=guided)
    has_refine = getattr(net, "refine", None) is not None  # det_seg trained with its refinement head
    has_seg = policy_name == "det_seg"

    preds, gts, ious, ious_seed, recalls = [], [], [], [], []
    confusion = np.zeros((NUM_SEG_CLASSES, NUM_SEG_CLASSES), dtype=np.int64)
    # class-level matches per angle threshold (key "%g" degrees); "30" is the seed's class_level_accuracy
    per_class_by_angle: dict[str, list] = {f"{t:g}": [] for t in ANGLE_THRESHOLDS_DEG}
    seconds, skipped = 0.0, 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(scene_dirs), desc=f"evaluate {policy_name}", unit="scene", leave=False)
    for d in scene_dirs:
        s = read_scene(d)
        if bar is not None:
            bar.update(1)
        if len(s["grasps"]) == 0:
            skipped += 1
            continue
        out = predictor.predict(s["rgb"], s["depth_m"]) if not has_seg else predictor.predict(s["rgb"])
        seconds += out["seconds"]
        rects = [GraspRect(*r) for r in out["rects"]]
        preds.append(rects[0] if rects else None)
        gt = [GraspRect(*r) for r in s["grasps"]]
        gts.append(gt)
        if has_seg:
            seg = out["seg"]
            gt_map = s["class_map"].astype(np.int64)
            ious.append(segmentation_iou(seg, gt_map, NUM_SEG_CLASSES)["mean_iou"])
            # the seed's 100 px at 640x480, scaled with the image area
            min_px = max(1, round(SEED_MIN_PRED_PX * gt_map.size / (640 * 480)))
            ious_seed.append(segmentation_iou_seed_protocol(seg, gt_map, min_pred_px=min_px)["mean_iou"])
            recalls.append(segmentation_class_recall(seg, gt_map, min_px=min_px))
            confusion += segmentation_confusion(seg, gt_map, NUM_SEG_CLASSES)
            by_class: dict[int, list] = {}
            for g, c in zip(gt, s["grasp_classes"]):
                by_class.setdefault(int(c), []).append(g)
            # predicted map in catalog indices (-1 background) to match grasp_classes
            scored = list(zip(rects, out["scores"].tolist()))
            for t in ANGLE_THRESHOLDS_DEG:
                per_class_by_angle[f"{t:g}"].append(
                    class_level_match(scored, seg - 1, by_class, angle_threshold_deg=float(t)))
    if bar is not None:
        bar.close()
    n = len(preds)
    metrics = {
        "policy": policy_name,
        "checkpoint": str(ckpt),
        "refine": (refine is not False) if has_refine else None,
        "min_region_px": min_region if has_seg else None,
        "guided_seg": bool(guided) if has_seg else None,
        "data": str(Path(data_dir).resolve()),
        "suite": manifest.get("suite"),
        "scenes": n,
        "scenes_without_grasps": skipped,
        "grasp_accuracy": grasp_accuracy(preds, gts) if n else None,
        "accuracy_by_angle": accuracy_by_angle(preds, gts) if n else None,
        "accuracy_by_iou": accuracy_by_iou(preds, gts) if n else None,
        "seg_iou": _nanmean(ious) if has_seg else None,
        "seg_iou_seed_protocol": _nanmean(ious_seed) if has_seg else None,
        "seg_class_recall": _nanmean(recalls) if has_seg else None,
        "seg_miou_dataset": miou_from_confusion(confusion)["mean_iou"] if (has_seg and confusion.any()) else None,
        "class_level_accuracy": class_level_accuracy(per_class_by_angle["30"]) if has_seg else None,
        # image-level accuracy saturates with ~100 labels per cluttered image; per class it discriminates
        # (Det_Seg vs Det_Seg_Refine at strict angles)
        "class_level_by_angle": ({k: class_level_accuracy(v) for k, v in per_class_by_angle.items()}
                                 if has_seg else None),
        "fps": (n / seconds) if seconds > 0 else None,
        "resolution": None if not n else [int(s["rgb"].shape[1]), int(s["rgb"].shape[0])],
    }
    metrics = _clean(metrics)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "metrics.json", json.dumps(metrics, indent=2) + "\n", durable=True)
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
