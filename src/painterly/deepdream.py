"""DeepDream (Mordvintsev, Olah & Tyka 2015): gradient *ascent* on a net's activations.

Follows Google's original Caffe notebook (``deepdream.ipynb``: octaves carrying the added detail
up, steps normalised by the gradient's mean absolute value, L2 and guided objectives, the zoom
animation) and the TensorFlow DeepDream tutorial (gradients computed tile by tile on a randomly
rolled picture, so large pictures fit in memory and no seam stays in place). Departures from
them are commented where they happen.
"""
from __future__ import annotations

import logging
import math
import threading
from dataclasses import dataclass
from typing import Iterator, Optional

import torch
import torch.nn.functional as F

from . import image as I
from .device import pick_device
from .errors import Cancelled, ConfigError, DivergedError, InputImageError, check_option
from .features import FeatureExtractor, NetOptions, NetSpec, build_extractor, check_net_options
from .imageops import gaussian_blur, random_shift, roll, tiled_gradient, unroll, zoom_rotate
from .nets import get_net
from .objectives import Objective, Term, guide_features, make_objective, parse_layers
from .progress import Callback, Tracker

log = logging.getLogger(__name__)

OBJECTIVES = ("mean", "l2")
MIN_OCTAVE_SIDE = 32          # smaller octaves carry too few features to be worth a step


@dataclass(frozen=True)
class DreamConfig(NetOptions):
    """Every setting of a DeepDream, with its default (the network's: NetOptions)."""

    # Defaults chosen by eye on tubingen.jpg at 1024 px (README): relu5_1 grows animal faces,
    # towers and clouds out of the picture's own shapes and keeps it recognisable; relu4_3 covers
    # everything with eyes; relu3_3 and shallower give a stride-sized grid of strokes.
    layers: tuple[str, ...] = ("relu5_1",)  # "layer" or "layer:channel" (one channel's pattern)
    layer_weights: tuple[float, ...] = ()   # one per layer; () = equal
    # "l2" (½‖a‖², the notebook's default) amplifies what the picture already excites, so the
    # patterns grow out of its structure; "mean" (the TF tutorial's) pushes everywhere alike.
    objective: str = "l2"
    octaves: int = 4                        # number of scales, smallest first
    octave_scale: float = 1.4               # ratio between neighbouring octaves
    steps: int = 10                         # gradient-ascent steps per octave
    # The notebook's 1.5 on the 0-255 scale ≈ 0.006 here.
    step_size: float = 0.006                # mean absolute change of a pixel per step, in [0, 1]
    tile_size: int = 512                    # gradients are computed tile by tile (pixels)
    smoothing: float = 1.0                  # σ (pixels) of the Gaussian blur of the gradient
    guide: Optional[str] = None             # a picture file to dream towards
    guide_size: int = 224                   # long side the guide's features are taken at
    size: Optional[int] = None              # resize the input's long side first; None = keep
    seed: int = 0                           # seed of the random rolls

    def __post_init__(self):
        _validate(self)


def _validate(cfg: DreamConfig) -> None:
    check_option(bool(cfg.layers), "layers", cfg.layers, "at least one layer")
    check_net_options(cfg)  # the model first: the layer names depend on it
    terms = parse_layers(cfg.layers, cfg.layer_weights, _arch(cfg.model))  # checks the names
    check_option(cfg.guide is None or all(t.channel is None for t in terms), "layers", cfg.layers,
           "plain layer names when a guide is given (the guide sets the objective)")
    check_option(not cfg.layer_weights or len(cfg.layer_weights) == len(cfg.layers), "layer_weights",
           cfg.layer_weights, "one weight per layer")
    check_option(all(w >= 0 for w in cfg.layer_weights) and (not cfg.layer_weights
                                                      or sum(cfg.layer_weights) > 0),
           "layer_weights", cfg.layer_weights, "non-negative numbers, not all zero")
    check_option(cfg.objective in OBJECTIVES, "objective", cfg.objective, " or ".join(OBJECTIVES))
    check_option(cfg.octaves >= 1, "octaves", cfg.octaves, "an integer ≥ 1")
    check_option(cfg.octave_scale > 1, "octave_scale", cfg.octave_scale, "a number > 1")
    check_option(cfg.steps >= 0, "steps", cfg.steps, "an integer ≥ 0")
    check_option(cfg.step_size > 0 and math.isfinite(cfg.step_size), "step_size", cfg.step_size,
           "a number > 0")
    check_option(cfg.smoothing >= 0 and math.isfinite(cfg.smoothing), "smoothing", cfg.smoothing,
           "a number ≥ 0 (0 = off)")
    check_option(cfg.tile_size >= 64, "tile_size", cfg.tile_size, "an integer ≥ 64")
    check_option(cfg.guide_size >= 32, "guide_size", cfg.guide_size, "an integer ≥ 32")
    check_option(cfg.size is None or cfg.size >= 32, "size", cfg.size, "an integer ≥ 32")


