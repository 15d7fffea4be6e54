"""The robot in rendered datasets (``graspsim render --robot panda|hand``): masks, labels, resume, CLI, export.

Tiny sizes (160x120, TinyRenderer). The parked Panda shows at the left edge of
shelf images (arm and hand) and at the bottom edge of tabletop images (the hand
only); tabletop-test scene 0 has a detergent bottle a few pixels from the hand.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from graspsim.data.cli_render import render_command
from graspsim.data.format import iter_scene_dirs, read_scene
from graspsim.data.labels import LabelConfig
from graspsim.data.render import render_dataset
from graspsim.runs import RunDirError

W, H = 160, 120
NO_GRASPS = LabelConfig(max_candidates=0)
#: sha256 (first 16 hex digits) over the PNGs of 2 scenes per suite at 160x120, TinyRenderer, --no-grasps,
#: rendered by the code before the robot option existed (commit ff7119e), where no robot was ever in the images.
HAND_PNG_DIGESTS = {"shelf-test": "64208aa10fe73d8a", "tabletop-test": "c9727bb9bf3f4743"}


def _render(out: Path, suite: str, robot: str, scenes: int = 1, labels: LabelConfig | None = NO_GRASPS) -> Path:
    summary = render_dataset(suite, scenes, out, width=W, height=H, renderer="tiny", progress=False, labels=labels,
                             robot=robot)
    assert summary["rendered"] == scenes and summary["robot"] == robot
    return out


def _png_digest(root: Path) -> str:
    """sha256 of the PNGs of a dataset (``part_seg.png``, stored since the digests were recorded, left out)."""
    h = hashlib.sha256()
    for p in sorted(q for q in root.rglob("*.png") if q.name != "part_seg.png"):
        h.update(str(p.relative_to(root)).encode())
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


@pytest.fixture(scope="module")
def labelled_pair(tmp_path_factory) -> dict[str, Path]:
    """tabletop-test scene 0 with grasp labels, rendered with each robot (~3 s each)."""
    base = tmp_path_factory.mktemp("pair")
    return {robot: _render(base / robot, "tabletop-test", robot, labels=None) for robot in ("hand", "panda")}


@pytest.mark.parametrize("suite", sorted(HAND_PNG_DIGESTS))
def test_hand_images_are_byte_identical_to_before_the_robot_option(suite, tmp_path):
    out = _render(tmp_path / "d", suite, "hand", scenes=2)
    assert _png_digest(out) == HAND_PNG_DIGESTS[suite]
    assert json.loads((out / "manifest.json").read_text())["robot"] == "hand"
    for d in iter_scene_dirs(out):
        assert not (d / "robot_seg.png").exists()
        s = read_scene(d)
        assert s["robot_seg"] is None and s["meta"]["robot"] == "hand" and "arm" not in s["meta"]


def _arm_world(meta_arm: dict):
    """A world holding only the arm, posed as meta.json's ``arm`` says the image shows it."""
    from graspsim.config import PhysicsConfig
    from graspsim.sim.panda import FINGER_LINKS, PandaArm
    from graspsim.sim.world import SimWorld

    world = SimWorld(PhysicsConfig(), "tiny")
    arm = PandaArm(world, np.asarray(meta_arm["T_world_base"]), PhysicsConfig(), np.asarray(meta_arm["q_rad"]))
    for link, position in zip(FINGER_LINKS, meta_arm["finger_joints_m"]):
        world.client.resetJointState(arm.body, link, position)
    return world, arm


def _cast_pixel_rays(world, K: np.ndarray, T_world_camera: np.ndarray, far_m: float = 3.0):
    """One ray per pixel centre from the stored camera model: (H, W) hit body, link, and depth along camera z (m)."""
    vv, uu = np.mgrid[0:H, 0:W]
    rays = np.linalg.inv(K) @ np.stack([uu.ravel(), vv.ravel(), np.ones(H * W)])  # camera frame, z = 1
    origin = T_world_camera[:3, 3]
    ends = (T_world_camera[:3, :3] @ (rays * far_m)).T + origin
    hits = []
    for i in range(0, len(ends), 4000):  # pybullet caps the rays of one batch
        chunk = ends[i:i + 4000]
        hits += world.client.rayTestBatch([origin.tolist()] * len(chunk), chunk.tolist())
    body = np.array([h[0] for h in hits]).reshape(H, W)
    link = np.array([h[1] for h in hits]).reshape(H, W)
    depth = np.array([h[2] for h in hits]).reshape(H, W) * far_m  # hit fraction of a ray whose end is at z = far
    return body, link, depth


