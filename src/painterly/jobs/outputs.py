"""Where a job's pictures go: default names, the output lock, rescue files and snapshots.

Nothing the user had is lost: outputs are checked before any work, written atomically
(``files.atomic_write``), never over an input, and a run that stops early writes what it has
to ``OUT-unfinished.png`` beside the output, never to the output itself.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

from ..errors import OutputError
from ..files import remove_quietly
from ..video import is_video


def stem_of(source: str) -> str:
    """The name a picture's outputs are named after ('stdin' for '-')."""
    return "stdin" if source == "-" else Path(source).stem


def default_output(kind: str, inputs: tuple[str, ...], animation: bool = False) -> Path:
    """``photo_painting.png`` (style), ``photo_painting_fast.png`` (fast); a folder of photos
    gives the folder ``photos_painting_fast`` (``photos_painting``, ``photos_dream``), a video
    ``clip_painting_fast.mp4`` (``clip_painting.mp4``); ``photo_dream.png`` (``.gif`` animated);
    inspect: ``photo_activations.png``, ``photos_atlas/``, ``features.png``,
    ``photo_painting_reconstruction.png``; fast's contact sheet ``photo_styles.png``."""
    folder = inputs[0] != "-" and Path(inputs[0]).is_dir()
    if kind == "dream":
        if folder:
            return Path(f"{Path(inputs[0]).name}_dream")
        return Path(f"{stem_of(inputs[0])}_dream.{'gif' if animation else 'png'}")
    if kind == "activations":
        return Path(f"{stem_of(inputs[0])}_activations.png")
    if kind == "top-patches":
        return Path(f"{Path(inputs[0]).stem if Path(inputs[0]).is_file() else Path(inputs[0]).name}_atlas")
    if kind == "features":
        return Path("features.png")
    if kind == "fast-sheet":
        return Path(f"{stem_of(inputs[0])}_styles.png")
    if kind == "reconstruct":
        return Path(f"{stem_of(inputs[0])}_{Path(inputs[1]).stem}_reconstruction.png")
    content, style = inputs[0], Path(inputs[1]).stem
    name = f"{Path(content).name if folder else stem_of(content)}_{style}"
    name += "_fast" if kind == "fast" else ""
    if folder:
        return Path(name)
    return Path(name + (".mp4" if is_video(content) else ".png"))


def rescue_path(output: Path) -> Path:
    """Where the picture so far goes when a run stops early: ``OUT-unfinished.png``."""
    return output.with_name(f"{output.stem}-unfinished{output.suffix}")


def snapshot_path(output: Path, step: int) -> Path:
    """A snapshot of step ``step``: ``OUT.0010.png``."""
    return output.with_name(f"{output.stem}.{step:04d}{output.suffix}")


def checkpoint_path(output: Path) -> Path:
    return output.with_suffix(".ckpt")


def check_not_an_input(output: Path, inputs) -> None:
    """Refuse an output that is one of the inputs (also for animations and folders)."""
    for source in inputs:
        if source != "-" and Path(source).exists() and output.exists() \
                and Path(source).samefile(output):
            raise OutputError(f"output {output} is one of the inputs", "choose another output path")


class OutputLock:
    """An ``O_EXCL`` lock file beside the output, so two runs never write the same picture.

    ``.OUT.lock`` holds the owner's pid; a lock whose process is gone is stale and replaced,
    and temp files (``.OUT*.partial``) a dead run left behind are removed.
    """

    def __init__(self, output: Path):
        self.output = Path(output)
        self.path = self.output.with_name(f".{self.output.name}.lock")
        self.held = False

    def __enter__(self):
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None:
                    raise OutputError(f"{self.output} is being written by another painterly "
                                      f"run (pid {owner})",
                                      "wait for it to finish or choose another path") from None
                remove_quietly(self.path)  # stale: its process is gone
                continue
            except OSError as exc:
                raise OutputError(f"cannot create {self.path}: {exc.strerror or exc}",
                                  "check the folder's permissions") from exc
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            self.held = True
            self._remove_stale_temps()
            return self
        raise OutputError(f"cannot lock {self.output}", f"remove {self.path} and retry")

    def _owner(self) -> int | str | None:
        """The pid of a live owner, "starting" for a lock still being written, else None."""
        try:
            text = self.path.read_text().strip()
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        except OSError:
            return "unknown"
        if not text.isdigit():
            return "starting" if age < 10 else None
        pid = int(text)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid  # alive, another user's
        return pid

    def _remove_stale_temps(self) -> None:
        out = self.output
        folder = out.parent if str(out.parent) else Path(".")
        mine = re.compile(r"\.{0}(?:{1}|-unfinished{1}|\.ckpt|\.\d{{4,}}{1})\..*\.partial".format(
            re.escape(out.stem), re.escape(out.suffix)))  # output, rescue, checkpoint, snapshots
        for temp in folder.glob(f".{out.stem}*.partial"):
            if mine.fullmatch(temp.name):
                remove_quietly(temp)

    def __exit__(self, *exc):
        if self.held:
            remove_quietly(self.path)
            self.held = False
