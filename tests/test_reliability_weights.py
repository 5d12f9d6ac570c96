"""Reliability checklist, weights cases W-01 … W-10 (../shared/design/RELIABILITY.md).

Fixtures are built here: tiny state dicts, pickles with a ``__reduce__`` that would touch a
sentinel, damaged safetensors, and a download server on 127.0.0.1 in a thread. The only
network these tests use is 127.0.0.1; every other connect fails the test.

Process-level checks run the CLI in a child. Where a test needs a registry entry that points
at the local server, the child is started through ``BOOT``: it adds the test's WeightSpec to
``painterly.weights.REGISTRY`` (the real registry URLs are never changed), optionally makes
every ``socket.connect`` fail (recording it) or makes the cache folder read-only, then runs
``painterly.cli.main`` exactly as ``python -m painterly`` does.
"""
from __future__ import annotations

import collections
import errno
import hashlib
import json
import logging
import os
import pickle
import re
import resource
import socket
import struct
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from painterly import features as F
from painterly import weights as W
from painterly.errors import DownloadError, OutputError, WeightsError
from painterly.features import NetSpec, build_extractor
from painterly.nets import vgg_features

SRC = Path(W.__file__).resolve().parent


# ------------------------------------------------------------------ fixtures and helpers

def _tiny_state(prefix: str = "features.") -> dict[str, torch.Tensor]:
    """A VGG16-shaped state dict at 1/16 width: the real key names, a few KB."""
    torch.manual_seed(0)
    return {f"{prefix}{k}": v.clone() for k, v in vgg_features("vgg16", width=1 / 16)
            .state_dict().items()}


def _tiny_expected() -> dict[str, torch.Size]:
    return {k: v.shape for k, v in _tiny_state().items()}


class _Touch:
    """Unpickling this calls ``Path.touch(sentinel)``: harmless, and proof of execution."""

    def __init__(self, sentinel: Path):
        self.sentinel = sentinel

    def __reduce__(self):
        return (Path.touch, (self.sentinel,))


def _evil_pth(path: Path, sentinel: Path, protocol: int = 0) -> Path:
    payload = {"features.0.weight": _Touch(sentinel), "features.0.bias": torch.zeros(4)}
    if protocol:  # a plain (pre-zip) pickle stream
        path.write_bytes(pickle.dumps(payload, protocol=protocol))
    else:
        torch.save(payload, path)
    assert not sentinel.exists()
    return path


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _spec(url: str, data: bytes | None = None, filename: str | None = None,
          digest: str | None = None, name: str = "test-weights") -> W.WeightSpec:
    """A registry-like spec for the local server, pinned to the full digest of ``data``."""
    filename = filename or url.rsplit("/", 1)[-1]
    digest = digest if digest is not None else _sha(data)
    return W.WeightSpec(name, "vgg16", W.CAFFE_BGR, url, (W.WeightFile(filename, digest),),
                        "test only")


def _debris(*folders: Path) -> list[Path]:
    """Files that must never be left behind: partials, temps, locks and empty files."""
    bad = []
    for folder in folders:
        if not folder.exists():
            continue
        for p in folder.rglob("*"):
            if p.is_file() and (p.name.endswith((".partial", ".tmp", ".lock"))
                                or p.stat().st_size == 0):
                bad.append(p)
    return bad


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): _sha(p.read_bytes())
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture
def connects(monkeypatch):
    """Record every outgoing connect; anything but 127.0.0.1 fails the test at once.

    Tests that must make no connection at all assert that the list stays empty.
    """
    seen: list = []
    real_connect = socket.socket.connect

    def connect(self, address, *args):
        seen.append(address)
        host = address[0] if isinstance(address, tuple) else address
        if host != "127.0.0.1":
            pytest.fail(f"network connect to {address!r} attempted")
        return real_connect(self, address, *args)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return seen


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # keep pytest's output clean
        pass

    def do_GET(self):  # noqa: N802 - http.server's naming
        srv = self.server.owner
        name = self.path.lstrip("/")
        srv.hits[name] += 1
        if name not in srv.routes:
            self.send_error(404)
            return
        data, mode = srv.routes[name]
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if mode == "ok":
            self.wfile.write(data)
        elif mode == "slow":  # about 1.5 s in 10 pieces: makes concurrent downloads overlap
            step = max(1, len(data) // 10)
            for i in range(0, len(data), step):
                self.wfile.write(data[i:i + step])
                self.wfile.flush()
                time.sleep(0.15)
        elif mode == "truncate":  # promises len(data), sends half, closes cleanly
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            self.close_connection = True
        elif mode == "reset":  # sends half, then a TCP reset
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            time.sleep(0.05)
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
            self.connection.close()
            self.close_connection = True


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # resets are on purpose
        pass


class LocalServer:
    def __init__(self):
        self.routes: dict[str, tuple[bytes, str]] = {}
        self.hits: collections.Counter = collections.Counter()
        self.httpd = _Server(("127.0.0.1", 0), _Handler)
        self.httpd.owner = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, name: str, data: bytes, mode: str = "ok") -> str:
        self.routes[name] = (data, mode)
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def server():
    srv = LocalServer()
    yield srv
    srv.close()


