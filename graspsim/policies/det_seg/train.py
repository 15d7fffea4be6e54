"""det_seg / GR-ConvNet training on the shared loop (:mod:`graspsim.learn.loop`): batches, losses, validation.

``train_det_seg`` / ``train_grconvnet``:

* **Data** (:class:`graspsim.data.reader.Datasets`): every complete scene of
  ``data_dir`` (one directory or a list of them) is letterboxed once into
  memory (:mod:`.samples`); targets are encoded per batch (after the optional
  horizontal flip). Datasets rendered with ``--no-grasps`` (manifest
  ``config.labels.max_candidates == 0``) carry no grasp labels: their scenes
  train the segmentation branch only (the detection and refinement losses skip
  them; GR-ConvNet ignores them). A scene (suite, seed) found in several
  datasets is loaded once, from a labelled dataset when there is one.
* **Split** (:func:`graspsim.data.reader.split_random`): the labelled scenes'
  (suite, seed) keys, a ``val_fraction`` share held out with
  ``numpy.random.default_rng(seed)``; ``val_fraction = 0`` validates on the
  training scenes (flagged in the metadata). Unlabelled scenes always train.
* **Sampling** (:class:`graspsim.learn.sampling.EpochShuffle`, augmentation included); nothing else is
  random (the hard-negative mining is deterministic).
* **Optimiser**: AdamW (lr ``lr``, weight decay 1e-4), cosine schedule over all
  steps times a 50-step ramp, gradient norm clipped at 10. (The seed uses SGD +
  Nesterov with an ImageNet-pretrained ResNet-101; from scratch on a CPU Adam is
  the safer choice.)
* **Files** in ``out_dir``: those of the loop (``train.json``, ``metrics.jsonl``,
  ``train_state.pt`` until finished) and the checkpoint ``model.safetensors`` +
  ``metadata.json`` after every epoch (``"finished": true`` after the last).
  Loading: :mod:`.checkpoint`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from graspsim.data.reader import DatasetError, Datasets, SceneRef, split_random
from graspsim.policies.det_seg.checkpoint import build_net, net_classes
from graspsim.policies.det_seg.samples import Sample, augment, load_samples

#: The validation numbers recorded as ``metadata["val_metrics"]``.
VAL_KEYS = ("grasp_accuracy", "seg_iou", "images")


class _Task:
    """A network kind (``kind``, ``config``: its config dataclass): the fresh network, batches and loss."""

    kind: str

    def __init__(self, config):
        self.config = net_classes(self.kind)[1].coerce(config)

    def build(self):
        return build_net(self.kind, self.config)


class _DetSegTask(_Task):
    kind = "det_seg"

    def batch(self, items: list[tuple]) -> dict[str, Any]:
        import torch

        from graspsim.policies.det_seg.targets import encode_det_targets

        cfg = self.config
        rgbs, segs, gts, labelled, targets = [], [], [], [], []
        for item in items:
            rgb, seg, _depth, rects, quality = item[:5]
            labelled.append(bool(item[5]) if len(item) > 5 else True)
            targets.append(encode_det_targets(rects, quality, cfg.input_size, cfg.det_strides, cfg.anchor_scale,
                                              cfg.pos_radius, cfg.num_bins))  # one dict per detection level
            rgbs.append(torch.from_numpy(rgb).permute(2, 0, 1))
            segs.append(torch.from_numpy(seg.astype(np.int64)))
            gts.append(torch.from_numpy(np.asarray(rects, dtype=np.float32).reshape(-1, 5)))
        levels = {k: [torch.stack([torch.from_numpy(t[li][k]) for t in targets]) for li in range(len(cfg.det_levels))]
                  for k in ("cls", "reg", "gt")}
        return {"rgb": torch.stack(rgbs).float() / 255.0, "seg": torch.stack(segs), **levels, "gt_rects": gts,
                "labelled": torch.tensor(labelled)}

    def loss(self, net, batch: dict[str, Any]) -> dict:
        return net.loss(net(batch["rgb"]), batch)


class _GrConvTask(_Task):
    kind = "grconvnet"

    def batch(self, items: list[tuple]) -> dict[str, Any]:
        import torch

        from graspsim.policies.det_seg.grconvnet import prepare_input
        from graspsim.policies.det_seg.targets import encode_grconvnet_maps

        cfg = self.config
        xs, maps, valid = [], {k: [] for k in ("quality", "cos", "sin", "width")}, []
        for item in items:
            rgb, seg, depth, rects, quality = item[:5]
            xs.append(prepare_input(rgb, depth, cfg))
            m = encode_grconvnet_maps(rects, quality, cfg.input_size, cfg.width_scale)
            for k in maps:
                maps[k].append(torch.from_numpy(m[k])[None])
            valid.append(torch.from_numpy(seg >= 0)[None])
        return {"x": torch.stack(xs), "maps": {k: torch.stack(v) for k, v in maps.items()}, "valid": torch.stack(valid)}

    def loss(self, net, batch: dict[str, Any]) -> dict:
        return net.loss(net(batch["x"]), batch["maps"], batch["valid"])


def validate(net, samples: list[Sample], kind: str) -> dict[str, float | None]:
    """Top-1 Jaccard grasp accuracy (source px, every ground truth of the image) and, for det_seg, mean seg IoU.

    The segmentation is the network's own (``min_region_px=0``, bilinear upsampling): the policy's speck clean-up
    and guided upsampling are chosen on these scenes after training, and a curve that moved with those defaults
    would not be comparable across runs.
    """
    from graspsim.fileio import to_jsonable
    from graspsim.grasping.metrics import grasp_accuracy, segmentation_iou
    from graspsim.policies.det_seg.evaluate import _nanmean, _Tally
    from graspsim.policies.det_seg.policy import make_predictor

    was_training = net.training
    pred = make_predictor(net, min_region_px=0.0, guided=False)
    t = _Tally(has_seg=False)  # the top-1 grasps; the strict seg IoU alone is added below
    for s in samples:
        if len(s.src_rects) == 0:
            continue
        out = pred.predict(s.src_rgb, s.src_depth) if kind == "grconvnet" else pred.predict(s.src_rgb)
        t.add({"grasps": s.src_rects}, out)
        if out["seg"] is not None:
            t.ious.append(segmentation_iou(out["seg"], s.src_class_map.astype(np.int64), t.num_classes)["mean_iou"])
    net.train(was_training)
    return to_jsonable({"grasp_accuracy": grasp_accuracy(t.preds, t.gts) if t.preds else None,
                   "seg_iou": _nanmean(t.ious), "images": len(t.preds)})


def train_det_seg(data_dir: str | Path, out_dir: str | Path, *, epochs: int = 40, lr: float = 2e-3, config=None,
                  **kw) -> dict:
    """Train a :class:`~.model.DetSegNet` (``config``: DetSegConfig or dict; None = defaults). Returns the metadata dict.

    The other keywords: those of :func:`_train`. ``init``: a det_seg checkpoint directory whose weights start the
    run (fine-tuning, e.g. at another ``input_size``); ``config`` must describe the same layers (see
    :func:`~.checkpoint.init_config`).
    """
    return _train(_DetSegTask(config), data_dir, out_dir, epochs=epochs, lr=lr, **kw)


def train_grconvnet(data_dir: str | Path, out_dir: str | Path, *, epochs: int = 20, lr: float = 1e-3, config=None,
                    **kw) -> dict:
    """Train a :class:`~.grconvnet.GrConvNet` (``config``: GrConvNetConfig or dict). Returns the metadata dict.

    The other keywords: those of :func:`_train`. The decoded finger size ``finger_px`` is set to the median ``h``
    of the training grasps (network px) unless ``config`` gives it explicitly (or ``init`` does).
    """
    explicit_finger = isinstance(config, dict) and "finger_px" in config
    return _train(_GrConvTask(config), data_dir, out_dir, epochs=epochs, lr=lr,
                  set_finger=not explicit_finger and kw.get("init") is None, **kw)


def _train(task, data_dir, out_dir, *, epochs: int, lr: float, batch_size: int = 8, seed: int = 0,
           val_fraction: float = 0.1, resume: bool = False, progress: bool = True, max_minutes: float | None = None,
           augment_data: bool = True, num_threads: int | None = None, set_finger: bool = False,
           init: str | Path | None = None, command: str | None = None) -> dict:
    from graspsim.learn.loop import LoopConfig, train
    from graspsim.learn.schedule import cosine_with_ramp

    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs and batch_size must be >= 1")
    data = Datasets(data_dir)  # a bad dataset fails before anything is written
    refs = data.unique()
    if task.kind == "grconvnet":  # pixel-wise grasp maps need grasp labels on every image
        refs = [r for r in refs if r.labelled]
        if not refs:
            raise DatasetError("GR-ConvNet needs grasp labels: every --data dataset was rendered with --no-grasps")
    settings = {"model": task.kind, "data": [str(d.resolve()) for d in data.dirs], "config": task.config.to_dict(),
                "batch_size": batch_size, "val_fraction": val_fraction, "augment": augment_data,
                "init": None if init is None else str(Path(init).resolve())}
    cfg = LoopConfig(epochs=epochs, lr=lr, seed=seed, weight_decay=1e-4, grad_clip=10.0,
                     schedule=cosine_with_ramp(50), max_minutes=max_minutes, threads=num_threads, progress=progress,
                     name=task.kind)

    def build():
        return _stack(task, data, refs, data_dir, cfg, settings, set_finger, command)

    return train(out_dir, settings, build, cfg, resume, log=(lambda s: print(s, flush=True)) if progress else None)


def _stack(task, data: Datasets, refs: list[SceneRef], data_dir, cfg, settings: dict, set_finger: bool,
           command: str | None = None):
    """The :class:`~graspsim.learn.loop.Stack` of one run (``settings``: :func:`_train`'s): samples, split, network,
    batches, validation, saving. ``command``: the command line that started the run, recorded in the metadata
    (not a setting: ``--resume`` may be typed differently)."""
    import torch

    import graspsim
    from graspsim.learn.checkpoint import save_weights
    from graspsim.learn.loop import Stack
    from graspsim.learn.sampling import EpochShuffle
    from graspsim.policies.det_seg.checkpoint import load_init_weights

    keys = [r.key for r in refs]
    train_keys, val_keys = split_random([r.key for r in refs if r.labelled] or keys, settings["val_fraction"], cfg.seed)
    samples = load_samples(refs, task.config.input_size, with_depth=task.kind == "grconvnet",
                           keep_source=lambda r: r.key in val_keys)
    val = [s for s in samples if s.key in val_keys]
    train = [s for s in samples if s.key not in val_keys or val_keys == train_keys]
    if set_finger:
        hs = np.concatenate([s.rects[:, 3] for s in train if len(s.rects)] or [np.array([task.config.finger_px])])
        task.config.finger_px = float(np.median(hs))
    net = task.build()
    meta_base = {"model": task.kind, "config": task.config.to_dict(),
                 "data": _data_summary(data, data_dir, samples, train, val, train_keys, val_keys),
                 "seed": cfg.seed, "epochs": cfg.epochs, "batch_size": settings["batch_size"], "lr": cfg.lr,
                 "val_fraction": settings["val_fraction"], "augment": settings["augment"],
                 "graspsim_version": graspsim.__version__, "torch_version": torch.__version__}
    if command is not None:
        meta_base["command"] = command
    if settings["init"] is not None:
        meta_base["init"] = settings["init"]
        meta_base["init_metadata"] = load_init_weights(net, settings["init"], task.kind)

    def make_batch(idx: np.ndarray, rng: np.random.Generator) -> dict[str, Any]:
        items = []
        for j in idx:
            s = train[j]
            rgb, seg, depth, rects = augment(s, rng, settings["augment"])
            items.append((rgb, seg, depth, rects, s.quality, s.labelled))
        return task.batch(items)

    def step(batch: dict[str, Any]) -> dict:
        parts = task.loss(net, batch)
        return {"loss": parts.pop("total"), **parts}

    def save(out: Path, progress) -> dict:
        save_weights(out, net.state_dict())
        return {**meta_base, "val_metrics": {k: progress.last.get(k) for k in VAL_KEYS}}

    return Stack(model=net, sampler=EpochShuffle(len(train), settings["batch_size"], cfg.seed, make_batch), step=step,
                 validate=lambda: validate(net, val, task.kind), save=save)


def _data_summary(data: Datasets, data_dir, samples: list[Sample], train: list[Sample], val: list[Sample],
                  train_keys: set, val_keys: set) -> dict:
    """``metadata["data"]``: where the scenes came from and how they were split."""
    suites = {str(m.get("suite")) for m in data.manifests}
    one_suite = len({k[0] for k in val_keys}) <= 1
    return {"dir": str(Path(data_dir).resolve()) if isinstance(data_dir, (str, Path)) else
            [str(d.resolve()) for d in data.dirs],
            "suite": data.manifests[0].get("suite") if len(suites) == 1 else sorted(suites),
            "scenes": len(samples), "labelled_scenes": sum(s.labelled for s in samples),
            "train_scenes": len(train), "val_scenes": len(val), "val_is_train": val_keys == train_keys,
            "val_seeds": sorted(k[1] for k in val_keys) if one_suite else sorted(f"{k[0]}:{k[1]}" for k in val_keys)}
