"""results.jsonl writing, reading, repair, resume, and a real SIGKILL (fast, uses tmp_path)."""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest

from graspsim.runs import (
    RESULTS_FILENAME,
    RUN_CONFIG_FILENAME,
    VOLATILE_KEYS,
    JsonlWriter,
    RecordsFileError,
    RecordsWarning,
    RunDirError,
    prepare_run_dir,
    read_results,
    read_config,
    repair_jsonl,
    scan_jsonl,
)
from graspsim.fileio import to_jsonable
from graspsim.types import FailureReason

REPO_ROOT = Path(__file__).resolve().parents[1]

CONFIG = {
    "policy": "heuristic",
    "suite": "shelf",
    "seed": 7,
    "episodes": 20,
    "env_kwargs": {"privileged": False, "image_size": [640, 480]},
    "physics": {"time_step_s": 1 / 240, "solver_iterations": 150},
    "workers": 4,
    "versions": {"graspsim": "0.1.0", "pybullet": "3.2.6"},
    "created": "2024-01-01T00:00:00Z",
}


def _write_rows(run_dir, ids):
    with JsonlWriter(run_dir / RESULTS_FILENAME) as w:
        for i in ids:
            w.append({"episode_id": i, "success": i % 2 == 0, "reason": None if i % 2 == 0 else "missed"})


# ----------------------------------------------------------------------------- to_jsonable


def test_to_jsonable_numpy_nan_enum():
    obj = {
        "i": np.int64(3),
        "f": np.float32(0.5),
        "b": np.bool_(True),
        "arr": np.array([[1.0, np.nan], [np.inf, -2.0]]),
        "nan": float("nan"),
        "ninf": -math.inf,
        "tuple": (1, np.uint8(2)),
        "reason": FailureReason.MISSED,
        "path": Path("/tmp/x"),
        np.int32(5): "numpy key",
        "set": {3, 1},
    }
    out = to_jsonable(obj)
    assert out == {
        "i": 3,
        "f": 0.5,
        "b": True,
        "arr": [[1.0, None], [None, -2.0]],
        "nan": None,
        "ninf": None,
        "tuple": [1, 2],
        "reason": "missed",
        "path": "/tmp/x",
        "5": "numpy key",
        "set": [1, 3],
    }
    assert type(out["i"]) is int and type(out["b"]) is bool
    json.dumps(out, allow_nan=False)
    with pytest.raises(TypeError, match=r"value\['bad'\]"):
        to_jsonable({"bad": object()})


# ----------------------------------------------------------------------------- writer / reader


def test_round_trip(tmp_path):
    rows = [
        {"episode_id": 2, "success": True, "rect": {"x": np.float64(1.5)}, "ms": np.float32(3.25), "q": "a\nb"},
        {"episode_id": np.int64(0), "success": np.bool_(False), "reason": FailureReason.SLIPPED, "v": np.nan},
    ]
    with JsonlWriter(tmp_path / RESULTS_FILENAME) as w:
        for r in rows:
            w.append(r)
    assert w.closed
    data = (tmp_path / RESULTS_FILENAME).read_text()
    assert data.count("\n") == 2 and data.endswith("\n")  # one line per row, the embedded \n is escaped
    back = read_results(tmp_path)
    assert back == [
        {"episode_id": 2, "success": True, "rect": {"x": 1.5}, "ms": 3.25, "q": "a\nb"},
        {"episode_id": 0, "success": False, "reason": "slipped", "v": None},
    ]
    assert {r["episode_id"] for r in read_results(tmp_path)} == {0, 2}
    # a second writer appends after the first
    _write_rows(tmp_path, [5])
    assert [r["episode_id"] for r in read_results(tmp_path)] == [2, 0, 5]


