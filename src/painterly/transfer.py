"""Style transfer by optimisation (Gatys, Ecker & Bethge 2015), coarse to fine."""
from __future__ import annotations

import hashlib
import json
import math
import os
import pickle
import threading
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Optional, Sequence, Union

import torch

from . import image as I
from ._version import __version__
from .device import pick_device, resolve_precision
from .errors import Cancelled, CheckpointError, ConfigError, check_option
from .features import (STYLE_LAYERS, FeatureExtractor, NetOptions, NetSpec, build_extractor,
                       check_net_options)
from .files import atomic_write
from .losses import content_loss, gram_matrix, style_loss, tv_loss
from .memory import check_memory
from .nets import get_net, layer_index, layer_table
from .optim import LBFGS_HISTORY, OPTIMIZERS, optimize
from .progress import Callback, Tracker
from .weights import read_checkpoint

INITS = ("content", "noise", "fast")  # fast: painterly fast's picture (the jobs layer paints it)
PRESERVE_COLOR = ("none", "luminance", "histogram")
# Iterations per scale, coarsest first (256 → 362 → 512 px for the default size); a larger
# --size adds finer scales that repeat the last count. Measured in benchmarks/bench.py.
# quick starts from the fast network's picture (init "fast", unless `init` is noise or a
# file): 20 iterations at 256 px lay the painting's strokes and motifs over it (at 256 px an
# iteration costs a quarter of one at 512), the middle scale is skipped (the picture is only
# carried up), and 10 at 512 px put back the fine texture. docs/performance.md shows the choice.
PRESETS = {"quick": (20, 0, 10), "draft": (80, 30, 15), "default": (150, 60, 40),
           "high": (300, 150, 100)}
QUICK = "quick"


@dataclass(frozen=True)
class TransferConfig(NetOptions):
    """Every setting of a style transfer, with its default (the network's: NetOptions)."""

    size: int = 512                      # long side of the output, pixels
    min_size: int = 256                  # coarse-to-fine starts here and grows ×√2
    iterations: tuple[int, ...] = ()     # per scale, coarse to fine; () = from `quality`
    quality: str = "default"             # a preset schedule: quick, draft, default or high
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
    init: str = "content"                # "content", "noise", "fast" or a picture file
    preserve_color: str = "none"
    seed: int = 0

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


@dataclass(frozen=True)
class TemporalTerm:
    """Ruder et al.'s temporal constraint for one video frame: stay near ``previous`` (the
    last frame's result warped by the optical flow, [1, 3, H, W]) where ``mask`` ([1, 1, H, W]
    in [0, 1], the flow's reliability) says it is valid, with ``weight`` against the content
    and style terms."""

    previous: torch.Tensor
    mask: torch.Tensor
    weight: float


def stylize(content: I.ImageLike, styles: Sequence[I.ImageLike] | I.ImageLike,
            config: TransferConfig = TransferConfig(), callback: Optional[Callback] = None,
            cancel: Optional[threading.Event] = None,
            resume_from: Union[None, dict, str, os.PathLike] = None,
            check_memory_first: bool = True, preview_every: int = 0,
            init_picture: Optional[I.ImageLike] = None) -> torch.Tensor:
    """Paint ``content`` in the style of ``styles``; returns a [1, 3, H, W] picture in [0, 1].

    ``init_picture``: the picture the coarsest scale starts from instead of `init`'s (for
    `init` fast and the quick preset, painterly fast's picture: the jobs layer paints it;
    without it the quick preset starts from the content).

    ``callback`` gets a :class:`Progress` event per iteration, with the picture attached to
    every ``preview_every``-th one. On ``cancel`` it raises :class:`Cancelled` whose
    ``checkpoint`` (a dict of tensors and plain values; :func:`save_checkpoint` writes it)
    passed back as ``resume_from`` (the dict or its file), with the same inputs and config,
    continues the run: the result equals an uninterrupted run's. Before loading the network
    it refuses (ImageTooLargeError) a size whose estimated peak memory
    (:func:`estimate_peak_bytes`) exceeds the memory available.
    """
    return Stylist(config, styles)(content, callback, cancel, resume_from, check_memory_first,
                                   preview_every, init_picture=init_picture)


