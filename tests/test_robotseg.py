"""RobotSeg: prompts derived from masks (known answers), the network's prompt generator, every prompt mode, the
video memory, training (loss falls, resume bit for bit, label-efficient), `graspsim evaluate robot-masks` end
to end and its one-line errors. Tiny configs (64 px input) on a tiny render (80x60, TinyRenderer); no downloads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from graspsim.policies.robotseg.config import PROMPT_MODES, RobotSegConfig, parse_prompt_mode  # noqa: E402
from graspsim.policies.robotseg.prompts import box, clicks, derive_prompt  # noqa: E402

TINY = {"image_size": 64, "hiera_dim": 8, "dim": 16, "decoder_heads": 2, "rpg_queries": 2, "rpg_layers": 1}
TRAIN = dict(config=RobotSegConfig.from_dict(TINY), steps_per_epoch=4, batch_size=2, val_items=2, lr=1e-2,
             progress=False, log=lambda s: None)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """One tabletop training scene (seed 10000001: a training seed, not held out): Panda and xArm6 views, two
    views each, and one Panda grasp video, through the command line (~10 s)."""
    from graspsim.data.cli_robot_views import render_robot_views_command

    out = tmp_path_factory.mktemp("robotseg") / "d"
    r = CliRunner().invoke(render_robot_views_command, [
        "--suite", "tabletop-train", "--seed", "1", "--scenes", "1", "--out", str(out), "--embodiments",
        "panda,xarm6", "--views-per-scene", "2", "--videos", "1", "--width", "80", "--height", "60",
        "--renderer", "tiny", "--no-progress"])
    assert r.exit_code == 0, r.output
    return out


def _changed(a: np.ndarray, b: np.ndarray) -> bool:
    """True when ``b`` differs from ``a`` by more than 1 % of ``a``'s largest value (a fresh network's logits
    are ~1e-6: an absolute threshold would say nothing)."""
    return float(np.abs(a - b).max()) > 1e-2 * float(np.abs(a).max())


def _net(seed: int = 0, **over):
    from graspsim.policies.robotseg.model import RobotSegNet

    torch.manual_seed(seed)
    return RobotSegNet(RobotSegConfig.from_dict({**TINY, **over})).eval()


# ------------------------------------------------------------------ prompts from masks


def test_clicks_and_boxes_have_known_answers():
    m = np.zeros((40, 60), bool)
    m[10:21, 5:46] = True  # 11 rows x 41 columns: centre (x=25, y=15)
    assert clicks(m, 1).tolist() == [[25.0, 15.0]]
    three = clicks(m, 3)
    assert len(three) == 3 and all(m[int(y), int(x)] for x, y in three)
    # then the pixels maximising min(distance to the boundary (6 on the middle row), distance to the clicks)
    assert three.tolist() == [[25.0, 15.0], [19.0, 15.0], [31.0, 15.0]]
    assert box(m).tolist() == [5.0, 10.0, 46.0, 21.0]  # pixel edges
    assert derive_prompt(np.zeros((4, 4), bool), "box") is None and derive_prompt(m, "auto") is None
    p = derive_prompt(m, "box")
    assert p.box.tolist() == [5.0, 10.0, 46.0, 21.0] and len(p.points) == 0
    assert derive_prompt(m, "3-click").labels.tolist() == [1, 1, 1]
    # deterministic: the same mask gives the same clicks
    assert np.array_equal(clicks(m, 3), clicks(m.copy(), 3))


def test_bad_prompt_mode_names_the_modes():
    assert parse_prompt_mode(" Box ") == "box"
    with pytest.raises(ValueError, match="auto, 1-click, 3-click, box"):
        parse_prompt_mode("2-click")


# ------------------------------------------------------------------ network and predictor


def test_prompt_generator_yields_masks_without_clicks():
    """Automatic mode: three (H, W) masks for a 60x80 picture, made from the generator's tokens (other learned
    queries give other masks), no point or box anywhere."""
    from graspsim.policies.robotseg.predictor import RobotSegPredictor

    net = _net()
    rgb = np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    out = RobotSegPredictor(net).predict(rgb)
    assert set(out.masks) == {"arm", "gripper", "whole"}
    assert all(m.shape == (60, 80) and m.dtype == bool for m in out.masks.values())
    assert out.logits.shape == (3, 16, 16)
    with torch.no_grad():
        net.rpg.queries.add_(1.0)
    again = RobotSegPredictor(net).predict(rgb)
    assert _changed(out.logits, again.logits)


def test_every_prompt_mode_runs_and_prompts_change_the_output():
    from graspsim.policies.robotseg.predictor import RobotSegPredictor

    pred = RobotSegPredictor(_net())
    rgb = np.random.default_rng(1).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    mask = np.zeros((60, 80), bool)
    mask[20:40, 10:50] = True
    enc = pred.encode(rgb)
    auto = pred.decode(enc).logits
    for mode in PROMPT_MODES:
        out = pred.decode(enc, derive_prompt(mask, mode))
        assert all(m.shape == (60, 80) for m in out.masks.values())
        if mode != "auto":
            assert _changed(auto, out.logits), mode


def test_video_memory_changes_the_second_frame_only():
    from graspsim.policies.robotseg.predictor import RobotSegPredictor

    pred = RobotSegPredictor(_net())
    frames = np.random.default_rng(2).integers(0, 256, (2, 60, 80, 3), dtype=np.uint8)
    with_mem = pred.predict_video(frames)
    alone = pred.predict_video(frames, use_memory=False)
    assert np.array_equal(with_mem[0].logits, alone[0].logits)  # frame 0 has nothing to remember
    assert _changed(alone[1].logits, with_mem[1].logits)
    no_memory_net = RobotSegPredictor(_net(memory=False))
    with pytest.raises(ValueError, match="without a video memory"):
        no_memory_net.predict(frames[1], memory=with_mem[0].logits)


OUTPUT_NAMES = ("arm", "gripper", "whole")


def test_memory_parts_leave_the_other_parts_as_in_image_mode(tmp_path):
    """``memory_parts=("whole",)``: on a later frame the arm and the gripper are the memoryless decode's, the whole
    robot the remembered one (no gate) or the one the IoU head rates higher (gate); from the metadata too."""
    from graspsim.learn.checkpoint import save_weights, write_metadata
    from graspsim.policies.robotseg.predictor import RobotSegPredictor, predictor_for

    net = _net()
    frames = np.random.default_rng(2).integers(0, 256, (2, 60, 80, 3), dtype=np.uint8)
    every = RobotSegPredictor(net).predict_video(frames)
    whole_only = RobotSegPredictor(net, memory_parts=("whole",))
    assert whole_only.settings()["memory_parts"] == ["whole"]
    video = whole_only.predict_video(frames)
    enc = whole_only.encode(frames[1])
    alone, remembered = whole_only.decode(enc), whole_only.decode(enc, memory=video[0].logits)
    assert _changed(alone.image_logits, remembered.image_logits)  # the memory matters on this frame
    assert np.array_equal(video[1].masks["whole"], remembered.masks["whole"])
    assert np.array_equal(video[1].masks["whole"], every[1].masks["whole"])
    for part in ("arm", "gripper"):
        assert np.array_equal(video[1].masks[part], alone.masks[part])
    assert np.array_equal(video[1].logits, alone.logits)  # what the next frame remembers: the memoryless decode
    gated = RobotSegPredictor(net, memory_gate=True, memory_parts=("whole",)).predict_video(frames)
    chosen = remembered if remembered.iou[2] > alone.iou[2] else alone
    assert np.array_equal(gated[1].masks["whole"], chosen.masks["whole"])
    assert np.array_equal(gated[1].masks["gripper"], alone.masks["gripper"])
    # the robot presence gate judges each part by the decode it came from: a threshold between the two decodes'
    # largest whole-robot logits empties exactly the parts of the lower one (the other parts stay as in image mode)
    low, high = sorted([alone.image_logits[2].max(), remembered.image_logits[2].max()])
    assert high > low and all(d.masks[p].any() for d in (alone, remembered) for p in OUTPUT_NAMES)  # not vacuous
    gate = RobotSegPredictor(net, memory_parts=("whole",), robot_presence=float(low + high) / 2)
    frame1 = gate.predict(frames[1], memory=video[0].logits)
    whole_kept = remembered.image_logits[2].max() > low
    assert frame1.masks["whole"].any() == (whole_kept and remembered.masks["whole"].any())
    for part in ("arm", "gripper"):
        assert not frame1.masks[part].any() if whole_kept else np.array_equal(frame1.masks[part], alone.masks[part])
    with pytest.raises(ValueError, match="memory_parts: hand not among arm, gripper, whole"):
        RobotSegPredictor(net, memory_parts=("whole", "hand"))
    save_weights(tmp_path, net.state_dict())
    write_metadata(tmp_path, {"config": RobotSegConfig.from_dict(TINY).to_dict(), "memory_parts": ["whole"]})
    assert predictor_for(tmp_path)[0].memory_parts == ("whole",)


def test_an_untrained_refiner_returns_the_coarse_masks_upsampled_and_learns():
    """The refinement head starts at zero (a refined network starts where the coarse one is), gives S x S logits,
    the predictor's masks are read from them, and the loss's gradient reaches the head."""
    import torch.nn.functional as F

    from graspsim.policies.robotseg.predictor import RobotSegPredictor
    from graspsim.policies.robotseg.train import output_loss

    net = _net(refine=4)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        out = net(pixels)
    assert out["fine"].shape == (2, 3, 64, 64) and out["logits"].shape == (2, 3, 16, 16)
    up = F.interpolate(out["logits"], size=(64, 64), mode="bilinear", align_corners=False)
    assert torch.allclose(out["fine"], up, atol=1e-6)
    target = (torch.rand(2, 3, 64, 64) > 0.5).float()
    output_loss(net.train()(pixels), target).backward()
    assert float(net.refiner.head[0].weight.grad.abs().sum()) > 0
    with torch.no_grad():
        net.refiner.head[0].bias.copy_(torch.tensor([50.0] * 4 + [-50.0] * 4 + [50.0] * 4))
    masks = RobotSegPredictor(net.eval()).predict(np.zeros((60, 80, 3), np.uint8)).masks
    # pixel shuffle: channel 4c + k is output c's sub-pixel k; +50 on arm and whole, -50 on gripper everywhere
    assert masks["arm"].all() and masks["whole"].all() and not masks["gripper"].any()
    with pytest.raises(ValueError, match="refine must be >= 0"):
        RobotSegConfig(refine=-1)


def test_zoom_window_known_answers():
    from graspsim.policies.robotseg.predictor import zoom_window

    g = np.zeros((240, 320), bool)
    assert zoom_window(g) is None
    g[50:70, 100:120] = True  # 20 x 20: a 60 px window centred on (110, 60)
    assert zoom_window(g) == (80, 30, 140, 90)
    g[200, 300] = True  # a stray pixel does not move or widen it (largest component)
    assert zoom_window(g) == (80, 30, 140, 90)
    edge = np.zeros((240, 320), bool)
    edge[0:4, 0:6] = True  # small and at the corner: the 40 px minimum, shifted inside the image
    assert zoom_window(edge) == (0, 0, 40, 40)
    big = np.ones((60, 80), bool)  # at most the image's smaller side
    assert zoom_window(big) == (10, 0, 70, 60)


def test_gripper_crop_contains_the_gripper_and_is_letterboxed():
    from graspsim.policies.robotseg.data import gripper_crop

    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (240, 320, 3), dtype=np.uint8)
    seg = np.zeros((240, 320), np.uint8)
    seg[40:140, 0:200] = 1
    seg[100:118, 150:170] = 2
    assert gripper_crop(rgb, np.where(seg == 2, 1, seg).astype(np.uint8), 64, rng) is None
    for _ in range(20):
        crop_rgb, crop_seg = gripper_crop(rgb, seg, 64, rng)
        assert crop_rgb.shape == (64, 64, 3) and crop_seg.shape == (64, 64)
        # an 18 x 20 gripper in a 45-81 px window: 14-28 % of the crop's pixels (the window is square: no padding)
        share = float((crop_seg == 2).mean())
        assert 0.9 * (18 * 20) / 81 ** 2 <= share <= 1.1 * (18 * 20) / 45 ** 2, share
    # a wide gripper at the bottom edge: the zoom window is shifted up into the image, the crops stay on the
    # gripper (centred on it, not on the shifted window)
    edge = np.zeros((240, 320), np.uint8)
    edge[221:240, 45:113] = 2
    for _ in range(50):
        # at least half the gripper (1,292 px) in a window of at most 240 px: > 1.1 % of the crop
        assert (gripper_crop(rgb, edge, 64, rng)[1] == 2).mean() > 0.5 * 1292 / 240 ** 2


def test_arm_crops_are_centred_on_the_arm_and_may_hold_no_gripper():
    from graspsim.policies.robotseg.data import arm_crop

    rng = np.random.default_rng(0)
    seg = np.zeros((240, 320), np.uint8)
    rgb = np.zeros((240, 320, 3), np.uint8)
    assert arm_crop(rgb, seg, 64, rng) is None  # no arm pixel
    seg[100:140, 20:60] = 1   # an arm patch far from ...
    seg[200:230, 280:310] = 2  # ... the gripper
    empty = 0
    for _ in range(40):
        crop_rgb, crop_seg = arm_crop(rgb, seg, 64, rng)
        assert crop_rgb.shape == (64, 64, 3) and crop_seg.shape == (64, 64) and (crop_seg == 1).any()
        empty += not (crop_seg == 2).any()
    assert empty > 20  # most windows (40-120 px) around the arm patch miss the gripper


def test_first_pass_crops_cut_the_given_window_jittered_and_may_hold_no_gripper():
    from graspsim.policies.robotseg.data import window_crop

    rng = np.random.default_rng(0)
    seg = np.zeros((240, 320), np.uint8)
    rgb = np.zeros((240, 320, 3), np.uint8)
    seg[100:140, 20:60] = 1    # the wrist, where a first pass put its window ...
    seg[200:230, 280:310] = 2  # ... far from the gripper
    rgb[118:122, 38:42] = 255  # a marker at the window's centre
    for _ in range(30):
        crop_rgb, crop_seg = window_crop(rgb, seg, (0, 80, 80, 160), 64, rng)
        assert crop_rgb.shape == (64, 64, 3) and crop_seg.shape == (64, 64)
        assert not (crop_seg == 2).any() and (crop_seg == 1).any()  # no gripper: the target says so
        ys, xs = np.nonzero(crop_rgb[:, :, 0] > 100)
        # the side is 68-96 px (0.85-1.2 x 80), the centre moved by <= 10 %: the marker stays near the middle
        assert ys.size and abs(ys.mean() - 32) < 64 * 0.2 and 32 - 64 * 0.2 < xs.mean() < 40


def test_first_pass_windows_are_the_predictors_zoom_windows_and_feed_the_crops(dataset, tmp_path):
    """A first pass whose refinement head says "gripper" everywhere: every training picture's window is the
    centred 60 px square of its 60x80 render (zoom_window of an all-true mask), and a batch of first-pass crops
    only shows pixels from inside such windows."""
    from graspsim.policies.robotseg.data import RobotBank
    from graspsim.policies.robotseg.train import first_pass_windows, supervised_batch

    net = _net(refine=4)
    with torch.no_grad():
        net.refiner.head[0].bias.copy_(torch.tensor([-50.0] * 4 + [50.0] * 4 + [-50.0] * 4))
    bank = RobotBank([dataset], "train", 64, keep_full=True)
    windows = first_pass_windows(net, bank, bank.labelled())
    assert [i for i, _ in windows] == bank.labelled() and {w for _, w in windows} == {(10, 0, 70, 60)}
    assert first_pass_windows(_net(), bank, []) == []
    # a small window in the corner: jittered, it is the 40 px minimum square there, (0, 0, 40, 40), whatever the draw;
    # the crops' targets are that square's labels letterboxed (or flipped), the gripper in them or not
    from graspsim.policies.robotseg.data import targets
    from graspsim.policies.robotseg.predictor import letterbox

    i = bank.labelled()[0]
    batch = supervised_batch(bank, 4, np.random.default_rng(0), zoom_only=True, first_pass_crops=1.0,
                             windows=[(i, (0, 0, 12, 12))])
    expect = targets(letterbox(bank.pictures[i].full_seg[:40, :40], 64, "nearest")[0])
    assert batch["mode"] == "auto" and batch["targets"].shape == (4, 3, 64, 64)
    assert all(np.array_equal(t, expect) or np.array_equal(t, expect[:, :, ::-1]) for t in batch["targets"])
    # --empty-window-crops 1: every crop from the empty windows' list, never from the others
    batch = supervised_batch(bank, 4, np.random.default_rng(0), zoom_only=True, first_pass_crops=1.0,
                             windows=[(i, (40, 20, 80, 60))], empty_window_crops=1.0,
                             empty_windows=[(i, (0, 0, 12, 12))])
    assert all(np.array_equal(t, expect) or np.array_equal(t, expect[:, :, ::-1]) for t in batch["targets"])


def test_gripper_zoom_replaces_the_gripper_inside_the_window_only():
    """A network whose refinement head says "gripper" everywhere: the first pass marks the whole 60x80 picture,
    the zoom's window is the centred 60 px square (zoom_window), and the zoomed gripper mask is exactly it."""
    from graspsim.policies.robotseg.predictor import RobotSegPredictor

    net = _net(refine=4)
    with torch.no_grad():
        net.refiner.head[0].bias.copy_(torch.tensor([-50.0] * 4 + [50.0] * 4 + [-50.0] * 4))
    rgb = np.zeros((60, 80, 3), np.uint8)
    plain = RobotSegPredictor(net).predict(rgb).masks["gripper"]
    zoomed = RobotSegPredictor(net, gripper_zoom=True).predict(rgb)
    expect = np.zeros((60, 80), bool)
    expect[0:60, 10:70] = True
    assert plain.all() and np.array_equal(zoomed.masks["gripper"], expect)
    assert not zoomed.masks["whole"].any()  # only the gripper is replaced