def test_writer_rejects_bad_rows(tmp_path):
    with JsonlWriter(tmp_path / RESULTS_FILENAME) as w:
        with pytest.raises(ValueError, match="episode_id"):
            w.append({"success": True})
        with pytest.raises(ValueError, match="episode_id"):
            w.append({"episode_id": "3"})
        with pytest.raises(TypeError):
            w.append({"episode_id": 1, "x": object()})
        w.append({"episode_id": 1})
        with pytest.raises(ValueError, match="already appended"):
            w.append({"episode_id": 1})
    with pytest.raises(ValueError, match="closed"):
        w.append({"episode_id": 2})
    # nothing but the one good row reached the file
    assert (tmp_path / RESULTS_FILENAME).read_text() == '{"episode_id":1}\n'


def test_missing_file_and_dir(tmp_path):
    assert read_results(tmp_path) == []
    assert repair_jsonl(tmp_path / RESULTS_FILENAME) == 0
    with pytest.raises(RunDirError, match="does not exist"):
        read_results(tmp_path / "nope")


def test_partial_last_line_ignored_then_repaired(tmp_path):
    _write_rows(tmp_path, range(3))
    path = tmp_path / RESULTS_FILENAME
    good_size = path.stat().st_size
    fragment = b'{"episode_id":3,"success":tr'
    with open(path, "ab") as f:
        f.write(fragment)

    with pytest.warns(RecordsWarning, match=f"partial last line \\({len(fragment)} bytes\\)"):
        rows = read_results(tmp_path)
    assert [r["episode_id"] for r in rows] == [0, 1, 2]
    scan = scan_jsonl(tmp_path / RESULTS_FILENAME)
    assert scan.trailing_bytes == len(fragment) and scan.valid_bytes == good_size
    assert path.stat().st_size == good_size + len(fragment)  # reading does not modify

    # appending now would glue a row onto the fragment: refused
    with pytest.raises(RecordsFileError, match="partial line"):
        JsonlWriter(tmp_path / RESULTS_FILENAME)

    assert repair_jsonl(tmp_path / RESULTS_FILENAME) == len(fragment)
    assert path.stat().st_size == good_size
    assert repair_jsonl(tmp_path / RESULTS_FILENAME) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert {r["episode_id"] for r in read_results(tmp_path)} == {0, 1, 2}
    _write_rows(tmp_path, [3])
    assert [r["episode_id"] for r in read_results(tmp_path)] == [0, 1, 2, 3]


def test_corrupt_complete_last_line_is_trailing_damage(tmp_path):
    # e.g. zero-filled block after a power loss, newline-terminated
    _write_rows(tmp_path, range(2))
    with open(tmp_path / RESULTS_FILENAME, "ab") as f:
        f.write(b"\x00\x00\x00\x00\n")
    with pytest.warns(RecordsWarning):
        assert len(read_results(tmp_path)) == 2
    assert repair_jsonl(tmp_path / RESULTS_FILENAME) == 5
    assert len(read_results(tmp_path)) == 2


def test_valid_last_row_without_newline_is_kept(tmp_path):
    path = tmp_path / RESULTS_FILENAME
    path.write_bytes(b'{"episode_id":0}\n{"episode_id":1}')
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert [r["episode_id"] for r in read_results(tmp_path)] == [0, 1]
    assert repair_jsonl(tmp_path / RESULTS_FILENAME) == 0
    assert path.read_bytes() == b'{"episode_id":0}\n{"episode_id":1}\n'


@pytest.mark.parametrize(
    "bad_line",
    [b'{"episode_id":1,"succ', b"[1, 2]", b'{"success":true}', b'{"episode_id":"1"}', b"\xff\xfe"],
)
def test_corrupt_middle_line_raises(tmp_path, bad_line):
    path = tmp_path / RESULTS_FILENAME
    path.write_bytes(b'{"episode_id":0}\n' + bad_line + b'\n{"episode_id":2}\n')
    with pytest.raises(RecordsFileError, match="line 2"):
        read_results(tmp_path)
    before = path.read_bytes()
    with pytest.raises(RecordsFileError):
        repair_jsonl(tmp_path / RESULTS_FILENAME)
    assert path.read_bytes() == before  # repair does not touch a file it cannot explain


