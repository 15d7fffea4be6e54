"""``graspsim train sam``: train a small SAM (transformers ``SamModel``) on rendered product masks.

Samples (:func:`~.train_data.sam_batch`): a window around one product instance
with a point prompt (1-3 positive points inside the product, sometimes a
negative point on a neighbour; window sized from depth) or a box prompt (the
instance box with noise, sometimes a point too), and the instance mask in the
window. Steps alternate between point and box batches (SAM's prompt encoder
needs the same prompt layout across a batch).

Loss, as SAM's: per predicted mask, focal loss x 20 + dice loss; only the best
of the 3 masks (lowest loss) is trained (SAM's ambiguity-aware loss), and the
IoU head regresses every mask's actual IoU (MSE).

Validation (each epoch, scenes with seed % 10 == 0): mean IoU at image
resolution of the mask pasted back from the window, for point prompts (a
random interior point) and box prompts (the ground-truth box), via
:func:`~.segment.segment_windows` - the code path the policy runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from graspsim.policies.clip_sam.train_data import (SceneBank, interior_point, rounded, run_metadata, sam_batch,
                                                   train_run)

IMAGE_SIZE = 128


def sim_sam_config(image_size: int = IMAGE_SIZE, width: int = 128, layers: int = 4, channels: int = 96):
    """The shipped SAM architecture: ViT ``width`` x ``layers`` (patch 8, 8x8 windows, global attention in the
    2nd and last layer), ``channels``-wide neck, prompt encoder and 2-layer two-way mask decoder."""
    from transformers import SamConfig

    vision = dict(hidden_size=width, output_channels=channels, num_hidden_layers=layers,
                  num_attention_heads=max(1, width // 32), image_size=image_size, patch_size=8, window_size=8,
                  global_attn_indexes=[1, layers - 1], num_pos_feats=channels // 2, mlp_dim=4 * width)
    prompt = dict(hidden_size=channels, image_size=image_size, patch_size=8, mask_input_channels=8)
    decoder = dict(hidden_size=channels, mlp_dim=4 * channels, num_hidden_layers=2, num_attention_heads=4,
                   iou_head_hidden_dim=channels)
    return SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


def _focal(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Per-mask sigmoid focal loss, mean over pixels: ``(..., H, W) -> (...)``."""
    p = torch.sigmoid(logits)
    ce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p_t = p * target + (1 - p) * (1 - target)
    a_t = alpha * target + (1 - alpha) * (1 - target)
    return (a_t * ce * (1 - p_t) ** gamma).mean(dim=(-2, -1))


