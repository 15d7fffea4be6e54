"""Compare benchmark runs of several policies on the same scenes.

A comparison only means something when every run attempted the same scenes
under the same conditions, so :func:`check_same_scenes` refuses runs whose
suite, scene seeds, renderer, image size, physics or environment overrides
differ (:class:`SceneSetMismatch`, naming what differs). The policy and its
``policy_kwargs`` are what is being compared and may differ.

Because the attempts are paired (policy A and policy B saw scene ``s``), the
difference between two policies is tested with the exact McNemar test on the
discordant attempts (:func:`graspsim.bench.stats.mcnemar_exact`), which is far
more sensitive than comparing two independent Wilson intervals.

comparison.json format (strict JSON; rates are fractions in [0, 1] or null;
intervals are 95 % Wilson score intervals ``[low, high]``; ``labels`` gives the
order policies are shown in)::

    {
      "format": "graspsim-comparison/1",
      "created": "2026-01-01T00:00:00+00:00",  # UTC, when the comparison was made
      "graspsim_version": str,                  # the code that made the comparison
      "scene_set": {"suite", "episodes", "first_seed", "last_seed", "renderer", "width", "height"},
      "labels": [label, ...],                   # policy name, or "name [run-dir]" when two runs share one
      "classes": [class, ...],                  # every target class of any run, sorted
      "policies": {label: {
          "policy", "policy_kwargs", "run_dir", "episodes", "successes", "success_rate", "ci95",
          "per_class": {class: {"attempts", "successes", "rate", "ci95"}},
          "mean_perception_ms": float | null, "failure_reasons": {reason: count},
          "knocked_down": int, "dropped": int, "versions": {...} | null,
          "parts": {...}}},                     # part-aware runs only: summary.json's "parts" block
      "class_parts": ["class/part", ...],       # part-aware runs: every asked class/part, sorted
      "mcnemar": [{"a", "b", "paired", "a_only", "b_only", "both", "neither",
                   "a_rate", "b_rate", "p_value", "p_value_holm"}, ...],   # every pair, a before b in labels
      "failure_reasons": {label: {reason: count}},   # failed attempts only, most frequent first
      "offline_metrics": {label: {...}},             # run_dir/offline_metrics.json, where it exists
      "plots": {name: {"file", "has_data", "note"}}  # filled in by graspsim.bench.plots
    }

``p_value_holm`` is the Holm-Bonferroni adjusted p-value over all pairs of the
comparison (with three or more policies several pairs are tested at once).

Clear-the-scene runs (``graspsim bench --clear-scene``) are compared only with clear-the-scene runs of the same
``max_attempts`` and ``max_consecutive_failures`` (mixing them with single-attempt runs is refused). Only the
first attempt of a scene starts from the same state for both policies: attempt k > 0 acts on what earlier
attempts left (a product picked or not, knocked over, another target drawn), so the later attempts of two
runs are not paired observations, and the rows of one scene are not independent of each other. McNemar is
therefore computed on pairs that are independent and identically posed:

* ``mcnemar`` (the main test): the first attempt of each scene, paired by scene seed;
* ``mcnemar_cleared``: per scene, whether its round ended with no product clearly visible ("cleared").

``paired_attempts`` lists, per pair, the (scene, attempt) rows both runs attempted and both pick rates on them:
descriptive only (no p-value, for the reason above). Each policy entry then has summary.json's
``clear_scene`` block, and ``scene_set`` the mode.
"""

from __future__ import annotations

import json
import warnings
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from itertools import combinations
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

from graspsim.fileio import atomic_write_json, to_jsonable
from graspsim.runs import OFFLINE_METRICS_FILENAME, RUN_CONFIG_FILENAME, read_config, read_results
from graspsim.bench.stats import mcnemar_exact
from graspsim.bench.table import _ci, _finite, _grid, _num, _pct
from graspsim.bench.summary import row_order, summarize

COMPARISON_FILENAME = "comparison.json"
FORMAT = "graspsim-comparison/1"


class SceneSetMismatch(ValueError):
    """The runs did not attempt the same scenes under the same conditions."""


