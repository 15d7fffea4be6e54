"""Training the clip_sam models: data windows, tokenizer, tiny CLIP/SAM trained on rendered images (loss falls),
resume and determinism, the CLI's user errors. Models are tiny and built from configs (no downloads)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from graspsim.policies.clip_sam import vocab  # noqa: E402
from graspsim.policies.clip_sam.windows import box_to_window, crop, paste, to_window  # noqa: E402

TINY_CLIP = dict(width=32, layers=1, batch={"n_full": 2, "n_zoom": 2, "n_crops": 4}, val_crops=8, val_cams=2)
TINY_SAM = dict(width=32, layers=2, channels=32, batch_size=4, val_instances=4)


# ------------------------------------------------------------------ windows and tokenizer


def test_crop_paste_round_trip_and_coordinates():
    img = np.zeros((100, 120), np.float32)
    img[40:60, 50:70] = 1.0
    win = (30.0, 20.0, 60.0)  # x0, y0, side: scale 1 at size 60
    c = crop(img, win, 60)
    assert c.sum() == pytest.approx(400.0)
    assert c[20:40, 20:40].min() == 1.0  # the square moved by (-30, -20)
    back = paste(c, win, (100, 120))
    np.testing.assert_allclose(back, img)
    np.testing.assert_allclose(to_window(np.array([50.0, 40.0]), win, 60), [20.0, 20.0])
    # half resolution: pixel centres map with the half-pixel convention
    np.testing.assert_allclose(to_window(np.array([30.5, 20.5]), win, 30), [0.0, 0.0])
    np.testing.assert_allclose(box_to_window(np.array([30, 20, 90, 80]), win, 30), [0, 0, 30, 30])
    # outside the image is zero-padded
    assert crop(img, (-200.0, -200.0, 50.0), 10).sum() == 0


def test_tokenizer_words_unknowns_and_eos():
    tok = vocab.build_tokenizer()
    ids, mask = vocab.tokenize(tok, ["pick the soda can", "grab the fizzy energy drink"])
    assert ids.shape == mask.shape and ids.shape[0] == 2
    assert ids[0, 0] == vocab.BOS_ID and ids[0, 5] == vocab.EOS_ID and ids[0, 6] == vocab.PAD_ID
    assert mask[0].tolist() == [1, 1, 1, 1, 1, 1, 0]
    assert (ids[1] == vocab.UNK_ID).sum() == 1  # "fizzy" is not in the vocabulary; "energy drink" is
    # every class name is in the vocabulary
    for name in vocab.class_names():
        i, _ = vocab.tokenize(tok, [name])
        assert vocab.UNK_ID not in i[0].tolist()
    # a long text keeps an <eos> (the CLIP text model pools there)
    i, _ = vocab.tokenize(tok, ["pick " * 40])
    assert i.shape[1] == vocab.MAX_LENGTH and vocab.EOS_ID in i[0].tolist()


def test_scene_bank_and_samples(seg_data):
    from graspsim.policies.clip_sam.train_data import BACKGROUND, SceneBank, clip_batch, sam_batch

    bank = SceneBank([seg_data], split="train")
    assert len(bank) == 3  # seed 0 is the validation scene
    assert len(SceneBank([seg_data], split="val")) == 1
    rng = np.random.default_rng(0)
    b = clip_batch(bank, rng, 2, 2, 3, 224, 14, 112)
    assert b["images"].shape == (4, 3, 224, 224) and b["crops"].shape == (3, 3, 112, 112)
    assert b["grid"].shape == (4, 14, 14) and set(np.unique(b["grid"])) <= set(range(-100, BACKGROUND + 1))
    assert (b["presence"] == 1).any(axis=1).all()  # every frame shows a product
    s = sam_batch(bank, rng, 3, "point", 128, 64)
    assert s["pixels"].shape == (3, 3, 128, 128) and s["masks"].shape == (3, 64, 64)
    assert (s["labels"][:, 0] == 1).all() and 0.0 <= s["masks"].min() and s["masks"].max() <= 1.0
    # the positive point lies on the target mask (window coordinates at 128 -> mask at 64)
    for p, m in zip(s["points"][:, 0], s["masks"]):
        assert m[int(p[1] / 2), int(p[0] / 2)] > 0.5
    s = sam_batch(bank, rng, 3, "box", 128, 64)
    assert np.isfinite(s["boxes"]).all()
    # same generator state, same samples
    a = clip_batch(bank, np.random.default_rng(5), 1, 1, 1, 224, 14, 112)
    b2 = clip_batch(bank, np.random.default_rng(5), 1, 1, 1, 224, 14, 112)
    np.testing.assert_array_equal(a["images"], b2["images"])


def test_product_hue_shift_turns_each_product_by_its_own_angle_and_leaves_the_rest():
    """Known answer: a pure-red product shifted by +120 degrees is pure green, one shifted by -120 is blue (hue
    is a circle); the background keeps its pixels; with p=0 nothing changes; same generator, same image."""
    import cv2

    from graspsim.policies.clip_sam.train_data import shift_product_hues

    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[...] = (90, 90, 90)
    rgb[2:10, 2:12] = (200, 0, 0)
    rgb[12:18, 15:28] = (200, 0, 0)
    inst = np.full((20, 30), -1, np.int16)
    inst[2:10, 2:12], inst[12:18, 15:28] = 0, 3
    rng = np.random.default_rng(0)
    out = shift_product_hues(rgb, inst, rng, 120.0, p=1.0, value=0.0, min_deg=120.0)
    for c in (out[5, 5].astype(int), out[14, 20].astype(int)):  # +-120 degrees: green or blue, brightness kept
        # (hue is stored in 256 steps: a few levels of the other channels are rounding)
        assert min(np.abs(c - (0, 200, 0)).max(), np.abs(c - (0, 0, 200)).max()) <= 8, c
    assert (out[inst < 0] == rgb[inst < 0]).all()
    assert all(len({tuple(c) for c in out[inst == i]}) == 1 for i in (0, 3))  # one shift per product
    np.testing.assert_array_equal(shift_product_hues(rgb, inst, np.random.default_rng(1), 60.0, p=0.0), rgb)
    a = shift_product_hues(rgb, inst, np.random.default_rng(7), 50.0)
    np.testing.assert_array_equal(a, shift_product_hues(rgb, inst, np.random.default_rng(7), 50.0))
    # a small shift keeps the colour's saturation and brightness, moves its hue by about that much
    small = shift_product_hues(rgb, inst, np.random.default_rng(2), 30.0, p=1.0, value=0.0, min_deg=30.0)
    h0 = cv2.cvtColor(rgb[5:6, 5:6], cv2.COLOR_RGB2HSV_FULL)[0, 0]
    h1 = cv2.cvtColor(small[5:6, 5:6], cv2.COLOR_RGB2HSV_FULL)[0, 0]
    turn = ((int(h1[0]) - int(h0[0]) + 128) % 256 - 128) * 360.0 / 256.0
    assert abs(abs(turn) - 30.0) < 3.0 and abs(int(h1[2]) - int(h0[2])) <= 2


# ------------------------------------------------------------------ training


def _history_losses(out: Path, meta: dict) -> list[float]:
    from graspsim.runs import read_jsonl

    assert read_jsonl(out / "metrics.jsonl", key="epoch") == meta["history"]  # the history is metrics.jsonl
    return [h["train_loss"] for h in meta["history"]]


def test_tiny_clip_trains_loss_falls_and_loads(seg_data, tmp_path):
    from graspsim.policies.clip_sam.train_clip import train_clip
    from graspsim.policies.clip_sam.models import load_clip

    out = tmp_path / "clip"
    meta = train_clip([seg_data], out, epochs=3, steps_per_epoch=6, lr=2e-3, seed=0, progress=False,
                      log=lambda s: None, **TINY_CLIP)
    losses = _history_losses(out, meta)
    assert losses[-1] < losses[0], losses
    assert {"clip_top1", "clip_top5", "cam_peak_on_target"} <= set(meta["metrics"])
    assert 0.0 <= meta["metrics"]["clip_top1"] <= meta["metrics"]["clip_top5"] <= 1.0
    saved = json.loads((out / "metadata.json").read_text())
    assert saved["seed"] == 0 and saved["data"][0]["suite"] == "tabletop-train" and saved["steps"] == 18
    assert not (out / "train_state.pt").exists()
    model, processor = load_clip(out)
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(out))
    ids, mask = vocab.tokenize(tok, ["pick the soda can"])
    with torch.no_grad():
        emb = model.get_text_features(input_ids=ids, attention_mask=mask)
    emb = getattr(emb, "pooler_output", emb)
    assert torch.isfinite(emb).all()


def test_tiny_sam_trains_loss_falls(seg_data, tmp_path):
    from graspsim.policies.clip_sam.train_sam import train_sam

    meta = train_sam([seg_data], tmp_path / "sam", epochs=3, steps_per_epoch=6, lr=2e-3, seed=0, progress=False,
                     log=lambda s: None, **TINY_SAM)
    losses = [h["train_loss"] for h in meta["history"]]
    assert losses[-1] < losses[0], losses
    assert 0.0 <= meta["metrics"]["val_iou_point"] <= 1.0 and 0.0 <= meta["metrics"]["val_iou_box"] <= 1.0


def test_training_is_deterministic_and_resumable(seg_data, tmp_path):
    from graspsim.learn.loop import STATE_FILE
    from graspsim.policies.clip_sam.train_sam import train_sam
    from graspsim.runs import RunDirError
    from safetensors.torch import load_file

    kw = dict(steps_per_epoch=2, lr=1e-3, seed=3, progress=False, log=lambda s: None, **TINY_SAM)
    train_sam([seg_data], tmp_path / "a", epochs=2, **kw)
    # "killed" after epoch 1: run 1 epoch, then keep its state as if the run had stopped there
    with pytest.raises(RunDirError):
        train_sam([seg_data], tmp_path / "a", epochs=2, **kw)  # not empty, no --resume
    b = tmp_path / "b"
    early = train_sam([seg_data], b, epochs=2, max_minutes=1e-6, **kw)  # stops after its first epoch
    assert early["stopped_early"] and early["steps"] == 2
    assert (b / STATE_FILE).exists() and (b / "metadata.json").exists()
    meta = train_sam([seg_data], b, epochs=2, resume=True, **kw)
    assert meta["steps"] == 4
    wa, wb = load_file(str(tmp_path / "a" / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    for k in wa:
        assert torch.equal(wa[k], wb[k]), k
    with pytest.raises(RunDirError, match="differ from the stored train.json on 'lr'"):
        c = tmp_path / "c"
        train_sam([seg_data], c, epochs=2, max_minutes=1e-6, **kw)
        train_sam([seg_data], c, epochs=2, resume=True, **{**kw, "lr": 5e-3})


def test_train_cli_user_errors(tmp_path):
    from click.testing import CliRunner

    from graspsim.cli import main

    r = CliRunner().invoke(main, ["train", "clip", "--data", str(tmp_path / "nope"), "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "not a rendered dataset" in r.output and "Traceback" not in r.output
    r = CliRunner().invoke(main, ["train", "sam", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and "--data" in r.output


# ------------------------------------------------------------------ the Grad-CAM localisation term


def test_cam_loss_known_answers_and_gradient_reaches_the_activations():
    """score_b = sum_ij A_ij . u: every patch's gradient is u, so Grad-CAM = A . u; the loss is ~0 when
    the target patch holds the map's clear peak, large when the target is elsewhere, and its gradient
    (through the kept gradient) reaches the activations."""
    from graspsim.policies.clip_sam.train_clip import cam_localisation_loss

    n, c = 9, 4
    u = torch.tensor([1.0, 0.0, 0.0, 0.0])
    base = torch.zeros(2, 1 + n, c)
    base[:, 1 + 3, 0] = 10.0  # patch 3 holds the peak of A . u in both images
    act = base.clone().requires_grad_(True)
    score = ((act[:, 1:] * u).sum(-1) ** 2).sum(-1) / 20.0  # gradient 2 A.u u / 20: still peaks at patch 3
    grid = torch.full((2, n), 24)
    grid[0, 3] = 5   # image 0: class 5 sits on the peak
    grid[1, 7] = 5   # image 1: class 5 sits away from it
    on_peak = cam_localisation_loss(act, score, torch.tensor([5, -1]), grid)
    off_peak = cam_localisation_loss(act, score, torch.tensor([-1, 5]), grid)
    assert float(on_peak.detach()) < 0.01 < 5.0 < float(off_peak.detach())
    off_peak.backward()
    assert act.grad is not None and float(act.grad.abs().sum()) > 0
    # no image with a drawn class: a zero loss, not a NaN
    assert float(cam_localisation_loss(act, score, torch.tensor([-1, -1]), grid)) == 0.0


def test_cam_loss_map_is_the_policy_gradcam_map():
    """The map the training term shapes is the policy's Grad-CAM (same site, same weights): their peaks
    and (after ReLU and scaling) their values agree on a tiny CLIP."""
    from transformers import CLIPModel

    from graspsim.policies.clip_sam.embed import image_embeddings, text_embeddings
    from graspsim.policies.clip_sam.gradcam import cam_from_grad, clip_gradcam, normalize_cam
    from graspsim.policies.clip_sam.train_clip import sim_clip_config

    torch.manual_seed(0)
    tok = vocab.build_tokenizer()
    model = CLIPModel(sim_clip_config(len(tok), image_size=64, width=32, layers=2)).eval()
    model.set_attn_implementation("eager")
    pv = torch.randn(1, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    ids, mask = vocab.tokenize(tok, ["pick the soda can"])
    captured = {}
    h = model.vision_model.encoder.layers[-1].layer_norm1.register_forward_hook(
        lambda _m, _i, out: captured.__setitem__("act", out))
    try:
        pooled, _ = image_embeddings(model, pv, with_patches=False)
    finally:
        h.remove()
    text = text_embeddings(model, tok, ["pick the soda can"])
    score = model.logit_scale.exp() * (pooled * text).sum(-1)
    (grad,) = torch.autograd.grad(score.sum(), captured["act"])
    z = cam_from_grad(captured["act"][0, 1:], grad[0, 1:]).detach()
    expected = clip_gradcam(model, pv, ids, mask)
    np.testing.assert_allclose(normalize_cam(torch.relu(z).reshape(4, 4).numpy()), expected, atol=1e-4)


def test_tiny_clip_trains_with_the_cam_term(seg_data, tmp_path):
    from graspsim.policies.clip_sam.train_clip import train_clip

    out = tmp_path / "clip"
    meta = train_clip([seg_data], out, epochs=2, steps_per_epoch=3, lr=2e-3, seed=0, progress=False,
                      log=lambda s: None, cam_weight=1.0, **TINY_CLIP)
    assert all(np.isfinite(h["train_cam"]) and h["train_cam"] >= 0 for h in meta["history"])
    assert json.loads((out / "metadata.json").read_text())["cam_weight"] == 1.0
