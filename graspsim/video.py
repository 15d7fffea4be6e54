"""Attempts as short videos: frames recorded from the scene camera while the robot moves, written as GIF, MP4 or WebP.

Recording: a :class:`FrameRecorder` is a step listener
(:meth:`graspsim.sim.world.SimWorld.on_step`): every physics step of an attempt,
whoever takes it (the floating hand's straight lines, the arm's joint motion,
closing, holding), passes through it, and every ``stride``-th step it renders the
scene camera. Rendering reads the world and never steps it, so a recorded attempt
ends exactly as an unrecorded one. :class:`~graspsim.envs.pick_env.PickEnv` uses
it for ``render_mode="rgb_array_list"``. Given the robot (``robot=``), each frame
is one render with pybullet's segmentation: the colour image, the depth and the
robot mask of the same picture (robot-segmentation videos,
:mod:`graspsim.data.robot_views`); :func:`record_evenly` runs an attempt twice
from the same saved state, first to count its physics steps, so the second,
recorded run is spread over a fixed number of frames whatever its length.

Frame rate: frames are taken every ``stride = round(1 / (fps * time_step_s))``
physics steps (every 12th at the default 20 fps and 240 Hz physics) and played
back at ``fps``, so the video runs at the speed of simulated time: an attempt of
1.5-2.5 simulated seconds is 30-50 frames.

Writers (:func:`write_video`, by the file's suffix):

* ``.gif``: Pillow, one global 256-colour palette for all frames (no dithering,
  so still regions do not flicker and identical frames compress to nothing). An
  animated GIF plays in every browser and image viewer ever made.
* ``.webp``: Pillow, animated lossy WebP (quality :data:`WEBP_QUALITY`): full
  colour and 3-4x smaller than the GIF of the same frames (measured: 98 vs 335
  KB for an arm attempt, 400 px, 10 fps); plays in every current browser
  (Chrome 32+, Edge 18+, Firefox 65+, Safari 14+), as ``<img>``, also from a
  ``data:`` URI in an HTML file opened offline: the report's gallery uses
  :func:`encode_webp`.
* ``.mp4``: OpenCV's ``VideoWriter``, H.264 (``avc1``) when this OpenCV build can
  encode it, else MPEG-4 Part 2 (``mp4v``). The opencv-python wheels ship an
  LGPL FFmpeg without an H.264 encoder, so ``mp4v`` is what they write: it plays
  in desktop players (VLC, mpv, QuickTime, Windows' player) but not in
  browsers, which need H.264 (or VP9/AV1) in a ``<video>`` element.

Images are RGB (H, W, 3) uint8 throughout.
"""

from __future__ import annotations

import io
import math
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence, TypeVar

import numpy as np

from graspsim.types import CameraModel

if TYPE_CHECKING:
    from graspsim.scenes.plan import Lighting
    from graspsim.sim.world import SimWorld

# pybullet (graspsim.sim) is imported where frames are rendered, not here: checking a video path or
# writing frames (the CLI's argument checks, the report) does not start the simulator.

#: Accepted video file suffixes (the format is chosen by the suffix).
VIDEO_SUFFIXES = (".gif", ".mp4", ".webp")
#: Frames per second of simulated time (and of playback) unless told otherwise.
DEFAULT_FPS = 20.0
#: Seconds the first frame (the grasp drawn) and the last (the outcome) are held in attempt videos.
HOLD_S = 0.5
#: GIF frame durations are whole centiseconds and browsers slow anything under 2 cs down to 10 cs.
MAX_GIF_FPS = 50.0
#: Lossy WebP quality (0-100): at 75 the frames look like the observation; sizes in the module docstring.
WEBP_QUALITY = 75
# FourCCs tried for .mp4, best first (see the module docstring).
_MP4_CODECS = (("avc1", "H.264"), ("mp4v", "MPEG-4 Part 2"))
# The GIF palette is computed from at most this many pixels sampled from all frames.
_PALETTE_SAMPLE_PX = 250_000


class VideoPathError(ValueError):
    """A video path whose suffix names no supported format."""


