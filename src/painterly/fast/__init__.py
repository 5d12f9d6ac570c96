"""Fast (feed-forward) style transfer for any style picture: AdaIN and WCT on VGG16's relu4_1
with a decoder painterly trained itself, and the training of that decoder and of the slim
encoder.

    ops        AdaIN, WCT and their blend: pure tensor operations
    models     the decoder and the slim encoder, read through ``weights``
    stylizer   FastConfig, FastStylizer, fast_stylize: inference (imports no training code)
    train      TrainConfig, train: the decoder's training
    distill    DistillConfig, distill: the slim encoder's distillation
"""
from ..nets.decoder import parse_widths
from .distill import DistillConfig, distill
from .models import ENCODER_LAYER, ENCODERS, load_decoder, load_slim_encoder
from .stylizer import MARGIN, FastConfig, FastStylizer, fast_stylize
from .train import TrainConfig, train

__all__ = ["DistillConfig", "ENCODERS", "ENCODER_LAYER", "FastConfig", "FastStylizer", "MARGIN",
           "TrainConfig", "distill", "fast_stylize", "load_decoder", "load_slim_encoder",
           "parse_widths", "train"]
