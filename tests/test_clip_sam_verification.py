"""How clip_sam verifies its masks: the shape prior (class from a mask's 3-D shape: features against analytic depth
maps, its combination with CLIP, a tiny prior trained on rendered scenes whose loss falls, that resumes bit for bit and
loads), the pipeline's use of it, the point sweep when no attention peak finds the product, and the user-facing
errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from graspsim.policies.clip_sam.shape_prior import (FEATURE_NAMES, N_FEATURES, ShapePrior, ShapePriorNet,  # noqa: E402
                                                    combine, load_shape_prior, save_shape_prior, shape_features)
from graspsim.policies.clip_sam.train_shape import jitter_sizes, perturbed_mask  # noqa: E402

K = np.array([[500.0, 0.0, 320.0], [0.0, 500.0, 240.0], [0.0, 0.0, 1.0]])
F = {name: i for i, name in enumerate(FEATURE_NAMES)}


def _camera(yaw: float = 0.0, at=(0.0, 0.0, 1.0)) -> np.ndarray:
    """T_world_camera of a camera at ``at`` looking horizontally along world +y turned by ``yaw`` about world z
    (OpenCV axes: camera z forward, x right, y down)."""
    c, s = np.cos(yaw), np.sin(yaw)
    forward, right, down = np.array([-s, c, 0.0]), np.array([c, s, 0.0]), np.array([0.0, 0.0, -1.0])
    T = np.eye(4)
    T[:3, :3] = np.stack([right, down, forward], axis=1)
    T[:3, 3] = at
    return T


def _front_face(width_m: float, height_m: float, distance_m: float = 0.5):
    """Mask and depth (480, 640) of a fronto-parallel rectangle centred on the optical axis."""
    half_w = 0.5 * width_m / distance_m * K[0, 0]
    half_h = 0.5 * height_m / distance_m * K[1, 1]
    rows, cols = np.mgrid[0:480, 0:640]
    mask = (np.abs(cols - K[0, 2]) <= half_w) & (np.abs(rows - K[1, 2]) <= half_h)
    depth = np.where(mask, distance_m, 3.0).astype(np.float32)
    return mask, depth


def test_features_of_a_front_face_are_its_size_seen_level():
    mask, depth = _front_face(0.06, 0.20)
    f = shape_features(mask, depth, K, _camera(), "shelf")
    assert f.shape == (N_FEATURES,) and f.dtype == np.float32
    # percentile extents (3rd..97th) of a uniform spread are 94 % of it
    assert np.exp(f[F["log_height"]]) == pytest.approx(0.94 * 0.20, rel=0.03)
    assert np.exp(f[F["log_h_major"]]) == pytest.approx(0.94 * 0.06, rel=0.05)
    assert np.exp(f[F["log_e1"]]) == pytest.approx(0.94 * 0.20, rel=0.03)
    assert np.exp(f[F["log_e2"]]) == pytest.approx(0.94 * 0.06, rel=0.05)
    assert np.exp(f[F["log_e3"]]) < 0.002  # a flat face has no depth extent
    assert np.exp(f[F["log_area"]]) == pytest.approx(0.06 * 0.20, rel=0.05)
    assert f[F["fill"]] == pytest.approx(1.0, abs=0.02) and f[F["solidity"]] == pytest.approx(1.0, abs=0.02)
    assert f[F["view_down"]] == pytest.approx(0.0, abs=1e-6) and f[F["shelf"]] == 1.0
    assert shape_features(mask, depth, K, _camera(), "tabletop")[F["shelf"]] == 0.0


def test_features_do_not_depend_on_where_the_camera_stands_and_scale_with_the_product():
    mask, depth = _front_face(0.06, 0.20)
    here = shape_features(mask, depth, K, _camera(), "shelf")
    there = shape_features(mask, depth, K, _camera(yaw=1.1, at=(2.0, -1.0, 0.4)), "shelf")
    np.testing.assert_allclose(here, there, atol=1e-4)
    # the same face twice as large, twice as far: same pixels, every length x2, the area x4
    big = shape_features(mask, depth * 2.0, K, _camera(), "shelf")
    np.testing.assert_allclose(big[:6][here[:6] > np.log(0.002)] - here[:6][here[:6] > np.log(0.002)], np.log(2.0),
                               atol=1e-4)
    assert big[F["log_area"]] - here[F["log_area"]] == pytest.approx(2 * np.log(2.0), abs=1e-4)
    # jitter_sizes shifts the features exactly as a size change does
    rng = np.random.default_rng(0)
    shifted = jitter_sizes(here[None], rng, 0.05)[0]
    d = shifted[F["log_height"]] - here[F["log_height"]]
    assert d != 0 and shifted[F["log_area"]] - here[F["log_area"]] == pytest.approx(2 * d, abs=1e-5)
    np.testing.assert_array_equal(shifted[7:], here[7:])


def test_a_face_seen_from_above_has_view_down_near_one():
    mask, depth = _front_face(0.06, 0.10)
    T = np.eye(4)  # camera z (forward) = world -z: looking straight down
    T[:3, :3] = np.array([[1.0, 0, 0], [0, -1.0, 0], [0, 0, -1.0]])
    T[:3, 3] = (0, 0, 1.0)
    f = shape_features(mask, depth, K, T, "tabletop")
    assert f[F["view_down"]] == pytest.approx(1.0, abs=1e-6)
    assert np.exp(f[F["log_height"]]) < 0.002  # a face seen from above is level
    assert np.exp(f[F["log_h_major"]]) == pytest.approx(0.94 * 0.10, rel=0.05)


def test_too_few_pixels_with_depth_give_no_features():
    mask, depth = _front_face(0.06, 0.20)
    assert shape_features(mask, np.zeros_like(depth), K, _camera(), "shelf") is None
    tiny = np.zeros_like(mask)
    tiny[240:245, 320:325] = True  # 25 px < MIN_PIXELS
    assert shape_features(tiny, depth, K, _camera(), "shelf") is None


def test_combine_is_a_product_of_experts():
    clip = np.array([[0.5, 0.3, 0.2], [0.0, 0.0, 0.0], [0.2, 0.2, 0.6]])
    shape = np.array([[0.1, 0.8, 0.1], [0.3, 0.3, 0.4], [1 / 3, 1 / 3, 1 / 3]])
    out = combine(clip, shape, 1.0)
    np.testing.assert_allclose(out[0], np.array([0.05, 0.24, 0.02]) / 0.31, rtol=1e-6)
    np.testing.assert_array_equal(out[1], 0.0)  # an empty mask stays impossible
    np.testing.assert_allclose(out[2], clip[2], rtol=1e-6)  # an abstaining (uniform) prior changes nothing
    np.testing.assert_allclose(combine(clip, shape, 0.0), clip, rtol=1e-7)
    half = combine(clip, shape, 0.5)[0]
    want = clip[0] * np.sqrt(shape[0])
    np.testing.assert_allclose(half, want / want.sum(), rtol=1e-6)


def test_perturbed_masks_stay_on_the_product_and_are_never_empty():
    mask, _ = _front_face(0.06, 0.20)
    rng = np.random.default_rng(1)
    n = mask.sum()
    for _ in range(40):
        m = perturbed_mask(mask, rng)
        assert m.any() and 0.5 * n <= m.sum() <= 1.3 * n
        grown = np.zeros_like(mask)
        rows, cols = np.nonzero(mask)
        grown[rows.min() - 3:rows.max() + 4, cols.min() - 3:cols.max() + 4] = True
        assert not (m & ~grown).any()  # at most 3 px beyond the product


def test_class_probs_abstain_for_an_empty_mask_and_round_trip_through_a_checkpoint(tmp_path):
    torch.manual_seed(0)
    net = ShapePriorNet(n_classes=5, hidden=8)
    save_shape_prior(net, tmp_path)
    from graspsim.learn.checkpoint import write_metadata

    write_metadata(tmp_path, {"kind": "shape"})
    loaded = load_shape_prior(tmp_path)
    mask, depth = _front_face(0.06, 0.20)
    probs = loaded.class_probs([mask, np.zeros_like(mask)], depth, K, _camera(), "shelf")
    assert probs.shape == (2, 5)
    np.testing.assert_allclose(probs[1], 0.2)
    np.testing.assert_allclose(probs, ShapePrior(net).class_probs([mask, np.zeros_like(mask)], depth, K, _camera(),
                                                                   "shelf"), rtol=1e-6)
    config = json.loads((tmp_path / "config.json").read_text())
    config["features"] = ["log_height"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(ValueError, match="retrain it with `graspsim train shape`"):
        load_shape_prior(tmp_path)


# ------------------------------------------------------------------ training on rendered scenes


def test_tiny_shape_prior_trains_resumes_bit_for_bit_and_loads(seg_data, tmp_path):  # seg_data: conftest
    from safetensors.torch import load_file

    from graspsim.policies.clip_sam.train_shape import FeatureBank, train_shape

    bank = FeatureBank([seg_data], "train", copies=1, seed=2)
    assert len(bank) == 3 and bank.x.shape[1] == N_FEATURES and bank.perturbed.sum() > 0
    again = FeatureBank([seg_data], "train", copies=1, seed=2)
    np.testing.assert_array_equal(bank.x, again.x)  # perturbations are seeded per scene

    kw = dict(steps_per_epoch=15, lr=3e-3, seed=2, progress=False, log=lambda s: None, batch_size=64, hidden=16,
              copies=1)
    meta = train_shape([seg_data], tmp_path / "a", epochs=3, **kw)
    losses = [h["train_loss"] for h in meta["history"]]
    assert losses[-1] < losses[0], losses
    assert {"val_top1_clean", "val_nll_clean", "val_top3_noisy"} <= set(meta["metrics"])
    assert meta["kind"] == "shape" and meta["samples"]["train"] == len(bank.y)
    b = tmp_path / "b"
    early = train_shape([seg_data], b, epochs=3, max_minutes=1e-6, **kw)
    assert early["stopped_early"] and early["steps"] == 15
    train_shape([seg_data], b, epochs=3, resume=True, **kw)
    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    prior = load_shape_prior(tmp_path / "a")
    mask, depth = _front_face(0.06, 0.20)
    p = prior.class_probs([mask], depth, K, _camera(), "tabletop")
    assert p.shape == (1, 24) and p.sum() == pytest.approx(1.0, abs=1e-5)


def test_train_shape_cli_end_to_end_and_user_errors(seg_data, tmp_path):
    from click.testing import CliRunner

    from graspsim.cli import main

    out = tmp_path / "shape"
    r = CliRunner().invoke(main, ["train", "shape", "--data", str(seg_data), "--out", str(out), "--epochs", "1",
                                  "--steps-per-epoch", "3", "--hidden", "8", "--copies", "0", "--no-progress"])
    assert r.exit_code == 0, r.output
    line = json.loads(r.output.strip().splitlines()[-1])
    assert line["kind"] == "shape" and line["steps"] == 3 and (out / "model.safetensors").is_file()
    r = CliRunner().invoke(main, ["train", "shape", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "not a rendered dataset" in r.output and "Traceback" not in r.output


# ------------------------------------------------------------------ in the pipeline and the policy config


class _FixedPrior:
    """A shape prior that says "class 1" for every mask."""

    n_classes = 24

    def class_probs(self, masks, depth_m, K, T_world_camera, scene_kind):
        out = np.full((len(masks), 24), 0.001, dtype=np.float32)
        out[:, 1] = 1.0 - 23 * 0.001
        return out


def test_pipeline_verification_multiplies_clip_by_the_prior_when_the_camera_is_known():
    from graspsim.policies.clip_sam.pipeline import ClipSamPipeline

    pipe = ClipSamPipeline.__new__(ClipSamPipeline)  # only mask_probs is exercised: no models needed
    clip = np.full((2, 24), 1 / 24, dtype=np.float32)
    clip[0, 0], clip[0, 1] = 0.5, 0.1
    clip[0] /= clip[0].sum()
    pipe.crop_probs = lambda rgb, masks: clip
    pipe.shape_prior, pipe.shape_weight = _FixedPrior(), 1.0
    masks = [np.ones((4, 4), bool)] * 2
    stage = {"verify": 0.0}
    both = pipe.mask_probs(None, masks, None, K, _camera(), "shelf", stage)
    assert both[0].argmax() == 1 and "shape" in stage  # the shape overrules CLIP's 0.5 vs 0.1
    np.testing.assert_allclose(both, combine(clip, _FixedPrior().class_probs(masks, 0, 0, 0, 0), 1.0), rtol=1e-6)
    np.testing.assert_array_equal(pipe.mask_probs(None, masks, None, K, None, "shelf", {"verify": 0.0}), clip)
    pipe.shape_weight = 0.0
    np.testing.assert_array_equal(pipe.mask_probs(None, masks, None, K, _camera(), "shelf", {"verify": 0.0}), clip)


def test_policy_config_shape_prior_choices_and_a_missing_one_is_a_one_line_error(tmp_path):
    from graspsim.policies.clip_sam.config import CHECKPOINTS, ClipSamPolicyConfig, MissingModelError

    assert ClipSamPolicyConfig().shape_prior_dir() == CHECKPOINTS / "shape"
    assert ClipSamPolicyConfig(shape_prior="off").shape_prior_dir() is None
    assert ClipSamPolicyConfig(shape_weight=0.0).shape_prior_dir() is None
    assert ClipSamPolicyConfig(verify=False).shape_prior_dir() is None
    with pytest.raises(MissingModelError, match="shape prior .* not found.*shape_prior=off"):
        ClipSamPolicyConfig(shape_prior=str(tmp_path / "none")).check_files()
    ClipSamPolicyConfig().check_files()  # the shipped one is there and intact


def _sweep_pipeline(sweep_max: int, product_at=(200, 100)):
    """A pipeline whose SAM returns a 40x40 px square "product" around each point prompt (the grid of products
    the sweep expects) and whose verification says "the named product" only for the square around
    ``product_at``; records every prompted point."""
    from graspsim.policies.clip_sam.pipeline import ClipSamPipeline
    from graspsim.policies.clip_sam.segment import WindowMask

    pipe = ClipSamPipeline.__new__(ClipSamPipeline)
    pipe.sweep_max = sweep_max
    pipe.prompted, pipe.batches = [], []

    def segment(rgb, depth_m, K, prompts, exclude=None):
        out = []
        pipe.batches.append(len(prompts))
        for p in prompts:
            c, r = (int(v) for v in p.points[0])
            pipe.prompted.append((c, r))
            m = np.zeros((240, 320), bool)
            c0, r0 = (c // 40) * 40, (r // 40) * 40  # the product square holding the point
            m[r0:r0 + 40, c0:c0 + 40] = True
            out.append(WindowMask(m, 0.9))
        return out

    def mask_probs(rgb, masks, depth_m, K, T, kind, stage):
        probs = np.full((len(masks), 24), 0.01, dtype=np.float32)
        for i, m in enumerate(masks):
            if m[product_at[1], product_at[0]]:
                probs[i, 3] = 0.9
        return probs

    pipe.segment, pipe.mask_probs = segment, mask_probs
    return pipe


def test_the_sweep_finds_a_product_no_peak_found_and_skips_covered_robot_and_empty_pixels():
    from graspsim.policies.clip_sam.segment import WindowMask

    pipe = _sweep_pipeline(sweep_max=200)
    att = np.zeros((240, 320), np.float32)
    depth = np.ones((240, 320), np.float32)
    depth[:, :40] = 0.0  # no depth on the left
    exclude = np.zeros((240, 320), bool)
    exclude[200:, :] = True  # the robot at the bottom
    known = np.zeros((240, 320), bool)
    known[0:40, 0:80] = True  # a mask the peaks already gave
    found = pipe.sweep(None, depth, K, att, [WindowMask(known, 0.9)], exclude, None, None, 3, {"sam": 0.0})
    hits = [f for f in found if f[3] > 0.5]
    assert len(hits) == 1 and hits[0][2].mask[100, 200]
    for c, r in pipe.prompted:
        assert depth[r, c] > 0 and not exclude[r, c] and not known[r, c]
    # every grid product square is segmented once: the grid points on one square share a batch never, and a square
    # once found covers its other points
    squares = [((c // 40), (r // 40)) for c, r in pipe.prompted]
    assert len(squares) == len(set(squares))
    assert max(pipe.batches) <= 8


def test_the_sweep_stops_at_sweep_max_and_prefers_strong_attention():
    pipe = _sweep_pipeline(sweep_max=5)
    att = np.zeros((240, 320), np.float32)
    att[100:140, 200:240] = 1.0  # attention on the product's square
    found = pipe.sweep(None, np.ones((240, 320), np.float32), K, att, [], None, None, None, 3, {"sam": 0.0})
    assert len(found) == 5 and len(pipe.prompted) == 5
    assert found[0][3] > 0.5  # the strongest attention is tried first
