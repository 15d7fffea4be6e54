"""GraspSAM: the network (frozen SAM, adapters, tokens, heads), targets, training (loss falls, resume), every prompt
mode of the predictor and the policy, the CLI's one-line errors. Tiny SAMs built from configs, no downloads."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from graspsim.policies.graspsam.config import GraspSamConfig, PromptMode, parse_prompt  # noqa: E402

TINY = dict(batch_size=2, val_objects=3, steps_per_epoch=3, progress=False, log=lambda s: None)


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def tiny_sam_dir(tmp_path_factory) -> Path:
    """A tiny SamModel (32-wide ViT, 2 blocks, 128 px windows) saved with save_pretrained."""
    from transformers import SamModel

    from graspsim.policies.clip_sam.train_sam import sim_sam_config

    torch.manual_seed(0)
    out = tmp_path_factory.mktemp("tinysam") / "sam"
    SamModel(sim_sam_config(width=32, layers=2, channels=32)).save_pretrained(str(out))
    return out


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """3 tabletop-train scenes at 160x120 with grasp labels (seed 0 is the validation scene)."""
    from graspsim.data.render import render_dataset

    out = tmp_path_factory.mktemp("gsdata") / "ds"
    render_dataset("tabletop-train", 3, out, width=160, height=120, renderer="tiny", progress=False)
    return out


def _net(sam_dir, **cfg):
    from graspsim.policies.clip_sam.models import load_any_sam
    from graspsim.policies.graspsam.model import GraspSamNet

    torch.manual_seed(0)
    return GraspSamNet(load_any_sam(str(sam_dir)), GraspSamConfig(**cfg))


# ------------------------------------------------------------------ prompts


def test_prompt_modes_parse_and_bad_values_are_one_line():
    assert parse_prompt("points:10") == PromptMode("points", 10)
    assert parse_prompt("point") == PromptMode("points", 1) and str(parse_prompt("point")) == "points:1"
    assert [parse_prompt(m).kind for m in ("box", "language", "text", "none")] == ["box", "language", "text", "none"]
    from graspsim.policies.config import PolicyArgError
    from graspsim.policies.registry import check_policy_args

    for bad in ("points", "points:0", "boxes", "points:x"):
        with pytest.raises(PolicyArgError) as info:
            check_policy_args("graspsam", {"prompt": bad}, check_files=False)
        msg = str(info.value)
        assert "\n" not in msg and "points:10, points:K, point, box, language, text, none" in msg, msg


def test_harmonic_mean_and_paper_table():
    from graspsim.policies.graspsam.evaluate import harmonic_mean, paper_table

    assert harmonic_mean(0.90, 0.81) == pytest.approx(0.8526, abs=1e-4)  # the paper's Jacquard row: 0.85
    assert harmonic_mean(0.0, 0.0) == 0.0 and harmonic_mean(None, 0.5) is None
    table = paper_table({"shelf points:10": ({"grasp_accuracy": 0.8}, {"grasp_accuracy": 0.6})})
    assert "80.00  60.00  68.57" in table and "paper jacquard (tiny)" in table


# ------------------------------------------------------------------ network


def test_untrained_net_is_sam_and_only_new_parts_learn(tiny_sam_dir):
    from graspsim.policies.graspsam.train import loss

    net = _net(tiny_sam_dir, hires=False)
    counts = net.parameter_counts()
    assert counts["trainable"] > 0 and counts["frozen"] == sum(p.numel() for p in net.sam.parameters())
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(2, 3, 128, 128)).astype(np.float32))
    pts = torch.tensor([[[[40.0, 50.0], [60.0, 70.0]]], [[[80.0, 20.0], [0.0, 0.0]]]])
    lab = torch.tensor([[[1, 1]], [[1, -10]]])
    with torch.no_grad():  # adapters start as the identity: SAM's own single mask is the starting mask
        ref = net.sam(pixel_values=x, input_points=pts, input_labels=lab, multimask_output=False).pred_masks[:, 0, 0]
        assert torch.allclose(net(x, pts, lab)["sam_mask"], ref, atol=1e-4)
    m = net.map_size
    batch = ("points", {"pixels": x.numpy(), "points": pts[:, 0].numpy(), "labels": lab[:, 0].numpy(),
                        "mask": (rng.random((2, m, m)) > 0.5).astype(np.float32),
                        "weight": np.ones((2, m, m), np.float32),
                        **{k: rng.normal(size=(2, m, m)).astype(np.float32) for k in ("quality", "cos", "sin", "width")}})
    frozen = {k: v.clone() for k, v in net.sam.state_dict().items()}
    opt = torch.optim.AdamW([p for p in net.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):  # two steps: the adapters' zero-initialised outputs move first, then everything behind
        opt.zero_grad()
        loss(net, batch)["loss"].backward()
        assert all(p.grad is None for p in net.sam.parameters())
        opt.step()
    grads = {n: p.grad for n, p in net.named_parameters() if p.requires_grad}
    for prefix in ("adapters.0.tokens", "adapters.1.up.weight", "hq_token", "grasp_tokens", "grasp_mlps.0",
                   "early_up", "embedding_up", "decoder_feature"):
        assert any(n.startswith(prefix) and g is not None and g.abs().sum() > 0 for n, g in grads.items()), prefix
    assert all(torch.equal(frozen[k], v) for k, v in net.sam.state_dict().items())


# ------------------------------------------------------------------ targets


def test_target_maps_decode_back_to_the_rectangles():
    """Rectangles of a product -> window targets (the shared GR-ConvNet encoder) -> the predictor's decoding ->
    the same rectangles in image pixels."""
    from graspsim.grasping.metrics import angle_difference, rect_iou
    from graspsim.policies.clip_sam.train_data import Scene
    from graspsim.policies.det_seg.grconvnet import decode_maps
    from graspsim.policies.graspsam.predictor import decoding_config, map_rects_to_image
    from graspsim.policies.graspsam.train import window_targets
    from graspsim.types import GraspRect

    inst = np.full((240, 320), -1, np.int16)
    inst[60:180, 80:200] = 0
    inst[100:160, 230:300] = 1
    truth = {0: np.array([140.0, 120.0, 90.0, 20.0, 0.6]), 1: np.array([265.0, 130.0, 50.0, 16.0, -1.2])}
    scene = Scene(rgb=np.zeros((240, 320, 3), np.uint8), depth_m=np.ones((240, 320), np.float32),
                  class_map=np.where(inst >= 0, 0, -1).astype(np.int8), instance=inst, K=np.eye(3), kind="tabletop",
                  seed=0, instances=[], grasps=np.stack([truth[0], truth[1]]), grasp_quality=np.array([0.9, 0.8]),
                  grasp_instance=np.array([0, 1]))
    cfg = GraspSamConfig(blur_sigma=4.0)  # a flat target plateau: smoothing puts its maximum in the middle
    for inst_id, window, m in ((0, (70.0, 40.0, 160.0), 128), (1, (200.0, 60.0, 140.0), 64)):
        t = window_targets(scene, [inst_id], window, m, cfg.width_frac)
        assert t["mask"].max() == 1 and (t["weight"][t["mask"] > 0] == 1).all() and t["weight"].min() == 0.01
        assert (t["quality"] * (1 - t["mask"])).sum() < 0.1 * t["quality"].sum()  # grasps lie on their object
        rects, _ = decode_maps(t, decoding_config(cfg, m), t["mask"] > 0)
        got = map_rects_to_image(rects[:1], window, m)[0]
        want = truth[inst_id]
        assert math.hypot(got[0] - want[0], got[1] - want[1]) < 2.0 * window[2] / m  # two map pixels
        assert abs(got[2] - want[2]) < 1e-6 * want[2] + window[2] / m
        assert angle_difference(got[4], want[4]) < 1e-6
        got[3] = want[3]  # h is the gripper's finger size at inference (from depth), not a map
        assert rect_iou(GraspRect(*got), GraspRect(*want)) > 0.7


@pytest.mark.parametrize("k,mirror", [(1, False), (2, False), (3, False), (0, True), (1, True), (3, True)])
def test_turned_and_mirrored_windows_equal_targets_drawn_from_turned_and_mirrored_rectangles(k, mirror):
    """:func:`dihedral` on a window's targets == the targets drawn (shared GR-ConvNet encoder) from the rectangles
    moved by the same turn / mirror (x, y as prompt points, theta -> pi - theta, then theta - pi/2 per turn); the
    prompt's points and box move with the pixels."""
    from graspsim.policies.det_seg.targets import encode_grconvnet_maps
    from graspsim.policies.graspsam.train import dihedral

    m, s = 32, 64
    rects = np.array([[10.0, 12.0, 14.0, 4.0, 0.4], [22.0, 20.0, 9.0, 3.0, -1.1]])
    quality = np.array([0.9, 0.6])
    rng = np.random.default_rng(3)
    pixels = rng.normal(size=(3, s, s)).astype(np.float32)
    points = np.zeros((10, 2), np.float32)
    labels = np.full(10, -10, np.int64)
    points[:3], labels[:3] = [[5.0, 7.0], [40.0, 9.0], [33.0, 60.0]], 1
    item = {"pixels": pixels, "points": points, "labels": labels, "box": np.array([4.0, 6.0, 30.0, 50.0], np.float32),
            **encode_grconvnet_maps(rects, quality, m, 0.25 * m)}
    got = dihedral(item, k, mirror)

    def move(xy, n):
        xy = np.array(xy, dtype=np.float64, copy=True)
        if mirror:
            xy[:, 0] = n - 1 - xy[:, 0]
        for _ in range(k):
            xy = np.stack([xy[:, 1], n - 1 - xy[:, 0]], axis=1)
        return xy

    moved = rects.copy()
    moved[:, :2] = move(rects[:, :2], m)
    moved[:, 4] = (np.pi - rects[:, 4] if mirror else rects[:, 4]) - k * np.pi / 2
    want = encode_grconvnet_maps(moved, quality, m, 0.25 * m)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], atol=1e-5, err_msg=key)
    # the pixels move as the points do: the pixel under each moved point is the one under the original
    for (x, y), (x2, y2) in zip(points[:3].astype(int), move(points[:3], s).astype(int)):
        assert got["pixels"][0, y2, x2] == pixels[0, y, x]
    np.testing.assert_array_equal(got["points"][:3], move(points[:3], s))
    assert (got["points"][3:] == 0).all() and (got["labels"] == labels).all()
    corners = move(item["box"].reshape(2, 2), s)
    np.testing.assert_array_equal(got["box"], np.concatenate([corners.min(axis=0), corners.max(axis=0)]))
    assert got["box"][0] < got["box"][2] and got["box"][1] < got["box"][3]


