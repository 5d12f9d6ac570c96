"""The fast contact sheet: one photo painted in every built-in style (or in each painting
given), one labelled tile each, the photo itself first (``painterly fast photo.jpg --sheet``,
``painterly fast photo.jpg a.jpg b.jpg --sheet``)."""
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
    if job.config.style_weights:
        raise ConfigError("a contact sheet paints the photo in each painting on its own",
                          "drop the style weights (or leave out --sheet to blend them)")
    I.check_output_path(output, overwrite=job.overwrite, inputs=job.inputs)
    return None


def tile_side(cfg: FastConfig) -> int:
    """Long side of each tile: the network's work size (or the photo's size limit)."""
    return cfg.work_size or cfg.size or 512


def sheet(photo, config: FastConfig, reading: I.ReadOptions = I.ReadOptions(),
          stylizer: FastStylizer | None = None, paintings: tuple[str, ...] = ()):
    """The sheet as a picture, and the styles on it, in order: the built-in styles' names, or
    the files of ``paintings`` when there are any."""
    side = tile_side(config)
    picture = reading.load(photo, work_size=side)
    if max(picture.shape[-2:]) > side:
        picture = I.resize(picture, long_side=side)
    stylizer = stylizer or FastStylizer(config)
    shown = tuple(paintings) or styles.names()
    tiles = [I.caption(picture, "photo", CAPTION_SIZE)]
    for style in shown:
        file = style if paintings else str(styles.path(style))
        painting = reading.load(file, work_size=config.style_size or side)
        tiles.append(I.caption(stylizer(picture, painting), _label(style, bool(paintings)),
                               CAPTION_SIZE))
    return I.montage(tiles, COLUMNS, gap=4), shown


def _label(style: str, is_file: bool) -> str:
    """A built-in style's caption; a file's name (a built-in style's file: its caption)."""
    if not is_file:
        return styles.label(style)
    builtin = {str(styles.path(n)): n for n in styles.names()}.get(str(style))
    return styles.label(builtin) if builtin else Path(style).name


def run(job: Job, output: Path, options: RunOptions, checked=None) -> Outcome:
    started = time.perf_counter()
    with OutputLock(output):
        paintings = tuple(job.inputs[1:])
        picture, shown = sheet(job.inputs[0], job.config, job.reading, paintings=paintings)
        files = list(paintings) or [str(styles.path(n)) for n in shown]
        rec = provenance.record("fast-sheet", {"content": job.inputs[0], "styles": files},
                                output, job.config, time.perf_counter() - started, {},
                                styles=list(shown))
        I.save_image(picture, output, metadata=provenance.png_text(rec), overwrite=job.overwrite)
    return Outcome(output, rec)
