"""Click commands of the graspsam stack: ``graspsim train graspsam`` (``graspsim evaluate grasps --policy
graspsam`` is det_seg's evaluate command, which hands graspsam to :func:`evaluate_command_body`).

User mistakes end as one line (``Error: ...``, exit status 2).
"""

from __future__ import annotations

from pathlib import Path

import click

from graspsim.clierror import UserError
from graspsim.clitrain import apply_options, run_control_options, schedule_options, train_on_datasets

_options = [
    click.option("--data", "data", multiple=True, type=click.Path(file_okay=False, path_type=Path),
                 help="Rendered dataset with grasp labels (repeatable); scene seeds divisible by 10 validate."),
    click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                 help="Checkpoint directory (model.safetensors with the trainable tensors + metadata.json)."),
    *schedule_options(epochs=8, steps_per_epoch=100, lr=1e-3),
    click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1),
                 help="Prompts (scene, product, prompt) per step."),
    click.option("--sam", default=None, help="Frozen SAM: a `graspsim weights` name, Hugging Face id, local dir or "
                                             "official .pth [default: clip_sam's shipped sim-trained SAM]."),
    click.option("--config", "config_json", default=None, help="JSON object of GraspSamConfig fields to override."),
    click.option("--init", default=None, help="Start from this graspsam checkpoint directory (`shipped`: the "
                                              "shipped one); its config and SAM unless --config / --sam say otherwise."),
    click.option("--augment/--no-augment", default=True, show_default=True,
                 help="Turn and mirror training windows as the camera allows (any quarter turn and mirror on a "
                      "table, a left-right mirror on a shelf)."),
    click.option("--balance-kinds/--no-balance-kinds", default=True, show_default=True,
                 help="Draw shelf and table scenes equally often, whatever each --data holds."),
    click.option("--map-loss", default="object", show_default=True, type=click.Choice(["object", "labelled"]),
                 help="Where the angle and width maps are scored: every object pixel (the paper's) or only the "
                      "labelled rectangles."),
    click.option("--text-prompts", default=0.0, show_default=True, type=click.FloatRange(0.0, 1.0),
                 help="Share of batches prompted by a product name's CLIP text embedding as one sparse token "
                      "(adds the text token to the network; `--policy-arg prompt=text`)."),
    click.option("--trainable", default="all", show_default=True, type=click.Choice(["all", "text"]),
                 help="What trains: everything GraspSAM adds to SAM, or only the text prompt's parts (token "
                      "projection, text adapters; every batch a text batch; the other prompt modes keep --init's "
                      "outputs exactly)."),
    click.option("--clip", default=None, help="CLIP whose text side embeds the text prompts [default: clip_sam's "
                                              "shipped CLIP]."),
    click.option("--val-objects", default=60, show_default=True, type=click.IntRange(min=1),
                 help="Held-out products scored with 10-point prompts after each epoch."),
    *run_control_options(),
]


@click.command("graspsam")
@apply_options(_options)
def train_graspsam_command(data, out_dir, config_json, no_progress, **kwargs):
    """Train GraspSAM (adapters, HQ and grasp tokens, map heads on a frozen SAM) on rendered grasp datasets."""
    from graspsim.policies.clip_sam.models import WeightsNotFoundError
    from graspsim.policies.graspsam.config import GraspSamConfig
    from graspsim.policies.graspsam.train import train_graspsam

    if kwargs.get("init") is not None:
        from graspsim.policies.graspsam.config import resolve_init

        try:
            resolve_init(kwargs["init"])
        except FileNotFoundError as exc:
            raise UserError(f"--init: {exc}") from None
    train_on_datasets(train_graspsam, data, out_dir, GraspSamConfig, config_json, no_progress,
                      data_hint="a dataset with grasp labels written by `graspsim render`",
                      errors=(WeightsNotFoundError,), **kwargs)


def evaluate_command_body(data_dir, out_dir, checkpoint, max_scenes, prompts: tuple[str, ...], quiet: bool,
                          placement: str = "chord", point_refine: str = "box") -> dict:
    """``graspsim evaluate grasps --policy graspsam``: one evaluation per ``--prompt`` (default ``points:10``);
    a single prompt writes ``OUT/metrics.json``, several write ``OUT/<prompt>/metrics.json`` each and
    ``OUT/metrics.json`` = ``{"policy", "by_prompt": {prompt: metrics}}``."""
    from graspsim.data.format import DatasetError
    from graspsim.fileio import atomic_write_json
    from graspsim.policies.clip_sam.models import WeightsNotFoundError
    from graspsim.policies.graspsam.config import EVAL_PROMPT, parse_prompt
    from graspsim.policies.graspsam.evaluate import evaluate_graspsam, format_table

    prompts = prompts or (EVAL_PROMPT,)
    try:
        modes = [str(parse_prompt(p)) for p in prompts]
    except ValueError as exc:
        raise UserError(f"--prompt: {exc}") from None
    by_prompt = {}
    for mode in modes:
        out = Path(out_dir) if len(modes) == 1 else Path(out_dir) / mode.replace(":", "-")
        try:
            m = evaluate_graspsam(data_dir, out, mode, checkpoint=checkpoint, max_scenes=max_scenes,
                                  progress=not quiet, placement=placement, point_refine=point_refine)
        except (DatasetError, FileNotFoundError, WeightsNotFoundError, ValueError) as exc:
            raise UserError(str(exc)) from None
        click.echo(format_table(m))
        by_prompt[mode] = m
    if len(modes) > 1:
        atomic_write_json(Path(out_dir) / "metrics.json", {"policy": "graspsam", "by_prompt": by_prompt})
    return by_prompt
