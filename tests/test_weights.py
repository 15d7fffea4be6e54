"""Weights store: registry, fetch (local HTTP server / --from), integrity, verify, resolve, CLI. All offline."""

from __future__ import annotations

import functools
import hashlib
import http.server
import json
import socket
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from graspsim.weights import registry, store
from graspsim.weights.cli_weights import weights_group
from graspsim.weights.registry import FileSpec, WeightSpec

PAYLOAD = b"fake checkpoint bytes " * 1000
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()

_real_create_connection = socket.create_connection


@pytest.fixture(autouse=True)
def _offline(monkeypatch, tmp_path):
    """No real internet: only loopback connections; the store lives in tmp_path."""

    def guarded(address, *args, **kwargs):
        host = address[0]
        if host not in ("127.0.0.1", "localhost", "::1"):
            raise OSError(f"test tried to reach {host}: network disabled in tests")
        return _real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", guarded)
    monkeypatch.setenv("GRASPSIM_WEIGHTS", str(tmp_path / "store"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture
def server(tmp_path):
    """A local HTTP server on 127.0.0.1 serving tmp_path/www; yields (base_url, www_dir)."""
    www = tmp_path / "www"
    www.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(www))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", www
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _register(monkeypatch, url: str, sha: str | None = PAYLOAD_SHA, name: str = "fake_ckpt") -> WeightSpec:
    spec = WeightSpec(name=name, kind="sam_checkpoint", description="test checkpoint", source="url", url=url,
                      files=(FileSpec("fake.pth", sha256=sha),), size_estimate="22 kB")
    monkeypatch.setitem(registry.REGISTRY, name, spec)
    return spec


def _store_leftovers() -> list[str]:
    root = store.weights_dir()
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


# ------------------------------------------------------------------ registry


def test_registry_complete_and_unique():
    names = [s.name for s in registry._SPECS]
    assert len(names) == len(set(names))
    assert {"clip-vit-base-patch32", "sam-vit-base", "sam_vit_b", "sam_vit_l", "sam_vit_h"} <= set(names)
    assert registry.get_spec("clip-vit-base-patch32").repo_id == "openai/clip-vit-base-patch32"
    assert registry.get_spec("facebook/sam-vit-base").name == "sam-vit-base"  # HF id alias
    b = registry.get_spec("sam_vit_b")
    assert b.url == "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth"
    for spec in registry.REGISTRY.values():
        assert spec.kind in ("clip", "sam", "sam_checkpoint") and spec.licence and spec.size_estimate
        for fs in spec.files:  # no invented hashes: full 64-hex or None
            assert fs.sha256 is None or len(fs.sha256) == 64
    with pytest.raises(registry.UnknownWeightsError, match="sam_vit_b"):
        registry.get_spec("sam_vit_bb")


def test_weights_dir_env(monkeypatch, tmp_path):
    assert store.weights_dir() == (tmp_path / "store").resolve()
    monkeypatch.delenv("GRASPSIM_WEIGHTS")
    monkeypatch.setenv("GRASPSIM_CACHE", str(tmp_path / "cache"))
    assert store.weights_dir() == (tmp_path / "cache" / "weights").resolve()


# ------------------------------------------------------------------ fetch


def test_fetch_from_local_http_server(monkeypatch, server):
    base, www = server
    (www / "fake.pth").write_bytes(PAYLOAD)
    _register(monkeypatch, base + "/fake.pth")
    assert store.status("fake_ckpt")["present"] is False
    st = store.fetch("fake_ckpt", progress=False)
    assert st["present"] and st["verified"] is True
    path = Path(st["path"])
    assert path.read_bytes() == PAYLOAD and path == store.weights_dir() / "fake_ckpt" / "fake.pth"
    lock = json.loads((store.weights_dir() / "lock.json").read_text())
    assert lock["models"]["fake_ckpt"]["files"]["fake.pth"] == {"sha256": PAYLOAD_SHA, "size": len(PAYLOAD)}
    assert store.verify("fake_ckpt")["ok"]
    assert [n for n in _store_leftovers() if n.startswith(".staging")] == []


def test_unknown_hash_is_pinned_on_first_fetch(monkeypatch, server):
    base, www = server
    (www / "fake.pth").write_bytes(PAYLOAD)
    _register(monkeypatch, base + "/fake.pth", sha=None)
    store.fetch("fake_ckpt", progress=False)
    assert store.verify("fake_ckpt")["ok"]  # checked against lock.json
    (www / "fake.pth").write_bytes(b"upstream changed")
    with pytest.raises(store.WeightsIntegrityError, match="pinned in lock.json"):
        store.fetch("fake_ckpt", force=True, progress=False)
    assert Path(store.status("fake_ckpt")["path"]).read_bytes() == PAYLOAD  # old copy kept


def test_corrupted_download_leaves_nothing(monkeypatch, server):
    base, www = server
    (www / "fake.pth").write_bytes(b"not what the hash says")
    _register(monkeypatch, base + "/fake.pth")
    with pytest.raises(store.WeightsIntegrityError) as ei:
        store.fetch("fake_ckpt", progress=False)
    msg = str(ei.value)
    assert "fake.pth" in msg and PAYLOAD_SHA in msg and hashlib.sha256(b"not what the hash says").hexdigest() in msg
    assert _store_leftovers() == []
    assert not (store.weights_dir() / "fake_ckpt").exists()


def test_md5_checked(monkeypatch, server):
    base, www = server
    (www / "fake.pth").write_bytes(PAYLOAD)
    spec = WeightSpec(name="md5_ckpt", kind="sam_checkpoint", description="t", source="url", url=base + "/fake.pth",
                      files=(FileSpec("fake.pth", md5="0" * 32),))
    monkeypatch.setitem(registry.REGISTRY, "md5_ckpt", spec)
    with pytest.raises(store.WeightsIntegrityError, match="md5"):
        store.fetch("md5_ckpt", progress=False)


def test_unreachable_url_is_unavailable(monkeypatch):
    _register(monkeypatch, f"http://127.0.0.1:{_closed_port()}/fake.pth")
    with pytest.raises(store.WeightsUnavailableError) as ei:
        store.fetch("fake_ckpt", progress=False)
    msg = str(ei.value)
    assert "fake_ckpt" in msg and "fake.pth" in msg
    assert str(store.weights_dir() / "fake_ckpt") in msg
    assert "graspsim weights fetch fake_ckpt" in msg
    assert [n for n in _store_leftovers() if n.startswith(".staging")] == []


def test_real_source_blocked_gives_unavailable():
    # sam_vit_b points at dl.fbaipublicfiles.com: the socket guard refuses it, as a machine without network would
    with pytest.raises(store.WeightsUnavailableError, match="graspsim weights fetch sam_vit_b"):
        store.fetch("sam_vit_b", progress=False)


def test_hf_source_unavailable_and_from_local_dir(monkeypatch, tmp_path):
    def no_hub(**kwargs):
        raise ConnectionError("no network")

    monkeypatch.setattr(store, "_snapshot_download", no_hub)
    with pytest.raises(store.WeightsUnavailableError) as ei:
        store.fetch("sam-vit-base", progress=False)
    msg = str(ei.value)
    assert "config.json" in msg and "model.safetensors" in msg and str(store.weights_dir() / "sam-vit-base") in msg
    # a local copy (e.g. save_pretrained on another machine) via --from
    src = tmp_path / "copy"
    src.mkdir()
    for f in registry.get_spec("sam-vit-base").file_names:
        (src / f).write_text(f"contents of {f}")
    st = store.fetch("sam-vit-base", source_override=src, progress=False)
    assert st["present"] and Path(st["path"]) == store.weights_dir() / "sam-vit-base"
    assert store.resolve("facebook/sam-vit-base") == Path(st["path"])


def test_hf_fetch_with_fake_hub(monkeypatch):
    seen = {}

    def fake_hub(repo_id, revision, allow_patterns, local_dir):
        seen.update(repo_id=repo_id, revision=revision, allow=allow_patterns)
        for f in allow_patterns:
            (Path(local_dir) / f).write_text(f)
        return local_dir

    monkeypatch.setattr(store, "_snapshot_download", fake_hub)
    st = store.fetch("clip-vit-base-patch32", progress=False)
    assert seen["repo_id"] == "openai/clip-vit-base-patch32" and "model.safetensors" in seen["allow"]
    assert st["verified"] is True and store.verify("clip-vit-base-patch32")["ok"]


def test_from_local_file(monkeypatch, tmp_path):
    _register(monkeypatch, f"http://127.0.0.1:{_closed_port()}/fake.pth")
    local = tmp_path / "downloaded_elsewhere.pth"
    local.write_bytes(PAYLOAD)
    st = store.fetch("fake_ckpt", source_override=str(local), progress=False)
    assert Path(st["path"]).read_bytes() == PAYLOAD
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"bad")
    with pytest.raises(store.WeightsIntegrityError):
        store.fetch("fake_ckpt", source_override=bad, force=True, progress=False)
    assert Path(st["path"]).read_bytes() == PAYLOAD


