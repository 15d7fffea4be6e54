"""Robot-segmentation data (``graspsim render-robot-views``): masks against the robots' geometry, the env's
robot_seg, resume, workers, skipped views, CLI. Tiny sizes (160x120, TinyRenderer)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from graspsim.data.cli_robot_views import render_robot_views_command
from graspsim.data.format import DatasetError, check_dataset
from graspsim.data.robot_views import render_robot_views
from graspsim.data.robot_views_format import check_robot_videos, check_robot_views, read_video, read_view
from graspsim.runs import RunDirError

W, H = 160, 120
SMALL = dict(width=W, height=H, renderer="tiny", progress=False)


def _files(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


@pytest.fixture(scope="module")
def datasets(tmp_path_factory) -> dict[str, Path]:
    """One scene of each kind, all three robots, 2 views each (~10 s together)."""
    base = tmp_path_factory.mktemp("robot-views")
    out = {}
    for suite in ("shelf-test", "tabletop-test"):
        summary = render_robot_views(suite, 1, base / suite, views_per_scene=2, **SMALL)
        assert summary["rendered"] == 1 and summary["views"] + summary["skipped_views"] == 6
        out[suite] = base / suite
    return out


def _robot_world(manifest_embodiments):
    """A world holding every robot of the dataset, all away (none ever removed: see RobotBody)."""
    from graspsim.config import PhysicsConfig
    from graspsim.sim.embodiments import T_WORLD_AWAY, RobotBody, get_embodiment
    from graspsim.sim.world import SimWorld

    world = SimWorld(PhysicsConfig(), "tiny")
    return world, {n: RobotBody(world, get_embodiment(n), T_WORLD_AWAY) for n in manifest_embodiments}


def _pose(robots, meta):
    """The robot of a view's meta.json alone in its world, posed as the view shows it."""
    for robot in robots.values():
        robot.away()
    robot = robots[meta["embodiment"]]
    robot.set_base(np.asarray(meta["T_world_base"]))
    robot.set_joints(np.asarray(meta["q_rad"]), meta["closure"])
    assert robot.finger_joints() == pytest.approx(meta["gripper_joints"])
    return robot


def _pixel_rays(world, K, T_world_camera, pixels_xy, far_m=3.0):
    """The first hit (body, link, depth along camera z in m) of the ray through each pixel centre."""
    xy = np.asarray(pixels_xy, dtype=np.float64).reshape(-1, 2)
    rays = np.linalg.inv(K) @ np.vstack([xy.T, np.ones(len(xy))])  # camera frame, z = 1
    origin = T_world_camera[:3, 3]
    ends = (T_world_camera[:3, :3] @ (rays * far_m)).T + origin
    hits = []
    for i in range(0, len(ends), 4000):  # pybullet caps the rays of one batch
        chunk = ends[i:i + 4000]
        hits += world.client.rayTestBatch([origin.tolist()] * len(chunk), chunk.tolist())
    return (np.array([h[0] for h in hits]), np.array([h[1] for h in hits]),
            np.array([h[2] for h in hits]) * far_m)


def test_layout_manifest_and_view_meta(datasets):
    from graspsim.data.robot_views import ACROSS_CAMERAS
    from graspsim.scenes.kinds import SCENE_KINDS

    manifest, views = check_robot_views(datasets["shelf-test"])
    assert manifest["dataset"] == "robot_views" and manifest["kind"] == "shelf" and manifest["views_per_scene"] == 2
    assert list(manifest["embodiments"]) == ["panda", "kuka_iiwa", "xarm6"]
    assert {n: e["split"] for n, e in manifest["embodiments"].items()} == {
        "panda": "seen", "kuka_iiwa": "seen", "xarm6": "unseen"}
    assert manifest["config"]["views"]["min_robot_fraction"] == 0.005
    across = manifest["config"]["views"]["across_camera"]
    assert manifest["config"]["views"]["across_views"] == 0.6 and sorted(across["eye_boxes"]) == ["high", "low", "side"]
    assert set(ACROSS_CAMERAS) == set(SCENE_KINDS)  # every scene kind has its across cameras
    assert across["hidden_share"] == [0.2, 0.7] and across["tries"] == 24
    scene_meta = json.loads((views[0].parent / "meta.json").read_text())
    assert [v.name for v in views] == scene_meta["views"]
    assert len(views) + len(scene_meta["skipped_views"]) == 6 and len(views) >= 4
    for v in views:
        s = read_view(v)
        seg, meta = s["robot_seg"], s["meta"]
        assert seg.shape == (H, W) and seg.dtype == np.uint8 and set(np.unique(seg)) <= {0, 1, 2}
        assert meta["view_id"] == v.name and v.name.startswith(meta["embodiment"])
        assert meta["robot_px"] == {"arm": int((seg == 1).sum()), "gripper": int((seg == 2).sum()),
                                    "whole": int((seg > 0).sum())}
        assert meta["robot_px"]["whole"] >= 0.005 * W * H
        for part in ("arm", "gripper", "whole"):
            assert meta["unoccluded_px"][part] >= meta["robot_px"][part]
            assert 0.0 <= meta["occluded_fraction"][part] <= 1.0
        assert (s["depth_m"][seg > 0] > 0).all()  # the robot is in front of the far plane
        assert len(meta["q_rad"]) == len(meta["joint_names"]) == len(manifest["embodiments"][meta["embodiment"]][
            "arm_joints"])
        assert meta["target"] in ("product", "reach", "free") and meta["at_product"] == (meta["target"] == "product")
        placement = meta["camera_placement"]
        if placement["mode"] == "across":
            assert placement["box"] in across["eye_boxes"] and 1 <= placement["tries"] <= 24
            assert 35.0 <= placement["vertical_fov_deg"] <= 58.0 and 0.0 <= placement["hidden_share"] <= 1.0
            # the camera looks at the tool point, give or take the 10 cm target jitter
            T_wc, tool = np.asarray(meta["T_world_camera"]), np.asarray(meta["T_world_tcp"])[:3, 3]
            p = np.linalg.inv(T_wc) @ np.append(tool, 1.0)
            assert p[2] > 0.2 and np.hypot(p[0], p[1]) / p[2] < np.tan(np.radians(25))
        else:
            assert placement == {"mode": "scene"}


