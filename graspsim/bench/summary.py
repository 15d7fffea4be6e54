"""Aggregate a run's per-attempt rows into ``summary.json``.

Input rows are those of ``results.jsonl`` (see :mod:`graspsim.runs`),
with keys ``episode_id``, ``scene_seed``, ``suite``, ``policy``, ``instruction``,
``target_class``, ``picked_class``, ``success`` (bool), ``reason`` (str or None),
``rect`` (dict or None), ``gripper`` (dict or None, with a ``clamped`` list),
``perception_ms``, ``simulation_ms``, optionally ``total_ms``, ``knocked_down``,
``dropped``. Missing optional keys are tolerated so a summary can always be made.

summary.json format (strict JSON; "rate" values are fractions in [0, 1], null
when there are no attempts; intervals are 95 % Wilson score intervals
``[low, high]``)::

    {
      "policy": str | null, "suite": str | null,
      "episodes": int,                      # attempts with a row
      "successes": int, "success_rate": float | null, "ci95": [low, high],
      "per_class": {class: {"attempts", "successes", "rate", "ci95"}},  # sorted by class
      "failure_reasons": {reason: count},   # failed attempts only; most frequent first
      "knocked_down": int, "dropped": int,  # totals over all attempts
      "clamped_attempts": int,              # attempts whose gripper command was clamped
      "timing": {"mean_perception_ms", "mean_simulation_ms", "mean_total_ms",
                 "wall_s", "wall_s_source", "attempts_per_second"},
      "parts": {...},                       # only for part-aware runs (rows with target_part), see below
      "clear_scene": {...},                 # only for clear-the-scene runs, see below
      "config": {...},                      # the run configuration (run.json)
      "versions": {...} | null              # config["versions"]
    }

In a clear-the-scene run (``graspsim bench --clear-scene``, :mod:`graspsim.bench.runner`) the rows are attempts
(``episodes`` above counts attempts; ``success_rate`` is the pick rate per attempt) and the per-scene figures
come from the complete episodes (an episode cut short by a kill is not counted)::

    "clear_scene": {
      "scenes": int, "incomplete_episodes": int, "mean_attempts_per_scene": float | null,
      "first_attempt": {rate block},        # attempt 0 of each scene: the same start for every policy
      "later_attempts": {rate block},       # attempts 1, 2, ...
      "clearance_rate": float | null,       # mean over scenes of products removed / products in the scene
      "products_removed": int, "products_total": int,
      "cleared": {rate block},              # scenes whose round ended with no product clearly visible
      "end_reasons": {"cleared" | "max_attempts" | "consecutive_failures": count},
      "robot_in_view_after_first": {rate block} | null   # attempts > 0 whose robot mask (robot_mask=robotseg
                                                         # or oracle) had a pixel; null without a robot mask
    }

A part-aware run (rows with ``target_part``, ``phrasing_id``, ``heldout_pair``,
``heldout_phrasing``, ``held_part``; :mod:`graspsim.scenes.instructions`) adds,
each rate block being ``{"attempts", "successes", "rate", "ci95"}``::

    "parts": {
      "part_correct": {rate block},         # = success: the target class held by the named part
      "class_held": {rate block},           # the target class held, by any part (success or wrong_part)
      "per_class_part": {"class/part": {rate block}},   # sorted
      "heldout_pairs": {rate block}, "trained_pairs": {rate block},
      "heldout_phrasings": {rate block}, "trained_phrasings": {rate block}
    }
"""

from __future__ import annotations

import math
import numbers
from collections import Counter
from pathlib import Path
from typing import Any, Mapping

from graspsim.fileio import atomic_write_json, to_jsonable
from graspsim.bench.stats import wilson_interval

SUMMARY_FILENAME = "summary.json"

#: Label used for rows that lack a target class / a failure reason.
UNKNOWN = "unknown"


def _finite_number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _count(value: Any) -> int:
    number = _finite_number(value)
    return int(number) if number is not None else 0


def _rate(successes: int, attempts: int) -> float | None:
    return successes / attempts if attempts else None


def _common_value(rows: list[Mapping[str, Any]], key: str) -> Any:
    # Fallback when the run config lacks policy/suite: use the rows' value if they agree.
    values = {row.get(key) for row in rows if isinstance(row.get(key), str)}
    return values.pop() if len(values) == 1 else None


def _row_total_ms(row: Mapping[str, Any]) -> float | None:
    total = _finite_number(row.get("total_ms"))
    if total is not None:
        return total
    parts = [p for p in (_finite_number(row.get("perception_ms")), _finite_number(row.get("simulation_ms")))
             if p is not None]
    return sum(parts) if parts else None


