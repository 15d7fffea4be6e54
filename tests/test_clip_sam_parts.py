"""Library parts of the clip_sam policy: Grad-CAM, prompts, model loading.

Tiny random-init models only; nothing touches the network (HF_HUB_OFFLINE=1 and
local_files_only=True everywhere).
"""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from graspsim.policies.clip_sam import gradcam, models, prompts  # noqa: E402
from graspsim.policies.clip_sam.prompts import PROMPT_MODES, Prompt, make_prompts  # noqa: E402


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def _tiny_clip(seed: int = 0, image_size: int = 64):
    """The shipped CLIP architecture, 2 layers x 64 wide, a 100-word vocabulary (eos = 1)."""
    from transformers import CLIPModel

    from graspsim.policies.clip_sam.train_clip import sim_clip_config

    torch.manual_seed(seed)
    return CLIPModel(sim_clip_config(100, image_size=image_size, width=64, layers=2)).eval()


def _tiny_sam(seed: int = 0):
    from transformers import SamModel

    from graspsim.policies.clip_sam.train_sam import sim_sam_config

    torch.manual_seed(seed)
    return SamModel(sim_sam_config(image_size=64, width=32, layers=2, channels=32)).eval()


def _clip_inputs(seed: int = 1, image_size: int = 64):
    g = torch.Generator().manual_seed(seed)
    pixel_values = torch.randn(1, 3, image_size, image_size, generator=g)
    input_ids = torch.tensor([[0, 5, 17, 42, 1]])  # bos ... eos(=1)
    return pixel_values, input_ids


def _has_hooks(model) -> bool:
    return any(
        m._forward_hooks or m._forward_pre_hooks or m._backward_hooks or getattr(m, "_backward_pre_hooks", None)
        for m in model.modules()
    )


# ------------------------------------------------------------------ Grad-CAM


@pytest.mark.parametrize("image_size", [64, 96])
def test_gradcam_shape_range_and_no_hooks_left(image_size):
    model = _tiny_clip(image_size=image_size)
    pv, ids = _clip_inputs(image_size=image_size)
    flags = [p.requires_grad for p in model.parameters()]
    with torch.no_grad():  # must still work under no_grad
        cam = gradcam.clip_gradcam(model, pv, ids)
    grid = image_size // 16
    assert cam.shape == (grid, grid)
    assert cam.dtype == np.float32
    assert np.isfinite(cam).all()
    assert cam.min() >= 0.0 and cam.max() <= 1.0
    assert cam.max() == pytest.approx(1.0)  # last-layer input site gives a non-trivial map
    assert not _has_hooks(model)
    assert [p.requires_grad for p in model.parameters()] == flags
    assert all(p.grad is None for p in model.parameters())


def test_gradcam_frozen_model_and_layers():
    model = _tiny_clip()
    for p in model.parameters():
        p.requires_grad_(False)
    pv, ids = _clip_inputs()
    for layer, site in [(-1, "input"), (0, "output"), (-2, "output"), (-1, "output")]:
        cam = gradcam.clip_gradcam(model, pv, ids, layer=layer, site=site)
        assert cam.shape == (4, 4) and np.isfinite(cam).all()
        assert 0.0 <= cam.min() and cam.max() <= 1.0
    # The last layer's *output* patch tokens do not reach CLIP's pooled class token: all-zero map, no NaN.
    assert np.all(gradcam.clip_gradcam(model, pv, ids, layer=-1, site="output") == 0.0)
    assert all(not p.requires_grad for p in model.parameters())
    assert not _has_hooks(model)
    with pytest.raises(ValueError, match="site"):
        gradcam.clip_gradcam(model, pv, ids, site="middle")
    with pytest.raises(ValueError, match="out of range"):
        gradcam.clip_gradcam(model, pv, ids, layer=5)


def test_gradcam_deterministic():
    pv, ids = _clip_inputs()
    a = gradcam.clip_gradcam(_tiny_clip(seed=3), pv, ids)
    b = gradcam.clip_gradcam(_tiny_clip(seed=3), pv, ids)
    np.testing.assert_array_equal(a, b)


