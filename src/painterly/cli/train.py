"""``painterly train-fast`` and ``painterly distill-fast``: flags -> TrainConfig /
DistillConfig -> the training loop, with a progress bar and Ctrl-C as a clean stop."""
from __future__ import annotations

import argparse
from dataclasses import fields

from ..errors import Cancelled, ConfigError
from ..fast import DistillConfig, TrainConfig, distill, parse_widths, train
from .common import Reporter, cancel_on_signals, names, say, with_signal

TRAIN = TrainConfig()
DISTILL = DistillConfig()


def add_parsers(sub) -> None:
    _add_train_parser(sub)
    _add_distill_parser(sub)


def _add_train_parser(sub) -> None:
    p = sub.add_parser("train-fast", help="train the decoder used by 'painterly fast'",
                       description="Train an AdaIN decoder on a tar (or folder) of photographs "
                       "and one of paintings. Checkpoints every few minutes; --resume continues.")
    _add_run_flags(p, TRAIN, "decoder",
                   ("steps", "warmup_steps", "batch", "crop", "preview_every", "seed", "threads"),
                   ("lr", "lr_decay", "style_weight", "gram_weight", "detail_weight", "whiten", "ema",
                    "checkpoint_minutes", "minutes"))
    p.add_argument("--gram-layers", type=names, default=TRAIN.gram_layers,
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
    p.add_argument("--skips", action="store_true",
                   help="join the input encoder's relu3_1, relu2_1 and relu1_1 into the decoder "
                   "(sharper edges); with --init a plain decoder, its joins start at zero")
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
    for names_, kind in ((ints, int), (floats, float)):
        for name in names_:
            p.add_argument(f"--{name.replace('_', '-')}", type=kind,
                           default=getattr(defaults, name), help="(%(default)s)")


def config_from(kind, args):
    """A training config from the flags: each field has a flag of its name."""
    return kind(**{f.name: getattr(args, f.name) for f in fields(kind)})


def run_train(args) -> int:
    path = _run(train, config_from(TrainConfig, args), args)
    say(args)(f"wrote {path}; use it with: painterly fast PHOTO STYLE --decoder {path}")
    return 0


def run_distill(args) -> int:
    path = _run(distill, config_from(DistillConfig, args), args)
    say(args)(f"wrote {path}; use it with: painterly fast PHOTO STYLE --weights {path}")
    return 0


def _run(run, config, args):
    """Run train or distill with the progress bar and signal handling."""
    with Reporter(args) as reporter, cancel_on_signals() as cancel:
        try:
            return run(config, resume=args.resume, callback=reporter, cancel=cancel,
                       log=say(args))
        except Cancelled as exc:
            raise with_signal(exc, cancel) from exc  # exit 130 (Ctrl-C) or 143 (SIGTERM)