def row_order(row: Mapping[str, Any]) -> tuple[int, int]:
    """``(episode_id, attempt)``: rows sort by episode, then by attempt (0 for single-attempt rows)."""
    return int(row["episode_id"]), int(row.get("attempt", 0))


def _ordered_rows(rows: list[dict]) -> list[dict]:
    """``rows`` as a JSON round trip would give them, sorted by :func:`row_order`; ValueError on a duplicated
    (episode, attempt)."""
    # Rows built in memory may hold numpy values (np.bool_ success, np.int64 ids).
    ordered = sorted((to_jsonable(r) for r in rows), key=row_order)
    ids = [row_order(r) for r in ordered]
    dupes = sorted({a for a, b in zip(ids, ids[1:]) if a == b})
    if dupes:
        what = "episode ids" if all(r.get("attempt") is None for r in ordered) else "(episode, attempt) pairs"
        shown = [d[0] for d in dupes] if what == "episode ids" else dupes
        raise ValueError(f"{what} appear more than once in the rows: {shown[:20]}")
    return ordered


def _clear_scene(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``clear_scene`` block of a clear-the-scene run (module docstring) over its complete episodes."""
    episodes: dict[int, list[Mapping[str, Any]]] = {}
    for r in rows:
        episodes.setdefault(int(r["episode_id"]), []).append(r)
    whole = {e: rs for e, rs in episodes.items() if len(rs) == rs[0].get("episode_attempts")}
    clearance = [(rs[0]["products_total"] - rs[-1]["products_left"]) / rs[0]["products_total"]
                 for rs in whole.values() if rs[0].get("products_total")]
    first = [r for r in rows if r.get("attempt", 0) == 0]
    later = [r for r in rows if r.get("attempt", 0) > 0]
    masked = [r for r in later if _finite_number((r.get("policy_info") or {}).get("robot_mask_px")) is not None]
    cleared = sum(rs[0].get("end_reason") == "cleared" for rs in whole.values())
    return {
        "scenes": len(whole),
        "incomplete_episodes": len(episodes) - len(whole),
        "mean_attempts_per_scene": _mean([float(len(rs)) for rs in whole.values()]),
        "first_attempt": _rate_block(len(first), sum(r.get("success") is True for r in first)),
        "later_attempts": _rate_block(len(later), sum(r.get("success") is True for r in later)),
        "clearance_rate": _mean(clearance),
        "products_removed": sum(rs[0]["products_total"] - rs[-1]["products_left"] for rs in whole.values()),
        "products_total": sum(rs[0].get("products_total") or 0 for rs in whole.values()),
        "cleared": _rate_block(len(whole), cleared),
        "end_reasons": dict(sorted(Counter(rs[0].get("end_reason") or UNKNOWN for rs in whole.values()).items())),
        "robot_in_view_after_first": _rate_block(len(masked), sum(
            (r["policy_info"]["robot_mask_px"] or 0) > 0 for r in masked)) if masked else None,
    }


def _rate_block(attempts: int, successes: int) -> dict[str, Any]:
    return {"attempts": attempts, "successes": successes, "rate": _rate(successes, attempts),
            "ci95": list(wilson_interval(successes, attempts))}


def _name(value: Any) -> str:
    return value if isinstance(value, str) and value else UNKNOWN


def _rates_by(rows: list[Mapping[str, Any]], key) -> dict[str, dict]:
    """A rate block (attempts, successes, rate, 95 % interval) per ``key(row)``, sorted by key."""
    counts: dict[str, list[int]] = {}
    for r in rows:
        c = counts.setdefault(key(r), [0, 0])
        c[0] += 1
        c[1] += int(r.get("success") is True)
    return {name: _rate_block(n, s) for name, (n, s) in sorted(counts.items())}


def _per_class(rows: list[Mapping[str, Any]]) -> dict[str, dict]:
    """Attempts, successes, rate and 95 % interval per target class (``UNKNOWN`` if missing), sorted by class."""
    return _rates_by(rows, lambda r: _name(r.get("target_class")))


def _parts(rows: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``parts`` block of a part-aware run (module docstring) over its rows with a ``target_part``."""
    rows = [r for r in rows if "target_part" in r]
    wins = sum(r.get("success") is True for r in rows)
    held = sum(r.get("success") is True or r.get("reason") == "wrong_part" for r in rows)
    split = {}
    for kind in ("pair", "phrasing"):
        for name, held_out in (("heldout", True), ("trained", False)):
            group = [r for r in rows if bool(r.get(f"heldout_{kind}")) == held_out]
            split[f"{name}_{kind}s"] = _rate_block(len(group), sum(r.get("success") is True for r in group))
    return {"part_correct": _rate_block(len(rows), wins), "class_held": _rate_block(len(rows), held),
            "per_class_part": _rates_by(rows, lambda r: f"{_name(r.get('target_class'))}/{_name(r.get('target_part'))}"),
            **split}


def _failure_reasons(rows: list[Mapping[str, Any]]) -> dict[str, int]:
    """Count of each failed attempt's reason (``UNKNOWN`` if missing); most frequent first, ties by name."""
    reasons = Counter()
    for r in rows:
        if r.get("success") is not True:
            reason = r.get("reason")
            reasons[reason if isinstance(reason, str) and reason else UNKNOWN] += 1
    return {k: v for k, v in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))}


