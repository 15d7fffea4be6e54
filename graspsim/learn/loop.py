"""ONE training loop for every stack: AdamW on a stack's batches, resumable bit for bit, one run directory layout.

A stack plugs in a :class:`Stack` (model, sampler, step, validate, save) built
by a function the loop calls once the run directory has been checked; the loop
owns everything else:

* **Seeding**: ``torch.manual_seed(seed)`` right before ``build()`` (so the
  network's initial weights depend on the seed only); all other randomness is
  the sampler's (:mod:`.sampling`).
* **Steps**: ``lr = base_lr * schedule(step, total_steps)``, the stack's step
  function (a dict of scalar tensors holding ``"loss"``), ``zero_grad``,
  ``backward``, gradient-norm clipping over the trainable parameters, AdamW step.
* **Epochs**: after each one the model is put in eval mode and validated; the
  row ``{"epoch", "step", "seconds", "train_<part>": mean, **validate()}`` is
  appended (fsync'd) to ``OUT/metrics.jsonl``; the stack saves its checkpoint
  (weights; the loop adds the progress fields and the sha256 and writes
  ``metadata.json`` last); the training state (model, optimiser, sampler and
  torch RNG state) is written atomically to ``OUT/train_state.pt``. A kill
  loses at most the epoch in progress, and ``resume=True`` continues with
  exactly the batches and updates of an uninterrupted run. The state file is
  removed when the last epoch is done.
* **Run directory** (:mod:`graspsim.runs`): ``OUT/train.json`` holds the run's
  settings (the stack's plus the loop's); a new run needs an empty ``OUT``, a
  resumed one the same settings except :data:`VOLATILE` (the error names each
  differing key). Resuming a finished run returns its metadata.
* **max_minutes** (this call's wall time): no epoch starts that the last one's
  duration says would end past the limit; the run stops between epochs with
  its state kept (``stopped_early``), so ``resume=True`` finishes it.
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
from graspsim.learn.sampling import Sampler
from graspsim.learn.schedule import Schedule
from graspsim.runs import JsonlWriter, RunLayout, check_run_dir, dumps_record, read_jsonl

STATE_FILE = "train_state.pt"
SETTINGS_FILE = "train.json"
METRICS_FILE = "metrics.jsonl"
#: Settings that may change when a run is resumed: they do not change the weights.
VOLATILE = frozenset({"threads", "max_minutes", "progress"})
LAYOUT = RunLayout(config_name=SETTINGS_FILE, records_name=METRICS_FILE, key="epoch", volatile=VOLATILE,
                   what="training run", empty_for_new=True, resume_from_nothing=True)


def constant(step: int, total: int) -> float:
    return 1.0


@dataclass(frozen=True)
class LoopConfig:
    """The loop's settings; ``schedule(step, total_steps)`` scales ``lr`` (see :mod:`.schedule`)."""

    epochs: int
    lr: float
    seed: int = 0
    weight_decay: float = 0.0
    grad_clip: float | None = None
    schedule: Schedule = constant
    max_minutes: float | None = None
    threads: int | None = None
    progress: bool = True
    name: str = "train"

    def settings(self) -> dict[str, Any]:
        """The part of ``train.json`` the loop contributes."""
        return {"epochs": self.epochs, "lr": self.lr, "seed": self.seed, "weight_decay": self.weight_decay,
                "grad_clip": self.grad_clip, "threads": self.threads, "max_minutes": self.max_minutes,
                "progress": self.progress}


@dataclass
class Progress:
    """Where a run stands when its checkpoint is saved; ``history``: the metrics.jsonl rows so far."""

    epochs_done: int
    steps: int
    finished: bool
    stopped_early: bool
    wall_s: float
    history: list[dict] = field(default_factory=list)

    @property
    def last(self) -> dict:
        return self.history[-1] if self.history else {}

    def fields(self) -> dict[str, Any]:
        """What the loop adds to every ``metadata.json``."""
        return {"epochs_done": self.epochs_done, "steps": self.steps, "finished": self.finished,
                "stopped_early": self.stopped_early, "wall_s": round(self.wall_s, 1)}


@dataclass
class Stack:
    """What a stack plugs into the loop.

    ``step(batch) -> {"loss": scalar tensor, other parts...}`` runs the model in
    train mode; ``validate() -> {name: number}`` (model in eval mode);
    ``save(out_dir, progress) -> metadata`` writes the weights as
    ``out_dir/model.safetensors`` (plus any files of its own) and returns the
    metadata to record. ``extra_params``: trainable tensors outside ``model``
    (optimised and saved in the state, not in the checkpoint).
    """

    model: Any
    sampler: Sampler
    step: Callable[[Any], dict]
    validate: Callable[[], dict]
    save: Callable[[Path, Progress], dict]
    extra_params: Sequence[Any] = ()


def train(out_dir: str | Path, settings: dict, build: Callable[[], Stack], cfg: LoopConfig, resume: bool = False,
          log: Callable[[str], None] | None = None) -> dict:
    """Train the stack ``build()`` returns into ``out_dir``; returns the final ``metadata.json`` content.

    Raises :class:`graspsim.runs.RunDirError` when ``out_dir`` holds another
    run (no ``resume``) or one with other settings; whatever ``build`` raises
    (e.g. a bad dataset) comes before anything is written.
    """
    import torch

    out = Path(out_dir)
    full = {**settings, **cfg.settings()}
    check_run_dir(out, full, resume, LAYOUT)
    state = _load_state(out) if resume else None
    if resume and state is None and _finished(out):
        if log:
            log(f"{out} holds a finished run; nothing to do")
        return json.loads((out / METADATA_FILE).read_text(encoding="utf-8"))
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    torch.manual_seed(cfg.seed)
    stack = build()
    atomic_write_json(out / SETTINGS_FILE, full)
    run = _Run(out, stack, cfg, log)
    if state is not None:
        run.restore(state)
    else:
        run.history = _sync_metrics(out, 0)
    return run.train()


