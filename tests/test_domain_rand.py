"""Domain randomisation of training data (``graspsim render --domain-rand``): never the unseen variants,
deterministic, appearance only (labels unchanged), products kept in view, training suites only, recorded and
checked on resume."""

from __future__ import annotations

import colorsys
import json
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from graspsim.assets.catalog import CATALOG, variant_palette
from graspsim.assets.random_textures import (CLASS_HUE_BAND_DEG, HUE_SHIFT_BAND_DEG, MIN_HUE_GAP_DEG, allowed_patterns,
                                             make_random_texture, random_palette, sample_label_draw)
from graspsim.assets.textures import STYLES
from graspsim.scenes.domain_rand import (LEVELS, appearance_rng, domain_rand_spec, in_image, keeps_in_view,
                                         product_points, sample_appearance)
from graspsim.scenes.sampling import SceneOptions, sample_plan
from graspsim.scenes.suites import SUITES, get_suite

SUITE = "tabletop-train"
W, H = 160, 120


# ------------------------------------------------------------------ never the unseen variants
def _hue_deg(rgb) -> float | None:
    """Hue in degrees of a clearly coloured RGB (0-255), None for greys, whites and near-blacks."""
    h, s, v = colorsys.rgb_to_hsv(*(c / 255.0 for c in rgb))
    return h * 360.0 if s > 0.25 and v > 0.25 else None


def test_label_draws_keep_away_from_every_catalog_variant():
    """Every randomised colour is >= MIN_HUE_GAP_DEG of hue from the same class colour in every variant (seen and
    unseen), and no randomised label carries the unseen variants' pattern."""
    assert MIN_HUE_GAP_DEG == 20.0 and HUE_SHIFT_BAND_DEG == (60.0, 300.0)
    rng = np.random.default_rng(0)
    checked = 0
    for cls in CATALOG:
        assert STYLES[cls.name].pattern_b not in allowed_patterns(cls.name)
        variants = [variant_palette(cls.name, v) for v in cls.variants_seen + cls.variants_unseen]
        for _ in range(25):
            draw = sample_label_draw(rng, cls.name)
            assert draw.pattern != STYLES[cls.name].pattern_b
            assert HUE_SHIFT_BAND_DEG[0] <= draw.hue_shift_deg <= HUE_SHIFT_BAND_DEG[1]
            palette = random_palette(cls.name, draw)
            # Which class colour each randomised colour came from (body and label trade places when swapped).
            source = [1, 0, 2, 3] if draw.swap_body else [0, 1, 2, 3]
            for colour, src in zip(palette, source):
                hue = _hue_deg(colour)
                for pal in variants:
                    other = _hue_deg(pal[src])
                    if hue is None or other is None:
                        continue
                    gap = abs((hue - other + 180.0) % 360.0 - 180.0)
                    assert gap >= MIN_HUE_GAP_DEG - 3.0, (cls.name, draw, colour, pal[src])  # 3: 8-bit rounding
                    checked += 1
    assert checked > 1000


def test_class_coloured_layouts_keep_away_from_the_unseen_variants():
    """keep_colours draws (``--domain-rand layouts``): within the seen variants' hue range, so each colour is at
    least as far in hue from every unseen variant's as the seen variants' (20 degrees; 20 x BODY_HUE_SCALE for
    the bodies of classes whose body turns less), never the unseen pattern, body and label never swapped."""
    from graspsim.assets.catalog import BODY_HUE_SCALE

    assert CLASS_HUE_BAND_DEG == (-20.0, 20.0)
    rng = np.random.default_rng(3)
    checked = 0
    for cls in CATALOG:
        unseen = [variant_palette(cls.name, v) for v in cls.variants_unseen]
        for _ in range(25):
            draw = sample_label_draw(rng, cls.name, keep_colours=True)
            assert draw.pattern != STYLES[cls.name].pattern_b and not draw.swap_body
            assert CLASS_HUE_BAND_DEG[0] <= draw.hue_shift_deg <= CLASS_HUE_BAND_DEG[1]
            for k, (colour, *others) in enumerate(zip(random_palette(cls.name, draw), *unseen)):
                least = 20.0 * (BODY_HUE_SCALE.get(cls.name, 1.0) if k == 0 else 1.0)
                for other in others:
                    hue, other_hue = _hue_deg(colour), _hue_deg(other)
                    if hue is None or other_hue is None:
                        continue
                    assert abs((hue - other_hue + 180.0) % 360.0 - 180.0) >= least - 3.0, (cls.name, k, draw)
                    checked += 1
    assert checked > 500
    # The same number of draws as a new-colour design: a spec's other draws do not depend on the choice.
    a, b = np.random.default_rng(9), np.random.default_rng(9)
    sample_label_draw(a, "soda_can"), sample_label_draw(b, "soda_can", keep_colours=True)
    assert a.random() == b.random()


