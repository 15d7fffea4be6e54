"""SemGraspNet: a small transformer decoder that writes a grasp's five tokens, conditioned on a crop and a text.

Memory = the crop's feature grid (:class:`CropEncoder`, ``grid**2`` tokens, learned
position embeddings) + the instruction's text token states (projected, learned
positions, padded ones masked out). The decoder reads ``[BOS, t0, .., t3]`` with
a causal mask; output ``i`` predicts token ``i`` with the head of its type
(:data:`~.tokens.TOKEN_TYPES`), so each token is conditioned on the ones before it
(teacher forcing in training, greedy / branched decoding at test).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from graspsim.policies.semgrasp.config import SemGraspNetConfig
from graspsim.policies.semgrasp.crops import CHANNELS
from graspsim.policies.semgrasp.tokens import TOKEN_TYPES


class CropEncoder(nn.Module):
    """(B, 5, S, S) crop -> (B, grid*grid, C) feature tokens: a stride-2 stem conv, a patchify conv down to
    ``grid`` x ``grid`` and a residual 3x3 conv there (cheap on a CPU; each token sees its patch's pixels)."""

    def __init__(self, crop_px: int, grid: int, channels: tuple[int, int]):
        super().__init__()
        c0, c1 = channels
        patch = crop_px // 2 // grid
        self.stem = nn.Sequential(nn.Conv2d(CHANNELS, c0, 3, stride=2, padding=1), nn.GELU())
        self.patch = nn.Sequential(nn.Conv2d(c0, c1, patch, stride=patch), nn.GroupNorm(8, c1), nn.GELU())
        self.mix = nn.Sequential(nn.Conv2d(c1, c1, 3, padding=1), nn.GroupNorm(8, c1), nn.GELU())

    def features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(stem (B, c0, S/2, S/2), grid (B, c1, grid, grid))`` feature maps of crop ``x`` (B, 5, S, S)."""
        stem = self.stem(x)
        g = self.patch(stem)
        return stem, g + self.mix(g)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[1].flatten(2).transpose(1, 2)


class PartHead(nn.Module):
    """Part segmentation of the crop: (stem, grid) features -> (B, n_words, S, S) logits of the part word under
    each pixel. Which end of a product is its lid depends on the whole product (a can lying on its side), so the
    grid features first pass two dilated 3x3 convs whose receptive field spans the grid; then they are
    upsampled onto the stride-2 stem features (edges to about a crop pixel) and upsampled x2 at the end."""

    def __init__(self, channels: tuple[int, int], n_words: int):
        super().__init__()
        c0, c1 = channels
        self.context = nn.Sequential(nn.Conv2d(c1, c1, 3, padding=1), nn.GroupNorm(8, c1), nn.GELU(),
                                     nn.Conv2d(c1, c1, 3, padding=2, dilation=2), nn.GroupNorm(8, c1), nn.GELU())
        self.reduce = nn.Conv2d(c1, c0, 1)
        self.fuse = nn.Sequential(nn.Conv2d(2 * c0, c0, 3, padding=1), nn.GroupNorm(8, c0), nn.GELU(),
                                  nn.Conv2d(c0, c0, 3, padding=1), nn.GELU(), nn.Conv2d(c0, n_words, 1))

    def forward(self, stem: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
        g = self.reduce(grid + self.context(grid))
        g = F.interpolate(g, size=stem.shape[-2:], mode="bilinear", align_corners=False)
        logits = self.fuse(torch.cat([stem, g], dim=1))
        return F.interpolate(logits, scale_factor=2, mode="bilinear", align_corners=False)


class SemGraspNet(nn.Module):
    """``forward(crop, text, text_valid, tokens) -> [logits of each token type]``; see the module docstring.

    Shapes: ``crop`` (B, 5, S, S) float (:func:`~.crops.crop_input`), ``text`` (B, L, text_dim) float,
    ``text_valid`` (B, L) bool (False = padding), ``tokens`` (B, 5) int64 targets (only the first 4 are read).
    """

    def __init__(self, config: SemGraspNetConfig | None = None):
        super().__init__()
        self.config = cfg = config or SemGraspNetConfig()
        self.sizes = cfg.tokens.sizes
        self.cnn = CropEncoder(cfg.crop_px, cfg.grid, tuple(cfg.channels))
        self.img_proj = nn.Linear(cfg.channels[-1], cfg.d_model)
        self.img_pos = nn.Parameter(torch.randn(cfg.grid * cfg.grid, cfg.d_model) * 0.02)
        self.text_proj = nn.Linear(cfg.text_dim, cfg.d_model)
        self.text_pos = nn.Parameter(torch.randn(cfg.max_text, cfg.d_model) * 0.02)
        self.mem_norm = nn.LayerNorm(cfg.d_model)
        offsets = [0]
        for s in self.sizes:
            offsets.append(offsets[-1] + s)
        self.register_buffer("offsets", torch.tensor(offsets[:-1], dtype=torch.long), persistent=False)
        self.bos = offsets[-1]
        self.tok_emb = nn.Embedding(offsets[-1] + 1, cfg.d_model)
        self.tok_pos = nn.Parameter(torch.randn(len(TOKEN_TYPES), cfg.d_model) * 0.02)
        layer = nn.TransformerDecoderLayer(cfg.d_model, cfg.heads, cfg.ff, cfg.dropout, batch_first=True,
                                           norm_first=True, activation="gelu")
        self.decoder = nn.TransformerDecoder(layer, cfg.layers)
        self.out_norm = nn.LayerNorm(cfg.d_model)
        self.heads = nn.ModuleList(nn.Linear(cfg.d_model, s) for s in self.sizes)
        self.part_head = PartHead(tuple(cfg.channels), self.sizes[0]) if cfg.part_head else None

    def memory(self, crop: torch.Tensor, text: torch.Tensor, text_valid: torch.Tensor, grid=None):
        """``(memory (B, N, d), padding (B, N) bool, True = ignore)``; ``grid``: the crop encoder's grid features
        when already computed."""
        grid = self.cnn.features(crop)[1] if grid is None else grid
        img = self.img_proj(grid.flatten(2).transpose(1, 2)) + self.img_pos
        n = min(text.shape[1], self.config.max_text)
        txt = self.text_proj(text[:, :n]) + self.text_pos[:n]
        pad = torch.cat([torch.zeros(img.shape[:2], dtype=torch.bool, device=img.device), ~text_valid[:, :n]], dim=1)
        return self.mem_norm(torch.cat([img, txt], dim=1)), pad

    def _decode(self, prefix: torch.Tensor, memory: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
        """Hidden states (B, T, d) for ``prefix`` (B, T) int64 tokens (T <= 5, without BOS): BOS + prefix[:, :T-1]."""
        b, t = prefix.shape
        ids = torch.cat([torch.full((b, 1), self.bos, dtype=torch.long, device=prefix.device),
                         prefix[:, : t - 1] + self.offsets[: t - 1]], dim=1)
        x = self.tok_emb(ids) + self.tok_pos[:t]
        causal = torch.triu(torch.full((t, t), float("-inf"), device=x.device), diagonal=1)
        h = self.decoder(x, memory, tgt_mask=causal, memory_key_padding_mask=pad)
        return self.out_norm(h)

    def forward(self, crop, text, text_valid, tokens, parts: bool = False):
        """The logits of each token type (list of (B, size)); with ``parts`` also the part head's (B, n_words,
        S, S) logits (None without a part head)."""
        stem, grid = self.cnn.features(crop)
        memory, pad = self.memory(crop, text, text_valid, grid)
        h = self._decode(tokens, memory, pad)
        logits = [head(h[:, i]) for i, head in enumerate(self.heads)]
        if not parts:
            return logits
        return logits, None if self.part_head is None else self.part_head(stem, grid)

    def part_logits(self, crop: torch.Tensor) -> torch.Tensor:
        """(B, n_words, S, S) part-segmentation logits of crops (B, 5, S, S); ValueError without a part head."""
        if self.part_head is None:
            raise ValueError("this semgrasp network has no part head (config part_head=False)")
        return self.part_head(*self.cnn.features(crop))

    @staticmethod
    def part_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Pixel cross-entropy of part logits (B, n_words, S, S) against ``target`` (B, S, S) int64 word indices
        (-1: ignored, off the product); 0 when no pixel counts."""
        if not bool((target >= 0).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits, target, ignore_index=-1)

    @staticmethod
    def loss(logits: list[torch.Tensor], tokens: torch.Tensor, smoothing: float = 0.0) -> dict[str, torch.Tensor]:
        """Cross-entropy per token type (``loss_<type>``) and their sum (``loss``)."""
        parts = {f"loss_{name}": F.cross_entropy(lg, tokens[:, i], label_smoothing=smoothing)
                 for i, (name, lg) in enumerate(zip(TOKEN_TYPES, logits))}
        return {"loss": sum(parts.values()), **parts}

    @torch.no_grad()
    def token_logp(self, crop, text, text_valid, tokens) -> torch.Tensor:
        """(B, 5) log-probability of each of ``tokens`` (B, 5) given the ones before it and the memory (teacher
        forcing: the score of a grasp somebody else proposed, in the network's own terms)."""
        logits = self(crop, text, text_valid, tokens)
        return torch.stack([F.log_softmax(lg, dim=-1).gather(1, tokens[:, i:i + 1])[:, 0]
                            for i, lg in enumerate(logits)], dim=1)

    @torch.no_grad()
    def generate(self, crop, text, text_valid, part_allowed: torch.Tensor | None = None, branch: int = 1,
                 branch_at: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
        """Greedy decoding, except that token ``branch_at`` takes its ``branch`` most likely values (each followed
        greedily). ``part_allowed`` (B, n_parts) bool restricts the part token. Returns ``(tokens (B, K, 5) int64,
        log-probability (B, K))``, K = min(branch, that token's vocabulary), best first."""
        memory, pad = self.memory(crop, text, text_valid)
        b = crop.shape[0]
        seq = torch.zeros((b, 0), dtype=torch.long, device=crop.device)
        logp = torch.zeros(b, device=crop.device)
        for i, head in enumerate(self.heads):
            step = torch.cat([seq, torch.zeros((seq.shape[0], 1), dtype=torch.long, device=seq.device)], dim=1)
            lp = F.log_softmax(head(self._decode(step, memory, pad)[:, i]), dim=-1)
            if i == 0 and part_allowed is not None:
                lp = lp.masked_fill(~part_allowed.to(torch.bool), float("-inf"))
            if i == branch_at and branch > 1:
                k = min(branch, lp.shape[-1])
                top, idx = lp.topk(k, dim=-1)  # (B, k)
                seq = seq.repeat_interleave(k, dim=0)
                memory, pad = memory.repeat_interleave(k, dim=0), pad.repeat_interleave(k, dim=0)
                logp = logp.repeat_interleave(k) + top.reshape(-1)
                seq = torch.cat([seq, idx.reshape(-1, 1)], dim=1)
                continue
            best, idx = lp.max(dim=-1)
            seq, logp = torch.cat([seq, idx[:, None]], dim=1), logp + best
        k = seq.shape[0] // b
        seq, logp = seq.reshape(b, k, -1), logp.reshape(b, k)
        order = logp.argsort(dim=1, descending=True)
        return torch.gather(seq, 1, order[..., None].expand_as(seq)), torch.gather(logp, 1, order)
