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

from graspsim.clierror import UserError
from graspsim.scenes.domain_rand import LEVELS as DR_LEVELS
from graspsim.types import DEFAULT_ROBOT


@click.group()
@click.version_option(package_name="graspsim")
def main() -> None:
    """graspsim: benchmark robotic picking of retail products in PyBullet."""


def _check_suite(name: str):
    from graspsim.scenes.suites import UnknownSuiteError, get_suite

    try:
        return get_suite(name)
    except UnknownSuiteError as exc:
        raise UserError(str(exc)) from None


def _scene_seeds(suite_obj, seed: int, count: int) -> list[int]:
    try:
        return suite_obj.scene_seeds(seed, count)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _check_run_dirs(run_dirs) -> None:
    for run_dir in run_dirs:
        if not (run_dir / "run.json").exists():
            raise UserError(f"{run_dir} is not a finished run directory (no run.json)")


def _ray_kwargs(ray_address: str | None) -> dict:
    return {"use_ray": ray_address is not None, "ray_address": None if ray_address in (None, "local") else ray_address}


def _check_robot(ctx, param, value: str) -> str:
    from graspsim.types import check_robot

    try:
        return check_robot(value)
    except ValueError as exc:
        raise UserError(str(exc)) from None


def _run_options(f):
    """The options bench and compare share: which scenes, how many workers, where, and how to render."""
    for decorator in reversed((
        click.option("--suite", default="shelf-test", show_default=True,
                     help="Suite name (see `graspsim list suites`)."),
        click.option("--episodes", default=100, show_default=True, type=click.IntRange(min=1),
                     help="Episodes to run: one attempt each, or one scene cleared each with --clear-scene."),
        click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
                     help="Index of the suite's first scene; scenes seed..seed+episodes-1 are used."),
        click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Worker processes."),
        click.option("--ray", "ray_address", default=None, is_flag=False, flag_value="local",
                     help="Run attempts as Ray tasks: --ray for a local cluster, --ray ADDRESS for an existing one."),
        click.option("--renderer", default="auto", show_default=True, type=click.Choice(["auto", "egl", "tiny"]),
                     help="auto: EGL when its plugin loads here, else TinyRenderer (images differ slightly)."),
        click.option("--width", default=640, show_default=True, type=click.IntRange(min=32),
                     help="Image width in pixels."),
        click.option("--height", default=480, show_default=True, type=click.IntRange(min=32),
                     help="Image height in pixels."),
        click.option("--robot", default=DEFAULT_ROBOT, show_default=True, callback=_check_robot,
                     help="Who executes the grasps: hand (the floating Franka hand, VGN-style) or panda "
                          "(the full arm on its mount, with IK, reach limits and arm collisions)."),
        click.option("--no-progress", is_flag=True, help="Hide the progress bar."),
        click.option("--clear-scene", is_flag=True,
                     help="Clear-the-scene mode (VGN's protocol): each episode clears one scene attempt by attempt, "
                          "one row per attempt, until no product is clearly visible, --max-attempts or "
                          "--max-failures consecutive failures."),
        click.option("--max-attempts", default=12, show_default=True, type=click.IntRange(min=1),
                     help="Clear-the-scene mode: most attempts per scene."),
        click.option("--max-failures", default=2, show_default=True, type=click.IntRange(min=1),
                     help="Clear-the-scene mode: a scene's round ends after this many failures in a row."),
    )):
        f = decorator(f)
    return f


def _clearing(clear_scene: bool, max_attempts: int, max_failures: int) -> dict:
    """The RunSpec fields of the clear-the-scene options (the defaults when the mode is off, so that a
    single-attempt run's settings do not depend on options it does not use)."""
    if not clear_scene:
        return {}
    return dict(clear_scene=True, max_attempts=max_attempts, max_consecutive_failures=max_failures)


def _check_policy(name: str) -> None:
    from graspsim.policies.registry import UnknownPolicyError, policy_target

    try:
        policy_target(name)
    except UnknownPolicyError as exc:
        raise UserError(str(exc)) from None


