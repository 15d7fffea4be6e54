"""Decision time of the graspsam policy per 640x480 camera image, with the shipped checkpoint, per prompt mode.

    nice -n 10 python benchmarks/graspsam_speed.py --data /work/data/gs-shelf-test [--threads 2] [--frames 20]
        [--prompts points:10,box,none,language] [--checkpoint DIR] [--placements chord,peak]
        [--variant K=V[,K=V] --variant ...]

The images are the scenes of a rendered dataset (``graspsim render --suite shelf-test --scenes 20 --out DIR``),
each turned into the observation the benchmark gives the policy (privileged segmentation for the points / box
prompts, the ordinary instruction naming a product with grasp labels). Per prompt mode, after ``--warmup``
decisions, ``policy.act`` is timed on ``--frames`` images (cycling through the dataset); prints one JSON line per
mode: median / mean / p90 ms of the whole decision and the median of each stage the policy reports (``prompt``:
sampling or the language stage, whose clip_sam parts are ``lang_clip`` / ``lang_prompt`` / ``lang_sam`` /
``lang_verify``; with ``text``: ``text_embed`` (the CLIP text side) and ``text_find`` (GraspSAM's text pass over
the image's tiles); ``net``: window crop + GraspSAM forward; ``decode``: peak search, pasting the mask back, the
chord placement and its depth checks, on tables with the angle search's turns). ``text`` needs a checkpoint
with a text token (the shipped one has one since 2026-12-02).
Target (issue 14): median <= 200 ms on 2 threads.

``--variant K=V[,K=V...]`` (repeatable): policy-args to compare in the same run, e.g. ``--variant
language_candidates=5 --variant language_candidates=3``. The variants' policies are timed interleaved, frame
by frame (the order turned each frame), so a slow spell of a shared machine hits them alike; each variant's line
adds ``variant`` and ``median_ratio``, the median over frames of its time over the first variant's on the same
frame (the figure to trust on a noisy machine).
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np


def observations(data_dir: str):
    """``(Observation, ...)`` of each scene with grasp labels: the target is its first labelled product's class."""
    from graspsim.data.format import check_dataset, read_scene
    from graspsim.scenes.instructions import pick_instruction
    from graspsim.scenes.kinds import scene_kind
    from graspsim.types import CameraModel, Observation

    manifest, dirs = check_dataset(data_dir)
    kind = scene_kind(manifest["kind"])
    out = []
    for d in dirs:
        s = read_scene(d)
        labelled = [o for o in s["meta"]["objects"] if o["grasps"]]
        if not labelled:
            continue
        h, w = s["rgb"].shape[:2]
        cam = CameraModel(K=s["K"], width=w, height=h, T_world_camera=s["T_world_camera"],
                          near_m=kind.camera.near_m, far_m=kind.camera.far_m)
        name = labelled[0]["class_name"]
        out.append(Observation(rgb=s["rgb"], depth_m=s["depth_m"], camera=cam, instruction=pick_instruction(name),
                               target_class=name, scene_kind=kind.name,
                               approach_world=np.asarray(kind.approach_world, dtype=np.float64),
                               instance_seg=s["instance"].astype(np.int32) - 1,
                               class_seg=s["class_map"].astype(np.int32) - 1))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="rendered dataset (640x480 by default)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--prompts", default="points:10,box,none,language")
    ap.add_argument("--checkpoint", default=None, help="graspsam checkpoint dir [default: the shipped one]")
    ap.add_argument("--placements", default="chord",
                    help="comma-separated placement policy-args to time in the same run (e.g. chord,peak)")
    ap.add_argument("--variant", action="append", default=None, metavar="K=V[,K=V]",
                    help="policy-args of one variant, timed interleaved with the others (repeatable)")
    args = ap.parse_args()
    try:
        variants = [parse_variant(v) for v in (args.variant or [""])]
    except ValueError as e:
        raise SystemExit(f"--variant: {e}")

    import torch

    from graspsim.policies.graspsam.policy import GraspSamPolicy

    torch.set_num_threads(args.threads)
    obs = observations(args.data)
    if not obs:
        raise SystemExit(f"{args.data} has no scene with grasp labels")
    runs = [(p, pl) for p in args.prompts.split(",") if p for pl in args.placements.split(",") if pl]
    for prompt, placement in runs:
        policies = []
        for extra in variants:
            try:
                policy = GraspSamPolicy(prompt=prompt, checkpoint=args.checkpoint, threads=args.threads,
                                        placement=placement, **extra)
            except (ValueError, TypeError) as e:  # PolicyArgError: an unknown or bad policy-arg
                raise SystemExit(f"graspsam_speed: {e}")
            policy.reset(np.random.default_rng(0))
            for i in range(args.warmup):
                policy.act(obs[i % len(obs)])
            policies.append(policy)
        total = np.zeros((len(variants), args.frames))
        stages: list[dict] = [{} for _ in variants]
        for i in range(args.frames):
            for j in np.roll(np.arange(len(variants)), -i):  # each frame in another order
                t0 = time.perf_counter()
                out = policies[j].act(obs[i % len(obs)])
                total[j, i] = 1e3 * (time.perf_counter() - t0)
                for k, v in out.info.items():
                    if k.endswith("_ms") and v is not None:
                        stages[j].setdefault(k[:-3], []).append(float(v))
        for j, extra in enumerate(variants):
            t = total[j]
            line = {
                "benchmark": "graspsam_speed", "prompt": prompt, "placement": placement,
                "median_ms": round(float(np.median(t)), 1),
                "mean_ms": round(float(t.mean()), 1), "p90_ms": round(float(np.percentile(t, 90)), 1),
                "stage_median_ms": {k: round(float(np.median(v)), 1) for k, v in stages[j].items()},
                "frames": args.frames, "resolution": [obs[0].camera.width, obs[0].camera.height],
                "threads": args.threads, "checkpoint": policies[j].checkpoint, "torch": torch.__version__,
                "machine": platform.machine(),
            }
            if args.variant:
                line.update(variant=extra, median_ratio=round(float(np.median(t / total[0])), 3))
            print(json.dumps(line), flush=True)


def parse_variant(text: str) -> dict:
    """``"K=V,K=V"`` -> policy kwargs, each item read as ``graspsim bench --policy-arg`` reads it (VALUE as JSON where
    it parses); ``""`` -> ``{}``. ValueError names a malformed item."""
    from graspsim.cli import _parse_policy_kwargs
    from graspsim.clierror import UserError

    try:
        return _parse_policy_kwargs(tuple(filter(None, text.split(","))))
    except UserError as e:
        raise ValueError(str(e)) from None


if __name__ == "__main__":
    main()
