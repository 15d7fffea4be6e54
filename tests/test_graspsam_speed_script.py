"""benchmarks/graspsam_speed.py: its --variant parsing, and one interleaved run of two variants end to end."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "graspsam_speed.py"


def _module():
    spec = importlib.util.spec_from_file_location("graspsam_speed", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_parse_variant():
    parse = _module().parse_variant
    assert parse("") == {}
    assert parse("language_candidates=3,placement=peak") == {"language_candidates": 3, "placement": "peak"}
    assert parse("angle_search=0.5") == {"angle_search": 0.5}
    with pytest.raises(ValueError, match="expects KEY=VALUE"):
        parse("language_candidates")


def test_variants_timed_in_one_run(tmp_path):
    """Two variants on one rendered scene: a line each, the first's ratio 1, a bad key a one-line error."""
    from graspsim.cli import main
    from click.testing import CliRunner

    data = tmp_path / "data"
    res = CliRunner().invoke(main, ["render", "--suite", "shelf-test", "--scenes", "1", "--out", str(data),
                                    "--no-progress"])
    assert res.exit_code == 0, res.output
    cmd = [sys.executable, str(SCRIPT), "--data", str(data), "--prompts", "points:10", "--frames", "2",
           "--warmup", "0", "--threads", "1"]
    out = subprocess.run(cmd + ["--variant", "max_candidates=5", "--variant", "max_candidates=1"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [line["variant"] for line in lines] == [{"max_candidates": 5}, {"max_candidates": 1}]
    assert lines[0]["median_ratio"] == 1.0 and lines[1]["median_ratio"] > 0 and lines[1]["frames"] == 2
    bad = subprocess.run(cmd + ["--variant", "no_such_arg=1"], capture_output=True, text=True, timeout=300)
    assert bad.returncode != 0 and "no_such_arg" in bad.stderr and "Traceback" not in bad.stderr
