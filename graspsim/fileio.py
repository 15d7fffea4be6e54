"""Crash-safe file writing and strict JSON, shared by every writer in graspsim (caches, results, datasets, reports).

A file is written to a temporary name in its own directory, flushed to disk,
then renamed over the target: readers (and a crash or kill at any moment) see
either the old file or the complete new one, never half of it.
:func:`to_jsonable` turns graspsim's values (numpy, enums, dataclasses, paths)
into what strict JSON holds; run directories and JSONL records build on these
in :mod:`graspsim.runs`.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import uuid
from pathlib import Path, PurePath
from typing import Any, Callable, Mapping

import numpy as np


def fsync_dir(directory: Path) -> None:
    """Make a create/rename in ``directory`` durable (POSIX; silently skipped where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write: Callable[[Path], None], *, durable: bool = False) -> Path:
    """Write ``path`` atomically: ``write(tmp_path)`` fills a temporary file that then replaces ``path``.

    ``durable``: also fsync the file and its directory (results that must survive
    a power cut; caches do not need it). The file gets the usual permissions
    (0666 minus the umask), not the private ones of a temporary file.
    """
    path = Path(path)
    # Unique per process and call: parallel workers may write the same cache file. The real
    # suffix stays last because some writers (cv2.imwrite) pick the format from it.
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp{path.suffix}")
    try:
        write(tmp)
        if durable:
            with open(tmp, "rb") as f:
                os.fsync(f.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    if durable:
        fsync_dir(path.parent)
    return path


def atomic_write_text(path: Path, text: str, *, durable: bool = False) -> Path:
    """:func:`atomic_write` for UTF-8 text."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"), durable=durable)


# --------------------------------------------------------------------------- strict JSON


def to_jsonable(obj: Any) -> Any:
    """Convert ``obj`` into plain Python values that strict JSON can hold.

    * numpy scalars -> ``int`` / ``float`` / ``bool``; numpy arrays -> nested lists.
    * ``float`` NaN / +-inf (numpy's too) -> ``None`` (strict JSON has no NaN).
    * ``dict`` / ``Mapping`` -> ``dict`` with ``str`` keys (non-string keys via ``str()``).
    * ``list`` / ``tuple`` -> ``list``; ``set`` / ``frozenset`` -> sorted ``list``.
    * ``enum.Enum`` -> its ``value``; ``pathlib`` paths -> ``str``.
    * objects with a ``to_dict()`` method (graspsim's value types), then dataclasses
      (via ``dataclasses.asdict``) -> ``dict``.

    Raises TypeError naming the offending location (e.g. ``row['rect']['x']``)
    for anything else, so a bad row fails loudly before it is written.
    """
    return _to_jsonable(obj, "value")


def _to_jsonable(obj: Any, where: str) -> Any:
    # Order matters: bool before int (bool is an int), Enum before str/int
    # (FailureReason is a str enum), numpy before the Python number checks.
    if obj is None or isinstance(obj, bool):
        return obj
    if isinstance(obj, enum.Enum):
        return _to_jsonable(obj.value, where)
    if isinstance(obj, str):
        return obj
    if isinstance(obj, np.generic):
        return _to_jsonable(obj.item(), where)
    if isinstance(obj, int):
        return int(obj)
    if isinstance(obj, float):
        return float(obj) if math.isfinite(obj) else None
    if isinstance(obj, np.ndarray):
        return _to_jsonable(obj.tolist(), where)
    if isinstance(obj, Mapping):
        return {str(_key(k, where)): _to_jsonable(v, f"{where}[{k!r}]") for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_to_jsonable(v, f"{where}[{i}]") for i, v in enumerate(obj)]
    if isinstance(obj, (set, frozenset)):
        items = [_to_jsonable(v, f"{where}{{...}}") for v in obj]
        return sorted(items, key=lambda v: json.dumps(v, sort_keys=True))
    if isinstance(obj, PurePath):
        return str(obj)
    to_dict = getattr(obj, "to_dict", None)
    if callable(to_dict):
        return _to_jsonable(to_dict(), where)
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return _to_jsonable(dataclasses.asdict(obj), where)
    raise TypeError(f"{where} is a {type(obj).__module__}.{type(obj).__qualname__}, which cannot be stored as JSON")


def _key(key: Any, where: str) -> Any:
    # JSON object keys are strings; numpy/enum keys become their plain form first.
    if isinstance(key, enum.Enum):
        key = key.value
    if isinstance(key, np.generic):
        key = key.item()
    if isinstance(key, (str, int, float, bool)) or key is None:
        return key
    raise TypeError(f"{where} has a key of type {type(key).__name__}; JSON object keys must be strings or numbers")


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` (via :func:`to_jsonable`) as indented strict JSON (no NaN, newline-terminated) to ``path``
    atomically and durably (:func:`atomic_write`: readers, and a crash, see the old file or the complete new one).
    """
    atomic_write_text(Path(path), json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n", durable=True)
