"""Quality measures shared by tests and benchmarks.

style distance   = mean over relu1_1…relu5_1 of ‖G(x) − G(s)‖ / ‖G(s)‖, the style picture
                   resized to the output's long side;
content distance = ‖F(x) − F(c)‖ / ‖F(c)‖ at relu4_2, the photo resized to the output's size.
Both on VGG16 (Caffe) features in fp32, whatever settings made the picture.
"""
from __future__ import annotations

import torch

from . import image as I
from .features import CONTENT_LAYER, STYLE_LAYERS, FeatureExtractor, NetSpec, build_extractor
from .losses import content_distance, gram_matrix, style_distance


def reference_extractor(model: str = "vgg16") -> FeatureExtractor:
    return build_extractor(NetSpec(model), STYLE_LAYERS + (CONTENT_LAYER,), torch.device("cpu"),
                           precision="fp32")


@torch.no_grad()
def distances(output: torch.Tensor, content: I.ImageLike, style: I.ImageLike,
              extractor: FeatureExtractor | None = None) -> dict[str, float]:
    each = layer_distances(output, content, style, extractor)
    return {"style": sum(each[k] for k in STYLE_LAYERS) / len(STYLE_LAYERS),
            "content": each[CONTENT_LAYER]}


@torch.no_grad()
def layer_distances(output: torch.Tensor, content: I.ImageLike, style: I.ImageLike,
                    extractor: FeatureExtractor | None = None) -> dict[str, float]:
    """The style distance at each of STYLE_LAYERS and the content distance at CONTENT_LAYER."""
    extractor = extractor or reference_extractor()
    output = I.load_image(output)
    photo = I.resize(I.load_image(content), size=tuple(output.shape[-2:]))
    painting = I.resize(I.load_image(style), long_side=max(output.shape[-2:]))
    fx, fc, fs = extractor(output), extractor(photo), extractor(painting)
    each = {k: float(style_distance(gram_matrix(fx[k]), gram_matrix(fs[k]))) for k in STYLE_LAYERS}
    each[CONTENT_LAYER] = float(content_distance(fx[CONTENT_LAYER], fc[CONTENT_LAYER]))
    return each
