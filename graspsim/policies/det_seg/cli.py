"""Click commands for det_seg / grconvnet: training and offline evaluation (mounted by graspsim.cli).

User mistakes (missing or empty data directory, a directory that is not a
rendered dataset, a missing checkpoint, an existing run without ``--resume``)
end with a one-line message and exit status 2, never a traceback.
"""

from __future__ import annotations


import click

from graspsim.clierror import UserError
from graspsim.clitrain import invocation, parse_config_json, run_training


def _common_train_options(f):
    f = click.option("--data", "data_dir", required=True, multiple=True, type=click.Path(file_okay=False),
                     help="dataset directory written by `graspsim render`; repeat to train on several "
                          "(--no-grasps datasets train the segmentation only)")(f)
    f = click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
                     help="checkpoint directory to write")(f)
    f = click.option("--epochs", type=click.IntRange(min=1), default=None, help="epochs (default: 40 det_seg, 20 grconvnet)")(f)
    f = click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True,
                     help="images per optimiser step")(f)
    f = click.option("--seed", type=int, default=0, show_default=True,
                     help="seed of the initial weights, the split, the batches and the augmentation")(f)
    f = click.option("--val-fraction", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.1, show_default=True,
                     help="share of scene seeds held out for validation")(f)
    f = click.option("--lr", type=click.FloatRange(min=0.0, min_open=True), default=None, help="peak learning rate")(f)
    f = click.option("--resume", is_flag=True, help="continue the run in --out from its last epoch checkpoint")(f)
    f = click.option("--max-minutes", type=click.FloatRange(min=0.0, min_open=True), default=None,
                     help="start no epoch that would end after this many minutes")(f)
    f = click.option("--no-augment", is_flag=True, help="no flips / colour jitter")(f)
    f = click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads")(f)
    f = click.option("--input-size", type=click.IntRange(min=32), default=None, help="network input side (letterbox)")(f)
    f = click.option("--quiet", is_flag=True, help="no progress bar")(f)
    f = click.option("--init", "init", default=None, type=click.Path(file_okay=False),
                     help="start from this checkpoint's weights (fine-tune; its config is the base that "
                          "--config / --input-size override)")(f)
    return f


def _run_training(fn, data_dir, out_dir, opts: dict, **kw) -> None:
    """``fn(data, out_dir, **kw)`` with the options of :func:`_common_train_options` (``opts``) as its keywords too;
    user mistakes end as a UserError, a run as one JSON line."""
    kw.update(batch_size=opts["batch_size"], seed=opts["seed"], val_fraction=opts["val_fraction"],
              resume=opts["resume"], max_minutes=opts["max_minutes"], augment_data=not opts["no_augment"],
              num_threads=opts["threads"], progress=not opts["quiet"], command=invocation(),
              **{k: opts[k] for k in ("epochs", "lr") if opts[k] is not None})
    run_training(fn, data_dir[0] if len(data_dir) == 1 else list(data_dir), out_dir,
                 report=lambda meta: {"out": str(out_dir), "epochs_done": meta.get("epochs_done"),
                                      "finished": meta.get("finished"), "val_metrics": meta.get("val_metrics")}, **kw)


def _config(kind: str, config_json: str | None, init: str | None, input_size: int | None, **fixed):
    """``(overrides, config)``: the ``--init`` checkpoint's config (if any) updated with ``--config``, ``fixed``
    and ``--input-size``, and the ``kind`` network's config they give over the defaults (UserError if bad)."""
    from graspsim.policies.det_seg.checkpoint import init_config, net_classes

    cls = net_classes(kind)[1]
    overrides = parse_config_json(config_json)
    try:
        base = init_config(init, kind) if init else {}
    except (FileNotFoundError, ValueError) as exc:
        raise UserError(str(exc)) from None
    overrides = {**base, **overrides, **fixed, **({} if input_size is None else {"input_size": input_size})}
    try:
        return overrides, cls.from_dict({**cls().to_dict(), **overrides})
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad --config: {exc}") from None


@click.command("det_seg")
@_common_train_options
@click.option("--no-refine", is_flag=True, help="train Det_Seg without the grasp refinement head")
@click.option("--config", "config_json", default=None, help="JSON object of DetSegConfig fields to override")
def train_det_seg_command(data_dir, out_dir, input_size, init, no_refine, config_json, **opts):
    """Train det_seg (grasp detection + segmentation [+ refinement]) on a rendered dataset."""
    from graspsim.policies.det_seg.train import train_det_seg

    fixed = {"use_refinement": False} if no_refine else {}
    _, config = _config("det_seg", config_json, init, input_size, **fixed)
    _run_training(train_det_seg, data_dir, out_dir, opts, config=config, init=init)


