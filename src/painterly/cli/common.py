"""The terminal toolkit every command shares: argument types, flag groups, the progress bar,
Ctrl-C and SIGTERM as a cancel event, and how library messages name flags."""
from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import signal
import sys
import threading
from pathlib import Path

from .. import image as I
from ..errors import ConfigError, render_settings
from ..features import MODELS, PRECISIONS
from ..progress import Progress

# Settings whose flag is not simply --name-with-dashes.
FLAGS = {"style_layer_weights": "--style-layers", "preview_every": "--save-every",
         "snapshot_every": "--save-every", "host": "--listen", "allowed_hosts": "--allow-host",
         "max_upload_bytes": "--max-upload"}


def flag_of(setting: str) -> str:
    return FLAGS.get(setting, "--" + setting.replace("_", "-"))


def render(text: str) -> str:
    """A library message as a terminal user reads it: settings named by their flags."""
    return render_settings(text, flag_of)


class Formatter(logging.Formatter):
    """Log lines with settings named by their flags, as error lines are."""

    def format(self, record) -> str:
        return render(super().format(record))


class Parser(argparse.ArgumentParser):
    """argparse that reports errors as one `painterly: error:` line with exit code 2."""

    def error(self, message):
        raise ConfigError(message, f"see '{self.prog} --help'")


