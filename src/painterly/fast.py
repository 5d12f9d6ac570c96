"""Fast style transfer for any style picture: AdaIN (Huang & Belongie 2017) on VGG16.

    t = AdaIN(f(c), f(s)) = σ(f(s)) · (f(c) − μ(f(c))) / σ(f(c)) + μ(f(s))
    output = g(α·t + (1 − α)·f(c))

f is painterly's frozen VGG16 up to relu4_1, g a decoder painterly trained itself
(``painterly train-fast``, see fast_train.py). One forward pass; no optimisation. By default
f is a slim student distilled from VGG16's relu4_1 (fast_distill.py), four times cheaper.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple, Optional, Sequence

import torch
from torch import nn

from . import image as I
from .errors import ConfigError, WeightsError, check_option
from .features import NetSpec, build_extractor, resolve_precision

ENCODER_LAYER = "relu4_1"
STATS_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")  # the training style loss
# Channel widths of the decoder, from relu4_1 (1/8 size) back up to the picture. It mirrors
# the encoder's blocks but is narrower than AdaIN's (which mirrors VGG19 exactly): on a 2-core
# CPU the full mirror costs as much as the encoder, and a slimmer one trains in a day's budget.
# These are a fresh decoder's; a file's own are in its metadata (painterly's has a second
# full-size conv, grown with train-fast --widths).
DECODER_WIDTHS = ((256,), (128, 128), (64, 64), (32,))
DECODER_FILE = Path(__file__).parent / "models" / "adain-vgg16-decoder.safetensors"
EPS = 1e-5
# Caffe-convention VGG features are large (relu4_1's deviation is ~370 on photos); scaling
# them to O(1) lets the decoder train from the default initialisation without blowing up.
INPUT_SCALE = 1 / 256
WCT_FLOOR = 1e-5  # eigenvalues below this fraction of the largest are raised to it
# Pixels of mirrored border around the photo while it is encoded and decoded. relu4_1 and
# the decoder see ~100 px around each pixel: with 16 px the frame VGG's zero padding leaves
# still showed as horizontal streaks along the top of skies; 32 px moves them out of view.
MARGIN = 32
ENCODERS = ("slim", "vgg16", "tiny")


def feature_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation over positions: [B, C, 1, 1] each."""
    var, mean = torch.var_mean(features, dim=(2, 3), keepdim=True, unbiased=False)
    return mean, (var + EPS).sqrt()


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
          reference: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Give the content features the style's channel means and deviations. ``reference``:
    the part of ``content`` whose statistics count (default: all of it)."""
    mean, std = feature_stats(content if reference is None else reference)
    return (content - mean) / std * style_std + style_mean


class StyleStats(NamedTuple):
    """What AdaIN and WCT need of a painting's relu4_1 features."""
    mean: torch.Tensor       # [B, C, 1, 1]
    std: torch.Tensor        # [B, C, 1, 1]
    values: Optional[torch.Tensor]   # [B, C]     eigenvalues of the channel covariance
    vectors: Optional[torch.Tensor]  # [B, C, C]  its eigenvectors (None: AdaIN only)


def style_statistics(features: torch.Tensor, covariance: bool = True) -> StyleStats:
    values, vectors = _covariance_eigen(features) if covariance else (None, None)
    return StyleStats(*feature_stats(features), values, vectors)


