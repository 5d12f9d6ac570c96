"""The only door through which network weights enter painterly.

A registry of :class:`WeightSpec` entries; resolution order for a spec:
explicit file -> ``$PAINTERLY_WEIGHTS_DIR`` -> the cache folder -> download once (progress
bar, hash check against the pinned digest, atomic rename). Loading is safe: ``.safetensors``
(header checked before reading), or ``torch.load`` with an explicit ``weights_only=True`` and
nothing weaker, never retried without it. Environment variables are read when used.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import http.client
import json
import logging
import os
import pickle
import struct
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import DownloadError, OutputError, WeightsError
from .files import atomic_write

log = logging.getLogger(__name__)

CAFFE_BGR = "caffe"            # BGR, 0-255, minus ImageNet mean, no std
TORCHVISION_RGB = "torchvision"  # RGB, 0-1, (x - mean) / std


@dataclass(frozen=True)
class WeightFile:
    filename: str
    sha256: str  # a full hex digest, or the prefix that is all that is known


@dataclass(frozen=True)
class WeightSpec:
    name: str
    arch: str
    convention: str
    url: str
    files: tuple[WeightFile, ...]  # files[0] is what `url` gives; others are equivalent copies
    licence: str
    description: str = ""

    @property
    def download_file(self) -> WeightFile:
        return self.files[0]


_JCJ = "https://web.eecs.umich.edu/~justincj/models/"
_TV = "https://download.pytorch.org/models/"
_CAFFE_LICENCE = "CC BY 4.0 (Oxford Visual Geometry Group)"
_TV_LICENCE = "BSD-3-Clause (torchvision); trained on ImageNet, whose terms apply"

REGISTRY: dict[str, WeightSpec] = {s.name: s for s in [
    WeightSpec(
        "vgg16-caffe", "vgg16", CAFFE_BGR, _JCJ + "vgg16-00b39a1b.pth",
        (WeightFile("vgg16-00b39a1b.pth", "00b39a1b"),
         # The same convolution weights as safetensors (features.* only); digest verified.
         WeightFile("vgg16-caffe-features.safetensors",
                    "5486cb0996fe35de774cfebd6e6de90b0757334bdad61a1cf15d7da7ae5777a9")),
        _CAFFE_LICENCE, "original Caffe VGG16 as converted for neural-style (default)"),
    WeightSpec(
        "vgg19-caffe", "vgg19", CAFFE_BGR, _JCJ + "vgg19-d01eb7cb.pth",
        (WeightFile("vgg19-d01eb7cb.pth", "d01eb7cb"),
         WeightFile("vgg19-caffe-features.safetensors", "")),
        _CAFFE_LICENCE, "original Caffe VGG19 as converted for neural-style (Gatys et al.)"),
    WeightSpec(
        "vgg16-torchvision", "vgg16", TORCHVISION_RGB, _TV + "vgg16-397923af.pth",
        (WeightFile("vgg16-397923af.pth", "397923af"),), _TV_LICENCE, "torchvision VGG16"),
    WeightSpec(
        "vgg19-torchvision", "vgg19", TORCHVISION_RGB, _TV + "vgg19-dcbb9e9d.pth",
        (WeightFile("vgg19-dcbb9e9d.pth", "dcbb9e9d"),), _TV_LICENCE, "torchvision VGG19"),
]}

DEFAULT_FOR_ARCH = {"vgg16": "vgg16-caffe", "vgg19": "vgg19-caffe"}


def get_spec(name: str) -> WeightSpec:
    if name not in REGISTRY:
        raise WeightsError(f"unknown weights {name!r}", f"known: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def spec_for_file(filename: str) -> WeightSpec | None:
    """The registry entry one of whose files has this name, if any."""
    return next((s for s in REGISTRY.values() if any(f.filename == filename for f in s.files)),
                None)


def weights_dir() -> Path | None:
    """The folder of local weight copies named by ``PAINTERLY_WEIGHTS_DIR``, if set."""
    value = os.environ.get("PAINTERLY_WEIGHTS_DIR")
    return Path(value).expanduser() if value else None


def cache_dir() -> Path:
    """``$PAINTERLY_CACHE``, else torch hub's checkpoint folder (honours ``$TORCH_HOME``)."""
    value = os.environ.get("PAINTERLY_CACHE")
    if value:
        return Path(value).expanduser()
    return Path(torch.hub.get_dir()) / "checkpoints"


