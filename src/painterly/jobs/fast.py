"""The fast job: one pass of the trained network, for a picture, a folder of them or a video."""
from __future__ import annotations

import time
from pathlib import Path

from ..fast import FastConfig, FastStylizer
from ..video import is_video
from . import batch, provenance
from .batch import is_folder
from .job import Job, Outcome, RunOptions

INPUT_SUFFIXES = batch.PICTURE_SUFFIXES


def check(job: Job, output: Path):
    """Refuse, before any work, outputs that can't be written; returns what to paint."""
    from .. import image as I
    source = job.inputs[0]
    if is_folder(source):
        return batch.check(job, output)
    if is_video(source):
        from . import clip  # videos only: it brings the optimiser and optical flow
        return clip.check(job, output)
    I.check_output_path(output, overwrite=job.overwrite, inputs=job.inputs)
    return [(source, output)]


def painter(job: Job) -> batch.Paint:
    """The network loaded and the paintings read once; paints one photo (file or tensor)."""
    cfg: FastConfig = job.config
    style_files = list(job.inputs[1:])
    style_side = cfg.style_size or cfg.size or None
    styles = [job.reading.load(s, work_size=style_side) for s in style_files]
    stylizer = FastStylizer(cfg)

    def paint(source, out: Path, ask: dict):
        started = time.perf_counter()
        photo = source if not isinstance(source, str) else \
            job.reading.load(source, work_size=cfg.size or None)
        picture = stylizer(photo, styles)
        rec = provenance.record("fast", {"content": source if isinstance(source, str) else None,
                                         "styles": style_files},
                                out, cfg, time.perf_counter() - started, {})
        return picture, rec
    return paint


def run(job: Job, output: Path, options: RunOptions, todo) -> Outcome:
    """A folder (one bad picture reported, the rest written), a video, or one picture."""
    inputs = {"content": job.inputs[0], "styles": list(job.inputs[1:])}
    if is_folder(job.inputs[0]):
        return batch.run_folder(job, output, options, todo, inputs, failed_to="stylised")
    if is_video(job.inputs[0]):
        from . import clip
        return clip.run_fast(job, output, options, todo)
    started = time.perf_counter()
    item = batch.paint_one(job, painter(job), job.inputs[0], output, {})
    rec = provenance.record("fast", inputs, output, job.config, time.perf_counter() - started,
                            {}, outputs=[{"content": item.source, "output": str(item.output),
                                          "seconds": round(item.seconds, 3)}], failed=0)
    return Outcome(output, rec)
