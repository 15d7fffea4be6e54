"""``graspsim train graspsam``: the trainable parts of :class:`~.model.GraspSamNet` on rendered scenes.

* **Data**: clip_sam's :class:`~graspsim.policies.clip_sam.train_data.SceneBank` (the scenes of every ``--data``
  in memory, scene seeds divisible by 10 held out for validation) with each scene's physically validated
  grasp labels and instance masks.
* **Samples** (:func:`sample`): a product with grasp labels, a prompt sampled from its ground-truth mask as in
  the paper (1, 3, 5 or 10 interior points, or its box with noise), or no prompt (the whole image; the target is
  then every labelled product); the window :func:`~.predictor.prompt_window` gives, jittered in size and
  position; targets in that window at the maps' side ``M``: the object mask and GR-ConvNet's quality / cos 2
  theta / sin 2 theta / width maps drawn from the product's rectangles by the shared
  :func:`~graspsim.policies.det_seg.targets.encode_grconvnet_maps`. The prompt kind is drawn per batch (SAM's
  prompt encoder needs one layout per batch): points 55 %, box 30 %, none 15 %.
* **Text prompts** (``text_prompts``: the share of batches; needs ``config.text_dim`` > 0, set from the CLIP when
  0): a product class of the scene named in one of the CLIP's training phrasings, its text embedding as the only
  prompt (:attr:`~.model.GraspSamNet.text_proj`), a window of the policy's text-tile size on one of the class's
  products or anywhere; the target is every pixel of that class and only the mask is scored (the text token has
  to *find* the product: the policy's second pass
  prompts GraspSAM with the box around what it found, :meth:`~.predictor.GraspSamPredictor.find_text`), so
  scenes without grasp labels serve too. ``trainable="text"`` trains the text parts alone (the token's
  projection and the text adapters, :data:`~.predictor.NEW_PARTS`), every batch a text batch: every other
  prompt mode then gives exactly the ``init`` checkpoint's output.
* **Augmentation** (``augment``, on by default; :func:`dihedral`): the window and everything in it turned by a
  multiple of 90 degrees and/or mirrored, only as the camera allows: any of the 8 on a table (its camera looks
  straight down, so a turned table is still a table), a left-right mirror on a shelf (gravity stays down).
  Exact on the pixel grid; the angle maps change sign as 2 theta does.
* **Loss** (the paper's): per map, MSE weighted 1 on the object's pixels and 0.01 elsewhere (normalised by the
  weights' sum); on the mask, BCE + Dice. ``map_loss="labelled"`` scores the angle and width maps only on the
  labelled rectangles (:func:`loss`).
* **Loop** (:func:`~graspsim.policies.clip_sam.train_data.train_run` on :mod:`graspsim.learn.loop`): AdamW,
  warm-up + cosine, seeded, resumable, validation each epoch: top-1 Jaccard accuracy and mask IoU of 10-point
  prompts on held-out objects through :class:`~.predictor.GraspSamPredictor` (the policy's code path).
* **Checkpoint**: ``model.safetensors`` holds the trainable tensors only (a few hundred kB); ``metadata.json``
  the config, the SAM it was trained on, parameter counts, data, seed, history and metrics.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from graspsim.policies.clip_sam.prompts import Prompt
from graspsim.policies.clip_sam.train_data import SceneBank, jitter_colour, noisy_box, rounded, run_metadata, train_run
from graspsim.policies.clip_sam.windows import SAM_MEAN, SAM_STD, centred_window, crop, normalise, to_window
from graspsim.policies.graspsam.config import GraspSamConfig
from graspsim.policies.graspsam.model import MAP_KEYS
from graspsim.masks import mask_box
from graspsim.policies.graspsam.predictor import prompt_window, sample_points, window_inputs

POINT_COUNTS = (1, 3, 5, 10)
MAX_POINTS = max(POINT_COUNTS)
KIND_PROBS = {"points": 0.55, "box": 0.30, "none": 0.15}
BACKGROUND_WEIGHT = 0.01
VAL_PROMPT_POINTS = 10


#: What a run trains: everything GraspSAM adds to SAM, or only the text prompt's parts (predictor.NEW_PARTS).
TRAINABLE = ("all", "text")


def _labelled(scene) -> list[int]:
    """Instance ids of the scene's sampled products (>= MIN_INSTANCE_PX) that have grasp labels."""
    have = set(np.asarray(scene.grasp_instance).tolist())
    return [i for i, _, _ in scene.instances if i in have]


