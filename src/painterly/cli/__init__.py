"""The command line: a thin translator of flags into jobs (``painterly.jobs``) that shows
their progress on the terminal. One module per command; ``common`` is the shared toolkit."""
from .main import build_parser, entry, main

__all__ = ["build_parser", "entry", "main"]
