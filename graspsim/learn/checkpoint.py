"""Checkpoint directories of every stack: ``model.safetensors`` + ``metadata.json`` holding the weights' sha256.

``metadata.json`` records what the stack wants (config, data, seed, metrics,
...) plus ``"sha256": {file: hex digest}``, added by :func:`write_metadata`
(written last, atomically) and checked on load (older checkpoints have no
digest: nothing to check). Only safetensors and json: inference code imports
this module without the training loop.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Mapping

from graspsim.fileio import atomic_write, atomic_write_json
from graspsim.weights.store import hash_file  # the one file hashing in graspsim

WEIGHTS_FILE = "model.safetensors"
METADATA_FILE = "metadata.json"


class CheckpointError(ValueError):
    """A checkpoint file is damaged (unreadable, truncated, or not what its metadata.json records)."""


class ChecksumError(CheckpointError):
    """A weight file's sha256 differs from the one its metadata.json records."""


def save_weights(directory: Path, tensors: Mapping[str, Any]) -> None:
    """Write ``tensors`` (name -> torch tensor on any device, e.g. a ``state_dict()``) as
    ``directory/model.safetensors`` (CPU tensors: the file loads on any machine)."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    atomic_write(Path(directory) / WEIGHTS_FILE, lambda tmp: save_file(state, str(tmp)))


def write_metadata(directory: Path, metadata: Mapping[str, Any], files: tuple[str, ...] = (WEIGHTS_FILE,)) -> dict:
    """Write ``metadata`` + the sha256 of ``files`` as ``directory/metadata.json``; returns what was written."""
    meta = {**metadata, "sha256": {name: hash_file(Path(directory) / name)["sha256"] for name in files}}
    atomic_write_json(Path(directory) / METADATA_FILE, meta)
    return meta


def read_metadata(directory: Path) -> dict:
    """The parsed ``metadata.json``; FileNotFoundError naming the directory and the missing file(s),
    CheckpointError naming a metadata file that is not a JSON object."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"checkpoint directory {directory} does not exist")
    missing = [f for f in (WEIGHTS_FILE, METADATA_FILE) if not (directory / f).is_file()]
    if missing:
        raise FileNotFoundError(f"checkpoint directory {directory} is incomplete: missing {', '.join(missing)}")
    return read_metadata_file(directory / METADATA_FILE)


def read_metadata_file(path: Path) -> dict:
    """A checkpoint's ``metadata.json`` as a dict; CheckpointError (naming the file) if it is not one."""
    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise CheckpointError(f"{path} is damaged: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise CheckpointError(f"{path} is damaged: not a JSON object")
    return meta


def verify(directory: Path, metadata: Mapping[str, Any]) -> None:
    """ChecksumError if a file named in ``metadata["sha256"]`` does not have that digest."""
    for name, want in (metadata.get("sha256") or {}).items():
        got = hash_file(Path(directory) / name)["sha256"]
        if got != want:
            raise ChecksumError(f"{Path(directory) / name} is damaged or was replaced: its sha256 is {got[:12]}..., "
                                f"metadata.json records {want[:12]}...")


def load_weights(directory: Path, metadata: Mapping[str, Any] | None = None) -> dict:
    """``directory/model.safetensors`` as name -> tensor, after :func:`verify` (``metadata`` read if not given)."""
    from safetensors.torch import load_file

    verify(directory, read_metadata(directory) if metadata is None else metadata)
    try:
        return load_file(str(Path(directory) / WEIGHTS_FILE))
    except Exception as exc:  # safetensors raises its own error type for a truncated or garbled file
        raise CheckpointError(f"{Path(directory) / WEIGHTS_FILE} is damaged: {str(exc).splitlines()[0]}") from None