def window_targets(scene, ids: list[int], window, map_size: int, width_frac: float) -> dict[str, np.ndarray]:
    """(M, M) float32 targets of the products ``ids`` in ``window``: ``mask`` (0/1), the four maps, ``weight``."""
    from graspsim.policies.det_seg.targets import encode_grconvnet_maps

    x0, y0, side = window
    obj = np.isin(scene.instance, ids)
    mask = (crop(obj.astype(np.float32), window, map_size) > 0.5).astype(np.float32)
    keep = np.isin(scene.grasp_instance, ids)
    r = np.asarray(scene.grasps, dtype=np.float64)[keep].reshape(-1, 5).copy()
    r[:, :2] = to_window(r[:, :2], window, map_size)
    r[:, 2:4] *= map_size / side
    maps = encode_grconvnet_maps(r, scene.grasp_quality[keep], map_size, width_frac * map_size)
    weight = np.where(mask > 0, 1.0, BACKGROUND_WEIGHT).astype(np.float32)
    return {"mask": mask, **maps, "weight": weight}


def _jitter(window, rng: np.random.Generator, lo: float, hi: float, shift: float):
    x0, y0, side = window
    cx, cy = x0 + side / 2, y0 + side / 2
    side = side * rng.uniform(lo, hi)
    return centred_window(cx + rng.uniform(-shift, shift) * side, cy + rng.uniform(-shift, shift) * side, side)


#: The window transforms each scene kind allows: (quarter turns k, mirror) pairs (:func:`dihedral`).
AUGMENTS = {"tabletop": tuple((k, f) for k in range(4) for f in (False, True)),
            "shelf": ((0, False), (0, True))}


def dihedral(item: dict, k: int, mirror: bool) -> dict:
    """A training sample turned ``k`` quarter turns (``np.rot90`` of the window, counter-clockwise as displayed)
    after a left-right ``mirror``: pixels (3, S, S), the (M, M) targets, and the prompt points / box (window px
    at S; padded points, label -10, stay put). Image px ``(x, y)`` of a window of side ``n``: mirror ``(n-1-x, y)``,
    one turn ``(y, n-1-x)``; a grasp angle becomes ``pi - theta`` and ``theta - pi/2`` (2 theta: sin changes sign
    when mirrored, cos and sin both per turn)."""
    out = dict(item)
    spatial = [key for key in ("pixels", "mask", "quality", "cos", "sin", "width", "weight") if key in item]
    s = item["pixels"].shape[-1]

    def move(xy: np.ndarray, n: int) -> np.ndarray:
        xy = np.array(xy, dtype=np.float32, copy=True)
        if mirror:
            xy[..., 0] = n - 1 - xy[..., 0]
        for _ in range(k):
            xy = np.stack([xy[..., 1], n - 1 - xy[..., 0]], axis=-1)
        return xy

    for key in spatial:
        a = item[key][..., :, ::-1] if mirror else item[key]
        out[key] = np.ascontiguousarray(np.rot90(a, k, axes=(-2, -1)))
    if mirror:
        out["sin"] = -out["sin"]
    if k % 2:
        out["cos"], out["sin"] = -out["cos"], -out["sin"]
    real = item["labels"] != -10
    pts = item["points"].copy()
    pts[real] = move(item["points"][real], s)
    out["points"] = pts
    if np.isfinite(item["box"]).all():
        c = move(item["box"].reshape(2, 2), s)
        out["box"] = np.concatenate([c.min(axis=0), c.max(axis=0)]).astype(np.float32)
    return out