@dataclass(frozen=True)
class RunData:
    """One finished run, loaded for comparison.

    ``rows``: results rows sorted by ``episode_id``, skipped scenes left out.
    ``summary``: :func:`graspsim.bench.summary.summarize` of those rows (recomputed,
    so it never disagrees with the rows even for an interrupted run).
    ``label``: how the run is named in tables and plots (see :func:`load_runs`).
    ``offline_metrics``: the JSON object in ``run_dir/offline_metrics.json``, or None.
    """

    run_dir: Path
    config: dict
    rows: list
    label: str
    summary: dict
    offline_metrics: dict | None = None

    @property
    def policy(self) -> str:
        return str(self.config.get("policy") or self.summary.get("policy") or self.run_dir.name)


def load_run(run_dir: str | Path, label: str | None = None) -> RunData:
    """Load ``run_dir`` (run.json, results.jsonl, optional offline_metrics.json).

    ``label`` defaults to the policy name. Raises
    :class:`graspsim.runs.RunDirError` when the directory holds no
    run, ValueError when offline_metrics.json is not a JSON object.
    """
    run_dir = Path(run_dir)
    config = read_config(run_dir / RUN_CONFIG_FILENAME)
    rows = sorted((r for r in read_results(run_dir) if not r.get("skipped")), key=row_order)
    run = RunData(run_dir=run_dir, config=config, rows=rows, label="", summary=summarize(rows, config),
                  offline_metrics=_read_offline_metrics(run_dir))
    return replace(run, label=label or run.policy)


def _read_offline_metrics(run_dir: Path) -> dict | None:
    path = run_dir / OFFLINE_METRICS_FILENAME
    if not path.exists():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise ValueError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object, got {type(data).__name__}")
    return data


def load_runs(run_dirs: Iterable[str | Path]) -> list[RunData]:
    """Load several runs, giving each a unique label.

    A run is labelled by its policy name; runs that share a policy name (two
    variants of one policy) are labelled ``"policy [run-dir-name]"``, or with
    the full run directory path if the directory names clash too. The same
    directory given twice raises ValueError.
    """
    dirs = [Path(d) for d in run_dirs]
    resolved = [d.resolve() for d in dirs]
    for i, r in enumerate(resolved):
        if r in resolved[:i]:
            raise ValueError(f"run directory {dirs[i]} is given more than once")
    runs = [load_run(d) for d in dirs]

    def unique_label(run: RunData) -> str:
        names = [other.run_dir.name for other in runs if other.label == run.label]
        if len(names) < 2:
            return run.label
        return f"{run.label} [{run.run_dir if len(set(names)) < len(names) else run.run_dir.name}]"

    return [replace(run, label=unique_label(run)) for run in runs]


# --------------------------------------------------------------------------- scene sets


def _renderer(run: RunData) -> str:
    # Rows record the renderer actually used ("auto" resolves to egl or tiny);
    # older rows lack it, then only the requested one from run.json is known.
    used = {r.get("renderer") for r in run.rows}
    if used and None not in used:
        return "+".join(sorted(used))
    return str(run.config.get("renderer", "auto"))


def _seeds(run: RunData) -> list[int]:
    # One per scene: a clear-the-scene run has several rows per scene.
    return sorted({int(r["scene_seed"]) for r in run.rows})


def clear_scene_mode(config: Mapping[str, Any]) -> tuple[int, int] | None:
    """``(max_attempts, max_consecutive_failures)`` of a clear-the-scene run's settings, None for single attempts."""
    if not config.get("clear_scene"):
        return None
    return int(config.get("max_attempts", 12)), int(config.get("max_consecutive_failures", 2))


def _mode_name(mode: tuple[int, int] | None) -> str:
    return ("single-attempt episodes" if mode is None else
            f"clear-the-scene rounds (max {mode[0]} attempts, {mode[1]} failures in a row)")


def _robot(run: RunData) -> str:
    # Runs from before the arm have no robot field: they used the floating hand.
    return str(run.config.get("robot", "hand"))


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key in value:
            out.update(_flatten(value[key], f"{prefix}{key}."))
        return out
    return {prefix[:-1]: value}


def _dict_differences(a: Mapping, b: Mapping) -> list[str]:
    fa, fb = _flatten(to_jsonable(dict(a or {}))), _flatten(to_jsonable(dict(b or {})))
    pairs = ((key, fa.get(key, "<absent>"), fb.get(key, "<absent>")) for key in sorted(set(fa) | set(fb)))
    return [f"{key} {va} vs {vb}" for key, va, vb in pairs if va != vb]


