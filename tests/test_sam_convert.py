"""Official segment-anything ``.pth`` <-> transformers ``SamModel`` key mapping (synthetic weights only)."""

from __future__ import annotations

import pytest
import torch

from graspsim.policies.clip_sam import sam_convert as sc
from graspsim.policies.clip_sam.models import WeightsNotFoundError
from graspsim.policies.clip_sam.train_sam import sim_sam_config

torch.set_num_threads(1)


def _tiny_official_sam_config():
    """``official_sam_config("vit_b")`` shrunk to the sizes of a small sim-trained SAM."""
    cfg = sc.official_sam_config("vit_b")
    tiny = sim_sam_config(image_size=64, width=32, layers=2, channels=32)
    v, pr, d = cfg.vision_config, cfg.prompt_encoder_config, cfg.mask_decoder_config
    for name in ("hidden_size", "output_channels", "num_hidden_layers", "num_attention_heads", "image_size",
                 "patch_size", "window_size", "global_attn_indexes", "num_pos_feats", "mlp_dim"):
        setattr(v, name, getattr(tiny.vision_config, name))
    for name in ("hidden_size", "image_size", "patch_size", "mask_input_channels"):
        setattr(pr, name, getattr(tiny.prompt_encoder_config, name))
    pr.image_embedding_size = pr.image_size // pr.patch_size
    v.scale = v.hidden_size // 2
    for name in ("hidden_size", "mlp_dim", "num_hidden_layers", "num_attention_heads", "iou_head_hidden_dim"):
        setattr(d, name, getattr(tiny.mask_decoder_config, name))
    return cfg


@pytest.fixture(scope="module")
def tiny_model():
    from transformers import SamModel

    torch.manual_seed(0)
    model = SamModel(_tiny_official_sam_config()).eval()
    with torch.no_grad():  # rel_pos / pos_embed start at zero: make every tensor distinctive
        for prm in model.parameters():
            prm.add_(0.02 * torch.randn_like(prm))
    return model


def _run(model, pixel_values, points, labels):
    with torch.no_grad():
        out = model(pixel_values=pixel_values, input_points=points, input_labels=labels)
    return out.pred_masks, out.iou_scores


# Written by hand from segment_anything/modeling/{image_encoder,prompt_encoder,mask_decoder,transformer}.py.
KNOWN_OFFICIAL_KEYS = [
    "image_encoder.patch_embed.proj.weight",
    "image_encoder.patch_embed.proj.bias",
    "image_encoder.pos_embed",
    "image_encoder.blocks.0.norm1.weight",
    "image_encoder.blocks.0.attn.qkv.weight",
    "image_encoder.blocks.0.attn.proj.bias",
    "image_encoder.blocks.0.attn.rel_pos_h",
    "image_encoder.blocks.1.attn.rel_pos_w",
    "image_encoder.blocks.1.mlp.lin2.weight",
    "image_encoder.blocks.1.norm2.bias",
    "image_encoder.neck.0.weight",
    "image_encoder.neck.1.bias",
    "image_encoder.neck.2.weight",
    "image_encoder.neck.3.weight",
    "prompt_encoder.pe_layer.positional_encoding_gaussian_matrix",
    "prompt_encoder.point_embeddings.3.weight",
    "prompt_encoder.not_a_point_embed.weight",
    "prompt_encoder.no_mask_embed.weight",
    "prompt_encoder.mask_downscaling.0.weight",
    "prompt_encoder.mask_downscaling.1.weight",
    "prompt_encoder.mask_downscaling.4.bias",
    "prompt_encoder.mask_downscaling.6.weight",
    "mask_decoder.iou_token.weight",
    "mask_decoder.mask_tokens.weight",
    "mask_decoder.transformer.layers.0.self_attn.q_proj.weight",
    "mask_decoder.transformer.layers.1.cross_attn_image_to_token.out_proj.bias",
    "mask_decoder.transformer.layers.0.cross_attn_token_to_image.k_proj.weight",
    "mask_decoder.transformer.layers.0.norm4.weight",
    "mask_decoder.transformer.layers.1.mlp.lin1.bias",
    "mask_decoder.transformer.final_attn_token_to_image.v_proj.weight",
    "mask_decoder.transformer.norm_final_attn.bias",
    "mask_decoder.output_upscaling.0.weight",
    "mask_decoder.output_upscaling.1.bias",
    "mask_decoder.output_upscaling.3.weight",
    "mask_decoder.output_hypernetworks_mlps.0.layers.0.weight",
    "mask_decoder.output_hypernetworks_mlps.3.layers.2.bias",
    "mask_decoder.iou_prediction_head.layers.1.weight",
    "mask_decoder.iou_prediction_head.layers.2.weight",
]


