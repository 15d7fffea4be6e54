"""Run directories: create, refuse to overwrite, resume with a settings check, and crash-safe JSONL records.

Every long job in graspsim (``bench``, ``render``, every ``train`` and every
``evaluate``) writes into a directory that holds

* a **settings file** (``run.json`` for bench; each job names its own): the
  job's configuration as one JSON object, written atomically;
* optionally a **records file** (``results.jsonl``, ``metrics.jsonl``, ...): one
  strict-JSON object per line, UTF-8, ``\\n``-terminated, appended as work
  finishes. When the records have a key (``episode_id``, ``epoch``, ...) it is
  an int, unique in the file.

Crash model: each record is appended with a single ``write()`` of a complete
line and then ``fsync``'d, so killing the process (even with SIGKILL) can at
worst leave one partial line at the end of the file. Readers ignore such a
trailing fragment; :func:`repair_jsonl` cuts it off before a job is resumed,
and :func:`prepare_run_dir` does that for you. Damage anywhere but the last
line is not something a crash can produce, so it is reported
(:class:`RecordsFileError`) rather than silently skipped.

A job states its directory's conventions once as a :class:`RunLayout` and calls
:func:`prepare_run_dir` (or :func:`check_run_dir` when it merges settings
itself). The benchmark's layout, :data:`BENCH_LAYOUT`, is the default.
"""

from __future__ import annotations

import json
import os
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from graspsim.fileio import atomic_write_json, atomic_write_text, fsync_dir, to_jsonable

RESULTS_FILENAME = "results.jsonl"
RUN_CONFIG_FILENAME = "run.json"
#: Offline metrics of a run's policy (``graspsim evaluate grasps --run-dir``), read by ``compare``.
OFFLINE_METRICS_FILENAME = "offline_metrics.json"

#: Keys of a benchmark's run configuration that do not change which attempts are
#: run or how, so a run may be resumed with different values for them. ``wall_s``
#: is measured, not chosen; ``backend`` and ``ray_address`` (local processes or
#: Ray, and where) do not change rows.
VOLATILE_KEYS: frozenset[str] = frozenset({"workers", "resume", "versions", "created", "wall_s", "backend",
                                           "ray_address"})


class RecordsFileError(ValueError):
    """A JSONL records file (or a settings file) is damaged in a way a crash cannot explain."""


class RunDirError(RuntimeError):
    """The run directory cannot be used as asked (would overwrite a run, settings differ on resume, ...)."""


class RecordsWarning(UserWarning):
    """Something was recovered from (a trailing partial line, a duplicated key)."""


@dataclass(frozen=True)
class RunLayout:
    """The conventions of one kind of run directory.

    ``config_name``: the settings file. ``records_name``: the JSONL records file
    (None: the job keeps no records). ``key``: the int field unique per record
    (None: records are not keyed). ``volatile``: settings that may differ on
    resume; a dotted name (``"config.graspsim_version"``) exempts one nested key.
    ``what``: how messages name the job. ``empty_for_new``: a new run needs a
    directory without (non-hidden) files, not only one without records.
    ``resume_from_nothing``: ``--resume`` where nothing is stored starts a new
    run instead of failing (jobs whose users re-run one command until it is done).
    """

    config_name: str = RUN_CONFIG_FILENAME
    records_name: str | None = RESULTS_FILENAME
    key: str | None = "episode_id"
    volatile: frozenset[str] = VOLATILE_KEYS
    what: str = "benchmark run"
    empty_for_new: bool = False
    resume_from_nothing: bool = False

    def records_path(self, run_dir: Path) -> Path | None:
        return None if self.records_name is None else Path(run_dir) / self.records_name


#: ``--resume`` on an empty or missing --out starts the run, so one command line serves until the run is done.
BENCH_LAYOUT = RunLayout(resume_from_nothing=True)


# --------------------------------------------------------------------------- writing


