"""What every `graspsim train <stack>` command shares: option lists, ``--config`` JSON, the run and its report.

Each stack's ``cli.py`` declares its own options and calls its own trainer; this module holds the pieces they
would otherwise each write again (click only; trainers are passed in, so nothing heavy is imported here).
"""

from __future__ import annotations

import json
import shlex
import sys
from typing import Any, Callable

import click

from graspsim.clierror import UserError


def apply_options(options: list) -> Callable:
    """A decorator applying a list of ``click.option`` decorators in the listed order (first = first in --help)."""
    def deco(f):
        for opt in reversed(options):
            f = opt(f)
        return f
    return deco


def schedule_options(epochs: int, steps_per_epoch: int, lr: float) -> list:
    """``--epochs``, ``--steps-per-epoch``, ``--lr``, ``--seed`` with a stack's defaults (step-based trainers)."""
    return [
        click.option("--epochs", default=epochs, show_default=True, type=click.IntRange(min=1), help="Epochs to train."),
        click.option("--steps-per-epoch", default=steps_per_epoch, show_default=True, type=click.IntRange(min=1),
                     help="Optimiser steps per epoch (one batch each)."),
        click.option("--lr", default=lr, show_default=True, type=click.FloatRange(min=0, min_open=True),
                     help="Peak learning rate."),
        click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
                     help="Seed of the initial weights, the batches and the augmentation."),
    ]


def run_control_options() -> list:
    """``--resume``, ``--max-minutes``, ``--threads``, ``--no-progress``: how a training run is started and stopped."""
    return [
        click.option("--resume", is_flag=True, help="Continue the run in --out from its last epoch."),
        click.option("--max-minutes", default=None, type=click.FloatRange(min=0, min_open=True),
                     help="Start no epoch that would end after this many minutes (--resume finishes the run)."),
        click.option("--threads", default=None, type=click.IntRange(min=1), help="torch threads."),
        click.option("--no-progress", is_flag=True, help="Hide the progress bar."),
    ]


def device_option() -> list:
    """``--device``: where a stack that can leave the CPU trains (:mod:`graspsim.learn.device`; robotseg so far)."""
    return [click.option("--device", default="cpu", show_default=True,
                         help="torch device to train on: cpu, cuda or cuda:N (needs a CUDA build of torch). A run "
                              "may be resumed on another device (then not bit for bit).")]


def parse_config_json(text: str | None) -> dict:
    """The ``--config`` JSON object as a dict (``{}`` when not given); UserError when it is not a JSON object."""
    if not text:
        return {}
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise UserError(f"--config is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UserError("--config must be a JSON object")
    return value


def invocation() -> str:
    """The command line as the user typed it (recorded in checkpoint metadata)."""
    return "graspsim " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def run_training(train: Callable[..., dict], *args: Any, report: Callable[[dict], dict],
                 errors: tuple[type[BaseException], ...] = (), **kwargs: Any) -> dict:
    """``meta = train(*args, **kwargs)``, echoed as one JSON line ``report(meta)``; returns ``meta``.

    User mistakes (a bad dataset, a run directory that cannot be resumed, a missing file, a bad value, and the
    stack's own ``errors``) end as one-line :class:`UserError`\\ s, not tracebacks.
    """
    from graspsim.data.format import DatasetError
    from graspsim.runs import RunDirError

    try:
        meta = train(*args, **kwargs)
    except (DatasetError, RunDirError, FileNotFoundError, ValueError, *errors) as exc:
        raise UserError(str(exc)) from None
    click.echo(json.dumps(report(meta)))
    return meta


def config_from_json(config_class: type, text: str | None):
    """``config_class``'s defaults with the ``--config`` JSON object's fields over them (a frozen dataclass with
    ``to_dict`` / ``from_dict``); UserError naming the problem for bad JSON or a bad field."""
    overrides = parse_config_json(text)
    try:
        return config_class.from_dict({**config_class().to_dict(), **overrides})
    except (TypeError, ValueError) as exc:
        raise UserError(f"bad --config: {exc}") from None


def train_on_datasets(train: Callable[..., dict], data, out_dir, config_class: type, config_json: str | None,
                      no_progress: bool, *, data_hint: str, errors: tuple[type[BaseException], ...] = (),
                      **kwargs: Any) -> dict:
    """The body of a `graspsim train <stack>` command whose trainer takes ``(datasets, out_dir, config=...,
    progress=..., command=..., log=..., **run options)`` and returns metadata with ``steps``, ``finished``,
    ``parameters`` and ``metrics`` (graspsam, robotseg): at least one ``--data`` (else a one-line error that
    says what ``data_hint`` names), the ``--config`` JSON over ``config_class``'s defaults (no ``--config``:
    ``config=None``, the trainer's defaults or those of the checkpoint it continues), the run, its report."""
    if not data:
        raise UserError(f"give at least one --data DIR ({data_hint})")
    config = None if config_json is None else config_from_json(config_class, config_json)
    return run_training(train, list(data), out_dir, config=config, progress=not no_progress, command=invocation(),
                        log=(lambda s: None) if no_progress else print, errors=errors,
                        report=lambda meta: {"out": str(out_dir), "steps": meta["steps"], "finished": meta["finished"],
                                             "parameters": meta["parameters"], "metrics": meta["metrics"]}, **kwargs)