def _check_policy_args(policy: str, kwargs: dict, scene_kind: str | None = None) -> None:
    """Check --policy-arg values with the policy's config alone (no model loads, no torch), so a bad key, value
    or model path fails here in one line, before any worker starts; each worker then builds the policy once.
    With ``scene_kind``, warn (one line on stderr) when the policy's model was trained on other scene kinds."""
    from graspsim.learn.checkpoint import CheckpointError
    from graspsim.policies.config import PolicyArgError
    from graspsim.policies.registry import check_policy_args

    try:
        config = check_policy_args(policy, kwargs)
    except (PolicyArgError, FileNotFoundError, CheckpointError) as exc:  # the message names the file and what
        raise UserError(str(exc)) from None
    warning = None if scene_kind is None or isinstance(config, dict) else config.domain_warning(scene_kind)
    if warning:
        click.echo(f"warning: {warning}", err=True)


def _parse_policy_kwargs(items: tuple[str, ...]) -> dict:
    kwargs = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise UserError(f"--policy-arg expects KEY=VALUE, got {item!r}")
        try:
            kwargs[key] = json.loads(value)
        except json.JSONDecodeError:
            kwargs[key] = value
    return kwargs


@main.command()
@click.option("--policy", required=True, help="Policy name (see `graspsim list policies`).")
@_run_options
@click.option("--out", "out_dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Run directory [default: runs/POLICY-SUITE].")
@click.option("--resume", is_flag=True, help="Continue an interrupted run in --out.")
@click.option("--policy-arg", "policy_args", multiple=True, metavar="KEY=VALUE",
              help="Keyword argument for the policy (repeatable; VALUE parsed as JSON when it can be).")
@click.option("--clip", "clip_model", default=None, metavar="MODEL",
              help="clip_sam: CLIP model (weights name, Hugging Face id or local dir) instead of the shipped one.")
@click.option("--sam", "sam_model", default=None, metavar="MODEL",
              help="clip_sam: SAM model (weights name, Hugging Face id, local dir or official .pth).")
@click.option("--domain-rand", default="none", show_default=True, type=click.Choice(DR_LEVELS),
              help="Training suites only (validation): randomise every scene's look as `graspsim render "
                   "--domain-rand` does; labels = every product relabelled with a design no catalog variant has, "
                   "a stand-in for the unseen suites on training scenes. Recorded in run.json.")
def bench(policy, suite, episodes, seed, workers, out_dir, resume, renderer, width, height, policy_args,
          clip_model, sam_model, domain_rand, ray_address, robot, no_progress, clear_scene, max_attempts,
          max_failures):
    """Run POLICY on a suite and score pick success per product class."""
    from graspsim.bench.ray_backend import RayUnavailableError
    from graspsim.pool import WorkerDiedError
    from graspsim.runs import RecordsFileError, RunDirError
    from graspsim.bench.runner import RunSpec, run_bench
    from graspsim.bench.table import format_summary_table

    suite_obj = _check_suite(suite)
    _check_policy(policy)
    _scene_seeds(suite_obj, seed, episodes)
    policy_kwargs = _parse_policy_kwargs(policy_args)
    for option, key, value in (("--clip", "clip", clip_model), ("--sam", "sam", sam_model)):
        if value is not None:
            if policy != "clip_sam":
                raise UserError(f"{option} is an option of the clip_sam policy, not of {policy}")
            policy_kwargs[key] = value
    _check_policy_args(policy, policy_kwargs, suite_obj.kind)
    # Only a randomised run records the key, so plain runs keep their settings (and resume) as before.
    env_overrides = {} if domain_rand == "none" else {"domain_rand": domain_rand}
    try:
        spec = RunSpec(policy=policy, suite=suite, episodes=episodes, seed=seed, renderer=renderer, width=width,
                       height=height, policy_kwargs=policy_kwargs, robot=robot, env_overrides=env_overrides,
                       **_clearing(clear_scene, max_attempts, max_failures))
    except ValueError as exc:  # e.g. --domain-rand on an evaluation suite
        raise UserError(str(exc)) from None
    out_dir = out_dir or Path("runs") / f"{policy}-{suite}"
    try:
        summary = run_bench(spec, out_dir, workers=workers, resume=resume, progress=not no_progress,
                            **_ray_kwargs(ray_address))
    except (RunDirError, RecordsFileError, RayUnavailableError) as exc:
        raise UserError(str(exc)) from None
    except FileNotFoundError as exc:  # weights the cheap check could not rule out (e.g. a Hugging Face id online)
        raise UserError(str(exc)) from None
    except OSError as exc:  # e.g. an --out that cannot be created
        raise UserError(f"cannot write the run directory {out_dir}: {exc.strerror or exc}") from None
    except WorkerDiedError as exc:  # not the user's mistake (exit 1), but one line and resumable
        raise click.ClickException(str(exc)) from None
    click.echo(format_summary_table(summary))
    click.echo(f"results: {out_dir / 'results.jsonl'}\nsummary: {out_dir / 'summary.json'}")


