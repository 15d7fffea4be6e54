"""``graspsim evaluate robot-masks``: J, F and J&F of robot masks per part, embodiment and split, and speed.

Protocol (one row per image or video frame, scored by :mod:`~.metrics` at the render's resolution):

* **auto**: RobotSeg's robot prompt generator alone, one pass gives arm, gripper and whole (plus the gripper
  zoom's second pass for a checkpoint trained with ``--gripper-zoom``).
* **1-click / 3-click / box**: for each part (arm, gripper, whole) its prompt is derived from that part's
  true mask (:mod:`~.prompts`: the most interior click(s), the tight box); the model's output for that part
  is scored (three decodes on one image encoding, each with the gripper zoom steered by its prompt where the
  checkpoint zooms: :func:`~.predictor.prompted_zoom_window`). A part with no visible pixel gets no prompt and an empty
  prediction (J = F = 1 on both sides, as DAVIS scores an empty pair; the same for the baseline).
* **--baseline sam**: the shipped product SAM (clip_sam's, :func:`~graspsim.policies.clip_sam.models.load_any_sam`)
  given the same prompts, through clip_sam's own windowing (:func:`~graspsim.policies.clip_sam.segment.
  segment_windows`: a box window 1.5x the box, a depth-sized window around the first click): how the
  shipped SAM segments anything in graspsim. It has no automatic mode and no memory.
* **--video**: each video's frames in order; RobotSeg carries the previous frame's masks as memory
  (:meth:`~.predictor.RobotSegPredictor.predict_video`); in a prompted mode frame 0 is prompted per part as
  above and the whole-prompt's three masks seed the memory, later frames run automatically. The same frames
  are also segmented one by one without memory (``frames_alone``): the image-mode figure on the same frames,
  the comparison the video memory has to win. The baseline, memoryless, is prompted on every frame from that
  frame's truth (generous to it). Aggregation: per sequence first (:func:`~.metrics.aggregate`).
* **frames per second**: pictures per second of wall time spent in the model (encoder + decoders, and the
  letterbox / upsampling), with ``threads`` torch threads; reading PNGs and scoring are not counted.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

from graspsim.policies.robotseg.config import OUTPUTS
from graspsim.policies.robotseg.metrics import aggregate, boundary_f, part_masks, region_j
from graspsim.policies.robotseg.prompts import MaskPrompt, derive_prompt


def score_masks(pred: dict[str, np.ndarray], gt: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """``{part: {"J", "F", "JF"}}`` of predicted against true (H, W) masks per part."""
    out = {}
    for part in OUTPUTS:
        j, f = region_j(pred[part], gt[part]), boundary_f(pred[part], gt[part])
        out[part] = {"J": j, "F": f, "JF": (j + f) / 2.0}
    return out


class _Timer:
    def __init__(self):
        self.seconds, self.pictures = 0.0, 0

    def __call__(self, fn: Callable, *args, **kw):
        t = time.perf_counter()
        out = fn(*args, **kw)
        self.seconds += time.perf_counter() - t
        return out

    @property
    def fps(self) -> float | None:
        return self.pictures / self.seconds if self.seconds > 0 else None


class RobotSegScorer:
    """RobotSeg's masks for one picture under a prompt mode (see the module docstring)."""

    def __init__(self, checkpoint=None):
        from graspsim.policies.robotseg.predictor import predictor_for

        self.predictor, self.meta = predictor_for(checkpoint)
        self.has_memory = self.predictor.net.memory_encoder is not None

    def image(self, rgb, gt, mode: str, item: dict, memory=None):
        """``(masks per part, logits to carry as memory)``: :func:`protocol_masks`."""
        return protocol_masks(self.predictor, rgb, gt, mode, memory)


def protocol_masks(predictor, rgb: np.ndarray, gt: dict[str, np.ndarray], mode: str,
                   memory: np.ndarray | None = None) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """The protocol's masks (module docstring) of a :class:`~.predictor.RobotSegPredictor` for one (H, W, 3)
    picture: ``(part -> (H, W) bool, logits to carry as memory)``. Automatic: one :meth:`predict`; prompted: per
    part its prompt from its true mask ``gt[part]`` and that part's output of :meth:`predict` (one encoding; the
    gripper zoom where the predictor zooms under prompts), an invisible part empty."""
    if mode == "auto":  # predict: the gripper zoom's second pass too, where the checkpoint has one
        out = predictor.predict(rgb, None, memory)
        return out.masks, out.logits
    enc = predictor.encode(rgb)
    masks, logits = {}, None
    for part in OUTPUTS:
        prompt = derive_prompt(gt[part], mode)
        if prompt is None:
            masks[part] = np.zeros_like(gt[part])
            continue
        out = predictor.predict(rgb, prompt, memory, encoded=enc)
        masks[part] = out.masks[part]
        if part == "whole" or logits is None:
            logits = out.logits
    if logits is None:  # nothing visible to prompt: let the next frame start from the automatic masks
        logits = predictor.decode(enc, None, memory).logits
    return masks, logits


