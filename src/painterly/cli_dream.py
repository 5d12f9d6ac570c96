"""``painterly dream``: flags -> DreamConfig -> dream() or dream_zoom(), progress, saving."""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from . import __version__
from . import image as I
from .cli import (_cancel_on_signals, _finish, _OutputLock, _Reporter, _save_rescued,
                  _versions, _with_signal, add_net_flags, add_run_flags, input_options)
from .dream import (ANIMATION_SUFFIXES, OBJECTIVES, DreamConfig, check_animation_path, dream,
                    dream_zoom, save_animation)
from .errors import Cancelled, ConfigError, DivergedError, OutputError

DEFAULTS = DreamConfig()


def add_parser(sub) -> None:
    p = sub.add_parser("dream", help="DeepDream: grow the patterns a network sees in a picture",
                       description="DeepDream (Mordvintsev et al. 2015) with octaves and tiled, "
                       "randomly rolled gradients; optionally a zooming animation.")
    p.add_argument("picture", help="the picture (a file, or - for stdin)")
    p.add_argument("-o", "--output", help="output picture (.png/.jpg/.webp), or .gif/.mp4 with "
                   "--frames; default <picture>_dream.png")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    _add_objective_flags(p)
    _add_schedule_flags(p)
    _add_animation_flags(p)
    add_net_flags(p, DEFAULTS)
    add_run_flags(p)
    p.set_defaults(func=run_dream)


def _add_objective_flags(p) -> None:
    p.add_argument("--layers", nargs="+", default=list(DEFAULTS.layers), metavar="LAYER",
                   help="layers whose activations grow, e.g. relu4_3 relu5_1, or one channel: "
                   f"relu4_2:37 (default {' '.join(DEFAULTS.layers)})")
    p.add_argument("--layer-weights", nargs="+", type=float, default=list(DEFAULTS.layer_weights),
                   metavar="W", help="one weight per layer (default equal)")
    p.add_argument("--objective", choices=OBJECTIVES, default=DEFAULTS.objective,
                   help="maximise the mean activation, or l2: ½‖a‖² (default %(default)s)")
    p.add_argument("--guide", default=DEFAULTS.guide, metavar="FILE",
                   help="dream towards the features of this picture")
    p.add_argument("--guide-size", type=int, default=DEFAULTS.guide_size,
                   help="long side of the guide when its features are taken (%(default)s)")


