"""Command-line adapter: translates flags into one library call and shows progress.

Every computation happens in the library; this module parses, reports and saves.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import re
import signal
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path

from . import __version__
from . import image as I
from . import weights as W
from .errors import Cancelled, ConfigError, DivergedError, OutputError, PainterlyError
from .features import MODELS, PRECISIONS
from .optim import OPTIMIZERS
from .transfer import INITS, PRESERVE_COLOR, PRESETS, TransferConfig, save_checkpoint, stylize

log = logging.getLogger("painterly")
DEFAULTS = TransferConfig()


class _Parser(argparse.ArgumentParser):
    """argparse that reports errors as one `painterly: error:` line with exit code 2."""

    def error(self, message):
        raise ConfigError(message, f"see '{self.prog} --help'")


def _floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.replace(" ", ",").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}")


def _ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace(" ", ",").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}")


def _names(text: str) -> tuple[str, ...]:
    return tuple(v for v in text.replace(" ", ",").split(",") if v)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="painterly", description="Neural art on an ordinary computer.")
    parser.add_argument("--version", action="version", version=f"painterly {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_style_parser(sub)
    _add_fast_parsers(sub)
    _add_dream_parser(sub)
    _add_weights_parser(sub)
    return parser


def _add_fast_parsers(sub) -> None:
    from .cli_fast import add_parsers  # fast and train-fast live beside their adapter
    add_parsers(sub)


def _add_dream_parser(sub) -> None:
    from .cli_dream import add_parser  # DeepDream's flags live beside their adapter
    add_parser(sub)


def _add_style_parser(sub) -> None:
    p = sub.add_parser("style", help="paint a photo in the style of one or more paintings",
                       description="Style transfer by optimisation (Gatys et al. 2015).")
    p.add_argument("content", help="the photo (a file, or - for stdin)")
    p.add_argument("styles", nargs="+", help="one or more style pictures")
    p.add_argument("-o", "--output", help="output picture (.png/.jpg/.webp); "
                   "default <content>_<style>.png")
    p.add_argument("--overwrite", action="store_true", help="replace an existing output")
    p.add_argument("--size", type=int, default=DEFAULTS.size, help="long side of the output (%(default)s)")
    p.add_argument("--min-size", type=int, default=DEFAULTS.min_size,
                   help="long side of the coarsest scale (%(default)s); = --size for one scale")
    p.add_argument("--iterations", type=_ints, default=DEFAULTS.iterations,
                   help="iterations per scale, coarse to fine (e.g. 150,60,40), or one count "
                   "for every scale; default automatic")
    p.add_argument("--quality", choices=tuple(PRESETS), default=DEFAULTS.quality,
                   help="iteration schedule when --iterations is not given (%(default)s)")
    p.add_argument("--content-layers", type=_names, default=DEFAULTS.content_layers,
                   help="content layers (%(default)s)")
    p.add_argument("--style-layers", type=_names, default=DEFAULTS.style_layers,
                   help="style layers, optionally with weights: relu1_1:1,relu2_1:0.5,…")
    p.add_argument("--content-weight", type=float, default=DEFAULTS.content_weight)
    p.add_argument("--style-weight", type=float, default=DEFAULTS.style_weight)
    p.add_argument("--tv-weight", type=float, default=DEFAULTS.tv_weight)
    p.add_argument("--style-weights", type=_floats, default=DEFAULTS.style_weights,
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
    add_run_flags(p)
    p.set_defaults(func=run_style)


def add_net_flags(p, defaults) -> None:
    """Flags choosing the network, shared by every command that runs one."""
    p.add_argument("--model", choices=MODELS, default=defaults.model,
                   help="network; 'tiny' is a random-weight test net (%(default)s)")
    p.add_argument("--weights", default=defaults.weights,
                   help="weights: a registry name (see 'painterly weights list') or a file")
    p.add_argument("--pooling", choices=("max", "avg"), default=defaults.pooling)
    p.add_argument("--device", default=defaults.device, help="auto, cpu, cuda or mps")
    p.add_argument("--precision", choices=PRECISIONS, default=defaults.precision,
                   help="auto: bf16 where the processor supports it, else fp32")


def add_run_flags(p) -> None:
    """Flags for snapshots, input limits and reporting, shared by every long command."""
    p.add_argument("--save-every", type=int, default=0, metavar="N",
                   help="write a PNG snapshot every N iterations")
    add_input_flags(p)
    p.add_argument("--json", action="store_true", help="print a JSON record of the run")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                   help="progress on stderr: a bar, one JSON object per iteration, or none")


def add_input_flags(p) -> None:
    """How input pictures are read (limits, damaged files, transparency); see input_options."""
    p.add_argument("--max-input-pixels", type=int, default=I.MAX_INPUT_PIXELS,
                   help="refuse larger pictures, from their header (%(default)s)")
    p.add_argument("--max-input-bytes", type=_byte_count, default=I.MAX_INPUT_BYTES,
                   metavar="SIZE", help="refuse larger files or stdin, e.g. 64MiB (512MiB)")
    p.add_argument("--allow-truncated", action="store_true",
                   help="load what can be read of a truncated or damaged picture (warns)")
    p.add_argument("--background", type=_colour, default="white",
                   help="colour behind transparent pixels (%(default)s)")
    p.add_argument("--upscale-small", action="store_true",
                   help=f"enlarge pictures under {I.MIN_SIDE} px instead of refusing them")


def input_options(args) -> dict:
    """The keyword arguments of image.load_image that add_input_flags set."""
    return {"max_pixels": args.max_input_pixels, "max_bytes": args.max_input_bytes,
            "allow_truncated": args.allow_truncated, "background": args.background,
            "upscale_small": args.upscale_small}


def _byte_count(text: str) -> int:
    try:
        return I.parse_bytes(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def _colour(text: str):
    try:
        return I.parse_color(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def _add_weights_parser(sub) -> None:
    p = sub.add_parser("weights", help="list, locate, verify or download network weights")
    p.add_argument("action", choices=("list", "path", "verify", "download"))
    p.add_argument("names", nargs="*", help="registry names (default: all for list/verify)")
    p.set_defaults(func=run_weights)


def entry() -> None:
    """The program (console script and ``python -m painterly``): main(), then exit.

    After a signal stopped a run, exit without the interpreter's teardown: it takes a while
    with torch loaded and resets the signal handlers, so a second Ctrl-C arriving then would
    kill the process with a traceback-free but wrong status.
    """
    code = main()
    if _SignalEvent.stopped_a_run:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING,
                        format="painterly: %(levelname)s: %(message)s")
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except PainterlyError as exc:
        if debug:
            log.exception("details")
        print(f"painterly: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except MemoryError:
        print("painterly: error: out of memory; try a smaller --size", file=sys.stderr)
        return 4
    except KeyboardInterrupt as exc:  # a second Ctrl-C/SIGTERM: stop now, save nothing more
        signum = getattr(exc, "signum", signal.SIGINT)
        print("painterly: error: interrupted; stopped without saving (the output and any "
              "file being written are left as they were)", file=sys.stderr)
        return 128 + signum
    except Exception as exc:  # a bug: keep it one line unless --debug
        if debug:
            raise
        print(f"painterly: error: internal error ({type(exc).__name__}: {exc}); "
              "rerun with --debug and report it", file=sys.stderr)
        return 1


# ------------------------------------------------------------------ style


def config_from_args(args) -> TransferConfig:
    layers, layer_weights = _split_layer_weights(args.style_layers)
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
        precision=args.precision, preview_every=args.save_every)


def _split_layer_weights(items: tuple[str, ...]) -> tuple[tuple[str, ...], tuple[float, ...]]:
    names, weights = [], []
    for item in items:
        name, _, weight = item.partition(":")
        names.append(name)
        try:
            weights.append(float(weight) if weight else 1.0)
        except ValueError:
            raise ConfigError(f"invalid layer weight in {item!r}", "write layer:weight, e.g. relu3_1:0.5")
    return tuple(names), (tuple(weights) if any(":" in i for i in items) else ())


def run_style(args) -> int:
    config = config_from_args(args)
    output = Path(args.output or _default_output(args.content, args.styles[0]))
    inputs = (args.content, *args.styles) + ((config.init,) if config.init not in INITS else ())
    I.check_output_path(output, overwrite=args.overwrite, inputs=inputs)
    with _OutputLock(output):
        return _paint(args, config, output)


def _paint(args, config: TransferConfig, output: Path) -> int:
    content = I.load_image(args.content, work_size=args.size, **input_options(args))
    style_side = max(I.MIN_SIDE, round(args.size * args.style_scale))
    styles = [I.load_image(s, work_size=style_side, **input_options(args)) for s in args.styles]
    with _Reporter(args, output) as reporter, _cancel_on_signals() as cancel:
        try:
            picture = stylize(content, styles, config, callback=reporter, cancel=cancel,
                              resume_from=args.resume)
        except Cancelled as exc:
            raise _interrupted(exc, output, cancel) from exc
        except DivergedError as exc:
            saved = _save_rescued(exc, output)
            raise DivergedError(f"{exc.message}; last good picture saved to {saved}",
                                exc.hint) from exc
        elapsed = time.perf_counter() - reporter.started
        record = _record(args, config, output, elapsed, reporter.last_losses)
        record["stages"] = reporter.stages
        I.save_image(picture, output, metadata=_png_text(record), overwrite=args.overwrite)
    _finish(args, record, elapsed, output)
    return 0


def _default_output(content: str, style: str) -> str:
    return f"{Path(content).stem if content != '-' else 'stdin'}_{Path(style).stem}.png"


def _interrupted(exc: Cancelled, output: Path, cancel) -> Cancelled:
    """Save the picture so far and the checkpoint; the error says how to resume."""
    saved = _save_rescued(exc, output)
    message, hint = f"{_signal_name(cancel)} at iteration", exc.hint
    if exc.checkpoint is not None:
        ckpt = save_checkpoint(exc.checkpoint, output.with_suffix(".ckpt"))
        message += f" {exc.checkpoint['step']}/{exc.checkpoint['total']}"
        hint = f"resume with --resume {ckpt} (and the same pictures and settings)"
    else:
        message = f"{_signal_name(cancel)} ({exc.message})"
    return _with_signal(Cancelled(f"{message}; picture so far saved to {saved}", hint), cancel)


def _signal_name(cancel) -> str:
    return "terminated" if getattr(cancel, "signum", None) == signal.SIGTERM else "interrupted"


def _with_signal(exc: PainterlyError, cancel) -> PainterlyError:
    """Exit 128 + the signal number: 130 for Ctrl-C (SIGINT), 143 for SIGTERM."""
    signum = getattr(cancel, "signum", None)
    if isinstance(exc, Cancelled) and signum:
        exc.exit_code = 128 + signum
        if exc.message.startswith("cancelled"):  # say what stopped it
            exc.message = _signal_name(cancel) + exc.message.removeprefix("cancelled")
    return exc


def _png_text(record: dict) -> dict:
    return {"Software": f"painterly {__version__}", "painterly": json.dumps(record["settings"]),
            "painterly-seed": str(record["seed"]),
            "painterly-versions": json.dumps(record["versions"])}


def _versions() -> dict:
    import torch
    return {"painterly": __version__, "torch": str(torch.__version__),
            "python": platform.python_version()}


def _save_rescued(exc, output: Path) -> Path:
    picture = exc.partial if isinstance(exc, Cancelled) else exc.last_good
    rescued = output.with_name(f"{output.stem}-unfinished{output.suffix}")
    if picture is not None:
        I.save_image(picture, rescued, overwrite=True)
    return rescued


def _record(args, config: TransferConfig, output: Path, elapsed: float, losses: dict) -> dict:
    return {"command": "style", "content": args.content, "styles": args.styles,
            "output": str(output), "settings": asdict(config), "seed": config.seed,
            "seconds": round(elapsed, 2), "final_losses": losses, "version": __version__,
            "versions": _versions()}


def _finish(args, record: dict, elapsed: float, output: Path) -> None:
    if args.json:
        print(json.dumps(record, indent=2))
    elif not args.quiet:
        print(f"painterly: wrote {output} in {elapsed:.1f} s", file=sys.stderr)


class _Reporter:
    """Progress callback: a tqdm bar with the named losses, plus --save-every snapshots."""

    def __init__(self, args, output: Path):
        self.args, self.output = args, output
        self.bar = None
        self.last_losses: dict = {}
        self.stages: dict[str, dict] = {}  # per stage: iterations and seconds, for --json
        self.previous_elapsed = 0.0
        self.started = time.perf_counter()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()

    def __call__(self, event) -> None:
        self.last_losses = {k: round(v, 6) for k, v in event.losses.items()}
        stage = self.stages.setdefault(event.stage, {"iterations": 0, "seconds": 0.0})
        stage["iterations"] += 1
        stage["seconds"] = round(stage["seconds"] + event.elapsed - self.previous_elapsed, 3)
        self.previous_elapsed = event.elapsed
        mode = "none" if self.args.quiet else getattr(self.args, "progress", "bar")
        if mode == "bar":
            self._update_bar(event)
        elif mode == "json":
            print(json.dumps({"task": event.task, "stage": event.stage, "step": event.step,
                              "total": event.total, "losses": self.last_losses,
                              "elapsed": round(event.elapsed, 3)}), file=sys.stderr, flush=True)
        if event.image is not None and self.args.save_every:
            path = self.output.with_name(f"{self.output.stem}.{event.step:04d}{self.output.suffix}")
            I.save_image(event.image, path, overwrite=True)

    def _update_bar(self, event) -> None:
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=event.total, unit="it", file=sys.stderr, dynamic_ncols=True)
        self.bar.set_description(event.stage)
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in event.losses.items()}, refresh=False)
        self.bar.update(event.step - self.bar.n)


class _SignalEvent(threading.Event):
    """A cancel event that remembers which signal set it."""

    signum: int | None = None
    stopped_a_run = False  # class-wide: has any signal stopped a run in this process?


class _Interrupted(KeyboardInterrupt):
    """A second Ctrl-C/SIGTERM: leave now (temp files are removed on the way out)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class _cancel_on_signals:
    """Turn Ctrl-C and SIGTERM into a cancel event the optimisation loop checks each step.

    The first signal asks the run to stop after the current iteration and save what it has;
    a second one stops at once (KeyboardInterrupt: outputs are left absent or complete, as
    they are only ever published by rename). A signal ignored when painterly started (SIGINT
    under nohup) stays ignored.
    """

    def __enter__(self) -> _SignalEvent:
        self.event = _SignalEvent()
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue
                self.previous[sig] = signal.signal(sig, self._handle)
        return self.event

    def _handle(self, signum, frame) -> None:
        if self.event.is_set():
            raise _Interrupted(signum)
        _SignalEvent.stopped_a_run = True
        self.event.signum = signum
        self.event.set()

    def __exit__(self, *exc):
        # After a signal stopped the run only saving and the exit are left: a late second
        # signal exits at once (no traceback). Not SIG_IGN: an ignored signal would be
        # inherited by every child the process starts later (a test runner's, a library
        # user's); a Python handler is not.
        for sig, handler in self.previous.items():
            signal.signal(sig, _exit_now if self.event.is_set() else handler)