def test_random_textures_are_far_from_the_unseen_textures():
    """Painted atlases of random labels differ from both unseen variants' atlases by at least 10 grey levels on
    average (distinct catalog variants of one class differ by 5 to 50)."""
    from graspsim.assets.library import load_product_asset

    rng = np.random.default_rng(1)
    for cls in CATALOG:
        unseen = [load_product_asset(cls.name, v).texture.astype(np.float32) for v in cls.variants_unseen]
        for variant, keep_colours in ((0, False), (2, False), (0, True), (2, True)):
            tex = make_random_texture(cls.name, variant, sample_label_draw(rng, cls.name, keep_colours))
            assert tex.shape == (256, 256, 3) and tex.dtype == np.uint8
            for other in unseen:
                assert np.abs(tex.astype(np.float32) - other).mean() > 10.0, (cls.name, keep_colours)


def test_random_texture_is_deterministic():
    draw = sample_label_draw(np.random.default_rng(5), "soda_can")
    assert np.array_equal(make_random_texture("soda_can", 1, draw), make_random_texture("soda_can", 1, draw))
    assert sample_label_draw(np.random.default_rng(5), "soda_can") == draw


# ------------------------------------------------------------------ the spec and its draws
def test_levels_and_presets():
    assert LEVELS == ("none", "light", "full", "labels", "layouts")
    assert not domain_rand_spec("none").enabled and domain_rand_spec("full").enabled
    assert domain_rand_spec("light").label_prob == 0.0 < domain_rand_spec("full").label_prob
    # Manifests of the levels that relight keep the keys they had before `relight` existed (resumable).
    assert "relight" not in domain_rand_spec("full").to_dict()
    assert domain_rand_spec("labels").to_dict()["relight"] is False
    assert "label_colours" not in domain_rand_spec("full").to_dict()
    layouts = domain_rand_spec("layouts")
    assert layouts.label_colours == "class" and layouts.label_prob == 0.5
    assert replace(layouts, level="light", label_prob=0.0, label_colours="new") == domain_rand_spec("light")
    with pytest.raises(ValueError, match="choose one of none, light, full, labels, layouts"):
        domain_rand_spec("heavy")
    with pytest.raises(ValueError, match="probabilities"):
        replace(domain_rand_spec("full"), label_prob=1.5)


def test_appearance_is_a_function_of_the_scene_seed():
    plan = sample_plan("shelf", 11, "seen", SceneOptions(width=W, height=H))
    spec = domain_rand_spec("full")
    a, b = sample_appearance(spec, plan), sample_appearance(spec, plan)
    assert a.to_dict() == b.to_dict()
    json.dumps(a.to_dict())  # stored in meta.json
    other = sample_appearance(spec, sample_plan("shelf", 12, "seen", SceneOptions(width=W, height=H)))
    assert other.lighting != a.lighting and other.camera != a.camera
    assert len(a.labels) == len(plan.products) and 0 < sum(d is not None for d in a.labels) < len(plan.products)
    # One aspect off leaves the others' draws as they were (independent child generators).
    still = sample_appearance(replace(spec, camera_jitter_m=0.0, camera_orbit_deg=0.0), plan)
    assert still.camera == plan.camera and still.lighting == a.lighting and still.labels == a.labels
    assert still.furniture_rgba == a.furniture_rgba and still.background_rgb == a.background_rgb
    # The plan's own generator is untouched: the same plan whether or not the look is drawn.
    assert sample_plan("shelf", 11, "seen", SceneOptions(width=W, height=H)) == plan
    # "none" is the plan's camera and lighting, nothing else.
    none = sample_appearance(domain_rand_spec("none"), plan)
    assert none.camera == plan.camera and none.lighting == plan.lighting and none.labels == ()
    assert appearance_rng(11).random() != np.random.default_rng([11, 0]).random()


def test_labels_level_relabels_every_product_and_nothing_else():
    opts = SceneOptions(width=W, height=H)
    for kind, seed in (("shelf", 11), ("tabletop", 10_000_003)):
        plan = sample_plan(kind, seed, "seen", opts)
        look = sample_appearance(domain_rand_spec("labels"), plan)
        assert look.camera == plan.camera and look.lighting == plan.lighting and look.tint == (1.0, 1.0, 1.0)
        assert look.furniture_rgba == {} and look.floor_rgba is None and look.background_rgb is None
        assert len(look.labels) == len(plan.products) and all(d is not None for d in look.labels)
        # The same designs as "full" would draw for the products it relabels (the label generator is its own).
        full = sample_appearance(replace(domain_rand_spec("full"), label_prob=1.0), plan)
        assert full.labels == look.labels


