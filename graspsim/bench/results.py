"""The per-attempt results file of a benchmark run: crash-safe and resumable.

Layout of a run directory ``DIR``:

* ``DIR/run.json``: the run's configuration as one JSON object (policy, suite,
  seed, episodes, environment kwargs, physics config, versions, ...). Written
  atomically (temporary file + ``os.replace``), so it is either the old or the
  new version, never half of one.
* ``DIR/results.jsonl``: one strict-JSON object per line, one line per pick
  attempt, UTF-8, ``\\n``-terminated. Every row holds ``episode_id`` (int,
  unique within the run). Rows are appended as attempts finish, so their order
  is arrival order, not episode order.
* ``DIR/summary.json``: written by :mod:`graspsim.bench.summary`.

Crash model: each row is appended with a single ``write()`` of a complete line
and then ``fsync``'d, so killing the process (even with SIGKILL) can at worst
leave one partial line at the end of the file. Readers ignore such a trailing
fragment; :func:`repair_results` cuts it off before a run is resumed, and
:func:`prepare_run_dir` does that for you. Damage anywhere but the last line
is not something a crash can produce, so it is reported
(:class:`ResultsFileError`) rather than silently skipped.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import math
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path, PurePath
from typing import Any, Mapping

import numpy as np

from graspsim.fileio import atomic_write_text, fsync_dir

RESULTS_FILENAME = "results.jsonl"
RUN_CONFIG_FILENAME = "run.json"

#: Keys of the run configuration that do not change which attempts are run or
#: how, so a run may be resumed with different values for them. ``wall_s`` is
#: included because it is measured, not chosen; ``backend`` and ``ray_address``
#: (local processes or Ray, and where) because rows do not depend on them.
VOLATILE_KEYS: frozenset[str] = frozenset({"workers", "resume", "versions", "created", "wall_s", "backend",
                                           "ray_address"})


class ResultsFileError(ValueError):
    """results.jsonl (or run.json) is damaged in a way a crash cannot explain."""


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (would overwrite results, config mismatch on resume, ...)."""


class ResultsWarning(UserWarning):
    """Something was recovered from (a trailing partial line, a duplicated episode id)."""


# --------------------------------------------------------------------------- JSON


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


def dumps_row(row: Mapping[str, Any]) -> str:
    """One results.jsonl line (with its trailing ``\\n``) for ``row``.

    Raises ValueError if ``row`` has no integer ``episode_id``, TypeError for a
    value that cannot be stored. ``ensure_ascii`` keeps the line free of raw
    newlines and non-ASCII bytes whatever the strings hold.
    """
    if not isinstance(row, Mapping):
        raise TypeError(f"a results row must be a dict, got {type(row).__name__}")
    clean = to_jsonable(row)
    _check_episode_id(clean.get("episode_id"), "row to append")
    return json.dumps(clean, allow_nan=False, ensure_ascii=True, separators=(",", ":")) + "\n"