def test_copied_in_by_hand_then_fetch_pins(monkeypatch):
    _register(monkeypatch, f"http://127.0.0.1:{_closed_port()}/fake.pth", sha=None)
    d = store.weights_dir() / "fake_ckpt"
    d.mkdir(parents=True)
    (d / "fake.pth").write_bytes(PAYLOAD)
    assert store.status("fake_ckpt")["verified"] is None
    assert store.verify("fake_ckpt")["files"] == {"fake.pth": "unpinned"}
    st = store.fetch("fake_ckpt", progress=False)  # nothing downloads: adopts and pins
    assert st["verified"] is True and store.verify("fake_ckpt")["ok"]


def test_verify_detects_modified_file(monkeypatch, tmp_path):
    _register(monkeypatch, "http://127.0.0.1:1/unused")
    local = tmp_path / "f.pth"
    local.write_bytes(PAYLOAD)
    st = store.fetch("fake_ckpt", source_override=local, progress=False)
    Path(st["path"]).write_bytes(PAYLOAD[:-1] + b"X")  # same size, different bytes
    res = store.verify("fake_ckpt")
    assert not res["ok"] and res["files"] == {"fake.pth": "mismatch"}
    assert "graspsim weights fetch fake_ckpt --force" in res["problems"][0]


def test_resolve(monkeypatch, tmp_path):
    _register(monkeypatch, "http://127.0.0.1:1/unused")
    with pytest.raises(store.WeightsUnavailableError, match="graspsim weights fetch fake_ckpt"):
        store.resolve("fake_ckpt")
    local = tmp_path / "f.pth"
    local.write_bytes(PAYLOAD)
    st = store.fetch("fake_ckpt", source_override=local, progress=False)
    assert store.resolve("fake_ckpt") == Path(st["path"])
    assert store.resolve(str(local)) == local and store.resolve(local) == local
    with pytest.raises(store.WeightsUnavailableError, match="known: "):
        store.resolve(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError):  # callers catching FileNotFoundError keep working
        store.resolve("sam_vit_h")