def test_prompted_zoom_window_and_box_cut_known_answers():
    """A box on the gripper is taken as the gripper's box; a box on the robot keeps the first pass's gripper
    inside it; a click picks the gripper component under it; the box cut grows the box by the margin."""
    from graspsim.policies.robotseg.predictor import cut_to_box, prompted_zoom_window, zoom_window
    from graspsim.policies.robotseg.prompts import MaskPrompt

    gripper = np.zeros((240, 320), bool)
    gripper[50:70, 100:120] = True  # component A, 20 x 20: zoom_window (80, 30, 140, 90)
    gripper[150:160, 10:20] = True  # component B, 10 x 10, away from the arm
    arm = np.zeros_like(gripper)
    arm[70:200, 100:250] = True
    masks = {"arm": arm, "gripper": gripper, "whole": arm | gripper}
    no_clicks = (np.zeros((0, 2)), np.zeros(0, dtype=np.int64))
    on_gripper = MaskPrompt(*no_clicks, np.array([105.0, 55.0, 115.0, 65.0]))  # 10 x 10: a 40 px window
    assert prompted_zoom_window(on_gripper, masks) == (90, 40, 130, 80)
    on_robot = MaskPrompt(*no_clicks, np.array([95.0, 45.0, 255.0, 205.0]))  # fits the whole robot: A inside it
    assert prompted_zoom_window(on_robot, masks) == zoom_window(gripper) == (80, 30, 140, 90)
    empty = {k: np.zeros_like(v) for k, v in masks.items()}  # nothing predicted: the box is the gripper's
    assert prompted_zoom_window(on_robot, empty) == (55, 0, 295, 240)  # 3 x 160 > 240: the full height
    click_b = MaskPrompt(np.array([[14.0, 154.0]]), np.ones(1, dtype=np.int64))
    assert prompted_zoom_window(click_b, masks) == (0, 135, 40, 175)
    click_off = MaskPrompt(np.array([[300.0, 10.0]]), np.ones(1, dtype=np.int64))  # on no gripper: as automatic
    assert prompted_zoom_window(click_off, masks) == (80, 30, 140, 90)
    assert prompted_zoom_window(click_b, empty) is None
    cut = cut_to_box(np.ones((60, 80), bool), np.array([10.0, 10.0, 30.0, 20.0]), margin=0.1)
    expect = np.zeros((60, 80), bool)
    expect[9:21, 8:32] = True
    assert np.array_equal(cut, expect)


