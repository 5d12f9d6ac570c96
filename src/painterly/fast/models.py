"""The two networks of fast style transfer, read from painterly's own files: the decoder and
the slim encoder (each the packaged one by default). Files are read only through
``weights.read_model``, which checks the safetensors header and the file's format first.

The slim encoder (fast/distill.py) is a student distilled from VGG16's relu4_1, four times
cheaper; the decoder (fast/train.py) paints a picture back from relu4_1.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from .. import weights
from ..errors import ConfigError, WeightsError
from ..features import FeatureExtractor
from ..nets import NETS, vgg_features
from ..nets.decoder import (DECODER_WIDTHS, INPUT_SCALE, SKIP_LAYERS, SkipDecoder, build_decoder,
                           check_widths)

ENCODER_LAYER = "relu4_1"
STATS_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # the training style loss
ENCODERS = ("slim", "vgg16", "tiny")
SLIM_ARCH = "vgg16-slim"
DECODER_MODEL, SLIM_MODEL = "adain-decoder", "slim-encoder"  # weights.PACKAGED's names


def features_name(model: str) -> str:
    """How a file's metadata names the relu4_1 of the net ``model``: ``vgg16-caffe`` for a
    pretrained net (Caffe's weights), the test net's own name otherwise."""
    return f"{model}-caffe" if NETS[model].pretrained else model


def decoder_metadata(encoder: str, widths: Sequence[Sequence[int]] = DECODER_WIDTHS,
                     **extra) -> dict[str, str]:
    meta = {"format": weights.PACKAGED[DECODER_MODEL].format, "encoder": encoder,
            "encoder_layer": ENCODER_LAYER, "widths": json.dumps(check_widths(widths))}
    return {**meta, **{k: str(v) for k, v in extra.items()}}


def slim_metadata(width: float, convention: str, teacher: str, **extra) -> dict[str, str]:
    meta = {"format": weights.PACKAGED[SLIM_MODEL].format, "arch": SLIM_ARCH,
            "width": str(width), "layer": ENCODER_LAYER, "convention": convention,
            "teacher": teacher}
    return {**meta, **{k: str(v) for k, v in extra.items()}}


def load_decoder(path: str | Path | None = None) -> tuple[nn.Module, dict[str, str]]:
    """Load a decoder from a safetensors file (painterly's own by default); returns it and its
    metadata. A decoder with skips (``skip_channels`` in its metadata) is a SkipDecoder."""
    state, meta, path = weights.read_model(
        path, DECODER_MODEL, "reinstall painterly, or train one with `painterly train-fast`")
    scale = float(meta.get("scale", 1.0))
    try:
        widths = check_widths(json.loads(meta["widths"]) if "widths" in meta else DECODER_WIDTHS)
    except (ValueError, ConfigError) as exc:
        raise WeightsError(f"{path} has unreadable decoder widths", "pass a file made by "
                           "train-fast") from exc
    input_scale = float(meta.get("input_scale", INPUT_SCALE))
    decoder = build_decoder(int(meta.get("in_channels", 512)), scale, input_scale, widths)
    if "skip_channels" in meta:
        try:
            channels = [int(c) for c in json.loads(meta["skip_channels"])]
            decoder = SkipDecoder(decoder, channels, input_scale)
        except (ValueError, TypeError, ConfigError) as exc:
            raise WeightsError(f"{path} has unreadable skip channels", "pass a file made by "
                               "train-fast") from exc
    _load_into(decoder, state, path, "decoder", "train-fast")
    return decoder.eval().requires_grad_(False), meta


def load_slim_encoder(path: str | Path | None, device: torch.device, precision: str,
                      layers: tuple[str, ...] = (ENCODER_LAYER,)
                      ) -> tuple[FeatureExtractor, Optional[str]]:
    """The distilled encoder from its safetensors file (painterly's own by default), giving
    ``layers``, and the teacher whose relu4_1 it mimics (None for a tiny test teacher)."""
    state, meta, path = weights.read_model(path, SLIM_MODEL,
                                           "reinstall painterly, or set `model` to vgg16")
    net = vgg_features(SLIM_ARCH, width=float(meta.get("width", 1.0)))
    _load_into(net, state, path, "slim encoder", "distill-fast")
    net = net.to(device=device, memory_format=torch.channels_last)
    convention = meta.get("convention", weights.CAFFE_BGR)  # the teacher's input convention
    if convention not in (weights.CAFFE_BGR, weights.TORCHVISION_RGB):
        raise WeightsError(f"{path} has an unknown input convention {convention!r}",
                           "pass a file made by `painterly distill-fast`")
    encoder = FeatureExtractor(net, SLIM_ARCH, convention, layers, precision)
    teacher = meta.get("teacher", "vgg16-caffe")
    unchecked = teacher in NETS and not NETS[teacher].pretrained  # the tiny test teacher
    return encoder.to(device), None if unchecked else teacher


def _load_into(net: nn.Module, state: dict[str, torch.Tensor], path: Path, what: str,
               command: str) -> None:
    """Every tensor of ``state`` into ``net``, names and shapes checked strictly."""
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"{what} weights {path} do not fit the {what}: {exc}".splitlines()[0],
                           f"pass a file made by this version's {command}") from exc
