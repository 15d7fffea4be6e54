"""Text embeddings for GraspSAM's text prompt token (``prompt=text``; the issue's "text embedding as a sparse
prompt token").

The embedding is the CLIP text side's L2-normalised projection (:func:`~graspsim.policies.clip_sam.embed.
text_embeddings`), by default of clip_sam's shipped sim-trained CLIP, which knows the catalog's product names
and the instruction phrasings (:data:`~graspsim.policies.clip_sam.vocab.TRAIN_TEMPLATES`). A checkpoint trained
with the token records the CLIP it used (``metadata["text_encoder"]``; None = the shipped one), and the policy
embeds its instructions with the same one.
"""

from __future__ import annotations

import numpy as np


class TextEncoder:
    """A CLIP text side: :meth:`embed` texts -> (N, dim) float32, L2-normalised.

    ``name``: anything ``--clip`` takes (None: clip_sam's shipped CLIP). WeightsNotFoundError when it is missing.
    """

    def __init__(self, name: str | None = None):
        from graspsim.policies.clip_sam.policy import load_clip_and_tokenizer

        self.name = name
        self.model, self.tokenizer = load_clip_and_tokenizer(name)
        self.dim = int(self.model.config.projection_dim)

    def embed(self, texts: list[str]) -> np.ndarray:
        import torch

        from graspsim.policies.clip_sam.embed import text_embeddings

        with torch.inference_mode():
            return text_embeddings(self.model, self.tokenizer, list(texts)).float().numpy()

    def template_table(self) -> np.ndarray:
        """(n_classes, n_templates, dim) float32: every catalog class (class-index order) in every training
        phrasing of the CLIP's text side (:data:`~graspsim.policies.clip_sam.vocab.TRAIN_TEMPLATES`)."""
        from graspsim.policies.clip_sam import vocab

        names = vocab.class_names()
        rows = [self.embed([t.format(n=n) for t in vocab.TRAIN_TEMPLATES]) for n in names]
        return np.stack(rows).astype(np.float32)