@pytest.mark.parametrize("suite", ["shelf-test", "tabletop-test"])
def test_masks_agree_with_the_robot_geometry_seen_from_the_stored_camera(datasets, suite):
    """Rebuild each view's robot alone from its meta.json. (1) Project every link's frame origin through the stored
    camera: where the ray through that pixel meets this very link first (no other link in front) and the stored
    depth shows that surface (no board or product in front), the mask labels the pixel with the link's part.
    (2) Every pixel: the first link the pixel's ray meets, wherever the stored depth shows it, labels the pixel."""
    from graspsim.sim.embodiments import ARM, GRIPPER

    manifest, views = check_robot_views(datasets[suite])
    world, robots = _robot_world(manifest["embodiments"])
    checked = {ARM: 0, GRIPPER: 0}
    try:
        for v in views:
            s = read_view(v)
            robot = _pose(robots, s["meta"])
            for part, n in _check_mask_against_geometry(world, robot, s, v.name).items():
                checked[part] += n
    finally:
        world.close()
    # Most link frames sit inside a joint housing, where the neighbouring link is in front: few qualify
    # (measured: shelf 5 arm + 2 gripper origins, table 1 + 1); the full-image check covers the rest.
    assert checked[ARM] >= 1 and checked[GRIPPER] >= 1, checked


#: How far the surface a pixel's ray meets (collision shapes) may lie from the stored depth (visual meshes): the
#: KUKA's collision meshes of links 4 and 5 stand 1.3 to 2 cm proud of its visual ones (measured, median depth
#: differences), which shows wherever those links fill much of the picture (its arm close to a camera).
DEPTH_TOL_M = 0.03


def _check_mask_against_geometry(world, robot, s, name) -> dict[int, int]:
    """The checks of the test above for one picture ``s`` (``robot_seg``, ``depth_m``, ``K``, ``T_world_camera``)
    of ``robot`` (posed as the picture shows it, alone in ``world``); link origins checked per part."""
    from graspsim.sim.embodiments import ARM, GRIPPER

    seg, K, T_wc = s["robot_seg"], s["K"], s["T_world_camera"]
    H, W = seg.shape
    checked = {ARM: 0, GRIPPER: 0}
    T_cw = np.linalg.inv(T_wc)
    for link_name, origin in robot.link_origins().items():
        p = T_cw[:3, :3] @ origin + T_cw[:3, 3]
        if p[2] <= 0.05:
            continue
        x, y = np.rint(K[:2, :2] @ (p[:2] / p[2]) + K[:2, 2]).astype(int)
        if not (0 <= x < W and 0 <= y < H):
            continue
        body, link, depth = (a[0] for a in _pixel_rays(world, K, T_wc, [(x, y)]))
        if body != robot.body or link != robot.link_index[link_name] or abs(s["depth_m"][y, x] - depth) > DEPTH_TOL_M:
            continue  # hidden behind another link or by the scene
        assert seg[y, x] == robot.part[robot.link_index[link_name]], (name, link_name)
        checked[robot.part[robot.link_index[link_name]]] += 1
    vv, uu = np.mgrid[0:H, 0:W]
    body, link, depth = (a.reshape(H, W) for a in _pixel_rays(world, K, T_wc, np.stack([uu, vv], -1)))
    on_robot = body == robot.body
    expected = np.where(on_robot, np.vectorize(lambda k: robot.part.get(k, 0))(link), 0)
    seen = on_robot & (np.abs(s["depth_m"] - depth) < DEPTH_TOL_M)
    assert seen.sum() >= 0.8 * (seg > 0).sum(), name
    assert (seg[seen] == expected[seen]).mean() >= 0.97, name
    assert on_robot[seg > 0].mean() >= 0.95, name  # labelled pixels are robot along the stored rays
    return checked


