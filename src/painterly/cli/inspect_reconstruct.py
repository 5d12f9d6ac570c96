"""``painterly inspect reconstruct``: flags -> a reconstruct Job -> jobs.run_job."""
from __future__ import annotations

from ..inspect.reconstruction import ReconstructConfig
from ..jobs import Job
from .common import add_net_flags, add_run_flags, names, reading, run_in_terminal

DEFAULTS = ReconstructConfig()


def add_parser(views) -> None:
    p = views.add_parser(
        "reconstruct", help="Gatys et al.'s Figure 1: a photo rebuilt from each layer, a "
        "painting's texture from growing sets of layers",
        description="From white noise, reconstruct the photo from one layer's activations "
        "alone (relu1_1 … relu5_1: almost the photo early, only its layout deep), and the "
        "painting's texture from the Gram matrices of growing sets of layers; one labelled "
        "figure with both rows (Gatys, Ecker & Bethge 2015, Figure 1).")
    p.add_argument("photo", help="the photo (a file, or - for stdin)")
    p.add_argument("painting", help="the painting")
    p.add_argument("-o", "--output", help="output picture (.png/.jpg/.webp); default "
                   "<photo>_<painting>_reconstruction.png")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--size", type=int, default=DEFAULTS.size,
                   help="long side of every panel in pixels (%(default)s)")
    p.add_argument("--iterations", type=int, default=DEFAULTS.iterations,
                   help="L-BFGS iterations per panel (%(default)s)")
    p.add_argument("--content-layers", type=names, default=DEFAULTS.content_layers,
                   metavar="LAYERS", help="one content panel per layer "
                   f"(default {','.join(DEFAULTS.content_layers)})")
    p.add_argument("--style-layers", type=names, default=DEFAULTS.style_layers,
                   metavar="LAYERS", help="style panel k matches the first k of these "
                   f"(default {','.join(DEFAULTS.style_layers)})")
    p.add_argument("--seed", type=int, default=DEFAULTS.seed,
                   help="seed of the starting white noise (%(default)s)")
    add_net_flags(p, DEFAULTS)
    add_run_flags(p)
    p.set_defaults(func=run)


def config_from_args(args) -> ReconstructConfig:
    return ReconstructConfig(
        size=args.size, iterations=args.iterations, content_layers=tuple(args.content_layers),
        style_layers=tuple(args.style_layers), seed=args.seed, model=args.model,
        weights=args.weights, pooling=args.pooling, device=args.device,
        precision=args.precision)


def run(args) -> int:
    job = Job("reconstruct", (args.photo, args.painting), config_from_args(args), args.output,
              args.overwrite, reading(args))
    run_in_terminal(args, job)
    return 0