class SamBaseline:
    """The shipped product SAM prompted per part with the same clicks / box (clip_sam's windowing)."""

    def __init__(self, sam_name=None):
        from graspsim.policies.clip_sam.models import load_any_sam

        self.sam = load_any_sam(sam_name)
        self.has_memory = False
        self.meta = {"model": "sam (clip_sam's shipped product SAM)" if sam_name is None else str(sam_name)}

    def image(self, rgb, gt, mode: str, item: dict, memory=None):
        from graspsim.policies.clip_sam.prompts import Prompt
        from graspsim.policies.clip_sam.segment import segment_windows

        masks = {}
        for part in OUTPUTS:
            p: MaskPrompt | None = derive_prompt(gt[part], mode)
            if p is None:
                masks[part] = np.zeros_like(gt[part])
                continue
            prompt = Prompt(mode, p.points, p.labels, p.box)
            masks[part] = segment_windows(self.sam, rgb, item["depth_m"], item["K"], [prompt])[0].mask
        return masks, None


def _spread(items: list, n: int | None) -> list:
    if n is None or n >= len(items):
        return items
    return [items[i] for i in np.unique(np.linspace(0, len(items) - 1, num=n).round().astype(int))]


def evaluate_robot_masks(data_dir: str | Path | list[str | Path], mode: str, *, video: bool = False, checkpoint=None,
                         baseline: str | None = None, max_items: int | None = None, threads: int | None = 2,
                         progress: bool = True) -> dict[str, Any]:
    """Score one robot-views dataset, or several pooled (a list: e.g. a shelf and a table test set; ``max_items``
    then applies to each). Returns ``{"model", "prompt", "video", "data", "suite", "by_embodiment", "by_split",
    "by_suite", "fps", "pictures", "rows"}`` (+ ``frames_alone_*`` with ``--video``); DatasetError for a
    directory that is not one, ValueError for a bad mode."""
    import torch
    from tqdm import tqdm

    from graspsim.data.robot_views_format import check_robot_videos, check_robot_views, read_video, read_view
    from graspsim.policies.robotseg.config import parse_prompt_mode

    mode = parse_prompt_mode(mode)
    if baseline not in (None, "sam"):
        raise ValueError(f"unknown baseline {baseline!r}; the one baseline is sam")
    if baseline == "sam" and mode == "auto":
        raise ValueError("the SAM baseline needs clicks or a box (prompt 1-click, 3-click or box)")
    data_dirs = list(data_dir) if isinstance(data_dir, (list, tuple)) else [data_dir]
    resolved = [Path(d).resolve() for d in data_dirs]
    twice = sorted({str(d) for d in resolved if resolved.count(d) > 1})
    if twice:
        raise ValueError(f"dataset given more than once: {', '.join(twice)}")
    work: list[tuple[str, Path]] = []  # (suite, item path), every dataset checked before anything is scored
    suites = []
    for d in data_dirs:
        manifest, items = (check_robot_videos if video else check_robot_views)(d)
        suite = str(manifest.get("suite") or Path(d).name)
        suites.append(suite)
        work += [(suite, path) for path in _spread(items, max_items)]
    if threads:
        torch.set_num_threads(int(threads))
    model = SamBaseline() if baseline == "sam" else RobotSegScorer(checkpoint)
    timer = _Timer()
    rows, alone = [], []
    for suite, path in tqdm(work, disable=not progress, unit="video" if video else "view", dynamic_ncols=True):
        if video:
            v = read_video(path)
            rows += _score_video(model, v, mode, timer, memory=True, suite=suite)
            if baseline is None:
                alone += _score_video(model, v, mode, _Timer(), memory=False, suite=suite)
        else:
            v = read_view(path)
            gt = part_masks(v["robot_seg"])
            masks, _ = timer(model.image, v["rgb"], gt, mode, v)
            timer.pictures += 1
            rows.append({"item": f"{suite}/{path.parent.name}/{path.name}", "suite": suite,
                         "embodiment": v["meta"]["embodiment"], "split": v["meta"]["split"],
                         "scores": score_masks(masks, gt)})
    seq = "item" if video else None
    result = {"model": model.meta.get("model", "robotseg") if baseline else "robotseg",
              "checkpoint": None if baseline else str(checkpoint or "shipped"), "baseline": baseline,
              "prompt": mode, "video": video, "data": [str(Path(d)) for d in data_dirs], "suite": suites,
              "by_embodiment": aggregate(rows, "embodiment", seq), "by_split": aggregate(rows, "split", seq),
              "by_suite": aggregate(rows, "suite", seq),
              "fps": None if timer.fps is None else round(timer.fps, 2), "threads": threads,
              "pictures": len(rows), "rows": rows}
    if baseline is None:  # the inference settings the figures were measured with (the checkpoint's own)
        result["inference"] = model.predictor.settings()
    if video and alone:
        result["frames_alone_by_split"] = aggregate(alone, "split", seq)
        result["frames_alone_by_embodiment"] = aggregate(alone, "embodiment", seq)
    return result


