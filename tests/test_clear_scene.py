"""Clear-the-scene benchmarking: one row per attempt, resume by whole episodes, summary, compare's pairing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

import graspsim.bench.runner as runner_module
from graspsim.bench.compare import SceneSetMismatch, check_same_scenes, compare_runs, load_runs
from graspsim.bench.runner import RunSpec, run_bench
from graspsim.cli import main

TIMING_KEYS = {"perception_ms", "simulation_ms", "total_ms", "build_ms", "render_ms"}
TINY = dict(suite="tabletop-test", width=160, height=120, renderer="tiny")


def _rows(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line.strip()]


def _plain(row: dict) -> dict:
    row = {k: v for k, v in row.items() if k not in TIMING_KEYS}
    row["policy_info"] = {k: v for k, v in (row.get("policy_info") or {}).items() if not k.endswith("_ms")}
    return row


def _by_attempt(rows: list[dict]) -> dict[tuple[int, int], dict]:
    return {(r["episode_id"], r["attempt"]): _plain(r) for r in rows}


@pytest.fixture(scope="module")
def oracle_clearing(tmp_path_factory) -> Path:
    """The oracle clearing 2 tabletop-test scenes, at most 3 attempts each (uninterrupted reference)."""
    out = tmp_path_factory.mktemp("clear") / "oracle"
    run_bench(RunSpec(policy="oracle", episodes=2, clear_scene=True, max_attempts=3, **TINY), out, progress=False)
    return out


def test_rows_per_attempt_and_summary(oracle_clearing):
    rows = _rows(oracle_clearing)
    episodes: dict[int, list[dict]] = {}
    for r in rows:
        episodes.setdefault(r["episode_id"], []).append(r)
    assert sorted(episodes) == [0, 1]
    assert len({r["attempt_id"] for r in rows}) == len(rows)
    removed = 0
    for e, rs in episodes.items():
        rs.sort(key=lambda r: r["attempt"])
        assert [r["attempt"] for r in rs] == list(range(len(rs)))
        assert {r["episode_attempts"] for r in rs} == {len(rs)}
        assert len({r["scene_seed"] for r in rs}) == 1 and len({r["end_reason"] for r in rs}) == 1
        assert rs[0]["end_reason"] in ("cleared", "max_attempts", "consecutive_failures")
        assert len(rs) <= 3
        # every success takes its product out of the scene; a failure leaves the count as it was
        left = rs[0]["products_total"]
        for r in rs:
            left -= r["picked_class"] is not None
            assert r["products_left"] == left
        removed += rs[0]["products_total"] - rs[-1]["products_left"]
    config = json.loads((oracle_clearing / "run.json").read_text())
    assert (config["clear_scene"], config["max_attempts"], config["max_consecutive_failures"]) == (True, 3, 2)
    summary = json.loads((oracle_clearing / "summary.json").read_text())
    block = summary["clear_scene"]
    assert summary["episodes"] == len(rows)  # attempts
    assert block["scenes"] == 2 and block["incomplete_episodes"] == 0
    assert block["products_removed"] == removed
    expected = sum((rs[0]["products_total"] - rs[-1]["products_left"]) / rs[0]["products_total"]
                   for rs in episodes.values()) / 2
    assert block["clearance_rate"] == pytest.approx(expected)
    assert block["first_attempt"]["attempts"] == 2
    assert block["first_attempt"]["attempts"] + block["later_attempts"]["attempts"] == len(rows)


def test_single_attempt_run_json_has_no_clear_scene_keys(tmp_path):
    run_bench(RunSpec(policy="random", episodes=1, **TINY), tmp_path / "single", progress=False)
    config = json.loads((tmp_path / "single" / "run.json").read_text())
    assert not {"clear_scene", "max_attempts", "max_consecutive_failures"} & set(config)
    assert "clear_scene" not in json.loads((tmp_path / "single" / "summary.json").read_text())


class _Killed(Exception):
    pass


def test_kill_mid_episode_then_resume_gives_the_uninterrupted_rows(tmp_path, monkeypatch, oracle_clearing):
    """The run dies after episode 0's rows and the first row of episode 1 reached the file (a kill between two
    fsync'd rows); --resume must drop that half episode and run episode 1 again from its start."""
    reference = _rows(oracle_clearing)
    first_len = sum(r["episode_id"] == 0 for r in reference)
    assert sum(r["episode_id"] == 1 for r in reference) >= 2, "episode 1 needs two attempts to be cut in half"
    real_writer = runner_module.JsonlWriter

    class DyingWriter(real_writer):
        written = 0

        def append(self, record):
            if DyingWriter.written == first_len + 1:
                raise _Killed()
            super().append(record)
            DyingWriter.written += 1

    out = tmp_path / "killed"
    spec = RunSpec(policy="oracle", episodes=2, clear_scene=True, max_attempts=3, **TINY)
    monkeypatch.setattr(runner_module, "JsonlWriter", DyingWriter)
    with pytest.raises(_Killed):
        run_bench(spec, out, progress=False)
    monkeypatch.setattr(runner_module, "JsonlWriter", real_writer)
    half = _rows(out)
    assert len(half) == first_len + 1 and half[-1]["episode_id"] == 1
    summary = run_bench(spec, out, resume=True, progress=False)
    after = _rows(out)
    assert _by_attempt(after) == _by_attempt(reference)
    assert len(after) == len(reference)
    assert summary["clear_scene"]["scenes"] == 2 and summary["clear_scene"]["incomplete_episodes"] == 0