def test_a_prompt_steers_the_gripper_zoom_and_a_box_bounds_it():
    """A network sure of a gripper everywhere (and of nothing else): a box on (20, 10)-(40, 30) of a 60x80 picture
    is the gripper's box, the zoom window is the 60 px square around it shifted inside (0, 0)-(60, 60), and the
    gripper is that window cut to the box grown by 8 %; without the cut, the window; without the prompt zoom,
    the first pass's gripper (everywhere); a click zooms on the component under it (the whole picture's window)."""
    from graspsim.policies.robotseg.predictor import RobotSegPredictor
    from graspsim.policies.robotseg.prompts import MaskPrompt

    net = _net(refine=4)
    with torch.no_grad():
        net.refiner.head[0].bias.copy_(torch.tensor([-50.0] * 4 + [50.0] * 4 + [-50.0] * 4))
    rgb = np.zeros((60, 80, 3), np.uint8)
    box = MaskPrompt(np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.array([20.0, 10.0, 40.0, 30.0]))
    window = np.zeros((60, 80), bool)
    window[0:60, 0:60] = True
    cut = np.zeros((60, 80), bool)
    cut[8:32, 18:42] = True
    out = RobotSegPredictor(net, gripper_zoom=True).predict(rgb, box)
    assert np.array_equal(out.masks["gripper"], cut) and not out.masks["whole"].any() and not out.masks["arm"].any()
    uncut = RobotSegPredictor(net, gripper_zoom=True, box_margin=None).predict(rgb, box)
    assert np.array_equal(uncut.masks["gripper"], window)
    assert RobotSegPredictor(net, gripper_zoom=True, prompt_zoom=False).predict(rgb, box).masks["gripper"].all()
    assert RobotSegPredictor(net).predict(rgb, box).masks["gripper"].all()  # no zoom at all: no cut either
    click = MaskPrompt(np.array([[70.0, 50.0]]), np.ones(1, dtype=np.int64))
    centred = np.zeros((60, 80), bool)
    centred[0:60, 10:70] = True
    assert np.array_equal(RobotSegPredictor(net, gripper_zoom=True).predict(rgb, click).masks["gripper"], centred)


def test_zoom_fallback_opens_a_window_on_a_faint_gripper(tiny_model, tmp_path):
    """A first pass whose gripper logit is -1 everywhere (no gripper at 0) and a zoom network sure of one
    everywhere: no window and no gripper without the fallback; with a fallback below -1 the window is the centred
    60 px square of the 60x80 picture and the gripper exactly it; with one above -1, nothing again. The fallback
    comes from the checkpoint's metadata."""
    import shutil

    from graspsim.learn.checkpoint import read_metadata, write_metadata
    from graspsim.policies.robotseg.predictor import RobotSegPredictor, predictor_for

    faint, sure = _net(refine=4), _net(refine=4)
    with torch.no_grad():
        faint.refiner.head[0].bias.copy_(torch.tensor([-50.0] * 4 + [-1.0] * 4 + [-50.0] * 4))
        sure.refiner.head[0].bias.copy_(torch.tensor([-50.0] * 4 + [50.0] * 4 + [-50.0] * 4))
    rgb = np.zeros((60, 80, 3), np.uint8)
    plain = RobotSegPredictor(faint, gripper_zoom=True, zoom_net=sure).predict(rgb)
    assert plain.image_logits.shape == (3, 60, 80) and np.allclose(plain.image_logits[1], -1.0, atol=1e-3)
    assert np.array_equal(plain.masks["gripper"], plain.image_logits[1] > 0) and not plain.masks["gripper"].any()
    expect = np.zeros((60, 80), bool)
    expect[0:60, 10:70] = True
    low = RobotSegPredictor(faint, gripper_zoom=True, zoom_net=sure, zoom_fallback=-2.0).predict(rgb)
    assert np.array_equal(low.masks["gripper"], expect)
    high = RobotSegPredictor(faint, gripper_zoom=True, zoom_net=sure, zoom_fallback=-0.5).predict(rgb)
    assert not high.masks["gripper"].any()
    shutil.copytree(tiny_model, tmp_path / "m")
    meta = {k: v for k, v in read_metadata(tmp_path / "m").items() if k != "sha256"}
    write_metadata(tmp_path / "m", {**meta, "zoom_fallback_logit": -1.5})
    assert predictor_for(tmp_path / "m")[0].zoom_fallback == -1.5 and predictor_for(tiny_model)[0].zoom_fallback is None


