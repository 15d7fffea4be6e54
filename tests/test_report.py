"""The HTML report: sampling and replaying attempts, a self-contained file, and what a real browser shows."""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageSequence

from graspsim.bench.compare import RunData, SceneSetMismatch, load_run
from graspsim.bench.gallery import ANIMATION_TYPE, AttemptReplayer, render_attempt, sample_attempts
from graspsim.bench.report import report_from_run_dirs
from graspsim.cli import report as report_command

@pytest.fixture(scope="module")
def tiny(tiny_runs):
    return tiny_runs


@pytest.fixture(scope="module")
def report(tiny, tmp_path_factory):
    """A report of oracle, random and an oracle copy in a directory whose name needs escaping."""
    out = tmp_path_factory.mktemp("report")
    odd = out / 'or<acle>&"x'
    shutil.copytree(tiny["oracle"], odd)
    html_path = report_from_run_dirs([tiny["oracle"], tiny["random"], odd], out / "report.html",
                                     plots_dir=out / "plots")
    return html_path


# ----------------------------------------------------------------------------- gallery


def _fake_run(outcomes: list[tuple[str, bool]]) -> RunData:
    rows = [{"episode_id": i, "scene_seed": 100 + i, "target_class": cls, "success": ok,
             "reason": None if ok else "missed"} for i, (cls, ok) in enumerate(outcomes)]
    return RunData(run_dir=Path("fake"), config={"policy": "x"}, rows=rows, label="x", summary={})


def test_sample_attempts_lowest_ids_success_and_failure():
    run = _fake_run([("b", False), ("a", True), ("a", False), ("a", True), ("b", False), ("c", True),
                     ("a", False)])
    ids = lambda rows: [r["episode_id"] for r in rows]  # noqa: E731
    assert ids(sample_attempts(run, per_class=2)) == [1, 2, 0, 4, 5]
    assert ids(sample_attempts(run, per_class=1)) == [1, 0, 5]
    assert ids(sample_attempts(run, per_class=4)) == [1, 2, 3, 6, 0, 4, 5]
    assert sample_attempts(run, per_class=2) == sample_attempts(run, per_class=2)
    assert sample_attempts(run, per_class=0) == []


