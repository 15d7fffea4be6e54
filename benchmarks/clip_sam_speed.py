"""Decision time of the clip_sam policy per 640x480 image on this CPU.

Usage::

    python benchmarks/clip_sam_speed.py [--scenes 10] [--threads 2] [--cam-method M] [--reference]

Renders ``--scenes`` shelf-test scenes, then times ``ClipSamPolicy.act`` (CLIP
Grad-CAM passes, prompts, SAM, CLIP verification of the candidate masks, grasp
planning) with the shipped sim-trained checkpoints, after one warm-up call;
``--cam-method`` picks the attention map (default: the policy's default; the
gradient maps load the shipped Grad-CAM-trained CLIP).
Prints one JSON line per configuration with the median and mean decision time
and the median of each stage.

``--reference`` also times the same pipeline with the architectures of the
real foundation models, built from their default transformers configs with
random weights (no download): CLIP ViT-B/32 (224 px) and SAM ViT-B (1024 px
image encoder), with a single candidate (no verification) and 2 scenes, since
one SAM ViT-B encoder pass takes seconds on this CPU.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time


def _observations(n: int):
    from graspsim.envs.pick_env import PickEnv
    from graspsim.policies.base import as_observation

    env = PickEnv(kind="shelf", width=640, height=480)
    obs = []
    for i in range(n):
        o, info = env.reset(seed=1_000_000 + i)
        obs.append(as_observation(o))
    env.close()
    return obs


def _time_policy(policy, observations, label: str) -> dict:
    from graspsim.policies.base import PolicyError

    try:
        policy.act(observations[0])  # warm-up (lazy init, caches)
    except PolicyError:
        pass
    totals, stages, errors = [], {}, 0
    for obs in observations:
        t0 = time.perf_counter()
        try:
            out = policy.act(obs)
        except PolicyError:  # random weights may give an empty mask: the time still counts
            totals.append((time.perf_counter() - t0) * 1e3)
            errors += 1
            continue
        totals.append((time.perf_counter() - t0) * 1e3)
        for k, v in out.info.items():
            if k.endswith("_ms"):
                stages.setdefault(k, []).append(float(v))
    return {"config": label, "images": len(observations), "decision_ms_median": round(statistics.median(totals), 1),
            "decision_ms_mean": round(statistics.fmean(totals), 1),
            "stage_ms_median": {k: round(statistics.median(v), 1) for k, v in stages.items()},
            "policy_errors": errors}


def _reference_models(tmp):
    """Random-weight CLIP ViT-B/32 (+ the word-level tokenizer) and SAM ViT-B saved to ``tmp``."""
    import torch
    from transformers import CLIPConfig, CLIPModel, SamConfig, SamModel

    from graspsim.policies.clip_sam import vocab

    torch.manual_seed(0)
    tok = vocab.build_tokenizer()
    CLIPModel(CLIPConfig()).save_pretrained(f"{tmp}/clip")  # defaults = ViT-B/32, 512-d text
    tok.save_pretrained(f"{tmp}/clip")
    SamModel(SamConfig()).save_pretrained(f"{tmp}/sam")  # defaults = ViT-B, 1024 px
    return f"{tmp}/clip", f"{tmp}/sam"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--mode", default="points")
    ap.add_argument("--cam-method", default=None, choices=["similarity", "gradcam", "hirescam"])
    ap.add_argument("--n-candidates", type=int, default=None, help="attention peaks verified (default: the policy's)")
    ap.add_argument("--reference", action="store_true")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from graspsim.policies.clip_sam.policy import ClipSamPolicy

    observations = _observations(args.scenes)
    cam = {} if args.cam_method is None else {"cam_method": args.cam_method}
    verified = {} if args.n_candidates is None else {"n_candidates": args.n_candidates}
    policy = ClipSamPolicy(prompt_mode=args.mode, **cam, **verified)
    label = f"shipped sim models, {policy.config.cam_method}, {args.mode}"
    print(json.dumps({**_time_policy(policy, observations, f"{label}, verify {policy.config.n_candidates}"),
                      "threads": args.threads}), flush=True)
    policy = ClipSamPolicy(prompt_mode=args.mode, verify=False, **cam)
    print(json.dumps({**_time_policy(policy, observations, f"{label}, single pass"), "threads": args.threads}),
          flush=True)
    if args.reference:
        import tempfile

        with tempfile.TemporaryDirectory() as tmp:
            clip_dir, sam_dir = _reference_models(tmp)
            policy = ClipSamPolicy(clip=clip_dir, sam=sam_dir, prompt_mode=args.mode, verify=False)
            res = _time_policy(policy, observations[:3], "ViT-B/32 CLIP + SAM ViT-B (random weights), single pass")
            print(json.dumps({**res, "threads": args.threads}), flush=True)


if __name__ == "__main__":
    main()
