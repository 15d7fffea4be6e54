"""Offline metrics of GraspSAM on a rendered dataset, per prompt mode (``graspsim evaluate grasps --policy graspsam``).

Protocol (the paper's, on graspsim's labels; rectangle metric of :mod:`graspsim.grasping.metrics`):

* ``points:K`` / ``box``: every product with grasp labels in every scene is one query; the prompt is sampled
  on its ground-truth instance mask (K interior points, seeded per scene; or its box); the top-1 rectangle
  is judged against that product's labels (``grasp_accuracy``) and, more leniently, against every label of
  its class in the image (``class_accuracy``: another facing of the same product is as good a pick).
* ``language``: one query per (scene, class with labels); the instruction the benchmark gives
  (:func:`graspsim.scenes.instructions.pick_instruction`) goes through the policy's language stage; the top-1
  is judged against every label of the class (``grasp_accuracy`` = ``class_accuracy``).
* ``text``: as ``language``, the instruction through GraspSAM's own text token
  (:meth:`~.policy.GraspSamPolicy.text_prompt`) instead of clip_sam's stack.
* ``none``: one query per scene, judged against every label of the image (GR-ConvNet's protocol).

Also: ``accuracy_by_angle`` / ``accuracy_by_iou`` (the paper's tables' sweeps, on ``grasp_accuracy``),
``mask_iou`` (predicted mask vs the product's ground-truth mask; language: vs the class's instance it
overlaps most; none: vs every labelled product), ``ms_per_query`` (prompt + network + decoding). The dataset's
``variant_split`` (seen / unseen product variants) is recorded so :func:`paper_table` can pair them.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from graspsim.fileio import atomic_write_json, to_jsonable
from graspsim.grasping import metrics as gm
from graspsim.types import GraspRect

#: The paper's Table (tiny model): Jaccard accuracy seen / unseen / harmonic mean, 10-point prompts.
PAPER = {"jacquard": (0.90, 0.81, 0.85), "grasp_anything": (0.78, 0.75, 0.77)}


def _queries(scene: dict, mode) -> list[dict]:
    """The queries of one scene (module docstring): ``mask`` (H, W) bool target, ``gts`` / ``class_gts`` lists
    of GraspRect, ``class_name`` (language)."""
    inst, grasps = scene["instance"].astype(np.int64) - 1, scene["grasps"]
    classes, products = scene["grasp_classes"], scene["grasp_products"]
    rects = [GraspRect(*g) for g in grasps]
    if mode.kind == "none":
        mask = np.isin(inst, np.unique(products)) if len(products) else np.zeros(inst.shape, bool)
        return [{"mask": mask, "gts": rects, "class_gts": rects}] if rects else []
    by_class = {int(c): [r for r, cc in zip(rects, classes) if cc == c] for c in np.unique(classes)}
    if mode.kind in ("language", "text"):
        names = {int(o["class_index"]): o["class_name"] for o in scene["meta"]["objects"]}
        out = []
        for c, gts in by_class.items():
            mask = np.isin(inst, np.unique(products[classes == c]))
            out.append({"mask": mask, "gts": gts, "class_gts": gts, "class_name": names[c]})
        return out
    out = []
    for p in np.unique(products):
        mask = inst == p
        if mask.any():
            c = int(classes[products == p][0])
            out.append({"mask": mask, "gts": [r for r, pp in zip(rects, products) if pp == p],
                        "class_gts": by_class[c]})
    return out


def _best_instance_iou(pred: np.ndarray, target: np.ndarray, inst: np.ndarray) -> float:
    """IoU of ``pred`` with the instance inside ``target`` it overlaps most (0 if none)."""
    from graspsim.policies.clip_sam.evaluate import mask_iou

    ids, counts = np.unique(inst[pred & target], return_counts=True)
    return mask_iou(pred, inst == ids[int(np.argmax(counts))]) if len(ids) else 0.0


def evaluate_graspsam(data_dir: str | Path, out_dir: str | Path, prompt: str = "points:10",
                      checkpoint: str | Path | None = None, max_scenes: int | None = None, seed: int = 0,
                      progress: bool = False, opening: str = "mask", placement: str = "chord",
                      point_refine: str = "box") -> dict[str, Any]:
    """Run GraspSAM with prompt mode ``prompt`` on every scene of ``data_dir``; write ``out_dir/metrics.json``
    (and return it). ValueError for a bad prompt, DatasetError / FileNotFoundError for bad paths."""
    from tqdm import tqdm

    from graspsim.data.format import check_dataset, read_scene
    from graspsim.grasping.mask_grasps import closing_axis_range
    from graspsim.scenes.kinds import scene_kind
    from graspsim.types import CameraModel
    from graspsim.policies.base import PolicyError
    from graspsim.policies.clip_sam.evaluate import mask_iou
    from graspsim.policies.graspsam.config import parse_prompt
    from graspsim.policies.graspsam.policy import GraspSamPolicy
    from graspsim.policies.graspsam.predictor import prompt_from_mask
    from graspsim.scenes.instructions import pick_instruction

    mode = parse_prompt(prompt)
    manifest, scene_dirs = check_dataset(data_dir)

    def theta_range(s: dict):
        """The closing axes the planner allows in this scene (as the policy passes them)."""
        h, w = s["depth_m"].shape[:2]
        camera = CameraModel(np.asarray(s["K"]), w, h, np.asarray(s["T_world_camera"]))
        return closing_axis_range(camera, manifest["kind"], np.asarray(scene_kind(manifest["kind"]).approach_world))

    scene_dirs = scene_dirs[: max_scenes] if max_scenes else scene_dirs
    kind = manifest["kind"]
    named = mode.kind in ("language", "text")  # the instruction names the class
    policy = GraspSamPolicy(prompt=mode.kind if named else "none", checkpoint=checkpoint,
                            opening=opening, placement=placement, point_refine=point_refine)
    preds, gts, class_gts, ious, seconds, failed = [], [], [], [], 0.0, 0
    for d in tqdm(scene_dirs, desc=f"evaluate graspsam {mode}", unit="scene", disable=not progress, leave=False):
        s = read_scene(d)
        rng = np.random.default_rng([seed, int(s["meta"]["scene_seed"])])
        inst = s["instance"].astype(np.int64) - 1
        for q in _queries(s, mode):
            t0 = time.perf_counter()
            text_embed = None
            try:
                if mode.kind == "language":
                    p = policy.language_prompt(s["rgb"], s["depth_m"], s["K"], pick_instruction(q["class_name"]),
                                               {}, T_world_camera=s["T_world_camera"], scene_kind=kind)
                elif mode.kind == "text":  # found nothing: the text-prompted whole image is decoded (a miss, mostly)
                    p, text_embed = policy.text_prompt(s["rgb"], s["depth_m"], s["K"],
                                                       pick_instruction(q["class_name"]), {})
                else:
                    p = prompt_from_mask(q["mask"], mode, rng)
            except PolicyError:  # the language stage found nothing: a miss, not a crash
                failed += 1
                preds.append(None), gts.append(q["gts"]), class_gts.append(q["class_gts"]), ious.append(0.0)
                continue
            out = policy.predictor.predict(s["rgb"], s["depth_m"], s["K"], p, theta_range=theta_range(s),
                                           text_embed=text_embed)
            seconds += time.perf_counter() - t0
            preds.append(GraspRect(*out["rects"][0]))
            gts.append(q["gts"])
            class_gts.append(q["class_gts"])
            ious.append(_best_instance_iou(out["mask"], q["mask"], inst) if named
                        else mask_iou(out["mask"], q["mask"]))
    n = len(preds)
    metrics = to_jsonable({
        "policy": "graspsam", "prompt": str(mode), "checkpoint": policy.checkpoint,
        "data": str(Path(data_dir).resolve()), "suite": manifest.get("suite"),
        "variant_split": manifest.get("variant_split"), "scenes": len(scene_dirs), "queries": n,
        "language_failures": failed if named else None,
        "grasp_accuracy": gm.grasp_accuracy(preds, gts) if n else None,
        "class_accuracy": gm.grasp_accuracy(preds, class_gts) if n else None,
        "accuracy_by_angle": gm.accuracy_by_angle(preds, gts) if n else None,
        "accuracy_by_iou": gm.accuracy_by_iou(preds, gts) if n else None,
        "mask_iou": float(np.mean(ious)) if ious else None,
        "ms_per_query": 1e3 * seconds / max(1, n - failed) if n else None,
        "seed": seed, "opening": opening, "placement": placement, "point_refine": point_refine,
    })
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    atomic_write_json(Path(out_dir) / "metrics.json", metrics)
    return metrics


def harmonic_mean(a: float | None, b: float | None) -> float | None:
    """``2ab / (a + b)`` (None if either is missing; 0 when both are 0)."""
    if a is None or b is None:
        return None
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)


def format_table(m: dict) -> str:
    """A few lines of one metrics dict."""
    def pct(v):
        return "   -  " if v is None else f"{100 * v:6.2f}"

    lines = [f"graspsam prompt {m['prompt']}  data {m['data']} ({m['suite']}, {m['variant_split']})  "
             f"queries {m['queries']}",
             f"Jaccard acc {pct(m['grasp_accuracy'])}   class acc {pct(m['class_accuracy'])}   "
             f"mask IoU {pct(m['mask_iou'])}   {m['ms_per_query'] or 0:.0f} ms/query"]
    if m.get("accuracy_by_angle"):
        lines.append("angle (IoU>25%) " + "  ".join(f"{k}deg {pct(v)}" for k, v in m["accuracy_by_angle"].items()))
    if m.get("accuracy_by_iou"):
        lines.append("IoU (<30deg)    " + "  ".join(f"{k}% {pct(v)}" for k, v in m["accuracy_by_iou"].items()))
    return "\n".join(lines)


def paper_table(rows: dict[str, tuple[dict | None, dict | None]]) -> str:
    """The paper's table layout: per row name (e.g. "shelf points:10"), ``(seen metrics, unseen metrics)`` ->
    Jaccard accuracy seen / unseen / harmonic mean, with the paper's tiny-model figures underneath."""
    def pct(v):
        return "   -  " if v is None else f"{100 * v:6.2f}"

    lines = [f"{'':28s} {'seen':>7s} {'unseen':>7s} {'H':>7s}"]
    for name, (seen, unseen) in rows.items():
        a = None if seen is None else seen.get("grasp_accuracy")
        b = None if unseen is None else unseen.get("grasp_accuracy")
        lines.append(f"{name:28s} {pct(a)} {pct(b)} {pct(harmonic_mean(a, b))}")
    for name, (a, b, h) in PAPER.items():
        lines.append(f"{'paper ' + name + ' (tiny)':28s} {pct(a)} {pct(b)} {pct(h)}")
    return "\n".join(lines)
