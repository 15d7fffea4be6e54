"""Frames per second of the det_seg network on CPU: forward + decoding at 320x320 (random weights).

    nice -n 10 python benchmarks/det_seg_speed.py [--threads 2] [--frames 40] [--no-refine] [--size 320]

Prints one JSON line: fps, ms per frame, parameter count, the settings. The
timing covers the letterboxed tensor going through the network and
:meth:`DetSegNet.detect` (top-k, NMS, refinement) plus the segmentation argmax
at the input resolution; not image loading.
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


if __name__ == "__main__":
    main()
