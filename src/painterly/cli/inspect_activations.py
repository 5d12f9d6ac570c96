"""``painterly inspect activations``: flags -> an activations Job -> jobs.run_job."""
from __future__ import annotations

from ..inspect.activations import REDUCTIONS, ActivationsConfig
from ..jobs import Job
from .common import add_net_flags, add_run_flags, names, reading, run_in_terminal

DEFAULTS = ActivationsConfig()


def add_parser(views) -> None:
    p = views.add_parser(
        "activations", help="a picture's feature maps per layer (or in 3 colours, or Gram "
        "matrices)", description="What each layer sees in a picture: one labelled grid per "
        "layer of its most active channels' maps (or the channels asked for), optionally over "
        "the photo; --reduce folds a layer's channels into 3 colours; --gram shows each "
        "layer's Gram matrix (the style representation) as a heat map instead.")
    p.add_argument("picture", help="the picture (a file, or - for stdin)")
    p.add_argument("-o", "--output", help="output picture (.png/.jpg/.webp); default "
                   "<picture>_activations.png")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--layers", type=names, nargs="+", default=[DEFAULTS.layers],
                   metavar="LAYER", help="layers, e.g. relu1_1,relu3_1,relu5_1 "
                   f"(default {','.join(DEFAULTS.layers)})")
    p.add_argument("--channels", default=DEFAULTS.channels, metavar="SPEC",
                   help="channels to show in every layer: a range 0:16 (0:64:4 with a step) or "
                   "a list 3,17,42 (default: the --count most active, most active first)")
    p.add_argument("--count", type=int, default=DEFAULTS.count,
                   help="how many of the most active channels per layer (%(default)s)")
    p.add_argument("--columns", type=int, default=DEFAULTS.columns,
                   help="tiles per row (%(default)s)")
    p.add_argument("--tile", type=int, default=DEFAULTS.tile,
                   help="long side of each tile in pixels (%(default)s)")
    p.add_argument("--overlay", action="store_true",
                   help="lay each map over the photo (photo in grey, the map in colour)")
    p.add_argument("--reduce", choices=REDUCTIONS, default=DEFAULTS.reduce,
                   help="fold each layer's channels into 3 colours by PCA or NMF (%(default)s)")
    p.add_argument("--nmf-iterations", type=int, default=DEFAULTS.nmf_iterations,
                   help="multiplicative updates of --reduce nmf (%(default)s)")
    p.add_argument("--gram", action="store_true",
                   help="show each layer's Gram matrix (style representation) as a heat map, "
                   "channels ordered by their diagonal energy")
    p.add_argument("--size", type=int, default=DEFAULTS.size,
                   help="long side the picture is read at (%(default)s)")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed,
                   help="seed of the NMF's starting point (%(default)s)")
    add_net_flags(p, DEFAULTS)
    add_run_flags(p)
    p.set_defaults(func=run)


def config_from_args(args) -> ActivationsConfig:
    return ActivationsConfig(
        layers=tuple(layer for group in args.layers for layer in group),
        channels=args.channels, count=args.count, columns=args.columns, tile=args.tile,
        overlay=args.overlay, reduce=args.reduce, nmf_iterations=args.nmf_iterations,
        gram=args.gram, size=args.size, seed=args.seed, model=args.model, weights=args.weights,
        pooling=args.pooling, device=args.device, precision=args.precision)


def run(args) -> int:
    job = Job("activations", (args.picture,), config_from_args(args), args.output,
              args.overwrite, reading(args))
    run_in_terminal(args, job)
    return 0