def _covariance_eigen(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = features.flatten(2).float()
    x = x - x.mean(2, keepdim=True)
    values, vectors = torch.linalg.eigh(x @ x.transpose(1, 2) / x.shape[2])
    # ReLU features have dead channels: a floor keeps whitening from blowing up noise in them
    # (and an absolute one, a flat picture or a single position, from dividing by zero).
    return torch.maximum(values, (values[..., -1:] * WCT_FLOOR).clamp_min(EPS)), vectors


def whitening(content: torch.Tensor, reference: Optional[torch.Tensor] = None
              ) -> tuple[torch.Tensor, torch.Tensor]:
    """The whitening matrix [B, C, C] of the content features and the centred features
    [B, C, N]: their product has the identity as channel covariance (over ``reference``,
    the part of ``content`` whose statistics count; default all of it)."""
    reference = content if reference is None else reference
    values, vectors = _covariance_eigen(reference)
    whiten = vectors @ torch.diag_embed(values.rsqrt()) @ vectors.transpose(1, 2)
    mean = reference.flatten(2).float().mean(2, keepdim=True)
    return whiten, content.flatten(2).float() - mean


def wct(content: torch.Tensor, style: StyleStats,
        white: Optional[tuple[torch.Tensor, torch.Tensor]] = None) -> torch.Tensor:
    """Whitening and colouring (Li et al. 2017, *Universal Style Transfer via Feature
    Transforms*): the content features get the painting's whole channel covariance, not only
    AdaIN's per-channel deviations, so correlations between channels, which make up much of
    a texture, carry over too. ``white``: the content already whitened (one photo, several
    paintings)."""
    whiten, centred = whitening(content) if white is None else white
    colour = style.vectors @ torch.diag_embed(style.values.sqrt()) @ style.vectors.transpose(1, 2)
    # (C × C) · (C × C) first, then one (C × C) · (C × N): cheaper than two passes over N.
    return ((colour @ whiten) @ centred).reshape(content.shape) + style.mean


def transform(content: torch.Tensor, style: StyleStats, whiten: float,
              white: Optional[tuple[torch.Tensor, torch.Tensor]] = None,
              reference: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The decoder's input: AdaIN's target, blended with WCT's by ``whiten``; ``reference``
    as for adain.

    Departure from AdaIN: measured on the shared pairs (docs/fast.md), half of each brings
    the picture closer to the painting than AdaIN alone, at a small cost in content."""
    target = adain(content, style.mean, style.std, reference)
    if whiten:
        white = whitening(content, reference) if white is None else white
        target = whiten * wct(content, style, white) + (1 - whiten) * target
    return target


def build_decoder(in_channels: int = 512, scale: float = 1.0,
                  input_scale: float = INPUT_SCALE,
                  widths: Sequence[Sequence[int]] = DECODER_WIDTHS) -> nn.Sequential:
    """Upsample + 3×3 conv blocks (no transposed convolutions, so no checkerboards) with
    reflection padding (no dark borders). ``widths``: the conv widths of each of the four
    blocks (1/8, 1/4, 1/2 and full size); ``scale`` < 1 gives the tiny test decoder."""
    layers: list[nn.Module] = [Scale(input_scale)]
    channels = in_channels
    for block, widths in enumerate(check_widths(widths)):
        if block:
            layers.append(nn.Upsample(scale_factor=2, mode="nearest"))
        for width in widths:
            width = max(4, round(width * scale))
            layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, width, 3), nn.ReLU()]
            channels = width
    layers += [nn.ReflectionPad2d(1), nn.Conv2d(channels, 3, 3)]
    return nn.Sequential(*layers)


class SubpixelConv(nn.Module):
    """Nearest 2× upsampling, reflection padding and a 3×3 conv, computed at the low size.

    After nearest upsampling each output pixel's 3×3 window covers only 2×2 input pixels, so
    the trained 3×3 kernel folds into four 2×2 kernels, one per output phase (row and column
    parity); reflection padding of the upsampled map equals replicate padding of the input.
    The same picture (up to rounding) with 16 instead of 36 multiply-adds per weight and
    output pixel, and no 4× upsampled map in memory. Used for inference; training keeps the
    plain layers.
    """

    def __init__(self, conv: nn.Conv2d):
        super().__init__()
        w = conv.weight.detach()                       # [out, in, 3, 3]
        # Rows (and likewise columns) of the 3×3 kernel that land on input rows i-1, i (even
        # phase) and i, i+1 (odd phase).
        fold = torch.tensor([[[1., 0., 0.], [0., 1., 1.]], [[1., 1., 0.], [0., 0., 1.]]],
                            dtype=w.dtype)             # [phase, 2, 3]
        kernels = [torch.einsum("ih,jw,ochw->ocij", fold[a], fold[b], w)
                   for a in (0, 1) for b in (0, 1)]    # 4 × [out, in, 2, 2]
        self.out_channels = w.shape[0]
        self.weight = nn.Parameter(torch.cat(kernels), requires_grad=False)
        self.bias = nn.Parameter(conv.bias.detach().repeat(4), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        y = nn.functional.conv2d(nn.functional.pad(x, (1, 1, 1, 1), mode="replicate"),
                                 self.weight, self.bias)          # [B, 4·out, h+1, w+1]
        phases = y.unflatten(1, (2, 2, self.out_channels))        # [B, a, b, out, h+1, w+1]
        rows = [torch.stack([phases[:, a, b, :, a: a + h, b: b + w] for b in (0, 1)], -1)
                for a in (0, 1)]                                  # each [B, out, h, w, b]
        out = torch.stack(rows, -3)                               # [B, out, h, a, w, b]
        return out.reshape(x.shape[0], self.out_channels, 2 * h, 2 * w)


def fuse_upsampling(decoder: nn.Module) -> nn.Module:
    """The decoder with each (Upsample, ReflectionPad2d(1), 3×3 Conv2d) run as a SubpixelConv."""
    if not isinstance(decoder, nn.Sequential):
        return decoder
    layers, modules = [], list(decoder)
    i = 0
    while i < len(modules):
        window = modules[i: i + 3]
        if (len(window) == 3 and isinstance(window[0], nn.Upsample)
                and isinstance(window[1], nn.ReflectionPad2d) and window[1].padding == (1,) * 4
                and isinstance(window[2], nn.Conv2d) and window[2].kernel_size == (3, 3)):
            layers.append(SubpixelConv(window[2]))
            i += 3
        else:
            layers.append(modules[i])
            i += 1
    return nn.Sequential(*layers)


class Scale(nn.Module):
    """Multiply by a fixed factor (no parameters)."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.factor


def check_widths(widths, shown=None) -> tuple[tuple[int, ...], ...]:
    """The decoder's widths as a tuple of four tuples of positive integers, or a ConfigError
    (naming ``shown``, the widths as the user wrote them)."""
    try:
        out = tuple(tuple(int(w) for w in block) for block in widths)
    except (TypeError, ValueError):
        out = ()
    check_option(len(out) == 4 and all(out) and all(w >= 1 for b in out for w in b), "widths",
                 widths if shown is None else shown,
                 "four blocks of conv widths, '/' between blocks, e.g. 256/128,128/64,64/32")
    return out


def parse_widths(text: str) -> tuple[tuple[int, ...], ...]:
    """'256/128,128/64,64/32' (blocks split by '/', widths by ',') as build_decoder's widths."""
    return check_widths([block.split(",") for block in text.split("/")], shown=text)


def decoder_metadata(encoder: str, widths: Sequence[Sequence[int]] = DECODER_WIDTHS,
                     **extra) -> dict[str, str]:
    meta = {"format": "painterly-adain-decoder", "encoder": encoder,
            "encoder_layer": ENCODER_LAYER, "widths": json.dumps(check_widths(widths))}
    return {**meta, **{k: str(v) for k, v in extra.items()}}


def load_decoder(path: str | Path | None = None) -> tuple[nn.Sequential, dict[str, str]]:
    """Load a decoder from a safetensors file (painterly's own by default); returns it and its metadata."""
    from safetensors import safe_open

    path = Path(path) if path else DECODER_FILE
    if not path.is_file():
        raise WeightsError(f"decoder weights not found: {path}",
                           "reinstall painterly, or train one with `painterly train-fast`")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k).float() for k in f.keys()}
    except Exception as exc:  # safetensors raises several types for a damaged file
        raise WeightsError(f"cannot read decoder weights {path}: {exc}",
                           "the file is damaged or not a safetensors file") from exc
    if meta.get("format") != "painterly-adain-decoder":
        raise WeightsError(f"{path} is not a painterly decoder", "pass a file made by train-fast")
    scale = float(meta.get("scale", 1.0))
    try:
        widths = check_widths(json.loads(meta["widths"]) if "widths" in meta else DECODER_WIDTHS)
    except (ValueError, ConfigError) as exc:
        raise WeightsError(f"{path} has unreadable decoder widths", "pass a file made by "
                           "train-fast") from exc
    decoder = build_decoder(int(meta.get("in_channels", 512)), scale,
                            float(meta.get("input_scale", INPUT_SCALE)), widths)
    try:
        decoder.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise WeightsError(f"decoder weights {path} do not fit the decoder: {exc}".splitlines()[0],
                           "pass a file made by this version's train-fast") from exc
    return decoder.eval().requires_grad_(False), meta


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
        from .transfer import pick_device

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
            from .fast_distill import slim_extractor
            return slim_extractor(config.weights, self.device, self.precision)
        encoder = build_extractor(NetSpec(config.model, config.weights), (ENCODER_LAYER,),
                                  self.device, self.precision)
        return encoder, "vgg16-caffe" if config.model == "vgg16" else None

    @torch.inference_mode()
    def __call__(self, content: I.ImageLike, styles: Sequence[I.ImageLike] | I.ImageLike) -> torch.Tensor:
        cfg = self.cfg
        style_list = list(styles) if isinstance(styles, (list, tuple)) else [styles]
        if not style_list:
            raise ConfigError("no style picture given", "pass at least one style picture")
        blend = _blend(cfg.style_weights, len(style_list))
        photo = I.load_image(content)
        if cfg.size and max(photo.shape[-2:]) > cfg.size:
            photo = I.resize(photo, long_side=cfg.size)
        work = photo
        if cfg.work_size and max(photo.shape[-2:]) > cfg.work_size:
            work = I.resize(photo, long_side=cfg.work_size)
        # Below 64 px a painting has too few relu4_1 positions (8 × 8) for its statistics.
        style_side = cfg.style_size or max(*work.shape[-2:], 64)
        paintings = [I.resize(I.load_image(s), long_side=style_side) for s in style_list]
        if cfg.preserve_color == "histogram":
            paintings = [I.match_color(p, work) for p in paintings]
        out = self.render(work.to(self.device), paintings, blend)
        if work is not photo:
            # Departure from AdaIN, for speed: above work_size the encoder alone would cost
            # ~4× per doubling of the side (0.95 s at 1024 px on 2 cores), so the strokes are
            # painted at work_size and scaled up, as brush strokes scale with a print.
            out = nn.functional.interpolate(out, size=photo.shape[-2:], mode="bicubic",
                                            align_corners=False).clamp(0, 1)
        if cfg.preserve_color == "luminance":
            out = I.transfer_luminance(out, photo.cpu())
        return out

    def render(self, photo: torch.Tensor, paintings: list[torch.Tensor],
               blend: list[float]) -> torch.Tensor:
        h, w = photo.shape[-2:]
        f_c, inside = self.encode(photo)
        k = self.cfg.whiten
        white = whitening(f_c, inside) if k else None  # once per photo, whatever the paintings
        target = torch.zeros_like(f_c)
        for painting, weight in zip(paintings, blend):
            stats = self.style_stats(painting)
            target += weight * transform(f_c, stats, k, white, inside)  # AdaIN's interpolation
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
        with self.encoder._autocast():
            return self.decoder(features.contiguous(memory_format=torch.channels_last))