def test_round_trip_identical_tensors_and_no_unmapped_keys(tiny_model):
    hf = tiny_model.state_dict()
    official = sc.hf_to_official_state_dict(hf, strict=True)  # strict: every HF key has an official name
    assert len(official) == len(hf) - 1  # the two tied positional matrices are one official buffer
    assert all(not k.startswith(("vision_encoder", "shared_image_embedding")) for k in official)
    back = sc.official_to_hf_state_dict(official, tiny_model.config, strict=True)  # every official key maps back
    assert set(back) == set(hf)
    for k, v in hf.items():
        assert back[k].shape == v.shape and torch.equal(back[k], v), k
    # and without a config (MLP depths read off the keys) the result is the same
    assert set(sc.official_to_hf_state_dict(official)) == set(hf)
    # a DataParallel "module." prefix is stripped; non-persistent pixel_mean / pixel_std, if saved, are dropped
    wrapped = {"module." + k: v for k, v in official.items()}
    wrapped.update({"module.pixel_mean": torch.zeros(3, 1, 1), "module.pixel_std": torch.ones(3, 1, 1)})
    assert set(sc.official_to_hf_state_dict(wrapped, strict=True)) == set(hf)


def test_known_official_names(tiny_model):
    official = sc.hf_to_official_state_dict(tiny_model.state_dict())
    missing = [k for k in KNOWN_OFFICIAL_KEYS if k not in official]
    assert not missing
    # the HF-only split of the official MLP list: layers.0 -> proj_in, layers.1 -> layers.0, layers.2 -> proj_out
    hf = tiny_model.state_dict()
    assert torch.equal(official["mask_decoder.iou_prediction_head.layers.2.weight"],
                       hf["mask_decoder.iou_prediction_head.proj_out.weight"])
    assert torch.equal(official["mask_decoder.output_hypernetworks_mlps.1.layers.1.bias"],
                       hf["mask_decoder.output_hypernetworks_mlps.1.layers.0.bias"])
    assert torch.equal(official["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"],
                       hf["shared_image_embedding.positional_embedding"])


def test_unmapped_keys_reported_with_strict():
    with pytest.raises(ValueError, match="image_encoder.extra.weight"):
        sc.official_to_hf_state_dict({"image_encoder.extra.weight": torch.zeros(1)}, strict=True)
    with pytest.raises(ValueError, match="vision_encoder.extra"):
        sc.hf_to_official_state_dict({"vision_encoder.extra": torch.zeros(1)}, strict=True)


def test_load_saved_official_pth_gives_same_outputs(tiny_model, tmp_path):
    official = sc.hf_to_official_state_dict(tiny_model.state_dict())
    path = tmp_path / "sam_tiny.pth"
    torch.save({"model": official}, path)  # wrapped under "model", as some training scripts save it
    loaded = sc.load_official_sam(path, config=tiny_model.config)
    assert not loaded.training
    assert loaded.shared_image_embedding.positional_embedding is loaded.prompt_encoder.shared_embedding.positional_embedding
    torch.manual_seed(1)
    pixels = torch.randn(1, 3, 64, 64)
    points, labels = torch.tensor([[[[20.0, 37.0]]]]), torch.tensor([[[1]]])
    masks_a, iou_a = _run(tiny_model, pixels, points, labels)
    masks_b, iou_b = _run(loaded, pixels, points, labels)
    assert masks_a.shape == (1, 1, 3, 32, 32)  # 4x the 8x8 embedding grid
    torch.testing.assert_close(masks_b, masks_a, rtol=0, atol=0)
    torch.testing.assert_close(iou_b, iou_a, rtol=0, atol=0)


def test_load_reports_missing_unexpected_and_shape_mismatch(tiny_model, tmp_path):
    official = sc.hf_to_official_state_dict(tiny_model.state_dict())
    del official["mask_decoder.iou_token.weight"]
    official["image_encoder.blocks.0.attn.qkv.weight"] = torch.zeros(5, 5)
    official["something.else"] = torch.zeros(1)
    path = tmp_path / "bad.pth"
    torch.save(official, path)
    with pytest.raises(ValueError) as err:
        sc.load_official_sam(path, config=tiny_model.config)
    msg = str(err.value)
    assert "mask_decoder.iou_token.weight" in msg and "missing 1" in msg
    assert "something.else" in msg and "unexpected 1" in msg
    assert "vision_encoder.layers.0.attn.qkv.weight: checkpoint (5, 5) vs model (96, 32)" in msg


