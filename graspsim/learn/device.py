"""Where training runs: the torch device named by ``--device``, checked once, and moving batches onto it.

Why here: the training loop (:mod:`.loop`) and the stacks that build their tensors from numpy batches need the
same device; a stack asks its model where it lives (:func:`module_device`) instead of being told twice.
A run may be resumed on another device (the loop keeps ``device`` among its volatile settings): the weights
and the optimiser's state move with the model, but the numbers then differ from an uninterrupted run in the
last bits (CUDA kernels are not the CPU's), so "bit for bit" holds per device only.
"""

from __future__ import annotations

from typing import Any

#: What ``--device`` accepts, in words (the error messages say it).
DEVICE_WORDS = "cpu, cuda or cuda:N"


def resolve_device(name: str | None):
    """``name`` (None / "" = "cpu", "cuda", "cuda:1", ...) as a ``torch.device`` that exists on this machine.

    ValueError, one line, when the text is not a device torch knows, names a device type other than cpu / cuda,
    or names a CUDA device this machine's torch cannot see (a CPU-only torch build, no GPU, an index past the
    last GPU)."""
    import torch

    text = "cpu" if name is None or str(name).strip() == "" else str(name).strip()
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise ValueError(f"--device {text!r} is not a torch device; give {DEVICE_WORDS}") from None
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(f"--device {text!r}: training runs on {DEVICE_WORDS}")
    if not torch.cuda.is_available():
        raise ValueError(f"--device {text}: this machine's torch {torch.__version__} sees no CUDA device "
                         f"(built with CUDA {torch.version.cuda or 'none'}); train with --device cpu")
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise ValueError(f"--device {text}: this machine has {torch.cuda.device_count()} CUDA device(s), "
                         f"cuda:0 .. cuda:{torch.cuda.device_count() - 1}")
    return device


def module_device(module) -> Any:
    """The ``torch.device`` of ``module``'s first parameter (CPU for a module without parameters)."""
    import torch

    for p in module.parameters():
        return p.device
    return torch.device("cpu")


def from_numpy(array, device):
    """A numpy array as a torch tensor on ``device`` (shares memory on the CPU, a copy elsewhere)."""
    import numpy as np
    import torch

    return torch.from_numpy(np.ascontiguousarray(array)).to(device)
