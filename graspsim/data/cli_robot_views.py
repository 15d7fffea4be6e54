"""``graspsim render-robot-views``: the click command (registered in :mod:`graspsim.cli`).

A command of its own rather than a ``--robot-views`` flag of ``graspsim render``:
it writes another dataset format (:mod:`graspsim.data.robot_views_format`), takes
options that mean nothing for grasp datasets (``--embodiments``,
``--views-per-scene``, ``--min-robot-fraction``, ``--across-views``, ``--videos``), and ``render``'s ``--robot`` and
``--no-grasps`` mean nothing here; one flag that switched half the options off
would make both commands' help and errors harder to read.
"""

from __future__ import annotations

import json

import click

from graspsim.clierror import UserError
from graspsim.data.cli_render import dataset_options
from graspsim.data.robot_views import (DEFAULT_ACROSS_VIEWS, DEFAULT_MIN_ROBOT_FRACTION, DEFAULT_VIDEOS_PER_SCENE,
                                       DEFAULT_VIEWS_PER_SCENE)


@click.command("render-robot-views")
@dataset_options
@click.option("--embodiments", default="all", show_default=True,
              help="Comma-separated robots: panda, kuka_iiwa, xarm6, or seen (panda, kuka_iiwa) / unseen (xarm6) / "
                   "all.")
@click.option("--views-per-scene", default=DEFAULT_VIEWS_PER_SCENE, show_default=True,
              type=click.IntRange(min=1), help="Views per embodiment and scene (each: a robot pose, a camera pose).")
@click.option("--min-robot-fraction", default=DEFAULT_MIN_ROBOT_FRACTION, show_default=True,
              type=click.FloatRange(min=0.0, max=1.0, max_open=True),
              help="Skip (and record) views where the visible robot covers less of the image than this.")
@click.option("--across-views", default=DEFAULT_ACROSS_VIEWS, show_default=True,
              type=click.FloatRange(min=0.0, max=1.0),
              help="Share of views whose camera looks across the work area at the robot (beside the shelf, "
                   "below or above it; beyond or beside the table), placed so that boards and products hide part "
                   "of the robot; the others orbit the scene camera.")
# Read as text and checked in the command: a bad value is then a one-line error like every other here (click's
# own integer check would print the usage block above it).
@click.option("--videos", "videos_text", default=str(DEFAULT_VIDEOS_PER_SCENE), show_default=True, metavar="V",
              help="Videos per scene and robot, with arm / gripper masks per frame: the Panda executes the "
                   "oracle's grasp (16-32 frames), the KUKA and the xArm follow a planned motion to a grasp "
                   "(32 frames); 0: images only.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def render_robot_views_command(suite, scenes, out_dir, embodiments, views_per_scene, seed, workers, resume, width,
                               height, renderer, min_robot_fraction, across_views, videos_text, no_progress):
    """Render robot-segmentation data: robots reaching into the scenes, with arm / gripper masks."""
    from graspsim.data.robot_views import check_videos, render_robot_views
    from graspsim.pool import WorkerDiedError
    from graspsim.runs import RunDirError
    from graspsim.scenes.suites import UnknownSuiteError, get_suite
    from graspsim.sim.embodiments import parse_embodiments

    try:
        names = parse_embodiments(embodiments)  # ValueError listing the embodiments
        videos = check_videos(_whole_number(videos_text))
        get_suite(suite).scene_seeds(seed, scenes)
    except UnknownSuiteError as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:
        raise UserError(str(exc).replace("--episodes", "--scenes")) from None
    from graspsim.sim.world import RendererError  # after the checks: importing pybullet prints its banner

    try:
        summary = render_robot_views(suite, scenes, out_dir, names, views_per_scene=views_per_scene, seed=seed,
                                     workers=workers, resume=resume, width=width, height=height, renderer=renderer,
                                     progress=not no_progress, min_robot_fraction=min_robot_fraction,
                                     videos_per_scene=videos, across_views=across_views)
    except (RunDirError, RendererError) as exc:
        raise UserError(str(exc)) from None
    except WorkerDiedError as exc:  # not the user's mistake (exit 1), but one line and resumable
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(_rounded(summary)))


def _whole_number(text: str) -> int | str:
    """``text`` as an int when it is one (``check_videos`` words the error for anything else)."""
    try:
        return int(text.strip())
    except ValueError:
        return text


def _rounded(value):
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    return value
