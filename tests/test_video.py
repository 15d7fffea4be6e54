"""Attempts as videos: the step hook, the recorder in the environment, the GIF/MP4 writers and ``show --video``."""

from __future__ import annotations

import contextlib
import io
import re

import cv2
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image, ImageSequence

from graspsim.cli import main
from graspsim.envs.pick_env import PickEnv
from graspsim.geometry import intrinsics_from_fov
from graspsim.policies.base import as_observation, policy_rng
from graspsim.policies.registry import make_policy
from graspsim.scenes.suites import get_suite
from graspsim.types import CameraModel
from graspsim.video import (HOLD_S, VideoPathError, check_video_path, encode_gif, encode_webp, frame_stride,
                            gif_frame_ms, hold_ends, scaled_camera, write_video)

SMALL = dict(width=160, height=120, renderer="tiny")
SUITE = get_suite("shelf-test")


def _gif_frames(path_or_file) -> tuple[list[np.ndarray], list[int]]:
    """Decoded frames and their durations (ms) of an animated GIF or WebP."""
    frames, durations = [], []
    for frame in ImageSequence.Iterator(Image.open(path_or_file)):
        frame.load()  # (WebP sets a frame's duration when it decodes it)
        frames.append(np.array(frame.convert("RGB")))
        durations.append(frame.info["duration"])
    return frames, durations


def _mp4_frames(path) -> list[np.ndarray]:
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    capture.release()
    return frames


def _ramp(n: int, h: int = 48, w: int = 64) -> list[np.ndarray]:
    """``n`` distinct frames: a bright square sliding right over a dark ramp."""
    base = np.repeat(np.linspace(0, 120, w, dtype=np.uint8)[None, :, None], h, axis=0).repeat(3, axis=2)
    frames = []
    for i in range(n):
        f = base.copy()
        f[10:30, 2 + 4 * i:18 + 4 * i] = (250, 200, 40)
        frames.append(f)
    return frames


# ----------------------------------------------------------------------------- writers


def test_gif_decodes_to_every_frame_at_the_given_rate(tmp_path):
    frames = _ramp(9)
    assert write_video(tmp_path / "a.gif", frames, fps=20) == "GIF"
    decoded, durations = _gif_frames(tmp_path / "a.gif")
    assert len(decoded) == 9 and durations == [50] * 9
    # One global palette without dithering: the square and the ramp come back within a few levels.
    assert all(np.abs(d.astype(int) - f).max() <= 8 for d, f in zip(decoded, frames))
    assert Image.open(tmp_path / "a.gif").info["loop"] == 0  # loops forever (the report shows it as a loop)


def test_gif_holds_merge_into_longer_frames_and_keep_the_total_duration():
    frames = hold_ends(_ramp(4), fps=10, seconds=0.5)
    assert len(frames) == 4 + 2 * 4  # each end shown 5 frames = 0.5 s at 10 fps
    assert len(hold_ends(frames[:2], fps=5, seconds=0.5)) == 2 + 2 * 2  # at least 0.5 s: 3 frames at 5 fps
    decoded, durations = _gif_frames(io.BytesIO(encode_gif(frames, fps=10)))
    assert len(decoded) == 4 and durations == [500, 100, 100, 500]
    assert gif_frame_ms(15) == 70 and gif_frame_ms(50) == 20  # whole centiseconds
    with pytest.raises(ValueError, match="at most 50"):
        gif_frame_ms(60)


def test_webp_decodes_to_every_frame_at_the_given_rate(tmp_path):
    frames = _ramp(9)
    assert write_video(tmp_path / "a.webp", frames, fps=8) == "WebP"
    decoded, durations = _gif_frames(tmp_path / "a.webp")
    assert len(decoded) == 9 and durations == [125] * 9
    assert all(np.abs(d.astype(int) - f).mean() < 4 for d, f in zip(decoded, frames))  # lossy, but close
    assert Image.open(tmp_path / "a.webp").info["loop"] == 0
    held = hold_ends(frames, fps=8, seconds=0.5)
    assert encode_webp(held, 8) == encode_webp(held, 8)  # deterministic
    decoded, durations = _gif_frames(io.BytesIO(encode_webp(held, 8)))
    assert sum(durations) == 125 * len(held) and durations[0] == durations[-1] == 500


def test_mp4_decodes_to_the_same_number_of_frames(tmp_path):
    frames = _ramp(12)
    kind = write_video(tmp_path / "a.mp4", frames, fps=10)
    assert kind.startswith("MP4, ")
    decoded = _mp4_frames(tmp_path / "a.mp4")
    assert len(decoded) == 12 and decoded[0].shape == frames[0].shape
    # lossy, but the sliding square is where it was drawn
    assert np.abs(decoded[5][10:30].astype(int) - frames[5][10:30]).mean() < 12
    assert cv2.VideoCapture(str(tmp_path / "a.mp4")).get(cv2.CAP_PROP_FPS) == pytest.approx(10)
    assert not list(tmp_path.glob(".*partial*"))  # written under a temporary name, then renamed


