"""The clip_sam policy end to end: tiny models from local dirs, the shipped sim-trained checkpoints,
mask evaluation, missing-weights errors, and `graspsim bench --policy clip_sam` on a few scenes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from graspsim.policies.clip_sam.policy import CHECKPOINTS  # noqa: E402

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
    o = env.policy_observation(obs, info)
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
    from graspsim.policies.clip_sam.policy import ClipSamPolicy

    clip_dir, sam_dir = tiny_model_dirs
    policy = ClipSamPolicy(clip=str(clip_dir), sam=str(sam_dir), prompt_mode=mode)
    policy.reset(np.random.default_rng(0))
    try:
        out = policy.act(observation)
    except PolicyError as exc:  # an untrained SAM may return an empty mask: a clear policy error, never a crash
        assert "empty mask" in str(exc)
        return
    _check_output(out, observation)
    assert out.info["prompt_mode"] == mode


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
def test_shipped_policy_finds_the_target(observation):
    from graspsim.policies.clip_sam.policy import ClipSamPolicy

    policy = ClipSamPolicy()
    out = policy.act(observation)
    _check_output(out, observation)
    from graspsim.assets.catalog import class_index

    cls = np.asarray(observation.class_seg)[out.mask]
    # the sim-trained models put the mask on the named product
    assert np.mean(cls == class_index(observation.target_class)) > 0.5
    again = policy.act(observation)
    assert again.rect == out.rect  # deterministic


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
