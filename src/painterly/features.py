"""Named activations of a frozen net: ``FeatureExtractor(image) -> {"relu4_2": tensor, ...}``."""
from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from . import weights as W
from .device import PRECISIONS, autocast, resolve_precision
from .errors import ConfigError, check_option
from .nets import get_net, layer_index, vgg_features

log = logging.getLogger(__name__)

# ImageNet statistics for the two input conventions (see weights.CAFFE_BGR / TORCHVISION_RGB).
_CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
_TV_MEAN = (0.485, 0.456, 0.406)
_TV_STD = (0.229, 0.224, 0.225)
MODELS = ("vgg16", "vgg19", "tiny")   # the nets style transfer and DeepDream run on
# The layers of Gatys et al.: the style is read at the first ReLU of every block, the content
# at relu4_2. The quality measures (``quality``) use the same sets.
STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"


@dataclass(frozen=True)
class NetOptions:
    """The network fields every algorithm config shares (a base of their dataclasses)."""

    model: str = "vgg16"
    weights: str | None = None          # registry name or file; None = the model's default
    pooling: str = "max"
    device: str = "auto"
    precision: str = "auto"             # bf16 autocast where the CPU/GPU supports it


def check_net_options(cfg) -> None:
    """Validate the network fields every algorithm config shares (model, pooling, …)."""
    check_option(cfg.model in MODELS, "model", cfg.model, ", ".join(MODELS))
    check_option(cfg.pooling in ("max", "avg"), "pooling", cfg.pooling, "max or avg")
    check_option(cfg.precision in PRECISIONS, "precision", cfg.precision, ", ".join(PRECISIONS))


class FeatureExtractor(nn.Module):
    """A frozen VGG with its input convention applied inside.

    Takes RGB pictures in [0, 1] shaped [B, 3, H, W]; runs only up to the deepest layer
    asked for; returns fp32 activations by paper name.
    """

    def __init__(self, features: nn.Sequential, arch: str, convention: str,
                 layers: tuple[str, ...], precision: str = "fp32"):
        super().__init__()
        self.arch, self.convention, self.precision = arch, convention, precision
        self.index_of = {name: layer_index(arch, name) for name in layers}
        deepest = max(self.index_of.values())
        self.net = features[: deepest + 1].eval()
        for p in self.net.parameters():
            p.requires_grad_(False)

    def normalise(self, image: torch.Tensor) -> torch.Tensor:
        if self.convention == W.CAFFE_BGR:
            mean = image.new_tensor(_CAFFE_MEAN_BGR).view(1, 3, 1, 1)
            return image.flip(1) * 255.0 - mean
        mean = image.new_tensor(_TV_MEAN).view(1, 3, 1, 1)
        std = image.new_tensor(_TV_STD).view(1, 3, 1, 1)
        return (image - mean) / std

    def forward(self, image: torch.Tensor) -> dict[str, torch.Tensor]:
        wanted = {i: name for name, i in self.index_of.items()}
        out: dict[str, torch.Tensor] = {}
        x = self.normalise(image)
        with self.autocast():
            for i, module in enumerate(self.net):
                x = module(x)
                if i in wanted:
                    out[wanted[i]] = x.float()  # losses and Gram matrices stay fp32
        return out

    def autocast(self):
        """The extractor's precision as a context, for networks run beside it (a decoder)."""
        return autocast(self.precision, self.device)

    @property
    def device(self) -> torch.device:
        return next(self.net.parameters()).device

    def out_channels(self, layer: str) -> int:
        """How many channels ``layer`` gives (the conv before a ReLU sets them)."""
        index = self.index_of.get(layer, layer_index(self.arch, layer))
        convs = [m for m in self.net[: index + 1] if isinstance(m, nn.Conv2d)]
        return convs[-1].out_channels


@dataclass(frozen=True)
class NetSpec:
    """Which net to build: architecture, weights (registry name or file), pooling."""

    model: str = "vgg16"
    weights: str | None = None  # a registry name (e.g. vgg16-caffe) or a file path
    pooling: str = "max"


def build_extractor(spec: NetSpec, layers: tuple[str, ...], device: torch.device,
                    precision: str = "auto") -> FeatureExtractor:
    if spec.model not in MODELS:
        raise ConfigError(f"unknown `model` {spec.model!r}", f"use one of {', '.join(MODELS)}")
    info = get_net(spec.model)
    if info.pretrained:
        arch, convention, net = _pretrained_net(spec)
    else:  # the tiny test net: fixed random weights, Caffe's input convention
        arch, convention, net = info.arch, W.CAFFE_BGR, info.build(spec.pooling)
    precision = resolve_precision(precision, device)
    net = net.to(device=device, memory_format=torch.channels_last)
    return FeatureExtractor(net, arch, convention, layers, precision).to(device)


def _pretrained_net(spec: NetSpec) -> tuple[str, str, nn.Sequential]:
    weights = spec.weights or W.DEFAULT_FOR_ARCH[spec.model]
    if weights in W.REGISTRY:
        wspec = W.get_spec(weights)
        if wspec.arch != spec.model:
            raise ConfigError(f"weights {weights!r} are for {wspec.arch}, not {spec.model}",
                              f"set `model` to {wspec.arch}")
        path, convention = W.resolve(wspec), wspec.convention
    else:  # an explicit file: its convention is that of the registry entry with its name
        wspec = W.spec_for_file(Path(weights).name) or W.get_spec(W.DEFAULT_FOR_ARCH[spec.model])
        path, convention = W.resolve(wspec, explicit=weights), wspec.convention
    net = vgg_features(spec.model, pooling=spec.pooling)
    stat = Path(path).stat()
    # strict=True always: W.load_state_dict has already named any missing/unexpected key.
    net.load_state_dict(_load_features(str(path), spec.model, (stat.st_size, stat.st_mtime_ns)),
                        strict=True)
    return spec.model, convention, net


def preload(spec: NetSpec = NetSpec()) -> bool:
    """Read and check a net's weights into the cache now, if they are on this machine (never
    downloads): a front end that stays up calls this so its first job starts sooner."""
    info = get_net(spec.model)
    if not info.pretrained:
        return False
    wspec = W.get_spec(spec.weights or W.DEFAULT_FOR_ARCH[spec.model])
    path = W.find_local(wspec)
    if path is None:
        return False
    stat = Path(path).stat()
    _load_features(str(path), spec.model, (stat.st_size, stat.st_mtime_ns))
    return True


@functools.lru_cache(maxsize=2)
def _load_features(path: str, arch: str, stamp: tuple = ()) -> dict[str, torch.Tensor]:
    """The checked features of a file, cached per (path, arch, size and mtime) for reruns."""
    expected = {f"{k}": v.shape for k, v in vgg_features(arch).state_dict().items()}
    state = W.load_state_dict(Path(path), {f"features.{k}": s for k, s in expected.items()})
    return {k.removeprefix("features."): v for k, v in state.items()}