def test_the_panda_in_its_parking_pose_gets_the_envs_robot_seg():
    """RobotBody + the registry's part map give PickEnv's privileged robot_seg for the parked arm, pixel for
    pixel (the same scene, camera and pose; the env's own arm sent away)."""
    from graspsim.envs.pick_env import PickEnv
    from graspsim.sim.camera import render
    from graspsim.sim.embodiments import T_WORLD_AWAY, RobotBody, get_embodiment
    from graspsim.sim.panda import FINGER_LINKS

    env = PickEnv(suite="shelf-test", robot="panda", privileged=True, width=W, height=H, renderer="tiny")
    try:
        obs, _ = env.reset(seed=0)
        scene, arm = env._scene, env._scene.arm
        expected = obs["robot_seg"]
        assert (expected == 1).sum() > 500 and (expected == 2).sum() > 20  # arm and hand at the left edge
        robot = RobotBody(env.world, get_embodiment("panda"), arm.T_world_base)
        robot.set_joints(arm.q())
        for j, link in zip(robot.finger_joint_indices, FINGER_LINKS):
            env.world.client.resetJointState(robot.body, j, env.world.client.getJointState(arm.body, link)[0])
        arm.set_base(T_WORLD_AWAY)
        frames = render(env.world, scene.camera, scene.plan.lighting, None, robot.parts)
    finally:
        env.close()
    assert np.array_equal(frames.robot_seg, expected)


def test_resume_and_settings_mismatch(tmp_path):
    out = tmp_path / "d"
    first = render_robot_views("tabletop-test", 1, out, "panda", views_per_scene=1, **SMALL)
    assert first["rendered"] == 1
    before = _files(out)
    with pytest.raises(RunDirError, match="not empty"):
        render_robot_views("tabletop-test", 1, out, "panda", views_per_scene=1, **SMALL)
    with pytest.raises(RunDirError, match="'views_per_scene'"):
        render_robot_views("tabletop-test", 2, out, "panda", views_per_scene=2, resume=True, **SMALL)
    with pytest.raises(RunDirError, match="'embodiments'"):
        render_robot_views("tabletop-test", 2, out, "panda,xarm6", views_per_scene=1, resume=True, **SMALL)
    assert _files(out) == before  # the refusals changed nothing
    again = render_robot_views("tabletop-test", 2, out, "panda", views_per_scene=1, resume=True, **SMALL)
    assert again["rendered"] == 1 and again["already_done"] == 1
    assert json.loads((out / "manifest.json").read_text())["scene_seeds"] == [11_000_000, 11_000_001]
    assert {k: v for k, v in _files(out).items() if "scene-11000000" in k} == before


def test_one_and_two_workers_write_the_same_files(tmp_path):
    args = dict(views_per_scene=1, **SMALL)
    render_robot_views("tabletop-test", 2, tmp_path / "one", "panda,xarm6", workers=1, **args)
    render_robot_views("tabletop-test", 2, tmp_path / "two", "panda,xarm6", workers=2, **args)
    one, two = _files(tmp_path / "one"), _files(tmp_path / "two")
    assert sorted(one) == sorted(two) and len(one) >= 2 * 5
    assert one == two


def test_a_view_depends_only_on_its_scene_embodiment_and_index(datasets, tmp_path):
    """Rendering the xArm alone gives the bytes it has beside the two other robots."""
    render_robot_views("shelf-test", 1, tmp_path / "x", "xarm6", views_per_scene=2, **SMALL)
    alone = _files(tmp_path / "x")
    full = {k: v for k, v in _files(datasets["shelf-test"]).items() if "/xarm6-" in k}
    assert full and {k: v for k, v in alone.items() if "/xarm6-" in k} == full


def test_views_with_too_few_robot_pixels_are_skipped_and_recorded(tmp_path):
    summary = render_robot_views("tabletop-test", 1, tmp_path / "d", "kuka_iiwa", views_per_scene=2,
                                 min_robot_fraction=0.95, **SMALL)
    assert summary["views"] == 0 and summary["skipped_views"] == 2
    (scene,) = (tmp_path / "d" / "shards" / "shard-0000").iterdir()
    meta = json.loads((scene / "meta.json").read_text())
    assert meta["views"] == [] and sorted(meta["skipped_views"]) == ["kuka_iiwa-00", "kuka_iiwa-01"]
    assert all(r.startswith("too few robot pixels: ") and r.endswith(f" < {int(0.95 * W * H)}")
               for r in meta["skipped_views"].values())
    with pytest.raises(DatasetError, match="holds no complete robot view"):
        check_robot_views(tmp_path / "d")


def test_grasp_and_robot_view_readers_refuse_each_others_datasets(datasets, tmp_path):
    from graspsim.data.labels import LabelConfig
    from graspsim.data.render import render_dataset

    with pytest.raises(DatasetError, match="holds robot views"):
        check_dataset(datasets["shelf-test"])
    render_dataset("tabletop-test", 1, tmp_path / "g", labels=LabelConfig(max_candidates=0), **SMALL)
    with pytest.raises(DatasetError, match="is a grasp dataset, not robot views"):
        check_robot_views(tmp_path / "g")


