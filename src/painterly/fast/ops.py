"""The pure operations of fast style transfer: AdaIN (Huang & Belongie 2017) and WCT (Li et
al. 2017) on feature maps, the blend of the two the decoder paints from, and mirror padding.

    t = AdaIN(f(c), f(s)) = σ(f(s)) · (f(c) − μ(f(c))) / σ(f(c)) + μ(f(s))

No networks, no files: tensors in, tensors out.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, NamedTuple, Optional

import torch
from torch import nn

from ..errors import ConfigError

EPS = 1e-5
WCT_FLOOR = 1e-5  # eigenvalues below this fraction of the largest are raised to it


def feature_stats(features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and standard deviation over positions: [B, C, 1, 1] each.

    The variance is E[x²] − E[x]², one pass over the map: torch's var_mean takes 3.5 times as
    long on the channels-last maps the encoder gives (90 ms against 24 ms for relu1_1 at
    512 px on 2 cores), and far longer on a crop of one. ReLU features have deviations of
    the order of their means, so the cancellation costs a few millionths of the variance."""
    mean = channel_mean(features)
    var = (channel_mean(features.square()) - mean.square()).clamp_min(0)
    return mean, (var + EPS).sqrt()


def channel_mean(features: torch.Tensor) -> torch.Tensor:
    """The mean of each channel over positions, [B, C, 1, 1]: along each row, then over the
    rows. The same number as ``mean((2, 3))``, which torch reduces 50 times slower on a
    cropped channels-last map (218 ms against 4 ms for relu1_1 of a 1024 px photo)."""
    if features.is_contiguous():  # a plain (channels-first) map: torch's own is faster there
        return features.mean((2, 3), keepdim=True)
    return features.permute(0, 2, 3, 1).mean(2).mean(1)[..., None, None]


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
          reference: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Give the content features the style's channel means and deviations. ``reference``:
    the part of ``content`` whose statistics count (default: all of it)."""
    mean, std = feature_stats(content if reference is None else reference)
    # (content − mean) / std · style_std + style_mean, as one multiply-add over the map
    gain = style_std / std
    return torch.addcmul(style_mean - mean * gain, content, gain)


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
    covariance = x @ x.transpose(1, 2) / x.shape[2]
    with one_thread():
        values, vectors = torch.linalg.eigh(covariance)
    # ReLU features have dead channels: a floor keeps whitening from blowing up noise in them
    # (and an absolute one, a flat picture or a single position, from dividing by zero).
    return torch.maximum(values, (values[..., -1:] * WCT_FLOOR).clamp_min(EPS)), vectors


@contextmanager
def one_thread() -> Iterator[None]:
    """Run torch on one thread inside the block.

    LAPACK's eigh of a 512 × 512 covariance takes 0.04 s on one thread and gains nothing from
    a second, but on a 2-core machine with any other busy process its worker threads spin on
    each other: 6.7 s for the same first call, measured beside a training run.
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


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


def target_features(content: torch.Tensor, style: StyleStats, whiten: float,
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


TEXTURE_SEED = 0      # the noise is the same on every call: reruns and video frames agree
FLAT_WINDOW = 9       # positions (72 px at relu4_1) over which flatness is judged


def seed_texture(features: torch.Tensor, amount: float,
                 reference: Optional[torch.Tensor] = None) -> torch.Tensor:
    """The content features with noise where the photo is flat, for the painting's strokes
    to grow from.

    Departure from AdaIN and WCT: both carry the photo's own variation over at each position,
    so where the photo has none (a clear sky, a wall) the decoder paints a flat patch in the
    painting's mean colour, where a painter would lay strokes. Gatys et al.'s optimisation
    starts from noise, and Ulyanov et al.'s texture networks paint from noise, for the same
    reason. Here each position gets Gaussian noise scaled by the channel's deviation and by
    how flat its neighbourhood is: 1 where the features do not vary at all, 0 where they vary
    as much as on average, so edges and detail are left as they were. ``reference``: the part
    of ``features`` whose statistics count (default all of it). The noise is drawn from a
    fixed seed, so that a photo always gets the same picture.
    """
    if amount <= 0:
        return features
    reference = features if reference is None else reference
    mean = reference.mean((2, 3), keepdim=True)
    std = reference.std((2, 3), keepdim=True, correction=0)
    energy = (features - mean).float().norm(dim=1, keepdim=True)          # [B, 1, H, W]
    local = nn.functional.avg_pool2d(energy, FLAT_WINDOW, 1, FLAT_WINDOW // 2,
                                     count_include_pad=False)
    typical = (reference - mean).float().norm(dim=1).mean().clamp_min(EPS)
    flat = (1 - local / typical).clamp(0, 1)
    gen = torch.Generator().manual_seed(TEXTURE_SEED)
    noise = torch.randn(features.shape, generator=gen).to(features.device, features.dtype)
    # ReLU features are never negative; the decoder never saw negative ones.
    return (features + amount * noise * std * flat.to(features.dtype)).clamp_min(0)


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


def blend_weights(weights: tuple[float, ...], n: int) -> list[float]:
    """The weights of ``n`` styles, summing to 1: equal when none are given."""
    if not weights:
        return [1.0 / n] * n
    if len(weights) != n:
        raise ConfigError(f"{len(weights)} style weights for {n} style pictures",
                          "give one weight per style picture")
    total = sum(weights)
    return [w / total for w in weights]