def test_mask_chord_is_the_objects_extent_along_the_closing_axis():
    from graspsim.grasping.rect_geometry import rect_polygon_mask
    from graspsim.policies.graspsam.predictor import mask_chord_px
    from graspsim.types import GraspRect

    mask = rect_polygon_mask(GraspRect(80.0, 60.0, 50.0, 20.0, 0.5), (120, 160))  # 50 px along 0.5 rad
    assert mask_chord_px(mask, 80.0, 60.0, 0.5, max_px=80) == pytest.approx(50.0, abs=2.0)
    assert mask_chord_px(mask, 80.0, 60.0, 0.5 + math.pi / 2, max_px=80) == pytest.approx(20.0, abs=2.0)
    assert mask_chord_px(mask, 80.0, 60.0, 0.5, max_px=10) == pytest.approx(20.0, abs=0.6)  # capped each way


# ------------------------------------------------------------------ training


def test_training_loss_falls_and_resume_gives_identical_weights(dataset, tiny_sam_dir, tmp_path):
    from safetensors.torch import load_file

    from graspsim.learn.loop import STATE_FILE
    from graspsim.policies.graspsam.train import train_graspsam

    kw = dict(sam=str(tiny_sam_dir), config={"hires": False}, lr=3e-3, seed=1, **TINY)
    meta = train_graspsam([dataset], tmp_path / "a", epochs=4, **kw)
    losses = [h["train_loss"] for h in meta["history"]]
    assert losses[-1] < losses[0], losses
    assert meta["model"] == "graspsam" and meta["parameters"]["trainable"] > 0 and meta["finished"]
    assert 0.0 <= meta["metrics"]["val_grasp_accuracy"] <= 1.0 and 0.0 <= meta["metrics"]["val_mask_iou"] <= 1.0
    saved = load_file(str(tmp_path / "a" / "model.safetensors"))
    assert saved and not any(k.startswith("sam.") for k in saved)  # only the trainable parts are shipped
    b = tmp_path / "b"
    early = train_graspsam([dataset], b, epochs=4, max_minutes=1e-6, **kw)  # stops after its first epoch
    assert early["stopped_early"] and (b / STATE_FILE).exists()
    done = train_graspsam([dataset], b, epochs=4, resume=True, **kw)
    assert done["steps"] == meta["steps"]
    wb = load_file(str(b / "model.safetensors"))
    assert saved.keys() == wb.keys() and all(torch.equal(saved[k], wb[k]) for k in saved)