# ------------------------------------------------------------------ CLI


def test_cli_list_fetch_verify(monkeypatch, server):
    base, www = server
    (www / "fake.pth").write_bytes(PAYLOAD)
    _register(monkeypatch, base + "/fake.pth")
    runner = CliRunner()
    r = runner.invoke(weights_group, ["list"])
    assert r.exit_code == 0, r.output
    assert "sam_vit_h" in r.output and "clip-vit-base-patch32" in r.output and "missing" in r.output
    r = runner.invoke(weights_group, ["fetch", "fake_ckpt", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "present" in r.output
    r = runner.invoke(weights_group, ["list"])
    line = next(ln for ln in r.output.splitlines() if ln.startswith("fake_ckpt"))
    assert "present" in line and "yes" in line
    r = runner.invoke(weights_group, ["verify", "fake_ckpt"])
    assert r.exit_code == 0 and "ok" in r.output
    r = runner.invoke(weights_group, ["verify"])  # every present model
    assert r.exit_code == 0 and "fake_ckpt: ok" in r.output
    (store.weights_dir() / "fake_ckpt" / "fake.pth").write_bytes(b"tampered")
    r = runner.invoke(weights_group, ["verify", "fake_ckpt"])
    assert r.exit_code == 1 and "FAILED" in r.output and "mismatch" in r.output


def test_cli_fetch_from_and_errors(monkeypatch, tmp_path):
    _register(monkeypatch, f"http://127.0.0.1:{_closed_port()}/fake.pth")
    runner = CliRunner()
    r = runner.invoke(weights_group, ["fetch", "nosuch"])
    assert r.exit_code == 2 and "unknown weights 'nosuch'" in r.output and "sam_vit_b" in r.output
    assert "Traceback" not in r.output
    r = runner.invoke(weights_group, ["verify", "nosuch"])
    assert r.exit_code == 2
    r = runner.invoke(weights_group, ["fetch", "fake_ckpt", "--no-progress"])
    assert r.exit_code == 2 and "graspsim weights fetch fake_ckpt" in r.output and "Traceback" not in r.output
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"bad")
    r = runner.invoke(weights_group, ["fetch", "fake_ckpt", "--from", str(bad), "--no-progress"])
    assert r.exit_code == 2 and "sha256" in r.output
    good = tmp_path / "good.pth"
    good.write_bytes(PAYLOAD)
    r = runner.invoke(weights_group, ["fetch", "fake_ckpt", "--from", str(good), "--no-progress"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(weights_group, ["fetch", "fake_ckpt", "--from", good.as_uri(), "--force", "--no-progress"])
    assert r.exit_code == 0, r.output
