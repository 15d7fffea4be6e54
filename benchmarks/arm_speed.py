"""Oracle attempts per second with the Panda arm and with the floating hand, on the same scenes, in one run.

Each scene is attempted by both robots back to back (which goes first alternates
from scene to scene), so machine load drifts hit both alike; an attempt is
``reset`` (build, settle, render) + the oracle's decision + ``step`` (the pick),
as in ``graspsim bench``. Before timing, each robot makes one untimed attempt on
the suite's last scene (outside the timed ones): the first attempt of a process
pays one-off costs (the simulator and its renderer starting, lazy imports,
product meshes read from the cache: 3-4 s, more for whichever robot happens to
go first), which would otherwise sit in the rates of a short run; a bench run
pays them once per worker. Prints JSON: attempts per second per robot, their
ratio (arm / hand), the pick rates, and the arm's time split into planning
(inverse kinematics of every waypoint) and the rest.

Usage::

    python benchmarks/arm_speed.py --suite shelf-test --episodes 20
"""

from __future__ import annotations

import argparse
import json
import time

import graspsim  # noqa: F401
from graspsim.envs.pick_env import PickEnv
from graspsim.grasping import arm_motion
from graspsim.policies.base import policy_rng
from graspsim.policies.registry import make_policy
from graspsim.scenes.suites import get_suite


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suite", default="shelf-test")
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    args = parser.parse_args()
    suite = get_suite(args.suite)
    envs = {robot: PickEnv(kind=suite.kind, variant_split=suite.variant_split, width=args.width,
                           height=args.height, privileged=True, robot=robot) for robot in ("hand", "panda")}
    policy = make_policy("oracle")
    planning = {"s": 0.0}
    plan = arm_motion.plan_arm_motion

    def timed_plan(*a, **k):
        t0 = time.perf_counter()
        try:
            return plan(*a, **k)
        finally:
            planning["s"] += time.perf_counter() - t0

    arm_motion.plan_arm_motion = timed_plan  # the simulator's and the oracle's planning, timed
    import graspsim.sim.execute as execute

    execute.plan_arm_motion = timed_plan
    if args.episodes < 1 or args.episodes >= suite.size:
        parser.error(f"--episodes must be 1..{suite.size - 1}: suite {args.suite} has {suite.size} scenes and the "
                     "last one warms up the robots")

    def attempt(robot: str, seed: int) -> float:
        env = envs[robot]
        obs, _ = env.reset(seed=seed)
        policy.reset(policy_rng(seed))
        _, reward, _, _, _ = env.step(policy.act(obs).rect.as_array())
        return reward

    for robot in envs:  # the one-off costs (module docstring), untimed
        attempt(robot, suite.scene_seeds(suite.size - 1, 1)[0])
    planning["s"] = 0.0
    seconds = {"hand": 0.0, "panda": 0.0}
    successes = {"hand": 0, "panda": 0}
    for i, seed in enumerate(suite.scene_seeds(0, args.episodes)):
        for robot in (("hand", "panda") if i % 2 == 0 else ("panda", "hand")):
            t0 = time.perf_counter()
            reward = attempt(robot, seed)
            seconds[robot] += time.perf_counter() - t0
            successes[robot] += int(reward)
    rate = {robot: args.episodes / s for robot, s in seconds.items()}
    print(json.dumps({
        "suite": args.suite, "episodes": args.episodes, "image": f"{args.width}x{args.height}",
        "attempts_per_second": {k: round(v, 3) for k, v in rate.items()},
        "arm_over_hand": round(rate["panda"] / rate["hand"], 3),
        "pick_rate": {k: v / args.episodes for k, v in successes.items()},
        "arm_planning_s_per_attempt": round(planning["s"] / args.episodes, 3),
        "arm_s_per_attempt": round(seconds["panda"] / args.episodes, 3),
    }, indent=2))
    for env in envs.values():
        env.close()


if __name__ == "__main__":
    main()