class Stylist:
    """The network and the style pictures' Gram matrices, kept from one photo to the next
    (a folder's pictures, a video's frames): the net loads once and each painting is encoded
    once per scale (the scales' sides are the config's, whatever the photo)."""

    def __init__(self, config: TransferConfig, styles: Sequence[I.ImageLike] | I.ImageLike):
        cfg = self.cfg = config
        self.device = pick_device(cfg.device)
        style_list = list(styles) if isinstance(styles, (list, tuple)) else [styles]
        if not style_list:
            raise ConfigError("no style picture given", "pass at least one style picture")
        self.blend = _blend_weights(cfg, len(style_list))
        self.sizes = scale_sizes(cfg.size, min(cfg.min_size, cfg.size))
        self.steps = iteration_schedule(cfg, len(self.sizes))  # checked before any slow work
        self.paintings = [I.load_image(s).to(self.device) for s in style_list]
        self.extractor: Optional[FeatureExtractor] = None  # built after the memory check
        self.grams: dict[int, dict[str, torch.Tensor]] = {}  # per long side

    def __call__(self, content: I.ImageLike, callback: Optional[Callback] = None,
                 cancel: Optional[threading.Event] = None,
                 resume_from: Union[None, dict, str, os.PathLike] = None,
                 check_memory_first: bool = True, preview_every: int = 0,
                 start: Optional[torch.Tensor] = None, temporal: Optional[TemporalTerm] = None,
                 iterations: Optional[int] = None,
                 init_picture: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Paint one photo (see :func:`stylize`). For video frames: ``start`` is the picture
        to start from instead of the config's ``init``, ``temporal`` adds Ruder's temporal
        term, ``iterations`` replaces the finest scale's count; with ``start`` only the
        finest scale runs. ``init_picture``: a picture the coarsest scale starts from instead of the
        config's ``init``, every scale then running (the quick preset: the fast network's)."""
        cfg, device = self.cfg, self.device
        sizes, steps = self.sizes, list(self.steps)
        if start is not None:
            sizes, steps = sizes[-1:], steps[-1:]
        if iterations is not None:
            steps[-1] = iterations
        checkpoint = None
        if resume_from is not None:
            checkpoint = resume_from if isinstance(resume_from, dict) else load_checkpoint(resume_from)
        photo = I.load_image(content).to(device)
        paintings = self.paintings
        fingerprint = input_fingerprint(photo, paintings)
        if checkpoint is not None:
            check_checkpoint(checkpoint, cfg, fingerprint, len(sizes))
        if check_memory_first and device.type == "cpu":
            _check_fits(cfg, photo, paintings, device)
        grams = self.grams
        if cfg.preserve_color == "histogram":
            paintings, grams = [I.match_color(p, photo) for p in paintings], {}  # per photo
        if self.extractor is None:
            self.extractor = build_extractor(NetSpec(cfg.model, cfg.weights, cfg.pooling),
                                             tuple(cfg.content_layers) + tuple(cfg.style_layers),
                                             device, cfg.precision)
        tracker = Tracker("style", sum(steps), callback, cancel, preview_every)
        painting = _Painting(cfg, self.extractor, photo, paintings, self.blend, fingerprint,
                             tracker, grams, temporal)
        x = painting.scales(sizes, steps, checkpoint, start, init_picture)
        if cfg.preserve_color == "luminance":
            x = I.transfer_luminance(x, photo)
        return x.cpu()


def _check_fits(cfg: TransferConfig, photo: torch.Tensor, paintings: list[torch.Tensor],
                device: torch.device) -> None:
    h, w = photo.shape[-2:]
    inputs = sum(t.shape[-1] * t.shape[-2] for t in [photo, *paintings])
    check_memory(lambda side: estimate_peak_bytes(cfg, *_fit(h, w, side), device=device,
                                                  input_pixels=inputs), cfg.size)


@dataclass
class _Painting:
    """One stylisation's fixed parts, and the coarse-to-fine loop over its scales."""

    cfg: TransferConfig
    extractor: FeatureExtractor
    photo: torch.Tensor
    paintings: list[torch.Tensor]
    blend: list[float]
    fingerprint: dict
    tracker: Tracker
    grams: dict = field(default_factory=dict)   # style Gram matrices per long side, reused
    temporal: Optional[TemporalTerm] = None

    def scales(self, sizes: list[int], steps: list[int], checkpoint: Optional[dict],
               start: Optional[torch.Tensor] = None,
               init_picture: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Optimise at each scale from the coarsest (or the checkpoint's) up, carrying the
        picture up from scale to scale."""
        first, resume = 0, None
        if checkpoint is not None:
            first = checkpoint["scale"]
            resume = {"iteration": checkpoint["iteration"], "optimizer": checkpoint["optimizer"]}
            self.tracker.step = sum(steps[:first]) + checkpoint["iteration"]
            x = checkpoint["picture"].to(self.photo.device)
        elif start is not None:
            x = start.to(self.photo.device).contiguous()
        elif init_picture is not None:
            x = I.resize(I.load_image(init_picture).to(self.photo.device),
                         size=tuple(I.resize(self.photo, long_side=sizes[0]).shape[-2:]))
            x = x.contiguous()
        else:
            x = _initial_picture(self.cfg, self.photo, sizes[0])
        for k in range(first, len(sizes)):
            x = self.scale(x, k, sizes, steps[k], resume if k == first else None)
        return x

    def scale(self, x: torch.Tensor, k: int, sizes: list[int], steps: int,
              resume: Optional[dict]) -> torch.Tensor:
        cfg = self.cfg
        target = I.resize(self.photo, long_side=sizes[k])
        x = I.resize(x, size=tuple(target.shape[-2:]))  # carry the coarser result up
        if steps == 0 and resume is None:
            # A scale with no iterations (the quick preset's middle one) only carries the
            # picture up: its Gram matrices and content targets (a VGG pass over the photo
            # and each painting) would never be used.
            return x
        if sizes[k] not in self.grams:
            self.grams[sizes[k]] = style_grams(self.extractor, cfg, self.paintings, self.blend,
                                               sizes[k])
        temporal = self.temporal if k == len(sizes) - 1 else None
        loss_fn = make_loss(self.extractor, cfg, target, self.paintings, self.blend,
                            grams=self.grams[sizes[k]], temporal=temporal)
        try:
            return optimize(x, loss_fn, steps, self.tracker, f"scale {k + 1}/{len(sizes)}",
                            cfg.optimizer, cfg.lr, resume=resume)
        except Cancelled as exc:
            if exc.state is not None:
                exc.checkpoint = _checkpoint(cfg, self.fingerprint, k, exc.state, exc.partial,
                                             self.tracker)
            raise


# ------------------------------------------------------------------ checkpoints

CHECKPOINT_FORMAT = "painterly-style-checkpoint"
CHECKPOINT_VERSION = 1


def input_fingerprint(photo: torch.Tensor, paintings: list[torch.Tensor]) -> dict:
    """sha256 of the decoded content and style pictures (pixels and shape)."""
    def digest(t: torch.Tensor) -> str:
        t = t.detach().float().cpu().contiguous()
        return hashlib.sha256(repr(tuple(t.shape)).encode() + t.numpy().tobytes()).hexdigest()
    return {"content": digest(photo), "styles": [digest(p) for p in paintings]}


def _settings(cfg: TransferConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))  # tuples -> lists, as stored


def _checkpoint(cfg: TransferConfig, fingerprint: dict, scale: int, state: dict,
                picture: torch.Tensor, tracker: Tracker) -> dict:
    return {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION,
            "painterly": __version__, "torch": str(torch.__version__),
            "config": json.dumps(_settings(cfg)), "seed": cfg.seed,
            "inputs": fingerprint, "scale": scale, "iteration": int(state["iteration"]),
            "step": tracker.step, "total": tracker.total, "picture": picture.detach().cpu(),
            "optimizer": state["optimizer"]}


def save_checkpoint(checkpoint: dict, path: str | os.PathLike) -> Path:
    """Write a checkpoint (``Cancelled.checkpoint``) atomically: temp file, then rename."""
    path = Path(path)
    atomic_write(path, lambda f: torch.save(checkpoint, f))
    return path


def load_checkpoint(path: str | os.PathLike) -> dict:
    """Read a checkpoint written by :func:`save_checkpoint`; tensors and plain values only."""
    name = str(path)
    try:
        data = read_checkpoint(name)
    except FileNotFoundError as exc:
        raise CheckpointError(f"no such checkpoint: {name}", "check the `resume` path") from exc
    except IsADirectoryError as exc:
        raise CheckpointError(f"checkpoint {name} is a folder", "pass the .ckpt file") from exc
    except (pickle.UnpicklingError, RuntimeError, EOFError, OSError, ValueError,
            AttributeError, TypeError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
        raise CheckpointError(f"{name} is not a readable painterly checkpoint ({first_line})",
                              "start afresh without `resume`") from exc
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{name} is not a painterly style checkpoint",
                              "pass the OUT.ckpt file an interrupted 'painterly style' wrote")
    if data.get("version") != CHECKPOINT_VERSION:
        raise CheckpointError(f"checkpoint {name} has version {data.get('version')!r}; this "
                              f"painterly reads version {CHECKPOINT_VERSION}",
                              "start afresh without `resume`")
    return data


def check_checkpoint(checkpoint: dict, cfg: TransferConfig, fingerprint: dict,
                     n_scales: int) -> None:
    """Refuse a checkpoint made for other pictures or settings (CheckpointError, exit 2)."""
    again = "use the same pictures and settings as the interrupted run, or start afresh"
    saved = checkpoint.get("inputs", {})
    if saved.get("content") != fingerprint["content"]:
        raise CheckpointError("checkpoint was made for a different content image (sha256 "
                              f"{str(saved.get('content'))[:12]}…, this one "
                              f"{fingerprint['content'][:12]}…)", again)
    if saved.get("styles") != fingerprint["styles"]:
        raise CheckpointError("checkpoint was made for different style images", again)
    try:
        settings = json.loads(checkpoint["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError("checkpoint has no readable settings", again) from exc
    current = _settings(cfg)
    changed = [f"{k}: {settings.get(k)!r} → {v!r}" for k, v in current.items()
               if settings.get(k) != v]
    if changed:
        raise CheckpointError(f"checkpoint was made for different settings ({'; '.join(changed[:3])})",
                              again)
    if not (0 <= checkpoint.get("scale", -1) < n_scales) or checkpoint.get("iteration", -1) < 0:
        raise CheckpointError("checkpoint position is outside the schedule", again)


# ------------------------------------------------------------------ memory

# Calibrated against the peak RSS of `painterly style` runs with VGG16 on CPU (see
# tests/test_reliability_jobs.py and the numbers in docs): the process itself with torch
# imported, then per weight byte, then per byte of the activations kept for the backward pass.
_BASE_BYTES = 250 * 2**20
_COMPILER_BYTES = 70 * 2**20  # torch's compiler, which its Adam imports (painterly's L-BFGS not)
_WEIGHT_FACTOR = 2.5
_ACTIVATION_FACTOR = 1.3
_PICTURE_BYTES = 150  # per pixel: the picture, its gradient, targets, resampling temporaries


def _fit(h: int, w: int, long_side: int) -> tuple[int, int]:
    scale = long_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def estimate_peak_bytes(cfg: TransferConfig, h: int, w: int,
                        device: Optional[torch.device] = None, input_pixels: int = 0) -> int:
    """Estimated peak resident memory of a style transfer whose output is ``h``×``w``, in bytes.

    process (torch, and for Adam torch's compiler) + the network's weights × 2.5 (file, net, casts) + per output pixel:
    1.3 × the activations kept for the backward pass (every conv and ReLU up to the deepest
    layer used; bf16 halves them but adds fp32 copies of the loss layers) + the optimiser's
    state: L-BFGS 12·(2·history + 4) bytes (history = min(20, iterations of the last scale)),
    Adam 12·5 bytes + 150 bytes for the picture and its companions; + 12 bytes per pixel of
    the input pictures (``input_pixels``, all of them) as float tensors. The finest scale
    sets the peak.
    """
    net = get_net(cfg.model)
    device = device or torch.device("cpu")
    precision = resolve_precision(cfg.precision, device)
    layers = tuple(cfg.content_layers) + tuple(cfg.style_layers)
    act_floats, loss_floats, weight_count = _vgg_costs(net.arch, net.width, layers)
    if precision == "bf16":
        act_bytes = 2 * act_floats + 4 * loss_floats
    else:
        act_bytes = 4 * act_floats
    sizes = scale_sizes(cfg.size, min(cfg.min_size, cfg.size))
    last_iterations = iteration_schedule(cfg, len(sizes))[-1]
    if cfg.optimizer == "lbfgs":
        opt_bytes = 12 * (2 * min(LBFGS_HISTORY, max(last_iterations - 1, 0)) + 4)
    else:
        opt_bytes = 12 * 5
    base = _BASE_BYTES + (_COMPILER_BYTES if cfg.optimizer == "adam" else 0)
    pixels = h * w
    return int(base + _WEIGHT_FACTOR * 4 * weight_count + 12 * input_pixels
               + pixels * (_ACTIVATION_FACTOR * act_bytes + opt_bytes + _PICTURE_BYTES))


def _vgg_costs(arch: str, width: float, layers: tuple[str, ...]) -> tuple[float, float, int]:
    """Per input pixel: activations kept for backward, those copied to fp32; weight count."""
    deepest = max(layer_index(arch, name) for name in layers)
    act = loss = 0.0
    weights, in_ch = 0, 3
    for layer in layer_table(arch, width):  # the whole net's weights are loaded, even if cut
        area = 1.0 / layer.stride ** 2     # positions per input pixel
        if layer.kind == "conv":
            weights += layer.channels * in_ch * 9 + layer.channels
            in_ch = layer.channels
            if layer.index <= deepest:
                act += 2 * layer.channels * area  # conv output and ReLU output
        elif layer.kind == "relu" and layer.name in layers:
            loss += layer.channels * area
        elif layer.kind == "pool" and layer.index <= deepest:
            act += layer.channels * area  # pooling output
    return act, loss, weights


def _blend_weights(cfg: TransferConfig, n: int) -> list[float]:
    if not cfg.style_weights:
        return [1.0 / n] * n
    if len(cfg.style_weights) != n:
        raise ConfigError(f"{len(cfg.style_weights)} style weights for {n} style pictures",
                          "give one weight per style picture")
    total = sum(cfg.style_weights)
    return [w / total for w in cfg.style_weights]


def starts_from_fast(cfg: TransferConfig) -> bool:
    """Whether the run starts from the fast network's picture: `init` fast, or the quick
    preset with the default `init` (content)."""
    return cfg.init == "fast" or (cfg.quality == QUICK and cfg.init == "content")


def _initial_picture(cfg: TransferConfig, photo: torch.Tensor, long_side: int) -> torch.Tensor:
    start = I.resize(photo, long_side=long_side)
    if cfg.init == "fast":
        raise ConfigError("`init` fast needs the fast network's picture",
                          "run the style job (painterly.jobs), or pass it as init_picture")
    if cfg.init == "content":
        return start
    if cfg.init == "noise":
        gen = torch.Generator().manual_seed(cfg.seed)
        return torch.rand(start.shape, generator=gen).to(photo.device)
    return I.resize(I.load_image(cfg.init).to(photo.device), size=tuple(start.shape[-2:]))


def make_loss(extractor: FeatureExtractor, cfg: TransferConfig, photo: torch.Tensor,
              paintings: list[torch.Tensor], blend: list[float],
              grams: Optional[dict[str, torch.Tensor]] = None,
              temporal: Optional[TemporalTerm] = None):
    """Targets for one scale (computed once; the style's Gram matrices may be given) and the
    loss closure over them; with ``temporal``, Ruder et al.'s temporal term too."""
    with torch.no_grad():
        content_targets = {k: v for k, v in extractor(photo).items() if k in cfg.content_layers}
        style_targets = grams if grams is not None else style_grams(
            extractor, cfg, paintings, blend, max(photo.shape[-2:]))
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
        parts = {"content": lc.item(), "style": ls.item(), "tv": ltv.item()}
        if temporal is not None:
            # Ruder et al. (2016), eq. 7: (1/D) Σ c·(x − ω(x_prev))², D = pixels × channels.
            lt = (temporal.mask * (x - temporal.previous) ** 2).mean()
            total = total + temporal.weight * lt
            parts["temporal"] = lt.item()
        return total, parts

    return loss_fn


def style_grams(extractor, cfg, paintings, blend, long_side) -> dict[str, torch.Tensor]:
    """Blended Gram matrices of the style pictures, each resized by style_scale."""
    grams: dict[str, torch.Tensor] = {}
    side = max(32, round(long_side * cfg.style_scale))
    for painting, weight in zip(paintings, blend):
        feats = extractor(I.resize(painting, long_side=side))
        for k in cfg.style_layers:
            g = weight * gram_matrix(feats[k])
            grams[k] = grams[k] + g if k in grams else g
    return grams
