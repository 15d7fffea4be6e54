"""The clip_sam perception pipeline: instruction + RGB-D -> attention -> SAM prompt -> product mask.

Stages (each timed, milliseconds in :attr:`PipelineResult.stage_ms`):

1. ``clip``: CLIP's attention map of the (part-steered) instruction on the
   whole frame, squashed to CLIP's input size: the dense patch-text
   similarity by default, or Grad-CAM / HiResCAM of the image-text score, the
   paper's map (``cam_method``; :mod:`.gradcam`). With ``zoom=True`` (default) a second
   attention pass runs on a square window around the first map's peak, sized
   from depth to :data:`~.windows.ZOOM_EXTENT_M` of physical space, and its
   map (pasted back into the frame) is the attention used for prompting: at
   224 px a whole 640x480 shelf gives 40 px patches, about one product each, too
   coarse to separate neighbouring facings; the zoom pass gives ~15 px patches.
2. ``prompt``: :func:`~.prompts.make_prompts` on the attention map (mode
   ``point`` / ``points`` / ``box`` / ``box+points``; negative points optional).
3. ``sam``: :func:`~.segment.segment_windows` (SAM on a window around the prompt);
   the mask is reduced to its connected component at the prompt.
4. ``verify``: stages 1-3 run for the ``n_candidates`` strongest peaks of the
   global map; CLIP classifies a crop around each candidate mask (prompt
   ensemble over the catalog's class names) and the mask most likely to be the
   instruction's product (the class whose text embedding is nearest the
   instruction's) is kept. With a shape prior (:mod:`.shape_prior`, stage
   ``shape``), CLIP's class probabilities are multiplied by the prior's, from
   the mask's 3-D shape, to the power ``shape_weight``: a label CLIP has never
   seen does not change a product's size.

The robot's pixels (``exclude``, (H, W) bool, :mod:`graspsim.policies.robot_mask`; None: nothing excluded) are
left out before any decision: the global and zoomed attention maps are zeroed there (so no peak, point or box
comes from the robot; at the peak search's 1/8 resolution a cell with any robot pixel counts as robot), and
every SAM mask loses them before its component at the prompt is kept. Attention proposes, SAM segments, CLIP checks: a
   wrong global peak (a similar-looking neighbour) costs a candidate, not the
   pick.

The instruction's text embedding comes from CLIP's text model, or from the
aligned all-MiniLM-L6-v2 sentence encoder (:mod:`.minilm`) when CLIP's
tokenizer does not know its words (``text_encoder="auto"``).

Works with the shipped sim-trained models and with real ones (any CLIPModel +
tokenizer, any SamModel, official ``.pth`` SAM checkpoints): see
:func:`~.policy.load_models`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from graspsim.masks import component_at, mask_box
from graspsim.policies.clip_sam.gradcam import clip_gradcam, part_steered_text, patch_size, upsample_cam
from graspsim.policies.clip_sam.minilm import has_unknown_words
from graspsim.policies.clip_sam.embed import class_text_embeddings, image_embeddings, text_embeddings
from graspsim.policies.clip_sam.prompts import Prompt, make_prompts, multi_points
from graspsim.policies.clip_sam.segment import WindowMask, segment_windows
from graspsim.policies.clip_sam.windows import (CLIP_MEAN, CLIP_STD, ZOOM_EXTENT_M, crop, crop_box, depth_window,
                                                normalise, paste, squash)
from graspsim.policies.robot_mask import exclude_robot, zero_on_robot


@dataclass
class PipelineResult:
    """``attention`` (H, W) float32 [0, 1]; ``prompt``; ``mask`` (H, W) bool; ``sam_score`` predicted IoU."""

    attention: np.ndarray
    prompt: Prompt
    mask: np.ndarray
    sam_score: float
    text: str
    stage_ms: dict[str, float] = field(default_factory=dict)
    candidate: int = 0
    n_candidates: int = 1
    target_prob: float = float("nan")


PEAK_STRIDE = 8  # global peaks are searched at 1/8 resolution
SWEEP_STRIDE_PX = 32  # grid of the point sweep (ClipSamPipeline.sweep): a shelf product is ~40-80 px wide at 640x480
SWEEP_BATCH = 8  # sweep points segmented per SAM call
TEXT_CACHE_SIZE = 512  # instructions whose embeddings are kept (a suite uses a few dozen)


@torch.no_grad()
def patch_similarity(model, pixel_values: torch.Tensor, text_embeds: torch.Tensor) -> np.ndarray:
    """Dense image-text similarity (MaskCLIP-style): cosine of every patch token, through CLIP's
    post-LayerNorm and visual projection, with the text embedding ``(1, P)``; ``(h, w)`` min-max scaled to [0, 1]."""
    _, patches = image_embeddings(model, pixel_values, with_patches=True)
    sims = (patches @ F.normalize(text_embeds, dim=-1).reshape(-1)).float().numpy()  # (B, N)
    ps = patch_size(model)
    out = []
    for sim in sims:
        sim = sim.reshape(pixel_values.shape[-2] // ps, pixel_values.shape[-1] // ps)
        lo, hi = float(sim.min()), float(sim.max())
        out.append(((sim - lo) / (hi - lo)).astype(np.float32) if hi > lo else np.zeros_like(sim, dtype=np.float32))
    return out[0] if pixel_values.shape[0] == 1 else out


@dataclass
class Candidate:
    """One attention hypothesis: ``attention`` (H, W) [0, 1] (the zoom map pasted into the frame, or the
    global map), the global ``peak_xy`` it came from and the zoom ``window`` (or None)."""

    attention: np.ndarray
    peak_xy: np.ndarray
    window: tuple[float, float, float] | None


class ClipSamPipeline:
    """CLIP attention -> prompts -> SAM (-> CLIP verification) on numpy images (the stages: module docstring).

    Models stay in eval mode and must not change while a pipeline holds them (instruction embeddings are
    cached). Without ``verify`` only the strongest attention peak is followed (the paper's single-pass pipeline).
    """

    def __init__(self, clip_model, tokenizer, sam_model, cam_layer: int = -1, zoom: bool = True,
                 zoom_extent_m: float = ZOOM_EXTENT_M, threshold: float = 0.5, k_points: int = 3,
                 n_negative: int = 0, n_candidates: int = 3, verify: bool = True, crop_size: int | None = None,
                 cam_method: str = "gradcam", aligned_text=None, text_encoder: str = "auto",
                 escalate_below: float = 0.5, box_refine: int = 0, shape_prior=None, shape_weight: float = 0.0,
                 sweep_max: int = 0, refine_chosen: bool = False):
        self.clip = clip_model.eval()
        self.tokenizer = tokenizer
        self.sam = sam_model.eval()
        # cam_method, text_encoder and box_refine are checked by ClipSamPolicyConfig (and text_encoder="minilm"
        # comes with aligned_text from policy._make_pipeline)
        self.cam_layer = int(cam_layer)
        self.cam_method = cam_method
        self.zoom = bool(zoom)
        self.zoom_extent_m = float(zoom_extent_m)
        self.threshold = float(threshold)
        self.k_points = int(k_points)
        self.n_negative = int(n_negative)
        self.n_candidates = max(1, int(n_candidates)) if verify else 1
        self.verify = bool(verify)
        self.escalate_below = float(escalate_below)
        self.box_refine = int(box_refine)
        # True: the box refinement runs on the verified candidate only, not on every candidate before verification
        self.refine_chosen = bool(refine_chosen)
        self.sweep_max = int(sweep_max) if verify else 0
        self.shape_prior = shape_prior  # a shape_prior.ShapePrior, or None
        self.shape_weight = float(shape_weight)
        self.clip_size = int(clip_model.config.vision_config.image_size)
        self.crop_size = int(crop_size or self.clip_size)
        self._class_text = None
        self.aligned_text = aligned_text
        self.text_encoder = text_encoder
        self.last_text_encoder = "clip"
        self._text_cache: dict[str, tuple[str, torch.Tensor]] = {}  # text -> (encoder, embedding): models are fixed

    def text_embedding(self, text: str) -> torch.Tensor:
        """(1, P) normalised embedding of ``text`` in CLIP's joint space: CLIP's text model, or the aligned
        MiniLM sentence encoder (``text_encoder="minilm"``, or ``"auto"`` when CLIP's tokenizer does not
        know a word of ``text`` and MiniLM is loaded)."""
        if text not in self._text_cache:  # a decision asks twice (attention, then the class to verify)
            use_minilm = self.aligned_text is not None and (
                self.text_encoder == "minilm"
                or (self.text_encoder == "auto" and has_unknown_words(self.tokenizer, text)))
            with torch.no_grad():
                emb = (self.aligned_text.embed([text]) if use_minilm
                       else text_embeddings(self.clip, self.tokenizer, [text]))
            if len(self._text_cache) >= TEXT_CACHE_SIZE:
                self._text_cache.clear()
            self._text_cache[text] = ("minilm" if use_minilm else "clip", emb)
        self.last_text_encoder, emb = self._text_cache[text]
        return emb

    def _cam(self, rgb_square: np.ndarray, text_embeds: torch.Tensor) -> np.ndarray:
        x = torch.from_numpy(normalise(rgb_square, CLIP_MEAN, CLIP_STD))[None]
        if self.cam_method == "similarity":
            return patch_similarity(self.clip, x, text_embeds)
        return clip_gradcam(self.clip, x, None, layer=self.cam_layer, method=self.cam_method, text_embeds=text_embeds)

    def global_peaks(self, rgb: np.ndarray, text: str, k: int, exclude: np.ndarray | None = None):
        """``(text embedding, global attention (H, W), up to k peaks (n, 2) xy, strongest first)``; the map is
        zero on the ``exclude`` pixels (the robot, module docstring).

        Peaks are searched on the map at 1/8 of the image resolution (the map is
        bilinear from a 14x14 grid, so nothing is lost; at full resolution the
        peak search was a third of the decision time) and scaled back.
        """
        temb = self.text_embedding(text)
        h, w = rgb.shape[:2]
        cam = self._cam(squash(rgb, self.clip_size), temb)
        small = upsample_cam(cam, (max(1, h // PEAK_STRIDE), max(1, w // PEAK_STRIDE)))
        if exclude is not None:  # a coarse cell holding any robot pixel is robot
            cells = cv2.resize(exclude.astype(np.float32), (small.shape[1], small.shape[0]), interpolation=cv2.INTER_AREA)
            small = zero_on_robot(small, cells > 0)
        peaks = multi_points(small, k=k, min_value=0.3)
        peaks = (peaks + 0.5) * np.array([w / small.shape[1], h / small.shape[0]], dtype=np.float32) - 0.5
        return temb, zero_on_robot(upsample_cam(cam, (h, w)), exclude), peaks

    def zoom_candidates(self, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray, temb: torch.Tensor,
                        att: np.ndarray, peaks: np.ndarray, exclude: np.ndarray | None = None) -> list[Candidate]:
        """One :class:`Candidate` per peak: the attention of the depth-sized window around it (zero on
        ``exclude``)."""
        if len(peaks) == 0:
            return []
        if not self.zoom or att.max() <= 0:
            return [Candidate(att, xy, None) for xy in peaks]
        windows = [depth_window(depth_m, K, xy, self.zoom_extent_m, default_frac=0.5) for xy in peaks]
        if self.cam_method == "similarity":  # forward only: all windows in one batch
            x = torch.from_numpy(np.stack([normalise(crop(rgb, win, self.clip_size), CLIP_MEAN, CLIP_STD)
                                           for win in windows]))
            cams = patch_similarity(self.clip, x, temb)
            cams = [cams] if len(windows) == 1 else cams
        else:  # Grad-CAM needs one backward pass per window
            cams = [self._cam(crop(rgb, win, self.clip_size), temb) for win in windows]
        out = []
        for xy, win, cam in zip(peaks, windows, cams):
            zatt = zero_on_robot(paste(upsample_cam(cam, (self.clip_size, self.clip_size)), win, rgb.shape[:2]),
                                 exclude)
            zatt = np.clip(zatt / max(float(zatt.max()), 1e-12), 0.0, 1.0).astype(np.float32)
            out.append(Candidate(zatt, xy, win) if zatt.max() > 0 else Candidate(att, xy, None))
        return out

    def class_text(self) -> torch.Tensor:
        if self._class_text is None:
            with torch.no_grad():
                self._class_text = class_text_embeddings(self.clip, self.tokenizer)
        return self._class_text

    @torch.no_grad()
    def text_class(self, text: str) -> int:
        """The catalog class whose prompt-ensemble text embedding is closest to ``text``'s."""
        return int((self.text_embedding(text) @ self.class_text().T).argmax())

    @torch.no_grad()
    def box_logits(self, rgb: np.ndarray, boxes: list[np.ndarray]) -> np.ndarray:
        """(len(boxes), 24) CLIP logits (``logit_scale`` x cosine) of a crop around each box (x0, y0, x1, y1)
        against the catalog's class texts."""
        if not boxes:
            return np.zeros((0, self.class_text().shape[0]), dtype=np.float32)
        xs = [normalise(crop(rgb, crop_box(np.asarray(b, dtype=np.float64)), self.crop_size), CLIP_MEAN, CLIP_STD)
              for b in boxes]
        emb, _ = image_embeddings(self.clip, torch.from_numpy(np.stack(xs)), with_patches=False)
        scale = self.clip.logit_scale.exp().clamp(max=100.0)
        return (scale * emb @ self.class_text().T).numpy()

    @torch.no_grad()
    def crop_probs(self, rgb: np.ndarray, masks: list[np.ndarray]) -> np.ndarray:
        """(len(masks), 24) class probabilities of a crop around each mask's box (zeros for empty masks)."""
        probs = np.zeros((len(masks), self.class_text().shape[0]), dtype=np.float32)
        idx = [i for i, m in enumerate(masks) if m.any()]
        boxes = [mask_box(masks[i]).astype(np.float64) for i in idx]
        if idx:
            probs[idx] = torch.softmax(torch.from_numpy(self.box_logits(rgb, boxes)), dim=-1).numpy()
        return probs

    def prompt(self, attention: np.ndarray, mode: str, window: tuple[float, float, float] | None = None) -> Prompt:
        """:func:`~.prompts.make_prompts` on ``attention``; with a zoom ``window`` only that part of the map
        (which is zero elsewhere) is searched, then the prompt is shifted back to image pixels."""
        h, w = attention.shape
        c0, r0, c1, r1 = 0, 0, w, h
        if window is not None:
            x0, y0, side = window
            c0, r0 = max(0, int(np.floor(x0))), max(0, int(np.floor(y0)))
            c1, r1 = min(w, int(np.ceil(x0 + side)) + 1), min(h, int(np.ceil(y0 + side)) + 1)
        p = make_prompts(attention[r0:r1, c0:c1], mode, k=self.k_points, threshold=self.threshold,
                         n_negative=self.n_negative)
        offset = np.array([c0, r0], dtype=np.float32)
        box = None if p.box is None else p.box + np.tile(offset, 2)
        return Prompt(p.mode, p.points + offset, p.labels, box)

    def segment(self, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray, prompts: list[Prompt],
                exclude: np.ndarray | None = None, refine: bool = True) -> list[WindowMask]:
        """SAM for every prompt (one batched call); each mask without the ``exclude`` pixels, reduced to its
        component at the prompt (``refine`` False: without the box refinement below, :meth:`refine`).

        With ``box_refine = n > 0``, box prompts are re-run ``n`` times with the
        box replaced by the bounding box of SAM's last mask (points kept), the
        usual SAM interaction loop: the attention box is only roughly the
        product (too wide over same-product neighbours, too short on tall
        ones), SAM's first mask is closer, and a box around it is a better prompt.
        """
        out = self._segment_once(rgb, depth_m, K, prompts, exclude)
        return self.refine(rgb, depth_m, K, prompts, out, exclude) if refine else out

    def refine(self, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray, prompts: list[Prompt],
               masks: list[WindowMask], exclude: np.ndarray | None = None) -> list[WindowMask]:
        """:meth:`segment`'s ``box_refine`` passes on ``masks`` (SAM's answers to ``prompts``): a new list."""
        out = list(masks)
        for _ in range(self.box_refine):
            idx = [i for i, (p, wm) in enumerate(zip(prompts, out)) if p.box is not None and wm.mask.any()]
            if not idx:
                break
            again = []
            for i in idx:
                box = mask_box(out[i].mask) - np.array([0, 0, 1, 1], dtype=np.float32)  # last pixels, not edges
                again.append(Prompt(prompts[i].mode, prompts[i].points, prompts[i].labels, box))
            for i, wm in zip(idx, self._segment_once(rgb, depth_m, K, again, exclude)):
                if wm.mask.any():
                    out[i] = wm
        return out

    def _segment_once(self, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray,
                      prompts: list[Prompt], exclude: np.ndarray | None = None) -> list[WindowMask]:
        out = segment_windows(self.sam, rgb, depth_m, K, prompts)
        for wm, prompt in zip(out, prompts):
            wm.mask = exclude_robot(wm.mask, exclude)
            anchors = prompt.points[prompt.labels == 1] if prompt.points.shape[0] else np.zeros((0, 2))
            if prompt.box is not None:
                b = prompt.box
                anchors = np.concatenate([anchors, [[(b[0] + b[2]) / 2, (b[1] + b[3]) / 2]]], axis=0)
            wm.mask = component_at(wm.mask, anchors)
        return out

    def mask_probs(self, rgb: np.ndarray, masks: list[np.ndarray], depth_m: np.ndarray, K: np.ndarray,
                   T_world_camera: np.ndarray | None, scene_kind: str | None, stage: dict) -> np.ndarray:
        """(len(masks), 24) class probabilities of each mask: CLIP's of its crop (:meth:`crop_probs`, timed as
        ``verify``), times the shape prior's to the power ``shape_weight`` (:func:`~.shape_prior.combine`, timed
        as ``shape``) when there is one and the camera pose and scene kind are known."""
        t = time.perf_counter()
        probs = self.crop_probs(rgb, masks)
        stage["verify"] += (time.perf_counter() - t) * 1e3
        if self.shape_prior is None or self.shape_weight == 0 or T_world_camera is None or scene_kind is None:
            return probs
        from graspsim.policies.clip_sam.shape_prior import combine

        t = time.perf_counter()
        shape = self.shape_prior.class_probs(masks, depth_m, K, T_world_camera, scene_kind)
        stage["shape"] = stage.get("shape", 0.0) + (time.perf_counter() - t) * 1e3
        return combine(probs, shape, self.shape_weight)

    def sweep(self, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray, att: np.ndarray, masks: list[WindowMask],
              exclude: np.ndarray | None, T_world_camera, scene_kind, target: int, stage: dict) -> list[tuple]:
        """The last resort when no attention peak led to the named product: SAM with one point at a time on a
        grid (:data:`SWEEP_STRIDE_PX`, strongest attention first, never on a pixel a mask already covers, the
        robot's or one without depth), up to ``sweep_max`` masks, each verified like a candidate. Returns
        ``[(point xy, prompt, WindowMask, target probability)]``: SAM's automatic "segment everything" mode,
        which needs no attention, ranked by CLIP (and the shape prior)."""
        h, w = att.shape
        rows, cols = np.mgrid[SWEEP_STRIDE_PX // 2:h:SWEEP_STRIDE_PX, SWEEP_STRIDE_PX // 2:w:SWEEP_STRIDE_PX]
        rows, cols = rows.ravel(), cols.ravel()
        ok = np.isfinite(depth_m[rows, cols]) & (depth_m[rows, cols] > 0)
        if exclude is not None:
            ok &= ~exclude[rows, cols]
        rows, cols = rows[ok], cols[ok]
        order = np.argsort(-att[rows, cols], kind="stable")
        covered = np.zeros((h, w), dtype=bool)
        for m in masks:
            covered |= m.mask
        found: list[tuple] = []
        queue = list(zip(cols[order], rows[order]))
        while queue and len(found) < self.sweep_max:
            batch, later = [], []
            # grid neighbours of a point in this batch wait for the next one: they are likely on the same
            # product, which this batch's mask will then cover
            for c, r in queue:
                if covered[r, c]:
                    continue
                near = any(abs(c - b[0]) <= SWEEP_STRIDE_PX and abs(r - b[1]) <= SWEEP_STRIDE_PX for b in batch)
                if near or len(batch) >= min(SWEEP_BATCH, self.sweep_max - len(found)):
                    later.append((c, r))
                else:
                    batch.append(np.array([c, r], dtype=np.float32))
            queue = later
            if not batch:
                break
            prompts = [Prompt("point", xy[None], np.ones(1, dtype=np.float32)) for xy in batch]
            t = time.perf_counter()
            new = self.segment(rgb, depth_m, K, prompts, exclude)
            stage["sam"] += (time.perf_counter() - t) * 1e3
            probs = self.mask_probs(rgb, [m.mask for m in new], depth_m, K, T_world_camera, scene_kind, stage)
            for xy, p, wm, prob in zip(batch, prompts, new, probs[:, target]):
                covered |= wm.mask
                found.append((xy, p, wm, float(prob)))
        return found

    def run(self, rgb: np.ndarray, depth_m: np.ndarray, K: np.ndarray, instruction: str, mode: str,
            candidates: list[Candidate] | None = None, exclude: np.ndarray | None = None,
            T_world_camera: np.ndarray | None = None, scene_kind: str | None = None) -> PipelineResult:
        """All stages for one prompt ``mode``; pass ``candidates`` (from :meth:`zoom_candidates`) to reuse the CLIP
        stage. ``exclude``: (H, W) bool pixels (the robot's) no attention, prompt or mask may use (None: none).
        ``T_world_camera`` (4, 4) and ``scene_kind`` let the shape prior (if any) join the verification.

        With verification, when no candidate's crop looks like the named product
        (best probability < ``escalate_below``), the next ``n_candidates`` peaks
        of the global map are tried too (once); when still none does and ``sweep_max > 0``, the point
        :meth:`sweep`'s masks too.
        """
        rgb = np.ascontiguousarray(np.asarray(rgb)[..., :3])
        text = part_steered_text(instruction)
        stage = dict.fromkeys(("clip", "prompt", "sam", "verify"), 0.0)

        def timed(key, fn, *args):  # fn(*args), its milliseconds added to stage[key]
            t = time.perf_counter()
            out = fn(*args)
            stage[key] += (time.perf_counter() - t) * 1e3
            return out

        rest, att = np.zeros((0, 2)), None
        if candidates is None:
            n = self.n_candidates
            temb, att, peaks = timed("clip", self.global_peaks, rgb, text, 2 * n if self.verify else 1, exclude)
            candidates = timed("clip", self.zoom_candidates, rgb, depth_m, K, temb, att, peaks[:n], exclude)
            rest = peaks[n:]
        candidates = list(candidates)
        prompts: list[Prompt] = []
        masks: list[WindowMask] = []
        probs = np.zeros(0)
        target = self.text_class(text) if self.verify else None
        batch = candidates
        while True:
            new_prompts = timed("prompt", lambda: [self.prompt(c.attention, mode, c.window) for c in batch])
            new_masks = timed("sam", self.segment, rgb, depth_m, K, new_prompts, exclude, not self.refine_chosen)
            prompts += new_prompts
            masks += new_masks
            if self.verify and (len(candidates) > 1 or len(rest)):
                new_probs = self.mask_probs(rgb, [m.mask for m in new_masks], depth_m, K, T_world_camera,
                                            scene_kind, stage)
                probs = np.concatenate([probs, new_probs[:, target]])
            if not (self.verify and len(rest) and probs.size and probs.max() < self.escalate_below):
                break
            batch = timed("clip", self.zoom_candidates, rgb, depth_m, K, temb, att, rest, exclude)
            candidates += batch
            rest = np.zeros((0, 2))
        if self.sweep_max and att is not None and probs.size and probs.max() < self.escalate_below:
            found = self.sweep(rgb, depth_m, K, att, masks, exclude, T_world_camera, scene_kind, target, stage)
            for xy, p, wm, prob in found:
                candidates.append(Candidate(att, xy, None))
                prompts.append(p)
                masks.append(wm)
            probs = np.concatenate([probs, [f[3] for f in found]])
        best = int(np.argmax(probs)) if probs.size else 0
        if self.refine_chosen:  # the chosen candidate alone gets the box refinement
            masks[best] = timed("sam", self.refine, rgb, depth_m, K, [prompts[best]], [masks[best]], exclude)[0]
        target_prob = float(probs[best]) if probs.size else float("nan")
        return PipelineResult(attention=candidates[best].attention, prompt=prompts[best], mask=masks[best].mask,
                              sam_score=masks[best].score, text=text, stage_ms=stage, candidate=best,
                              n_candidates=len(candidates), target_prob=target_prob)