def _add_schedule_flags(p) -> None:
    p.add_argument("--size", type=int, default=DEFAULTS.size,
                   help="resize the picture's long side first (default: keep its size)")
    p.add_argument("--octaves", type=int, default=DEFAULTS.octaves,
                   help="number of scales (%(default)s)")
    p.add_argument("--octave-scale", type=float, default=DEFAULTS.octave_scale,
                   help="size ratio between scales (%(default)s)")
    p.add_argument("--steps", type=int, default=DEFAULTS.steps,
                   help="steps per octave (%(default)s)")
    p.add_argument("--step-size", type=float, default=DEFAULTS.step_size,
                   help="mean change of a pixel per step, 0-1 scale (%(default)s)")
    p.add_argument("--smoothing", type=float, default=DEFAULTS.smoothing,
                   help="σ in pixels of the gradient blur; 0 = off (%(default)s)")
    p.add_argument("--tile-size", type=int, default=DEFAULTS.tile_size,
                   help="gradients are computed in tiles of this many pixels (%(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed, help="seed of the random rolls")


def _add_animation_flags(p) -> None:
    p.add_argument("--frames", type=int, default=0,
                   help="make a zooming animation of N frames (output .gif or .mp4)")
    p.add_argument("--zoom", type=float, default=1.05, help="zoom per frame (%(default)s)")
    p.add_argument("--rotate", type=float, default=0.0,
                   help="degrees per frame, counter-clockwise (%(default)s)")
    p.add_argument("--fps", type=float, default=12.0, help="frames per second (%(default)s)")
    p.add_argument("--save-frames", metavar="DIR", help="also write every frame as a PNG here")


def config_from_args(args) -> DreamConfig:
    return DreamConfig(
        layers=tuple(l for item in args.layers for l in item.split(",") if l),
        layer_weights=tuple(args.layer_weights), objective=args.objective,
        octaves=args.octaves, octave_scale=args.octave_scale, steps=args.steps,
        step_size=args.step_size, smoothing=args.smoothing, tile_size=args.tile_size,
        guide=args.guide, guide_size=args.guide_size, size=args.size, seed=args.seed,
        model=args.model, weights=args.weights, pooling=args.pooling, device=args.device,
        precision=args.precision, preview_every=args.save_every)


def run_dream(args) -> int:
    config = config_from_args(args)
    output = Path(args.output or _default_output(args.picture, args.frames))
    _check_outputs(args, config, output)
    with _OutputLock(output):
        return _run_locked(args, config, output)


def _run_locked(args, config: DreamConfig, output: Path) -> int:
    picture = I.load_image(args.picture, work_size=args.size, **input_options(args))
    guide = None
    if config.guide is not None:
        guide = I.load_image(config.guide, **input_options(args))
    started = time.perf_counter()
    if args.frames:
        losses = _animate(args, config, picture, guide, output)
    else:
        losses = _still(args, config, picture, guide, output)
    elapsed = time.perf_counter() - started
    _finish(args, _record(args, config, output, elapsed, losses), elapsed, output)
    return 0


def _default_output(picture: str, frames: int) -> str:
    stem = Path(picture).stem if picture != "-" else "stdin"
    return f"{stem}_dream.{'gif' if frames else 'png'}"


def _check_outputs(args, config: DreamConfig, output: Path) -> None:
    """Everything that would make the output unwritable, refused before any work."""
    if args.frames < 0:
        raise ConfigError(f"invalid frames: {args.frames}", "expected an integer ≥ 0")
    is_animation = output.suffix.lower() in ANIMATION_SUFFIXES
    if args.frames and not is_animation:
        raise OutputError(f"--frames needs an animation output, not {output.name}",
                          f"use one of {', '.join(ANIMATION_SUFFIXES)}")
    if is_animation and not args.frames:
        raise ConfigError(f"{output.name} is an animation", "pass --frames N (e.g. --frames 30)")
    inputs = (args.picture,) + ((config.guide,) if config.guide else ())
    for source in inputs:  # check_output_path's same-file test, also for animations
        if Path(source).exists() and output.exists() and Path(source).samefile(output):
            raise OutputError(f"output {output} is one of the inputs", "choose another output path")
    if args.frames:
        check_animation_path(output, overwrite=args.overwrite)
        _check_frames_dir(args)
    else:
        I.check_output_path(output, overwrite=args.overwrite, inputs=inputs)


def _check_frames_dir(args) -> None:
    if not args.save_frames:
        return
    folder = Path(args.save_frames)
    if folder.exists() and not folder.is_dir():
        raise OutputError(f"{folder} is not a folder", "give --save-frames a folder")
    if not folder.exists():
        if not folder.parent.is_dir():  # --save-frames makes one folder, not a path of them
            raise OutputError(f"folder {folder.parent} does not exist", "create it first")
        return
    for i in range(args.frames):
        I.check_output_path(_frame_path(folder, i), overwrite=args.overwrite)


def _frame_path(folder: Path, i: int) -> Path:
    return folder / f"frame_{i:04d}.png"


def _still(args, config: DreamConfig, picture, guide, output: Path) -> dict:
    with _Reporter(args, output) as reporter, _cancel_on_signals() as cancel:
        try:
            result = dream(picture, config, callback=reporter, cancel=cancel, guide=guide)
        except (Cancelled, DivergedError) as exc:
            saved = _save_rescued(exc, output)
            raise _with_signal(type(exc)(f"{exc.message}; picture so far saved to {saved}",
                                         exc.hint), cancel) from exc
    I.save_image(result, output, metadata=_metadata(config), overwrite=args.overwrite)
    return reporter.last_losses


def _animate(args, config: DreamConfig, picture, guide, output: Path) -> dict:
    if args.save_frames:
        Path(args.save_frames).mkdir(exist_ok=True)
    frames = []
    # Snapshots are PNGs beside the animation (a .gif can't hold a single snapshot).
    with _Reporter(args, output.with_suffix(".png")) as reporter, _cancel_on_signals() as cancel:
        try:
            for frame in dream_zoom(picture, config, args.frames, args.zoom, args.rotate,
                                    callback=reporter, cancel=cancel, guide=guide):
                frames.append(frame)
                if args.save_frames:
                    I.save_image(frame, _frame_path(Path(args.save_frames), len(frames) - 1),
                                 metadata=_metadata(config), overwrite=True)
        except (Cancelled, DivergedError) as exc:
            saved = _rescue_animation(exc, frames, output, args.fps)
            raise _with_signal(type(exc)(f"{exc.message}; frames so far saved to {saved}",
                                         exc.hint), cancel) from exc
    save_animation(frames, output, fps=args.fps, overwrite=args.overwrite)
    return reporter.last_losses


def _rescue_animation(exc, frames: list, output: Path, fps: float) -> Path:
    if not frames:
        return _save_rescued(exc, output.with_suffix(".png"))
    rescued = output.with_name(f"{output.stem}-unfinished{output.suffix}")
    return save_animation(frames, rescued, fps=fps, overwrite=True)


def _metadata(config: DreamConfig) -> dict:
    return {"Software": f"painterly {__version__}", "painterly": json.dumps(asdict(config)),
            "painterly-seed": str(config.seed), "painterly-versions": json.dumps(_versions())}


def _record(args, config: DreamConfig, output: Path, elapsed: float, losses: dict) -> dict:
    record = {"command": "dream", "picture": args.picture, "output": str(output),
              "settings": asdict(config), "seed": config.seed, "seconds": round(elapsed, 2),
              "final_losses": losses, "version": __version__, "versions": _versions()}
    if args.frames:
        record["animation"] = {"frames": args.frames, "zoom": args.zoom, "rotate": args.rotate,
                               "fps": args.fps, "save_frames": args.save_frames}
    return record
