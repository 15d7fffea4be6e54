"""Comparing runs: exact McNemar, scene-set checks, comparison.json, text table and plots (tiny real runs)."""

from __future__ import annotations

import json
import shutil
from itertools import product
from pathlib import Path

import numpy as np
import pytest

from graspsim.bench.compare import (
    SceneSetMismatch,
    check_same_scenes,
    compare_runs,
    format_comparison_table,
    load_run,
    load_runs,
    write_comparison,
)
from graspsim.bench.plots import make_all_plots
from graspsim.bench.stats import mcnemar_exact

# ----------------------------------------------------------------------------- McNemar


@pytest.mark.parametrize(
    ("a_only", "b_only", "expected"),
    [(1, 9, 0.021484375), (9, 1, 0.021484375), (5, 5, 1.0), (0, 0, 1.0), (0, 6, 0.03125), (0, 1, 1.0),
     (3, 4, 1.0), (0, 10, 2 / 1024)],
)
def test_mcnemar_known_values(a_only, b_only, expected):
    assert mcnemar_exact(a_only, b_only) == pytest.approx(expected, rel=1e-12)


def test_mcnemar_matches_scipy_binomtest():
    stats = pytest.importorskip("scipy.stats")
    for b, c in product(range(0, 25, 3), range(0, 30, 4)):
        if b + c == 0:
            continue
        assert mcnemar_exact(b, c) == pytest.approx(stats.binomtest(b, b + c, 0.5).pvalue, rel=1e-9, abs=1e-15)


def test_mcnemar_large_counts_and_bad_input():
    assert 0.0 <= mcnemar_exact(0, 5000) < 1e-300  # exact integer arithmetic: no overflow, no NaN
    assert mcnemar_exact(2500, 2500) == 1.0
    for bad in ((-1, 2), (1.5, 2), (True, 2)):
        with pytest.raises(ValueError):
            mcnemar_exact(*bad)


# ----------------------------------------------------------------------------- tiny real runs

@pytest.fixture(scope="module")
def tiny(tiny_runs):
    return tiny_runs


def _copy_run(src: Path, dst: Path, edit_config=None) -> Path:
    shutil.copytree(src, dst)
    if edit_config is not None:
        config = json.loads((dst / "run.json").read_text())
        edit_config(config)
        (dst / "run.json").write_text(json.dumps(config))
    return dst


def _strict_json(path: Path):
    def no_constants(name):
        raise ValueError(f"non-strict JSON constant {name} in {path}")

    return json.loads(path.read_text(), parse_constant=no_constants)


# ----------------------------------------------------------------------------- comparison


def test_compare_tiny_runs(tiny):
    runs = load_runs([tiny["oracle"], tiny["random"]])
    assert [r.label for r in runs] == ["oracle", "random"]
    assert all([r["episode_id"] for r in run.rows] == [0, 1, 2] for run in runs)
    comparison = compare_runs(runs)

    assert comparison["labels"] == ["oracle", "random"]
    assert set(comparison["policies"]) == {"oracle", "random"}
    assert comparison["scene_set"] == {"suite": "tabletop-test", "episodes": 3, "first_seed": 11_000_000,
                                       "last_seed": 11_000_002, "renderer": "tiny", "width": 160, "height": 120}
    for run in runs:
        entry = comparison["policies"][run.label]
        assert entry["episodes"] == 3
        assert entry["successes"] == sum(r["success"] for r in run.rows)
        assert sum(c["attempts"] for c in entry["per_class"].values()) == 3
        low, high = entry["ci95"]
        assert 0 <= low <= entry["success_rate"] <= high <= 1
        assert entry["mean_perception_ms"] > 0
        assert sum(entry["failure_reasons"].values()) == 3 - entry["successes"]
        assert comparison["failure_reasons"][run.label] == entry["failure_reasons"]
    assert comparison["offline_metrics"] == {}

    (pair,) = comparison["mcnemar"]
    a = {r["scene_seed"]: r["success"] for r in runs[0].rows}
    b = {r["scene_seed"]: r["success"] for r in runs[1].rows}
    expected = {"a_only": sum(a[s] and not b[s] for s in a), "b_only": sum(b[s] and not a[s] for s in a),
                "both": sum(a[s] and b[s] for s in a), "neither": sum(not a[s] and not b[s] for s in a)}
    assert {k: pair[k] for k in expected} == expected
    assert (pair["a"], pair["b"], pair["paired"]) == ("oracle", "random", 3)
    assert 0.0 <= pair["p_value"] <= pair["p_value_holm"] <= 1.0
    assert pair["p_value"] == mcnemar_exact(expected["a_only"], expected["b_only"])

    text = format_comparison_table(comparison)
    for needle in ("oracle", "random", "McNemar", "TOTAL", "per-class", *comparison["classes"]):
        assert needle in text


