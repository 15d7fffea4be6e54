"""``graspsim export``: a rendered dataset in the Cornell or OCID_grasp layout (registered in :mod:`graspsim.cli`)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from graspsim.clierror import UserError


@click.command("export")
@click.option("--data", "data_dir", required=True, type=click.Path(path_type=Path),
              help="Dataset directory written by `graspsim render`.")
@click.option("--format", "fmt", required=True, type=click.Choice(["cornell", "ocid_grasp"]),
              help="Target layout (see graspsim/data/export.py).")
@click.option("--out", "out_dir", required=True, type=click.Path(path_type=Path),
              help="Output directory (empty, or an earlier export of the same format).")
@click.option("--inpaint-depth", is_flag=True,
              help="cornell: fill the depth TIFFs' zeros (nothing hit) from their neighbours, as Cornell's are.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def export_command(data_dir, fmt, out_dir, inpaint_depth, no_progress):
    """Export a rendered dataset to the Cornell or OCID_grasp layout."""
    from graspsim.data.export import ExportError, export_dataset
    from graspsim.data.format import DatasetError

    try:
        record = export_dataset(data_dir, out_dir, fmt, progress=not no_progress, inpaint_depth=inpaint_depth)
    except (DatasetError, ExportError) as exc:
        raise UserError(str(exc)) from None
    click.echo(json.dumps({k: v for k, v in record.items() if k != "files"} | {"out": str(out_dir)}))