def test_zoom_presence_empties_a_faint_zoom(tiny_model, tmp_path):
    """A first pass sure of a gripper everywhere and a zoom network whose gripper logit is +1 everywhere: without
    a presence logit (or one below 1) the gripper is the zoom window (the centred 60 px square of the 60x80
    picture); with one above 1 the window holds no gripper and the mask is empty; whole and arm never change.
    The presence logit comes from the zoom network's own metadata (absent: None)."""
    import shutil

    from graspsim.learn.checkpoint import read_metadata, write_metadata
    from graspsim.policies.robotseg.predictor import RobotSegPredictor, predictor_for

    sure, faint = _net(refine=4), _net(refine=4)
    with torch.no_grad():
        sure.refiner.head[0].bias.copy_(torch.tensor([-50.0] * 4 + [50.0] * 4 + [-50.0] * 4))
        faint.refiner.head[0].bias.copy_(torch.tensor([-50.0] * 4 + [1.0] * 4 + [-50.0] * 4))
    rgb = np.zeros((60, 80, 3), np.uint8)
    window = np.zeros((60, 80), bool)
    window[0:60, 10:70] = True
    for presence, expect in ((None, window), (0.5, window), (1.5, np.zeros_like(window))):
        out = RobotSegPredictor(sure, gripper_zoom=True, zoom_net=faint, zoom_presence=presence).predict(rgb)
        assert np.array_equal(out.masks["gripper"], expect), presence
        assert out.masks["whole"].sum() == 0 and out.masks["arm"].sum() == 0
    # under a box the gate is off unless asked for (box_zoom_presence); a click keeps it
    from graspsim.policies.robotseg.prompts import MaskPrompt

    box = MaskPrompt(np.zeros((0, 2)), np.zeros(0, dtype=np.int64), np.array([20.0, 10.0, 40.0, 30.0]))
    click = MaskPrompt(np.array([[30.0, 20.0]]), np.ones(1, dtype=np.int64))
    boxed = RobotSegPredictor(sure, gripper_zoom=True, zoom_net=faint, zoom_presence=1.5, box_margin=None)
    box_window = np.zeros((60, 80), bool)
    box_window[0:60, 0:60] = True  # the 60 px square around the box, shifted inside the picture
    assert np.array_equal(boxed.predict(rgb, box).masks["gripper"], box_window)
    assert not boxed.predict(rgb, click).masks["gripper"].any()
    boxed.box_zoom_presence = True
    assert not boxed.predict(rgb, box).masks["gripper"].any() and boxed.settings()["box_zoom_presence"] is True
    shutil.copytree(tiny_model, tmp_path / "m")
    shutil.copytree(tiny_model, tmp_path / "m" / "zoom")
    main = {k: v for k, v in read_metadata(tmp_path / "m").items() if k != "sha256"}
    write_metadata(tmp_path / "m", {**main, "zoom_net": "zoom"})
    assert predictor_for(tmp_path / "m")[0].zoom_presence is None
    zoom = {k: v for k, v in read_metadata(tmp_path / "m" / "zoom").items() if k != "sha256"}
    write_metadata(tmp_path / "m" / "zoom", {**zoom, "zoom_presence_logit": 4.0})
    pred, _ = predictor_for(tmp_path / "m")
    assert pred.zoom_presence == 4.0 and pred.zoom_net is not None



def test_robot_presence_empties_every_mask_of_a_frame_without_a_robot(tiny_model, tmp_path):
    """A network whose whole and arm logits are +2 everywhere and that is sure of a gripper everywhere: without a
    robot presence logit (or one below 2) every part is marked; with one above 2 the frame holds no robot and all
    three masks are empty (the zoom pass skipped), while the logits the next frame remembers are the same; a
    prompted frame is never emptied (a click says the robot is there). The logit comes from the checkpoint's
    metadata (absent: None)."""
    import shutil

    from graspsim.learn.checkpoint import read_metadata, write_metadata
    from graspsim.policies.robotseg.predictor import RobotSegPredictor, predictor_for
    from graspsim.policies.robotseg.prompts import MaskPrompt

    net = _net(refine=4)
    with torch.no_grad():
        net.refiner.head[0].bias.copy_(torch.tensor([2.0] * 4 + [50.0] * 4 + [2.0] * 4))
    rgb = np.zeros((60, 80, 3), np.uint8)
    kept = RobotSegPredictor(net, gripper_zoom=True, robot_presence=1.5).predict(rgb)
    assert kept.masks["whole"].all() and kept.masks["arm"].all() and kept.masks["gripper"].any()
    assert RobotSegPredictor(net, gripper_zoom=True).predict(rgb).masks["whole"].all()
    gone = RobotSegPredictor(net, gripper_zoom=True, robot_presence=2.5).predict(rgb)
    assert not any(mask.any() for mask in gone.masks.values()) and set(gone.masks) == {"arm", "gripper", "whole"}
    assert np.array_equal(gone.logits, kept.logits) and np.array_equal(gone.image_logits, kept.image_logits)
    box = MaskPrompt(points=np.zeros((0, 2)), labels=np.zeros(0, int), box=np.array([10.0, 10.0, 50.0, 40.0]))
    prompted = RobotSegPredictor(net, robot_presence=2.5).predict(rgb, box)
    assert prompted.masks["whole"].any()
    shutil.copytree(tiny_model, tmp_path / "m")
    assert predictor_for(tmp_path / "m")[0].robot_presence is None
    meta = {k: v for k, v in read_metadata(tmp_path / "m").items() if k != "sha256"}
    write_metadata(tmp_path / "m", {**meta, "robot_presence_logit": 3.0})
    assert predictor_for(tmp_path / "m")[0].robot_presence == 3.0


# ------------------------------------------------------------------ training


def test_training_loss_falls_and_resume_is_bit_for_bit(dataset, tmp_path):
    from safetensors.torch import load_file

    from graspsim.learn.loop import STATE_FILE
    from graspsim.policies.robotseg.train import train_robotseg

    meta = train_robotseg([dataset], tmp_path / "a", epochs=4, seed=1, **TRAIN)
    losses = [h["train_loss"] for h in meta["history"]]
    assert losses[-1] < losses[0], losses
    assert meta["finished"] and meta["model"] == "robotseg" and meta["labelled_pictures"] > 2
    assert meta["data"][0]["views"] == 2 and meta["data"][0]["videos"] == 1  # the xArm's views are not trained on
    a = load_file(str(tmp_path / "a" / "model.safetensors"))
    early = train_robotseg([dataset], tmp_path / "b", epochs=4, seed=1, max_minutes=1e-6, **TRAIN)
    assert early["stopped_early"] and early["epochs_done"] == 1 and (tmp_path / "b" / STATE_FILE).exists()
    done = train_robotseg([dataset], tmp_path / "b", epochs=4, seed=1, resume=True, **TRAIN)
    b = load_file(str(tmp_path / "b" / "model.safetensors"))
    assert done["steps"] == meta["steps"] and a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_a_gripper_zoom_run_records_it_and_its_predictor_zooms(dataset, tiny_model, tmp_path):
    from graspsim.policies.robotseg.data import RobotBank
    from graspsim.policies.robotseg.predictor import predictor_for
    from graspsim.policies.robotseg.train import supervised_batch, train_robotseg

    bank = RobotBank([dataset], "train", 64, keep_full=True)
    assert all(p.full_rgb.shape == (60, 80, 3) for p in bank.pictures)
    rng = np.random.default_rng(0)
    plain = supervised_batch(bank, 4, np.random.default_rng(0))
    zoomed = supervised_batch(bank, 4, rng, gripper_zoom=1.0)
    assert zoomed["targets"].shape == plain["targets"].shape == (4, 3, 64, 64)
    # crops around the gripper: it fills more of the picture than in the whole view
    assert zoomed["targets"][:, 1].mean() > plain["targets"][:, 1].mean()
    meta = train_robotseg([dataset], tmp_path / "z", epochs=1, seed=0, gripper_zoom=0.5, **TRAIN)
    assert meta["gripper_zoom"] == 0.5
    assert predictor_for(tmp_path / "z")[0].gripper_zoom and not predictor_for(tiny_model)[0].gripper_zoom
    with pytest.raises(ValueError, match="gripper_zoom"):
        train_robotseg([dataset], tmp_path / "bad", gripper_zoom=1.5, **TRAIN)