def cache_dir_source() -> str:
    """Which setting chose :func:`cache_dir` (for the log line)."""
    if os.environ.get("PAINTERLY_CACHE"):
        return "PAINTERLY_CACHE"
    return "TORCH_HOME" if os.environ.get("TORCH_HOME") else "torch's default hub folder"


_TRUE = ("1", "true", "yes", "on")


def is_offline() -> bool:
    """``PAINTERLY_OFFLINE`` when set (to anything); otherwise ``HF_HUB_OFFLINE``."""
    return _offline_setting()[1]


def _offline_setting() -> tuple[str, bool]:
    value = os.environ.get("PAINTERLY_OFFLINE", "").strip()
    if value:
        return "PAINTERLY_OFFLINE", value.lower() in _TRUE
    return "HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in _TRUE


def find_local(spec: WeightSpec) -> Path | None:
    """A copy of the spec's weights in the weights folder or the cache, if any."""
    for folder in (weights_dir(), cache_dir()):
        if folder is None:
            continue
        for wf in spec.files:
            path = folder / wf.filename
            if path.is_file():
                return path
    return None


def resolve(spec: WeightSpec, explicit: str | os.PathLike | None = None,
            offline: bool | None = None) -> Path:
    """Where the spec's weights are, downloading them once if allowed.

    A copy found in the weights folder or the cache is checked against its pinned digest
    first. A corrupt copy in the cache is downloaded again when online (the download
    replaces it atomically); offline, or anywhere else, it is an error (exit 5).
    """
    how_to_fetch = (f"run `painterly weights download {spec.name}`" if offline is not None
                    else f"unset {_offline_setting()[0]} to download it")
    offline = is_offline() if offline is None else offline
    if explicit is not None:
        path = Path(explicit).expanduser()
        if path.is_dir():
            raise WeightsError(f"weights path is a directory: {path}", "pass a weights file")
        if not path.is_file():
            raise WeightsError(f"weights file not found: {path}", "check the `weights` path")
        log.info("weights: using %s (a file given; no download)", path)
        return path
    local = find_local(spec)
    cache = cache_dir()
    if local is not None:
        try:
            verify(local, spec)
        except WeightsError as exc:
            found = getattr(exc, "found", exc.message)
            if local.parent != cache:  # the user's weights folder: never replaced by painterly
                raise WeightsError(f"weights file {local} is corrupt ({found})",
                                   "replace it with a good copy or remove it from "
                                   "PAINTERLY_WEIGHTS_DIR")
            if offline or local.name != spec.download_file.filename:
                raise WeightsError(
                    f"cached weights corrupt: {local} ({found})",
                    f"delete it or run `painterly weights download {spec.name}` to fetch it "
                    "again (needs the network)")
            log.warning("cached weights corrupt: %s (%s); downloading them again", local, found)
            return download(spec)
        log.info("weights %s: using %s (cache dir %s from %s)", spec.name, local, cache,
                 cache_dir_source())
        return local
    if offline:
        raise WeightsError(
            f"offline and weights {spec.name!r} not cached: expected "
            f"{cache / spec.download_file.filename} (from {spec.url})",
            "pass `weights` FILE, put the file there or in the folder named by "
            f"PAINTERLY_WEIGHTS_DIR, or {how_to_fetch}")
    return download(spec)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _matches(actual: str, expected: str) -> bool:
    """A full 64-hex digest must be equal; a shorter pinned prefix must start the digest."""
    expected = expected.strip().lower()
    return actual == expected if len(expected) == 64 else actual.startswith(expected)


def _pinned(digest: str) -> str:
    digest = digest.strip().lower()
    return digest if len(digest) == 64 else f"{digest}…"


def _pinned_digest(path: Path, spec: WeightSpec) -> str:
    return next((wf.sha256 for wf in spec.files if wf.filename == path.name), "")


def verify(path: Path, spec: WeightSpec) -> str:
    """Check a file against the digest recorded for its name; return its sha256."""
    expected = _pinned_digest(path, spec)
    actual = sha256_of(path)
    if expected and not _matches(actual, expected):
        found = f"sha256 {actual[:12]}…, expected {expected.strip().lower()[:12]}…"
        err = WeightsError(f"weights file {path} is corrupt ({found})",
                           "delete it and run again to re-download")
        err.found = found
        raise err
    return actual