def test_single_run_and_duplicate_policy_labels(tiny, tmp_path):
    single = compare_runs([load_run(tiny["oracle"])])
    assert single["mcnemar"] == [] and single["labels"] == ["oracle"]

    twin = _copy_run(tiny["oracle"], tmp_path / "oracle-variant")
    runs = load_runs([tiny["oracle"], twin])
    assert [r.label for r in runs] == ["oracle [oracle]", "oracle [oracle-variant]"]
    comparison = compare_runs(runs)
    assert comparison["mcnemar"][0]["a_only"] == comparison["mcnemar"][0]["b_only"] == 0
    assert comparison["mcnemar"][0]["p_value"] == 1.0
    with pytest.raises(ValueError, match="more than once"):
        load_runs([tiny["oracle"], tiny["oracle"]])


def test_refuses_different_seed_range(tiny):
    runs = load_runs([tiny["random"], tiny["random-seed3"]])
    with pytest.raises(SceneSetMismatch) as err:
        compare_runs(runs)
    message = str(err.value)
    assert "scene seeds differ" in message
    assert "first difference at position 0: 11000000 vs 11000003" in message
    assert str(tiny["random-seed3"]) in message


def test_refuses_different_suite(tiny):
    runs = load_runs([tiny["oracle"], tiny["random-shelf"]])
    with pytest.raises(SceneSetMismatch) as err:
        check_same_scenes(runs)
    assert f"{tiny['oracle']} has suite tabletop-test, {tiny['random-shelf']} has shelf-test" in str(err.value)


def test_refuses_different_physics_size_and_overrides(tiny, tmp_path):
    def edit(config):
        config["physics"]["product_lateral_friction"] = 0.3
        config["physics"]["gripper"]["max_opening_m"] = 0.1
        config["width"] = 320
        config["env_overrides"] = {"camera_jitter_m": 0.01}

    other = _copy_run(tiny["random"], tmp_path / "random-slippery", edit)
    with pytest.raises(SceneSetMismatch) as err:
        compare_runs(load_runs([tiny["oracle"], other]))
    message = str(err.value)
    assert "physics differs: gripper.max_opening_m 0.08 vs 0.1; product_lateral_friction 0.8 vs 0.3" in message
    assert "image size differs: 160x120 vs 320x120" in message
    assert "env_overrides differ: camera_jitter_m <absent> vs 0.01" in message
    assert "suite" not in message.split("\n", 1)[1]  # only what differs is named


def _check_png(path: Path) -> np.ndarray:
    import cv2

    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", path
    assert len(data) <= 150_000, (path, len(data))
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[0] > 200 and image.shape[1] > 300, path
    assert image.std() > 5, f"{path} is a flat image"
    return image


def test_write_comparison_json_and_plots(tiny, tmp_path):
    runs = load_runs([tiny["oracle"], tiny["random"]])
    comparison = compare_runs(runs)
    out = tmp_path / "cmp"
    paths = write_comparison(out, comparison, runs, gallery_per_class=0)

    stored = _strict_json(out / "comparison.json")
    for key in ("policies", "mcnemar", "failure_reasons", "scene_set", "offline_metrics", "plots", "labels"):
        assert key in stored, key
    for key in ("policy", "run_dir", "episodes", "successes", "success_rate", "ci95", "per_class",
                "mean_perception_ms", "failure_reasons"):
        assert key in stored["policies"]["oracle"], key
    for key in ("a", "b", "a_only", "b_only", "both", "neither", "p_value"):
        assert key in stored["mcnemar"][0], key
    assert stored["plots"]["offline_vs_pick"]["has_data"] is False  # no offline metrics for these policies
    assert all(stored["plots"][n]["has_data"] for n in ("per_class", "failure_reasons", "perception_vs_rate"))
    assert paths["report"].exists()
    for name in ("per_class", "failure_reasons", "perception_vs_rate", "offline_vs_pick"):
        assert paths[name].parent == out
        _check_png(paths[name])

    # Same comparison, same bytes: no timestamps in the PNGs.
    again = make_all_plots(json.loads(json.dumps(comparison)), tmp_path / "again")
    for name, path in again.items():
        assert path.read_bytes() == paths[name].read_bytes(), name


