"""The local weights store: fetch (sha256-checked), status, verify, resolve.

Layout::

    weights_dir()/                 $GRASPSIM_WEIGHTS, else cache_dir()/weights
        lock.json                  name -> {file -> sha256, size}, source, fetched_at
        <name>/<file>              one directory per registered model

``cache_dir()`` is ``$GRASPSIM_CACHE`` or ``~/.cache/graspsim``.

Downloads go to a staging directory inside ``weights_dir()`` and are hashed
while they stream; only when every file matches its expected sha256 (from the
registry, else the one pinned in ``lock.json`` by an earlier fetch) and MD5
(where the registry has one) are the files moved into place with
``os.replace``. A mismatch deletes the staging copy and raises
:class:`WeightsIntegrityError`; nothing reaches the store. Where no sha256 is
known yet (registry ``None`` and nothing pinned), the first successful fetch
records it in ``lock.json`` and everything later is checked against it.

When the source cannot be reached (no network) :class:`WeightsUnavailableError`
says which model is missing, which files it needs, the directory to put them
in (copied from another machine) and the command that fetches them.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import shutil
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from graspsim.fileio import atomic_write_text
from graspsim.weights.registry import ALIASES, REGISTRY, UnknownWeightsError, WeightSpec, get_spec

LOCK_NAME = "lock.json"
_CHUNK = 1 << 20
URL_TIMEOUT_S = 30.0


class WeightsError(Exception):
    """Base class of weights-store errors."""


class WeightsIntegrityError(WeightsError):
    """A file's hash does not match the expected one."""

    def __init__(self, name: str, file: str, expected: str, got: str, algo: str = "sha256", hint: str = ""):
        self.name, self.file, self.expected, self.got, self.algo = name, file, expected, got, algo
        msg = f"weights {name!r}: {file} failed its {algo} check: expected {expected}, got {got}"
        super().__init__(msg + (f"; {hint}" if hint else ""))


class WeightsUnavailableError(WeightsError, FileNotFoundError):
    """Weights are not in the store and could not be fetched (or a path does not exist)."""

    def __str__(self) -> str:  # FileNotFoundError would prefix an errno
        return str(self.args[0]) if self.args else ""


# ------------------------------------------------------------------ paths and lock file
def weights_dir() -> Path:
    """Root of the weights store: ``$GRASPSIM_WEIGHTS`` if set, else ``cache_dir()/weights``."""
    env = os.environ.get("GRASPSIM_WEIGHTS")
    if env:
        return Path(env).expanduser().resolve()
    from graspsim.assets.library import cache_dir

    return cache_dir() / "weights"


def model_path(name: str) -> Path:
    """What loaders take: the directory for ``clip``/``sam`` kinds, the ``.pth`` file for ``sam_checkpoint``."""
    spec = get_spec(name)
    d = weights_dir() / spec.name
    return d / spec.files[0].path if spec.kind == "sam_checkpoint" else d


def read_lock() -> dict[str, Any]:
    """The parsed ``lock.json`` (``{"version": 1, "models": {...}}``); empty when absent."""
    p = weights_dir() / LOCK_NAME
    if not p.is_file():
        return {"version": 1, "models": {}}
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise WeightsError(f"cannot read {p}: {exc}; fix or delete it (its pinned hashes are then re-recorded)") from exc
    data.setdefault("models", {})
    return data


@contextlib.contextmanager
def _locked() -> Iterator[None]:
    """Serialise read-modify-write of lock.json across processes (POSIX flock; no-op elsewhere)."""
    root = weights_dir()
    root.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with open(root / ".lock.json.lock", "a+b") as fh:  # closing the file releases the lock
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        yield


def _lock_entry(name: str) -> dict[str, Any]:
    return read_lock()["models"].get(name, {})


def _record(spec: WeightSpec, hashes: dict[str, dict[str, Any]], source: str) -> None:
    with _locked():
        data = read_lock()
        data["version"] = 1
        data["models"][spec.name] = {
            "kind": spec.kind,
            "source": source,
            "revision": spec.revision if spec.source == "hf" else None,
            "fetched_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "files": {f: {"sha256": h["sha256"], "size": h["size"]} for f, h in hashes.items()},
        }
        atomic_write_text(weights_dir() / LOCK_NAME, json.dumps(data, indent=2, sort_keys=True) + "\n")


