"""``painterly fast`` and ``painterly train-fast``: flags -> FastConfig / TrainConfig -> library."""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, fields
from pathlib import Path

from . import __version__
from . import image as I
from .cli import (_cancel_on_signals, _floats, _names, _Reporter, _with_signal, add_input_flags,
                  input_options)
from .errors import Cancelled, ConfigError, InputImageError, OutputError, PainterlyError
from .fast import ENCODERS, FastConfig, FastStylizer, parse_widths
from .fast_distill import DistillConfig, distill
from .fast_train import TrainConfig, train

DEFAULTS = FastConfig()
TRAIN = TrainConfig()
DISTILL = DistillConfig()
INPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")


def add_parsers(sub) -> None:
    _add_fast_parser(sub)
    _add_train_parser(sub)
    _add_distill_parser(sub)


def _add_fast_parser(sub) -> None:
    p = sub.add_parser("fast", help="fast style transfer: one pass of a trained network",
                       description="Arbitrary style transfer with adaptive instance "
                       "normalisation (Huang & Belongie 2017), using the decoder painterly "
                       "trained itself. Well under a second per picture, any style picture.")
    p.add_argument("content", help="the photo (a file, - for stdin, or a folder of pictures)")
    p.add_argument("styles", nargs="+", help="one or more style pictures")
    p.add_argument("-o", "--output", help="output picture, or a folder when CONTENT is a "
                   "folder; default <content>_<style>_fast.png")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs")
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
    p.add_argument("--style-weights", type=_floats, default=DEFAULTS.style_weights,
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
    add_input_flags(p)
    p.add_argument("--json", action="store_true", help="print a JSON record of the run")
    p.add_argument("-q", "--quiet", action="store_true", help="no messages")
    p.set_defaults(func=run_fast)


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train-fast", help="train the decoder used by 'painterly fast'",
                       description="Train an AdaIN decoder on a tar (or folder) of photographs "
                       "and one of paintings. Checkpoints every few minutes; --resume continues.")
    _add_run_flags(p, TRAIN, "decoder",
                   ("steps", "warmup_steps", "batch", "crop", "preview_every", "seed", "threads"),
                   ("lr", "lr_decay", "style_weight", "gram_weight", "whiten", "ema",
                    "checkpoint_minutes", "minutes"))
    p.add_argument("--gram-layers", type=_names, default=TRAIN.gram_layers,
                   help="layers of the Gram term, comma-separated (%(default)s)")
    p.add_argument("--gram-distance", action="store_true",
                   help="Gram term: each layer's relative distance ‖G−A‖/‖A‖ per picture, as "
                   "painterly's style distance counts it, instead of its square")
    p.add_argument("--model", choices=("vgg16", "tiny"), default=TRAIN.model)
    p.add_argument("--decoder-scale", type=float, default=TRAIN.decoder_scale,
                   help="decoder width factor; < 1 only for tests (%(default)s)")
    p.add_argument("--widths", type=_widths, default=TRAIN.widths, metavar="W/W,W/…",
                   help="conv widths of the decoder's four blocks, '/' between blocks "
                   "(default: a fresh decoder's, 256/128,128/64,64/32; painterly's own "
                   "has a second full-size conv: 256/128,128/64,64/32,32)")
    p.add_argument("--init", default=TRAIN.init, metavar="DECODER",
                   help="start from this decoder file (fine-tune) instead of a fresh one")
    p.add_argument("--input-encoder", default=TRAIN.input_encoder, metavar="SLIM",
                   help="paint from the features of this slim encoder file from distill-fast "
                   "('slim': painterly's own) instead of VGG16's; the losses stay on VGG16")
    p.add_argument("--weights", default=TRAIN.weights, help="VGG16 weights: name or file")
    p.add_argument("--device", default=TRAIN.device)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=TRAIN.precision)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_train)


def _widths(text: str) -> tuple[tuple[int, ...], ...]:
    try:
        return parse_widths(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(f"expected widths like 256/128,128/64,64/32, "
                                         f"got {text!r}") from exc


def _add_distill_parser(sub) -> None:
    p = sub.add_parser("distill-fast", help="distil the slim encoder used by 'painterly fast'",
                       description="Train a slim encoder (half VGG16's channels up to relu4_1) "
                       "to give VGG16's relu4_1 features, on crops of photographs and "
                       "paintings. Checkpoints every few minutes; --resume continues.")
    _add_run_flags(p, DISTILL, "encoder",
                   ("steps", "batch", "crop", "preview_every", "seed", "threads"),
                   ("lr", "lr_decay", "checkpoint_minutes", "minutes"))
    p.add_argument("--model", choices=("vgg16", "tiny"), default=DISTILL.model,
                   help="the teacher (%(default)s)")
    p.add_argument("--weights", default=DISTILL.weights, help="the teacher's weights: name or file")
    p.add_argument("--decoder", default=DISTILL.decoder,
                   help="decoder for the preview (default: painterly's own)")
    p.add_argument("--device", default=DISTILL.device)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default=DISTILL.precision)
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=run_distill)


