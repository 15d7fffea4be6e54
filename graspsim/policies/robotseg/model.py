"""The RobotSeg network: a small SAM 2 (transformers ``Sam2Model``, built from :class:`~.config.RobotSegConfig`)
with a robot prompt generator and a video memory encoder. nn.Modules only.

Shapes for an input side ``S`` (256 by default), embedding width ``D`` and grid ``g = S / 16``:

* ``pixels`` (B, 3, S, S) float32, ImageNet-normalised RGB (the letterbox of :mod:`.predictor`);
* SAM 2's Hiera + FPN give the stride-16 embedding (B, D, g, g) and stride-4 / stride-8 skip features that
  SAM 2's mask decoder uses for its upsampling;
* **robot prompt generator** (:class:`PromptGenerator`): ``rpg_queries`` learned queries that cross-attend to
  the embedding (+ its positional encoding) and to each other, giving (B, Q, D) prompt tokens: the decoder
  needs no click. User prompts (points / a box, in input pixels of the S x S frame) are embedded by SAM 2's
  own prompt encoder and appended to those tokens;
* **outputs**: SAM 2's decoder has 4 mask tokens; its 3 multimask slots are trained as ``arm``, ``gripper``
  and ``whole`` (:data:`~.config.OUTPUTS`): ``logits`` (B, 3, S/4, S/4);
* **video memory** (:class:`MemoryEncoder`, a documented simpler stand-in for SAM 2's memory attention, which
  does not fit the 2-core CPU budget): the previous frame's three mask logits (B, 3, S/4, S/4) are encoded by
  a 3-channel copy of SAM 2's mask downsampler to (B, D, g, g) and added to the image embedding where SAM 2
  adds its ``no_memory_embedding`` when there is no memory (as SAM 2 does for a frame without memories);
* **refinement head** (:class:`Refiner`, config ``refine`` > 0): the S/4 logits refined at S x S from the picture
  itself: ``fine`` (B, 3, S, S). Why: a stride-4 mask is 4 input pixels (5 of a 320x240 render at S = 256) per
  cell, too coarse for the boundary F-measure's 3-pixel tolerance and for a gripper finger a few pixels wide.
"""

from __future__ import annotations

import torch
from torch import nn

from graspsim.policies.robotseg.config import RobotSegConfig