# ------------------------------------------------------------------ download

_CHUNK = 1 << 16
_TIMEOUT_S = 30.0        # per socket operation, not for the whole file
_LOCK_WAIT_S = 900.0     # how long to wait for another process's download of the same folder


def download(spec: WeightSpec) -> Path:
    """Download into the cache: temp file, progress bar, hash check, atomic rename.

    The bytes go to a unique ``.<name>.*.partial`` file beside the target, are hashed as they
    arrive and checked against the pinned digest (never the file name), then published with
    ``os.replace``: the target either does not exist or is complete and verified. Concurrent
    downloads into one folder are serialised by an advisory lock on the folder itself (no
    lock file is left behind); without locking, each publishes a verified file atomically.
    """
    wf = spec.download_file
    if not wf.sha256:
        raise WeightsError(f"weights {spec.name!r} have no pinned sha256; refusing to download",
                           "download the file yourself and pass `weights` FILE")
    if not spec.url.startswith(("https://", "http://")):
        raise WeightsError(f"weights {spec.name!r}: unsupported URL {spec.url}",
                           "only http(s) downloads are supported")
    folder = cache_dir()
    target = folder / wf.filename
    _make_cache_dir(folder)
    before = _stamp(target)
    with _folder_lock(folder) as locked:
        if locked:
            _remove_stale_partials(folder, wf.filename)
        if target.is_file() and _stamp(target) != before:  # published while we waited
            try:
                verify(target, spec)
                log.info("weights %s: %s was downloaded by another process", spec.name, target)
                return target
            except WeightsError:
                log.warning("cached weights corrupt: %s; downloading them again", target)
        log.info("weights %s: downloading %s to %s (cache dir from %s)", spec.name, spec.url,
                 target, cache_dir_source())
        tmp = _new_partial(folder, wf.filename)
        try:
            actual = _fetch(spec.url, tmp)
            if not _matches(actual, wf.sha256):
                raise DownloadError(
                    f"sha256 mismatch for {spec.url}: expected {_pinned(wf.sha256)}, got {actual}",
                    "nothing was saved; try again later, or get the file yourself and pass "
                    "`weights` FILE")
            os.replace(tmp, target)
            _fsync_dir(folder)
        finally:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
    return target


def _stamp(path: Path) -> tuple | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _cache_write_error(folder: Path, exc: OSError) -> OutputError:
    reason = {errno.EROFS: "read-only", errno.EACCES: "permission denied",
              errno.EPERM: "permission denied", errno.ENOSPC: "no space left on device",
              errno.ENOTDIR: "not a directory", errno.EEXIST: "not a directory"}.get(
                  exc.errno, exc.strerror or str(exc))
    return OutputError(f"cannot write cache dir {folder}: {reason}",
                       "set PAINTERLY_CACHE to a writable folder, or pass `weights` FILE")