def test_labelled_map_loss_scores_angle_and_width_on_the_rectangles_only():
    from graspsim.policies.graspsam.model import MAP_KEYS
    from graspsim.policies.graspsam.train import loss

    m = 8
    mask = np.zeros((1, m, m), np.float32)
    mask[0, 2:6, 1:7] = 1.0  # the object
    quality = np.zeros((1, m, m), np.float32)
    quality[0, 3:5, 3:5] = 1.0  # one labelled rectangle's central third
    batch = {"pixels": np.zeros((1, 3, 16, 16), np.float32), "mask": mask, "weight": np.where(mask > 0, 1.0, 0.01),
             "quality": quality, "cos": quality * 0.6, "sin": quality * 0.8, "width": quality * 0.5}

    def net_saying(cos_off_rect: float):
        def net(pixels, **kw):
            out = {"mask": torch.zeros(1, m, m)}
            for k in MAP_KEYS:
                out[k] = torch.from_numpy(batch[k].copy())  # right on the rectangle
            out["cos"][0][torch.from_numpy((mask[0] > 0) & (quality[0] == 0))] = cos_off_rect
            return out
        return net

    on_rect_only = [loss(net_saying(v), ("none", batch), "labelled")["cos"].item() for v in (0.0, 0.9)]
    paper = [loss(net_saying(v), ("none", batch), "object")["cos"].item() for v in (0.0, 0.9)]
    assert on_rect_only == [0.0, 0.0]  # what the angle map says off the rectangle costs nothing
    assert paper[0] == 0.0 and paper[1] > 0.3  # the paper's weighting pulls it to cos = 0 there
    with pytest.raises(ValueError, match="map_loss must be one of object, labelled"):
        from graspsim.policies.graspsam.train import train_graspsam

        train_graspsam([], "nowhere", map_loss="rect")


def test_balanced_batches_draw_each_scene_kind_equally_often(monkeypatch):
    """``balance_kinds``: with 1 shelf scene for 5 table scenes, shelf samples are about half of the draws (a
    sixth without it)."""
    from types import SimpleNamespace

    import graspsim.policies.graspsam.train as gst
    from graspsim.policies.clip_sam.train_data import SceneBank

    class Bank(list):
        scenes = property(lambda self: self)
        by_kind = SceneBank.by_kind

    bank = Bank([SimpleNamespace(kind="shelf")] * 10 + [SimpleNamespace(kind="tabletop")] * 50)
    assert [len(g) for g in bank.by_kind] == [10, 50] and {g[0].kind for g in bank.by_kind} == {"shelf", "tabletop"}
    monkeypatch.setattr(gst, "_labelled", lambda scene: [0])
    monkeypatch.setattr(gst, "sample", lambda scene, *a: {"shelf": np.array(scene.kind == "shelf")})
    for balance, want in ((True, 0.5), (False, 1 / 6)):
        rng = np.random.default_rng(0)
        share = np.mean([gst.draw_batch(bank, 50, 128, 32, 0.25, rng, False, balance)[1]["shelf"].mean()
                         for _ in range(20)])
        assert abs(share - want) < 0.05, (balance, share)