def sam2_config(cfg: RobotSegConfig):
    """The transformers ``Sam2Config`` of a :class:`RobotSegConfig` (random init; nothing is downloaded)."""
    from transformers import Sam2Config
    from transformers.models.sam2.configuration_sam2 import (Sam2HieraDetConfig, Sam2MaskDecoderConfig,
                                                             Sam2PromptEncoderConfig, Sam2VisionConfig)

    s, d = cfg.image_size, cfg.hiera_dim
    dims = [d, 2 * d, 4 * d, 8 * d]
    backbone = Sam2HieraDetConfig(
        hidden_size=d, num_attention_heads=cfg.heads[0], image_size=[s, s], blocks_per_stage=list(cfg.blocks),
        embed_dim_per_stage=dims, num_attention_heads_per_stage=list(cfg.heads),
        window_size_per_stage=list(cfg.windows), global_attention_blocks=[sum(cfg.blocks[:3]) - 1],
        window_positional_embedding_background_size=[7, 7])
    vision = Sam2VisionConfig(backbone_config=backbone, backbone_channel_list=dims[::-1],
                              backbone_feature_sizes=[[s // 4, s // 4], [s // 8, s // 8], [s // 16, s // 16]],
                              fpn_hidden_size=cfg.dim)
    prompt = Sam2PromptEncoderConfig(hidden_size=cfg.dim, image_size=s, patch_size=16)
    decoder = Sam2MaskDecoderConfig(hidden_size=cfg.dim, mlp_dim=4 * cfg.dim, num_attention_heads=cfg.decoder_heads,
                                    iou_head_hidden_dim=cfg.dim, num_multimask_outputs=3)
    return Sam2Config(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


class PromptGenerator(nn.Module):
    """Robot Prompt Generator: learned queries -> (B, Q, D) prompt tokens from the image embedding.

    Each layer: cross-attention from the queries to the g*g image tokens (keys carry the positional encoding),
    self-attention among the queries, an MLP; post-norm residuals as in SAM's two-way transformer.
    """

    def __init__(self, dim: int, n_queries: int, n_layers: int, heads: int):
        super().__init__()
        self.queries = nn.Parameter(torch.randn(n_queries, dim) * 0.02)
        self.cross = nn.ModuleList(nn.MultiheadAttention(dim, heads, batch_first=True) for _ in range(n_layers))
        self.self_attn = nn.ModuleList(nn.MultiheadAttention(dim, heads, batch_first=True) for _ in range(n_layers))
        self.mlp = nn.ModuleList(nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
                                 for _ in range(n_layers))
        self.norms = nn.ModuleList(nn.LayerNorm(dim) for _ in range(3 * n_layers))

    def forward(self, embedding: torch.Tensor, pos: torch.Tensor) -> torch.Tensor:
        """``embedding``, ``pos``: (B, D, g, g) -> (B, Q, D)."""
        values = embedding.flatten(2).transpose(1, 2)
        keys = values + pos.flatten(2).transpose(1, 2)
        q = self.queries.unsqueeze(0).expand(embedding.shape[0], -1, -1)
        for i, (cross, self_attn, mlp) in enumerate(zip(self.cross, self.self_attn, self.mlp)):
            q = self.norms[3 * i](q + cross(q, keys, values, need_weights=False)[0])
            q = self.norms[3 * i + 1](q + self_attn(q, q, q, need_weights=False)[0])
            q = self.norms[3 * i + 2](q + mlp(q))
        return q


class MemoryEncoder(nn.Module):
    """The previous frame's (B, 3, S/4, S/4) mask logits -> (B, D, S/16, S/16): SAM 2's mask downsampler
    (two stride-2 convs with channel LayerNorm and GELU, then a 1x1 conv) with 3 input channels. Logits are
    squashed by ``tanh(x / 4)`` first so a confident mask and a very confident one read alike."""

    def __init__(self, dim: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(3, 16, 2, stride=2), nn.GroupNorm(1, 16), nn.GELU(),
                                 nn.Conv2d(16, 32, 2, stride=2), nn.GroupNorm(1, 32), nn.GELU(),
                                 nn.Conv2d(32, dim, 1))

    def forward(self, logits: torch.Tensor) -> torch.Tensor:
        return self.net(torch.tanh(logits / 4.0))


def _conv_block(conv: nn.Conv2d) -> list[nn.Module]:
    """``conv`` followed by GroupNorm (at most 4 groups) and GELU: the unit of the refinement and part heads."""
    c = conv.out_channels
    return [conv, nn.GroupNorm(min(4, c), c), nn.GELU()]


def _dilated_convs(channels: int, dilations: tuple[int, ...]) -> list[nn.Module]:
    """One :func:`_conv_block` of a same-size 3x3 convolution per dilation."""
    return [m for d in dilations for m in _conv_block(nn.Conv2d(channels, channels, 3, padding=d, dilation=d))]


class Refiner(nn.Module):
    """S/4 mask logits -> S x S logits sharpened with the picture's pixels (after SAM-HQ's high-quality output).

    Input at S x S: the normalised picture (3 channels), the coarse logits upsampled bilinearly and squashed by
    ``tanh(x / 4)`` (3) and the stride-4 skip features upsampled (D/8). A stride-2 3x3 convolution to S/2, three
    3x3 convolutions there (dilations 1, 2, 1), each with GroupNorm and GELU, and a 1x1 convolution to 2 x 2
    sub-pixels of the 3 outputs (pixel shuffle back to S x S) added to the upsampled logits. Why S/2 inside: a
    quarter of the cost of working at S x S, while the sub-pixel outputs still place an edge to one input pixel.
    The last convolution starts at zero: an untrained head returns the coarse masks upsampled.
    """

    def __init__(self, channels: int, skip_channels: int):
        super().__init__()
        c_in = 3 + 3 + skip_channels
        self.body = nn.Sequential(*_conv_block(nn.Conv2d(c_in, channels, 3, stride=2, padding=1)),
                                  *_dilated_convs(channels, (1, 2, 1)))
        self.head = nn.Sequential(nn.Conv2d(channels, 3 * 4, 1), nn.PixelShuffle(2))
        nn.init.zeros_(self.head[0].weight)
        nn.init.zeros_(self.head[0].bias)

    def forward(self, pixels: torch.Tensor, logits: torch.Tensor, s0: torch.Tensor) -> torch.Tensor:
        """``pixels`` (B, 3, S, S), ``logits`` (B, 3, S/4, S/4), ``s0`` (B, D/8, S/4, S/4) -> (B, 3, S, S) logits."""
        size = pixels.shape[-2:]
        up = nn.functional.interpolate(logits, size=size, mode="bilinear", align_corners=False)
        skip = nn.functional.interpolate(s0, size=size, mode="bilinear", align_corners=False)
        return up + self.head(self.body(torch.cat([pixels, torch.tanh(up / 4.0), skip], dim=1)))


class PartHead(nn.Module):
    """A correction to the three S/4 mask logits from the encoder's features, for the parts (above all the gripper).

    Why: SAM 2's decoder draws every mask as a dot product of a token with the same ``D/8``-channel stride-4 map
    (8 channels at D = 64), and the three outputs share it; on the all-white Panda the gripper came out as "the
    white blob at the end of the arm" (hand, link 7 and more), even on its own training pictures. This head sees
    the features themselves: the stride-16 embedding (D), the stride-8 (D/4) and stride-4 (D/8) skips, all at S/4,
    and the decoder's squashed logits (3); a 1x1 convolution to ``channels``, three 3x3 convolutions (dilations 1,
    2, 4: a receptive field of ~15 cells, 60 input pixels, a hand with its link), each with GroupNorm and GELU,
    and a 1x1 convolution to the three corrections, added to the decoder's logits. The last convolution starts at zero: an untrained head returns
    the decoder's masks (a checkpoint without the head loads into a network with one and predicts the same).
    """

    def __init__(self, channels: int, dim: int):
        super().__init__()
        c_in = dim + dim // 4 + dim // 8 + 3
        # a 1x1 convolution brings the 91 channels (D = 64) down first: the 3x3s then cost a fifth as much
        self.body = nn.Sequential(*_conv_block(nn.Conv2d(c_in, channels, 1)), *_dilated_convs(channels, (1, 2, 4)))
        self.head = nn.Conv2d(channels, 3, 1)
        nn.init.zeros_(self.head.weight)
        nn.init.zeros_(self.head.bias)

    def forward(self, logits: torch.Tensor, emb: torch.Tensor, s0: torch.Tensor, s1: torch.Tensor) -> torch.Tensor:
        """``logits`` (B, 3, S/4, S/4), ``emb`` (B, D, g, g), ``s0`` (B, D/8, S/4, S/4), ``s1`` (B, D/4, S/8, S/8)
        -> corrected logits (B, 3, S/4, S/4)."""
        size = logits.shape[-2:]
        up = [nn.functional.interpolate(x, size=size, mode="bilinear", align_corners=False) for x in (emb, s1)]
        return logits + self.head(self.body(torch.cat([*up, s0, torch.tanh(logits / 4.0)], dim=1)))


class RobotSegNet(nn.Module):
    """SAM 2 + robot prompt generator + memory encoder; :meth:`forward` -> ``{"logits", "iou"}``."""

    def __init__(self, cfg: RobotSegConfig):
        super().__init__()
        from transformers import Sam2Model

        self.cfg = cfg
        self.sam = Sam2Model(sam2_config(cfg))
        self.rpg = PromptGenerator(cfg.dim, cfg.rpg_queries, cfg.rpg_layers, cfg.decoder_heads)
        self.memory_encoder = MemoryEncoder(cfg.dim) if cfg.memory else None
        self.refiner = Refiner(cfg.refine, cfg.dim // 8) if cfg.refine else None
        self.part_head = PartHead(cfg.part_head, cfg.dim) if cfg.part_head else None

    @property
    def image_size(self) -> int:
        return self.cfg.image_size

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def image_features(self, pixels: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``(embedding (B, D, g, g), s0 (B, D/8, S/4, S/4), s1 (B, D/4, S/8, S/8), pixels (B, 3, S, S))``: one
        encoder pass, reusable for several prompts (the pixels travel along for the refinement head)."""
        b = pixels.shape[0]
        maps = self.sam.get_image_features(pixels, return_dict=True).fpn_hidden_states
        sizes = self.sam.backbone_feature_sizes
        s0, s1, emb = (m.permute(1, 2, 0).reshape(b, -1, *size) for m, size in zip(maps, sizes))
        return emb, s0, s1, pixels

    def decode(self, features, points: torch.Tensor | None = None, labels: torch.Tensor | None = None,
               boxes: torch.Tensor | None = None, memory: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Masks from :meth:`image_features`' output.

        ``points`` (B, N, 2) x, y in input pixels (0..S) with ``labels`` (B, N) (1 positive, 0 negative, -10
        padding); ``boxes`` (B, 4) x0, y0, x1, y1 input pixels; ``memory`` (B, 3, S/4, S/4): the previous
        frame's logits. Returns ``logits`` (B, 3, S/4, S/4) (arm, gripper, whole), ``iou`` (B, 3) and, with a
        refinement head, ``fine`` (B, 3, S, S).
        """
        emb, s0, s1, pixels = features
        b, d = emb.shape[:2]
        if memory is None:
            emb = emb + self.sam.no_memory_embedding.view(1, d, 1, 1)
        elif self.memory_encoder is None:
            raise ValueError("this RobotSeg model was built without a video memory (config memory=false)")
        else:
            emb = emb + self.memory_encoder(memory)
        pos = self.sam.get_image_wide_positional_embeddings().expand(b, -1, -1, -1)
        tokens = self.rpg(emb, pos)
        if points is not None or boxes is not None:
            user, _ = self.sam.prompt_encoder(
                input_points=None if points is None else points[:, None],
                input_labels=None if labels is None else labels[:, None],
                input_boxes=None if boxes is None else boxes[:, None], input_masks=None)
            tokens = torch.cat([tokens, user[:, 0]], dim=1)
        dense = self.sam.prompt_encoder.no_mask_embed.weight.reshape(1, d, 1, 1).expand(b, d, *emb.shape[-2:])
        masks, iou, _, _ = self.sam.mask_decoder(
            image_embeddings=emb, image_positional_embeddings=pos, sparse_prompt_embeddings=tokens[:, None],
            dense_prompt_embeddings=dense, multimask_output=True, high_resolution_features=[s0, s1])
        out = {"logits": masks[:, 0], "iou": iou[:, 0]}
        if self.part_head is not None:
            out["logits"] = self.part_head(out["logits"], emb, s0, s1)
        if self.refiner is not None:
            out["fine"] = self.refiner(pixels, out["logits"], s0)
        return out

    def forward(self, pixels: torch.Tensor, **prompts) -> dict[str, torch.Tensor]:
        """``pixels`` (B, 3, S, S) -> :meth:`decode` (keywords: ``points``, ``labels``, ``boxes``, ``memory``)."""
        return self.decode(self.image_features(pixels), **prompts)
