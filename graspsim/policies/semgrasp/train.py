"""semgrasp training on the shared loop (:mod:`graspsim.learn.loop`): ``graspsim train semgrasp``.

* **Items** (:mod:`.samples`): every (product, part) with grasps in the
  datasets' scenes; training keeps the pairs a training suite may ask
  (:func:`~graspsim.scenes.instructions.pair_allowed` ``"train"``).
* **Split**: a ``val_fraction`` share of the (suite, seed) scene keys, drawn with
  ``seed`` (``val_split="random"``, :func:`graspsim.data.reader.split_random`) or each
  suite's highest seeds (``"tail"``, :func:`graspsim.data.reader.split_tail`: benchmarks on
  the train suite's last indices then run on scenes training never saw).
* **Start**: fresh weights, or (``init``) those of an earlier checkpoint of the same
  network config (continuing a short run on more data); a checkpoint without
  the part head starts a network with one (the head's weights fresh).
* **A sample** (:class:`graspsim.learn.sampling.EpochShuffle`, one pass over the
  items per epoch): the product's crop with a jittered box, an instruction
  for (class, part) in a training phrasing drawn at random
  (:func:`~graspsim.scenes.instructions.phrasing_ids` ``"train"``), the target
  tokens of one of the part's three best grasps drawn at random.
* **Step**: teacher-forced cross-entropy summed over the five tokens (label
  smoothing 0.05), plus (``part_head``) the part head's pixel cross-entropy
  on the product's pixels of the crop (``part_seg`` of the render, as part
  words), weighted :data:`PART_LOSS_WEIGHT`; AdamW, warm-up + cosine schedule
  (:func:`_schedule`), gradient norm clipped at 1.
* **Validation** after every epoch: :func:`.evaluate.token_metrics` on the
  validation scenes; the checkpoint's ``metadata["metrics"]`` holds the last.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from graspsim.data.reader import DatasetError, Datasets, split_random, split_tail
from graspsim.policies.semgrasp.config import SemGraspNetConfig
from graspsim.policies.semgrasp.samples import Product, jittered_crop, part_target, pick_rect, scene_products
from graspsim.policies.semgrasp.tokens import rect_to_tokens
from graspsim.scenes.instructions import pair_allowed, part_instruction, phrasing_ids

LABEL_SMOOTHING = 0.05
#: Weight of the part head's pixel cross-entropy beside the five token losses' sum.
PART_LOSS_WEIGHT = 1.0
SPLITS = ("random", "tail")


def make_batch(products: list[Product], items: list[tuple[int, str]], idx: np.ndarray, rng: np.random.Generator,
               text, config: SemGraspNetConfig) -> dict[str, Any]:
    """The batch of ``items[idx]`` (see the module docstring): ``crop`` (B, 5, S, S), ``text`` (B, L, D),
    ``text_valid`` (B, L) bool, ``tokens`` (B, 5) int64, ``part`` (B, S, S) int64 (part-word index per crop
    pixel, -1 ignored: :func:`~.samples.part_target`) tensors."""
    import torch

    phrasings = phrasing_ids("train")
    crops, toks, texts, parts = [], [], [], []
    for j in idx:
        i, part = items[int(j)]
        p = products[i]
        crop, box = jittered_crop(p, config.crop_px, rng)
        crops.append(crop)
        parts.append(part_target(p, box, config.crop_px))
        toks.append(rect_to_tokens(pick_rect(p.grasps[part], rng), part, box, config.tokens))
        texts.append(part_instruction(p.class_name, part, int(rng.choice(phrasings))))
    t, v = text.states(texts)
    return {"crop": torch.from_numpy(np.stack(crops)), "text": torch.from_numpy(t), "text_valid": torch.from_numpy(v),
            "tokens": torch.from_numpy(np.stack(toks)), "part": torch.from_numpy(np.stack(parts))}


def step(net, batch: dict[str, Any]) -> dict:
    """Teacher-forced loss of one batch: ``{"loss", "loss_<type>"..., ["loss_partseg"]}``."""
    logits, part_logits = net(batch["crop"], batch["text"], batch["text_valid"], batch["tokens"], parts=True)
    out = net.loss(logits, batch["tokens"], LABEL_SMOOTHING)
    if part_logits is not None:
        out["loss_partseg"] = net.part_loss(part_logits, batch["part"])
        out["loss"] = out["loss"] + PART_LOSS_WEIGHT * out["loss_partseg"]
    return out


def load_products(data: Datasets, config: SemGraspNetConfig, planned: bool, progress: bool,
                  cache_dir=None) -> list[Product]:
    """The :class:`~.samples.Product` items of every scene of ``data`` (``cache_dir``: see
    :func:`~.samples.scene_products`)."""
    from tqdm import tqdm

    out = []
    for ref in tqdm(data.unique(), desc="semgrasp items", unit="scene", disable=not progress):
        out += scene_products(ref, config.crop_px, planned=planned, cache_dir=cache_dir)
    return out


def _schedule(step: int, total: int) -> float:
    """Warm-up over a tenth of the run (at most 100 steps), then cosine decay (:func:`~graspsim.learn.schedule.warmup_cosine`)."""
    from graspsim.learn.schedule import warmup_cosine

    return warmup_cosine(min(100, max(1, total // 10)))(step, total)


def train_semgrasp(data_dir, out_dir, *, epochs: int = 30, lr: float = 1e-3, batch_size: int = 32, seed: int = 0,
                   val_fraction: float = 0.1, resume: bool = False, progress: bool = True,
                   max_minutes: float | None = None, num_threads: int | None = None, config=None,
                   planned: bool = True, command: str | None = None, cache_dir=None, val_split: str = "random",
                   init=None) -> dict:
    """Train a :class:`~.model.SemGraspNet` on the datasets ``data_dir`` (a directory or a list); returns the
    checkpoint's metadata. ``config``: :class:`SemGraspNetConfig`, a dict of its fields, or None; ``planned``:
    add the part planner's grasps (:mod:`.samples`); ``cache_dir``: keep each scene's items there (they do not
    change the weights, so it is not a setting of the run); ``command``: recorded in the metadata; ``val_split``:
    ``random`` or ``tail`` (module docstring); ``init``: a checkpoint directory whose weights start the run."""
    from graspsim.learn.loop import LoopConfig, train

    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs and batch_size must be >= 1")
    if val_split not in SPLITS:
        raise ValueError(f"val_split must be one of {', '.join(SPLITS)}, got {val_split!r}")
    if isinstance(config, dict):
        config = SemGraspNetConfig.from_dict(config)
    config = config or SemGraspNetConfig()
    data = Datasets(data_dir)  # a bad dataset fails before anything is written
    settings = {"model": "semgrasp", "data": [str(d.resolve()) for d in data.dirs], "config": config.to_dict(),
                "batch_size": batch_size, "val_fraction": val_fraction, "planned": planned}
    if val_split != "random" or init is not None:  # absent when default: older runs keep resuming
        settings.update(val_split=val_split, init=None if init is None else str(Path(init).resolve()))
    init_weights = _init_weights(init, config) if init is not None else None  # a bad --init fails first
    cfg = LoopConfig(epochs=epochs, lr=lr, seed=seed, weight_decay=1e-4, grad_clip=1.0, schedule=_schedule,
                     max_minutes=max_minutes, threads=num_threads, progress=progress, name="semgrasp")

    def build():
        return _stack(data, config, cfg, settings, command, cache_dir, init_weights)

    return train(out_dir, settings, build, cfg, resume, log=(lambda s: print(s, flush=True)) if progress else None)


def _init_weights(init, config: SemGraspNetConfig) -> dict:
    """The state dict of checkpoint ``init`` (ValueError when its network differs from ``config``'s; the angle
    bins' placement (``angle_centred``) may differ: it changes what the angle head's outputs mean, not a weight,
    and training re-learns it; a checkpoint without a part head may start a network with one: the returned
    dict then lacks the head's weights, which keep their fresh values)."""
    from graspsim.learn.checkpoint import load_weights, read_metadata

    meta = read_metadata(Path(init))
    if meta.get("model") == "semgrasp":
        theirs = SemGraspNetConfig.from_checkpoint(meta.get("config") or {})
        same = {**theirs.to_dict(), "angle_centred": config.angle_centred,
                "part_head": config.part_head if not theirs.part_head else True}
        if same == config.to_dict():
            return load_weights(Path(init), meta)
    raise ValueError(f"--init {init}: not a semgrasp checkpoint with this network config")


def _stack(data: Datasets, config: SemGraspNetConfig, cfg, settings: dict, command: str | None, cache_dir,
           init_weights: dict | None = None):
    """The :class:`~graspsim.learn.loop.Stack` of one run: items, split, network, batches, validation, saving."""
    import torch

    import graspsim
    from graspsim.learn.checkpoint import save_weights
    from graspsim.learn.loop import Stack
    from graspsim.learn.sampling import EpochShuffle
    from graspsim.policies.semgrasp.evaluate import token_metrics
    from graspsim.policies.semgrasp.predictor import build_net
    from graspsim.policies.semgrasp.text import TextStates

    products = load_products(data, config, settings["planned"], cfg.progress, cache_dir)
    keys = sorted({p.key for p in products})
    if not keys:
        raise DatasetError("no product with a part-labelled grasp in the data: render a *-parts-train suite "
                           "(`graspsim render --suite shelf-parts-train ...`) with grasp labels")
    if settings.get("val_split", "random") == "tail":
        train_keys, val_keys = split_tail(keys, settings["val_fraction"])
    else:
        train_keys, val_keys = split_random(keys, settings["val_fraction"], cfg.seed)
    train_products = [p for p in products if p.key in train_keys or val_keys == train_keys]
    val_products = [p for p in products if p.key in val_keys]
    items = [(i, part) for i, p in enumerate(train_products) for part in sorted(p.grasps)
             if pair_allowed(p.class_name, part, "train")]
    if not items:
        raise DatasetError("no training item: every part with grasps is a held-out (class, part) pair")
    text = TextStates(config.max_text)
    net = build_net(config)
    if init_weights is not None:
        missing, unexpected = net.load_state_dict(init_weights, strict=False)
        if unexpected or any(not k.startswith("part_head.") for k in missing):
            raise ValueError(f"--init weights do not fit the network: missing {missing}, unexpected {unexpected}")
    meta_base = {"model": "semgrasp", "config": config.to_dict(), "seed": cfg.seed, "epochs": cfg.epochs,
                 "batch_size": settings["batch_size"], "lr": cfg.lr, "planned": settings["planned"],
                 "val_split": settings.get("val_split", "random"), "init": settings.get("init"),
                 "text_encoder": "all-MiniLM-L6-v2 token states", "command": command,
                 "data": {"dir": settings["data"], "suite": sorted({str(m.get("suite")) for m in data.manifests}),
                          "scenes": len(keys), "train_scenes": len(train_keys), "val_scenes": len(val_keys),
                          "val_is_train": val_keys == train_keys, "train_items": len(items),
                          "val_keys": sorted([list(k) for k in val_keys])},
                 "graspsim_version": graspsim.__version__, "torch_version": torch.__version__}

    def batch(idx: np.ndarray, rng: np.random.Generator):
        return make_batch(train_products, items, idx, rng, text, config)

    def save(out: Path, progress) -> dict:
        save_weights(out, net.state_dict())
        last = progress.last
        return {**meta_base, "metrics": {k: v for k, v in last.items() if k not in ("epoch", "step", "seconds")}}

    return Stack(model=net, sampler=EpochShuffle(len(items), settings["batch_size"], cfg.seed, batch),
                 step=lambda b: step(net, b), validate=lambda: token_metrics(net, val_products, text), save=save)
