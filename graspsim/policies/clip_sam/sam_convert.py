"""Load an official Segment Anything ``.pth`` checkpoint into ``transformers.SamModel``.

The checkpoints published with https://github.com/facebookresearch/segment-anything
(``sam_vit_b_01ec64.pth``, ``sam_vit_l_0b3195.pth``, ``sam_vit_h_4b8939.pth``) are
plain ``state_dict`` s of the official ``Sam`` module. ``transformers.SamModel``
has the same architecture with other module names; this module translates
between the two key layouts (numpy / torch / transformers only: the
``segment_anything`` package is not needed).

The key correspondence (official ``Sam`` -> ``transformers.SamModel``) is the
``_RULES`` table below, each rule used in both directions. Two parts are not
plain renames: the prompt encoder's ``pe_layer.positional_encoding_gaussian_matrix``
(a persistent buffer) maps to ``prompt_encoder.shared_embedding.positional_embedding``
*and* ``shared_image_embedding.positional_embedding`` (transformers keeps two tied
copies of the one matrix: one for point prompts, one for the dense image PE); and
the mask decoder's MLPs (``output_hypernetworks_mlps.N`` and ``iou_prediction_head``).
The official ``MLP`` keeps all its linears in one ``layers`` list; transformers'
``SamFeedForward`` names the first ``proj_in``, the last ``proj_out`` and keeps
the ones in between in ``layers`` (so official ``layers.1`` of a 3-layer MLP is
transformers ``layers.0``). No tensor needs reshaping, splitting or
transposing: every tensor keeps its shape and values (``qkv`` stays fused on
both sides; ``pos_embed`` is ``(1, H/16, W/16, C)`` on both sides). The official
``pixel_mean`` / ``pixel_std`` buffers are non-persistent (not in the
checkpoints); if a re-saved file carries them they are dropped (transformers
normalises in its image processor). A ``module.`` prefix (DataParallel) is
stripped.

Limits: the mapping was written from the segment-anything sources
(``segment_anything/modeling/*.py``, ``build_sam.py``) and the installed
transformers ``modeling_sam.py`` (cross-checked against transformers'
``convert_sam_to_hf.py``), and tested on synthetic checkpoints only (random
weights in the official key layout, round-tripped and compared output for
output); no real checkpoint could be downloaded on the machine it was written
on. Numerically, transformers' mask-decoder two-way blocks use LayerNorm
eps 1e-6 where the official ``TwoWayAttentionBlock`` uses PyTorch's default
1e-5; that is transformers' own modelling choice (its converted hub weights
have the same property) and not something a key mapping can change.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any, Mapping

import torch

from graspsim.policies.clip_sam.models import WeightsNotFoundError

__all__ = ["VARIANTS", "official_sam_config", "infer_variant", "official_to_hf_state_dict", "hf_to_official_state_dict",
           "load_official_sam"]

# variant -> (embed dim, depth, heads, global attention block indexes); from build_sam.py.
VARIANTS: dict[str, tuple[int, int, int, tuple[int, ...]]] = {
    "vit_b": (768, 12, 12, (2, 5, 8, 11)),
    "vit_l": (1024, 24, 16, (5, 11, 17, 23)),
    "vit_h": (1280, 32, 16, (7, 15, 23, 31)),
}

_PATCH_KEY = "image_encoder.patch_embed.proj.weight"
_HF_PATCH_KEY = "vision_encoder.patch_embed.projection.weight"
_PE_OFFICIAL = "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"
_PE_HF = "prompt_encoder.shared_embedding.positional_embedding"
_PE_HF_TIED = "shared_image_embedding.positional_embedding"
_DROPPED_OFFICIAL = ("pixel_mean", "pixel_std")
_HYPER_DEPTH = 3  # official MaskDecoder: MLP(dim, dim, dim // 8, 3); transformers hard-codes 3 too


def _check_variant(variant: str) -> str:
    if variant not in VARIANTS:
        raise ValueError(f"unknown SAM variant {variant!r}; valid variants: {', '.join(VARIANTS)}")
    return variant


def official_sam_config(variant: str):
    """``transformers.SamConfig`` of the official ``vit_b`` / ``vit_l`` / ``vit_h`` checkpoint.

    Image 1024, patch 16, window 14, neck / prompt width 256, mask-input
    channels 16, 2-layer 8-head two-way decoder with MLP 2048, IoU head depth 3
    and width 256 (``build_sam._build_sam``).
    """
    from transformers import SamConfig

    width, depth, heads, global_idx = VARIANTS[_check_variant(variant)]
    prompt_dim, image_size, patch = 256, 1024, 16
    vision = dict(hidden_size=width, num_hidden_layers=depth, num_attention_heads=heads,
                  global_attn_indexes=list(global_idx), window_size=14, image_size=image_size, patch_size=patch,
                  output_channels=prompt_dim, num_pos_feats=prompt_dim // 2, mlp_dim=4 * width, qkv_bias=True,
                  use_abs_pos=True, use_rel_pos=True, layer_norm_eps=1e-6)
    prompt = dict(hidden_size=prompt_dim, image_size=image_size, patch_size=patch, mask_input_channels=16,
                  num_point_embeddings=4)
    decoder = dict(hidden_size=prompt_dim, mlp_dim=2048, num_hidden_layers=2, num_attention_heads=8,
                   attention_downsample_rate=2, num_multimask_outputs=3, iou_head_depth=3, iou_head_hidden_dim=256)
    return SamConfig(vision_config=vision, prompt_encoder_config=prompt, mask_decoder_config=decoder)


# Key rules. A template is a dotted key where ``{n}`` / ``{m}`` match an integer, ``{p}`` matches
# ``weight|bias`` and ``{name:a|b}`` matches one of the listed words; the matched pieces are
# substituted into the other side's template. Each rule is used in both directions.
_RULES: list[tuple[str, str]] = [
    # image encoder
    ("image_encoder.patch_embed.proj.{p}", "vision_encoder.patch_embed.projection.{p}"),
    ("image_encoder.pos_embed", "vision_encoder.pos_embed"),
    ("image_encoder.blocks.{n}.norm{m}.{p}", "vision_encoder.layers.{n}.layer_norm{m}.{p}"),
    ("image_encoder.blocks.{n}.attn.{lin:qkv|proj}.{p}", "vision_encoder.layers.{n}.attn.{lin}.{p}"),
    ("image_encoder.blocks.{n}.attn.{rel:rel_pos_h|rel_pos_w}", "vision_encoder.layers.{n}.attn.{rel}"),
    ("image_encoder.blocks.{n}.mlp.{lin:lin1|lin2}.{p}", "vision_encoder.layers.{n}.mlp.{lin}.{p}"),
    ("image_encoder.neck.0.weight", "vision_encoder.neck.conv1.weight"),
    ("image_encoder.neck.1.{p}", "vision_encoder.neck.layer_norm1.{p}"),
    ("image_encoder.neck.2.weight", "vision_encoder.neck.conv2.weight"),
    ("image_encoder.neck.3.{p}", "vision_encoder.neck.layer_norm2.{p}"),
    # prompt encoder
    (_PE_OFFICIAL, _PE_HF),
    ("prompt_encoder.point_embeddings.{n}.weight", "prompt_encoder.point_embed.{n}.weight"),
    ("prompt_encoder.{emb:not_a_point_embed|no_mask_embed}.weight", "prompt_encoder.{emb}.weight"),
    ("prompt_encoder.mask_downscaling.0.{p}", "prompt_encoder.mask_embed.conv1.{p}"),
    ("prompt_encoder.mask_downscaling.1.{p}", "prompt_encoder.mask_embed.layer_norm1.{p}"),
    ("prompt_encoder.mask_downscaling.3.{p}", "prompt_encoder.mask_embed.conv2.{p}"),
    ("prompt_encoder.mask_downscaling.4.{p}", "prompt_encoder.mask_embed.layer_norm2.{p}"),
    ("prompt_encoder.mask_downscaling.6.{p}", "prompt_encoder.mask_embed.conv3.{p}"),
    # mask decoder
    ("mask_decoder.{tok:iou_token|mask_tokens}.weight", "mask_decoder.{tok}.weight"),
    ("mask_decoder.transformer.layers.{n}.{att:self_attn|cross_attn_token_to_image|cross_attn_image_to_token}"
     ".{proj:q_proj|k_proj|v_proj|out_proj}.{p}",
     "mask_decoder.transformer.layers.{n}.{att}.{proj}.{p}"),
    ("mask_decoder.transformer.layers.{n}.norm{m}.{p}", "mask_decoder.transformer.layers.{n}.layer_norm{m}.{p}"),
    ("mask_decoder.transformer.layers.{n}.mlp.{lin:lin1|lin2}.{p}", "mask_decoder.transformer.layers.{n}.mlp.{lin}.{p}"),
    ("mask_decoder.transformer.final_attn_token_to_image.{proj:q_proj|k_proj|v_proj|out_proj}.{p}",
     "mask_decoder.transformer.final_attn_token_to_image.{proj}.{p}"),
    ("mask_decoder.transformer.norm_final_attn.{p}", "mask_decoder.transformer.layer_norm_final_attn.{p}"),
    ("mask_decoder.output_upscaling.0.{p}", "mask_decoder.upscale_conv1.{p}"),
    ("mask_decoder.output_upscaling.1.{p}", "mask_decoder.upscale_layer_norm.{p}"),
    ("mask_decoder.output_upscaling.3.{p}", "mask_decoder.upscale_conv2.{p}"),
]

_PLACEHOLDER = re.compile(r"\{(\w+)(?::([\w|]+))?\}")


def _compile_rule(source: str, target: str) -> tuple[re.Pattern, str]:
    """``source`` as a regex (alternatives of ``{name}`` may be given on either side) and ``target``."""
    alternatives = {m.group(1): m.group(2) for t in (source, target) for m in _PLACEHOLDER.finditer(t) if m.group(2)}
    out, pos = [], 0
    for m in _PLACEHOLDER.finditer(source):
        out.append(re.escape(source[pos:m.start()]))
        name = m.group(1)
        alts = m.group(2) or alternatives.get(name)
        if alts is not None:
            body = "|".join(re.escape(a) for a in alts.split("|"))
        elif name in ("n", "m"):
            body = r"\d+"
        elif name == "p":
            body = "weight|bias"
        else:  # pragma: no cover - programming error in _RULES
            raise AssertionError(f"placeholder {{{name}}} needs alternatives")
        out.append(f"(?P<{name}>{body})")
        pos = m.end()
    out.append(re.escape(source[pos:]))
    return re.compile("^" + "".join(out) + "$"), target


def _fill(template: str, groups: Mapping[str, str]) -> str:
    return _PLACEHOLDER.sub(lambda m: groups[m.group(1)], template)


_FORWARD = [_compile_rule(o, h) for o, h in _RULES]
_BACKWARD = [_compile_rule(h, o) for o, h in _RULES]

# MLPs with a variable number of linears (handled apart: the index shifts).
_OFFICIAL_MLP = re.compile(
    r"^(?P<pre>mask_decoder\.(?:output_hypernetworks_mlps\.\d+|iou_prediction_head))\.layers\.(?P<j>\d+)\.(?P<p>weight|bias)$")
_HF_MLP = re.compile(
    r"^(?P<pre>mask_decoder\.(?:output_hypernetworks_mlps\.\d+|iou_prediction_head))"
    r"\.(?:(?P<end>proj_in|proj_out)|layers\.(?P<j>\d+))\.(?P<p>weight|bias)$")


def _rename(sd: Mapping[str, Any], rules, mlp: re.Pattern, mlp_key, strict: bool, what: str,
            copies: Mapping[str, str] | None = None) -> dict[str, Any]:
    """``sd`` with its keys renamed by ``rules``, else (linears of variable-depth MLPs) by ``mlp_key(match of
    mlp)``, else kept as they are (with ``strict``: ValueError "N ``what``: ..."); a key in ``copies`` is stored
    under ``copies[key]`` too."""
    out: dict[str, Any] = {}
    unmapped = []
    for key, value in sd.items():
        new = next((_fill(template, m.groupdict()) for pattern, template in rules if (m := pattern.match(key))), None)
        if new is None and (m := mlp.match(key)):
            new = mlp_key(m)
        if new is None:
            unmapped.append(key)
            new = key
        out[new] = value
        if copies and key in copies:
            out[copies[key]] = value
    if strict and unmapped:
        raise ValueError(f"{len(unmapped)} {what}: {_preview(unmapped)}")
    return out


def _strip_module_prefix(state_dict: Mapping[str, Any]) -> dict[str, Any]:
    keys = list(state_dict)
    if keys and all(k.startswith("module.") for k in keys):
        return {k[len("module."):]: v for k, v in state_dict.items()}
    return dict(state_dict)


def _mlp_depths(keys, pattern: re.Pattern, official: bool) -> dict[str, int]:
    """Number of linears of each MLP (by prefix) present in ``keys``."""
    depth: dict[str, int] = {}
    for m in filter(None, map(pattern.match, keys)):
        # official layers.j: linear j of n; transformers' hidden layers.j: linear j + 1 of proj_in .. proj_out
        n = 2 if m.group("j") is None else int(m.group("j")) + (1 if official else 3)
        depth[m.group("pre")] = max(depth.get(m.group("pre"), 0), n)
    return depth


def official_to_hf_state_dict(state_dict: Mapping[str, torch.Tensor], config=None, *,
                              strict: bool = False) -> dict[str, torch.Tensor]:
    """Rename an official SAM ``state_dict`` to ``transformers.SamModel`` keys.

    Tensors are passed through unchanged (no copy); the prompt encoder's Gaussian
    matrix is put under both of transformers' tied keys. ``config`` (a
    ``SamConfig``) gives the IoU-head depth; without it the depth is read off the
    keys. Keys that match no rule are kept under their own name (so loading
    reports them as unexpected) or, with ``strict=True``, raise ValueError.
    """
    sd = _strip_module_prefix(state_dict)
    for k in _DROPPED_OFFICIAL:
        sd.pop(k, None)
    depths = _mlp_depths(sd, _OFFICIAL_MLP, official=True)
    if config is not None:
        iou_depth = config.mask_decoder_config.iou_head_depth
        for pre in depths:
            depths[pre] = iou_depth if pre.endswith("iou_prediction_head") else _HYPER_DEPTH

    def mlp_key(m: re.Match) -> str:
        j, n = int(m.group("j")), depths[m.group("pre")]
        end = "proj_in" if j == 0 else "proj_out" if j == n - 1 else f"layers.{j - 1}"
        return f"{m.group('pre')}.{end}.{m.group('p')}"

    return _rename(sd, _FORWARD, _OFFICIAL_MLP, mlp_key, strict,
                   "key(s) of the official SAM state dict have no transformers name", {_PE_OFFICIAL: _PE_HF_TIED})


def hf_to_official_state_dict(hf_state_dict: Mapping[str, torch.Tensor], *, strict: bool = False) -> dict:
    """The inverse of :func:`official_to_hf_state_dict`: ``SamModel`` keys -> official ``Sam`` keys.

    The two tied copies of the positional Gaussian matrix become the one official
    buffer (ValueError if they differ: the official model cannot represent that).
    Unmatched keys are kept as they are, or raise ValueError with ``strict=True``.
    """
    sd = dict(hf_state_dict)
    tied = sd.pop(_PE_HF_TIED, None)
    if tied is not None:
        main = sd.get(_PE_HF)
        if main is None:
            sd[_PE_HF] = tied
        elif main is not tied and "meta" not in (main.device.type, tied.device.type) and not torch.equal(main, tied):
            raise ValueError(f"{_PE_HF_TIED} and {_PE_HF} differ; the official SAM has one positional matrix "
                             "for both (re-tie them before exporting)")
    depths = _mlp_depths(sd, _HF_MLP, official=False)

    def mlp_key(m: re.Match) -> str:
        end = m.group("end")
        j = 0 if end == "proj_in" else depths[m.group("pre")] - 1 if end == "proj_out" else int(m.group("j")) + 1
        return f"{m.group('pre')}.layers.{j}.{m.group('p')}"

    return _rename(sd, _BACKWARD, _HF_MLP, mlp_key, strict, "transformers SAM key(s) have no official name")


def _preview(items, limit: int = 10) -> str:
    items = list(items)
    shown = ", ".join(str(i) for i in items[:limit])
    return shown + (f", ... ({len(items) - limit} more)" if len(items) > limit else "")


def infer_variant(state_dict: Mapping[str, torch.Tensor]) -> str:
    """``"vit_b"`` / ``"vit_l"`` / ``"vit_h"`` from the patch-embedding width and the block count."""
    sd = _strip_module_prefix(state_dict)
    w = sd.get(_PATCH_KEY)
    if w is None or not hasattr(w, "shape") or len(w.shape) != 4:
        if _HF_PATCH_KEY in sd:
            raise ValueError("this state dict is already in transformers (SamModel) format, not an official "
                             "Segment Anything checkpoint; load it with SamModel.load_state_dict")
        raise ValueError(f"not a Segment Anything checkpoint: no 4-d {_PATCH_KEY!r} tensor among its "
                         f"{len(sd)} keys (first keys: {_preview(list(sd)[:5], 5) or 'none'})")
    width = int(w.shape[0])
    block_ids = {int(m.group(1)) for k in sd if (m := re.match(r"^image_encoder\.blocks\.(\d+)\.", k))}
    depth = max(block_ids) + 1 if block_ids else 0
    for name, (v_width, v_depth, _, _) in VARIANTS.items():
        if width == v_width:
            if depth != v_depth:
                raise ValueError(f"patch-embedding width {width} suggests SAM {name}, which has {v_depth} "
                                 f"image-encoder blocks, but the checkpoint has {depth}")
            return name
    known = ", ".join(f"{n}: {v[0]}" for n, v in VARIANTS.items())
    raise ValueError(f"unknown SAM image-encoder width {width} ({depth} blocks) in {_PATCH_KEY!r}; "
                     f"official widths are {known}")


def _unwrap(obj: Any, path: Path) -> dict:
    if isinstance(obj, Mapping) and _PATCH_KEY not in obj:
        for k in ("model", "state_dict"):
            if isinstance(obj.get(k), Mapping):
                obj = obj[k]
                break
    if not isinstance(obj, Mapping):
        raise ValueError(f"{path} does not hold a state dict (got {type(obj).__name__})")
    return dict(obj)


def load_official_sam(path: str | os.PathLike, variant: str | None = None, device: str | torch.device = "cpu", *,
                      config=None):
    """``transformers.SamModel`` (eval mode, on ``device``) with the weights of an official ``.pth``.

    ``variant`` is inferred from the tensor shapes when None. ``config`` (a
    ``SamConfig``) overrides ``official_sam_config(variant)``, e.g. for small
    test models. Missing file: :class:`WeightsNotFoundError`. Keys or shapes
    that do not fit the model: ValueError listing them.
    """
    from transformers import SamModel

    p = Path(path).expanduser()
    if variant is not None:
        _check_variant(variant)
    if not p.is_file():
        m = re.search(r"vit_([blh])", p.name)
        name = f"sam_{variant}" if variant else f"sam_vit_{m.group(1)}" if m else "sam_vit_b"
        raise WeightsNotFoundError(
            f"SAM checkpoint {str(p)!r} not found (no such file). Fetch it on a machine with network access with "
            f"`graspsim weights fetch {name}` and pass the path of the downloaded .pth.")
    sd = _unwrap(torch.load(p, map_location="cpu", weights_only=True), p)
    if config is None:
        if variant is None:
            variant = infer_variant(sd)
        config = official_sam_config(variant)
    hf_sd = official_to_hf_state_dict(sd, config)

    with torch.device("meta"):  # no random init of (up to) 640M parameters that are overwritten anyway
        model = SamModel(config)
    expected = model.state_dict()
    missing = [k for k in expected if k not in hf_sd]
    unexpected = [k for k in hf_sd if k not in expected]
    mismatched = [f"{k}: checkpoint {tuple(hf_sd[k].shape)} vs model {tuple(v.shape)}"
                  for k, v in expected.items() if k in hf_sd and tuple(hf_sd[k].shape) != tuple(v.shape)]
    if missing or unexpected or mismatched:
        what = f"variant {variant}" if variant else "the given config"
        parts = [f"{p} does not fit a SAM of {what} (is it an official segment-anything .pth of that size?)"]
        parts += [f"{label.format(len(items))}: {_preview(items)}" for label, items in (
            ("missing {} key(s) (transformers names)", missing), ("unexpected {} key(s)", unexpected),
            ("{} shape mismatch(es)", mismatched)) if items]
        raise ValueError("; ".join(parts))
    model.load_state_dict(hf_sd, strict=True, assign=True)
    # assign=True replaced the tied parameter by two separate ones: tie them again as SamModel does.
    model.shared_image_embedding.positional_embedding = model.prompt_encoder.shared_embedding.positional_embedding
    return model.to(device).eval()
