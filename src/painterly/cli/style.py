"""``painterly style``: flags -> a style Job -> jobs.run_job, with a progress bar."""
from __future__ import annotations

from ..errors import ConfigError
from ..jobs import Clip, Job
from ..optim import OPTIMIZERS
from ..transfer import INITS, PRESERVE_COLOR, PRESETS, TransferConfig
from .common import (add_clip_flags, add_engine_flags, add_net_flags, add_run_flags,
                     add_style_flags, clip_from_args, floats, ints, names, paintings, reading,
                     run_in_terminal)

DEFAULTS = TransferConfig()


def add_parsers(sub) -> None:
    p = sub.add_parser("style", help="paint a photo in the style of one or more paintings",
                       description="Style transfer by optimisation (Gatys et al. 2015).")
    p.add_argument("content", help="the photo (a file, - for stdin, a folder of pictures, or "
                   "a video: slow, minutes a frame)")
    add_style_flags(p)
    p.add_argument("-o", "--output", help="output picture (.png/.jpg/.webp), a folder when "
                   "CONTENT is a folder, a video (.mp4/.mov/.mkv) when it is a video; "
                   "default <content>_<style>.png (.mp4)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output (in "
                   "a folder, pictures already painted are otherwise skipped)")
    p.add_argument("--size", type=int, default=DEFAULTS.size, help="long side of the output (%(default)s)")
    p.add_argument("--min-size", type=int, default=DEFAULTS.min_size,
                   help="long side of the coarsest scale (%(default)s); = --size for one scale")
    p.add_argument("--iterations", type=ints, default=DEFAULTS.iterations,
                   help="iterations per scale, coarse to fine (e.g. 150,60,40), or one count "
                   "for every scale; default automatic")
    p.add_argument("--quality", choices=tuple(PRESETS), default=DEFAULTS.quality,
                   help="iteration schedule when --iterations is not given (%(default)s)")
    p.add_argument("--content-layers", type=names, default=DEFAULTS.content_layers,
                   help="content layers (%(default)s)")
    p.add_argument("--style-layers", type=names, default=DEFAULTS.style_layers,
                   help="style layers, optionally with weights: relu1_1:1,relu2_1:0.5,…")
    p.add_argument("--content-weight", type=float, default=DEFAULTS.content_weight)
    p.add_argument("--style-weight", type=float, default=DEFAULTS.style_weight)
    p.add_argument("--tv-weight", type=float, default=DEFAULTS.tv_weight)
    p.add_argument("--style-weights", type=floats, default=DEFAULTS.style_weights,
                   help="blend of several styles, e.g. 0.7,0.3")
    p.add_argument("--style-scale", type=float, default=DEFAULTS.style_scale,
                   help="size of the style picture relative to the output (%(default)s)")
    p.add_argument("--optimizer", choices=OPTIMIZERS, default=DEFAULTS.optimizer)
    p.add_argument("--lr", type=float, default=DEFAULTS.lr,
                   help="step size (default 1 for lbfgs, 0.02 for adam)")
    p.add_argument("--init", default=DEFAULTS.init,
                   help=f"starting picture: {' or '.join(INITS)} or a picture file (%(default)s)")
    p.add_argument("--preserve-color", choices=PRESERVE_COLOR, default=DEFAULTS.preserve_color)
    p.add_argument("--seed", type=int, default=DEFAULTS.seed,
                   help="seed of the noise init (%(default)s); the same seed gives the same bytes")
    p.add_argument("--resume", metavar="CKPT",
                   help="continue the run interrupted with this checkpoint (OUT.ckpt); give the "
                   "same pictures and settings")
    add_net_flags(p, DEFAULTS)
    add_clip_flags(p, Clip())
    add_engine_flags(p)
    add_run_flags(p)
    p.set_defaults(func=run)


def config_from_args(args) -> TransferConfig:
    layers, layer_weights = split_layer_weights(args.style_layers)
    return TransferConfig(
        size=args.size, min_size=min(args.min_size, args.size), iterations=args.iterations,
        quality=args.quality,
        content_layers=args.content_layers, style_layers=layers,
        style_layer_weights=layer_weights, content_weight=args.content_weight,
        style_weight=args.style_weight, tv_weight=args.tv_weight,
        style_weights=args.style_weights, style_scale=args.style_scale,
        optimizer=args.optimizer, lr=args.lr, init=args.init,
        preserve_color=args.preserve_color, seed=args.seed, model=args.model,
        weights=args.weights, pooling=args.pooling, device=args.device,
        precision=args.precision)


def split_layer_weights(items: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    """``relu1_1:1,relu3_1:0.5`` -> the layers and their weights (() when none is given)."""
    layer_names, weights = [], []
    for item in items:
        name, _, weight = item.partition(":")
        layer_names.append(name)
        try:
            weights.append(float(weight) if weight else 1.0)
        except ValueError:
            raise ConfigError(f"invalid layer weight in {item!r}", "write layer:weight, e.g. relu3_1:0.5")
    return tuple(layer_names), (tuple(weights) if any(":" in i for i in items) else ())


def run(args) -> int:
    job = Job("style", (args.content, *paintings(args)), config_from_args(args), args.output,
              args.overwrite, reading(args), resume=args.resume, clip=clip_from_args(args))
    run_in_terminal(args, job)
    return 0