@pytest.fixture
def online(monkeypatch):
    """Allow downloads (conftest makes every test offline by default)."""
    monkeypatch.delenv("PAINTERLY_OFFLINE", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)


def _blob(n: int = 200_000, seed: int = 1) -> bytes:
    return torch.randint(0, 256, (n,), dtype=torch.uint8,
                         generator=torch.Generator().manual_seed(seed)).numpy().tobytes()


# The child process: optional test specs, connect recorder, read-only cache; then the CLI.
BOOT = r"""
import errno, json, os, socket, sys
cfg = json.loads(os.environ.pop("PAINTERLY_TEST_BOOT", "{}"))
if cfg.get("connect_log"):
    def connect(self, address, *args):
        with open(cfg["connect_log"], "a") as f:
            f.write(repr(address) + "\n")
        if not (cfg.get("allow_local") and isinstance(address, tuple)
                and address[0] == "127.0.0.1"):
            raise OSError(errno.ENETUNREACH, "network forbidden by the test")
        return real_connect(self, address, *args)
    real_connect = socket.socket.connect
    socket.socket.connect = connect
if cfg.get("readonly"):  # simulate a read-only mount (root ignores chmod)
    ro = os.path.realpath(cfg["readonly"])
    real_open, real_mkdir = os.open, os.mkdir
    def _inside(p):
        return os.path.realpath(os.fsdecode(p)).startswith(ro)
    def ro_open(path, flags, *args, **kw):
        if flags & (os.O_WRONLY | os.O_RDWR | os.O_CREAT) and _inside(path):
            raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(path))
        return real_open(path, flags, *args, **kw)
    def ro_mkdir(path, *args, **kw):
        if _inside(path):
            raise OSError(errno.EROFS, "Read-only file system", os.fsdecode(path))
        return real_mkdir(path, *args, **kw)
    os.open, os.mkdir = ro_open, ro_mkdir
from painterly import weights as W
for s in cfg.get("specs", []):
    W.REGISTRY[s["name"]] = W.WeightSpec(s["name"], "vgg16", W.CAFFE_BGR, s["url"],
                                         (W.WeightFile(s["filename"], s["sha256"]),), "test")
from painterly.cli import main
sys.exit(main(sys.argv[1:]))
"""


def _cli(*args: str, boot: dict | None = None, env: dict | None = None, cwd: Path | None = None,
         timeout: float = 180, wait: bool = True):
    """Run painterly in a child: ``python -m painterly`` or, with ``boot``, through BOOT."""
    child_env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    child_env.update(env or {})
    child_env = {k: v for k, v in child_env.items() if v is not None}
    if boot is not None:
        child_env["PAINTERLY_TEST_BOOT"] = json.dumps(boot)
        cmd = [sys.executable, "-c", BOOT, *args]
    else:
        cmd = [sys.executable, "-m", "painterly", *args]
    if not wait:
        return subprocess.Popen(cmd, env=child_env, cwd=cwd, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    return subprocess.run(cmd, env=child_env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout)


def _boot_spec(spec: W.WeightSpec) -> dict:
    wf = spec.download_file
    return {"name": spec.name, "url": spec.url, "filename": wf.filename, "sha256": wf.sha256}


def _assert_error(proc, code: int, *phrases: str) -> str:
    err = proc.stderr
    assert proc.returncode == code, (proc.returncode, err)
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("painterly: error:")]
    assert len(lines) == 1, err
    for phrase in phrases:
        assert phrase in lines[0], (phrase, lines[0])
    assert "; " in lines[0]  # what, then a hint
    return lines[0]


def _pictures(folder: Path) -> tuple[Path, Path]:
    content, style = folder / "content.png", folder / "style.png"
    Image.new("RGB", (64, 48), (200, 120, 40)).save(content)
    Image.effect_noise((64, 64), 60).convert("RGB").save(style)
    return content, style


def _style_args(folder: Path, weights: str) -> list[str]:
    content, style = _pictures(folder)
    return ["style", str(content), str(style), "-o", str(folder / "out.png"), "--model", "vgg16",
            "--weights", weights, "--size", "32", "--min-size", "32", "--iterations", "1",
            "--device", "cpu", "-q"]


