"""Offline metrics of semgrasp: token accuracy per token type, and the part on held-out phrasings and pairs.

Render-free: every (product, part) with grasps in the validation scenes becomes an
instruction (a training phrasing, deterministic per item) and the product's
nominal crop box. Reported (``metadata["metrics"]`` of a checkpoint, and
``graspsim evaluate semgrasp``):

* ``acc_<type>``: teacher-forced top-1 accuracy of each token against the part's
  best grasp (the first validated label, else the planner's best); ``acc_angle_pm1``: within one
  angle bin (bins wrap around at +-90 degrees);
* ``part_acc``: the part token decoded freely (greedy, no class restriction);
* ``part_acc_heldout_phrasings``: the same with the held-out phrasings (test-only wordings);
* ``part_acc_heldout_pairs``: held-out (class, part) pairs (:data:`~graspsim.scenes.instructions.HELDOUT_PAIRS`,
  never asked in training) over the products given, every train phrasing; ``heldout_pair_items`` counts them;
* ``items``: (product, part) items evaluated;
* with a part head: ``partseg_acc``, the share of product pixels (nominal crops, products with part labels)
  whose part word the head gets right, and ``partseg_miou``, the mean over part words of their IoU on those
  pixels (words never present and never predicted left out).
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from graspsim.assets.parts import PART_WORDS
from graspsim.policies.semgrasp.samples import Product, jittered_crop, part_target, pick_rect
from graspsim.policies.semgrasp.tokens import TOKEN_TYPES, rect_to_tokens
from graspsim.scenes.instructions import HELDOUT_PHRASINGS, pair_allowed, part_instruction, phrasing_ids


def eval_items(products: Sequence[Product], heldout: bool) -> list[tuple[int, str]]:
    """``(product index, part)`` of every product's parts with grasps: the trainable pairs, or (``heldout``)
    the held-out ones."""
    return [(i, part) for i, p in enumerate(products) for part in sorted(p.grasps)
            if pair_allowed(p.class_name, part, "train") != heldout]


def _batches(n: int, size: int):
    for i in range(0, n, size):
        yield slice(i, min(n, i + size))


def token_metrics(net, products: Sequence[Product], text, batch_size: int = 64) -> dict:
    """The metrics of the module docstring for ``net`` (eval mode) on ``products``; ``text``: a
    :class:`~.text.TextStates`."""
    import torch

    cfg = net.config
    spec = cfg.tokens
    train_ph, held_ph = phrasing_ids("train"), sorted(HELDOUT_PHRASINGS)
    items = eval_items(products, heldout=False)
    pairs = eval_items(products, heldout=True)
    hits = {k: 0 for k in (*TOKEN_TYPES, "angle_pm1", "part_free", "part_held_phrasing")}
    pair_hits = 0
    with torch.no_grad():
        for sl in _batches(len(items), batch_size):
            chunk = items[sl]
            crops, toks, texts, held = [], [], [], []
            for j, (i, part) in enumerate(chunk):
                p = products[i]
                crop, box = jittered_crop(p, cfg.crop_px, None)
                crops.append(crop)
                toks.append(rect_to_tokens(pick_rect(p.grasps[part], None), part, box, spec))
                n = sl.start + j
                texts.append(part_instruction(p.class_name, part, train_ph[n % len(train_ph)]))
                held.append(part_instruction(p.class_name, part, held_ph[n % len(held_ph)]))
            x = torch.from_numpy(np.stack(crops))
            tok = torch.from_numpy(np.stack(toks))
            t, v = (torch.from_numpy(a) for a in text.states(texts))
            logits = net(x, t, v, tok)
            for k, name in enumerate(TOKEN_TYPES):
                hits[name] += int((logits[k].argmax(-1) == tok[:, k]).sum())
            da = (logits[1].argmax(-1) - tok[:, 1]).abs()
            hits["angle_pm1"] += int(((da <= 1) | (da == spec.n_angle - 1)).sum())
            hits["part_free"] += int((net.generate(x, t, v)[0][:, 0, 0] == tok[:, 0]).sum())
            th, vh = (torch.from_numpy(a) for a in text.states(held))
            hits["part_held_phrasing"] += int((net.generate(x, th, vh)[0][:, 0, 0] == tok[:, 0]).sum())
        for sl in _batches(len(pairs), max(1, batch_size // len(train_ph))):
            chunk = pairs[sl]
            crops, texts, want = [], [], []
            for i, part in chunk:
                p = products[i]
                crop, _ = jittered_crop(p, cfg.crop_px, None)
                for ph in train_ph:
                    crops.append(crop)
                    texts.append(part_instruction(p.class_name, part, ph))
                    want.append(PART_WORDS.index(part))
            t, v = (torch.from_numpy(a) for a in text.states(texts))
            got = net.generate(torch.from_numpy(np.stack(crops)), t, v)[0][:, 0, 0].numpy()
            pair_hits += int((got == np.asarray(want)).sum())
    n = max(1, len(items))
    out = {f"acc_{name}": hits[name] / n for name in TOKEN_TYPES}
    out.update(acc_angle_pm1=hits["angle_pm1"] / n, part_acc=hits["part_free"] / n,
               part_acc_heldout_phrasings=hits["part_held_phrasing"] / n, items=len(items),
               part_acc_heldout_pairs=(pair_hits / (len(pairs) * len(train_ph))) if pairs else None,
               heldout_pair_items=len(pairs))
    if net.part_head is not None:
        out.update(partseg_metrics(net, products, batch_size))
    return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in out.items()}


def partseg_metrics(net, products: Sequence[Product], batch_size: int = 64) -> dict:
    """``{"partseg_acc", "partseg_miou"}`` of ``net``'s part head on the nominal crops of ``products`` (see the
    module docstring; None when no product has part labels)."""
    import torch

    size = net.config.crop_px
    labelled = [p for p in products if p.part is not None]
    n_words = len(PART_WORDS)
    confusion = np.zeros((n_words, n_words), dtype=np.int64)  # [true, predicted]
    with torch.no_grad():
        for sl in _batches(len(labelled), batch_size):
            crops, targets = [], []
            for p in labelled[sl]:
                crop, box = jittered_crop(p, size, None)
                crops.append(crop)
                targets.append(part_target(p, box, size))
            pred = net.part_logits(torch.from_numpy(np.stack(crops))).argmax(1).numpy()
            target = np.stack(targets)
            on = target >= 0
            confusion += np.bincount(target[on] * n_words + pred[on], minlength=n_words * n_words).reshape(
                n_words, n_words)
    total = confusion.sum()
    if not total:
        return {"partseg_acc": None, "partseg_miou": None}
    inter = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - inter
    seen = union > 0
    return {"partseg_acc": float(inter.sum() / total), "partseg_miou": float(np.mean(inter[seen] / union[seen]))}


def evaluate_checkpoint(checkpoint, data_dir, max_scenes: int | None = None, split: str = "val",
                        planned: bool | None = None, cache_dir=None) -> dict:
    """:func:`token_metrics` of a checkpoint on the scenes of ``data_dir`` (one directory or a list):
    ``split="val"`` the checkpoint's validation scenes (its metadata's ``data.val_keys``) found there, ``"all"``
    every scene. ``planned``: as in training (None: the checkpoint's setting); ``cache_dir``: as in training."""
    from graspsim.data.reader import Datasets
    from graspsim.policies.semgrasp.predictor import load_net
    from graspsim.policies.semgrasp.samples import scene_products
    from graspsim.policies.semgrasp.text import TextStates

    net, meta = load_net(checkpoint)
    refs = Datasets(data_dir).unique()
    if split == "val":
        val = {tuple(k) for k in (meta.get("data") or {}).get("val_keys", [])}
        refs = [r for r in refs if r.key in val]
    elif split != "all":
        raise ValueError(f"split must be 'val' or 'all', got {split!r}")
    refs = refs[:max_scenes] if max_scenes else refs
    if not refs:
        raise ValueError(f"no {split} scenes of this checkpoint in {data_dir}")
    use_planned = meta.get("planned", True) if planned is None else planned
    products = [p for r in refs for p in scene_products(r, net.config.crop_px, planned=use_planned,
                                                                   cache_dir=cache_dir)]
    return {"scenes": len(refs), **token_metrics(net, products, TextStates(net.config.max_text))}