@pytest.mark.parametrize("suite, arm_px, gripper_px", [("shelf-test", 800, 80), ("tabletop-test", 0, 250)])
def test_robot_seg_matches_the_links_seen_along_the_stored_cameras_rays(suite, arm_px, gripper_px, tmp_path):
    """Rebuild the arm alone from meta.json, cast a ray through every pixel with the stored K and T_world_camera,
    and compare the link each ray hits first with robot_seg wherever the stored depth shows that hit."""
    from graspsim.sim.panda import GRIPPER_LINKS

    s = read_scene(iter_scene_dirs(_render(tmp_path / "d", suite, "panda"))[0])
    seg = s["robot_seg"]
    assert seg.dtype == np.uint8 and seg.shape == (H, W) and set(np.unique(seg).tolist()) <= {0, 1, 2}
    assert (seg == 1).sum() >= arm_px and (seg == 2).sum() >= gripper_px
    assert (seg == 1).any() == (arm_px > 0)  # the table's parking pose shows the hand only
    world, arm = _arm_world(s["meta"]["arm"])
    try:
        body, link, ray_depth = _cast_pixel_rays(world, s["K"], s["T_world_camera"])
    finally:
        world.close()
    on_arm = body == arm.body
    expected = np.where(on_arm, np.where(np.isin(link, GRIPPER_LINKS), 2, 1), 0)
    seen = on_arm & (np.abs(s["depth_m"] - ray_depth) < 0.01)  # not hidden by a shelf post or a product
    assert seen.sum() >= 0.9 * on_arm.sum() and seen.sum() >= 0.9 * (seg > 0).sum()
    assert (seg[seen] == expected[seen]).mean() >= 0.98
    # The mask is the arm's collision geometry as drawn: (almost) every labelled pixel's ray hits the arm.
    assert on_arm[seg > 0].mean() >= 0.95
    # Robot pixels are nobody's product.
    assert not (s["instance"][seg > 0]).any() and not (s["class_map"][seg > 0]).any()


def test_dataset_scene_is_what_pick_env_shows(tmp_path):
    from graspsim.envs.pick_env import PickEnv

    suite = "shelf-test"
    s = read_scene(iter_scene_dirs(_render(tmp_path / "d", suite, "panda"))[0])
    env = PickEnv(suite=suite, robot="panda", privileged=True, width=W, height=H, renderer="tiny")
    try:
        obs, info = env.reset(seed=0)
    finally:
        env.close()
    assert info["scene_seed"] == s["meta"]["scene_seed"]
    assert np.array_equal(s["rgb"], obs["rgb"]) and np.array_equal(s["robot_seg"], obs["robot_seg"])
    assert np.array_equal(s["class_map"].astype(np.int64) - 1, obs["class_seg"])
    hit = s["depth_m"] > 0
    assert np.abs(s["depth_m"][hit] - obs["depth"][hit]).max() <= 0.0005 + 1e-6


def test_labels_and_masks_are_the_same_with_and_without_the_arm(labelled_pair):
    """In this scene the parked hand's pixels lie in a finger footprint of a candidate on the detergent bottle:
    planned on the stored depth (arm included) the bottle's labels would differ; on the robot-free depth they
    do not."""
    hand, panda = (read_scene(iter_scene_dirs(labelled_pair[r])[0]) for r in ("hand", "panda"))
    assert panda["meta"]["robot"] == "panda" and hand["meta"]["robot"] == "hand"
    kept = sum(o["candidates_kept"] for o in panda["meta"]["objects"])
    assert kept >= 3
    assert panda["meta"]["objects"] == hand["meta"]["objects"]
    assert np.array_equal(panda["grasps"], hand["grasps"])
    assert np.array_equal(panda["instance"], hand["instance"]) and np.array_equal(panda["class_map"], hand["class_map"])
    robot = panda["robot_seg"] > 0
    assert robot.sum() >= 250
    # The arm adds itself to the images and hides no product; the TinyRenderer draws no shadow of it here, so
    # nothing else changes (with EGL the shelf's arm also shades ~1 % of the pixels).
    assert np.array_equal(panda["rgb"][~robot], hand["rgb"][~robot])
    assert np.array_equal(panda["depth_mm"][~robot], hand["depth_mm"][~robot])
    assert (panda["depth_m"][robot] < hand["depth_m"][robot]).all()  # the hand hovers in front of the table


def test_panda_labels_hold_when_revalidated_from_disk(labelled_pair):
    from graspsim.config import PhysicsConfig
    from graspsim.data.labels import revalidate
    from graspsim.sim.world import SimWorld

    world = SimWorld(PhysicsConfig(), "tiny")
    try:
        results = revalidate(read_scene(iter_scene_dirs(labelled_pair["panda"])[0]), world)
    finally:
        world.close()
    assert len(results) >= 3 and all(ok for _, _, ok, _ in results)