# ------------------------------------------------------------------ W-01 pickled code


@pytest.mark.filterwarnings("ignore:Detected pickle protocol")
@pytest.mark.parametrize("protocol", [0, 2, pickle.HIGHEST_PROTOCOL],
                         ids=["torch-zip", "pickle-p2", "pickle-highest"])
def test_w01_reduce_payload_is_refused_and_never_runs(tmp_path, protocol):
    sentinel = tmp_path / "SENTINEL"
    path = _evil_pth(tmp_path / "evil.pth", sentinel, protocol)
    with pytest.raises(WeightsError) as err:
        W.load_state_dict(path, _tiny_expected())
    assert err.value.exit_code == 5
    assert "contains executable Python objects; refusing to load" in str(err.value)
    assert "convert it to .safetensors" in str(err.value)
    assert not sentinel.exists()


def test_w01_cli_weights_file_with_payload_exits_5(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    path = _evil_pth(tmp_path / "evil.pth", sentinel)
    proc = _cli(*_style_args(tmp_path, str(path)))
    _assert_error(proc, 5, "contains executable Python objects", ".safetensors")
    assert not sentinel.exists()
    assert not (tmp_path / "out.png").exists()


def test_w01_cli_payload_delivered_by_download_is_refused(tmp_path, server, monkeypatch):
    """The URL path: the server delivers the pickle (its hash pinned, so the download itself
    succeeds); loading it is still refused."""
    monkeypatch.delenv("PAINTERLY_OFFLINE")
    sentinel = tmp_path / "SENTINEL"
    data = _evil_pth(tmp_path / "evil-src.pth", sentinel).read_bytes()
    spec = _spec(server.serve("evil-weights.pth", data), data, name="test-evil")
    proc = _cli(*_style_args(tmp_path, "test-evil"),
                boot={"specs": [_boot_spec(spec)], "connect_log": str(tmp_path / "connects"),
                      "allow_local": True})
    _assert_error(proc, 5, "contains executable Python objects")
    assert server.hits["evil-weights.pth"] == 1
    assert not sentinel.exists()
    assert not (tmp_path / "out.png").exists()
    assert _debris(tmp_path / "cache") == []


# ------------------------------------------------------------------ W-02 weights_only always


def test_w02_force_no_weights_only_env_cannot_weaken_loading(tmp_path, monkeypatch):
    """torch 2.13 lets TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD override only a *missing*
    weights_only argument; painterly always passes weights_only=True explicitly, so the env
    var changes nothing. The spy proves it, and that there is no retry after the error."""
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    calls = []
    real_load = torch.load

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    def hub_spy(*args, **kwargs):
        assert kwargs.get("weights_only") is True, "load_state_dict_from_url without weights_only"
        raise AssertionError("painterly should not need torch.hub.load_state_dict_from_url")

    monkeypatch.setattr(torch, "load", spy)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", hub_spy)
    sentinel = tmp_path / "SENTINEL"
    evil = _evil_pth(tmp_path / "evil.pth", sentinel)
    with pytest.raises(WeightsError, match="executable Python objects"):
        W.load_state_dict(evil, _tiny_expected())
    assert not sentinel.exists()
    assert len(calls) == 1, "a second torch.load call means a retry after UnpicklingError"
    good = tmp_path / "good.pth"
    torch.save(_tiny_state(), good)
    assert set(W.load_state_dict(good, _tiny_expected())) == set(_tiny_expected())
    assert len(calls) == 2
    assert all(c.get("weights_only") is True for c in calls), calls


def test_w02_cli_with_force_no_weights_only_env_still_refuses(tmp_path):
    sentinel = tmp_path / "SENTINEL"
    path = _evil_pth(tmp_path / "evil.pth", sentinel)
    proc = _cli(*_style_args(tmp_path, str(path)), env={"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"})
    _assert_error(proc, 5, "contains executable Python objects")
    assert not sentinel.exists()


def test_w02_source_never_weakens_weights_only_or_strict():
    for name in ("weights.py", "features.py"):
        text = (SRC / name).read_text()
        assert not re.search(r"weights_only\s*=\s*False", text), name
        assert not re.search(r"strict\s*=\s*False", text), name
        assert "pickle.load(" not in text and "torch.hub.load_state_dict_from_url" not in text
    assert "torch.load(" not in (SRC / "features.py").read_text()


# ------------------------------------------------------------------ W-03 corrupt safetensors


def _corrupt_safetensors(path: Path, kind: str) -> Path:
    if kind == "header-2^40":
        path.write_bytes(struct.pack("<Q", 2 ** 40) + b'{"a":')
    elif kind == "invalid-json":
        path.write_bytes(struct.pack("<Q", 12) + b"{not json!!}")
    elif kind == "offsets-past-eof":
        save_file(_tiny_state(), str(path))
        data = path.read_bytes()
        path.write_bytes(data[: len(data) - 4096])
    elif kind == "shorter-than-8":
        path.write_bytes(b"\x01\x02")
    return path


@pytest.mark.parametrize("kind", ["header-2^40", "invalid-json", "offsets-past-eof",
                                  "shorter-than-8"])
def test_w03_corrupt_safetensors_is_exit_5_without_memory_error(tmp_path, kind):
    path = _corrupt_safetensors(tmp_path / "w.safetensors", kind)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(WeightsError) as err:
        W.load_state_dict(path, _tiny_expected())
    grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert err.value.exit_code == 5
    assert str(err.value).startswith(f"corrupt safetensors file {path} (header")
    assert grew_mb < 100


def test_w03_valid_safetensors_loads(tmp_path):
    save_file(_tiny_state(), str(tmp_path / "ok.safetensors"))
    loaded = W.load_state_dict(tmp_path / "ok.safetensors", _tiny_expected())
    assert torch.equal(loaded["features.0.weight"], _tiny_state()["features.0.weight"])


def test_w03_cli_huge_header_exits_5(tmp_path):
    path = _corrupt_safetensors(tmp_path / "big.safetensors", "header-2^40")
    proc = _cli(*_style_args(tmp_path, str(path)))
    _assert_error(proc, 5, f"corrupt safetensors file {path} (header")
    assert "MemoryError" not in proc.stderr


# ------------------------------------------------------------------ W-04 hash mismatch


@pytest.mark.parametrize("filename", ["vgg-abcdef12.pth", "plain-weights.pth"],
                         ids=["hash-in-name", "no-hash-in-name"])
def test_w04_sha256_mismatch_publishes_nothing(tmp_path, server, online, connects, filename):
    good, served = _blob(seed=1), _blob(seed=2)
    spec = _spec(server.serve(filename, served), good)  # pinned to bytes the server won't send
    with pytest.raises(DownloadError) as err:
        W.resolve(spec)
    text = str(err.value)
    assert err.value.exit_code == 6  # README: 6 = download failed or its hash did not match
    assert text.startswith(f"sha256 mismatch for {spec.url}: expected {_sha(good)}")
    assert f"got {_sha(served)}" in text
    assert "get the file yourself and pass `weights` FILE" in text  # the hint reads as one
    cache = tmp_path / "cache"
    assert not (cache / filename).exists()
    assert _debris(cache) == []
    assert server.hits[filename] == 1


def test_w04_matching_download_verifies_and_lands_atomically(tmp_path, server, online, connects):
    data = _blob()
    spec = _spec(server.serve("plain-weights.pth", data), data)
    path = W.resolve(spec)
    assert path == tmp_path / "cache" / "plain-weights.pth"
    assert _sha(path.read_bytes()) == _sha(data)
    assert _debris(tmp_path / "cache") == []
    assert W.resolve(spec) == path and server.hits["plain-weights.pth"] == 1  # cached now


def test_w04_registry_pins_digests_and_refuses_unpinned_downloads(tmp_path, online, connects):
    for spec in W.REGISTRY.values():
        digest = spec.download_file.sha256
        assert re.fullmatch(r"[0-9a-f]{8}|[0-9a-f]{64}", digest), spec.name
        for wf in spec.files:  # where a full digest is known it is the full 64 hex
            assert wf.sha256 == "" or re.fullmatch(r"[0-9a-f]{8}|[0-9a-f]{64}", wf.sha256)
    assert len(W.get_spec("vgg16-caffe").files[1].sha256) == 64
    unpinned = _spec("http://127.0.0.1:9/x.pth", digest="")
    with pytest.raises(WeightsError, match="no pinned sha256"):
        W.download(unpinned)
    assert connects == []


def test_w04_cli_hash_mismatch_exit_6(tmp_path, server):
    spec = _spec(server.serve("plain.pth", _blob(seed=3)), _blob(seed=4), name="test-w")
    proc = _cli("weights", "download", "test-w",
                env={"PAINTERLY_OFFLINE": None},
                boot={"specs": [_boot_spec(spec)]})
    _assert_error(proc, 6, "sha256 mismatch for", "expected", "got")
    assert not (tmp_path / "cache" / "plain.pth").exists()
    assert _debris(tmp_path / "cache") == []


# ------------------------------------------------------------------ W-05 interrupted download


@pytest.mark.parametrize("mode", ["truncate", "reset"])
def test_w05_interrupted_download_then_rerun_succeeds(tmp_path, server, online, connects, mode):
    data = _blob(400_000)
    spec = _spec(server.serve("w.pth", data, mode), data)
    with pytest.raises(DownloadError) as err:
        W.resolve(spec)
    assert err.value.exit_code == 6
    assert "download interrupted (received" in str(err.value)
    if mode == "truncate":
        assert "received 50%" in str(err.value)
    cache = tmp_path / "cache"
    assert not (cache / "w.pth").exists()
    assert _debris(cache) == [] and list(cache.iterdir()) == []
    server.serve("w.pth", data, "ok")  # the healthy server
    path = W.resolve(spec)
    assert _sha(path.read_bytes()) == _sha(data)
    assert _debris(cache) == []


def test_w05_cli_truncated_download_exit_6(tmp_path, server):
    data = _blob(300_000)
    spec = _spec(server.serve("w.pth", data, "truncate"), data, name="test-w")
    proc = _cli("weights", "download", "test-w", env={"PAINTERLY_OFFLINE": None},
                boot={"specs": [_boot_spec(spec)]})
    _assert_error(proc, 6, "download interrupted (received 50%")
    assert not (tmp_path / "cache" / "w.pth").exists()
    assert _debris(tmp_path / "cache") == []


def test_w05_stale_partials_of_a_killed_download_are_cleaned(tmp_path, server, online):
    data = _blob()
    cache = tmp_path / "cache"
    cache.mkdir()
    stale = cache / ".w.pth.abc123.partial"  # what a SIGKILLed download leaves
    stale.write_bytes(b"half")
    spec = _spec(server.serve("w.pth", data), data)
    W.resolve(spec)
    assert not stale.exists() and _debris(cache) == []


# ------------------------------------------------------------------ W-06 corrupt cached file


@pytest.mark.parametrize("damage", ["truncated", "bit-flipped"])
def test_w06_corrupt_cached_file_detected_before_loading(tmp_path, monkeypatch, damage):
    data = _blob()
    spec = _spec("http://127.0.0.1:9/w.pth", data)
    cache = tmp_path / "cache"
    cache.mkdir()
    bad = bytearray(data[: len(data) // 2] if damage == "truncated" else data)
    if damage == "bit-flipped":
        bad[len(bad) // 2] ^= 0x01
    (cache / "w.pth").write_bytes(bytes(bad))
    monkeypatch.setattr(W, "_read_tensors", lambda p: pytest.fail("loaded a corrupt file"))
    with pytest.raises(WeightsError) as err:
        W.resolve(spec)  # offline (conftest)
    text = str(err.value)
    assert err.value.exit_code == 5
    assert text.startswith(f"cached weights corrupt: {cache / 'w.pth'}")
    assert "delete it or run `painterly weights download test-weights`" in text
    assert (cache / "w.pth").read_bytes() == bytes(bad)  # offline: left for the user to see


def test_w06_corrupt_file_in_weights_dir_is_never_replaced(tmp_path, monkeypatch, server,
                                                           online, connects):
    """PAINTERLY_WEIGHTS_DIR is the user's folder: a corrupt copy there is an error even
    online, and painterly neither downloads over it nor falls back silently."""
    data = _blob()
    spec = _spec(server.serve("w.pth", data), data)
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "w.pth").write_bytes(data[:-1])
    monkeypatch.setenv("PAINTERLY_WEIGHTS_DIR", str(folder))
    with pytest.raises(WeightsError) as err:
        W.resolve(spec)
    assert err.value.exit_code == 5
    assert str(err.value).startswith(f"weights file {folder / 'w.pth'} is corrupt (sha256 ")
    assert "PAINTERLY_WEIGHTS_DIR" in str(err.value)
    assert (folder / "w.pth").read_bytes() == data[:-1] and server.hits["w.pth"] == 0


def test_w06_online_corrupt_cache_is_downloaded_again(tmp_path, server, online, connects):
    data = _blob()
    spec = _spec(server.serve("w.pth", data), data)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "w.pth").write_bytes(data[:1000])
    path = W.resolve(spec)
    assert _sha(path.read_bytes()) == _sha(data)
    assert server.hits["w.pth"] == 1 and _debris(cache) == []


def test_w06_cli_corrupt_registry_file_in_cache_exit_5(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "vgg16-397923af.pth").write_bytes(b"PK\x03\x04 not a whole zip")
    proc = _cli(*_style_args(tmp_path, "vgg16-torchvision"))
    _assert_error(proc, 5, f"cached weights corrupt: {cache / 'vgg16-397923af.pth'}",
                  "painterly weights download vgg16-torchvision")
    assert "PytorchStreamReader" not in proc.stderr


def test_w06_damaged_pth_without_digest_is_friendly(tmp_path):
    """A damaged file that no digest covers (a user's own --weights file) still gives a
    one-line exit 5, never torch's raw zip-reader error or an internal error."""
    torch.save(_tiny_state(), tmp_path / "good.pth")
    data = (tmp_path / "good.pth").read_bytes()
    for name, blob in [("trunc.pth", data[: len(data) // 2]), ("junk.pth", b"hello world!"),
                       ("empty.pth", b"")]:
        (tmp_path / name).write_bytes(blob)
        with pytest.raises(WeightsError, match="damaged|cannot read") as err:
            W.load_state_dict(tmp_path / name, _tiny_expected())
        assert err.value.exit_code == 5 and "\n" not in str(err.value)


# ------------------------------------------------------------------ W-07 concurrent downloads


def test_w07_two_processes_download_once_and_never_expose_a_partial(tmp_path, server):
    data = _blob(600_000)
    spec = _spec(server.serve("w.pth", data, "slow"), data, name="test-w")
    target = tmp_path / "cache" / "w.pth"
    seen_bad, stop = [], threading.Event()

    def poll():  # a reader that must only ever see nothing or the whole verified file
        while not stop.is_set():
            try:
                blob = target.read_bytes()
            except FileNotFoundError:
                continue
            if _sha(blob) != _sha(data):
                seen_bad.append(len(blob))

    reader = threading.Thread(target=poll, daemon=True)
    reader.start()
    boot = {"specs": [_boot_spec(spec)]}
    procs = [_cli("weights", "download", "test-w", env={"PAINTERLY_OFFLINE": None}, boot=boot,
                  wait=False) for _ in range(2)]
    outs = [p.communicate(timeout=180) for p in procs]
    stop.set()
    reader.join()
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert out.strip() == str(target)
    assert seen_bad == []
    assert _sha(target.read_bytes()) == _sha(data)
    # The folder lock (flock on the cache folder itself) makes the second process wait and
    # reuse the first one's file; without flock each would publish by atomic rename.
    assert server.hits["w.pth"] == 1
    assert _debris(tmp_path / "cache") == []


# ------------------------------------------------------------------ W-08 offline


@pytest.mark.parametrize("var", ["PAINTERLY_OFFLINE", "HF_HUB_OFFLINE"])
def test_w08_offline_empty_cache_fails_fast_without_connecting(tmp_path, monkeypatch, connects,
                                                               var):
    monkeypatch.delenv("PAINTERLY_OFFLINE")
    monkeypatch.setenv(var, "1")
    spec = W.get_spec("vgg16-caffe")
    start = time.monotonic()
    with pytest.raises(WeightsError) as err:
        W.resolve(spec)
    assert time.monotonic() - start < 2
    text = str(err.value)
    # Exit 5 ("weights missing"), as the README documents; 6 is for failed downloads.
    assert err.value.exit_code == 5
    assert text.startswith(f"offline and weights 'vgg16-caffe' not cached: expected "
                           f"{tmp_path / 'cache' / 'vgg16-00b39a1b.pth'} (from {spec.url})")
    assert "pass `weights` FILE" in text  # --weights FILE on the command line
    assert connects == []


def test_w08_offline_switch_explicit_zero_beats_hf_hub_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PAINTERLY_OFFLINE", "0")
    assert not W.is_offline()
    monkeypatch.delenv("PAINTERLY_OFFLINE")
    assert W.is_offline()


def test_w08_cli_hf_hub_offline_set_before_start_fails_fast_no_connect(tmp_path):
    log_file = tmp_path / "connects"
    start = time.monotonic()
    proc = _cli("weights", "download", "vgg16-caffe",
                env={"PAINTERLY_OFFLINE": None, "HF_HUB_OFFLINE": "1"},
                boot={"connect_log": str(log_file)})
    elapsed = time.monotonic() - start
    _assert_error(proc, 5, "offline and weights 'vgg16-caffe' not cached", "--weights FILE")
    assert not log_file.exists(), log_file.read_text()
    assert elapsed < 60  # the child's own time is torch's import; resolve itself is < 2 s above


def test_w08_populated_cache_works_with_zero_connects(tmp_path, monkeypatch, connects):
    monkeypatch.delenv("PAINTERLY_OFFLINE")  # online, yet nothing may be fetched
    data = _blob()
    spec = _spec("https://example.invalid/w.pth", data)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "w.pth").write_bytes(data)
    assert W.resolve(spec) == tmp_path / "cache" / "w.pth"
    assert connects == []


def test_w08_real_weights_from_cache_build_the_net_offline(tmp_path, monkeypatch, connects,
                                                           real_weights):
    monkeypatch.delenv("PAINTERLY_WEIGHTS_DIR")
    (tmp_path / "cache").mkdir()
    name = "vgg16-caffe-features.safetensors"
    (tmp_path / "cache" / name).symlink_to(real_weights / name)
    ext = build_extractor(NetSpec("vgg16"), ("relu1_1",), torch.device("cpu"), "fp32")
    assert ext(torch.rand(1, 3, 32, 32))["relu1_1"].shape[1] == 64
    assert connects == []


# ------------------------------------------------------------------ W-09 cache location


def test_w09_painterly_cache_is_used_and_logged(tmp_path, server, online, connects, caplog):
    data = _blob()
    spec = _spec(server.serve("w.pth", data), data)
    with caplog.at_level(logging.INFO, logger="painterly.weights"):
        path = W.resolve(spec)
    assert path == tmp_path / "cache" / "w.pth"
    assert any("from PAINTERLY_CACHE" in r.getMessage() and str(path) in r.getMessage()
               for r in caplog.records)


def test_w09_torch_home_is_used_and_logged(tmp_path, server, online, connects, monkeypatch,
                                           caplog):
    monkeypatch.delenv("PAINTERLY_CACHE")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "th"))
    assert W.cache_dir() == tmp_path / "th" / "hub" / "checkpoints"
    data = _blob()
    spec = _spec(server.serve("w.pth", data), data)
    with caplog.at_level(logging.INFO, logger="painterly.weights"):
        path = W.resolve(spec)
    assert path == tmp_path / "th" / "hub" / "checkpoints" / "w.pth"
    assert any("from TORCH_HOME" in r.getMessage() for r in caplog.records)
    assert not (tmp_path / "cache").exists()


def test_w09_read_only_cache_exit_7_before_any_connect(tmp_path, online, connects, monkeypatch):
    cache = tmp_path / "cache"
    cache.mkdir()
    before = _snapshot(tmp_path)
    real_mkstemp = W.tempfile.mkstemp

    def read_only(*args, dir=None, **kwargs):  # noqa: A002 - mkstemp's name
        if dir is not None and Path(dir) == cache:
            raise OSError(errno.EROFS, "Read-only file system")
        return real_mkstemp(*args, dir=dir, **kwargs)

    monkeypatch.setattr(W.tempfile, "mkstemp", read_only)
    data = _blob()
    spec = _spec("http://127.0.0.1:9/w.pth", data)
    with pytest.raises(OutputError) as err:
        W.resolve(spec)
    assert err.value.exit_code == 7
    assert str(err.value).startswith(f"cannot write cache dir {cache}: read-only")
    assert connects == []  # decided before the network
    assert _snapshot(tmp_path) == before


def test_w09_cli_read_only_cache_exit_7(tmp_path, server):
    data = _blob()
    spec = _spec(server.serve("w.pth", data), data, name="test-w")
    cache = tmp_path / "cache"
    cache.mkdir()
    proc = _cli("weights", "download", "test-w", env={"PAINTERLY_OFFLINE": None},
                boot={"specs": [_boot_spec(spec)], "readonly": str(cache)})
    _assert_error(proc, 7, f"cannot write cache dir {cache}: read-only")
    assert server.hits["w.pth"] == 0
    assert list(cache.iterdir()) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0,
                    reason="root ignores directory permissions; see the simulated test above")
