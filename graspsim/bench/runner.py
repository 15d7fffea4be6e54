"""Run a policy on a suite: one row per attempt, resumable, 1 or K worker processes (or Ray actors).

Every attempt depends only on its scene seed: the world is reset and rebuilt
for each episode, and the policy gets a fresh generator seeded from the scene
seed. So rows are identical whether the attempts ran in one process or spread
over K (only the order of lines in ``results.jsonl`` differs). The parent
process is the only writer; each row is flushed and fsync'd as it arrives, so a
run killed at any moment resumes with ``--resume`` without losing or
duplicating attempts.

Clear-the-scene mode (``RunSpec.clear_scene``, ``graspsim bench --clear-scene``; VGN's protocol): each
episode is one scene cleared attempt by attempt (a picked product is removed, the rest re-settle, the arm
returns to its parking place and stays in the images) until no product is clearly visible, ``max_attempts``
attempts were made or ``max_consecutive_failures`` attempts failed in a row. A job is then a whole episode and
returns one row per attempt (``attempt``, ``attempt_id`` = ``episode_id * max_attempts + attempt``, the
key of results.jsonl, and the episode's ``episode_attempts``, ``end_reason``, ``products_total``, and per
attempt ``products_left``). A resumed run counts only whole episodes: rows of an episode cut short by a
kill are dropped and the episode runs again (:func:`graspsim.runs.drop_records`).

Backends: one process (``workers=1``), K local worker processes
(:func:`graspsim.pool.run_jobs`, one :class:`EpisodeRunner` per process), or K Ray
actors (``use_ray=True``, :mod:`graspsim.bench.ray_backend`). ``run.json``
records the backend and worker count, but a run may be resumed with another.
"""

from __future__ import annotations

import platform
import time
import traceback
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from graspsim.bench.summary import summarize, write_summary
from graspsim.config import PhysicsConfig
from graspsim.policies.base import as_observation, policy_rng
from graspsim.pool import run_jobs, torch_threads_per_worker
from graspsim.runs import (BENCH_LAYOUT, RESULTS_FILENAME, JsonlWriter, RunLayout, drop_records, prepare_run_dir,
                           read_jsonl, read_results, results_key)
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
    # Clear-the-scene mode (module docstring); run.json records these three only when clear_scene is on, so
    # single-attempt runs keep their settings files (and resume) as before.
    clear_scene: bool = False
    max_attempts: int = 12
    max_consecutive_failures: int = 2

    def __post_init__(self) -> None:
        if self.max_attempts < 1 or self.max_consecutive_failures < 1:
            raise ValueError("max_attempts and max_consecutive_failures must be >= 1")
        if "domain_rand" in self.env_overrides:  # randomised looks are for training suites (validation) only
            from graspsim.scenes.domain_rand import check_domain_rand

            check_domain_rand(self.suite_obj(), self.env_overrides["domain_rand"])

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "RunSpec":
        """The spec stored in a run directory's run.json (extra keys such as versions are ignored)."""
        names = {f.name for f in fields(cls)}
        # Runs from before the arm have no robot field: they used the floating hand.
        return cls(**{"robot": "hand", **{k: v for k, v in config.items() if k in names}})

    def suite_obj(self) -> Suite:
        return get_suite(self.suite)

    def jobs(self) -> list[tuple[int, int]]:
        """(episode_id, scene_seed) of every episode (an attempt, or a clear-the-scene round)."""
        return list(enumerate(self.suite_obj().scene_seeds(self.seed, self.episodes)))

    def attempt_id(self, episode_id: int, attempt: int) -> int:
        """The results key of a clear-the-scene row (unique: ``attempt < max_attempts``)."""
        return int(episode_id) * self.max_attempts + int(attempt)