def check_video_path(path: str | Path) -> Path:
    """``path`` as a Path; :class:`VideoPathError` (one line, naming the accepted suffixes) unless it ends in one."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        accepted = f"{', '.join(VIDEO_SUFFIXES[:-1])} or {VIDEO_SUFFIXES[-1]}"
        raise VideoPathError(f"cannot write a video to {path}: the name must end in {accepted} "
                             f"(the suffix chooses the format)")
    return path


# --------------------------------------------------------------------------- recording


def frame_stride(fps: float, time_step_s: float) -> int:
    """Physics steps between two frames: ``round(1 / (fps * time_step_s))``, at least 1."""
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return max(1, int(round(1.0 / (fps * time_step_s))))


def scaled_camera(camera: CameraModel, width: int | None) -> CameraModel:
    """``camera`` rendering ``width`` px wide (height by the aspect ratio); ``camera`` itself when None or as wide.

    The intrinsics scale about pixel corners (pixel centres at integer coordinates):
    ``f' = s f``, ``c' = s (c + 0.5) - 0.5``, so the scaled image shows the same view.
    """
    if width is None or int(width) == camera.width:
        return camera
    if width < 1:
        raise ValueError(f"a frame width must be >= 1 px, got {width}")
    s = int(width) / camera.width
    K = np.array(camera.K, dtype=np.float64)
    K[0, 0] *= s
    K[1, 1] *= s
    K[:2, 2] = s * (K[:2, 2] + 0.5) - 0.5
    return replace(camera, K=K, width=int(width), height=max(1, int(round(camera.height * s))))


class FrameRecorder:
    """A step listener that renders ``camera`` every ``stride`` physics steps (use with ``world.on_step``).

    ``frames``: the RGB frames (camera.height, camera.width, 3) uint8 taken so far;
    ``steps``: the physics steps seen; ``frame_steps``: the step after which each
    frame was taken (frame ``i`` shows the world after step ``(i + 1) * stride``).
    ``lighting``: the scene's, so the frames look like the observation.

    ``robot``: ``(body id, gripper link indices)`` (:attr:`graspsim.sim.scene.BuiltScene.robot_parts`)
    to render every frame with segmentation instead (:func:`graspsim.sim.camera.render`, one render per
    frame): ``robot_segs`` then holds each frame's (H, W) uint8 robot mask (0 none, 1 arm, 2 gripper)
    and ``depths`` its (H, W) float32 depth (metres along camera z), both of the same render as the
    frame. Without it (the default) only the colour image is rendered, which is cheaper.
    ``snapshot``: called once per frame, right after its render; its results go to ``snapshots``
    (e.g. the robot's joint angles at that frame).
    """

    def __init__(self, world: "SimWorld", camera: CameraModel, lighting: "Lighting", stride: int,
                 robot: tuple[int, tuple[int, ...]] | None = None, snapshot: Callable[[], Any] | None = None):
        from graspsim.sim.camera import render, render_rgb

        if stride < 1:
            raise ValueError(f"stride must be >= 1 physics step, got {stride}")
        self.world = world
        self.camera = camera
        self.lighting = lighting
        self.stride = int(stride)
        self.robot = robot
        self.snapshot = snapshot
        self.steps = 0
        self.frames: list[np.ndarray] = []
        self.frame_steps: list[int] = []
        self.robot_segs: list[np.ndarray] = []
        self.depths: list[np.ndarray] = []
        self.snapshots: list[Any] = []
        self._render, self._render_segmented = render_rgb, render

    def __call__(self) -> None:
        self.steps += 1
        if self.steps % self.stride:
            return
        if self.robot is None:
            self.frames.append(self._render(self.world, self.camera, self.lighting))
        else:
            frames = self._render_segmented(self.world, self.camera, self.lighting, None, self.robot)
            self.frames.append(frames.rgb)
            self.robot_segs.append(frames.robot_seg)
            self.depths.append(frames.depth_m)
        self.frame_steps.append(self.steps)
        if self.snapshot is not None:
            self.snapshots.append(self.snapshot())


def even_stride(steps: int, max_frames: int) -> int:
    """The stride that spreads ``steps`` physics steps over at most ``max_frames`` frames: ``ceil(steps /
    max_frames)``, at least 1. The frames taken, ``steps // stride``, are then between ``max_frames / 2`` and
    ``max_frames`` whenever ``steps >= max_frames`` (16-32 for 32)."""
    if max_frames < 1:
        raise ValueError(f"max_frames must be >= 1, got {max_frames}")
    return max(1, math.ceil(int(steps) / int(max_frames)))


_T = TypeVar("_T")


def record_evenly(world: "SimWorld", run: Callable[[], _T], recorder: Callable[[int], FrameRecorder],
                  max_frames: int) -> tuple[_T, FrameRecorder, int]:
    """Run ``run()`` (something that steps ``world``, e.g. one grasp attempt) recorded over at most
    ``max_frames`` evenly spaced frames; ``(its result, the recorder, its physics steps)``.

    The length of an attempt is known only afterwards (where the arm is blocked, how long the jaws take to
    close), so ``run`` goes twice: a dry run from the world as it is, counting its steps ``N``, then the world
    is put back (pybullet's ``saveState`` / ``restoreState``: bodies, joints, velocities and contacts) and the
    recorded run with ``stride = even_stride(N, max_frames)``: ``recorder(stride)`` makes the
    :class:`FrameRecorder`. Its result and the world afterwards are the second run's. Costs one more
    simulation of the attempt (no rendering): cheaper than rendering densely and throwing frames away.
    ``run`` must not add or remove bodies (restoreState needs the same bodies). With ``N == 0`` (nothing
    moved) there is no second run and no frame.
    """
    client = world.client
    state = client.saveState()
    counted = [0]

    def count() -> None:
        counted[0] += 1

    try:
        with world.on_step(count):
            result = run()
        if counted[0] == 0:
            return result, recorder(1), 0
        client.restoreState(state)
    finally:
        client.removeState(state)
    rec = recorder(even_stride(counted[0], max_frames))
    with world.on_step(rec):
        result = run()
    return result, rec, rec.steps


def hold_ends(frames: Sequence[np.ndarray], fps: float, seconds: float) -> list[np.ndarray]:
    """``frames`` with the first and the last repeated to show each at least ``seconds`` long at ``fps``.

    (In a GIF the repeats merge into one longer frame, so holding costs no size.)
    """
    frames = list(frames)
    if not frames:
        return frames
    extra = max(0, math.ceil(seconds * fps - 1e-9) - 1)
    return [frames[0]] * extra + frames + [frames[-1]] * extra


# --------------------------------------------------------------------------- writing


def _check_frames(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    frames = [np.asarray(f) for f in frames]
    if not frames:
        raise ValueError("a video needs at least one frame")
    shape = frames[0].shape
    for f in frames:
        if f.dtype != np.uint8 or f.ndim != 3 or f.shape[2] != 3 or f.shape != shape:
            raise ValueError(f"video frames must all be (H, W, 3) uint8 of one size; got {f.shape} {f.dtype} "
                             f"after {shape}")
    return frames


def gif_frame_ms(fps: float) -> int:
    """The GIF frame duration for ``fps``: whole centiseconds, at least 2 (GIF stores centiseconds)."""
    if not (math.isfinite(fps) and 0 < fps <= MAX_GIF_FPS):
        raise ValueError(f"a GIF plays at most {MAX_GIF_FPS:g} frames per second; got fps={fps!r}")
    return 10 * max(2, int(round(100.0 / fps)))


def gif_palette(frames: Sequence[np.ndarray]):
    """One 256-colour Pillow palette image for all ``frames`` (median cut of pixels sampled evenly from all)."""
    from PIL import Image

    frames = _check_frames(frames)
    h, w = frames[0].shape[:2]
    step = max(1, int(math.ceil(math.sqrt(len(frames) * h * w / _PALETTE_SAMPLE_PX))))
    sample = np.concatenate([f[::step, ::step] for f in frames], axis=0)
    return Image.fromarray(np.ascontiguousarray(sample)).quantize(256, method=Image.Quantize.MEDIANCUT)


def gif_quantize(frames: Sequence[np.ndarray]) -> list:
    """``frames`` as Pillow "P" images on one shared palette (:func:`gif_palette`), without dithering."""
    from PIL import Image

    frames = _check_frames(frames)
    palette = gif_palette(frames)
    return [Image.fromarray(np.ascontiguousarray(f)).quantize(palette=palette, dither=Image.Dither.NONE)
            for f in frames]


def encode_gif(frames: Sequence[np.ndarray], fps: float = DEFAULT_FPS) -> bytes:
    """An animated, endlessly looping GIF of ``frames`` at ``fps`` (:func:`gif_frame_ms` per frame).

    Consecutive frames that are identical after quantization are stored once with
    their durations added (Pillow does this), so the file may hold fewer frames
    than given; the total duration is always ``len(frames) * gif_frame_ms(fps)``.
    """
    images = gif_quantize(frames)
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=gif_frame_ms(fps),
                   loop=0, optimize=False)
    return buffer.getvalue()


def webp_frame_ms(fps: float) -> int:
    """The WebP frame duration for ``fps``, in whole milliseconds."""
    if not (math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps must be a positive number, got {fps!r}")
    return max(1, int(round(1000.0 / fps)))


def encode_webp(frames: Sequence[np.ndarray], fps: float = DEFAULT_FPS, quality: int = WEBP_QUALITY) -> bytes:
    """An animated, endlessly looping lossy WebP of ``frames`` at ``fps`` (:func:`webp_frame_ms` per frame).

    As for GIF, runs of identical frames may be stored once with their durations
    added; the total duration is ``len(frames) * webp_frame_ms(fps)``. The same
    frames always give the same bytes.
    """
    from PIL import Image

    images = [Image.fromarray(np.ascontiguousarray(f)) for f in _check_frames(frames)]
    buffer = io.BytesIO()
    # method 4: libwebp's default speed/size trade-off (6 is ~2x slower for a few per cent)
    images[0].save(buffer, format="WEBP", save_all=True, append_images=images[1:], duration=webp_frame_ms(fps),
                   loop=0, quality=int(quality), method=4)
    return buffer.getvalue()


def _write_mp4(path: Path, frames: list[np.ndarray], fps: float) -> str:
    import cv2

    from graspsim.sim.world import silence_native_output

    h, w = frames[0].shape[:2]
    for fourcc, name in _MP4_CODECS:
        # FFmpeg prints its failures (e.g. no H.264 encoder) to the C-level stderr: muted, the fallback follows.
        with silence_native_output():
            writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*fourcc), float(fps), (w, h))
        if writer.isOpened():
            break
        writer.release()
    else:
        raise OSError(f"OpenCV cannot write MP4 here (tried {', '.join(c for c, _ in _MP4_CODECS)}); use .gif")
    try:
        for frame in frames:
            writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    finally:
        writer.release()
    return f"MP4, {name} ({fourcc})"


def write_video(path: str | Path, frames: Sequence[np.ndarray], fps: float = DEFAULT_FPS) -> str:
    """Write ``frames`` (RGB (H, W, 3) uint8, all one size) to ``path`` at ``fps``; returns the format written.

    The suffix chooses the format (:data:`VIDEO_SUFFIXES`; :class:`VideoPathError`
    otherwise). Creates missing parent folders; writes to a temporary name first,
    so ``path`` is either the whole video or untouched. Returns e.g. ``"GIF"``,
    ``"WebP"`` or ``"MP4, MPEG-4 Part 2 (mp4v)"``.
    """
    path = check_video_path(path)
    frames = _check_frames(frames)
    suffix = path.suffix.lower()
    (gif_frame_ms if suffix == ".gif" else webp_frame_ms)(fps)  # checks fps before any work
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{suffix}")  # the suffix tells OpenCV the container
    try:
        if suffix == ".gif":
            tmp.write_bytes(encode_gif(frames, fps))
            kind = "GIF"
        elif suffix == ".webp":
            tmp.write_bytes(encode_webp(frames, fps))
            kind = "WebP"
        else:
            kind = _write_mp4(tmp, frames, fps)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return kind
