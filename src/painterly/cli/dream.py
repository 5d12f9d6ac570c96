"""``painterly dream``: flags -> a dream Job (a still or a zoom animation) -> jobs.run_job."""
from __future__ import annotations

from ..deepdream import OBJECTIVES, DreamConfig
from ..errors import ConfigError
from ..jobs import Animation, Job
from .common import add_engine_flags, add_net_flags, add_run_flags, reading, run_in_terminal

DEFAULTS = DreamConfig()
ANIMATION = Animation()


def add_parsers(sub) -> None:
    p = sub.add_parser("dream", help="DeepDream: grow the patterns a network sees in a picture",
                       description="DeepDream (Mordvintsev et al. 2015) with octaves and tiled, "
                       "randomly rolled gradients; optionally a zooming animation.")
    p.add_argument("picture", help="the picture (a file, - for stdin, or a folder of pictures)")
    p.add_argument("-o", "--output", help="output picture (.png/.jpg/.webp), .gif/.mp4 with "
                   "--frames, or a folder when PICTURE is a folder; default <picture>_dream.png")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (in "
                   "a folder, pictures already painted are otherwise skipped)")
    _add_objective_flags(p)
    _add_schedule_flags(p)
    _add_animation_flags(p)
    add_net_flags(p, DEFAULTS)
    add_engine_flags(p)
    add_run_flags(p)
    p.set_defaults(func=run)


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
    p.add_argument("--zoom", type=float, default=ANIMATION.zoom, help="zoom per frame (%(default)s)")
    p.add_argument("--rotate", type=float, default=ANIMATION.rotate,
                   help="degrees per frame, counter-clockwise (%(default)s)")
    p.add_argument("--fps", type=float, default=ANIMATION.fps, help="frames per second (%(default)s)")
    p.add_argument("--save-frames", metavar="DIR", help="also write every frame as a PNG here")


def config_from_args(args) -> DreamConfig:
    return DreamConfig(
        layers=tuple(l for item in args.layers for l in item.split(",") if l),
        layer_weights=tuple(args.layer_weights), objective=args.objective,
        octaves=args.octaves, octave_scale=args.octave_scale, steps=args.steps,
        step_size=args.step_size, smoothing=args.smoothing, tile_size=args.tile_size,
        guide=args.guide, guide_size=args.guide_size, size=args.size, seed=args.seed,
        model=args.model, weights=args.weights, pooling=args.pooling, device=args.device,
        precision=args.precision)


def animation_from_args(args) -> Animation | None:
    if args.frames < 0:
        raise ConfigError(f"invalid frames: {args.frames}", "expected an integer ≥ 0")
    if not args.frames:
        return None
    return Animation(args.frames, args.zoom, args.rotate, args.fps, args.save_frames)


def run(args) -> int:
    job = Job("dream", (args.picture,), config_from_args(args), args.output, args.overwrite,
              reading(args), animation=animation_from_args(args))
    run_in_terminal(args, job)
    return 0