def floats(text: str) -> tuple[float, ...]:
    try:
        return tuple(float(v) for v in text.replace(" ", ",").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers separated by commas, got {text!r}")


def ints(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.replace(" ", ",").split(",") if v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas, got {text!r}")


def names(text: str) -> tuple[str, ...]:
    return tuple(v for v in text.replace(" ", ",").split(",") if v)


def byte_count(text: str) -> int:
    try:
        return I.parse_bytes(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc))


def colour(text: str):
    try:
        return I.parse_color(text)
    except ConfigError as exc:
        raise argparse.ArgumentTypeError(str(exc))


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
    add_report_flags(p, "no progress bar")
    p.add_argument("--progress", choices=("bar", "json", "none"), default="bar",
                   help="progress on stderr: a bar, one JSON object per iteration, or none")


def add_report_flags(p, quiet_help: str) -> None:
    p.add_argument("--json", action="store_true", help="print a JSON record of the run")
    p.add_argument("-q", "--quiet", action="store_true", help=quiet_help)


def add_input_flags(p) -> None:
    """How input pictures are read (limits, damaged files, transparency): image.ReadOptions."""
    p.add_argument("--max-input-pixels", type=int, default=I.MAX_INPUT_PIXELS,
                   help="refuse larger pictures, from their header (%(default)s)")
    p.add_argument("--max-input-bytes", type=byte_count, default=I.MAX_INPUT_BYTES,
                   metavar="SIZE", help="refuse larger files or stdin, e.g. 64MiB (512MiB)")
    p.add_argument("--allow-truncated", action="store_true",
                   help="load what can be read of a truncated or damaged picture (warns)")
    p.add_argument("--background", type=colour, default="white",
                   help="colour behind transparent pixels (%(default)s)")
    p.add_argument("--upscale-small", action="store_true",
                   help=f"enlarge pictures under {I.MIN_SIDE} px instead of refusing them")


def reading(args) -> I.ReadOptions:
    """The ReadOptions that add_input_flags set."""
    return I.ReadOptions(args.max_input_pixels, args.max_input_bytes, args.allow_truncated,
                         args.background, args.upscale_small)


def add_style_flags(p) -> None:
    """The paintings: files as positional arguments, built-in styles by name with --style."""
    p.add_argument("styles", nargs="*", metavar="painting",
                   help="one or more style pictures (or none, with --style)")
    p.add_argument("--style", action="append", default=[], metavar="NAME",
                   help="a built-in style by name, after any painting files; repeat for a "
                   "blend ('painterly styles' lists them)")


def paintings(args) -> tuple[str, ...]:
    """The painting files: those given, then the built-in styles named (painterly.styles)."""
    from .. import styles
    named = tuple(str(styles.path(name)) for name in args.style)
    if not args.styles and not named and not getattr(args, "sheet", False):
        raise ConfigError("no style picture given",
                          "pass a painting, or a built-in style with --style NAME "
                          "(one of " + ", ".join(styles.names()) + ")")
    return tuple(args.styles) + named


def add_clip_flags(p, defaults) -> None:
    """How a video is painted (jobs.Clip): the part, and how steady the strokes stay."""
    g = p.add_argument_group("video (when CONTENT is a video: .mp4, .mov, .mkv, .webm, …)")
    g.add_argument("--start", type=float, default=defaults.start, metavar="SECONDS",
                   help="paint from this time (%(default)s)")
    g.add_argument("--duration", type=float, default=defaults.duration, metavar="SECONDS",
                   help="paint this many seconds (default: to the end)")
    g.add_argument("--temporal", type=float, default=defaults.temporal, metavar="0..1",
                   help="temporal consistency: how strongly each frame follows the last one "
                   "carried along the optical flow; 0 = frame by frame (%(default)s)")


def clip_from_args(args):
    from ..jobs import Clip
    return Clip(args.start, args.duration, args.temporal)


def add_engine_flags(p) -> None:
    """Where a folder's pictures are painted: here, or on Ray (painterly.cluster)."""
    g = p.add_argument_group("engine (folders)")
    g.add_argument("--engine", choices=("local", "ray"), default="local",
                   help="local: in this process; ray: Ray actors, each loading the networks "
                   "once (needs painterly[ray]) (%(default)s)")
    g.add_argument("--address", default=None, metavar="auto|HOST:PORT",
                   help="with --engine ray: join this Ray cluster (auto: the one running "
                   "here); default: start a local Ray on this machine")
    g.add_argument("--workers", type=int, default=0,
                   help="with --engine ray: actors; 0 = one per --threads-per-worker CPUs "
                   "of the cluster (%(default)s)")
    g.add_argument("--threads-per-worker", type=int, default=0,
                   help="with --engine ray: CPU threads each actor asks for and uses; 0 = as "
                   "many as a local run uses, which gives the local run's bytes (%(default)s)")


def engine_from_args(args):
    """None (the local engine) or a RayEngine; Ray is imported only here, only for ray."""
    if getattr(args, "engine", "local") != "ray":
        for flag in ("address", "workers"):
            if getattr(args, flag, None):
                raise ConfigError(f"--{flag} is for --engine ray", "add --engine ray")
        return None
    from ..cluster import RayEngine
    return RayEngine(address=args.address, workers=args.workers,
                     threads_per_worker=args.threads_per_worker)


def report_item(args):
    """A folder's per-picture lines: errors always, the rest unless --quiet or --json."""
    def report(item) -> None:
        if item.error is not None:
            print(f"painterly: error: {item.source}: {render(item.error)}", file=sys.stderr)
        elif args.quiet or args.json:
            return
        elif item.skipped:
            print(f"painterly: skipped {item.source}: {item.output} is already there",
                  file=sys.stderr)
        else:
            print(f"painterly: wrote {item.output} in {item.seconds:.2f} s", file=sys.stderr)
    return report


def run_in_terminal(args, job, **options):
    """Run a job with the progress bar, Ctrl-C/SIGTERM as cancel and ``--save-every``
    snapshots; print the record (``--json``) or one line; return the Outcome. A stopped run
    exits 130/143 (see with_signal)."""
    from ..errors import Cancelled
    from ..jobs import RunOptions, run_job
    with Reporter(args) as reporter, cancel_on_signals() as cancel:
        try:
            outcome = run_job(job, RunOptions(reporter, cancel,
                                              snapshot_every=getattr(args, "save_every", 0),
                                              on_item=report_item(args),
                                              engine=engine_from_args(args), **options))
        except Cancelled as exc:
            with_signal(exc, cancel)  # exit 130 (Ctrl-C) or 143 (SIGTERM), said in the message
            if exc.saved_checkpoint is not None:
                exc.hint += f"; the command: {resume_command(sys.argv[1:], exc.saved_checkpoint)}"
            raise
    finish(args, outcome.record, outcome.output)
    outcome.raise_for_failures()  # a folder: exit 3 once the other pictures are written
    return outcome


def resume_command(argv: list[str], checkpoint) -> str:
    """The command that continues from ``checkpoint``: this one's words (less any
    ``--resume`` they had) and ``--resume CHECKPOINT``, quoted for a POSIX shell."""
    words, skip = [], False
    for word in argv:
        if skip:
            skip = False
        elif word == "--resume":
            skip = True
        elif not word.startswith("--resume="):
            words.append(word)
    return shlex.join(["painterly", *words, "--resume", str(checkpoint)])


def finish(args, record: dict, output: Path) -> None:
    if args.json:
        print(json.dumps(record, indent=2))
    elif not args.quiet:
        print(f"painterly: wrote {output} in {record['seconds']:.1f} s", file=sys.stderr)


def say(args):
    """A function printing `painterly: …` lines unless --quiet."""
    return (lambda s: None) if args.quiet else (lambda s: print(f"painterly: {s}", file=sys.stderr))


class Reporter:
    """Progress on the terminal: a tqdm bar with the named losses, or one JSON line per event."""

    def __init__(self, args):
        self.mode = "none" if args.quiet else getattr(args, "progress", "bar")
        self.bar = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()

    def __call__(self, event: Progress) -> None:
        if self.mode == "bar":
            self._update_bar(event)
        elif self.mode == "json":
            losses = {k: round(v, 6) for k, v in event.losses.items()}
            print(json.dumps({"task": event.task, "stage": event.stage, "step": event.step,
                              "total": event.total, "losses": losses,
                              "elapsed": round(event.elapsed, 3)}), file=sys.stderr, flush=True)

    def _update_bar(self, event: Progress) -> None:
        if self.bar is None:
            from tqdm import tqdm
            self.bar = tqdm(total=event.total, unit="it", file=sys.stderr, dynamic_ncols=True)
        self.bar.set_description(event.stage)
        self.bar.set_postfix({k: f"{v:.3g}" for k, v in event.losses.items()}, refresh=False)
        self.bar.update(event.step - self.bar.n)


class SignalEvent(threading.Event):
    """A cancel event that remembers which signal set it."""

    signum: int | None = None
    stopped_a_run = False  # class-wide: has any signal stopped a run in this process?


class Interrupted(KeyboardInterrupt):
    """A second Ctrl-C/SIGTERM: leave now (temp files are removed on the way out)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class cancel_on_signals:
    """Turn Ctrl-C and SIGTERM into a cancel event the library checks each step.

    The first signal asks the run to stop after the current iteration and save what it has;
    a second one stops at once (KeyboardInterrupt: outputs are left absent or complete, as
    they are only ever published by rename). A signal ignored when painterly started (SIGINT
    under nohup) stays ignored.
    """

    def __enter__(self) -> SignalEvent:
        self.event = SignalEvent()
        self.previous = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                if signal.getsignal(sig) is signal.SIG_IGN:
                    continue
                self.previous[sig] = signal.signal(sig, self._handle)
        return self.event

    def _handle(self, signum, frame) -> None:
        if self.event.is_set():
            raise Interrupted(signum)
        SignalEvent.stopped_a_run = True
        self.event.signum = signum
        self.event.set()

    def __exit__(self, *exc):
        # After a signal stopped the run only saving and the exit are left: a late second
        # signal exits at once (no traceback). Not SIG_IGN: an ignored signal would be
        # inherited by every child the process starts later (a test runner's, a library
        # user's); a Python handler is not.
        for sig, handler in self.previous.items():
            signal.signal(sig, exit_now if self.event.is_set() else handler)


def exit_now(signum, frame) -> None:
    os._exit(128 + signum)


def signal_name(cancel) -> str:
    return "terminated" if getattr(cancel, "signum", None) == signal.SIGTERM else "interrupted"


def with_signal(exc, cancel):
    """Say which signal stopped the run, and exit 128 + its number: 130 for Ctrl-C (SIGINT),
    143 for SIGTERM."""
    from ..errors import Cancelled
    signum = getattr(cancel, "signum", None)
    if isinstance(exc, Cancelled) and signum:
        exc.exit_code = 128 + signum
        if exc.message.startswith("cancelled"):  # say what stopped it
            exc.message = signal_name(cancel) + exc.message.removeprefix("cancelled")
    return exc
