"""The det_seg network: grasp detection + semantic segmentation + grasp refinement from RGB.

A CPU-scale version of Ainetter & Fraundorfer, "End-to-end Trainable Deep
Neural Network for Robotic Grasp Detection and Semantic Segmentation from RGB"
(ICRA 2021), Fig. 2:

* **Backbone + FPN**: plain strided 3x3 conv blocks (BatchNorm + LeakyReLU 0.01
  as the seed's InPlaceABN) giving C2..C5 at strides 4, 8, 16, 32 instead of a
  ResNet-101; a standard FPN gives P2..P5 (``fpn_channels`` each).
* **Grasp detection branch** (seed IV-B, made one-stage): instead of RPN
  proposals + ROIAlign + two fc layers, every cell of the detection levels
  (default P3) is a square axis-aligned anchor (a dense "proposal"); a shared
  conv tower predicts per anchor the ``num_bins + 1 = 19`` orientation logits
  (18 bins of 10 degrees + "invalid") and class-specific box corrections
  ``(t_x, t_y, t_w, t_h)`` for each of the 18 bins (seed: ``4 N_classes``
  outputs). Score of a grasp = the softmax probability of its best bin.
* **Segmentation branch** (seed IV-C): one Mini-DeepLab module per FPN level
  P2..P5 (3x3 conv, dilated 3x3 conv, global-pooling branch), each upsampled to
  1/4 of the input, concatenated, 1x1 conv to ``num_classes = 25`` logits
  (background + 24 products).
* **Grasp refinement head** (seed IV-D, Fig. 3): for each candidate grasp, the
  semantic probability map (the channel of the product class predicted under
  the grasp centre) is sampled in a window around the grasp aligned with its
  closing axis (``refine_crop x refine_crop`` samples over ``refine_context``
  times the rectangle's longer side); the "cropped" map (the same samples
  zeroed outside the rectangle) is stacked onto it and the ``2 x S x S`` stack
  goes through a two-layer MLP (fc + BatchNorm + LeakyReLU each) to the five
  refined correction factors ``(t_x, t_y, t_w, t_h, t_theta)`` of seed Eq. 10.
  Differences to the seed: the window is grasp-aligned and local rather than
  the whole image (a translation-invariant input an MLP can learn from few
  hundred images), and with ``refine_use_grasp_features`` the FPN feature
  vector under the grasp centre is concatenated to the MLP input ("grasp
  features"). The probability map is detached: the refinement loss does not
  train the segmentation branch.

Losses (seed Sec. V): ``L = l_grasp (L_rot + L_box) + l_sem L_sem + l_refine L_refine``.
``L_rot``: cross-entropy over the positive anchors plus the hardest negatives
(``neg_ratio`` per positive, OHEM instead of the RPN's random sampling);
``L_box`` / ``L_refine``: smooth L1; ``L_sem``: per-pixel cross-entropy on the
25 % hardest pixels of each image (seed Eq. 8).

torch is imported at module import: import this module only where the network is needed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from graspsim.policies.det_seg import targets as T
from graspsim.policies.det_seg.checkpoint import DictConfig

NUM_SEG_CLASSES = 25  # background + the 24 catalog classes (label = catalog index + 1)


@dataclass
class DetSegConfig(DictConfig):
    """Sizes and loss settings of :class:`DetSegNet` (JSON-able via :meth:`to_dict` / :meth:`from_dict`)."""

    input_size: int = 320
    stem_channels: int = 16
    channels: tuple[int, ...] = (24, 32, 48, 64)  # C2..C5 (strides 4, 8, 16, 32)
    depths: tuple[int, ...] = (1, 1, 2, 1)  # extra 3x3 conv blocks after each stage's strided conv
    fpn_channels: int = 32
    det_levels: tuple[int, ...] = (3,)  # FPN levels with anchors (P3 = stride 8)
    anchor_scale: float = 4.0  # anchor side = anchor_scale * stride
    pos_radius: float = 1.0  # positives: cells within pos_radius * stride of a grasp centre
    det_head_channels: int = 48
    det_head_convs: int = 2
    num_bins: int = T.NUM_BINS
    num_classes: int = NUM_SEG_CLASSES
    seg_channels: int = 16
    seg_dilation: int = 3
    # output stride of the segmentation logits: 4 = the seed's Mini-DeepLab on P2..P5 only; 2 = plus a light
    # refinement at stride 2 from the stem features (sharper product boundaries: a 640x480 image is letterboxed
    # to 320x240, so stride 4 leaves 8 source px per logit)
    seg_stride: int = 2
    seg_fine_channels: int = 16
    use_refinement: bool = True
    refine_crop: int = 12
    refine_context: float = 1.5
    refine_hidden: int = 128
    refine_use_grasp_features: bool = True
    refine_top_k: int = 32  # candidates refined per image at inference
    refine_train_per_image: int = 32
    lambda_grasp: float = 1.0
    lambda_sem: float = 0.8
    lambda_refine: float = 0.8
    neg_ratio: float = 3.0
    min_negatives: int = 16
    hard_pixel_fraction: float = 0.25
    pre_nms_top_k: int = 200
    nms_radius: float = 4.0  # network px: candidates closer than this ...
    nms_angle_deg: float = 15.0  # ... and with angles closer than this are duplicates
    max_detections: int = 50

    @property
    def det_strides(self) -> list[int]:
        return [2 ** level for level in self.det_levels]

    @property
    def anchor_sizes(self) -> list[float]:
        return [self.anchor_scale * s for s in self.det_strides]


def conv_bn(cin: int, cout: int, k: int = 3, stride: int = 1, dilation: int = 1) -> nn.Sequential:
    pad = dilation * (k // 2)
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, pad, dilation=dilation, bias=False),
                         nn.BatchNorm2d(cout), nn.LeakyReLU(0.01, inplace=True))


class Backbone(nn.Module):
    """Plain conv stages: stem (stride 2), then C2..C5 (strides 4..32)."""

    def __init__(self, cfg: DetSegConfig, in_channels: int = 3):
        super().__init__()
        if len(cfg.channels) != 4 or len(cfg.depths) != 4:
            raise ValueError("channels and depths need 4 entries (C2..C5)")
        self.stem = conv_bn(in_channels, cfg.stem_channels, 3, 2)
        cins = (cfg.stem_channels, *cfg.channels[:-1])
        self.stages = nn.ModuleList(
            nn.Sequential(conv_bn(cin, cout, 3, 2), *[conv_bn(cout, cout) for _ in range(depth)])
            for cin, cout, depth in zip(cins, cfg.channels, cfg.depths))

    def forward(self, x: torch.Tensor):
        """``(stem, [C2, C3, C4, C5])`` (stem = stride-2 features)."""
        x = stem = self.stem(x)
        out = []
        for stage in self.stages:
            x = stage(x)
            out.append(x)
        return stem, out


class FPN(nn.Module):
    def __init__(self, in_channels: tuple[int, ...], ch: int):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, ch, 1) for c in in_channels)
        self.smooth = nn.ModuleList(conv_bn(ch, ch) for _ in in_channels)

    def forward(self, feats: list[torch.Tensor]) -> list[torch.Tensor]:
        lat = [l(f) for l, f in zip(self.lateral, feats)]
        outs = [lat[-1]]
        for f in reversed(lat[:-1]):
            outs.insert(0, f + F.interpolate(outs[0], size=f.shape[-2:], mode="nearest"))
        return [s(o) for s, o in zip(self.smooth, outs)]  # P2..P5


class MiniDeepLab(nn.Module):
    """Seed IV-C / [29]: 3x3 conv, dilated 3x3 conv and a global-pooling branch, fused by a 1x1 conv."""

    def __init__(self, cin: int, cout: int, dilation: int):
        super().__init__()
        self.local = conv_bn(cin, cout)
        self.dilated = conv_bn(cin, cout, dilation=dilation)
        self.pool = nn.Conv2d(cin, cout, 1)
        self.fuse = conv_bn(3 * cout, cout, k=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        g = self.pool(x.mean(dim=(2, 3), keepdim=True)).expand(-1, -1, x.shape[2], x.shape[3])
        return self.fuse(torch.cat([self.local(x), self.dilated(x), g], dim=1))


class FineSegHead(nn.Module):
    """Stride-4 class logits -> stride-2 logits: upsampled logits + stem features -> residual correction.

    The correction only has to move class boundaries by a pixel or two, so a
    small 3x3 conv on (logits, stem) suffices; the residual form starts as
    plain bilinear upsampling.
    """

    def __init__(self, num_classes: int, stem_channels: int, hidden: int):
        super().__init__()
        self.mix = conv_bn(num_classes + stem_channels, hidden)
        self.out = nn.Conv2d(hidden, num_classes, 1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, coarse_logits: torch.Tensor, stem: torch.Tensor) -> torch.Tensor:
        up = F.interpolate(coarse_logits, size=stem.shape[-2:], mode="bilinear", align_corners=False)
        return up + self.out(self.mix(torch.cat([up, stem], dim=1)))


class RefinementHead(nn.Module):
    """Seed IV-D: MLP on the stacked (window, cropped window) probability maps (+ grasp features)."""

    def __init__(self, cfg: DetSegConfig):
        super().__init__()
        n_in = 2 * cfg.refine_crop * cfg.refine_crop + (cfg.fpn_channels if cfg.refine_use_grasp_features else 0)
        h = cfg.refine_hidden
        self.mlp = nn.Sequential(nn.Linear(n_in, h, bias=False), nn.BatchNorm1d(h), nn.LeakyReLU(0.01),
                                 nn.Linear(h, h, bias=False), nn.BatchNorm1d(h), nn.LeakyReLU(0.01))
        self.out = nn.Linear(h, 5)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.mlp(x))


def _smooth_l1(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return F.smooth_l1_loss(pred, target, reduction="none", beta=1.0)


class DetSegNet(nn.Module):
    """RGB (B, 3, S, S) in [0, 1] (letterboxed, see :mod:`targets`) -> grasp logits, box corrections, seg logits.

    :meth:`forward` returns a dict: ``cls`` list per detection level of
    (B, num_bins + 1, h, w) logits, ``reg`` list of (B, 4 num_bins, h, w),
    ``seg`` (B, num_classes, S/r, S/r) logits (r = ``seg_stride``, 2 or 4), ``feat`` the FPN level used for
    refinement features. :meth:`detect` decodes them (network pixels);
    :meth:`loss` computes the training loss from :func:`targets.encode_det_targets`
    targets.
    """

    MEAN = (0.485, 0.456, 0.406)
    STD = (0.229, 0.224, 0.225)

    def __init__(self, config: DetSegConfig | None = None):
        super().__init__()
        self.config = cfg = config or DetSegConfig()
        self.backbone = Backbone(cfg)
        self.fpn = FPN(cfg.channels, cfg.fpn_channels)
        head = cfg.det_head_channels
        self.det_tower = nn.Sequential(*[conv_bn(head if i else cfg.fpn_channels, head)
                                         for i in range(max(1, cfg.det_head_convs))])
        self.det_cls = nn.Conv2d(cfg.det_head_channels, cfg.num_bins + 1, 1)
        self.det_reg = nn.Conv2d(cfg.det_head_channels, 4 * cfg.num_bins, 1)
        nn.init.normal_(self.det_reg.weight, std=0.01)
        nn.init.zeros_(self.det_reg.bias)
        with torch.no_grad():  # start predicting "invalid" everywhere (as the prior of dense detectors)
            self.det_cls.bias.zero_()
            self.det_cls.bias[cfg.num_bins] = math.log(cfg.num_bins * 20.0)
        self.seg_heads = nn.ModuleList(MiniDeepLab(cfg.fpn_channels, cfg.seg_channels, cfg.seg_dilation)
                                       for _ in range(4))
        self.seg_out = nn.Conv2d(4 * cfg.seg_channels, cfg.num_classes, 1)
        if cfg.seg_stride not in (2, 4):
            raise ValueError(f"seg_stride must be 2 or 4, got {cfg.seg_stride}")
        self.seg_fine = (FineSegHead(cfg.num_classes, cfg.stem_channels, cfg.seg_fine_channels)
                         if cfg.seg_stride == 2 else None)
        self.refine = RefinementHead(cfg) if cfg.use_refinement else None
        self.register_buffer("mean", torch.tensor(self.MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(self.STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, rgb: torch.Tensor) -> dict[str, Any]:
        cfg = self.config
        x = (rgb - self.mean) / self.std
        stem, c = self.backbone(x)
        p = self.fpn(c)  # P2..P5
        towers = [self.det_tower(p[level - 2]) for level in cfg.det_levels]
        cls, reg = [self.det_cls(f) for f in towers], [self.det_reg(f) for f in towers]
        size = p[0].shape[-2:]
        seg = torch.cat([F.interpolate(h(f), size=size, mode="bilinear", align_corners=False) if i else h(f)
                         for i, (h, f) in enumerate(zip(self.seg_heads, p))], dim=1)
        seg = self.seg_out(seg)
        if self.seg_fine is not None:
            seg = self.seg_fine(seg, stem)
        return {"cls": cls, "reg": reg, "seg": seg, "feat": p[cfg.det_levels[0] - 2]}

    def _anchors(self, level_index: int, h: int, w: int, device) -> tuple[torch.Tensor, torch.Tensor, float]:
        stride = self.config.det_strides[level_index]
        ys = torch.arange(h, device=device, dtype=torch.float32) * stride + (stride - 1) / 2
        xs = torch.arange(w, device=device, dtype=torch.float32) * stride + (stride - 1) / 2
        ay, ax = torch.meshgrid(ys, xs, indexing="ij")
        return ax, ay, self.config.anchor_sizes[level_index]

    def dense_grasps(self, out: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Every anchor's best-bin grasp: (B, A, 5) rects (network px), (B, A) scores, (B, A) bins."""
        cfg = self.config
        rects, scores, bins = [], [], []
        for li, (c, r) in enumerate(zip(out["cls"], out["reg"])):
            b, _, h, w = c.shape
            prob = torch.softmax(c, dim=1)[:, : cfg.num_bins]  # (B, nb, h, w)
            score, k = prob.max(dim=1)  # (B, h, w)
            r = r.view(b, cfg.num_bins, 4, h, w)
            t = torch.gather(r, 1, k[:, None, None].expand(b, 1, 4, h, w))[:, 0]  # (B, 4, h, w)
            ax, ay, a = self._anchors(li, h, w, c.device)
            theta = -math.pi / 2 + (k.float() + 0.5) * (math.pi / cfg.num_bins)
            rect = torch.stack([ax + t[:, 0] * a, ay + t[:, 1] * a, a * torch.exp(t[:, 2].clamp(-6, 6)),
                                a * torch.exp(t[:, 3].clamp(-6, 6)), theta], dim=-1)
            rects.append(rect.view(b, -1, 5))
            scores.append(score.view(b, -1))
            bins.append(k.view(b, -1))
        return torch.cat(rects, 1), torch.cat(scores, 1), torch.cat(bins, 1)

    def _nms(self, rects: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        """Indices (into the score-sorted input) kept by a centre-distance + angle NMS."""
        cfg = self.config
        n = rects.shape[0]
        if n == 0:
            return torch.zeros(0, dtype=torch.long)
        d = torch.cdist(rects[:, :2], rects[:, :2])
        dth = torch.remainder(rects[:, 4:5] - rects[:, 4:5].T, math.pi)
        dth = torch.minimum(dth, math.pi - dth)
        dup = ((d < cfg.nms_radius) & (dth < math.radians(cfg.nms_angle_deg))).numpy()
        keep = np.ones(n, dtype=bool)
        for i in range(n):
            if keep[i]:  # a kept candidate suppresses its lower-scoring duplicates
                keep[i + 1:][dup[i, i + 1:]] = False
        return torch.from_numpy(np.nonzero(keep)[0])

    @torch.no_grad()
    def detect(self, out: dict[str, Any], refine: bool | None = None) -> list[dict[str, torch.Tensor]]:
        """Per image: ``rects`` (K, 5) network px (theta in [-pi/2, pi/2)), ``scores`` (K,), best first.

        Top ``pre_nms_top_k`` anchors, NMS, at most ``max_detections``; the first
        ``refine_top_k`` go through the refinement head when it exists (and
        ``refine`` is not False).
        """
        cfg = self.config
        rects, scores, _ = self.dense_grasps(out)
        do_refine = self.refine is not None and refine is not False
        probs = torch.softmax(out["seg"], dim=1) if do_refine else None
        results = []
        for b in range(rects.shape[0]):
            s, order = scores[b].topk(min(cfg.pre_nms_top_k, scores.shape[1]))
            r = rects[b][order]
            keep = self._nms(r, s)[: cfg.max_detections]
            r, s = r[keep], s[keep]
            if do_refine and len(r):
                n = min(cfg.refine_top_k, len(r))
                feats = self.refine_inputs(probs[b:b + 1], out["feat"][b:b + 1], r[:n], torch.zeros(n, dtype=torch.long))
                t = self.refine(feats)
                r = torch.cat([apply_refinement_torch(r[:n], t), r[n:]], 0)
            r = r.clone()
            r[:, 4] = torch.remainder(r[:, 4] + math.pi / 2, math.pi) - math.pi / 2
            results.append({"rects": r, "scores": s})
        return results

    def refine_inputs(self, probs: torch.Tensor, feat: torch.Tensor, rects: torch.Tensor,
                      batch_index: torch.Tensor) -> torch.Tensor:
        """(N, 2 S^2 [+ C]) MLP input for candidates ``rects`` (N, 5) on images ``batch_index`` (N,).

        ``probs``: (B, num_classes, h, w) segmentation probabilities; ``feat``: (B, C, h', w') FPN features.
        """
        cfg = self.config
        size = float(cfg.input_size)
        n = rects.shape[0]
        S = cfg.refine_crop
        out = rects.new_zeros((n, 2 * S * S + (feat.shape[1] if cfg.refine_use_grasp_features else 0)))
        lin = (torch.arange(S, dtype=rects.dtype, device=rects.device) + 0.5) / S - 0.5  # (S,)
        for b in torch.unique(batch_index).tolist():
            sel = torch.nonzero(batch_index == b).view(-1)
            m = len(sel)
            x, y, w, h, th = rects[sel].unbind(-1)
            centre = torch.stack([(x + 0.5) / size * 2 - 1, (y + 0.5) / size * 2 - 1], -1)  # (m, 2)
            # the product class most probable under each centre (background excluded)
            pc = F.grid_sample(probs[b:b + 1], centre.view(1, m, 1, 2), align_corners=False)[0, :, :, 0]  # (C, m)
            cls = pc[1:].argmax(dim=0) + 1  # (m,)
            side = cfg.refine_context * torch.maximum(w, h)
            a = lin.view(1, 1, S) * side.view(m, 1, 1)  # along the closing axis (columns)
            bb = lin.view(1, S, 1) * side.view(m, 1, 1)  # across it (rows)
            c, s = torch.cos(th).view(m, 1, 1), torch.sin(th).view(m, 1, 1)
            px = x.view(m, 1, 1) + a * c - bb * s
            py = y.view(m, 1, 1) + a * s + bb * c
            grid = torch.stack([(px + 0.5) / size * 2 - 1, (py + 0.5) / size * 2 - 1], -1)  # (m, S, S, 2)
            allc = F.grid_sample(probs[b:b + 1], grid.view(1, m * S, S, 2), align_corners=False)  # (1, C, m S, S)
            allc = allc[0].view(-1, m, S, S)
            window = allc[cls, torch.arange(m)]  # (m, S, S)
            inside = ((a.abs() <= w.view(m, 1, 1) / 2) & (bb.abs() <= h.view(m, 1, 1) / 2)).to(window.dtype)
            parts = [window.flatten(1), (window * inside).flatten(1)]
            if cfg.refine_use_grasp_features:
                parts.append(F.grid_sample(feat[b:b + 1], centre.view(1, m, 1, 2), align_corners=False)[0, :, :, 0].T)
            out[sel] = torch.cat(parts, 1)
        return out

    def loss(self, out: dict[str, Any], batch: dict[str, Any]) -> dict[str, torch.Tensor]:
        """Training loss. ``batch``: ``cls`` / ``reg`` / ``gt`` lists per level of stacked targets
        ((B, h, w) int64, (B, h, w, 4), (B, h, w) int64), ``seg`` (B, S, S) int64 labels (-1 ignored),
        ``gt_rects``: list of (N_i, 5) float tensors (network px), optional ``labelled`` (B,) bool: images
        without grasp labels (``--no-grasps`` data) add only to the segmentation loss. Returns the parts and
        ``total``."""
        cfg = self.config
        nb = cfg.num_bins
        labelled = batch.get("labelled")
        rot_terms, box_terms = [], []
        n_pos_total = 0
        for li, (c, r) in enumerate(zip(out["cls"], out["reg"])):
            b, _, h, w = c.shape
            tcls = batch["cls"][li]
            ce = F.cross_entropy(c, tcls, reduction="none")  # (B, h, w)
            pos = tcls < nb
            n_pos = int(pos.sum())
            n_pos_total += n_pos
            # hardest negatives per image
            neg_loss = torch.where(pos, torch.zeros_like(ce), ce).detach().view(b, -1)
            k = min(max(cfg.min_negatives, int(cfg.neg_ratio * max(n_pos, 1) / b)), neg_loss.shape[1])
            thresh = neg_loss.topk(k, dim=1).values[:, -1:]
            neg = (~pos) & (neg_loss >= thresh).view(b, h, w) & (neg_loss > 0).view(b, h, w)
            sel = pos | neg
            if labelled is not None:
                sel = sel & labelled.view(b, 1, 1)
            if int(sel.sum()) == 0:
                continue
            rot_terms.append(ce[sel].sum() / int(sel.sum()))
            if n_pos:
                rr = r.view(b, nb, 4, h, w).permute(0, 3, 4, 1, 2)[pos]  # (P, nb, 4)
                tb = tcls[pos]
                pred = rr[torch.arange(len(tb)), tb]  # class-specific correction of the true bin
                box_terms.append(_smooth_l1(pred, batch["reg"][li][pos]).sum(1).mean())
        l_rot = torch.stack(rot_terms).mean() if rot_terms else out["cls"][0].sum() * 0.0
        l_box = torch.stack(box_terms).mean() if box_terms else out["reg"][0].sum() * 0.0
        # segmentation: the hardest 25 % pixels of each image (seed Eq. 8)
        seg_logits = F.interpolate(out["seg"], size=batch["seg"].shape[-2:], mode="bilinear", align_corners=False)
        pix = F.cross_entropy(seg_logits, batch["seg"], ignore_index=-1, reduction="none").flatten(1)
        valid = (batch["seg"] >= 0).flatten(1)
        seg_terms = []
        for i in range(pix.shape[0]):
            v = pix[i][valid[i]]
            if v.numel():
                k = max(1, int(math.ceil(cfg.hard_pixel_fraction * v.numel())))
                seg_terms.append(v.topk(k).values.mean())
        l_sem = torch.stack(seg_terms).mean() if seg_terms else seg_logits.sum() * 0.0
        l_ref = self._refine_loss(out, batch) if self.refine is not None else l_rot * 0.0
        total = cfg.lambda_grasp * (l_rot + l_box) + cfg.lambda_sem * l_sem + cfg.lambda_refine * l_ref
        return {"total": total, "rot": l_rot.detach(), "box": l_box.detach(), "sem": l_sem.detach(),
                "refine": l_ref.detach(), "positives": torch.tensor(float(n_pos_total))}

    def _refine_loss(self, out: dict[str, Any], batch: dict[str, Any]) -> torch.Tensor:
        cfg = self.config
        with torch.no_grad():
            rects, scores, _ = self.dense_grasps(out)
            probs = torch.softmax(out["seg"], dim=1)
        cands, gts, bidx = [], [], []
        gt_all = torch.cat([g.flatten(1) for g in batch["gt"]], 1)  # (B, A) matched ground truth per anchor
        for b in range(rects.shape[0]):
            pos = torch.nonzero(gt_all[b] >= 0).view(-1)
            if len(pos) == 0:
                continue
            sc = scores[b, pos]
            top = pos[sc.argsort(descending=True, stable=True)[: cfg.refine_train_per_image]]
            cands.append(rects[b, top])
            gts.append(batch["gt_rects"][b][gt_all[b, top]].to(rects.dtype))
            bidx.append(torch.full((len(top),), b, dtype=torch.long))
        if sum(map(len, bidx)) < 2:  # BatchNorm1d needs two samples
            return out["seg"].sum() * 0.0
        cands, gts, bidx = torch.cat(cands), torch.cat(gts), torch.cat(bidx)
        target = encode_refinement_torch(cands, gts)
        pred = self.refine(self.refine_inputs(probs, out["feat"], cands, bidx))
        return _smooth_l1(pred, target).sum(1).mean()


def encode_refinement_torch(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`targets.encode_refinement` (seed Eq. 10, theta offset wrapped to [-1/2, 1/2))."""
    c, s = torch.cos(pred[:, 4]), torch.sin(pred[:, 4])
    dx, dy = gt[:, 0] - pred[:, 0], gt[:, 1] - pred[:, 1]
    dth = torch.remainder(gt[:, 4] - pred[:, 4] + math.pi / 2, math.pi) - math.pi / 2
    return torch.stack([(dx * c + dy * s) / pred[:, 2], (dy * c - dx * s) / pred[:, 3],
                        torch.log(gt[:, 2] / pred[:, 2]), torch.log(gt[:, 3] / pred[:, 3]), dth / math.pi], 1)


def apply_refinement_torch(pred: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Torch twin of :func:`targets.apply_refinement` (theta not wrapped)."""
    c, s = torch.cos(pred[:, 4]), torch.sin(pred[:, 4])
    ax, ay = t[:, 0] * pred[:, 2], t[:, 1] * pred[:, 3]
    return torch.stack([pred[:, 0] + ax * c - ay * s, pred[:, 1] + ax * s + ay * c,
                        pred[:, 2] * torch.exp(t[:, 2].clamp(-6, 6)), pred[:, 3] * torch.exp(t[:, 3].clamp(-6, 6)),
                        pred[:, 4] + t[:, 4] * math.pi], 1)


def _unpadded(seg_logits: torch.Tensor, lb: T.Letterbox) -> torch.Tensor:
    """(1, C, S/r, S/r) -> (C, h, w): the cells of the map that cover the letterboxed image (padding cut off)."""
    s = seg_logits.shape[-1] / lb.size  # map px per network px
    new_w, new_h = lb.inner_wh
    c0, c1 = int(math.floor(lb.pad_x * s)), int(math.ceil((lb.pad_x + new_w) * s))
    r0, r1 = int(math.floor(lb.pad_y * s)), int(math.ceil((lb.pad_y + new_h) * s))
    return seg_logits[0, :, r0:r1, c0:c1]


def seg_labels_from_logits(seg_logits: torch.Tensor, letterbox: T.Letterbox) -> np.ndarray:
    """(1, C, S/r, S/r) logits -> (src_h, src_w) int64 labels (0 background, c + 1 catalog class c).

    The valid (unpadded) part of the low-resolution map is cut out and resized
    bilinearly (OpenCV, channels last) to the smaller of the letterboxed and the
    source size, the argmax taken there, and the labels resized (nearest) to
    the source size when that is larger (a 640x480 image: argmax at 320x240).
    """
    import cv2

    lb = letterbox
    new_w, new_h = lb.inner_wh
    crop = _unpadded(seg_logits, lb).permute(1, 2, 0).float().contiguous().numpy()
    mid_w, mid_h = min(new_w, lb.src_w), min(new_h, lb.src_h)
    # OpenCV resizes at most 512 channels at once (we have 25)
    up = cv2.resize(crop, (mid_w, mid_h), interpolation=cv2.INTER_LINEAR).reshape(mid_h, mid_w, -1)
    labels = up.argmax(-1).astype(np.uint8)
    if (mid_w, mid_h) != (lb.src_w, lb.src_h):
        labels = cv2.resize(labels, (lb.src_w, lb.src_h), interpolation=cv2.INTER_NEAREST)
    return labels.astype(np.int64)


def seg_probs_from_logits(seg_logits: torch.Tensor, letterbox: T.Letterbox) -> np.ndarray:
    """(1, C, S/r, S/r) logits -> (h, w, C) float32 softmax probabilities of the unpadded part of the map, at the
    map's own resolution (h / w = the source aspect ratio; resize to source pixels, e.g. with
    :func:`~.guided.guided_labels`)."""
    return torch.softmax(_unpadded(seg_logits, letterbox).float(), dim=0).permute(1, 2, 0).contiguous().numpy()


def remove_small_regions(labels: np.ndarray, min_px: float) -> np.ndarray:
    """(H, W) int labels (0 background) with every connected (8-neighbour) region of a product class smaller
    than ``min_px`` pixels relabelled to the most common other label on a 2 px ring around it (background
    when the ring has none).

    Why: a from-scratch segmentation leaves specks of wrong classes on product
    borders; each speck adds a whole class with IoU 0 to a per-image mean class
    IoU and can pull a language-targeted grasp onto the wrong product.
    ``min_px <= 0`` returns the labels unchanged. Regions are visited in
    ascending class order; a relabelled region may merge into a neighbour.
    """
    import cv2

    out = np.array(labels, copy=True)
    if min_px <= 0:
        return out
    h, w = out.shape
    kernel = np.ones((5, 5), np.uint8)
    for c in np.unique(out):
        if c == 0:
            continue
        n, lab, stats, _ = cv2.connectedComponentsWithStats((out == c).astype(np.uint8), connectivity=8)
        for k in np.nonzero(stats[1:, cv2.CC_STAT_AREA] < min_px)[0] + 1:
            x, y, bw, bh = (int(v) for v in stats[k, :4])
            x0, y0, x1, y1 = max(0, x - 2), max(0, y - 2), min(w, x + bw + 2), min(h, y + bh + 2)
            comp = lab[y0:y1, x0:x1] == k
            ring = cv2.dilate(comp.astype(np.uint8), kernel).astype(bool) & ~comp
            vals = out[y0:y1, x0:x1][ring]
            vals = vals[vals != c]
            out[y0:y1, x0:x1][comp] = np.bincount(vals).argmax() if len(vals) else 0
    return out
