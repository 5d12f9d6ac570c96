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
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import numpy as np
import torch
import torch.nn.functional as F

from . import image as I
from .errors import (Cancelled, ConfigError, DivergedError, InputImageError, OutputError,
                     check_option)
from .features import FeatureExtractor, NetSpec, build_extractor, check_net_options
from .nets import layer_index
from .nets.vgg import layer_names
from .optim import Run
from .progress import Callback
from .transfer import pick_device

log = logging.getLogger(__name__)

OBJECTIVES = ("mean", "l2")
ANIMATION_SUFFIXES = (".gif", ".mp4")
MIN_OCTAVE_SIDE = 32          # smaller octaves carry too few features to be worth a step
VIDEO_HINT = "pip install 'painterly[video]' (or: pip install imageio imageio-ffmpeg)"

Objective = Callable[[torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class DreamConfig:
    """Every setting of a DeepDream, with its default."""

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
    model: str = "vgg16"
    weights: Optional[str] = None           # registry name or file; None = the model's default
    pooling: str = "max"
    device: str = "auto"
    precision: str = "auto"                 # bf16 autocast where the CPU/GPU supports it
    preview_every: int = 0                  # attach the picture to every n-th progress event

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
    return "vgg16" if model == "tiny" else model  # the tiny net has VGG16's layers


# ------------------------------------------------------------------ objective


@dataclass(frozen=True)
class Term:
    """One part of the objective: a layer, optionally one of its channels, and a weight."""

    layer: str
    channel: Optional[int] = None
    weight: float = 1.0


def parse_layers(layers: Iterable[str], weights: tuple[float, ...] = (),
                 arch: str = "vgg16") -> list[Term]:
    """``("relu4_3", "relu4_2:37")`` -> terms; weights are normalised to sum to 1."""
    layers = tuple(layers)
    weights = weights if weights and len(weights) == len(layers) else (1.0,) * len(layers)
    total = sum(weights) or 1.0
    terms = []
    for item, weight in zip(layers, weights):
        name, _, channel = item.partition(":")
        try:
            layer_index(arch, name)
        except ConfigError as exc:
            raise ConfigError(f"invalid layers: {exc.message}", exc.hint) from exc
        if channel and not channel.isdigit():
            raise ConfigError(f"invalid layers: {item!r}",
                              "write layer or layer:channel, e.g. relu4_2:37")
        terms.append(Term(name, int(channel) if channel else None, weight / total))
    return terms


def _layer_stride(arch: str, layer: str) -> int:
    """How many input pixels one feature position spans per side (2 per pooling before it)."""
    names = layer_names(arch)
    return 2 ** sum(1 for n in names[: names.index(layer)] if n.startswith("pool"))


def _term_sum(features: torch.Tensor, term: Term, kind: str,
              guide: Optional[torch.Tensor]) -> torch.Tensor:
    """Sum over feature positions of what the term maximises, per channel counted."""
    a = features[0]  # [C, h, w]
    if guide is not None:
        # The notebook's objective_guide: each position's feature vector is pulled towards the
        # guide feature it already matches best (its gradient is that guide vector).
        match = torch.einsum("cn,cm->nm", a.flatten(1), guide)
        return match.max(dim=1).values.sum()
    if term.channel is not None:
        a = a[term.channel: term.channel + 1]
    a = a.sum() if kind == "mean" else a.square().sum() / 2
    return a / features.shape[1] if term.channel is None else a


def make_objective(extractor: FeatureExtractor, terms: list[Term], kind: str,
                   reference: torch.Tensor, guide: Optional[dict] = None) -> Objective:
    """The objective of one picture tile: Σ weight · term / term's value on ``reference``.

    Departure from the notebook and the tutorial: each term is divided by its own value on the
    (small) reference picture, so that layers of different magnitude count alike, and it is
    summed (not averaged) over the tile's positions times the layer's stride², so that the
    tiles of a picture add up to the whole picture's objective × its pixel count.
    """
    strides = {t.layer: _layer_stride(extractor.arch, t.layer) for t in terms}
    with torch.no_grad():
        feats = extractor(reference)
    norms = {}
    _check_channels(terms, feats)
    for t in terms:
        plain = Term(t.layer, None, t.weight)  # a channel is compared with its layer's mean
        f = feats[t.layer]
        per_position = _term_sum(f, plain, kind, _guide(guide, t)) / (f.shape[-2] * f.shape[-1])
        norms[t] = per_position.clamp_min(1e-6).item()

    def objective(tile: torch.Tensor) -> torch.Tensor:
        out = extractor(tile)
        return sum(t.weight * strides[t.layer] ** 2 / norms[t]
                   * _term_sum(out[t.layer], t, kind, _guide(guide, t)) for t in terms)

    return objective


def _guide(guide: Optional[dict], term: Term) -> Optional[torch.Tensor]:
    return None if guide is None else guide[term.layer]


def _check_channels(terms: list[Term], feats: dict[str, torch.Tensor]) -> None:
    for t in terms:
        channels = feats[t.layer].shape[1]
        if t.channel is not None and t.channel >= channels:
            raise ConfigError(f"invalid layers: channel {t.channel} of {t.layer}",
                              f"{t.layer} has channels 0–{channels - 1}")


def guide_features(extractor: FeatureExtractor, guide: torch.Tensor, terms: list[Term],
                   guide_size: int) -> dict[str, torch.Tensor]:
    """The guide picture's feature vectors per layer, [C, positions]."""
    with torch.no_grad():
        feats = extractor(I.resize(guide, long_side=guide_size))
    return {t.layer: feats[t.layer][0].flatten(1) for t in terms}


# ------------------------------------------------------------------ tiled, rolled gradients


def roll(x: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    return torch.roll(x, shifts=shift, dims=(-2, -1))


def unroll(x: torch.Tensor, shift: tuple[int, int]) -> torch.Tensor:
    return torch.roll(x, shifts=(-shift[0], -shift[1]), dims=(-2, -1))


def random_shift(shape: torch.Size, tile_size: int, gen: torch.Generator) -> tuple[int, int]:
    """A roll over a whole tile period, so tile borders land anywhere from step to step."""
    h, w = shape[-2:]
    dy = int(torch.randint(min(h, tile_size), (1,), generator=gen))
    dx = int(torch.randint(min(w, tile_size), (1,), generator=gen))
    return dy, dx


def tile_slices(length: int, tile_size: int) -> list[slice]:
    """Cover ``length`` with ⌈length/tile_size⌉ tiles of near-equal size.

    Departure from the TF tutorial, which skips the last partial tile: here every pixel gets
    its gradient at every step, and no tile is a thin sliver with little context.
    """
    n = math.ceil(length / tile_size)
    bounds = [round(i * length / n) for i in range(n + 1)]
    return [slice(a, b) for a, b in zip(bounds, bounds[1:])]


def tiled_gradient(x: torch.Tensor, objective: Objective,
                   tile_size: int) -> tuple[torch.Tensor, float]:
    """Gradient of the objective over the picture, one tile at a time (bounded memory)."""
    grad = torch.zeros_like(x)
    total = 0.0
    for ys in tile_slices(x.shape[-2], tile_size):
        for xs in tile_slices(x.shape[-1], tile_size):
            tile = x[..., ys, xs].detach().requires_grad_(True)
            value = objective(tile)
            grad[..., ys, xs] = torch.autograd.grad(value, tile)[0]
            total += value.item()
    return grad, total


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


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur per channel (reflected borders); σ = 0 returns ``x``.

    Departure from the notebook: VGG's gradients carry a fine lattice of lines (its strided
    pooling), most visible on flat sky; blurring the gradient a little softens that grid
    while the picture itself stays sharp.
    """
    if sigma <= 0:
        return x
    radius = max(1, math.ceil(3 * sigma))
    taps = torch.arange(-radius, radius + 1, dtype=x.dtype, device=x.device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    kernel = (kernel / kernel.sum()).repeat(x.shape[1], 1, 1, 1)  # [C, 1, 1, k]
    c = x.shape[1]
    x = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), kernel, groups=c)
    return F.conv2d(F.pad(x, (0, 0, radius, radius), mode="reflect"),
                    kernel.transpose(-1, -2), groups=c)


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


def dream_octaves(photo: torch.Tensor, objective: Objective, cfg: DreamConfig, run: Run,
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


def _ascend(x: torch.Tensor, objective: Objective, cfg: DreamConfig, run: Run,
            gen: torch.Generator, stage: str) -> torch.Tensor:
    for _ in range(cfg.steps):
        run.check_cancel(x)
        new, value = ascent_step(x, objective, cfg, gen)
        if not math.isfinite(value) or not torch.isfinite(new).all():
            raise DivergedError(f"DeepDream diverged at step {run.step + 1} (objective={value})",
                                "lower --step-size", last_good=x.detach().clone())
        x = new
        run.report(stage, {"objective": value}, x)
    return x


# ------------------------------------------------------------------ public API


@dataclass
class _Session:
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


def _start(picture: I.ImageLike, cfg: DreamConfig,
           guide: Optional[I.ImageLike]) -> tuple[_Session, torch.Tensor]:
    device = pick_device(cfg.device)
    photo = I.load_image(picture)
    if photo.shape[0] != 1:
        raise InputImageError(f"dream takes one picture at a time; got a batch of {photo.shape[0]}",
                              "pass a [1, 3, H, W] or [3, H, W] tensor")
    if cfg.size is not None:
        photo = I.resize(photo, long_side=cfg.size)
    terms = parse_layers(cfg.layers, cfg.layer_weights, _arch(cfg.model))
    guide = guide if guide is not None else cfg.guide
    if guide is not None and any(t.channel is not None for t in terms):
        raise ConfigError("invalid layers: a channel can't be combined with a guide",
                          "give plain layer names with --guide")
    extractor = build_extractor(NetSpec(cfg.model, cfg.weights, cfg.pooling),
                                tuple(dict.fromkeys(t.layer for t in terms)), device,
                                cfg.precision)
    guide_feats = None
    if guide is not None:
        guide_feats = guide_features(extractor, I.load_image(guide).to(device), terms,
                                     cfg.guide_size)
    gen = torch.Generator().manual_seed(cfg.seed)
    return _Session(cfg, device, extractor, terms, guide_feats, gen), photo.to(device)


def dream(picture: I.ImageLike, config: DreamConfig = DreamConfig(),
          callback: Optional[Callback] = None, cancel: Optional[threading.Event] = None,
          guide: Optional[I.ImageLike] = None) -> torch.Tensor:
    """DeepDream ``picture``; returns a [1, 3, H, W] picture in [0, 1] at the input's size.

    ``guide`` (any picture) overrides ``config.guide`` (a file): dream towards its features.
    """
    session, photo = _start(picture, config, guide)
    run = Run("dream", session.steps_per_dream(photo), callback, cancel, config.preview_every)
    x = dream_octaves(photo, session.objective_for(photo), config, run, session.gen)
    return x.cpu()


def zoom_rotate(x: torch.Tensor, zoom: float, degrees: float) -> torch.Tensor:
    """Zoom into the centre by ``zoom`` and turn by ``degrees`` (counter-clockwise)."""
    h, w = x.shape[-2:]
    c, s = math.cos(math.radians(degrees)), math.sin(math.radians(degrees))
    # affine_grid works in [-1, 1] per axis; the h/w factors keep rotations true on
    # non-square pictures.
    theta = torch.tensor([[c / zoom, -s * h / (w * zoom), 0.0],
                          [s * w / (h * zoom), c / zoom, 0.0]], dtype=x.dtype, device=x.device)
    grid = F.affine_grid(theta[None], list(x.shape), align_corners=False)
    out = F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
    return out.clamp(0, 1)


def dream_zoom(picture: I.ImageLike, config: DreamConfig = DreamConfig(), frames: int = 30,
               zoom: float = 1.05, rotate: float = 0.0, callback: Optional[Callback] = None,
               cancel: Optional[threading.Event] = None,
               guide: Optional[I.ImageLike] = None) -> Iterator[torch.Tensor]:
    """The notebook's zoom animation: each frame dreams on a zoomed (and turned) copy of the last.

    Returns an iterator of ``frames`` pictures [1, 3, H, W]; the first is ``dream(picture)``.
    Progress counts over all frames.
    """
    check_option(frames >= 1, "frames", frames, "an integer ≥ 1")
    check_option(zoom > 0 and math.isfinite(zoom), "zoom", zoom, "a number > 0 (> 1 zooms in)")
    check_option(math.isfinite(rotate), "rotate", rotate, "degrees per frame")
    session, photo = _start(picture, config, guide)
    total = frames * session.steps_per_dream(photo)
    run = Run("dream", total, callback, cancel, config.preview_every)
    return _zoom_frames(session, photo, frames, zoom, rotate, run)


def _zoom_frames(session: _Session, photo: torch.Tensor, frames: int, zoom: float,
                 rotate: float, run: Run) -> Iterator[torch.Tensor]:
    frame = photo
    for i in range(frames):
        if i:
            frame = zoom_rotate(frame, zoom, rotate)
        frame = dream_octaves(frame, session.objective_for(frame), session.cfg, run,
                              session.gen, label=f"frame {i + 1}/{frames} ")
        yield frame.cpu()


# ------------------------------------------------------------------ animation files


def check_animation_path(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse, before any work, animation outputs that can't be written."""
    path = Path(path)
    I.check_output_path(path, overwrite=overwrite, suffixes=ANIMATION_SUFFIXES)
    if path.suffix.lower() == ".mp4":
        _video_module()
    return path


def _video_module():
    try:
        import imageio.v2 as imageio  # optional extra [video]; imports imageio-ffmpeg lazily
        import imageio_ffmpeg  # noqa: F401
    except ImportError as exc:
        raise ConfigError("writing .mp4 needs imageio and imageio-ffmpeg", VIDEO_HINT) from exc
    return imageio


def save_animation(frames: Iterable[torch.Tensor], path: str | os.PathLike, fps: float = 12,
                   overwrite: bool = True) -> Path:
    """Write frames ([1, 3, H, W] in [0, 1]) as a looping GIF (Pillow) or an MP4 (H.264),
    atomically: a failed write leaves no file and never touches an existing one."""
    path = check_animation_path(path, overwrite=overwrite)
    check_option(fps > 0, "fps", fps, "a number > 0")
    if path.suffix.lower() == ".gif":
        _write_gif([I.tensor_to_pil(f) for f in frames], path, fps)
    else:
        _write_mp4(frames, path, fps)
    return path


def _write_gif(pictures: list, path: Path, fps: float) -> None:
    if not pictures:
        raise OutputError(f"no frames to write to {path}", "ask for at least one frame")
    first, rest = pictures[0], pictures[1:]
    I._atomic_write(path, lambda f: first.save(f, format="GIF", save_all=True, append_images=rest,
                                               duration=round(1000 / fps), loop=0))


def _write_mp4(frames: Iterable[torch.Tensor], path: Path, fps: float) -> None:
    imageio = _video_module()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".mp4", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~I._umask())
    try:
        # H.264 in yuv420p (plays everywhere) needs even sides: crop one pixel row/column
        # rather than let ffmpeg rescale the frame.
        with imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                quality=8, pixelformat="yuv420p", macro_block_size=1) as writer:
            for frame in frames:
                pixels = np.asarray(I.tensor_to_pil(frame))
                h, w = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
                writer.append_data(pixels[:h, :w])
        os.replace(tmp, path)
    except OSError as exc:
        I._remove_quietly(tmp)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}",
                          "check free space and permissions") from exc
    except BaseException:
        I._remove_quietly(tmp)
        raise