def test_bad_paths_and_frames_are_refused(tmp_path):
    with pytest.raises(VideoPathError, match=r"must end in \.gif, \.mp4 or \.webp"):
        check_video_path("out.avi")
    assert check_video_path("OUT.GIF").name == "OUT.GIF"
    with pytest.raises(VideoPathError):
        write_video(tmp_path / "x.webm", _ramp(2))
    with pytest.raises(ValueError, match="at least one frame"):
        write_video(tmp_path / "x.gif", [])
    with pytest.raises(ValueError, match="one size"):
        write_video(tmp_path / "x.gif", [_ramp(1)[0], _ramp(1, h=40)[0]])
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------------- sampling and cameras


def test_frame_stride_samples_simulated_time():
    assert frame_stride(20, 1 / 240) == 12 and frame_stride(10, 1 / 240) == 24
    assert frame_stride(7, 1 / 240) == 34 and frame_stride(1000, 1 / 240) == 1
    with pytest.raises(ValueError):
        frame_stride(0, 1 / 240)


def test_scaled_camera_sees_the_same_view():
    K = intrinsics_from_fov(640, 480, 45.0)
    camera = CameraModel(K=K, width=640, height=480, T_world_camera=np.eye(4))
    small = scaled_camera(camera, 160)
    assert (small.width, small.height) == (160, 120) and scaled_camera(camera, None) is camera
    point = np.array([0.1, -0.05, 1.0])  # in the camera frame

    def project(cam):
        uv = cam.K @ point
        return uv[:2] / uv[2]

    # A pixel centre u at 640 px covers [u - 0.5, u + 0.5]; at 160 px the same stretch is a quarter as long.
    assert np.allclose(project(small), (project(camera) + 0.5) / 4 - 0.5)


# ----------------------------------------------------------------------------- recording in the environment


def _attempt(robot: str, render_mode: str | None, witness: bool = False):
    """One oracle attempt on scene 0 of shelf-test, as a dict; the env is closed.

    ``witness``: a second step listener counts the physics steps and, at the recorder's
    stride, renders the scene camera itself with segmentation, to tell where the robot is.
    """
    from graspsim.sim.camera import render

    seed = SUITE.scene_seeds(0, 1)[0]
    env = PickEnv(kind=SUITE.kind, variant_split=SUITE.variant_split, robot=robot, privileged=True,
                  render_mode=render_mode, render_fps=20, **SMALL)
    try:
        obs, _ = env.reset(seed=seed)
        policy = make_policy("oracle")
        policy.reset(policy_rng(seed))
        action = policy.act(as_observation(obs)).rect.as_array()
        world, scene, c = env.world, env._scene, env.world.client
        before = {c.getBodyUniqueId(i) for i in range(c.getNumBodies())}
        steps, seen = [], []

        def look() -> None:
            steps.append(1)
            if len(steps) % frame_stride(20, 1 / 240) == 0:
                view = render(world, scene.camera, scene.plan.lighting)
                now = {c.getBodyUniqueId(i) for i in range(c.getNumBodies())}
                robot_bodies = [scene.arm.body] if scene.arm is not None else sorted(now - before)  # the hand
                seen.append((view.rgb, np.isin(view.instance_seg, robot_bodies)))

        with world.on_step(look) if witness else contextlib.nullcontext():
            _, _, _, _, info = env.step(action)
        poses = [c.getBasePositionAndOrientation(c.getBodyUniqueId(i)) for i in range(c.getNumBodies())]
        joints = []
        if scene.arm is not None:
            joints = [c.getJointState(scene.arm.body, j)[:2] for j in range(c.getNumJoints(scene.arm.body))]
        frames = env.render() if render_mode == "rgb_array_list" else None
        return dict(obs=obs, action=action, info=info, poses=poses, joints=joints, frames=frames,
                    steps=len(steps), seen=seen, fps=env.metadata["render_fps"])
    finally:
        env.close()


@pytest.fixture(scope="module", params=["hand", "panda"])
def recorded(request):
    robot = request.param
    return robot, _attempt(robot, None), _attempt(robot, "rgb_array_list", witness=True)


def test_recording_changes_nothing_and_sees_every_step(recorded):
    _, plain, filmed = recorded
    assert np.array_equal(plain["action"], filmed["action"])
    assert filmed["info"]["outcome"] == plain["info"]["outcome"]
    assert filmed["info"]["success"] == plain["info"]["success"]
    # Bit for bit: rendering never steps or perturbs the simulation.
    assert filmed["poses"] == plain["poses"] and filmed["joints"] == plain["joints"]
    # Every physics step of the attempt, the hand's and the arm's alike, passed through the world's hook.
    assert filmed["steps"] == plain["info"]["outcome"]["steps"] > 100


