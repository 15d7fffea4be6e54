"""RobotSeg validation on held-out *training* scenes (scene seeds divisible by 10): how checkpoints are chosen.

The test renders (shelf-test / tabletop-test, the xArm) are for the README's tables only; a training stage or an
inference setting is adopted on these figures instead:

* ``video_memory`` / ``video_alone``: whole-robot J&F on the held-out videos of the ``--videos`` datasets, each
  video segmented in order with the previous frame's masks as memory (gated by the predicted IoU where the
  checkpoint's IoU head was trained; ``video_memory_ungated`` then says what the memory gives without the gate),
  and the same frames one by one; ``video_memory_parts`` / ``video_alone_parts`` / ...: the same runs' arm, gripper
  and whole J&F (``--memory-parts``: the parts the memory may serve, instead of the checkpoint's);
* ``view_whole_jf`` / ``view_arm_jf`` / ``view_gripper_j``: automatic-prompt whole and arm J&F and gripper J on
  up to ``--views`` held-out views of the ``--data`` datasets (evenly spread, as the training's own per-epoch
  validation picks them);
* ``--true-window``: also ``view_gripper_j_true_window``, the gripper J when the zoom pass is given the window of
  the *true* gripper (:func:`~graspsim.policies.robotseg.predictor.zoom_window` of the truth, no presence gate) and
  no gripper is marked where none is visible: what the zoom network reaches when it is told where to look, the
  ceiling of any better window or gate; with ``view_gripper_j_by_embodiment`` (automatic and true window, per
  robot).

Usage::

    python benchmarks/robotseg_validation.py --model DIR --data D [--data D ...] --videos V [--videos V ...] \\
        [--views 200] [--threads 2] [--zoom-fallback T] [--zoom-presence T] [--robot-presence T] \\
        [--prompt auto|1-click|3-click|box] [--prompt-zoom on|off] [--box-margin M|none] [--box-zoom-presence on|off] \\
        [--memory-parts all|whole|arm,whole|...] [--true-window]

``--zoom-fallback T`` / ``--zoom-presence T`` / ``--robot-presence T`` score the views (and, the robot presence, the
videos) with that zoom fallback / zoom presence / robot presence logit instead of the checkpoint's own
(:class:`~graspsim.policies.robotseg.predictor.RobotSegPredictor`); ``none``: without one. ``--prompt
1-click|3-click|box`` scores the views under that prompt mode (each part prompted from its own true mask, as
``graspsim evaluate robot-masks``), with the gripper zoom under prompts on or off (``--prompt-zoom``), the box cut
(``--box-margin``) and the zoom presence gate under a box (``--box-zoom-presence``) as given.

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None, help="checkpoint directory [default: the shipped one]")
    parser.add_argument("--data", action="append", default=[], help="robot-views dataset (training suite)")
    parser.add_argument("--videos", action="append", default=[], help="dataset rendered with --videos V")
    parser.add_argument("--views", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--zoom-fallback", default=None,
                        help="the zoom fallback logit for the views (a number, or none) [default: the checkpoint's]")
    parser.add_argument("--zoom-presence", default=None,
                        help="the zoom presence logit for the views (a number, or none) [default: the checkpoint's]")
    parser.add_argument("--robot-presence", default=None,
                        help="the robot presence logit (a number, or none) [default: the checkpoint's]")
    parser.add_argument("--prompt", default="auto", choices=["auto", "1-click", "3-click", "box"],
                        help="the prompt mode the views are scored under (the evaluation's protocol) [auto]")
    parser.add_argument("--prompt-zoom", choices=["on", "off"], default=None,
                        help="the gripper zoom under prompts [default: the predictor's]")
    parser.add_argument("--box-margin", default=None,
                        help="under a box prompt, cut the zoomed gripper to the box grown by this share of its "
                             "sides (a number, or none) [default: the predictor's]")
    parser.add_argument("--box-zoom-presence", choices=["on", "off"], default=None,
                        help="the zoom presence gate under a box prompt too [default: the predictor's, off]")
    parser.add_argument("--memory-parts", default=None,
                        help="the parts the video memory may serve: all, or a comma-separated list of arm, gripper, "
                             "whole [default: the checkpoint's]")
    parser.add_argument("--true-window", action="store_true",
                        help="also score the zoom pass in the true gripper's window (automatic views only)")
    args = parser.parse_args()
    if args.true_window and args.prompt != "auto":
        parser.error("--true-window scores the automatic prompt's views; leave --prompt auto")
    import numpy as np
    import torch

    from graspsim.data.reader import held_out_every
    from graspsim.data.robot_views_format import check_robot_videos, read_video
    from graspsim.policies.robotseg.config import OUTPUTS
    from graspsim.policies.robotseg.evaluate import score_masks
    from graspsim.policies.robotseg.metrics import part_masks, region_j
    from graspsim.policies.robotseg.predictor import memory_parts_of, predictor_for, zoom_window
    from graspsim.policies.robotseg.train import score_views, validation_views

    torch.set_num_threads(args.threads)
    predictor, _ = predictor_for(args.model)
    if args.true_window and not predictor.gripper_zoom:
        parser.error(f"--true-window scores the gripper zoom's pass, and {args.model} has none")
    # each a number or none, over the checkpoint's own setting
    if args.prompt_zoom is not None:
        predictor.prompt_zoom = args.prompt_zoom == "on"
    if args.box_zoom_presence is not None:
        predictor.box_zoom_presence = args.box_zoom_presence == "on"
    if args.memory_parts is not None:
        parts = OUTPUTS if args.memory_parts == "all" else tuple(p.strip() for p in args.memory_parts.split(","))
        try:
            predictor.memory_parts = memory_parts_of(parts)
        except ValueError:
            parser.error(f"--memory-parts takes all or a comma-separated list of {', '.join(OUTPUTS)}")
    for option in ("zoom_fallback", "zoom_presence", "robot_presence", "box_margin"):
        given = getattr(args, option)
        if given is not None:
            try:
                setattr(predictor, option, None if given.lower() == "none" else float(given))
            except ValueError:
                parser.error(f"--{option.replace('_', '-')} takes a number or none, got {given!r}")

    videos = []
    for d in args.videos:
        _, dirs = check_robot_videos(d)
        videos += [v for v in dirs if held_out_every(int(v.parent.name.split("-")[-1]))]
    result: dict = {"model": str(args.model or "shipped"), "videos": len(videos), **predictor.settings()}
    gate = predictor.memory_gate
    runs = [("video_memory", True, gate), ("video_alone", False, gate)]
    if gate:  # the same memory without the gate: what the gate adds
        runs.append(("video_memory_ungated", True, False))
    for key, memory, gated in runs:
        predictor.memory_gate = gated
        per_video = []  # (videos, 3) the arm / gripper / whole J&F of each video, its frames' mean
        for path in videos:
            video = read_video(path)
            out = predictor.predict_video(video["rgb"], use_memory=memory)
            scores = [score_masks(o.masks, part_masks(seg)) for o, seg in zip(out, video["robot_seg"])]
            per_video.append([np.mean([s[part]["JF"] for s in scores]) for part in OUTPUTS])
        mean = np.mean(per_video, axis=0) if videos else None
        result[key] = round(float(mean[OUTPUTS.index("whole")]), 4) if videos else None
        result[key + "_parts"] = ({part: round(float(v), 5) for part, v in zip(OUTPUTS, mean)} if videos else None)
    predictor.memory_gate = gate
    # the views: the training's own per-epoch validation (same picks, same scores), on more views
    views = validation_views(args.data, args.views) if args.data else []
    scores = score_views(predictor, views, args.prompt)
    result.update(prompt=args.prompt, views=scores["val_views"],
                  view_whole_jf=None if scores["val_whole_jf"] is None else round(scores["val_whole_jf"], 4),
                  view_arm_jf=None if scores["val_arm_jf"] is None else round(scores["val_arm_jf"], 4),
                  view_gripper_j=None if scores["val_gripper_j"] is None else round(scores["val_gripper_j"], 4))
    if args.true_window and views:  # per view and robot, so the automatic pass runs again beside score_views'
        by_robot: dict[str, dict[str, list[float]]] = {}  # embodiment -> {"auto": [J], "true_window": [J]}
        for view in views:
            true = part_masks(view["robot_seg"])["gripper"]
            told = np.zeros_like(true)
            window = zoom_window(true)
            if window is not None:  # else nothing is visible and nothing is marked
                x0, y0, x1, y1 = window
                told[y0:y1, x0:x1] = predictor.zoomed_gripper(view["rgb"][y0:y1, x0:x1], gate=False)
            rows = by_robot.setdefault(view["meta"].get("embodiment", "?"), {"auto": [], "true_window": []})
            rows["auto"].append(region_j(predictor.predict(view["rgb"]).masks["gripper"], true))
            rows["true_window"].append(region_j(told, true))
        result["view_gripper_j_true_window"] = round(float(np.mean(
            [j for rows in by_robot.values() for j in rows["true_window"]])), 4)
        result["view_gripper_j_by_embodiment"] = {
            robot: {key: round(float(np.mean(js)), 4) for key, js in rows.items()} | {"views": len(rows["auto"])}
            for robot, rows in sorted(by_robot.items())}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