def _dice(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    p = torch.sigmoid(logits)
    num = 2 * (p * target).sum(dim=(-2, -1)) + 1.0
    den = p.sum(dim=(-2, -1)) + target.sum(dim=(-2, -1)) + 1.0
    return 1.0 - num / den


def _draw(bank: SceneBank, batch_size: int, mask_side: int, hard_boxes: bool):
    """The batch function: ``rng -> (prompt mode, sam_batch)``; point and box batches alternate at random."""

    def draw(rng: np.random.Generator) -> tuple[str, dict]:
        mode = "point" if rng.random() < 0.5 else "box"
        return mode, sam_batch(bank, rng, batch_size, mode, IMAGE_SIZE, mask_side, hard_boxes=hard_boxes)

    return draw


def _step(model, batch: tuple[str, dict]) -> dict[str, torch.Tensor]:
    """The step function: SAM's loss on one batch (see the module docstring)."""
    mode, b = batch
    inputs: dict[str, torch.Tensor] = {"pixel_values": torch.from_numpy(b["pixels"])}
    labels = torch.from_numpy(b["labels"])
    if mode == "point" or bool((labels != -10).any()):
        inputs["input_points"] = torch.from_numpy(b["points"]).float()[:, None]
        inputs["input_labels"] = labels[:, None]
    if mode == "box":
        inputs["input_boxes"] = torch.from_numpy(b["boxes"]).float()[:, None]
    out = model(**inputs, multimask_output=True)
    logits = out.pred_masks[:, 0]  # (B, 3, m, m)
    target = torch.from_numpy(b["masks"])[:, None].expand_as(logits)
    per_mask = 20.0 * _focal(logits, target) + _dice(logits, target)  # (B, 3)
    best = per_mask.argmin(dim=1)
    mask_loss = per_mask.gather(1, best[:, None]).mean()
    with torch.no_grad():
        pred = logits > 0
        tgt = target > 0.5
        inter = (pred & tgt).sum(dim=(-2, -1)).float()
        union = (pred | tgt).sum(dim=(-2, -1)).float()
        actual = torch.where(union > 0, inter / union.clamp(min=1), torch.ones_like(union))
    iou_loss = F.mse_loss(out.iou_scores[:, 0], actual)
    return {"loss": mask_loss + iou_loss, "mask": mask_loss.detach(), "iou_head": iou_loss.detach(),
            "iou": actual.gather(1, best[:, None]).mean()}


def validate_sam(model, bank: SceneBank, n: int, seed: int = 99) -> dict[str, float]:
    """Mean image-resolution IoU of point- and box-prompted masks on ``n`` validation instances each."""
    from graspsim.policies.clip_sam.evaluate import mask_iou
    from graspsim.policies.clip_sam.prompts import Prompt
    from graspsim.policies.clip_sam.segment import segment_windows

    rng = np.random.default_rng(seed)
    ious: dict[str, list[float]] = {"point": [], "box": []}
    for i in range(n):
        scene = bank.scenes[i % len(bank)]
        if not scene.instances:
            continue
        inst, _, box = scene.instances[int(rng.integers(len(scene.instances)))]
        gt = scene.instance == inst
        p = interior_point(gt, rng)
        prompts = {"point": Prompt("point", p[None], np.ones(1)), "box": Prompt("box", np.zeros((0, 2)), np.zeros(0), box)}
        for mode, prompt in prompts.items():
            wm = segment_windows(model, scene.rgb, scene.depth_m, scene.K, [prompt])[0]
            ious[mode].append(mask_iou(wm.mask, gt))
    return {f"val_iou_{k}": float(np.mean(v)) if v else float("nan") for k, v in ious.items()}


def train_sam(data_dirs: list[str | Path], out_dir: str | Path, *, batch_size: int = 16, width: int = 128,
              layers: int = 4, channels: int = 96, init: str | None = None, val_instances: int = 150,
              hard_boxes: bool = False, **loop) -> dict[str, Any]:
    """Train (or fine-tune, ``init``) a SAM on rendered datasets; writes a loadable model dir to ``out_dir``.

    The other keywords (``epochs``, ``steps_per_epoch``, ``lr``, ``seed``, ``resume``, ``max_minutes``,
    ``threads``, ``progress``, ``log``): those of :func:`~.train_data.train_run`. Returns the metadata (also
    ``out_dir/metadata.json``); run directory and resume: :mod:`graspsim.learn.loop`.
    """
    settings = {"batch_size": batch_size, "width": width, "layers": layers, "channels": channels, "init": init,
                "hard_boxes": hard_boxes, "val_instances": val_instances}
    return train_run("sam", data_dirs, out_dir, settings, _stack, **loop)


def _stack(cfg, settings: dict[str, Any], train_bank: SceneBank, val_bank: SceneBank):
    """The :class:`~graspsim.learn.loop.Stack` of a SAM run (``settings`` of :func:`train_sam`): model, batches,
    validation, saving."""
    from graspsim.learn.loop import Stack
    from graspsim.learn.sampling import RunStream
    from graspsim.policies.clip_sam.models import load_sam, save_model

    init, batch_size, hard_boxes = settings["init"], settings["batch_size"], settings["hard_boxes"]
    if init:
        model = load_sam(init)[0].float()  # checkpoints are stored in float16; train in float32
    else:
        from transformers import SamModel

        model = SamModel(sim_sam_config(**{k: settings[k] for k in ("width", "layers", "channels")}))
    vc = model.config.vision_config
    if int(vc.image_size) != IMAGE_SIZE:
        raise ValueError(f"train sam uses {IMAGE_SIZE} px windows; the model expects {vc.image_size} px")

    def save(out: Path, progress) -> dict:
        save_model(model, out)
        return {**run_metadata("sam", cfg, init, train_bank, val_bank, progress), "batch_size": batch_size,
                "hard_boxes": hard_boxes,
                "preprocess": {"image_size": IMAGE_SIZE, "windows": "see graspsim/policies/clip_sam/segment.py"}}

    mask_side = 4 * int(vc.image_size) // int(vc.patch_size)  # SAM's low-resolution masks: 4x the embedding grid
    sampler = RunStream(settings["steps_per_epoch"], cfg.seed, _draw(train_bank, batch_size, mask_side, hard_boxes))
    return Stack(model=model, sampler=sampler, step=lambda b: _step(model, b),
                 validate=lambda: rounded(validate_sam(model, val_bank, settings["val_instances"])), save=save)
