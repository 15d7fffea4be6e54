"""``graspsim train shape``: train the shape prior (:mod:`.shape_prior`) on rendered scenes' instance masks.

Samples: the :func:`~.shape_prior.shape_features` of every product instance with at least
:data:`~.train_data.MIN_INSTANCE_PX` visible pixels (at 640x480), labelled with its class, plus ``copies``
perturbed masks per instance, because the policy measures SAM's masks, not perfect ones: each copy is the mask
eroded or dilated by 1-3 pixels, and in 30 % of them also cut by a random straight line to 60-90 % of its pixels
(a mask that stops short of the product's end, or a product partly hidden). The perturbations are drawn from
``numpy.random.default_rng([seed, dataset index, scene seed])``, so a bank is the same however it is read.

Batches (one run-long generator, :class:`~graspsim.learn.sampling.RunStream`): ``batch_size`` samples with a
size jitter: every length feature gets the same log factor ~ N(0, ``size_jitter``) (the area twice that), since
the unseen flavours' sizes differ from the seen ones' by a few per cent (``catalog.SIZE_JITTER``) and the prior
must not learn the seen flavours' exact sizes. Loss: cross-entropy with label smoothing (``label_smoothing``), so
that a confident shape never vetoes CLIP completely. Validation (scenes with seed % 10 == 0): top-1 / top-3
accuracy and the mean negative log-likelihood of the true class, on unperturbed and perturbed masks.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from graspsim.data.reader import Datasets
from graspsim.policies.clip_sam.shape_prior import (FEATURE_NAMES, LOG_AREA, LOG_LENGTHS, ShapePriorNet,
                                                    save_shape_prior, shape_features)
from graspsim.policies.clip_sam.train_data import MIN_INSTANCE_PX, N_CLASSES, rounded, run_metadata, train_run

CUT_SHARE = 0.3  # share of the perturbed copies also cut by a straight line


def perturbed_mask(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``mask`` (H, W) bool eroded or dilated by 1-3 pixels, and with probability :data:`CUT_SHARE` cut by a
    random straight line to 60-90 % of its pixels (the side holding them); never empty."""
    k = int(rng.integers(1, 4))
    kernel = np.ones((2 * k + 1, 2 * k + 1), np.uint8)
    grow = rng.random() < 0.5
    out = (cv2.dilate if grow else cv2.erode)(mask.astype(np.uint8), kernel).astype(bool)
    if not out.any():
        out = mask.copy()
    if rng.random() < CUT_SHARE:
        rows, cols = np.nonzero(out)
        angle = rng.uniform(0.0, np.pi)
        along = cols * np.cos(angle) + rows * np.sin(angle)
        keep = rng.uniform(0.6, 0.9)
        cut = np.quantile(along, keep)
        sel = along <= cut
        out = np.zeros_like(out)
        out[rows[sel], cols[sel]] = True
    return out


class FeatureBank:
    """Shape features of the instances of one split of rendered datasets (module docstring).

    ``x`` (N, :data:`~.shape_prior.N_FEATURES`) float32, ``y`` (N,) int64 class, ``perturbed`` (N,) bool;
    ``sources``: per dataset its directory, suite and number of scenes read; ``len()``: scenes read.
    """

    def __init__(self, data_dirs: list[str | Path], split: str, copies: int = 2, seed: int = 0):
        data = Datasets(list(data_dirs))
        xs: list[np.ndarray] = []
        ys: list[int] = []
        flags: list[bool] = []
        self.sources: list[dict] = []
        self.n_scenes = 0
        for i, (d, manifest) in enumerate(zip(data.dirs, data.manifests)):
            refs = data.split_scenes(i, split)
            for ref in refs:
                rng = np.random.default_rng([seed, i, ref.seed])
                for f, c, p in scene_samples(Datasets.read(ref), manifest["kind"], copies, rng):
                    xs.append(f)
                    ys.append(c)
                    flags.append(p)
            self.sources.append({"dir": str(d), "suite": manifest["suite"], "scenes": len(refs)})
            self.n_scenes += len(refs)
        if not xs:
            raise ValueError(f"no complete scenes in {', '.join(str(d) for d in data_dirs)} (split {split})")
        self.x = np.stack(xs).astype(np.float32)
        self.y = np.asarray(ys, dtype=np.int64)
        self.perturbed = np.asarray(flags, dtype=bool)

    def __len__(self) -> int:
        return self.n_scenes


def scene_samples(scene: dict, kind: str, copies: int, rng: np.random.Generator):
    """``(features, class, perturbed)`` of each product instance of a read scene (:func:`Datasets.read`) with
    enough pixels: its own mask, then ``copies`` :func:`perturbed_mask` es (those without features are left out)."""
    instance = scene["instance"].astype(np.int32) - 1  # -1: not a product
    classes = scene["class_map"].astype(np.int32) - 1
    min_px = MIN_INSTANCE_PX * instance.size / (640 * 480)
    ids, counts = np.unique(instance[instance >= 0], return_counts=True)
    for inst, n in zip(ids, counts):
        if n < min_px:
            continue
        mask = instance == inst
        cls = int(np.bincount(classes[mask]).argmax())
        variants = [(mask, False)] + [(perturbed_mask(mask, rng), True) for _ in range(copies)]
        for m, flag in variants:
            f = shape_features(m, scene["depth_m"], scene["K"], scene["T_world_camera"], kind)
            if f is not None:
                yield f, cls, flag


