"""The instruction as the decoder reads it: MiniLM token states of the FULL instruction string.

The pretrained all-MiniLM-L6-v2 (:mod:`graspsim.policies.clip_sam.minilm`, offline)
knows English beyond the catalog's words, so held-out phrasings ("lift the ketchup
bottle, gripping it at the cap") read like the trained ones; its per-token
states (not the pooled sentence vector) keep the part word a token of its own
that the decoder can attend to, wherever the phrasing puts it.
"""

from __future__ import annotations

import numpy as np


class TextStates:
    """``states(texts) -> (float32 (B, max_text, dim), bool (B, max_text) valid)``, cached per text."""

    def __init__(self, max_text: int, encoder=None):
        from transformers.utils import logging as hf_logging

        from graspsim.policies.clip_sam.minilm import MiniLM

        hf_logging.disable_progress_bar()  # a loading bar per worker is noise in a benchmark log
        self.max_text = int(max_text)
        self.encoder = encoder or MiniLM()  # MiniLMUnavailableError (how to install it) when missing
        self.cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def states(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        todo = sorted({t for t in texts if t not in self.cache})
        for i in range(0, len(todo), 64):
            chunk = todo[i:i + 64]
            hidden, valid = self.encoder.token_states(chunk, max_length=self.max_text)
            for t, h, v in zip(chunk, hidden.float().numpy(), valid.numpy()):
                self.cache[t] = (h[v].astype(np.float32), np.ones(int(v.sum()), dtype=bool))
        dim = next(iter(self.cache.values()))[0].shape[1] if self.cache else 384
        out = np.zeros((len(texts), self.max_text, dim), dtype=np.float32)
        valid = np.zeros((len(texts), self.max_text), dtype=bool)
        for i, t in enumerate(texts):
            h, v = self.cache[t]
            out[i, :len(h)], valid[i, :len(v)] = h, v
        return out, valid