def test_init_starts_from_a_checkpoint_and_a_wrong_one_is_refused(dataset, tiny_sam_dir, tmp_path):
    """``init``: a fresh run starts from a checkpoint's weights (with no steps it saves them unchanged) and takes
    its config and SAM; a checkpoint of another SAM does not load."""
    from safetensors.torch import load_file

    from graspsim.learn.checkpoint import CheckpointError
    from graspsim.policies.graspsam.train import train_graspsam

    kw = dict(lr=3e-3, seed=1, **TINY)
    train_graspsam([dataset], tmp_path / "a", sam=str(tiny_sam_dir), config={"adapter_tokens": 4}, epochs=1, **kw)
    meta = train_graspsam([dataset], tmp_path / "b", init=tmp_path / "a", epochs=1, **{**kw, "lr": 1e-12})
    assert meta["config"]["adapter_tokens"] == 4 and meta["sam"] == str(tiny_sam_dir)
    assert meta["init"] == str((tmp_path / "a").resolve())
    a, b = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(tmp_path / "b" / "model.safetensors"))
    assert a.keys() == b.keys() and all(torch.allclose(a[k].float(), b[k].float(), atol=1e-3) for k in a)
    with pytest.raises(CheckpointError, match="does not fit"):
        train_graspsam([dataset], tmp_path / "c", init=tmp_path / "a", sam=None, config={"adapter_tokens": 8},
                       epochs=1, **kw)
    # the CLI continues the init's network too (its config, not the defaults, unless --config says otherwise)
    from click.testing import CliRunner

    from graspsim.cli import main

    res = CliRunner().invoke(main, ["train", "graspsam", "--data", str(dataset), "--out", str(tmp_path / "d"),
                                    "--init", str(tmp_path / "a"), "--epochs", "1", "--steps-per-epoch", "1",
                                    "--batch-size", "2", "--val-objects", "1", "--no-progress"])
    assert res.exit_code == 0, res.output
    assert json.loads((tmp_path / "d" / "metadata.json").read_text())["config"]["adapter_tokens"] == 4


@pytest.fixture(scope="module")
def shipped_sam_ckpt(dataset, tmp_path_factory) -> Path:
    """A checkpoint on clip_sam's shipped SAM after one step (what the policy and evaluation load)."""
    from graspsim.policies.graspsam.train import train_graspsam

    out = tmp_path_factory.mktemp("gsckpt") / "ckpt"
    train_graspsam([dataset], out, epochs=1, lr=1e-3, seed=0, **{**TINY, "steps_per_epoch": 1, "val_objects": 1})
    return out


@pytest.mark.parametrize("prompt", ["points:10", "point", "box", "none"])
def test_every_prompt_mode_gives_a_valid_rectangle(shipped_sam_ckpt, dataset, prompt):
    from graspsim.data.format import iter_scene_dirs, read_scene
    from graspsim.policies.graspsam.predictor import GraspSamPredictor, load_net, prompt_from_mask

    s = read_scene(iter_scene_dirs(dataset)[1])
    h, w = s["rgb"].shape[:2]
    net, meta = load_net(shipped_sam_ckpt)
    target = s["instance"] == int(s["grasp_products"][0]) + 1
    out = GraspSamPredictor(net).predict(s["rgb"], s["depth_m"], s["K"],
                                         prompt_from_mask(target, parse_prompt(prompt), np.random.default_rng(0)))
    from graspsim.types import GraspRect

    rect = GraspRect(*out["rects"][0])
    rect.validate(w, h)
    assert 0 <= rect.x <= w - 1 and 0 <= rect.y <= h - 1 and rect.w >= 1 and rect.h >= 1
    from graspsim.grasping.mask_grasps import near_surface
    from graspsim.policies.graspsam.predictor import mask_chord_px

    row, col = int(round(rect.y)), int(round(rect.x))
    if out["mask"][row, col]:  # the jaws clear the predicted mask ("mask" opening): the chord of its nearest
        # surface where the centre lies on it, as the planner measures chords (the "chord" placement)
        surface = near_surface(out["mask"], s["depth_m"])
        region = surface if surface[row, col] else out["mask"]
        assert rect.w >= mask_chord_px(region, rect.x, rect.y, rect.theta, 1e3) or rect.w >= 0.99 * (
            0.08 * s["K"][0, 0] / s["depth_m"][row, col])
    assert out["mask"].shape == (h, w) and out["mask"].dtype == bool


def _observation(dataset, privileged: bool):
    from graspsim.data.format import iter_scene_dirs, read_scene
    from graspsim.scenes.instructions import pick_instruction
    from graspsim.types import CameraModel, Observation

    s = read_scene(iter_scene_dirs(dataset)[1])
    h, w = s["rgb"].shape[:2]
    name = next(o["class_name"] for o in s["meta"]["objects"] if o["grasps"])
    inst = s["instance"].astype(np.int32) - 1
    cls = s["class_map"].astype(np.int32) - 1
    return Observation(rgb=s["rgb"], depth_m=s["depth_m"], camera=CameraModel(K=s["K"], width=w, height=h,
                       T_world_camera=s["T_world_camera"], near_m=0.05, far_m=5.0), instruction=pick_instruction(name),
                       target_class=name, scene_kind="tabletop", approach_world=np.array([0.0, 0.0, -1.0]),
                       instance_seg=inst if privileged else None, class_seg=cls if privileged else None)