def jitter_sizes(x: np.ndarray, rng: np.random.Generator, sd: float) -> np.ndarray:
    """``x`` (B, F) features of products scaled by ``exp(N(0, sd))`` each: the log lengths shift by the log
    factor, the log area by twice it; the other features are scale-free and stay."""
    out = np.array(x, dtype=np.float32, copy=True)
    if sd > 0:
        shift = rng.normal(0.0, sd, size=(len(out), 1)).astype(np.float32)
        out[:, LOG_LENGTHS] += shift
        out[:, LOG_AREA] += 2.0 * shift[:, 0]
    return out


@torch.no_grad()
def validate_shape(net: ShapePriorNet, bank: FeatureBank) -> dict[str, float]:
    """Top-1 / top-3 accuracy and mean NLL of the true class on the bank's unperturbed (``clean``) and
    perturbed (``noisy``) masks."""
    logits = net(torch.from_numpy(bank.x))
    y = torch.from_numpy(bank.y)
    nll = F.cross_entropy(logits, y, reduction="none")
    top3 = (logits.topk(min(3, logits.shape[1]), dim=1).indices == y[:, None]).any(dim=1)
    top1 = logits.argmax(dim=1) == y
    out = {}
    for name, sel in (("clean", ~bank.perturbed), ("noisy", bank.perturbed)):
        sel_t = torch.from_numpy(sel)
        if sel.any():
            out.update({f"val_top1_{name}": float(top1[sel_t].float().mean()),
                        f"val_top3_{name}": float(top3[sel_t].float().mean()),
                        f"val_nll_{name}": float(nll[sel_t].mean())})
    return out


def train_shape(data_dirs: list[str | Path], out_dir: str | Path, *, batch_size: int = 256, hidden: int = 128,
                copies: int = 2, size_jitter: float = 0.04, label_smoothing: float = 0.05, **loop) -> dict[str, Any]:
    """Train a shape prior on rendered datasets into ``out_dir`` (``model.safetensors``, ``config.json``,
    ``metadata.json``). The other keywords (``epochs``, ``steps_per_epoch``, ``lr``, ``seed``, ``resume``,
    ``max_minutes``, ``threads``, ``progress``, ``log``): those of :func:`~.train_data.train_run`."""
    settings = {"batch_size": batch_size, "hidden": hidden, "copies": copies, "size_jitter": size_jitter,
                "label_smoothing": label_smoothing}
    seed = int(loop.get("seed", 0))
    return train_run("shape", data_dirs, out_dir, settings, _stack, **loop,
                     bank=lambda dirs, split: FeatureBank(dirs, split, copies=copies, seed=seed))


def _stack(cfg, settings: dict[str, Any], train_bank: FeatureBank, val_bank: FeatureBank):
    """The :class:`~graspsim.learn.loop.Stack` of a shape-prior run: the network (standardised by the training
    features), size-jittered batches, cross-entropy, validation, saving."""
    from graspsim.learn.loop import Stack
    from graspsim.learn.sampling import RunStream

    net = ShapePriorNet(N_CLASSES, settings["hidden"])
    net.mean.copy_(torch.from_numpy(train_bank.x.mean(axis=0)))
    net.std.copy_(torch.from_numpy(train_bank.x.std(axis=0) + 1e-6))
    n, batch_size = len(train_bank.y), settings["batch_size"]

    def draw(rng: np.random.Generator):
        idx = rng.integers(0, n, size=batch_size)
        return (torch.from_numpy(jitter_sizes(train_bank.x[idx], rng, settings["size_jitter"])),
                torch.from_numpy(train_bank.y[idx]))

    def step(batch):
        x, y = batch
        logits = net(x)
        loss = F.cross_entropy(logits, y, label_smoothing=settings["label_smoothing"])
        return {"loss": loss, "top1": (logits.argmax(dim=1) == y).float().mean()}

    def save(out: Path, progress) -> dict:
        save_shape_prior(net, out)
        own = {k: settings[k] for k in ("batch_size", "hidden", "copies", "size_jitter", "label_smoothing")}
        return {**run_metadata("shape", cfg, None, train_bank, val_bank, progress), **own,
                "samples": {"train": int(n), "val": int(len(val_bank.y))}, "features": list(FEATURE_NAMES)}

    return Stack(model=net, sampler=RunStream(settings["steps_per_epoch"], cfg.seed, draw), step=step,
                 validate=lambda: rounded(validate_shape(net, val_bank)), save=save)
