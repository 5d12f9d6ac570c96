"""The ``painterly`` command's entry point (console script and ``python -m painterly``):
imports the command line with Python's cyclic garbage collector paused, then freezes what the
imports made.

Importing torch creates about 170,000 objects that live as long as the process, and
Python's collector walks all of them at each full collection. In a one-off `painterly fast`
that was 0.14 s of collections during the imports, 0.10 s for one full collection while
painting (measured with gc.callbacks), and another at exit. Objects made before
``gc.freeze()`` are never walked again; everything made after is collected as usual. Only the
command does this, never a program that imports painterly.
"""
from __future__ import annotations

import gc


def entry() -> None:
    gc.disable()
    try:
        from .cli import entry as run
    finally:
        gc.freeze()
        gc.enable()
    run()
