"""The fast job: one pass of the trained network, for a picture or a folder of them."""
from __future__ import annotations

import time
from pathlib import Path

from .. import image as I
from ..errors import ConfigError, OutputError, PainterlyError
from ..fast import FastConfig, FastStylizer
from . import provenance
from .job import ItemResult, Job, Outcome, RunOptions
from .outputs import OutputLock

INPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def is_folder(source: str) -> bool:
    return source != "-" and Path(source).is_dir()


def pairs(job: Job, output: Path) -> list[tuple[str, Path]]:
    """(photo, output) pairs: one for a picture, one per picture for a folder (whose output
    is then a folder, made here if its parent exists)."""
    source = job.inputs[0]
    if not is_folder(source):
        return [(source, output)]
    pictures = sorted(p for p in Path(source).iterdir()
                      if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES)
    if not pictures:
        raise ConfigError(f"no pictures in folder {source}",
                          f"it needs files ending in {', '.join(INPUT_SUFFIXES)}")
    if output.suffix.lower() in I.OUTPUT_SUFFIXES or (output.exists() and not output.is_dir()):
        raise OutputError(f"{output} is not a folder", "with a folder of photos, the output "
                          "names a folder")
    if not output.exists():
        if not output.parent.is_dir() and str(output.parent):
            raise OutputError(f"folder {output.parent} does not exist", "create it first")
        output.mkdir()
    return [(str(p), output / f"{p.stem}.png") for p in pictures]


def check(job: Job, output: Path) -> list[tuple[str, Path]]:
    """Refuse, before any work, outputs that can't be written; returns the pairs to paint."""
    todo = pairs(job, output)
    for _, out in todo:
        I.check_output_path(out, overwrite=job.overwrite, inputs=job.inputs)
    return todo


def run(job: Job, output: Path, options: RunOptions,
        todo: list[tuple[str, Path]]) -> Outcome:
    """Paint every pair; the network loads and the paintings are read once. In a folder a
    picture that fails is reported (``options.on_item``) and the rest are still painted."""
    cfg: FastConfig = job.config
    style_files = list(job.inputs[1:])
    started = time.perf_counter()
    style_side = cfg.style_size or cfg.size or None
    styles = [job.reading.load(s, work_size=style_side) for s in style_files]
    stylizer = FastStylizer(cfg)
    items = []
    for source, out in todo:
        item = _paint_one(job, stylizer, styles, source, out, single=len(todo) == 1)
        items.append(item)
        if options.on_item is not None:
            options.on_item(item)
    written = [i for i in items if i.error is None]
    rec = provenance.record("fast", {"content": job.inputs[0], "styles": style_files}, output,
                            cfg, time.perf_counter() - started, {},
                            outputs=[{"content": i.source, "output": str(i.output),
                                      "seconds": round(i.seconds, 3)} for i in written],
                            failed=len(items) - len(written))
    return Outcome(output, rec, items if is_folder(job.inputs[0]) else [])


def _paint_one(job: Job, stylizer: FastStylizer, styles, source: str, out: Path,
               single: bool) -> ItemResult:
    t0 = time.perf_counter()
    try:
        with OutputLock(out):
            photo = job.reading.load(source, work_size=job.config.size or None)
            picture = stylizer(photo, styles)
            rec = provenance.record("fast", {"content": source, "styles": list(job.inputs[1:])},
                                    out, job.config, time.perf_counter() - t0, {})
            I.save_image(picture, out, overwrite=job.overwrite,
                         metadata=provenance.png_text(rec))
    except PainterlyError as exc:
        if single:
            raise
        return ItemResult(source, error=str(exc))  # the rest of the folder still gets done
    return ItemResult(source, out, time.perf_counter() - t0)
