"""Network architectures (no weights, no files) and the registry that names them.

Each entry knows its layer table: every module's paper name, kind, channels, stride and
receptive field, computed from the architecture, so that algorithms never walk a net
themselves. ``tiny`` is one entry among the others: VGG16's layers at 1/16 of the width with
fixed random weights, so that every algorithm runs in tests in milliseconds.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ConfigError
from .vgg import M, VGG_CONFIGS, layer_index, layer_names, vgg_features

__all__ = ["VGG_CONFIGS", "Layer", "NetInfo", "NETS", "get_net", "layer_index", "layer_names",
           "layer_table", "vgg_features"]


@dataclass(frozen=True)
class Layer:
    """One module of a net's ``features``: its paper name and what a unit of it sees."""

    index: int            # position in ``features`` (torchvision's index)
    name: str             # conv3_1, relu3_1, pool3
    kind: str             # conv, relu or pool
    channels: int
    stride: int           # input pixels between neighbouring units
    receptive_field: int  # input pixels (per side) one unit depends on


@dataclass(frozen=True)
class NetInfo:
    """A registered net: its architecture, width, and whether it needs trained weights."""

    name: str
    arch: str                 # a key of VGG_CONFIGS: the layer names are this architecture's
    width: float = 1.0        # channel factor (1/16 for the tiny test net)
    pretrained: bool = True   # False: fixed random weights, nothing to load

    def build(self, pooling: str = "max") -> nn.Sequential:
        """The net; with fixed random weights when it is not ``pretrained``."""
        net = vgg_features(self.arch, width=self.width, pooling=pooling)
        if not self.pretrained:
            _random_init(net)
        return net

    @property
    def layers(self) -> tuple[Layer, ...]:
        return layer_table(self.arch, self.width)

    def layer(self, name: str) -> Layer:
        return self.layers[layer_index(self.arch, name)]


NETS = {
    "vgg16": NetInfo("vgg16", "vgg16"),
    "vgg19": NetInfo("vgg19", "vgg19"),
    "vgg16-slim": NetInfo("vgg16-slim", "vgg16-slim"),
    "tiny": NetInfo("tiny", "vgg16", width=1 / 16, pretrained=False),
}


def get_net(name: str) -> NetInfo:
    if name not in NETS:
        raise ConfigError(f"unknown `model` {name!r}", f"use one of {', '.join(NETS)}")
    return NETS[name]


@functools.lru_cache(maxsize=None)
def layer_table(arch: str, width: float = 1.0) -> tuple[Layer, ...]:
    """Every module of ``arch``'s features with its stride and receptive field.

    A 3×3 convolution (stride 1) widens the receptive field by 2 strides; a 2×2 pooling of
    stride 2 by 1 stride, and doubles the stride.
    """
    names = layer_names(arch)
    table, channels, stride, field, i = [], 3, 1, 1, 0
    for item in VGG_CONFIGS[arch]:
        if item == M:
            field, stride = field + stride, stride * 2
            table.append(Layer(i, names[i], "pool", channels, stride, field))
            i += 1
            continue
        channels = max(2, round(item * width))
        field += 2 * stride
        table += [Layer(i, names[i], "conv", channels, stride, field),
                  Layer(i + 1, names[i + 1], "relu", channels, stride, field)]
        i += 2
    return tuple(table)


def _random_init(net: nn.Sequential) -> None:
    """He-initialised convolutions from a fixed seed: the same net in every process."""
    gen = torch.Generator().manual_seed(0)
    for m in net.modules():
        if isinstance(m, nn.Conv2d):
            fan_in = m.in_channels * 9
            m.weight.data = torch.randn(m.weight.shape, generator=gen) * (2.0 / fan_in) ** 0.5
            m.bias.data.zero_()
    # The Caffe convention feeds 0-255 inputs; scale the first layer so activations stay O(1).
    net[0].weight.data /= 64.0
