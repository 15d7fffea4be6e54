"""benchmarks/results_table.py: finished cells are reused (never rerun), missing ones say so, the table is right."""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def results_table():
    path = Path(__file__).resolve().parents[1] / "benchmarks" / "results_table.py"
    spec = importlib.util.spec_from_file_location("results_table", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_finished_cells_are_tabulated_and_missing_ones_say_not_run(tiny_runs, tmp_path, capsys, results_table):
    runs = tmp_path / "runs"
    oracle = runs / "panda" / "oracle-tabletop-test"
    shutil.copytree(tiny_runs["oracle"], oracle)
    summary = json.loads((oracle / "summary.json").read_text())
    before = (oracle / "results.jsonl").stat().st_mtime_ns
    # not --tabulate-only: the finished cell must be reused as it is (a rerun would rewrite results.jsonl)
    assert results_table.main(["--runs", str(runs), "--rows", "oracle", "--robots", "panda",
                               "--suites", "tabletop-test", "--episodes", "3"]) == 0
    assert (oracle / "results.jsonl").stat().st_mtime_ns == before
    low, high = summary["ci95"]
    expected = f"{round(100 * summary['success_rate'])} % [{round(100 * low)}, {round(100 * high)}]"
    table = capsys.readouterr().out
    assert f"| `oracle` | arm | {expected} |" in table
    out = tmp_path / "table.md"
    results_table.main(["--runs", str(runs), "--rows", "oracle,random", "--suites", "tabletop-test,shelf-test",
                        "--episodes", "3", "--tabulate-only", "--out", str(out)])
    lines = out.read_text().splitlines()
    assert f"| `oracle` | arm | {expected} | not run |" in lines
    assert "|  | hand | not run | not run |" in lines
    assert "| `random` | arm | not run | not run |" in lines
    assert any(line.startswith("| oracle tabletop-test | arm |") for line in lines)


def test_unknown_row_is_a_one_line_error(results_table, tmp_path):
    with pytest.raises(SystemExit, match="unknown row nope; choose from oracle,"):
        results_table.main(["--runs", str(tmp_path), "--rows", "nope", "--tabulate-only"])