class _Run:
    """The mutable part of one call of :func:`train`: optimiser, counters, metrics file."""

    def __init__(self, out: Path, stack: Stack, cfg: LoopConfig, log):
        import torch

        self.out, self.stack, self.cfg, self.log = out, stack, cfg, log
        self.params = [p for p in stack.model.parameters() if p.requires_grad] + list(stack.extra_params)
        self.opt = torch.optim.AdamW(self.params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        self.total = cfg.epochs * stack.sampler.steps_per_epoch
        self.epoch, self.step, self.wall_before = 0, 0, 0.0
        self.history: list[dict] = []

    def restore(self, state: dict) -> None:
        import torch

        self.stack.model.load_state_dict(state["model"])
        for p, saved in zip(self.stack.extra_params, state["extra"]):
            p.data.copy_(saved)
        self.opt.load_state_dict(state["optimizer"])
        self.stack.sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        self.epoch, self.step, self.wall_before = int(state["epoch"]), int(state["step"]), float(state["wall_s"])
        self.history = _sync_metrics(self.out, self.epoch)
        if self.log:
            self.log(f"resuming {self.out} after epoch {self.epoch} (step {self.step})")

    def train(self) -> dict:
        t0 = time.perf_counter()
        bar = self._bar()
        meta = None
        try:
            with JsonlWriter(self.out / METRICS_FILE, key="epoch") as writer:
                while self.epoch < self.cfg.epochs:
                    t_epoch = time.perf_counter()
                    row = self._epoch(bar)
                    epoch_s = time.perf_counter() - t_epoch
                    row["seconds"] = round(epoch_s, 2)
                    row = to_jsonable(row)
                    writer.append(row)
                    self.history.append(row)
                    if self.log:
                        self.log(json.dumps(row))
                    elapsed = time.perf_counter() - t0
                    finished = self.epoch == self.cfg.epochs
                    stop = (not finished and self.cfg.max_minutes is not None
                            and elapsed + epoch_s > 60.0 * self.cfg.max_minutes)
                    meta = self._checkpoint(finished, stop, self.wall_before + elapsed)
                    if stop:
                        if self.log:
                            self.log(f"stopping after epoch {self.epoch}: another would pass --max-minutes "
                                     f"{self.cfg.max_minutes}; resume to finish")
                        break
        finally:
            if bar is not None:
                bar.close()
        if meta is None:  # the state outlived the last epoch's checkpoint (killed in between): finish it
            meta = self._checkpoint(True, False, self.wall_before)
        return meta

    def _epoch(self, bar) -> dict:
        """One epoch of steps, then validation; returns the metrics row (without ``seconds``)."""
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
                import torch

                torch.nn.utils.clip_grad_norm_(self.params, cfg.grad_clip)
            self.opt.step()
            for k, v in parts.items():
                sums[k] = sums.get(k, 0.0) + float(v.detach())
            n += 1
            self.step += 1
            if bar is not None:
                bar.update(1)
                bar.set_postfix(loss=f"{float(parts['loss']):.3f}")
        self.epoch += 1
        model.eval()
        return {"epoch": self.epoch, "step": self.step, **{f"train_{k}": v / max(1, n) for k, v in sums.items()},
                **self.stack.validate()}

    def _checkpoint(self, finished: bool, stopped_early: bool, wall_s: float) -> dict:
        """Save the checkpoint (metadata last), then the state (removed once the run is finished)."""
        import torch

        progress = Progress(self.epoch, self.step, finished, stopped_early, wall_s, list(self.history))
        meta = write_metadata(self.out, {**self.stack.save(self.out, progress), **progress.fields()})
        state_path = self.out / STATE_FILE
        if finished:
            state_path.unlink(missing_ok=True)
        else:
            _save_state(state_path, {
                "model": self.stack.model.state_dict(), "extra": [p.detach().clone() for p in self.stack.extra_params],
                "optimizer": self.opt.state_dict(), "sampler": self.stack.sampler.state_dict(),
                "torch_rng": torch.get_rng_state(), "epoch": self.epoch, "step": self.step,
                "wall_s": wall_s})
        return meta

    def _bar(self):
        if not self.cfg.progress:
            return None
        from tqdm import tqdm

        return tqdm(total=self.total, initial=self.step, unit="step", desc=self.cfg.name, dynamic_ncols=True)


def _save_state(path: Path, payload: dict) -> None:
    import torch

    buf = io.BytesIO()
    torch.save(payload, buf)
    atomic_write(path, lambda tmp: tmp.write_bytes(buf.getvalue()), durable=True)


def _load_state(out: Path) -> dict | None:
    import torch

    path = out / STATE_FILE
    return torch.load(path, map_location="cpu", weights_only=False) if path.is_file() else None


def _finished(out: Path) -> bool:
    try:
        return bool(json.loads((out / METADATA_FILE).read_text(encoding="utf-8")).get("finished"))
    except (OSError, ValueError):
        return False


def _sync_metrics(out: Path, epochs_done: int) -> list[dict]:
    """The metrics rows of epochs ``<= epochs_done``; later ones (written before a kill lost their state) are cut."""
    path = out / METRICS_FILE
    rows = read_jsonl(path, key="epoch")
    keep = [r for r in rows if r["epoch"] <= epochs_done]
    if len(keep) != len(rows):
        atomic_write_text(path, "".join(dumps_record(r, "epoch") for r in keep), durable=True)
    return keep