def test_in_image_known_answers():
    plan = sample_plan("tabletop", 10_000_003, "seen", SceneOptions(width=W, height=H))
    cam = plan.camera
    eye, target = np.asarray(cam.eye_m), np.asarray(cam.target_m)
    points = np.array([target, eye + (eye - target), target + [5.0, 0.0, 0.0]])  # centre, behind, far aside
    assert in_image(cam, points).tolist() == [True, False, False]
    products = product_points(plan)
    assert keeps_in_view(cam, cam, products)
    assert not keeps_in_view(cam, replace(cam, target_m=tuple(target + [0.5, 0.0, 0.0])), products)


@pytest.mark.parametrize("kind,first", [("shelf", 0), ("tabletop", 10_000_000)])
def test_camera_jitter_keeps_the_products_in_view(kind, first):
    """Over 40 scenes: every product corner or centre the kind's camera shows stays in the randomised image, and
    the camera does move (in almost every scene) by up to the spec's limits."""
    spec = domain_rand_spec("full")
    moved = 0
    for seed in range(first, first + 40):
        plan = sample_plan(kind, seed, "seen", SceneOptions(width=W, height=H))
        look = sample_appearance(spec, plan)
        points = product_points(plan)
        assert points.shape == (9 * len(plan.products), 3)
        assert keeps_in_view(plan.camera, look.camera, points)
        shift = np.abs(np.subtract(look.camera.target_m, plan.camera.target_m))
        assert shift.max() <= spec.camera_jitter_m + 1e-9
        moved += look.camera != plan.camera
    assert moved >= 35


def test_only_training_suites_may_be_randomised():
    from graspsim.scenes.domain_rand import DomainRandError, check_domain_rand

    training = sorted(s.name for s in SUITES.values() if s.training)
    assert training == ["shelf-parts-train", "shelf-train", "tabletop-parts-train", "tabletop-train"]
    for suite in SUITES.values():
        assert check_domain_rand(suite, "none").enabled is False
        if suite.training:
            assert check_domain_rand(suite, "full").level == "full"
        else:
            with pytest.raises(DomainRandError, match="training suites only"):
                check_domain_rand(suite, "light")


# ------------------------------------------------------------------ rendered scenes
@pytest.fixture(scope="module")
def renders():
    """Scene 1 of tabletop-train rendered plain, with appearance-only randomisation (full, camera still), with
    full randomisation, and with full randomisation again in a fresh renderer."""
    from graspsim.data.labels import LabelConfig
    from graspsim.data.render import RenderSpec, SceneRenderer

    seed = get_suite(SUITE).scene_seeds(1, 1)[0]
    labels = LabelConfig(max_candidates=2).to_dict()  # a few validated labels per product: enough, and fast
    out = {}
    for name, level in [("plain", "none"), ("appearance", "full"), ("full", "full"), ("again", "full")]:
        renderer = SceneRenderer(RenderSpec(suite=SUITE, width=W, height=H, renderer="tiny", robot="hand",
                                            labels=labels, domain_rand=level))
        if name == "appearance":
            renderer.domain_rand = replace(renderer.domain_rand, camera_jitter_m=0.0, camera_orbit_deg=0.0)
        try:
            out[name] = renderer.render_scene(seed)
        finally:
            renderer.close()
    return out


def test_randomised_images_are_deterministic(renders):
    a, b = renders["full"], renders["again"]
    for key in ("rgb", "depth_mm", "instance", "class_map", "part_seg"):
        assert np.array_equal(a[key], b[key]), key
    assert json.dumps(a["meta"], default=str) == json.dumps(b["meta"], default=str)


def test_randomised_images_differ_from_plain_ones(renders):
    plain, look = renders["plain"], renders["appearance"]
    changed = np.any(plain["rgb"] != look["rgb"], axis=-1)
    assert changed.mean() > 0.5  # table, floor, background, light: most of the image
    relabelled = [k for k, d in enumerate(look["meta"]["domain_rand"]["labels"]) if d is not None]
    assert relabelled
    for k in relabelled:  # a relabelled product looks different on its own pixels
        mask = look["instance"] == k + 1
        if mask.sum() > 30:
            diff = np.abs(plain["rgb"][mask].astype(int) - look["rgb"][mask].astype(int)).mean()
            assert diff > 10, k
    assert "domain_rand" not in plain["meta"]


