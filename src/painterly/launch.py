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
(``reuse_freed_memory``).
"""
from __future__ import annotations

import gc
import sys

# glibc's mallopt parameters (malloc.h)
M_TRIM_THRESHOLD, M_MMAP_MAX = -1, -4
KEEP_FREED = 1 << 30   # return the heap's free top to the system only above 1 GiB


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


def reuse_freed_memory() -> bool:
    """Make glibc's malloc serve large blocks from its heap and keep freed ones for reuse;
    False where there is no glibc (its settings are then the system's own).

    By default glibc maps every block over 32 MiB (a feature map: relu1_1 of a 512 px
    picture is about 50 MB) fresh from the system and unmaps it when freed, so each new map's
    pages are faulted in and zeroed again: here a copy of a 116 MB map took 52 ms that way
    against 8 ms in reused memory, and an allocating op costs as much as the work it does.
    With no maps (M_MMAP_MAX 0) and freed memory kept up to 1 GiB at the heap's top, the maps
    of one picture reuse the pages of the last, and a layer's those of a layer before it.
    Painting a 1024 × 768 photo at full size (`fast --work-size 0`) took 2.9 s instead of
    3.9 s a picture in one process, as in a folder run, and 5.2 s instead of 5.8 s as a
    whole command (medians, both versions interleaved; docs/fast.md). The cost: memory freed
    stays with the process, up to its peak, until it ends (the peak itself grew by under
    2 %). The memory check counts kept memory as the process's own (resident), so it
    refuses nothing for it.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):  # no mallopt: not glibc (musl, say)
        return False
    return bool(mallopt(M_MMAP_MAX, 0)) and bool(mallopt(M_TRIM_THRESHOLD, KEEP_FREED))


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