def test_a_zoom_only_run_trains_on_crops_and_ships_beside_its_first_pass(dataset, tiny_model, tmp_path):
    """--zoom-only: every picture a gripper crop, automatic, no memory; the run needs its first pass (--init),
    records itself, and attach_zoom_net ships it under the first pass's checkpoint, whose predictor then runs the
    zoom pass with it and changes nothing but the gripper."""
    import shutil

    from graspsim.policies.robotseg.data import RobotBank
    from graspsim.policies.robotseg.predictor import RobotSegPredictor, load_net, predictor_for
    from graspsim.policies.robotseg.train import attach_zoom_net, ship_checkpoint, supervised_batch, train_robotseg

    bank = RobotBank([dataset], "train", 64, keep_full=True)
    for seed in range(3):
        batch = supervised_batch(bank, 4, np.random.default_rng(seed), zoom_only=True)
        assert batch["mode"] == "auto" and "memory" not in batch and "points" not in batch and "boxes" not in batch
        assert (batch["targets"][:, 1].sum(axis=(1, 2)) > 0).all()  # every picture shows (part of) the gripper
    kw = {**TRAIN, "config": None}
    with pytest.raises(ValueError, match="give --init"):
        train_robotseg([dataset], tmp_path / "bad", zoom_only=True, **kw)
    with pytest.raises(ValueError, match="no --label-efficient, --self-memory"):
        train_robotseg([dataset], tmp_path / "bad", init=tiny_model, zoom_only=True, self_memory=True, **kw)
    meta = train_robotseg([dataset], tmp_path / "zoom", init=tiny_model, zoom_only=True, gripper_weight=1.0,
                          epochs=1, seed=0, **kw)
    assert meta["zoom_only"] and meta["gripper_weight"] == 1.0 and "train_gripper" in meta["history"][-1]
    # a further stage of the zoom network, with arm crops: starts from the zoom run's weights, not the first pass's
    from graspsim.learn.checkpoint import load_weights

    with pytest.raises(ValueError, match="options of --zoom-only"):
        train_robotseg([dataset], tmp_path / "bad", init=tiny_model, arm_crops=0.5, **kw)
    with pytest.raises(ValueError, match="options of --zoom-only"):
        train_robotseg([dataset], tmp_path / "bad", init=tiny_model, first_pass_crops=0.5, **kw)
    with pytest.raises(ValueError, match="is not a --zoom-only run"):
        train_robotseg([dataset], tmp_path / "bad", init=tiny_model, zoom_only=True, zoom_init=tiny_model, **kw)
    still = {**kw, "lr": 1e-9, "steps_per_epoch": 1}
    again = train_robotseg([dataset], tmp_path / "zoom2", init=tiny_model, zoom_only=True, zoom_init=tmp_path / "zoom",
                           arm_crops=0.5, first_pass_crops=0.25, empty_window_crops=0.5, epochs=1, seed=0,
                           **still)
    assert again["arm_crops"] == 0.5 and again["zoom_init"] == str((tmp_path / "zoom").resolve())
    assert again["first_pass_crops"] == 0.25 and 0 < again["first_pass_windows"] <= again["train_pictures"]
    assert again["empty_window_crops"] == 0.5 and 0 <= again["empty_windows"] <= again["first_pass_windows"]
    with pytest.raises(ValueError, match="share of the --first-pass-crops"):
        train_robotseg([dataset], tmp_path / "bad", init=tiny_model, zoom_only=True, empty_window_crops=0.5, **kw)
    a, b = load_weights(tmp_path / "zoom"), load_weights(tmp_path / "zoom2")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
    with pytest.raises(ValueError, match="not a --zoom-only run"):
        attach_zoom_net(tiny_model, tmp_path / "zoom")
    ship_checkpoint(tiny_model, tmp_path / "half")  # float16: not the weights the zoom run started from
    with pytest.raises(ValueError, match="whose weights are not"):
        attach_zoom_net(tmp_path / "zoom", tmp_path / "half")
    # a new first pass ("half") carries the zoom network over: it starts from the earlier first pass's zoom run
    carried = train_robotseg([dataset], tmp_path / "zoom3", init=tmp_path / "half", zoom_only=True,
                             zoom_init=tmp_path / "zoom", epochs=1, seed=0, **still)
    assert carried["init"] == str((tmp_path / "half").resolve())
    assert carried["zoom_init"] == str((tmp_path / "zoom").resolve())
    c = load_weights(tmp_path / "zoom3")
    assert max(float((a[k] - c[k]).abs().max()) for k in a) < 1e-4
    assert attach_zoom_net(tmp_path / "zoom3", tmp_path / "half")["zoom_net"] == "zoom"
    shutil.copytree(tiny_model, tmp_path / "main")
    main_meta = attach_zoom_net(tmp_path / "zoom", tmp_path / "main", extra={"note": "test"})
    assert main_meta["zoom_net"] == "zoom" and load_net(tmp_path / "main" / "zoom")[1]["note"] == "test"
    with_zoom, _ = predictor_for(tmp_path / "main")
    assert with_zoom.gripper_zoom and with_zoom.zoom_net is not None
    crop = np.random.default_rng(4).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    alone = RobotSegPredictor(load_net(tmp_path / "main" / "zoom")[0])
    assert np.array_equal(with_zoom.zoomed_gripper(crop), alone.predict(crop).masks["gripper"])
    rgb = np.random.default_rng(5).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    plain = RobotSegPredictor(load_net(tiny_model)[0], gripper_zoom=True).predict(rgb).masks
    zoomed = with_zoom.predict(rgb).masks
    assert np.array_equal(plain["whole"], zoomed["whole"]) and np.array_equal(plain["arm"], zoomed["arm"])


def test_a_zoom_network_from_scratch_has_its_own_config_and_ships_beside_its_first_pass(dataset, tiny_model,
                                                                                        tmp_path):
    """--zoom-scratch: the zoom network is built from --config (here twice the first pass's widths), not from the
    init's weights, and ships beside the first pass like any zoom run (the predictor gives it crops at its own
    input size: the tiny first pass already has the smallest allowed, 64)."""
    import shutil

    from graspsim.policies.robotseg.predictor import load_net, predictor_for
    from graspsim.policies.robotseg.train import attach_zoom_net, train_robotseg

    own = RobotSegConfig.from_dict({**TINY, "hiera_dim": 16, "dim": 32})
    kw = {**TRAIN, "config": own}
    with pytest.raises(ValueError, match="option of --zoom-only"):
        train_robotseg([dataset], tmp_path / "bad", init=tiny_model, zoom_scratch=True, **kw)
    with pytest.raises(ValueError, match="no --zoom-init"):
        train_robotseg([dataset], tmp_path / "bad", init=tiny_model, zoom_only=True, zoom_scratch=True,
                       zoom_init=tiny_model, **kw)
    meta = train_robotseg([dataset], tmp_path / "zs", init=tiny_model, zoom_only=True, zoom_scratch=True,
                          gripper_weight=1.0, epochs=1, seed=0, **kw)
    assert meta["zoom_scratch"] and meta["config"]["hiera_dim"] == 16 and meta["config"]["dim"] == 32
    assert "train_gripper" in meta["history"][-1] and meta["init"] == str(tiny_model.resolve())
    first, _ = load_net(tiny_model)
    zoom, _ = load_net(tmp_path / "zs")
    assert zoom.parameter_count() > first.parameter_count()  # not the init's network
    # a further stage of it (--zoom-init) keeps its config and starts from its weights
    again = train_robotseg([dataset], tmp_path / "zs2", init=tiny_model, zoom_only=True, zoom_init=tmp_path / "zs",
                           epochs=1, seed=0, **{**TRAIN, "config": None, "lr": 1e-9, "steps_per_epoch": 1})
    assert again["config"] == meta["config"]
    a, b = load_net(tmp_path / "zs")[0].state_dict(), load_net(tmp_path / "zs2")[0].state_dict()
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4
    shutil.copytree(tiny_model, tmp_path / "main")
    attach_zoom_net(tmp_path / "zs", tmp_path / "main")
    pred, _ = predictor_for(tmp_path / "main")
    assert pred.zoom_net is not None and pred.zoom_net.parameter_count() == zoom.parameter_count()
    rgb = np.random.default_rng(5).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    assert pred.predict(rgb).masks["gripper"].shape == (60, 80)