def _policy_list(text: str, scene_kind: str | None = None) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise UserError("--policies needs at least one policy name, e.g. --policies oracle,heuristic,random")
    if len(set(names)) != len(names):
        raise UserError(f"--policies lists a policy twice: {text}")
    for name in names:
        _check_policy(name)
        _check_policy_args(name, {}, scene_kind)  # e.g. a missing shipped checkpoint, before the first run starts
    return names


@main.command()
@click.argument("run_dirs", nargs=-1, type=click.Path(file_okay=False, path_type=Path))
@click.option("--policies", default=None, help="Comma-separated policies to run on the same scenes.")
@_run_options
@click.option("--sweep", "sweep_text", default=None, metavar="PARAM=V1,V2,...",
              help="Robustness sweep: friction, mass_scale, lighting, camera_jitter or depth_noise.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Directory for the comparison (and, with --policies, one run directory per policy).")
@click.option("--resume", is_flag=True, help="Continue interrupted policy runs under --out.")
def compare(run_dirs, policies, suite, episodes, seed, workers, ray_address, sweep_text, out_dir, resume, renderer,
            width, height, robot, no_progress, clear_scene, max_attempts, max_failures):
    """Compare policies by pick rate on identical scenes (paired McNemar tests, plots, HTML report).

    Either run --policies on a suite, or compare finished RUN_DIRS (refused if
    their scene sets differ).
    """
    from graspsim.bench.compare import SceneSetMismatch
    from graspsim.bench.ray_backend import RayUnavailableError
    from graspsim.runs import RecordsFileError, RunDirError

    if bool(run_dirs) == bool(policies):
        raise UserError("give either finished RUN_DIRS or --policies to run, not both (nor neither)")
    try:
        if run_dirs:
            if sweep_text:
                raise UserError("--sweep runs policies: use it with --policies, not with RUN_DIRS")
            _compare_dirs(list(run_dirs), out_dir, workers)
            return
        suite_obj = _check_suite(suite)
        names = _policy_list(policies, suite_obj.kind)
        _scene_seeds(suite_obj, seed, episodes)
        settings = [(None, None)]
        if sweep_text:
            from graspsim.bench.sweeps import parse_sweep

            try:
                sweep = parse_sweep(sweep_text)
            except ValueError as exc:
                raise UserError(str(exc)) from None
            settings = [(sweep.name, value) for value in sweep.values]
        _run_comparison(names, suite, episodes, seed, workers, ray_address, settings, out_dir, resume, renderer,
                        width, height, not no_progress, robot, _clearing(clear_scene, max_attempts, max_failures))
    except (SceneSetMismatch, RunDirError, RecordsFileError, RayUnavailableError, ValueError) as exc:
        raise UserError(str(exc)) from None


