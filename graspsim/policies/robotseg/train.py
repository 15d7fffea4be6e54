"""``graspsim train robotseg``: RobotSeg's batches and step functions on the shared loop (:mod:`graspsim.learn`).

* **Data**: :class:`~.data.RobotBank` (views of the seen robots + Panda video frames; scene seeds divisible by
  10 validate).
* **Fully supervised batches** (:func:`supervised_batch`): one prompt mode per batch (SAM's prompt encoder
  takes one layout per batch): automatic 50 %, 1 click 15 %, 3 clicks 15 %, box 20 %; clicks are random
  pixels of one present part's mask (arm, gripper or whole), boxes its box grown or shrunk by up to 8 % per
  side. The targets are always all three masks. 40 % of batches carry a memory: for a video frame t > 0 the
  truth of frame t-1, otherwise this picture's truth moved and blurred (:func:`~.data.perturb_memory`).
  Pictures: views 70 %, video frames 30 % (when there are both). Colour augmentation and flips: :mod:`.data`.
* **Label-efficient batches** (:func:`label_efficient_batch`): a video's labelled frame ("frame 0": the first
  that shows the robot, :func:`~.data.labelled_frame`) and an unlabelled frame t, with the same colour draw.
  The loss (:func:`label_efficient_loss`), after the seed's first-frame training: supervised on frame 0;
  **cycle**: frame t is segmented with frame 0's truth as memory, then frame 0 again with that prediction as
  memory, scored against frame 0's truth (the gradient goes through frame t's prediction); **consistency**:
  frame t without memory is pulled towards frame t with memory (its detached sigmoid).
* **Loss**: per output channel BCE + Dice on the logits upsampled to S x S, and on the refinement head's S x S
  logits when the network has one (:func:`output_loss`).
* **Own memory** (``self_memory``): in memory batches a video frame t > 0 remembers the network's own (detached,
  memoryless) prediction for frame t-1 instead of its truth: at inference the memory is a prediction, with its
  errors, and a network trained on true memories copies them forward.
* **Gripper crops** (``gripper_zoom`` > 0): that share of the pictures showing a gripper become a crop around it
  (:func:`~.data.gripper_crop`), what the predictor's gripper zoom sees at inference.
* **Validation** each epoch: automatic-prompt J&F (whole), J (gripper) and J&F (arm) on up to ``val_items``
  held-out views through :class:`~.predictor.RobotSegPredictor` (the evaluation's code path).
* **Checkpoint**: ``model.safetensors`` (all weights, float32) + ``metadata.json`` (config, data, seed, command,
  history, metrics, parameter count).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from graspsim.learn.device import from_numpy, module_device
from graspsim.policies.clip_sam.windows import SAM_MEAN, SAM_STD, normalise
from graspsim.policies.robotseg.config import RobotSegConfig
from graspsim.policies.robotseg.data import (RobotBank, arm_crop, augment_colour, draw_colour, gripper_crop,
                                             mask_logits, perturb_memory, targets, window_crop)

MODE_PROBS = {"auto": 0.5, "1-click": 0.15, "3-click": 0.15, "box": 0.2}
MEMORY_PROB = 0.4
VIDEO_SHARE = 0.3
ZOOM_DRAWS = 200  # pictures tried for a gripper crop (--zoom-only) before the data is called unusable


def _random_clicks(mask: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    pick = rng.integers(len(xs), size=n)
    return np.stack([xs[pick], ys[pick]], axis=1).astype(np.float32)


def _noisy_box(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    ys, xs = np.nonzero(mask)
    x0, y0, x1, y1 = xs.min(), ys.min(), xs.max() + 1, ys.max() + 1
    w, h = x1 - x0, y1 - y0
    d = rng.uniform(-0.08, 0.08, size=4) * np.array([w, h, w, h])
    return np.array([x0 + d[0], y0 + d[1], x1 + d[2], y1 + d[3]], dtype=np.float32)


def _pick_picture(bank: RobotBank, labelled: list[int], rng: np.random.Generator) -> int:
    views = [i for i in labelled if bank.pictures[i].video is None]
    frames = [i for i in labelled if bank.pictures[i].video is not None]
    pool = frames if (frames and (not views or rng.random() < VIDEO_SHARE)) else views
    return pool[int(rng.integers(len(pool)))]


def supervised_batch(bank: RobotBank, batch_size: int, rng: np.random.Generator,
                     labelled: list[int] | None = None, gripper_zoom: float = 0.0,
                     self_memory: bool = False, scene_recolour: float = 0.0,
                     zoom_only: bool = False, arm_crops: float = 0.0, first_pass_crops: float = 0.0,
                     windows: list[tuple[int, tuple[int, int, int, int]]] | None = None,
                     empty_window_crops: float = 0.0,
                     empty_windows: list[tuple[int, tuple[int, int, int, int]]] | None = None,
                     memory_frames: bool = False) -> dict[str, Any]:
    """A fully supervised batch: ``pixels`` (B, 3, S, S), ``targets`` (B, 3, S, S), ``mode``, and as the mode and
    memory draw say ``points`` (B, N, 2) + ``labels`` (B, N), ``boxes`` (B, 4), ``memory`` (B, 3, S/4, S/4).
    ``gripper_zoom``: the share of pictures showing a gripper replaced by a crop around it
    (:func:`~.data.gripper_crop`; the bank must keep full pictures); their memory is their own truth perturbed.
    ``self_memory``: in a memory batch, a video frame t > 0 also brings frame t-1's pixels (same colour draw and
    flip) as ``prev_pixels`` (B, 3, S, S) with ``prev_rows`` (B,) bool: :func:`supervised_loss` replaces those
    rows' memory by the network's own prediction for frame t-1, what the memory is at inference.
    ``scene_recolour``: the share of pictures whose non-robot pixels are recoloured (:func:`~.data.draw_colour`).
    ``zoom_only``: every picture is a gripper crop (pictures without a visible gripper are drawn again), no prompt,
    no memory: what the predictor's zoom pass gives its network (``--zoom-only``); of them a share ``arm_crops``
    are crops around a random arm pixel instead (:func:`~.data.arm_crop`: windows that may hold no gripper), and a
    share ``first_pass_crops`` are a first pass's own zoom windows (``windows``: (picture index, window) pairs, from
    :func:`first_pass_windows`; :func:`~.data.window_crop`), whether or not they hold a gripper; of those a share
    ``empty_window_crops`` are drawn from ``empty_windows`` (the windows that hold no gripper pixel) alone.
    ``memory_frames``: what video inference after the first frame sees, alone: every picture a video frame t > 0,
    automatic prompt, always a memory (with ``self_memory`` the network's own prediction for frame t-1; no crops)."""
    labelled = bank.labelled() if labelled is None else labelled
    later = ([i for i in labelled if bank.pictures[i].video is not None and bank.pictures[i].t > 0]
             if memory_frames else [])
    if memory_frames and not later:
        raise ValueError("memory frames: the training data hold no video frame after a first one")
    if zoom_only:
        mode, with_memory = "auto", False
    elif memory_frames:
        mode, with_memory = "auto", True
    else:
        modes = list(MODE_PROBS)
        mode = modes[int(rng.choice(len(modes), p=np.array(list(MODE_PROBS.values()))))]
        with_memory = bool(rng.random() < MEMORY_PROB)
    low = bank.size // 4
    out: dict[str, list] = {"pixels": [], "targets": [], "points": [], "boxes": [], "memory": [], "prev": [],
                            "prev_rows": []}
    for _ in range(batch_size):
        pic = bank.pictures[later[int(rng.integers(len(later)))] if memory_frames
                            else _pick_picture(bank, labelled, rng)]
        while mode != "auto" and not pic.seg.any():  # nothing to click on (e.g. a frame with the arm out of view)
            pic = bank.pictures[_pick_picture(bank, labelled, rng)]
        seg, rgb, zoomed = pic.seg, pic.rgb, None
        if zoom_only and windows and rng.random() < first_pass_crops:
            pool = empty_windows if (empty_windows and rng.random() < empty_window_crops) else windows
            index, window = pool[int(rng.integers(len(pool)))]
            pic = bank.pictures[index]
            rgb, seg = zoomed = window_crop(pic.full_rgb, pic.full_seg, window, bank.size, rng)
        elif zoom_only:
            cut = arm_crop if (arm_crops > 0 and rng.random() < arm_crops) else gripper_crop
            for _ in range(ZOOM_DRAWS):
                zoomed = cut(pic.full_rgb, pic.full_seg, bank.size, rng)
                if zoomed is not None:
                    break
                pic = bank.pictures[_pick_picture(bank, labelled, rng)]
            if zoomed is None:
                raise ValueError(f"--zoom-only: no gripper crop in {ZOOM_DRAWS} pictures drawn: the training "
                                 "pictures hardly show a gripper")
            rgb, seg = zoomed
        elif gripper_zoom > 0 and not memory_frames and pic.full_seg is not None and rng.random() < gripper_zoom:
            zoomed = gripper_crop(pic.full_rgb, pic.full_seg, bank.size, rng)
            if zoomed is not None:
                rgb, seg = zoomed
        prev = None
        if with_memory:
            prev = bank.pictures[bank.videos[pic.video][pic.t - 1]] if (
                zoomed is None and pic.video is not None and pic.t > 0) else None
            memory = mask_logits(prev.seg, low) if prev is not None and prev.seg is not None else (
                perturb_memory(seg, low, rng))
        jitter = draw_colour(rng, scene_recolour)
        rgb = augment_colour(rgb, seg, jitter)
        prev_rgb = augment_colour(prev.rgb, prev.seg, jitter) if (self_memory and prev is not None) else None
        if rng.random() < 0.5:  # flip picture, labels and memory together
            rgb, seg = rgb[:, ::-1], seg[:, ::-1]
            if with_memory:
                memory = memory[:, :, ::-1]
            if prev_rgb is not None:
                prev_rgb = prev_rgb[:, ::-1]
        if self_memory and with_memory:
            out["prev_rows"].append(prev_rgb is not None)
            out["prev"].append(normalise(np.ascontiguousarray(prev_rgb if prev_rgb is not None else rgb),
                                         SAM_MEAN, SAM_STD))
        out["pixels"].append(normalise(np.ascontiguousarray(rgb), SAM_MEAN, SAM_STD))
        out["targets"].append(targets(seg))
        if with_memory:
            out["memory"].append(np.ascontiguousarray(memory))
        if mode != "auto":
            parts = [m for m in (seg == 1, seg == 2, seg > 0) if m.any()]
            part = parts[int(rng.integers(len(parts)))]
            if mode == "box":
                out["boxes"].append(_noisy_box(part, rng))
            else:
                out["points"].append(_random_clicks(part, 1 if mode == "1-click" else 3, rng))
    batch: dict[str, Any] = {"mode": mode, "pixels": np.stack(out["pixels"]), "targets": np.stack(out["targets"])}
    if with_memory:
        batch["memory"] = np.stack(out["memory"])
        if any(out["prev_rows"]):
            batch["prev_pixels"] = np.stack(out["prev"])
            batch["prev_rows"] = np.array(out["prev_rows"], dtype=bool)
    if out["boxes"]:
        batch["boxes"] = np.stack(out["boxes"])
    if out["points"]:
        batch["points"] = np.stack(out["points"])
        batch["labels"] = np.ones(batch["points"].shape[:2], dtype=np.int64)
    return batch


def mask_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """BCE + Dice (per sample and channel, smoothed by 1) of (B, 3, s, s) logits against (B, 3, S, S) targets
    (the logits upsampled to S first)."""
    up = F.interpolate(logits, size=target.shape[-2:], mode="bilinear", align_corners=False)
    bce = F.binary_cross_entropy_with_logits(up, target)
    p = torch.sigmoid(up)
    dice = 1.0 - (2 * (p * target).sum((-2, -1)) + 1.0) / (p.sum((-2, -1)) + target.sum((-2, -1)) + 1.0)
    return bce + dice.mean()


def output_loss(out: dict[str, torch.Tensor], target: torch.Tensor, channels: slice = slice(None)) -> torch.Tensor:
    """:func:`mask_loss` of the decoder's S/4 ``logits``, plus that of the refinement head's ``fine`` S x S logits
    when the network has one (the coarse masks stay supervised: they are the memory the next frame takes);
    ``channels``: of the (arm, gripper, whole) outputs, these only."""
    loss = mask_loss(out["logits"][:, channels], target[:, channels])
    if "fine" in out:
        loss = loss + mask_loss(out["fine"][:, channels], target[:, channels])
    return loss


def iou_loss(out: dict[str, torch.Tensor], target: torch.Tensor) -> torch.Tensor:
    """Mean squared error between the decoder's predicted IoU ``out["iou"]`` (B, 3) and the IoU its own masks
    reach against ``target`` (B, 3, S, S): the refinement head's S x S masks when there is one, else the upsampled
    S/4 ones, thresholded at 0; a part absent from both counts IoU 1 (as J scores it). Why: the predicted IoU
    gates the video memory (:meth:`~.predictor.RobotSegPredictor.predict_video`); untrained, it says nothing."""
    logits = out["fine"] if "fine" in out else F.interpolate(out["logits"], size=target.shape[-2:], mode="bilinear",
                                                             align_corners=False)
    with torch.no_grad():
        pred, truth = logits > 0, target > 0.5
        inter = (pred & truth).sum((-2, -1)).float()
        union = (pred | truth).sum((-2, -1)).float()
        reached = torch.where(union > 0, inter / union.clamp(min=1.0), torch.ones_like(union))
    return F.mse_loss(out["iou"], reached)


def _prompt_kwargs(batch: dict[str, Any], device) -> dict[str, torch.Tensor]:
    return {k: from_numpy(batch[k], device) for k in ("points", "labels", "boxes", "memory") if k in batch}


def supervised_loss(net, batch: dict[str, Any], iou_weight: float = 0.0, masks: bool = True,
                    gripper_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """:func:`output_loss` of a :func:`supervised_batch` (``masks`` False: left out, when only the IoU head
    trains) plus ``gripper_weight`` x the gripper output's alone plus ``iou_weight`` x :func:`iou_loss`; rows with
    ``prev_rows`` take the network's own (detached, memoryless) prediction for their previous frame as memory.
    The batch's arrays go where ``net`` is (the CPU or a GPU)."""
    device = module_device(net)
    kwargs = _prompt_kwargs(batch, device)
    if "prev_pixels" in batch:
        rows = from_numpy(batch["prev_rows"], device)
        with torch.no_grad():
            own = net(from_numpy(batch["prev_pixels"][batch["prev_rows"]], device))["logits"]
        memory = kwargs["memory"].clone()
        memory[rows] = own
        kwargs["memory"] = memory
    out = net(from_numpy(batch["pixels"], device), **kwargs)
    target = from_numpy(batch["targets"], device)
    parts: dict[str, torch.Tensor] = {}
    loss = torch.zeros((), device=device)
    if masks:
        loss = output_loss(out, target)
        parts["mask"] = loss.detach()
        if gripper_weight > 0:
            grip = output_loss(out, target, slice(1, 2))
            loss = loss + gripper_weight * grip
            parts["gripper"] = grip.detach()
    if iou_weight > 0:
        iou = iou_loss(out, target)
        loss = loss + iou_weight * iou
        parts["iou"] = iou.detach()
    return {"loss": loss, **parts}


def label_efficient_batch(bank: RobotBank, batch_size: int, rng: np.random.Generator) -> dict[str, Any]:
    """``first`` / ``later`` (B, 3, S, S) pixels of the labelled frame (:func:`~.data.labelled_frame`; "frame 0"
    below) and a random other frame t of B videos (same colour draw per pair), ``targets`` (B, 3, S, S) of the
    labelled frame, ``memory`` (B, 3, S/4, S/4) its truth as memory."""
    videos = [v for v in bank.videos if len(v) > 1]
    low = bank.size // 4
    first, later, tgt, mem = [], [], [], []
    for _ in range(batch_size):
        frames = videos[int(rng.integers(len(videos)))]
        k = next(j for j, i in enumerate(frames) if bank.pictures[i].seg is not None)
        others = frames[:k] + frames[k + 1:]
        p0, pt = bank.pictures[frames[k]], bank.pictures[others[int(rng.integers(len(others)))]]
        jitter = draw_colour(rng)
        seg0 = p0.seg
        a, b = augment_colour(p0.rgb, seg0, jitter), augment_colour(pt.rgb, None, jitter)
        if rng.random() < 0.5:
            a, b, seg0 = a[:, ::-1], b[:, ::-1], seg0[:, ::-1]
        first.append(normalise(np.ascontiguousarray(a), SAM_MEAN, SAM_STD))
        later.append(normalise(np.ascontiguousarray(b), SAM_MEAN, SAM_STD))
        tgt.append(targets(seg0))
        mem.append(mask_logits(np.ascontiguousarray(seg0), low))
    return {"mode": "label-efficient", "first": np.stack(first), "later": np.stack(later), "targets": np.stack(tgt),
            "memory": np.stack(mem)}


def label_efficient_loss(net, batch: dict[str, Any], cycle_weight: float = 1.0,
                         consistency_weight: float = 0.5) -> dict[str, torch.Tensor]:
    """Supervised (frame 0) + cycle (0 -> t -> 0 through the memory) + consistency (frame t with / without)."""
    device = module_device(net)
    target = from_numpy(batch["targets"], device)
    f0 = net.image_features(from_numpy(batch["first"], device))
    ft = net.image_features(from_numpy(batch["later"], device))
    sup = output_loss(net.decode(f0), target)
    forward = net.decode(ft, memory=from_numpy(batch["memory"], device))["logits"]
    back = net.decode(f0, memory=forward)["logits"]
    cycle = mask_loss(back, target)
    alone = net.decode(ft)["logits"]
    consistency = F.binary_cross_entropy_with_logits(alone, torch.sigmoid(forward).detach())
    loss = sup + cycle_weight * cycle + consistency_weight * consistency
    return {"loss": loss, "supervised": sup.detach(), "cycle": cycle.detach(), "consistency": consistency.detach()}


def first_pass_windows(first_pass, bank: RobotBank, indices: list[int]) -> list[tuple[int, tuple[int, int, int, int]]]:
    """``(picture index, (x0, y0, x1, y1))`` for each of ``indices`` (pictures kept at full resolution) whose
    automatic first-pass gripper mask, by the network ``first_pass``, gives a zoom window
    (:func:`~.predictor.zoom_window`, in the full picture's pixels): the windows the zoom pass is fed at
    inference, the gripper in them or not. Deterministic (the network in eval mode, no draw)."""
    from graspsim.policies.robotseg.predictor import RobotSegPredictor, zoom_window

    predictor = RobotSegPredictor(first_pass)
    out = []
    for i in indices:
        rgb = bank.pictures[i].full_rgb
        window = zoom_window(predictor.decode(predictor.encode(rgb)).masks["gripper"])
        if window is not None:
            out.append((i, window))
    return out


def validation_views(data_dirs: list[str | Path], n: int) -> list[dict]:
    """Up to ``n`` held-out views (scene seed divisible by 10) of the seen robots, evenly spaced, as read."""
    from graspsim.data.reader import held_out_every
    from graspsim.data.robot_views_format import check_robot_views, read_view

    views = []
    for d in data_dirs:
        _, dirs = check_robot_views(d)
        views += [v for v in dirs if held_out_every(int(v.parent.name.split("-")[-1]))]
    pick = np.unique(np.linspace(0, len(views) - 1, num=min(n, len(views))).round().astype(int)) if views else []
    out = [read_view(views[i]) for i in pick]
    return [v for v in out if v["meta"].get("split") != "unseen"]


def validate(net, views: list[dict], gripper_zoom: bool = False, zoom_net=None) -> dict[str, float | None]:
    """A training run's per-epoch validation: :func:`score_views` with ``net`` (the gripper zoom on when the run
    trains for it, by ``zoom_net`` when given), no gates."""
    from graspsim.policies.robotseg.predictor import RobotSegPredictor

    return score_views(RobotSegPredictor(net, gripper_zoom=gripper_zoom or zoom_net is not None, zoom_net=zoom_net),
                       views)


def score_views(pred, views: list[dict], mode: str = "auto") -> dict[str, float | None]:
    """Scores of a :class:`~.predictor.RobotSegPredictor` (with whatever zoom and gates it has) on ``views`` under
    the evaluation's protocol for prompt ``mode`` (:func:`~.evaluate.protocol_masks`): ``val_whole_jf``,
    ``val_arm_jf``, ``val_gripper_j`` (None without views), ``val_views``."""
    from graspsim.policies.robotseg.evaluate import protocol_masks
    from graspsim.policies.robotseg.metrics import boundary_f, part_masks, region_j

    if not views:
        return {"val_whole_jf": None, "val_arm_jf": None, "val_gripper_j": None, "val_views": 0}
    whole, arm, grip = [], [], []
    for v in views:
        gt = part_masks(v["robot_seg"])
        masks, _ = protocol_masks(pred, v["rgb"], gt, mode)
        whole.append((region_j(masks["whole"], gt["whole"]) + boundary_f(masks["whole"], gt["whole"])) / 2)
        arm.append((region_j(masks["arm"], gt["arm"]) + boundary_f(masks["arm"], gt["arm"])) / 2)
        grip.append(region_j(masks["gripper"], gt["gripper"]))
    return {"val_whole_jf": round(float(np.mean(whole)), 5), "val_arm_jf": round(float(np.mean(arm)), 5),
            "val_gripper_j": round(float(np.mean(grip)), 5), "val_views": len(views)}


def _set_share(settings: dict[str, Any], name: str, share: float) -> None:
    """Record a share of pictures (in [0, 1], else ValueError) in the run's ``settings`` only when > 0: runs
    started without the option keep the settings they were started with (the resume check compares them)."""
    if not 0.0 <= share <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {share}")
    if share > 0:
        settings[name] = float(share)


def train_robotseg(data_dirs: list[str | Path], out_dir: str | Path, *, config: RobotSegConfig | None = None,
                   label_efficient: bool = False, epochs: int = 10, steps_per_epoch: int = 100, batch_size: int = 8,
                   lr: float = 1e-3, seed: int = 0, val_items: int = 48, init: str | Path | None = None,
                   gripper_zoom: float = 0.0, self_memory: bool = False, scene_recolour: float = 0.0,
                   iou_loss_weight: float = 0.0, trainable: str = "all", zoom_only: bool = False,
                   gripper_weight: float = 0.0, arm_crops: float = 0.0, first_pass_crops: float = 0.0,
                   empty_window_crops: float = 0.0,
                   zoom_init: str | Path | None = None,
                   zoom_scratch: bool = False, resume: bool = False,
                   max_minutes: float | None = None, threads: int | None = None, progress: bool = True,
                   device: str = "cpu", command: str | None = None, log=print) -> dict[str, Any]:
    """Train RobotSeg from scratch into ``out_dir`` on :mod:`graspsim.learn.loop` (AdamW, weight decay 0.05,
    warm-up over 10 % of the steps (at most 100) then cosine to 5 %, grad norm clipped at 1); returns the
    metadata. ``init``: a robotseg checkpoint whose weights (and config) start the run instead of random ones
    (a second stage). ``gripper_zoom``: the share of pictures with a gripper trained as crops around it; the
    checkpoint then records it and its predictor runs the gripper zoom (:class:`~.predictor.RobotSegPredictor`).
    ``self_memory``: video frames in memory batches remember the network's own prediction for the previous
    frame instead of its truth (:func:`supervised_batch`). ``scene_recolour``: the share of pictures whose
    non-robot pixels get their own recolouring (:func:`~.data.draw_colour`). ``iou_loss_weight``: weight of
    :func:`iou_loss` (the decoder's predicted IoU learns the IoU its masks reach); ``trainable``: "all", or "iou":
    only the decoder's IoU head trains (needs ``init``; the masks stay the init's bit for bit, the loss is the
    IoU loss alone), after which video mode gates the memory by the predicted IoU (metadata ``iou_head``), or
    "memory": only the video memory's encoder trains (needs ``init`` and ``self_memory``; every batch is what video
    inference after the first frame sees, :func:`supervised_batch`'s ``memory_frames``; image mode stays the
    init's bit for bit).
    ``zoom_only``: train the network of the gripper zoom's pass alone (needs ``init``, the first pass, which starts
    it and stays frozen beside it for the validation): every picture a gripper crop, automatic, no memory
    (:func:`supervised_batch`); :func:`attach_zoom_net` then ships it beside that first pass. ``gripper_weight``:
    the gripper output's loss counted that much more (:func:`supervised_loss`). ``arm_crops``: with ``zoom_only``,
    the share of crops around a random arm pixel (:func:`supervised_batch`); ``first_pass_crops``: with
    ``zoom_only``, the share of crops at the frozen first pass's own zoom windows (:func:`first_pass_windows`,
    computed once when the run starts); ``empty_window_crops``: of those, the share drawn from the windows that
    hold no gripper pixel (why: a zoom network that sees them in their natural share, ~15 %, still marks a
    gripper in most of them); ``zoom_init``: a ``--zoom-only`` run whose weights (and config) start this one (a
    further stage of the zoom network; of the same first pass, or of an earlier one when the first pass was trained
    further: the zoom network carried over and adapted to the new first pass's windows);
    ``zoom_scratch``: the zoom network is a new one of ``config`` (its own input size and widths), from random
    weights, ``init`` only the frozen first pass its validation zooms behind (why: the zoom windows are ~40-240 px
    of the render, so a 256 px input mostly upsamples them; a 128 px input of a wider network sees the same pixels
    for about the same cost).
    ``device``: where the networks train and validate ("cpu", "cuda", "cuda:N": :mod:`graspsim.learn.device`; a
    volatile setting, so a run started on a GPU may be resumed on the CPU).
    Raises :class:`~graspsim.data.format.DatasetError` / ValueError for unusable data and
    :class:`~graspsim.runs.RunDirError` for a directory holding another run."""
    from graspsim.learn.loop import LoopConfig, train
    from graspsim.learn.schedule import warmup_cosine

    cfg = config or RobotSegConfig()
    if zoom_scratch and not zoom_only:
        raise ValueError("--zoom-scratch is an option of --zoom-only")
    if zoom_scratch and zoom_init is not None:
        raise ValueError("--zoom-scratch starts the zoom network from random weights: no --zoom-init")
    if init is not None:
        from graspsim.learn.checkpoint import read_metadata
        from graspsim.policies.robotseg.config import resolve_checkpoint

        init = str(resolve_checkpoint(init).resolve())
        if zoom_only and zoom_init is not None:  # a further stage of a zoom network: that network's config
            zoom_meta = read_metadata(Path(zoom_init))  # checked before its config is used
            if not zoom_meta.get("zoom_only"):
                raise ValueError(f"--zoom-init {zoom_init} is not a --zoom-only run")
            cfg = config_over_init(RobotSegConfig.from_dict(zoom_meta["config"]), config)
        elif not zoom_scratch:  # a stage of the init's network: its config, --config adding new parts only
            cfg = config_over_init(RobotSegConfig.from_dict(read_metadata(Path(init))["config"]), config)
    settings = {"kind": "robotseg", "data": [str(Path(d).resolve()) for d in data_dirs], "config": cfg.to_dict(),
                "label_efficient": bool(label_efficient), "steps_per_epoch": steps_per_epoch,
                "batch_size": batch_size, "val_items": val_items}
    if init is not None:  # only then: runs without one keep the settings they were started with (resume check)
        settings["init"] = init
    _set_share(settings, "gripper_zoom", gripper_zoom)
    if self_memory:  # likewise
        settings["self_memory"] = True
    _set_share(settings, "scene_recolour", scene_recolour)
    if trainable not in TRAINABLE:
        raise ValueError(f"trainable must be one of {', '.join(TRAINABLE)}, got {trainable!r}")
    if trainable in ("iou", "memory") and init is None:
        raise ValueError(f"trainable {trainable!r} trains a part of a trained network: give --init")
    if trainable == "memory" and (not self_memory or iou_loss_weight > 0 or gripper_zoom > 0 or label_efficient
                                  or zoom_only):
        raise ValueError("--trainable memory trains the memory encoder on what video inference gives it: it needs "
                         "--self-memory, and takes no --iou-loss, --gripper-zoom, --label-efficient or --zoom-only")
    if trainable == "iou" and iou_loss_weight <= 0:
        iou_loss_weight = 1.0  # the IoU head alone has no other loss
    if iou_loss_weight < 0:
        raise ValueError(f"iou_loss_weight must be >= 0, got {iou_loss_weight}")
    if trainable != "all":  # likewise
        settings["trainable"] = trainable
    if iou_loss_weight > 0:  # likewise
        settings["iou_loss"] = float(iou_loss_weight)
    if zoom_only:
        if init is None:
            raise ValueError("--zoom-only trains the zoom pass of a trained network: give --init (the first pass)")
        if label_efficient or self_memory or trainable != "all" or iou_loss_weight > 0 or gripper_zoom > 0:
            raise ValueError("--zoom-only trains on gripper crops alone: no --label-efficient, --self-memory, "
                             "--trainable iou, --iou-loss or --gripper-zoom with it")
        settings["zoom_only"] = True
        _set_share(settings, "arm_crops", arm_crops)
        _set_share(settings, "first_pass_crops", first_pass_crops)
        _set_share(settings, "empty_window_crops", empty_window_crops)
        if empty_window_crops > 0 and not first_pass_crops > 0:
            raise ValueError("--empty-window-crops is a share of the --first-pass-crops")
        if zoom_scratch:  # likewise
            settings["zoom_scratch"] = True
        if zoom_init is not None:  # checked where the config is resolved (above)
            settings["zoom_init"] = str(Path(zoom_init).resolve())
    elif arm_crops > 0 or first_pass_crops > 0 or empty_window_crops > 0 or zoom_init is not None:
        raise ValueError("--arm-crops, --first-pass-crops, --empty-window-crops and --zoom-init are options of "
                         "--zoom-only")
    if gripper_weight < 0:
        raise ValueError(f"gripper_weight must be >= 0, got {gripper_weight}")
    if gripper_weight > 0:  # likewise
        settings["gripper_weight"] = float(gripper_weight)
    loop = LoopConfig(epochs=epochs, lr=lr, seed=seed, weight_decay=0.05, grad_clip=1.0,
                      schedule=warmup_cosine(min(100, max(1, epochs * steps_per_epoch // 10))),
                      max_minutes=max_minutes, threads=threads, progress=progress, name="robotseg", device=device)

    def build():
        bank = RobotBank(data_dirs, "train", cfg.image_size, label_efficient, keep_full=gripper_zoom > 0 or zoom_only)
        if label_efficient and not any(len(v) > 1 for v in bank.videos):
            raise ValueError("the label-efficient variant needs videos of 2 frames or more")
        return _stack(cfg, settings, loop, bank, validation_views(data_dirs, val_items), command)

    return train(out_dir, settings, build, loop, resume, log)


#: What ``trainable`` may name: every weight, the mask decoder's IoU head alone, or the video memory's encoder alone.
TRAINABLE = ("all", "iou", "memory")
#: The IoU head's parameters (their names start so).
IOU_HEAD = "sam.mask_decoder.iou_prediction_head."
#: The memory encoder's parameters (likewise).
MEMORY_ENCODER = "memory_encoder."


#: Config fields that ``--config`` may set on top of an ``--init`` checkpoint: each adds a module that starts
#: fresh (zero-initialised output: the network first predicts what the checkpoint did).
NEW_WITH_INIT = ("part_head",)


def config_over_init(init_cfg: RobotSegConfig, config: RobotSegConfig | None) -> RobotSegConfig:
    """The config of a run started from a checkpoint of ``init_cfg``: ``config``'s fields that differ from the
    defaults replace the checkpoint's when they are in :data:`NEW_WITH_INIT` and the checkpoint has no such head (a
    fresh head added), ValueError for any other (the checkpoint's weights fix the rest of the network)."""
    if config is None:
        return init_cfg
    default, overrides = RobotSegConfig().to_dict(), config.to_dict()
    changed = {k: v for k, v in overrides.items() if v != default[k] and v != init_cfg.to_dict()[k]}
    # a head the checkpoint already has keeps its trained size
    refused = sorted(k for k in changed if k not in NEW_WITH_INIT or init_cfg.to_dict()[k])
    if refused:
        raise ValueError(f"with --init the checkpoint's config is kept; --config may only add "
                         f"{', '.join(NEW_WITH_INIT)}, not {', '.join(refused)}")
    return RobotSegConfig.from_dict({**init_cfg.to_dict(), **changed})


def _stack(cfg: RobotSegConfig, settings: dict, loop, bank: RobotBank, val_views: list[dict], command):
    import graspsim
    from graspsim.learn.checkpoint import save_weights
    from graspsim.learn.loop import Stack
    from graspsim.learn.sampling import RunStream
    from graspsim.policies.robotseg.model import RobotSegNet

    net = RobotSegNet(cfg)
    if settings.get("init") and not settings.get("zoom_scratch"):
        from graspsim.learn.checkpoint import load_weights

        start = settings.get("zoom_init") or settings["init"]  # a zoom stage starts from the zoom run before it
        missing, unexpected = net.load_state_dict(
            {k: v.float() for k, v in load_weights(Path(start)).items()}, strict=False)
        fresh = tuple(f"{name}." for name in NEW_WITH_INIT)
        if unexpected or any(not k.startswith(fresh) for k in missing):
            raise ValueError(f"the --init checkpoint does not fit this network: missing "
                             f"{[k for k in missing if not k.startswith(fresh)][:3]}, unexpected {unexpected[:3]}")
    labelled = bank.labelled()
    if not any(bank.pictures[i].seg.any() for i in labelled):
        raise ValueError("no labelled training picture shows any robot pixel")
    le = settings["label_efficient"]
    zoom = float(settings.get("gripper_zoom", 0.0))
    iou_weight, only_iou = float(settings.get("iou_loss", 0.0)), settings.get("trainable", "all") == "iou"
    zoom_only, gripper_weight = bool(settings.get("zoom_only")), float(settings.get("gripper_weight", 0.0))
    first_pass = None
    if zoom_only:  # the init, frozen: the first pass whose gripper windows the validation zooms into
        from graspsim.learn.device import resolve_device
        from graspsim.policies.robotseg.predictor import load_net

        first_pass, _ = load_net(settings["init"])
        first_pass.to(resolve_device(loop.device))  # the loop moves `net`; this one is the stack's own
    windows, empty_windows = None, None
    if settings.get("first_pass_crops"):
        windows = first_pass_windows(first_pass, bank, labelled)
        if not windows:
            raise ValueError("--first-pass-crops: the first pass finds a gripper in none of the training pictures")
        empty_windows = [(i, (x0, y0, x1, y1)) for i, (x0, y0, x1, y1) in windows
                         if not (bank.pictures[i].full_seg[y0:y1, x0:x1] == 2).any()]
    only_memory = settings.get("trainable", "all") == "memory"
    if only_iou or only_memory:
        for name, p in net.named_parameters():
            p.requires_grad_(name.startswith(IOU_HEAD if only_iou else MEMORY_ENCODER))

    def draw(rng: np.random.Generator):
        if le:
            return label_efficient_batch(bank, settings["batch_size"], rng)
        return supervised_batch(bank, settings["batch_size"], rng, labelled, zoom, settings.get("self_memory", False),
                                settings.get("scene_recolour", 0.0), zoom_only, settings.get("arm_crops", 0.0),
                                settings.get("first_pass_crops", 0.0), windows,
                                settings.get("empty_window_crops", 0.0), empty_windows, only_memory)

    def step(batch):
        if le:
            return label_efficient_loss(net, batch)
        return supervised_loss(net, batch, iou_weight, masks=not only_iou, gripper_weight=gripper_weight)

    def save(out: Path, progress) -> dict:
        save_weights(out, net.state_dict())
        last = progress.last
        return {"model": "robotseg", "graspsim_version": graspsim.__version__, "config": cfg.to_dict(),
                "init": settings.get("init"), "gripper_zoom": zoom, "self_memory": settings.get("self_memory", False),
                "scene_recolour": settings.get("scene_recolour", 0.0),
                "trainable": settings.get("trainable", "all"), "iou_loss": iou_weight,
                "iou_head": bool(iou_weight > 0), "zoom_only": zoom_only, "gripper_weight": gripper_weight,
                "arm_crops": settings.get("arm_crops", 0.0),
                "first_pass_crops": settings.get("first_pass_crops", 0.0),
                "first_pass_windows": None if windows is None else len(windows),
                "empty_window_crops": settings.get("empty_window_crops", 0.0),
                "empty_windows": None if empty_windows is None else len(empty_windows), "zoom_init": settings.get("zoom_init"),
                "zoom_scratch": bool(settings.get("zoom_scratch")),
                "label_efficient": le, "seed": loop.seed, "lr": loop.lr, "batch_size": settings["batch_size"],
                "steps_per_epoch": settings["steps_per_epoch"], "data": bank.sources,
                "train_pictures": len(bank), "labelled_pictures": len(labelled), "val_views": len(val_views),
                "parameters": net.parameter_count(), "command": command, "epochs": progress.epochs_done,
                "history": progress.history,
                "metrics": {k: v for k, v in last.items() if not k.startswith("train_") and k != "seconds"}}

    return Stack(model=net, sampler=RunStream(settings["steps_per_epoch"], loop.seed, draw), step=step,
                 validate=lambda: (validate(first_pass, val_views, zoom_net=net) if zoom_only
                                   else validate(net, val_views, gripper_zoom=zoom > 0)), save=save, devices=True)


def ship_checkpoint(src: str | Path, dst: str | Path | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Copy a finished run's checkpoint into the package as float16 weights (half the size; the predictor loads
    them into its float32 network) with the run's metadata plus ``shipped_from``, ``weights_dtype`` and ``extra``
    (e.g. ``{"stages": [...]}``: the earlier stage a run was ``--init``-ed from, whose path will not exist on a
    user's machine); ``dst`` None: the shipped location (:data:`~.config.SHIPPED`). Returns the metadata written."""
    from graspsim.learn.checkpoint import load_weights, read_metadata, save_weights, write_metadata
    from graspsim.policies.robotseg.config import SHIPPED

    src, dst = Path(src), Path(SHIPPED if dst is None else dst)
    meta = read_metadata(src)
    tensors = {k: (v.half() if v.is_floating_point() else v) for k, v in load_weights(src, meta).items()}
    dst.mkdir(parents=True, exist_ok=True)
    save_weights(dst, tensors)
    keep = {k: v for k, v in meta.items() if k != "sha256"}
    return write_metadata(dst, {**keep, "shipped_from": str(src.resolve()), "weights_dtype": "float16",
                                **(extra or {})})


def attach_zoom_net(src: str | Path, dst: str | Path | None = None, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """Ship a ``--zoom-only`` run (``src``) as the zoom pass's network of the checkpoint ``dst`` (None: the shipped
    one): float16 into ``dst/zoom`` (:func:`ship_checkpoint`, ``extra`` added to its metadata), and ``dst``'s
    metadata gains ``"zoom_net": "zoom"`` (its weights untouched). ValueError when ``src`` is not a zoom run or was
    not started from ``dst``'s weights (its validation zoomed into another first pass). Returns ``dst``'s metadata."""
    from graspsim.learn.checkpoint import load_weights, read_metadata, write_metadata
    from graspsim.policies.robotseg.config import SHIPPED

    src, dst = Path(src), Path(SHIPPED if dst is None else dst)
    zoom_meta, main_meta = read_metadata(src), read_metadata(dst)
    if not zoom_meta.get("zoom_only"):
        raise ValueError(f"{src} is not a --zoom-only run")
    first = {k: v.float() for k, v in load_weights(Path(zoom_meta["init"])).items()}
    shipped = {k: v.float() for k, v in load_weights(dst, main_meta).items()}
    if first.keys() != shipped.keys() or any(not torch.equal(first[k], shipped[k]) for k in first):
        raise ValueError(f"{src} was started from {zoom_meta['init']}, whose weights are not {dst}'s")
    ship_checkpoint(src, dst / "zoom", extra)
    keep = {k: v for k, v in main_meta.items() if k != "sha256"}
    return write_metadata(dst, {**keep, "zoom_net": "zoom"})