def test_upsample_cam():
    model = _tiny_clip()
    pv, ids = _clip_inputs()
    cam = gradcam.clip_gradcam(model, pv, ids)
    up = gradcam.upsample_cam(cam, (48, 80))
    assert up.shape == (48, 80) and up.dtype == np.float32
    assert 0.0 <= up.min() and up.max() <= 1.0


def test_normalize_cam_zero_and_nan():
    assert np.all(gradcam.normalize_cam(np.zeros((3, 4))) == 0.0)
    out = gradcam.normalize_cam(np.array([[np.nan, 1.0], [2.0, 0.0]]))
    assert np.isfinite(out).all() and out.max() == 1.0


@pytest.mark.parametrize(
    "instruction, expected",
    [
        ("pick the soda can by its cap", "the cap of a soda can"),
        ("grasp the cereal box from the top", "the top of a cereal box"),
        ("pick up the handle of the mug", "the handle of a mug"),
        ("take the bottle's label", "the label of a bottle"),
        ("Pick the chips bag from the side.", "the side of a chips bag"),
        ("pick the yogurt cup by its lid", "the lid of a yogurt cup"),
        ("grab the juice carton at the bottom", "the bottom of a juice carton"),
        ("Pick the apple juice.", "an apple juice"),
        ("pick the soda can", "a soda can"),
    ],
)
def test_part_steered_text(instruction, expected):
    assert gradcam.part_steered_text(instruction) == expected


# ------------------------------------------------------------------ prompts


def _two_blobs(h=80, w=120):
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    strong = np.exp(-((xx - 30) ** 2 + (yy - 25) ** 2) / (2 * 7.0**2))  # peak 1.0 at (30, 25)
    weak = 0.8 * np.exp(-((xx - 90) ** 2 + (yy - 55) ** 2) / (2 * 9.0**2))  # peak 0.8 at (90, 55)
    return np.maximum(strong, weak).astype(np.float32)


def test_single_point_at_higher_peak():
    np.testing.assert_array_equal(prompts.single_point(_two_blobs()), [[30, 25]])


def test_multi_points_one_per_blob():
    pts = prompts.multi_points(_two_blobs(), k=3, suppression_radius_px=5, min_value=0.3)
    assert pts.shape == (2, 2)
    np.testing.assert_array_equal(pts[0], [30, 25])
    np.testing.assert_array_equal(pts[1], [90, 55])
    # k=1 gives just the strongest peak; a high min_value drops the weak blob
    np.testing.assert_array_equal(prompts.multi_points(_two_blobs(), k=1), [[30, 25]])
    np.testing.assert_array_equal(prompts.multi_points(_two_blobs(), k=3, min_value=0.9), [[30, 25]])


def test_box_covers_peak_blob_only():
    att = _two_blobs()
    x0, y0, x1, y1 = prompts.box_prompt(att, threshold=0.5)
    assert x0 <= 30 <= x1 and y0 <= 25 <= y1
    assert not (x0 <= 90 <= x1 and y0 <= 55 <= y1)
    # half-maximum radius of a sigma-7 Gaussian is ~8.2 px
    assert 20 <= x0 < 30 < x1 <= 40 and 15 <= y0 < 25 < y1 <= 35
    box, pts = prompts.box_and_points(att, threshold=0.5)
    np.testing.assert_array_equal(box, [x0, y0, x1, y1])
    np.testing.assert_array_equal(pts, [[30, 25]])


def test_box_uses_component_with_peak_not_largest():
    att = np.zeros((40, 40), np.float32)
    att[2:5, 2:5] = 1.0  # small, strongest
    att[20:38, 10:38] = 0.7  # large, weaker
    np.testing.assert_array_equal(prompts.box_prompt(att, 0.5), [2, 2, 4, 4])


def test_negative_points_low_and_near_box():
    att = _two_blobs()
    box = prompts.box_prompt(att)
    neg = prompts.negative_points(att, k=2, box=box)
    assert neg.shape == (2, 2)
    for x, y in neg:
        assert att[int(y), int(x)] < 0.2
        assert not (box[0] <= x <= box[2] and box[1] <= y <= box[3])


