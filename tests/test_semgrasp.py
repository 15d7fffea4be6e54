"""semgrasp: tokens <-> rectangles, crops, config errors, a tiny training run, the predictor and the policy in bench.

One tiny dataset (2 scenes of tabletop-parts-train at 320x240, TinyRenderer, the floating hand) is rendered once
per session; a tiny network trains on it for a few epochs.
"""

from __future__ import annotations

import json
import math
import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest
from click.testing import CliRunner

from graspsim.assets.parts import PART_WORDS
from graspsim.policies.semgrasp.tokens import (TokenSpec, bin_widths, box_around, crop_box, finger_px,
                                               rect_to_tokens, tokens_to_rect)
from graspsim.types import GraspRect

TINY = {"crop_px": 32, "grid": 4, "channels": [8, 32], "d_model": 32, "heads": 2, "layers": 1, "ff": 64,
        "dropout": 0.0}


def _angle_diff(a: float, b: float) -> float:
    d = (a - b + math.pi / 2) % math.pi - math.pi / 2
    return abs(d)


# ----------------------------------------------------------------------------------------------------- tokens
def test_tokens_round_trip_within_half_a_bin():
    spec = TokenSpec()
    rng = np.random.default_rng(0)
    for _ in range(300):
        box = (float(rng.uniform(-20, 500)), float(rng.uniform(-20, 400)), float(rng.uniform(30, 200)))
        rect = GraspRect(x=box[0] + rng.uniform(0, 1) * box[2], y=box[1] + rng.uniform(0, 1) * box[2],
                         w=rng.uniform(0, spec.open_max) * box[2], h=9.0, theta=rng.uniform(-4, 4))
        part = PART_WORDS[int(rng.integers(len(PART_WORDS)))]
        tokens = rect_to_tokens(rect, part, box, spec)
        assert tokens.dtype == np.int64 and all(0 <= t < n for t, n in zip(tokens, spec.sizes))
        got_part, back = tokens_to_rect(tokens, box, 9.0, spec)
        half = {k: v / 2 + 1e-9 for k, v in bin_widths(box, spec).items()}
        assert got_part == part and back.h == 9.0
        assert abs(back.x - rect.x) <= half["x"] and abs(back.y - rect.y) <= half["y"]
        assert abs(back.w - rect.w) <= half["opening"]
        assert _angle_diff(back.theta, rect.theta) <= half["angle"]
        assert np.array_equal(rect_to_tokens(back, part, box, spec), tokens)  # bin centres map to their bin


def test_tokens_known_values_and_clamping():
    box = (100.0, 50.0, 200.0)
    spec = TokenSpec(n_angle=12, n_open=10, open_max=1.25, n_pos=20)
    # centre of the box, horizontal closing axis, opening half the side
    t = rect_to_tokens(GraspRect(200.0, 150.0, 100.0, 8.0, 0.0), "cap", box, spec)
    assert t.tolist() == [PART_WORDS.index("cap"), 6, 4, 10, 10]
    # theta and theta + pi are the same grasp; outside the box -> the edge bins
    assert rect_to_tokens(GraspRect(0.0, 999.0, 999.0, 8.0, math.pi), 1, box, spec).tolist() == [1, 6, 9, 0, 19]


def test_angle_bins_are_centred_on_level_axes_and_wrap():
    spec, old = TokenSpec(), TokenSpec(angle_centred=False)  # 15 degree bins
    deg = math.radians
    assert [spec.angle_bin(deg(a)) for a in (0, 7.4, -7.4, 7.6, -7.6, 15, 89, -89, -90, 90, 180)] == \
        [6, 6, 6, 7, 5, 7, 0, 0, 0, 0, 6]
    assert spec.angle_of(6) == pytest.approx(0.0) and spec.angle_of(0) == pytest.approx(-math.pi / 2)
    # the old bins: level is the edge between bins 5 and 6, and a bin centre is 7.5 degrees off level
    assert [old.angle_bin(deg(a)) for a in (0.1, -0.1, 14.9, 15.1)] == [6, 5, 6, 7]
    assert old.angle_of(6) == pytest.approx(deg(7.5))