def _add_run_flags(p, defaults, what: str, ints: tuple[str, ...], floats: tuple[str, ...]):
    """The flags train-fast and distill-fast share: corpora, output folder, resume, numbers."""
    p.add_argument("--photos", required=True, help="tar of JPEG photographs, or a folder")
    p.add_argument("--paintings", required=True, help="tar of JPEG paintings, or a folder")
    p.add_argument("--out", default=defaults.out, help=f"folder for checkpoint, {what}, preview, "
                   "log (%(default)s)")
    p.add_argument("--resume", action="store_true", help="continue the checkpoint in --out")
    for names, kind in ((ints, int), (floats, float)):
        for name in names:
            p.add_argument(f"--{name.replace('_', '-')}", type=kind,
                           default=getattr(defaults, name), help="(%(default)s)")


# ------------------------------------------------------------------ fast


def config_from_args(args) -> FastConfig:
    return FastConfig(size=args.size, work_size=args.work_size, style_size=args.style_size,
                      strength=args.strength, whiten=args.whiten,
                      style_weights=args.style_weights, preserve_color=args.preserve_color,
                      decoder=args.decoder, weights=args.weights, model=args.model,
                      device=args.device, precision=args.precision)


def run_fast(args) -> int:
    config = config_from_args(args)
    jobs = _jobs(args)
    for _, output in jobs:
        I.check_output_path(output, overwrite=args.overwrite, inputs=(args.content, *args.styles))
    style_side = args.style_size or args.size or None
    styles = [I.load_image(s, work_size=style_side, **input_options(args)) for s in args.styles]
    stylizer = FastStylizer(config)
    started, failed, records = time.perf_counter(), 0, []
    for source, output in jobs:
        t0 = time.perf_counter()
        try:
            photo = I.load_image(source, work_size=args.size or None, **input_options(args))
            picture = stylizer(photo, styles)
            I.save_image(picture, output, overwrite=args.overwrite, metadata={
                "Software": f"painterly {__version__}", "painterly": json.dumps(asdict(config))})
        except PainterlyError as exc:
            if len(jobs) == 1:
                raise
            failed += 1  # one bad picture in a folder is reported; the rest still get done
            print(f"painterly: error: {source}: {exc}", file=sys.stderr)
            continue
        records.append({"content": str(source), "output": str(output),
                        "seconds": round(time.perf_counter() - t0, 3)})
        if not args.quiet and not args.json:
            print(f"painterly: wrote {output} in {time.perf_counter() - t0:.2f} s", file=sys.stderr)
    if args.json:
        print(json.dumps({"command": "fast", "styles": args.styles, "outputs": records,
                          "failed": failed, "settings": asdict(config), "version": __version__,
                          "seconds": round(time.perf_counter() - started, 2)}, indent=2))
    if failed:
        raise InputImageError(f"{failed} of {len(jobs)} pictures could not be stylised",
                              "see the messages above")
    return 0


def _jobs(args) -> list[tuple[str, Path]]:
    """(input, output) pairs: one for a picture, one per picture for a folder."""
    source = Path(args.content)
    style_stem = Path(args.styles[0]).stem
    if args.content == "-" or not source.is_dir():
        stem = "stdin" if args.content == "-" else source.stem
        return [(args.content, Path(args.output or f"{stem}_{style_stem}_fast.png"))]
    pictures = sorted(p for p in source.iterdir()
                      if p.is_file() and p.suffix.lower() in INPUT_SUFFIXES)
    if not pictures:
        raise ConfigError(f"no pictures in folder {source}",
                          f"it needs files ending in {', '.join(INPUT_SUFFIXES)}")
    folder = Path(args.output or f"{source.name}_{style_stem}_fast")
    if folder.suffix.lower() in I.OUTPUT_SUFFIXES or (folder.exists() and not folder.is_dir()):
        raise OutputError(f"{folder} is not a folder", "with a folder of photos, -o names a folder")
    if not folder.exists():
        if not folder.parent.is_dir() and str(folder.parent):
            raise OutputError(f"folder {folder.parent} does not exist", "create it first")
        folder.mkdir()
    return [(str(p), folder / f"{p.stem}.png") for p in pictures]


# ------------------------------------------------------------------ train-fast


def run_train(args) -> int:
    config = _config_from(TrainConfig, args)
    path = _run_training(train, config, args)
    _say(args)(f"wrote {path}; use it with: painterly fast PHOTO STYLE --decoder {path}")
    return 0


def run_distill(args) -> int:
    config = _config_from(DistillConfig, args)
    path = _run_training(distill, config, args)
    _say(args)(f"wrote {path}; use it with: painterly fast PHOTO STYLE --weights {path}")
    return 0


def _config_from(kind, args):
    """A training config from the flags: each field has a flag of its name."""
    return kind(**{f.name: getattr(args, f.name) for f in fields(kind)})


def _say(args):
    return (lambda s: None) if args.quiet else (lambda s: print(f"painterly: {s}", file=sys.stderr))


def _run_training(run, config, args) -> Path:
    """Run train or distill with the progress bar, the preview and signal handling."""
    args.save_every, args.json = 0, False  # what the shared progress reporter reads
    with _Reporter(args, Path(args.out) / "preview.png") as reporter, \
            _cancel_on_signals() as cancel:
        try:
            return run(config, resume=args.resume, callback=reporter, cancel=cancel,
                       log=_say(args))
        except Cancelled as exc:
            raise _with_signal(exc, cancel) from exc  # exit 130 (Ctrl-C) or 143 (SIGTERM)
