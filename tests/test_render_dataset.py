"""Rendered grasp datasets: round trip, physically valid labels, crash-safe resume, CLI errors, torch Dataset."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from graspsim.bench.suites import get_suite
from graspsim.data.cli_render import render_command
from graspsim.data.format import iter_scene_dirs, read_scene, scene_dir
from graspsim.data.render import render_dataset

SUITE = "tabletop-test"
W, H = 320, 240


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ds") / "data"
    summary = render_dataset(SUITE, 2, out, width=W, height=H, renderer="tiny", progress=False)
    assert summary["rendered"] == 2 and summary["skipped"] == 0
    return out


def _seeds():
    return get_suite(SUITE).scene_seeds(0, 2)


def test_layout_and_manifest(dataset):
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert manifest["format_version"] == 1 and manifest["suite"] == SUITE
    assert manifest["scene_seeds"] == _seeds()
    assert manifest["config"]["width"] == W and manifest["config"]["renderer"] == "tiny"
    assert manifest["classes"]["0"]
    dirs = iter_scene_dirs(dataset)
    assert [d.name for d in dirs] == [f"scene-{s}" for s in _seeds()]
    assert dirs[0].parent.name == "shard-0000"
    assert sorted(p.name for p in dirs[0].iterdir()) == ["class.png", "depth.png", "instance.png", "meta.json",
                                                         "rgb.png"]


def test_round_trip_matches_render(dataset):
    from graspsim.config import PhysicsConfig
    from graspsim.scenes.sampling import SceneOptions
    from graspsim.sim.camera import render
    from graspsim.sim.scene import build_settled_scene
    from graspsim.sim.world import SimWorld

    seed = _seeds()[0]
    suite = get_suite(SUITE)
    world = SimWorld(PhysicsConfig(), "tiny")
    try:
        scene = build_settled_scene(world, suite.kind, seed, suite.variant_split, SceneOptions(width=W, height=H),
                                    PhysicsConfig())
        frames = render(world, scene.camera, scene.plan.lighting, scene.body_to_class)
    finally:
        world.close()
    s = read_scene(scene_dir(dataset, suite.first_seed, seed))
    assert np.array_equal(s["rgb"], frames.rgb)
    hit = frames.depth_m < 0.999 * scene.camera.far_m
    assert np.all(s["depth_m"][~hit] == 0)
    assert np.abs(s["depth_m"][hit] - frames.depth_m[hit]).max() <= 0.001
    expected_inst = np.zeros((H, W), np.int64)
    for k, body in enumerate(scene.product_bodies):
        expected_inst[frames.instance_seg == body] = k + 1
    assert np.array_equal(s["instance"].astype(np.int64), expected_inst)
    assert np.array_equal(s["class_map"].astype(np.int64), np.where(frames.class_seg >= 0, frames.class_seg + 1, 0))
    assert np.allclose(s["K"], scene.camera.K) and np.allclose(s["T_world_camera"], scene.camera.T_world_camera)
    # Every object's visible_px agrees with the instance mask.
    for obj in s["meta"]["objects"]:
        assert obj["visible_px"] == int((s["instance"] == obj["product_index"] + 1).sum())


def test_labels_exist_and_hold_when_reexecuted(dataset):
    from graspsim.config import PhysicsConfig
    from graspsim.data.labels import revalidate
    from graspsim.sim.world import SimWorld

    scenes = [read_scene(d) for d in iter_scene_dirs(dataset)]
    kept = [o["candidates_kept"] for s in scenes for o in s["meta"]["objects"]]
    assert max(kept) >= 1
    for s in scenes:
        for o in s["meta"]["objects"]:
            assert o["candidates_kept"] == len(o["grasps"]) <= o["candidates_tried"]
            assert all(0.0 <= g["quality"] <= 1.0 for g in o["grasps"])
    world = SimWorld(PhysicsConfig(), "tiny")
    try:
        results = revalidate(scenes[0], world)
    finally:
        world.close()
    assert results, "scene 0 has no labels to re-check"
    failed = [(k, g, reason) for k, g, ok, reason in results if not ok]
    assert not failed


def test_resume_after_kill(dataset, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(dataset, out)
    first, second = iter_scene_dirs(out)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in first.iterdir()}
    shutil.rmtree(second)
    stray = second.parent / f".tmp-{second.name}-99999"
    stray.mkdir()
    (stray / "rgb.png").write_bytes(b"half")
    args = ["--suite", SUITE, "--scenes", "2", "--out", str(out), "--width", str(W), "--height", str(H),
            "--renderer", "tiny", "--no-progress"]
    result = CliRunner().invoke(render_command, args + ["--resume"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["rendered"] == 1 and summary["already_done"] == 1 and summary["removed_temp_dirs"] == 1
    assert not list(out.rglob(".tmp-*"))
    assert [d.name for d in iter_scene_dirs(out)] == [first.name, second.name]
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in first.iterdir()}
    assert after == before
    # The re-rendered scene is the same as the original (deterministic).
    assert (second / "meta.json").read_text() == (dataset / second.relative_to(out) / "meta.json").read_text()


def test_cli_user_errors(dataset, tmp_path):
    runner = CliRunner()
    base = ["--width", str(W), "--height", str(H), "--renderer", "tiny", "--no-progress"]
    r = runner.invoke(render_command, ["--suite", SUITE, "--scenes", "2", "--out", str(dataset)] + base)
    assert r.exit_code == 2 and "not empty" in r.output and "--resume" in r.output
    r = runner.invoke(render_command, ["--suite", "nope", "--scenes", "2", "--out", str(tmp_path / "a")] + base)
    assert r.exit_code == 2 and "unknown suite" in r.output
    r = runner.invoke(render_command, ["--suite", SUITE, "--scenes", "2", "--seed", "99999",
                                       "--out", str(tmp_path / "b")] + base)
    assert r.exit_code == 2 and "--scenes" in r.output
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()
    r = runner.invoke(render_command, ["--suite", SUITE, "--scenes", "2", "--out", str(dataset), "--resume",
                                       "--width", "64", "--height", str(H), "--renderer", "tiny", "--no-progress"])
    assert r.exit_code == 2 and "config width" in r.output


def test_torch_dataset_shapes(dataset):
    torch = pytest.importorskip("torch")
    from graspsim.data.dataset import GraspDataset

    ds = GraspDataset(dataset)
    assert len(ds) == 2
    item = ds[0]
    assert item["rgb"].shape == (3, H, W) and item["rgb"].dtype == torch.float32
    assert 0.0 <= float(item["rgb"].min()) and float(item["rgb"].max()) <= 1.0
    assert item["depth"].shape == (1, H, W) and item["depth"].dtype == torch.float32
    assert item["class_map"].shape == (H, W) and item["class_map"].dtype == torch.long
    assert int(item["class_map"].min()) == -1
    assert item["instance_map"].shape == (H, W) and item["instance_map"].dtype == torch.long
    n = item["grasps"].shape[0]
    assert item["grasps"].shape == (n, 5) and item["grasp_classes"].shape == (n,) and n >= 1
    assert item["grasp_classes"].dtype == torch.long and item["K"].shape == (3, 3)
    assert set(item["grasp_classes"].tolist()) <= set(item["class_map"].unique().tolist())
    assert len(GraspDataset(dataset, split_filter=lambda m: m["scene_seed"] == _seeds()[1])) == 1


def test_package_imports_without_torch():
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None; import graspsim.data, graspsim.data.render, "
            "graspsim.data.cli_render, graspsim.data.labels; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr
