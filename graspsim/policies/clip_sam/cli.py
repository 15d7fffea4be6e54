"""Click commands of the clip_sam stack: ``graspsim train clip|sam|shape`` and ``graspsim evaluate masks``.

Mounted on the ``train`` / ``evaluate`` groups by :mod:`graspsim.cli`.
"""

from __future__ import annotations

import json
from pathlib import Path

import click

from graspsim.clierror import UserError
from graspsim.clitrain import apply_options, run_control_options, schedule_options


_common = [
    click.option("--data", "data", multiple=True, type=click.Path(file_okay=False, path_type=Path),
                 help="Rendered dataset directory (repeatable). Scenes with seed % 10 == 0 are held out for validation."),
    click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                 help="Output model directory (save_pretrained layout + metadata.json)."),
    *schedule_options(epochs=12, steps_per_epoch=80, lr=5e-4),
    click.option("--init", default=None, help="Fine-tune this model (Hugging Face id or local dir) instead of "
                                              "training the small default architecture from scratch."),
    *run_control_options(),
]


def _run(kind: str, fn, data: tuple[Path, ...], out_dir, no_progress: bool, **kwargs):
    """``fn(data, out_dir, progress=..., **kwargs)`` (``train_clip`` / ``train_sam``) with its errors as UserError."""
    from graspsim.data.format import DatasetError
    from graspsim.policies.clip_sam.models import WeightsNotFoundError
    from graspsim.runs import RunDirError

    if not data:
        raise UserError("give at least one --data DIR (a dataset written by `graspsim render`)")
    for d in data:
        if not (d / "manifest.json").is_file():
            raise UserError(f"{d} is not a rendered dataset (no manifest.json); create one with "
                            f"`graspsim render --suite shelf-train --scenes 900 --no-grasps --out {d}`")
    try:
        meta = fn(list(data), out_dir, progress=not no_progress, **kwargs)
    except (RunDirError, DatasetError, WeightsNotFoundError) as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:
        if "no complete scenes" in str(exc):
            raise UserError(str(exc)) from None
        raise
    click.echo(json.dumps({"out": str(out_dir), "kind": kind, "steps": meta["steps"], "metrics": meta["metrics"]}))


@click.command("clip")
@apply_options(_common)
@click.option("--width", default=128, show_default=True, type=click.IntRange(min=16), help="ViT width.")
@click.option("--layers", default=4, show_default=True, type=click.IntRange(min=1), help="ViT layers.")
@click.option("--cam-weight", default=0.0, show_default=True, type=click.FloatRange(min=0.0),
              help="Weight of the Grad-CAM localisation term (trains the pooled score's Grad-CAM map to peak "
                   "on the named product; 0: off).")
@click.option("--hue-jitter", "hue_deg", default=0.0, show_default=True, type=click.FloatRange(0.0, 180.0),
              help="Shift half of each sample's products round the hue circle by up to this many degrees "
                   "(and their brightness by up to 15 %%): flavour colours the renders never showed (0: off).")
def train_clip_command(**options):
    """Train a small CLIP (or fine-tune --init) on rendered scenes: crops, frames, patches vs class texts."""
    from graspsim.policies.clip_sam.train_clip import train_clip

    _run("clip", train_clip, **options)


@click.command("sam")
@apply_options(_common)
@click.option("--batch-size", default=16, show_default=True, type=click.IntRange(min=1),
              help="Prompts (scene, object, point or box) per optimiser step.")
@click.option("--width", default=128, show_default=True, type=click.IntRange(min=16), help="ViT width.")
@click.option("--layers", default=4, show_default=True, type=click.IntRange(min=2), help="ViT layers.")
@click.option("--hard-boxes", is_flag=True,
              help="Also train on boxes like CLIP attention gives: part of the product, or over its neighbours.")
def train_sam_command(**options):
    """Train a small SAM (or fine-tune --init) on rendered product masks with point and box prompts."""
    from graspsim.policies.clip_sam.train_sam import train_sam

    _run("sam", train_sam, **options)


