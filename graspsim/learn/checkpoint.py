"""Checkpoint directories: ``model.safetensors`` + ``metadata.json`` (+ the weights' sha256), for every stack.

A checkpoint directory holds the weights (safetensors; det_seg writes them
here, the transformers models with ``save_pretrained`` beside a ``config.json``)
and ``metadata.json``: what the stack wants to record (config, data, seed,
metrics, ...) plus ``"sha256": {file name: hex digest}`` of the weight files,
added by :func:`write_metadata` and checked by :func:`verify` / :func:`load_weights`
(checkpoints written before the digest existed simply have none). Every file
is replaced atomically; ``metadata.json`` is written last, so a directory whose
metadata names a digest holds the weights it describes.

Only safetensors, hashlib and json: inference code imports this module without
the training loop.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Mapping

from graspsim.fileio import atomic_write, atomic_write_json

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"


class ChecksumError(ValueError):
    """A weight file's sha256 differs from the one its metadata.json records."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_weights(directory: Path, tensors: Mapping[str, Any]) -> Path:
    """Write ``tensors`` (name -> torch tensor, e.g. a ``state_dict()``) to ``directory/model.safetensors`` atomically."""
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().clone() for k, v in tensors.items()}
    path = Path(directory) / WEIGHTS_FILE
    atomic_write(path, lambda tmp: save_file(state, str(tmp)))
    return path


def write_metadata(directory: Path, metadata: Mapping[str, Any], files: tuple[str, ...] = (WEIGHTS_FILE,)) -> dict:
    """Write ``metadata`` + the sha256 of ``files`` (in ``directory``) as ``metadata.json``; returns what was written."""
    directory = Path(directory)
    meta = {**metadata, "sha256": {name: file_sha256(directory / name) for name in files}}
    atomic_write_json(directory / METADATA_FILE, meta)
    return meta


def read_metadata(directory: Path, required: tuple[str, ...] = (WEIGHTS_FILE, METADATA_FILE)) -> dict:
    """The parsed ``metadata.json``; FileNotFoundError naming the directory and every missing ``required`` file."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory {directory} does not exist")
    missing = [f for f in required if not (directory / f).is_file()]
    if missing:
        raise FileNotFoundError(f"checkpoint directory {directory} is incomplete: missing {', '.join(missing)}")
    return json.loads((directory / METADATA_FILE).read_text(encoding="utf-8"))


def verify(directory: Path, metadata: Mapping[str, Any]) -> None:
    """ChecksumError if a file named in ``metadata["sha256"]`` does not have that digest (no digests: nothing to do)."""
    for name, want in (metadata.get("sha256") or {}).items():
        got = file_sha256(Path(directory) / name)
        if got != want:
            raise ChecksumError(f"{Path(directory) / name} is damaged or was replaced: sha256 {got[:12]}..., "
                                f"metadata.json records {want[:12]}...")


def load_weights(directory: Path, metadata: Mapping[str, Any] | None = None) -> dict:
    """``model.safetensors`` of ``directory`` as name -> tensor, after :func:`verify` (metadata read if not given)."""
    from safetensors.torch import load_file

    directory = Path(directory)
    verify(directory, read_metadata(directory) if metadata is None else metadata)
    return load_file(str(directory / WEIGHTS_FILE))