def _arch(model: str) -> str:
    return get_net(model).arch  # the tiny net has VGG16's layers


# ------------------------------------------------------------------ ascent


def ascent_step(x: torch.Tensor, objective: Objective, cfg: DreamConfig,
                gen: torch.Generator) -> tuple[torch.Tensor, float]:
    """One normalised gradient-ascent step on a randomly rolled picture (roll undone after).

    Returns the new picture (clamped to [0, 1]) and the objective per pixel before the step.
    """
    shift = random_shift(x.shape, cfg.tile_size, gen)
    grad, value = tiled_gradient(roll(x, shift), objective, cfg.tile_size)
    grad = gaussian_blur(unroll(grad, shift), cfg.smoothing)
    # As in the notebook: the step is normalised by the gradient's mean absolute value.
    step = cfg.step_size * grad / (grad.abs().mean() + 1e-8)
    return (x + step).clamp(0, 1), value / (x.shape[-2] * x.shape[-1])


# ------------------------------------------------------------------ octaves


def octave_sizes(h: int, w: int, octaves: int, scale: float) -> list[tuple[int, int]]:
    """(H, W) of each octave, smallest first, ending at (h, w); too-small octaves are skipped."""
    sizes = []
    for k in range(octaves):
        size = (round(h / scale ** k), round(w / scale ** k))
        if k and min(size) < MIN_OCTAVE_SIDE:
            log.info("skipping octaves below %d px (%d of %d kept)", MIN_OCTAVE_SIDE, k, octaves)
            break
        sizes.append(size)
    return sizes[::-1]