@click.command("shape")
@apply_options([_common[0], _common[1], *schedule_options(epochs=20, steps_per_epoch=200, lr=2e-3),
                *run_control_options()])
@click.option("--batch-size", default=256, show_default=True, type=click.IntRange(min=1),
              help="Masks per optimiser step.")
@click.option("--hidden", default=128, show_default=True, type=click.IntRange(min=4), help="MLP hidden width.")
@click.option("--copies", default=2, show_default=True, type=click.IntRange(min=0),
              help="Perturbed masks (eroded / dilated / cut) per product instance, besides its own.")
@click.option("--size-jitter", default=0.04, show_default=True, type=click.FloatRange(min=0.0),
              help="Standard deviation of the log size factor applied to each training sample.")
@click.option("--label-smoothing", default=0.05, show_default=True, type=click.FloatRange(0.0, 0.5),
              help="Cross-entropy label smoothing (keeps the prior from vetoing CLIP outright).")
def train_shape_command(**options):
    """Train the shape prior (product class from a mask's 3-D shape) on rendered instance masks."""
    from graspsim.policies.clip_sam.train_shape import train_shape

    _run("shape", train_shape, **options)


@click.command("masks")
@click.option("--policy", default="clip_sam", show_default=True, type=click.Choice(["clip_sam"]),
              help="Perception stack to score (mask-predicting policies).")
@click.option("--suite", required=True, help="Suite name (see `graspsim list suites`).")
@click.option("--episodes", default=100, show_default=True, type=click.IntRange(min=1), help="Scenes to score.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="First scene index.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Evaluation directory (metrics.json and one row per scene).")
@click.option("--clip", default=None, help="CLIP model (default: the shipped sim-trained one).")
@click.option("--sam", default=None, help="SAM model or official .pth (default: the shipped sim-trained one).")
@click.option("--no-zoom", is_flag=True, help="Single attention pass on the whole frame (no zoomed second pass).")
@click.option("--cam-layer", default=-1, show_default=True, type=int, help="ViT layer whose input Grad-CAM reads.")
@click.option("--no-verify", is_flag=True, help="Follow the strongest attention peak only (no CLIP check of masks).")
@click.option("--attention", "cam_method", default=None, type=click.Choice(["gradcam", "hirescam", "similarity"]),
              help="How CLIP's attention map is made [default: the policy's].")
@click.option("--threshold", default=None, type=click.FloatRange(0.0, 1.0),
              help="Attention threshold (fraction of the peak) for box prompts [default: the policy's].")
@click.option("--threads", default=None, type=click.IntRange(min=1), help="torch threads.")
@click.option("--resume", is_flag=True, help="Continue an interrupted evaluation in --out.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def evaluate_masks_command(policy, suite, out_dir, no_zoom, no_verify, no_progress, **options):
    """CLIP top-1/top-5 on target crops, mask IoU per prompt mode, stage times -> OUT/metrics.json."""
    from graspsim.envs.observer import SuiteObserver
    from graspsim.policies.clip_sam.evaluate import evaluate_masks, format_table
    from graspsim.scenes.suites import UnknownSuiteError, get_suite
    from graspsim.policies.clip_sam.models import WeightsNotFoundError
    from graspsim.runs import RunDirError

    try:
        get_suite(suite).scene_seeds(options["seed"], options["episodes"])
    except (UnknownSuiteError, ValueError) as exc:
        raise UserError(str(exc)) from None
    # This command is the composition root: the scenes come from the environment, the scoring from the stack.
    observer = SuiteObserver.for_suite(suite)
    try:
        metrics = evaluate_masks(suite, out_dir, observer, zoom=not no_zoom, verify=not no_verify,
                                 progress=not no_progress, **options)
    except (WeightsNotFoundError, RunDirError) as exc:
        raise UserError(str(exc)) from None
    finally:
        observer.close()
    click.echo(format_table(metrics))
    click.echo(f"wrote {Path(out_dir) / 'metrics.json'}")