def test_offline_metrics_are_read_and_plotted(tiny, tmp_path):
    learned = _copy_run(tiny["random"], tmp_path / "learned")
    (learned / "offline_metrics.json").write_text(json.dumps({"grasp_accuracy": 0.42, "iou_threshold": 0.25}))
    runs = load_runs([tiny["oracle"], learned])
    comparison = compare_runs(runs)
    assert comparison["offline_metrics"] == {"random": {"grasp_accuracy": 0.42, "iou_threshold": 0.25}}
    assert "offline grasp acc" in format_comparison_table(comparison)
    paths = make_all_plots(comparison, tmp_path / "plots")
    assert comparison["plots"]["offline_vs_pick"]["has_data"] is True
    assert "oracle" in comparison["plots"]["offline_vs_pick"]["note"]
    _check_png(paths["offline_vs_pick"])

    (learned / "offline_metrics.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="offline_metrics.json must hold a JSON object"):
        load_run(learned)


# ----------------------------------------------------------------------------- part-aware runs


def _part_rows(outcomes):
    """Rows of a part-aware run: (class, part, success, reason, heldout_pair) per episode."""
    return [{"episode_id": i, "scene_seed": 21_000_000 + i, "target_class": cls, "target_part": part,
             "success": ok, "reason": reason, "phrasing_id": i % 9, "heldout_phrasing": i % 9 >= 6,
             "heldout_pair": held_out, "held_part": part if ok else None}
            for i, (cls, part, ok, reason, held_out) in enumerate(outcomes)]


def test_compare_shows_part_correct_rates_per_class_part():
    from graspsim.bench.compare import RunData
    from graspsim.bench.report import _parts_section
    from graspsim.bench.summary import summarize

    a = _part_rows([("ketchup_bottle", "cap", True, None, True), ("ketchup_bottle", "cap", False, "wrong_part", True),
                    ("soda_can", "body", True, None, False), ("soda_can", "body", False, "missed", False)])
    b = _part_rows([("ketchup_bottle", "cap", False, "wrong_part", True), ("ketchup_bottle", "cap", False, "missed", True),
                    ("soda_can", "body", True, None, False), ("soda_can", "body", True, None, False)])
    runs = [RunData(run_dir=Path(name), config={"policy": name, "suite": "shelf-parts-test"}, rows=rows, label=name,
                    summary=summarize(rows, {"policy": name})) for name, rows in (("a", a), ("b", b))]
    comparison = compare_runs(runs, check_scenes=False)
    assert comparison["class_parts"] == ["ketchup_bottle/cap", "soda_can/body"]
    parts_a, parts_b = comparison["policies"]["a"]["parts"], comparison["policies"]["b"]["parts"]
    assert (parts_a["part_correct"]["successes"], parts_a["class_held"]["successes"]) == (2, 3)
    assert (parts_b["part_correct"]["successes"], parts_b["class_held"]["successes"]) == (2, 3)
    assert (parts_a["heldout_pairs"]["successes"], parts_a["heldout_pairs"]["attempts"]) == (1, 2)
    assert parts_b["heldout_pairs"]["successes"] == 0
    text = format_comparison_table(comparison)
    assert "part-aware picks" in text
    cap_line = next(line for line in text.splitlines() if line.startswith("ketchup_bottle/cap"))
    assert cap_line.split()[1:] == ["1/2", "0/2"]
    held_line = next(line for line in text.splitlines() if line.startswith("held-out class-part pairs"))
    assert held_line.split()[-2:] == ["1/2", "0/2"]
    html = _parts_section(comparison)
    assert "Part-aware picks" in html and "soda_can/body" in html and "2/2 (100" in html
    # ordinary runs get no part block
    plain = [{**r, "target_part": None} for r in a]
    for r in plain:
        del r["target_part"]
    run = RunData(run_dir=Path("p"), config={"policy": "p"}, rows=plain, label="p", summary=summarize(plain, {}))
    ordinary = compare_runs([run], check_scenes=False)
    assert "class_parts" not in ordinary and "part-aware" not in format_comparison_table(ordinary)
    assert _parts_section(ordinary) == ""
