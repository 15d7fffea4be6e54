"""PNG plots of a comparison (the dict made by :func:`graspsim.bench.compare.compare_runs`).

Every plot function takes the comparison and an output path, writes one PNG
(about 1000-1300 x 450-600 px, well under 150 KB) and returns the path. Each
also records itself in ``comparison["plots"][name] = {"file": <file name>,
"has_data": bool, "note": str}`` so comparison.json says which plots had
something to show. Output is deterministic for a given comparison and
matplotlib version (no timestamps or version strings in the PNG metadata).

Plots use matplotlib's Agg backend through the object-oriented API (a
``Figure`` with an Agg canvas), never a display.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Mapping

from graspsim.bench.table import _finite
from graspsim.fileio import atomic_write

# Fixed colours, so a reason keeps its colour across reports.
SUCCESS_COLOUR = "#2ca02c"
REASON_COLOURS = {
    "missed": "#9ecae1",
    "slipped": "#ff7f0e",
    "wrong_object": "#d62728",
    "collision_before_grasp": "#9467bd",
    "out_of_reach": "#8c564b",
    "invalid_action": "#e377c2",
    "unknown": "#7f7f7f",
}
EXTRA_COLOURS = ["#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173"]
POLICY_COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                  "#bcbd22", "#17becf"]


def _figure(width_in: float, height_in: float):
    """A new Agg-backed Figure and its one Axes; sets matplotlib up for headless use on first call."""
    if "matplotlib" not in sys.modules and not os.environ.get("MPLCONFIGDIR"):
        # matplotlib wants a writable config/cache dir; a read-only home would make it
        # warn and rebuild its font cache on every import.
        xdg = os.environ.get("XDG_CONFIG_HOME")
        default = Path(xdg) / "matplotlib" if xdg else Path.home() / ".config" / "matplotlib"
        try:
            default.mkdir(parents=True, exist_ok=True)
            writable = os.access(default, os.W_OK)
        except OSError:
            writable = False
        if not writable:
            os.environ["MPLCONFIGDIR"] = tempfile.mkdtemp(prefix="graspsim-mpl-")
    import matplotlib

    if "matplotlib.pyplot" not in sys.modules:
        # Headless: never try a GUI backend. Left alone when the caller already
        # uses pyplot (e.g. in a notebook); these plots do not go through pyplot anyway.
        matplotlib.use("Agg")
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width_in, height_in), dpi=100)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def _finish(fig, ax, comparison: dict, name: str, out_path, title: str, has_data: bool, note: str = "") -> Path:
    """Title, lay out and save the plot, and record it in ``comparison["plots"][name]``; returns the path."""
    ax.set_title(title, fontsize=11)
    fig.tight_layout()
    path = Path(out_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # metadata Software=None: no version string, so the same data gives the same bytes.
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100, metadata={"Software": None}))
    comparison.setdefault("plots", {})[name] = {"file": path.name, "has_data": bool(has_data), "note": note}
    return path


def _labels(comparison: Mapping) -> list[str]:
    return list(comparison.get("labels") or comparison["policies"])


def _percent_axis(axis) -> None:
    from matplotlib.ticker import PercentFormatter

    axis.set_major_formatter(PercentFormatter(xmax=1.0, decimals=0))


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", wrap=True, fontsize=11, transform=ax.transAxes)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_per_class(comparison: dict, out_path: str | Path) -> Path:
    """Grouped bars: per-class pick rate, one bar per policy, 95 % Wilson whiskers.

    Class labels (rotated) carry the number of attempts (``n=6``; ``n=6/5`` when
    the runs differ). A class a policy never attempted has no bar.
    """
    labels = _labels(comparison)
    classes = list(comparison.get("classes") or [])
    fig, ax = _figure(max(8.0, min(16.0, 1.2 + 0.5 * len(classes) * max(1, len(labels)) ** 0.5)), 5.2)
    has_data = bool(classes)
    if not has_data:
        _no_data(ax, "No attempts to plot")
    else:
        n = len(labels)
        width = 0.8 / n
        for j, label in enumerate(labels):
            per_class = comparison["policies"][label]["per_class"]
            xs, rates, low, high = [], [], [], []
            for i, cls in enumerate(classes):
                c = per_class.get(cls)
                if not c or not _finite(c.get("rate")):
                    continue
                xs.append(i - 0.4 + width * (j + 0.5))
                rates.append(c["rate"])
                low.append(max(0.0, c["rate"] - c["ci95"][0]))
                high.append(max(0.0, c["ci95"][1] - c["rate"]))
            colour = POLICY_COLOURS[j % len(POLICY_COLOURS)]
            ax.bar(xs, rates, width=width * 0.92, color=colour, label=label, zorder=2)
            ax.errorbar(xs, rates, yerr=[low, high], fmt="none", ecolor="#333333", elinewidth=0.8, capsize=1.5,
                        zorder=3)
            # A tick at the rate, so a 0 % bar is visibly there (not a class the policy never tried).
            ax.scatter(xs, rates, marker="_", s=max(20.0, 300.0 * width), color=colour, linewidths=2.5, zorder=4)
        ticks = []
        for cls in classes:
            counts = sorted({comparison["policies"][lb]["per_class"].get(cls, {}).get("attempts", 0)
                             for lb in labels}, reverse=True)
            ticks.append(f"{cls} (n={'/'.join(str(c) for c in counts)})")
        ax.set_xticks(range(len(classes)))
        ax.set_xticklabels(ticks, rotation=60, ha="right", rotation_mode="anchor", fontsize=8)
        ax.set_xlim(-0.6, len(classes) - 0.4)
        ax.set_ylim(0, 1.05)
        _percent_axis(ax.yaxis)
        ax.set_ylabel("pick rate")
        ax.grid(axis="y", color="#dddddd", zorder=0)
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9, frameon=False)
    suite = (comparison.get("scene_set") or {}).get("suite")
    return _finish(fig, ax, comparison, "per_class", out_path,
                   f"Per-class pick rate on {suite} (whiskers: 95% Wilson interval)", has_data)


def _reason_colours(reasons: list[str]) -> dict[str, str]:
    extra = [r for r in reasons if r not in REASON_COLOURS]  # unknown reasons take the extra colours in turn
    return {r: REASON_COLOURS.get(r) or EXTRA_COLOURS[extra.index(r) % len(EXTRA_COLOURS)] for r in reasons}


def plot_failure_reasons(comparison: dict, out_path: str | Path) -> Path:
    """Stacked bars, one per policy: the fraction of attempts that succeeded and that failed for each reason.

    Success is the bottom (green) segment; reasons follow, most frequent overall
    first. Segments of at least 4 % are labelled with their count.
    """
    from graspsim.bench.compare import failure_reason_order

    labels = _labels(comparison)
    reasons = failure_reason_order(comparison)
    colours = {"success": SUCCESS_COLOUR, **_reason_colours(reasons)}
    fig, ax = _figure(max(6.5, 2.5 + 1.3 * len(labels)), 5.0)
    has_data = any(comparison["policies"][lb]["episodes"] for lb in labels)
    if not has_data:
        _no_data(ax, "No attempts to plot")
    else:
        bottoms = [0.0] * len(labels)
        for segment in ["success", *reasons]:
            counts, fractions = [], []
            for label in labels:
                p = comparison["policies"][label]
                count = p["successes"] if segment == "success" else int(
                    (comparison["failure_reasons"].get(label) or {}).get(segment, 0))
                counts.append(count)
                fractions.append(count / p["episodes"] if p["episodes"] else 0.0)
            ax.bar(range(len(labels)), fractions, bottom=bottoms, width=0.6, color=colours[segment],
                   label=segment, edgecolor="white", linewidth=0.5, zorder=2)
            for i, (count, frac) in enumerate(zip(counts, fractions)):
                if frac >= 0.04:
                    ax.text(i, bottoms[i] + frac / 2, str(count), ha="center", va="center", fontsize=8,
                            color="white" if segment in ("success", "wrong_object", "collision_before_grasp",
                                                         "out_of_reach") else "black")
            bottoms = [b + f for b, f in zip(bottoms, fractions)]
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=20 if len(labels) > 3 else 0, ha="right" if len(labels) > 3 else "center",
                           fontsize=9)
        ax.set_ylim(0, 1.0)
        _percent_axis(ax.yaxis)
        ax.set_ylabel("share of attempts")
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=9, frameon=False)
    return _finish(fig, ax, comparison, "failure_reasons", out_path, "Outcome of every attempt (numbers: counts)",
                   has_data)


def _rate_points(ax, pts, xlabel: str, ylabel: str, note: str) -> None:
    """Labelled points ``(colour index, label, x, rate, ci95)`` with the rate's interval as whiskers, on a
    percent y axis with a grid; ``note`` (if any) in the bottom left corner."""
    for j, _label, x, rate, ci in pts:
        ax.errorbar([x], [rate], yerr=[[max(0.0, rate - ci[0])], [max(0.0, ci[1] - rate)]], fmt="o",
                    color=POLICY_COLOURS[j % len(POLICY_COLOURS)], capsize=3, markersize=7, zorder=3)
    for _j, label, x, rate, _ci in pts:
        ax.annotate(label, (x, rate), xytext=(6, 6), textcoords="offset points", fontsize=9)
    ax.set_ylim(-0.03, 1.05)
    _percent_axis(ax.yaxis)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(color="#dddddd", zorder=0)
    if note:
        ax.text(0.01, 0.01, note, transform=ax.transAxes, fontsize=8, color="#555555")


def plot_perception_vs_rate(comparison: dict, out_path: str | Path) -> Path:
    """Mean perception time per attempt (ms, log x) against pick rate, 95 % whiskers, labelled points.

    Policies without a positive finite perception time are left out (named in the plot's note).
    """
    labels = _labels(comparison)
    fig, ax = _figure(7.5, 5.0)
    pts = []
    left_out = []
    for j, label in enumerate(labels):
        p = comparison["policies"][label]
        ms, rate = p.get("mean_perception_ms"), p.get("success_rate")
        if _finite(ms) and ms > 0 and _finite(rate):
            pts.append((j, label, ms, rate, p["ci95"]))
        else:
            left_out.append(label)
    note = f"left out (no perception time or rate): {', '.join(left_out)}" if left_out else ""
    if not pts:
        _no_data(ax, "No policy has a perception time and a pick rate")
    else:
        _rate_points(ax, pts, "mean perception time per attempt (ms, log scale)", "pick rate", note)
        ax.set_xscale("log")
        lo, hi = min(p[2] for p in pts), max(p[2] for p in pts)
        ax.set_xlim(lo / 3, hi * 5)  # room for the labels right of the points
    return _finish(fig, ax, comparison, "perception_vs_rate", out_path,
                   "Perception cost against pick rate (whiskers: 95% Wilson interval)", bool(pts), note)


def plot_offline_vs_pick(comparison: dict, out_path: str | Path) -> Path:
    """Offline grasp accuracy (``offline_metrics[label]["grasp_accuracy"]``) against pick rate.

    Only policies with both are plotted; the dashed diagonal is "offline
    accuracy = pick rate". When no policy has both (e.g. only oracle, heuristic
    and random, which have no offline metrics), the PNG says so in text and the
    record's ``has_data`` is false.
    """
    labels = _labels(comparison)
    offline = comparison.get("offline_metrics") or {}
    fig, ax = _figure(7.0, 5.0)
    pts = []
    for j, label in enumerate(labels):
        acc = (offline.get(label) or {}).get("grasp_accuracy")
        rate = comparison["policies"][label].get("success_rate")
        if _finite(acc) and _finite(rate):
            pts.append((j, label, float(acc), rate, comparison["policies"][label]["ci95"]))
    missing = [lb for lb in labels if lb not in {p[1] for p in pts}]
    note = f"no offline grasp accuracy: {', '.join(missing)}" if missing else ""
    if not pts:
        _no_data(ax, "No policy in this comparison has both an offline grasp accuracy\n"
                     "(grasp_accuracy in its run's offline_metrics.json) and a pick rate.\n\n"
                     f"Policies: {', '.join(labels)}")
    else:
        ax.plot([0, 1], [0, 1], linestyle="--", color="#999999", linewidth=1, zorder=1)
        _rate_points(ax, pts, "offline grasp accuracy", "pick rate in simulation", note)
        ax.set_xlim(-0.03, 1.05)
        _percent_axis(ax.xaxis)
    return _finish(fig, ax, comparison, "offline_vs_pick", out_path, "Offline grasp accuracy against pick rate",
                   bool(pts), note)


PLOTTERS = {
    "per_class": plot_per_class,
    "failure_reasons": plot_failure_reasons,
    "perception_vs_rate": plot_perception_vs_rate,
    "offline_vs_pick": plot_offline_vs_pick,
}


def make_all_plots(comparison: dict, out_dir: str | Path) -> dict[str, Path]:
    """Every plot into ``out_dir`` as ``<name>.png``; returns ``{name: path}``."""
    return {name: plot(comparison, Path(out_dir) / f"{name}.png") for name, plot in PLOTTERS.items()}
