"""``painterly``: the parser of every command, error lines and exit codes."""
from __future__ import annotations

import importlib
import logging
import os
import signal
import sys

from .._version import __version__
from ..errors import PainterlyError
from .common import Formatter, Parser, SignalEvent, render

log = logging.getLogger("painterly")
# The module that adds each command's parser, in the order of --help. A run imports only its
# own command's module: the others import their algorithms (inspect's and dream's much of
# torch's optional machinery), which cost a one-off `painterly fast` most of its start.
COMMANDS = {"style": "style", "fast": "fast", "styles": "styles", "train-fast": "train",
            "distill-fast": "train", "dream": "dream", "inspect": "inspect",
            "weights": "weights", "web": "web"}


def build_parser(argv: list[str] | None = None) -> Parser:
    """The parser of every command, or with ``argv`` naming one, of that command only."""
    parser = Parser(prog="painterly", description="Neural art on an ordinary computer.")
    parser.add_argument("--version", action="version", version=f"painterly {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    command = _command_in(argv or [])
    modules = [COMMANDS[command]] if command else list(dict.fromkeys(COMMANDS.values()))
    for name in modules:
        importlib.import_module(f".{name}", __package__).add_parsers(sub)
    return parser


def _command_in(argv: list[str]) -> str | None:
    """The command ``argv`` names (its first word that is not a top-level flag), if known."""
    word = next((a for a in argv if not a.startswith("-")), None)
    return word if word in COMMANDS else None


def entry() -> None:
    """The program (console script and ``python -m painterly``): main(), then exit.

    After a signal stopped a run, exit without the interpreter's teardown: it takes a while
    with torch loaded and resets the signal handlers, so a second Ctrl-C arriving then would
    kill the process with a traceback-free but wrong status.
    """
    code = main()
    if SignalEvent.stopped_a_run:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _configure_logging(debug: bool) -> None:
    """As logging.basicConfig (a host program's own set-up wins), with settings named by flags."""
    root = logging.getLogger()
    if root.handlers:
        return
    handler = logging.StreamHandler()
    handler.setFormatter(Formatter("painterly: %(levelname)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    words = sys.argv[1:] if argv is None else argv
    parser = build_parser(words)
    debug = "--debug" in words
    _configure_logging(debug)
    try:
        args = parser.parse_args(argv)
        return args.func(args)
    except PainterlyError as exc:
        if debug:
            log.exception("details")
        print(f"painterly: error: {render(str(exc))}", file=sys.stderr)
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
