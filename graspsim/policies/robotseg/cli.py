"""Click commands of the robotseg stack: ``graspsim train robotseg`` and ``graspsim evaluate robot-masks``.

User mistakes end as one line (``Error: ...``, exit status 2).
"""

from __future__ import annotations

from pathlib import Path

import click

from graspsim.clierror import UserError
from graspsim.clitrain import apply_options, device_option, run_control_options, schedule_options, train_on_datasets

_train_options = [
    click.option("--data", "data", multiple=True, type=click.Path(file_okay=False, path_type=Path),
                 help="Robot-views dataset (`graspsim render-robot-views`; repeatable); scene seeds divisible by 10 "
                      "validate; views of the held-out embodiment (xarm6) are never trained on."),
    click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                 help="Checkpoint directory (model.safetensors + metadata.json; the run's state while it trains)."),
    click.option("--label-efficient", is_flag=True,
                 help="Train from each video's first-frame masks only (the first frame showing the robot; cycle "
                      "and consistency losses on the other frames) instead of every labelled view and frame."),
    *schedule_options(epochs=16, steps_per_epoch=100, lr=1e-3),
    click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1),
                 help="Pictures (or first / later frame pairs with --label-efficient) per step."),
    click.option("--config", "config_json", default=None,
                 help="JSON object of RobotSegConfig fields to override (e.g. '{\"image_size\": 128}')."),
    click.option("--val-items", default=48, show_default=True, type=click.IntRange(min=1),
                 help="Held-out views scored with automatic prompts after each epoch."),
    click.option("--init", default=None, type=click.Path(file_okay=False, path_type=Path),
                 help="Start from this robotseg checkpoint's weights and config (a second training stage) instead "
                      "of random weights; --config may then only add a part head, e.g. '{\"part_head\": 32}'."),
    click.option("--gripper-zoom", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
                 help="Share of the pictures showing a gripper trained as a crop around it; the checkpoint's "
                      "predictor then segments the gripper again in such a crop (a second pass). 0: off."),
    click.option("--self-memory", is_flag=True,
                 help="Video frames in memory batches remember the network's own prediction for the previous frame "
                      "(as at inference) instead of its true masks."),
    click.option("--scene-recolour", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
                 help="Share of the pictures whose non-robot pixels (products, furniture) get a strong random "
                      "recolouring of their own, so that no colour means 'robot'. 0: off."),
    click.option("--iou-loss", "iou_loss_weight", default=0.0, show_default=True, type=click.FloatRange(0.0),
                 help="Weight of the loss that teaches the decoder's predicted IoU the IoU its masks reach (video "
                      "mode then gates the memory by it). 0: off."),
    click.option("--trainable", default="all", show_default=True, type=click.Choice(["all", "iou", "memory"]),
                 help="all; iou: only the decoder's IoU head trains (from --init; the masks stay the init's); "
                      "memory: only the video memory's encoder trains (from --init, with --self-memory; every batch "
                      "video frames after the first, automatic; image mode stays the init's)."),
    click.option("--zoom-only", is_flag=True,
                 help="Train the network of the gripper zoom's second pass alone, from --init (the first pass): "
                      "every picture a crop around the gripper, no prompt, no memory."),
    click.option("--arm-crops", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
                 help="With --zoom-only: share of the crops taken around a random arm pixel (windows that may hold "
                      "no gripper) instead of around the gripper."),
    click.option("--first-pass-crops", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
                 help="With --zoom-only: share of the crops cut at the first pass's own zoom windows (computed "
                      "once at the start; the gripper in them or not), what the zoom pass sees at inference."),
    click.option("--empty-window-crops", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
                 help="With --first-pass-crops: share of those crops drawn from the first pass's windows that "
                      "hold no gripper (teaches the zoom pass to mark none there)."),
    click.option("--zoom-init", default=None, type=click.Path(file_okay=False, path_type=Path),
                 help="With --zoom-only: start from this --zoom-only run instead of --init (of the same --init, or of "
                      "an earlier first pass: the zoom network carried over to a new one)."),
    click.option("--zoom-scratch", is_flag=True,
                 help="With --zoom-only: a new zoom network of --config (e.g. a 128 px input, wider), from random "
                      "weights; --init is then only the first pass its validation zooms behind."),
    click.option("--gripper-weight", default=0.0, show_default=True, type=click.FloatRange(0.0),
                 help="Extra weight of the gripper output's loss (added to the three outputs' loss). 0: off."),
    *run_control_options(),
    *device_option(),
]


