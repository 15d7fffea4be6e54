"""What an epoch is: the two sampling strategies of graspsim's trainers.

A sampler has ``steps_per_epoch``, ``batches(epoch)`` (that epoch's batches)
and ``state_dict`` / ``load_state_dict`` (what a resumed run needs to draw
exactly the batches of the uninterrupted one):

* :class:`EpochShuffle` (det_seg, GR-ConvNet): epoch ``e`` is one pass over
  ``n`` items in the order ``numpy.random.default_rng([seed, e]).permutation(n)``,
  in batches of ``batch_size`` (the last may be smaller); the same generator
  goes on to the batch function (augmentation). Nothing to store.
* :class:`RunStream` (CLIP, SAM): ``steps_per_epoch`` batches drawn from ONE
  generator seeded once per run; its state is stored.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Iterator

import numpy as np


class EpochShuffle:
    """Shuffled passes over ``n`` items: ``make_batch(indices (B,) int array, rng) -> batch``."""

    def __init__(self, n: int, batch_size: int, seed: int,
                 make_batch: Callable[[np.ndarray, np.random.Generator], Any]):
        if n < 1 or batch_size < 1:
            raise ValueError(f"need n >= 1 items and batch_size >= 1, got {n}, {batch_size}")
        self.n, self.batch_size, self.seed, self.make_batch = n, batch_size, seed, make_batch
        self.steps_per_epoch = math.ceil(n / batch_size)

    def batches(self, epoch: int) -> Iterator[Any]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(self.n)
        for i in range(self.steps_per_epoch):
            yield self.make_batch(order[i * self.batch_size:(i + 1) * self.batch_size], rng)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class RunStream:
    """``steps_per_epoch`` draws per epoch from one run-long generator: ``draw(rng) -> batch``."""

    def __init__(self, steps_per_epoch: int, seed: int, draw: Callable[[np.random.Generator], Any]):
        if steps_per_epoch < 1:
            raise ValueError(f"steps_per_epoch must be >= 1, got {steps_per_epoch}")
        self.steps_per_epoch, self.draw = steps_per_epoch, draw
        self.rng = np.random.default_rng(seed)

    def batches(self, epoch: int) -> Iterator[Any]:
        for _ in range(self.steps_per_epoch):
            yield self.draw(self.rng)

    def state_dict(self) -> dict:
        return {"rng": self.rng.bit_generator.state}

    def load_state_dict(self, state: dict) -> None:
        self.rng.bit_generator.state = state["rng"]
