"""Texts and the word-level tokenizer of the sim-trained CLIP.

CLIP's own BPE tokenizer needs vocabulary files that cannot be downloaded on
these machines, so the CLIP trained here uses a small word-level tokenizer
(``tokenizers`` WordLevel, lower-cased, whitespace/punctuation split) saved as
a ``PreTrainedTokenizerFast`` next to the weights (``tokenizer.json``): any
``AutoTokenizer.from_pretrained(dir)`` loads it. Sequences are
``<bos> words <eos> <pad>...``; the CLIP text model pools at the first ``<eos>``
(token id 1), which is why ``<eos>`` is not id 2 (transformers treats
``eos_token_id == 2`` as the legacy "pool at argmax id" rule).

Words outside the vocabulary become ``<unk>``: the sim-trained text side knows
the catalog's product names and instruction phrasings only (see
:data:`TRAIN_TEMPLATES`); real CLIP (``--clip openai/clip-vit-base-patch32``)
brings its own tokenizer.
"""

from __future__ import annotations

import re

import numpy as np

SPECIAL_TOKENS = ("<bos>", "<eos>", "<pad>", "<unk>")
BOS_ID, EOS_ID, PAD_ID, UNK_ID = 0, 1, 2, 3
MAX_LENGTH = 16

# Templates the text side is trained on; "{n}" is the product's display name.
TRAIN_TEMPLATES: tuple[str, ...] = (
    "pick the {n}", "pick up the {n}", "grab the {n}", "get the {n}", "take the {n}", "the {n}",
    "a {n}", "a photo of a {n}", "{n}", "please pick the {n}", "get me the {n}", "pick a {n}",
)
# Part-steered phrasings (graspsim.policies.clip_sam.gradcam.part_steered_text output).
PART_TEMPLATES: tuple[str, ...] = ("the {p} of a {n}", "the {p} of an {n}", "pick the {n} by its {p}")
# Ensemble for classifying crops (standard CLIP prompt ensembling).
CLASSIFY_TEMPLATES: tuple[str, ...] = ("pick the {n}", "a photo of a {n}", "the {n}", "{n}")
BACKGROUND_TEXT = "background"
EXTRA_WORDS = ("background", "shelf", "table", "wall", "floor", "product", "item", "object", "an", "one", "this",
               "that", "from", "on", "in", "with", "and", "to", "for", "bottle", "box", "can", "bag", "cup")


def class_names() -> list[str]:
    """Display names of the catalog classes, in class-index order ("soda can", ...)."""
    from graspsim.assets.catalog import CATALOG

    return [c.display_name for c in CATALOG]


def words(text: str) -> list[str]:
    return re.findall(r"[a-z0-9]+", text.lower())


def vocabulary() -> list[str]:
    """All words of the templates, part words, class names and a few extras, sorted (after the specials)."""
    from graspsim.policies.clip_sam.gradcam import PART_WORDS

    found: set[str] = set(EXTRA_WORDS) | set(PART_WORDS)
    for t in TRAIN_TEMPLATES + PART_TEMPLATES + CLASSIFY_TEMPLATES:
        found.update(words(t.replace("{n}", "").replace("{p}", "")))
    for name in class_names():
        found.update(words(name))
    return list(SPECIAL_TOKENS) + sorted(found)


def build_tokenizer():
    """A ``PreTrainedTokenizerFast`` over :func:`vocabulary` (``<bos> ... <eos>``, max length 16)."""
    from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(vocabulary())}
    tok = Tokenizer(WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A <eos>", special_tokens=[("<bos>", BOS_ID), ("<eos>", EOS_ID)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
                                   unk_token="<unk>", model_max_length=MAX_LENGTH)


def tokenize(tokenizer, texts: list[str]):
    """``(input_ids, attention_mask)`` int64 tensors (B, L), padded to the longest, truncated to 16 tokens.

    Truncation keeps the final ``<eos>`` (the CLIP text model pools there).
    """
    import torch

    enc = tokenizer(list(texts), padding=True, truncation=True, max_length=MAX_LENGTH, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    eos_id = tokenizer.eos_token_id
    if eos_id is not None:
        # A truncated sequence may have lost its <eos>: put it on the last real token.
        lengths = mask.sum(dim=1)
        for b in range(ids.shape[0]):
            last = int(lengths[b]) - 1
            if not bool((ids[b, : last + 1] == eos_id).any()):
                ids[b, last] = eos_id
    return ids.to(torch.long), mask.to(torch.long)


def training_texts(class_name: str, rng: np.random.Generator) -> str:
    """One random training phrasing for ``class_name`` (display name), parts included now and then."""
    from graspsim.policies.clip_sam.gradcam import PART_WORDS

    if rng.random() < 0.15:
        t = PART_TEMPLATES[int(rng.integers(len(PART_TEMPLATES)))]
        return t.format(n=class_name, p=PART_WORDS[int(rng.integers(len(PART_WORDS)))])
    return TRAIN_TEMPLATES[int(rng.integers(len(TRAIN_TEMPLATES)))].format(n=class_name)