def test_cli_end_to_end_and_one_line_errors(tmp_path):
    runner = CliRunner()
    base = ["--suite", "tabletop-test", "--scenes", "1", "--views-per-scene", "1", "--width", str(W), "--height",
            str(H), "--renderer", "tiny", "--no-progress"]
    r = runner.invoke(render_robot_views_command, base + ["--out", str(tmp_path / "bad"), "--embodiments",
                                                          "panda,ur5"])
    assert r.exit_code == 2 and r.output == ("Error: unknown embodiment 'ur5'; choose from panda, kuka_iiwa, xarm6 "
                                             "(or seen, unseen, all), comma-separated\n")
    assert not (tmp_path / "bad").exists()
    r = runner.invoke(render_robot_views_command, base + ["--out", str(tmp_path / "d"), "--embodiments", "unseen",
                                                          "--across-views", "1"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])
    assert summary["embodiments"] == ["xarm6"] and summary["views"] + summary["skipped_views"] == 1
    assert summary["per_embodiment"]["xarm6"]["views"] == summary["views"]
    assert summary["per_camera"]["scene"] == {"views": 0} and summary["per_camera"]["across"]["views"] == summary[
        "views"]  # --across-views 1: every camera looks across the table
    assert 0.0 <= summary["occluded_views"] <= 1.0
    assert json.loads((tmp_path / "d" / "manifest.json").read_text())["config"]["views"]["across_views"] == 1.0
    r = runner.invoke(render_robot_views_command, base + ["--out", str(tmp_path / "d"), "--embodiments", "unseen",
                                                          "--resume", "--views-per-scene", "3"])
    assert r.exit_code == 2 and "Traceback" not in r.output and "'views_per_scene'" in r.output, r.output
    r = runner.invoke(render_robot_views_command, base + ["--out", str(tmp_path / "e"), "--suite", "nope"])
    assert r.exit_code == 2 and r.output.startswith("Error: unknown suite 'nope'")


def test_unoccluded_mask_sees_through_the_scene_and_puts_it_back():
    """The Panda behind the shelf's back panel: the camera sees none of it, the scene-free render all of it; every
    body of the scene is back at its pose, to the bit, afterwards."""
    from graspsim.data.robot_views import RobotViewRenderer, RobotViewSpec
    from graspsim.geometry import make_transform
    from graspsim.grasping.panda_kinematics import Q_HOME
    from graspsim.sim.camera import render
    from graspsim.sim.embodiments import RobotBody, get_embodiment
    from graspsim.sim.scene import build_settled_scene

    renderer = RobotViewRenderer(RobotViewSpec(suite="shelf-test", embodiments=("panda",), width=W, height=H,
                                               renderer="tiny"))
    try:
        world = renderer.world
        scene = build_settled_scene(world, "shelf", 1_000_000, "seen", renderer.options, renderer.physics)
        bodies = list(scene.static_bodies) + scene.live_bodies
        robot = RobotBody(world, get_embodiment("panda"), make_transform(t=(0.0, 0.6, 0.1)))  # 28 cm behind
        robot.set_joints(Q_HOME, 0.0)  # folded, the hand 0.6 m up: all of it behind the back panel
        before = [world.client.getBasePositionAndOrientation(b) for b in bodies]
        visible = render(world, scene.camera, scene.plan.lighting, None, robot.parts).robot_seg
        unoccluded = renderer._unoccluded_mask(robot, scene.camera, scene.plan.lighting, bodies)
        assert [world.client.getBasePositionAndOrientation(b) for b in bodies] == before
        assert not visible.any() and (unoccluded > 0).sum() > 500
        again = render(world, scene.camera, scene.plan.lighting, None, robot.parts).robot_seg
        assert np.array_equal(again, visible)
    finally:
        renderer.close()


