"""ONE training loop for every stack: AdamW over a stack's batches, resumable bit for bit, one run-directory layout.

A stack hands :func:`train` its settings and a function building a :class:`Stack`; the loop does the rest:
``torch.manual_seed(seed)`` right before ``build()`` (all other randomness is the sampler's); per step
``lr = base_lr * schedule(step, total_steps)``, the step function, ``zero_grad``, ``backward``, grad-norm
clipping, ``AdamW.step``; per epoch, in eval mode, validation and the row ``{"epoch", "step", "seconds",
"train_<part>": mean, **validate()}`` appended (fsync'd) to ``metrics.jsonl``, the stack's weights, then
``metadata.json`` (+ progress and sha256), then ``train_state.pt`` (model, optimiser, sampler, torch RNG;
atomic; removed after the last epoch). A kill loses at most the epoch in progress: ``resume=True`` replays
exactly the batches and updates of an uninterrupted run.

Run directory (:mod:`graspsim.runs`): ``train.json`` holds the stack's and the loop's settings; a new run needs
an empty directory, a resumed one the same settings but :data:`VOLATILE` (the error names each differing key);
resuming a finished run returns its metadata. ``max_minutes`` (this call's wall time): no epoch starts that the
last one's duration says would end past it; the state is kept (``stopped_early``) for ``resume``.

``device`` (:mod:`.device`; "cpu" unless a stack says it can train elsewhere, :attr:`Stack.devices`, and has no
``extra_params``): the model is moved there before the optimiser is made; the state file holds its tensors as they
are and loads onto whichever device the resumed run names (a volatile setting: a run started on a GPU may be finished on
the CPU, bit for bit only on the same device), with the CUDA generator's state beside the CPU one's.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

from graspsim.fileio import atomic_write, atomic_write_json, atomic_write_text, to_jsonable
from graspsim.learn.checkpoint import METADATA_FILE, write_metadata
from graspsim.runs import JsonlWriter, RunLayout, check_run_dir, dumps_record, read_jsonl

STATE_FILE = "train_state.pt"
SETTINGS_FILE = "train.json"
METRICS_FILE = "metrics.jsonl"
#: Settings a resumed run may change: they do not change the weights.
VOLATILE = frozenset({"threads", "max_minutes", "progress", "device"})
LAYOUT = RunLayout(config_name=SETTINGS_FILE, records_name=METRICS_FILE, key="epoch", volatile=VOLATILE,
                   what="training run", empty_for_new=True, resume_from_nothing=True)


@dataclass(frozen=True)
class LoopConfig:
    """``schedule(step, total_steps)`` scales ``lr`` (see :mod:`.schedule`); ``grad_clip``: max grad norm."""

    epochs: int
    lr: float
    seed: int = 0
    weight_decay: float = 0.0
    grad_clip: float | None = None
    schedule: Callable[[int, int], float] = lambda step, total: 1.0
    max_minutes: float | None = None
    threads: int | None = None
    progress: bool = True
    name: str = "train"
    device: str = "cpu"

    def settings(self) -> dict[str, Any]:
        return {"epochs": self.epochs, "lr": self.lr, "seed": self.seed, "weight_decay": self.weight_decay,
                "grad_clip": self.grad_clip, "threads": self.threads, "max_minutes": self.max_minutes,
                "progress": self.progress, "device": self.device}


@dataclass
class Progress:
    """Where the run stands when a checkpoint is saved; ``history``: the metrics.jsonl rows so far."""

    epochs_done: int
    steps: int
    finished: bool
    stopped_early: bool
    wall_s: float
    history: list[dict] = field(default_factory=list)

    @property
    def last(self) -> dict:
        return self.history[-1] if self.history else {}


@dataclass
class Stack:
    """What a stack plugs in.

    ``sampler``: :mod:`.sampling`; ``step(batch) -> {"loss": scalar tensor, parts...}`` (train mode);
    ``validate() -> {name: number}`` (eval mode); ``save(out_dir, progress) -> metadata`` writes
    ``out_dir/model.safetensors`` (+ files of its own). ``extra_params``: trainable tensors outside
    ``model`` (optimised and kept in the state, not in the checkpoint). ``devices``: the stack's ``step`` and
    ``validate`` put their tensors where the model is (:func:`.device.module_device`), so it may train on a
    device other than the CPU; a stack without it (or with ``extra_params``) refuses a ``LoopConfig.device``
    other than "cpu".
    """

    model: Any
    sampler: Any
    step: Callable[[Any], dict]
    validate: Callable[[], dict]
    save: Callable[[Path, Progress], dict]
    extra_params: Sequence[Any] = ()
    devices: bool = False


def train(out_dir: str | Path, settings: dict, build: Callable[[], Stack], cfg: LoopConfig, resume: bool = False,
          log: Callable[[str], None] | None = None) -> dict:
    """Train ``build()``'s stack into ``out_dir``; returns the last ``metadata.json``.

    :class:`graspsim.runs.RunDirError` for a directory holding another run (or
    other settings); what ``build`` raises (e.g. a bad dataset) comes before
    anything is written.
    """
    import torch

    from graspsim.learn.device import resolve_device

    out = Path(out_dir)
    device = resolve_device(cfg.device)  # before anything is read or written: a wrong --device is one line
    full = {**settings, **cfg.settings()}
    check_run_dir(out, full, resume, LAYOUT)
    has_state = resume and (out / STATE_FILE).is_file()
    state = torch.load(out / STATE_FILE, map_location="cpu", weights_only=False) if has_state else None
    if resume and state is None and _finished(out):
        return json.loads((out / METADATA_FILE).read_text(encoding="utf-8"))
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(cfg.seed)
    stack = build()
    if device.type != "cpu":
        if not stack.devices or stack.extra_params:  # a stack's own tensors outside the model stay on the CPU
            raise ValueError(f"{cfg.name} trains on the CPU only, not --device {cfg.device}")
        stack.model.to(device)
    atomic_write_json(out / SETTINGS_FILE, full)
    return _Run(out, stack, cfg, state, log).run()


class _Run:
    """One call of :func:`train`: the optimiser, the counters and the metrics file."""

    def __init__(self, out: Path, stack: Stack, cfg: LoopConfig, state: dict | None, log):
        import torch

        self.out, self.stack, self.cfg, self.log = out, stack, cfg, log or (lambda s: None)
        self.params = [p for p in stack.model.parameters() if p.requires_grad] + list(stack.extra_params)
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.total = cfg.epochs * stack.sampler.steps_per_epoch
        self.epoch, self.step, self.wall_before = 0, 0, 0.0
        if state is not None:
            stack.model.load_state_dict(state["model"])
            for p, saved in zip(stack.extra_params, state["extra"]):
                p.data.copy_(saved)
            self.opt.load_state_dict(state["optimizer"])
            stack.sampler.load_state_dict(state["sampler"])
            torch.set_rng_state(state["torch_rng"])
            if state.get("cuda_rng") is not None and self._device().type == "cuda":
                torch.cuda.set_rng_state(state["cuda_rng"], self._device())
            self.epoch, self.step, self.wall_before = state["epoch"], state["step"], state["wall_s"]
            self.log(f"resuming {out} after epoch {self.epoch}")
        self.history = _sync_metrics(out, self.epoch)

    def run(self) -> dict:
        from tqdm import tqdm

        t0 = time.perf_counter()
        bar = tqdm(total=self.total, initial=self.step, unit="step", desc=self.cfg.name, dynamic_ncols=True,
                   disable=not self.cfg.progress)
        meta = None
        try:
            with JsonlWriter(self.out / METRICS_FILE, key="epoch") as writer:
                while self.epoch < self.cfg.epochs:
                    t_epoch = time.perf_counter()
                    row = self._epoch(bar)
                    epoch_s = time.perf_counter() - t_epoch
                    row = to_jsonable({**row, "seconds": round(epoch_s, 2)})
                    writer.append(row)
                    self.history.append(row)
                    self.log(json.dumps(row))
                    elapsed, limit = time.perf_counter() - t0, self.cfg.max_minutes
                    finished = self.epoch == self.cfg.epochs
                    stop = not finished and limit is not None and elapsed + epoch_s > 60.0 * limit
                    meta = self._checkpoint(finished, stop, self.wall_before + elapsed)
                    if stop:
                        self.log(f"stopped after epoch {self.epoch} (--max-minutes {limit}); resume to finish")
                        break
        finally:
            bar.close()
        # None: the state outlived the last epoch's checkpoint (a kill in between); finish it
        return meta or self._checkpoint(True, False, self.wall_before)

    def _epoch(self, bar) -> dict:
        """One epoch's steps, then validation: the metrics row (without ``seconds``)."""
        import torch

        model, cfg = self.stack.model, self.cfg
        model.train()
        sums: dict[str, float] = {}
        n = 0
        for batch in self.stack.sampler.batches(self.epoch):
            for g in self.opt.param_groups:
                g["lr"] = cfg.lr * cfg.schedule(self.step, self.total)
            parts = self.stack.step(batch)
            self.opt.zero_grad(set_to_none=True)
            parts["loss"].backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
            self.opt.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n, self.step = n + 1, self.step + 1
            bar.update(1)
            bar.set_postfix(loss=f"{float(parts['loss'].detach()):.3f}")
        self.epoch += 1
        model.eval()
        return {"epoch": self.epoch, "step": self.step, **{f"train_{k}": v / max(1, n) for k, v in sums.items()},
                **self.stack.validate()}

    def _device(self):
        from graspsim.learn.device import module_device

        return module_device(self.stack.model)

    def _checkpoint(self, finished: bool, stopped_early: bool, wall_s: float) -> dict:
        """The checkpoint (metadata.json last), then the state (removed once finished)."""
        import torch

        p = Progress(self.epoch, self.step, finished, stopped_early, wall_s, list(self.history))
        meta = write_metadata(self.out, {**self.stack.save(self.out, p), "epochs_done": p.epochs_done,
                                         "steps": p.steps, "finished": finished, "stopped_early": stopped_early,
                                         "wall_s": round(wall_s, 1)})
        if finished:
            (self.out / STATE_FILE).unlink(missing_ok=True)
            return meta
        buf = io.BytesIO()
        extra = [t.detach().clone() for t in self.stack.extra_params]
        device = self._device()
        torch.save({"model": self.stack.model.state_dict(), "extra": extra,
                    "optimizer": self.opt.state_dict(), "sampler": self.stack.sampler.state_dict(),
                    "torch_rng": torch.get_rng_state(),
                    "cuda_rng": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
                    "epoch": self.epoch, "step": self.step, "wall_s": wall_s}, buf)
        atomic_write(self.out / STATE_FILE, lambda tmp: tmp.write_bytes(buf.getvalue()), durable=True)
        return meta


def _finished(out: Path) -> bool:
    try:
        return bool(json.loads((out / METADATA_FILE).read_text(encoding="utf-8")).get("finished"))
    except (OSError, ValueError):
        return False


def _sync_metrics(out: Path, epochs_done: int) -> list[dict]:
    """The metrics rows of epochs ``<= epochs_done``; later ones (their state was lost in a kill) are cut."""
    rows = read_jsonl(out / METRICS_FILE, key="epoch")
    keep = [r for r in rows if r["epoch"] <= epochs_done]
    if len(keep) != len(rows):
        atomic_write_text(out / METRICS_FILE, "".join(dumps_record(r, "epoch") for r in keep), durable=True)
    return keep