def _seed_span(seeds: list[int]) -> str:
    return f"{seeds[0]}..{seeds[-1]}" if seeds else "none"


def _scene_differences(a: RunData, b: RunData) -> list[str]:
    name_a, name_b = str(a.run_dir), str(b.run_dir)
    ca, cb = a.config, b.config
    out = []
    ma, mb = clear_scene_mode(ca), clear_scene_mode(cb)
    if ma != mb:
        out.append(f"{name_a} ran {_mode_name(ma)}, {name_b} ran {_mode_name(mb)} (a clear-the-scene attempt acts "
                   "on what earlier attempts left: compare runs of one mode)")
    if ca.get("suite") != cb.get("suite"):
        out.append(f"{name_a} has suite {ca.get('suite')}, {name_b} has {cb.get('suite')}")
    sa, sb = _seeds(a), _seeds(b)
    if sa != sb:
        first = next((i for i, (x, y) in enumerate(zip(sa, sb)) if x != y), min(len(sa), len(sb)))
        xa = sa[first] if first < len(sa) else "none"
        xb = sb[first] if first < len(sb) else "none"
        out.append(f"scene seeds differ: {len(sa)} vs {len(sb)} scenes ({name_a}: {_seed_span(sa)}, "
                   f"{name_b}: {_seed_span(sb)}), first difference at position {first}: {xa} vs {xb}")
    ra, rb = _renderer(a), _renderer(b)
    if ra != rb:
        if "auto" in (ra, rb):
            # "auto" is egl or tiny; rows older than the renderer field cannot tell which.
            warnings.warn(f"cannot check the renderer: {name_a} used {ra}, {name_b} used {rb}", stacklevel=3)
        else:
            out.append(f"renderer differs: {name_a} used {ra}, {name_b} used {rb}")
    if _robot(a) != _robot(b):
        out.append(f"robot differs: {name_a} used the {_robot(a)}, {name_b} the {_robot(b)} (an arm fails where a "
                   "floating hand does not: compare runs of one robot)")
    size_a, size_b = (ca.get("width"), ca.get("height")), (cb.get("width"), cb.get("height"))
    if size_a != size_b:
        out.append(f"image size differs: {size_a[0]}x{size_a[1]} vs {size_b[0]}x{size_b[1]}")
    for key, verb in (("physics", "differs"), ("env_overrides", "differ")):
        diffs = _dict_differences(ca.get(key) or {}, cb.get(key) or {})
        if diffs:
            out.append(f"{key} {verb}: " + "; ".join(diffs))
    return out


def check_same_scenes(runs: Sequence[RunData]) -> None:
    """Raise :class:`SceneSetMismatch` unless all ``runs`` share one scene set.

    Each run is checked against the first; the message lists every difference
    (suite, scene seeds, renderer, image size, physics fields, env_overrides, robot),
    naming the run directories and both values. Fewer than two runs pass.
    """
    problems = []
    for other in runs[1:]:
        problems += _scene_differences(runs[0], other)
    if problems:
        raise SceneSetMismatch("the runs did not attempt the same scenes under the same conditions, so their "
                               "pick rates cannot be compared:\n  - " + "\n  - ".join(problems))


# --------------------------------------------------------------------------- comparison


def _holm(p_values: list[float]) -> list[float]:
    m = len(p_values)
    order = sorted(range(m), key=lambda i: p_values[i])
    adjusted, running = [1.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p_values[i]))
        adjusted[i] = running
    return adjusted


def _first_attempts(run: RunData) -> dict[int, bool]:
    """Scene seed -> success of the scene's (first) attempt."""
    return {int(r["scene_seed"]): r.get("success") is True for r in run.rows if r.get("attempt", 0) == 0}


def _cleared(run: RunData) -> dict[int, bool]:
    """Scene seed -> whether the clear-the-scene round of that scene ended cleared (complete episodes only)."""
    count: Counter = Counter(int(r["scene_seed"]) for r in run.rows)
    return {int(r["scene_seed"]): r.get("end_reason") == "cleared" for r in run.rows
            if r.get("attempt", 0) == 0 and r.get("episode_attempts") == count[int(r["scene_seed"])]}