def _expected_sha256(spec: WeightSpec, file: str, entry: dict[str, Any]) -> tuple[str | None, str]:
    """(expected sha256 or None, where it comes from: "registry" / "lock" / "")."""
    fs = next(f for f in spec.files if f.path == file)
    if fs.sha256:
        return fs.sha256.lower(), "registry"
    pinned = entry.get("files", {}).get(file, {}).get("sha256")
    return (pinned.lower(), "lock") if pinned else (None, "")


# ------------------------------------------------------------------ hashing / streaming
def _stream(src: BinaryIO, dest: Path | None, *, total: int | None = None, label: str = "",
            progress: bool = False) -> dict[str, Any]:
    """Copy ``src`` to ``dest`` (None: nowhere) while hashing; returns ``{"sha256", "md5", "size"}``."""
    sha, md5, size = hashlib.sha256(), hashlib.md5(usedforsecurity=False), 0
    last = -1
    if dest is not None:
        dest.parent.mkdir(parents=True, exist_ok=True)
    with open(dest, "wb") if dest is not None else contextlib.nullcontext() as out:
        while chunk := src.read(_CHUNK):
            if out is not None:
                out.write(chunk)
            sha.update(chunk)
            md5.update(chunk)
            size += len(chunk)
            if progress:
                pct = int(100 * size / total) if total else -1
                if pct != last or not total:
                    last = pct
                    sys.stderr.write(f"\r  {label}: {f'{pct:3d}% ' if total else ''}{size / 1e6:,.1f} MB")
                    sys.stderr.flush()
    if progress:
        sys.stderr.write("\n")
    return {"sha256": sha.hexdigest(), "md5": md5.hexdigest(), "size": size}


def hash_file(path: Path) -> dict[str, Any]:
    """``{"sha256", "md5", "size"}`` of a file on disk."""
    with open(path, "rb") as fh:
        return _stream(fh, None)


def _download_url(spec: WeightSpec, url: str, dest: Path, label: str, progress: bool, verb: str) -> dict[str, Any]:
    """Stream ``url`` to ``dest``; :class:`WeightsUnavailableError` ("could not ``verb`` ``url``") if that fails."""
    req = urllib.request.Request(url, headers={"User-Agent": "graspsim-weights"})
    try:
        with urllib.request.urlopen(req, timeout=URL_TIMEOUT_S) as resp:
            length = resp.headers.get("Content-Length") if hasattr(resp, "headers") else None
            total = int(length) if length and length.isdigit() else None
            return _stream(resp, dest, total=total, label=label, progress=progress)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise _unavailable(spec, f"could not {verb} {url} ({_cause(exc)})") from exc


def _snapshot_download(**kwargs: Any) -> str:
    """Indirection so tests can stand in for the Hub."""
    from huggingface_hub import snapshot_download

    return snapshot_download(**kwargs)


# ------------------------------------------------------------------ errors
def _unavailable(spec: WeightSpec, reason: str) -> WeightsUnavailableError:
    """The error for missing weights: why, which files, where to put them, and the command that fetches them."""
    return WeightsUnavailableError(
        f"weights {spec.name!r} ({spec.description}) are missing: {reason}. "
        f"Needed files ({spec.size_estimate}): {', '.join(spec.file_names)}. "
        f"Put them in {weights_dir() / spec.name}{os.sep} (e.g. copied from another machine; "
        f"GRASPSIM_WEIGHTS moves the store), or fetch them where the network allows with "
        f"`graspsim weights fetch {spec.name}` (from {spec.source_text}; "
        f"`--from PATH_OR_URL` takes a local copy or a mirror).")


def _cause(exc: BaseException) -> str:
    plain_url_error = isinstance(exc, urllib.error.URLError) and not isinstance(exc, urllib.error.HTTPError)
    text = str(exc.reason) if plain_url_error else str(exc)
    return f"{type(exc).__name__}: {(text.splitlines() or [''])[0]}"


