"""Loading and saving CLIP and SAM (transformers), tiny configs, and running SAM on a prompt.

``load_clip`` / ``load_sam`` take a Hugging Face id ("openai/clip-vit-base-patch32",
"facebook/sam-vit-base") or a local directory written by ``save_pretrained``.
When the weights are not there (these machines have no network) they raise
:class:`WeightsNotFoundError`, whose message names what is missing, where it was
looked for and the command that fetches it (``graspsim weights fetch NAME``).

``local_files_only`` defaults to true when ``HF_HUB_OFFLINE`` (or
``TRANSFORMERS_OFFLINE``) is set, so nothing tries the network then.

``tiny_clip_config`` / ``tiny_sam_config`` build small random-init models for
tests and for training from scratch.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from graspsim.learn.checkpoint import METADATA_FILE, read_metadata_file, verify
from graspsim.policies.clip_sam.config import _looks_like_path, _offline
from graspsim.policies.clip_sam.prompts import Prompt
from graspsim.policies.clip_sam.windows import SAM_MEAN_255, SAM_STD_255


class WeightsNotFoundError(FileNotFoundError):
    """Model weights (or config) not found locally and not downloadable."""


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
    import copy
    import tempfile

    from graspsim.fileio import fsync_dir

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


def tiny_clip_config(image_size: int = 64, vocab_size: int = 100, projection_dim: int = 32):
    """A 2-layer, 64-wide CLIP (patch 16) with a ``vocab_size`` vocabulary; ~1 ms per image on CPU.

    ``bos/eos/pad`` token ids are 0/1/1 so they lie inside the small vocabulary:
    the text model pools at the first ``eos_token_id`` in ``input_ids``, so test
    inputs must contain token 1 (e.g. end every sequence with it).
    """
    from transformers import CLIPConfig

    text = dict(vocab_size=vocab_size, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                num_attention_heads=2, max_position_embeddings=32, bos_token_id=0, eos_token_id=1, pad_token_id=1)
    vision = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=2,
                  image_size=image_size, patch_size=16)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=projection_dim)


def tiny_sam_config(image_size: int = 64):
    """A tiny SAM: 2-layer, 32-wide ViT (patch 8, 4x4 windows), 32-channel prompt encoder and decoder.

    SAM needs ``num_pos_feats = output_channels / 2`` in the vision config and
    the same ``hidden_size`` / ``image_size`` / ``patch_size`` in the prompt
    encoder; masks come out at 4x the embedding grid (``image_size / 2``).
    """
    from transformers import SamConfig

    ch = 32
    vision = dict(hidden_size=32, output_channels=ch, num_hidden_layers=2, num_attention_heads=2, image_size=image_size,
                  patch_size=8, window_size=4, global_attn_indexes=[1], num_pos_feats=ch // 2, mlp_dim=64)
    prompt = dict(hidden_size=ch, image_size=image_size, patch_size=8, mask_input_channels=4)
    decoder = dict(hidden_size=ch, mlp_dim=64, num_hidden_layers=2, num_attention_heads=2, iou_head_hidden_dim=32)
    return SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


def tiny_sam_processor(image_size: int = 64):
    """A ``SamProcessor`` matching :func:`tiny_sam_config` (resize longest side, pad to square)."""
    from transformers import SamImageProcessor, SamProcessor

    m = image_size // 2
    ip = SamImageProcessor(size={"longest_edge": image_size}, pad_size={"height": image_size, "width": image_size},
                           mask_size={"longest_edge": m}, mask_pad_size={"height": m, "width": m})
    return SamProcessor(image_processor=ip)


def _sam_inputs_manual(model, image_rgb: np.ndarray, prompt: Prompt) -> tuple[dict[str, torch.Tensor], float, tuple[int, int]]:
    """Resize longest side to the model's image size, normalise, pad bottom/right; scale the prompt."""
    size = int(model.config.vision_config.image_size)
    h, w = image_rgb.shape[:2]
    scale = size / max(h, w)
    nh, nw = max(1, int(round(h * scale))), max(1, int(round(w * scale)))
    interp = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    img = cv2.resize(np.ascontiguousarray(image_rgb[..., :3]).astype(np.float32), (nw, nh), interpolation=interp)
    img = (img - SAM_MEAN_255) / SAM_STD_255
    padded = np.zeros((size, size, 3), dtype=np.float32)
    padded[:nh, :nw] = img
    inputs: dict[str, torch.Tensor] = {"pixel_values": torch.from_numpy(padded.transpose(2, 0, 1)).unsqueeze(0)}
    # per-axis scale of the rounded resize, as SamProcessor does
    sxy = np.array([nw / w, nh / h], dtype=np.float32)
    if prompt.points.shape[0]:
        inputs["input_points"] = torch.from_numpy(prompt.points * sxy).float().reshape(1, 1, -1, 2)
        inputs["input_labels"] = torch.from_numpy(prompt.labels).long().reshape(1, 1, -1)
    if prompt.box is not None:
        inputs["input_boxes"] = torch.from_numpy(prompt.box * np.tile(sxy, 2)).float().reshape(1, 1, 4)
    return inputs, scale, (nh, nw)