def test_w09_cli_chmod_read_only_cache_exit_7(tmp_path, server):
    data = _blob()
    spec = _spec(server.serve("w.pth", data), data, name="test-w")
    cache = tmp_path / "cache"
    cache.mkdir()
    cache.chmod(0o555)
    try:
        proc = _cli("weights", "download", "test-w", env={"PAINTERLY_OFFLINE": None},
                    boot={"specs": [_boot_spec(spec)]})
    finally:
        cache.chmod(0o755)
    _assert_error(proc, 7, f"cannot write cache dir {cache}")
    assert list(cache.iterdir()) == []


def test_w09_local_weights_file_never_touches_the_network(tmp_path, online, connects):
    save_file(_tiny_state(), str(tmp_path / "mine.safetensors"))
    path = W.resolve(W.get_spec("vgg16-caffe"), explicit=tmp_path / "mine.safetensors")
    assert set(W.load_state_dict(path, _tiny_expected())) == set(_tiny_expected())
    assert connects == []
    assert not (tmp_path / "cache").exists()


def test_w09_real_weights_file_builds_net_online_without_network(tmp_path, monkeypatch,
                                                                online, connects, real_weights):
    monkeypatch.delenv("PAINTERLY_WEIGHTS_DIR")
    path = real_weights / "vgg16-caffe-features.safetensors"
    ext = build_extractor(NetSpec("vgg16", weights=str(path)), ("relu1_1",),
                          torch.device("cpu"), "fp32")
    assert ext(torch.rand(1, 3, 32, 32))["relu1_1"].shape[1] == 64
    assert connects == [] and not (tmp_path / "cache").exists()


