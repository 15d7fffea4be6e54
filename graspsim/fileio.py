"""Crash-safe file writing shared by every writer in graspsim (caches, results, datasets, reports).

A file is written to a temporary name in its own directory, flushed to disk,
then renamed over the target: readers (and a crash or kill at any moment) see
either the old file or the complete new one, never half of it.
"""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Callable


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