def test_some_views_are_partly_occluded_and_the_occlusion_is_real(datasets):
    """Across cameras hide part of the robot behind the scene. For the most occluded view of each fixture
    dataset: its scene rebuilt and its robot posed from meta.json give the stored mask again; without the scene
    the same camera sees ``unoccluded_px`` robot pixels, more than with it, and every pixel the scene took away
    shows a scene body (furniture, floor or a product) in the render's segmentation."""
    from graspsim.data.robot_views import RobotViewRenderer, RobotViewSpec
    from graspsim.sim.camera import render
    from graspsim.sim.embodiments import RobotBody, get_embodiment
    from graspsim.sim.scene import build_settled_scene
    from graspsim.types import CameraModel

    for suite in ("shelf-test", "tabletop-test"):
        _, views = check_robot_views(datasets[suite])
        metas = [read_view(v)["meta"] for v in views]
        occluded = [m for m in metas if m["occluded_fraction"]["whole"] > 0]
        assert occluded, suite
        assert all(m["camera_placement"]["mode"] == "across" for m in metas if m["occluded_fraction"]["whole"] >= 0.1)
        meta = max(occluded, key=lambda m: m["occluded_fraction"]["whole"])
        assert meta["occluded_fraction"]["whole"] >= 0.1, (suite, meta["occluded_fraction"])
        stored = read_view(next(v for v in views if v.name == meta["view_id"]))["robot_seg"]
        renderer = RobotViewRenderer(RobotViewSpec(suite=suite, embodiments=(meta["embodiment"],), width=W,
                                                   height=H, renderer="tiny"))
        try:
            world = renderer.world
            scene = build_settled_scene(world, renderer.suite.kind, meta["scene_seed"], renderer.suite.variant_split,
                                        renderer.options, renderer.physics)
            robot = RobotBody(world, get_embodiment(meta["embodiment"]), np.asarray(meta["T_world_base"]))
            robot.set_joints(np.asarray(meta["q_rad"]), meta["closure"])
            camera = CameraModel(K=np.asarray(meta["K"]), width=W, height=H,
                                 T_world_camera=np.asarray(meta["T_world_camera"]), near_m=meta["near_m"],
                                 far_m=meta["far_m"])
            frames = render(world, camera, scene.plan.lighting, None, robot.parts)
            scene_bodies = list(scene.static_bodies) + scene.live_bodies
            unoccluded = renderer._unoccluded_mask(robot, camera, scene.plan.lighting, scene_bodies)
        finally:
            renderer.close()
        assert np.array_equal(frames.robot_seg, stored), suite
        assert int((unoccluded > 0).sum()) == meta["unoccluded_px"]["whole"] > meta["robot_px"]["whole"]
        taken = (unoccluded > 0) & (stored == 0)
        assert taken.sum() == meta["unoccluded_px"]["whole"] - meta["robot_px"]["whole"] > 0
        assert np.isin(frames.instance_seg[taken], scene_bodies).all(), suite
        assert not (stored > 0)[unoccluded == 0].any()  # the scene only takes robot pixels away


def test_hidden_share_counts_sight_lines_that_meet_the_scene_first():
    """The Panda behind the shelf's back panel: every sight line to its chain meets the shelf (1.0); in front of
    the shelf, with the scene camera behind it, none does (0.0); and without scene bodies nothing is hidden."""
    from graspsim.data.robot_views import RobotViewRenderer, RobotViewSpec, hidden_share, robot_sight_points
    from graspsim.geometry import make_transform
    from graspsim.grasping.panda_kinematics import Q_HOME
    from graspsim.sim.camera import camera_model_from_spec
    from graspsim.sim.embodiments import RobotBody, get_embodiment
    from graspsim.sim.scene import build_settled_scene

    renderer = RobotViewRenderer(RobotViewSpec(suite="shelf-test", embodiments=("panda",), width=W, height=H,
                                               renderer="tiny"))
    try:
        world = renderer.world
        scene = build_settled_scene(world, "shelf", 1_000_000, "seen", renderer.options, renderer.physics)
        bodies = list(scene.static_bodies) + scene.live_bodies
        camera = camera_model_from_spec(scene.plan.camera)
        robot = RobotBody(world, get_embodiment("panda"), make_transform(t=(0.0, 0.6, 0.1)))  # behind the panel
        robot.set_joints(Q_HOME, 0.0)
        points = robot_sight_points(robot)
        assert len(points) > 40 and np.linalg.norm(points[-1] - robot.T_world_tcp()[:3, 3]) < 1e-9
        assert hidden_share(world, camera, robot.body, points, bodies) == 1.0
        assert hidden_share(world, camera, robot.body, points, []) == 0.0
        robot.set_base(make_transform(t=(0.0, -0.45, 0.4)))  # between the scene camera and the shelf
        assert hidden_share(world, camera, robot.body, robot_sight_points(robot), bodies) == 0.0
    finally:
        renderer.close()


# ------------------------------------------------------------------------------------------------ grasp videos

#: sha256 of the files (manifest aside) of the render below without videos: ``--videos 0`` must leave a dataset
#: byte for byte as it was. First pinned before videos existed (commit f322750: 8c03cfe6...); pinned again when
#: the image views' defaults changed (across cameras, reach targets: branch occlusion), which the videos do not
#: touch (their camera and draws are as before).
#: Per CPU kind (the ``cpu_kind`` fixture: rendered bytes depend on numpy's vector kernels): AVX2 recorded before the
#: videos existed; AVX512 recorded on 2026-12-02 on the code of then (robot-view rendering unchanged since the videos).
DIGESTS_BEFORE_VIDEOS = {"AVX2": "8c6ef605042e9812de02a32686571add3073fa4c07bf63dbca2d02fe9ced2bd7",
                         "AVX512": "f88bcec22476b7f6d947cbeace7b320f5b974c9f33d83d5bb964ec8b3acd2b4e"}