def test_checkpoint_configs_without_angle_centred_keep_the_old_bins():
    from graspsim.policies.semgrasp.config import SemGraspNetConfig

    cfg = SemGraspNetConfig().to_dict()
    assert cfg["angle_centred"] is True
    legacy = {k: v for k, v in cfg.items() if k != "angle_centred"}
    assert SemGraspNetConfig.from_checkpoint(legacy).angle_centred is False
    assert SemGraspNetConfig.from_checkpoint(cfg).angle_centred is True
    assert SemGraspNetConfig.from_dict(legacy).angle_centred is True  # a user's --config: today's default


def test_crop_box_is_a_square_around_the_mask_with_a_margin():
    mask = np.zeros((100, 120), bool)
    mask[20:60, 30:50] = True  # 40 tall, 20 wide
    x0, y0, side = crop_box(mask)
    assert side == pytest.approx(40 * 1.3)
    assert (x0 + side / 2, y0 + side / 2) == pytest.approx((40.0, 40.0))
    assert box_around(0, 0, 2, 2)[2] == 24.0  # tiny masks get the minimum side
    with pytest.raises(ValueError, match="empty mask"):
        crop_box(np.zeros((4, 4), bool))


def test_finger_px_follows_depth():
    depth = np.full((50, 50), 0.5, np.float32)
    assert finger_px(depth, 25, 25, fx=600.0, finger_width_m=0.02) == pytest.approx(24.0)
    depth[:] = 0.0  # no depth anywhere: 1 m
    assert finger_px(depth, 25, 25, fx=600.0, finger_width_m=0.02) == pytest.approx(12.0)


def test_crop_input_channels():
    from graspsim.policies.semgrasp.crops import crop_input

    rgb = np.zeros((60, 80, 3), np.uint8)
    rgb[..., 0] = 255
    depth = np.full((60, 80), 1.0, np.float32)
    mask = np.zeros((60, 80), bool)
    mask[20:40, 30:50] = True
    depth[mask] = 0.9
    x = crop_input(rgb, depth, mask, crop_box(mask), 32)
    assert x.shape == (5, 32, 32) and x.dtype == np.float32
    assert x[0, 16, 16] == pytest.approx(2.0) and x[1, 16, 16] == pytest.approx(-2.0)  # (1 - 0.5) / 0.25
    assert x[3, 16, 16] == pytest.approx(0.0) and x[3, 0, 0] == pytest.approx(1.0)  # depth relative to the product
    assert x[4, 16, 16] == 1.0 and x[4, 0, 0] == 0.0


# ----------------------------------------------------------------------------------------------------- config
def test_config_errors_are_one_line():
    from graspsim.policies.registry import check_policy_args
    from graspsim.policies.semgrasp.config import SemGraspNetConfig

    for bad, match in (({"heads": 3}, "divisible by heads"), ({"crop_px": 30}, "multiple of 2 \\* grid"),
                       ({"n_pos": 1}, "n_pos must be >= 2"), ({"colour": 1}, "unknown SemGraspNetConfig")):
        with pytest.raises(ValueError, match=match) as info:
            SemGraspNetConfig.from_dict(bad)
        assert "\n" not in str(info.value)
    for args, match in (({"mask": "gt"}, "bad --policy-arg mask='gt'"),
                        ({"grasp_candidates": 0}, "grasp_candidates"),
                        ({"placement": "nearest"}, "bad --policy-arg placement='nearest'"),
                        ({"planner_candidates": 0}, "planner_candidates"),
                        ({"checkpont": "x"}, "unknown --policy-arg 'checkpont'")):
        with pytest.raises(ValueError, match=match) as info:
            check_policy_args("semgrasp", args, check_files=False)
        assert "\n" not in str(info.value)
    with pytest.raises(FileNotFoundError, match="graspsim train semgrasp"):
        check_policy_args("semgrasp", {"checkpoint": "/nonexistent", "mask": "oracle"})