def test_self_memory_batches_remember_the_networks_own_previous_frame(dataset):
    from graspsim.policies.robotseg.data import RobotBank
    from graspsim.policies.robotseg.train import supervised_batch, supervised_loss

    bank = RobotBank([dataset], "train", 64)
    rng = np.random.default_rng(0)
    batch = next(b for b in (supervised_batch(bank, 4, rng, self_memory=True) for _ in range(200))
                 if "prev_pixels" in b)
    rows = batch["prev_rows"]
    assert batch["prev_pixels"].shape == batch["pixels"].shape and rows.any()
    # batches drawn without self_memory never carry previous frames
    assert all("prev_pixels" not in supervised_batch(bank, 4, np.random.default_rng(k)) for k in range(20))
    net = _net()
    with torch.no_grad():
        own = net(torch.from_numpy(batch["prev_pixels"][rows]))["logits"]
    seen = []
    decode = net.decode
    net.decode = lambda features, **kw: seen.append(kw.get("memory")) or decode(features, **kw)
    supervised_loss(net, batch)
    used = seen[-1]  # the training pass (the first decode made the previous frames' masks, memoryless)
    # equal up to float rounding (the two calls' input arrays sit at other alignments: oneDNN may sum in another order)
    assert seen[0] is None and torch.allclose(used[torch.from_numpy(rows)], own, rtol=1e-4, atol=1e-10)
    assert not torch.allclose(used[torch.from_numpy(rows)], -own, rtol=1e-4, atol=1e-10)  # the tolerance is tight
    assert torch.equal(used[torch.from_numpy(~rows)], torch.from_numpy(batch["memory"][~rows]))


def test_training_steps_put_every_tensor_where_the_network_is(dataset, tmp_path):
    """A GPU session trains with ``--device cuda``; on this CPU machine the "meta" device stands in for it: any
    tensor a training step builds on the CPU instead of the network's device is an error there, as on a GPU."""
    from graspsim.policies.robotseg.data import RobotBank
    from graspsim.policies.robotseg.train import (label_efficient_batch, label_efficient_loss, supervised_batch,
                                                  supervised_loss)

    bank = RobotBank([dataset], "train", 64, keep_full=True)
    rng = np.random.default_rng(0)
    batches = [supervised_batch(bank, 4, rng, self_memory=True, gripper_zoom=0.5) for _ in range(60)]
    assert {b["mode"] for b in batches} >= {"auto", "1-click", "3-click", "box"}
    assert any("prev_pixels" in b for b in batches) and any("memory" in b for b in batches)
    net = _net(part_head=8, refine=4).train().to("meta")
    for batch in batches[:12] + [b for b in batches if "prev_pixels" in b][:2]:
        parts = supervised_loss(net, batch, iou_weight=1.0, gripper_weight=1.0)
        assert parts["loss"].device.type == "meta" and parts["loss"].shape == ()
        assert {k for k in parts} == {"loss", "mask", "gripper", "iou"}
    le = label_efficient_loss(net, label_efficient_batch(RobotBank([dataset], "train", 64, label_efficient=True),
                                                         2, rng))
    assert le["loss"].device.type == "meta"
    # the command line names a device this machine lacks in one line, before anything is written
    if not torch.cuda.is_available():
        from graspsim.cli import main

        r = CliRunner().invoke(main, ["train", "robotseg", "--data", str(dataset), "--out", str(tmp_path / "g"),
                                      "--device", "cuda"])
        assert r.exit_code != 0 and "sees no CUDA device" in r.output and "Traceback" not in r.output
        assert not (tmp_path / "g").exists()


def test_scene_recolouring_changes_only_the_non_robot_pixels_and_leaves_old_draws_alone():
    from graspsim.policies.robotseg.data import ColourJitter, augment_colour, draw_colour

    rng = np.random.default_rng(4)
    rgb = rng.integers(30, 220, size=(24, 32, 3), dtype=np.uint8)
    rgb[..., 0] = 200  # saturated reds everywhere
    seg = np.zeros((24, 32), np.uint8)
    seg[5:15, 8:20] = 1
    plain = ColourJitter(0.0, 1.0, 1.0, 1.0, None, False)
    scene = ColourJitter(0.0, 1.0, 1.0, 1.0, None, False, scene=(90.0, 1.0, 1.0))
    a, b = augment_colour(rgb, seg, plain), augment_colour(rgb, seg, scene)
    np.testing.assert_array_equal(a[seg > 0], b[seg > 0])  # the robot as without the option
    assert np.abs(a[seg == 0].astype(int) - b[seg == 0].astype(int)).mean() > 20  # the rest recoloured
    np.testing.assert_array_equal(augment_colour(rgb, None, scene), augment_colour(rgb, None, plain))  # needs seg
    # share 0 draws exactly what draw_colour drew before the option existed (older runs replay their batches)
    r1, r2 = np.random.default_rng(9), np.random.default_rng(9)
    assert [draw_colour(r1) for _ in range(20)] == [draw_colour(r2, 0.0) for _ in range(20)]
    assert r1.random() == r2.random()
    shares = [draw_colour(np.random.default_rng(k), 0.5).scene is not None for k in range(200)]
    assert 70 < sum(shares) < 130


def test_label_efficient_uses_only_first_frames(dataset, tmp_path):
    from graspsim.policies.robotseg.data import RobotBank
    from graspsim.policies.robotseg.train import train_robotseg

    from graspsim.policies.robotseg.data import labelled_frame

    seg = np.zeros((5, 6, 8), np.uint8)
    assert labelled_frame(seg) == 0  # no robot in any frame: frame 0
    seg[3, 2, 2], seg[4, 1, 1] = 2, 1
    assert labelled_frame(seg) == 3  # the first frame that shows the robot (as VOS annotates where it appears)
    bank = RobotBank([dataset], "train", 64, label_efficient=True)
    # the Panda's grasp video shows the robot from frame 0: frame 0's masks only
    assert len(bank.videos) == 1 and bank.labelled() == [bank.videos[0][0]]
    import dataclasses

    from graspsim.policies.robotseg.data import targets
    from graspsim.policies.robotseg.train import label_efficient_batch

    moved = RobotBank([dataset], "train", 64, label_efficient=True)  # as if the robot appeared in frame 2
    ids = moved.videos[0]
    block = np.zeros((64, 64), np.uint8)
    block[10:30, 20:40] = 1
    moved.pictures[ids[0]] = dataclasses.replace(moved.pictures[ids[0]], seg=None)
    moved.pictures[ids[2]] = dataclasses.replace(moved.pictures[ids[2]], seg=block)
    batch = label_efficient_batch(moved, 4, np.random.default_rng(0))
    expect = (targets(block), targets(block[:, ::-1]))
    assert all(any(np.array_equal(t, e) for e in expect) for t in batch["targets"])
    assert all(bank.pictures[i].seg is None for i in bank.videos[0][1:])
    meta = train_robotseg([dataset], tmp_path / "le", label_efficient=True, epochs=1, seed=0, **TRAIN)
    assert meta["label_efficient"] and meta["labelled_pictures"] == 1
    assert {"train_supervised", "train_cycle", "train_consistency"} <= set(meta["history"][0])


# ------------------------------------------------------------------ evaluation


@pytest.fixture(scope="module")
def tiny_model(dataset, tmp_path_factory) -> Path:
    from graspsim.policies.robotseg.train import train_robotseg

    out = tmp_path_factory.mktemp("rsmodel") / "m"
    train_robotseg([dataset], out, epochs=1, seed=0, **{**TRAIN, "steps_per_epoch": 1})
    return out


def test_evaluate_cli_end_to_end(dataset, tiny_model, tmp_path):
    from graspsim.cli import main

    runner = CliRunner()
    out = tmp_path / "auto.json"
    r = runner.invoke(main, ["evaluate", "robot-masks", "--data", str(dataset), "--model", str(tiny_model),
                             "--out", str(out), "--threads", "1", "--no-progress"])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    assert res["pictures"] == 4 and set(res["by_split"]) == {"seen", "unseen", "all"}
    assert set(res["by_embodiment"]) == {"panda", "xarm6", "all"} and res["fps"] > 0
    assert res["inference"]["robot_presence"] is None and res["inference"]["zoom_net"] is False  # the tiny model's
    for g in res["by_split"].values():
        for part in ("arm", "gripper", "whole"):
            s = g[part]
            assert 0 <= s["J"] <= 1 and 0 <= s["F"] <= 1 and s["JF"] == pytest.approx((s["J"] + s["F"]) / 2)
    r = runner.invoke(main, ["evaluate", "robot-masks", "--data", str(dataset), "--model", str(tiny_model),
                             "--prompt", "3-click", "--video", "--out", str(tmp_path / "v.json"), "--threads", "1",
                             "--no-progress"])
    assert r.exit_code == 0, r.output
    v = json.loads((tmp_path / "v.json").read_text())
    assert v["video"] and v["by_split"]["seen"]["sequences"] == 1 and "frames_alone_by_split" in v
    assert "without the video memory" in r.output


