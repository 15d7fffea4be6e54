"""CLIP embeddings used by training, the pipeline and evaluation (``transformers.CLIPModel``).

All embeddings are L2-normalised projections (CLIP's joint space):

* :func:`image_embeddings`: pooled image embedding ``(B, P)`` and, optionally,
  every patch token through CLIP's post-LayerNorm and visual projection
  ``(B, N, P)``; inputs of another size than the model's use interpolated
  position embeddings (crops are classified at half size);
* :func:`text_embeddings`: ``(T, P)`` for a list of texts;
* :func:`class_text_embeddings`: ``(24, P)`` per catalog class, the mean over
  the prompt ensemble :data:`~.vocab.CLASSIFY_TEMPLATES`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from graspsim.policies.clip_sam import vocab


def image_embeddings(model, pixels: torch.Tensor, with_patches: bool):
    """``(pooled (B, P), patches (B, N, P) or None)`` for normalised ``pixels`` (B, 3, S, S)."""
    size = pixels.shape[-1]
    interpolate = size != int(model.config.vision_config.image_size)
    out = model.vision_model(pixel_values=pixels, interpolate_pos_encoding=interpolate)
    pooled = F.normalize(model.visual_projection(out.pooler_output), dim=-1)
    patches = None
    if with_patches:
        tokens = model.vision_model.post_layernorm(out.last_hidden_state[:, 1:])
        patches = F.normalize(model.visual_projection(tokens), dim=-1)
    return pooled, patches


def text_embeddings(model, tokenizer, texts: list[str]) -> torch.Tensor:
    ids, mask = vocab.tokenize(tokenizer, texts)
    out = model.text_model(input_ids=ids, attention_mask=mask)
    return F.normalize(model.text_projection(out.pooler_output), dim=-1)


def class_text_embeddings(model, tokenizer, templates=vocab.CLASSIFY_TEMPLATES) -> torch.Tensor:
    """(24, P) normalised mean embedding of each class over ``templates`` (CLIP prompt ensembling)."""
    names = vocab.class_names()
    embs = [text_embeddings(model, tokenizer, [t.format(n=n) for n in names]) for t in templates]
    return F.normalize(torch.stack(embs).mean(0), dim=-1)
