"""A ``Text`` space whose strings survive ``AsyncVectorEnv``'s shared memory.

Gymnasium's ``AsyncVectorEnv`` reads its shared-memory buffer once, when it is
built, and afterwards hands out (copies of) what that first read returned. For
``Box`` spaces the read is a numpy *view*, so it follows what the workers write;
for ``Text`` it is a tuple of strings decoded from the still-empty buffer, so
every batched instruction comes back as ``max_length`` times the first
character of the charset (Gymnasium 1.4).

:class:`InstructionText` is a ``Text`` space that is identical in every other
respect (sampling, ``contains``, flattening, batching without shared memory).
Its shared-memory read returns :class:`SharedTexts`, a sequence that decodes
the buffer when it is read, so ``obs["instruction"]`` is always the tuple of
strings the workers wrote: the vector environment deep-copies its observations
before returning them (its default ``copy=True``), which turns them into a
plain ``tuple[str, ...]``; with ``copy=False`` the live sequence is returned.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from gymnasium import spaces
from gymnasium.vector.utils import read_from_shared_memory


class InstructionText(spaces.Text):
    """:class:`gymnasium.spaces.Text` with a shared-memory read that round-trips (module docstring)."""


class SharedTexts(Sequence):
    """The strings of ``n`` environments, decoded from shared memory on every access.

    ``codes``: (n, max_length) int32 view of the buffer; each row holds character
    indices into ``space.character_list``, padded with ``len(charset)``.
    """

    def __init__(self, space: spaces.Text, codes: np.ndarray):
        self._characters = space.character_list
        self._codes = codes

    def __len__(self) -> int:
        return len(self._codes)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return tuple(self[i] for i in range(len(self))[index])
        n_chars = len(self._characters)
        return "".join(self._characters[c] for c in self._codes[index] if c < n_chars)

    def __deepcopy__(self, memo) -> tuple[str, ...]:
        return tuple(self)

    def __eq__(self, other) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, Sequence) else other)

    def __repr__(self) -> str:
        return repr(tuple(self))


@read_from_shared_memory.register(InstructionText)
def _read_instruction_from_shared_memory(space: InstructionText, shared_memory, n: int = 1) -> SharedTexts:
    codes = np.frombuffer(shared_memory.get_obj(), dtype=np.int32).reshape((n, space.max_length))
    return SharedTexts(space, codes)