def test_labels_unchanged_by_appearance_randomisation(renders):
    """Same physics, same masks and depth, so the very same validated grasp labels."""
    plain, look = renders["plain"], renders["appearance"]
    for key in ("depth_mm", "instance", "class_map", "part_seg"):
        assert np.array_equal(plain[key], look[key]), key
    assert look["meta"]["objects"] == plain["meta"]["objects"]
    assert sum(len(o["grasps"]) for o in plain["meta"]["objects"]) > 0
    assert look["meta"]["plan"]["products"] == plain["meta"]["plan"]["products"]
    assert look["meta"]["plan"]["lighting"] != plain["meta"]["plan"]["lighting"]


def test_camera_randomisation_changes_only_camera_dependent_labels(renders):
    plain, full = renders["plain"], renders["full"]
    assert full["meta"]["plan"]["products"] == plain["meta"]["plan"]["products"]
    assert not np.allclose(full["meta"]["T_world_camera"], plain["meta"]["T_world_camera"])
    keys = ("product_index", "class_name", "class_index", "variant", "settled_pose")
    assert [{k: o[k] for k in keys} for o in full["meta"]["objects"]] == \
           [{k: o[k] for k in keys} for o in plain["meta"]["objects"]]
    # Every product the plain view shows is in the randomised view too.
    for o_plain, o_full in zip(plain["meta"]["objects"], full["meta"]["objects"]):
        if o_plain["visible_px"] > 0:
            assert o_full["visible_px"] > 0, o_plain["class_name"]


# ------------------------------------------------------------------ the command line
def test_cli_records_checks_and_refuses(tmp_path):
    from graspsim.data.cli_render import render_command

    runner = CliRunner()
    out = tmp_path / "dr"
    base = ["--scenes", "1", "--width", "64", "--height", "48", "--renderer", "tiny", "--robot", "hand",
            "--no-grasps", "--no-progress"]
    r = runner.invoke(render_command, ["--suite", SUITE, "--out", str(out), "--domain-rand", "light"] + base)
    assert r.exit_code == 0, r.output
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["config"]["domain_rand"] == json.loads(json.dumps(domain_rand_spec("light").to_dict()))
    meta = json.loads(next(out.glob("shards/*/*/meta.json")).read_text())
    assert meta["domain_rand"]["level"] == "light" and meta["plan"]["camera"] == meta["domain_rand"]["camera"]
    # Resume: the same level continues (nothing left to do), another level is one line naming both.
    r = runner.invoke(render_command, ["--suite", SUITE, "--out", str(out), "--domain-rand", "light", "--resume"]
                      + base)
    assert r.exit_code == 0, r.output
    for level, stored in (("none", "light"), ("full", "light")):
        r = runner.invoke(render_command, ["--suite", SUITE, "--out", str(out), "--domain-rand", level, "--resume"]
                          + base)
        assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1, r.output
        assert f"rendered with --domain-rand {stored}, not {level}" in r.output
    # The same level with other ranges (a preset changed since): the full settings check names the key.
    manifest["config"]["domain_rand"]["ambient"] = [0.1, 0.2]
    (out / "manifest.json").write_text(json.dumps(manifest))
    r = runner.invoke(render_command, ["--suite", SUITE, "--out", str(out), "--domain-rand", "light", "--resume"]
                      + base)
    assert r.exit_code == 2 and "'config.domain_rand'" in r.output, r.output
    # Evaluation suites stay as the benchmark shows them.
    r = runner.invoke(render_command, ["--suite", "shelf-unseen", "--out", str(tmp_path / "u"), "--domain-rand",
                                       "full"] + base)
    assert r.exit_code == 2 and len(r.output.strip().splitlines()) == 1 and "training suites only" in r.output
    assert not (tmp_path / "u").exists()
    r = runner.invoke(render_command, ["--suite", SUITE, "--out", str(tmp_path / "x"), "--domain-rand", "max"]
                      + base)
    assert r.exit_code == 2 and "'max' is not one of" in r.output


def test_unrandomised_manifest_has_no_domain_rand_key():
    from graspsim.data.render import RenderSpec, manifest_for

    assert "domain_rand" not in manifest_for(RenderSpec(suite=SUITE), [10_000_000])["config"]
    assert manifest_for(RenderSpec(suite=SUITE, domain_rand="full"), [10_000_000])["config"]["domain_rand"][
        "level"] == "full"
