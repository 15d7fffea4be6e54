"""RobotSeg inference: an RGB image (and optionally a prompt, a previous frame's memory) in, robot masks out.

numpy in, numpy out; no training imports. Frames: ``rgb`` (H, W, 3) uint8 of any size; it is **letterboxed**
(:func:`letterbox`): scaled by ``s = S / max(H, W)`` (320x240 -> 256x192 at S = 256), placed at the top-left
of an S x S frame, the rest zero (black after normalisation to SAM's ImageNet mean / std). Prompt coordinates
are image pixels (x = column, y = row) and are mapped by the same scale. Masks come back at (H, W).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from graspsim.learn.device import from_numpy, module_device
from graspsim.policies.clip_sam.windows import SAM_MEAN, SAM_STD, normalise
from graspsim.policies.robotseg.config import OUTPUTS, RobotSegConfig, resolve_checkpoint
from graspsim.policies.robotseg.model import RobotSegNet
from graspsim.policies.robotseg.prompts import MaskPrompt


def letterbox(image: np.ndarray, size: int, interpolation: str = "linear") -> tuple[np.ndarray, float]:
    """``(S x S[ x C] array, scale)``: ``image`` (H, W[, C]) resized by ``scale = size / max(H, W)`` into the
    top-left corner of a zero S x S frame (``interpolation``: "linear" for pictures, "nearest" for labels)."""
    import cv2

    h, w = image.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    flag = cv2.INTER_AREA if interpolation == "linear" and scale < 1 else (
        cv2.INTER_LINEAR if interpolation == "linear" else cv2.INTER_NEAREST)
    small = cv2.resize(image, (nw, nh), interpolation=flag)
    out = np.zeros((size, size) + image.shape[2:], dtype=image.dtype)
    out[:nh, :nw] = small
    return out, scale


@dataclass
class RobotMasks:
    """``masks``: part (``arm``, ``gripper``, ``whole``) -> (H, W) bool; ``logits`` (3, S/4, S/4) float32 (the
    memory the next video frame takes); ``iou`` (3,) the decoder's predicted IoU per part; ``image_logits``
    (3, H, W) float32 the logits the masks are thresholded from (at 0), None where not kept; ``robot_logit`` (3,)
    per part the largest whole-robot logit of the decode that part was taken from (what the robot presence gate
    reads; the three are equal unless the video memory served some parts only)."""

    masks: dict[str, np.ndarray]
    logits: np.ndarray
    iou: np.ndarray
    image_logits: np.ndarray | None = None
    robot_logit: np.ndarray | None = None


def load_net(checkpoint: str | Path | None = None) -> tuple[RobotSegNet, dict[str, Any]]:
    """``(RobotSegNet in eval mode, metadata)`` of a checkpoint directory (None: the shipped one); sha256 checked."""
    from graspsim.learn.checkpoint import load_weights, read_metadata

    path = resolve_checkpoint(checkpoint)
    meta = read_metadata(path)
    net = RobotSegNet(RobotSegConfig.from_dict(meta["config"]))
    net.load_state_dict(load_weights(path, meta))
    return net.eval(), meta


#: The gripper zoom's window (:func:`zoom_window`): this many times the gripper's larger side, at least
#: ``ZOOM_MIN_SIDE`` pixels; the same range the training crops are drawn from (:func:`~.data.gripper_crop`).
ZOOM_CONTEXT = 3.0
ZOOM_MIN_SIDE = 40


def gripper_box(gripper: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x, y, w, h)`` pixels: the box of the largest connected component of an (H, W) bool gripper mask (stray
    pixels elsewhere must not widen a zoom window), None when the mask is empty."""
    import cv2

    if not gripper.any():
        return None
    n, labels, stats, _ = cv2.connectedComponentsWithStats(gripper.astype(np.uint8), connectivity=8)
    k = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    return tuple(int(stats[k, i]) for i in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP, cv2.CC_STAT_WIDTH,
                                             cv2.CC_STAT_HEIGHT))