def _compare_dirs(run_dirs: list[Path], out_dir: Path, workers: int = 1) -> dict:
    from graspsim.bench.compare import check_same_scenes, compare_runs, format_comparison_table, load_runs, write_comparison

    _check_run_dirs(run_dirs)
    runs = load_runs(run_dirs)
    check_same_scenes(runs)
    comparison = compare_runs(runs)
    write_comparison(out_dir, comparison, runs, workers=workers)  # the report's gallery replays in workers
    click.echo(format_comparison_table(comparison))
    click.echo(f"comparison: {out_dir / 'comparison.json'}\nreport: {out_dir / 'report.html'}")
    return comparison


def _run_comparison(names, suite, episodes, seed, workers, ray_address, settings, out_dir, resume, renderer, width,
                    height, progress, robot=DEFAULT_ROBOT, clearing=None):
    from graspsim.bench.runner import RunSpec, run_bench

    sweep_rows = []
    for name, value in settings:
        label = None
        run_dirs = []
        for policy in names:
            spec = RunSpec(policy=policy, suite=suite, episodes=episodes, seed=seed, renderer=renderer, width=width,
                           height=height, robot=robot, **(clearing or {}))
            if name is not None:
                from graspsim.bench.sweeps import apply_setting, setting_label

                spec = apply_setting(spec, name, value)
                label = setting_label(name, value)
            run_dir = out_dir / "runs" / (f"{label}" if label else "") / policy
            run_bench(spec, run_dir, workers=workers, resume=resume, progress=progress, **_ray_kwargs(ray_address))
            run_dirs.append(run_dir)
        comparison = _compare_dirs(run_dirs, out_dir / label if label else out_dir, workers)
        if label:
            sweep_rows.append((label, comparison))
    if sweep_rows:
        _write_sweep(out_dir, settings[0][0], sweep_rows)


def _write_sweep(out_dir: Path, parameter: str, sweep_rows) -> None:
    """sweep.json and a table: pick rate (95 % interval) per setting and policy."""
    from graspsim.fileio import atomic_write_json

    table = {label: {policy: {"success_rate": entry["success_rate"], "ci95": entry["ci95"]}
                     for policy, entry in comparison["policies"].items()}
             for label, comparison in sweep_rows}
    atomic_write_json(out_dir / "sweep.json", {"parameter": parameter, "settings": table})
    policies = list(next(iter(table.values())))
    click.echo(f"\nsweep over {parameter}: pick rate [95 % interval]")
    click.echo(f"{'setting':<22}" + "".join(f"{p:>24}" for p in policies))
    for label, row in table.items():
        cells = "".join(f"{100 * row[p]['success_rate']:>7.1f}% [{100 * row[p]['ci95'][0]:.0f}, "
                        f"{100 * row[p]['ci95'][1]:.0f}]".rjust(24) for p in policies)
        click.echo(f"{label:<22}{cells}")
    click.echo(f"sweep: {out_dir / 'sweep.json'}")


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False, path_type=Path))
@click.option("--out", "out_html", default=Path("report.html"), show_default=True,
              type=click.Path(dir_okay=False, path_type=Path), help="HTML file to write.")
@click.option("--plots-dir", default=None, type=click.Path(file_okay=False, path_type=Path),
              help="Keep the plot PNGs and comparison.json in this folder.")
@click.option("--gallery-per-class", default=1, show_default=True, type=click.IntRange(min=0),
              help="Successes and failures shown per class and policy (0: no gallery).")
@click.option("--max-gallery-classes", default=None, type=click.IntRange(min=0),
              help="Show only the first N classes (by name) in the gallery.")
@click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1),
              help="Worker processes replaying (and recording) the gallery's attempts.")
def report(run_dirs, out_html, plots_dir, gallery_per_class, max_gallery_classes, workers):
    """Write one self-contained HTML report (tables, plots, gallery) for finished runs of the same scenes."""
    from graspsim.bench.compare import SceneSetMismatch
    from graspsim.bench.report import report_from_run_dirs
    from graspsim.runs import RecordsFileError, RunDirError

    _check_run_dirs(run_dirs)
    try:
        path = report_from_run_dirs(list(run_dirs), out_html, plots_dir=plots_dir,
                                    gallery_per_class=gallery_per_class, max_gallery_classes=max_gallery_classes,
                                    workers=workers)
    except (SceneSetMismatch, RunDirError, RecordsFileError, ValueError) as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"cannot write the report {out_html}: {exc.strerror or exc}") from None
    click.echo(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)")