def _timing(rows: list[Mapping[str, Any]], run_config: Mapping[str, Any]) -> dict[str, Any]:
    """Mean per-attempt times (ms) and the run's wall time (s) and throughput (see :func:`summarize`)."""
    perception = [v for v in (_finite_number(r.get("perception_ms")) for r in rows) if v is not None]
    simulation = [v for v in (_finite_number(r.get("simulation_ms")) for r in rows) if v is not None]
    totals = [v for v in (_row_total_ms(r) for r in rows) if v is not None]
    wall_s = _finite_number(run_config.get("wall_s"))
    if wall_s is not None and wall_s > 0:
        wall_source = "run_config"
    elif totals:
        wall_s, wall_source = sum(totals) / 1000.0, "rows"
    else:
        wall_s, wall_source = None, None
    return {
        "mean_perception_ms": _mean(perception),
        "mean_simulation_ms": _mean(simulation),
        "mean_total_ms": _mean(totals),
        "wall_s": wall_s,
        "wall_s_source": wall_source,
        "attempts_per_second": len(rows) / wall_s if wall_s else None,
    }


def summarize(rows: list[dict], run_config: dict) -> dict:
    """The summary.json content (see the module docstring) for ``rows`` of one run.

    Rows are sorted by ``episode_id`` first, so the result does not depend on the
    order attempts finished in. Duplicated episode ids raise ValueError (they
    would count an attempt twice; :func:`graspsim.runs.read_results`
    already drops them).

    ``timing.attempts_per_second`` is attempts / wall seconds, where the wall time
    is ``run_config["wall_s"]`` when given (``wall_s_source: "run_config"``),
    else the sum of per-row ``total_ms`` (or ``perception_ms + simulation_ms``
    when a row has no ``total_ms``; ``wall_s_source: "rows"``), which ignores any
    parallelism across workers.
    """
    run_config = dict(run_config or {})
    ordered = _ordered_rows(rows)
    attempts = len(ordered)
    successes = sum(1 for r in ordered if r.get("success") is True)
    policy = run_config.get("policy")
    suite = run_config.get("suite")
    summary = {
        "policy": policy if policy is not None else _common_value(ordered, "policy"),
        "suite": suite if suite is not None else _common_value(ordered, "suite"),
        "episodes": attempts,
        "successes": successes,
        "success_rate": _rate(successes, attempts),
        "ci95": list(wilson_interval(successes, attempts)),
        "per_class": _per_class(ordered),
        "failure_reasons": _failure_reasons(ordered),
        "knocked_down": sum(_count(r.get("knocked_down")) for r in ordered),
        "dropped": sum(_count(r.get("dropped")) for r in ordered),
        "clamped_attempts": sum(1 for r in ordered if isinstance(r.get("gripper"), Mapping)
                                and r["gripper"].get("clamped")),
        "timing": _timing(ordered, run_config),
        "config": run_config,
        "versions": run_config.get("versions"),
    }
    if any("target_part" in r for r in ordered):
        summary["parts"] = _parts(ordered)
    if run_config.get("clear_scene") or any("attempt" in r for r in ordered):
        summary["clear_scene"] = _clear_scene(ordered)
    # The config may carry numpy values or NaN; keep the summary strict JSON.
    return to_jsonable(summary)


def write_summary(run_dir: Path, summary: dict) -> Path:
    """Write ``summary`` to ``run_dir/summary.json`` atomically; returns the path."""
    path = Path(run_dir) / SUMMARY_FILENAME
    atomic_write_json(path, summary)
    return path
