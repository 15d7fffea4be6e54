"""Sample attempts of a run and replay them to show what the policy saw, chose and did.

Every attempt depends only on its scene seed, so rebuilding the run's
environment and policy (:class:`graspsim.bench.runner.EpisodeRunner`) and
calling ``decide(scene_seed)`` reproduces the observation and the policy's
decision. With animations on (the default) the replay then executes the grasp
with the environment recording (``render_mode="rgb_array_list"``, which does
not change the physics), and the frames become an animated WebP (a third of
the GIF's size; see :mod:`graspsim.video` for what plays where): the camera
image with the grasp drawn, held 0.5 s, the attempt in real time, the last
frame held 0.5 s. The replayed outcome is compared with the recorded row (the
caption always shows the recorded one). Replaying costs one scene build, one
render, one policy call and, animated, one attempt plus one small render per
frame (about a second per attempt here), so a report replays only the few
attempts it shows.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import replace
from typing import Any, Iterable

import numpy as np

from graspsim.bench.compare import RunData, _renderer
from graspsim.bench.summary import UNKNOWN

THUMB_WIDTH = 320
#: Width (px) of the attempt animations (larger than the stills); 0: no animation, no execution.
ANIMATION_WIDTH = 400
#: Frames per simulated second of the animations: their size and the replay's time (one render per
#: frame) grow with it. 8 fps: an arm attempt is ~20 frames, ~80 KB.
ANIMATION_FPS = 8.0
#: The animations' MIME type (:func:`graspsim.video.encode_webp`).
ANIMATION_TYPE = "image/webp"
MASK_COLOUR = (0, 255, 0)


def sample_attempts(run: RunData, per_class: int = 2) -> list[dict]:
    """Up to ``per_class`` rows of ``run`` per target class, successes and failures alternating.

    For each class (sorted by name) the candidates are taken in the order:
    first success, first failure, second success, second failure, ... where
    "first" means lowest ``episode_id``; when one kind runs out the other fills
    the remaining places. So ``per_class=2`` gives one success and one failure
    where the class has both. Returns the row dicts themselves (not copies),
    grouped by class.
    """
    if per_class < 0:
        raise ValueError(f"per_class must be >= 0, got {per_class}")
    by_class: dict[str, tuple[list[dict], list[dict]]] = {}
    # Clear-the-scene runs: first attempts only; a later attempt's scene depends on the earlier attempts, and
    # the replay (EpisodeRunner.decide) rebuilds the scene as it was before the first.
    first = (r for r in run.rows if r.get("attempt", 0) == 0)
    for row in sorted(first, key=lambda r: int(r["episode_id"])):
        cls = row.get("target_class") if isinstance(row.get("target_class"), str) else UNKNOWN
        wins, losses = by_class.setdefault(cls, ([], []))
        (wins if row.get("success") is True else losses).append(row)
    chosen = []
    for cls in sorted(by_class):
        wins, losses = by_class[cls]
        order = []
        for i in range(max(len(wins), len(losses))):
            order += wins[i:i + 1] + losses[i:i + 1]
        chosen += order[:per_class]
    return chosen


class AttemptReplayer:
    """One :class:`EpisodeRunner` for a run, reused for every attempt rendered (use as a context manager).

    ``animation_width``: px of the animations (at most the run's image width); 0 for none.
    """

    def __init__(self, run: RunData, thumb_width: int = THUMB_WIDTH, animation_width: int = ANIMATION_WIDTH,
                 animation_fps: float = ANIMATION_FPS):
        from graspsim.bench.runner import EpisodeRunner, RunSpec

        self.run_data = run
        self.thumb_width = int(thumb_width)
        self.animation_fps = float(animation_fps)
        recorded = RunSpec.from_config(run.config)
        self.animated = animation_width > 0
        if self.animated:  # the run's environment, recording (the physics stays the same)
            recorded = replace(recorded, env_overrides={
                **recorded.env_overrides, "render_mode": "rgb_array_list", "render_fps": self.animation_fps,
                "render_width": min(int(animation_width), recorded.width)})
        # Replay with the renderer the run actually used ("auto" resolves to egl or
        # tiny, and the two render slightly different images); "egl+tiny": several.
        used = _renderer(run)
        spec = replace(recorded, renderer=used) if recorded.renderer == "auto" and "+" not in used else recorded
        try:
            self.runner = EpisodeRunner(spec)
        except Exception as exc:  # e.g. the run used EGL and it does not load here
            if spec.renderer == run.config.get("renderer", "auto"):
                raise
            warnings.warn(f"replaying {run.run_dir} with renderer {run.config.get('renderer', 'auto')!r} "
                          f"instead of the recorded {spec.renderer!r} ({exc}); images may differ slightly",
                          stacklevel=2)
            self.runner = EpisodeRunner(recorded)

    def render(self, row: dict) -> dict:
        """See :func:`render_attempt`."""
        from graspsim.viz import draw_grasp

        obs, _info, output, error = self.runner.decide(int(row["scene_seed"]))
        rgb = np.asarray(obs["rgb"])
        # Drawn at full size, then scaled down to the thumbnail: ~1.5 px lines at 320 px.
        thickness = max(2, int(round(3 * rgb.shape[1] / 640)))
        replayed = output.rect if output is not None else None
        shown = replayed if replayed is not None else _rect_from_row(row)
        drawn = rgb
        if shown is not None and all(math.isfinite(v) for v in shown.as_array()):
            drawn = draw_grasp(rgb, shown, thickness=thickness)
        overlay, overlay_kind = None, None
        if output is not None and output.mask is not None:
            overlay, overlay_kind = mask_overlay(rgb, output.mask), "mask"
        elif output is not None and output.attention is not None:
            overlay, overlay_kind = attention_overlay(rgb, output.attention), "attention"
        return {
            "episode_id": int(row["episode_id"]),
            "scene_seed": int(row["scene_seed"]),
            "target_class": row.get("target_class"),
            "rgb": thumbnail(drawn, self.thumb_width),
            "mask_overlay": thumbnail(overlay, self.thumb_width) if overlay is not None else None,
            "overlay_kind": overlay_kind,
            "replayed_rect_matches": _rects_match(replayed, row.get("rect")),
            "policy_error": error.partition("\n")[0] if error else None,
            "outcome": {"success": row.get("success") is True, "reason": row.get("reason"),
                        "picked_class": row.get("picked_class")},
            **(self._animate(output, row) if self.animated else
               {"animation": None, "animation_size": None, "replayed_outcome_matches": None}),
        }

    def _animate(self, output, row: dict) -> dict:
        """Execute the decided grasp (as :meth:`EpisodeRunner.run` does) and encode the recorded frames."""
        from graspsim.video import HOLD_S, encode_webp, hold_ends

        env = self.runner.env
        action = output.rect.as_array() if output is not None else np.full(5, np.nan)
        _, _, _, _, info = env.step(action)
        fps = env.metadata["render_fps"]
        frames = hold_ends(env.render()[1:], fps, HOLD_S)  # [1:]: the video opens on the grasp drawn
        return {
            "animation": encode_webp(frames, fps),
            "animation_size": (frames[0].shape[1], frames[0].shape[0]),
            "replayed_outcome_matches": (info["success"] == (row.get("success") is True)
                                         and info["reason"] == row.get("reason")),
        }

    run = render  # the worker pool's job-runner interface (graspsim.pool.JobRunner)

    def close(self) -> None:
        self.runner.close()

    def __enter__(self) -> "AttemptReplayer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _rect_from_row(row: dict):
    from graspsim.types import GraspRect

    rect = row.get("rect")
    if not isinstance(rect, dict):
        return None
    try:
        values = [float(rect[k]) for k in ("x", "y", "w", "h", "theta")]
    except (KeyError, TypeError, ValueError):
        return None
    return GraspRect(*values)


def _rects_match(replayed, recorded: Any, tol: float = 1e-6) -> bool:
    """Whether the replayed decision equals the recorded ``rect`` (both None or NaN-filled count as equal)."""
    rec = None
    if isinstance(recorded, dict):
        try:
            rec = [recorded[k] for k in ("x", "y", "w", "h", "theta")]
        except KeyError:
            return False
    if replayed is None:
        # The policy raised now; the row then holds no rect or an all-null one (NaN action).
        return rec is None or all(v is None for v in rec)
    if rec is None:
        return False
    # NaN in the action is written as null.
    return all(not math.isfinite(a) if b is None else math.isfinite(a) and abs(a - float(b)) <= tol
               for a, b in zip(replayed.as_array(), rec))


def thumbnail(rgb: np.ndarray, width: int = THUMB_WIDTH) -> np.ndarray:
    """``rgb`` scaled down (area averaging) to ``width`` px wide, aspect kept; narrower images are kept as they are."""
    import cv2

    rgb = np.asarray(rgb)
    h, w = rgb.shape[:2]
    if w <= width:
        return rgb.copy()
    height = max(1, int(round(h * width / w)))
    return cv2.resize(rgb, (int(width), height), interpolation=cv2.INTER_AREA)


def mask_overlay(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """``rgb`` with ``mask`` tinted green and outlined (the outline keeps thin masks visible when scaled down)."""
    import cv2

    from graspsim.viz import overlay_mask

    mask = np.asarray(mask).astype(bool)
    out = overlay_mask(rgb, mask, MASK_COLOUR, alpha=0.45)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    cv2.drawContours(out, contours, -1, MASK_COLOUR, max(1, int(round(rgb.shape[1] / 320))))
    return out


def attention_overlay(rgb: np.ndarray, attention: np.ndarray) -> np.ndarray:
    """``rgb`` blended with a heat map (OpenCV JET) of ``attention`` (H, W in [0, 1]); weight grows with attention."""
    import cv2

    att = np.clip(np.nan_to_num(np.asarray(attention, dtype=np.float32)), 0.0, 1.0)
    if att.shape != rgb.shape[:2]:
        raise ValueError(f"attention shape {att.shape} does not match image shape {rgb.shape[:2]}")
    heat = cv2.cvtColor(cv2.applyColorMap((att * 255).astype(np.uint8), cv2.COLORMAP_JET), cv2.COLOR_BGR2RGB)
    alpha = (0.2 + 0.5 * att)[..., None]
    return np.clip(np.round((1 - alpha) * rgb + alpha * heat), 0, 255).astype(np.uint8)


def render_attempt(run: RunData, row: dict, runner: AttemptReplayer | None = None,
                   thumb_width: int = THUMB_WIDTH, animation_width: int = ANIMATION_WIDTH) -> dict:
    """Replay one attempt of ``run`` and draw it.

    Returns ``{"rgb": (H', W', 3) uint8 thumbnail of the observation with the
    policy's grasp drawn (viz.draw_grasp), "mask_overlay": thumbnail with the
    policy's mask (green) or, lacking one, its attention map (heat overlay), or
    None, "overlay_kind": "mask" | "attention" | None, "replayed_rect_matches":
    bool (the replayed rectangle equals ``row["rect"]`` within 1e-6),
    "policy_error": str | None, "outcome": {"success", "reason",
    "picked_class"} from the row, "episode_id", "scene_seed", "target_class",
    "animation": bytes of the replayed attempt as an animated WebP
    (:data:`ANIMATION_TYPE`; module docstring) or None, "animation_size": its
    (width, height) px or None,
    "replayed_outcome_matches": whether the replay ended as the row says
    (success and reason), None when not executed}``.
    Thumbnails are ``thumb_width`` (320) px wide at most; animations
    :data:`ANIMATION_WIDTH` (400) px, or the run's image width if narrower.

    Pass ``runner`` (an :class:`AttemptReplayer` of this run) when rendering
    several attempts: building one costs an environment and a policy. Without
    it a replayer is built and closed for this one call. Use
    :func:`render_attempts` for a list of rows.
    """
    if runner is not None:
        return runner.render(row)
    with AttemptReplayer(run, thumb_width, animation_width) as replayer:
        return replayer.render(row)


def render_attempts(run: RunData, rows: Iterable[dict], thumb_width: int = THUMB_WIDTH,
                    animation_width: int = ANIMATION_WIDTH, workers: int = 1) -> list[dict]:
    """:func:`render_attempt` for every row (in the order of ``rows``), with one runner per worker process for
    the whole run (``workers`` > 1: the shared pool, :func:`graspsim.pool.run_jobs`; each replay executes and
    records its attempt, a few seconds each)."""
    from graspsim.pool import run_jobs

    rows = list(rows)
    results = run_jobs(AttemptReplayer, (run, thumb_width, animation_width), [(row,) for row in rows], workers,
                       label=lambda job: f"gallery replay of episode {job[0].get('episode_id')}")
    by_episode = {item["episode_id"]: item for item in results}
    return [by_episode[int(row["episode_id"])] for row in rows]
