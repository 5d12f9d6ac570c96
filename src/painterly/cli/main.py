"""``painterly``: the parser of every command, error lines and exit codes."""
from __future__ import annotations

import logging
import os
import signal
import sys

from .._version import __version__
from ..errors import PainterlyError
from . import dream, fast, inspect, style, styles, train, web, weights
from .common import Formatter, Parser, SignalEvent, render

log = logging.getLogger("painterly")
COMMANDS = (style, fast, styles, train, dream, inspect, weights, web)  # each adds its parsers


def build_parser() -> Parser:
    parser = Parser(prog="painterly", description="Neural art on an ordinary computer.")
    parser.add_argument("--version", action="version", version=f"painterly {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks and debug logs")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.add_parsers(sub)
    return parser


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
    parser = build_parser()
    debug = "--debug" in (sys.argv[1:] if argv is None else argv)
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