def _paired_attempts(a: RunData, b: RunData) -> dict:
    """Pick rates of both runs on the (scene, attempt) rows both attempted (descriptive: module docstring)."""
    sa = {(int(r["scene_seed"]), int(r.get("attempt", 0))): r.get("success") is True for r in a.rows}
    sb = {(int(r["scene_seed"]), int(r.get("attempt", 0))): r.get("success") is True for r in b.rows}
    both = sorted(set(sa) & set(sb))
    n = len(both)
    return {"a": a.label, "b": b.label, "paired": n,
            "a_rate": sum(sa[k] for k in both) / n if n else None,
            "b_rate": sum(sb[k] for k in both) / n if n else None}


def _mcnemar_pair(a: RunData, b: RunData, outcome=_first_attempts) -> dict:
    # Pair by scene seed (not episode id): the seed is what defines the scene.
    sa, sb = outcome(a), outcome(b)
    outcomes = [(sa[seed], sb[seed]) for seed in sorted(set(sa) & set(sb))]
    counts = {key: outcomes.count(pair) for key, pair in (("a_only", (True, False)), ("b_only", (False, True)),
                                                           ("both", (True, True)), ("neither", (False, False)))}
    n = len(outcomes)
    return {"a": a.label, "b": b.label, "paired": n, **counts,
            "a_rate": (counts["a_only"] + counts["both"]) / n if n else None,
            "b_rate": (counts["b_only"] + counts["both"]) / n if n else None,
            "p_value": mcnemar_exact(counts["a_only"], counts["b_only"])}


def compare_runs(runs: Sequence[RunData], check_scenes: bool = True) -> dict:
    """The comparison.json content (see the module docstring) for ``runs``.

    With ``check_scenes`` (the default) runs with different scene sets raise
    :class:`SceneSetMismatch` first. Labels must be unique (use :func:`load_runs`).
    """
    import graspsim

    runs = list(runs)
    if not runs:
        raise ValueError("compare_runs needs at least one run")
    labels = [run.label for run in runs]
    if len(set(labels)) != len(labels):
        raise ValueError(f"run labels must be unique, got {labels}; load the runs with load_runs()")
    if check_scenes:
        check_same_scenes(runs)

    policies = {}
    for run in runs:
        s = run.summary
        policies[run.label] = {
            "policy": run.policy,
            "policy_kwargs": run.config.get("policy_kwargs") or {},
            "run_dir": str(run.run_dir),
            **{key: s[key] for key in ("episodes", "successes", "success_rate", "ci95", "per_class")},
            "mean_perception_ms": (s.get("timing") or {}).get("mean_perception_ms"),
            "failure_reasons": s["failure_reasons"],
            "knocked_down": s.get("knocked_down", 0),
            "dropped": s.get("dropped", 0),
            "versions": run.config.get("versions"),
        }
        if "parts" in s:
            policies[run.label]["parts"] = s["parts"]

    pairs = [_mcnemar_pair(a, b) for a, b in combinations(runs, 2)]
    for pair, adjusted in zip(pairs, _holm([p["p_value"] for p in pairs])):
        pair["p_value_holm"] = adjusted
    clearing = clear_scene_mode(runs[0].config) is not None
    if clearing:
        for run in runs:
            policies[run.label]["clear_scene"] = run.summary.get("clear_scene")
        cleared = [_mcnemar_pair(a, b, _cleared) for a, b in combinations(runs, 2)]
        for pair, adjusted in zip(cleared, _holm([p["p_value"] for p in cleared])):
            pair["p_value_holm"] = adjusted

    first = runs[0]
    seeds = _seeds(first)
    comparison = {
        "format": FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "graspsim_version": graspsim.__version__,
        "scene_set": {"suite": first.config.get("suite"), "episodes": len(seeds),
                      "first_seed": seeds[0] if seeds else None, "last_seed": seeds[-1] if seeds else None,
                      "renderer": _renderer(first), "width": first.config.get("width"),
                      "height": first.config.get("height"),
                      **({"clear_scene": True, "max_attempts": first.config.get("max_attempts"),
                          "max_consecutive_failures": first.config.get("max_consecutive_failures")}
                         if clearing else {})},
        "labels": labels,
        "classes": sorted({c for run in runs for c in run.summary["per_class"]}),
        "policies": policies,
        **({"class_parts": sorted({cp for p in policies.values() for cp in p["parts"]["per_class_part"]})}
           if any("parts" in p for p in policies.values()) else {}),
        "mcnemar": pairs,
        **({"mcnemar_cleared": cleared, "paired_attempts": [_paired_attempts(a, b) for a, b in combinations(runs, 2)]}
           if clearing else {}),
        "failure_reasons": {run.label: dict(run.summary["failure_reasons"]) for run in runs},
        "offline_metrics": {run.label: run.offline_metrics for run in runs if run.offline_metrics is not None},
        "plots": {},
    }
    return to_jsonable(comparison)