#: RunSpec fields only clear-the-scene runs record in run.json.
CLEAR_SCENE_KEYS = ("clear_scene", "max_attempts", "max_consecutive_failures")


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
        clearing = dict(clear_scene=True, max_attempts=spec.max_attempts,
                        max_consecutive_failures=spec.max_consecutive_failures) if spec.clear_scene else {}
        self.env = PickEnv(kind=self.suite.kind, variant_split=self.suite.variant_split, width=spec.width,
                           height=spec.height, renderer=spec.renderer, robot=spec.robot, task=self.suite.task,
                           instruction_split=self.suite.instruction_split,
                           privileged=bool(getattr(self.policy, "needs_privileged", False)),
                           physics=PhysicsConfig.from_dict(spec.physics), **clearing, **spec.env_overrides)

    def _act(self, obs: dict, rng: np.random.Generator):
        """``(output, error)`` of the policy on ``obs`` after ``reset(rng)``; ``last_perception_ms`` timed."""
        self.policy.reset(rng)
        t0 = time.perf_counter()
        try:
            return self.policy.act(as_observation(obs)), None
        except Exception as exc:  # a policy failure is the policy's invalid action, not a crashed run
            return None, f"{type(exc).__name__}: {exc}\n{traceback.format_exc(limit=3)}"
        finally:
            self.last_perception_ms = (time.perf_counter() - t0) * 1000

    def decide(self, scene_seed: int):
        """Reset scene ``scene_seed`` and ask the policy: ``(obs, info, output, error)``.

        ``output`` is the :class:`PolicyOutput` (None if the policy raised; then
        ``error`` holds the message). The same seed gives the same decision, so a
        report can replay any (first) attempt of a run to show what the policy saw.
        """
        obs, info = self.env.reset(seed=scene_seed)
        return (obs, info, *self._act(obs, policy_rng(scene_seed)))

    def _row_head(self, episode_id: int, scene_seed: int) -> dict[str, Any]:
        return {"episode_id": episode_id, "scene_seed": scene_seed, "suite": self.suite.name,
                "policy": self.spec.policy, "renderer": self.env.world.renderer_name, "robot": self.spec.robot}

    def run(self, episode_id: int, scene_seed: int) -> dict[str, Any] | list[dict[str, Any]]:
        """The row of one attempt on scene ``scene_seed``; in clear-the-scene mode the rows of the whole episode."""
        from graspsim.sim.scene import SceneUnavailableError

        if self.spec.clear_scene:
            return self.run_clearing(episode_id, scene_seed)
        t_start = time.perf_counter()
        row = self._row_head(episode_id, scene_seed)
        try:
            obs, info, output, error = self.decide(scene_seed)
        except SceneUnavailableError as exc:
            row.update(skipped=True, error=str(exc), success=False, reason=None)
            return row
        row["plan_attempt"] = info["plan_attempt"]
        self._attempt(row, obs, info, output, error, t_start)
        return row

    def run_clearing(self, episode_id: int, scene_seed: int) -> list[dict[str, Any]]:
        """The rows of one clear-the-scene episode on scene ``scene_seed`` (module docstring), in attempt order.

        Attempt ``k`` gets the policy generator ``policy_rng(scene_seed, k)``; its target is the one the
        observation it acts on names (the environment draws the next target after each attempt).
        """
        from graspsim.sim.scene import SceneUnavailableError

        t_start = time.perf_counter()
        head = self._row_head(episode_id, scene_seed)
        try:
            obs, info = self.env.reset(seed=scene_seed)
        except SceneUnavailableError as exc:
            head.update(skipped=True, error=str(exc), success=False, reason=None, attempt=0,
                        attempt_id=self.spec.attempt_id(episode_id, 0), episode_attempts=1)
            return [head]
        head["plan_attempt"] = info["plan_attempt"]
        products_total = self.env.products_left()
        rows: list[dict[str, Any]] = []
        while True:
            attempt = len(rows)
            output, error = self._act(obs, policy_rng(scene_seed, attempt))
            row = {**head, "attempt": attempt, "attempt_id": self.spec.attempt_id(episode_id, attempt)}
            obs, terminated, truncated, info = self._attempt(row, obs, info, output, error, t_start)
            row["products_left"] = self.env.products_left()
            rows.append(row)
            if terminated or truncated:
                break
            t_start = time.perf_counter()
        # Why the round ended: no product clearly visible any more, the attempt budget, or failures in a row.
        end = ("cleared" if info["target_class_name"] is None else "max_attempts" if truncated
               else "consecutive_failures")
        for row in rows:
            row.update(episode_attempts=len(rows), end_reason=end, products_total=products_total)
        return rows

    def _attempt(self, row: dict[str, Any], obs: dict, info: dict, output, error: str | None,
                 t_start: float) -> tuple[dict, bool, bool, dict]:
        """Execute the policy's decision on ``obs`` and fill ``row``; ``(next obs, terminated, truncated, info)``.

        ``info``: the environment's info that goes with ``obs`` (reset's, or the previous step's in
        clear-the-scene mode: its ``target_class_name`` names the target ``obs`` asks for).
        """
        from graspsim.types import GraspRect

        perception_ms = self.last_perception_ms
        row.update(instruction=obs["instruction"], target_class=info["target_class_name"],
                   build_ms=self.env.timings["build_ms"], render_ms=self.env.timings["render_ms"])
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
        next_obs, reward, terminated, truncated, step_info = self.env.step(action)
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
        return next_obs, terminated, truncated, step_info

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
    if not spec.clear_scene:
        for key in CLEAR_SCENE_KEYS:
            del config[key]
    config.update(workers=workers, backend=backend_name(workers, use_ray, ray_address), versions=versions(),
                  created=datetime.now(timezone.utc).isoformat(timespec="seconds"))
    if config["backend"] == "ray":
        config["ray_address"] = ray_address or "local"
    return config