def test_compare_refuses_mixed_modes_and_pairs_first_attempts(tmp_path, oracle_clearing, tiny_runs):
    single = tiny_runs["oracle"]  # 3 tabletop-test scenes at 160x120, single attempts
    clearing3 = tmp_path / "oracle3"
    run_bench(RunSpec(policy="oracle", episodes=3, clear_scene=True, max_attempts=3, **TINY), clearing3,
              progress=False)
    with pytest.raises(SceneSetMismatch, match="clear-the-scene"):
        check_same_scenes(load_runs([single, clearing3]))
    result = CliRunner().invoke(main, ["compare", str(single), str(clearing3), "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 2 and "single-attempt" in result.output
    # another max_attempts is another protocol
    other = tmp_path / "oracle4"
    run_bench(RunSpec(policy="oracle", episodes=2, clear_scene=True, max_attempts=4, **TINY), other, progress=False)
    with pytest.raises(SceneSetMismatch, match="max 4 attempts"):
        check_same_scenes(load_runs([oracle_clearing, other]))

    rand = tmp_path / "random"
    run_bench(RunSpec(policy="random", episodes=2, clear_scene=True, max_attempts=3, **TINY), rand, progress=False)
    comparison = compare_runs(load_runs([oracle_clearing, rand]))
    first = comparison["mcnemar"][0]
    assert first["paired"] == 2  # one pair per scene: its first attempt
    a = {r["scene_seed"]: r["success"] for r in _rows(oracle_clearing) if r["attempt"] == 0}
    b = {r["scene_seed"]: r["success"] for r in _rows(rand) if r["attempt"] == 0}
    assert first["a_only"] == sum(a[s] and not b[s] for s in a) and first["b_only"] == sum(b[s] and not a[s] for s in a)
    assert comparison["mcnemar_cleared"][0]["paired"] == 2
    both = ({(r["scene_seed"], r["attempt"]) for r in _rows(oracle_clearing)}
            & {(r["scene_seed"], r["attempt"]) for r in _rows(rand)})
    assert comparison["paired_attempts"][0]["paired"] == len(both)
    assert comparison["scene_set"]["clear_scene"] is True and comparison["scene_set"]["episodes"] == 2


def test_cli_clear_scene_options(tmp_path):
    out = tmp_path / "cli"
    result = CliRunner().invoke(main, ["bench", "--policy", "random", "--suite", "tabletop-test", "--episodes", "1",
                                       "--width", "160", "--height", "120", "--renderer", "tiny", "--no-progress",
                                       "--clear-scene", "--max-attempts", "2", "--max-failures", "1",
                                       "--out", str(out)])
    assert result.exit_code == 0, result.output
    rows = _rows(out)
    assert 1 <= len(rows) <= 2 and all("attempt" in r for r in rows)
    config = json.loads((out / "run.json").read_text())
    assert (config["max_attempts"], config["max_consecutive_failures"]) == (2, 1)
    bad = CliRunner().invoke(main, ["bench", "--policy", "random", "--max-attempts", "0", "--clear-scene"])
    assert bad.exit_code == 2
