"""One self-contained HTML report comparing runs: tables, plots and replayed sample attempts.

The file has no external references at all: CSS is inline, plots are PNG,
attempt stills JPEG and attempt animations WebP, all as base64 ``data:`` URIs,
so it can be mailed or attached to an issue and opened anywhere offline. All
text is HTML-escaped.

Why animated WebP in an ``<img>`` for the attempts: an animated image plays
offline from a ``data:`` URI with no script and no user action. A ``<video>``
would need H.264 in MP4 to play everywhere, and the opencv-python wheels cannot
encode H.264 (their MPEG-4 Part 2 plays in no browser). Animated GIF plays in
every browser ever made but, with the arm sweeping through the view, made the
gallery of a 2-policy shelf comparison 8.8 MB (36 attempts, 400 px, 10 fps);
animated WebP is a third of that and plays in every browser since 2020 (Chrome
32+, Edge 18+, Firefox 65+, Safari 14+).

Sections: header (suite, attempts, scene seeds, policies, date, graspsim
version), overall pick rates, per-class pick rates (one column per policy),
paired McNemar tests, failure reasons, plots, and a gallery: for each target
class and policy, sample attempts (lowest episode ids, successes and failures
alternating; see :func:`graspsim.bench.gallery.sample_attempts`) replayed to
show the attempt animated (the camera image with the chosen grasp, then the
robot's motion as the scene camera saw it) and the policy's mask or attention
map, captioned with the recorded outcome (green "success" or the red failure
reason).

An inline script sets ``document.body.dataset.imagesLoaded`` (images whose
``naturalWidth > 0``) and ``imagesTotal`` (all ``<img>`` elements) on window
load, so a headless browser can check that every image decodes.
"""

from __future__ import annotations

import base64
import tempfile
import warnings
from datetime import datetime, timezone
from html import escape
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from graspsim.bench.compare import RunData, _p, failure_reason_order
from graspsim.bench.plots import _labels
from graspsim.bench.table import _finite, _num
from graspsim.fileio import atomic_write_text

JPEG_QUALITY = 85