def test_recorded_frames_count_and_show_the_robot(recorded):
    robot, _, filmed = recorded
    frames = filmed["frames"]
    # the observation after reset, the observation with the grasp drawn, then one frame per 12 physics steps
    assert len(frames) == 2 + filmed["steps"] // frame_stride(20, 1 / 240) == 2 + len(filmed["seen"])
    assert filmed["fps"] == 20.0
    assert all(f.shape == (120, 160, 3) and f.dtype == np.uint8 for f in frames)
    assert np.array_equal(frames[0], filmed["obs"]["rgb"])
    assert not np.array_equal(frames[1], frames[0])  # the grasp is drawn
    # The motion frames are the scene camera's views at those steps, and the robot is in them,
    # at the grasp while grasping.
    x, y = (int(round(v)) for v in filmed["action"][:2])
    near_grasp = []
    for frame, (rgb, robot_px) in zip(frames[2:], filmed["seen"]):
        assert np.array_equal(frame, rgb)
        near_grasp.append(robot_px[max(0, y - 4):y + 5, max(0, x - 4):x + 5].mean())
    assert np.mean([px.any() for _, px in filmed["seen"]]) > 0.5, robot
    assert max(near_grasp) > 0.3, (robot, near_grasp)


def test_recorded_frames_decode_from_gif_and_mp4(recorded, tmp_path):
    _, _, filmed = recorded
    frames = filmed["frames"]
    write_video(tmp_path / "a.mp4", frames, fps=filmed["fps"])
    assert len(_mp4_frames(tmp_path / "a.mp4")) == len(frames)
    write_video(tmp_path / "a.gif", frames, fps=filmed["fps"])
    decoded, durations = _gif_frames(tmp_path / "a.gif")
    # GIF stores a run of identical frames (e.g. while holding still) once, with the run's duration.
    assert len(decoded) <= len(frames) and sum(durations) == 50 * len(frames)
    write_video(tmp_path / "a.webp", frames, fps=filmed["fps"])
    decoded, durations = _gif_frames(tmp_path / "a.webp")
    assert len(decoded) <= len(frames) and sum(durations) == 50 * len(frames)
    assert (tmp_path / "a.webp").stat().st_size < (tmp_path / "a.gif").stat().st_size


def test_render_modes_follow_gymnasium():
    import gymnasium as gym
    from gymnasium.utils.env_checker import check_env

    import graspsim  # noqa: F401  (registers the environments)

    env = gym.make("graspsim/ShelfPick-v0", render_mode="rgb_array_list", **SMALL)
    assert type(env.unwrapped) is PickEnv and env.unwrapped.render_mode == "rgb_array_list"  # native, no wrapper
    check_env(env.unwrapped)
    env.reset(seed=1)
    assert len(env.render()) == 1 and env.render() == []  # popped by render()
    env.close()
    with pytest.raises(ValueError, match="'rgb_array', 'rgb_array_list'"):
        PickEnv(render_mode="human", **SMALL)
    with pytest.raises(ValueError, match="render_width"):
        PickEnv(render_width=0, **SMALL)
    with pytest.raises(ValueError, match="fps"):
        PickEnv(render_fps=-1, **SMALL)


# ----------------------------------------------------------------------------- the command line


def test_show_execute_video_end_to_end(tmp_path):
    out = tmp_path / "videos" / "attempt.gif"
    # the floating hand and 5 fps keep it short (the arm's recording is tested above)
    result = CliRunner().invoke(main, ["show", "--suite", "shelf-test", "--seed", "0", "--renderer", "tiny",
                                       "--robot", "hand", "--execute", "--video", str(out), "--fps", "5",
                                       "--out", str(tmp_path / "grasp.png")])
    assert result.exit_code == 0, result.output
    n = int(re.search(r"video: (\d+) frames at 5 fps \(GIF\)", result.output).group(1))
    decoded, durations = _gif_frames(out)
    assert decoded[0].shape == (480, 640, 3) and sum(durations) == 200 * n
    # the grasp (first frame) and the outcome (last frame) held 0.5 s each
    assert durations[0] >= 1000 * HOLD_S and durations[-1] >= 1000 * HOLD_S
    still = cv2.cvtColor(cv2.imread(str(tmp_path / "grasp.png")), cv2.COLOR_BGR2RGB)
    assert np.abs(decoded[0].astype(int) - still).mean() < 6  # the video opens on the image with the grasp


@pytest.mark.parametrize("args, message", [
    (["--execute", "--video", "out.avi"], r"must end in \.gif, \.mp4 or \.webp"),
    (["--video", "out.gif"], "--video needs --execute"),
])
def test_show_video_mistakes_are_one_line_errors(tmp_path, args, message):
    result = CliRunner().invoke(main, ["show", "--out", str(tmp_path / "x.png"), *args])
    assert result.exit_code == 2
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and re.search(message, lines[0]), result.output
    assert not list(tmp_path.iterdir())