def mirror_pad(x: torch.Tensor, margin: int) -> torch.Tensor:
    """``margin`` pixels of mirrored border on each side. A side shorter than the margin is
    mirrored again and again (reflection padding stops at the picture's own size); a
    one-pixel side is repeated."""
    for dim in (-1, -2):
        left = margin
        while left:
            step = min(left, x.shape[dim] - 1)
            mode = "reflect" if step else "replicate"
            step = step or left
            x = nn.functional.pad(x, (step, step, 0, 0) if dim == -1 else (0, 0, step, step),
                                  mode=mode)
            left -= step
    return x


def fast_stylize(content: I.ImageLike, styles: Sequence[I.ImageLike] | I.ImageLike,
                 config: FastConfig = FastConfig()) -> torch.Tensor:
    """Paint ``content`` in the style of ``styles`` with one pass of the trained network;
    returns a [1, 3, H, W] picture in [0, 1]."""
    return FastStylizer(config)(content, styles)


def _blend(weights: tuple[float, ...], n: int) -> list[float]:
    if not weights:
        return [1.0 / n] * n
    if len(weights) != n:
        raise ConfigError(f"{len(weights)} style weights for {n} style pictures",
                          "give one weight per style picture")
    total = sum(weights)
    return [w / total for w in weights]