@pytest.mark.parametrize("prompt", ["language", "points:5", "box", "none"])
def test_policy_prompt_modes(shipped_sam_ckpt, dataset, prompt):
    from graspsim.policies.registry import make_policy

    policy = make_policy("graspsam", prompt=prompt, checkpoint=str(shipped_sam_ckpt))
    assert policy.needs_privileged == (prompt in ("points:5", "box"))
    policy.reset(np.random.default_rng(0))
    obs = _observation(dataset, privileged=policy.needs_privileged)
    out = policy.act(obs)
    out.rect.validate(obs.camera.width, obs.camera.height)
    assert out.info["prompt"] == prompt and out.mask.shape == obs.depth_m.shape
    assert {"net_ms", "decode_ms", "prompt_ms"} <= set(out.info)
    json.dumps(out.info)  # the results file takes it
    if prompt == "language":
        assert "lang_clip_ms" in out.info


def test_evaluate_and_cli_errors(shipped_sam_ckpt, dataset, tmp_path):
    from click.testing import CliRunner

    from graspsim.cli import main

    runner = CliRunner()
    res = runner.invoke(main, ["evaluate", "grasps", "--policy", "graspsam", "--data", str(dataset), "--out",
                               str(tmp_path / "ev"), "--checkpoint", str(shipped_sam_ckpt), "--prompt", "points:10",
                               "--prompt", "none", "--quiet"])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())["by_prompt"]
    assert set(m) == {"points:10", "none"} and m["none"]["queries"] == 3
    assert m["points:10"]["queries"] >= 3 and 0.0 <= m["points:10"]["grasp_accuracy"] <= 1.0
    assert m["points:10"]["grasp_accuracy"] <= m["points:10"]["class_accuracy"]
    assert m["points:10"]["placement"] == "chord" and m["points:10"]["point_refine"] == "box"  # the defaults
    for args, needle in (
        (["evaluate", "grasps", "--policy", "graspsam", "--data", str(dataset), "--out", str(tmp_path / "e2"),
          "--prompt", "pointz"], "--prompt: bad prompt 'pointz': expected one of points:10, points:K, point, box"),
        (["evaluate", "grasps", "--policy", "det_seg", "--data", str(dataset), "--out", str(tmp_path / "e3"),
          "--prompt", "box"], "--prompt is an option of --policy graspsam"),
        (["evaluate", "grasps", "--policy", "det_seg", "--data", str(dataset), "--out", str(tmp_path / "e4"),
          "--placement", "peak"], "--placement is an option of --policy graspsam"),
        (["evaluate", "grasps", "--policy", "det_seg", "--data", str(dataset), "--out", str(tmp_path / "e5"),
          "--point-refine", "off"], "--point-refine is an option of --policy graspsam"),
        (["bench", "--policy", "graspsam", "--suite", "shelf-test", "--episodes", "1", "--policy-arg",
          "placement=middle"], "placement"),
        (["train", "graspsam", "--data", str(tmp_path / "nothing"), "--out", str(tmp_path / "t")], "does not exist"),
        (["train", "graspsam", "--data", str(dataset), "--out", str(tmp_path / "t2"), "--config", '{"hirez": 1}'],
         "bad --config"),
        (["train", "graspsam", "--data", str(dataset), "--out", str(tmp_path / "t3"), "--init", str(tmp_path / "no")],
         "--init: no graspsam checkpoint at"),
        (["bench", "--policy", "graspsam", "--suite", "shelf-test", "--episodes", "1", "--policy-arg", "prompt=pts"],
         "bad --policy-arg prompt for policy graspsam"),
    ):
        res = runner.invoke(main, args)
        assert res.exit_code == 2, (args, res.output)
        assert needle in res.output and len(res.output.strip().splitlines()) == 1, res.output