@click.command("robotseg")
@apply_options(_train_options)
def train_robotseg_command(data, out_dir, config_json, no_progress, **kwargs):
    """Train RobotSeg (a small SAM 2 with a robot prompt generator and a video memory) on robot views."""
    from graspsim.policies.robotseg.config import RobotSegConfig
    from graspsim.policies.robotseg.train import train_robotseg

    train_on_datasets(train_robotseg, data, out_dir, RobotSegConfig, config_json, no_progress,
                      data_hint="a dataset written by `graspsim render-robot-views`", **kwargs)


@click.command("robot-masks")
@click.option("--data", "data_dirs", required=True, multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="Robot-views dataset to score (`graspsim render-robot-views`; held-out suites); repeat it to pool "
                   "several (e.g. the shelf and the table test sets) into one table.")
@click.option("--prompt", "prompt", default="auto", show_default=True,
              help="auto (no clicks), 1-click, 3-click or box (derived from the true masks).")
@click.option("--video", is_flag=True, help="Score the dataset's videos (memory from frame to frame) instead of "
                                            "its image views.")
@click.option("--model", "model", default=None,
              help="RobotSeg checkpoint directory [default: the shipped one].")
@click.option("--baseline", default=None, type=click.Choice(["sam"]),
              help="Score the shipped product SAM with the same prompts instead of RobotSeg.")
@click.option("--out", "out_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="Write the metrics (and one row per image or frame) to this JSON file.")
@click.option("--max-items", default=None, type=click.IntRange(min=1),
              help="Score at most this many views (or videos) of each dataset, evenly spread over it.")
@click.option("--threads", default=2, show_default=True, type=click.IntRange(min=1), help="torch threads.")
@click.option("--markdown", is_flag=True, help="Also print the rows of the README's table (one per split).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def evaluate_robot_masks_command(data_dirs, prompt, video, model, baseline, out_path, max_items, threads, markdown,
                                 no_progress):
    """J, F and J&F of robot masks (arm, gripper, whole) per embodiment and split, and frames per second."""
    from graspsim.data.format import DatasetError
    from graspsim.policies.clip_sam.models import WeightsNotFoundError
    from graspsim.policies.robotseg.config import parse_prompt_mode

    try:
        mode = parse_prompt_mode(prompt)
    except ValueError as exc:
        raise UserError(f"--prompt: {exc}") from None
    if baseline == "sam" and mode == "auto":
        raise UserError("--baseline sam needs clicks or a box: --prompt 1-click, 3-click or box (SAM has no "
                        "automatic robot prompt)")
    from graspsim.policies.robotseg.evaluate import evaluate_robot_masks, format_table

    try:
        result = evaluate_robot_masks(list(data_dirs), mode, video=video, checkpoint=model, baseline=baseline,
                                      max_items=max_items, threads=threads, progress=not no_progress)
    except (DatasetError, FileNotFoundError, WeightsNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    if out_path is not None:
        from graspsim.fileio import atomic_write_json

        try:
            atomic_write_json(out_path, result)
        except OSError as exc:
            raise UserError(f"cannot write {out_path}: {exc}") from None
    click.echo(format_table(result))
    if markdown:
        from graspsim.policies.robotseg.evaluate import MARKDOWN_HEADER, markdown_rows

        click.echo(MARKDOWN_HEADER + "\n" + markdown_rows(result))
