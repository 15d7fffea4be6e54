"""The training loop shared by ``graspsim train clip`` and ``graspsim train sam``.

Training is organised in "epochs" of a fixed number of optimiser steps (the
samples are drawn at random from the scene bank, so there is no natural epoch).
After every epoch the loop evaluates the validation split, prints the metrics
and writes ``OUT/train_state.pt`` atomically (model, optimiser, scheduler, step,
the numpy generator's state and torch's RNG state): ``--resume`` continues from
it, so a kill loses at most one epoch and the resumed run draws exactly the
samples the uninterrupted one would have. At the end the model is saved with
``save_pretrained`` (``config.json`` + ``model.safetensors``, float16 on disk)
plus ``metadata.json`` (config, data, seed, steps, metrics).
"""

from __future__ import annotations

import io
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from graspsim.fileio import atomic_write, atomic_write_text

STATE_FILE = "train_state.pt"
METADATA_FILE = "metadata.json"


class TrainingDirError(ValueError):
    """The output directory holds another run (or a finished one) and --resume was not given."""


@dataclass
class LoopConfig:
    epochs: int
    steps_per_epoch: int
    lr: float
    weight_decay: float = 0.05
    warmup_steps: int = 100
    seed: int = 0
    max_minutes: float | None = None
    threads: int | None = None
    grad_clip: float = 1.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def total_steps(self) -> int:
        return self.epochs * self.steps_per_epoch


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up, then cosine decay to 5 % of the peak."""
    if step < warmup:
        return (step + 1) / max(1, warmup)
    t = (step - warmup) / max(1, total - warmup)
    return 0.05 + 0.95 * 0.5 * (1.0 + math.cos(math.pi * min(1.0, t)))


def _save_state(path: Path, payload: dict) -> None:
    buf = io.BytesIO()
    torch.save(payload, buf)
    data = buf.getvalue()
    atomic_write(path, lambda tmp: tmp.write_bytes(data), durable=True)


def prepare_out_dir(out_dir: Path, resume: bool, identity: dict) -> dict | None:
    """Check ``out_dir``; return the saved state to resume from (or None to start fresh)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    state_path = out_dir / STATE_FILE
    busy = [p.name for p in out_dir.iterdir() if not p.name.startswith(".")]
    if not resume:
        if busy:
            raise TrainingDirError(f"{out_dir} is not empty ({', '.join(sorted(busy)[:4])}); "
                                   f"use --resume to continue a run there, or choose another --out")
        return None
    if not state_path.is_file():
        if (out_dir / METADATA_FILE).is_file():
            raise TrainingDirError(f"{out_dir} holds a finished model (metadata.json, no {STATE_FILE}); "
                                   f"nothing to resume")
        return None
    state = torch.load(state_path, map_location="cpu", weights_only=False)
    if state.get("identity") != identity:
        diff = sorted(k for k in set(identity) | set(state.get("identity", {}))
                      if identity.get(k) != state.get("identity", {}).get(k))
        raise TrainingDirError(f"cannot resume in {out_dir}: the saved run differs in {', '.join(diff)}")
    return state


def run_loop(model: torch.nn.Module, extra_params: list[torch.nn.Parameter], out_dir: Path, cfg: LoopConfig,
             identity: dict, step_fn: Callable[[np.random.Generator], dict[str, torch.Tensor]],
             validate: Callable[[], dict[str, float]], resume: bool, progress: bool = True,
             log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train ``model`` (+ ``extra_params``) with AdamW; ``step_fn(rng)`` returns a dict with ``loss`` (and parts).

    Returns ``{"steps", "epochs_done", "history": [per-epoch metrics], "wall_s", "stopped_early"}``.
    """
    if cfg.threads:
        torch.set_num_threads(int(cfg.threads))
    out_dir = Path(out_dir)
    state = prepare_out_dir(out_dir, resume, identity)
    params = [p for p in model.parameters() if p.requires_grad] + list(extra_params)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    rng = np.random.default_rng(cfg.seed)
    step, history, wall_before = 0, [], 0.0
    if state is not None:
        model.load_state_dict(state["model"])
        for p, saved in zip(extra_params, state["extra"]):
            p.data.copy_(saved)
        opt.load_state_dict(state["optimizer"])
        rng.bit_generator.state = state["rng"]
        torch.set_rng_state(state["torch_rng"])
        step, history, wall_before = int(state["step"]), list(state["history"]), float(state.get("wall_s", 0.0))
        log(f"resuming at step {step} (epoch {step // cfg.steps_per_epoch})")
    t0 = time.perf_counter()
    stopped_early = False
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.total_steps, initial=step, unit="step", desc="train", dynamic_ncols=True)
    try:
        while step < cfg.total_steps:
            model.train()
            parts_sum: dict[str, float] = {}
            epoch_end = (step // cfg.steps_per_epoch + 1) * cfg.steps_per_epoch
            n = 0
            while step < epoch_end:
                for g in opt.param_groups:
                    g["lr"] = cfg.lr * lr_factor(step, cfg.warmup_steps, cfg.total_steps)
                parts = step_fn(rng)
                opt.zero_grad(set_to_none=True)
                parts["loss"].backward()
                if cfg.grad_clip:
                    torch.nn.utils.clip_grad_norm_(params, cfg.grad_clip)
                opt.step()
                for k, v in parts.items():
                    parts_sum[k] = parts_sum.get(k, 0.0) + float(v.detach())
                n += 1
                step += 1
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(loss=f"{float(parts['loss']):.3f}")
            model.eval()
            metrics = {f"train_{k}": round(v / max(1, n), 5) for k, v in parts_sum.items()}
            metrics.update({k: (round(v, 5) if isinstance(v, float) else v) for k, v in validate().items()})
            metrics["epoch"] = step // cfg.steps_per_epoch
            metrics["step"] = step
            history.append(metrics)
            log(json.dumps(metrics))
            elapsed = wall_before + time.perf_counter() - t0
            _save_state(out_dir / STATE_FILE, {
                "identity": identity, "model": model.state_dict(), "extra": [p.detach().clone() for p in extra_params],
                "optimizer": opt.state_dict(), "rng": rng.bit_generator.state, "torch_rng": torch.get_rng_state(),
                "step": step, "history": history, "wall_s": elapsed,
            })
            if cfg.max_minutes is not None and elapsed > 60.0 * cfg.max_minutes and step < cfg.total_steps:
                log(f"stopping after {elapsed / 60:.1f} min (--max-minutes {cfg.max_minutes}) at step {step}")
                stopped_early = True
                break
    finally:
        if bar is not None:
            bar.close()
    return {"steps": step, "epochs_done": step // cfg.steps_per_epoch, "history": history,
            "wall_s": wall_before + time.perf_counter() - t0, "stopped_early": stopped_early}


def finish(model, out_dir: Path, metadata: dict, save_extra: Callable[[Path], None] | None = None) -> None:
    """Write the final model (float16 safetensors + config), extra files, then metadata.json (last).

    A run stopped by ``--max-minutes`` (``metadata["stopped_early"]``) keeps its
    ``train_state.pt``, so ``--resume`` can still finish the planned epochs.
    """
    out_dir = Path(out_dir)
    half = type(model)(model.config)
    half.load_state_dict(model.state_dict())
    half = half.half()
    half.save_pretrained(str(out_dir), safe_serialization=True)
    if save_extra is not None:
        save_extra(out_dir)
    atomic_write_text(out_dir / METADATA_FILE, json.dumps(metadata, indent=2, sort_keys=True), durable=True)
    state = out_dir / STATE_FILE
    if state.exists() and not metadata.get("stopped_early"):
        state.unlink()