def test_train_command_user_errors_exit_2(tmp_path):
    from graspsim.cli import main

    cases = ((["--data", str(tmp_path / "none"), "--out", str(tmp_path / "o")], "does not exist"),
             (["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--config", "{\"heads\": 3}"], "bad --config"))
    for args, match in cases:
        result = CliRunner().invoke(main, ["train", "semgrasp", *args])
        assert result.exit_code == 2, result.output
        assert match in result.output and "Traceback" not in result.output


# ------------------------------------------------------------------------------------------- tiny training
@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory):
    pytest.importorskip("torch")
    from graspsim.policies.clip_sam import minilm

    if not minilm.available():
        pytest.skip("all-MiniLM-L6-v2 is not installed")
    from graspsim.data.render import render_dataset
    from graspsim.policies.semgrasp.train import train_semgrasp

    root = tmp_path_factory.mktemp("semgrasp")
    data = root / "data"
    render_dataset("tabletop-parts-train", 2, data, width=320, height=240, renderer="tiny", progress=False,
                   robot="hand")
    meta = train_semgrasp(data, root / "ckpt", epochs=8, lr=3e-3, batch_size=4, val_fraction=0.0, progress=False,
                          num_threads=1, config=TINY, cache_dir=root / "cache")
    return {"data": data, "ckpt": root / "ckpt", "meta": meta, "cache": root / "cache"}