def dumps_record(record: Mapping[str, Any], key: str | None = "episode_id") -> str:
    """One JSONL line (with its trailing ``\\n``) for ``record``.

    Raises ValueError if ``key`` is given and ``record[key]`` is not an int,
    TypeError for a value that cannot be stored. ``ensure_ascii`` keeps the line
    free of raw newlines and non-ASCII bytes whatever the strings hold.
    """
    if not isinstance(record, Mapping):
        raise TypeError(f"a record must be a dict, got {type(record).__name__}")
    clean = to_jsonable(record)
    if key is not None:
        _check_key(clean.get(key), key, "record to append")
    return json.dumps(clean, allow_nan=False, ensure_ascii=True, separators=(",", ":")) + "\n"


def _check_key(value: Any, key: str, where: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{where}: {key!r} must be an int, got {value!r}")


class JsonlWriter:
    """Append records to the JSONL file ``path``, each durable when :meth:`append` returns.

    Each record is serialised first (:func:`dumps_record`), then written with a
    single ``write()`` of the full line on an ``O_APPEND`` descriptor (no user
    space buffer that could hold half a line), then ``os.fsync``'d. A SIGKILL
    can therefore at worst leave one partial last line.

    The file must not end in a partial line when the writer opens it (a new
    record would be glued onto the fragment): call :func:`repair_jsonl` (or
    :func:`prepare_run_dir`) first; otherwise RecordsFileError is raised.
    Appending a ``key`` value already appended by this writer raises ValueError.
    Safe to share between threads; use one writer per file. A context manager;
    :meth:`close` is idempotent.
    """

    def __init__(self, path: Path, key: str | None = "episode_id"):
        self.path = Path(path)
        self.key = key
        self._lock = threading.Lock()
        self._written: set[int] = set()
        created = not self.path.exists()
        self._fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            size = os.fstat(self._fd).st_size
            if size:
                with open(self.path, "rb") as f:
                    f.seek(size - 1)
                    if f.read(1) != b"\n":
                        raise RecordsFileError(
                            f"{self.path} ends in a partial line (an interrupted write); "
                            "run repair_jsonl() on it before appending"
                        )
            if created:
                fsync_dir(self.path.parent)  # make the new file's directory entry durable too
        except BaseException:
            os.close(self._fd)
            self._fd = None
            raise

    def append(self, record: Mapping[str, Any]) -> None:
        """Write ``record`` as one line and fsync it."""
        data = dumps_record(record, self.key).encode("ascii")
        with self._lock:
            if self._fd is None:
                raise ValueError(f"the writer for {self.path} is closed")
            if self.key is not None:
                value = int(record[self.key])
                if value in self._written:
                    raise ValueError(f"{self.key} {value} was already appended to {self.path}")
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
            if self.key is not None:
                self._written.add(value)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                os.close(fd)

    @property
    def closed(self) -> bool:
        return self._fd is None

    def __enter__(self) -> "JsonlWriter":
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
class JsonlScan:
    """What :func:`scan_jsonl` found in a records file.

    ``rows``: the valid records in file order, first occurrence of each key.
    ``valid_bytes``: length of the well-formed prefix (where a repair truncates to).
    ``trailing_bytes``: bytes after that prefix (a partial or corrupt last line), 0 if none.
    ``missing_newline``: the last record is complete and valid but lacks its ``\\n``.
    ``duplicate_ids``: key values seen more than once (later copies dropped).
    """

    path: Path
    rows: list[dict] = field(default_factory=list)
    valid_bytes: int = 0
    trailing_bytes: int = 0
    missing_newline: bool = False
    duplicate_ids: list[int] = field(default_factory=list)



def _parse_line(raw: bytes, key: str | None) -> dict:
    """Parse one line; raise ValueError saying why it is not a valid record."""
    row = json.loads(raw.decode("utf-8"))
    if not isinstance(row, dict):
        raise ValueError(f"a record must be a JSON object, got {type(row).__name__}")
    if key is not None:
        _check_key(row.get(key), key, "record")
    return row


def scan_jsonl(path: Path, key: str | None = "episode_id") -> JsonlScan:
    """Read the records file ``path`` without modifying it or warning.

    The last non-blank line may be partial or corrupt (an interrupted write): it
    is left out of ``rows`` and counted in ``trailing_bytes``. Any other line
    that is not a JSON object (with an int ``key``) raises RecordsFileError
    naming the line. Blank lines are skipped. A missing file gives an empty scan.
    """
    path = Path(path)
    scan = JsonlScan(path=path)
    if not path.exists():
        return scan
    data = path.read_bytes()
    lines, start = [], 0  # (line number, byte offset, content) of the non-blank lines
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if raw.strip():
            lines.append((number, start, raw))
        start += len(raw) + 1
    seen: set[int] = set()
    scan.valid_bytes = len(data)
    for number, start, raw in lines:
        last = number == lines[-1][0]
        try:
            row = _parse_line(raw, key)
        except ValueError as exc:  # includes JSONDecodeError and UnicodeDecodeError
            if last:
                scan.valid_bytes = start
                scan.trailing_bytes = len(data) - start
                break
            snippet = raw[:80].decode("utf-8", "replace")
            raise RecordsFileError(
                f"{path}, line {number}: not a valid record ({exc}); "
                f"only the last line can be damaged by an interrupted run, so this file "
                f"was altered or corrupted otherwise. Line starts: {snippet!r}"
            ) from None
        if last and start + len(raw) == len(data):
            scan.missing_newline = True
        if key is not None:
            if row[key] in seen:
                scan.duplicate_ids.append(row[key])
                continue
            seen.add(row[key])
        scan.rows.append(row)
    return scan


def read_jsonl(path: Path, key: str | None = "episode_id") -> list[dict]:
    """All records of ``path`` in file order (warnings as :func:`warn_about`; see :func:`scan_jsonl`)."""
    scan = scan_jsonl(path, key)
    warn_about(scan)
    return scan.rows


def warn_about(scan: JsonlScan) -> None:
    """A :class:`RecordsWarning` for a trailing partial line and for duplicated keys in ``scan``."""
    if scan.trailing_bytes:
        warnings.warn(
            f"{scan.path}: ignored a partial last line ({scan.trailing_bytes} bytes) left by an interrupted run",
            RecordsWarning,
            stacklevel=3,
        )
    if scan.duplicate_ids:
        shown = sorted(set(scan.duplicate_ids))
        warnings.warn(
            f"{scan.path}: ids appear more than once, keeping the first row of each: {shown[:20]}"
            + (" ..." if len(shown) > 20 else ""),
            RecordsWarning,
            stacklevel=3,
        )


def repair_jsonl(path: Path, key: str | None = "episode_id") -> int:
    """Cut a partial/corrupt last line off the records file ``path`` in place.

    Returns the number of bytes removed (0 when the file is fine or missing). A
    valid last record that only lacks its ``\\n`` is kept and the newline added,
    so later appends start on a fresh line. Damage before the last line raises
    RecordsFileError and changes nothing.
    """
    scan = scan_jsonl(path, key)
    if not scan.trailing_bytes and not scan.missing_newline:
        return 0
    with open(scan.path, "r+b") as f:
        if scan.trailing_bytes:
            f.truncate(scan.valid_bytes)
        else:
            f.seek(0, os.SEEK_END)
            f.write(b"\n")
        f.flush()
        os.fsync(f.fileno())
    return scan.trailing_bytes


def results_key(config: Mapping[str, Any] | None) -> str:
    """The key of a benchmark run's result rows: ``episode_id`` (one row per episode), or ``attempt_id`` for a
    clear-the-scene run (``config["clear_scene"]``: one row per attempt, several per episode)."""
    return "attempt_id" if (config or {}).get("clear_scene") else "episode_id"


def read_results(run_dir: Path) -> list[dict]:
    """All result rows of a benchmark run in arrival order (see :func:`read_jsonl`); RunDirError if it is missing.

    The rows' key comes from the run's settings (:func:`results_key`; ``episode_id`` without a run.json)."""
    if not Path(run_dir).is_dir():
        raise RunDirError(f"run directory {run_dir} does not exist")
    config_path = Path(run_dir) / RUN_CONFIG_FILENAME
    config = read_config(config_path) if config_path.is_file() else None
    return read_jsonl(Path(run_dir) / RESULTS_FILENAME, results_key(config))


def drop_records(path: Path, keep: Callable[[dict], bool], key: str | None = "episode_id") -> int:
    """Rewrite the records file ``path`` (atomically) with only the valid records for which ``keep(row)`` holds;
    returns how many were dropped. Resuming by whole units (a clear-the-scene episode's rows) uses it to forget
    the rows of a unit a kill interrupted."""
    rows = read_jsonl(path, key)
    kept = [row for row in rows if keep(row)]
    if len(kept) < len(rows):
        atomic_write_text(path, "".join(dumps_record(row, key) for row in kept), durable=True)
    return len(rows) - len(kept)


# --------------------------------------------------------------------------- settings


def read_config(path: Path, what: str = "benchmark run") -> dict:
    """The JSON object in the settings file ``path``; RunDirError if it is missing or unreadable."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunDirError(f"{path} not found: {path.parent} does not hold a {what}") from None
    try:
        config = json.loads(text)
    except ValueError as exc:
        raise RunDirError(f"{path} is not valid JSON ({exc})") from None
    if not isinstance(config, dict):
        raise RunDirError(f"{path} must hold a JSON object, got {type(config).__name__}")
    return config


def _normalise(config: Mapping[str, Any]) -> dict:
    # Compare settings the way they look after a JSON round trip, so a tuple and a
    # list, or np.float64(0.5) and 0.5, count as equal.
    return json.loads(json.dumps(to_jsonable(config), allow_nan=False))


_MISSING = object()


def config_differences(stored: Mapping[str, Any], requested: Mapping[str, Any],
                       volatile: frozenset[str] = VOLATILE_KEYS) -> list[tuple[str, Any, Any]]:
    """``(key, stored_value, requested_value)`` for each non-volatile key that differs.

    Top-level keys are compared whole, except where ``volatile`` names a nested
    key (``"config.graspsim_version"``): then that value's keys are compared one
    by one and the nested key is skipped. A key on one side only differs too (the
    absent side reads ``"<absent>"``).
    """
    return _differences(_normalise(stored), _normalise(requested), frozenset(volatile), "")


def _differences(a: dict, b: dict, volatile: frozenset[str], prefix: str) -> list[tuple[str, Any, Any]]:
    diffs = []
    for key in sorted(set(a) | set(b)):
        name = prefix + key
        if name in volatile:
            continue
        va, vb = a.get(key, _MISSING), b.get(key, _MISSING)
        nested = any(v.startswith(name + ".") for v in volatile)
        if nested and isinstance(va, dict) and isinstance(vb, dict):
            diffs += _differences(va, vb, volatile, name + ".")
        elif va != vb:
            diffs.append((name, "<absent>" if va is _MISSING else va, "<absent>" if vb is _MISSING else vb))
    return diffs


def _short(value: Any, limit: int = 200) -> str:
    text = json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _holds_a_run(run_dir: Path, layout: RunLayout) -> bool:
    if layout.empty_for_new:
        return any(not p.name.startswith(".") for p in run_dir.iterdir())
    records = layout.records_path(run_dir)
    return records is not None and records.exists() and bool(records.read_bytes().strip())


def check_run_dir(run_dir: Path, config: Mapping[str, Any], resume: bool,
                  layout: RunLayout = BENCH_LAYOUT) -> dict | None:
    """Check that ``run_dir`` may take a job with settings ``config``; returns the stored settings to resume.

    * New job (``resume=False``): RunDirError if the directory already holds one
      (records, or any file with ``layout.empty_for_new``). Returns None.
    * Resume: the settings file must exist (else RunDirError, unless
      ``layout.resume_from_nothing`` and the directory holds no run: then None,
      a new job) and equal ``config`` on every non-volatile key (else RunDirError
      naming each differing key with both values). A ``versions`` difference is
      allowed with a warning. A partial last record line is cut off (warning).
      Returns the stored settings.

    Creates ``run_dir`` (with parents) but writes no settings: see :func:`prepare_run_dir`.
    """
    run_dir = Path(run_dir)
    if not isinstance(config, Mapping):
        raise TypeError(f"the settings must be a dict, got {type(config).__name__}")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} exists and is not a directory")
    config_path = run_dir / layout.config_name
    holds = run_dir.is_dir() and _holds_a_run(run_dir, layout)
    if not resume:
        if holds and layout.empty_for_new:
            names = sorted(p.name for p in run_dir.iterdir() if not p.name.startswith("."))
            raise RunDirError(f"{run_dir} is not empty ({', '.join(names[:4])}); pass --resume to continue "
                              f"the {layout.what} there, or choose another --out")
        if holds:
            raise RunDirError(f"{run_dir} already holds results of a run; "
                              "pass --resume to continue it or choose another --out")
        run_dir.mkdir(parents=True, exist_ok=True)
        return None
    if not config_path.is_file():
        if layout.resume_from_nothing and not holds:
            run_dir.mkdir(parents=True, exist_ok=True)
            return None
        if not run_dir.is_dir():
            raise RunDirError(f"cannot resume: run directory {run_dir} does not exist; "
                              "start a new run without --resume")
        raise RunDirError(f"cannot resume: {config_path} not found, so the {layout.what}'s settings are unknown; "
                          "start a new run without --resume or choose another --out")
    stored = read_config(config_path, layout.what)
    diffs = config_differences(stored, config, layout.volatile)
    if diffs:
        lines = "\n".join(f"  {key}: stored {_short(old)}, requested {_short(new)}" for key, old, new in diffs)
        raise RunDirError(
            f"cannot resume {run_dir}: the requested settings differ from the stored {layout.config_name} on "
            f"{', '.join(repr(k) for k, _, _ in diffs)}:\n{lines}\n"
            "resume with the original settings, or start a new run in another --out"
        )
    _warn_versions(run_dir, stored, config)
    records = layout.records_path(run_dir)
    if records is not None:
        removed = repair_jsonl(records, layout.key)
        if removed:
            warnings.warn(f"{records}: removed a partial last line ({removed} bytes) left by an interrupted run",
                          RecordsWarning, stacklevel=3)
    return stored


def _warn_versions(run_dir: Path, stored: Mapping[str, Any], config: Mapping[str, Any]) -> None:
    if "versions" not in stored or "versions" not in config:
        return
    old, new = _normalise({"v": stored["versions"]})["v"], _normalise({"v": config["versions"]})["v"]
    if old != new:
        warnings.warn(f"resuming {run_dir} with different versions: stored {_short(old)}, now {_short(new)}; "
                      "the results will mix both", RecordsWarning, stacklevel=4)


def prepare_run_dir(run_dir: Path, config: Mapping[str, Any], resume: bool,
                    layout: RunLayout = BENCH_LAYOUT) -> set[int]:
    """:func:`check_run_dir`, then (re)write the settings file atomically; returns the keys already recorded.

    The returned set holds ``layout.key`` of every valid record (empty for a new
    job or a layout without keyed records); duplicated keys keep their first
    record, with a warning.
    """
    stored = check_run_dir(run_dir, config, resume, layout)
    records = layout.records_path(run_dir)
    rows = read_jsonl(records, layout.key) if stored is not None and records is not None else []
    atomic_write_json(Path(run_dir) / layout.config_name, config)
    return set() if layout.key is None else {row[layout.key] for row in rows}
