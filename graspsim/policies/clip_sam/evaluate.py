"""``graspsim evaluate masks``: offline scores of the clip_sam perception (no grasp is executed).

On the scenes of a suite (the same scenes and target instructions ``graspsim
bench`` uses), with the ground-truth segmentation the environment renders:

* ``clip_top1`` / ``clip_top5``: CLIP classifies a crop of the target (its
  largest visible instance, box padded by 10 %) among the 24 class texts
  (prompt ensemble :data:`~.vocab.CLASSIFY_TEMPLATES`), as the paper's CLIP tables;
* ``mask_iou[mode]``: IoU of the SAM mask for the attention-derived prompt of
  ``mode`` with the target-class instance it overlaps most (0 when it covers no
  target pixel) - instance level, because a shelf shows several facings of the
  target and any one of them is a correct answer; ``on_target[mode]``: share of
  masks whose majority class is the target;
* ``mask_iou_first_peak[mode]``: the same for the single-pass pipeline (the
  strongest attention peak only, no CLIP verification of the masks);
* ``stage_ms``: mean milliseconds of the CLIP Grad-CAM stage (both passes),
  prompt building, and SAM (per prompt), on this machine.

Writes ``OUT/metrics.json`` (atomically) and ``OUT/episodes.jsonl`` (one row per
scene, appended as it goes: ``--resume`` skips scenes already there).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

import numpy as np

from graspsim.fileio import atomic_write_text
from graspsim.policies.clip_sam.prompts import PROMPT_MODES as MODES
from graspsim.runs import JsonlWriter, RunLayout, prepare_run_dir, read_jsonl

#: OUT/config.json holds the settings; OUT/episodes.jsonl one row per scene, keyed by its seed.
EVALUATION_LAYOUT = RunLayout(config_name="config.json", records_name="episodes.jsonl", key="scene_seed",
                              volatile=frozenset(), what="mask evaluation", resume_from_nothing=True)


def mask_iou(pred: np.ndarray, gt: np.ndarray) -> float:
    """IoU of two (H, W) bool masks (1.0 when both are empty)."""
    union = np.logical_or(pred, gt).sum()
    return float(np.logical_and(pred, gt).sum() / union) if union else 1.0


def instance_iou(mask: np.ndarray, instance_seg: np.ndarray, class_seg: np.ndarray, target: int) -> float:
    """IoU of ``mask`` with the target-class instance it overlaps most (0 if none)."""
    on = mask & (class_seg == target)
    if not on.any():
        return 0.0
    ids, counts = np.unique(instance_seg[on], return_counts=True)
    return max(mask_iou(mask, (instance_seg == i) & (class_seg == target)) for i in ids[np.argsort(-counts)][:3])


def majority_is_target(mask: np.ndarray, class_seg: np.ndarray, target: int) -> bool:
    if not mask.any():
        return False
    vals, counts = np.unique(class_seg[mask], return_counts=True)
    return int(vals[np.argmax(counts)]) == target


def evaluate_masks(suite: str, out_dir: str | Path, observe: Callable[[int], Any], episodes: int = 100, seed: int = 0,
                   clip: str | None = None, sam: str | None = None, zoom: bool = True, cam_layer: int = -1,
                   verify: bool = True, cam_method: str | None = None, threshold: float | None = None,
                   threads: int | None = None, resume: bool = False, progress: bool = True, width: int = 640,
                   height: int = 480, renderer: str = "auto") -> dict[str, Any]:
    """Score the clip_sam perception on ``episodes`` scenes of ``suite``; returns the metrics dict.

    ``observe(scene_seed)`` gives the observation of a scene with its privileged masks (an environment's dict or an
    :class:`~graspsim.types.Observation`),
    or a ``str`` (why the scene is skipped): :class:`graspsim.envs.observer.SuiteObserver` for ``suite`` at
    ``width`` x ``height`` with ``renderer`` (recorded in the settings).
    """
    import graspsim
    from graspsim.policies.clip_sam.policy import ClipSamPolicy
    from graspsim.scenes.suites import get_suite

    suite_obj = get_suite(suite)
    seeds = suite_obj.scene_seeds(seed, episodes)
    out_dir = Path(out_dir)
    config = {"suite": suite_obj.name, "seed": seed, "episodes": episodes, "clip": clip or "sim", "sam": sam or "sim",
              "zoom": zoom, "cam_layer": cam_layer, "verify": verify, "cam_method": cam_method,
              **({} if threshold is None else {"threshold": threshold}), "width": width, "height": height, "renderer": renderer}
    prepare_run_dir(out_dir, config, resume, EVALUATION_LAYOUT)
    done: dict[int, dict] = {int(row["scene_seed"]): row
                             for row in read_jsonl(out_dir / EVALUATION_LAYOUT.records_name, "scene_seed")}

    overrides = {k: v for k, v in (("cam_method", cam_method), ("threshold", threshold)) if v is not None}
    policy = ClipSamPolicy(clip=clip, sam=sam, zoom=zoom, cam_layer=cam_layer, threads=threads, verify=verify,
                           **overrides)
    from tqdm import tqdm

    with tqdm(total=len(seeds), initial=len(done), unit="scene", desc=f"evaluate masks {suite}",
              disable=not progress) as bar, JsonlWriter(out_dir / EVALUATION_LAYOUT.records_name, "scene_seed") as writer:
        for s in seeds:
            if s in done:
                continue
            obs = observe(s)
            row = {"scene_seed": s, "skipped": obs} if isinstance(obs, str) else _score_scene(policy, obs, s)
            writer.append(row)
            done[s] = row
            bar.update(1)
    rows = [done[s] for s in seeds if s in done and "skipped" not in done[s]]
    metrics = summarise(rows)
    metrics.update({"policy": "clip_sam", "suite": suite_obj.name, "episodes": len(rows),
                    "skipped": sum(1 for s in seeds if "skipped" in done.get(s, {})),
                    "models": policy.models, "zoom": zoom, "cam_layer": cam_layer, "verify": verify,
                    "attention": policy.pipeline.cam_method, "threshold": policy.pipeline.threshold,
                    "box_refine": policy.pipeline.box_refine,
                    "graspsim_version": graspsim.__version__})
    atomic_write_text(out_dir / "metrics.json", json.dumps(metrics, indent=2, sort_keys=True))
    return metrics


def _score_scene(policy, obs, scene_seed: int) -> dict[str, Any]:
    from graspsim.assets.catalog import class_index
    from graspsim.policies.base import as_observation
    from graspsim.policies.clip_sam.gradcam import part_steered_text

    obs = as_observation(obs)
    pipe = policy.pipeline
    target = class_index(obs.target_class)
    class_seg = np.asarray(obs.class_seg)
    instance_seg = np.asarray(obs.instance_seg)
    row: dict[str, Any] = {"scene_seed": scene_seed, "target_class": obs.target_class}
    # CLIP on the largest visible target instance
    tmask = class_seg == target
    ids, counts = np.unique(instance_seg[tmask], return_counts=True)
    inst = (instance_seg == ids[int(np.argmax(counts))]) & tmask
    ys, xs = np.nonzero(inst)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], dtype=np.float64)
    rgb = np.ascontiguousarray(obs.rgb[..., :3])
    logits = pipe.box_logits(rgb, [box])[0]
    row["clip_rank"] = int((logits > logits[target]).sum())
    # the single-pass pipeline's candidate: the strongest global peak, zoomed
    first_cands = pipe.zoom_candidates(rgb, obs.depth_m, obs.camera.K,
                                       *pipe.global_peaks(rgb, part_steered_text(obs.instruction), 1))
    x, y = (int(round(float(v))) for v in first_cands[0].peak_xy)
    row["peak_on_target"] = bool(class_seg[y, x] == target)
    clip_ms = []
    for mode in MODES:
        res = pipe.run(rgb, obs.depth_m, obs.camera.K, obs.instruction, mode,  # exactly what the policy runs
                       T_world_camera=obs.camera.T_world_camera, scene_kind=obs.scene_kind)
        row[f"iou_{mode}"] = instance_iou(res.mask, instance_seg, class_seg, target)
        row[f"on_target_{mode}"] = majority_is_target(res.mask, class_seg, target)
        row.update({f"{stage}_ms_{mode}": res.stage_ms[stage] for stage in ("sam", "prompt", "verify")})
        row[f"candidates_{mode}"] = res.n_candidates
        clip_ms.append(res.stage_ms["clip"])
        first = pipe.run(rgb, obs.depth_m, obs.camera.K, obs.instruction, mode, candidates=first_cands,
                         T_world_camera=obs.camera.T_world_camera, scene_kind=obs.scene_kind)
        row[f"iou_first_{mode}"] = instance_iou(first.mask, instance_seg, class_seg, target)
    row["clip_ms"] = float(np.mean(clip_ms))
    return row


def summarise(rows: list[dict]) -> dict[str, Any]:
    if not rows:
        return {"clip_top1": None, "clip_top5": None, "mask_iou": {}, "stage_ms": {}}
    ranks = np.array([r["clip_rank"] for r in rows])
    mean = lambda key: float(np.mean([r[key] for r in rows]))  # noqa: E731
    return {
        "clip_top1": float(np.mean(ranks < 1)), "clip_top5": float(np.mean(ranks < 5)),
        "attention_peak_on_target": mean("peak_on_target"),
        "mask_iou": {m: mean(f"iou_{m}") for m in MODES},
        "mask_iou_first_peak": {m: mean(f"iou_first_{m}") for m in MODES},
        "on_target": {m: mean(f"on_target_{m}") for m in MODES},
        "stage_ms": {"clip": mean("clip_ms"),
                     **{s: float(np.mean([mean(f"{s}_ms_{m}") for m in MODES])) for s in ("prompt", "sam", "verify")}},
    }


def format_table(metrics: dict[str, Any]) -> str:
    lines = [f"clip_sam masks on {metrics['suite']} ({metrics['episodes']} scenes)",
             f"  CLIP target-crop top-1 {metrics['clip_top1']:.3f}  top-5 {metrics['clip_top5']:.3f}  "
             f"attention peak on target {metrics['attention_peak_on_target']:.3f}",
             "  prompt mode   mask IoU   on target   IoU (strongest peak only)"]
    for m in MODES:
        lines.append(f"  {m:<12} {metrics['mask_iou'][m]:9.3f} {metrics['on_target'][m]:11.3f} "
                     f"{metrics['mask_iou_first_peak'][m]:13.3f}")
    st = metrics["stage_ms"]
    lines.append(f"  stage ms: clip {st['clip']:.1f}  prompt {st['prompt']:.2f}  sam {st['sam']:.1f}  "
                 f"verify {st['verify']:.1f}")
    return "\n".join(lines)