PLOT_CAPTIONS = {
    "per_class": "Per-class pick rate with 95 % Wilson intervals (n: attempts per class).",
    "failure_reasons": "What happened in every attempt: success and each failure reason, as a share of attempts.",
    "perception_vs_rate": "Mean perception time per attempt (log scale) against pick rate.",
    "offline_vs_pick": "Offline grasp accuracy (offline_metrics.json) against pick rate in simulation.",
}

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 0 24px 48px; color: #222; line-height: 1.4; }
h1 { margin-bottom: 4px; } h2 { margin-top: 36px; border-bottom: 1px solid #ddd; padding-bottom: 4px; }
dl.meta { display: grid; grid-template-columns: max-content auto; gap: 2px 16px; margin: 12px 0; }
dl.meta dt { font-weight: 600; } dl.meta dd { margin: 0; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 14px; }
th, td { border: 1px solid #ddd; padding: 4px 8px; }
th { background: #f4f4f4; text-align: left; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
td.best { font-weight: 700; }
p.note { color: #555; font-size: 13px; max-width: 70em; }
figure.plot { margin: 16px 0; } figure.plot img { max-width: 100%; height: auto; border: 1px solid #eee; }
figure.plot figcaption { color: #555; font-size: 13px; }
section.gallery-class { margin: 18px 0 28px; }
div.gallery-policy { margin: 6px 0 12px; }
div.gallery-policy h4 { margin: 6px 0; }
div.cards { display: flex; flex-wrap: wrap; gap: 12px; }
figure.attempt { margin: 0; border: 1px solid #ddd; padding: 6px; background: #fafafa; }
figure.attempt div.imgs { display: flex; gap: 4px; }
figure.attempt img { display: block; max-width: 240px; height: auto; }
figure.attempt img.animation { max-width: 400px; }
figure.attempt div.warn { max-width: 644px; }
figcaption.outcome { font-weight: 700; margin-top: 4px; }
.success { color: #1a7f37; } .failure { color: #c62828; }
div.attempt-meta { font-size: 12px; color: #555; }
div.warn, p.warn { color: #8a4b00; font-size: 12px; }
footer { margin-top: 40px; font-size: 12px; color: #666; }
"""

SCRIPT = """
window.addEventListener("load", function () {
  var images = document.getElementsByTagName("img");
  var loaded = 0;
  for (var i = 0; i < images.length; i++) {
    if (images[i].complete && images[i].naturalWidth > 0) { loaded++; }
  }
  document.body.dataset.imagesLoaded = String(loaded);
  document.body.dataset.imagesTotal = String(images.length);
});
"""


# --------------------------------------------------------------------------- small helpers


def _e(value: Any) -> str:
    return escape(str(value), quote=True)


def _pct(value: Any, digits: int = 1) -> str:
    return f"{100.0 * value:.{digits}f} %" if _finite(value) else "n/a"


def _ci(ci: Any) -> str:
    if isinstance(ci, (list, tuple)) and len(ci) == 2 and all(_finite(v) for v in ci):
        return f"[{100 * ci[0]:.1f}, {100 * ci[1]:.1f}] %"
    return "n/a"


def data_uri(mime_type: str, data: bytes) -> str:
    """``data:<mime_type>;base64,...`` for ``data`` (e.g. an animation from :mod:`graspsim.video`)."""
    return f"data:{mime_type};base64," + base64.b64encode(data).decode("ascii")


def png_data_uri(path: str | Path) -> str:
    """``data:image/png;base64,...`` for the PNG file at ``path``."""
    return data_uri("image/png", Path(path).read_bytes())


def jpeg_data_uri(rgb: np.ndarray, quality: int = JPEG_QUALITY) -> str:
    """``data:image/jpeg;base64,...`` for an (H, W, 3) uint8 RGB image (JPEG keeps photos small)."""
    import cv2

    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(np.ascontiguousarray(rgb), cv2.COLOR_RGB2BGR),
                           [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"could not encode an image of shape {np.shape(rgb)} as JPEG")
    return data_uri("image/jpeg", buf.tobytes())


def _img(src: str, alt: str, width: int | None = None, height: int | None = None, cls: str = "") -> str:
    size = f' width="{int(width)}" height="{int(height)}"' if width and height else ""
    cls = f' class="{_e(cls)}"' if cls else ""
    return f'<img src="{_e(src)}" alt="{_e(alt)}"{size}{cls}>'


def _td(value: Any, cls: str = "num", attrs: str = "") -> str:
    return f'<td class="{cls}"{attrs}>{_e(value)}</td>'


def _tr(cells: Iterable[str]) -> str:
    return "<tr>" + "".join(cells) + "</tr>"


def _table(header: Sequence[str], rows: Iterable[str], cls: str = "") -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in header)
    body = "\n".join(rows)
    return f'<table class="{_e(cls)}"><thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n</tbody></table>'


def _section(sid: str, title: str, body: str, note: str = "") -> str:
    """``<section id=sid>`` with an ``<h2>`` title, ``body`` (HTML) and an optional note (HTML)."""
    note = f'<p class="note">{note}</p>' if note else ""
    return f'<section id="{sid}"><h2>{title}</h2>{body}{note}</section>'


def _rate_style(rate: Any) -> str:
    # Red (0 %) to green (100 %) background, light enough to read the text on.
    if not _finite(rate):
        return ""
    return f' style="background: hsl({int(round(120 * rate))}, 65%, 86%)"'


# --------------------------------------------------------------------------- sections


def _header(comparison: Mapping, runs: Sequence[RunData]) -> str:
    import graspsim

    ss = comparison.get("scene_set") or {}
    labels = _labels(comparison)
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    items = [
        ("suite", ss.get("suite")),
        ("attempts per policy", ss.get("episodes")),
        ("scene seeds", f"{ss.get('first_seed')} .. {ss.get('last_seed')}"),
        ("renderer, image size", f"{ss.get('renderer')}, {ss.get('width')} x {ss.get('height')}"),
        ("policies", ", ".join(labels)),
        ("report created", f"{created} (comparison made {comparison.get('created', 'n/a')})"),
        ("graspsim version", f"{graspsim.__version__} (report); runs made with "
                             + ", ".join(sorted({str((r.config.get('versions') or {}).get('graspsim', 'unknown'))
                                                 for r in runs}) or ["unknown"])),
    ]
    meta = "".join(f"<dt>{_e(k)}</dt><dd>{_e(v)}</dd>" for k, v in items)
    title = f"Pick-rate comparison on {ss.get('suite')}"
    return f"<header><h1>{_e(title)}</h1><dl class=\"meta\">{meta}</dl></header>"


def _overall_section(comparison: Mapping) -> str:
    labels = _labels(comparison)
    policies = comparison["policies"]
    offline = comparison.get("offline_metrics") or {}
    best = max((policies[lb]["success_rate"] for lb in labels if _finite(policies[lb]["success_rate"])),
               default=None)
    header = ["policy", "run", "attempts", "successes", "pick rate", "95 % CI", "mean perception ms",
              "knocked down", "dropped"]
    if offline:
        header.append("offline grasp accuracy")
    rows = []
    for label in labels:
        p = policies[label]
        rate_cls = "num best" if best is not None and p["success_rate"] == best else "num"
        cells = [f"<td>{_e(label)}</td>", f"<td>{_e(p['run_dir'])}</td>", _td(p["episodes"]), _td(p["successes"]),
                 _td(_pct(p["success_rate"]), rate_cls, _rate_style(p["success_rate"])), _td(_ci(p["ci95"])),
                 _td(_num(p.get("mean_perception_ms"), ".1f")), _td(p.get("knocked_down", 0)), _td(p.get("dropped", 0))]
        if offline:
            cells.append(_td(_pct((offline.get(label) or {}).get("grasp_accuracy"))))
        rows.append(_tr(cells))
    return _section("overall", "Overall pick rate", _table(header, rows, "overall"),
                    "Pick rate: successes / attempts; 95 % Wilson score interval. Knocked down and "
                    "dropped count other products disturbed by the attempts.")


def _per_class_section(comparison: Mapping) -> str:
    labels = _labels(comparison)
    policies = comparison["policies"]
    rows = []
    for cls in comparison.get("classes") or []:
        stats = [policies[lb]["per_class"].get(cls) for lb in labels]
        rates = [s["rate"] for s in stats if s and _finite(s.get("rate"))]
        best = max(rates) if rates else None
        cells = [f"<td>{_e(cls)}</td>"]
        for s in stats:
            if not s:
                cells.append('<td class="num">-</td>')
                continue
            cls_attr = "num best" if best is not None and s["rate"] == best and best > 0 else "num"
            cells.append(_td(f"{s['successes']}/{s['attempts']} ({_pct(s['rate'], 0)})", cls_attr,
                             f' title="95 % CI {_e(_ci(s["ci95"]))}"{_rate_style(s["rate"])}'))
        rows.append(_tr(cells))
    rows.append(_tr(["<td><b>TOTAL</b></td>"] + [
        _td(f"{p['successes']}/{p['episodes']} ({_pct(p['success_rate'], 0)})", "num", _rate_style(p["success_rate"]))
        for p in (policies[lb] for lb in labels)]))
    return _section("per-class", "Per-class pick rate", _table(["class", *labels], rows, "per-class"),
                    "successes/attempts (rate) per target class; hover a cell for its 95 % Wilson "
                    "interval. The target class is drawn per scene, so every policy has the same attempts per class. "
                    "Per-class counts are small: read the intervals, not the ranks.")


def _fraction_cell(s: Mapping | None) -> str:
    if not s:
        return '<td class="num">-</td>'
    return _td(f"{s['successes']}/{s['attempts']} ({_pct(s['rate'], 0)})", "num",
               f' title="95 % CI {_e(_ci(s["ci95"]))}"{_rate_style(s["rate"])}')


def _parts_section(comparison: Mapping) -> str:
    """Part-aware runs: part-correct rates (trained / held-out pairs and phrasings) and the class x part table."""
    from graspsim.bench.compare import PART_RATES

    if "class_parts" not in comparison:
        return ""
    labels = _labels(comparison)
    parts = {lb: comparison["policies"][lb].get("parts") or {} for lb in labels}
    rows = [_tr([f"<td>{_e(name)}</td>", *(_fraction_cell(parts[lb].get(key)) for lb in labels)])
            for key, name in PART_RATES]
    rows += [_tr([f"<td>{_e(cp)}</td>", *(_fraction_cell((parts[lb].get("per_class_part") or {}).get(cp))
                                          for lb in labels)]) for cp in comparison["class_parts"]]
    return _section("parts", "Part-aware picks", _table(["", *labels], rows, "per-class"),
                    "A part-aware attempt succeeds when the target class is held and both fingers are on the "
                    "named part (else wrong_part); class held = success or wrong_part. Held-out pairs and "
                    "phrasings are never asked in the train suites. Then successes/attempts per class/part.")


def _mcnemar_section(comparison: Mapping) -> str:
    pairs = comparison.get("mcnemar") or []
    title = "Paired comparison (McNemar)"
    if not pairs:
        return _section("mcnemar", title, "", "Only one run: there is no pair to compare.")
    rows = [_tr([f"<td>{_e(m['a'])}</td>", f"<td>{_e(m['b'])}</td>",
                 *(_td(m[k]) for k in ("paired", "a_only", "b_only", "both", "neither")),
                 _td(_p(m["p_value"])), _td(_p(m.get("p_value_holm")))]) for m in pairs]
    header = ["policy A", "policy B", "paired attempts", "A only", "B only", "both", "neither", "p", "p (Holm)"]
    body = _table(header, rows, "mcnemar")
    note = ("Both policies attempted the same scenes, so each pair is compared on the "
            "attempts where exactly one of them succeeded (A only, B only) with the exact two-sided McNemar "
            "test. p (Holm): adjusted for testing all pairs of this report.")
    cleared = comparison.get("mcnemar_cleared") or []
    if cleared:  # clear-the-scene runs: the first attempts above, then one pair per scene on "cleared"
        rows = [_tr([f"<td>{_e(m['a'])}</td>", f"<td>{_e(m['b'])}</td>",
                     *(_td(m[k]) for k in ("paired", "a_only", "b_only", "both", "neither")),
                     _td(_p(m["p_value"])), _td(_p(m.get("p_value_holm")))]) for m in cleared]
        body += "<p>Scenes cleared (one pair per scene):</p>" + _table(
            ["policy A", "policy B", "scenes", "A only", "B only", "both", "neither", "p", "p (Holm)"], rows, "mcnemar")
        note = ("Clear-the-scene runs: the first table pairs the first attempt of each scene (the only attempt "
                "both policies start from the same state; later attempts act on what earlier ones left, so they "
                "are neither paired nor independent), the second pairs scenes on whether their round ended "
                "cleared. Exact two-sided McNemar tests; p (Holm): adjusted for testing all pairs.")
    return _section("mcnemar", title, body, note)


def _failures_section(comparison: Mapping) -> str:
    labels = _labels(comparison)
    reasons = failure_reason_order(comparison)
    fr = comparison.get("failure_reasons") or {}
    policies = comparison["policies"]
    rows = []
    for reason in ["success", *reasons]:
        cells = [f'<td class="{"success" if reason == "success" else "failure"}">{_e(reason)}</td>']
        for lb in labels:
            n = policies[lb]["episodes"]
            count = policies[lb]["successes"] if reason == "success" else int((fr.get(lb) or {}).get(reason, 0))
            cells.append(_td(f"{count} ({_pct(count / n if n else None, 0)})"))
        rows.append(_tr(cells))
    return _section("failures", "Outcomes and failure reasons", _table(["outcome", *labels], rows, "failures"),
                    'Count (share of attempts). See "How a pick is scored" in the README for what '
                    "each reason means.")


def _plots_section(comparison: Mapping, plot_paths: Mapping[str, Path]) -> str:
    records = comparison.get("plots") or {}
    parts = []
    for name, path in plot_paths.items():
        record = records.get(name) or {}
        caption = PLOT_CAPTIONS.get(name, name)
        if record and not record.get("has_data", True):
            caption += " No data for this comparison."
        if record.get("note"):
            caption += f" Note: {record['note']}."
        parts.append(f'<figure class="plot" id="plot-{_e(name)}">{_img(png_data_uri(path), caption)}'
                     f"<figcaption>{_e(caption)}</figcaption></figure>")
    return _section("plots", "Plots", "".join(parts), "" if plot_paths else "No plots were made.")


# --------------------------------------------------------------------------- gallery


def render_gallery(runs: Sequence[RunData], classes: Sequence[str], per_outcome: int = 1, workers: int = 1
                   ) -> tuple[dict[tuple[str, str], list[dict]], dict[str, str]]:
    """Replay the gallery attempts: ``({(label, class): [render_attempt result, ...]}, {label: error})``.

    Per run and class, up to ``per_outcome`` successes and ``per_outcome``
    failures (lowest episode ids). One replayer (environment + policy) is built
    per run and worker process (``workers``). A run whose replay fails (e.g. a policy that cannot be built
    here) gets an error message instead of images, with a warning, so the rest
    of the report is still made.
    """
    from graspsim.bench.gallery import render_attempts, sample_attempts

    wanted = set(classes)
    shown: dict[tuple[str, str], list[dict]] = {}
    errors: dict[str, str] = {}
    for run in runs:
        rows = [r for r in sample_attempts(run, per_class=2 * per_outcome) if r.get("target_class") in wanted]
        try:
            rendered = render_attempts(run, rows, workers=workers)
        except Exception as exc:  # the tables and plots are still worth having
            errors[run.label] = f"{type(exc).__name__}: {exc}"
            warnings.warn(f"gallery: could not replay attempts of {run.run_dir}: {errors[run.label]}", stacklevel=2)
            continue
        for item in rendered:
            shown.setdefault((run.label, item["target_class"]), []).append(item)
    return shown, errors


def _attempt_card(label: str, item: Mapping) -> str:
    outcome = item["outcome"]
    success = bool(outcome.get("success"))
    text = "success" if success else str(outcome.get("reason") or "failure")
    cls = item.get("target_class")
    alt = f"{label}, {cls}, episode {item['episode_id']}: "
    if item.get("animation"):
        from graspsim.bench.gallery import ANIMATION_TYPE

        width, height = item["animation_size"]
        imgs = [_img(data_uri(ANIMATION_TYPE, item["animation"]), alt + "the attempt, animated", width, height,
                     "animation")]
    else:
        imgs = [_img(jpeg_data_uri(item["rgb"]), alt + "camera image with the grasp", item["rgb"].shape[1],
                     item["rgb"].shape[0])]
    if item.get("mask_overlay") is not None:
        overlay = item["mask_overlay"]
        imgs.append(_img(jpeg_data_uri(overlay), alt + f"policy {item.get('overlay_kind') or 'mask'}",
                         overlay.shape[1], overlay.shape[0]))
    meta = [f"episode {item['episode_id']}, seed {item['scene_seed']}"]
    if not success and outcome.get("picked_class"):
        meta.append(f"picked {outcome['picked_class']}")
    if item.get("overlay_kind"):
        meta.append(f"right: policy {item['overlay_kind']}")
    warn = ""
    if not item.get("replayed_rect_matches", True):
        warn = ('<div class="warn">the replayed grasp differs from the recorded one: the image shows the '
                'replay, the caption the recorded outcome</div>')
    elif item.get("replayed_outcome_matches") is False:
        warn = ('<div class="warn">the replayed attempt ended differently from the recorded one: the '
                'animation shows the replay, the caption the recorded outcome</div>')
    if item.get("policy_error"):
        warn += f'<div class="warn">policy error: {_e(item["policy_error"])}</div>'
    return (f'<figure class="attempt"><div class="imgs">{"".join(imgs)}</div>'
            f'<figcaption class="outcome {"success" if success else "failure"}">{_e(text)}</figcaption>'
            f'<div class="attempt-meta">{_e(" · ".join(meta))}</div>{warn}</figure>')


def _gallery_section(comparison: Mapping, classes: Sequence[str], shown: Mapping, errors: Mapping[str, str],
                     per_outcome: int) -> str:
    labels = _labels(comparison)
    if per_outcome <= 0 or not classes:
        return _section("gallery", "Sample attempts", "", "No gallery in this report.")
    n_all = len(comparison.get("classes") or [])
    limited = f" Showing {len(classes)} of {n_all} classes." if len(classes) < n_all else ""
    parts = [f'<p class="note">For each class and policy: up to {per_outcome} success(es) and {per_outcome} '
             f'failure(s), lowest episode ids first, replayed from the scene seed. Left: the attempt as the '
             f'scene camera saw it, animated: the chosen grasp (blue jaws, red closing line), then the '
             f'robot\'s approach, grip, lift and hold in real time; right: the policy\'s mask (green) or '
             f'attention map, when it has one. Caption: the recorded outcome.{_e(limited)}</p>']
    for label, error in errors.items():
        parts.append(f'<p class="warn">{_e(label)}: attempts could not be replayed ({_e(error)})</p>')
    for cls in classes:
        parts.append(f'<section class="gallery-class" id="gallery-{_e(cls)}"><h3>{_e(cls)}</h3>')
        for label in labels:
            if label in errors:
                continue
            items = shown.get((label, cls), [])
            cards = "".join(_attempt_card(label, item) for item in items) or \
                '<p class="note">no attempt of this class</p>'
            parts.append(f'<div class="gallery-policy"><h4>{_e(label)}</h4><div class="cards">{cards}</div></div>')
        parts.append("</section>")
    return _section("gallery", "Sample attempts", "".join(parts))


def _footer(runs: Sequence[RunData]) -> str:
    items = []
    for run in runs:
        versions = run.config.get("versions") or {}
        vtext = ", ".join(f"{k} {v}" for k, v in sorted(versions.items()))
        kwargs = run.config.get("policy_kwargs") or {}
        items.append(f"<li>{_e(run.label)}: {_e(run.run_dir)} (policy {_e(run.policy)}"
                     f"{', kwargs ' + _e(kwargs) if kwargs else ''}; created {_e(run.config.get('created', 'n/a'))}; "
                     f"{_e(vtext or 'versions unknown')})</li>")
    return f"<footer><p>Runs:</p><ul>{''.join(items)}</ul><p>Made by graspsim.bench.report.</p></footer>"


# --------------------------------------------------------------------------- entry points


def build_report(runs: Sequence[RunData], comparison: Mapping, out_html: str | Path,
                 plot_paths: Mapping[str, str | Path], gallery_per_class: int = 1,
                 max_gallery_classes: int | None = None, workers: int = 1) -> Path:
    """Write the self-contained HTML report to ``out_html`` (atomically) and return its path.

    ``runs``: the compared runs (:func:`graspsim.bench.compare.load_runs`), in any order.
    ``comparison``: :func:`graspsim.bench.compare.compare_runs` of them (after
    the plots were made, so ``comparison["plots"]`` says which had data).
    ``plot_paths``: ``{name: png path}`` as returned by
    :func:`graspsim.bench.plots.make_all_plots`. ``gallery_per_class``:
    successes and failures shown per class and policy (each up to this many; 0
    for no gallery, which skips replaying). ``max_gallery_classes``: show only
    the first N classes (by name) in the gallery; None for all.
    """
    out_html = Path(out_html)
    plot_paths = {name: Path(p) for name, p in plot_paths.items()}
    by_label = {run.label: run for run in runs}
    ordered = [by_label[lb] for lb in _labels(comparison) if lb in by_label]

    classes = list(comparison.get("classes") or [])
    if max_gallery_classes is not None:
        classes = classes[: max(0, int(max_gallery_classes))]
    gallery = gallery_per_class > 0 and classes
    shown, errors = render_gallery(ordered, classes, gallery_per_class, workers) if gallery else ({}, {})

    ss = comparison.get("scene_set") or {}
    title = f"graspsim comparison: {ss.get('suite')} ({', '.join(_labels(comparison))})"
    body = "\n".join([
        _header(comparison, ordered),
        _overall_section(comparison),
        _per_class_section(comparison),
        _parts_section(comparison),
        _mcnemar_section(comparison),
        _failures_section(comparison),
        _plots_section(comparison, plot_paths),
        _gallery_section(comparison, classes, shown, errors, gallery_per_class),
        _footer(ordered),
    ])
    document = (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
                f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
                f"<title>{_e(title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n{body}\n"
                f"<script>{SCRIPT}</script>\n</body>\n</html>\n")
    out_html.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out_html, document)
    return out_html


def report_from_run_dirs(run_dirs: Sequence[str | Path], out_html: str | Path, *, plots_dir: str | Path | None = None,
                         gallery_per_class: int = 1, max_gallery_classes: int | None = None,
                         workers: int = 1) -> Path:
    """Load ``run_dirs``, compare them and write the HTML report to ``out_html``; returns its path.

    Two or more runs must share their scene set
    (:class:`graspsim.bench.compare.SceneSetMismatch` otherwise); a single
    run makes a report of that run alone. The plots (and comparison.json) go
    to ``plots_dir`` when given and are kept there; otherwise to a temporary
    directory removed afterwards (the report embeds them either way).
    """
    from graspsim.bench.compare import compare_runs, load_runs, write_comparison
    from graspsim.bench.plots import make_all_plots

    if not run_dirs:
        raise ValueError("report_from_run_dirs needs at least one run directory")
    runs = load_runs(run_dirs)
    comparison = compare_runs(runs, check_scenes=len(runs) > 1)
    gallery = {"gallery_per_class": gallery_per_class, "max_gallery_classes": max_gallery_classes,
               "workers": workers}
    if plots_dir is not None:
        return write_comparison(plots_dir, comparison, runs, out_html=out_html, **gallery)["report"]
    with tempfile.TemporaryDirectory(prefix="graspsim-report-") as tmp:
        return build_report(runs, comparison, out_html, make_all_plots(comparison, Path(tmp)), **gallery)