def test_export_ignores_the_robot_mask(labelled_pair, tmp_path):
    """The exports of the two datasets differ in rgb and depth (the arm is drawn) and nowhere else."""
    from graspsim.data.export import MARKER, export_dataset

    for fmt in ("cornell", "ocid_grasp"):
        files = {}
        for robot, data in labelled_pair.items():
            out = tmp_path / fmt / robot
            export_dataset(data, out, fmt, progress=False)
            files[robot] = {str(p.relative_to(out)): p.read_bytes() for p in out.rglob("*")
                            if p.is_file() and p.name != MARKER}
        assert sorted(files["hand"]) == sorted(files["panda"]) and not any("robot" in n for n in files["panda"])
        differ = sorted(n for n in files["hand"] if files["hand"][n] != files["panda"][n])
        assert differ and all(n.endswith(("r.png", "d.tiff")) or "/rgb/" in n or "/depth/" in n for n in differ), differ


def test_resume_refuses_another_robot_and_old_datasets_resume_as_hand(tmp_path):
    out = _render(tmp_path / "d", "tabletop-test", "hand")
    with pytest.raises(RunDirError, match="'robot'"):
        render_dataset("tabletop-test", 2, out, width=W, height=H, renderer="tiny", progress=False, labels=NO_GRASPS,
                       resume=True)  # the default robot, panda
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["robot"] == "hand" and len(manifest["scene_seeds"]) == 1  # the refusal changed nothing
    # A dataset from before the robot was recorded showed no robot: it resumes as "hand" and as nothing else.
    del manifest["robot"]
    (out / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RunDirError, match="'robot'"):
        render_dataset("tabletop-test", 2, out, width=W, height=H, renderer="tiny", progress=False, labels=NO_GRASPS,
                       resume=True, robot="panda")
    summary = render_dataset("tabletop-test", 2, out, width=W, height=H, renderer="tiny", progress=False,
                             labels=NO_GRASPS, resume=True, robot="hand")
    assert summary["rendered"] == 1 and summary["already_done"] == 1
    assert json.loads((out / "manifest.json").read_text())["robot"] == "hand"
    with pytest.raises(ValueError, match="unknown robot 'ur5'; choose one of hand, panda"):
        render_dataset("tabletop-test", 1, tmp_path / "e", robot="ur5")
    assert not (tmp_path / "e").exists()


def test_cli_robot_option_end_to_end(tmp_path):
    runner = CliRunner()
    base = ["--suite", "shelf-test", "--scenes", "1", "--width", str(W), "--height", str(H), "--renderer", "tiny",
            "--no-grasps", "--no-progress"]
    r = runner.invoke(render_command, base + ["--out", str(tmp_path / "ur5"), "--robot", "ur5"])
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert r.output.strip() == "Error: unknown robot 'ur5'; choose one of hand, panda"
    assert not (tmp_path / "ur5").exists()
    r = runner.invoke(render_command, base + ["--out", str(tmp_path / "default")])  # panda by default
    assert r.exit_code == 0, r.output
    assert json.loads(r.output.strip().splitlines()[-1])["robot"] == "panda"
    scene = iter_scene_dirs(tmp_path / "default")[0]
    assert json.loads((tmp_path / "default" / "manifest.json").read_text())["robot"] == "panda"
    assert (scene / "robot_seg.png").is_file() and (read_scene(scene)["robot_seg"] == 1).any()
    r = runner.invoke(render_command, base + ["--out", str(tmp_path / "default"), "--resume", "--robot", "hand"])
    assert r.exit_code == 2 and "Traceback" not in r.output and "'robot'" in r.output, r.output
    assert 'robot: stored "panda", requested "hand"' in r.output
    r = runner.invoke(render_command, base + ["--out", str(tmp_path / "hand"), "--robot", "hand"])
    assert r.exit_code == 0, r.output
    hand_scene = iter_scene_dirs(tmp_path / "hand")[0]
    assert not (hand_scene / "robot_seg.png").exists()
    assert (read_scene(hand_scene)["rgb"] != read_scene(scene)["rgb"]).any()


def test_a_scene_missing_its_robot_mask_is_reported_as_damaged(tmp_path):
    from graspsim.data.format import DatasetError

    out = _render(tmp_path / "d", "tabletop-test", "panda")
    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    scene = iter_scene_dirs(copy)[0]
    (scene / "robot_seg.png").unlink()
    with pytest.raises(DatasetError, match="robot_seg.png is missing or damaged"):
        read_scene(scene)


def test_torch_dataset_has_robot_seg_only_with_the_arm(labelled_pair):
    torch = pytest.importorskip("torch")
    from graspsim.data.dataset import GraspDataset

    with_arm, without = GraspDataset(labelled_pair["panda"])[0], GraspDataset(labelled_pair["hand"])[0]
    assert "robot_seg" not in without
    seg = with_arm["robot_seg"]
    assert seg.shape == (H, W) and seg.dtype == torch.long and set(seg.unique().tolist()) == {0, 2}
    assert torch.equal(with_arm["class_map"], without["class_map"])
