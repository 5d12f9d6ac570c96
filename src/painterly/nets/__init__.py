"""Network architectures only (no weights, no files)."""
from .vgg import VGG_CONFIGS, layer_names, layer_index, vgg_features

__all__ = ["VGG_CONFIGS", "layer_names", "layer_index", "vgg_features"]
