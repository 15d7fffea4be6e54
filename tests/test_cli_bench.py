"""The user-facing CLI end to end on small suites: bench, resume after SIGKILL, workers, list, show, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from graspsim.cli import main

SMALL = ["--width", "320", "--height", "240", "--renderer", "tiny", "--no-progress"]
TIMING_KEYS = {"perception_ms", "simulation_ms", "total_ms", "build_ms", "render_ms"}


def _rows(run_dir: Path) -> dict[int, dict]:
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines() if line]
    by_id = {r["episode_id"]: r for r in rows}
    assert len(by_id) == len(rows), "duplicated episode ids"
    return by_id


def _without_timing(row: dict) -> dict:
    row = {k: v for k, v in row.items() if k not in TIMING_KEYS}
    row.get("policy_info", {}).pop("elapsed_ms", None)
    return row


def _cli(*args: str, env_extra: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "graspsim.cli", *args], capture_output=True, text=True,
                          env={**os.environ, **(env_extra or {})}, timeout=600)


def test_bench_on_relabelled_training_scenes_records_it_and_keeps_the_scenes(tmp_path):
    """--domain-rand labels (validation for unseen labels): run.json records it; the scenes, targets and the
    oracle's grasps (which read no pixels) are those of the plain run, a resume with another level is refused."""
    base = ["bench", "--policy", "oracle", "--suite", "tabletop-train", "--episodes", "2", "--robot", "hand", *SMALL]
    plain = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "plain")])
    relabelled = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "dr"), "--domain-rand", "labels"])
    assert plain.exit_code == 0 and relabelled.exit_code == 0, plain.output + relabelled.output
    config = json.loads((tmp_path / "dr" / "run.json").read_text())
    assert config["env_overrides"] == {"domain_rand": "labels"}
    assert json.loads((tmp_path / "plain" / "run.json").read_text())["env_overrides"] == {}
    a, b = _rows(tmp_path / "plain"), _rows(tmp_path / "dr")
    for key in ("scene_seed", "target_class", "rect", "success", "reason"):
        assert [a[i][key] for i in a] == [b[i][key] for i in b], key
    again = CliRunner().invoke(main, [*base, "--out", str(tmp_path / "dr"), "--resume"])
    assert again.exit_code == 2 and "env_overrides" in again.output, again.output


def test_bench_writes_rows_and_summary(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["bench", "--policy", "oracle", "--suite", "tabletop-test", "--episodes", "3",
                                       "--out", str(out), *SMALL])
    assert result.exit_code == 0, result.output
    assert "TOTAL" in result.output
    rows = _rows(out)
    assert sorted(rows) == [0, 1, 2]
    for row in rows.values():
        for key in ("episode_id", "scene_seed", "suite", "policy", "instruction", "target_class", "picked_class",
                    "success", "reason", "rect", "gripper", "perception_ms", "simulation_ms"):
            assert key in row, key
        assert row["success"] == (row["reason"] is None)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["episodes"] == 3
    assert summary["successes"] == sum(r["success"] for r in rows.values())
    assert sum(c["attempts"] for c in summary["per_class"].values()) == 3
    low, high = summary["ci95"]
    assert 0 <= low <= summary["success_rate"] <= high <= 1
    assert summary["config"]["physics"]["time_step_s"] > 0


@pytest.mark.parametrize("policy, robot", [("random", "hand"), ("oracle", "panda")])
def test_workers_give_identical_rows(tmp_path, policy, robot):
    args = ["bench", "--policy", policy, "--robot", robot, "--suite", "shelf-test", "--episodes", "4", *SMALL]
    one = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "w1"), "--workers", "1"])
    two = CliRunner().invoke(main, [*args, "--out", str(tmp_path / "w2"), "--workers", "2"])
    assert one.exit_code == 0 and two.exit_code == 0, one.output + two.output
    a, b = _rows(tmp_path / "w1"), _rows(tmp_path / "w2")
    assert sorted(a) == sorted(b) == [0, 1, 2, 3]
    for episode in a:
        assert _without_timing(a[episode]) == _without_timing(b[episode])