@click.command("grconvnet")
@_common_train_options
@click.option("--config", "config_json", default=None, help="JSON object of GrConvNetConfig fields to override")
def train_grconvnet_command(data_dir, out_dir, input_size, init, config_json, **opts):
    """Train the GR-ConvNet-style baseline (RGB-D -> quality / angle / width maps) on a rendered dataset."""
    from graspsim.policies.det_seg.train import train_grconvnet

    overrides, _ = _config("grconvnet", config_json, init, input_size)
    _run_training(train_grconvnet, data_dir, out_dir, opts, config=overrides or None, init=init)


@click.command("evaluate")
@click.option("--policy", "policy_name", required=True, type=click.Choice(["det_seg", "grconvnet", "graspsam"]),
              help="Which network's checkpoint to evaluate.")
@click.option("--data", "data_dir", required=True, type=click.Path(file_okay=False), help="rendered dataset")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="writes OUT/metrics.json")
@click.option("--checkpoint", default=None, type=click.Path(file_okay=False),
              help="checkpoint dir, or a shipped one by name (det_seg, det_seg_640, grconvnet) [default: the policy's]")
@click.option("--scenes", "max_scenes", type=click.IntRange(min=1), default=None, help="evaluate the first N scenes")
@click.option("--threads", type=click.IntRange(min=1), default=None, help="torch CPU threads")
@click.option("--no-refine", is_flag=True, help="det_seg without its refinement head (Det_Seg vs Det_Seg_Refine)")
@click.option("--min-region-px", type=click.FloatRange(min=0.0), default=None,
              help="det_seg: merge segmentation regions smaller than this (px at 640x480; 0 = off) "
                   "[default: the policy's]")
@click.option("--no-guided", is_flag=True,
              help="det_seg: upsample the segmentation bilinearly, not along the image edges (guided filter)")
@click.option("--run-dir", "run_dirs", multiple=True, type=click.Path(file_okay=False),
              help="a `graspsim bench` run of this network: the metrics are also written there as "
                   "offline_metrics.json, which `graspsim compare` / `report` plot against the pick rate (repeatable)")
@click.option("--prompt", "prompts", multiple=True,
              help="graspsam: prompt mode points:K|point|box|language|none (repeatable) [default: points:10]")
@click.option("--placement", type=click.Choice(["chord", "peak"]), default=None,
              help="graspsam: jaws centred on the mask's chord through the quality peak (default) or on the peak")
@click.option("--point-refine", type=click.Choice(["box", "off"]), default=None,
              help="graspsam, prompts of points alone on tables: a second pass with the box of the first mask "
                   "(default) or one pass (the paper's)")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def evaluate_grasps_command(policy_name, data_dir, out_dir, checkpoint, max_scenes, threads, no_refine, min_region_px,
                            no_guided, run_dirs, prompts, placement, point_refine, quiet):
    """Jaccard grasp accuracy (by angle / IoU), segmentation IoU, class-level accuracy and FPS of a network."""
    from pathlib import Path

    from graspsim.data.format import DatasetError
    from graspsim.fileio import atomic_write_json
    from graspsim.policies.det_seg.evaluate import evaluate_grasps, format_table
    from graspsim.runs import OFFLINE_METRICS_FILENAME

    for run in run_dirs:  # checked before the (long) evaluation
        if not (Path(run) / "run.json").is_file():
            raise UserError(f"--run-dir {run} is not a `graspsim bench` run directory (no run.json)")
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    for given, name in ((prompts, "--prompt"), (placement, "--placement"), (point_refine, "--point-refine")):
        if given and policy_name != "graspsam":
            raise UserError(f"{name} is an option of --policy graspsam")
    if policy_name == "graspsam":
        from graspsim.policies.graspsam.cli import evaluate_command_body

        evaluate_command_body(data_dir, out_dir, checkpoint, max_scenes, prompts, quiet, placement or "chord",
                              point_refine or "box")
        return
    try:
        metrics = evaluate_grasps(policy_name, data_dir, out_dir, checkpoint=checkpoint, max_scenes=max_scenes,
                                  progress=not quiet, refine=False if no_refine else None,
                                  min_region_px=min_region_px, guided=not no_guided)
    except (DatasetError, FileNotFoundError, ValueError) as exc:  # ValueError: e.g. a checkpoint of the other kind
        raise UserError(str(exc)) from None
    click.echo(format_table(metrics))
    for run in run_dirs:
        atomic_write_json(Path(run) / OFFLINE_METRICS_FILENAME, metrics)
        click.echo(f"wrote {Path(run) / OFFLINE_METRICS_FILENAME}")
