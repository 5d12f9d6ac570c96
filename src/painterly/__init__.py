"""painterly: neural art on an ordinary computer.

The public face only. Names are imported on first use (PEP 562), so ``import painterly`` is
light and no module inside the package ever imports this one.
"""
from ._version import __version__

_PUBLIC = {
    # algorithms
    "TransferConfig": "transfer", "stylize": "transfer",
    "DreamConfig": "deepdream", "dream": "deepdream", "dream_zoom": "deepdream",
    "FastConfig": "fast", "FastStylizer": "fast", "fast_stylize": "fast",
    # jobs: what a front end runs
    "Job": "jobs", "run_job": "jobs",
    # base
    "load_image": "image", "save_image": "image", "ReadOptions": "image",
    "save_animation": "video", "Progress": "progress",
    "Cancelled": "errors", "ConfigError": "errors", "DivergedError": "errors",
    "DownloadError": "errors", "ImageTooLargeError": "errors", "InputImageError": "errors",
    "OutputError": "errors", "PainterlyError": "errors", "WeightsError": "errors",
}
__all__ = sorted(_PUBLIC) + ["__version__"]


def __getattr__(name: str):
    if name not in _PUBLIC:
        raise AttributeError(f"module 'painterly' has no attribute {name!r}")
    import importlib
    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__():
    return __all__
