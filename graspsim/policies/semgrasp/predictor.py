"""semgrasp inference: (RGB-D frame, product mask, instruction) -> ranked grasp rectangles (numpy in, numpy out).

No training code is imported: the network comes from a checkpoint directory
(:func:`load_net`: ``model.safetensors`` + ``metadata.json``, sha256 checked).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graspsim.assets.parts import PART_WORDS
from graspsim.config import GripperSpec
from graspsim.policies.semgrasp.config import SemGraspNetConfig
from graspsim.policies.semgrasp.crops import crop_input
from graspsim.policies.semgrasp.tokens import crop_box, finger_px, rect_to_tokens, tokens_to_rect
from graspsim.types import GraspRect


def build_net(config: SemGraspNetConfig | dict | None = None):
    """A freshly initialised :class:`~.model.SemGraspNet` (``config``: the dataclass, its dict, or None)."""
    from graspsim.policies.semgrasp.model import SemGraspNet

    if isinstance(config, dict):
        config = SemGraspNetConfig.from_dict(config)
    return SemGraspNet(config or SemGraspNetConfig())


def load_net(path: str | Path):
    """``(network in eval mode, metadata)`` of checkpoint directory ``path`` (FileNotFoundError / CheckpointError
    / ValueError for a missing, damaged or foreign checkpoint)."""
    from graspsim.learn.checkpoint import load_weights, read_metadata

    path = Path(path)
    meta = read_metadata(path)
    if meta.get("model") != "semgrasp":
        raise ValueError(f"checkpoint {path} holds a {meta.get('model')!r} model, not 'semgrasp'")
    net = build_net(SemGraspNetConfig.from_checkpoint(meta.get("config") or {}))
    net.load_state_dict(load_weights(path, meta))
    return net.eval(), meta


@dataclass
class Decoded:
    """One decoded grasp: ``part`` word, ``rect`` (full-image px), ``tokens`` (5,) int64, ``logp`` (its
    log-probability under the network)."""

    part: str
    rect: GraspRect
    tokens: np.ndarray
    logp: float


class SemGraspPredictor:
    """``predict(...)`` -> ``(box, [Decoded, best first])``; ``text``: a :class:`~.text.TextStates`."""

    def __init__(self, net, text, gripper: GripperSpec | None = None):
        self.net, self.text = net.eval(), text
        self.gripper = gripper or GripperSpec()

    def predict(self, rgb: np.ndarray, depth_m: np.ndarray, mask: np.ndarray, K: np.ndarray, instruction: str,
                allowed_parts: tuple[str, ...] | None = None, k: int = 1) -> tuple[tuple, list[Decoded]]:
        """Grasps on the product of ``mask`` for ``instruction``.

        ``rgb`` (H, W, 3) uint8, ``depth_m`` (H, W) metres, ``mask`` (H, W) bool (the product's pixels), ``K``
        (3, 3) intrinsics (its ``fx`` sizes the fingers), ``allowed_parts``: the part words the part token may
        take (None: any), ``k``: how many angle bins to branch on. Returns the crop box (x0, y0, side) and up to
        ``k`` grasps; ValueError for an empty mask.
        """
        import torch

        cfg = self.net.config
        box = crop_box(mask)
        crop, t, v = self._inputs(rgb, depth_m, mask, box, instruction)
        allowed = None
        if allowed_parts:
            allowed = torch.tensor([[w in allowed_parts for w in PART_WORDS]])
        tokens, logp = self.net.generate(crop, t, v, part_allowed=allowed, branch=k)
        out = []
        for tok, lp in zip(tokens[0].numpy(), logp[0].numpy()):
            part, rect = tokens_to_rect(tok, box, 1.0, cfg.tokens)
            h = finger_px(depth_m, rect.x, rect.y, float(K[0, 0]), self.gripper.finger_width_m, mask)
            out.append(Decoded(part, GraspRect(rect.x, rect.y, rect.w, h, rect.theta), tok, float(lp)))
        return box, out

    def part_words(self, rgb: np.ndarray, depth_m: np.ndarray, mask: np.ndarray, box: tuple[float, float, float],
                   allowed_parts: tuple[str, ...] | None = None) -> np.ndarray | None:
        """(H, W) uint8: 1 + the :data:`PART_WORDS` index the part head reads under each pixel of ``mask`` (the
        product's pixels; 0 elsewhere), the most likely of ``allowed_parts`` (None: any word); None when the
        network has no part head. Inputs as in :meth:`predict`; ``box``: its crop box."""
        import torch

        from graspsim.policies.semgrasp.crops import labels_to_frame

        if self.net.part_head is None:
            return None
        crop = torch.from_numpy(crop_input(rgb, depth_m, mask, box, self.net.config.crop_px))[None]
        with torch.no_grad():
            logits = self.net.part_logits(crop)[0]
        if allowed_parts:
            keep = torch.tensor([w in allowed_parts for w in PART_WORDS])
            logits = logits.masked_fill(~keep[:, None, None], float("-inf"))
        words = logits.argmax(0).numpy().astype(np.uint8) + 1
        return np.where(mask, labels_to_frame(words, box, mask.shape), 0).astype(np.uint8)

    def _inputs(self, rgb, depth_m, mask, box, instruction: str):
        """``(crop (1, 5, S, S), text (1, L, D), text_valid (1, L))`` tensors of one product and instruction."""
        import torch

        crop = torch.from_numpy(crop_input(rgb, depth_m, mask, box, self.net.config.crop_px))[None]
        t, v = (torch.from_numpy(a) for a in self.text.states([instruction]))
        return crop, t, v

    def score(self, rgb: np.ndarray, depth_m: np.ndarray, mask: np.ndarray, instruction: str, part: str,
              rects: list[GraspRect], box: tuple[float, float, float] | None = None) -> np.ndarray:
        """(N,) float64: the network's log-probability of each of ``rects`` (full-image px) as a grasp on
        ``part`` for ``instruction``: the sum of its angle, opening, x and y tokens' log-probabilities given the
        part token (teacher forcing; the part is fixed, so the part token's own probability is left out).

        Inputs as in :meth:`predict`; ``box``: the crop box (None: :func:`~.tokens.crop_box` of ``mask``). The
        network proposes grasps to half a token bin; a planner that measures mask and depth proposes grasps that
        fit the product to the pixel, and this ranks the planner's grasps by how well they match what the
        network learned a grasp on ``part`` looks like (``placement=rerank`` of the policy).
        """
        import torch

        if not rects:
            return np.zeros(0)
        cfg = self.net.config
        box = crop_box(mask) if box is None else box
        crop, t, v = self._inputs(rgb, depth_m, mask, box, instruction)
        tokens = torch.from_numpy(np.stack([rect_to_tokens(r, part, box, cfg.tokens) for r in rects]))
        n = len(rects)
        lp = self.net.token_logp(crop.expand(n, -1, -1, -1), t.expand(n, -1, -1), v.expand(n, -1), tokens)
        return lp[:, 1:].sum(dim=1).double().numpy()


def snap(rect: GraspRect, candidates: list[GraspRect], box: tuple[float, float, float], spec,
         max_bins: float = 1.5) -> tuple[GraspRect, float] | None:
    """The rectangle of ``candidates`` nearest ``rect`` in token-bin units, and that distance, if it is within
    ``max_bins`` position bins of its centre and angle bins of its closing axis (else None).

    Tokens place a grasp to within half a bin; a planner that measures the mask and depth places it to the pixel.
    Snapping keeps the tokens' choice (which part, which side, which axis) and the planner's precision.
    """
    if not candidates:
        return None
    pos_bin, ang_bin = box[2] / spec.n_pos, np.pi / spec.n_angle
    arr = np.array([c.as_array() for c in candidates])
    d_pos = np.hypot(arr[:, 0] - rect.x, arr[:, 1] - rect.y) / pos_bin
    d_ang = np.abs((arr[:, 4] - rect.theta + np.pi / 2) % np.pi - np.pi / 2) / ang_bin
    ok = (d_pos <= max_bins) & (d_ang <= max_bins)
    if not ok.any():
        return None
    cost = np.where(ok, np.hypot(d_pos, d_ang), np.inf)
    i = int(np.argmin(cost))
    return candidates[i], float(cost[i])
