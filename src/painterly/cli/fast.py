"""``painterly fast``: flags -> a fast Job (a picture or a folder) -> jobs.run_job."""
from __future__ import annotations

from ..fast import ENCODERS, FastConfig
from ..jobs import Clip, Job
from .common import (add_clip_flags, add_engine_flags, add_input_flags, add_report_flags,
                     add_style_flags, clip_from_args, floats, paintings, reading,
                     run_in_terminal)

DEFAULTS = FastConfig()


def add_parsers(sub) -> None:
    p = sub.add_parser("fast", help="fast style transfer: one pass of a trained network",
                       description="Arbitrary style transfer with adaptive instance "
                       "normalisation (Huang & Belongie 2017), using the decoder painterly "
                       "trained itself. Well under a second per picture, any style picture.")
    p.add_argument("content", help="the photo (a file, - for stdin, a folder of pictures, or "
                   "a video)")
    add_style_flags(p)
    p.add_argument("--sheet", action="store_true",
                   help="a contact sheet: the photo painted in every built-in style (or in "
                   "each painting given, on its own), one labelled tile each (at the work "
                   "size), default <content>_styles.png")
    p.add_argument("-o", "--output", help="output picture, a folder when CONTENT is a "
                   "folder, a video (.mp4/.mov/.mkv) when it is a video; default "
                   "<content>_<style>_fast.png (.mp4)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (in a "
                   "folder, pictures already painted are otherwise skipped)")
    p.add_argument("--size", type=int, default=DEFAULTS.size,
                   help="larger photos are scaled down to this long side; 0 = keep every "
                   "photo's size (%(default)s)")
    p.add_argument("--work-size", type=int, default=DEFAULTS.work_size,
                   help="the network paints at most this long side and larger results are "
                   "scaled up from it: faster, larger strokes; 0 = paint at full size "
                   "(%(default)s)")
    p.add_argument("--style-size", type=int, default=DEFAULTS.style_size,
                   help="long side the style picture is read at; 0 = the output's (%(default)s)")
    p.add_argument("--strength", type=float, default=DEFAULTS.strength,
                   help="0 = the photo, 1 = full style (%(default)s)")
    p.add_argument("--whiten", type=float, default=DEFAULTS.whiten,
                   help="0 = AdaIN (channel means and deviations), 1 = WCT (the whole channel "
                   "covariance: stronger texture); between blends them (%(default)s)")
    p.add_argument("--texture", type=float, default=DEFAULTS.texture,
                   help="noise where the photo is flat (skies, walls) for the painting's "
                   "strokes to grow from; 0 = none, up to 4 (%(default)s)")
    p.add_argument("--palette", type=float, default=DEFAULTS.palette,
                   help="move the result's colours this far towards the painting's (their "
                   "mean and covariance); 0 = the network's own colours (%(default)s)")
    p.add_argument("--style-weights", type=floats, default=DEFAULTS.style_weights,
                   help="blend of several styles, e.g. 0.5,0.5")
    p.add_argument("--preserve-color", choices=("none", "luminance", "histogram"),
                   default=DEFAULTS.preserve_color)
    p.add_argument("--decoder", default=DEFAULTS.decoder,
                   help="a decoder file from train-fast (default: painterly's own)")
    p.add_argument("--model", choices=ENCODERS, default=DEFAULTS.model,
                   help="encoder: slim (distilled from VGG16, 4× cheaper) or vgg16 itself; "
                   "'tiny' only with a tiny test decoder (%(default)s)")
    p.add_argument("--weights", default=DEFAULTS.weights,
                   help="encoder weights: a slim encoder file from distill-fast, or with "
                   "--model vgg16 the VGG16 weights' name or file (default: painterly's own)")
    p.add_argument("--device", default=DEFAULTS.device, help="auto, cpu, cuda or mps")
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=DEFAULTS.precision)
    add_clip_flags(p, Clip())
    add_engine_flags(p)
    add_input_flags(p)
    add_report_flags(p, "no messages")
    p.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                   help="progress on stderr (frames of a video, pictures of a folder)")
    p.set_defaults(func=run)


def config_from_args(args) -> FastConfig:
    return FastConfig(size=args.size, work_size=args.work_size, style_size=args.style_size,
                      strength=args.strength, whiten=args.whiten, texture=args.texture,
                      palette=args.palette, style_weights=args.style_weights,
                      preserve_color=args.preserve_color,
                      decoder=args.decoder, weights=args.weights, model=args.model,
                      device=args.device, precision=args.precision)


def run(args) -> int:
    styles = paintings(args)
    if args.sheet:
        job = Job("fast-sheet", (args.content, *styles), config_from_args(args), args.output,
                  args.overwrite, reading(args))
    else:
        job = Job("fast", (args.content, *styles), config_from_args(args), args.output,
                  args.overwrite, reading(args), clip=clip_from_args(args))
    run_in_terminal(args, job)
    return 0
