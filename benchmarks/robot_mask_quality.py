"""How well ``--policy-arg robot_mask=robotseg`` finds the robot in the benchmark's own images.

For the first ``--scenes`` scenes of a suite (``--seed`` as in ``graspsim bench``), the first observation the
benchmark's policies see (640x480 by default, the arm parked at its mount, nothing moved yet) is rendered with
the privileged ``robot_seg``, and RobotSeg's ``whole`` output on the RGB image (what ``robot_mask=robotseg``
excludes) is scored against it: J (IoU), F (boundary F-measure, as ``graspsim evaluate robot-masks``), the
pixels marked vs the robot's pixels, the time per decision, and the frame's largest whole-robot logit beside the
checkpoint's robot presence gate (below it the predictor would leave the mask empty: ``gate_fired`` counts those
scenes). Run it once per checkpoint to compare them.

Usage::

    python benchmarks/robot_mask_quality.py --suite shelf-test [--scenes 20] [--seed 0] [--model DIR] [--threads 2]

Prints one JSON object: per-scene rows and medians / means.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", required=True)
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0, help="first scene index in the suite (as bench --seed)")
    parser.add_argument("--model", default=None, help="RobotSeg checkpoint directory [default: the shipped one]")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args()
    import numpy as np
    import torch

    from graspsim.envs.pick_env import PickEnv
    from graspsim.policies.robotseg.metrics import boundary_f, region_j
    from graspsim.policies.robotseg.config import OUTPUTS
    from graspsim.policies.robotseg.predictor import predictor_for
    from graspsim.scenes.suites import get_suite

    torch.set_num_threads(args.threads)
    suite = get_suite(args.suite)
    predictor, meta = predictor_for(args.model)
    env = PickEnv(kind=suite.kind, variant_split=suite.variant_split, width=args.width, height=args.height,
                  robot="panda", task=suite.task, instruction_split=suite.instruction_split, privileged=True)
    rows = []
    try:
        for scene_seed in suite.scene_seeds(args.seed, args.scenes):
            obs, _ = env.reset(seed=scene_seed)
            truth = np.asarray(obs["robot_seg"]) > 0
            t0 = time.perf_counter()
            out = predictor.predict(np.asarray(obs["rgb"])[..., :3])
            ms = (time.perf_counter() - t0) * 1000
            mask = out.masks["whole"]
            rows.append({"scene_seed": scene_seed, "J": round(region_j(mask, truth), 4),
                         "F": round(boundary_f(mask, truth), 4), "marked_px": int(mask.sum()),
                         "robot_px": int(truth.sum()), "ms": round(ms, 1),
                         "largest_whole_logit": round(float(out.image_logits[OUTPUTS.index("whole")].max()), 2)})
    finally:
        env.close()
    summary = {"suite": args.suite, "scenes": len(rows), "model": str(args.model or "shipped"),
               "model_input": meta["config"].get("image_size"), "image": f"{args.width}x{args.height}",
               "J_mean": round(statistics.mean(r["J"] for r in rows), 4),
               "J_median": round(statistics.median(r["J"] for r in rows), 4),
               "F_mean": round(statistics.mean(r["F"] for r in rows), 4),
               "marked_px_median": statistics.median(r["marked_px"] for r in rows),
               "robot_px_median": statistics.median(r["robot_px"] for r in rows),
               "ms_median": round(statistics.median(r["ms"] for r in rows), 1),
               "largest_whole_logit_min": min(r["largest_whole_logit"] for r in rows),
               "robot_presence": predictor.robot_presence,
               "gate_fired": sum(r["largest_whole_logit"] < predictor.robot_presence for r in rows)
               if predictor.robot_presence is not None else 0, "threads": args.threads,
               "load_average_1min": round(os.getloadavg()[0], 2)}
    print(json.dumps({**summary, "rows": rows}))


if __name__ == "__main__":
    main()
