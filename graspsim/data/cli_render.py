"""``graspsim render``: the click command (registered in :mod:`graspsim.cli` by ``main.add_command``)."""

from __future__ import annotations

import json
from pathlib import Path

import click

from graspsim.clierror import UserError
from graspsim.scenes.domain_rand import LEVELS
from graspsim.types import DEFAULT_ROBOT



def dataset_options(command):
    """The options every dataset-rendering command takes (which scenes, where, how many workers, image size)."""
    options = [
        click.option("--suite", required=True, help="Suite name (see `graspsim list suites`)."),
        click.option("--scenes", required=True, type=click.IntRange(min=1), help="Number of scenes to render."),
        click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
                     help="Dataset directory (must be empty unless --resume)."),
        click.option("--seed", default=0, show_default=True, type=click.IntRange(min=0),
                     help="First scene index in the suite."),
        click.option("--workers", default=1, show_default=True, type=click.IntRange(min=1), help="Worker processes."),
        click.option("--resume", is_flag=True, help="Continue an interrupted dataset in --out."),
        click.option("--width", default=640, show_default=True, type=click.IntRange(min=32),
                     help="Image width in pixels."),
        click.option("--height", default=480, show_default=True, type=click.IntRange(min=32),
                     help="Image height in pixels."),
        click.option("--renderer", default="auto", show_default=True, type=click.Choice(["auto", "egl", "tiny"]),
                     help="auto: EGL when its plugin loads here, else TinyRenderer (images differ slightly)."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


@click.command("render")
@dataset_options
@click.option("--robot", default=DEFAULT_ROBOT, show_default=True,
              help="panda: the arm parked on its mount is in every image and robot_seg.png stores its mask; "
                   "hand: no robot in the images (the floating hand). Grasp labels are the same for both.")
@click.option("--no-grasps", is_flag=True,
              help="Skip grasp labels (images and masks only, ~5x faster): enough for training CLIP / SAM.")
@click.option("--grasps-per-product", default=None, type=click.IntRange(min=1),
              help="Candidate grasps validated per product (the planner's best N; those that hold are the labels) "
                   "[default: 6]. More give denser labels, as in Jacquard, at that many physics checks per product.")
@click.option("--domain-rand", default="none", show_default=True, type=click.Choice(LEVELS),
              help="Domain randomisation, training suites only: light = lighting, colour cast, camera pose, "
                   "furniture and background colours; full = all of it wider, and half the products relabelled "
                   "with new colours and label layouts (never an unseen variant's); layouts = light, and half the "
                   "products given new label layouts in their class's own colours; labels = every product "
                   "relabelled as in full, nothing else changed. Physics and grasp labels "
                   "stay those of the scene (rectangles follow the moved camera). Recorded in manifest.json.")
@click.option("--no-progress", is_flag=True, help="Hide the progress bar.")
def render_command(suite, scenes, out_dir, seed, workers, resume, width, height, renderer, robot, no_grasps,
                   grasps_per_product, domain_rand, no_progress):
    """Render a grasp dataset: RGB, depth, masks and physically validated grasp rectangles."""
    from graspsim.scenes.suites import UnknownSuiteError, get_suite
    from graspsim.data.labels import LabelConfig
    from graspsim.data.render import render_dataset
    from graspsim.scenes.domain_rand import check_domain_rand
    from graspsim.pool import WorkerDiedError
    from graspsim.runs import RunDirError
    from graspsim.sim.world import RendererError
    from graspsim.types import check_robot

    if no_grasps and grasps_per_product is not None:
        raise UserError("--grasps-per-product and --no-grasps contradict each other: give one of them")
    try:
        check_robot(robot)  # ValueError listing the robots
        suite_obj = get_suite(suite)
        suite_obj.scene_seeds(seed, scenes)
        check_domain_rand(suite_obj, domain_rand)  # DomainRandError (a ValueError) for an evaluation suite
    except UnknownSuiteError as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:
        raise UserError(str(exc).replace("--episodes", "--scenes")) from None
    try:
        summary = render_dataset(suite, scenes, out_dir, seed=seed, workers=workers, resume=resume, width=width,
                                 height=height, renderer=renderer, progress=not no_progress, robot=robot,
                                 labels=(LabelConfig(max_candidates=0) if no_grasps else
                                         LabelConfig(max_candidates=grasps_per_product) if grasps_per_product
                                         else None),
                                 domain_rand=domain_rand)
    except (RunDirError, RendererError) as exc:
        raise UserError(str(exc)) from None
    except WorkerDiedError as exc:  # not the user's mistake (exit 1), but one line and resumable
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in summary.items()}))