# ------------------------------------------------------------------ status
def status(name: str) -> dict[str, Any]:
    """What the store holds for ``name`` (cheap: sizes only, no hashing).

    Keys: ``name, kind, path`` (what loaders take), ``dir``, ``present`` (every
    file exists), ``missing`` (file names), ``files`` (``{file: size or None}``),
    ``size_bytes``, ``pinned`` (every file has a known sha256, from the registry
    or lock.json), ``verified``: True when present, pinned and every size matches
    the one recorded at fetch; False when a size differs or the pinned and
    registry hashes disagree; None when missing or unpinned. ``verify()``
    recomputes the hashes.
    """
    spec = get_spec(name)
    d = weights_dir() / spec.name
    entry = _lock_entry(spec.name)
    files = {fs.path: (d / fs.path).stat().st_size if (d / fs.path).is_file() else None for fs in spec.files}
    missing = [f for f, size in files.items() if size is None]
    present = not missing
    pinned = all(_expected_sha256(spec, f, entry)[0] is not None for f in files)
    verified: bool | None = None
    if present:
        records = [(fs, entry.get("files", {}).get(fs.path)) for fs in spec.files]
        if any(rec is not None and (rec.get("size") != files[fs.path]
                                    or (fs.sha256 and rec.get("sha256", "").lower() != fs.sha256.lower()))
               for fs, rec in records):
            verified = False
        elif pinned and all(rec is not None for _, rec in records):
            verified = True
    return {
        "name": spec.name, "kind": spec.kind, "path": str(model_path(spec.name)), "dir": str(d),
        "present": present, "missing": missing, "files": files,
        "size_bytes": sum(s for s in files.values() if s),
        "size_estimate": spec.size_estimate, "pinned": pinned, "verified": verified,
    }


# ------------------------------------------------------------------ fetch
def _check(spec: WeightSpec, file: str, got: dict[str, Any], entry: dict[str, Any], hint: str) -> None:
    exp, origin = _expected_sha256(spec, file, entry)
    if exp is not None and got["sha256"] != exp:
        extra = " (pinned in lock.json by an earlier fetch)" if origin == "lock" else ""
        raise WeightsIntegrityError(spec.name, file, exp + extra, got["sha256"], "sha256", hint)
    fs = next(f for f in spec.files if f.path == file)
    if fs.md5 and got["md5"] != fs.md5.lower():
        raise WeightsIntegrityError(spec.name, file, fs.md5, got["md5"], "md5", hint)


def _fill_staging(spec: WeightSpec, staging: Path, source_override: str | os.PathLike | None, progress: bool) -> tuple[dict[str, dict[str, Any]], str]:
    """Put every file of ``spec`` into ``staging``; returns (hashes per file, source description)."""
    hashes: dict[str, dict[str, Any]] = {}
    if source_override is not None:
        src = str(source_override)
        if urllib.parse.urlparse(src).scheme in ("http", "https", "file"):
            for fs in spec.files:
                url = src if spec.source == "url" and len(spec.files) == 1 and not src.endswith("/") else src.rstrip("/") + "/" + fs.path
                hashes[fs.path] = _download_url(spec, url, staging / fs.path, fs.path, progress, "fetch")
            return hashes, src
        path = Path(src).expanduser()
        if not path.exists():
            raise _unavailable(spec, f"--from {path} does not exist")
        lacking = []
        for fs in spec.files:
            f = path if path.is_file() and len(spec.files) == 1 else path / fs.path
            if not f.is_file():
                lacking.append(str(f))
                continue
            with open(f, "rb") as fh:
                hashes[fs.path] = _stream(fh, staging / fs.path, total=f.stat().st_size, label=fs.path, progress=progress)
        if lacking:
            raise _unavailable(spec, f"--from {path} lacks {', '.join(lacking)}")
        return hashes, str(path.resolve())
    if spec.source == "url":
        fs = spec.files[0]
        hashes[fs.path] = _download_url(spec, str(spec.url), staging / fs.path, fs.path, progress, "download")
        return hashes, str(spec.url)
    # Hugging Face Hub
    try:
        _snapshot_download(repo_id=spec.repo_id, revision=spec.revision, allow_patterns=spec.file_names, local_dir=str(staging))
    except Exception as exc:  # connection errors, offline mode, 404s: all mean "not available from here"
        raise _unavailable(spec, f"could not download from {spec.source_text} ({_cause(exc)})") from exc
    lacking = [f for f in spec.file_names if not (staging / f).is_file()]
    if lacking:
        raise _unavailable(spec, f"{spec.source_text} did not provide {', '.join(lacking)}")
    return {f: hash_file(staging / f) for f in spec.file_names}, f"hf://{spec.repo_id}@{spec.revision}"