def square_inside(cx: float, cy: float, side: float, height: int, width: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: a square of ``side`` pixels (at most the image's smaller side) centred on (cx, cy),
    shifted to lie inside a ``height`` x ``width`` image."""
    side = int(round(min(side, height, width)))
    x0 = int(round(min(max(cx - side / 2.0, 0), width - side)))
    y0 = int(round(min(max(cy - side / 2.0, 0), height - side)))
    return x0, y0, x0 + side, y0 + side


def window_around(box: tuple[float, float, float, float], height: int, width: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` (pixel edges) of the zoom window for a gripper box ``(x, y, w, h)`` pixels in a
    ``height`` x ``width`` image: centred on the box, ``ZOOM_CONTEXT`` times its larger side (at least
    ``ZOOM_MIN_SIDE``, at most the image's smaller side), shifted to lie inside."""
    x, y, w, h = box
    return square_inside(x + w / 2.0, y + h / 2.0, max(ZOOM_CONTEXT * max(w, h), ZOOM_MIN_SIDE), height, width)


def zoom_window(gripper: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(x0, y0, x1, y1)`` (pixel edges) of the square window the gripper zoom crops from an (H, W) bool first-pass
    gripper mask, or None when the mask is empty: :func:`window_around` the mask's :func:`gripper_box`."""
    box = gripper_box(gripper)
    return None if box is None else window_around(box, *gripper.shape)


#: Under a box prompt the zoomed gripper is cut to the box grown by this share of its width / height on each side
#: (the training boxes' own noise, up to 8 % of the sides): a box bounds the part it asks for.
PROMPT_BOX_MARGIN = 0.08


def _box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """IoU of two ``(x0, y0, x1, y1)`` boxes (pixel edges)."""
    w = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    h = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - w * h
    return float(w * h / union) if union > 0 else 0.0


def prompted_zoom_window(prompt: MaskPrompt, masks: dict[str, np.ndarray]) -> tuple[int, int, int, int] | None:
    """The gripper zoom's window ``(x0, y0, x1, y1)`` (pixel edges) under a prompt (image pixels), from the first
    pass's prompted masks (part -> (H, W) bool), or None (no zoom).

    * **box**: when the gripper is the part whose predicted mask's tight box fits the prompt's box best (IoU; a
      first pass that marks no robot part at all counts as that too), the box asks for the gripper and is taken as
      its box: the window :func:`window_around` it, as the zoom network's training crops are cut around the true
      gripper (a first pass's gripper box is often 2-3 times too wide on small grippers). Otherwise (a box on the
      arm or the whole robot) the window of the first pass's gripper pixels inside the box.
    * **clicks**: the window of the first pass's gripper components under a click; when no click lands on the
      gripper mask, of the whole gripper mask (as in automatic mode).
    """
    import cv2

    from graspsim.policies.robotseg.prompts import box as tight_box

    gripper = masks["gripper"]
    height, width = gripper.shape
    if prompt.box is not None:
        x0, y0, x1, y1 = (float(v) for v in prompt.box)
        boxes = {part: tight_box(mask) for part, mask in masks.items()}
        fits = {part: 0.0 if b is None else _box_iou(b, np.asarray(prompt.box)) for part, b in boxes.items()}
        if max(fits.values()) == 0.0 or max(fits, key=fits.get) == "gripper":
            return window_around((x0, y0, x1 - x0, y1 - y0), height, width)
        return zoom_window(cut_to_box(gripper, prompt.box, margin=0.0))
    if not gripper.any():
        return None
    _, labels = cv2.connectedComponents(gripper.astype(np.uint8), connectivity=8)
    rows = np.clip(np.round(prompt.points[:, 1]).astype(int), 0, height - 1)
    cols = np.clip(np.round(prompt.points[:, 0]).astype(int), 0, width - 1)
    hit = [k for k in np.unique(labels[rows, cols]) if k > 0]
    return zoom_window(np.isin(labels, hit) if hit else gripper)


def cut_to_box(mask: np.ndarray, box: np.ndarray, margin: float = PROMPT_BOX_MARGIN) -> np.ndarray:
    """(H, W) bool: ``mask`` with every pixel outside ``box`` ``(x0, y0, x1, y1)`` (pixel edges), grown by
    ``margin`` times its width / height on each side, cleared."""
    x0, y0, x1, y1 = (float(v) for v in box)
    gx, gy = margin * (x1 - x0), margin * (y1 - y0)
    out = np.zeros_like(mask)
    r0, r1 = max(0, int(np.floor(y0 - gy))), min(mask.shape[0], int(np.ceil(y1 + gy)))
    c0, c1 = max(0, int(np.floor(x0 - gx))), min(mask.shape[1], int(np.ceil(x1 + gx)))
    out[r0:r1, c0:c1] = mask[r0:r1, c0:c1]
    return out


def predictor_for(checkpoint: str | Path | None = None) -> tuple["RobotSegPredictor", dict[str, Any]]:
    """``(RobotSegPredictor, metadata)`` of a checkpoint (None: the shipped one), with the gripper zoom on when
    the checkpoint was trained for it (metadata ``gripper_zoom`` > 0) and the memory gate on when its IoU head
    was trained (metadata ``iou_head``) unless the metadata's ``memory_gate`` says otherwise (a setting chosen on
    validation, e.g. after the memory encoder was trained further); the zoom presence logit is the zoom network's
    own (its metadata ``zoom_presence_logit``: a threshold on that network's logits, gone when another network is
    attached); the parts the video memory serves are the metadata's ``memory_parts`` (all three without one)."""
    from graspsim.policies.robotseg.config import resolve_checkpoint

    net, meta = load_net(checkpoint)
    zoom_net, zoom_meta = None, {}
    if meta.get("zoom_net"):  # a subdirectory of the checkpoint: the network of the zoom pass (--zoom-only)
        zoom_net, zoom_meta = load_net(resolve_checkpoint(checkpoint) / meta["zoom_net"])
    return RobotSegPredictor(net, gripper_zoom=float(meta.get("gripper_zoom") or 0) > 0 or zoom_net is not None,
                             memory_gate=bool(meta.get("memory_gate", meta.get("iou_head"))), zoom_net=zoom_net,
                             zoom_fallback=meta.get("zoom_fallback_logit"),
                             zoom_presence=zoom_meta.get("zoom_presence_logit"),
                             robot_presence=meta.get("robot_presence_logit"),
                             memory_parts=tuple(meta.get("memory_parts") or OUTPUTS)), meta


def memory_parts_of(parts) -> tuple[str, ...]:
    """The parts the video memory may serve (:class:`RobotSegPredictor`'s ``memory_parts``), in :data:`OUTPUTS`
    order; ValueError naming any that is not arm, gripper or whole."""
    unknown = sorted(set(parts) - set(OUTPUTS))
    if unknown:
        raise ValueError(f"memory_parts: {', '.join(unknown)} not among {', '.join(OUTPUTS)}")
    return tuple(p for p in OUTPUTS if p in parts)


class RobotSegPredictor:
    """Robot masks of one image (:meth:`predict`) or a video (:meth:`predict_video`) with a :class:`RobotSegNet`.

    ``gripper_zoom``: in automatic mode, a second pass on a square crop around the first pass's gripper
    (:func:`zoom_window`, letterboxed to the full input) replaces the gripper mask inside that window; why: the
    gripper covers ~0.5 % of a picture, a few input pixels across at S = 256. Only for checkpoints trained with
    zoomed crops (``--gripper-zoom``; :func:`predictor_for` reads it from the metadata). ``zoom_net``: a second
    network for that pass alone, trained on gripper crops only (``graspsim train robotseg --zoom-only``); None:
    ``net`` itself. Why a second one: crops in the first network's training cost it on the videos (a fifth stage
    with more crops: gripper J up, video J&F down), while a network that only ever sees gripper crops changes
    nothing but the gripper.

    ``prompt_zoom`` (with ``gripper_zoom``): with a click or box prompt too, the zoom pass runs, its window steered
    by the prompt (:func:`prompted_zoom_window`: a box on the gripper is the gripper's box); under a box prompt the
    gripper is then cut to the box grown by ``box_margin`` of its sides (:func:`cut_to_box`; None: not cut). Why: a
    prompt says where the part is, and without the zoom a prompted gripper came out below the automatic one.

    ``zoom_fallback``: a logit below 0; when the first pass's gripper mask is empty, the zoom window is taken from
    its gripper logits above this instead (None: no window, no gripper). Why: a gripper of a few dozen pixels is
    often seen only faintly by the first pass, and a zoom network trained on the first pass's own windows
    (``--first-pass-crops``) decides for itself whether a window holds a gripper. From the checkpoint's metadata
    (``zoom_fallback_logit``).

    ``zoom_presence``: a logit; when the zoom network's largest gripper logit in its window is below it, the
    window holds no gripper and the gripper mask is left empty (None: whatever the zoom marks). Why: the first
    pass marks a gripper on most views where none is visible (a hand behind a shelf board, the wrist), the zoom
    network then finds one faintly, and a gripper claimed where there is none scores J 0 on that view; windows
    that do hold a gripper almost always reach a higher logit. From the zoom network's metadata
    (``zoom_presence_logit``, :func:`predictor_for`). ``box_zoom_presence``: whether the gate also applies under a
    box prompt (default not: a box says where the gripper is, and with the gate off there the box-prompted gripper
    J rose on validation renders, 0.704 -> 0.720 on the seen robots; rule 25b, README); clicks keep it.

    ``robot_presence``: a logit; in automatic mode, when the largest whole-robot logit of the frame is below it,
    no robot is in view and all three masks are left empty (no zoom pass then; None: whatever the network marks).
    Why: a robot out of view (the KUKA starting upright above the scene camera, an arm returned between attempts)
    is a frame where any marked pixel is wrong (J = 0 against an empty truth, and product pixels lost to the pick
    loop's exclusion), and the network marks a few dozen faint pixels there while even a sliver of a visible robot
    reaches a far higher logit. The memory the next frame takes is unchanged (the network's own logits). With a
    memory that serves some parts only (``memory_parts``), each part is judged by the decode it was taken from
    (:attr:`RobotMasks.robot_logit`), so a part the memory does not serve is exactly its image-mode mask. From the
    checkpoint's metadata (``robot_presence_logit``, :func:`predictor_for`).

    ``memory_gate``: with a memory, the frame is decoded twice from one encoding, alone and with the memory, and
    each part is taken from the decode whose predicted IoU (the decoder's IoU head) is higher; the logits the
    next frame remembers are the ones decoded alone. Why: a memory that is the previous frame's prediction
    carries its errors, and one that carried the previous *remembered* prediction fed them back frame after
    frame (``--self-memory`` trains on the network's memoryless prediction as memory: the same thing). Only for
    checkpoints whose IoU head was trained (``--iou-loss`` / ``--trainable iou``; metadata ``iou_head``), unless
    their metadata's ``memory_gate`` is false.

    ``memory_parts``: the parts (of arm, gripper, whole) the memory may serve; the others are always taken from the
    decode alone, so their masks (and the gripper zoom's window) are exactly what the frame gives in image mode.
    Why: on validation videos the memory helped the whole robot and cost the arm and the gripper a little (rule
    26, README). From the checkpoint's metadata (``memory_parts``; all three without one).
    """

    def __init__(self, net: RobotSegNet, gripper_zoom: bool = False, memory_gate: bool = False,
                 zoom_net: RobotSegNet | None = None, zoom_fallback: float | None = None,
                 zoom_presence: float | None = None, robot_presence: float | None = None,
                 prompt_zoom: bool = True, box_margin: float | None = PROMPT_BOX_MARGIN,
                 box_zoom_presence: bool = False, memory_parts: tuple[str, ...] = OUTPUTS):
        self.net = net.eval()
        self.size = int(net.image_size)
        self.gripper_zoom = bool(gripper_zoom)
        self.prompt_zoom = bool(prompt_zoom)
        self.box_margin = None if box_margin is None else float(box_margin)
        self.memory_gate = bool(memory_gate)
        self.zoom_net = zoom_net
        self.zoom_fallback = None if zoom_fallback is None else float(zoom_fallback)
        self.zoom_presence = None if zoom_presence is None else float(zoom_presence)
        self.robot_presence = None if robot_presence is None else float(robot_presence)
        self.box_zoom_presence = bool(box_zoom_presence)
        self.memory_parts = memory_parts_of(memory_parts)
        self._zoom = self if zoom_net is None else RobotSegPredictor(zoom_net)

    def settings(self) -> dict[str, Any]:
        """The inference settings (class docstring) as plain values, for the records of what was measured."""
        return {"gripper_zoom": self.gripper_zoom, "zoom_net": self.zoom_net is not None,
                "zoom_fallback": self.zoom_fallback, "zoom_presence": self.zoom_presence,
                "box_zoom_presence": self.box_zoom_presence,
                "robot_presence": self.robot_presence, "memory_gate": self.memory_gate,
                "memory_parts": list(self.memory_parts),
                "prompt_zoom": self.gripper_zoom and self.prompt_zoom,
                "box_margin": self.box_margin if (self.gripper_zoom and self.prompt_zoom) else None}

    def _pixels(self, rgb: np.ndarray) -> tuple[torch.Tensor, float]:
        boxed, scale = letterbox(np.asarray(rgb, dtype=np.uint8), self.size)
        return from_numpy(normalise(boxed, SAM_MEAN, SAM_STD), module_device(self.net))[None], scale

    @torch.no_grad()
    def encode(self, rgb: np.ndarray) -> tuple[Any, float, tuple[int, int]]:
        """The image encoder's output for ``rgb`` (reuse it for several prompts): ``(features, scale, (H, W))``."""
        pixels, scale = self._pixels(rgb)
        return self.net.image_features(pixels), scale, tuple(rgb.shape[:2])

    @torch.no_grad()
    def decode(self, encoded, prompt: MaskPrompt | None = None, memory: np.ndarray | None = None) -> RobotMasks:
        """Masks from :meth:`encode`'s output, a prompt in image pixels (None: automatic) and ``memory`` (the
        previous frame's :attr:`RobotMasks.logits`, or None)."""
        features, scale, (h, w) = encoded
        device = module_device(self.net)  # a network being trained on a GPU is validated there
        kw: dict[str, torch.Tensor] = {}
        if prompt is not None and len(prompt.points):
            points = (prompt.points + 0.5) * scale - 0.5
            kw["points"] = torch.as_tensor(points, dtype=torch.float32, device=device)[None]
            kw["labels"] = torch.as_tensor(prompt.labels, dtype=torch.long, device=device)[None]
        if prompt is not None and prompt.box is not None:
            box = np.asarray(prompt.box) * scale - 0.5
            kw["boxes"] = torch.as_tensor(box, dtype=torch.float32, device=device)[None]
        if memory is not None:
            kw["memory"] = torch.as_tensor(memory, dtype=torch.float32, device=device)[None]
        out = self.net.decode(features, **kw)
        logits = out["logits"]
        full = out["fine"] if "fine" in out else F.interpolate(logits, size=(self.size, self.size), mode="bilinear",
                                                               align_corners=False)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        image_logits = F.interpolate(full[:, :, :nh, :nw], size=(h, w), mode="bilinear", align_corners=False)[0].cpu()
        masks = {part: (image_logits[i] > 0).numpy() for i, part in enumerate(OUTPUTS)}
        image_logits = image_logits.numpy()
        robot = np.full(len(OUTPUTS), image_logits[OUTPUTS.index("whole")].max(), dtype=np.float32)
        return RobotMasks(masks, logits[0].cpu().numpy().astype(np.float32), out["iou"][0].cpu().numpy(),
                          image_logits, robot)

    def gated(self, encoded, prompt: MaskPrompt | None, memory: np.ndarray) -> RobotMasks:
        """The class docstring's memory gate: per part the decode (alone / with ``memory``) whose predicted IoU is
        higher (without the gate: the remembered one), of the ``memory_parts`` only; ``logits`` are those decoded
        alone, ``iou`` the chosen decodes'."""
        alone = self.decode(encoded, prompt)
        remembered = self.decode(encoded, prompt, memory)
        take = np.array([part in self.memory_parts for part in OUTPUTS])
        if self.memory_gate:
            take &= remembered.iou > alone.iou
        masks = {part: (remembered if take[i] else alone).masks[part] for i, part in enumerate(OUTPUTS)}
        image_logits = np.stack([(remembered if take[i] else alone).image_logits[i] for i in range(len(OUTPUTS))])
        return RobotMasks(masks, alone.logits, np.where(take, remembered.iou, alone.iou).astype(np.float32),
                          image_logits, np.where(take, remembered.robot_logit, alone.robot_logit))

    def predict(self, rgb: np.ndarray, prompt: MaskPrompt | None = None,
                memory: np.ndarray | None = None, encoded=None) -> RobotMasks:
        """Robot masks of ``rgb`` (H, W, 3) uint8; see :meth:`decode` (and the class docstring's robot presence,
        automatic mode only, gripper zoom, with a prompt too where ``prompt_zoom``, and memory gate; the memory
        the next frame takes stays the first pass's). ``encoded``: :meth:`encode`'s output for ``rgb``, when
        already at hand (several prompts on one picture)."""
        encoded = self.encode(rgb) if encoded is None else encoded
        some_parts = len(self.memory_parts) < len(OUTPUTS)
        out = (self.gated(encoded, prompt, memory) if (memory is not None and (self.memory_gate or some_parts))
               else self.decode(encoded, prompt, memory))
        if prompt is None and self.robot_presence is not None:  # per part: the decode it came from says
            absent = [part for i, part in enumerate(OUTPUTS) if out.robot_logit[i] < self.robot_presence]
            out.masks = {part: np.zeros_like(m) if part in absent else m for part, m in out.masks.items()}
            if "gripper" in absent:
                return out
        if self.gripper_zoom and prompt is None:
            window = zoom_window(out.masks["gripper"])
            if window is None and self.zoom_fallback is not None:  # a gripper too faint to pass 0: let the zoom see
                window = zoom_window(out.image_logits[1] > self.zoom_fallback)
        elif self.gripper_zoom and self.prompt_zoom:
            window = prompted_zoom_window(prompt, out.masks)
        else:
            window = None
        boxed = prompt is not None and prompt.box is not None
        if window is not None:
            x0, y0, x1, y1 = window
            gripper = np.zeros_like(out.masks["gripper"])
            gripper[y0:y1, x0:x1] = self.zoomed_gripper(np.asarray(rgb)[y0:y1, x0:x1],
                                                        gate=self.box_zoom_presence or not boxed)
            out.masks["gripper"] = gripper
        if window is not None and boxed and self.box_margin is not None:
            out.masks["gripper"] = cut_to_box(out.masks["gripper"], prompt.box, self.box_margin)
        return out

    def zoomed_gripper(self, crop: np.ndarray, gate: bool = True) -> np.ndarray:
        """The gripper zoom's second pass: the (h, w) bool gripper mask of ``crop`` (h, w, 3), a window of a frame
        (:func:`zoom_window`), by ``zoom_net`` when there is one; with ``gate``, empty when its largest gripper logit
        is below ``zoom_presence`` (the class docstring)."""
        out = self._zoom.decode(self._zoom.encode(np.ascontiguousarray(crop)))
        if gate and self.zoom_presence is not None and out.image_logits[1].max() < self.zoom_presence:
            return np.zeros_like(out.masks["gripper"])
        return out.masks["gripper"]

    def predict_video(self, frames: np.ndarray, first_prompt: MaskPrompt | None = None,
                      use_memory: bool = True) -> list[RobotMasks]:
        """Masks of each of the (T, H, W, 3) frames in order; frame t > 0 takes frame t-1's logits as memory
        (``use_memory=False``: each frame alone). ``first_prompt`` is given on frame 0 only (as VOS protocols
        prompt the first frame); later frames run automatically with the memory."""
        out: list[RobotMasks] = []
        for t, rgb in enumerate(frames):
            memory = out[-1].logits if (use_memory and out) else None
            out.append(self.predict(rgb, first_prompt if t == 0 else None, memory))
        return out
