"""Loading and saving CLIP and SAM (transformers).

``load_clip`` / ``load_sam`` take a Hugging Face id ("openai/clip-vit-base-patch32",
"facebook/sam-vit-base") or a local directory written by ``save_pretrained``.
When the weights are not there (these machines have no network) they raise
:class:`WeightsNotFoundError`, whose message names what is missing, where it was
looked for and the command that fetches it (``graspsim weights fetch NAME``).

``local_files_only`` defaults to true when ``HF_HUB_OFFLINE`` (or
``TRANSFORMERS_OFFLINE``) is set, so nothing tries the network then.
"""

from __future__ import annotations

import copy
import os
import tempfile
from pathlib import Path

from graspsim.fileio import fsync_dir
from graspsim.learn.checkpoint import METADATA_FILE, read_metadata_file, verify
from graspsim.policies.clip_sam.config import MissingModelError, _looks_like_path, _offline

#: Model weights (or config) not found locally and not downloadable: clip_sam's one "missing model" error.
WeightsNotFoundError = MissingModelError


def _missing(kind: str, name: str, is_path: bool, cause: BaseException | None) -> WeightsNotFoundError:
    if is_path:
        where = f"local directory {Path(name).expanduser()}"
        what = ("it has no loadable config.json + weights (model.safetensors) written by save_pretrained"
                if Path(name).expanduser().is_dir() else "the directory does not exist")
    else:
        from huggingface_hub import constants  # comes with transformers

        where = f"the Hugging Face cache {constants.HF_HUB_CACHE} (offline={_offline()})"
        what = f"no cached copy of {name!r} and it could not be downloaded"
    msg = (f"{kind} weights {name!r} not found: {what}; looked in {where}. "
           f"Fetch them on a machine with network access with `graspsim weights fetch {name}` "
           f"(or pass a local directory written by save_pretrained).")
    if cause is not None:
        msg += f" [{type(cause).__name__}: {str(cause).splitlines()[0] if str(cause) else ''}]"
    return WeightsNotFoundError(msg)


def _load(kind: str, model_cls, processor_loaders, name_or_path: str | os.PathLike, local_files_only: bool | None, device):
    name = str(name_or_path)
    is_path = isinstance(name_or_path, os.PathLike) or _looks_like_path(name)
    if local_files_only is None:
        local_files_only = _offline()
    if is_path:
        path = Path(name).expanduser()
        if not path.is_dir() or not (path / "config.json").is_file():
            raise _missing(kind, name, True, None)
        if (path / METADATA_FILE).is_file():  # written by `graspsim train clip|sam`: check the weights' sha256
            verify(path, read_metadata_file(path / METADATA_FILE))
        name = str(path)
    try:
        model = model_cls.from_pretrained(name, local_files_only=local_files_only)
    except (OSError, ValueError) as exc:  # OSError: missing files / no network; ValueError: bad repo id
        raise _missing(kind, name, is_path, exc) from exc
    model = model.to(device).eval()
    for loader in processor_loaders:  # the first one that loads
        try:
            return model, loader.from_pretrained(name, local_files_only=local_files_only)
        except (OSError, ValueError, TypeError, KeyError):
            pass
    return model, None


def save_model(model, out_dir: str | Path, tokenizer=None) -> None:
    """``save_pretrained`` of a float16 copy of ``model`` (+ ``tokenizer``'s files) into ``out_dir``, each file
    replaced atomically. A deepcopy, not a model built from the config: that would draw from torch's generator."""
    from transformers.utils import logging as hf_logging

    out = Path(out_dir)
    half = copy.deepcopy(model).half()
    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # a "Writing model shards" bar after every epoch is noise
    try:
        with tempfile.TemporaryDirectory(dir=out, prefix=".save-") as tmp:
            half.save_pretrained(tmp, safe_serialization=True)
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
            for f in sorted(Path(tmp).iterdir()):
                os.replace(f, out / f.name)
    finally:
        if bar:
            hf_logging.enable_progress_bar()
    fsync_dir(out)


def load_clip(name_or_path: str | os.PathLike, local_files_only: bool | None = None, device: str = "cpu"):
    """``(CLIPModel in eval mode, processor or None)``.

    The processor is a ``CLIPProcessor`` when tokenizer files are present, else a
    ``CLIPImageProcessor`` when only image-processor files are, else None (then
    the caller tokenises itself: the CLIP tokenizer needs vocab.json/merges.txt,
    which cannot be downloaded here).
    """
    from transformers import CLIPImageProcessor, CLIPModel, CLIPProcessor

    return _load("CLIP", CLIPModel, (CLIPProcessor, CLIPImageProcessor), name_or_path, local_files_only, device)


def load_sam(name_or_path: str | os.PathLike, local_files_only: bool | None = None, device: str = "cpu"):
    """``(SamModel in eval mode, SamProcessor or None)``; see :func:`load_clip`."""
    from transformers import SamModel, SamProcessor

    return _load("SAM", SamModel, (SamProcessor,), name_or_path, local_files_only, device)


def load_any_sam(name: str | os.PathLike | None, device: str = "cpu"):
    """A float32 ``SamModel`` in eval mode from anything ``--sam`` takes: None (the shipped sim-trained one), a
    `graspsim weights` name, a Hugging Face id, a ``save_pretrained`` directory or an official ``.pth``.

    Raises :class:`WeightsNotFoundError` when it is not on this machine.
    """
    from graspsim.policies.clip_sam.config import resolve_model

    path = resolve_model(name, "sam")
    if path.endswith(".pth"):
        from graspsim.policies.clip_sam.sam_convert import load_official_sam

        model = load_official_sam(path, device=device)
    else:
        model, _ = load_sam(path, device=device)
    return model.float().eval()
