"""Statistics of paintings kept on disk between runs, so that a painting used again in a new
process is not encoded again (``painterly fast``: 0.29 s of a 2.6 s run at 1024 px on 2 cores;
``--sheet``: five paintings).

An entry is a safetensors file named by a digest of everything that made it: the picture's
pixels, the network's weights, the layers and the precision. So a changed picture, network or
setting simply misses, and nothing is ever invalidated by hand. The newest MAX_ENTRIES are
kept. A damaged or unreadable entry counts as a miss and is written again; a folder that
cannot be written costs the time it saves, nothing else. Each entry carries a checksum of its
tensors, so one damaged on disk is not used either.

``PAINTERLY_STATS_CACHE``: the folder (default ``$XDG_CACHE_HOME/painterly/style-stats``,
else ``~/.cache/painterly/style-stats``); ``off`` (or ``0``, or empty) turns it off.
"""
from __future__ import annotations

import hashlib
import logging
import os
from pathlib import Path
from typing import Optional

import torch

from . import weights
from .errors import PainterlyError
from .files import remove_quietly

log = logging.getLogger(__name__)

ENV = "PAINTERLY_STATS_CACHE"
MAX_ENTRIES = 32     # ~1 MB each (a 512 × 512 covariance's eigenvectors): ~35 MB at most
FORMAT = "2"         # part of every key: a new layout of entries never reads an old one
CHECK = "sha256"     # the entry's own checksum, stored beside its tensors


def folder() -> Optional[Path]:
    """The cache's folder, or None when it is turned off."""
    value = os.environ.get(ENV)
    if value is not None:
        value = value.strip()
        return None if value.lower() in ("", "0", "off", "no", "false") else Path(value).expanduser()
    try:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    except RuntimeError:  # no home folder to be found: no cache
        return None
    return Path(base) / "painterly" / "style-stats"


def digest(*parts: object) -> str:
    """sha256 over strings and tensors (their dtype, shape and bytes)."""
    h = hashlib.sha256(FORMAT.encode())
    for part in parts:
        if isinstance(part, torch.Tensor):
            t = part.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
        else:
            h.update(repr(part).encode())
        h.update(b"|")
    return h.hexdigest()


def load(key: str) -> Optional[dict[str, torch.Tensor]]:
    """The entry ``key``, or None (none, the cache off, or an entry that cannot be read)."""
    base = folder()
    path = base / f"{key}.safetensors" if base else None
    if path is None or not path.is_file():
        return None
    try:
        tensors = weights.read_tensors(path)
        check = tensors.pop(CHECK, None)
        if check is None or bytes(check.tolist()) != _checksum(tensors):
            raise PainterlyError(f"{path} does not hold what was written", "")
        os.utime(path)  # most recently used: kept longest
    except (PainterlyError, OSError) as exc:
        log.debug("style statistics cache: %s unreadable (%s), computing again", path, exc)
        return None
    return tensors


def _checksum(tensors: dict[str, torch.Tensor]) -> bytes:
    """sha256 of the entry's names and tensors: a file that parses but whose numbers were
    damaged on disk (zeroed, overwritten) is not used."""
    names = sorted(tensors)
    return bytes.fromhex(digest(*names, *(tensors[n] for n in names)))


def store(key: str, tensors: dict[str, torch.Tensor]) -> None:
    """Write the entry ``key`` (atomically), then drop all but the newest MAX_ENTRIES."""
    base = folder()
    if base is None:
        return
    try:
        base.mkdir(parents=True, exist_ok=True)
        check = torch.tensor(list(_checksum(tensors)), dtype=torch.uint8)
        weights.write_tensors(base / f"{key}.safetensors", {**tensors, CHECK: check})
        entries = sorted(base.glob("*.safetensors"), key=_mtime, reverse=True)
    except (PainterlyError, OSError) as exc:
        log.debug("style statistics cache: cannot write in %s (%s)", base, exc)
        return
    for old in entries[MAX_ENTRIES:]:
        remove_quietly(old)


def _mtime(path: Path) -> float:
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0
