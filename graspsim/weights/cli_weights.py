"""``graspsim weights list|fetch|verify`` (registered in :mod:`graspsim.cli`)."""

from __future__ import annotations

import click

from graspsim.clierror import UserError
from graspsim.weights.registry import REGISTRY, UnknownWeightsError, get_spec
from graspsim.weights.store import WeightsError, fetch, status, verify, weights_dir


def _spec_or_abort(name: str):
    try:
        return get_spec(name)
    except UnknownWeightsError as exc:
        raise UserError(str(exc)) from None


def _mb(n: int | None) -> str:
    return "-" if not n else f"{n / 1e6:,.1f} MB"


@click.group("weights")
def weights_group() -> None:
    """Pretrained weights of the learned perception stacks (store: $GRASPSIM_WEIGHTS or <cache>/weights)."""


@weights_group.command("list")
def list_command() -> None:
    """Registered weights: kind, present/missing, size, verified (size check; `verify` rehashes), path."""
    try:
        rows = [status(n) for n in REGISTRY]
    except WeightsError as exc:
        raise UserError(str(exc)) from None
    table = [("name", "kind", "state", "size", "verified", "path")]
    for st in rows:
        size = _mb(st["size_bytes"]) if st["present"] else st["size_estimate"]
        ver = {True: "yes", False: "NO", None: "-" if not st["present"] else "unpinned"}[st["verified"]]
        table.append((st["name"], st["kind"], "present" if st["present"] else "missing", size, ver, st["path"]))
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]) - 1)]
    for r in table:
        click.echo("  ".join(c.ljust(w) for c, w in zip(r[:-1], widths)) + "  " + r[-1])
    click.echo(f"store: {weights_dir()}")


@weights_group.command("fetch")
@click.argument("name")
@click.option("--force", is_flag=True, help="Download again even when present.")
@click.option("--from", "source", metavar="PATH_OR_URL", default=None,
              help="Fetch from a local copy (file or directory) or a mirror URL instead of the official source; "
                   "still hash-checked.")
@click.option("--no-progress", is_flag=True, help="No progress output.")
def fetch_command(name: str, force: bool, source: str | None, no_progress: bool) -> None:
    """Download NAME into the store, checking hashes (the first fetch pins unknown sha256s in lock.json)."""
    spec = _spec_or_abort(name)
    try:
        st = fetch(spec.name, force=force, source_override=source, progress=not no_progress)
    except WeightsError as exc:  # unavailable (no network, missing --from) or integrity mismatch
        raise UserError(str(exc)) from None
    click.echo(f"{spec.name}: present ({_mb(st['size_bytes'])}) at {st['path']}")


@weights_group.command("verify")
@click.argument("name", required=False)
def verify_command(name: str | None) -> None:
    """Recompute hashes of NAME (default: every present model); exit 1 when a file does not match."""
    if name is not None:
        names = [_spec_or_abort(name).name]
    else:
        names = [n for n in REGISTRY if status(n)["present"]]
        if not names:
            click.echo(f"no weights present in {weights_dir()}")
            return
    failed = False
    for n in names:
        res = verify(n)
        if res["ok"]:
            click.echo(f"{n}: ok ({len(res['files'])} files)")
        else:
            failed = True
            for p in res["problems"]:
                click.echo(f"{n}: FAILED: {p}")
    if failed:
        raise SystemExit(1)