def test_evaluate_pools_datasets_into_one_table(dataset, tiny_model, tmp_path):
    """Two --data: one table over both (rows of each suite, per-suite groups), the README's markdown rows; a
    dataset given twice is a one-line error."""
    from graspsim.cli import main
    from graspsim.data.cli_robot_views import render_robot_views_command

    shelf = tmp_path / "shelf"
    r = CliRunner().invoke(render_robot_views_command, [
        "--suite", "shelf-train", "--seed", "1", "--scenes", "1", "--out", str(shelf), "--embodiments", "panda",
        "--views-per-scene", "1", "--width", "80", "--height", "60", "--renderer", "tiny", "--no-progress"])
    assert r.exit_code == 0, r.output
    runner = CliRunner()
    out = tmp_path / "pooled.json"
    r = runner.invoke(main, ["evaluate", "robot-masks", "--data", str(dataset), "--data", str(shelf), "--model",
                             str(tiny_model), "--out", str(out), "--threads", "1", "--markdown", "--no-progress"])
    assert r.exit_code == 0, r.output
    res = json.loads(out.read_text())
    n_shelf = sum(row["suite"] == "shelf-train" for row in res["rows"])
    assert n_shelf >= 1 and res["pictures"] == 4 + n_shelf and res["suite"] == ["tabletop-train", "shelf-train"]
    assert res["by_suite"]["tabletop-train"]["images"] == 4 and res["by_suite"]["all"]["images"] == res["pictures"]
    assert "| auto | all | " in r.output and "| prompt | split | pictures |" in r.output
    r = runner.invoke(main, ["evaluate", "robot-masks", "--data", str(dataset), "--data", str(dataset), "--model",
                             str(tiny_model), "--threads", "1", "--no-progress"])
    assert r.exit_code == 2 and "given more than once" in r.output and "Traceback" not in r.output


def test_sam_baseline_scores_a_perfect_box_prompt_case(dataset, tmp_path):
    """The baseline runs the shipped product SAM with the same boxes; its scores are real numbers in [0, 1]."""
    from graspsim.policies.robotseg.evaluate import evaluate_robot_masks

    res = evaluate_robot_masks(dataset, "box", baseline="sam", threads=1, progress=False, max_items=2)
    assert res["pictures"] == 2 and res["baseline"] == "sam"
    assert 0 <= res["by_split"]["all"]["whole"]["JF"] <= 1


def test_evaluate_one_line_errors(dataset, tmp_path):
    from graspsim.cli import main

    runner = CliRunner()
    r = runner.invoke(main, ["evaluate", "robot-masks", "--data", str(dataset), "--prompt", "2-click"])
    assert r.exit_code == 2 and r.output.strip().splitlines()[-1] == (
        "Error: --prompt: unknown prompt mode '2-click'; choose one of: auto, 1-click, 3-click, box")
    r = runner.invoke(main, ["evaluate", "robot-masks", "--data", str(dataset), "--baseline", "sam"])
    assert r.exit_code == 2 and "needs clicks or a box" in r.output
    r = runner.invoke(main, ["evaluate", "robot-masks", "--data", str(tmp_path / "nothing")])
    assert r.exit_code == 2 and r.output.count("\n") == 1 and "not a rendered dataset" in r.output
    r = runner.invoke(main, ["evaluate", "robot-masks", "--data", str(dataset), "--model", str(tmp_path)])
    assert r.exit_code == 2 and "robotseg checkpoint" in r.output
    r = runner.invoke(main, ["train", "robotseg", "--out", str(tmp_path / "x")])
    assert r.exit_code == 2 and "--data" in r.output


def test_shipped_copy_is_half_size_and_predicts_like_the_run(tiny_model, tmp_path):
    from graspsim.policies.robotseg.predictor import RobotSegPredictor, load_net
    from graspsim.policies.robotseg.train import ship_checkpoint

    meta = ship_checkpoint(tiny_model, tmp_path / "shipped", extra={"stages": [{"command": "stage 1"}]})
    assert meta["weights_dtype"] == "float16" and meta["model"] == "robotseg"
    assert load_net(tmp_path / "shipped")[1]["stages"] == [{"command": "stage 1"}]
    assert (tmp_path / "shipped" / "model.safetensors").stat().st_size < 0.6 * (
        tiny_model / "model.safetensors").stat().st_size
    rgb = np.random.default_rng(3).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    a = RobotSegPredictor(load_net(tiny_model)[0]).predict(rgb).logits
    b = RobotSegPredictor(load_net(tmp_path / "shipped")[0]).predict(rgb).logits
    assert np.abs(a - b).max() <= 1e-2 * max(1e-6, np.abs(a).max()) + 1e-3


def test_a_second_stage_starts_from_the_first_ones_weights(dataset, tiny_model, tmp_path):
    from graspsim.learn.checkpoint import load_weights
    from graspsim.policies.robotseg.train import train_robotseg

    kw = {**TRAIN, "config": None, "lr": 1e-9, "steps_per_epoch": 1}  # a step too small to move the weights
    meta = train_robotseg([dataset], tmp_path / "s2", init=tiny_model, epochs=1, seed=5, **kw)
    assert meta["init"] == str(tiny_model.resolve()) and meta["config"]["image_size"] == 64
    a, b = load_weights(tiny_model), load_weights(tmp_path / "s2")
    assert max(float((a[k] - b[k]).abs().max()) for k in a) < 1e-4


def test_an_untrained_part_head_changes_nothing_and_learns():
    """The part head's output convolution starts at zero: the same weights with and without a head give the same
    masks; the loss's gradient reaches it, and a bias on its gripper output moves exactly the gripper logits."""
    from graspsim.policies.robotseg.train import output_loss

    plain, headed = _net(refine=4), _net(refine=4, part_head=8)
    missing, unexpected = headed.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and missing and all(k.startswith("part_head.") for k in missing)
    pixels = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = plain(pixels), headed(pixels)
    assert torch.equal(a["logits"], b["logits"]) and torch.equal(a["fine"], b["fine"])
    output_loss(headed.train()(pixels), (torch.rand(2, 3, 64, 64) > 0.5).float()).backward()
    assert float(headed.part_head.head.weight.grad.abs().sum()) > 0
    with torch.no_grad():
        headed.part_head.head.bias.copy_(torch.tensor([0.0, 3.0, 0.0]))
        c = headed.eval()(pixels)["logits"]
    assert torch.allclose(c - a["logits"], torch.tensor([0.0, 3.0, 0.0]).view(1, 3, 1, 1).expand_as(c), atol=1e-5)
    with pytest.raises(ValueError, match="part_head must be >= 0"):
        RobotSegConfig(part_head=-1)


def test_a_part_head_is_added_to_an_init_checkpoint_and_nothing_else_may_change(dataset, tiny_model, tmp_path):
    """``--init C --config '{"part_head": N}'``: the run keeps C's config and weights and adds a fresh head, so
    its first masks are C's; any other --config field is a one-line error."""
    from graspsim.cli import main
    from graspsim.learn.checkpoint import load_weights
    from graspsim.policies.robotseg.predictor import RobotSegPredictor, load_net
    from graspsim.policies.robotseg.train import train_robotseg

    kw = {**TRAIN, "lr": 1e-9, "steps_per_epoch": 1}
    meta = train_robotseg([dataset], tmp_path / "p", init=tiny_model, epochs=1, seed=5,
                          **{**kw, "config": RobotSegConfig.from_dict({**TINY, "part_head": 4})})
    assert meta["config"]["part_head"] == 4 and meta["config"]["image_size"] == 64
    before, after = load_weights(tiny_model), load_weights(tmp_path / "p")
    assert set(after) - set(before) == {k for k in after if k.startswith("part_head.")} != set()
    rgb = (np.random.default_rng(0).random((60, 80, 3)) * 255).astype(np.uint8)
    with torch.no_grad():  # the head's output layer barely moved from zero at lr 1e-9
        x = RobotSegPredictor(load_net(tiny_model)[0]).predict(rgb).logits
        y = RobotSegPredictor(load_net(tmp_path / "p")[0]).predict(rgb).logits
    assert np.abs(x - y).max() < 1e-3
    r = CliRunner().invoke(main, ["train", "robotseg", "--data", str(dataset), "--out", str(tmp_path / "q"),
                                  "--init", str(tiny_model), "--config", '{"dim": 32}', "--no-progress"])
    assert r.exit_code == 2 and "may only add part_head, not dim" in r.output and "Traceback" not in r.output