def _digest(root: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    for name, data in _files(root).items():
        h.update(name.encode())
        h.update(data)
    return h.hexdigest()


@pytest.fixture(scope="module")
def video_dataset(tmp_path_factory) -> Path:
    """One shelf scene, the Panda, one image view and one grasp video, through the command line (~10 s)."""
    out = tmp_path_factory.mktemp("robot-videos") / "d"
    r = CliRunner().invoke(render_robot_views_command, [
        "--suite", "shelf-test", "--scenes", "1", "--out", str(out), "--embodiments", "panda", "--views-per-scene",
        "1", "--videos", "1", "--width", str(W), "--height", str(H), "--renderer", "tiny", "--no-progress"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])["videos"]
    assert summary["written"] == 1 and summary["skipped"] == 0 and 16 <= summary["frames_per_video"] <= 32
    assert 0.01 < summary["whole_fraction"] < 1 and summary["whole_fraction"] == pytest.approx(
        summary["arm_fraction"] + summary["gripper_fraction"], abs=2e-4)
    return out


def test_even_stride_gives_16_to_32_frames():
    from graspsim.video import even_stride

    assert [even_stride(n, 32) for n in (0, 1, 32, 33, 580, 640)] == [1, 1, 1, 2, 19, 20]
    assert 580 // 19 == 30 and 33 // 2 == 16
    assert all(16 <= n // even_stride(n, 32) <= 32 for n in range(32, 5000))
    with pytest.raises(ValueError, match="max_frames"):
        even_stride(100, 0)


def test_video_layout_frames_and_meta(video_dataset):
    import math

    manifest, videos = check_robot_videos(video_dataset)
    assert manifest["videos_per_scene"] == 1 and manifest["config"]["videos"]["embodiment"] == "panda"
    (path,) = videos
    scene_meta = json.loads((path.parent / "meta.json").read_text())
    assert path.name == "panda-video-00" and scene_meta["videos"] == ["panda-video-00"]
    assert scene_meta["skipped_videos"] == {} and scene_meta["views"] == ["panda-00"]
    v = read_video(path)
    meta, seg = v["meta"], v["robot_seg"]
    T = len(meta["frames"])
    assert 16 <= T <= 32
    assert v["rgb"].shape == (T, H, W, 3) and seg.shape == v["depth_m"].shape == (T, H, W)
    assert seg.dtype == np.uint8 and set(np.unique(seg)) <= {0, 1, 2} and v["q_rad"].shape == (T, 7)
    # every stride-th step of the whole attempt: the recorded run is as long as the dry run that chose the stride
    assert meta["stride"] == math.ceil(meta["attempt_steps"] / 32) == math.ceil(meta["outcome"]["steps"] / 32)
    assert meta["frame_steps"] == [(t + 1) * meta["stride"] for t in range(T)] == v["frame_steps"].tolist()
    assert meta["frame_steps"][-1] > meta["attempt_steps"] - meta["stride"]
    assert meta["success"] == meta["outcome"]["success"] and meta["target_class"] in meta["instruction"].replace(
        " ", "_")
    for t, frame in enumerate(meta["frames"]):
        assert frame["robot_px"] == {"arm": int((seg[t] == 1).sum()), "gripper": int((seg[t] == 2).sum()),
                                     "whole": int((seg[t] > 0).sum())}
    assert (seg > 0).mean(axis=(1, 2)).min() > 0.01  # the camera sees the arm work in every frame
    assert (seg == 2).any(axis=(1, 2)).sum() >= T // 4, "the gripper shows in a quarter of the frames at least"
    assert np.ptp(v["q_rad"], axis=0).max() > 0.3  # the arm moves
    assert (v["depth_m"][seg > 0] > 0).all()


def test_video_masks_agree_with_the_panda_posed_from_each_frames_joints(video_dataset):
    """Frames 0, the middle one and the last: the Panda alone, posed from the frame's meta (base, arm joints,
    finger joints), seen from the video's camera, labels the pixels where the stored depth shows it, as in the
    image views' check; the mask is the one of the frame's own render (the robot moves between frames)."""
    from graspsim.sim.embodiments import ARM

    (path,) = check_robot_videos(video_dataset)[1]
    v = read_video(path)
    meta = v["meta"]
    world, robots = _robot_world(["panda"])
    robot = robots["panda"]
    checked = {1: 0, 2: 0}
    try:
        robot.set_base(np.asarray(meta["T_world_base"]))
        for t in sorted({0, len(meta["frames"]) // 2, len(meta["frames"]) - 1}):
            frame = meta["frames"][t]
            robot.set_joints(np.asarray(frame["q_rad"]))
            names = [n for n, _, _ in robot.embodiment.finger_joints]
            for j, name in zip(robot.finger_joint_indices, names):
                world.client.resetJointState(robot.body, j, frame["gripper_joints"][name])
            picture = {"robot_seg": v["robot_seg"][t], "depth_m": v["depth_m"][t], "K": v["K"],
                       "T_world_camera": v["T_world_camera"]}
            for part, n in _check_mask_against_geometry(world, robot, picture, f"frame {t}").items():
                checked[part] += n
    finally:
        world.close()
    assert checked[ARM] >= 1, checked


def test_videos_are_the_same_with_two_workers_other_robots_and_after_a_resume(video_dataset, tmp_path):
    """The fixture's files again from 2 worker processes with the xArm's image views beside the Panda's (the
    scene's meta.json lists them too: every other file is the same), and again after a resume."""
    import shutil

    out = tmp_path / "two"
    args = dict(views_per_scene=1, videos_per_scene=1, **SMALL)
    render_robot_views("shelf-test", 1, out, "panda,xarm6", workers=2, **args)
    reference = _files(video_dataset)
    two = _files(out)
    assert sum("panda-video-00/frames/" in k for k in reference) >= 3 * 16
    assert {k: v for k, v in two.items() if "xarm6-" not in k and not k.endswith("scene-1000000/meta.json")} == {
        k: v for k, v in reference.items() if not k.endswith("scene-1000000/meta.json")}
    (scene,) = (out / "shards" / "shard-0000").iterdir()
    shutil.rmtree(scene)  # as if interrupted before this scene was written
    with pytest.raises(RunDirError, match="'videos_per_scene'"):  # another V is refused
        render_robot_views("shelf-test", 1, out, "panda,xarm6", resume=True, **{**args, "videos_per_scene": 2})
    again = render_robot_views("shelf-test", 1, out, "panda,xarm6", resume=True, **args)
    assert again["rendered"] == 1 and _files(out) == two


def test_no_videos_leaves_the_dataset_byte_for_byte_as_before(tmp_path, cpu_kind):
    if cpu_kind not in DIGESTS_BEFORE_VIDEOS:
        pytest.skip(f"no digest recorded on a {cpu_kind} CPU")
    out = tmp_path / "d"
    render_robot_views("shelf-test", 1, out, "panda,xarm6", views_per_scene=1, videos_per_scene=0, **SMALL)
    assert _digest(out) == DIGESTS_BEFORE_VIDEOS[cpu_kind]
    manifest = json.loads((out / "manifest.json").read_text())
    assert "videos_per_scene" not in manifest and "videos" not in manifest["config"]
    with pytest.raises(DatasetError, match="has no videos"):
        check_robot_videos(out)


@pytest.mark.parametrize("args, message", [
    (["--videos", "-1"], "Error: --videos takes a whole number of grasp videos per scene (0 or more), got -1\n"),
    (["--videos", "two"], "Error: --videos takes a whole number of grasp videos per scene (0 or more), got 'two'\n"),
])
def test_a_bad_videos_value_is_a_one_line_error(tmp_path, args, message):
    r = CliRunner().invoke(render_robot_views_command, ["--suite", "shelf-test", "--scenes", "1", "--out",
                                                        str(tmp_path / "d"), "--no-progress", *args])
    assert r.exit_code == 2 and r.output == message
    assert not (tmp_path / "d").exists()


# ------------------------------------------------------------------------------------ planned-motion videos


@pytest.fixture(scope="module")
def planned_dataset(tmp_path_factory) -> Path:
    """One shelf scene, the KUKA and the xArm, one image view and one planned-motion video each, through the
    command line (~15 s)."""
    out = tmp_path_factory.mktemp("planned-videos") / "d"
    r = CliRunner().invoke(render_robot_views_command, [
        "--suite", "shelf-test", "--scenes", "1", "--out", str(out), "--embodiments", "kuka_iiwa,xarm6",
        "--views-per-scene", "1", "--videos", "1", "--width", str(W), "--height", str(H), "--renderer", "tiny",
        "--no-progress"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.output.strip().splitlines()[-1])["videos"]
    assert summary["written"] == 2 and summary["skipped"] == 0 and summary["frames_per_video"] == 32
    assert summary["success"] is None  # nothing is executed, so no pick rate
    return out


def test_planned_videos_layout_meta_and_motion(planned_dataset):
    from graspsim.data.robot_views import PLANNED_APPROACH_FRAMES, PLANNED_TRANSIT_FRAMES
    from graspsim.sim.embodiments import get_embodiment

    manifest, videos = check_robot_videos(planned_dataset)
    assert manifest["config"]["videos"]["planned"]["embodiments"] == ["kuka_iiwa", "xarm6"]
    assert [p.name for p in videos] == ["kuka_iiwa-video-00", "xarm6-video-00"]
    world, robots = _robot_world(["kuka_iiwa", "xarm6"])
    gripper_frames = 0
    try:
        for path in videos:
            v = read_video(path)
            meta, seg, q = v["meta"], v["robot_seg"], v["q_rad"]
            e = get_embodiment(meta["embodiment"])
            assert meta["motion"] == "planned" and meta["split"] == e.split and v["frame_steps"] is None
            assert len(meta["frames"]) == PLANNED_TRANSIT_FRAMES + PLANNED_APPROACH_FRAMES == 32
            assert v["rgb"].shape == (32, H, W, 3) and q.shape == (32, e.dof)
            assert (q >= np.asarray(e.q_lower) - 1e-9).all() and (q <= np.asarray(e.q_upper) + 1e-9).all()
            start = np.asarray(e.mount("shelf").q_park) if meta["start"] == "park" else np.zeros(e.dof)
            assert q[0] == pytest.approx(np.clip(start, e.q_lower, e.q_upper), abs=1e-12)
            # transit frames evenly spaced along the path (a chord across a waypoint's corner is shorter)
            steps = np.linalg.norm(np.diff(q, axis=0), axis=1)[:PLANNED_TRANSIT_FRAMES - 1]
            even = meta["planner"]["length_rad"] / (PLANNED_TRANSIT_FRAMES - 1)
            assert (steps <= even + 1e-9).all() and np.median(steps) == pytest.approx(even, rel=1e-6)
            assert np.ptp(q, axis=0).max() > 0.3
            # the last frame is the grasp: forward kinematics puts the tool at T_world_grasp
            robot = robots[e.name]
            robot.set_base(np.asarray(meta["T_world_base"]))
            robot.set_joints(q[-1], meta["closure"])
            assert robot.T_world_tcp() == pytest.approx(np.asarray(meta["T_world_grasp"]), abs=1e-6)
            for t, frame in enumerate(meta["frames"]):
                assert frame["robot_px"] == {"arm": int((seg[t] == 1).sum()), "gripper": int((seg[t] == 2).sum()),
                                             "whole": int((seg[t] > 0).sum())}
            assert (seg[-PLANNED_APPROACH_FRAMES:] > 0).any(axis=(1, 2)).all(), "the robot shows at the grasp"
            gripper_frames += int((seg == 2).any(axis=(1, 2)).sum())
            robot.away()
    finally:
        world.close()
    assert gripper_frames >= 8  # seen from behind the shoulder the arm hides its gripper in some frames


def test_planned_video_masks_agree_with_the_geometry_and_the_motion_is_collision_free(planned_dataset):
    """Every 4th frame's mask agrees with the robot posed from that frame's joints (as the image views' check),
    and in the scene rebuilt from its seed every frame's pose keeps the sampler's collision tolerances."""
    from graspsim.config import PhysicsConfig
    from graspsim.scenes.sampling import SceneOptions
    from graspsim.scenes.suites import get_suite
    from graspsim.sim.embodiments import ARM, T_WORLD_AWAY, RobotBody, SamplerConfig, collision_free, get_embodiment
    from graspsim.sim.scene import build_settled_scene
    from graspsim.sim.world import SimWorld

    videos = check_robot_videos(planned_dataset)[1]
    world, robots = _robot_world(["kuka_iiwa", "xarm6"])
    checked = {1: 0, 2: 0}
    try:
        for path in videos:
            v = read_video(path)
            meta = v["meta"]
            robot = robots[meta["embodiment"]]
            robot.set_base(np.asarray(meta["T_world_base"]))
            for t in range(0, 32, 4):
                robot.set_joints(v["q_rad"][t], meta["closure"])
                picture = {"robot_seg": v["robot_seg"][t], "depth_m": v["depth_m"][t], "K": v["K"],
                           "T_world_camera": v["T_world_camera"]}
                for part, n in _check_mask_against_geometry(world, robot, picture, f"{path.name} {t}").items():
                    checked[part] += n
            robot.away()
    finally:
        world.close()
    assert checked[ARM] >= 2, checked
    suite = get_suite("shelf-test")
    world = SimWorld(PhysicsConfig(), "tiny")
    try:
        scene = build_settled_scene(world, suite.kind, suite.first_seed, suite.variant_split,
                                    SceneOptions(width=W, height=H), PhysicsConfig())
        obstacles = list(scene.static_bodies) + scene.live_bodies
        for path in videos:
            v = read_video(path)
            robot = RobotBody(world, get_embodiment(v["meta"]["embodiment"]), np.asarray(v["meta"]["T_world_base"]))
            for q in v["q_rad"]:
                robot.set_joints(q, v["meta"]["closure"])
                assert collision_free(robot, obstacles, SamplerConfig())
            robot.away()
    finally:
        world.close()


def test_planned_videos_are_the_same_beside_the_panda_with_two_workers(planned_dataset, video_dataset, tmp_path):
    """The xArm's video of the fixture (rendered beside the KUKA) is the one rendered beside the Panda by two
    workers; the Panda's video there is the Panda-only fixture's."""
    out = tmp_path / "two"
    render_robot_views("shelf-test", 1, out, "panda,xarm6", workers=2, views_per_scene=1, videos_per_scene=1,
                       **SMALL)
    two = _files(out)
    for reference, robot in ((planned_dataset, "xarm6"), (video_dataset, "panda")):
        mine = {k: b for k, b in _files(reference).items() if f"{robot}-video-00/" in k}
        assert len(mine) == 32 * 3 + 1 if robot == "xarm6" else len(mine) > 16 * 3
        assert {k: b for k, b in two.items() if f"{robot}-video-00/" in k} == mine
    scene_meta = json.loads(next((out / "shards" / "shard-0000").iterdir()).joinpath("meta.json").read_text())
    assert scene_meta["videos"] == ["panda-video-00", "xarm6-video-00"]


def test_the_training_bank_skips_the_held_out_robots_videos(planned_dataset):
    from graspsim.data.reader import held_out_every
    from graspsim.policies.robotseg.data import RobotBank
    from graspsim.scenes.suites import get_suite

    split = "val" if held_out_every(get_suite("shelf-test").first_seed) else "train"
    bank = RobotBank([planned_dataset], split, 64)
    assert bank.sources[0]["videos"] == 1 and len(bank.videos) == 1  # the KUKA's
    assert bank.unseen_skipped == 2  # the xArm's view and video
    assert len(bank.pictures) == 1 + 32