def fetch(name: str, *, force: bool = False, source_override: str | os.PathLike | None = None, progress: bool = True) -> dict[str, Any]:
    """Make ``name`` present and verified in the store; returns its :func:`status`.

    Already present and ``force`` is false: the files are hashed, checked against
    the registry / lock.json and, when no hash was pinned yet (files copied in by
    hand), pinned; nothing downloads. Otherwise the files are fetched from the
    official source, or ``source_override`` (a local file/directory or an
    http(s)/file URL: for a multi-file model the URL is a base that file names
    are appended to), checked, and moved into place.

    Raises :class:`WeightsIntegrityError` on a hash mismatch (nothing is left in
    the store), :class:`WeightsUnavailableError` when the source is unreachable.
    """
    spec = get_spec(name)
    target = weights_dir() / spec.name
    entry = _lock_entry(spec.name)
    if not force and source_override is None and status(spec.name)["present"]:
        hashes = {f: hash_file(target / f) for f in spec.file_names}
        for f, got in hashes.items():
            _check(spec, f, got, entry, f"the copy in {target} differs; `graspsim weights fetch {spec.name} --force` replaces it")
        if entry.get("files") != {f: {"sha256": h["sha256"], "size": h["size"]} for f, h in hashes.items()}:
            _record(spec, hashes, entry.get("source") or "local copy")
        return status(spec.name)
    root = weights_dir()
    root.mkdir(parents=True, exist_ok=True)
    staging = root / f".staging-{spec.name}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        staging.mkdir()
        hashes, source = _fill_staging(spec, staging, source_override, progress)
        hint = "the download was discarded"
        for f, got in hashes.items():
            _check(spec, f, got, entry, hint)
        target.mkdir(parents=True, exist_ok=True)
        for f in spec.file_names:
            (target / f).parent.mkdir(parents=True, exist_ok=True)
            os.replace(staging / f, target / f)
        _record(spec, hashes, source)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return status(spec.name)


# ------------------------------------------------------------------ verify / resolve
def verify(name: str) -> dict[str, Any]:
    """Recompute every file's hashes and compare with the registry / lock.json.

    Returns ``{"name", "ok", "problems": [str], "files": {file: state}}`` where
    state is ``ok``, ``missing``, ``mismatch`` or ``unpinned`` (no known sha256:
    ``graspsim weights fetch NAME`` pins it). ``ok`` is true only when every file
    is present and matches.
    """
    spec = get_spec(name)
    d = weights_dir() / spec.name
    entry = _lock_entry(spec.name)
    states: dict[str, str] = {}
    problems: list[str] = []
    for fs in spec.files:
        p = d / fs.path
        if not p.is_file():
            states[fs.path] = "missing"
            problems.append(f"{p} is missing (`graspsim weights fetch {spec.name}`)")
            continue
        got = hash_file(p)
        try:
            _check(spec, fs.path, got, entry, "")
        except WeightsIntegrityError as exc:
            states[fs.path] = "mismatch"
            problems.append(f"{p}: {exc.algo} mismatch: expected {exc.expected}, got {exc.got} "
                            f"(`graspsim weights fetch {spec.name} --force` replaces it)")
            continue
        if _expected_sha256(spec, fs.path, entry)[0] is None:
            states[fs.path] = "unpinned"
            problems.append(f"{p}: no known sha256 (`graspsim weights fetch {spec.name}` pins it)")
        else:
            states[fs.path] = "ok"
    return {"name": spec.name, "ok": not problems, "problems": problems, "files": states}


def resolve(name_or_path: str | os.PathLike) -> Path:
    """Local path for a weights name or path, for ``load_clip`` / ``load_sam`` / checkpoint loaders.

    A registered name (or its Hugging Face id) whose files are all in the store
    -> its directory (``.pth`` file for ``sam_checkpoint``); an existing local
    path -> itself; otherwise :class:`WeightsUnavailableError` saying what is
    missing, where to put it and which command fetches it.
    """
    text = os.fspath(name_or_path)
    key = ALIASES.get(text, text)
    local = Path(text).expanduser()
    if not isinstance(name_or_path, os.PathLike) and key in REGISTRY:
        st = status(key)
        if st["present"]:
            return Path(st["path"])
        if local.exists():
            return local
        raise _unavailable(REGISTRY[key], f"not in the weights store ({', '.join(st['missing'])} missing)")
    if local.exists():
        return local
    try:
        get_spec(text)
    except UnknownWeightsError as exc:
        raise WeightsUnavailableError(f"no weights at {local}: not an existing path and {exc}") from None
    raise AssertionError("unreachable")  # pragma: no cover