def test_chord_placement_centres_the_jaws_and_ranks_refused_grasps_last(shipped_sam_ckpt):
    """``placement="chord"`` on known rectangles on a 4 x 12 cm bar: a grasp off the bar's axis slides to its
    middle and opens to the chord + clearance; one closing along the bar (too wide for the jaws) goes after one
    across it, whatever its quality; the angle search turns the along-grasp to the nearest angle that fits."""
    from graspsim.policies.graspsam.predictor import GraspSamPredictor, load_net

    net, _ = load_net(shipped_sam_ckpt)
    with pytest.raises(ValueError, match="placement must be one of chord, peak"):
        GraspSamPredictor(net, placement="centre")
    K = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])
    mask = np.zeros((480, 640), bool)
    mask[165:315, 295:345] = True  # 50 x 150 px centred at (319.5, 239.5)
    depth = np.full((480, 640), 1.0, np.float32)
    depth[mask] = 0.4  # 50 px = 4 cm, 150 px = 12 cm
    rects = np.array([[335.0, 250.0, 40.0, 10.0, math.pi / 2],  # best quality: along the bar (12 cm)
                      [335.0, 230.0, 40.0, 10.0, 0.0]])  # across, 15 px (1.2 cm) right of the axis
    pred = GraspSamPredictor(net, placement="chord", angle_search_deg=0)
    out, scores, fits = pred._on_chords(rects.copy(), np.array([0.9, 0.5]), mask, depth, K)
    assert scores.tolist() == [0.5, 0.9] and fits.tolist() == [True, False]
    assert out[0, :2] == pytest.approx([320.0, 230.0], abs=1.0)
    # opened to the chord + the planner's clearance on each side, in pixels at the centre's depth
    assert out[0, 2] == pytest.approx((0.04 + 2 * pred.margin_m) * 500 / 0.4, abs=2.0)
    assert out[1, :2] == pytest.approx([335.0, 250.0])

    # the angle search: a grasp along the bar alone turns to the nearest angle that fits with free fingers
    # (4 cm / cos 45 deg = 5.7 cm fits the 8 cm jaws with clearance; 4 cm / cos 60 deg = 8 cm does not)
    turning = GraspSamPredictor(net, placement="chord", angle_search_deg=60)
    out, scores, fits = turning._on_chords(rects[:1].copy(), np.array([0.9]), mask, depth, K)
    assert len(out) == 9 and fits[0]
    off_axis = lambda theta: abs((theta - math.pi / 2 + math.pi / 2) % math.pi - math.pi / 2)  # from "along"
    assert off_axis(out[0, 4]) == pytest.approx(math.pi / 4)
    # slid along its closing axis from (335, 250) to the chord's middle, on the bar's axis x = 319.5
    assert out[0, 0] == pytest.approx(319.5, abs=1.0)
    assert (out[0, 1] - 250.0) / (out[0, 0] - 335.0) == pytest.approx(math.tan(out[0, 4]), abs=0.05)
    # where the planner restricts the closing axis (shelves), no turns: the map's angle stays first
    out, _, fits = turning._on_chords(rects[:1].copy(), np.array([0.9]), mask, depth, K, theta_range=(0.0, 0.4))
    assert len(out) == 1 and not fits[0] and off_axis(out[0, 4]) == pytest.approx(0.0)


