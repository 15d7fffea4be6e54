"""The ``graspsim`` command line (click). Nothing imports this module.

User mistakes (unknown policy or suite, bad numbers, a run directory that
already holds another run) end with a one-line message and a non-zero exit
status, never a traceback.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click


class _Abort(click.ClickException):
    """A user-facing error: printed as ``Error: ...``, exit status 2."""

    exit_code = 2


@click.group()
@click.version_option(package_name="graspsim")
def main() -> None:
    """graspsim: benchmark robotic picking of retail products in PyBullet."""


def _check_suite(name: str):
    from graspsim.bench.suites import UnknownSuiteError, get_suite

    try:
        return get_suite(name)
    except UnknownSuiteError as exc:
        raise _Abort(str(exc)) from None


def _check_policy(name: str) -> None:
    from graspsim.policies.registry import UnknownPolicyError, resolve_policy

    try:
        resolve_policy(name)
    except UnknownPolicyError as exc:
        raise _Abort(str(exc)) from None


def _check_policy_kwargs(policy: str, kwargs: dict) -> None:
    """Build the policy once so a bad --policy-arg fails here, with its name, not in a worker."""
    from graspsim.policies.registry import make_policy

    try:
        make_policy(policy, **kwargs)
    except (TypeError, ValueError) as exc:
        raise _Abort(f"invalid --policy-arg for policy {policy}: {exc}") from None


def _parse_policy_kwargs(items: tuple[str, ...]) -> dict:
    kwargs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _Abort(f"--policy-arg expects KEY=VALUE, got {item!r}")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return kwargs


@main.command()
@click.option("--policy", required=True, help="Policy name (see `graspsim list policies`).")
@click.option("--suite", default="shelf-test", show_default=True, help="Suite name (see `graspsim list suites`).")
@click.option("--episodes", default=100, show_default=True, type=click.IntRange(min=1), help="Attempts to run.")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
              help="Index of the suite's first scene; scenes seed..seed+episodes-1 are used.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Worker processes.")
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory [default: runs/POLICY-SUITE].")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option("--renderer", default="auto", show_default=True, type=click.Choice(["auto", "egl", "tiny"]))
@click.option("--width", default=640, show_default=True, type=click.IntRange(min=32))
@click.option("--height", default=480, show_default=True, type=click.IntRange(min=32))
@click.option("--policy-arg", "policy_args", multiple=True, metavar="KEY=VALUE",
              help="Keyword argument for the policy (repeatable; VALUE parsed as JSON when it can be).")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def bench(policy, suite, episodes, seed, workers, out_dir, resume, renderer, width, height, policy_args,
          no_progress):
    """Run POLICY on a suite and score pick success per product class."""
    from graspsim.bench.results import ResultsFileError, RunDirError
    from graspsim.bench.runner import RunSpec, run_bench
    from graspsim.bench.table import format_summary_table

    suite_obj = _check_suite(suite)
    _check_policy(policy)
    try:
        suite_obj.scene_seeds(seed, episodes)
    except ValueError as exc:
        raise _Abort(str(exc)) from None
    policy_kwargs = _parse_policy_kwargs(policy_args)
    _check_policy_kwargs(policy, policy_kwargs)
    spec = RunSpec(policy=policy, suite=suite, episodes=episodes, seed=seed, renderer=renderer, width=width,
                   height=height, policy_kwargs=policy_kwargs)
    out_dir = out_dir or Path("runs") / f"{policy}-{suite}"
    try:
        summary = run_bench(spec, out_dir, workers=workers, resume=resume, progress=not no_progress)
    except (RunDirError, ResultsFileError) as exc:
        raise _Abort(str(exc)) from None
    except OSError as exc:  # e.g. an --out that cannot be created
        raise _Abort(f"cannot write the run directory {out_dir}: {exc.strerror or exc}") from None
    click.echo(format_summary_table(summary))
    click.echo(f"results: {out_dir / 'results.jsonl'}\nsummary: {out_dir / 'summary.json'}")


@main.command("list")
@click.argument("what", required=False, type=click.Choice(["policies", "suites", "classes"]))
def list_(what):
    """Show policies, suites and product classes."""
    from graspsim.assets.catalog import CATALOG
    from graspsim.bench.suites import SUITES
    from graspsim.policies.registry import available_policies

    if what in (None, "policies"):
        click.echo("policies:")
        for name, target in available_policies().items():
            click.echo(f"  {name:<12} {target}")
    if what in (None, "suites"):
        click.echo("suites:")
        for s in SUITES.values():
            click.echo(f"  {s.name:<16} {s.kind:<9} {s.variant_split:<7} seeds {s.first_seed}..{s.first_seed + s.size - 1}"
                       f"  {s.description}")
    if what in (None, "classes"):
        click.echo("classes:")
        for c in CATALOG:
            size = " x ".join(f"{v * 100:.1f}" for v in c.size_m)
            click.echo(f"  {c.index:>2} {c.name:<18} {c.family:<14} {size} cm  {c.mass_kg:.2f} kg  "
                       f"seen {list(c.variants_seen)} unseen {list(c.variants_unseen)}")


@main.command()
@click.option("--suite", default="shelf-test", show_default=True)
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Scene index in the suite.")
@click.option("--policy", default="oracle", show_default=True, help="Policy whose grasp is drawn.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--execute/--no-execute", default=False, help="Also execute the grasp and print the outcome.")
@click.option("--renderer", default="auto", show_default=True, type=click.Choice(["auto", "egl", "tiny"]))
def show(suite, seed, policy, out_path, execute, renderer):
    """Render a scene with the policy's grasp drawn (blue jaw plates, red opening line)."""
    import numpy as np

    from graspsim.bench.runner import POLICY_SEED_SALT
    from graspsim.envs.pick_env import PickEnv
    from graspsim.policies.base import PolicyError
    from graspsim.policies.registry import make_policy
    from graspsim.viz import draw_grasp, save_png

    suite_obj = _check_suite(suite)
    _check_policy(policy)
    try:
        (scene_seed,) = suite_obj.scene_seeds(seed, 1)
    except ValueError as exc:
        raise _Abort(str(exc)) from None
    agent = make_policy(policy)
    env = PickEnv(kind=suite_obj.kind, variant_split=suite_obj.variant_split, renderer=renderer,
                  privileged=bool(getattr(agent, "needs_privileged", False)))
    try:
        obs, info = env.reset(seed=scene_seed)
        agent.reset(np.random.default_rng([scene_seed, POLICY_SEED_SALT]))
        try:
            output = agent.act(env.policy_observation(obs, info))
        except PolicyError as exc:
            raise _Abort(f"policy {policy} found no grasp in scene {seed} of {suite}: {exc}") from None
        image = draw_grasp(obs["rgb"], output.rect)
        try:
            save_png(out_path, image)
        except (OSError, ValueError) as exc:
            raise _Abort(f"cannot write {out_path}: {exc}") from None
        click.echo(f"{obs['instruction']!r}: grasp {output.rect.to_dict()} -> {out_path}")
        if execute:
            _, _, _, _, step_info = env.step(output.rect.as_array())
            click.echo(f"outcome: success={step_info['success']} reason={step_info['reason']}")
    finally:
        env.close()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
