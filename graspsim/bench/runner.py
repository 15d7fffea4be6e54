"""Run a policy on a suite: one row per attempt, resumable, 1 or K worker processes (or Ray actors).

Every attempt depends only on its scene seed: the world is reset and rebuilt
for each episode, and the policy gets a fresh generator seeded from the scene
seed. So rows are identical whether the attempts ran in one process or spread
over K (only the order of lines in ``results.jsonl`` differs). The parent
process is the only writer; each row is flushed and fsync'd as it arrives, so a
run killed at any moment resumes with ``--resume`` without losing or
duplicating attempts.

Backends: one process (``workers=1``), K local worker processes
(:func:`graspsim.pool.run_jobs`, one :class:`EpisodeRunner` per process), or K Ray
actors (``use_ray=True``, :mod:`graspsim.bench.ray_backend`). ``run.json``
records the backend and worker count, but a run may be resumed with another.
"""

from __future__ import annotations

import platform
import time
import traceback
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from graspsim.bench.summary import summarize, write_summary
from graspsim.config import PhysicsConfig
from graspsim.policies.base import as_observation, policy_rng
from graspsim.pool import run_jobs, torch_threads_per_worker
from graspsim.runs import RESULTS_FILENAME, JsonlWriter, prepare_run_dir, read_results
from graspsim.scenes.suites import Suite, get_suite
from graspsim.types import DEFAULT_ROBOT


@dataclass(frozen=True)
class RunSpec:
    """What defines a run's attempts (stored in run.json; a resume must match it)."""

    policy: str
    suite: str
    episodes: int
    seed: int = 0
    renderer: str = "auto"
    # "hand" (the floating hand) or "panda" (the arm): who executes the grasps (graspsim.envs.pick_env.ROBOTS).
    robot: str = DEFAULT_ROBOT
    width: int = 640
    height: int = 480
    policy_kwargs: dict[str, Any] = field(default_factory=dict)
    physics: dict[str, Any] = field(default_factory=lambda: PhysicsConfig().to_dict())
    # Extra PickEnv keyword arguments (e.g. camera_jitter_m, lighting_jitter): robustness sweeps set these.
    env_overrides: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "RunSpec":
        """The spec stored in a run directory's run.json (extra keys such as versions are ignored)."""
        names = {f.name for f in fields(cls)}
        # Runs from before the arm have no robot field: they used the floating hand.
        return cls(**{"robot": "hand", **{k: v for k, v in config.items() if k in names}})

    def suite_obj(self) -> Suite:
        return get_suite(self.suite)

    def jobs(self) -> list[tuple[int, int]]:
        """(episode_id, scene_seed) of every attempt."""
        return list(enumerate(self.suite_obj().scene_seeds(self.seed, self.episodes)))


