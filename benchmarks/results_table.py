"""Regenerate the README's results table: every policy x robot x suite, 100 attempts each, resumable.

Each cell is one ``graspsim bench`` run in ``RUNS/<robot>/<row>-<suite>`` (the same
attempts as ``graspsim bench --policy P --suite S --episodes N --robot R
--workers K``). A finished cell is reused, a partial one is resumed (a kill
loses at most the attempts in flight), a missing one is run; ``--tabulate-only``
runs nothing and prints "not run" for missing cells. The table goes to stdout
(and ``--out``): pick rate with its 95 % Wilson interval, then the failure
reasons of every cell that ran.

Usage::

    python benchmarks/results_table.py --runs runs/results --workers 2             # everything (many CPU hours)
    python benchmarks/results_table.py --runs runs/results --rows oracle,heuristic --suites shelf-test
    python benchmarks/results_table.py --runs runs/results --tabulate-only --out results.md
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path

from graspsim.bench.summary import SUMMARY_FILENAME

SUITES = ("shelf-test", "tabletop-test", "shelf-unseen", "tabletop-unseen")
ROBOTS = ("panda", "hand")
ROBOT_LABEL = {"panda": "arm", "hand": "hand"}


@dataclass(frozen=True)
class Row:
    """One row of the table: a policy with its ``--policy-arg`` settings."""

    key: str
    label: str
    policy: str
    policy_kwargs: dict = field(default_factory=dict)


ROWS = (
    Row("oracle", "`oracle`", "oracle"),
    Row("clip_sam", "`clip_sam` (shipped sim-trained models)", "clip_sam"),
    Row("clip_sam_box", "`clip_sam --policy-arg prompt_mode=box`", "clip_sam", {"prompt_mode": "box"}),
    Row("clip_sam_gradcam", "`clip_sam --policy-arg cam_method=gradcam` (the seed's Grad-CAM map, with the "
        "Grad-CAM-trained CLIP)", "clip_sam", {"cam_method": "gradcam"}),
    Row("det_seg", "`det_seg` (shipped, trained on shelf and table scenes)", "det_seg"),
    Row("det_seg_shelf", "`det_seg --policy-arg checkpoint=det_seg_shelf` (the default before 2026-12-01; shelf "
        "scenes only)", "det_seg", {"checkpoint": "det_seg_shelf"}),
    Row("det_seg_640", "`det_seg --policy-arg checkpoint=det_seg_640` (shelf scenes only)", "det_seg",
        {"checkpoint": "det_seg_640"}),
    Row("grconvnet", "`grconvnet` (shipped, trained on shelf and table scenes; ignores the instruction)", "grconvnet"),
    Row("grconvnet_shelf", "`grconvnet --policy-arg checkpoint=grconvnet_shelf` (the default before 2026-12-01; shelf "
        "scenes only)", "grconvnet", {"checkpoint": "grconvnet_shelf"}),
    Row("semgrasp", "`semgrasp` (shipped part-aware model; these suites' instructions name no part)", "semgrasp"),
    Row("graspsam", "`graspsam` (shipped; language prompts; jaws on the mask's chord, angle search on tables)", "graspsam"),
    Row("heuristic", "`heuristic`", "heuristic"),
    Row("random", "`random`", "random"),
)
REASONS = ("missed", "slipped", "wrong_object", "collision_before_grasp", "arm_collision", "unreachable",
           "out_of_reach", "invalid_action")


def cell_dir(runs: Path, robot: str, row: Row, suite: str) -> Path:
    return runs / robot / f"{row.key}-{suite}"


def finished_summary(run_dir: Path, episodes: int) -> dict | None:
    """The run's summary when it holds ``episodes`` attempts, else None."""
    path = run_dir / SUMMARY_FILENAME
    if not path.exists():
        return None
    summary = json.loads(path.read_text())
    return summary if summary.get("episodes") == episodes else None


def run_cell(run_dir: Path, robot: str, row: Row, suite: str, episodes: int, workers: int) -> dict:
    """Run or resume one cell; returns its summary."""
    from graspsim.bench.runner import RunSpec, run_bench

    spec = RunSpec(policy=row.policy, suite=suite, episodes=episodes, robot=robot,
                   policy_kwargs=dict(row.policy_kwargs))
    print(f"running {run_dir} ...", file=sys.stderr, flush=True)
    return run_bench(spec, run_dir, workers=workers, resume=run_dir.exists(), progress=False)


def rate_cell(summary: dict | None) -> str:
    if summary is None:
        return "not run"
    low, high = summary["ci95"]
    return f"{round(100 * summary['success_rate'])} % [{round(100 * low)}, {round(100 * high)}]"


def tables(summaries: dict, rows: list[Row], robots: list[str], suites: list[str]) -> str:
    """Markdown: the pick-rate table, then the failure reasons of every cell that ran."""
    out = ["| policy | robot | " + " | ".join(suites) + " |", "|---|---|" + "---|" * len(suites)]
    for row in rows:
        for i, robot in enumerate(robots):
            cells = [rate_cell(summaries.get((robot, row.key, s))) for s in suites]
            out.append(f"| {row.label if i == 0 else ''} | {ROBOT_LABEL[robot]} | " + " | ".join(cells) + " |")
    out += ["", "| run | robot | " + " | ".join(REASONS) + " | knocked down | dropped |",
            "|---|---|" + "---|" * (len(REASONS) + 2)]
    for row in rows:
        for robot in robots:
            for suite in suites:
                summary = summaries.get((robot, row.key, suite))
                if summary is None:
                    continue
                reasons = summary["failure_reasons"]
                out.append(f"| {row.key} {suite} | {ROBOT_LABEL[robot]} | "
                           + " | ".join(str(reasons.get(r, 0)) for r in REASONS)
                           + f" | {summary.get('knocked_down', 0)} | {summary.get('dropped', 0)} |")
    return "\n".join(out)


def _pick(names: str | None, known: dict, what: str) -> list:
    if names is None:
        return list(known.values())
    chosen = [n.strip() for n in names.split(",") if n.strip()]
    unknown = [n for n in chosen if n not in known]
    if unknown:
        raise SystemExit(f"error: unknown {what} {', '.join(unknown)}; choose from {', '.join(known)}")
    return [known[n] for n in chosen]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, required=True, help="directory holding one run per cell")
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rows", help="comma-separated row keys (default: all): " + ",".join(r.key for r in ROWS))
    parser.add_argument("--robots", help="comma-separated: panda,hand (default both)")
    parser.add_argument("--suites", help="comma-separated (default: " + ",".join(SUITES) + ")")
    parser.add_argument("--tabulate-only", action="store_true", help="run nothing; missing cells print 'not run'")
    parser.add_argument("--out", type=Path, help="also write the markdown here")
    args = parser.parse_args(argv)
    if args.episodes < 1 or args.workers < 1:
        raise SystemExit("error: --episodes and --workers must be >= 1")
    rows = _pick(args.rows, {r.key: r for r in ROWS}, "row")
    robots = _pick(args.robots, {r: r for r in ROBOTS}, "robot")
    suites = _pick(args.suites, {s: s for s in SUITES}, "suite")
    summaries = {}
    for row in rows:
        for robot in robots:
            for suite in suites:
                run_dir = cell_dir(args.runs, robot, row, suite)
                summary = finished_summary(run_dir, args.episodes)
                if summary is None and not args.tabulate_only:
                    summary = run_cell(run_dir, robot, row, suite, args.episodes, args.workers)
                if summary is not None:
                    summaries[(robot, row.key, suite)] = summary
    text = tables(summaries, rows, robots, suites)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
