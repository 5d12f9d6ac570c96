"""Style transfer by optimisation (Gatys, Ecker & Bethge 2015), coarse to fine."""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, fields
from typing import Optional, Sequence

import torch

from . import image as I
from .errors import ConfigError, check_option
from .features import FeatureExtractor, NetSpec, build_extractor, check_net_options
from .losses import content_loss, gram_matrix, style_loss, tv_loss
from .optim import OPTIMIZERS, Run, optimize
from .progress import Callback

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
INITS = ("content", "noise")
PRESERVE_COLOR = ("none", "luminance", "histogram")
# Iterations per scale, coarsest first (256 → 362 → 512 px for the default size); a larger
# --size adds finer scales that repeat the last count. Measured in benchmarks/bench.py.
PRESETS = {"draft": (80, 30, 15), "default": (150, 60, 40), "high": (300, 150, 100)}


@dataclass(frozen=True)
class TransferConfig:
    """Every setting of a style transfer, with its default."""

    size: int = 512                      # long side of the output, pixels
    min_size: int = 256                  # coarse-to-fine starts here and grows ×√2
    iterations: tuple[int, ...] = ()     # per scale, coarse to fine; () = from `quality`
    quality: str = "default"             # a preset schedule: draft, default or high
    content_layers: tuple[str, ...] = ("relu4_2",)
    style_layers: tuple[str, ...] = STYLE_LAYERS
    style_layer_weights: tuple[float, ...] = ()   # () = equal
    content_weight: float = 1.0
    style_weight: float = 10.0
    tv_weight: float = 10.0
    style_weights: tuple[float, ...] = ()  # blend of several style pictures; () = equal
    style_scale: float = 1.0             # style picture's long side relative to the output's
    optimizer: str = "lbfgs"
    lr: Optional[float] = None           # None: 1.0 for L-BFGS, 0.02 for Adam
    init: str = "content"                # "content", "noise", or a picture file
    preserve_color: str = "none"
    seed: int = 0
    model: str = "vgg16"
    weights: Optional[str] = None        # registry name or file; None = the model's default
    pooling: str = "max"
    device: str = "auto"
    precision: str = "auto"              # bf16 autocast where the CPU/GPU supports it
    preview_every: int = 0               # attach the picture to every n-th progress event

    def __post_init__(self):
        _validate(self)


def _validate(cfg: TransferConfig) -> None:
    check_net_options(cfg)
    check_option(cfg.size >= 32, "size", cfg.size, "an integer ≥ 32")
    check_option(cfg.min_size >= 32, "min_size", cfg.min_size, "an integer ≥ 32")
    check_option(all(i >= 0 for i in cfg.iterations), "iterations", cfg.iterations, "counts ≥ 0")
    for name in ("content_weight", "style_weight", "tv_weight", "style_scale"):
        check_option(getattr(cfg, name) >= 0, name, getattr(cfg, name), "a number ≥ 0")
    check_option(cfg.style_scale > 0, "style_scale", cfg.style_scale, "a number > 0")
    check_option(all(w >= 0 for w in cfg.style_weights) and (not cfg.style_weights
                                                      or sum(cfg.style_weights) > 0),
           "style_weights", cfg.style_weights, "non-negative numbers, not all zero")
    check_option(not cfg.style_layer_weights or len(cfg.style_layer_weights) == len(cfg.style_layers),
           "style_layer_weights", cfg.style_layer_weights, "one weight per style layer")
    check_option(cfg.quality in PRESETS, "quality", cfg.quality, ", ".join(PRESETS))
    check_option(cfg.optimizer in OPTIMIZERS, "optimizer", cfg.optimizer, " or ".join(OPTIMIZERS))
    check_option(cfg.preserve_color in PRESERVE_COLOR, "preserve_color", cfg.preserve_color,
           ", ".join(PRESERVE_COLOR))
    check_option(cfg.lr is None or cfg.lr > 0, "lr", cfg.lr, "a number > 0")
    check_option(bool(cfg.content_layers) and bool(cfg.style_layers), "layers",
           (cfg.content_layers, cfg.style_layers), "at least one content and one style layer")


def config_fields() -> list[str]:
    return [f.name for f in fields(TransferConfig)]


def scale_sizes(size: int, min_size: int) -> list[int]:
    """Long sides of the coarse-to-fine schedule: ``size`` divided by √2 while ≥ min_size."""
    sizes = [size]
    while sizes[-1] / math.sqrt(2) >= min_size - 0.5:
        sizes.append(round(sizes[-1] / math.sqrt(2)))
    return sizes[::-1]


def iteration_schedule(cfg: TransferConfig, n_scales: int) -> list[int]:
    """Iterations per scale: explicit, one count for all, or the quality preset's.

    Presets put most work where it is cheap: the coarse scale settles the layout and the
    colours; finer scales only refine texture, starting from an almost-converged picture.
    """
    if len(cfg.iterations) == n_scales:
        return list(cfg.iterations)
    if len(cfg.iterations) == 1:
        return list(cfg.iterations) * n_scales
    if cfg.iterations:
        raise ConfigError(f"invalid iterations: {cfg.iterations!r}",
                          f"give one count, or one per scale ({n_scales} scales)")
    preset = list(PRESETS[cfg.quality])
    return (preset + [preset[-1]] * n_scales)[:n_scales]


