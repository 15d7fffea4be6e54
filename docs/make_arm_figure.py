"""Regenerate docs/arm_placement.png: where the Panda stands, seen from the side and from the scene camera.

For one shelf-test and one tabletop-test scene: the oracle's grasp is planned for
the arm (graspsim.grasping.arm_motion), the arm is put at the grasp pose, and the
scene is rendered from an oblique viewpoint that shows the mount (left) and from
the scene camera with ``robot_seg`` overlaid (right: arm red, gripper green).

Usage::

    python docs/make_arm_figure.py [--out docs/arm_placement.png]
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np

import graspsim  # noqa: F401
from graspsim.envs.pick_env import PickEnv
from graspsim.geometry import look_at
from graspsim.grasping.arm_motion import ArmPlan, hand_motion, plan_arm_motion
from graspsim.policies.base import policy_rng
from graspsim.policies.registry import make_policy
from graspsim.sim.camera import render
from graspsim.sim.panda import GRIPPER_LINKS
from graspsim.viz import save_png

SCENES = (("shelf", 1_000_004, (1.45, -1.35, 1.55), (-0.2, 0.0, 0.75)),
          ("tabletop", 11_000_001, (1.3, -1.25, 1.6), (0.0, -0.2, 0.8)))


def panel(kind: str, seed: int, eye, target) -> np.ndarray:
    env = PickEnv(kind=kind, robot="panda", privileged=True, width=480, height=360)
    obs, info = env.reset(seed=seed)
    policy = make_policy("oracle")
    policy.reset(policy_rng(seed))
    rect = policy.act(obs).rect
    from graspsim.grasping.conversion import rect_to_command
    from graspsim.grasping.workspace import clear_supports

    scene, frames = env._scene, env._frames
    command = clear_supports(scene.kind, rect_to_command(rect, frames.depth_m, frames.camera, scene.approach_world,
                                                         env.physics.gripper), env.physics.gripper)
    plan = plan_arm_motion(scene.kind, hand_motion(scene.kind, command, env.physics))
    assert isinstance(plan, ArmPlan), plan
    arm = scene.arm
    arm.set_base(plan.T_world_base)
    arm.reset_joints(plan.approach[-1], command.opening_m / 2)
    side_camera = replace(frames.camera, T_world_camera=look_at(eye, target, (0.0, 0.0, 1.0)))
    side = render(env.world, side_camera, scene.plan.lighting).rgb
    view = render(env.world, frames.camera, scene.plan.lighting, scene.body_to_class, (arm.body, GRIPPER_LINKS))
    overlay = view.rgb.astype(np.float32)
    for label, colour in ((1, (255, 60, 60)), (2, (60, 220, 60))):
        overlay[view.robot_seg == label] = 0.4 * overlay[view.robot_seg == label] + 0.6 * np.array(colour)
    env.close()
    return np.concatenate([side, overlay.astype(np.uint8)], axis=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="docs/arm_placement.png")
    args = parser.parse_args()
    save_png(args.out, np.concatenate([panel(*scene) for scene in SCENES], axis=0))
    print(args.out)


if __name__ == "__main__":
    main()
