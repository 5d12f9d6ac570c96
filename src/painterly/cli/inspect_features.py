"""``painterly inspect features``: flags -> a features Job (activation maximisation) -> run_job."""
from __future__ import annotations

import argparse

from ..inspect.features import OBJECTIVES, FeaturesConfig
from ..jobs import Job
from .common import add_net_flags, add_report_flags, floats, run_in_terminal

DEFAULTS = FeaturesConfig()


def add_parser(views) -> None:
    p = views.add_parser("features", help="feature visualisation: the picture a unit wants",
                         description="Activation maximisation as lucid does it (Olah et al. "
                         "2017): a 1/f-scaled Fourier spectrum in decorrelated colour, "
                         "optimised with random jitter, zoom and turns each step; one tile per "
                         "unit, in a labelled grid.")
    p.add_argument("-o", "--output", help="output picture (.png/.jpg/.webp); default features.png")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    _add_objective_flags(p)
    _add_render_flags(p)
    add_net_flags(p, DEFAULTS)
    p.add_argument("--save-every", type=int, default=0, metavar="N",
                   help="write a PNG snapshot of the grid every N steps")
    add_report_flags(p, "no progress bar")
    p.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                   help="progress on stderr: a bar, one JSON object per step, or none")
    p.set_defaults(func=run)


def _add_objective_flags(p) -> None:
    p.add_argument("--layer", default=DEFAULTS.layer,
                   help="the layer, e.g. relu3_1; relu4_1:7 picks one channel (%(default)s)")
    p.add_argument("--channels", default=DEFAULTS.channels,
                   help="channels to render: 0:16, 0:64:4 or 3,7,12 (%(default)s)")
    p.add_argument("--objective", choices=OBJECTIVES, default=DEFAULTS.objective,
                   help="channel: its mean; unit: its centre unit; layer: the whole layer "
                   "(DeepDream); direction: a direction in the layer's channels (%(default)s)")
    p.add_argument("--direction", type=floats, default=DEFAULTS.direction, metavar="W,W,…",
                   help="weights per channel for --objective direction (zeros after the last); "
                   "default: a random direction per channel listed, from --seed")
    p.add_argument("--copies", type=int, default=DEFAULTS.copies,
                   help="pictures per unit (%(default)s)")
    p.add_argument("--diversity", type=float, default=DEFAULTS.diversity,
                   help="push copies of a unit apart (lucid's Gram diversity), relative to the "
                   "objective; e.g. 1 (default %(default)s = off)")
    p.add_argument("--negative", action="store_true",
                   help="minimise instead: what inhibits the unit")


def _add_render_flags(p) -> None:
    p.add_argument("--size", type=int, default=DEFAULTS.size,
                   help="side of each picture, pixels (%(default)s)")
    p.add_argument("--steps", type=int, default=DEFAULTS.steps, help="Adam steps (%(default)s)")
    p.add_argument("--lr", type=float, default=DEFAULTS.lr,
                   help="Adam's learning rate (%(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed,
                   help="seed of the start and the random views; same seed, same bytes")
    p.add_argument("--jitter", type=int, default=DEFAULTS.jitter,
                   help="random shift each step, ± pixels (%(default)s)")
    p.add_argument("--scale", type=floats, default=DEFAULTS.scale, metavar="LOW,HIGH",
                   help="random zoom range each step (%s)" % ",".join(map(str, DEFAULTS.scale)))
    p.add_argument("--rotation", type=float, default=DEFAULTS.rotation,
                   help="random turn each step, ± degrees (%(default)s)")
    p.add_argument("--decorrelate", action=argparse.BooleanOptionalAction,
                   default=DEFAULTS.decorrelate,
                   help="optimise ImageNet's decorrelated colours rather than RGB (on)")
    p.add_argument("--fft", action=argparse.BooleanOptionalAction, default=DEFAULTS.fft,
                   help="optimise a 1/f-scaled Fourier spectrum rather than pixels (on)")


def config_from_args(args) -> FeaturesConfig:
    return FeaturesConfig(
        layer=args.layer, channels=args.channels, objective=args.objective,
        direction=tuple(args.direction), copies=args.copies, diversity=args.diversity,
        negative=args.negative, size=args.size, steps=args.steps, lr=args.lr, seed=args.seed,
        jitter=args.jitter, scale=tuple(args.scale), rotation=args.rotation,
        decorrelate=args.decorrelate, fft=args.fft, model=args.model, weights=args.weights,
        pooling=args.pooling, device=args.device, precision=args.precision)


def run(args) -> int:
    job = Job("features", (), config_from_args(args), args.output, args.overwrite)
    run_in_terminal(args, job)
    return 0