def test_iou_loss_has_known_answers():
    """The IoU target is the IoU the network's own masks reach: a mask equal to the truth is 1, half of it 0.5,
    a part absent from both 1; the loss is the mean squared gap to the predicted IoU."""
    from graspsim.policies.robotseg.train import iou_loss

    target = torch.zeros(1, 3, 8, 8)
    target[0, 0, :4] = 1.0  # arm: top half
    target[0, 2] = 1.0  # whole: everything; gripper: absent
    fine = torch.full((1, 3, 8, 8), -5.0)
    fine[0, 0, :4] = 5.0  # arm exactly right: IoU 1
    fine[0, 2, :4] = 5.0  # whole: half of it: IoU 0.5; gripper: empty and absent: IoU 1
    out = {"logits": torch.zeros(1, 3, 2, 2), "fine": fine, "iou": torch.tensor([[1.0, 1.0, 0.5]])}
    assert float(iou_loss(out, target)) == pytest.approx(0.0)
    out["iou"] = torch.tensor([[0.5, 1.0, 0.5]])
    assert float(iou_loss(out, target)) == pytest.approx(0.25 / 3)


def test_training_the_iou_head_alone_keeps_the_masks_and_gates_the_memory(dataset, tiny_model, tmp_path):
    """``trainable="iou"``: every tensor but the IoU head's is the init's bit for bit, its loss falls, the metadata
    says so and the predictor gates its memory; frame 0 is as without memory, a later frame's parts come each from
    the decode (alone / with memory) that the IoU head rates higher."""
    from graspsim.learn.checkpoint import load_weights
    from graspsim.policies.robotseg.predictor import predictor_for
    from graspsim.policies.robotseg.train import IOU_HEAD, train_robotseg

    meta = train_robotseg([dataset], tmp_path / "iou", init=tiny_model, epochs=3, seed=2, trainable="iou",
                          **{**TRAIN, "config": None, "lr": 3e-2})
    assert meta["trainable"] == "iou" and meta["iou_head"] and meta["iou_loss"] == 1.0
    losses = [h["train_loss"] for h in meta["history"]]
    assert losses[-1] < losses[0], losses
    before, after = load_weights(tiny_model), load_weights(tmp_path / "iou")
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(IOU_HEAD) for k in moved)
    pred, _ = predictor_for(tmp_path / "iou")
    assert pred.memory_gate and not predictor_for(tiny_model)[0].memory_gate
    frames = np.random.default_rng(3).integers(0, 256, (2, 60, 80, 3), dtype=np.uint8)
    video = pred.predict_video(frames)
    enc = pred.encode(frames[1])
    alone, remembered = pred.decode(enc), pred.decode(enc, memory=video[0].logits)
    assert np.array_equal(video[0].logits, pred.decode(pred.encode(frames[0])).logits)
    assert np.array_equal(video[1].logits, alone.logits)  # the next frame remembers the memoryless decode
    for i, part in enumerate(("arm", "gripper", "whole")):
        chosen = remembered if remembered.iou[i] > alone.iou[i] else alone
        assert np.array_equal(video[1].masks[part], chosen.masks[part])
    from graspsim.learn.checkpoint import read_metadata, write_metadata

    meta = {k: v for k, v in read_metadata(tmp_path / "iou").items() if k != "sha256"}
    write_metadata(tmp_path / "iou", {**meta, "memory_gate": False})  # a setting chosen on validation: gate off
    ungated = predictor_for(tmp_path / "iou")[0]
    assert not ungated.memory_gate
    assert np.array_equal(ungated.predict_video(frames)[1].masks["whole"],
                          pred.decode(enc, memory=video[0].logits).masks["whole"])  # the decode with the memory
    with pytest.raises(ValueError, match="give --init"):
        train_robotseg([dataset], tmp_path / "bad", trainable="iou", **TRAIN)


def test_training_the_memory_encoder_alone_keeps_image_mode_and_trains_on_later_frames(dataset, tiny_model, tmp_path):
    """``trainable="memory"``: only the memory encoder's tensors move (image mode is the init's, bit for bit), its
    mask loss falls; every batch is automatic, remembers, and holds only video frames after the first, each with
    its previous frame's pixels (the network's own prediction becomes the memory); bad combinations are one-line
    errors."""
    from graspsim.learn.checkpoint import load_weights
    from graspsim.policies.robotseg.data import RobotBank
    from graspsim.policies.robotseg.predictor import RobotSegPredictor, load_net
    from graspsim.policies.robotseg.train import MEMORY_ENCODER, supervised_batch, train_robotseg

    bank = RobotBank([dataset], "train", 32)
    later = {i for i in bank.labelled() if bank.pictures[i].video is not None and bank.pictures[i].t > 0}
    assert later
    batch = supervised_batch(bank, 6, np.random.default_rng(0), self_memory=True, memory_frames=True)
    # prev_rows: a row brings its previous frame's pixels only when it is a video frame t > 0 (no view, no crop)
    assert batch["mode"] == "auto" and "memory" in batch and batch["prev_rows"].all()
    meta = train_robotseg([dataset], tmp_path / "mem", init=tiny_model, epochs=3, seed=2, trainable="memory",
                          self_memory=True, **{**TRAIN, "config": None, "lr": 3e-2})
    assert meta["trainable"] == "memory" and not meta["iou_head"]
    losses = [h["train_loss"] for h in meta["history"]]
    assert losses[-1] < losses[0], losses
    before, after = load_weights(tiny_model), load_weights(tmp_path / "mem")
    moved = {k for k in before if not torch.equal(before[k], after[k])}
    assert moved and all(k.startswith(MEMORY_ENCODER) for k in moved)
    rgb = np.random.default_rng(4).integers(0, 256, (60, 80, 3), dtype=np.uint8)
    old, new = RobotSegPredictor(load_net(tiny_model)[0]), RobotSegPredictor(load_net(tmp_path / "mem")[0])
    assert np.array_equal(old.predict(rgb).logits, new.predict(rgb).logits)  # image mode unchanged
    memory = old.predict(rgb).logits
    assert not np.array_equal(old.predict(rgb, memory=memory).logits, new.predict(rgb, memory=memory).logits)
    for bad in (dict(self_memory=False), dict(self_memory=True, iou_loss_weight=1.0)):
        with pytest.raises(ValueError, match="--trainable memory"):
            train_robotseg([dataset], tmp_path / "bad", init=tiny_model, trainable="memory", **bad, **TRAIN)
    with pytest.raises(ValueError, match="give --init"):
        train_robotseg([dataset], tmp_path / "bad", trainable="memory", self_memory=True, **TRAIN)


def test_the_shipped_checkpoint_loads_offline_with_its_record():
    from graspsim.policies.robotseg.predictor import RobotSegPredictor, load_net

    net, meta = load_net(None)  # the package's own weights, sha256 checked
    assert meta["model"] == "robotseg" and meta["finished"] and meta["weights_dtype"] == "float16"
    assert meta["command"].startswith("graspsim train robotseg") and meta["seed"] == 0 and meta["data"]
    assert set(meta["metrics"]) >= {"val_whole_jf", "val_gripper_j"} and meta["parameters"] < 41_300_000
    assert meta["stages"][0]["command"].startswith("graspsim train robotseg")  # the stage its --init came from
    out = RobotSegPredictor(net).predict(np.zeros((60, 80, 3), np.uint8))
    assert out.masks["whole"].shape == (60, 80)
    # the zoom pass's own network (--zoom-only), started from these very weights; both together under 41.3 M
    from graspsim.policies.robotseg.config import SHIPPED
    from graspsim.policies.robotseg.predictor import predictor_for

    zoom_meta = load_net(SHIPPED / meta["zoom_net"])[1]
    assert zoom_meta["zoom_only"] and zoom_meta["weights_dtype"] == "float16" and zoom_meta["finished"]
    assert meta["parameters"] + zoom_meta["parameters"] < 41_300_000
    predictor, _ = predictor_for(None)
    assert predictor.gripper_zoom and predictor.zoom_net is not None and predictor.memory_gate