# ------------------------------------------------------------------ W-10 state-dict problems


def test_w10_missing_keys_listed_with_shapes(tmp_path):
    state = _tiny_state()
    for k in list(state)[-8:]:
        del state[k]
    save_file(state, str(tmp_path / "w.safetensors"))
    with pytest.raises(WeightsError) as err:
        W.load_state_dict(tmp_path / "w.safetensors", _tiny_expected())
    text = str(err.value)
    assert err.value.exit_code == 5
    assert "missing 8 (features.21.bias [32], features.21.weight [32, 32, 3, 3]" in text
    assert "and 3 more" in text
    assert text.split("; pick")[0].count("features.") == 5  # up to five keys named
    assert "pick the `model`" in text  # --model on the command line


def test_w10_unexpected_keys_listed(tmp_path):
    state = dict(_tiny_state(), **{"features.31.weight": torch.zeros(2, 2)})
    save_file(state, str(tmp_path / "w.safetensors"))
    with pytest.raises(WeightsError, match=r"unexpected 1 \(features\.31\.weight \[2, 2\]\)"):
        W.load_state_dict(tmp_path / "w.safetensors", _tiny_expected())


def test_w10_shape_mismatch_conv1_with_4_channels(tmp_path):
    state = _tiny_state()
    state["features.0.weight"] = torch.zeros(4, 4, 3, 3)
    torch.save(state, tmp_path / "w.pth")
    with pytest.raises(WeightsError) as err:
        W.load_state_dict(tmp_path / "w.pth", _tiny_expected())
    assert ("features.0.weight has shape [4, 4, 3, 3], expected [4, 3, 3, 3]"
            in str(err.value))