def pick_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ConfigError(f"invalid device {name!r}", "use auto, cpu, cuda or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError("device cuda is not available here", "use --device cpu")
    return device


def stylize(content: I.ImageLike, styles: Sequence[I.ImageLike] | I.ImageLike,
            config: TransferConfig = TransferConfig(), callback: Optional[Callback] = None,
            cancel: Optional[threading.Event] = None) -> torch.Tensor:
    """Paint ``content`` in the style of ``styles``; returns a [1, 3, H, W] picture in [0, 1]."""
    cfg = config
    device = pick_device(cfg.device)
    style_list = list(styles) if isinstance(styles, (list, tuple)) else [styles]
    if not style_list:
        raise ConfigError("no style picture given", "pass at least one style picture")
    blend = _blend_weights(cfg, len(style_list))
    sizes = scale_sizes(cfg.size, min(cfg.min_size, cfg.size))
    steps = iteration_schedule(cfg, len(sizes))  # checked before any slow work
    photo = I.load_image(content).to(device)
    paintings = [I.load_image(s).to(device) for s in style_list]
    if cfg.preserve_color == "histogram":
        paintings = [I.match_color(p, photo) for p in paintings]
    extractor = build_extractor(NetSpec(cfg.model, cfg.weights, cfg.pooling),
                                tuple(cfg.content_layers) + tuple(cfg.style_layers),
                                device, cfg.precision)
    run = Run("style", sum(steps), callback, cancel, cfg.preview_every)
    x = _initial_picture(cfg, photo, sizes[0])
    for k, (size, n) in enumerate(zip(sizes, steps)):
        target = I.resize(photo, long_side=size)
        x = I.resize(x, size=tuple(target.shape[-2:]))  # carry the coarser result up
        loss_fn = _make_loss(extractor, cfg, target, paintings, blend)
        x = optimize(x, loss_fn, n, run, f"scale {k + 1}/{len(sizes)}", cfg.optimizer, cfg.lr)
    if cfg.preserve_color == "luminance":
        x = I.transfer_luminance(x, photo)
    return x.cpu()


def _blend_weights(cfg: TransferConfig, n: int) -> list[float]:
    if not cfg.style_weights:
        return [1.0 / n] * n
    if len(cfg.style_weights) != n:
        raise ConfigError(f"{len(cfg.style_weights)} style weights for {n} style pictures",
                          "give one weight per style picture")
    total = sum(cfg.style_weights)
    return [w / total for w in cfg.style_weights]


def _initial_picture(cfg: TransferConfig, photo: torch.Tensor, long_side: int) -> torch.Tensor:
    start = I.resize(photo, long_side=long_side)
    if cfg.init == "content":
        return start
    if cfg.init == "noise":
        gen = torch.Generator().manual_seed(cfg.seed)
        return torch.rand(start.shape, generator=gen).to(photo.device)
    return I.resize(I.load_image(cfg.init).to(photo.device), size=tuple(start.shape[-2:]))


def _make_loss(extractor: FeatureExtractor, cfg: TransferConfig, photo: torch.Tensor,
               paintings: list[torch.Tensor], blend: list[float]):
    """Targets for one scale (computed once) and the loss closure over them."""
    with torch.no_grad():
        content_targets = {k: v for k, v in extractor(photo).items() if k in cfg.content_layers}
        style_targets = _style_grams(extractor, cfg, paintings, blend, max(photo.shape[-2:]))
    layer_w = cfg.style_layer_weights or (1.0,) * len(cfg.style_layers)
    layer_w = [w / sum(layer_w) for w in layer_w]

    def loss_fn(x: torch.Tensor):
        feats = extractor(x)
        lc = sum(content_loss(feats[k], t) for k, t in content_targets.items())
        lc = lc / len(content_targets)
        ls = sum(w * style_loss(gram_matrix(feats[k]), style_targets[k])
                 for k, w in zip(cfg.style_layers, layer_w))
        ltv = tv_loss(x)
        total = cfg.content_weight * lc + cfg.style_weight * ls + cfg.tv_weight * ltv
        return total, {"content": lc.item(), "style": ls.item(), "tv": ltv.item()}

    return loss_fn


def _style_grams(extractor, cfg, paintings, blend, long_side) -> dict[str, torch.Tensor]:
    """Blended Gram matrices of the style pictures, each resized by style_scale."""
    grams: dict[str, torch.Tensor] = {}
    side = max(32, round(long_side * cfg.style_scale))
    for painting, weight in zip(paintings, blend):
        feats = extractor(I.resize(painting, long_side=side))
        for k in cfg.style_layers:
            g = weight * gram_matrix(feats[k])
            grams[k] = grams[k] + g if k in grams else g
    return grams