def _score_video(model, v: dict, mode: str, timer: _Timer, memory: bool, suite: str = "") -> list[dict]:
    """Rows of one video's frames (memory carried when ``memory`` and the model has one); the sequence key
    ``item`` names the suite, so pooled datasets with the same scene seeds keep their videos apart."""
    rows, logits = [], None
    name = Path(v["meta"].get("video_id", "video")).name
    item = f"{suite}/{v['meta']['scene_seed']}/{name}"
    for t in range(len(v["rgb"])):
        gt = part_masks(v["robot_seg"][t])
        frame = {"rgb": v["rgb"][t], "depth_m": v["depth_m"][t], "K": v["K"]}
        # memoryless models are prompted on every frame; RobotSeg on frame 0, then runs automatically
        frame_mode = mode if (t == 0 or not model.has_memory) else "auto"
        mem = logits if (memory and model.has_memory) else None
        masks, logits = timer(model.image, frame["rgb"], gt, frame_mode, frame, mem)
        timer.pictures += 1
        rows.append({"item": item, "suite": suite, "frame": t, "embodiment": v["meta"]["embodiment"], "split": v["meta"]["split"],
                     "scores": score_masks(masks, gt)})
    return rows


def format_table(result: dict[str, Any]) -> str:
    """A plain-text table: per embodiment and split, J / F / J&F of arm, gripper and whole; frames per second."""
    head = (f"{result['model']} prompt={result['prompt']} {'video' if result['video'] else 'image'} "
            f"data={','.join(result['data'])} pictures={result['pictures']} fps={result['fps']}")
    lines = [head, f"{'group':<12} {'n':>5} " + " ".join(f"{p + ' J/F/J&F':>22}" for p in OUTPUTS)]

    def add(groups: dict, prefix: str = ""):
        for name, g in groups.items():
            cells = " ".join(f"{g[p]['J']:6.3f} {g[p]['F']:6.3f} {g[p]['JF']:6.3f}".rjust(22) for p in OUTPUTS)
            lines.append(f"{prefix + name:<12} {g['images']:>5} {cells}")

    add({k: v for k, v in result["by_embodiment"].items() if k != "all"})
    add(result["by_split"])
    by_suite = {k: v for k, v in result.get("by_suite", {}).items() if k != "all"}
    if len(by_suite) > 1:
        add(by_suite)
    if "frames_alone_by_split" in result:
        lines.append("same frames without the video memory (image mode):")
        add(result["frames_alone_by_split"], "alone:")
    return "\n".join(lines)


MARKDOWN_HEADER = ("| prompt | split | pictures | whole J | whole F | whole J&F | arm J&F | gripper J | gripper J&F |\n"
                   "|---|---|---|---|---|---|---|---|---|")


def markdown_rows(result: dict[str, Any]) -> str:
    """The README's table rows of a result, one per split (seen, unseen, all), under :data:`MARKDOWN_HEADER`;
    a video result adds the same frames without memory (``alone``)."""
    video = result["video"]
    prompt = ("video " if video else "") + result["prompt"]
    unit = "frames" if video else "pictures"

    def row(label: str, split: str, g: dict) -> str:
        n = f"{g['images']} {unit}" + (f" / {g['sequences']} videos" if video else "")
        return (f"| {label} | {split} | {n} | {g['whole']['J']:.3f} | {g['whole']['F']:.3f} | "
                f"{g['whole']['JF']:.3f} | {g['arm']['JF']:.3f} | {g['gripper']['J']:.3f} | "
                f"{g['gripper']['JF']:.3f} |")

    lines = [row(prompt, split, g) for split, g in result["by_split"].items()]
    lines += [row(prompt + ", no memory", split, g) for split, g in result.get("frames_alone_by_split", {}).items()]
    return "\n".join(lines)