def test_w10_module_prefix_is_stripped_with_a_log_line(tmp_path, caplog):
    torch.save({"state_dict": _tiny_state("module.features.")}, tmp_path / "dp.pth")
    with caplog.at_level(logging.INFO, logger="painterly.weights"):
        loaded = W.load_state_dict(tmp_path / "dp.pth", _tiny_expected())
    assert set(loaded) == set(_tiny_expected())
    assert any("module." in r.getMessage() for r in caplog.records)
    save_file(_tiny_state(""), str(tmp_path / "bare.safetensors"))  # a saved vgg.features
    assert set(W.load_state_dict(tmp_path / "bare.safetensors", _tiny_expected())) == set(
        _tiny_expected())


def test_w10_strict_loading_is_never_relaxed(tmp_path, monkeypatch):
    """build_extractor loads with strict=True; a partial state dict is never loaded."""
    calls = []
    real = torch.nn.Module.load_state_dict

    def spy(self, state_dict, strict=True, *args, **kwargs):
        calls.append(strict)
        return real(self, state_dict, strict, *args, **kwargs)

    full = {k: torch.zeros(v.shape) for k, v in vgg_features("vgg16").state_dict().items()}
    monkeypatch.setattr(torch.nn.Module, "load_state_dict", spy)
    monkeypatch.setattr(F, "_load_features", lambda path, arch, stamp=(): full)
    (tmp_path / "w.safetensors").write_bytes(b"stand-in")
    build_extractor(NetSpec("vgg16", weights=str(tmp_path / "w.safetensors")), ("relu1_1",),
                    torch.device("cpu"), "fp32")
    assert calls == [True]
    partial = dict(full)
    partial.pop("28.bias")
    monkeypatch.setattr(F, "_load_features", lambda path, arch, stamp=(): partial)
    with pytest.raises(RuntimeError, match="Missing key"):
        build_extractor(NetSpec("vgg16", weights=str(tmp_path / "w.safetensors")), ("relu1_1",),
                        torch.device("cpu"), "fp32")


def test_w10_cli_wrong_architecture_file_exit_5(tmp_path):
    state = {"module.features.0.weight": torch.zeros(64, 4, 3, 3),
             "module.features.0.bias": torch.zeros(64)}
    save_file(state, str(tmp_path / "w.safetensors"))
    proc = _cli(*_style_args(tmp_path, str(tmp_path / "w.safetensors")))
    line = _assert_error(proc, 5, "does not match the architecture",
                         "features.0.weight has shape [64, 4, 3, 3], expected [64, 3, 3, 3]",
                         "missing 24 (features.2.bias [64], features.2.weight [64, 64, 3, 3]")
    assert line.count("features.") <= 1 + 5 + 1  # the shape error, five missing, nothing more
    assert not (tmp_path / "out.png").exists()
