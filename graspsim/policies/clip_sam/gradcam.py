"""Grad-CAM on CLIP's vision transformer, and part-word text steering.

Grad-CAM (Selvaraju et al.) for a ViT: take the token activations ``A`` at one
place in the vision encoder and the gradient of the image-text score ``s`` with
respect to them; drop the class token, reshape the patch tokens to the patch
grid ``(h, w, C)`` with ``h = H_pixels / patch_size``; channel weights are the
mean gradient over the patch tokens, ``w_c = mean_ij ds/dA_ijc``, and the map is
``cam = ReLU(sum_c w_c A_c)``, scaled to ``[0, 1]`` (an all-zero map stays zero).

The score ``s`` is CLIP's logit: ``logit_scale.exp() * cos(image_embed, text_embed)``
of the projected embeddings (what ``CLIPModel`` returns as ``logits_per_image``).

Where the activations are taken (``site``):

* ``"input"`` (default): the input of encoder layer ``layer`` as seen by that
  layer's first LayerNorm (``layers[layer].layer_norm1``'s output): the usual
  target for ViT Grad-CAM (pytorch-grad-cam uses ``blocks[-1].norm1``).
* ``"output"``: the output of encoder layer ``layer``. Beware: CLIP pools only
  the class token of the *last* layer's output (``post_layernorm(h[:, 0])``),
  so with ``layer=-1`` the patch tokens get zero gradient and the map is all
  zero. Use ``layer=-2`` or ``site="input"`` instead.

``method="hirescam"`` (Draelos & Carin, HiResCAM) keeps the gradient per token:
``cam_ij = ReLU(sum_c dS/dA_ijc * A_ijc)``. Averaging the gradient over the
grid (plain Grad-CAM) throws away where the class token looked; on small ViTs
the element-wise form localises much better (measured in the README).

Hooks are removed in a ``finally`` block; gradients come from
``torch.autograd.grad`` so no parameter ``.grad`` is written and the model's
``requires_grad`` flags are left untouched (the input is cloned with
``requires_grad=True`` so a frozen model still builds a graph). The model's
train/eval mode is not changed: call ``model.eval()`` first for dropout-free maps.
"""

from __future__ import annotations

import re

import cv2
import numpy as np
import torch

PART_WORDS = ("top", "bottom", "side", "cap", "lid", "label", "handle")

_SITES = ("input", "output")
CAM_METHODS = ("gradcam", "hirescam")


def patch_size(model) -> int:
    ps = model.config.vision_config.patch_size
    return int(ps[0] if isinstance(ps, (tuple, list)) else ps)


def _score(model, pixel_values: torch.Tensor, input_ids: torch.Tensor | None, attention_mask=None,
           text_embeds: torch.Tensor | None = None) -> torch.Tensor:
    """Scalar ``logit_scale.exp() * cos(image, text)`` for batch element 0 (differentiable).

    ``text_embeds`` (1, P): a text embedding in CLIP's joint space computed elsewhere (e.g. by an
    aligned sentence encoder) used instead of running CLIP's text model on ``input_ids``.
    """
    if text_embeds is None:
        out = model(input_ids=input_ids, pixel_values=pixel_values, attention_mask=attention_mask)
        # logits_per_image = logit_scale.exp() * normalised image_embeds @ normalised text_embeds.T
        return out.logits_per_image[0, 0]
    image = model.visual_projection(model.vision_model(pixel_values=pixel_values).pooler_output)
    cos = torch.nn.functional.cosine_similarity(image[0], text_embeds.reshape(-1).to(image.dtype), dim=0)
    return model.logit_scale.exp() * cos


def clip_gradcam(model, pixel_values: torch.Tensor, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 layer: int = -1, site: str = "input", method: str = "gradcam",
                 text_embeds: torch.Tensor | None = None) -> np.ndarray:
    """Grad-CAM map ``(h, w)`` float32 in ``[0, 1]`` on the patch grid of ``pixel_values``.

    ``pixel_values``: ``(1, 3, H, W)`` already normalised for CLIP; ``input_ids``:
    ``(1, L)``. ``layer`` indexes ``model.vision_model.encoder.layers`` (negative
    counts from the end); ``site`` is ``"input"`` or ``"output"`` (module docstring).
    """
    if site not in _SITES:
        raise ValueError(f"unknown Grad-CAM site {site!r}; valid sites: {', '.join(_SITES)}")
    if method not in CAM_METHODS:
        raise ValueError(f"unknown CAM method {method!r}; valid methods: {', '.join(CAM_METHODS)}")
    if pixel_values.ndim != 4 or pixel_values.shape[0] != 1:
        raise ValueError(f"pixel_values must be (1, 3, H, W), got {tuple(pixel_values.shape)}")
    layers = model.vision_model.encoder.layers
    n = len(layers)
    if not -n <= layer < n:
        raise ValueError(f"layer {layer} out of range for a vision encoder with {n} layers")
    module = layers[layer].layer_norm1 if site == "input" else layers[layer]
    ps = patch_size(model)
    gh, gw = pixel_values.shape[-2] // ps, pixel_values.shape[-1] // ps

    captured: dict[str, torch.Tensor] = {}

    def fwd_hook(_module, _inputs, output):
        captured["act"] = output[0] if isinstance(output, (tuple, list)) else output

    handle = module.register_forward_hook(fwd_hook)
    try:
        with torch.enable_grad():
            pv = pixel_values.detach().clone().requires_grad_(True)
            score = _score(model, pv, input_ids, attention_mask, text_embeds)
            act = captured.get("act")
            if act is None:
                raise RuntimeError("Grad-CAM hook did not fire: is this a transformers CLIPModel?")
            (grad,) = torch.autograd.grad(score, act, allow_unused=True)
    finally:
        handle.remove()
    if grad is None:
        grad = torch.zeros_like(act)
    act = act.detach()[0, 1:, :]  # (h*w, C), class token dropped
    grad = grad.detach()[0, 1:, :]
    if act.shape[0] != gh * gw:
        raise RuntimeError(f"expected {gh}x{gw}={gh * gw} patch tokens, got {act.shape[0]}")
    cam = torch.relu(cam_from_grad(act, grad, method))
    return normalize_cam(cam.reshape(gh, gw).float().numpy())


