"""The GraspSAM network: a frozen SAM with adapters, an HQ mask token and four grasp tokens (nn.Modules only).

Shapes for a SAM of input side ``S`` (128 for the shipped one), patch ``p``, embedding grid ``g = S / p``,
decoder width ``C``; ``M = 4 g`` (``8 g`` with ``config.hires``) is the side of every output map, covering
the same square window of the camera image as the input (window pixels, not image pixels):

* Image encoder (frozen): SAM's ViT blocks, each followed by a :class:`ReinAdapter` (trainable): the
  block's tokens ``(B, g, g, D)`` attend to a few learnable tokens and add a small residual, zero at
  initialisation, so the untrained network is exactly SAM. SAM's neck gives the embedding ``(B, C, g, g)``.
* Prompt encoder (frozen): points ``(B, 1, N, 2)`` / labels ``(B, 1, N)`` (1 positive, 0 negative,
  -10 padding) and / or a box ``(B, 1, 4)``, in window pixels at ``S``; nothing for "no prompt". With
  ``config.text_dim`` > 0 a text embedding ``(B, text_dim)`` (trainable :attr:`GraspSamNet.text_proj`, a 2-layer
  MLP) becomes one more sparse prompt token ``(B, 1, 1, C)``, appended after SAM's; and, with
  ``config.text_adapter_rank`` > 0, every encoder block is followed (after its adapter) by a
  :class:`TextAdapter` that lets the text reweigh the image tokens (zero-initialised; only with a text
  prompt). SAM's frozen decoder was trained to segment what a prompt's *position* points at; a token without
  a position can only say what to look for if the image features it attends to carry the product's identity,
  which SAM's class-agnostic features (and adapters trained on point and box prompts) need not.
* Mask decoder (frozen transformer and upscaling): SAM's output tokens plus one HQ mask token and four grasp
  tokens (trainable, as in SAM-HQ / GraspSAM) go through SAM's two-way transformer with the prompt tokens.
* Fused high-resolution features (trainable, SAM-HQ's scheme): SAM's upscaled decoder features ``(B, C/8,
  4g, 4g)`` through a conv block, plus the encoder embedding upsampled 4x, plus the early encoder block's
  features upsampled 4x; with ``hires`` one more learned 2x upsampling.
* Heads: each new token through its own 3-layer MLP to ``C/8`` numbers, dotted with the fused map at every
  pixel: the object mask logits (SAM's own single-mask logits plus the HQ token's correction, so SAM's
  mask is the starting point) and the maps ``quality``, ``cos`` (cos 2 theta), ``sin`` (sin 2 theta), ``width``
  (see :class:`~.config.GraspSamConfig`).

The SAM module is used, never modified: the same instance can serve clip_sam's pipeline (language prompts).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from graspsim.policies.graspsam.config import GraspSamConfig

MAP_KEYS = ("quality", "cos", "sin", "width")


class ReinAdapter(nn.Module):
    """Rein-style adapter after one ViT block: ``x + up(gelu(softmax(x T^T / sqrt(D)) value(T)))``.

    ``x``: (B, h, w, D) tokens; ``T``: (m, D) learnable tokens; ``up`` is zero-initialised, so the adapter
    starts as the identity and only learns a residual.
    """

    def __init__(self, dim: int, num_tokens: int, rank: int):
        super().__init__()
        self.tokens = nn.Parameter(torch.randn(num_tokens, dim) * dim ** -0.5)
        self.value = nn.Linear(dim, rank)
        self.up = nn.Linear(rank, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)
        self.scale = dim ** -0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        attn = torch.softmax((x @ self.tokens.t()) * self.scale, dim=-1)  # (B, h, w, m)
        return x + self.up(F.gelu(attn @ self.value(self.tokens)))


class TextAdapter(nn.Module):
    """Text-conditioned residual after one ViT block: ``x + up(gelu(a(x) * b(t)))``.

    ``x``: (B, h, w, D) tokens; ``t``: (B, text_dim) text embedding; ``a``: D -> r and ``b``: text_dim -> r
    (the product gates the image features by what the text asks for); ``up``: r -> D, zero-initialised (the
    adapter starts as the identity).
    """

    def __init__(self, dim: int, text_dim: int, rank: int):
        super().__init__()
        self.a = nn.Linear(dim, rank)
        self.b = nn.Linear(text_dim, rank)
        self.up = nn.Linear(rank, dim)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, x: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return x + self.up(F.gelu(self.a(x) * self.b(text)[:, None, None, :]))


class _LayerNorm2d(nn.Module):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


def _up4(cin: int, cmid: int, cout: int) -> nn.Sequential:
    """4x learned upsampling (two 2x transposed convs), SAM's decoder upscaling shape."""
    return nn.Sequential(nn.ConvTranspose2d(cin, cmid, 2, 2), _LayerNorm2d(cmid), nn.GELU(),
                         nn.ConvTranspose2d(cmid, cout, 2, 2))