@pytest.mark.parametrize("robot", ["hand", "panda"])
def test_resume_after_sigkill_loses_and_duplicates_nothing(tmp_path, robot):
    out = tmp_path / "killed"
    args = ["bench", "--policy", "random", "--robot", robot, "--suite", "tabletop-test", "--episodes", "6", "--out",
            str(out), *SMALL]
    proc = subprocess.Popen([sys.executable, "-m", "graspsim.cli", *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    results = out / "results.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:
        if results.exists() and results.read_text().count("\n") >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _rows(out)
    assert 2 <= len(before) < 6
    again = _cli(*args)
    assert again.returncode == 2 and "--resume" in again.stderr  # refuses to overwrite
    resumed = _cli(*args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    after = _rows(out)
    assert sorted(after) == list(range(6))
    for episode, row in before.items():
        assert after[episode] == row  # finished attempts are kept as written
    fresh = tmp_path / "fresh"
    assert _cli(*args[:-len(SMALL) - 2], "--out", str(fresh), *SMALL).returncode == 0
    reference = _rows(fresh)
    for episode in range(6):
        assert _without_timing(after[episode]) == _without_timing(reference[episode])


def test_resume_refuses_a_different_run(tmp_path):
    out = tmp_path / "run"
    base = ["bench", "--policy", "random", "--suite", "tabletop-test", "--episodes", "1", "--out", str(out), *SMALL]
    assert CliRunner().invoke(main, base).exit_code == 0
    other = CliRunner().invoke(main, [*base, "--resume", "--seed", "3"])
    assert other.exit_code == 2
    assert "seed" in other.output


@pytest.mark.parametrize("args, message", [
    (["bench", "--policy", "nope"], "unknown policy 'nope'"),
    (["bench", "--policy", "oracle", "--suite", "moon"], "unknown suite 'moon'"),
    (["bench", "--policy", "oracle", "--episodes", "0"], "--episodes"),
    (["bench", "--policy", "oracle", "--seed", "99999999"], "does not fit"),
    (["bench", "--policy", "oracle", "--policy-arg", "novalue"], "KEY=VALUE"),
    (["bench", "--policy", "oracle", "--policy-arg", "foo=1"], "unknown --policy-arg 'foo' for policy oracle; valid keys:"),
    (["bench", "--policy", "oracle", "--policy-arg", "n_angles=0"], "bad --policy-arg n_angles=0 for policy oracle"),
    (["bench", "--policy", "oracle", "--width", "8"], "--width"),
    (["bench", "--policy", "oracle", "--suite", "shelf-unseen", "--domain-rand", "labels"],
     "--domain-rand labels is for training suites only; shelf-unseen is an evaluation suite"),
    (["bench", "--policy", "oracle", "--domain-rand", "max"], "'max' is not one of"),
    (["show", "--suite", "shelf-test", "--out", "/nonexistent-dir/x/scene.txt"], "scene.txt"),
])
def test_bad_input_gives_a_clear_message_without_traceback(args, message):
    result = _cli(*args)
    assert result.returncode != 0
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_list_and_show(tmp_path):
    listing = CliRunner().invoke(main, ["list"])
    assert listing.exit_code == 0
    for word in ("oracle", "heuristic", "random", "shelf-test", "tabletop-unseen", "soda_can", "snack_tube"):
        assert word in listing.output
    png = tmp_path / "scene.png"
    shown = CliRunner().invoke(main, ["show", "--suite", "shelf-test", "--seed", "0", "--out", str(png),
                                      "--renderer", "tiny"])
    assert shown.exit_code == 0, shown.output
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_every_option_of_every_command_has_a_description():
    import click

    from graspsim.cli import main

    missing = []

    def walk(command, path):
        if isinstance(command, click.Group):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
        missing.extend(f"{' '.join(path)} {p.opts[0]}" for p in command.params
                       if isinstance(p, click.Option) and not p.hidden and not p.help)

    walk(main, ["graspsim"])
    assert not missing, missing


def test_compare_refuses_runs_of_different_robots_and_bad_robot_is_one_line(tmp_path):
    runs = []
    for robot in ("hand", "panda"):
        out = tmp_path / robot
        result = CliRunner().invoke(main, ["bench", "--policy", "oracle", "--robot", robot, "--suite", "tabletop-test",
                                           "--episodes", "1", "--out", str(out), *SMALL])
        assert result.exit_code == 0, result.output
        assert _rows(out)[0]["robot"] == robot and json.loads((out / "run.json").read_text())["robot"] == robot
        runs.append(str(out))
    result = CliRunner().invoke(main, ["compare", *runs, "--out", str(tmp_path / "cmp")])
    assert result.exit_code == 2 and "robot differs" in result.output
    result = CliRunner().invoke(main, ["bench", "--policy", "oracle", "--robot", "ur5", "--episodes", "1"])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["Error: unknown robot 'ur5'; choose one of hand, panda"]
