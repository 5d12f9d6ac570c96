"""painterly's version, in one place: the package face, provenance records and checkpoints read it."""
__version__ = "0.1.0"