def _check_episode_id(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: 'episode_id' must be an int, got {value!r}")
    return value


# --------------------------------------------------------------------------- writing


class ResultsWriter:
    """Append rows to ``run_dir/results.jsonl``.

    Each row is serialised first (see :func:`dumps_row`), then written with a
    single ``write()`` of the full line on an ``O_APPEND`` descriptor (no user
    space buffer that could hold half a line), then ``os.fsync``'d. A SIGKILL
    can therefore at worst leave one partial last line, and every row for which
    :meth:`append` returned is on disk.

    The file must not end in a partial line when the writer opens it (a new
    row would be glued onto the fragment): call :func:`repair_results` (or
    :func:`prepare_run_dir`) first; otherwise ResultsFileError is raised.
    Appending an ``episode_id`` already appended by this writer raises
    ValueError. Safe to share between threads; use one writer per file.

    Usable as a context manager; :meth:`close` is idempotent.
    """

    def __init__(self, run_dir: Path):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / RESULTS_FILENAME
        self._lock = threading.Lock()
        self._written_ids: set[int] = set()
        created = not self.path.exists()
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(self._fd).st_size
            if size:
                with open(self.path, "rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        raise ResultsFileError(
                            f"{self.path} ends in a partial line (an interrupted write); "
                            "run repair_results() on the run directory before appending"
                        )
            if created:
                fsync_dir(self.run_dir)  # make the new file's directory entry durable too
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise

    def append(self, row: dict) -> None:
        """Write ``row`` as one line and fsync it. See :func:`dumps_row` for what a row may hold."""
        data = dumps_row(row).encode("ascii")
        episode_id = row["episode_id"]
        with self._lock:
            if self._fd is None:
                raise ValueError(f"ResultsWriter for {self.path} is closed")
            if int(episode_id) in self._written_ids:
                raise ValueError(f"episode_id {episode_id} was already appended to {self.path}")
            start = os.fstat(self._fd).st_size
            try:
                view = memoryview(data)
                while view:  # one write() in practice; loop only guards against a short write
                    written = os.write(self._fd, view)
                    view = view[written:]
                os.fsync(self._fd)
            except BaseException:
                # e.g. disk full after a short write: cut the fragment off so the
                # file stays well formed for the next append, then report.
                try:
                    os.ftruncate(self._fd, start)
                except OSError:
                    pass
                raise
            self._written_ids.add(int(episode_id))

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __enter__(self) -> "ResultsWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # last resort; callers should close()
        try:
            self.close()
        except Exception:
            pass


# --------------------------------------------------------------------------- reading


@dataclass
class ResultsScan:
    """What :func:`scan_results` found in a results file.

    ``rows``: the valid rows in file order, first occurrence of each episode id.
    ``valid_bytes``: length of the well-formed prefix (where a repair truncates to).
    ``trailing_bytes``: bytes after that prefix (a partial or corrupt last line), 0 if none.
    ``missing_newline``: the last row is complete and valid but lacks its ``\\n``.
    ``duplicate_ids``: episode ids seen more than once (later copies dropped).
    """

    path: Path
    rows: list[dict] = field(default_factory=list)
    valid_bytes: int = 0
    trailing_bytes: int = 0
    missing_newline: bool = False
    duplicate_ids: list[int] = field(default_factory=list)


def _parse_line(raw: bytes) -> dict:
    """Parse one line; raise ValueError saying why it is not a valid row."""
    row = json.loads(raw.decode("utf-8"))
    if not isinstance(row, dict):
        raise ValueError(f"a row must be a JSON object, got {type(row).__name__}")
    _check_episode_id(row.get("episode_id"), "row")
    return row


def scan_results(run_dir: Path) -> ResultsScan:
    """Read ``run_dir/results.jsonl`` without modifying or warning.

    The last non-blank line may be partial or corrupt (an interrupted write):
    it is left out of ``rows`` and counted in ``trailing_bytes``. Any other
    line that is not a JSON object with an integer ``episode_id`` raises
    ResultsFileError naming the line. Blank lines are skipped. A missing file
    gives an empty scan; a missing directory raises RunDirError.
    """
    run_dir = Path(run_dir)
    path = run_dir / RESULTS_FILENAME
    scan = ResultsScan(path=path)
    if not run_dir.is_dir():
        raise RunDirError(f"run directory {run_dir} does not exist")
    if not path.exists():
        return scan
    data = path.read_bytes()

    # (start, end_of_content, end_including_newline) for every line.
    spans: list[tuple[int, int, int]] = []
    pos = 0
    while pos < len(data):
        nl = data.find(b"\n", pos)
        if nl < 0:
            spans.append((pos, len(data), len(data)))
            break
        spans.append((pos, nl, nl + 1))
        pos = nl + 1
    nonblank = [i for i, (a, b, _) in enumerate(spans) if data[a:b].strip()]
    last = nonblank[-1] if nonblank else -1

    seen: set[int] = set()
    scan.valid_bytes = len(data)
    for i in nonblank:
        start, end, after = spans[i]
        try:
            row = _parse_line(data[start:end])
        except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
            if i == last:
                scan.valid_bytes = start
                scan.trailing_bytes = len(data) - start
                break
            snippet = data[start:end][:80].decode("utf-8", "replace")
            raise ResultsFileError(
                f"{path}, line {i + 1}: not a valid results row ({exc}); "
                f"only the last line can be damaged by an interrupted run, so this file "
                f"was altered or corrupted otherwise. Line starts: {snippet!r}"
            ) from None
        if i == last and after == end:
            scan.missing_newline = True
        eid = row["episode_id"]
        if eid in seen:
            scan.duplicate_ids.append(eid)
            continue
        seen.add(eid)
        scan.rows.append(row)
    return scan


def read_results(run_dir: Path) -> list[dict]:
    """All result rows of ``run_dir`` in file (arrival) order.

    A trailing partial line is skipped with a :class:`ResultsWarning` saying how
    many bytes were ignored; duplicated episode ids keep their first row, with a
    warning. A damaged line elsewhere raises :class:`ResultsFileError`. Use
    :func:`scan_results` to get these counts as values instead.
    """
    scan = scan_results(run_dir)
    _warn_about(scan)
    return scan.rows


def _warn_about(scan: ResultsScan) -> None:
    if scan.trailing_bytes:
        warnings.warn(
            f"{scan.path}: ignored a partial last line ({scan.trailing_bytes} bytes) left by an interrupted run",
            ResultsWarning,
            stacklevel=3,
        )
    if scan.duplicate_ids:
        shown = sorted(set(scan.duplicate_ids))
        warnings.warn(
            f"{scan.path}: episode ids appear more than once, keeping the first row of each: {shown[:20]}"
            + (" ..." if len(shown) > 20 else ""),
            ResultsWarning,
            stacklevel=3,
        )


def repair_results(run_dir: Path) -> int:
    """Cut a partial/corrupt last line off ``run_dir/results.jsonl`` in place.

    Returns the number of bytes removed (0 when the file is fine or missing).
    A valid last row that only lacks its ``\\n`` is kept and the newline added,
    so later appends start on a fresh line. Damage before the last line raises
    ResultsFileError and changes nothing.
    """
    scan = scan_results(run_dir)
    if not scan.trailing_bytes and not scan.missing_newline:
        return 0
    with open(scan.path, "r+b") as f:
        if scan.trailing_bytes:
            f.truncate(scan.valid_bytes)
        elif scan.missing_newline:
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
        f.flush()
        os.fsync(f.fileno())
    return scan.trailing_bytes


def completed_episode_ids(run_dir: Path) -> set[int]:
    """Episode ids that already have a row in ``run_dir/results.jsonl`` (warnings as :func:`read_results`)."""
    return {row["episode_id"] for row in read_results(run_dir)}


# --------------------------------------------------------------------------- run directory


def atomic_write_json(path: Path, obj: Any) -> None:
    """Write ``obj`` (via :func:`to_jsonable`) as indented strict JSON to ``path`` atomically and durably.

    See :func:`graspsim.fileio.atomic_write`: readers (and a crash) see either
    the old file or the complete new one.
    """
    text = json.dumps(to_jsonable(obj), indent=2, allow_nan=False) + "\n"
    atomic_write_text(Path(path), text, durable=True)


def read_run_config(run_dir: Path) -> dict:
    """The JSON object in ``run_dir/run.json``; RunDirError if it is missing or unreadable."""
    path = Path(run_dir) / RUN_CONFIG_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunDirError(f"{path} not found: {run_dir} does not hold a benchmark run") from None
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise RunDirError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise RunDirError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


def _normalise_config(config: Mapping[str, Any]) -> dict:
    # Compare configs the way they will look after a JSON round trip, so a tuple
    # and a list, or np.float64(0.5) and 0.5, count as equal.
    return json.loads(json.dumps(to_jsonable(config), allow_nan=False))


_MISSING = object()


def config_differences(stored: Mapping[str, Any], requested: Mapping[str, Any]) -> list[tuple[str, Any, Any]]:
    """``(key, stored_value, requested_value)`` for each non-volatile top-level key that differs.

    A key present on only one side differs too (the absent side is reported as
    the string ``"<absent>"``). Keys in :data:`VOLATILE_KEYS` are ignored.
    """
    a, b = _normalise_config(stored), _normalise_config(requested)
    diffs = []
    for key in sorted(set(a) | set(b)):
        if key in VOLATILE_KEYS:
            continue
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        if va != vb:
            diffs.append((key, "<absent>" if va is _MISSING else va, "<absent>" if vb is _MISSING else vb))
    return diffs


def _short(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def prepare_run_dir(run_dir: Path, run_config: dict, resume: bool) -> set[int]:
    """Get ``run_dir`` ready for a run and return the episode ids already done.

    * New run (``resume=False``): creates the directory (with parents) and writes
      ``run.json``. If ``results.jsonl`` already holds anything, raises RunDirError
      rather than mixing two runs' attempts. Returns an empty set.
    * Resume (``resume=True``): ``run.json`` must exist and equal ``run_config`` on
      every top-level key except :data:`VOLATILE_KEYS` (compared after a JSON round
      trip); otherwise RunDirError naming each differing key with both values.
      A different ``versions`` entry is allowed but warned about. A partial last
      line in ``results.jsonl`` is cut off (with a :class:`ResultsWarning`);
      duplicated episode ids keep their first row (warning). Returns the set of
      completed episode ids.

    In both cases ``run.json`` is then (re)written atomically with ``run_config``.
    """
    run_dir = Path(run_dir)
    if not isinstance(run_config, Mapping):
        raise TypeError(f"run_config must be a dict, got {type(run_config).__name__}")
    results_path = run_dir / RESULTS_FILENAME

    if not resume:
        if results_path.exists() and results_path.read_bytes().strip():
            raise RunDirError(
                f"{run_dir} already holds results of a run; "
                "pass --resume to continue it or choose another --out"
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        atomic_write_json(run_dir / RUN_CONFIG_FILENAME, run_config)
        return set()

    if not run_dir.is_dir():
        raise RunDirError(f"cannot resume: run directory {run_dir} does not exist; start a new run without --resume")
    if not (run_dir / RUN_CONFIG_FILENAME).exists():
        raise RunDirError(
            f"cannot resume: {run_dir / RUN_CONFIG_FILENAME} not found, so the run's configuration is unknown; "
            "start a new run without --resume or choose another --out"
        )
    stored = read_run_config(run_dir)
    diffs = config_differences(stored, run_config)
    if diffs:
        lines = "\n".join(f"  {key}: stored {_short(old)}, requested {_short(new)}" for key, old, new in diffs)
        raise RunDirError(
            f"cannot resume {run_dir}: the requested configuration differs from the stored "
            f"{RUN_CONFIG_FILENAME} on {', '.join(repr(k) for k, _, _ in diffs)}:\n{lines}\n"
            "resume with the original settings, or start a new run in another --out"
        )
    old_versions = _normalise_config({"v": stored.get("versions")})["v"]
    new_versions = _normalise_config({"v": run_config.get("versions")})["v"]
    if "versions" in stored and "versions" in run_config and old_versions != new_versions:
        warnings.warn(
            f"resuming {run_dir} with different versions: stored {_short(old_versions)}, "
            f"now {_short(new_versions)}; the results will mix both",
            ResultsWarning,
            stacklevel=2,
        )

    removed = repair_results(run_dir)
    if removed:
        warnings.warn(
            f"{results_path}: removed a partial last line ({removed} bytes) left by an interrupted run",
            ResultsWarning,
            stacklevel=2,
        )
    scan = scan_results(run_dir)
    _warn_about(scan)
    atomic_write_json(run_dir / RUN_CONFIG_FILENAME, run_config)
    return {row["episode_id"] for row in scan.rows}