def sam_mask(model, processor: Any | None, image_rgb: np.ndarray, prompt: Prompt, return_score: bool = False):
    """Run SAM on one image and prompt; the best mask ``(H, W)`` bool (highest predicted IoU).

    With a ``SamProcessor`` its resizing and ``post_process_masks`` are used;
    with ``processor=None`` the image is resized so its longest side is the
    model's ``vision_config.image_size``, normalised with SAM's mean/std and
    padded (what SamProcessor does). Points/labels/box of ``prompt`` are in the
    image's pixel ``xy`` coordinates. ``return_score=True`` returns ``(mask, iou)``.
    """
    image_rgb = np.asarray(image_rgb)
    if image_rgb.ndim != 3 or image_rgb.shape[2] < 3:
        raise ValueError(f"image_rgb must be (H, W, 3), got shape {image_rgb.shape}")
    h, w = image_rgb.shape[:2]
    device = next(model.parameters()).device
    if processor is not None:
        kwargs: dict[str, Any] = {}
        if prompt.points.shape[0]:
            kwargs["input_points"] = [[prompt.points.tolist()]]
            kwargs["input_labels"] = [[prompt.labels.tolist()]]
        if prompt.box is not None:
            kwargs["input_boxes"] = [[prompt.box.tolist()]]
        enc = processor(images=np.ascontiguousarray(image_rgb[..., :3]), return_tensors="pt", **kwargs)
        inputs = {k: (v.float() if v.is_floating_point() else v).to(device) for k, v in enc.items()
                  if k in ("pixel_values", "input_points", "input_labels", "input_boxes")}
    else:
        inputs, scale, (nh, nw) = _sam_inputs_manual(model, image_rgb, prompt)
        inputs = {k: v.to(device) for k, v in inputs.items()}
    with torch.no_grad():
        out = model(**inputs, multimask_output=True)
    iou = out.iou_scores[0, 0]  # (num_masks,)
    best = int(torch.argmax(iou))
    if processor is not None:
        masks = processor.post_process_masks(out.pred_masks.cpu(), enc["original_sizes"].cpu(),
                                             enc["reshaped_input_sizes"].cpu(), binarize=True)[0]  # (point_batch, num_masks, H, W)
        mask = masks[0, best].numpy().astype(bool)
    else:
        size = int(model.config.vision_config.image_size)
        low = out.pred_masks[0, 0, best].float().cpu().numpy()
        up = cv2.resize(low, (size, size), interpolation=cv2.INTER_LINEAR)[:nh, :nw]
        mask = cv2.resize(up, (w, h), interpolation=cv2.INTER_LINEAR) > 0.0
    return (mask, float(iou[best])) if return_score else mask