def sample(scene, kind: str, size: int, map_size: int, width_frac: float, rng: np.random.Generator,
           augment: bool = False, n_templates: int = 1) -> dict:
    """One training sample of prompt ``kind`` ("points", "box", "none" on a scene with labelled products;
    "text" on any scene with products): ``pixels`` (3, S, S), ``points`` (MAX_POINTS, 2) / ``labels``
    (MAX_POINTS,) (-10 padding) in window px at ``S``, ``box`` (4,) (NaN if none), and the targets of
    :func:`window_targets`; for "text" also ``text`` () int64 = class index * ``n_templates`` + phrasing (a row of
    the flattened :meth:`~.text.TextEncoder.template_table`) and the class's pixels as the mask target;
    ``augment``: one of the scene kind's :data:`AUGMENTS` drawn and applied (:func:`dihedral`)."""
    if kind == "text":
        item = _text_sample(scene, size, map_size, rng, n_templates)
    else:
        item = _prompted_sample(scene, kind, size, map_size, width_frac, rng)
    if augment:
        choices = AUGMENTS.get(scene.kind, ((0, False),))
        item = dihedral(item, *choices[int(rng.integers(len(choices)))])
    return item


def _prompted_sample(scene, kind: str, size: int, map_size: int, width_frac: float, rng: np.random.Generator) -> dict:
    """A "points", "box" or "none" sample (:func:`sample`), before augmentation."""
    labelled = _labelled(scene)
    if kind == "none":
        ids = labelled
        prompt = None
        window = _jitter(prompt_window(None, scene.depth_m, scene.K), rng, 0.95, 1.05, 0.03)
    else:
        inst = labelled[int(rng.integers(len(labelled)))]
        ids = [inst]
        obj = scene.instance == inst
        if kind == "points":
            pts = sample_points(obj, int(rng.choice(POINT_COUNTS)), rng)
            prompt = Prompt("points", pts, np.ones(len(pts)))
        else:
            prompt = Prompt("box", np.zeros((0, 2)), np.zeros(0), noisy_box(mask_box(obj), rng))
        window = _jitter(prompt_window(prompt, scene.depth_m, scene.K), rng, 0.85, 1.2, 0.1)
    p = window_inputs(prompt, window, size)
    points = np.zeros((MAX_POINTS, 2), np.float32)
    labels = np.full(MAX_POINTS, -10, dtype=np.int64)
    points[: len(p["points"])], labels[: len(p["labels"])] = p["points"], p["labels"]
    rgb = jitter_colour(crop(scene.rgb, window, size), rng, 0.1)
    item = {"pixels": normalise(rgb, SAM_MEAN, SAM_STD), "points": points, "labels": labels,
            "box": np.full(4, np.nan, np.float32) if p["box"] is None else p["box"],
            **window_targets(scene, ids, window, map_size, width_frac)}
    return item


#: Text samples: the share of windows placed on a product of the named class (the rest anywhere in the image).
TEXT_ON_CLASS = 0.75