def test_point_refine_runs_a_second_pass_prompted_by_the_box_of_the_first_mask(shipped_sam_ckpt):
    """``point_refine="box"``: on a top-down view a prompt of points alone is answered twice, the second time with
    the same points and the box around the first answer's mask, in that box's window; "off", a box prompt, an empty
    first mask or a shelf (a restricted closing axis): one pass. The network's maps are replaced by known ones (a
    mask over a quarter of the window)."""
    from graspsim.policies.clip_sam.prompts import Prompt
    from graspsim.policies.clip_sam.windows import box_window, paste
    from graspsim.masks import mask_box
    from graspsim.policies.graspsam.predictor import BOX_WINDOW_SCALE, GraspSamPredictor, load_net, prompt_window

    net, _ = load_net(shipped_sam_ckpt)
    with pytest.raises(ValueError, match="point_refine must be one of box, off"):
        GraspSamPredictor(net, point_refine="twice")
    m = net.map_size
    K = np.array([[500.0, 0.0, 319.5], [0.0, 500.0, 239.5], [0.0, 0.0, 1.0]])
    depth = np.full((480, 640), 0.5, np.float32)
    rgb = np.zeros((480, 640, 3), np.uint8)
    logits = np.full((m, m), -5.0, np.float32)
    logits[m // 4: m // 2, m // 4: 3 * m // 4] = 5.0
    quality = np.zeros((m, m), np.float32)
    quality[3 * m // 8, m // 2] = 1.0

    def run(point_refine: str, prompt, mask_logits=logits, theta_range=None):
        pred = GraspSamPredictor(net, placement="peak", point_refine=point_refine)
        calls = []

        def known_maps(rgb, prompt, window, text_embed=None):
            calls.append((prompt, window))
            return {"mask": mask_logits, "quality": quality, "cos": np.ones((m, m), np.float32),
                    "sin": np.zeros((m, m), np.float32), "width": np.zeros((m, m), np.float32)}

        pred.maps = known_maps
        return pred.predict(rgb, depth, K, prompt, theta_range=theta_range), calls

    points = Prompt("points:3", np.array([[300.0, 200.0], [320.0, 210.0], [340.0, 220.0]]), np.ones(3))
    out, calls = run("box", points)
    first_window = prompt_window(points, depth, K)
    first_mask = paste(logits, first_window, (480, 640)) > 0.0
    box = mask_box(first_mask)
    assert out["refined"] and len(calls) == 2 and calls[0] == (points, first_window)
    again, window = calls[1]
    np.testing.assert_array_equal(again.points, points.points)
    np.testing.assert_array_equal(again.box, box)
    assert window == box_window(box, scale=BOX_WINDOW_SCALE) and out["window"] == window
    assert set(out["seconds"]) == {"net", "decode"}

    for refine, prompt, mask_logits, theta_range in (
            ("off", points, logits, None), ("box", Prompt("box", np.zeros((0, 2)), np.zeros(0), box), logits, None),
            ("box", points, np.full((m, m), -5.0, np.float32), None), ("box", points, logits, (-0.4, 0.4))):
        out, calls = run(refine, prompt, mask_logits, theta_range)
        assert not out["refined"] and len(calls) == 1, (refine, prompt.mode)


# ------------------------------------------------------------------ the text prompt token


def test_text_token_is_one_more_sparse_prompt_and_only_exists_when_configured(tiny_sam_dir):
    plain, with_text = _net(tiny_sam_dir, hires=False), _net(tiny_sam_dir, hires=False, text_dim=8)
    assert plain.text_proj is None and with_text.text_proj is not None
    x = torch.zeros(1, 3, 128, 128)
    t = torch.ones(1, 8)
    with torch.no_grad():
        a, b = with_text(x), with_text(x, text_embeds=t)
        c = with_text(x, text_embeds=-t)
        assert not torch.allclose(a["mask"], b["mask"]) and not torch.allclose(b["mask"], c["mask"])
        with pytest.raises(ValueError, match="no text prompt token"):
            plain(x, text_embeds=t)
    # the token goes through the decoder like SAM's prompt tokens: gradients reach the projection, and the
    # zero-initialised text adapters' output layers (the identity at first: without them the same masks)
    assert len(with_text.text_adapters) == 2 and _net(tiny_sam_dir, text_dim=8, text_adapter_rank=0).text_adapters.__len__() == 0
    with_text(x, text_embeds=t)["mask"].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in with_text.text_proj.parameters())
    assert all(a.up.weight.grad.abs().sum() > 0 for a in with_text.text_adapters)


@pytest.fixture(scope="module")
def text_ckpt(shipped_sam_ckpt, dataset, tmp_path_factory):
    """``shipped_sam_ckpt`` + a text token trained alone for 2 x 3 steps: ``(checkpoint dir, metadata)``."""
    from graspsim.policies.graspsam.train import train_graspsam

    out = tmp_path_factory.mktemp("gstext") / "ckpt"
    meta = train_graspsam([dataset], out, init=shipped_sam_ckpt, trainable="text", epochs=2, lr=1e-2, seed=0,
                          **TINY)
    return out, meta


def test_text_token_trains_alone_and_leaves_every_other_weight_as_the_init(text_ckpt, shipped_sam_ckpt, dataset):
    """``trainable="text"`` from a checkpoint without a text token: the token's projection is added and trained
    (its mask loss on a fixed batch falls), and every other tensor is the init's, bit for bit, so every other
    prompt mode gives the init's output."""
    from safetensors.torch import load_file

    from graspsim.policies.clip_sam.train_data import SceneBank
    from graspsim.policies.graspsam.predictor import load_net
    from graspsim.policies.graspsam.text import TextEncoder
    from graspsim.policies.graspsam.train import draw_batch, loss

    out, meta = text_ckpt
    encoder = TextEncoder(None)
    assert meta["config"]["text_dim"] == encoder.dim and meta["text_encoder"] is None and meta["trainable"] == "text"
    new_parts = ("text_proj.", "text_adapters.")
    assert meta["trained_parameters"] == sum(
        v.numel() for k, v in load_file(str(out / "model.safetensors")).items() if k.startswith(new_parts))
    assert {"val_text_found", "val_text_class_iou"} <= set(meta["metrics"])
    init, new = load_file(str(shipped_sam_ckpt / "model.safetensors")), load_file(str(out / "model.safetensors"))
    added = set(new) - set(init)
    assert {k.split(".")[0] for k in added} == {"text_proj", "text_adapters"}
    assert all(torch.equal(init[k], new[k]) for k in init)
    assert any(not torch.equal(new[k], torch.zeros_like(new[k])) for k in added if ".up." in k)  # adapters moved
    assert all(torch.equal(init[k], new[k]) for k in init)
    # the mask loss of the trained token on a fixed batch of text prompts is below the fresh token's
    table = encoder.template_table()
    flat = torch.from_numpy(table.reshape(-1, table.shape[-1]))
    net, _ = load_net(out)
    torch.manual_seed(0)
    fresh = load_net(shipped_sam_ckpt)[0]
    fresh_text = _net_with_fresh_text(fresh, encoder.dim)
    bank = SceneBank([dataset], "train")
    batch = draw_batch(bank, 4, net.image_size, net.map_size, 0.25, np.random.default_rng(3), text_prompts=1.0,
                       n_templates=table.shape[1])
    assert batch[0] == "text" and batch[1]["text"].shape == (4,)
    with torch.no_grad():
        trained_loss = float(loss(net, batch, text_table=flat)["mask"])
        fresh_loss = float(loss(fresh_text, batch, text_table=flat)["mask"])
    assert trained_loss < fresh_loss, (trained_loss, fresh_loss)


def _net_with_fresh_text(net, text_dim: int):
    """``net``'s trainable weights in a network of the same SAM with a freshly initialised text token."""
    from graspsim.policies.graspsam.model import GraspSamNet

    out = GraspSamNet(net.sam, GraspSamConfig.from_dict({**net.config.to_dict(), "text_dim": text_dim}))
    out.load_state_dict(net.trainable_state_dict(), strict=False)
    return out.eval()


def test_text_tiles_cover_the_image_with_overlap():
    from graspsim.policies.graspsam.predictor import TEXT_TILE_OVERLAP, text_tile_side, text_tiles

    K = np.array([[500.0, 0, 319.5], [0, 500.0, 239.5], [0, 0, 1]])
    depth = np.full((480, 640), 1.0, np.float32)
    assert text_tile_side(depth, K) == pytest.approx(150.0)  # 0.30 m at 1 m with fx 500
    tiles = text_tiles(depth, K)
    xs, ys = sorted({t[0] for t in tiles}), sorted({t[1] for t in tiles})
    assert len(tiles) == len(xs) * len(ys) and all(t[2] == pytest.approx(150.0) for t in tiles)
    assert xs[0] == pytest.approx(-0.5) and xs[-1] + 150 == pytest.approx(639.5)  # edge to edge
    assert ys[0] == pytest.approx(-0.5) and ys[-1] + 150 == pytest.approx(479.5)
    assert max(np.diff(xs)) <= 150 * (1 - TEXT_TILE_OVERLAP) + 1e-6 and max(np.diff(ys)) <= 150 * (1 - TEXT_TILE_OVERLAP) + 1e-6
    depth[:] = np.nan  # no depth: 0.4 of the larger side
    assert text_tile_side(depth, K) == pytest.approx(256.0)
    depth[:] = 0.05  # very near: one window, the image's larger side, centred
    (x0, y0, side), = text_tiles(depth, K)
    assert side == 640 and x0 == pytest.approx(-0.5) and y0 + side / 2 == pytest.approx(239.5)


def test_find_text_boxes_the_most_confident_part_of_the_mask(shipped_sam_ckpt, dataset):
    """Known logits on the image (two blobs, the second surer) seen through the text tiles: the box is the
    second blob's, the robot's pixels are never part of it, nothing found gives None."""
    from graspsim.data.format import iter_scene_dirs, read_scene
    from graspsim.policies.clip_sam.windows import crop
    from graspsim.policies.graspsam.predictor import GraspSamPredictor, load_net

    s = read_scene(iter_scene_dirs(dataset)[1])
    h, w = s["depth_m"].shape
    pred = GraspSamPredictor(load_net(shipped_sam_ckpt)[0])
    logits = np.full((h, w), -5.0, np.float32)
    logits[10:30, 20:40] = 2.0
    logits[60:90, 100:140] = 4.0
    logits[70, 120] = 6.0
    m = pred.net.map_size
    pred.tile_logits = lambda rgb, windows, text_embed: np.stack(
        [crop(logits, t, m, interpolation=0) for t in windows])
    prompt, mask = pred.find_text(s["rgb"], s["depth_m"], s["K"], np.zeros(4, np.float32))
    np.testing.assert_allclose(prompt.box, [100, 60, 140, 90], atol=3)
    assert not mask[20, 30] and mask[75, 120]
    robot = np.zeros((h, w), bool)  # the robot's pixels are not the product's: the other blob remains
    robot[50:, 95:] = True
    prompt, mask = pred.find_text(s["rgb"], s["depth_m"], s["K"], np.zeros(4, np.float32), exclude=robot)
    np.testing.assert_allclose(prompt.box, [20, 10, 40, 30], atol=3)
    assert not (mask & robot).any()
    logits[:] = -1.0  # nothing found
    prompt, mask = pred.find_text(s["rgb"], s["depth_m"], s["K"], np.zeros(4, np.float32))
    assert prompt is None and not mask.any()


def test_text_prompt_policy_evaluation_and_errors(text_ckpt, shipped_sam_ckpt, dataset, tmp_path):
    """``prompt=text``: a valid rectangle (found or not), its stage times; ``evaluate --prompt text`` scores it
    per (scene, class) as ``language``; a checkpoint without a text token is a one-line error."""
    from click.testing import CliRunner

    from graspsim.cli import main
    from graspsim.policies.registry import make_policy

    out, _ = text_ckpt
    policy = make_policy("graspsam", prompt="text", checkpoint=str(out))
    assert not policy.needs_privileged
    policy.reset(np.random.default_rng(0))
    obs = _observation(dataset, privileged=False)
    res = policy.act(obs)
    res.rect.validate(obs.camera.width, obs.camera.height)
    assert res.info["prompt"] == "text" and {"text_embed_ms", "text_find_ms", "text_found"} <= set(res.info)
    json.dumps(res.info)
    runner = CliRunner()
    r = runner.invoke(main, ["evaluate", "grasps", "--policy", "graspsam", "--data", str(dataset), "--out",
                             str(tmp_path / "ev"), "--checkpoint", str(out), "--prompt", "text", "--quiet"])
    assert r.exit_code == 0, r.output
    m = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert m["prompt"] == "text" and m["queries"] >= 1 and 0.0 <= m["grasp_accuracy"] <= 1.0
    for args in (["bench", "--policy", "graspsam", "--suite", "shelf-test", "--episodes", "1", "--policy-arg",
                  "prompt=text", "--policy-arg", f"checkpoint={shipped_sam_ckpt}"],
                 ["evaluate", "grasps", "--policy", "graspsam", "--data", str(dataset), "--out", str(tmp_path / "e"),
                  "--checkpoint", str(shipped_sam_ckpt), "--prompt", "text"]):
        r = runner.invoke(main, args)
        assert r.exit_code == 2 and "needs a checkpoint with a text token" in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1, r.output
    for args, needle in ((["--trainable", "parts"], "--trainable"), (["--text-prompts", "1.5"], "--text-prompts")):
        r = runner.invoke(main, ["train", "graspsam", "--data", str(dataset), "--out", str(tmp_path / "t"), *args])
        assert r.exit_code == 2 and needle in r.output, r.output
