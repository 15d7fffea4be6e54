"""Frames per second of the det_seg network on CPU: forward + decoding at 320x320 (random weights).

    nice -n 10 python benchmarks/det_seg_speed.py [--threads 2] [--frames 40] [--no-refine] [--size 320]
        [--camera-frames 20] [--camera-checkpoints det_seg,det_seg_640]

Prints JSON lines. First the network at ``size x size`` (random weights): the
letterboxed tensor through the network and :meth:`DetSegNet.detect` (top-k,
NMS, refinement) plus the segmentation argmax at the input resolution; not
image loading. Then (``--camera-frames`` > 0) the whole predictor the policy
runs, with the shipped checkpoint, on a rendered 640x480 shelf-test camera
image: letterbox, network, decoding and the segmentation at 640x480, once with
the guided-filter upsampling (the default) and once with plain bilinear
upsampling, for each shipped checkpoint named, all interleaved so that they
see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import platform
import time


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--size", type=int, default=320)
    ap.add_argument("--no-refine", action="store_true")
    ap.add_argument("--camera-frames", type=int, default=20, help="0 = skip the camera-image predictor timing")
    ap.add_argument("--camera-checkpoints", default="det_seg,det_seg_640",
                    help="comma-separated shipped checkpoint names (or directories) for the camera-image timing")
    args = ap.parse_args()

    import torch

    from graspsim.policies.det_seg.model import DetSegConfig, DetSegNet, seg_labels_from_logits
    from graspsim.policies.det_seg.targets import Letterbox

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = DetSegConfig(input_size=args.size, use_refinement=not args.no_refine)
    net = DetSegNet(cfg).eval()
    x = torch.rand(1, 3, args.size, args.size)
    lb = Letterbox.for_shape(args.size, args.size, args.size)

    def step() -> None:
        with torch.inference_mode():
            out = net(x)
            net.detect(out)
            seg_labels_from_logits(out["seg"], lb)

    for _ in range(args.warmup):
        step()
    t0 = time.perf_counter()
    for _ in range(args.frames):
        step()
    dt = (time.perf_counter() - t0) / args.frames
    print(json.dumps({
        "benchmark": "det_seg_speed", "fps": round(1.0 / dt, 2), "ms_per_frame": round(1000 * dt, 2),
        "input": f"{args.size}x{args.size}", "threads": args.threads, "refinement": cfg.use_refinement,
        "params": sum(p.numel() for p in net.parameters()), "torch": torch.__version__,
        "machine": platform.machine(),
    }))
    if args.camera_frames > 0:
        camera_predictor(args.camera_frames, args.threads, [c for c in args.camera_checkpoints.split(",") if c])


def camera_predictor(frames: int, threads: int, checkpoints: list[str]) -> None:
    """Milliseconds per 640x480 camera image of shipped det_seg predictors, guided vs bilinear segmentation."""
    import numpy as np

    from graspsim.envs.pick_env import PickEnv
    from graspsim.policies.det_seg.checkpoint import load_checkpoint
    from graspsim.policies.det_seg.config import resolve_checkpoint
    from graspsim.policies.det_seg.policy import DetSegPredictor

    env = PickEnv(kind="shelf")
    try:
        obs, _ = env.reset(seed=1_000_000)  # a shelf-test scene
        rgb = np.asarray(obs["rgb"])
    finally:
        env.close()
    predictors = {}
    for name in checkpoints:
        net = load_checkpoint(resolve_checkpoint("det_seg", name), kind="det_seg")
        predictors[(name, "guided")] = DetSegPredictor(net, guided=True)
        predictors[(name, "bilinear")] = DetSegPredictor(net, guided=False)
    times: dict = {k: [] for k in predictors}
    for _ in range(3):
        for p in predictors.values():
            p.predict(rgb)
    for _ in range(frames):
        for k, p in predictors.items():
            t0 = time.perf_counter()
            p.predict(rgb)
            times[k].append(time.perf_counter() - t0)
    for name in checkpoints:
        ms = {mode: 1000 * float(np.median(times[(name, mode)])) for mode in ("guided", "bilinear")}
        print(json.dumps({
            "benchmark": "det_seg_camera_predictor", "checkpoint": name,
            "input": predictors[(name, "guided")].net.config.input_size, "image": f"{rgb.shape[1]}x{rgb.shape[0]}",
            "threads": threads, "ms_median_guided": round(ms["guided"], 1),
            "ms_median_bilinear": round(ms["bilinear"], 1), "fps_guided": round(1000 / ms["guided"], 2),
            "fps_bilinear": round(1000 / ms["bilinear"], 2), "guided_cost_ratio": round(ms["guided"] / ms["bilinear"], 2),
            "frames": frames,
        }))


if __name__ == "__main__":
    main()