def _exit_now(signum, frame) -> None:
    os._exit(128 + signum)


class _OutputLock:
    """An ``O_EXCL`` lock file beside the output, so two runs never write the same picture.

    ``.OUT.lock`` holds the owner's pid; a lock whose process is gone is stale and replaced,
    and temp files (``.OUT*.partial``) a dead run left behind are removed.
    """

    def __init__(self, output: Path):
        self.output = output
        self.path = output.with_name(f".{output.name}.lock")
        self.held = False

    def __enter__(self):
        for _ in range(3):
            try:
                fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            except FileExistsError:
                owner = self._owner()
                if owner is not None:
                    raise OutputError(f"{self.output} is being written by another painterly "
                                      f"run (pid {owner})",
                                      "wait for it to finish or choose another path") from None
                _remove(self.path)  # stale: its process is gone
                continue
            except OSError as exc:
                raise OutputError(f"cannot create {self.path}: {exc.strerror or exc}",
                                  "check the folder's permissions") from exc
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            self.held = True
            self._remove_stale_temps()
            return self
        raise OutputError(f"cannot lock {self.output}", f"remove {self.path} and retry")

    def _owner(self) -> int | str | None:
        """The pid of a live owner, "starting" for a lock still being written, else None."""
        try:
            text = self.path.read_text().strip()
            age = time.time() - self.path.stat().st_mtime
        except FileNotFoundError:
            return None
        except OSError:
            return "unknown"
        if not text.isdigit():
            return "starting" if age < 10 else None
        pid = int(text)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid  # alive, another user's
        return pid

    def _remove_stale_temps(self) -> None:
        out = self.output
        folder = out.parent if str(out.parent) else Path(".")
        mine = re.compile(r"\.{0}(?:{1}|-unfinished{1}|\.ckpt|\.\d{{4,}}{1})\..*\.partial".format(
            re.escape(out.stem), re.escape(out.suffix)))  # output, rescue, checkpoint, snapshots
        for temp in folder.glob(f".{out.stem}*.partial"):
            if mine.fullmatch(temp.name):
                _remove(temp)

    def __exit__(self, *exc):
        if self.held:
            _remove(self.path)
            self.held = False


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


# ------------------------------------------------------------------ weights


def run_weights(args) -> int:
    names = args.names or (list(W.REGISTRY) if args.action in ("list", "verify") else [])
    if not names:
        raise ConfigError(f"'weights {args.action}' needs a name", "see 'painterly weights list'")
    specs = [W.get_spec(n) for n in names]
    if args.action == "list":
        for spec in specs:
            local = W.find_local(spec)
            where = str(local) if local else f"not downloaded ({spec.url})"
            print(f"{spec.name:18} {spec.arch:6} {spec.convention:11} {where}\n"
                  f"{'':18} {spec.description}; licence: {spec.licence}")
        return 0
    if args.action == "path":
        for spec in specs:
            print(W.resolve(spec, offline=True))
        return 0
    if args.action == "download":
        for spec in specs:
            print(W.resolve(spec))
        return 0
    return _verify(specs)


def _verify(specs) -> int:
    for spec in specs:
        local = W.find_local(spec)
        if local is None:
            print(f"{spec.name}: not found locally")
            continue
        print(f"{spec.name}: OK {local} sha256 {W.verify(local, spec)}")
    return 0