# --------------------------------------------------------------------------- text table


def _p(value: Any) -> str:
    if not _finite(value):
        return "n/a"
    return f"{value:.3g}" if value >= 1e-4 else f"{value:.1e}"


def failure_reason_order(comparison: Mapping) -> list[str]:
    """Every failure reason of the comparison, most frequent overall first (ties by name)."""
    totals: Counter = Counter()
    for reasons in (comparison.get("failure_reasons") or {}).values():
        totals.update({reason: int(count) for reason, count in reasons.items()})
    return sorted(totals, key=lambda r: (-totals[r], r))


def format_comparison_table(comparison: Mapping) -> str:
    """A plain-text rendering of ``comparison``; no trailing newline.

    Sections: a header line (suite, attempts, seeds); overall pick rate, 95 %
    Wilson interval and mean perception ms per policy (plus offline grasp
    accuracy where known); per-class ``successes/attempts`` with one column per
    policy; for part-aware runs the part-correct rate split by trained / held-out
    pairs and phrasings, and ``successes/attempts`` per class x part; the McNemar pairs (discordant counts, exact p, Holm-adjusted p);
    failure reasons with one column per policy.
    """
    labels = list(comparison.get("labels") or comparison["policies"])
    policies = comparison["policies"]
    ss = comparison.get("scene_set") or {}
    out = [f"suite: {ss.get('suite')}   attempts: {ss.get('episodes')}   scene seeds: "
           f"{ss.get('first_seed')}..{ss.get('last_seed')}   renderer: {ss.get('renderer')}", ""]

    offline = comparison.get("offline_metrics") or {}
    header = ["policy", "attempts", "successes", "pick rate", "95% CI", "perception ms"]
    if offline:
        header.append("offline grasp acc")
    rows = []
    for label in labels:
        p = policies[label]
        row = [label, str(p["episodes"]), str(p["successes"]), _pct(p["success_rate"]), _ci(p["ci95"]),
               _num(p.get("mean_perception_ms"), ".1f")]
        if offline:
            row.append(_pct((offline.get(label) or {}).get("grasp_accuracy")))
        rows.append(row)
    out += _grid(header, rows) + [""]

    def fraction(c: Mapping | None) -> str:
        return f"{c['successes']}/{c['attempts']}" if c else "-"

    rows = [[cls, *(fraction(policies[lb]["per_class"].get(cls)) for lb in labels)]
            for cls in comparison.get("classes") or []]
    rows.append(["TOTAL", *(f"{policies[lb]['successes']}/{policies[lb]['episodes']}" for lb in labels)])
    out += ["per-class pick rate (successes/attempts):"] + _grid(["class", *labels], rows) + [""]
    out += _parts_lines(comparison, labels, fraction)

    out += _clear_scene_lines(comparison, labels)
    clearing = bool(ss.get("clear_scene"))
    for key, title in (("mcnemar", "first attempt of each scene" if clearing else "the same scenes"),
                       ("mcnemar_cleared", "scenes cleared, per scene")):
        pairs = comparison.get(key) or []
        if pairs:
            rows = [[f"{m['a']} vs {m['b']}", str(m["paired"]), str(m["a_only"]), str(m["b_only"]), str(m["both"]),
                     str(m["neither"]), _p(m["p_value"]), _p(m.get("p_value_holm"))] for m in pairs]
            out += [f"paired comparison (exact McNemar test on {title}):"]
            out += _grid(["pair", "paired", "A only", "B only", "both", "neither", "p", "p (Holm)"], rows) + [""]

    reasons = failure_reason_order(comparison)
    if reasons:
        fr = comparison.get("failure_reasons") or {}
        rows = [[reason, *(str((fr.get(label) or {}).get(reason, 0)) for label in labels)] for reason in reasons]
        out += ["failure reasons (count of attempts):"] + _grid(["reason", *labels], rows)
    else:
        out.append("failure reasons: none")
    return "\n".join(out).rstrip()