@main.command("list")
@click.argument("what", required=False, type=click.Choice(["policies", "suites", "classes"]))
def list_(what):
    """Show policies, suites and product classes."""
    from graspsim.assets.catalog import CATALOG
    from graspsim.scenes.suites import SUITES
    from graspsim.policies.registry import available_policies

    if what in (None, "policies"):
        click.echo("policies:")
        for name, target in available_policies().items():
            click.echo(f"  {name:<12} {target}")
    if what in (None, "suites"):
        click.echo("suites:")
        for s in SUITES.values():
            click.echo(f"  {s.name:<20} {s.kind:<9} {s.variant_split:<7} seeds {s.first_seed}..{s.first_seed + s.size - 1}"
                       f"  {s.description}")
    if what in (None, "classes"):
        from graspsim.assets.parts import part_names

        click.echo("classes:")
        for c in CATALOG:
            size = " x ".join(f"{v * 100:.1f}" for v in c.size_m)
            click.echo(f"  {c.index:>2} {c.name:<18} {c.family:<14} {size} cm  {c.mass_kg:.2f} kg  "
                       f"seen {list(c.variants_seen)} unseen {list(c.variants_unseen)}  "
                       f"parts {', '.join(part_names(c.name))}")


@main.command()
@click.option("--suite", default="shelf-test", show_default=True, help="Suite name (see `graspsim list suites`).")
@click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0), help="Scene index in the suite.")
@click.option("--policy", default="oracle", show_default=True, help="Policy whose grasp is drawn.")
@click.option("--out", "out_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="PNG file to write the image with the grasp drawn.")
@click.option("--execute/--no-execute", default=False, help="Also execute the grasp and print the outcome.")
@click.option("--renderer", default="auto", show_default=True, type=click.Choice(["auto", "egl", "tiny"]),
              help="auto: EGL when its plugin loads here, else TinyRenderer (images differ slightly).")
@click.option("--robot", default=DEFAULT_ROBOT, show_default=True, callback=_check_robot,
              help="Who executes the grasp with --execute (hand or panda); the arm is in the image with panda.")
@click.option("--video", "video_path", default=None, type=click.Path(dir_okay=False, path_type=Path),
              help="With --execute: also write the attempt, seen by the scene camera, as a video: .gif, .webp "
                   "(smaller, any current browser) or .mp4 (H.264 where OpenCV can encode it, else MPEG-4 "
                   "Part 2, which browsers do not play).")
@click.option("--fps", default=20, show_default=True, type=click.IntRange(1, 50),
              help="Video frames per second of simulated time; the video plays in real time.")
def show(suite, seed, policy, out_path, execute, renderer, robot, video_path, fps):
    """Render a scene with the policy's grasp drawn (blue jaw plates, red opening line)."""
    _check_video_option(video_path, execute)  # before the simulator loads: a mistake costs nothing
    from graspsim.envs.pick_env import PickEnv
    from graspsim.policies.base import PolicyError, as_observation, policy_rng
    from graspsim.policies.registry import make_policy
    from graspsim.viz import draw_grasp, save_png

    suite_obj = _check_suite(suite)
    _check_policy(policy)
    _check_policy_args(policy, {})
    (scene_seed,) = _scene_seeds(suite_obj, seed, 1)
    agent = make_policy(policy)
    env = PickEnv(kind=suite_obj.kind, variant_split=suite_obj.variant_split, renderer=renderer, robot=robot,
                  privileged=bool(getattr(agent, "needs_privileged", False)), task=suite_obj.task,
                  instruction_split=suite_obj.instruction_split,
                  render_mode=None if video_path is None else "rgb_array_list", render_fps=fps)
    try:
        obs, info = env.reset(seed=scene_seed)
        agent.reset(policy_rng(scene_seed))
        try:
            output = agent.act(as_observation(obs))
        except PolicyError as exc:
            raise UserError(f"policy {policy} found no grasp in scene {seed} of {suite}: {exc}") from None
        image = draw_grasp(obs["rgb"], output.rect)
        try:
            save_png(out_path, image)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot write {out_path}: {exc}") from None
        click.echo(f"{obs['instruction']!r}: grasp {output.rect.to_dict()} -> {out_path}")
        if execute:
            env.render()  # (rgb_array_list) drops the frame of the reset: the video starts with the grasp drawn
            _, _, _, _, step_info = env.step(output.rect.as_array())
            click.echo(f"outcome: success={step_info['success']} reason={step_info['reason']}")
            if video_path is not None:
                _write_attempt_video(video_path, env.render(), env.metadata["render_fps"])
    finally:
        env.close()


def _check_video_option(video_path: Path | None, execute: bool) -> None:
    from graspsim.video import VideoPathError, check_video_path

    if video_path is None:
        return
    if not execute:
        raise UserError("--video needs --execute: the video shows the executed attempt")
    try:
        check_video_path(video_path)
    except VideoPathError as exc:
        raise UserError(str(exc)) from None


def _write_attempt_video(path: Path, frames: list, fps: float) -> None:
    """The ``show --video`` file: the grasp drawn and the last frame each held 0.5 s, the motion in real time."""
    from graspsim.video import HOLD_S, hold_ends, write_video

    frames = hold_ends(frames, fps, HOLD_S)
    try:
        kind = write_video(path, frames, fps)
    except OSError as exc:
        raise UserError(f"cannot write {path}: {exc}") from None
    click.echo(f"video: {len(frames)} frames at {fps:g} fps ({kind}) -> {path}")


@click.group("train")
def train_group() -> None:
    """Train perception models on rendered data (see `graspsim render`)."""


@click.group("evaluate")
def evaluate_group() -> None:
    """Offline evaluation of perception models (no grasp execution)."""


def _register_commands() -> None:
    # Defined with the dataset, weights and model code; registered here so cli.py stays the one entry point.
    # Imported lazily inside each command: these modules only define click commands.
    from graspsim.data.cli_export import export_command
    from graspsim.data.cli_render import render_command
    from graspsim.data.cli_robot_views import render_robot_views_command
    from graspsim.policies.clip_sam.cli import (evaluate_masks_command, train_clip_command, train_sam_command,
                                              train_shape_command)
    from graspsim.policies.det_seg.cli import evaluate_grasps_command, train_det_seg_command, train_grconvnet_command
    from graspsim.policies.semgrasp.cli import evaluate_semgrasp_command, train_semgrasp_command
    from graspsim.policies.graspsam.cli import train_graspsam_command
    from graspsim.policies.robotseg.cli import evaluate_robot_masks_command, train_robotseg_command
    from graspsim.weights.cli_weights import weights_group

    train_group.add_command(train_clip_command)
    train_group.add_command(train_sam_command)
    train_group.add_command(train_shape_command)
    train_group.add_command(train_det_seg_command, "det_seg")
    train_group.add_command(train_grconvnet_command, "grconvnet")
    train_group.add_command(train_semgrasp_command, "semgrasp")
    train_group.add_command(train_graspsam_command, "graspsam")
    train_group.add_command(train_robotseg_command, "robotseg")
    evaluate_group.add_command(evaluate_masks_command)
    evaluate_group.add_command(evaluate_grasps_command, "grasps")
    evaluate_group.add_command(evaluate_semgrasp_command, "semgrasp")
    evaluate_group.add_command(evaluate_robot_masks_command, "robot-masks")
    main.add_command(render_command)
    main.add_command(render_robot_views_command)
    main.add_command(export_command)
    main.add_command(weights_group)
    main.add_command(train_group)
    main.add_command(evaluate_group)


_register_commands()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
