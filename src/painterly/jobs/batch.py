"""Folders: the one rule every command (style, fast, dream) follows for a folder of pictures.

The networks load once and each painting is encoded once (the kind's ``painter(job)``); each
picture is written atomically into the output folder as ``NAME.png``; one bad picture is
reported (``RunOptions.on_item``) and the rest are written, the job then failing with exit 3
(``Outcome.raise_for_failures``); a picture whose output already exists is skipped unless
`overwrite`, so rerunning an interrupted folder continues it; cancel stops between pictures
and within one (the picture being painted is not written). Where the pictures are painted is
the engine's business: :class:`LocalEngine` in this process, or one a front end passes in
``RunOptions.engine`` (``painterly.cluster.RayEngine``) with the same ``paint_item``.
"""
from __future__ import annotations

import importlib
import time
from pathlib import Path
from typing import Callable, Iterator, Optional

import torch

from .. import image as I
from ..errors import Cancelled, InputImageError, OutputError, PainterlyError
from ..progress import Progress
from . import provenance
from .job import ItemResult, Job, Outcome, RunOptions
from .outputs import OutputLock

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
# What a kind's painter does with one picture: (source, output, ask) -> (picture, record),
# ``ask`` holding the algorithm's callback, cancel and preview_every.
Paint = Callable[[str, Path, dict], tuple[torch.Tensor, dict]]


def is_folder(source: str) -> bool:
    return source != "-" and Path(source).is_dir()


def pairs(source: str, output: Path) -> list[tuple[str, Path]]:
    """(picture, output) for each picture of the folder ``source``; the output is a folder,
    made here if its parent exists."""
    pictures = sorted(p for p in Path(source).iterdir()
                      if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES)
    if not pictures:
        raise InputImageError(f"no pictures in folder: {source}",
                          f"it needs files ending in {', '.join(PICTURE_SUFFIXES)}")
    if output.suffix.lower() in I.OUTPUT_SUFFIXES or (output.exists() and not output.is_dir()):
        raise OutputError(f"{output} is not a folder", "with a folder of pictures, the output "
                          "names a folder")
    if not output.exists():
        if not output.parent.is_dir() and str(output.parent):
            raise OutputError(f"folder {output.parent} does not exist", "create it first")
        output.mkdir()
    return [(str(p), output / f"{p.stem}.png") for p in pictures]


def check(job: Job, output: Path) -> list[tuple[str, Path]]:
    """Refuse, before any work, a folder job whose outputs can't be written; its pairs. An
    output that exists is not refused: it is skipped (or replaced with `overwrite`)."""
    todo = pairs(job.inputs[0], output)
    for _, out in todo:
        I.check_output_path(out, overwrite=True, inputs=job.inputs)
    return todo


def painter(job: Job) -> Paint:
    """The kind's painter for this job: its networks loaded and its paintings encoded."""
    module = importlib.import_module(f".{job.kind}", __package__)
    return module.painter(job)


def paint_one(job: Job, paint: Paint, source: str, out: Path, ask: dict) -> ItemResult:
    """Paint one picture and write it atomically under the output's lock; raises."""
    started = time.perf_counter()
    with OutputLock(out):
        picture, rec = paint(source, out, ask)
        I.save_image(picture, out, overwrite=job.overwrite, metadata=provenance.png_text(rec))
    return ItemResult(source, out, time.perf_counter() - started)


def paint_item(job: Job, paint: Paint, source: str, out: Path, ask: dict) -> ItemResult:
    """:func:`paint_one`, with a failure reported in the result (the folder goes on);
    a cancel still stops the folder."""
    try:
        return paint_one(job, paint, source, out, ask)
    except Cancelled:
        raise
    except PainterlyError as exc:
        return ItemResult(source, error=str(exc))


class LocalEngine:
    """Paint the pictures one after the other in this process."""

    name = "local"

    def paint(self, job: Job, todo: list[tuple[str, Path]],
              options: RunOptions) -> Iterator[ItemResult]:
        paint = painter(job)
        for i, (source, out) in enumerate(todo):
            if options.cancel is not None and options.cancel.is_set():
                raise Cancelled("cancelled")
            ask = {"callback": _inner_progress(options, i, len(todo), Path(source).name),
                   "cancel": options.cancel, "preview_every": options.preview_every}
            yield paint_item(job, paint, source, out, ask)


def _inner_progress(options: RunOptions, i: int, n: int, name: str):
    """The algorithm's events of picture i of n, counted over the whole folder."""
    if options.callback is None:
        return None

    def forward(event: Progress) -> None:
        options.callback(Progress(event.task, f"{name} ({i + 1}/{n}) {event.stage}",
                                  i * event.total + event.step, n * event.total,
                                  event.losses, event.elapsed, event.image))
    return forward


def run_folder(job: Job, output: Path, options: RunOptions, todo: list[tuple[str, Path]],
               inputs: dict, failed_to: str = "painted") -> Outcome:
    """Paint a folder (see the module's docstring); ``inputs`` are the record's roles."""
    started = time.perf_counter()
    items: list[ItemResult] = []

    def done(item: ItemResult) -> None:
        items.append(item)
        if options.on_item is not None:
            options.on_item(item)

    pending = []
    for source, out in todo:
        if out.exists() and not job.overwrite:
            done(ItemResult(source, out, skipped=True))  # painted by an earlier run
        else:
            pending.append((source, out))
    engine = options.engine or LocalEngine()
    item_events = engine.name != "local" or job.kind == "fast"
    try:
        for item in engine.paint(job, pending, options):
            done(item)
            if item_events and options.callback is not None:
                options.callback(Progress(job.kind, "pictures", len(items), len(todo),
                                          elapsed=time.perf_counter() - started))
    except Cancelled as exc:
        written = sum(1 for i in items if i.output is not None and not i.skipped)
        raise Cancelled(f"cancelled after {len(items)} of {len(todo)} pictures ({written} "
                        "written now)", "run the same command again to paint the rest: "
                        "pictures already painted are skipped") from exc
    written = [i for i in items if i.error is None and not i.skipped]
    rec = provenance.record(job.kind, inputs, output, job.config,
                            time.perf_counter() - started, {},
                            outputs=[{"content": i.source, "output": str(i.output),
                                      "seconds": round(i.seconds, 3)} for i in written],
                            failed=sum(1 for i in items if i.error is not None),
                            skipped=sum(1 for i in items if i.skipped), engine=engine.name)
    return Outcome(output, rec, items, total=len(todo), failed_to=failed_to)

