"""graspsim.learn: the training loop on a toy model (resume bit for bit, metrics.jsonl, max_minutes, settings
check), the samplers, the schedules and checkpoint I/O. Runs in a few seconds: no rendering, no real network."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("safetensors")

from graspsim.learn.checkpoint import (ChecksumError, load_weights, read_metadata, save_weights,  # noqa: E402
                                       write_metadata)
from graspsim.learn.loop import METRICS_FILE, SETTINGS_FILE, STATE_FILE, LoopConfig, Stack, train  # noqa: E402
from graspsim.learn.sampling import EpochShuffle, RunStream  # noqa: E402
from graspsim.learn.schedule import cosine_with_ramp, warmup_cosine  # noqa: E402
from graspsim.runs import RunDirError, read_jsonl  # noqa: E402

X = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
Y = (X @ np.array([1.0, -2.0, 0.5], dtype=np.float32) + 0.3)[:, None]


class Boom(RuntimeError):
    """Stands in for a kill in the middle of an epoch."""


def _toy_build(sampling: str = "stream", die_at_step: int | None = None):
    """A linear model + an extra trainable offset (outside the model, like CLIP's bias), on random batches."""

    def build() -> Stack:
        model = torch.nn.Linear(3, 1)
        offset = torch.nn.Parameter(torch.tensor(0.0))
        calls = {"n": 0}

        def batch_of(idx):
            return torch.from_numpy(X[idx]), torch.from_numpy(Y[idx])

        if sampling == "stream":
            sampler = RunStream(4, seed=1, draw=lambda rng: batch_of(rng.integers(len(X), size=8)))
        else:
            sampler = EpochShuffle(len(X), 16, seed=1, make_batch=lambda idx, rng: batch_of(idx))

        def step(batch):
            calls["n"] += 1
            if die_at_step is not None and calls["n"] == die_at_step:
                raise Boom("killed")
            x, y = batch
            loss = ((model(x) + offset - y) ** 2).mean()
            return {"loss": loss, "abs": (model(x) - y).abs().mean().detach()}

        def validate():
            with torch.no_grad():
                return {"val_mse": float(((model(torch.from_numpy(X)) + offset - torch.from_numpy(Y)) ** 2).mean())}

        def save(out: Path, progress) -> dict:
            save_weights(out, model.state_dict())
            return {"kind": "toy", "val": progress.last.get("val_mse")}

        return Stack(model=model, sampler=sampler, step=step, validate=validate, save=save, extra_params=[offset])

    return build


def _cfg(**kw) -> LoopConfig:
    base = dict(epochs=3, lr=0.05, seed=0, weight_decay=0.01, grad_clip=1.0, schedule=warmup_cosine(3),
                progress=False)
    return LoopConfig(**{**base, **kw})


def _weights(out: Path) -> dict:
    return load_weights(out)


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("sampling", ["stream", "shuffle"])
def test_resume_after_every_epoch_is_bit_identical(tmp_path, sampling):
    settings = {"kind": "toy", "sampling": sampling}
    full = train(tmp_path / "full", settings, _toy_build(sampling), _cfg())
    assert full["finished"] and full["epochs_done"] == 3 and not full["stopped_early"]

    # stopped by --max-minutes after each epoch in turn, resumed each time
    out = tmp_path / "stepwise"
    metas = [train(out, settings, _toy_build(sampling), _cfg(max_minutes=1e-9), resume=bool(i)) for i in range(2)]
    assert [m["epochs_done"] for m in metas] == [1, 2] and all(m["stopped_early"] for m in metas)
    assert (out / STATE_FILE).is_file() and not metas[-1]["finished"]
    done = train(out, settings, _toy_build(sampling), _cfg(threads=1), resume=True)  # threads: volatile
    assert done["finished"] and done["steps"] == full["steps"] and not (out / STATE_FILE).exists()
    assert _same(_weights(tmp_path / "full"), _weights(out))
    rows_full = read_jsonl(tmp_path / "full" / METRICS_FILE, key="epoch")
    rows = read_jsonl(out / METRICS_FILE, key="epoch")
    drop = lambda r: {k: v for k, v in r.items() if k != "seconds"}  # noqa: E731
    assert [drop(r) for r in rows] == [drop(r) for r in rows_full]


def test_killed_run_resumes_bit_identical(tmp_path):
    """A crash in epoch 2 (after epoch 1's state was written), plus the debris a SIGKILL can leave: a metrics
    row of an epoch whose state was never written and a torn last line. Resuming gives the uninterrupted weights."""
    settings = {"kind": "toy"}
    train(tmp_path / "full", settings, _toy_build(), _cfg())
    out = tmp_path / "killed"
    with pytest.raises(Boom):
        train(out, settings, _toy_build(die_at_step=6), _cfg())  # 4 steps per epoch: dies in epoch 2
    assert [r["epoch"] for r in read_jsonl(out / METRICS_FILE, key="epoch")] == [1]
    with open(out / METRICS_FILE, "ab") as f:
        f.write(b'{"epoch":2,"step":8,"train_loss":1.0}\n{"epoch":3,"st')
    with pytest.warns(UserWarning, match="partial last line"):
        meta = train(out, settings, _toy_build(), _cfg(), resume=True)
    assert meta["finished"] and _same(_weights(tmp_path / "full"), _weights(out))
    rows = read_jsonl(out / METRICS_FILE, key="epoch")
    assert [r["epoch"] for r in rows] == [1, 2, 3] and rows[1]["train_loss"] != 1.0  # the stale row was replaced


def test_metrics_rows_metadata_and_files(tmp_path):
    out = tmp_path / "run"
    meta = train(out, {"kind": "toy"}, _toy_build(), _cfg())
    rows = read_jsonl(out / METRICS_FILE, key="epoch")
    assert [r["epoch"] for r in rows] == [1, 2, 3] and [r["step"] for r in rows] == [4, 8, 12]
    assert all({"seconds", "train_loss", "train_abs", "val_mse"} <= set(r) for r in rows)
    assert rows[-1]["val_mse"] < rows[0]["val_mse"]
    assert json.loads((out / SETTINGS_FILE).read_text()) == {"kind": "toy", **_cfg().settings()}
    disk = read_metadata(out)
    assert disk == meta and meta["kind"] == "toy" and meta["val"] == rows[-1]["val_mse"]
    assert set(meta["sha256"]) == {"model.safetensors"} and meta["wall_s"] >= 0
    assert not any(p.name.startswith(".") or p.name.endswith(".tmp") for p in out.iterdir())
    # resuming a finished run trains nothing and returns its metadata
    assert train(out, {"kind": "toy"}, _toy_build(die_at_step=1), _cfg(), resume=True) == meta


def test_run_directory_checks(tmp_path):
    out = tmp_path / "run"
    train(out, {"kind": "toy"}, _toy_build(), _cfg(epochs=2, max_minutes=1e-9))
    with pytest.raises(RunDirError, match="--resume"):
        train(out, {"kind": "toy"}, _toy_build(), _cfg(epochs=2))
    with pytest.raises(RunDirError, match="'lr'"):
        train(out, {"kind": "toy"}, _toy_build(), _cfg(epochs=2, lr=0.1), resume=True)
    with pytest.raises(RunDirError, match="'kind'"):
        train(out, {"kind": "other"}, _toy_build(), _cfg(epochs=2), resume=True)
    # a failing build (e.g. a bad dataset) leaves a new directory empty, so the same command can be rerun
    fresh = tmp_path / "fresh"

    def bad_build():
        raise ValueError("no data")

    with pytest.raises(ValueError, match="no data"):
        train(fresh, {"kind": "toy"}, bad_build, _cfg())
    assert not any(fresh.iterdir())
    assert train(fresh, {"kind": "toy"}, _toy_build(), _cfg(epochs=1))["finished"]


def test_device_names_and_one_line_errors():
    from graspsim.learn.device import from_numpy, module_device, resolve_device

    assert resolve_device(None) == resolve_device("") == resolve_device(" cpu ") == torch.device("cpu")
    with pytest.raises(ValueError, match="'tpu' is not a torch device; give cpu, cuda or cuda:N"):
        resolve_device("tpu")
    with pytest.raises(ValueError, match="training runs on cpu, cuda or cuda:N"):
        resolve_device("meta")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="sees no CUDA device"):
            resolve_device("cuda:0")
    else:
        with pytest.raises(ValueError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    a = np.arange(12.0).reshape(3, 4)[:, ::-1]  # not contiguous
    assert torch.equal(from_numpy(a, torch.device("cpu")), torch.from_numpy(a.copy()))
    assert module_device(torch.nn.Linear(2, 2).to("meta")).type == "meta"
    assert module_device(torch.nn.ReLU()) == torch.device("cpu")


def test_the_loop_moves_a_stack_to_its_device_or_refuses(tmp_path, monkeypatch):
    """"meta" stands in for a GPU: the model is there before the first step, and a stack that does not say it can
    leave the CPU is refused before anything is written."""
    import graspsim.learn.device as device

    monkeypatch.setattr(device, "resolve_device", lambda name: torch.device("meta"))
    with pytest.raises(ValueError, match="trains on the CPU only, not --device cuda"):
        train(tmp_path / "cpu-only", {"kind": "toy"}, _toy_build(), _cfg(device="cuda", name="toy"))
    assert not any((tmp_path / "cpu-only").iterdir())
    seen = {}

    def build():
        stack = _toy_build()()

        def step(batch):
            seen["model"] = module_device_of(stack.model)
            raise Boom("stop at the first step")

        stack.step, stack.devices, stack.extra_params = step, True, ()
        return stack

    from graspsim.learn.device import module_device as module_device_of

    with pytest.raises(Boom):
        train(tmp_path / "gpu", {"kind": "toy"}, build, _cfg(device="cuda"))
    assert seen == {"model": torch.device("meta")}
    # a stack with trainable tensors of its own outside the model (CLIP's bias in clip_sam) stays on the CPU
    with pytest.raises(ValueError, match="trains on the CPU only"):
        train(tmp_path / "extra", {"kind": "toy"}, lambda: Stack(**{**build().__dict__, "extra_params": [
            torch.nn.Parameter(torch.zeros(()))]}), _cfg(device="cuda"))
    # the device is a volatile setting: the run may be resumed on another one
    assert json.loads((tmp_path / "gpu" / SETTINGS_FILE).read_text())["device"] == "cuda"
    monkeypatch.undo()
    meta = train(tmp_path / "gpu", {"kind": "toy"}, _toy_build(), _cfg(device="cpu"), resume=True)
    assert meta["finished"]


def test_samplers():
    seen = []
    s = EpochShuffle(10, 4, seed=3, make_batch=lambda idx, rng: list(idx))
    assert s.steps_per_epoch == 3
    for epoch in range(2):
        batches = list(s.batches(epoch))
        assert [len(b) for b in batches] == [4, 4, 2] and sorted(sum(batches, [])) == list(range(10))
        seen.append(sum(batches, []))
    assert seen[0] != seen[1] and seen[0] == sum(list(s.batches(0)), [])  # per-epoch order, from (seed, epoch)
    r = RunStream(2, seed=5, draw=lambda rng: float(rng.random()))
    first = list(r.batches(0))
    state = r.state_dict()
    second = list(r.batches(1))
    r2 = RunStream(2, seed=99, draw=lambda rng: float(rng.random()))
    r2.load_state_dict(state)
    assert list(r2.batches(1)) == second != first


def test_schedules_known_values():
    f = warmup_cosine(10)
    assert f(0, 100) == pytest.approx(0.1) and f(9, 100) == 1.0 and f(10, 100) == 1.0
    assert f(55, 100) == pytest.approx(0.05 + 0.95 * 0.5) and f(100, 100) == pytest.approx(0.05)
    g = cosine_with_ramp(50)
    assert g(0, 100) == pytest.approx(0.02) and g(49, 100) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.49)))
    assert g(100, 100) == pytest.approx(0.0) and g(200, 100) == pytest.approx(0.0)


def test_checkpoint_round_trip_and_errors(tmp_path):
    net = torch.nn.Linear(4, 2)
    save_weights(tmp_path, net.state_dict())
    meta = write_metadata(tmp_path, {"model": "toy"})
    assert read_metadata(tmp_path) == meta and len(meta["sha256"]["model.safetensors"]) == 64
    assert _same(load_weights(tmp_path), net.state_dict())
    save_weights(tmp_path, torch.nn.Linear(4, 2).state_dict())  # weights replaced behind the metadata's back
    with pytest.raises(ChecksumError, match="model.safetensors"):
        load_weights(tmp_path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        read_metadata(tmp_path / "nope")
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "metadata.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match=r"half.*missing model\.safetensors"):
        read_metadata(tmp_path / "half")