class _TokenMLP(nn.Module):
    """3-layer MLP of one output token: (..., C) -> (..., C/8), as SAM's hypernetwork MLPs."""

    def __init__(self, dim: int, out: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class GraspSamNet(nn.Module):
    """Frozen ``sam`` (a transformers ``SamModel``) + the trainable GraspSAM parts (module docstring).

    Only the trainable parts are this module's parameters for saving (:meth:`trainable_state_dict`); the SAM is
    held as ``self.sam`` with ``requires_grad`` off and kept in eval mode.
    """

    def __init__(self, sam, config: GraspSamConfig | None = None):
        super().__init__()
        self.config = cfg = config or GraspSamConfig()
        self.sam = sam
        for p in sam.parameters():
            p.requires_grad_(False)
        vc, dc = sam.config.vision_config, sam.config.mask_decoder_config
        dim, ch = int(vc.hidden_size), int(dc.hidden_size)
        if not 0 <= cfg.early_layer < int(vc.num_hidden_layers):
            raise ValueError(f"early_layer {cfg.early_layer} outside the encoder's {vc.num_hidden_layers} blocks")
        self.image_size, self.grid = int(vc.image_size), int(vc.image_size) // int(vc.patch_size)
        self.map_size = self.grid * (8 if cfg.hires else 4)
        self.adapters = nn.ModuleList([ReinAdapter(dim, cfg.adapter_tokens, cfg.adapter_rank)
                                       for _ in range(int(vc.num_hidden_layers))] if cfg.adapter_tokens > 0 else [])
        c8 = ch // 8
        self.hq_token = nn.Parameter(torch.randn(1, ch) * 0.02)
        self.grasp_tokens = nn.Parameter(torch.randn(len(MAP_KEYS), ch) * 0.02)
        self.embedding_up = _up4(ch, ch // 4, c8)  # SAM's embedding -> 4g
        self.early_up = _up4(dim, ch // 4, c8)  # early encoder features -> 4g
        self.decoder_feature = nn.Sequential(nn.Conv2d(c8, c8, 3, padding=1), _LayerNorm2d(c8), nn.GELU(),
                                             nn.Conv2d(c8, c8, 3, padding=1))
        self.hires_up = nn.Sequential(nn.ConvTranspose2d(c8, c8, 2, 2), _LayerNorm2d(c8), nn.GELU(),
                                      nn.Conv2d(c8, c8, 3, padding=1)) if cfg.hires else None
        self.hq_mlp = _TokenMLP(ch, c8)
        self.grasp_mlps = nn.ModuleList([_TokenMLP(ch, c8) for _ in MAP_KEYS])
        # the text prompt token (GraspSAM's "language" prompt fed to the decoder directly, not as a box)
        self.text_proj = (nn.Sequential(nn.Linear(cfg.text_dim, ch), nn.GELU(), nn.Linear(ch, ch))
                          if cfg.text_dim > 0 else None)
        self.text_adapters = nn.ModuleList(
            [TextAdapter(dim, cfg.text_dim, cfg.text_adapter_rank) for _ in range(int(vc.num_hidden_layers))]
            if cfg.text_dim > 0 and cfg.text_adapter_rank > 0 else [])

    def train(self, mode: bool = True):
        super().train(mode)
        self.sam.eval()  # frozen: no dropout, whatever the trainer asks
        return self

    def trainable_state_dict(self) -> dict[str, torch.Tensor]:
        """The trainable parameters by name (what a checkpoint stores; the SAM is loaded from its own files)."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("sam.")}

    def parameter_counts(self) -> dict[str, int]:
        """``{"trainable": n, "frozen": n}`` parameters: what GraspSAM adds to SAM (whether a run trains all of it
        or not) and SAM's own (always frozen)."""
        trainable = sum(p.numel() for name, p in self.named_parameters() if not name.startswith("sam."))
        return {"trainable": int(trainable), "frozen": int(sum(p.numel() for p in self.sam.parameters()))}

    def encode(self, pixel_values: torch.Tensor, text: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 3, S, S) normalised pixels (and the (B, text_dim) text embedding the text adapters take, if any)
        -> ``(embedding (B, C, g, g), early features (B, D, g, g))``."""
        enc = self.sam.vision_encoder
        x = enc.patch_embed(pixel_values)
        if enc.pos_embed is not None:
            x = x + enc.pos_embed
        early = None
        for i, layer in enumerate(enc.layers):
            x = layer(x)
            x = x[0] if isinstance(x, tuple) else x
            if self.adapters:
                x = self.adapters[i](x)
            if text is not None and self.text_adapters:
                x = self.text_adapters[i](x, text)
            if i == self.config.early_layer:
                early = x
        return enc.neck(x), early.permute(0, 3, 1, 2)

    def forward(self, pixel_values: torch.Tensor, input_points: torch.Tensor | None = None,
                input_labels: torch.Tensor | None = None, input_boxes: torch.Tensor | None = None,
                text_embeds: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Prompts in window pixels at ``S`` and / or ``text_embeds`` (B, text_dim) (module docstring) -> ``mask``
        (B, M, M) logits, the four maps (B, M, M) and ``sam_mask`` (B, M, M) SAM's own logits (upsampled), all
        in window coordinates."""
        if text_embeds is not None:
            if self.text_proj is None:
                raise ValueError("this graspsam network has no text prompt token (config.text_dim is 0)")
            text_embeds = text_embeds.to(pixel_values.dtype)
        emb, early = self.encode(pixel_values, text_embeds)
        sparse, dense = self.sam.prompt_encoder(input_points=input_points, input_labels=input_labels,
                                                input_boxes=input_boxes, input_masks=None)
        if text_embeds is not None:
            token = self.text_proj(text_embeds)[:, None, None, :]  # (B, 1, 1, C)
            sparse = token if sparse is None else torch.cat([sparse.to(token.dtype), token], dim=2)
        tokens_out, upscaled = self._decode(emb, sparse, dense)
        dec = self.sam.mask_decoder
        b = emb.shape[0]
        flat = upscaled.flatten(2)  # (B, C/8, (4g)^2)
        sam_logits = (dec.output_hypernetworks_mlps[0](tokens_out[:, 1]).unsqueeze(1) @ flat).view(b, 1, *upscaled.shape[-2:])
        fused = self.decoder_feature(upscaled) + self.embedding_up(emb) + self.early_up(early)
        if self.hires_up is not None:
            fused = self.hires_up(fused)
            sam_logits = F.interpolate(sam_logits, size=fused.shape[-2:], mode="bilinear", align_corners=False)
        n_sam = 1 + dec.num_mask_tokens
        heads = torch.stack([self.hq_mlp(tokens_out[:, n_sam])] +
                            [mlp(tokens_out[:, n_sam + 1 + i]) for i, mlp in enumerate(self.grasp_mlps)], dim=1)
        maps = (heads @ fused.flatten(2)).view(b, heads.shape[1], *fused.shape[-2:])  # (B, 5, M, M)
        out = {"mask": maps[:, 0] + sam_logits[:, 0], "sam_mask": sam_logits[:, 0]}
        out.update({k: maps[:, 1 + i] for i, k in enumerate(MAP_KEYS)})
        return out

    def _decode(self, emb: torch.Tensor, sparse: torch.Tensor | None, dense: torch.Tensor):
        """SAM's mask decoder with the extra tokens: ``(output tokens (B, T, C), upscaled features (B, C/8, 4g, 4g))``.

        Token order: SAM's IoU token, its mask tokens, the HQ token, the grasp tokens, then the prompt tokens.
        """
        dec, b = self.sam.mask_decoder, emb.shape[0]
        tokens = torch.cat([dec.iou_token.weight, dec.mask_tokens.weight, self.hq_token, self.grasp_tokens], dim=0)
        tokens = tokens[None, None].expand(b, 1, -1, -1)
        if sparse is not None:
            tokens = torch.cat([tokens, sparse.to(tokens.dtype)], dim=2)
        pos = self.sam.get_image_wide_positional_embeddings().expand(b, -1, -1, -1)
        queries, keys = dec.transformer(point_embeddings=tokens, image_embeddings=emb + dense,
                                        image_positional_embeddings=pos, attention_similarity=None)
        c, g = emb.shape[1], emb.shape[-1]
        feats = keys[:, 0].transpose(1, 2).reshape(b, c, g, g)
        up = dec.activation(dec.upscale_layer_norm(dec.upscale_conv1(feats)))
        return queries[:, 0], dec.activation(dec.upscale_conv2(up))