def test_blank_lines_are_skipped(tmp_path):
    (tmp_path / RESULTS_FILENAME).write_bytes(b'{"episode_id":0}\n\n{"episode_id":1}\n\n')
    assert [r["episode_id"] for r in read_results(tmp_path)] == [0, 1]


def test_duplicate_ids_keep_first(tmp_path):
    (tmp_path / RESULTS_FILENAME).write_bytes(
        b'{"episode_id":0,"success":true}\n{"episode_id":1}\n{"episode_id":0,"success":false}\n'
    )
    with pytest.warns(RecordsWarning, match=r"more than once.*\[0\]"):
        rows = read_results(tmp_path)
    assert rows == [{"episode_id": 0, "success": True}, {"episode_id": 1}]


# ----------------------------------------------------------------------------- run directory


def test_new_run_writes_config(tmp_path):
    run_dir = tmp_path / "a" / "b"
    cfg = {**CONFIG, "physics": {"time_step_s": np.float64(1 / 240)}, "image_size": (640, 480)}
    assert prepare_run_dir(run_dir, cfg, resume=False) == set()
    stored = json.loads((run_dir / RUN_CONFIG_FILENAME).read_text())
    assert stored["physics"]["time_step_s"] == 1 / 240 and stored["image_size"] == [640, 480]
    assert read_config(run_dir / RUN_CONFIG_FILENAME) == stored
    assert sorted(p.name for p in run_dir.iterdir()) == [RUN_CONFIG_FILENAME]  # no temp files left
    # a fresh run over a directory without results is fine (nothing would be lost)
    assert prepare_run_dir(run_dir, {**CONFIG, "seed": 8}, resume=False) == set()
    assert read_config(run_dir / RUN_CONFIG_FILENAME)["seed"] == 8


def test_new_run_refuses_existing_results(tmp_path):
    prepare_run_dir(tmp_path, CONFIG, resume=False)
    _write_rows(tmp_path, [0])
    before = (tmp_path / RUN_CONFIG_FILENAME).read_bytes()
    with pytest.raises(RunDirError, match="already holds results of a run; pass --resume"):
        prepare_run_dir(tmp_path, CONFIG, resume=False)
    assert (tmp_path / RUN_CONFIG_FILENAME).read_bytes() == before


def test_resume_returns_completed_ids_and_repairs(tmp_path):
    prepare_run_dir(tmp_path, CONFIG, resume=False)
    _write_rows(tmp_path, [0, 3, 1])
    with open(tmp_path / RESULTS_FILENAME, "ab") as f:
        f.write(b'{"episode_id":2,"suc')
    cfg = {**CONFIG, "workers": 16, "resume": True, "created": "later", "wall_s": 12.0}
    with pytest.warns(RecordsWarning, match="removed a partial last line"):
        done = prepare_run_dir(tmp_path, cfg, resume=True)
    assert done == {0, 1, 3}
    assert (tmp_path / RESULTS_FILENAME).read_bytes().endswith(b"}\n")
    assert read_config(tmp_path / RUN_CONFIG_FILENAME)["workers"] == 16
    _write_rows(tmp_path, [2])  # the writer accepts the repaired file


def test_resume_accepts_only_volatile_differences(tmp_path):
    prepare_run_dir(tmp_path, CONFIG, resume=False)
    assert {"workers", "resume", "versions", "created"} <= VOLATILE_KEYS
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert prepare_run_dir(tmp_path, {**CONFIG, "workers": 1}, resume=True) == set()
    # tuples vs lists and numpy vs Python numbers are the same config after JSON
    same = {**CONFIG, "env_kwargs": {"privileged": np.bool_(False), "image_size": (640, 480)}}
    prepare_run_dir(tmp_path, same, resume=True)
    with pytest.warns(RecordsWarning, match="different versions"):
        prepare_run_dir(tmp_path, {**CONFIG, "versions": {"graspsim": "0.2.0"}}, resume=True)


