"""Fast style transfer for any style picture: AdaIN (Huang & Belongie 2017) on VGG16.

    t = AdaIN(f(c), f(s)) = σ(f(s)) · (f(c) − μ(f(c))) / σ(f(c)) + μ(f(s))
    output = g(α·t + (1 − α)·f(c))

f is painterly's frozen VGG16 up to relu4_1, g a decoder painterly trained itself
(``painterly train-fast``, see fast/train.py). One forward pass; no optimisation. By default
f is a slim student distilled from VGG16's relu4_1 (fast/distill.py), four times cheaper.

Inference only: nothing here imports the training code.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
from torch import nn

from ..device import pick_device, resolve_precision
from ..errors import ConfigError, WeightsError, check_option
from ..features import NetSpec, build_extractor
from ..image import ImageLike, load_image, match_color, resize, transfer_luminance
from ..nets import get_net
from ..nets.decoder import fuse_upsampling
from .models import ENCODER_LAYER, ENCODERS, features_name, load_decoder, load_slim_encoder
from .ops import (StyleStats, blend_weights, mirror_pad, style_statistics, target_features,
                  whitening)

# Pixels of mirrored border around the photo while it is encoded and decoded. relu4_1 and
# the decoder see ~100 px around each pixel: with 16 px the frame VGG's zero padding leaves
# still showed as horizontal streaks along the top of skies; 32 px moves them out of view.
MARGIN = 32


@dataclass(frozen=True)
class FastConfig:
    """Every setting of a fast (feed-forward) style transfer, with its default."""

    size: int = 1024                     # larger photos are scaled down to this long side; 0 = never
    work_size: int = 512                 # the networks paint at most this long side and the
                                         # result is scaled up to the photo's; 0 = full size
    style_size: int = 0                  # long side of the style picture; 0 = the work size
    strength: float = 1.0                # α: 0 = the photo re-rendered, 1 = full style
    whiten: float = 0.5                  # blend of AdaIN (0) and WCT's whole covariance (1)
    style_weights: tuple[float, ...] = ()  # blend of several styles; () = equal
    preserve_color: str = "none"         # none, luminance or histogram
    decoder: Optional[str] = None        # a decoder file; None = painterly's own
    weights: Optional[str] = None        # encoder weights: a slim encoder file (None =
                                         # painterly's own) or VGG16 weights (name or file)
    model: str = "slim"                  # the encoder: slim (distilled) or vgg16; "tiny" for tests
    device: str = "auto"
    precision: str = "auto"

    def __post_init__(self):
        check_option(self.size == 0 or self.size >= 32, "size", self.size, "0 or an integer ≥ 32")
        check_option(self.work_size == 0 or self.work_size >= 32, "work_size", self.work_size,
                     "0 or an integer ≥ 32")
        check_option(self.style_size == 0 or self.style_size >= 32, "style_size",
                     self.style_size, "0 or an integer ≥ 32")
        check_option(0.0 <= self.strength <= 1.0, "strength", self.strength, "a number in [0, 1]")
        check_option(0.0 <= self.whiten <= 1.0, "whiten", self.whiten, "a number in [0, 1]")
        check_option(all(w >= 0 for w in self.style_weights) and
                     (not self.style_weights or sum(self.style_weights) > 0),
                     "style_weights", self.style_weights, "numbers ≥ 0, not all 0")
        check_option(self.preserve_color in ("none", "luminance", "histogram"), "preserve_color",
                     self.preserve_color, "none, luminance or histogram")
        check_option(self.model in ENCODERS, "model", self.model, "slim or vgg16 (or tiny)")


class FastStylizer:
    """The encoder and decoder, loaded once; call it for each picture (folders, web app)."""

    def __init__(self, config: FastConfig = FastConfig(), decoder: nn.Module | None = None):
        self.cfg = config
        self.device = pick_device(config.device)
        self.precision = resolve_precision(config.precision, self.device)
        self.encoder, speaks = self._build_encoder(config)
        if decoder is None:
            decoder, meta = load_decoder(config.decoder)
            trained_on = meta.get("encoder", "vgg16-caffe")
            if speaks and trained_on != speaks:
                raise WeightsError(f"decoder was trained on {trained_on}, the encoder gives "
                                   f"{speaks}'s features", "use the decoder's encoder")
        self.decoder = fuse_upsampling(decoder.eval()).to(self.device,
                                                          memory_format=torch.channels_last)
        self._style_cache: dict[tuple, StyleStats] = {}

    def _build_encoder(self, config: FastConfig):
        """The encoder, and whose relu4_1 it gives (None: the tiny test net, unchecked)."""
        if config.model == "slim":
            # The slim encoder mimics VGG16's relu4_1, so it drives VGG16's decoders.
            return load_slim_encoder(config.weights, self.device, self.precision)
        encoder = build_extractor(NetSpec(config.model, config.weights), (ENCODER_LAYER,),
                                  self.device, self.precision)
        return encoder, features_name(config.model) if get_net(config.model).pretrained else None

    @torch.inference_mode()
    def __call__(self, content: ImageLike, styles: Sequence[ImageLike] | ImageLike) -> torch.Tensor:
        cfg = self.cfg
        style_list = list(styles) if isinstance(styles, (list, tuple)) else [styles]
        if not style_list:
            raise ConfigError("no style picture given", "pass at least one style picture")
        blend = blend_weights(cfg.style_weights, len(style_list))
        photo = load_image(content)
        if cfg.size and max(photo.shape[-2:]) > cfg.size:
            photo = resize(photo, long_side=cfg.size)
        work = photo
        if cfg.work_size and max(photo.shape[-2:]) > cfg.work_size:
            work = resize(photo, long_side=cfg.work_size)
        # Below 64 px a painting has too few relu4_1 positions (8 × 8) for its statistics.
        style_side = cfg.style_size or max(*work.shape[-2:], 64)
        paintings = [resize(load_image(s), long_side=style_side) for s in style_list]
        if cfg.preserve_color == "histogram":
            paintings = [match_color(p, work) for p in paintings]
        out = self.render(work.to(self.device), paintings, blend)
        if work is not photo:
            # Departure from AdaIN, for speed: above work_size the encoder alone would cost
            # ~4× per doubling of the side (0.95 s at 1024 px on 2 cores), so the strokes are
            # painted at work_size and scaled up, as brush strokes scale with a print.
            out = nn.functional.interpolate(out, size=photo.shape[-2:], mode="bicubic",
                                            align_corners=False).clamp(0, 1)
        if cfg.preserve_color == "luminance":
            out = transfer_luminance(out, photo.cpu())
        return out

    def render(self, photo: torch.Tensor, paintings: list[torch.Tensor],
               blend: list[float]) -> torch.Tensor:
        h, w = photo.shape[-2:]
        f_c, inside = self.encode(photo)
        whiten = self.cfg.whiten
        white = whitening(f_c, inside) if whiten else None  # once per photo, whatever the paintings
        target = torch.zeros_like(f_c)
        for painting, weight in zip(paintings, blend):
            stats = self.style_stats(painting)
            # AdaIN's interpolation of several styles
            target += weight * target_features(f_c, stats, whiten, white, inside)
        alpha = self.cfg.strength
        target = alpha * target + (1 - alpha) * f_c
        out = self._decode(target)
        return out[..., MARGIN: MARGIN + h, MARGIN: MARGIN + w].float().clamp(0, 1).cpu()

    def encode(self, picture: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """relu4_1 of the picture with a mirrored margin, padded to a multiple of 8, and the
        part of it that is the picture itself, whose statistics count.

        VGG pads with zeros, which the decoder renders as a bright frame at the picture's
        edges, and which skews the statistics near them; a mirrored margin, cropped off after
        decoding, moves that frame out of view and out of the statistics.
        """
        h, w = picture.shape[-2:]
        x = mirror_pad(picture.to(self.device), MARGIN)
        x = nn.functional.pad(x, (0, -w % 8, 0, -h % 8), mode="replicate")
        features = self._encode(x)
        m = MARGIN // 8
        return features, features[..., m: m + -(-h // 8), m: m + -(-w // 8)]

    def style_stats(self, painting: torch.Tensor) -> StyleStats:
        """relu4_1 statistics of a style picture, kept for the next photo of a folder
        (encoding a 1024 px painting costs as much as encoding the photo)."""
        key = (painting.shape, painting.flatten()[:: max(1, painting.numel() // 4096)].sum().item(),
               painting.sum().item())
        if key not in self._style_cache:
            self._style_cache = {key: style_statistics(self.encode(painting)[1]),
                                 **dict(list(self._style_cache.items())[-7:])}
        return self._style_cache[key]

    def _encode(self, picture: torch.Tensor) -> torch.Tensor:
        return self.encoder(picture.contiguous(memory_format=torch.channels_last))[ENCODER_LAYER]

    def _decode(self, features: torch.Tensor) -> torch.Tensor:
        with self.encoder.autocast():
            return self.decoder(features.contiguous(memory_format=torch.channels_last))


def fast_stylize(content: ImageLike, styles: Sequence[ImageLike] | ImageLike,
                 config: FastConfig = FastConfig()) -> torch.Tensor:
    """Paint ``content`` in the style of ``styles`` with one pass of the trained network;
    returns a [1, 3, H, W] picture in [0, 1]."""
    return FastStylizer(config)(content, styles)
