"""``painterly inspect top-patches``: flags -> a top-patches Job (Zeiler & Fergus) -> jobs.run_job."""
from __future__ import annotations

import sys

from ..errors import Cancelled
from ..inspect.patches import TopPatchesConfig
from ..jobs import ItemResult, Job, RunOptions, run_job
from .common import (Reporter, add_input_flags, add_net_flags, add_report_flags,
                     cancel_on_signals, finish, names, reading, render, with_signal)

DEFAULTS = TopPatchesConfig()


def add_parser(views) -> None:
    p = views.add_parser(
        "top-patches", help="the pictures' patches that excite each channel most (Zeiler & "
        "Fergus)", description="Stream a folder or a tar of pictures once through the network "
        "and keep, for every channel of the chosen layers, the k strongest activations (at "
        "most --per-picture from one picture); write each channel's patches (the units' "
        "receptive fields) as a grid, a contact sheet per layer, index.json and an HTML "
        "gallery. Ctrl-C saves the scan: the same command continues it.")
    p.add_argument("source", help="a folder of pictures or a tar of them")
    p.add_argument("-o", "--output", help="the atlas folder (default <source>_atlas)")
    p.add_argument("--layers", type=names, default=DEFAULTS.layers,
                   help="layers, comma separated (%(default)s)")
    p.add_argument("-k", type=int, default=DEFAULTS.k,
                   help="patches per channel (%(default)s)")
    p.add_argument("--per-picture", type=int, default=DEFAULTS.per_picture,
                   help="at most this many patches of one picture per channel (%(default)s)")
    p.add_argument("--size", type=int, default=DEFAULTS.size,
                   help="long side every picture is read at; 0 = its own (%(default)s)")
    p.add_argument("--negative", action="store_true",
                   help="the most inhibiting units (ranked before the ReLU) instead")
    p.add_argument("--project", action="store_true",
                   help="beside each patch, which of its pixels mattered (guided "
                   "backpropagation; slow for deep layers)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing atlas (an unfinished one of the same command is "
                   "continued anyway)")
    add_net_flags(p, DEFAULTS)
    add_input_flags(p)
    add_report_flags(p, "no progress bar")
    p.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                   help="progress on stderr: a bar, one JSON object per picture, or none")
    p.set_defaults(func=run)


def config_from_args(args) -> TopPatchesConfig:
    return TopPatchesConfig(layers=tuple(args.layers), k=args.k, per_picture=args.per_picture,
                            size=args.size, negative=args.negative, project=args.project,
                            model=args.model, weights=args.weights, pooling=args.pooling,
                            device=args.device, precision=args.precision)


def run(args) -> int:
    job = Job("top-patches", (args.source,), config_from_args(args), args.output,
              args.overwrite, reading(args))
    with Reporter(args) as reporter, cancel_on_signals() as cancel:
        try:
            outcome = run_job(job, RunOptions(callback=reporter, cancel=cancel,
                                              on_item=_report))
        except Cancelled as exc:
            raise with_signal(exc, cancel) from exc
    finish(args, outcome.record, outcome.output)
    outcome.raise_for_failures()  # exit 3 once the atlas of the others is written
    return 0


def _report(item: ItemResult) -> None:
    if item.error is not None:
        print(f"painterly: error: {item.source}: {render(item.error)}", file=sys.stderr)
