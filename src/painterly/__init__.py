"""painterly: neural art on an ordinary computer."""
from .dream import DreamConfig, dream, dream_zoom, save_animation
from .errors import (Cancelled, ConfigError, DivergedError, DownloadError, ImageTooLargeError,
                     InputImageError, OutputError, PainterlyError, WeightsError)
from .fast import FastConfig, FastStylizer, fast_stylize
from .image import load_image, save_image
from .progress import Progress
from .transfer import TransferConfig, stylize

__version__ = "0.1.0"
__all__ = [
    "Cancelled", "ConfigError", "DivergedError", "DownloadError", "DreamConfig", "FastConfig", "FastStylizer",
    "ImageTooLargeError",
    "InputImageError", "OutputError", "PainterlyError", "Progress", "TransferConfig",
    "WeightsError", "dream", "dream_zoom", "fast_stylize", "load_image", "save_animation", "save_image",
    "stylize", "__version__",
]
