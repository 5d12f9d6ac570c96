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


# Measures the fast decoder was never trained on (issue #18: a measure that a model is trained
# and chosen by stops measuring). None of them is a verdict; each catches one kind of failure.

RANDOM_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")
MEASURE_SIDE = 256   # the long side the network-free measures look at


@torch.no_grad()
def random_style_distance(output: I.ImageLike, style: I.ImageLike, width: float = 0.5) -> float:
    """The style distance on a VGG16 with fixed random weights (Ustyuzhaninov et al. 2016:
    Gram matrices of random filters still describe a texture): a network painterly never
    trained anything against. Mean over relu1_1…relu4_1; lower is better."""
    from .features import FeatureExtractor
    from .nets import NetInfo
    from .weights import CAFFE_BGR

    net = NetInfo("vgg16-random", "vgg16", width=width, pretrained=False).build()
    extractor = FeatureExtractor(net, "vgg16", CAFFE_BGR, RANDOM_LAYERS)
    output = I.load_image(output)
    painting = I.resize(I.load_image(style), long_side=max(output.shape[-2:]))
    fx, fs = extractor(output), extractor(painting)
    return sum(float(style_distance(gram_matrix(fx[k]), gram_matrix(fs[k])))
               for k in RANDOM_LAYERS) / len(RANDOM_LAYERS)


@torch.no_grad()
def palette_distance(output: I.ImageLike, style: I.ImageLike, projections: int = 64) -> float:
    """Sliced Wasserstein distance between the colours of the output's pixels and the
    painting's (mean over random directions in RGB of the distance between the sorted
    projections): 0 when the picture uses exactly the painting's palette; no network."""
    def pixels(picture):
        picture = I.resize(I.load_image(picture), long_side=MEASURE_SIDE)
        return picture.reshape(3, -1).T                               # [N, 3]
    a, b = pixels(output), pixels(style)
    gen = torch.Generator().manual_seed(0)
    directions = torch.nn.functional.normalize(torch.randn(3, projections, generator=gen), dim=0)

    def quantiles(x):  # 1,024 evenly spaced quantiles of each projection
        values = (x @ directions).sort(dim=0).values
        return values[(torch.linspace(0, 1, 1024) * (len(values) - 1)).round().long()]
    return float((quantiles(a) - quantiles(b)).abs().mean())


@torch.no_grad()
def flat_fraction(picture: I.ImageLike, block: int = 8, threshold: float = 0.02) -> float:
    """The share of the picture (at MEASURE_SIDE) in blocks of ``block`` px whose brightness
    varies by less than ``threshold`` (standard deviation, in [0, 1] units): flat patches.
    Compare with the painting's own; no network."""
    grey = I.resize(I.load_image(picture), long_side=MEASURE_SIDE).mean(1, keepdim=True)
    mean = torch.nn.functional.avg_pool2d(grey, block)
    square = torch.nn.functional.avg_pool2d(grey * grey, block)
    std = (square - mean * mean).clamp_min(0).sqrt()
    return float((std < threshold).float().mean())


@torch.no_grad()
def edge_agreement(output: I.ImageLike, content: I.ImageLike) -> float:
    """Correlation between the edge maps (Sobel gradient magnitude, lightly blurred) of the
    output and the photo at MEASURE_SIDE: 1 when every edge of the photo is where it was, 0
    when none is; a content measure with no network. Higher is better."""
    def edges(picture, size=None):
        picture = I.load_image(picture)
        picture = I.resize(picture, size=size) if size else I.resize(picture, long_side=MEASURE_SIDE)
        grey = picture.mean(1, keepdim=True)
        kx = torch.tensor([[-1., 0., 1.], [-2., 0., 2.], [-1., 0., 1.]]).view(1, 1, 3, 3)
        gx = torch.nn.functional.conv2d(grey, kx, padding=1)
        gy = torch.nn.functional.conv2d(grey, kx.transpose(2, 3), padding=1)
        magnitude = (gx * gx + gy * gy).sqrt()
        return torch.nn.functional.avg_pool2d(magnitude, 5, 1, 2).flatten()
    a = edges(output)
    size = tuple(I.resize(I.load_image(output), long_side=MEASURE_SIDE).shape[-2:])
    b = edges(content, size)
    a, b = a - a.mean(), b - b.mean()
    return float((a @ b) / (a.norm() * b.norm()).clamp_min(1e-8))


MEASURES = ("style", "content", "random style", "palette", "flat", "edges")
CAVEATS = {
    "style": "VGG16 Gram distance; painterly's decoder was trained on a Gram loss on these "
             "very features, so it favours painterly",
    "content": "VGG16 relu4_2 distance to the photo; lower for a picture that stays a photo",
    "random style": "the Gram distance on a VGG16 with fixed random weights, which nobody "
                    "trained against; texture only, blind to what the painting depicts",
    "palette": "sliced Wasserstein distance between the colours; blind to where they are",
    "flat": "share of flat 8-px blocks; compare with the painting's own, not with 0",
    "edges": "correlation with the photo's edges; a faithful copy of the photo scores best",
}


def measures(output: torch.Tensor, content: I.ImageLike, style: I.ImageLike,
             extractor: FeatureExtractor | None = None) -> dict[str, float]:
    """Every measure of MEASURES for one picture (each with its caveat in CAVEATS)."""
    return {**distances(output, content, style, extractor),
            "random style": random_style_distance(output, style),
            "palette": palette_distance(output, style),
            "flat": flat_fraction(output),
            "edges": edge_agreement(output, content)}
