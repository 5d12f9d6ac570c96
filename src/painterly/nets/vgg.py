"""VGG16/VGG19 convolutional parts (Simonyan & Zisserman 2014), built from a config list.

Module indices match torchvision's ``vgg16().features`` / ``vgg19().features`` so that
state-dict keys (``features.{i}.weight``) load directly. Layer names follow the papers:
``conv{block}_{n}``, ``relu{block}_{n}``, ``pool{block}``.
"""
from __future__ import annotations

from torch import nn

from ..errors import ConfigError

M = "M"  # a 2x2 pooling layer
VGG_CONFIGS: dict[str, list] = {
    "vgg16": [64, 64, M, 128, 128, M, 256, 256, 256, M, 512, 512, 512, M, 512, 512, 512, M],
    "vgg19": [64, 64, M, 128, 128, M, 256, 256, 256, 256, M,
              512, 512, 512, 512, M, 512, 512, 512, 512, M],
    # VGG16 up to relu4_1 with half the channels before it: a quarter of the multiply-adds.
    # Distilled from VGG16 for `painterly fast` (fast/distill.py); only relu4_1 is trained.
    "vgg16-slim": [32, 32, M, 64, 64, M, 128, 128, 128, M, 512],
}


def layer_names(arch: str) -> list[str]:
    """Paper names of every module in ``features``, in order (index = torchvision index)."""
    names, block, n = [], 1, 1
    for item in _config(arch):
        if item == M:
            names.append(f"pool{block}")
            block, n = block + 1, 1
        else:
            names += [f"conv{block}_{n}", f"relu{block}_{n}"]
            n += 1
    return names


def layer_index(arch: str, name: str) -> int:
    """Index of a named layer in ``features`` (e.g. relu4_2 -> 20 for vgg16)."""
    names = layer_names(arch)
    if name not in names:
        valid = ", ".join(n for n in names if n.startswith("relu"))
        raise ConfigError(f"unknown layer {name!r} for {arch}", f"valid layers: {valid}")
    return names.index(name)


def vgg_features(arch: str = "vgg16", width: float = 1.0, pooling: str = "max") -> nn.Sequential:
    """The convolutional part of VGG. ``width`` < 1 gives a tiny net with the same layer names."""
    layers: list[nn.Module] = []
    in_ch = 3
    for item in _config(arch):
        if item == M:
            layers.append(_pool(pooling))
        else:
            out_ch = max(2, round(item * width))
            layers += [nn.Conv2d(in_ch, out_ch, 3, padding=1), nn.ReLU(inplace=False)]
            in_ch = out_ch
    return nn.Sequential(*layers)


def _pool(pooling: str) -> nn.Module:
    if pooling == "max":
        return nn.MaxPool2d(kernel_size=2, stride=2)
    if pooling == "avg":
        # Gatys et al. swap max for average pooling for smoother gradients. Averages are
        # smaller than the maxima the net was trained on; the losses are normalised per
        # layer, so no rescaling is needed.
        return nn.AvgPool2d(kernel_size=2, stride=2)
    raise ConfigError(f"unknown pooling {pooling!r}", "use 'max' or 'avg'")


def _config(arch: str) -> list:
    if arch not in VGG_CONFIGS:
        raise ConfigError(f"unknown architecture {arch!r}", f"use one of {', '.join(VGG_CONFIGS)}")
    return VGG_CONFIGS[arch]
