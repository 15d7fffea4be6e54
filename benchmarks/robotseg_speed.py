"""RobotSeg image-mode speed: median frames per second on 2 CPU threads (automatic prompt, one picture at a time).

A frame = what ``graspsim evaluate robot-masks --prompt auto`` times per picture: the letterbox of a 320x240
RGB image into the model's S x S input (256 for the shipped model), the image encoder, the robot prompt
generator and the mask decoder, and the three masks upsampled back to 320x240. Frames are random-noise
pictures (the cost does not depend on the content; with a checkpoint trained for the gripper zoom both passes
(the second by the zoom pass's own network where the checkpoint has one),
the full frame and an 80x80 crop, are timed on every frame, the worst case); 5 warm-up passes, then ``--frames``
timed ones; the median
per-frame time gives the rate (robust to other jobs on a shared machine). Also times the video mode (with a
memory) and the encoder alone. Prints JSON.

Usage::

    python benchmarks/robotseg_speed.py [--model DIR] [--threads 2] [--frames 50]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np


def _median_fps(fn, frames: int) -> tuple[float, float]:
    for _ in range(5):
        fn()
    times = []
    for _ in range(frames):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    med = float(np.median(times))
    return 1.0 / med, float(np.percentile(times, 90))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint directory [default: the shipped one]")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--frames", type=int, default=50)
    parser.add_argument("--width", type=int, default=320)
    parser.add_argument("--height", type=int, default=240)
    args = parser.parse_args()
    import torch

    from graspsim.policies.robotseg.predictor import predictor_for

    torch.set_num_threads(args.threads)
    pred, meta = predictor_for(args.model)
    net = pred.net
    rgb = np.random.default_rng(0).integers(0, 256, size=(args.height, args.width, 3), dtype=np.uint8)
    memory = pred.predict(rgb).logits
    if pred.gripper_zoom:
        # the gripper zoom's second pass runs only where the first pass found a gripper (never on noise): time
        # both passes always (the crop: an 80x80 window), the worst case of a frame
        crop = np.ascontiguousarray(rgb[:80, :80])
        fps, p90 = _median_fps(lambda: (pred.decode(pred.encode(rgb)), pred.zoomed_gripper(crop)), args.frames)
    else:
        fps, p90 = _median_fps(lambda: pred.predict(rgb), args.frames)
    fps_video, _ = _median_fps(lambda: pred.predict(rgb, memory=memory), args.frames)
    with torch.no_grad():
        pixels, _ = pred._pixels(rgb)
        fps_enc, _ = _median_fps(lambda: net.image_features(pixels), args.frames)
    import os

    print(json.dumps({"load_average_1min": round(os.getloadavg()[0], 2), "input": f"{args.width}x{args.height} letterboxed to {pred.size}x{pred.size}",
                      "threads": args.threads, "parameters": net.parameter_count(),
                      "zoom_net_parameters": None if pred.zoom_net is None else pred.zoom_net.parameter_count(),
                      "gripper_zoom": pred.gripper_zoom,
                      "image_mode_fps_median": round(fps, 2), "image_mode_p90_ms": round(1000 * p90, 1),
                      "video_mode_fps_median": round(fps_video, 2), "encoder_only_fps_median": round(fps_enc, 2),
                      "target_fps": 10, "meets_target": fps >= 10}))


if __name__ == "__main__":
    main()
