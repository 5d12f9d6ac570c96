"""The fast contact sheet: one photo painted in every built-in style, one labelled tile each,
the photo itself first (``painterly fast photo.jpg --sheet``)."""
from __future__ import annotations

import time
from pathlib import Path

from .. import image as I
from .. import styles
from ..errors import ConfigError
from ..fast import FastConfig, FastStylizer
from . import provenance
from .job import Job, Outcome, RunOptions
from .outputs import OutputLock

COLUMNS = 3
CAPTION_SIZE = 14


def check(job: Job, output: Path):
    """One photo file in, one picture out: refused before any work otherwise."""
    if len(job.inputs) != 1:
        raise ConfigError("a contact sheet paints the photo in every built-in style",
                          "give only the photo (no paintings)")
    I.check_output_path(output, overwrite=job.overwrite, inputs=job.inputs)
    return None


def tile_side(cfg: FastConfig) -> int:
    """Long side of each tile: the network's work size (or the photo's size limit)."""
    return cfg.work_size or cfg.size or 512


def sheet(photo, config: FastConfig, reading: I.ReadOptions = I.ReadOptions(),
          stylizer: FastStylizer | None = None):
    """The sheet as a picture, and the names of the styles on it, in order."""
    side = tile_side(config)
    picture = reading.load(photo, work_size=side)
    if max(picture.shape[-2:]) > side:
        picture = I.resize(picture, long_side=side)
    stylizer = stylizer or FastStylizer(config)
    names = styles.names()
    tiles = [I.caption(picture, "photo", CAPTION_SIZE)]
    for name in names:
        painting = reading.load(str(styles.path(name)), work_size=config.style_size or side)
        tiles.append(I.caption(stylizer(picture, painting), styles.label(name), CAPTION_SIZE))
    return I.montage(tiles, COLUMNS, gap=4), names


def run(job: Job, output: Path, options: RunOptions, checked=None) -> Outcome:
    started = time.perf_counter()
    with OutputLock(output):
        picture, names = sheet(job.inputs[0], job.config, job.reading)
        rec = provenance.record("fast-sheet", {"content": job.inputs[0],
                                               "styles": [str(styles.path(n)) for n in names]},
                                output, job.config, time.perf_counter() - started, {},
                                styles=list(names))
        I.save_image(picture, output, metadata=provenance.png_text(rec), overwrite=job.overwrite)
    return Outcome(output, rec)