def _clear_scene_lines(comparison: Mapping, labels: list) -> list[str]:
    """The text table's clear-the-scene block (empty for single-attempt runs)."""
    blocks = {lb: comparison["policies"][lb].get("clear_scene") for lb in labels}
    if not any(blocks.values()):
        return []

    def rate(block: Mapping | None) -> str:
        return f"{_pct(block['rate'])} ({block['successes']}/{block['attempts']})" if block else "-"

    rows = [["scenes", *(str((blocks[lb] or {}).get("scenes", "-")) for lb in labels)],
            ["first-attempt pick rate", *(rate((blocks[lb] or {}).get("first_attempt")) for lb in labels)],
            ["later-attempt pick rate", *(rate((blocks[lb] or {}).get("later_attempts")) for lb in labels)],
            ["clearance rate (mean per scene)", *(_pct((blocks[lb] or {}).get("clearance_rate")) for lb in labels)],
            ["scenes cleared", *(rate((blocks[lb] or {}).get("cleared")) for lb in labels)],
            ["mean attempts per scene", *(_num((blocks[lb] or {}).get("mean_attempts_per_scene"), ".2f")
                                          for lb in labels)],
            ["robot in view after 1st attempt", *(rate((blocks[lb] or {}).get("robot_in_view_after_first"))
                                                  for lb in labels)]]
    out = ["clear-the-scene rounds:"] + _grid(["", *labels], rows) + [""]
    pairs = comparison.get("paired_attempts") or []
    if pairs:
        rows = [[f"{m['a']} vs {m['b']}", str(m["paired"]), _pct(m["a_rate"]), _pct(m["b_rate"])] for m in pairs]
        out += ["attempts both runs made, by (scene, attempt) (descriptive; later attempts are not paired trials):"]
        out += _grid(["pair", "attempts", "A rate", "B rate"], rows) + [""]
    return out


#: The rate blocks of summary.json's "parts" block shown per policy, with their row names.
PART_RATES = (("part_correct", "part-correct (= pick rate)"), ("class_held", "class held, any part"),
              ("trained_pairs", "trained class-part pairs"), ("heldout_pairs", "held-out class-part pairs"),
              ("trained_phrasings", "trained phrasings"), ("heldout_phrasings", "held-out phrasings"))


def _parts_lines(comparison: Mapping, labels: list, fraction) -> list[str]:
    """The text table's part-aware block (empty for ordinary runs)."""
    if "class_parts" not in comparison:
        return []
    parts = {lb: comparison["policies"][lb].get("parts") or {} for lb in labels}
    rows = [[name, *(fraction(parts[lb].get(key)) for lb in labels)] for key, name in PART_RATES]
    out = ["part-aware picks (successes/attempts):"] + _grid(["", *labels], rows) + [""]
    rows = [[cp, *(fraction((parts[lb].get("per_class_part") or {}).get(cp)) for lb in labels)]
            for cp in comparison["class_parts"]]
    return out + ["per class x part pick rate (successes/attempts):"] + _grid(["class/part", *labels], rows) + [""]


# --------------------------------------------------------------------------- writing


def write_comparison(out_dir: str | Path, comparison: dict, runs: Sequence[RunData], *,
                     gallery_per_class: int = 1, max_gallery_classes: int | None = None,
                     out_html: str | Path | None = None, workers: int = 1) -> dict[str, Path]:
    """Write ``out_dir/comparison.json``, the plots (PNG) and ``out_html`` (default ``out_dir/report.html``).

    The plots are made first, so ``comparison["plots"]`` (updated in place)
    records which had data before comparison.json is written (atomically,
    strict JSON). Returns ``{"comparison": path, "report": path, <plot name>: path, ...}``.
    ``gallery_per_class``, ``max_gallery_classes`` and ``workers`` are passed to
    :func:`graspsim.bench.report.build_report`.
    """
    from graspsim.bench.plots import make_all_plots
    from graspsim.bench.report import build_report

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_paths = make_all_plots(comparison, out_dir)
    json_path = out_dir / COMPARISON_FILENAME
    atomic_write_json(json_path, comparison)
    report = build_report(runs, comparison, out_html or out_dir / "report.html", plot_paths,
                          gallery_per_class=gallery_per_class, max_gallery_classes=max_gallery_classes,
                          workers=workers)
    return {"comparison": json_path, "report": report, **plot_paths}
