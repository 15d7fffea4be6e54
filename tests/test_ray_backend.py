"""The Ray backend: same rows as a serial run, one EpisodeRunner per actor, clean errors without ray."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from graspsim.bench.runner import RunSpec, iter_rows, run_bench

TIMING_KEYS = {"perception_ms", "simulation_ms", "total_ms", "build_ms", "render_ms"}


def _spec(policy: str) -> RunSpec:
    return RunSpec(policy=policy, suite="tabletop-test", episodes=4, renderer="tiny", width=160, height=120)


def _without_timing(row: dict) -> dict:
    row = {k: v for k, v in row.items() if k not in TIMING_KEYS}
    row.get("policy_info", {}).pop("elapsed_ms", None)
    return row


def _normalised(rows) -> dict[int, dict]:
    # Through JSON as results.jsonl stores them (tuples -> lists, NaN -> None).
    from graspsim.runs import dumps_record

    return {r["episode_id"]: _without_timing(json.loads(dumps_record(r))) for r in rows}


def test_missing_ray_gives_install_hint(monkeypatch):
    from graspsim.bench import ray_backend

    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` raise ImportError
    with pytest.raises(RuntimeError, match=r'pip install "graspsim\[ray\]"'):
        list(ray_backend.iter_rows_ray(_spec("random"), [(0, 0)], None, 1))


def test_graspsim_imports_without_ray():
    code = ("import sys; sys.modules['ray'] = None\n"
            "import graspsim, graspsim.bench.runner, graspsim.bench.ray_backend, graspsim.bench.sweeps\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


needs_ray = pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="ray is not installed")


@needs_ray
def test_run_bench_with_ray_records_backend_shuts_down_and_resumes_locally(tmp_path):
    import ray

    assert not ray.is_initialized()
    spec = _spec("random")
    run_bench(spec, tmp_path / "run", workers=2, use_ray=True, progress=False)
    assert not ray.is_initialized()  # it started Ray, so it shut it down
    config = json.loads((tmp_path / "run" / "run.json").read_text())
    assert config["backend"] == "ray" and config["ray_address"] == "local" and config["workers"] == 2
    # Resuming with another backend and worker count is allowed (nothing left to do here).
    summary = run_bench(spec, tmp_path / "run", workers=1, resume=True, progress=False)
    assert summary["episodes"] == 4
    assert json.loads((tmp_path / "run" / "run.json").read_text())["backend"] == "serial"


@pytest.fixture(scope="module")
def ray_session():
    import ray

    # One local Ray for the tests below (starting one costs seconds); iter_rows_ray uses it and leaves it up.
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield ray
    ray.shutdown()


@needs_ray
@pytest.mark.parametrize("policy", ["random", "oracle"])
def test_ray_rows_equal_serial_rows_and_each_actor_builds_once(ray_session, policy):
    from graspsim.bench.ray_backend import iter_rows_ray

    spec = _spec(policy)
    jobs = spec.jobs()
    serial = _normalised(iter_rows(spec, jobs, workers=1))
    stats: list[dict] = []
    distributed = _normalised(iter_rows_ray(spec, jobs, None, 2, actor_stats=stats))
    assert sorted(distributed) == sorted(serial) == [0, 1, 2, 3]
    for episode in serial:
        assert distributed[episode] == serial[episode]
    assert len(stats) == 2
    assert len({s["pid"] for s in stats}) == 2  # two actors, two processes
    assert all(s["runners_built"] == 1 for s in stats)  # built once per actor, not per attempt
    assert sum(s["attempts"] for s in stats) == 4
    assert ray_session.is_initialized()  # an outside session is left running

