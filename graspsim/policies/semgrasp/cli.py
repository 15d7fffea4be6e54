"""Click commands of semgrasp: ``graspsim train semgrasp`` and ``graspsim evaluate semgrasp`` (mounted by graspsim.cli).

User mistakes (a missing or empty data directory, a directory that is not a
rendered dataset, a bad ``--config``, an existing run without ``--resume``, a
missing checkpoint) end with a one-line message and exit status 2.
"""

from __future__ import annotations

import json

import click

from graspsim.clierror import UserError
from graspsim.clitrain import config_from_json, invocation, run_training


def _net_config(config_json: str | None):
    from graspsim.policies.semgrasp.config import SemGraspNetConfig

    return config_from_json(SemGraspNetConfig, config_json)


@click.command("semgrasp")
@click.option("--data", "data_dir", required=True, multiple=True, type=click.Path(file_okay=False),
              help="dataset written by `graspsim render` on a *-parts-train suite (with grasp labels); repeatable")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="checkpoint directory")
@click.option("--epochs", type=click.IntRange(min=1), default=30, show_default=True, help="passes over the training items")
@click.option("--batch-size", type=click.IntRange(min=1), default=32, show_default=True, help="items per step")
@click.option("--lr", type=click.FloatRange(min=0.0, min_open=True), default=1e-3, show_default=True,
              help="peak AdamW learning rate (warm-up then cosine)")
@click.option("--seed", type=int, default=0, show_default=True, help="weights, split, batches, jitter, phrasings")
@click.option("--val-fraction", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.1, show_default=True,
              help="share of scenes held out for validation")
@click.option("--val-split", type=click.Choice(["random", "tail"]), default="random", show_default=True,
              help="random: scenes drawn with --seed; tail: each suite's highest seeds (bench the suite's last "
                   "indices on scenes training never saw)")
@click.option("--init", "init_dir", default=None, type=click.Path(file_okay=False),
              help="start from this semgrasp checkpoint's weights (same network config)")
@click.option("--no-planned", is_flag=True, help="validated labels only (no part-planner grasps for the other parts)")
@click.option("--cache", "cache_dir", default=None, type=click.Path(file_okay=False),
              help="keep each scene's training items here (the part planner is slow; reruns and resumes reuse them)")
@click.option("--config", "config_json", default=None, help="JSON object of SemGraspNetConfig fields to override")
@click.option("--resume", is_flag=True, help="continue the run in --out from its last epoch")
@click.option("--max-minutes", type=click.FloatRange(min=0.0, min_open=True), default=None,
              help="start no epoch that would end after this many minutes")
@click.option("--threads", type=click.IntRange(min=1), default=None,
              help="torch CPU threads (1 is fastest on a busy machine)")
@click.option("--quiet", is_flag=True, help="no progress bar")
def train_semgrasp_command(data_dir, out_dir, epochs, batch_size, lr, seed, val_fraction, val_split, init_dir,
                           no_planned, cache_dir, config_json, resume, max_minutes, threads, quiet):
    """Train semgrasp (crop + instruction -> part / angle / opening / position tokens) on part-labelled grasps."""
    from graspsim.learn.checkpoint import CheckpointError
    from graspsim.policies.clip_sam.minilm import MiniLMUnavailableError
    from graspsim.policies.semgrasp.train import train_semgrasp

    config = _net_config(config_json)
    run_training(train_semgrasp, data_dir[0] if len(data_dir) == 1 else list(data_dir), out_dir, epochs=epochs,
                 lr=lr, batch_size=batch_size, seed=seed, val_fraction=val_fraction, resume=resume,
                 progress=not quiet, max_minutes=max_minutes, num_threads=threads, config=config,
                 planned=not no_planned, cache_dir=cache_dir, val_split=val_split, init=init_dir,
                 command=invocation(), errors=(MiniLMUnavailableError, CheckpointError),
                 report=lambda meta: {"out": str(out_dir), "epochs_done": meta.get("epochs_done"),
                                      "finished": meta.get("finished"), "metrics": meta.get("metrics")})


@click.command("semgrasp")
@click.option("--data", "data_dir", required=True, multiple=True, type=click.Path(file_okay=False),
              help="rendered dataset(s) of a *-parts-* suite")
@click.option("--checkpoint", default=None, type=click.Path(file_okay=False),
              help="checkpoint directory [default: the shipped one]")
@click.option("--split", type=click.Choice(["val", "all"]), default="val", show_default=True,
              help="val: the checkpoint's validation scenes found in --data; all: every scene")
@click.option("--scenes", "max_scenes", type=click.IntRange(min=1), default=None, help="the first N scenes")
@click.option("--cache", "cache_dir", default=None, type=click.Path(file_okay=False), help="as in training")
@click.option("--out", "out_file", default=None, type=click.Path(dir_okay=False), help="also write the metrics here")
def evaluate_semgrasp_command(data_dir, checkpoint, split, max_scenes, cache_dir, out_file):
    """Token accuracy per token type, part accuracy on held-out phrasings and held-out (class, part) pairs."""
    from graspsim.data.format import DatasetError
    from graspsim.fileio import atomic_write_json
    from graspsim.learn.checkpoint import CheckpointError
    from graspsim.policies.clip_sam.minilm import MiniLMUnavailableError
    from graspsim.policies.semgrasp.config import resolve_checkpoint
    from graspsim.policies.semgrasp.evaluate import evaluate_checkpoint

    try:
        metrics = evaluate_checkpoint(resolve_checkpoint(checkpoint), data_dir[0] if len(data_dir) == 1
                                      else list(data_dir), max_scenes=max_scenes, split=split, cache_dir=cache_dir)
    except (DatasetError, FileNotFoundError, ValueError, CheckpointError, MiniLMUnavailableError) as exc:
        raise UserError(str(exc)) from None
    if out_file:
        atomic_write_json(out_file, metrics)
    click.echo(json.dumps(metrics))