def cam_from_grad(act: torch.Tensor, grad: torch.Tensor, method: str = "gradcam") -> torch.Tensor:
    """The map before ReLU and scaling, ``(..., N)``, from patch activations and gradients ``(..., N, C)``.

    ``gradcam``: channel weights = mean gradient over the N patches; ``hirescam``: element-wise gradient x
    activation, no averaging. Differentiable (CLIP training uses it with a gradient kept in the graph).
    """
    weights = grad.mean(dim=-2, keepdim=True) if method == "gradcam" else grad
    return (act * weights).sum(dim=-1)


def normalize_cam(cam: np.ndarray) -> np.ndarray:
    """Min-max scale to ``[0, 1]``; non-finite -> 0; a constant (e.g. all-zero) map becomes all zero."""
    cam = np.maximum(np.nan_to_num(np.asarray(cam, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0), 0.0)
    cam = cam - cam.min()
    peak = float(cam.max())
    if peak <= 0.0:
        return np.zeros_like(cam, dtype=np.float32)
    return (cam / peak).astype(np.float32)


def upsample_cam(cam: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Bilinear resize of a map to ``(H, W)`` image resolution, clipped to ``[0, 1]``, float32."""
    h, w = int(size_hw[0]), int(size_hw[1])
    out = cv2.resize(np.asarray(cam, dtype=np.float32), (w, h), interpolation=cv2.INTER_LINEAR)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


_VERB_RE = re.compile(r"^(?:please\s+)?(?:pick\s+up|pick|grasp|grab|take|get|lift|hold|fetch)\b\s*")
_PART_ALT = "|".join(PART_WORDS)
_PART_RE = re.compile(rf"\b({_PART_ALT})s?\b")
# "... by its cap", "... from the top", "... at the side", "... using its handle"
_TRAILING_PART_RE = re.compile(rf"\s*\b(?:by|from|at|on|using|via|with)\s+(?:its|the|their|a)?\s*(?:{_PART_ALT})s?\b")
# "the cap of the soda can"
_LEADING_PART_RE = re.compile(rf"^(?:the|a|an|its)?\s*(?:{_PART_ALT})s?\s+of\s+")
# "the bottle's label"
_POSSESSIVE_RE = re.compile(rf"'s\s+(?:{_PART_ALT})s?\b")
_ARTICLE_RE = re.compile(r"^(?:the|a|an|this|that)\s+")


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def part_steered_text(instruction: str) -> str:
    """Rewrite an instruction so CLIP's text puts the part word first.

    Rule: lower-case and drop punctuation; drop a leading verb ("pick up", "pick",
    "grasp", "grab", "take", "get", "lift", "hold", "fetch", optionally after
    "please"); find the first part word (top, bottom, side, cap, lid, label,
    handle; plural allowed); remove the phrase carrying it ("by its cap", "from the
    top", "the cap of", "'s label"); strip a leading article from what is left
    (the object). With a part word the text is ``"the {part} of a {object}"``,
    without one ``"a {object}"``. Examples::

        "pick the soda can by its cap"      -> "the cap of a soda can"
        "grasp the cereal box from the top" -> "the top of a cereal box"
        "pick up the handle of the mug"     -> "the handle of a mug"
        "take the bottle's label"           -> "the label of a bottle"
        "Pick the apple juice."             -> "an apple juice"
    """
    text = instruction.lower().strip()
    text = re.sub(r"[^\w\s']", " ", text)
    text = re.sub(r"\s+", " ", text).strip()
    text = _VERB_RE.sub("", text).strip()
    m = _PART_RE.search(text)
    part = m.group(1) if m else None
    obj = text
    if part is not None:
        for phrase in (_TRAILING_PART_RE, _LEADING_PART_RE, _POSSESSIVE_RE):
            obj = phrase.sub("", obj)
        obj = re.sub(r"\s+", " ", obj).strip()
    obj = _ARTICLE_RE.sub("", obj).strip()
    if part is not None:
        if not obj or obj == part:
            return f"the {part}"
        return f"the {part} of {_article(obj)} {obj}"
    if not obj:
        return instruction.strip()
    return f"{_article(obj)} {obj}"