def test_resume_refuses_different_config(tmp_path):
    prepare_run_dir(tmp_path, CONFIG, resume=False)
    _write_rows(tmp_path, [0])
    with pytest.raises(RunDirError, match=r"'seed'.*\n  seed: stored 7, requested 8"):
        prepare_run_dir(tmp_path, {**CONFIG, "seed": 8, "workers": 2}, resume=True)
    physics = {**CONFIG, "physics": {"time_step_s": 1 / 480, "solver_iterations": 150}}
    with pytest.raises(RunDirError, match="physics"):
        prepare_run_dir(tmp_path, physics, resume=True)
    extra = {**CONFIG, "noise": 0.1}
    with pytest.raises(RunDirError, match=r"noise: stored \"<absent>\", requested 0.1"):
        prepare_run_dir(tmp_path, extra, resume=True)
    assert read_config(tmp_path / RUN_CONFIG_FILENAME)["seed"] == 7  # refused resumes change nothing


def test_resume_needs_run_json(tmp_path):
    # --resume where no run was started starts one (a command line that can be pasted until the run is done)
    assert prepare_run_dir(tmp_path / "missing", CONFIG, resume=True) == set()
    assert read_config(tmp_path / "missing" / RUN_CONFIG_FILENAME)["policy"] == "heuristic"
    # results without their run.json: the settings are unknown, nothing can be resumed
    _write_rows(tmp_path, [0])
    with pytest.raises(RunDirError, match="run.json not found"):
        prepare_run_dir(tmp_path, CONFIG, resume=True)
    (tmp_path / RUN_CONFIG_FILENAME).write_text("{not json")
    with pytest.raises(RunDirError, match="not valid JSON"):
        prepare_run_dir(tmp_path, CONFIG, resume=True)


def test_resume_with_duplicates_keeps_first(tmp_path):
    prepare_run_dir(tmp_path, CONFIG, resume=False)
    _write_rows(tmp_path, [0, 1])
    _write_rows(tmp_path, [1])  # a second writer does not know about the first's ids
    with pytest.warns(RecordsWarning, match="more than once"):
        assert prepare_run_dir(tmp_path, CONFIG, resume=True) == {0, 1}


# ----------------------------------------------------------------------------- SIGKILL

_APPENDER = r"""
import sys
from pathlib import Path
from graspsim.runs import RESULTS_FILENAME, JsonlWriter
run_dir = Path(sys.argv[1])
with JsonlWriter(run_dir / RESULTS_FILENAME) as w:
    i = 0
    while True:
        # rows of varying, sometimes large size so a kill can land in the middle of a write
        w.append({"episode_id": i, "success": i % 3 == 0, "pad": "x" * ((i * 7919) % 20000)})
        if i == 0:
            print("ready", flush=True)
        i += 1
"""


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX SIGKILL")
def test_sigkill_leaves_a_recoverable_file(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO_ROOT), os.environ.get("PYTHONPATH", "")])}
    for attempt in range(3):
        run_dir = tmp_path / f"run{attempt}"
        run_dir.mkdir()
        proc = subprocess.Popen(
            [sys.executable, "-c", _APPENDER, str(run_dir)], stdout=subprocess.PIPE, env=env, cwd=REPO_ROOT
        )
        try:
            assert proc.stdout.readline().strip() == b"ready"
            time.sleep(0.3 + 0.1 * attempt)
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait(timeout=10)
            proc.stdout.close()
        assert proc.returncode == -signal.SIGKILL

        removed = repair_jsonl(run_dir / RESULTS_FILENAME)
        assert removed >= 0
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # after repair: no partial line, no duplicates
            rows = read_results(run_dir)
        ids = [r["episode_id"] for r in rows]
        assert ids == list(range(len(ids))) and len(ids) >= 1
        for r in rows:
            assert len(r["pad"]) == (r["episode_id"] * 7919) % 20000  # every row is whole
        # and the run can go on appending after the repair
        _write_rows(run_dir, [len(ids)])
        assert {r["episode_id"] for r in read_results(run_dir)} == set(range(len(ids) + 1))