def test_render_attempt_oracle_mask_and_random_without(tiny):
    oracle = load_run(tiny["oracle"])
    with AttemptReplayer(oracle) as replayer:  # one runner for several rows
        shown = [render_attempt(oracle, row, runner=replayer) for row in oracle.rows[:2]]
    for item, row in zip(shown, oracle.rows):
        assert item["replayed_rect_matches"] is True
        assert item["replayed_outcome_matches"] is True  # executed again: the same outcome as in the run
        assert item["rgb"].dtype == np.uint8 and item["rgb"].shape == (120, 160, 3)  # 160 px wide: not enlarged
        assert item["overlay_kind"] == "mask" and item["mask_overlay"].shape == item["rgb"].shape
        assert not np.array_equal(item["mask_overlay"], item["rgb"])
        assert item["outcome"] == {"success": row["success"], "reason": row["reason"],
                                   "picked_class": row["picked_class"]}
        # The animation (WebP, 8 fps): the still with the grasp held 0.5 s, then the attempt in real time.
        animation = Image.open(io.BytesIO(item["animation"]))
        assert animation.format == "WEBP" and ANIMATION_TYPE == "image/webp"
        durations = []
        for frame in ImageSequence.Iterator(animation):
            frame.load()  # Pillow sets a WebP frame's duration when it decodes it
            durations.append(frame.info["duration"])
        assert animation.size == item["animation_size"] == (160, 120) and animation.info["loop"] == 0
        assert durations[0] >= 500 and durations[-1] >= 500
        # the grasp frame, a frame per 30 physics steps of the recorded attempt, 3 repeats at each end
        assert sum(durations) == 125 * (1 + row["steps"] // 30 + 2 * 3)
        animation.seek(0)
        first = np.array(animation.convert("RGB"))
        assert np.abs(first.astype(int) - item["rgb"]).mean() < 4  # the still, up to lossy WebP

    random_run = load_run(tiny["random"])
    item = render_attempt(random_run, random_run.rows[0], thumb_width=100)
    assert item["replayed_rect_matches"] is True
    assert item["mask_overlay"] is None and item["overlay_kind"] is None
    assert item["rgb"].shape == (75, 100, 3)
    assert item["outcome"]["success"] is False and item["outcome"]["reason"]

    assert item["replayed_outcome_matches"] is True

    tampered = dict(random_run.rows[0], rect=dict(random_run.rows[0]["rect"], x=1.0))
    assert render_attempt(random_run, tampered)["replayed_rect_matches"] is False
    tampered = dict(random_run.rows[0], success=True, reason=None)
    item = render_attempt(random_run, tampered)
    assert item["replayed_rect_matches"] is True and item["replayed_outcome_matches"] is False

    still = render_attempt(random_run, random_run.rows[0], animation_width=0)  # no animation: nothing executed
    assert still["animation"] is None and still["replayed_outcome_matches"] is None


# ----------------------------------------------------------------------------- the HTML file


def test_report_is_self_contained_and_escaped(report):
    html = report.read_text(encoding="utf-8")
    for forbidden in ("http://", "https://", 'src="/', "src='/", "@import", "url("):
        assert forbidden not in html, forbidden
    srcs = re.findall(r'<img src="([^"]*)"', html)
    assert srcs and all(s.startswith(("data:image/png;base64,", "data:image/jpeg;base64,",
                                      "data:image/webp;base64,")) for s in srcs)
    assert any(s.startswith("data:image/webp;base64,") for s in srcs)  # the attempts, animated
    assert len(re.findall(r"<img ", html)) == len(srcs)
    assert '<script>' in html and "src=" not in html.split("<script>", 1)[1].split("</script>", 1)[0]
    # The run-dir name is escaped everywhere, never raw markup.
    assert "or<acle>" not in html
    assert 'oracle [or&lt;acle&gt;&amp;&quot;x]' in html
    comparison = json.loads((report.parent / "plots" / "comparison.json").read_text())
    assert comparison["labels"] == ["oracle [oracle]", "random", 'oracle [or<acle>&"x]']
    assert {p.name for p in (report.parent / "plots").glob("*.png")} == {
        "per_class.png", "failure_reasons.png", "perception_vs_rate.png", "offline_vs_pick.png"}


def test_report_refuses_mismatched_runs_but_allows_one(tiny, tmp_path):
    with pytest.raises(SceneSetMismatch, match="scene seeds differ"):
        report_from_run_dirs([tiny["random"], tiny["random-seed3"]], tmp_path / "bad.html")
    assert not (tmp_path / "bad.html").exists()
    one = report_from_run_dirs([tiny["random"]], tmp_path / "one.html", gallery_per_class=0)
    html = one.read_text()
    assert "Only one run" in html and "random" in html
    assert not list(tmp_path.glob("*.png"))  # plots went to a temporary directory


def test_report_cli_command(tiny, tmp_path):
    out = tmp_path / "cli.html"
    result = CliRunner().invoke(report_command, [str(tiny["oracle"]), str(tiny["random"]), "--out", str(out),
                                                 "--gallery-per-class", "0"])
    assert result.exit_code == 0, result.output
    assert out.exists() and "report: " in result.output
    result = CliRunner().invoke(report_command, [str(tiny["random"]), str(tiny["random-seed3"]), "--out",
                                                 str(tmp_path / "x.html")])
    assert result.exit_code == 2
    assert "scene seeds differ" in result.output and "Traceback" not in result.output


# ----------------------------------------------------------------------------- in a real browser

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--virtual-time-budget=5000"]


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    exe = shutil.which("chromium")
    if exe is None:
        pytest.skip("chromium is not installed (CI installs it; apt-get install chromium to run this test)")
    profile = tmp_path / "chromium-profile"
    return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args], capture_output=True,
                          text=True, timeout=120)


def test_report_in_headless_chromium(report, tiny, tmp_path):
    import cv2

    shown_oracle = len(sample_attempts(load_run(tiny["oracle"]), per_class=2))
    shown_random = len(sample_attempts(load_run(tiny["random"]), per_class=2))

    done = _chromium(tmp_path, "--dump-dom", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    body = re.search(r"<body[^>]*>", dom).group(0)
    loaded = re.search(r'data-images-loaded="(\d+)"', body)
    total = re.search(r'data-images-total="(\d+)"', body)
    assert loaded and total, f"the load script did not run: {body}"
    # 4 plots, an animation per attempt shown, and a mask overlay for those of the two oracle runs.
    assert int(total.group(1)) == 4 + 2 * shown_oracle + shown_random + 2 * shown_oracle
    assert loaded.group(1) == total.group(1), "some images did not decode"
    assert len(re.findall(r'<img [^>]*class="animation"', dom)) == 2 * shown_oracle + shown_random
    for section in ('id="overall"', 'id="per-class"', 'id="mcnemar"', 'id="failures"', 'id="plots"',
                    'id="gallery"'):
        assert section in dom, section
    assert dom.count("<table") == 4
    for label in ("oracle [oracle]", "random", "oracle [or&lt;acle&gt;&amp;\"x]"):
        assert label in dom, label
    captions = re.findall(r'<figcaption class="outcome (success|failure)">([^<]+)</figcaption>', dom)
    assert len(captions) == 2 * shown_oracle + shown_random > 0
    assert all((kind == "success") == (text == "success") for kind, text in captions)

    shot = tmp_path / "shot.png"
    done = _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", report.as_uri())
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (2000, 1280)
    assert len(np.unique(image.reshape(-1, 3), axis=0)) > 50, "the screenshot is (nearly) a flat colour"
