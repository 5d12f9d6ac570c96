"""The style job: a photo painted like one or more paintings, by optimisation."""
from __future__ import annotations

from pathlib import Path

from .. import image as I
from ..errors import Cancelled, ConfigError, DivergedError
from ..files import remove_quietly
from ..transfer import (INITS, Stylist, TransferConfig, save_checkpoint, starts_from_fast,
                        stylize)
from . import batch, clip, provenance
from .job import Job, Outcome, RunOptions, Watcher, preview_cadence
from .outputs import OutputLock, checkpoint_path, rescue_path


def check(job: Job, output: Path):
    """Everything that would make the output unwritable, refused before any work."""
    cfg: TransferConfig = job.config
    inputs = job.inputs + ((cfg.init,) if cfg.init not in INITS else ())
    if batch.is_folder(job.inputs[0]) or clip.is_video(job.inputs[0]):
        if job.resume:
            raise ConfigError("`resume` continues one picture",
                              "a folder or a video continues by itself: run the same command "
                              "again")
        if batch.is_folder(job.inputs[0]):
            return batch.check(job, output)
        return clip.check(job, output)
    I.check_output_path(output, overwrite=job.overwrite, inputs=inputs)
    return None


def run(job: Job, output: Path, options: RunOptions, checked=None) -> Outcome:
    if batch.is_folder(job.inputs[0]):
        return batch.run_folder(job, output, options, checked,
                                {"content": job.inputs[0], "styles": list(job.inputs[1:])})
    if clip.is_video(job.inputs[0]):
        return clip.run_style(job, output, options, checked)
    with OutputLock(output):
        return _paint(job, output, options)


def painter(job: Job) -> batch.Paint:
    """The network loaded and the paintings' Gram matrices kept; paints one photo."""
    cfg: TransferConfig = job.config
    style_files = list(job.inputs[1:])
    style_side = max(I.MIN_SIDE, round(cfg.size * cfg.style_scale))
    paintings = [job.reading.load(s, work_size=style_side) for s in style_files]
    stylist = Stylist(cfg, paintings)
    starter = FastStart(cfg) if starts_from_fast(cfg) else None

    def paint(source: str, out: Path, ask: dict):
        photo = job.reading.load(source, work_size=cfg.size)
        watcher = Watcher(ask.get("callback"), 0, out)
        picture = stylist(photo, callback=watcher, cancel=ask.get("cancel"),
                          preview_every=ask.get("preview_every", 0),
                          init_picture=starter(photo, paintings) if starter else None)
        rec = provenance.record("style", {"content": source, "styles": style_files}, out, cfg,
                                watcher.seconds, watcher.losses, stages=watcher.stages)
        return picture, rec
    return paint


def _paint(job: Job, output: Path, options: RunOptions) -> Outcome:
    cfg: TransferConfig = job.config
    content, *style_files = job.inputs
    photo = job.reading.load(content, work_size=cfg.size)
    style_side = max(I.MIN_SIDE, round(cfg.size * cfg.style_scale))
    styles = [job.reading.load(s, work_size=style_side) for s in style_files]
    watcher = Watcher(options.callback, options.snapshot_every, output)
    start = FastStart(cfg)(photo, styles) if starts_from_fast(cfg) and not job.resume else None
    try:
        picture = stylize(photo, styles, cfg, callback=watcher, cancel=options.cancel,
                          resume_from=job.resume,
                          preview_every=preview_cadence(options.preview_every,
                                                        options.snapshot_every),
                          init_picture=start)
    except Cancelled as exc:
        raise interrupted(exc, output) from exc
    except DivergedError as exc:
        saved = save_rescued(exc, output)
        raise DivergedError(f"{exc.message}; last good picture saved to {saved}",
                            exc.hint) from exc
    rec = provenance.record("style", {"content": content, "styles": style_files}, output, cfg,
                            watcher.seconds, watcher.losses, stages=watcher.stages)
    I.save_image(picture, output, metadata=provenance.png_text(rec), overwrite=job.overwrite)
    if job.resume is not None:
        _drop_what_the_interruption_left(job.resume, output)
    return Outcome(output, rec)


def _drop_what_the_interruption_left(resumed_from: str, output: Path) -> None:
    """A resumed run that finished makes the interrupted run's checkpoint and picture so far
    obsolete: they are removed when they are this output's own (``OUT.ckpt`` and
    ``OUT-unfinished.png``, as the interruption wrote them); a checkpoint kept elsewhere
    stays."""
    checkpoint = checkpoint_path(output)
    if Path(resumed_from).resolve() == checkpoint.resolve():
        remove_quietly(checkpoint)
        remove_quietly(rescue_path(output))


class FastStart:
    """The quick preset's (and `init` fast's) starting picture: painterly fast's painting of
    the photo, the same paintings blended by the same weights; the networks load once."""

    def __init__(self, cfg: TransferConfig):
        from ..fast import FastConfig, FastStylizer
        # palette 0: the optimisation sets the colours itself, and the quick preset's
        # figures (README, docs/performance.md) were measured from the decoder's own colours.
        self.stylizer = FastStylizer(FastConfig(size=0, style_weights=cfg.style_weights,
                                                palette=0.0, device=cfg.device))

    def __call__(self, photo, paintings):
        return self.stylizer(photo, paintings)


def interrupted(exc: Cancelled, output: Path) -> Cancelled:
    """Save the picture so far and the checkpoint; the error says how to resume."""
    saved = save_rescued(exc, output)
    message, hint, ckpt = "cancelled at iteration", exc.hint, None
    if exc.checkpoint is not None:
        ckpt = save_checkpoint(exc.checkpoint, checkpoint_path(output))
        message += f" {exc.checkpoint['step']}/{exc.checkpoint['total']}"
        hint = f"resume with `resume` {ckpt} (and the same pictures and settings)"
    else:
        message = f"cancelled ({exc.message})"
    return Cancelled(f"{message}; picture so far saved to {saved}", hint, saved_checkpoint=ckpt)


def save_rescued(exc, output: Path) -> Path:
    """Write the picture so far (Cancelled) or the last good one (DivergedError) beside the
    output, never over it."""
    picture = exc.partial if isinstance(exc, Cancelled) else exc.last_good
    rescued = rescue_path(output)
    if picture is not None:
        I.save_image(picture, rescued, overwrite=True)
    return rescued
