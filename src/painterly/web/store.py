"""The web app's folder: uploads (kept a while, by opaque id) and the history of pictures.

Layout of ``home`` (default ``~/.local/share/painterly/web``, or ``$XDG_DATA_HOME``)::

    uploads/<uuid>.<ext>     pictures sent by the page, checked before they are kept
    history/<id>.png         finished pictures, with their provenance in the PNG
    history/<id>-unfinished.png, <id>.ckpt   an interrupted style job: picture so far, checkpoint
    history/<id>.json        what the history list shows (kind, status, times)

No name that comes from a client ever reaches a path: uploads and pictures are found by ids
that must match ``[0-9a-f]{32}``, and each path is checked to lie inside its folder (after
resolving links) and to be a regular file, not a link someone planted.
"""
from __future__ import annotations

import json
import os
import re
import stat
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .. import image as I
from ..errors import ConfigError, InputImageError, PainterlyError
from ..files import atomic_write, remove_quietly
from ..image import ReadOptions
from ..jobs import forms, read_record
from ..jobs.outputs import checkpoint_path, rescue_path

ID = re.compile(r"[0-9a-f]{32}")
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp", "GIF": "gif", "BMP": "bmp",
              "TIFF": "tif", "PPM": "ppm", "TGA": "tga"}


class NotFound(PainterlyError):
    """An id that names nothing (or nothing this client may see): HTTP 404."""


def default_home() -> Path:
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "painterly" / "web"


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class Upload:
    id: str
    path: Path
    width: int
    height: int
    format: str


class Store:
    """Uploads and history under ``home``; uploads older than ``upload_ttl`` seconds are
    deleted at start-up and never used."""

    def __init__(self, home: Path, upload_ttl: float, reading: ReadOptions):
        self.home, self.upload_ttl, self.reading = Path(home), upload_ttl, reading
        self.decoding = threading.Lock()    # one full decode at a time bounds the memory
        self.uploads, self.history = self.home / "uploads", self.home / "history"
        for folder in (self.home, self.uploads, self.history):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        for folder in (self.uploads, self.history):
            if folder.is_symlink():     # start-up cleans these: never someone else's folder
                raise ConfigError(f"{folder} is a link, not a folder of painterly's own",
                                  "remove the link, or pass another `home`")
        self.expire_uploads()

    # -- uploads --------------------------------------------------------------------------

    def expire_uploads(self) -> int:
        """Delete uploads past their time, and anything in the folder that is not a plain
        file of ours (a link planted there is removed, never followed)."""
        removed, now = 0, time.time()
        for entry in os.scandir(self.uploads):
            info = entry.stat(follow_symlinks=False)
            ours = stat.S_ISREG(info.st_mode) and _is_upload_name(entry.name)
            if not ours or now - info.st_mtime > self.upload_ttl:
                remove_quietly(Path(entry.path))
                removed += 1
        return removed

    def add_upload(self, data: bytes) -> Upload:
        """Check a sent picture as the command line checks a file (format from its bytes,
        the size limits, a full decode) and keep it as ``<uuid>.<ext>``."""
        with self.decoding:
            height, width = self.reading.load(data).shape[-2:]
        fmt = I.sniff_format(data)
        if fmt not in EXTENSIONS:
            raise InputImageError(f"the upload is not a supported image (detected: {fmt})",
                                  "send a PNG, JPEG or WEBP picture")
        upload_id = new_id()
        path = self.uploads / f"{upload_id}.{EXTENSIONS[fmt]}"
        atomic_write(path, lambda f: f.write(data))
        return Upload(upload_id, path, width, height, fmt)

    def upload(self, upload_id: str) -> Path:
        """The file of an upload that is still kept."""
        if not isinstance(upload_id, str) or not ID.fullmatch(upload_id):
            raise NotFound(f"no upload {str(upload_id)[:40]!r}", "upload the picture again")
        for ext in set(EXTENSIONS.values()):
            path = self.uploads / f"{upload_id}.{ext}"
            info = _regular_inside(path, self.uploads)
            if info is not None:
                if time.time() - info.st_mtime > self.upload_ttl:
                    remove_quietly(path)
                    break
                return path
        raise NotFound("that picture is no longer on the server", "upload it again")

    # -- history --------------------------------------------------------------------------

    def output(self, job_id: str) -> Path:
        return self.history / f"{job_id}.png"

    def checkpoint(self, job_id: str) -> Optional[Path]:
        path = checkpoint_path(self.output(job_id))
        return path if _regular_inside(path, self.history) else None

    def remember(self, entry: dict[str, Any]) -> None:
        """Write a history entry (atomically)."""
        path = self.history / f"{entry['id']}.json"
        atomic_write(path, lambda f: f.write(json.dumps(entry).encode()))

    def entries(self) -> list[dict[str, Any]]:
        """Every history entry, newest first, with its settings read from its picture."""
        found = []
        for path in self.history.glob("*.json"):
            if not ID.fullmatch(path.stem) or _regular_inside(path, self.history) is None:
                continue
            try:
                entry = json.loads(path.read_text())
            except (OSError, ValueError):
                continue
            picture = self.picture(path.stem, missing_ok=True)
            if picture is None:
                continue
            recorded = self.settings_of(picture.read_bytes()).get("settings")
            entry["settings"] = recorded or entry.get("settings", {})
            entry["resumable"] = entry.get("status") == "interrupted" and \
                self.checkpoint(path.stem) is not None
            found.append(entry)
        return sorted(found, key=lambda e: e.get("created", 0), reverse=True)

    def entry(self, job_id: str) -> dict[str, Any]:
        for entry in self.entries():
            if entry["id"] == job_id:
                return entry
        raise NotFound(f"no picture {job_id[:40]!r} in the history", "reload the page")

    def picture(self, job_id: str, missing_ok: bool = False) -> Optional[Path]:
        """The finished picture of a job, or its picture so far if it was interrupted."""
        if isinstance(job_id, str) and ID.fullmatch(job_id):
            for path in (self.output(job_id), rescue_path(self.output(job_id))):
                if _regular_inside(path, self.history) is not None:
                    return path
        if missing_ok:
            return None
        raise NotFound(f"no picture {str(job_id)[:40]!r}", "reload the page")

    def forget(self, job_id: str) -> None:
        """Remove a job's picture, picture so far, checkpoint and entry."""
        self.picture(job_id)  # refuses ids that name nothing
        output = self.output(job_id)
        for path in (output, rescue_path(output), checkpoint_path(output),
                     self.history / f"{job_id}.json"):
            remove_quietly(path)

    @staticmethod
    def settings_of(data: bytes) -> dict[str, Any]:
        """What a painterly PNG says it was made with: its kind and the settings a form can
        set again ({} for any other picture)."""
        rec = read_record(I.png_text(data)) or {}
        kind = rec.get("command")
        if kind not in forms.FORM_KINDS or not isinstance(rec.get("settings"), dict):
            return {}
        return {"kind": kind, "settings": forms.restorable(kind, rec["settings"])}


def _is_upload_name(name: str) -> bool:
    stem, _, ext = name.partition(".")
    return bool(ID.fullmatch(stem)) and ext in EXTENSIONS.values()


def _regular_inside(path: Path, folder: Path) -> Optional[os.stat_result]:
    """``path``'s stat if it is a plain file (not a link) whose real path is in ``folder``."""
    try:
        info = path.lstat()
    except OSError:
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    if Path(os.path.realpath(path)).parent != Path(os.path.realpath(folder)):
        return None
    return info