def test_tiny_semgrasp_trains_with_falling_loss(tiny_run):
    rows = [json.loads(line) for line in (tiny_run["ckpt"] / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 8
    assert rows[-1]["train_loss"] < 0.75 * rows[0]["train_loss"]
    meta = tiny_run["meta"]
    assert meta["finished"] and meta["model"] == "semgrasp" and meta["config"]["crop_px"] == 32
    assert meta["data"]["train_items"] > 0 and meta["data"]["val_is_train"]
    m = meta["metrics"]
    for key in ("acc_part", "acc_angle", "acc_angle_pm1", "acc_opening", "acc_x", "acc_y", "part_acc",
                "part_acc_heldout_phrasings", "part_acc_heldout_pairs", "items"):
        assert key in m
    assert 0.0 <= m["acc_angle"] <= m["acc_angle_pm1"] <= 1.0
    assert list((tiny_run["cache"]).glob("*.pkl"))  # the scenes' items were cached


def test_evaluate_command_and_cache(tiny_run):
    from graspsim.cli import main

    result = CliRunner().invoke(main, ["evaluate", "semgrasp", "--data", str(tiny_run["data"]), "--checkpoint",
                                       str(tiny_run["ckpt"]), "--cache", str(tiny_run["cache"])])
    assert result.exit_code == 0, result.output
    last_line = result.output.strip().splitlines()[-1]
    metrics = json.loads(last_line[last_line.index("{"):])
    last = tiny_run["meta"]["metrics"]
    assert metrics["scenes"] == 2 and metrics["items"] == last["items"]
    assert metrics["acc_part"] == pytest.approx(last["acc_part"])  # the same numbers as the last validation


def _tiny_predictor(tiny_run):
    """A SemGraspPredictor on the tiny trained checkpoint (no MiniLM: text states from the network's own table)."""
    from graspsim.policies.semgrasp.predictor import SemGraspPredictor, load_net
    from graspsim.policies.semgrasp.text import TextStates

    net, _ = load_net(tiny_run["ckpt"])
    return SemGraspPredictor(net, TextStates(net.config.max_text))


def _synthetic_product():
    """``(rgb (120, 160, 3) uint8, depth_m (120, 160), mask (120, 160) bool)``: a grey frame at 0.8 m with one
    60 x 30 px product's mask."""
    rgb = np.full((120, 160, 3), 90, np.uint8)
    depth = np.full((120, 160), 0.8, np.float32)
    mask = np.zeros((120, 160), bool)
    mask[30:90, 60:90] = True
    return rgb, depth, mask


def test_predictor_returns_rectangles_on_a_synthetic_crop(tiny_run):
    pred = _tiny_predictor(tiny_run)
    rgb, depth, mask = _synthetic_product()
    rgb[mask] = (200, 30, 30)
    depth[mask] = 0.7
    K = np.array([[200.0, 0, 80], [0, 200.0, 60], [0, 0, 1]])
    box, out = pred.predict(rgb, depth, mask, K, "pick the ketchup bottle by its cap", ("body", "neck", "cap"), k=3)
    assert len(out) == 3 and [d.logp for d in out] == sorted([d.logp for d in out], reverse=True)
    for d in out:
        assert d.part in ("body", "neck", "cap")
        assert box[0] <= d.rect.x <= box[0] + box[2] and box[1] <= d.rect.y <= box[1] + box[2]
        assert d.rect.w > 0 and d.rect.h == pytest.approx(0.021 * 200 / 0.7, rel=1e-3)
    assert len({int(d.tokens[1]) for d in out}) == 3  # one per angle bin


def test_policy_in_bench_end_to_end(tiny_run, tmp_path):
    from graspsim.cli import main

    out = tmp_path / "run"
    result = CliRunner().invoke(main, ["bench", "--policy", "semgrasp", "--policy-arg",
                                       f"checkpoint={tiny_run['ckpt']}", "--policy-arg", "threads=1",
                                       "--suite", "tabletop-parts-test", "--episodes", "1", "--out", str(out),
                                       "--width", "320", "--height", "240", "--renderer", "tiny", "--robot", "hand",
                                       "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "part-correct:" in result.output
    row = json.loads((out / "results.jsonl").read_text().splitlines()[0])
    assert row["target_part"] and row["policy_info"]["mask_source"] == "clip_sam"
    assert row["policy_info"]["part"] in PART_WORDS and len(row["policy_info"]["tokens"]) == 5
    assert row["policy_info"]["placed"] in ("rerank", "decoded")  # rerank by default; decoded when nothing planned
    if row["policy_info"]["placed"] == "rerank":  # the tiny checkpoint has a part head: part_rank=share used it
        assert 0 <= row["policy_info"]["mostly_on_part"] <= row["policy_info"]["planned"]


def test_shipped_checkpoint_is_small_verified_and_documented():
    from graspsim.learn.checkpoint import read_metadata, verify
    from graspsim.policies.registry import check_policy_args
    from graspsim.policies.semgrasp.config import SemGraspNetConfig, default_checkpoint

    path = default_checkpoint()
    if not (path / "model.safetensors").is_file():
        pytest.skip("no shipped semgrasp checkpoint in this tree")
    assert (path / "model.safetensors").stat().st_size < 5_000_000
    meta = read_metadata(path)
    verify(path, meta)
    assert meta["model"] == "semgrasp" and SemGraspNetConfig.from_dict(meta["config"])
    assert set(meta["data"]["suite"]) <= {"shelf-parts-train", "tabletop-parts-train"}  # never a test suite
    for key in ("acc_part", "acc_angle", "acc_angle_pm1", "acc_opening", "acc_x", "acc_y", "part_acc_heldout_pairs"):
        assert 0.0 <= meta["metrics"][key] <= 1.0
    assert meta["command"].startswith("graspsim train semgrasp") and "seed" in meta
    check_policy_args("semgrasp", {"mask": "oracle"})  # the default checkpoint is found and its sha256 matches


def test_snap_takes_the_nearest_planner_grasp_within_range():
    from graspsim.policies.semgrasp.predictor import snap

    box, spec = (0.0, 0.0, 200.0), TokenSpec()  # 10 px position bins, 15 degree angle bins
    rect = GraspRect(100.0, 100.0, 40.0, 10.0, 0.0)
    near = GraspRect(108.0, 100.0, 30.0, 10.0, math.radians(10))
    nearer = GraspRect(96.0, 103.0, 30.0, 10.0, math.pi - 0.01)  # theta ~ pi is theta ~ 0
    far = GraspRect(140.0, 100.0, 30.0, 10.0, 0.0)
    got, cost = snap(rect, [far, near, nearer], box, spec, max_bins=1.5)
    assert got is nearer and cost == pytest.approx(math.hypot(0.5, 0.01 / (math.pi / 12)), rel=1e-6)
    assert snap(rect, [far], box, spec) is None and snap(rect, [], box, spec) is None


# ------------------------------------------------------------------------------------ scoring and reranking
def test_token_logp_scores_the_greedy_sequence_as_generate_does(tiny_run):
    import torch

    from graspsim.policies.semgrasp.predictor import load_net

    net, _ = load_net(tiny_run["ckpt"])
    g = torch.Generator().manual_seed(0)
    crop = torch.randn(3, 5, 32, 32, generator=g)
    text = torch.randn(3, 6, 384, generator=g)
    valid = torch.ones(3, 6, dtype=torch.bool)
    tokens, logp = net.generate(crop, text, valid)
    per_token = net.token_logp(crop, text, valid, tokens[:, 0])
    assert per_token.shape == (3, 5) and bool((per_token <= 0).all())
    assert per_token.sum(1).numpy() == pytest.approx(logp[:, 0].numpy(), abs=1e-4)


def test_predictor_score_ranks_rectangles_by_their_tokens(tiny_run):
    pred = _tiny_predictor(tiny_run)
    rgb, depth, mask = _synthetic_product()
    K = np.array([[200.0, 0, 80], [0, 200.0, 60], [0, 0, 1]])
    text = "pick the ketchup bottle by its cap"
    box, out = pred.predict(rgb, depth, mask, K, text, ("cap",), k=3)
    scores = pred.score(rgb, depth, mask, text, "cap", [d.rect for d in out], box)
    # the decoded rectangles' own tokens: the score is their log-probability without the part token's share
    import torch

    crop, t, v = pred._inputs(rgb, depth, mask, box, text)
    part_lp = pred.net.token_logp(crop, t, v, torch.from_numpy(out[0].tokens[None]))[0, 0].item()
    assert scores == pytest.approx([d.logp - part_lp for d in out], abs=1e-4)
    assert pred.score(rgb, depth, mask, text, "cap", []).shape == (0,)


def test_train_tail_split_and_init_from_a_checkpoint(tiny_run, tmp_path):
    from graspsim.data.reader import split_tail
    from graspsim.policies.semgrasp.train import train_semgrasp

    keys = [("a", s) for s in (5, 1, 3, 2, 4)] + [("b", 10), ("b", 11), ("c", 7)]
    train, val = split_tail(keys, 0.3)
    assert val == {("a", 4), ("a", 5), ("b", 11)} and train == set(keys) - val  # "c" has one scene: train only
    assert split_tail(keys, 0.0) == (set(keys), set(keys))
    with pytest.raises(ValueError, match="val_fraction"):
        split_tail(keys, 1.0)
    meta = train_semgrasp(tiny_run["data"], tmp_path / "ft", epochs=1, lr=1e-4, batch_size=4, val_fraction=0.5,
                          val_split="tail", init=tiny_run["ckpt"], progress=False, num_threads=1, config=TINY,
                          cache_dir=tiny_run["cache"])
    seeds = sorted(k[1] for k in meta["data"]["val_keys"])
    assert meta["val_split"] == "tail" and meta["data"]["val_scenes"] == 1 and meta["data"]["train_scenes"] == 1
    assert seeds == [max(s for _, s in (tuple(k) for k in tiny_run["meta"]["data"]["val_keys"]))]  # the higher seed
    assert meta["init"] == str(tiny_run["ckpt"].resolve())
    # started from the tiny checkpoint at a small rate: its first-epoch loss is near the tiny run's last
    rows = [json.loads(line) for line in (tmp_path / "ft" / "metrics.jsonl").read_text().splitlines()]
    first = [json.loads(line) for line in (tiny_run["ckpt"] / "metrics.jsonl").read_text().splitlines()]
    assert rows[0]["train_loss"] < 0.5 * (first[0]["train_loss"] + first[-1]["train_loss"])


def test_train_init_with_another_config_exits_2(tiny_run, tmp_path):
    from graspsim.cli import main

    result = CliRunner().invoke(main, ["train", "semgrasp", "--data", str(tiny_run["data"]), "--out",
                                       str(tmp_path / "o"), "--init", str(tiny_run["ckpt"]), "--quiet"])
    assert result.exit_code == 2, result.output
    assert "not a semgrasp checkpoint with this network config" in result.output and "Traceback" not in result.output


def test_strip_distance_is_the_distance_from_the_closing_axis_line():
    from graspsim.policies.semgrasp.policy import strip_distance

    level = strip_distance((30, 40), GraspRect(10.0, 20.0, 8.0, 4.0, 0.0))  # closing axis along x
    assert level[20, 0] == 0.0 and level[25, 39] == pytest.approx(5.0) and level[0, 10] == pytest.approx(20.0)
    upright = strip_distance((30, 40), GraspRect(10.0, 20.0, 8.0, 4.0, math.pi / 2))  # along y
    assert upright[0, 10] == pytest.approx(0.0, abs=1e-9) and upright[5, 13] == pytest.approx(3.0)
    diagonal = strip_distance((30, 40), GraspRect(0.0, 0.0, 8.0, 4.0, math.pi / 4))
    assert diagonal[7, 7] == pytest.approx(0.0, abs=1e-9) and diagonal[0, 2] == pytest.approx(math.sqrt(2))


# ------------------------------------------------------------------------------------------- the part head
def test_part_words_map_part_seg_labels_to_the_global_vocabulary():
    from graspsim.assets.parts import part_names
    from graspsim.policies.semgrasp.samples import part_words

    names = part_names("ketchup_bottle")  # body, neck, cap: part_seg 1, 2, 3
    part_seg = np.zeros((6, 8), np.uint8)
    part_seg[1:5, 2:6] = np.array([1, 2, 3, 1], np.uint8)[:, None]
    mask = np.zeros((6, 8), bool)
    mask[1:5, 2:5] = True  # column 5 carries labels of another product: not this one's
    words = part_words(part_seg, mask, "ketchup_bottle")
    assert words.dtype == np.uint8 and not words[~mask].any()
    for r, c in zip(*np.nonzero(mask)):
        assert PART_WORDS[words[r, c] - 1] == names[part_seg[r, c] - 1]
    assert not part_words(None, mask, "ketchup_bottle").any()


def test_label_crops_round_trip_into_the_frame():
    from graspsim.policies.semgrasp.crops import labels_to_frame, warp_labels

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 5, size=(40, 50)).astype(np.uint8)
    box = (10.0, 5.0, 24.0)  # 24 px square: at 48 px each frame pixel is 2 x 2 crop pixels
    crop = warp_labels(labels, box, 48)
    assert crop.shape == (48, 48) and np.array_equal(crop[::2, ::2], labels[5:29, 10:34])
    back = labels_to_frame(crop, box, labels.shape)
    assert np.array_equal(back[5:29, 10:34], labels[5:29, 10:34])
    outside = np.ones(labels.shape, bool)
    outside[5:29, 10:34] = False
    assert not back[outside].any()
    assert not warp_labels(labels, (-30.0, -30.0, 20.0), 16).any()  # a box off the image: all 0


def test_part_target_is_the_part_words_under_the_crop(tiny_run):
    import pickle

    from graspsim.policies.semgrasp.samples import jittered_crop, part_target

    products = [p for f in sorted(tiny_run["cache"].glob("*.pkl")) for p in pickle.loads(f.read_bytes())]
    assert products and all(p.part is not None for p in products)
    for i, p in enumerate(products[:6]):
        crop, box = jittered_crop(p, 32, np.random.default_rng(i) if i % 2 else None)
        target = part_target(p, box, 32)
        assert target.shape == (32, 32) and target.min() >= -1 and target.max() < len(PART_WORDS)
        on = target >= 0
        assert on.any() and set(PART_WORDS[w] for w in np.unique(target[on])) <= set(p.grasps) | set(PART_WORDS)
        if i % 2 == 0:  # nominal box, mask channel untouched: the target covers exactly the product's pixels
            assert np.array_equal(on, crop[4] > 0)


def test_tiny_part_head_learns_and_predicts_only_allowed_parts_on_the_mask(tiny_run):
    rows = [json.loads(line) for line in (tiny_run["ckpt"] / "metrics.jsonl").read_text().splitlines()]
    assert rows[-1]["train_loss_partseg"] < 0.8 * rows[0]["train_loss_partseg"]
    m = tiny_run["meta"]["metrics"]
    assert 0.5 < m["partseg_acc"] <= 1.0 and 0.0 < m["partseg_miou"] <= 1.0
    pred = _tiny_predictor(tiny_run)
    rgb, depth, mask = _synthetic_product()
    box = crop_box(mask)
    words = pred.part_words(rgb, depth, mask, box, ("cap", "body"))
    assert words.shape == mask.shape and not words[~mask].any()
    assert set(np.unique(words[mask])) <= {PART_WORDS.index("cap") + 1, PART_WORDS.index("body") + 1}


def test_init_without_a_part_head_starts_one(tiny_run, tmp_path):
    from graspsim.learn.checkpoint import load_weights, read_metadata
    from graspsim.policies.semgrasp.train import train_semgrasp

    common = dict(lr=1e-3, batch_size=4, val_fraction=0.0, progress=False, num_threads=1,
                  cache_dir=tiny_run["cache"])
    train_semgrasp(tiny_run["data"], tmp_path / "plain", epochs=1, config={**TINY, "part_head": False}, **common)
    plain = load_weights(tmp_path / "plain", read_metadata(tmp_path / "plain"))
    assert not any(k.startswith("part_head.") for k in plain)
    meta = train_semgrasp(tiny_run["data"], tmp_path / "head", epochs=1, config=TINY, init=tmp_path / "plain",
                          **common)
    assert meta["config"]["part_head"] and "partseg_acc" in meta["metrics"]
    with pytest.raises(ValueError, match="network config"):  # a head cannot be dropped by --init
        train_semgrasp(tiny_run["data"], tmp_path / "drop", epochs=1, config={**TINY, "part_head": False},
                       init=tmp_path / "head", **common)


def test_part_share_is_the_share_of_the_chord_on_the_part():
    from graspsim.policies.semgrasp.policy import part_share

    mask = np.zeros((40, 60), bool)
    mask[10:30, 10:50] = True  # a product lying along x: part 1 left of column 30, part 2 right of it
    labels = np.where(mask, np.where(np.arange(60)[None, :] < 30, 1, 2), 0)
    across_left = GraspRect(20.0, 20.0, 30.0, 6.0, math.pi / 2)  # closes along y across the left half
    across_right = GraspRect(40.0, 20.0, 30.0, 6.0, math.pi / 2)
    along = GraspRect(30.0, 20.0, 50.0, 6.0, 0.0)  # closes along x over both halves
    off = GraspRect(5.0, 5.0, 4.0, 2.0, 0.0)
    share = part_share([across_left, across_right, along, off], labels, 1, mask)
    assert share[0] == pytest.approx(1.0) and share[1] == pytest.approx(0.0)
    assert share[2] == pytest.approx(0.5, abs=0.05) and share[3] == 0.0
