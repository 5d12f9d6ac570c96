"""The ``painterly`` command's entry point (console script and ``python -m painterly``):
imports the command line with Python's cyclic garbage collector paused, freezes what the
imports made, and ends the process without the interpreter's teardown.

Importing torch creates about 170,000 objects that live as long as the process, and
Python's collector walks all of them at each full collection. In a one-off `painterly fast`
that was 0.14 s of collections during the imports, 0.10 s for one full collection while
painting (measured with gc.callbacks), and another at exit. Objects made before
``gc.freeze()`` are never walked again; everything made after is collected as usual.

Then, at the end, tearing down the interpreter (freeing every module and object one by one)
took 0.15 s of a 2.9 s `painterly fast` (from main's return to the process's end, three
runs). The command instead runs what was registered to run at exit (logging's flush, Ray's
shutdown, finalizers), flushes its output and ends with ``os._exit``; with any other thread
still running it exits the usual way, which waits for them. Only the command does this, never
a program that imports painterly.

And before anything else, it asks the C library's malloc to keep freed memory for reuse
(``memory.reuse_freed_memory``).
"""
from __future__ import annotations

import gc

from .memory import reuse_freed_memory


def entry() -> None:
    reuse_freed_memory()
    gc.disable()
    try:
        from .cli import entry as run
    finally:
        gc.freeze()
        gc.enable()
    try:
        run()
    except SystemExit as done:
        if not isinstance(done.code, int) or not _alone():
            raise
        _exit_now(done.code)


def _alone() -> bool:
    import threading
    return threading.active_count() == 1


def _exit_now(code: int) -> None:
    """What a normal exit does that matters (exit handlers, flushed output), without freeing
    every object first."""
    import atexit
    import os
    import sys
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe or stream: nothing more to say
            pass
    os._exit(code)
