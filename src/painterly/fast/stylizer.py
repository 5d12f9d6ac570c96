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

from .. import cache
from ..device import pick_device, resolve_precision
from ..errors import ConfigError, WeightsError, check_option
from ..features import NetSpec, build_extractor
from ..image import (ImageLike, color_stats, load_image, match_color, match_color_stats, resize,
                     transfer_luminance)
from ..nets import get_net
from ..nets.decoder import SKIP_LAYERS, SkipDecoder, fuse_upsampling
from .models import ENCODER_LAYER, ENCODERS, features_name, load_decoder, load_slim_encoder
from .ops import (StyleStats, adain, blend_weights, feature_stats, mirror_pad, seed_texture,
                  style_statistics, target_features, whitening)

# Pixels of mirrored border around the photo while it is encoded and decoded. relu4_1 and
# the decoder see ~100 px around each pixel: with 16 px the frame VGG's zero padding leaves
# still showed as horizontal streaks along the top of skies; 32 px moves them out of view.
MARGIN = 32
STRIDES = {"relu1_1": 1, "relu2_1": 2, "relu3_1": 4, "relu4_1": 8}  # pixels per position


@dataclass(frozen=True)
class FastConfig:
    """Every setting of a fast (feed-forward) style transfer, with its default."""

    size: int = 1024                     # larger photos are scaled down to this long side; 0 = never
    work_size: int = 512                 # the networks paint at most this long side and the
                                         # result is scaled up to the photo's; 0 = full size
    style_size: int = 0                  # long side of the style picture; 0 = the work size
    strength: float = 1.0                # α: 0 = the photo re-rendered, 1 = full style
    whiten: float = 0.5                  # blend of AdaIN (0) and WCT's whole covariance (1)
    texture: float = 2.0                 # noise where the photo is flat, for the painting's
                                         # strokes to grow from (skies, walls); 0 = none
    style_weights: tuple[float, ...] = ()  # blend of several styles; () = equal
    palette: float = 0.7                 # the result's colours moved this far towards the
                                         # painting's (their mean and covariance); 0 = none
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
        check_option(0.0 <= self.texture <= 4.0, "texture", self.texture, "a number in [0, 4]")
        check_option(0.0 <= self.palette <= 1.0, "palette", self.palette, "a number in [0, 1]")
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
        meta = {}
        if decoder is None:
            decoder, meta = load_decoder(config.decoder)
        self.skips = SKIP_LAYERS if isinstance(decoder, SkipDecoder) else ()
        self.encoder, speaks = self._build_encoder(config, (ENCODER_LAYER, *self.skips))
        trained_on = meta.get("encoder", "vgg16-caffe")
        if meta and speaks and trained_on != speaks:
            raise WeightsError(f"decoder was trained on {trained_on}, the encoder gives "
                               f"{speaks}'s features", "use the decoder's encoder")
        wanted = [join.in_channels for join in decoder.joins] if self.skips else []
        if wanted != [self.encoder.out_channels(layer) for layer in self.skips]:
            # The skips take the shallow layers of the encoder the decoder was trained with
            # (painterly's: the slim one's); VGG16's relu4_1 drives it alone.
            self.skips = ()
        # Upsampling convs fused, and every ReLU in place (one pass fewer over each map), the
        # encoder's too. In-place ReLUs after convs train as well (autograd keeps what it
        # needs), so a decoder passed in stays usable for training.
        self.decoder = _relus_in_place(fuse_upsampling(decoder.eval())).to(
            self.device, memory_format=torch.channels_last)
        _relus_in_place(self.encoder)
        self._style_cache: dict[tuple, tuple[StyleStats, list]] = {}
        self._encoder_digest: Optional[str] = None

    def _build_encoder(self, config: FastConfig, layers: tuple[str, ...]):
        """The encoder giving ``layers``, and whose relu4_1 it gives (None: the tiny test
        net, unchecked)."""
        if config.model == "slim":
            # The slim encoder mimics VGG16's relu4_1, so it drives VGG16's decoders.
            return load_slim_encoder(config.weights, self.device, self.precision, layers)
        encoder = build_extractor(NetSpec(config.model, config.weights), layers,
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
        if cfg.palette and cfg.preserve_color == "none":
            out = self.match_palette(out, paintings, blend)
        if work is not photo:
            # Departure from AdaIN, for speed: above work_size the encoder alone would cost
            # ~4× per doubling of the side (0.95 s at 1024 px on 2 cores), so the strokes are
            # painted at work_size and scaled up, as brush strokes scale with a print.
            out = nn.functional.interpolate(out, size=photo.shape[-2:], mode="bicubic",
                                            align_corners=False).clamp(0, 1)
        if cfg.preserve_color == "luminance":
            out = transfer_luminance(out, photo.cpu())
        return out

    def match_palette(self, out: torch.Tensor, paintings: list[torch.Tensor],
                      blend: list[float]) -> torch.Tensor:
        """The result's colours moved ``palette`` (times ``strength``) of the way to the
        paintings': their pixels' mean and covariance matched (Gatys et al. 2016's linear
        colour transfer, as ``preserve_color histogram`` uses it the other way round).

        Departure from AdaIN: the decoder matches the painting's colours only through VGG's
        features, and its pictures drift towards the photo's tints and a pale haze. Judged
        blind on 24 held-out pairs (docs/fast_blind.md), three judges preferred the matched
        pictures 36 times to 16 (20 draws), mostly for a palette and tonal range nearer the
        painting's. 0.7 is the only amount that was judged; matching all the way was not tried.
        """
        matched = match_color_stats(out, *color_stats(paintings, blend))
        return torch.lerp(out, matched, self.cfg.palette * self.cfg.strength)

    def render(self, photo: torch.Tensor, paintings: list[torch.Tensor],
               blend: list[float]) -> torch.Tensor:
        h, w = photo.shape[-2:]
        features = self.encode(photo)
        f_c = features[ENCODER_LAYER]
        seeded = seed_texture(f_c, self.cfg.texture, _inside(f_c, h, w, 8))
        inside = _inside(seeded, h, w, 8)
        whiten = self.cfg.whiten
        white = whitening(seeded, inside) if whiten else None  # once per photo
        target, skips = None, [None] * len(self.skips)
        for painting, weight in zip(paintings, blend):
            stats, skip_stats = self.style_stats(painting)
            # AdaIN's interpolation of several styles
            target = _weighted_sum(target, weight,
                                   target_features(seeded, stats, whiten, white, inside))
            for k, (layer, (mean, std)) in enumerate(zip(self.skips, skip_stats)):
                stride = STRIDES[layer]
                skips[k] = _weighted_sum(skips[k], weight, adain(
                    features[layer], mean, std, _inside(features[layer], h, w, stride)))
        alpha = self.cfg.strength
        if alpha < 1:
            target = alpha * target + (1 - alpha) * f_c
            skips = [alpha * skip + (1 - alpha) * features[layer]
                     for skip, layer in zip(skips, self.skips)]
        out = self._decode(target, skips)
        return out[..., MARGIN: MARGIN + h, MARGIN: MARGIN + w].float().clamp(0, 1).cpu()

    def encode(self, picture: torch.Tensor) -> dict[str, torch.Tensor]:
        """relu4_1 (and the decoder's skip layers) of the picture with a mirrored margin,
        padded to a multiple of 8; ``_inside`` crops each to the picture itself, whose
        statistics count.

        VGG pads with zeros, which the decoder renders as a bright frame at the picture's
        edges, and which skews the statistics near them; a mirrored margin, cropped off after
        decoding, moves that frame out of view and out of the statistics.
        """
        h, w = picture.shape[-2:]
        x = mirror_pad(picture.to(self.device), MARGIN)
        x = nn.functional.pad(x, (0, -w % 8, 0, -h % 8), mode="replicate")
        return self.encoder(x.contiguous(memory_format=torch.channels_last))

    def style_stats(self, painting: torch.Tensor) -> tuple[StyleStats, list]:
        """relu4_1 statistics of a style picture, and the means and deviations of its skip
        layers, kept for the next photo of a folder (encoding a 1024 px painting costs as
        much as encoding the photo)."""
        key = (painting.shape, painting.flatten()[:: max(1, painting.numel() // 4096)].sum().item(),
               painting.sum().item())
        if key not in self._style_cache:
            stored = self._stored_key(painting)
            stats = _unpack_stats(cache.load(stored), self._stats_channels(), self.device)
            if stats is None:
                stats = self._encode_stats(painting)
                cache.store(stored, _pack_stats(*stats))
            self._style_cache = {key: stats, **dict(list(self._style_cache.items())[-7:])}
        return self._style_cache[key]

    def _encode_stats(self, painting: torch.Tensor) -> tuple[StyleStats, list]:
        h, w = painting.shape[-2:]
        features = self.encode(painting)
        return (style_statistics(_inside(features[ENCODER_LAYER], h, w, 8)),
                [feature_stats(_inside(features[layer], h, w, STRIDES[layer]))
                 for layer in self.skips])

    def _stats_channels(self) -> list[int]:
        """Channels of relu4_1, then of each skip layer: what a stored entry must hold."""
        return [self.encoder.out_channels(layer) for layer in (ENCODER_LAYER, *self.skips)]

    def _stored_key(self, painting: torch.Tensor) -> str:
        """The disk cache's key: the painting's pixels, the encoder's weights (digested once),
        the layers and the precision: what the statistics depend on."""
        if self._encoder_digest is None:
            self._encoder_digest = cache.digest(*self.encoder.state_dict().values())
        return cache.digest("fast-style-stats", self._encoder_digest, ENCODER_LAYER,
                            self.skips, self.precision, self.device.type, painting)

    def _decode(self, features: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        with self.encoder.autocast():
            features = features.contiguous(memory_format=torch.channels_last)
            if not self.skips:
                return self.decoder(features)
            return self.decoder(features, [s.contiguous(memory_format=torch.channels_last)
                                           for s in skips])


def _pack_stats(stats: StyleStats, skips: list) -> dict[str, torch.Tensor]:
    """A painting's statistics as named tensors, for the disk cache."""
    tensors = {name: t for name, t in stats._asdict().items() if t is not None}
    for k, (mean, std) in enumerate(skips):
        tensors[f"skip{k}.mean"], tensors[f"skip{k}.std"] = mean, std
    return tensors


def _unpack_stats(tensors: Optional[dict[str, torch.Tensor]], channels: list[int],
                  device: torch.device) -> Optional[tuple[StyleStats, list]]:
    """_pack_stats undone, for an encoder whose relu4_1 and skip layers have ``channels``;
    None for anything else (another layout, other shapes, numbers that can't be statistics)."""
    c, skip_channels = channels[0], channels[1:]
    shapes = {"mean": (1, c, 1, 1), "std": (1, c, 1, 1), "values": (1, c), "vectors": (1, c, c)}
    for k, ck in enumerate(skip_channels):
        shapes[f"skip{k}.mean"] = shapes[f"skip{k}.std"] = (1, ck, 1, 1)
    if tensors is None or {n: tuple(t.shape) for n, t in tensors.items()} != shapes:
        return None
    if not all(t.isfinite().all() for t in tensors.values()) or (tensors["values"] <= 0).any():
        return None
    tensors = {name: t.to(device) for name, t in tensors.items()}
    skips = [(tensors[f"skip{k}.mean"], tensors[f"skip{k}.std"])
             for k in range(len(skip_channels))]
    return StyleStats(*(tensors[name] for name in ("mean", "std", "values", "vectors"))), skips


def _relus_in_place(net: nn.Module) -> nn.Module:
    for module in net.modules():
        if isinstance(module, nn.ReLU):
            module.inplace = True
    return net


def _weighted_sum(total: Optional[torch.Tensor], weight: float,
                  term: torch.Tensor) -> torch.Tensor:
    """``total + weight · term``, with no pass over the map that changes nothing (one style,
    weight 1: the term itself)."""
    term = term if weight == 1 else weight * term
    return term if total is None else total + term


def _inside(features: torch.Tensor, h: int, w: int, stride: int) -> torch.Tensor:
    """The part of a layer of ``stride`` (of a picture h × w with MARGIN around it) that is
    the picture."""
    m = MARGIN // stride
    return features[..., m: m + -(-h // stride), m: m + -(-w // stride)]


def fast_stylize(content: ImageLike, styles: Sequence[ImageLike] | ImageLike,
                 config: FastConfig = FastConfig()) -> torch.Tensor:
    """Paint ``content`` in the style of ``styles`` with one pass of the trained network;
    returns a [1, 3, H, W] picture in [0, 1]."""
    return FastStylizer(config)(content, styles)