def test_vit_b_official_key_count_on_meta():
    """The official vit_b checkpoint holds 314 tensors; counted from the segment-anything source:

    image encoder: patch_embed.proj w+b (2) + pos_embed (1) + 12 blocks x 14 (norm1 2, attn qkv 2, proj 2,
      rel_pos_h/w 2, norm2 2, mlp lin1/lin2 4) = 168 + neck 0.w, 1.w/b, 2.w, 3.w/b (6)     -> 177
    prompt encoder: pe_layer gaussian matrix (1, a persistent buffer) + point_embeddings 4 + not_a_point_embed 1
      + mask_downscaling 0/1/3/4/6 w+b (10) + no_mask_embed 1                              -> 17
    mask decoder: two-way transformer 2 layers x 36 (3 attentions x 8, norm1-4 x 2, mlp 4) + final attention 8
      + norm_final_attn 2 = 82; iou_token 1, mask_tokens 1; output_upscaling 0/1/3 w+b 6;
      4 hypernetwork MLPs x 3 linears x 2 = 24; iou head 3 x 2 = 6                          -> 120
    pixel_mean / pixel_std are non-persistent buffers (not saved).      177 + 17 + 120 = 314
    """
    from transformers import SamModel

    with torch.device("meta"):
        model = SamModel(sc.official_sam_config("vit_b"))
    hf = model.state_dict()
    official = sc.hf_to_official_state_dict(hf, strict=True)
    assert len(official) == 314
    assert official["image_encoder.patch_embed.proj.weight"].shape == (768, 3, 16, 16)
    assert official["image_encoder.pos_embed"].shape == (1, 64, 64, 768)
    assert official["image_encoder.blocks.0.attn.rel_pos_h"].shape == (27, 64)  # windowed block: 2*14-1
    assert official["image_encoder.blocks.2.attn.rel_pos_h"].shape == (127, 64)  # global block: 2*64-1
    assert official["prompt_encoder.pe_layer.positional_encoding_gaussian_matrix"].shape == (2, 128)
    assert official["prompt_encoder.mask_downscaling.0.weight"].shape == (4, 1, 2, 2)
    assert official["mask_decoder.output_hypernetworks_mlps.0.layers.2.weight"].shape == (32, 256)
    assert official["mask_decoder.iou_prediction_head.layers.2.weight"].shape == (4, 256)
    assert sc.infer_variant(official) == "vit_b"
    assert set(sc.official_to_hf_state_dict(official, model.config, strict=True)) == set(hf)


@pytest.mark.parametrize("variant,width,depth", [("vit_b", 768, 12), ("vit_l", 1024, 24), ("vit_h", 1280, 32)])
def test_official_config_and_infer_variant(variant, width, depth):
    cfg = sc.official_sam_config(variant)
    v = cfg.vision_config
    assert (v.hidden_size, v.num_hidden_layers, v.window_size, v.output_channels, v.image_size, v.patch_size) == (
        width, depth, 14, 256, 1024, 16)
    assert list(v.global_attn_indexes) == list(sc.VARIANTS[variant][3])
    # synthetic shapes: only the tensors infer_variant looks at
    sd = {"image_encoder.patch_embed.proj.weight": torch.empty(width, 3, 16, 16)}
    sd.update({f"image_encoder.blocks.{i}.norm1.weight": torch.empty(width) for i in range(depth)})
    assert sc.infer_variant(sd) == variant
    assert sc.infer_variant({"module." + k: t for k, t in sd.items()}) == variant


def test_bad_variant_and_non_sam_state_dicts():
    with pytest.raises(ValueError, match="vit_b, vit_l, vit_h"):
        sc.official_sam_config("vit_x")
    with pytest.raises(ValueError, match="not a Segment Anything checkpoint.*fc.weight"):
        sc.infer_variant({"fc.weight": torch.zeros(2, 2)})
    with pytest.raises(ValueError, match="unknown SAM image-encoder width 384"):
        sc.infer_variant({"image_encoder.patch_embed.proj.weight": torch.empty(384, 3, 16, 16)})
    with pytest.raises(ValueError, match="12 image-encoder blocks, but the checkpoint has 2"):
        sc.infer_variant({"image_encoder.patch_embed.proj.weight": torch.empty(768, 3, 16, 16),
                          "image_encoder.blocks.1.norm1.weight": torch.empty(768)})
    with pytest.raises(ValueError, match="already in transformers"):
        sc.infer_variant({"vision_encoder.patch_embed.projection.weight": torch.empty(768, 3, 16, 16)})


def test_load_non_sam_file_and_missing_path(tmp_path):
    path = tmp_path / "resnet.pth"
    torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}}, path)
    with pytest.raises(ValueError, match="not a Segment Anything checkpoint"):
        sc.load_official_sam(path)
    missing = tmp_path / "nope" / "sam_vit_h_4b8939.pth"
    with pytest.raises(WeightsNotFoundError) as err:
        sc.load_official_sam(missing)
    assert str(missing) in str(err.value) and "graspsim weights fetch sam_vit_h" in str(err.value)
    with pytest.raises(WeightsNotFoundError, match="graspsim weights fetch sam_vit_l"):
        sc.load_official_sam(tmp_path / "weights.pth", variant="vit_l")
    with pytest.raises(ValueError, match="valid variants"):
        sc.load_official_sam(tmp_path / "weights.pth", variant="vit_q")
