"""Regenerate docs/domain_rand.png: one shelf-train scene as `graspsim render --domain-rand` shows it.

Top left: the scene unrandomised (``--domain-rand none``); top middle and right: two ``light`` draws; bottom:
three ``full`` draws. Each panel is the same settled scene (same products, same poses) with another draw of
its look (:func:`graspsim.scenes.domain_rand.sample_appearance` with generators 0..5 of the figure, not the
dataset's per-scene generator), the Panda parked as in every rendered image.

Usage::

    python docs/make_domain_rand_figure.py [--out docs/domain_rand.png] [--seed 3] [--renderer auto]
"""

from __future__ import annotations

import argparse

import numpy as np

from graspsim.config import PhysicsConfig
from graspsim.scenes.domain_rand import DR_STREAM, domain_rand_spec, randomise_plan, sample_appearance
from graspsim.scenes.sampling import SceneOptions
from graspsim.sim.camera import render
from graspsim.sim.scene import add_robot, build_plan, build_settled_scene, settle
from graspsim.sim.world import SimWorld

PANELS = ("none", "light", "light", "full", "full", "full")


def panels(seed: int, renderer: str, width: int, height: int) -> list[np.ndarray]:
    physics = PhysicsConfig()
    world = SimWorld(physics, renderer)
    try:
        plan = build_settled_scene(world, "shelf", seed, "seen", SceneOptions(width=width, height=height),
                                   physics).plan
        images = []
        for k, level in enumerate(PANELS):
            look = sample_appearance(domain_rand_spec(level), plan, np.random.default_rng([DR_STREAM, 999, k]))
            scene = build_plan(world, randomise_plan(plan, look), physics, look if level != "none" else None)
            settle(world, scene, physics)
            add_robot(world, scene, "panda", physics)
            frames = render(world, scene.camera, scene.plan.lighting, scene.body_to_class, scene.robot_parts)
            images.append(frames.rgb if level == "none" else look.apply_to_image(frames.rgb, frames.instance_seg < 0))
        return images
    finally:
        world.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/domain_rand.png", help="Output PNG.")
    parser.add_argument("--seed", type=int, default=3, help="Scene seed of shelf-train.")
    parser.add_argument("--renderer", default="auto", help="auto, egl or tiny.")
    parser.add_argument("--width", type=int, default=300, help="Panel width in pixels.")
    parser.add_argument("--height", type=int, default=225, help="Panel height in pixels.")
    args = parser.parse_args()
    images = panels(args.seed, args.renderer, args.width, args.height)
    grid = np.concatenate([np.concatenate(images[:3], axis=1), np.concatenate(images[3:], axis=1)], axis=0)
    import cv2

    # Maximum PNG compression keeps the README figure under 300 KB.
    if not cv2.imwrite(args.out, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9]):
        raise OSError(f"could not write {args.out}")
    print(args.out)


if __name__ == "__main__":
    main()