def bench_layout(config: dict[str, Any]) -> RunLayout:
    """The run-directory layout of a benchmark with settings ``config``: rows keyed by ``episode_id``, or by
    ``attempt_id`` in clear-the-scene mode (several rows per episode)."""
    return replace(BENCH_LAYOUT, key=results_key(config))


def finished_episodes(out_dir: Path, layout: RunLayout) -> set[int]:
    """Episode ids whose rows are all in ``out_dir``'s results; in clear-the-scene mode the rows of episodes a
    kill cut short are removed from the file first (:func:`graspsim.runs.drop_records`), so that the episode runs
    again from its start and no half episode is ever counted."""
    path = out_dir / RESULTS_FILENAME
    if layout.key == "episode_id":
        return {row["episode_id"] for row in read_jsonl(path, layout.key)}
    rows = read_jsonl(path, layout.key)
    count: dict[int, int] = {}
    for row in rows:
        count[row["episode_id"]] = count.get(row["episode_id"], 0) + 1
    whole = {e for e in count if all(r.get("episode_attempts") == count[e] for r in rows if r["episode_id"] == e)}
    if len(whole) < len(count):
        drop_records(path, lambda row: row["episode_id"] in whole, layout.key)
    return whole


def run_bench(spec: RunSpec, out_dir: Path, workers: int = 1, resume: bool = False,
              progress: bool = True, use_ray: bool = False, ray_address: str | None = None) -> dict[str, Any]:
    """Run (or continue) a benchmark; returns the summary written to ``out_dir/summary.json``.

    ``workers``: local worker processes, or Ray actors with ``use_ray`` (a local
    Ray cluster unless ``ray_address`` names one).
    """
    out_dir = Path(out_dir)
    jobs = spec.jobs()
    config = run_config_for(spec, workers, use_ray, ray_address)
    layout = bench_layout(config)
    prepare_run_dir(out_dir, config, resume, layout)
    done = finished_episodes(out_dir, layout)
    todo = [job for job in jobs if job[0] not in done]
    t0 = time.perf_counter()
    from tqdm import tqdm

    bar = tqdm(total=len(jobs), initial=len(jobs) - len(todo), unit="attempt", desc=spec.policy,
               dynamic_ncols=True, disable=not progress)
    written = 0  # attempts (rows) of this session
    with JsonlWriter(out_dir / RESULTS_FILENAME, layout.key) as writer:
        for result in iter_rows(spec, todo, workers, ray_address=ray_address, use_ray=use_ray):
            episode_rows = result if isinstance(result, list) else [result]  # clear-the-scene: a whole episode
            for row in episode_rows:
                writer.append(row)
                written += 1
            bar.update(1)
            bar.set_postfix(success=episode_rows[-1].get("success"))
    bar.close()
    wall_s = time.perf_counter() - t0
    rows = [r for r in read_results(out_dir) if not r.get("skipped")]
    skipped = len(jobs) - len({r["episode_id"] for r in rows})
    summary = summarize(rows, config)
    if todo:  # attempts/s of this session's attempts (a resumed run's earlier time is unknown)
        summary["timing"]["attempts_per_second"] = written / wall_s if wall_s > 0 else None
        summary["timing"]["wall_s"] = wall_s
        summary["timing"]["wall_s_source"] = "this session"
    summary["skipped_scenes"] = skipped
    # What a learned policy's torch ran with in each worker (None: one process, torch's default).
    summary["torch_threads_per_worker"] = None if use_ray else torch_threads_per_worker(workers)
    write_summary(out_dir, summary)
    return summary
