"""Rendered grasp datasets: round trip, physically valid labels, crash-safe resume, CLI errors, torch Dataset.

The module's dataset is rendered with the defaults, so with the Panda parked in the images (the robot itself is
tested in test_render_robot.py).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from graspsim.scenes.suites import get_suite
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
    assert manifest["format_version"] == 1 and manifest["suite"] == SUITE and manifest["robot"] == "panda"
    assert manifest["scene_seeds"] == _seeds()
    assert manifest["config"]["width"] == W and manifest["config"]["renderer"] == "tiny"
    assert manifest["classes"]["0"]
    dirs = iter_scene_dirs(dataset)
    assert [d.name for d in dirs] == [f"scene-{s}" for s in _seeds()]
    assert dirs[0].parent.name == "shard-0000"
    assert sorted(p.name for p in dirs[0].iterdir()) == ["class.png", "depth.png", "instance.png", "meta.json",
                                                         "part_seg.png", "rgb.png", "robot_seg.png"]


def test_round_trip_matches_render(dataset):
    from graspsim.config import PhysicsConfig
    from graspsim.scenes.sampling import SceneOptions
    from graspsim.sim.camera import render
    from graspsim.data.render import arm_state
    from graspsim.sim.scene import add_robot, build_settled_scene
    from graspsim.sim.world import SimWorld

    seed = _seeds()[0]
    suite = get_suite(SUITE)
    world = SimWorld(PhysicsConfig(), "tiny")
    try:
        scene = build_settled_scene(world, suite.kind, seed, suite.variant_split, SceneOptions(width=W, height=H),
                                    PhysicsConfig())
        add_robot(world, scene, "panda", PhysicsConfig())
        frames = render(world, scene.camera, scene.plan.lighting, scene.body_to_class, scene.robot_parts)
        arm = arm_state(scene.arm)
    finally:
        world.close()
    s = read_scene(scene_dir(dataset, suite.first_seed, seed))
    assert np.array_equal(s["rgb"], frames.rgb)
    assert np.array_equal(s["robot_seg"], frames.robot_seg) and (s["robot_seg"] > 0).any()
    assert s["meta"]["robot"] == "panda"
    assert np.allclose(s["meta"]["arm"]["T_world_base"], arm["T_world_base"])
    assert np.allclose(s["meta"]["arm"]["q_rad"], arm["q_rad"]) and len(arm["q_rad"]) == 7
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
    assert r.exit_code == 2 and "config.width" in r.output
    r = runner.invoke(render_command, ["--suite", SUITE, "--scenes", "2", "--out", str(tmp_path / "c"),
                                       "--robot", "ur5"] + base)
    assert r.exit_code == 2 and "unknown robot 'ur5'; choose one of hand, panda" in r.output
    assert len(r.output.strip().splitlines()) == 1 and not (tmp_path / "c").exists()


def test_grasps_per_product_sets_the_candidates_validated(dataset, tmp_path):
    """``--grasps-per-product N``: at most N candidates tried per product, recorded in the manifest; the
    labels are the default run's best ones (the planner ranks the same candidates); with --no-grasps a one-line
    error."""
    args = ["--suite", SUITE, "--scenes", "1", "--width", str(W), "--height", str(H), "--renderer", "tiny",
            "--no-progress"]
    r = CliRunner().invoke(render_command, args + ["--out", str(tmp_path / "two"), "--grasps-per-product", "2"])
    assert r.exit_code == 0, r.output
    manifest = json.loads((tmp_path / "two" / "manifest.json").read_text())
    assert manifest["config"]["labels"]["max_candidates"] == 2
    two = json.loads(iter_scene_dirs(tmp_path / "two")[0].joinpath("meta.json").read_text())["objects"]
    six = json.loads(iter_scene_dirs(dataset)[0].joinpath("meta.json").read_text())["objects"]
    assert any(o["candidates_tried"] == 2 for o in two) and all(o["candidates_tried"] <= 2 for o in two)
    for a, b in zip(two, six):
        tried = [g for g in b["grasps"]][: len(a["grasps"])]
        assert [(g["x"], g["y"], g["theta"]) for g in a["grasps"]] == [(g["x"], g["y"], g["theta"]) for g in tried]
    r = CliRunner().invoke(render_command, args + ["--out", str(tmp_path / "x"), "--grasps-per-product", "3",
                                                   "--no-grasps"])
    assert r.exit_code == 2 and "contradict" in r.output and len(r.output.strip().splitlines()) == 1


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
    assert item["robot_seg"].shape == (H, W) and item["robot_seg"].dtype == torch.long
    assert int(item["robot_seg"].max()) == 2  # the parked hand at the table's near edge
    assert set(item["grasp_classes"].tolist()) <= set(item["class_map"].unique().tolist())
    assert len(GraspDataset(dataset, split_filter=lambda m: m["scene_seed"] == _seeds()[1])) == 1


def test_package_imports_without_torch():
    import subprocess
    import sys

    code = ("import sys; sys.modules['torch'] = None; import graspsim.data, graspsim.data.render, "
            "graspsim.data.cli_render, graspsim.data.labels, graspsim.data.export, graspsim.data.cli_export; "
            "print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "ok" in out.stdout, out.stderr


# --------------------------------------------------------------------------- export (Cornell, OCID_grasp)


def test_corner_text_known_answer_and_round_trip():
    from graspsim.data.export import corners_text, read_corners

    # theta = 0: the closing axis along +x, corners 0-1 along it (the opening w), clockwise on screen
    assert corners_text(np.array([[10.0, 20.0, 8.0, 4.0, 0.0]])).splitlines() == [
        "6.000 18.000", "14.000 18.000", "14.000 22.000", "6.000 22.000"]
    rng = np.random.default_rng(0)
    rects = np.column_stack([rng.uniform(0, 640, 50), rng.uniform(0, 480, 50), rng.uniform(5, 80, 50),
                             rng.uniform(3, 30, 50), rng.uniform(-np.pi / 2, np.pi / 2, 50)])
    rects[0, 4] = -np.pi / 2  # the wrap-around edge
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "pcd0000cpos.txt"
        path.write_text(corners_text(rects) + "NaN NaN\n1 2\n3 4\nNaN NaN\n")  # a broken rectangle, as in Cornell
        back = read_corners(path)
    assert back.shape == (50, 5)
    assert np.allclose(back[:, :4], rects[:, :4], atol=2e-3)
    dtheta = (back[:, 4] - rects[:, 4] + np.pi / 2) % np.pi - np.pi / 2  # same grasp modulo pi
    assert np.abs(dtheta).max() < 1e-3


def test_export_cornell_round_trip(dataset, tmp_path):
    import cv2

    from graspsim.data.export import export_dataset, read_corners

    out = tmp_path / "cornell"
    record = export_dataset(dataset, out, "cornell")
    dirs = iter_scene_dirs(dataset)
    assert record["scenes"] == 2 and [f["file"] for f in record["files"]] == ["01/pcd0000", "01/pcd0001"]
    assert sorted(p.name for p in (out / "01").iterdir()) == [
        "pcd0000cneg.txt", "pcd0000cpos.txt", "pcd0000d.tiff", "pcd0000r.png",
        "pcd0001cneg.txt", "pcd0001cpos.txt", "pcd0001d.tiff", "pcd0001r.png"]
    total = 0
    for i, d in enumerate(dirs):
        s = read_scene(d)
        rgb = cv2.cvtColor(cv2.imread(str(out / "01" / f"pcd{i:04d}r.png")), cv2.COLOR_BGR2RGB)
        assert np.array_equal(rgb, s["rgb"])
        depth = cv2.imread(str(out / "01" / f"pcd{i:04d}d.tiff"), cv2.IMREAD_UNCHANGED)
        assert depth.dtype == np.float32 and np.array_equal(depth, s["depth_m"].astype(np.float32))
        back = read_corners(out / "01" / f"pcd{i:04d}cpos.txt")
        assert back.shape == s["grasps"].shape and len(back) >= 1
        assert np.allclose(back[:, :4], s["grasps"][:, :4], atol=2e-3)
        assert np.abs((back[:, 4] - s["grasps"][:, 4] + np.pi / 2) % np.pi - np.pi / 2).max() < 1e-3
        assert (out / "01" / f"pcd{i:04d}cneg.txt").read_text() == ""
        total += len(back)
    assert record["grasps"] == total
    classes = json.loads((out / "classes.json").read_text())
    manifest = json.loads((dataset / "manifest.json").read_text())
    assert classes["0"] == "background" and classes["1"] == manifest["classes"]["0"]
    # idempotent over its own export; another format into it is refused
    assert export_dataset(dataset, out, "cornell")["scenes"] == 2
    from graspsim.data.export import ExportError

    with pytest.raises(ExportError, match="not empty"):
        export_dataset(dataset, out, "ocid_grasp")


def test_export_ocid_grasp_layout(dataset, tmp_path):
    import cv2

    from graspsim.data.export import export_dataset, read_corners

    out = tmp_path / "ocid"
    export_dataset(dataset, out, "ocid_grasp")
    dirs = iter_scene_dirs(dataset)
    lines = (out / f"{SUITE}.txt").read_text().splitlines()
    assert lines == [f"{SUITE}/seq00,{d.name}.png" for d in dirs]
    for line, d in zip(lines, dirs):
        seq, name = line.split(",")
        s = read_scene(d)
        seg = cv2.imread(str(out / seq / "seg_mask_labeled_combi" / name), cv2.IMREAD_UNCHANGED)
        assert np.array_equal(seg, s["class_map"])
        assert np.array_equal(cv2.imread(str(out / seq / "depth" / name), cv2.IMREAD_UNCHANGED), s["depth_mm"])
        assert np.array_equal(cv2.imread(str(out / seq / "label" / name), cv2.IMREAD_UNCHANGED), s["instance"])
        rects = read_corners(out / seq / "Annotations" / (name[:-4] + ".txt"))
        assert len(rects) == len(s["grasps"])
        # OCID_grasp gives a grasp the class under its centre: here that is the labelled product's class
        centre = [int(seg[int(np.floor(y + 0.5)), int(np.floor(x + 0.5))]) for x, y in rects[:, :2]]
        assert centre == (s["grasp_classes"] + 1).tolist()


def test_export_ocid_grasp_annotations_per_class_as_the_authors_scripts_read_them(dataset, tmp_path):
    """Walk the export the way scripts/evaluate_det_seg_OCID.py (grasp_det_seg_cnn) does."""
    import cv2

    from graspsim.data.export import export_dataset, read_corners

    out = tmp_path / "ocid"
    export_dataset(dataset, out, "ocid_grasp")
    for line, d in zip((out / f"{SUITE}.txt").read_text().splitlines(), iter_scene_dirs(dataset)):
        seq_path, im_name = line.split(",")
        s = read_scene(d)
        mask_gt = cv2.imread(str(out / seq_path / "seg_mask_labeled_combi" / im_name), cv2.IMREAD_UNCHANGED)
        anno_per_class_dir = out / seq_path / "Annotations_per_class" / im_name[:-4]
        per_class = {}
        for class_dir in sorted(p.name for p in anno_per_class_dir.iterdir()):
            assert (anno_per_class_dir / class_dir).is_dir()
            per_class[int(class_dir)] = read_corners(anno_per_class_dir / class_dir / (im_name[:-4] + ".txt"))
        labels = s["grasp_classes"] + 1
        assert sorted(per_class) == sorted(set(labels.tolist())) and all(len(r) for r in per_class.values())
        for label, rects in per_class.items():
            assert (mask_gt == label).any()  # the id is a label value of seg_mask_labeled_combi
            assert np.allclose(rects[:, :4], s["grasps"][labels == label][:, :4], atol=2e-3)
        assert sum(len(r) for r in per_class.values()) == len(s["grasps"])


def test_export_cornell_inpaint_depth(dataset, tmp_path):
    import cv2

    from graspsim.data.export import ExportError, export_dataset, inpaint_depth_m

    depth = np.full((20, 30), 0.8, dtype=np.float32)
    depth[:, 15:] = 1.2
    holes = np.zeros_like(depth, dtype=bool)
    holes[5:8, 3:6] = holes[0, 29] = holes[10:12, 14:17] = True
    filled = inpaint_depth_m(np.where(holes, 0, depth))
    assert filled.dtype == np.float32 and (filled > 0).all()
    assert np.array_equal(filled[~holes], depth[~holes])  # measured pixels untouched
    assert np.allclose(filled[5:8, 3:6], 0.8, atol=1e-3) and abs(filled[0, 29] - 1.2) < 1e-3
    assert ((filled[holes] >= 0.8 - 1e-3) & (filled[holes] <= 1.2 + 1e-3)).all()
    out = tmp_path / "cornell"
    assert export_dataset(dataset, out, "cornell", inpaint_depth=True)["inpaint_depth"] is True
    for i, d in enumerate(iter_scene_dirs(dataset)):
        source = read_scene(d)["depth_m"]
        tiff = cv2.imread(str(out / "01" / f"pcd{i:04d}d.tiff"), cv2.IMREAD_UNCHANGED)
        assert (tiff > 0).all() and np.array_equal(tiff[source > 0], source[source > 0].astype(np.float32))
    with pytest.raises(ExportError, match="--inpaint-depth is for --format cornell"):
        export_dataset(dataset, tmp_path / "o", "ocid_grasp", inpaint_depth=True)


def test_export_cli_errors_are_one_liners(dataset, tmp_path):
    from graspsim.data.cli_export import export_command

    runner = CliRunner()
    seg_only = tmp_path / "seg-only"
    shutil.copytree(dataset, seg_only)
    manifest = json.loads((seg_only / "manifest.json").read_text())
    manifest["config"]["labels"]["max_candidates"] = 0  # as `graspsim render --no-grasps` writes it
    (seg_only / "manifest.json").write_text(json.dumps(manifest))
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    cases = [
        (["--data", str(tmp_path / "nope"), "--format", "cornell", "--out", str(tmp_path / "o1")], "does not exist"),
        (["--data", str(seg_only), "--format", "cornell", "--out", str(tmp_path / "o2")], "--no-grasps"),
        (["--data", str(dataset), "--format", "ocid_grasp", "--out", str(busy)], "not empty"),
    ]
    for args, needle in cases:
        result = runner.invoke(export_command, args + ["--no-progress"])
        assert result.exit_code == 2 and "Traceback" not in result.output, result.output
        assert needle in result.output and len(result.output.strip().splitlines()) == 1, result.output
    assert (busy / "notes.txt").read_text() == "mine"  # nothing of the user's is touched
    result = runner.invoke(export_command, ["--data", str(seg_only), "--format", "ocid_grasp",
                                            "--out", str(tmp_path / "o3"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["labels"] is False
