"""Wilson intervals, run summaries and the summary table (pure Python, fast)."""

from __future__ import annotations

import json
import math
import random

import numpy as np
import pytest

from graspsim.bench.stats import wilson_interval
from graspsim.bench.summary import summarize, write_summary
from graspsim.bench.table import format_summary_table

# ----------------------------------------------------------------------------- Wilson


@pytest.mark.parametrize(
    ("successes", "trials", "expected"),
    [
        (8, 10, (0.4902, 0.9433)),
        (0, 10, (0.0, 0.2775)),
        (10, 10, (0.7225, 1.0)),
        (50, 100, (0.4038, 0.5962)),
        (1, 1, (0.2065, 1.0)),
    ],
)
def test_wilson_known_values(successes, trials, expected):
    low, high = wilson_interval(successes, trials)
    assert low == pytest.approx(expected[0], abs=5e-5)
    assert high == pytest.approx(expected[1], abs=5e-5)


def _score_bound(s: int, n: int, z: float, upper: bool) -> float:
    """Independent check: the Wilson bound is where the score statistic |p_hat - p| / sqrt(p(1-p)/n) equals z."""
    p_hat = s / n

    def excess(p: float) -> float:
        return abs(p_hat - p) / math.sqrt(p * (1 - p) / n) - z

    lo, hi = (p_hat, 1 - 1e-15) if upper else (1e-15, p_hat)
    if (upper and s == n) or (not upper and s == 0):
        return 1.0 if upper else 0.0
    for _ in range(200):  # bisection; excess is monotone on each side of p_hat
        mid = (lo + hi) / 2
        inside = excess(mid) < 0
        if upper:
            lo, hi = (mid, hi) if inside else (lo, mid)
        else:
            lo, hi = (lo, mid) if inside else (mid, hi)
    return (lo + hi) / 2


@pytest.mark.parametrize("confidence", [0.8, 0.9, 0.95, 0.99])
def test_wilson_matches_score_test_inversion(confidence):
    z = {0.8: 1.2815515655446004, 0.9: 1.6448536269514722, 0.95: 1.959963984540054, 0.99: 2.5758293035489004}[
        confidence
    ]
    for s, n in [(0, 3), (1, 3), (3, 7), (12, 40), (39, 40), (40, 40), (250, 1000)]:
        low, high = wilson_interval(s, n, confidence)
        assert low == pytest.approx(_score_bound(s, n, z, upper=False), abs=1e-9)
        assert high == pytest.approx(_score_bound(s, n, z, upper=True), abs=1e-9)
        assert 0.0 <= low <= s / n <= high <= 1.0


def test_wilson_edge_cases():
    assert wilson_interval(0, 0) == (0.0, 1.0)
    assert wilson_interval(0, 5)[0] == 0.0
    assert wilson_interval(5, 5)[1] == 1.0
    # numpy integer counts are fine (they come out of np.sum on masks)
    assert wilson_interval(np.int64(8), np.int64(10)) == wilson_interval(8, 10)
    # wider confidence -> wider interval
    a, b = wilson_interval(8, 10, 0.9), wilson_interval(8, 10, 0.99)
    assert b[0] < a[0] and b[1] > a[1]


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((11, 10), "cannot exceed"),
        ((-1, 10), "non-negative"),
        ((1, -1), "non-negative"),
        ((1.5, 10), "integer"),
        ((True, 10), "integer"),
        ((1, 10, 1.0), "between 0 and 1"),
        ((1, 10, 0.0), "between 0 and 1"),
        ((1, 10, float("nan")), "between 0 and 1"),
        ((1, 10, 95), "between 0 and 1"),
        ((1, 10, "0.95"), "confidence"),
    ],
)
def test_wilson_rejects_bad_input(args, match):
    with pytest.raises(ValueError, match=match):
        wilson_interval(*args)


# ----------------------------------------------------------------------------- summary


def _row(eid, target, success, reason=None, **extra):
    row = {
        "episode_id": eid,
        "scene_seed": 1000 + eid,
        "suite": "shelf",
        "policy": "heuristic",
        "instruction": f"pick the {target}",
        "target_class": target,
        "picked_class": target if success else None,
        "success": success,
        "reason": reason,
        "rect": {"x": 1.0, "y": 2.0, "w": 30.0, "h": 10.0, "theta": 0.0},
        "gripper": {"opening_m": 0.05, "clamped": []},
        "perception_ms": 10.0,
        "simulation_ms": 100.0,
        "knocked_down": 0,
        "dropped": 0,
    }
    row.update(extra)
    return row


def _hand_rows():
    return [
        _row(0, "soda_can", True),
        _row(1, "soda_can", False, "missed", knocked_down=2),
        _row(2, "soda_can", True, perception_ms=30.0),
        _row(3, "cereal", False, "slipped", dropped=1),
        _row(4, "cereal", False, "missed", gripper={"opening_m": 0.08, "clamped": ["opening"]}),
        _row(5, "soda_can", True, simulation_ms=400.0),
        _row(6, "mustard", False, "wrong_object", knocked_down=1),
        _row(7, "cereal", True),
    ]


CONFIG = {"policy": "heuristic", "suite": "shelf", "seed": 3, "episodes": 8, "versions": {"graspsim": "0.0"}}


def test_summarize_counts_rates_and_reasons():
    s = summarize(_hand_rows(), CONFIG)
    assert s["policy"] == "heuristic" and s["suite"] == "shelf"
    assert s["episodes"] == 8 and s["successes"] == 4 and s["success_rate"] == 0.5
    assert s["ci95"] == pytest.approx(list(wilson_interval(4, 8)))
    assert list(s["per_class"]) == ["cereal", "mustard", "soda_can"]
    assert s["per_class"]["soda_can"] == {
        "attempts": 4,
        "successes": 3,
        "rate": 0.75,
        "ci95": list(wilson_interval(3, 4)),
    }
    assert s["per_class"]["cereal"]["attempts"] == 3 and s["per_class"]["cereal"]["successes"] == 1
    assert s["per_class"]["mustard"]["rate"] == 0.0
    assert s["failure_reasons"] == {"missed": 2, "slipped": 1, "wrong_object": 1}
    assert list(s["failure_reasons"]) == ["missed", "slipped", "wrong_object"]  # most frequent first
    assert s["knocked_down"] == 3 and s["dropped"] == 1 and s["clamped_attempts"] == 1
    t = s["timing"]
    assert t["mean_perception_ms"] == pytest.approx(12.5)
    assert t["mean_simulation_ms"] == pytest.approx(137.5)
    # no wall_s in the config: derived from per-row times (perception + simulation here)
    assert t["wall_s_source"] == "rows" and t["wall_s"] == pytest.approx(1.2)
    assert t["attempts_per_second"] == pytest.approx(8 / 1.2)
    assert s["config"] == CONFIG and s["versions"] == {"graspsim": "0.0"}
    json.dumps(s, allow_nan=False)  # strict JSON


def test_summarize_is_independent_of_row_order():
    rows = _hand_rows()
    expected = summarize(rows, CONFIG)
    rng = random.Random(0)
    for _ in range(5):
        shuffled = rows[:]
        rng.shuffle(shuffled)
        assert json.dumps(summarize(shuffled, CONFIG)) == json.dumps(expected)


def test_summarize_wall_time_and_total_ms():
    rows = [_row(i, "soda_can", True, total_ms=500.0) for i in range(4)]
    s = summarize(rows, {**CONFIG, "wall_s": 2.0})
    assert s["timing"]["wall_s_source"] == "run_config" and s["timing"]["attempts_per_second"] == 2.0
    s = summarize(rows, CONFIG)
    assert s["timing"]["wall_s"] == pytest.approx(2.0) and s["timing"]["mean_total_ms"] == 500.0


def test_summarize_tolerates_numpy_nan_and_missing_fields():
    rows = [
        _row(np.int64(1), "soda_can", np.bool_(True), perception_ms=np.float32(20.0)),
        _row(0, "soda_can", False, None, perception_ms=float("nan")),
        {"episode_id": 2, "success": False},
    ]
    s = summarize(rows, {"policy": "p", "suite": "s", "gain": np.float64(0.5), "bad": float("inf")})
    assert s["successes"] == 1 and s["episodes"] == 3
    assert s["per_class"]["unknown"]["attempts"] == 1
    assert s["failure_reasons"] == {"unknown": 2}
    assert s["timing"]["mean_perception_ms"] == 20.0  # NaN ignored
    assert s["config"]["bad"] is None
    json.dumps(s, allow_nan=False)


def test_summarize_empty_and_duplicates():
    s = summarize([], {})
    assert s["episodes"] == 0 and s["success_rate"] is None and s["ci95"] == [0.0, 1.0]
    assert s["timing"]["attempts_per_second"] is None
    with pytest.raises(ValueError, match="more than once"):
        summarize([_row(1, "a", True), _row(1, "a", False, "missed")], {})


def test_write_summary_and_table(tmp_path):
    s = summarize(_hand_rows(), {**CONFIG, "wall_s": 4.0})
    path = write_summary(tmp_path, s)
    assert json.loads(path.read_text()) == s
    assert not [p for p in tmp_path.iterdir() if p.name != "summary.json"]  # no temp files left

    text = format_summary_table(s)
    lines = text.splitlines()
    class_lines = [ln for ln in lines if ln.split()[:1] and ln.split()[0] in s["per_class"]]
    assert [ln.split()[0] for ln in class_lines] == ["cereal", "mustard", "soda_can"]
    assert class_lines[2].split()[1:4] == ["4", "3", "75.0%"]
    total = next(ln for ln in lines if ln.startswith("TOTAL"))
    assert total.split()[1:4] == ["8", "4", "50.0%"]
    # fixed-width: the class rows and TOTAL have their numeric columns aligned
    assert len({ln.index("%") for ln in [*class_lines, total]}) == 1
    assert lines.index(total) > lines.index(class_lines[-1])
    assert "missed" in text and "2.00 attempts/s" in text
    assert format_summary_table(summarize([], {}))  # renders with no attempts