@pytest.mark.parametrize("mode", PROMPT_MODES)
@pytest.mark.parametrize("n_negative", [0, 2])
def test_make_prompts_shapes(mode, n_negative):
    p = make_prompts(_two_blobs(), mode, n_negative=n_negative)
    assert isinstance(p, Prompt) and p.mode == mode
    assert p.points.ndim == 2 and p.points.shape[1] == 2 and p.points.dtype == np.float32
    assert p.labels.shape == (p.points.shape[0],) and p.labels.dtype == np.int64
    assert set(p.labels.tolist()) <= {0, 1}
    if mode == "point":
        assert p.box is None and int((p.labels == 1).sum()) == 1
    elif mode == "points":
        assert p.box is None and int((p.labels == 1).sum()) >= 1
    elif mode == "box":
        assert p.points.shape == (0, 2) and p.box.shape == (4,)
    else:
        assert p.box.shape == (4,) and int((p.labels == 1).sum()) >= 1
    if mode != "box":
        assert int((p.labels == 0).sum()) == n_negative


def test_flat_map_still_gives_prompts():
    att = np.zeros((10, 20), np.float32)
    for mode in PROMPT_MODES:
        p = make_prompts(att, mode, n_negative=2)
        if p.box is not None:
            np.testing.assert_array_equal(p.box, [0, 0, 19, 9])
        assert np.isfinite(p.points).all()


def test_unknown_mode():
    with pytest.raises(ValueError, match=r"unknown prompt mode 'mask'.*point, points, box, box\+points"):
        make_prompts(_two_blobs(), "mask")


# ------------------------------------------------------------------ loading


def test_clip_save_and_load_local(tmp_path):
    model = _tiny_clip()
    model.save_pretrained(tmp_path / "clip")
    loaded, processor = models.load_clip(tmp_path / "clip", local_files_only=True)
    assert processor is None  # no tokenizer / image processor files saved
    pv, ids = _clip_inputs()
    with torch.no_grad():
        a = model(input_ids=ids, pixel_values=pv).logits_per_image
        b = loaded(input_ids=ids, pixel_values=pv).logits_per_image
    torch.testing.assert_close(a, b)
    np.testing.assert_allclose(gradcam.clip_gradcam(model, pv, ids), gradcam.clip_gradcam(loaded, pv, ids), atol=1e-6)


def test_sam_save_and_load_local(tmp_path):
    from transformers import SamImageProcessor, SamProcessor

    from graspsim.policies.clip_sam.segment import segment_windows

    model = _tiny_sam()
    model.save_pretrained(tmp_path / "sam")
    image = SamImageProcessor(size={"longest_edge": 64}, pad_size={"height": 64, "width": 64})
    SamProcessor(image_processor=image).save_pretrained(tmp_path / "sam")
    loaded, processor = models.load_sam(str(tmp_path / "sam"), local_files_only=True)
    assert processor is not None
    img = (np.random.default_rng(0).random((48, 80, 3)) * 255).astype(np.uint8)
    p = make_prompts(_two_blobs(48, 80), "box+points")
    depth, K = np.full((48, 80), 0.5), np.array([[100.0, 0, 40], [0, 100.0, 24], [0, 0, 1]])
    a, b = (segment_windows(m, img, depth, K, [p])[0] for m in (model, loaded))
    np.testing.assert_array_equal(a.mask, b.mask)
    assert a.score == b.score and a.mask.shape == (48, 80)


def test_missing_local_path_message(tmp_path):
    missing = tmp_path / "no-such-clip"
    with pytest.raises(models.WeightsNotFoundError) as info:
        models.load_clip(missing)
    msg = str(info.value)
    assert str(missing) in msg and "does not exist" in msg and f"graspsim weights fetch {missing}" in msg
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(models.WeightsNotFoundError, match="config.json"):
        models.load_sam(empty)
    assert issubclass(models.WeightsNotFoundError, FileNotFoundError)


def test_missing_hub_id_offline(tmp_path, monkeypatch):
    with pytest.raises(models.WeightsNotFoundError) as info:
        models.load_sam("graspsim-test/no-such-sam", local_files_only=True)
    msg = str(info.value)
    assert "graspsim-test/no-such-sam" in msg and "graspsim weights fetch graspsim-test/no-such-sam" in msg
    assert "cache" in msg
