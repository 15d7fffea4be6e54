"""``graspsim train clip``: train a small CLIP (transformers ``CLIPModel``) on rendered scenes.

The same code fine-tunes a real pretrained CLIP (``--init openai/clip-vit-base-patch32``
with its own tokenizer); by default it trains :func:`sim_clip_config` from
scratch with the word-level tokenizer of :mod:`.vocab`.

Loss (sum of three terms, all on CLIP's own similarity ``logit_scale * cos``):

* crops: softmax over the 24 class texts for product crops (CLIP's
  image-to-text contrastive loss with the class texts as the candidates);
* images (full frames and depth-sized zoom windows): multi-label sigmoid over
  the class texts (a scene shows several products), with its own learned temperature and bias;
* patches: every patch token, passed through CLIP's post-LayerNorm and visual
  projection, is classified against the 24 class texts plus the text
  "background" (labels from the class masks). This dense term is what makes
  Grad-CAM of the image-text score land on the right product at this tiny
  scale and data size; the policy still uses plain Grad-CAM of the pooled
  similarity (:func:`graspsim.policies.clip_sam.gradcam.clip_gradcam`).
* Grad-CAM (``cam_weight > 0``, off by default): the dense term alone does not
  make Grad-CAM of the *pooled* score localise (peak on the target ~0.3), so
  this term trains the map itself, as attention-guided training does (GAIN, Li
  et al. 2018): for each frame / window and one product class present in it,
  Grad-CAM of ``scale * cos(pooled, text)`` at the policy's site (input of the
  last layer's first LayerNorm, plain channel-mean weights) is computed with a
  differentiable gradient (double back-propagation), standardised over the
  patches, and the loss is ``-log`` of the softmax mass (sharpness
  :data:`CAM_SHARPNESS`) on that class's patches: its peak should lie on them.

Validation (each epoch, scenes with seed % 10 == 0): crop top-1 / top-5 with the
:data:`~.vocab.CLASSIFY_TEMPLATES` ensemble, patch accuracy, and the rate at
which the Grad-CAM peak of "pick the X" on a full frame falls on class X.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from graspsim.policies.clip_sam import vocab
from graspsim.policies.clip_sam.embed import class_text_embeddings, image_embeddings, text_embeddings
from graspsim.policies.clip_sam.gradcam import cam_from_grad
from graspsim.policies.clip_sam.train_data import (N_CLASSES, SceneBank, clip_batch, clip_crop_sample,
                                                   clip_image_sample, rounded, run_metadata, scene_with_instances,
                                                   train_run)
from graspsim.policies.clip_sam.windows import CLIP_MEAN, CLIP_STD

IMAGE_SIZE = 224
CROP_SIZE = 112
PATCH = 16
IMAGE_LOSS_WEIGHT = 2.0
CAM_SHARPNESS = 4.0  # softmax sharpness on the standardised Grad-CAM map: peaks ~1 std above the rest win


def sim_clip_config(vocab_size: int, image_size: int = IMAGE_SIZE, width: int = 128, layers: int = 4):
    """The shipped CLIP architecture: ViT ``width``-wide x ``layers`` (patch 16) and a 3-layer text transformer."""
    from transformers import CLIPConfig

    text = dict(vocab_size=vocab_size, hidden_size=128, intermediate_size=512, num_hidden_layers=3,
                num_attention_heads=2, max_position_embeddings=vocab.MAX_LENGTH, bos_token_id=vocab.BOS_ID,
                eos_token_id=vocab.EOS_ID, pad_token_id=vocab.PAD_ID)
    vision = dict(hidden_size=width, intermediate_size=4 * width, num_hidden_layers=layers,
                  num_attention_heads=max(1, width // 64), image_size=image_size, patch_size=PATCH)
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=128)


def _draw(bank: SceneBank, sizes: dict[str, int], cam: bool = False, hue_deg: float = 0.0):
    """The batch function: ``rng -> (clip_batch, class texts)``, the texts drawn from the same generator
    (``hue_deg``: products' hues shifted, :func:`~.train_data.shift_product_hues`).

    ``cam``: also ``cam_class`` (n_full + n_zoom,) int64, one class drawn among those with patches in each
    image (-1 when none), for the Grad-CAM term (drawn last, so batches without it are unchanged)."""
    names = vocab.class_names()

    def draw(rng: np.random.Generator) -> tuple[dict, list[str]]:
        b = clip_batch(bank, rng, sizes["n_full"], sizes["n_zoom"], sizes["n_crops"], IMAGE_SIZE,
                       IMAGE_SIZE // PATCH, CROP_SIZE, hue_deg)
        texts = [vocab.training_texts(n, rng) for n in names] + [vocab.BACKGROUND_TEXT]
        if cam:
            b["cam_class"] = np.array([_cam_class(g, rng) for g in b["grid"]], dtype=np.int64)
        return b, texts

    return draw


def _cam_class(grid: np.ndarray, rng: np.random.Generator) -> int:
    """A product class with at least one patch in the class grid ``grid`` (g, g), uniformly; -1 if none."""
    present = np.unique(grid[(grid >= 0) & (grid < N_CLASSES)])
    return int(present[int(rng.integers(present.size))]) if present.size else -1


def cam_localisation_loss(act: torch.Tensor, score: torch.Tensor, cam_class: torch.Tensor,
                          grid: torch.Tensor) -> torch.Tensor:
    """Mean ``-log`` softmax mass of the differentiable Grad-CAM map on the drawn class's patches.

    ``act`` (B, 1 + N, C): the hooked activations the scores were computed from (class token first);
    ``score`` (B,): each image's ``scale * cos(pooled, text of cam_class)``; ``cam_class`` (B,) int64 (-1: the
    image is skipped); ``grid`` (B, N) patch class labels. Grad-CAM as :func:`~.gradcam.clip_gradcam` with
    ``method="gradcam"`` (channel weights = mean gradient over the patches), before ReLU and min-max scaling,
    which do not move the peak; the gradient is kept in the graph (``create_graph``) so the loss trains it.
    """
    keep = cam_class >= 0
    if not bool(keep.any()):
        return act.new_zeros(())
    (grad,) = torch.autograd.grad(score[keep].sum(), act, create_graph=True)
    z = cam_from_grad(act[keep][:, 1:], grad[keep][:, 1:], "gradcam")  # (b, N)
    z = (z - z.mean(dim=1, keepdim=True)) / (z.std(dim=1, keepdim=True) + 1e-6)
    logp = F.log_softmax(CAM_SHARPNESS * z, dim=1)
    on_target = grid[keep] == cam_class[keep][:, None]
    return -torch.logsumexp(logp.masked_fill(~on_target, float("-inf")), dim=1).mean()


def _step(model, tokenizer, bias: torch.nn.Parameter, ml_scale: torch.nn.Parameter,
          batch: tuple[dict, list[str]], cam_weight: float = 0.0) -> dict[str, torch.Tensor]:
    """The step function: crop, image and patch losses of one batch (see the module docstring)."""
    b, texts = batch
    t = text_embeddings(model, tokenizer, texts)  # (25, P)
    scale = model.logit_scale.exp().clamp(max=100.0)
    captured: dict[str, torch.Tensor] = {}
    hook = None
    if cam_weight > 0:  # the policy's Grad-CAM site: input of the last layer, as its first LayerNorm sees it
        hook = model.vision_model.encoder.layers[-1].layer_norm1.register_forward_hook(
            lambda _m, _i, out: captured.__setitem__("act", out))
    try:
        pooled, patches = image_embeddings(model, torch.from_numpy(b["images"]), with_patches=True)
    finally:
        if hook is not None:
            hook.remove()
    crops, _ = image_embeddings(model, torch.from_numpy(b["crops"]), with_patches=False)
    crop_loss = F.cross_entropy(scale * crops @ t[:N_CLASSES].T, torch.from_numpy(b["crop_class"]))
    pres = torch.from_numpy(b["presence"])
    # own temperature and bias: presence is a per-class yes/no, not a softmax over classes
    logits = ml_scale.exp() * (pooled @ t[:N_CLASSES].T) + bias
    weight = (pres >= 0).float()
    image_loss = (F.binary_cross_entropy_with_logits(logits, pres.clamp(min=0), reduction="none") * weight).sum() \
        / weight.sum().clamp(min=1)
    grid = torch.from_numpy(b["grid"]).reshape(-1)
    patch_logits = scale * patches.reshape(-1, patches.shape[-1]) @ t.T
    patch_loss = F.cross_entropy(patch_logits, grid, ignore_index=-100)
    loss = crop_loss + IMAGE_LOSS_WEIGHT * image_loss + patch_loss
    out = {"crop": crop_loss.detach(), "image": image_loss.detach(), "patch": patch_loss.detach()}
    if cam_weight > 0:
        cam_class = torch.from_numpy(b["cam_class"])
        # the score Grad-CAM differentiates: CLIP's logit (unclamped scale, as CLIPModel's logits_per_image)
        score = model.logit_scale.exp() * (pooled * t[cam_class.clamp(min=0)]).sum(dim=-1)
        cam_loss = cam_localisation_loss(captured["act"], score, cam_class,
                                         torch.from_numpy(b["grid"]).reshape(len(cam_class), -1))
        loss = loss + cam_weight * cam_loss
        out["cam"] = cam_loss.detach()
    return {"loss": loss, **out}


#: The hue shift of the validation's "new flavour" crops: that of the catalog's unseen variants (40 degrees).
VAL_HUE_DEG = 40.0


@torch.no_grad()
def crop_topk(model, tokenizer, bank: SceneBank, n: int, seed: int = 1234, hue_deg: float = 0.0,
              suffix: str = "") -> dict[str, float]:
    """Top-1 / top-5 class accuracy on ``n`` product crops of ``bank`` (fixed seed: same crops every epoch);
    ``hue_deg`` > 0: every product first hue-shifted by exactly that much, either way (new flavour colours;
    keys ``clip_top1{suffix}``)."""
    from dataclasses import replace

    from graspsim.policies.clip_sam.train_data import shift_product_hues

    rng = np.random.default_rng(seed)
    text = class_text_embeddings(model, tokenizer)
    xs, ys = [], []
    for _ in range(n):
        scene = scene_with_instances(bank, rng)
        if hue_deg > 0:
            scene = replace(scene, rgb=shift_product_hues(scene.rgb, scene.instance, rng, hue_deg, p=1.0, value=0.0,
                                                          min_deg=hue_deg))
        x, y = clip_crop_sample(scene, CROP_SIZE, rng)
        xs.append(x)
        ys.append(y)
    emb, _ = image_embeddings(model, torch.from_numpy(np.stack(xs)), with_patches=False)
    order = torch.argsort(emb @ text.T, dim=1, descending=True)
    y = torch.tensor(ys)[:, None]
    return {f"clip_top1{suffix}": float((order[:, :1] == y).any(1).float().mean()),
            f"clip_top5{suffix}": float((order[:, :5] == y).any(1).float().mean())}


def cam_hit_rate(model, tokenizer, bank: SceneBank, n: int, seed: int = 4321) -> dict[str, float]:
    """Share of full frames where the Grad-CAM peak of "pick the X" lies on a pixel of class X."""
    from graspsim.policies.clip_sam.gradcam import clip_gradcam, upsample_cam

    rng = np.random.default_rng(seed)
    names = vocab.class_names()
    hits, patch_ok, patch_n = 0, 0, 0
    for i in range(n):
        scene = bank.scenes[i % len(bank)]
        x, pres, grid = clip_image_sample(scene, IMAGE_SIZE, IMAGE_SIZE // PATCH, rng, zoom=False)
        present = np.nonzero(pres > 0)[0]
        if present.size == 0:
            continue
        c = int(present[int(rng.integers(present.size))])
        ids, mask = vocab.tokenize(tokenizer, [f"pick the {names[c]}"])
        cam = clip_gradcam(model, torch.from_numpy(x)[None], ids, mask)
        up = upsample_cam(cam, scene.class_map.shape)
        r, col = np.unravel_index(int(np.argmax(up)), up.shape)
        hits += int(scene.class_map[r, col] == c)
        with torch.no_grad():
            _, patches = image_embeddings(model, torch.from_numpy(x)[None], with_patches=True)
            t = text_embeddings(model, tokenizer, [f"pick the {m}" for m in names] + [vocab.BACKGROUND_TEXT])
            pred = (patches[0] @ t.T).argmax(-1).numpy()
        g = grid.reshape(-1)
        patch_ok += int((pred[g >= 0] == g[g >= 0]).sum())
        patch_n += int((g >= 0).sum())
    return {"cam_peak_on_target": hits / max(1, n), "patch_accuracy": patch_ok / max(1, patch_n)}


def train_clip(data_dirs: list[str | Path], out_dir: str | Path, *, batch: dict[str, int] | None = None,
               width: int = 128, layers: int = 4, init: str | None = None, val_crops: int = 300, val_cams: int = 40,
               cam_weight: float = 0.0, hue_deg: float = 0.0, **loop) -> dict[str, Any]:
    """Train (or fine-tune, ``init``) a CLIP on rendered datasets; writes a loadable model dir to ``out_dir``.

    The other keywords (``epochs``, ``steps_per_epoch``, ``lr``, ``seed``, ``resume``, ``max_minutes``,
    ``threads``, ``progress``, ``log``): those of :func:`~.train_data.train_run`. ``cam_weight``: weight of
    the Grad-CAM localisation term (0: off; module docstring). ``hue_deg``: half of each training sample's
    products get their colours hue-shifted by up to this many degrees (and their brightness by up to 15 %),
    so that class evidence does not hang on the exact flavour colours (0: off). Returns the metadata (also
    ``out_dir/metadata.json``); run directory and resume: :mod:`graspsim.learn.loop`.
    """
    # Crops are classified well early on; the multi-label frame/window term is the hard one (and the one
    # Grad-CAM differentiates), so frames and windows get most of each batch and twice the loss weight.
    sizes = {"n_full": 12, "n_zoom": 12, "n_crops": 16, **(batch or {})}
    settings = {"batch": sizes, "width": width, "layers": layers, "init": init, "val_crops": val_crops,
                "val_cams": val_cams}
    if cam_weight > 0:  # only when on: older runs' settings (and their resume checks) stay as they were
        settings["cam_weight"] = float(cam_weight)
    if hue_deg > 0:
        settings["hue_deg"] = float(hue_deg)
    return train_run("clip", data_dirs, out_dir, settings, _stack, **loop)


def _stack(cfg, settings: dict[str, Any], train_bank: SceneBank, val_bank: SceneBank):
    """The :class:`~graspsim.learn.loop.Stack` of a CLIP run (``settings`` of :func:`train_clip`): model +
    tokenizer, batches, validation, saving."""
    from graspsim.learn.loop import Stack
    from graspsim.learn.sampling import RunStream
    from graspsim.policies.clip_sam.models import load_clip, save_model

    init, sizes = settings["init"], settings["batch"]
    if init:
        from transformers import AutoTokenizer

        model = load_clip(init)[0].float()  # checkpoints are stored in float16; train in float32
        tokenizer = AutoTokenizer.from_pretrained(init)
    else:
        from transformers import CLIPModel

        tokenizer = vocab.build_tokenizer()
        model = CLIPModel(sim_clip_config(len(tokenizer), width=settings["width"], layers=settings["layers"]))
    bias = torch.nn.Parameter(torch.tensor(-4.0))
    ml_scale = torch.nn.Parameter(torch.tensor(float(np.log(20.0))))

    def validate() -> dict[str, float]:
        m = crop_topk(model, tokenizer, val_bank, settings["val_crops"])
        m.update(crop_topk(model, tokenizer, val_bank, settings["val_crops"], hue_deg=VAL_HUE_DEG, suffix="_hue40"))
        m.update(cam_hit_rate(model, tokenizer, val_bank, settings["val_cams"]))
        return rounded(m)

    def save(out: Path, progress) -> dict:
        save_model(model, out, tokenizer)
        return {**run_metadata("clip", cfg, init, train_bank, val_bank, progress), "batch": sizes,
                "cam_weight": float(settings.get("cam_weight", 0.0)), "hue_deg": float(settings.get("hue_deg", 0.0)),
                "preprocess": {"image_size": IMAGE_SIZE, "crop_size": CROP_SIZE, "mean": [float(v) for v in CLIP_MEAN],
                               "std": [float(v) for v in CLIP_STD],
                               "full_frame": "squashed to image_size x image_size"}}

    cam_weight = float(settings.get("cam_weight", 0.0))
    if cam_weight > 0:  # the fused CPU attention kernels have no double backward; the eager path does
        model.set_attn_implementation("eager")
    return Stack(model=model,
                 sampler=RunStream(settings["steps_per_epoch"], cfg.seed, _draw(train_bank, sizes, cam_weight > 0,
                                                                         float(settings.get("hue_deg", 0.0)))),
                 step=lambda b: _step(model, tokenizer, bias, ml_scale, b, cam_weight), validate=validate, save=save,
                 extra_params=[bias, ml_scale])