def _resize_detail(detail: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    # Bilinear like the notebook's nd.zoom(order=1); not image.resize, which clamps to [0, 1]
    # while the detail is a signed difference.
    return F.interpolate(detail, size=size, mode="bilinear", align_corners=False)


def _to_full_size(x: torch.Tensor, base: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """A picture from a smaller octave carried up to the photo's size (for rescues)."""
    if x.shape == photo.shape:
        return x
    return (photo + _resize_detail(x - base, tuple(photo.shape[-2:]))).clamp(0, 1)


def dream_octaves(photo: torch.Tensor, objective: Objective, cfg: DreamConfig, run: Tracker,
                  gen: torch.Generator, label: str = "") -> torch.Tensor:
    """Dream from the smallest octave up, carrying the added detail (dream − base) upwards."""
    sizes = octave_sizes(*photo.shape[-2:], cfg.octaves, cfg.octave_scale)
    detail = torch.zeros(1, 3, *sizes[0], device=photo.device)
    for k, size in enumerate(sizes):
        base = I.resize(photo, size=size)
        x = (base + _resize_detail(detail, size)).clamp(0, 1)
        try:
            x = _ascend(x, objective, cfg, run, gen, f"{label}octave {k + 1}/{len(sizes)}")
        except Cancelled as exc:
            exc.partial = _to_full_size(exc.partial, base, photo).cpu()
            raise
        except DivergedError as exc:
            exc.last_good = _to_full_size(exc.last_good, base, photo).cpu()
            raise
        detail = x - base
    return x


def _ascend(x: torch.Tensor, objective: Objective, cfg: DreamConfig, run: Tracker,
            gen: torch.Generator, stage: str) -> torch.Tensor:
    for _ in range(cfg.steps):
        run.check_cancel(x)
        new, value = ascent_step(x, objective, cfg, gen)
        if not math.isfinite(value) or not torch.isfinite(new).all():
            raise DivergedError(f"DeepDream diverged at step {run.step + 1} (objective={value})",
                                "lower `step_size`", last_good=x.detach().clone())
        x = new
        run.report(stage, {"objective": value}, x)
    return x


# ------------------------------------------------------------------ public API


@dataclass
class DreamSession:
    """What every dream of one run shares: device, net, terms, guide features, roll seed."""

    cfg: DreamConfig
    device: torch.device
    extractor: FeatureExtractor
    terms: list[Term]
    guide: Optional[dict]
    gen: torch.Generator

    def objective_for(self, photo: torch.Tensor) -> Objective:
        sizes = octave_sizes(*photo.shape[-2:], self.cfg.octaves, self.cfg.octave_scale)
        # Per-term norms come from the smallest octave (≤ one tile: memory stays bounded).
        reference = I.resize(photo, size=sizes[0])
        if max(reference.shape[-2:]) > self.cfg.tile_size:
            reference = I.resize(reference, long_side=self.cfg.tile_size)
        return make_objective(self.extractor, self.terms, self.cfg.objective, reference,
                              self.guide)

    def steps_per_dream(self, photo: torch.Tensor) -> int:
        sizes = octave_sizes(*photo.shape[-2:], self.cfg.octaves, self.cfg.octave_scale)
        return self.cfg.steps * len(sizes)


def open_session(cfg: DreamConfig, guide: Optional[I.ImageLike] = None) -> DreamSession:
    """What every dream of a run shares, made once (a folder's pictures reuse it): the net,
    the terms, the guide's features and the random rolls' generator."""
    device = pick_device(cfg.device)
    terms = parse_layers(cfg.layers, cfg.layer_weights, _arch(cfg.model))
    guide = guide if guide is not None else cfg.guide
    if guide is not None and any(t.channel is not None for t in terms):
        raise ConfigError("invalid layers: a channel can't be combined with a guide",
                          "give plain layer names with `guide`")
    extractor = build_extractor(NetSpec(cfg.model, cfg.weights, cfg.pooling),
                                tuple(dict.fromkeys(t.layer for t in terms)), device,
                                cfg.precision)
    guide_feats = None
    if guide is not None:
        guide_feats = guide_features(extractor, I.load_image(guide).to(device), terms,
                                     cfg.guide_size)
    gen = torch.Generator().manual_seed(cfg.seed)
    return DreamSession(cfg, device, extractor, terms, guide_feats, gen)


def _photo(picture: I.ImageLike, cfg: DreamConfig) -> torch.Tensor:
    photo = I.load_image(picture)
    if photo.shape[0] != 1:
        raise InputImageError(f"dream takes one picture at a time; got a batch of {photo.shape[0]}",
                              "pass a [1, 3, H, W] or [3, H, W] tensor")
    if cfg.size is not None:
        photo = I.resize(photo, long_side=cfg.size)
    return photo


def _start(picture: I.ImageLike, cfg: DreamConfig,
           guide: Optional[I.ImageLike]) -> tuple[DreamSession, torch.Tensor]:
    photo = _photo(picture, cfg)
    session = open_session(cfg, guide)
    return session, photo.to(session.device)


def dream(picture: I.ImageLike, config: DreamConfig = DreamConfig(),
          callback: Optional[Callback] = None, cancel: Optional[threading.Event] = None,
          guide: Optional[I.ImageLike] = None, preview_every: int = 0,
          session: Optional[DreamSession] = None) -> torch.Tensor:
    """DeepDream ``picture``; returns a [1, 3, H, W] picture in [0, 1] at the input's size.

    ``guide`` (any picture) overrides ``config.guide`` (a file): dream towards its features.
    ``callback`` gets a Progress event per step, with the picture on every
    ``preview_every``-th. ``session`` (:func:`open_session`) reuses a loaded net; each
    picture's random rolls then start from the config's seed, as in a run of its own.
    """
    if session is None:
        session, photo = _start(picture, config, guide)
    else:
        photo = _photo(picture, config).to(session.device)
        session.gen.manual_seed(config.seed)
    run = Tracker("dream", session.steps_per_dream(photo), callback, cancel, preview_every)
    x = dream_octaves(photo, session.objective_for(photo), config, run, session.gen)
    return x.cpu()


def dream_zoom(picture: I.ImageLike, config: DreamConfig = DreamConfig(), frames: int = 30,
               zoom: float = 1.05, rotate: float = 0.0, callback: Optional[Callback] = None,
               cancel: Optional[threading.Event] = None,
               guide: Optional[I.ImageLike] = None,
               preview_every: int = 0) -> Iterator[torch.Tensor]:
    """The notebook's zoom animation: each frame dreams on a zoomed (and turned) copy of the last.

    Returns an iterator of ``frames`` pictures [1, 3, H, W]; the first is ``dream(picture)``.
    Progress counts over all frames.
    """
    check_option(frames >= 1, "frames", frames, "an integer ≥ 1")
    check_option(zoom > 0 and math.isfinite(zoom), "zoom", zoom, "a number > 0 (> 1 zooms in)")
    check_option(math.isfinite(rotate), "rotate", rotate, "degrees per frame")
    session, photo = _start(picture, config, guide)
    total = frames * session.steps_per_dream(photo)
    run = Tracker("dream", total, callback, cancel, preview_every)
    return _zoom_frames(session, photo, frames, zoom, rotate, run)


def _zoom_frames(session: DreamSession, photo: torch.Tensor, frames: int, zoom: float,
                 rotate: float, run: Tracker) -> Iterator[torch.Tensor]:
    frame = photo
    for i in range(frames):
        if i:
            frame = zoom_rotate(frame, zoom, rotate)
        frame = dream_octaves(frame, session.objective_for(frame), session.cfg, run,
                              session.gen, label=f"frame {i + 1}/{frames} ")
        yield frame.cpu()