def versions() -> dict[str, str]:
    import gymnasium
    from importlib.metadata import PackageNotFoundError, version

    import graspsim

    found = {"graspsim": graspsim.__version__, "python": platform.python_version(),
             "numpy": np.__version__, "gymnasium": gymnasium.__version__}
    for package in ("pybullet", "trimesh", "opencv-python-headless"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "unknown"
    return found


class EpisodeRunner:
    """One environment and one policy, built once per process and reused for every attempt.

    This is the only place ``bench`` builds a policy: the parent process checks
    ``spec.policy_kwargs`` with the policy's config alone (no weights load), and
    each worker process (or the parent itself with one worker) builds one runner.
    """

    #: How many runners this process has built (the Ray backend reports it to show
    #: that each worker builds its environment and models once, not per attempt).
    built_in_process = 0

    def __init__(self, spec: RunSpec):
        from graspsim.envs.pick_env import PickEnv
        from graspsim.policies.registry import make_policy

        EpisodeRunner.built_in_process += 1
        self.spec = spec
        self.last_perception_ms = 0.0
        self.suite = spec.suite_obj()
        self.policy = make_policy(spec.policy, **spec.policy_kwargs)
        self.env = PickEnv(kind=self.suite.kind, variant_split=self.suite.variant_split, width=spec.width,
                           height=spec.height, renderer=spec.renderer, robot=spec.robot, task=self.suite.task,
                           instruction_split=self.suite.instruction_split,
                           privileged=bool(getattr(self.policy, "needs_privileged", False)),
                           physics=PhysicsConfig.from_dict(spec.physics), **spec.env_overrides)

    def decide(self, scene_seed: int):
        """Reset scene ``scene_seed`` and ask the policy: ``(obs, info, output, error)``.

        ``output`` is the :class:`PolicyOutput` (None if the policy raised; then
        ``error`` holds the message). The same seed gives the same decision, so a
        report can replay any attempt of a run to show what the policy saw.
        """
        obs, info = self.env.reset(seed=scene_seed)
        self.policy.reset(policy_rng(scene_seed))
        t0 = time.perf_counter()
        try:
            return obs, info, self.policy.act(as_observation(obs)), None
        except Exception as exc:  # a policy failure is the policy's invalid action, not a crashed run
            return obs, info, None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        finally:
            self.last_perception_ms = (time.perf_counter() - t0) * 1000

    def run(self, episode_id: int, scene_seed: int) -> dict[str, Any]:
        from graspsim.sim.scene import SceneUnavailableError
        from graspsim.types import GraspRect

        t_start = time.perf_counter()
        row: dict[str, Any] = {"episode_id": episode_id, "scene_seed": scene_seed, "suite": self.suite.name,
                               "policy": self.spec.policy, "renderer": self.env.world.renderer_name,
                               "robot": self.spec.robot}
        try:
            obs, info, output, error = self.decide(scene_seed)
        except SceneUnavailableError as exc:
            row.update(skipped=True, error=str(exc), success=False, reason=None)
            return row
        perception_ms = self.last_perception_ms
        row.update(plan_attempt=info["plan_attempt"], instruction=obs["instruction"],
                   target_class=info["target_class_name"], build_ms=self.env.timings["build_ms"],
                   render_ms=self.env.timings["render_ms"])
        if "target_part" in info:  # the part-aware task (ordinary rows keep their keys)
            row.update({k: info[k] for k in ("target_part", "part_graspable", "phrasing_id", "heldout_pair",
                                             "heldout_phrasing")})
        if output is not None:
            action = output.rect.as_array()
            policy_info = dict(output.info)
        else:
            action = np.full(5, np.nan)
            message, _, trace = error.partition("\n")
            policy_info = {"policy_error": message, "policy_traceback": trace}
        _, reward, _, _, step_info = self.env.step(action)
        outcome = step_info["outcome"]
        row.update(
            picked_class=outcome["picked_class"], success=bool(step_info["success"]), reason=step_info["reason"],
            rect=step_info["rect"] if step_info["rect"] is not None else _rect_or_none(action, GraspRect),
            gripper=step_info["gripper"], knocked_down=outcome["knocked_down"], dropped=outcome["dropped"],
            perception_ms=perception_ms, simulation_ms=self.env.timings["sim_ms"], steps=outcome["steps"],
            policy_info=policy_info, outcome_details={k: v for k, v in outcome.items() if k not in
                                                      ("success", "reason", "picked_class", "knocked_down",
                                                       "dropped", "steps", "target_part", "held_part")},
        )
        if "target_part" in row:
            row["held_part"] = step_info["held_part"]  # the part both fingers held (None: nothing, or two parts)
        row["total_ms"] = (time.perf_counter() - t_start) * 1000
        return row

    def close(self) -> None:
        self.env.close()


def _rect_or_none(action, rect_type):
    values = np.asarray(action, dtype=np.float64).reshape(-1)
    return rect_type(*values).to_dict() if values.shape == (5,) else None


def backend_name(workers: int, use_ray: bool = False, ray_address: str | None = None) -> str:
    """``"ray"``, ``"processes"`` (K > 1 local workers) or ``"serial"`` (one process)."""
    if use_ray or ray_address:
        return "ray"
    return "processes" if workers > 1 else "serial"


def iter_rows(spec: RunSpec, jobs: list[tuple[int, int]], workers: int, ray_address: str | None = None,
              use_ray: bool = False) -> Iterator[dict[str, Any]]:
    """Run ``jobs`` and yield rows as they finish (in any order when ``workers > 1``).

    ``use_ray`` (or a ``ray_address``) runs them on ``workers`` Ray actors: a
    local Ray cluster when ``ray_address`` is None, else the cluster at that
    address (see :func:`graspsim.bench.ray_backend.iter_rows_ray`).
    """
    if backend_name(workers, use_ray, ray_address) == "ray":
        from graspsim.bench.ray_backend import iter_rows_ray

        yield from iter_rows_ray(spec, jobs, ray_address, max(1, workers))
        return
    yield from run_jobs(EpisodeRunner, (spec,), jobs, workers, label=lambda job: f"episode {job[0]} (scene seed {job[1]})")


def run_config_for(spec: RunSpec, workers: int, use_ray: bool = False,
                   ray_address: str | None = None) -> dict[str, Any]:
    """run.json's content: the spec plus how it was run (backend, workers: volatile on resume) and versions."""
    config = asdict(spec)
    config.update(workers=workers, backend=backend_name(workers, use_ray, ray_address), versions=versions(),
                  created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if config["backend"] == "ray":
        config["ray_address"] = ray_address or "local"
    return config


def run_bench(spec: RunSpec, out_dir: Path, workers: int = 1, resume: bool = False,
              progress: bool = True, use_ray: bool = False, ray_address: str | None = None) -> dict[str, Any]:
    """Run (or continue) a benchmark; returns the summary written to ``out_dir/summary.json``.

    ``workers``: local worker processes, or Ray actors with ``use_ray`` (a local
    Ray cluster unless ``ray_address`` names one).
    """
    out_dir = Path(out_dir)
    jobs = spec.jobs()
    config = run_config_for(spec, workers, use_ray, ray_address)
    done = prepare_run_dir(out_dir, config, resume)
    todo = [job for job in jobs if job[0] not in done]
    t0 = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="attempt", desc=spec.policy,
               dynamic_ncols=True, disable=not progress)
    with JsonlWriter(out_dir / RESULTS_FILENAME) as writer:
        for row in iter_rows(spec, todo, workers, ray_address=ray_address, use_ray=use_ray):
            writer.append(row)
            bar.update(1)
            bar.set_postfix(success=row.get("success"))
    bar.close()
    wall_s = time.perf_counter() - t0
    rows = [r for r in read_results(out_dir) if not r.get("skipped")]
    skipped = len(jobs) - len(rows)
    summary = summarize(rows, config)
    if todo:  # attempts/s of this session's attempts (a resumed run's earlier time is unknown)
        summary["timing"]["attempts_per_second"] = len(todo) / wall_s if wall_s > 0 else None
        summary["timing"]["wall_s"] = wall_s
        summary["timing"]["wall_s_source"] = "this session"
    summary["skipped_scenes"] = skipped
    # What a learned policy's torch ran with in each worker (None: one process, torch's default).
    summary["torch_threads_per_worker"] = None if use_ray else torch_threads_per_worker(workers)
    write_summary(out_dir, summary)
    return summary
