"""Plain-text rendering of a summary (as made by :func:`graspsim.bench.summary.summarize`).

Example::

    policy: heuristic   suite: shelf   attempts: 10
    class     attempts  successes   rate  95% CI
    ----------------------------------------------------
    cereal           5          3  60.0%  [23.1%, 88.2%]
    soda_can         5          3  60.0%  [23.1%, 88.2%]
    ----------------------------------------------------
    TOTAL           10          6  60.0%  [31.3%, 83.2%]

    failure reasons:
      missed  4  (40.0% of attempts)
    side effects: 5 knocked down, 0 dropped, 1 clamped gripper commands
    timing: perception 12.0 ms/attempt, simulation 800.0 ms/attempt, 1.15 attempts/s (wall 8.7 s)
"""

from __future__ import annotations

import math
from typing import Any, Collection, Mapping, Sequence

NA = "n/a"


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _num(value: Any, fmt: str) -> str:
    return format(value, fmt) if _finite(value) else NA


def _pct(value: Any) -> str:
    return f"{100.0 * value:.1f}%" if _finite(value) else NA


def _ci(ci: Any) -> str:
    return f"[{_pct(ci[0])}, {_pct(ci[1])}]" if isinstance(ci, (list, tuple)) and len(ci) == 2 else NA


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]], left: Collection[int] = (0,)) -> list[str]:
    """Fixed-width lines (header, rule, rows): the columns in ``left`` left-aligned, the rest right-aligned."""
    table = [list(header), *[list(r) for r in rows]]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = (c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths)))
        return "  ".join(padded).rstrip()

    return [line(table[0]), "-" * (sum(widths) + 2 * (len(widths) - 1)), *(line(r) for r in table[1:])]


def format_summary_table(summary: dict) -> str:
    """A fixed-width text table of ``summary``; no trailing newline.

    Lines: a header (policy, suite, attempts); one row per target class sorted by
    class name (class, attempts, successes, rate, 95 % Wilson CI); a TOTAL row;
    failure reasons (count and share of all attempts), most frequent first;
    for a part-aware run the part-correct and class-held rates, the held-out
    splits and a class/part table; side effects (knocked down, dropped, clamped
    commands); timing. Missing or null values print as ``n/a``.
    """
    per_class: Mapping[str, Mapping[str, Any]] = summary.get("per_class") or {}
    attempts = summary.get("episodes", 0) or 0
    rows = [
        (str(name), str(c.get("attempts", 0)), str(c.get("successes", 0)), _pct(c.get("rate")), _ci(c.get("ci95")))
        for name, c in sorted(per_class.items())
    ]
    total = ("TOTAL", str(attempts), str(summary.get("successes", 0)), _pct(summary.get("success_rate")),
             _ci(summary.get("ci95")))
    header = ("class", "attempts", "successes", "rate", "95% CI")
    # Class name left-aligned, numbers right-aligned so digits line up; CI left.
    grid = _grid(header, [*rows, total], left=(0, 4))
    out = [f"policy: {summary.get('policy') or NA}   suite: {summary.get('suite') or NA}   attempts: {attempts}",
           *grid[:-1], grid[1], grid[-1], ""]

    reasons: Mapping[str, int] = summary.get("failure_reasons") or {}
    if reasons:
        out.append("failure reasons:")
        width = max(len(str(k)) for k in reasons)
        count_width = max(len(str(v)) for v in reasons.values())
        for reason, count in reasons.items():
            share = f"  ({_pct(count / attempts)} of attempts)" if attempts else ""
            out.append(f"  {str(reason).ljust(width)}  {str(count).rjust(count_width)}{share}")
    else:
        out.append("failure reasons: none")

    out += _parts_lines(summary.get("parts"))
    out.append(f"side effects: {summary.get('knocked_down', 0)} knocked down, {summary.get('dropped', 0)} dropped, "
               f"{summary.get('clamped_attempts', 0)} clamped gripper commands")
    timing: Mapping[str, Any] = summary.get("timing") or {}
    out.append(f"timing: perception {_num(timing.get('mean_perception_ms'), '.1f')} ms/attempt, "
               f"simulation {_num(timing.get('mean_simulation_ms'), '.1f')} ms/attempt, "
               f"{_num(timing.get('attempts_per_second'), '.2f')} attempts/s "
               f"(wall {_num(timing.get('wall_s'), '.1f')} s)")
    return "\n".join(out)


def _parts_lines(parts: Mapping[str, Any] | None) -> list[str]:
    """A part-aware run's lines: part-correct and class-held rates, held-out splits, the class x part table."""
    if not parts:
        return []

    def block(b: Mapping[str, Any]) -> str:
        return f"{b.get('successes', 0)}/{b.get('attempts', 0)} {_pct(b.get('rate'))}"

    out = [f"part-correct: {block(parts['part_correct'])}   target class held (any part): "
           f"{block(parts['class_held'])}",
           f"held-out pairs {block(parts['heldout_pairs'])}, trained pairs {block(parts['trained_pairs'])}; "
           f"held-out phrasings {block(parts['heldout_phrasings'])}, trained phrasings "
           f"{block(parts['trained_phrasings'])}"]
    rows = [(name, str(b.get("attempts", 0)), str(b.get("successes", 0)), _pct(b.get("rate")), _ci(b.get("ci95")))
            for name, b in parts.get("per_class_part", {}).items()]
    return out + _grid(("class/part", "attempts", "successes", "rate", "95% CI"), rows, left=(0, 4)) + [""]
