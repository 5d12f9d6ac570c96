"""The dream job: DeepDream on a picture, or a zooming animation of dreams."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from .. import image as I
from ..deepdream import DreamConfig, dream, dream_zoom, open_session
from ..errors import Cancelled, ConfigError, DivergedError, OutputError
from ..video import ANIMATION_SUFFIXES, check_animation_path, save_animation
from . import batch, provenance
from .job import Job, Outcome, RunOptions, Watcher, preview_cadence
from .outputs import OutputLock, check_not_an_input, rescue_path
from .style import save_rescued


def check(job: Job, output: Path) -> None:
    """Everything that would make the output unwritable, refused before any work."""
    cfg: DreamConfig = job.config
    if batch.is_folder(job.inputs[0]):
        if job.animation:
            raise ConfigError("`frames` animates one picture", "give a picture, not a folder")
        return batch.check(job, output)
    is_animation = output.suffix.lower() in ANIMATION_SUFFIXES
    if job.animation and not is_animation:
        raise OutputError(f"`frames` needs an animation output, not {output.name}",
                          f"use one of {', '.join(ANIMATION_SUFFIXES)}")
    if is_animation and not job.animation:
        raise ConfigError(f"{output.name} is an animation", "pass `frames` N (e.g. `frames` 30)")
    inputs = job.inputs + ((cfg.guide,) if cfg.guide else ())
    check_not_an_input(output, inputs)  # check_output_path's test, also for animations
    if job.animation:
        check_animation_path(output, overwrite=job.overwrite)
        _check_frames_dir(job)
    else:
        I.check_output_path(output, overwrite=job.overwrite, inputs=inputs)


def _check_frames_dir(job: Job) -> None:
    if not job.animation.save_frames:
        return
    folder = Path(job.animation.save_frames)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is not a folder", "give `save_frames` a folder")
    if not folder.exists():
        if not folder.parent.is_dir():  # save_frames makes one folder, not a path of them
            raise OutputError(f"folder {folder.parent} does not exist", "create it first")
        return
    for i in range(job.animation.frames):
        I.check_output_path(frame_path(folder, i), overwrite=job.overwrite)


def frame_path(folder: Path, i: int) -> Path:
    return folder / f"frame_{i:04d}.png"


def painter(job: Job) -> batch.Paint:
    """The network loaded and the guide's features taken once; dreams one picture."""
    cfg: DreamConfig = job.config
    guide = job.reading.load(cfg.guide) if cfg.guide is not None else None
    session = open_session(cfg, guide)

    def paint(source: str, out: Path, ask: dict):
        picture = job.reading.load(source, work_size=cfg.size)
        watcher = Watcher(ask.get("callback"), 0, out)
        result = dream(picture, cfg, callback=watcher, cancel=ask.get("cancel"),
                       preview_every=ask.get("preview_every", 0), session=session)
        return result, provenance.record("dream", {"picture": source, "guide": cfg.guide}, out,
                                         cfg, watcher.seconds, watcher.losses)
    return paint


def run(job: Job, output: Path, options: RunOptions, checked=None) -> Outcome:
    if batch.is_folder(job.inputs[0]):
        return batch.run_folder(job, output, options, checked,
                                {"picture": job.inputs[0], "guide": job.config.guide},
                                failed_to="dreamed")
    with OutputLock(output):
        cfg: DreamConfig = job.config
        picture = job.reading.load(job.inputs[0], work_size=cfg.size)
        guide = job.reading.load(cfg.guide) if cfg.guide is not None else None
        # Snapshots are PNGs beside an animation (a .gif can't hold a single snapshot).
        snapshots = output.with_suffix(".png") if job.animation else output
        watcher = Watcher(options.callback, options.snapshot_every, snapshots)
        if job.animation:
            _animate(job, picture, guide, output, watcher, options)
        else:
            _still(job, picture, guide, output, watcher, options)
    return Outcome(output, _record(job, output, watcher))


def _record(job: Job, output: Path, watcher: Watcher) -> dict:
    extra = {"animation": asdict(job.animation)} if job.animation else {}
    return provenance.record("dream", {"picture": job.inputs[0], "guide": job.config.guide},
                             output, job.config, watcher.seconds, watcher.losses, **extra)


def _ask(options: RunOptions, watcher: Watcher) -> dict:
    return {"callback": watcher, "cancel": options.cancel,
            "preview_every": preview_cadence(options.preview_every, options.snapshot_every)}


def _still(job: Job, picture, guide, output: Path, watcher: Watcher, options: RunOptions):
    try:
        result = dream(picture, job.config, guide=guide, **_ask(options, watcher))
    except (Cancelled, DivergedError) as exc:
        saved = save_rescued(exc, output)
        raise type(exc)(f"{exc.message}; picture so far saved to {saved}", exc.hint) from exc
    I.save_image(result, output, metadata=provenance.png_text(_record(job, output, watcher)),
                 overwrite=job.overwrite)


def _animate(job: Job, picture, guide, output: Path, watcher: Watcher, options: RunOptions):
    animation = job.animation
    if animation.save_frames:
        Path(animation.save_frames).mkdir(exist_ok=True)
    frames = []
    try:
        for frame in dream_zoom(picture, job.config, animation.frames, animation.zoom,
                                animation.rotate, guide=guide, **_ask(options, watcher)):
            frames.append(frame)
            if animation.save_frames:
                path = frame_path(Path(animation.save_frames), len(frames) - 1)
                I.save_image(frame, path, overwrite=True,
                             metadata=provenance.png_text(_record(job, path, watcher)))
    except (Cancelled, DivergedError) as exc:
        saved = _rescue_animation(exc, frames, output, animation.fps)
        raise type(exc)(f"{exc.message}; frames so far saved to {saved}", exc.hint) from exc
    save_animation(frames, output, fps=animation.fps, overwrite=job.overwrite)


def _rescue_animation(exc, frames: list, output: Path, fps: float) -> Path:
    if not frames:
        return save_rescued(exc, output.with_suffix(".png"))
    return save_animation(frames, rescue_path(output), fps=fps, overwrite=True)
