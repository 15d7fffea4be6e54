"""The pretrained weights graspsim's perception stacks use, and where they officially come from.

Each :class:`WeightSpec` names a model, its kind (``clip`` / ``sam`` for
Hugging Face ``save_pretrained`` directories loaded by
:func:`graspsim.policies.clip_sam.models.load_clip` / ``load_sam``;
``sam_checkpoint`` for the original Segment Anything ``.pth`` files), its
official source and the files it needs.

Hashes: no hash here is invented. ``FileSpec.sha256`` is ``None`` where no
full sha256 is publicly documented (all current entries); the first successful
``graspsim weights fetch`` then records the sha256 of what it got in
``weights_dir()/lock.json`` ("trust on first use") and every later fetch and
``verify`` checks against that pinned value. The Segment Anything checkpoints
carry the MD5 sums that are widely published alongside them (the 6-hex suffix
of each file name is the start of its MD5, not of a sha256); fetch checks those
too.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass


class UnknownWeightsError(KeyError):
    """A weights name that is not in the registry (the message lists the valid ones)."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class FileSpec:
    """One file of a model: path relative to the model's directory, expected hashes (None = unknown)."""

    path: str
    sha256: str | None = None
    md5: str | None = None


@dataclass(frozen=True)
class WeightSpec:
    """A fetchable set of pretrained weights.

    * ``source``: ``"hf"`` (``repo_id`` at ``revision``; ``files`` are the
      repository files to fetch) or ``"url"`` (``url``; ``files`` has exactly one
      entry, the local file name).
    * ``size_estimate``: human-readable total download size (approximate).
    * ``licence``: the licence the weights are published under (check the
      source before redistributing).
    """

    name: str
    kind: str  # "clip" | "sam" | "sam_checkpoint"
    description: str
    source: str  # "hf" | "url"
    files: tuple[FileSpec, ...]
    repo_id: str | None = None
    revision: str = "main"
    url: str | None = None
    size_estimate: str = "?"
    licence: str = ""
    homepage: str = ""

    def __post_init__(self) -> None:
        if self.kind not in ("clip", "sam", "sam_checkpoint"):
            raise ValueError(f"{self.name}: unknown kind {self.kind!r}")
        if self.source not in ("hf", "url"):
            raise ValueError(f"{self.name}: unknown source {self.source!r}")
        if self.source == "hf" and not self.repo_id:
            raise ValueError(f"{self.name}: an hf source needs repo_id")
        if self.source == "url" and (not self.url or len(self.files) != 1):
            raise ValueError(f"{self.name}: a url source needs url and exactly one file")
        if not self.files:
            raise ValueError(f"{self.name}: no files")

    @property
    def file_names(self) -> list[str]:
        return [f.path for f in self.files]

    @property
    def source_text(self) -> str:
        if self.source == "hf":
            return f"https://huggingface.co/{self.repo_id} (revision {self.revision})"
        return str(self.url)


_SAM_URL = "https://dl.fbaipublicfiles.com/segment_anything/"


def _sam_checkpoint(size: str, filename: str, md5: str, estimate: str) -> "WeightSpec":
    """An official Segment Anything ``.pth`` checkpoint (its file name carries the start of its MD5)."""
    return WeightSpec(
        name=f"sam_vit_{size}",
        kind="sam_checkpoint",
        description=f"Segment Anything ViT-{size.upper()} original checkpoint (.pth)",
        source="url",
        url=_SAM_URL + filename,
        files=(FileSpec(filename, md5=md5),),
        size_estimate=estimate,
        licence=_SAM_LICENCE,
        homepage="https://github.com/facebookresearch/segment-anything",
    )


_SAM_LICENCE = "Apache-2.0 (Segment Anything, Meta AI)"

_SPECS = [
    WeightSpec(
        name="clip-vit-base-patch32",
        kind="clip",
        description="OpenAI CLIP ViT-B/32 (transformers format): Grad-CAM / attention prompts of clip_sam",
        source="hf",
        repo_id="openai/clip-vit-base-patch32",
        files=tuple(FileSpec(p) for p in (
            "config.json", "model.safetensors", "preprocessor_config.json", "tokenizer.json",
            "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
        )),
        size_estimate="~610 MB",
        licence="MIT (OpenAI CLIP model card; see the repository)",
        homepage="https://huggingface.co/openai/clip-vit-base-patch32",
    ),
    WeightSpec(
        name="sam-vit-base",
        kind="sam",
        description="Segment Anything ViT-B (transformers format): SAM masks of clip_sam",
        source="hf",
        repo_id="facebook/sam-vit-base",
        files=tuple(FileSpec(p) for p in ("config.json", "model.safetensors", "preprocessor_config.json")),
        size_estimate="~375 MB",
        licence=_SAM_LICENCE,
        homepage="https://huggingface.co/facebook/sam-vit-base",
    ),
    *(
        _sam_checkpoint(size, filename, md5, estimate)
        for size, filename, md5, estimate in (
            ("b", "sam_vit_b_01ec64.pth", "01ec64d29a2fca3f0661936605ae66f8", "~375 MB"),
            ("l", "sam_vit_l_0b3195.pth", "0b3195507c641ddb6910d2bb5adee89c", "~1.25 GB"),
            ("h", "sam_vit_h_4b8939.pth", "4b8939a88964f0f4ff5f5b2642c598a6", "~2.56 GB"),
        )
    ),
]

#: name -> spec. Tests may monkeypatch entries in (``monkeypatch.setitem(REGISTRY, ...)``).
REGISTRY: dict[str, WeightSpec] = {s.name: s for s in _SPECS}

# The Hugging Face ids load_clip / load_sam accept map onto registry names too.
ALIASES: dict[str, str] = {s.repo_id: s.name for s in _SPECS if s.repo_id is not None}


def get_spec(name: str) -> WeightSpec:
    """The spec for ``name`` (a registry name or a Hugging Face id alias); UnknownWeightsError otherwise."""
    key = ALIASES.get(name, name)
    if key in REGISTRY:
        return REGISTRY[key]
    close = difflib.get_close_matches(name, list(REGISTRY), n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise UnknownWeightsError(f"unknown weights {name!r}{hint}; known: {', '.join(REGISTRY)}")