def _text_sample(scene, size: int, map_size: int, rng: np.random.Generator, n_templates: int) -> dict:
    """A "text" sample (:func:`sample`), before augmentation: a class of the scene's products; a window of the
    policy's text-tile size (:func:`~.predictor.text_tile_side`, jittered) on one of its products (off centre) or,
    in a share ``1 - TEXT_ON_CLASS``, anywhere (most then hold none of it: the token must also find nothing)."""
    from graspsim.policies.graspsam.predictor import text_tile_side

    cls = scene.instances[int(rng.integers(len(scene.instances)))][1]
    side = text_tile_side(scene.depth_m, scene.K) * rng.uniform(0.85, 1.15)
    h, w = scene.depth_m.shape[:2]
    if rng.random() < TEXT_ON_CLASS:
        others = [b for _, c, b in scene.instances if c == cls]
        b = others[int(rng.integers(len(others)))]
        cx = (b[0] + b[2]) / 2 + rng.uniform(-0.35, 0.35) * side
        cy = (b[1] + b[3]) / 2 + rng.uniform(-0.35, 0.35) * side
    else:
        cx, cy = rng.uniform(0, w - 1), rng.uniform(0, h - 1)
    window = centred_window(cx, cy, side)
    rgb = jitter_colour(crop(scene.rgb, window, size), rng, 0.1)
    mask = (crop((scene.class_map == cls).astype(np.float32), window, map_size) > 0.5).astype(np.float32)
    zeros = np.zeros_like(mask)
    item = {"pixels": normalise(rgb, SAM_MEAN, SAM_STD), "points": np.zeros((MAX_POINTS, 2), np.float32),
            "labels": np.full(MAX_POINTS, -10, dtype=np.int64), "box": np.full(4, np.nan, np.float32),
            "mask": mask, **{k: zeros for k in MAP_KEYS}, "weight": np.ones_like(mask),
            "text": np.int64(int(cls) * n_templates + int(rng.integers(n_templates)))}
    return item


def draw_batch(bank: SceneBank, batch_size: int, size: int, map_size: int, width_frac: float,
               rng: np.random.Generator, augment: bool = False, balance_kinds: bool = False,
               text_prompts: float = 0.0, n_templates: int = 1) -> tuple[str, dict[str, np.ndarray]]:
    """``(kind, stacked samples)``: one prompt kind per batch (:data:`KIND_PROBS`; a share ``text_prompts`` of
    the batches are "text" ones, the rest as before), scenes with labelled products (any products for "text");
    ``balance_kinds``: each sample's scene kind (shelf, tabletop) drawn first, uniformly among those the bank
    holds, so that the kind with fewer scenes is not drowned out."""
    if text_prompts > 0 and rng.random() < text_prompts:
        kind = "text"
    else:
        kinds = list(KIND_PROBS)
        kind = kinds[int(rng.choice(len(kinds), p=np.array(list(KIND_PROBS.values()))))]
    by_kind = bank.by_kind if balance_kinds else None
    items = []
    while len(items) < batch_size:
        if by_kind is None:
            scene = bank.scenes[int(rng.integers(len(bank)))]
        else:
            group = by_kind[int(rng.integers(len(by_kind)))]
            scene = group[int(rng.integers(len(group)))]
        if scene.instances if kind == "text" else _labelled(scene):
            items.append(sample(scene, kind, size, map_size, width_frac, rng, augment, n_templates))
    return kind, {k: np.stack([it[k] for it in items]) for k in items[0]}


def dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of ``1 - (2 |P T| + 1) / (|P| + |T| + 1)`` with ``P = sigmoid(logits)``; (B, H, W)."""
    p = torch.sigmoid(logits)
    num = 2 * (p * target).sum(dim=(-2, -1)) + 1.0
    return (1.0 - num / (p.sum(dim=(-2, -1)) + target.sum(dim=(-2, -1)) + 1.0)).mean()


MAP_LOSSES = ("object", "labelled")


def loss(net, batch: tuple[str, dict[str, np.ndarray]], map_loss: str = "object",
         text_table: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """The step function's loss: ``{"loss", "mask", "quality", "cos", "sin", "width"}`` (module docstring);
    a "text" batch looks its embeddings up in ``text_table`` (n_classes * n_templates, text_dim) and scores the
    mask alone (the map terms are 0).

    ``map_loss="labelled"``: the angle and width maps (cos, sin, width) are scored only where a labelled
    rectangle drew them (quality target > 0). With the paper's ``"object"`` weighting, every object pixel that no
    rectangle covers has the targets cos = sin = 0, which pulls the angle vector towards zero length there, and
    the angle read at a quality peak next to a rectangle is then noise; the quality map keeps the object weighting
    either way (it must be low where no grasp is labelled)."""
    kind, b = batch
    kw: dict[str, torch.Tensor] = {}
    if kind == "points":
        kw = {"input_points": torch.from_numpy(b["points"])[:, None], "input_labels": torch.from_numpy(b["labels"])[:, None]}
    elif kind == "box":
        kw = {"input_boxes": torch.from_numpy(b["box"])[:, None]}
    elif kind == "text":
        kw = {"text_embeds": text_table[torch.from_numpy(b["text"])]}
    out = net(torch.from_numpy(b["pixels"]), **kw)
    target = torch.from_numpy(b["mask"])
    weight = torch.from_numpy(b["weight"])
    parts = {"mask": F.binary_cross_entropy_with_logits(out["mask"], target) + dice_loss(out["mask"], target)}
    if kind == "text":
        return {"loss": parts["mask"], "mask": parts["mask"].detach(), **{k: torch.zeros(()) for k in MAP_KEYS}}
    labelled = (torch.from_numpy(b["quality"]) > 0).float()
    for k in MAP_KEYS:
        w = labelled if (map_loss == "labelled" and k != "quality") else weight
        parts[k] = (w * (out[k] - torch.from_numpy(b[k])) ** 2).sum() / w.sum().clamp(min=1.0)
    total = sum(parts.values())
    return {"loss": total, **{k: v.detach() for k, v in parts.items()}}


def validate(net, bank: SceneBank, n_objects: int, seed: int = 99) -> dict[str, float | None]:
    """Top-1 Jaccard accuracy (against the object's own labels) and mask IoU of 10-point prompts on up to
    ``n_objects`` labelled products of the validation scenes (fixed draws)."""
    from graspsim.grasping.metrics import grasp_accuracy
    from graspsim.policies.clip_sam.evaluate import mask_iou
    from graspsim.policies.graspsam.config import PromptMode
    from graspsim.policies.graspsam.predictor import GraspSamPredictor, prompt_from_mask
    from graspsim.types import GraspRect

    rng = np.random.default_rng(seed)
    pred = GraspSamPredictor(net)
    objects = [(s, i) for s in bank.scenes for i in _labelled(s)]
    order = rng.permutation(len(objects))[:n_objects]
    preds, gts, ious = [], [], []
    for j in order:
        scene, inst = objects[j]
        obj = scene.instance == inst
        out = pred.predict(scene.rgb, scene.depth_m, scene.K, prompt_from_mask(obj, PromptMode("points", VAL_PROMPT_POINTS), rng))
        preds.append(GraspRect(*out["rects"][0]))
        gts.append([GraspRect(*g) for g in scene.grasps[scene.grasp_instance == inst]])
        ious.append(mask_iou(out["mask"], obj))
    return rounded({"val_grasp_accuracy": grasp_accuracy(preds, gts) if preds else None,
                    "val_mask_iou": float(np.mean(ious)) if ious else None, "val_objects": len(preds)})


def validate_text(net, bank: SceneBank, text_table: np.ndarray, n_queries: int, seed: int = 99
                  ) -> dict[str, float | None]:
    """The text token on up to ``n_queries`` (validation scene, product class) pairs, named "pick the {class}"
    (the phrasing of the benchmark's instructions), through the policy's first pass
    (:meth:`~.predictor.GraspSamPredictor.find_text`): ``val_text_found`` = share whose box holds mostly that
    class's pixels, ``val_text_class_iou`` = mean IoU of the found part with the class's pixels."""
    from graspsim.policies.clip_sam import vocab
    from graspsim.policies.clip_sam.evaluate import mask_iou
    from graspsim.policies.graspsam.predictor import GraspSamPredictor

    template = vocab.TRAIN_TEMPLATES.index("pick the {n}")
    rng = np.random.default_rng(seed)
    pred = GraspSamPredictor(net)
    pairs = sorted({(j, int(c)) for j, s in enumerate(bank.scenes) for _, c, _ in s.instances})
    order = rng.permutation(len(pairs))[:n_queries]
    found, ious = [], []
    for k in order:
        j, cls = pairs[k]
        scene = bank.scenes[j]
        prompt, mask = pred.find_text(scene.rgb, scene.depth_m, scene.K, text_table[cls, template])
        target = scene.class_map == cls
        ious.append(mask_iou(mask, target))
        if prompt is None:
            found.append(False)
            continue
        x0, y0, x1, y1 = (int(round(v)) for v in prompt.box)
        in_box = scene.class_map[y0:y1, x0:x1]
        counts = np.bincount(in_box[in_box >= 0].ravel().astype(np.int64), minlength=cls + 1)
        found.append(bool(counts.sum() and int(np.argmax(counts)) == cls))
    return rounded({"val_text_found": float(np.mean(found)) if found else None,
                    "val_text_class_iou": float(np.mean(ious)) if ious else None, "val_text_queries": len(found)})


def train_graspsam(data_dirs: list[str | Path], out_dir: str | Path, *, sam: str | None = None,
                   config: GraspSamConfig | dict | None = None, batch_size: int = 8, val_objects: int = 60,
                   augment: bool = True, balance_kinds: bool = True, init: str | Path | None = None,
                   command: str | None = None, map_loss: str = "object", text_prompts: float = 0.0,
                   trainable: str = "all", clip: str | None = None, **loop) -> dict[str, Any]:
    """Train GraspSAM's adapters, tokens and heads on a frozen SAM (``sam``: anything ``--sam`` takes; None =
    clip_sam's shipped one, or the one ``init`` was trained on).

    ``augment``: the window turns and mirrors of :data:`AUGMENTS`; ``balance_kinds``: as many shelf as table
    samples (:func:`draw_batch`); ``init``: a graspsam checkpoint directory to start from ("shipped": the shipped
    one; its config is used unless ``config`` is given, and must then match, except that a text token may be
    added). ``text_prompts``: the share of text-prompt batches (module docstring), embedded by ``clip`` (None:
    clip_sam's shipped CLIP); ``trainable``: "all" or "text" (the text parts alone; every batch a text batch).
    The other keywords (``epochs``, ``steps_per_epoch``, ``lr``, ``seed``, ``resume``, ``max_minutes``,
    ``threads``, ``progress``, ``log``):
    :func:`~graspsim.policies.clip_sam.train_data.train_run`. Returns the metadata (also ``out_dir/metadata.json``)."""
    init_path = None
    if init is not None:
        from graspsim.learn.checkpoint import read_metadata
        from graspsim.policies.graspsam.config import resolve_init

        init_path = resolve_init(init)
        init_meta = read_metadata(init_path)
        if config is None:
            config = init_meta.get("config")
        if sam is None:
            sam = init_meta.get("sam")
    cfg = GraspSamConfig.coerce(config)
    if map_loss not in MAP_LOSSES:
        raise ValueError(f"map_loss must be one of {', '.join(MAP_LOSSES)}, got {map_loss!r}")
    if trainable not in TRAINABLE:
        raise ValueError(f"trainable must be one of {', '.join(TRAINABLE)}, got {trainable!r}")
    if trainable == "text":
        text_prompts = 1.0  # nothing else would reach the text projection
    if not 0.0 <= float(text_prompts) <= 1.0:
        raise ValueError(f"text_prompts must be a share in [0, 1], got {text_prompts}")
    if text_prompts > 0 and cfg.text_dim == 0:
        from graspsim.policies.graspsam.text import TextEncoder

        cfg = GraspSamConfig.from_dict({**cfg.to_dict(), "text_dim": TextEncoder(clip).dim})
    settings = {"sam": sam, "config": cfg.to_dict(), "batch_size": batch_size, "val_objects": val_objects,
                "augment": bool(augment), "balance_kinds": bool(balance_kinds),
                "init": None if init_path is None else str(init_path)}
    if map_loss != "object":  # only then: runs begun before the option keep their settings (resume check)
        settings["map_loss"] = map_loss
    if text_prompts > 0:  # likewise
        settings.update(text_prompts=float(text_prompts), trainable=trainable, clip=clip)
    meta_extra = {"command": command}
    return train_run("graspsam", data_dirs, out_dir, settings,
                     lambda c, s, tb, vb: _stack(c, s, tb, vb, meta_extra), **loop)


def _stack(cfg, settings: dict[str, Any], train_bank: SceneBank, val_bank: SceneBank, meta_extra: dict):
    """The :class:`~graspsim.learn.loop.Stack` of a GraspSAM run: network, batches, validation, saving."""
    from graspsim.learn.checkpoint import save_weights
    from graspsim.learn.loop import Stack
    from graspsim.learn.sampling import RunStream
    from graspsim.policies.clip_sam.models import load_any_sam
    from graspsim.policies.graspsam.model import GraspSamNet

    if settings.get("trainable", "all") != "text" and not any(_labelled(s) for s in train_bank.scenes):
        raise ValueError("no training scene has grasp labels (were the datasets rendered with --no-grasps?)")
    net_cfg = GraspSamConfig.from_dict(settings["config"])
    net = GraspSamNet(load_any_sam(settings["sam"]), net_cfg)
    init = settings.get("init")
    if init:  # the loop restores a resumed run's own state after this, so init only seeds a fresh run
        from graspsim.learn.checkpoint import read_metadata
        from graspsim.policies.graspsam.predictor import load_trainable

        load_trainable(net, Path(init), read_metadata(Path(init)), allow_new=True)
    size, m, wf = net.image_size, net.map_size, net_cfg.width_frac
    # runs begun before these options existed had neither
    augment, balance = bool(settings.get("augment", False)), bool(settings.get("balance_kinds", False))
    text_prompts, trainable = float(settings.get("text_prompts", 0.0)), settings.get("trainable", "all")
    text_table, n_templates = None, 1
    if text_prompts > 0:
        from graspsim.policies.graspsam.text import TextEncoder

        encoder = TextEncoder(settings.get("clip"))
        if encoder.dim != net_cfg.text_dim:
            raise ValueError(f"the CLIP's text embeddings have {encoder.dim} numbers, the config's text_dim is "
                             f"{net_cfg.text_dim}")
        text_table = encoder.template_table()
        n_templates = text_table.shape[1]
        text_flat = torch.from_numpy(text_table.reshape(-1, text_table.shape[-1]))
        del encoder
    if trainable == "text":
        from graspsim.policies.graspsam.predictor import NEW_PARTS

        for name, p in net.named_parameters():
            p.requires_grad_(name.startswith(NEW_PARTS))

    def draw(rng: np.random.Generator):
        return draw_batch(train_bank, settings["batch_size"], size, m, wf, rng, augment, balance, text_prompts,
                          n_templates)

    def validation() -> dict:
        out = {} if trainable == "text" else validate(net, val_bank, settings["val_objects"])
        if text_table is not None:
            out.update(validate_text(net, val_bank, text_table, settings["val_objects"]))
        return out

    def save(out: Path, progress) -> dict:
        save_weights(out, net.trainable_state_dict())
        return {**run_metadata("graspsam", cfg, init, train_bank, val_bank, progress), "model": "graspsam",
                "sam": settings["sam"], "config": net_cfg.to_dict(), "parameters": net.parameter_counts(),
                "batch_size": settings["batch_size"], "augment": augment, "balance_kinds": balance,
                "trained_parameters": int(sum(p.numel() for p in net.parameters() if p.requires_grad)),
                "map_loss": settings.get("map_loss", "object"), "map_size": m,
                "image_size": size, **text_meta, **meta_extra}

    text_meta = {} if text_table is None else {"text_encoder": settings.get("clip"), "text_prompts": text_prompts,
                                                "trainable": trainable}
    map_loss = settings.get("map_loss", "object")
    return Stack(model=net, sampler=RunStream(settings["steps_per_epoch"], cfg.seed, draw),
                 step=lambda b: loss(net, b, map_loss, None if text_table is None else text_flat),
                 validate=validation, save=save)
