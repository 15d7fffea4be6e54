"""Oracle attempts per second, the time split per stage, and the harness overhead over raw pybullet.

For each attempt the harness time is split into: scene build and settle, render,
perception (the oracle policy) and grasp execution. Then the same physics work
is replayed with bare pybullet calls in the same process - create the same
bodies, the same number of ``stepSimulation`` calls for settling, one
``getCameraImage``, load the robot (the hand, or the arm at its parking place)
and the same number of execution steps - and
the ratio harness / raw (harness time without the policy's perception time,
over the replay) shows what the harness's checks, motion control and
bookkeeping cost.

Usage::

    python benchmarks/oracle_speed.py --suite shelf-test --episodes 20 [--robot panda|hand]
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

import graspsim  # noqa: F401
from graspsim.policies.base import as_observation, policy_rng
from graspsim.scenes.suites import get_suite
from graspsim.envs.pick_env import PickEnv
from graspsim.policies.registry import make_policy
from graspsim.sim.bodies import spawn_floor, spawn_furniture, spawn_product
from graspsim.sim.camera import projection_matrix, view_matrix
from graspsim.sim.gripper import hand_urdf_path
from graspsim.sim.panda import panda_urdf_path
from graspsim.types import DEFAULT_ROBOT, ROBOTS


def raw_replay_s(env: PickEnv, settle_steps: int, exec_steps: int) -> float:
    """Seconds for the same bodies, steps and render with bare pybullet calls."""
    world, scene, physics = env.world, env._scene, env.physics
    c = world.client
    t0 = time.perf_counter()
    world.reset()
    spawn_floor(world, physics)
    spawn_furniture(world, scene.kind.furniture, physics)
    bodies = [spawn_product(world, p.class_name, p.variant, p.position_m, p.quat_xyzw, physics)
              for p in scene.plan.products]
    for _ in range(settle_steps):
        c.stepSimulation()
    for body in bodies:  # the harness lets settled products sleep; so does the replay
        c.changeDynamics(body, -1, activationState=c.ACTIVATION_STATE_SLEEP)
    cam = scene.camera
    c.getCameraImage(cam.width, cam.height, viewMatrix=view_matrix(cam), projectionMatrix=projection_matrix(cam),
                     renderer=world.renderer_flag)
    if env.robot == "panda":
        T = scene.kind.arm_mount.T_world_base_park()
        c.loadURDF(panda_urdf_path(), list(T[:3, 3]), useFixedBase=True,
                   flags=c.URDF_USE_SELF_COLLISION | c.URDF_USE_SELF_COLLISION_EXCLUDE_ALL_PARENTS)
    else:
        c.loadURDF(hand_urdf_path(physics), [0, -0.3, 1.0], useFixedBase=True)
    for _ in range(exec_steps):
        c.stepSimulation()
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="shelf-test")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--renderer", default="auto")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--robot", default=DEFAULT_ROBOT, choices=ROBOTS)
    parser.add_argument("--warmup", type=int, default=3,
                        help="untimed attempts first (asset cache, renderer start-up)")
    args = parser.parse_args()

    suite = get_suite(args.suite)
    policy = make_policy("oracle")
    env = PickEnv(kind=suite.kind, variant_split=suite.variant_split, renderer=args.renderer, privileged=True,
                  width=args.width, height=args.height, robot=args.robot)
    stages = {"build_and_settle": [], "render": [], "perception": [], "execution": [], "total": [], "raw": []}
    successes = 0
    for seed in suite.scene_seeds(args.episodes, args.warmup):  # scenes after the timed ones
        obs, info = env.reset(seed=seed)
        env.step(policy.act(as_observation(obs)).rect.as_array())
    for seed in suite.scene_seeds(0, args.episodes):
        t0 = time.perf_counter()
        obs, info = env.reset(seed=seed)
        policy.reset(policy_rng(seed))
        t1 = time.perf_counter()
        output = policy.act(as_observation(obs))
        t2 = time.perf_counter()
        _, reward, _, _, step_info = env.step(output.rect.as_array())
        t3 = time.perf_counter()
        successes += int(reward)
        stages["build_and_settle"].append(env.timings["build_ms"] / 1000)
        stages["render"].append(env.timings["render_ms"] / 1000)
        stages["perception"].append(t2 - t1)
        stages["execution"].append(t3 - t2)
        stages["total"].append(t3 - t0)
        stages["raw"].append(raw_replay_s(env, info["settle_steps"], step_info["outcome"]["steps"]))
    renderer = env.world.renderer_name
    env.close()
    mean = {k: float(np.mean(v)) for k, v in stages.items()}
    report = {
        "suite": args.suite, "robot": args.robot, "episodes": args.episodes, "renderer": renderer,
        "image": f"{args.width}x{args.height}", "oracle_success_rate": successes / args.episodes,
        "attempts_per_second": 1.0 / mean["total"],
        "mean_ms": {k: round(v * 1000, 1) for k, v in mean.items()},
        # The policy is not the harness: compare everything else with the bare pybullet replay.
        "harness_over_raw_ratio": round((mean["total"] - mean["perception"]) / mean["raw"], 3),
        "total_over_raw_ratio": round(mean["total"] / mean["raw"], 3),
    }
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