def _make_cache_dir(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _cache_write_error(folder, exc) from exc
    if not folder.is_dir():
        raise _cache_write_error(folder, OSError(errno.ENOTDIR, "not a directory"))


def _new_partial(folder: Path, filename: str) -> Path:
    try:
        fd, name = tempfile.mkstemp(prefix=f".{filename}.", suffix=".partial", dir=folder)
    except OSError as exc:
        raise _cache_write_error(folder, exc) from exc
    os.fchmod(fd, 0o644)
    os.close(fd)
    return Path(name)


def _remove_stale_partials(folder: Path, filename: str) -> None:
    """With the folder lock held, any partial of this file is debris of a killed process."""
    for stale in folder.glob(f".{filename}.*.partial"):
        with contextlib.suppress(OSError):
            stale.unlink()
            log.info("removed a stale partial download %s", stale)


@contextlib.contextmanager
def _folder_lock(folder: Path):
    """An exclusive ``flock`` on the folder's own descriptor; yields whether it is held."""
    try:
        import fcntl
        fd = os.open(folder, os.O_RDONLY)
    except (ImportError, OSError):
        yield False
        return
    try:
        held, deadline, told = False, time.monotonic() + _LOCK_WAIT_S, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                held = True
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    log.warning("still locked after %.0f s; downloading anyway", _LOCK_WAIT_S)
                    break
                if not told:
                    log.warning("waiting for another painterly download into %s", folder)
                    told = True
                time.sleep(0.2)
            except OSError:  # the filesystem has no flock: atomic renames still keep it safe
                break
        yield held
    finally:
        os.close(fd)  # releases the lock


def _fetch(url: str, tmp: Path) -> str:
    """Stream ``url`` into ``tmp``; return the sha256 of what arrived. Raises DownloadError.

    Not torch.hub.download_url_to_file: that accepts a body cut short of its Content-Length
    without complaint (only a hash mismatch would follow), where painterly must say the
    download was interrupted and how far it got (exit 6, "received 50% of N bytes").
    """
    digest, received, total = hashlib.sha256(), 0, None
    request = urllib.request.Request(url, headers={"User-Agent": "painterly"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as resp:
            length = resp.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            with open(tmp, "wb") as out, _progress(total, url) as bar:
                while True:
                    try:
                        block = resp.read(_CHUNK)
                    except http.client.IncompleteRead as exc:
                        block = exc.partial
                        digest.update(block)
                        out.write(block)
                        received += len(block)
                        raise _interrupted(url, received, total) from exc
                    if not block:
                        break
                    digest.update(block)
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
                out.flush()
                os.fsync(out.fileno())
    except DownloadError:
        raise
    except urllib.error.HTTPError as exc:
        raise DownloadError(f"download of {url} failed: HTTP {exc.code} {exc.reason}",
                            "try again later, or get the file yourself and pass `weights` FILE"
                            ) from exc
    except (http.client.HTTPException, ConnectionError, TimeoutError) as exc:
        raise _interrupted(url, received, total) from exc
    except urllib.error.URLError as exc:
        raise DownloadError(f"download of {url} failed: {exc.reason}",
                            "check your connection, or get the file yourself and pass "
                            "`weights` FILE") from exc
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EDQUOT):
            raise _cache_write_error(tmp.parent, exc) from exc
        raise _interrupted(url, received, total) from exc
    if total is not None and received != total:
        raise _interrupted(url, received, total)
    return digest.hexdigest()


def _interrupted(url: str, received: int, total: int | None) -> DownloadError:
    got = (f"received {100 * received // total}% of {total:,} bytes" if total
           else f"received {received:,} bytes")
    return DownloadError(f"download interrupted ({got}) from {url}",
                         "nothing was saved; run again to retry")


@contextlib.contextmanager
def _progress(total: int | None, url: str):
    try:
        from tqdm import tqdm
    except ImportError:
        yield _NoBar()
        return
    with tqdm(total=total, unit="B", unit_scale=True, unit_divisor=1024, disable=None,
              desc=url.rsplit("/", 1)[-1], leave=False) as bar:
        yield bar


class _NoBar:
    def update(self, n: int) -> None:
        pass


def _fsync_dir(folder: Path) -> None:
    with contextlib.suppress(OSError, AttributeError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ------------------------------------------------------------------ loading

_MAX_REPORTED = 5


def load_state_dict(path: Path, expected: dict[str, torch.Size]) -> dict[str, torch.Tensor]:
    """Load the ``features.*`` tensors of a weights file, checking names and shapes strictly.

    A ``module.`` prefix (a DataParallel checkpoint) is stripped, and bare ``0.weight`` keys
    (a saved ``vgg.features``) get ``features.``, each with a log line. Any missing key,
    unexpected ``features.*`` key or shape mismatch is an error naming up to five of them
    with expected and actual shapes: nothing is ever loaded partially.
    """
    tensors = _normalise_keys(_read_tensors(path), path)
    features = {k: v for k, v in tensors.items() if k.startswith("features.")}
    not_tensors = sorted(k for k, v in features.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise WeightsError(f"weights file {path} holds non-tensor values at "
                           f"{', '.join(not_tensors[:_MAX_REPORTED])}", "use a plain state dict")
    missing = [f"{k} {_shape(expected[k])}"
               for k in sorted(set(expected) - set(features), key=_key_order)]
    unexpected = [f"{k} {_shape(features[k].shape)}"
                  for k in sorted(set(features) - set(expected), key=_key_order)]
    wrong = [f"{k} has shape {_shape(features[k].shape)}, expected {_shape(expected[k])}"
             for k in sorted(set(expected) & set(features), key=_key_order)
             if features[k].shape != expected[k]]
    problems = [f"{what} {len(keys)} ({', '.join(keys[:_MAX_REPORTED])}"
                f"{f', and {len(keys) - _MAX_REPORTED} more' if len(keys) > _MAX_REPORTED else ''})"
                for what, keys in (("missing", missing), ("unexpected", unexpected)) if keys]
    if wrong:
        problems.append("wrong shape: " + "; ".join(wrong[:_MAX_REPORTED])
                        + (f"; and {len(wrong) - _MAX_REPORTED} more" if len(wrong) > _MAX_REPORTED
                           else ""))
    if problems:
        raise WeightsError(f"weights file {path} does not match the architecture: "
                           + "; ".join(problems),
                           "pick the `model` these weights belong to, or use a file holding "
                           "that VGG's features.* tensors")
    return {k: v.float() for k, v in features.items()}


def _key_order(key: str):
    parts = key.split(".")
    return [int(p) if p.isdigit() else 0 for p in parts], key


def _shape(shape) -> str:
    return str(list(shape))


def _normalise_keys(tensors: dict, path: Path) -> dict:
    keys = [k for k in tensors if isinstance(k, str)]
    if keys and all(k.startswith("module.") for k in keys):
        log.info("weights file %s: stripped the 'module.' prefix of its keys", path)
        tensors = {k.removeprefix("module."): v for k, v in tensors.items()}
    if tensors and not any(str(k).startswith("features.") for k in tensors) and all(
            isinstance(k, str) and k.split(".", 1)[0].isdigit() for k in tensors):
        log.info("weights file %s: keys have no 'features.' prefix; adding it", path)
        tensors = {f"features.{k}": v for k, v in tensors.items()}
    return tensors


_SAFETENSORS_MAX_HEADER = 100 << 20  # the limit safetensors itself applies


def check_safetensors_header(path: Path) -> None:
    """Validate a safetensors header from a bounded read before anything is allocated."""
    def corrupt(why: str) -> WeightsError:
        return WeightsError(f"corrupt safetensors file {path} (header {why})",
                            "the file is damaged or not safetensors; download or convert it again")
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            prefix = f.read(8)
            if len(prefix) < 8:
                raise corrupt(f"missing: the file has {size} bytes")
            (n,) = struct.unpack("<Q", prefix)
            if n > _SAFETENSORS_MAX_HEADER or 8 + n > size:
                raise corrupt(f"length {n:,} bytes, but the file has {size:,} bytes")
            raw = f.read(n)
    except OSError as exc:
        raise WeightsError(f"cannot read weights file {path}: {exc.strerror or exc}",
                           "check the file and its permissions") from exc
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise corrupt(f"is not valid JSON: {exc}") from exc
    if not isinstance(header, dict):
        raise corrupt("is not a JSON object")
    data_size = size - 8 - n
    for name, info in header.items():
        if name == "__metadata__":
            continue
        offsets = info.get("data_offsets") if isinstance(info, dict) else None
        if (not isinstance(offsets, list) or len(offsets) != 2
                or not all(isinstance(o, int) for o in offsets)
                or not 0 <= offsets[0] <= offsets[1]):
            raise corrupt(f"entry {name!r} has no valid data_offsets")
        if offsets[1] > data_size:
            raise corrupt(f"entry {name!r} ends at byte {offsets[1]:,}, past the end of the "
                          f"data ({data_size:,} bytes)")


def _read_tensors(path: Path) -> dict[str, torch.Tensor]:
    if path.suffix == ".safetensors":
        check_safetensors_header(path)
        from safetensors import SafetensorError
        from safetensors.torch import load_file
        try:
            return load_file(str(path))
        except (SafetensorError, ValueError) as exc:
            raise WeightsError(f"corrupt safetensors file {path} ({exc})",
                               "the file is damaged; download or convert it again") from exc
        except OSError as exc:
            raise WeightsError(f"cannot read weights file {path}: {exc}",
                               "check the file and its permissions") from exc
    try:
        # weights_only=True is passed explicitly: torch then ignores
        # TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD (it only overrides an unset argument). There is no
        # retry without it: a file that needs arbitrary pickles is refused.
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        if "WeightsUnpickler error" in str(exc):  # a global, class or opcode not allowed
            raise WeightsError("weights file contains executable Python objects; refusing to "
                               f"load {path}", "convert it to .safetensors or use the official "
                               "file") from exc
        raise _damaged(path, exc) from exc
    except MemoryError:
        raise
    except Exception as exc:  # noqa: BLE001 - torch raises KeyError, UnicodeDecodeError, … on junk
        raise _damaged(path, exc) from exc
    if isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict):
        raise WeightsError(f"weights file {path} holds no state dict", "use a .pth state dict")
    return obj


def _damaged(path: Path, exc: BaseException) -> WeightsError:
    if isinstance(exc, OSError) and not isinstance(exc, EOFError) and exc.strerror:
        return WeightsError(f"cannot read weights file {path}: {exc.strerror}",
                            "check the file and its permissions")
    first = (str(exc).splitlines() or [""])[0][:200] or type(exc).__name__
    return WeightsError(f"weights file {path} is damaged or not a PyTorch weights file "
                        f"({type(exc).__name__}: {first})",
                        "download it again, or convert it to .safetensors")


# ------------------------------------------------------------------ painterly's own models

PACKAGE_MODELS = Path(__file__).parent / "models"


@dataclass(frozen=True)
class PackagedModel:
    """A network painterly trained itself and ships inside the package (no download)."""

    name: str
    filename: str
    format: str           # the ``format`` its safetensors metadata must carry
    what: str             # how messages name it
    description: str

    @property
    def path(self) -> Path:
        return PACKAGE_MODELS / self.filename


PACKAGED: dict[str, PackagedModel] = {m.name: m for m in [
    PackagedModel("adain-decoder", "adain-vgg16-decoder.safetensors", "painterly-adain-decoder",
                  "decoder", "painterly's AdaIN/WCT decoder for `painterly fast` (trained by "
                  "painterly, README's recipe)"),
    PackagedModel("slim-encoder", "vgg16-slim-encoder.safetensors", "painterly-slim-encoder",
                  "slim encoder", "VGG16 up to relu4_1 with half the channels, distilled by "
                  "painterly (`painterly distill-fast`)"),
]}


def read_model(path: str | os.PathLike | None, model: str,
               missing_hint: str) -> tuple[dict[str, torch.Tensor], dict[str, str], Path]:
    """Tensors (fp32), metadata and path of a safetensors file of one of painterly's own
    model formats: ``path``, or the packaged file when None. The header is checked before
    anything is read; a file of another format is refused."""
    spec = PACKAGED[model]
    path = Path(path) if path else spec.path
    if not path.is_file():
        raise WeightsError(f"{spec.what} weights not found: {path}", missing_hint)
    check_safetensors_header(path)
    from safetensors import safe_open
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k).float() for k in f.keys()}
    except Exception as exc:  # safetensors raises several types for a damaged file
        raise WeightsError(f"cannot read {spec.what} weights {path}: {exc}",
                           "the file is damaged or not a safetensors file") from exc
    if meta.get("format") != spec.format:
        raise WeightsError(f"{path} is not a painterly {spec.what}",
                           f"pass a {spec.what} file made by painterly")
    return state, meta, path


def write_model(path: Path, state: dict[str, torch.Tensor], metadata: dict[str, str]) -> None:
    """Write a trained network as fp16 safetensors with its recipe as metadata, atomically."""
    from safetensors.torch import save
    half = {k: v.detach().to("cpu", torch.float16).contiguous() for k, v in state.items()}
    data = save(half, metadata={k: str(v) for k, v in metadata.items()})
    atomic_write(Path(path), lambda f: f.write(data))


def read_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file painterly wrote (``write_tensors``), header checked
    first; WeightsError if it is damaged or unreadable."""
    return _read_tensors(Path(path))


def write_tensors(path: Path, tensors: dict[str, torch.Tensor]) -> None:
    """Tensors as they are (no cast) to a safetensors file, atomically."""
    from safetensors.torch import save
    data = save({k: v.detach().cpu().contiguous() for k, v in tensors.items()})
    atomic_write(Path(path), lambda f: f.write(data))


def read_checkpoint(path: str | os.PathLike, device: torch.device | str = "cpu"):
    """A checkpoint painterly wrote (tensors and plain values only: ``weights_only=True``,
    never retried without it). Errors are torch's own; callers say what the file was for."""
    return torch.load(path, map_location=device, weights_only=True)
