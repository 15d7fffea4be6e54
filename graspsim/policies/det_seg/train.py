"""Training loops for det_seg and GR-ConvNet on a rendered grasp dataset, and checkpoint loading.

``train_det_seg`` / ``train_grconvnet`` share one loop:

* **Data**: every complete scene of ``data_dir`` (``graspsim render`` output;
  one directory or a list of them) is letterboxed once into memory (see
  :mod:`.targets`); targets are encoded per batch (after the optional
  horizontal flip). Datasets rendered with ``--no-grasps`` (manifest
  ``config.labels.max_candidates == 0``) carry no grasp labels: their scenes
  train the segmentation branch only (the detection and refinement losses skip
  them; GR-ConvNet ignores them). A scene (suite, seed) found in several
  datasets is loaded once, from a labelled dataset when there is one (the same
  suite and seed render the same scene).
* **Split**: a validation hold-out by scene: the labelled scenes' (suite, seed)
  keys, sorted, are permuted with ``numpy.random.default_rng(seed)`` and the
  first ``ceil(val_fraction * n)`` (at least 1, at most ``n - 1``) are
  validation scenes; ``val_fraction = 0`` validates on the training scenes
  (flagged in the metadata). Unlabelled scenes always train.
* **Determinism**: ``torch.manual_seed(seed)`` before building the network;
  epoch ``e`` shuffles and augments with ``numpy.random.default_rng([seed, e])``;
  nothing else is random (the hard-negative mining is deterministic). Same
  seed, data and thread count -> same weights; a resumed run continues
  exactly where the killed one stopped at an epoch boundary.
* **Optimiser**: AdamW (lr ``lr``, weight decay 1e-4) with a cosine schedule
  over all steps, gradient norm clipped at 10. (The seed uses SGD + Nesterov
  with an ImageNet-pretrained ResNet-101; from scratch on a CPU Adam is the
  safer choice.)
* **Files** in ``out_dir`` (all written atomically with :mod:`graspsim.fileio`):
  ``train_state.pt`` (model + optimiser + schedule + history, after every
  epoch: a killed run loses at most the epoch in progress; ``resume=True``
  continues from it), ``model.safetensors`` + ``metadata.json`` (after every
  epoch too, ``"finished": true`` once the last epoch is done), ``history.json``.
* ``max_minutes``: no new epoch starts when the elapsed time plus the last
  epoch's duration would pass the limit (the run then finishes normally with
  fewer epochs; ``metadata["stopped_early"] = true``).
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np

from graspsim.data.format import DatasetError, check_dataset, has_grasp_labels  # noqa: F401  (re-exported)
from graspsim.fileio import atomic_write, atomic_write_text

MODEL_FILE = "model.safetensors"
META_FILE = "metadata.json"
STATE_FILE = "train_state.pt"
HISTORY_FILE = "history.json"


def gather_scenes(data_dirs) -> tuple[list[dict], list[tuple[Path, str, bool]]]:
    """``(manifests, [(scene_dir, suite, labelled)])`` over one dataset directory or a list of them.

    A (suite, seed) present in several datasets is kept once, labelled copy
    first. Raises :class:`DatasetError` for any unusable directory.
    """
    dirs = [data_dirs] if isinstance(data_dirs, (str, Path)) else list(data_dirs)
    if not dirs:
        raise DatasetError("no data directory given")
    manifests, found = [], {}
    for d in dirs:
        manifest, scene_dirs = check_dataset(d)
        manifests.append(manifest)
        labelled = has_grasp_labels(manifest)
        suite = str(manifest.get("suite"))
        for sd in scene_dirs:
            key = (suite, scene_seed_of(sd))
            if key not in found or (labelled and not found[key][2]):
                found[key] = (sd, suite, labelled)
    return manifests, [found[k] for k in sorted(found)]


@dataclass
class Sample:
    """One scene letterboxed to the network input (network px) plus its source-pixel ground truth."""

    seed: int
    rgb: np.ndarray  # (S, S, 3) uint8
    seg: np.ndarray  # (S, S) int16: -1 padding, 0 background, c + 1 class c
    depth: np.ndarray | None  # (S, S) float32 metres (GR-ConvNet only)
    rects: np.ndarray  # (N, 5) network px
    quality: np.ndarray  # (N,)
    src_rects: np.ndarray  # (N, 5) source px
    src_classes: np.ndarray  # (N,) catalog class
    src_rgb: np.ndarray | None  # (H, W, 3) uint8 (validation scenes only)
    src_depth: np.ndarray | None  # (H, W) float32 (validation scenes only)
    src_class_map: np.ndarray | None  # (H, W) uint8 (0 background, c + 1; validation scenes only)
    labelled: bool = True  # False: a --no-grasps scene (no grasp labels; segmentation loss only)
    suite: str = ""

    @property
    def key(self) -> tuple[str, int]:
        return (self.suite, self.seed)


def scene_seed_of(scene_dir: Path) -> int:
    """The scene seed from a scene directory name (``scene-<seed>``, see :mod:`graspsim.data.format`)."""
    return int(Path(scene_dir).name.split("-", 1)[1])


def load_samples(scene_dirs: list[Path], size: int, with_depth: bool,
                 keep_source: Callable[[int], bool] | list[bool] = lambda seed: True,
                 labelled: bool | list[bool] = True, suite: str | list[str] = "") -> list[Sample]:
    """Scenes letterboxed to ``size``; the source-resolution images are kept only where ``keep_source(seed)``.

    ``keep_source`` may also be a list with one flag per scene; ``labelled`` /
    ``suite``: one value for all scenes or one per scene.
    """
    n = len(scene_dirs)
    keep_flags = list(keep_source) if isinstance(keep_source, (list, tuple)) else None
    labelled = [labelled] * n if isinstance(labelled, bool) else list(labelled)
    suite = [suite] * n if isinstance(suite, str) else list(suite)
    from graspsim.data.format import read_scene
    from graspsim.policies.det_seg.targets import Letterbox

    out = []
    for i, d in enumerate(scene_dirs):
        s = read_scene(d)
        keep = keep_flags[i] if keep_flags is not None else keep_source(int(s["meta"]["scene_seed"]))
        h, w = s["rgb"].shape[:2]
        lb = Letterbox.for_shape(h, w, size)
        cmap = s["class_map"].astype(np.int16)  # 0 none, c + 1
        out.append(Sample(
            seed=int(s["meta"]["scene_seed"]),
            rgb=lb.image(s["rgb"]),
            seg=lb.image(cmap, nearest=True, fill=-1),
            depth=lb.image(s["depth_m"], nearest=True) if with_depth else None,
            rects=lb.rects_to_net(s["grasps"]),
            quality=s["grasp_quality"].astype(np.float64),
            src_rects=s["grasps"].astype(np.float64),
            src_classes=s["grasp_classes"].astype(np.int64),
            src_rgb=s["rgb"] if keep else None, src_depth=s["depth_m"] if keep else None,
            src_class_map=s["class_map"] if keep else None, labelled=bool(labelled[i]), suite=str(suite[i]),
        ))
    return out


def split_by_seed(seeds: list, val_fraction: float, seed: int) -> tuple[set, set]:
    """``(train_keys, val_keys)`` of scene seeds (or sortable (suite, seed) keys); see the module docstring."""
    seeds = sorted(set(seeds))
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    if val_fraction == 0.0 or len(seeds) < 2:
        return set(seeds), set(seeds)
    perm = np.random.default_rng(seed).permutation(len(seeds))
    n_val = min(len(seeds) - 1, max(1, int(math.ceil(val_fraction * len(seeds)))))
    val = {seeds[i] for i in perm[:n_val]}
    return set(seeds) - val, val


def augment(sample: Sample, rng: np.random.Generator, enabled: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """``(rgb, seg, depth, rects)`` of a sample, flipped left-right with probability 1/2 and colour-jittered."""
    rgb, seg, depth, rects = sample.rgb, sample.seg, sample.depth, sample.rects
    flip = bool(rng.random() < 0.5)
    gain = rng.uniform(0.8, 1.2, size=3)
    if not enabled:
        return rgb, seg, depth, rects
    size = rgb.shape[1]
    if flip:
        rgb, seg = rgb[:, ::-1], seg[:, ::-1]
        depth = depth[:, ::-1] if depth is not None else None
        rects = rects.copy()
        rects[:, 0] = size - 1 - rects[:, 0]
        rects[:, 4] = (-rects[:, 4] + np.pi / 2) % np.pi - np.pi / 2
    rgb = np.clip(rgb.astype(np.float32) * gain, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(rgb), np.ascontiguousarray(seg), (None if depth is None else np.ascontiguousarray(depth)), rects


# --------------------------------------------------------------------------- tasks


class _DetSegTask:
    kind = "det_seg"

    def __init__(self, config):
        from graspsim.policies.det_seg.model import DetSegConfig

        self.config = DetSegConfig.coerce(config)

    def build(self):
        from graspsim.policies.det_seg.model import DetSegNet

        return DetSegNet(self.config)

    def batch(self, items: list[tuple]) -> dict[str, Any]:
        import torch

        from graspsim.policies.det_seg.targets import encode_det_targets

        cfg = self.config
        levels = len(cfg.det_levels)
        cls = [[] for _ in range(levels)]
        reg = [[] for _ in range(levels)]
        gt = [[] for _ in range(levels)]
        rgbs, segs, gts, labelled = [], [], [], []
        for item in items:
            rgb, seg, _depth, rects, quality = item[:5]
            labelled.append(bool(item[5]) if len(item) > 5 else True)
            tg = encode_det_targets(rects, quality, cfg.input_size, cfg.det_strides, cfg.anchor_scale,
                                    cfg.pos_radius, cfg.num_bins)
            for li, t in enumerate(tg):
                cls[li].append(torch.from_numpy(t["cls"]))
                reg[li].append(torch.from_numpy(t["reg"]))
                gt[li].append(torch.from_numpy(t["gt"]))
            rgbs.append(torch.from_numpy(rgb).permute(2, 0, 1))
            segs.append(torch.from_numpy(seg.astype(np.int64)))
            gts.append(torch.from_numpy(np.asarray(rects, dtype=np.float32).reshape(-1, 5)))
        return {"rgb": torch.stack(rgbs).float() / 255.0, "seg": torch.stack(segs),
                "cls": [torch.stack(c) for c in cls], "reg": [torch.stack(r) for r in reg],
                "gt": [torch.stack(g) for g in gt], "gt_rects": gts, "labelled": torch.tensor(labelled)}

    def loss(self, net, batch: dict[str, Any]) -> dict:
        return net.loss(net(batch["rgb"]), batch)


class _GrConvTask:
    kind = "grconvnet"

    def __init__(self, config):
        from graspsim.policies.det_seg.grconvnet import GrConvNetConfig

        self.config = GrConvNetConfig.coerce(config)

    def build(self):
        from graspsim.policies.det_seg.grconvnet import GrConvNet

        return GrConvNet(self.config)

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


# --------------------------------------------------------------------------- validation


def validate(net, samples: list[Sample], kind: str) -> dict[str, float | None]:
    """Top-1 Jaccard grasp accuracy (source px, every ground truth of the image) and, for det_seg, mean seg IoU.

    The segmentation is the network's own (``min_region_px=0``, bilinear upsampling): the policy's speck clean-up
    and guided upsampling are chosen on these scenes after training, and a curve that moved with those defaults
    would not be comparable across runs.
    """
    from graspsim.grasping.metrics import grasp_accuracy, segmentation_iou
    from graspsim.policies.det_seg.model import NUM_SEG_CLASSES
    from graspsim.policies.det_seg.policy import make_predictor
    from graspsim.types import GraspRect

    was_training = net.training
    pred = make_predictor(net, min_region_px=0.0, guided=False)
    preds, gts, ious = [], [], []
    for s in samples:
        if len(s.src_rects) == 0:
            continue
        out = pred.predict(s.src_rgb, s.src_depth) if kind == "grconvnet" else pred.predict(s.src_rgb)
        preds.append(GraspRect(*out["rects"][0]) if len(out["rects"]) else None)
        gts.append([GraspRect(*r) for r in s.src_rects])
        if out["seg"] is not None:
            ious.append(segmentation_iou(out["seg"], s.src_class_map.astype(np.int64), NUM_SEG_CLASSES)["mean_iou"])
    net.train(was_training)
    acc = grasp_accuracy(preds, gts) if preds else float("nan")
    return {"grasp_accuracy": _num(acc), "seg_iou": _num(float(np.nanmean(ious))) if ious else None,
            "images": len(preds)}


def _num(v: float) -> float | None:
    return None if v is None or not math.isfinite(v) else float(v)


# --------------------------------------------------------------------------- checkpoints


def _save_weights(net, path: Path) -> None:
    from safetensors.torch import save_file

    state = {k: v.detach().contiguous().clone() for k, v in net.state_dict().items()}
    atomic_write(path, lambda tmp: save_file(state, str(tmp)))


def _torch_save(obj: Any, path: Path) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write(path, lambda tmp: tmp.write_bytes(buf.getvalue()), durable=True)


def load_checkpoint(path: str | Path, kind: str | None = None):
    """The network stored in checkpoint directory ``path`` (``model.safetensors`` + ``metadata.json``), in eval mode.

    ``kind``: "det_seg" / "grconvnet" to insist on one (ValueError otherwise).
    Raises FileNotFoundError naming the directory and the missing file(s).
    """
    from safetensors.torch import load_file

    path = Path(path)
    meta, config = _checkpoint_meta(path, kind)
    model_kind = meta.get("model")
    task = _task(model_kind, config)
    net = task.build()
    net.load_state_dict(load_file(str(path / MODEL_FILE)))
    return net.eval()


def _checkpoint_meta(path: Path, kind: str | None = None) -> tuple[dict, dict | None]:
    """(metadata, network config) of checkpoint directory ``path``; errors as in :func:`load_checkpoint`."""
    if not path.is_dir():
        raise FileNotFoundError(f"checkpoint directory {path} does not exist")
    missing = [f for f in (MODEL_FILE, META_FILE) if not (path / f).is_file()]
    if missing:
        raise FileNotFoundError(f"checkpoint directory {path} is incomplete: missing {', '.join(missing)}")
    meta = json.loads((path / META_FILE).read_text(encoding="utf-8"))
    model_kind = meta.get("model")
    if kind is not None and model_kind != kind:
        raise ValueError(f"checkpoint {path} holds a {model_kind!r} model, not {kind!r}")
    config = meta.get("config")
    if model_kind == "det_seg" and isinstance(config, dict) and "seg_stride" not in config:
        config = {**config, "seg_stride": 4}  # written before the stride-2 segmentation head existed
    return meta, config


def _init_meta(path: str | Path, kind: str) -> tuple[dict, dict]:
    """:func:`_checkpoint_meta` of an ``--init`` checkpoint, its errors prefixed with "--init"."""
    try:
        meta, config = _checkpoint_meta(Path(path), kind)
    except (FileNotFoundError, ValueError) as exc:
        raise type(exc)(f"--init {exc}") from None
    return meta, dict(config or {})


def init_config(path: str | Path, kind: str) -> dict:
    """The network config stored in checkpoint ``path`` (the base that ``--init`` runs override).

    Raises FileNotFoundError (no such checkpoint) or ValueError (a checkpoint of another kind).
    """
    return _init_meta(path, kind)[1]


def _load_init_weights(net, path: Path, kind: str) -> dict:
    """Copy the weights of checkpoint ``path`` into ``net``; return that checkpoint's metadata.

    ``input_size`` may differ (every layer is convolutional or works on crops); any other layer mismatch raises
    ValueError naming the first differing tensors.
    """
    from safetensors.torch import load_file

    meta, _ = _init_meta(path, kind)
    weights = load_file(str(path / MODEL_FILE))
    own = net.state_dict()
    bad = sorted(k for k in set(own) | set(weights)
                 if k not in own or k not in weights or tuple(own[k].shape) != tuple(weights[k].shape))
    if bad:
        raise ValueError(f"--init checkpoint {path} does not fit this network config "
                         f"({len(bad)} tensors differ, e.g. {', '.join(bad[:3])})")
    net.load_state_dict(weights)
    return meta


def _task(kind: str, config):
    if kind == "det_seg":
        return _DetSegTask(config)
    if kind == "grconvnet":
        return _GrConvTask(config)
    raise ValueError(f"unknown model kind {kind!r} (det_seg or grconvnet)")


# --------------------------------------------------------------------------- loop


def train_det_seg(data_dir: str | Path, out_dir: str | Path, *, epochs: int = 40, batch_size: int = 8, seed: int = 0,
                  val_fraction: float = 0.1, config=None, resume: bool = False, progress: bool = True,
                  max_minutes: float | None = None, lr: float = 2e-3, augment_data: bool = True,
                  num_threads: int | None = None, init: str | Path | None = None) -> dict:
    """Train a :class:`~.model.DetSegNet` (``config``: DetSegConfig or dict; None = defaults). Returns the metadata dict.

    ``init``: a det_seg checkpoint directory whose weights start the run (fine-tuning, e.g. at another
    ``input_size``); ``config`` must describe the same layers (see :func:`init_config`).
    """
    return _train(_DetSegTask(config), data_dir, out_dir, epochs=epochs, batch_size=batch_size, seed=seed,
                  val_fraction=val_fraction, resume=resume, progress=progress, max_minutes=max_minutes, lr=lr,
                  augment_data=augment_data, num_threads=num_threads, init=init)


def train_grconvnet(data_dir: str | Path, out_dir: str | Path, *, epochs: int = 20, batch_size: int = 8, seed: int = 0,
                    val_fraction: float = 0.1, config=None, resume: bool = False, progress: bool = True,
                    max_minutes: float | None = None, lr: float = 1e-3, augment_data: bool = True,
                    num_threads: int | None = None, init: str | Path | None = None) -> dict:
    """Train a :class:`~.grconvnet.GrConvNet` (``config``: GrConvNetConfig or dict). Returns the metadata dict.

    The decoded finger size ``finger_px`` is set to the median ``h`` of the
    training grasps (network px) unless ``config`` gives it explicitly.
    """
    task = _GrConvTask(config)
    explicit_finger = isinstance(config, dict) and "finger_px" in config
    return _train(task, data_dir, out_dir, epochs=epochs, batch_size=batch_size, seed=seed,
                  val_fraction=val_fraction, resume=resume, progress=progress, max_minutes=max_minutes, lr=lr,
                  augment_data=augment_data, num_threads=num_threads, set_finger=not explicit_finger and init is None,
                  init=init)


def _train(task, data_dir, out_dir, *, epochs: int, batch_size: int, seed: int, val_fraction: float, resume: bool,
           progress: bool, max_minutes: float | None, lr: float, augment_data: bool, num_threads: int | None,
           set_finger: bool = False, init: str | Path | None = None) -> dict:
    import torch

    import graspsim

    if epochs < 1 or batch_size < 1:
        raise ValueError("epochs and batch_size must be >= 1")
    if num_threads is not None:
        torch.set_num_threads(int(num_threads))
    manifests, found = gather_scenes(data_dir)
    if task.kind == "grconvnet":  # pixel-wise grasp maps need grasp labels on every image
        found = [f for f in found if f[2]]
        if not found:
            raise DatasetError("GR-ConvNet needs grasp labels: every --data dataset was rendered with --no-grasps")
    manifest = manifests[0]
    out = Path(out_dir)
    state_path = out / STATE_FILE
    state = None
    if state_path.is_file():
        if not resume:
            raise FileExistsError(f"{out} already holds a training run ({STATE_FILE}); pass resume=True (--resume) "
                                  f"to continue it or choose another output directory")
        state = torch.load(state_path, map_location="cpu", weights_only=False)
        if state["kind"] != task.kind:
            raise ValueError(f"{out} holds a {state['kind']} run, not {task.kind}")
        task = _task(task.kind, state["config"])
        seed, val_fraction, lr = state["seed"], state["val_fraction"], state["lr"]
        batch_size, augment_data = state["batch_size"], state["augment"]
        epochs = max(epochs, state["epochs"])  # a resumed run keeps (or extends) its schedule length
    out.mkdir(parents=True, exist_ok=True)

    size = task.config.input_size
    keys = [(suite, scene_seed_of(d)) for d, suite, _ in found]
    split_keys = [k for k, f in zip(keys, found) if f[2]] or keys
    train_keys, val_keys = split_by_seed(split_keys, val_fraction, seed)
    keep = [k in val_keys for k in keys]
    samples = load_samples([f[0] for f in found], size, with_depth=task.kind == "grconvnet",
                           keep_source=keep,
                           labelled=[f[2] for f in found], suite=[f[1] for f in found])
    val = [s for s in samples if s.key in val_keys]
    train = [s for s in samples if s.key not in val_keys or val_keys == train_keys]
    if set_finger and state is None:
        hs = np.concatenate([s.rects[:, 3] for s in train if len(s.rects)] or [np.array([task.config.finger_px])])
        task.config.finger_px = float(np.median(hs))

    torch.manual_seed(seed)
    net = task.build()
    steps_per_epoch = math.ceil(len(train) / batch_size)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    total_steps = max(1, epochs * steps_per_epoch)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)) * min(1.0, (step + 1) / 50))
    history: list[dict] = []
    start_epoch = 0
    elapsed_before = 0.0
    init_meta = None
    if init is not None and state is None:  # a resumed run already holds the fine-tuned weights
        init_meta = _load_init_weights(net, Path(init), task.kind)
    if state is not None:
        net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        history = state["history"]
        start_epoch = state["epoch"] + 1
        elapsed_before = state.get("elapsed_s", 0.0)

    meta_base = {
        "model": task.kind, "config": task.config.to_dict(),
        "data": {"dir": str(Path(data_dir).resolve()) if isinstance(data_dir, (str, Path)) else
                 [str(Path(d).resolve()) for d in data_dir],
                 "suite": manifest.get("suite") if len({m.get("suite") for m in manifests}) == 1 else
                 sorted({str(m.get("suite")) for m in manifests}),
                 "scenes": len(samples), "labelled_scenes": sum(s.labelled for s in samples),
                 "train_scenes": len(train), "val_scenes": len(val), "val_is_train": val_keys == train_keys,
                 "val_seeds": sorted(k[1] for k in val_keys) if len({k[0] for k in val_keys}) <= 1 else
                 sorted(f"{k[0]}:{k[1]}" for k in val_keys)},
        "seed": seed, "epochs": epochs, "batch_size": batch_size, "lr": lr, "val_fraction": val_fraction,
        "augment": augment_data, "graspsim_version": graspsim.__version__, "torch_version": torch.__version__,
    }
    if init_meta is not None:
        meta_base["init"] = str(Path(init).resolve())
        meta_base["init_metadata"] = init_meta
    elif state is not None and state.get("init") is not None:
        meta_base["init"], meta_base["init_metadata"] = state["init"], state.get("init_metadata")
    t_start = time.perf_counter()
    last_epoch_s = 0.0
    stopped_early = False
    meta: dict = {}
    for epoch in range(start_epoch, epochs):
        elapsed = elapsed_before + time.perf_counter() - t_start
        if max_minutes is not None and epoch > start_epoch and elapsed + last_epoch_s > 60.0 * max_minutes:
            stopped_early = True
            break
        t_epoch = time.perf_counter()
        rng = np.random.default_rng([seed, epoch])
        order = rng.permutation(len(train))
        net.train()
        sums: dict[str, float] = {}
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=steps_per_epoch, desc=f"{task.kind} epoch {epoch + 1}/{epochs}", unit="batch",
                       leave=False, dynamic_ncols=True)
        for i in range(steps_per_epoch):
            idx = order[i * batch_size:(i + 1) * batch_size]
            items = []
            for j in idx:
                s = train[j]
                rgb, seg, depth, rects = augment(s, rng, augment_data)
                items.append((rgb, seg, depth, rects, s.quality, s.labelled))
            batch = task.batch(items)
            parts = task.loss(net, batch)
            opt.zero_grad(set_to_none=True)
            parts["total"].backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 10.0)
            opt.step()
            sched.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            if bar is not None:
                bar.set_postfix(loss=f"{float(parts['total']):.3f}")
                bar.update(1)
        if bar is not None:
            bar.close()
        metrics = validate(net, val, task.kind)
        last_epoch_s = time.perf_counter() - t_epoch
        row = {"epoch": epoch + 1, **{f"loss_{k}": v / steps_per_epoch for k, v in sums.items()},
               **{f"val_{k}": v for k, v in metrics.items()}, "seconds": round(last_epoch_s, 2)}
        history.append(row)
        if progress:
            print(json.dumps(row), flush=True)
        elapsed = elapsed_before + time.perf_counter() - t_start
        meta = {**meta_base, "epochs_done": epoch + 1, "finished": epoch + 1 == epochs, "stopped_early": False,
                "val_metrics": metrics, "train_seconds": round(elapsed, 1)}
        _save_weights(net, out / MODEL_FILE)
        atomic_write_text(out / META_FILE, json.dumps(meta, indent=2) + "\n")
        atomic_write_text(out / HISTORY_FILE, json.dumps(history, indent=2) + "\n")
        _torch_save({"kind": task.kind, "config": task.config.to_dict(), "model": net.state_dict(),
                     "optimizer": opt.state_dict(), "scheduler": sched.state_dict(), "epoch": epoch,
                     "epochs": epochs, "history": history, "seed": seed, "val_fraction": val_fraction, "lr": lr,
                     "batch_size": batch_size, "augment": augment_data, "elapsed_s": elapsed,
                     "init": meta_base.get("init"), "init_metadata": meta_base.get("init_metadata")}, state_path)
    if not meta:  # nothing trained in this call (already finished, or stopped before the first new epoch)
        if (out / META_FILE).is_file():
            meta = json.loads((out / META_FILE).read_text(encoding="utf-8"))
        else:
            meta = {**meta_base, "epochs_done": 0, "finished": False, "val_metrics": {}}
    if stopped_early:
        meta = {**meta, "stopped_early": True}
        atomic_write_text(out / META_FILE, json.dumps(meta, indent=2) + "\n")
    return meta
