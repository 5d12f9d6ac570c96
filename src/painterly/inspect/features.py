"""Feature visualisation by activation maximisation (Olah, Mordvintsev & Schubert 2017,
"Feature Visualization"; Mordvintsev et al. 2018, "Differentiable Image Parameterizations").

Optimise a picture so that a channel, the centre unit of a channel, a whole layer (the
DeepDream objective) or a direction in a layer's channel space is as large (or, ``negative``,
as small) as it can be. What makes these pictures readable rather than grey noise or a
high-frequency lattice is lucid's recipe, followed here:

- the picture is parameterised as a Fourier spectrum scaled by 1/f, so that Adam's steps are
  whitened (each frequency moves alike; high frequencies are not favoured);
- its colours are decorrelated: the three channels optimised are ImageNet's colour
  principal axes, mapped to RGB by a fixed 3×3 matrix, then squashed into [0, 1] by a sigmoid;
- every step sees a randomly padded, shifted, scaled and turned view (transformation
  robustness), so patterns the network only sees at one exact pixel alignment don't survive.

Several units are rendered in one batch (one tile each) and shown as a labelled grid; the
same seed gives the same bytes. Departures from lucid are commented where they happen.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Optional, Union

import torch
import torch.nn.functional as F

from .. import image as I
from ..device import pick_device
from ..errors import ConfigError, DivergedError, check_option
from ..features import FeatureExtractor, NetOptions, NetSpec, build_extractor, check_net_options
from ..nets import get_net
from ..objectives import parse_layers
from ..progress import Callback, Tracker

OBJECTIVES = ("channel", "unit", "layer", "direction")
# lucid's colour_correlation_svd_sqrt: the square root of ImageNet's RGB colour covariance
# (its principal axes, each scaled by √ its variance). Columns are normalised as lucid does.
COLOR_CORRELATION_SVD_SQRT = ((0.26, 0.09, 0.02),
                              (0.27, 0.00, -0.05),
                              (0.27, -0.09, 0.03))
INIT_SD = 0.01            # lucid's standard deviation of the initial parameters
LUCID_MAGIC = 4.0         # lucid divides the spectrum's picture by 4 ("reduces saturation")
DECAY_POWER = 1.0         # the spectrum's 1/f^p scaling (lucid's decay_power)
PAD_FRACTION = 12 / 128   # lucid pads 12 grey pixels around its default 128-pixel picture
Channels = Union[str, tuple[int, ...]]


@dataclass(frozen=True)
class FeaturesConfig(NetOptions):
    """Every setting of a feature visualisation, with its default (the network's: NetOptions).

    Defaults chosen by looking at channels of relu3_1, relu4_1 and relu5_1 of VGG16
    (docs/images/inspect_features_*.jpg), aiming at the issue's time targets on a 2-core
    laptop: one unit ≤ 60 s, a 16-unit grid ≤ 5 minutes.
    """

    layer: str = "relu4_1"                  # a layer name; "relu4_1:7" also picks channel 7
    channels: Channels = "0:8"              # "0:16", "3,7,12", "0:64:4", or a tuple of ints
    # channel: a channel's mean; unit: its centre unit; layer: ½ mean square of the whole
    # layer (DeepDream); direction: the mean projection on `direction` (random when empty).
    objective: str = "channel"
    direction: tuple[float, ...] = ()       # weights per channel (zeros after); () = random
    copies: int = 1                         # pictures per unit, pushed apart by `diversity`
    diversity: float = 0.0                  # weight of lucid's Gram diversity between copies
    negative: bool = False                  # minimise instead (what inhibits the unit)
    size: int = 128                         # side of each square picture, pixels
    # Departure from lucid's 512 steps: 64 already show the pattern at the unit's scale in
    # VGG16 (the objective has done most of its climbing), and fit the time targets.
    steps: int = 64                         # Adam steps
    lr: float = 0.05                        # Adam's learning rate (lucid's)
    seed: int = 0
    # Departure from lucid's jitter 8+4 and zoom 0.9–1.1 (tuned on InceptionV1): VGG16 turns
    # small, regular views into a fine lattice of dots; wider shifts and zooms soften it.
    jitter: int = 16                        # random shift each step, ± pixels
    scale: tuple[float, float] = (0.8, 1.25)  # random zoom range each step
    rotation: float = 10.0                  # random turn each step, ± degrees
    decorrelate: bool = True                # optimise decorrelated colours (lucid's)
    fft: bool = True                        # optimise a 1/f-scaled spectrum, not pixels

    def __post_init__(self):
        validate(self)


@dataclass
class FeaturesResult:
    """The grid picture, each tile, and a record per tile (its label and final objective)."""

    picture: torch.Tensor                   # [1, 3, H, W], the labelled grid
    tiles: torch.Tensor                     # [N, 3, size, size]
    units: list[dict] = field(default_factory=list)


# ------------------------------------------------------------------ settings


def validate(cfg: FeaturesConfig) -> None:
    check_net_options(cfg)  # the model first: the layer names depend on it
    layer, channels = split_layer(cfg)
    check_option(cfg.objective in OBJECTIVES, "objective", cfg.objective, ", ".join(OBJECTIVES))
    width = get_net(cfg.model).layer(layer).channels
    # Only a channel or unit objective reads the channels' numbers (a random direction
    # counts them; a layer or a given direction ignores them).
    check_option(cfg.objective not in ("channel", "unit")
                 or all(0 <= c < width for c in channels), "channels", cfg.channels,
                 f"channels of {layer} (0–{width - 1})")
    check_option(len(cfg.direction) <= width and all(math.isfinite(w) for w in cfg.direction)
                 and (not cfg.direction or any(cfg.direction)), "direction", cfg.direction,
                 f"at most {width} finite weights, not all zero, for {layer}'s channels")
    check_option(not cfg.direction or cfg.objective == "direction", "direction", cfg.direction,
                 "weights only with `objective` direction")
    check_option(cfg.copies >= 1, "copies", cfg.copies, "an integer ≥ 1")
    check_option(cfg.diversity >= 0 and math.isfinite(cfg.diversity), "diversity",
                 cfg.diversity, "a number ≥ 0 (0 = off)")
    check_option(cfg.size >= 32, "size", cfg.size, "an integer ≥ 32")
    check_option(cfg.steps >= 0, "steps", cfg.steps, "an integer ≥ 0")
    check_option(cfg.lr > 0 and math.isfinite(cfg.lr), "lr", cfg.lr, "a number > 0")
    check_option(cfg.jitter >= 0, "jitter", cfg.jitter, "pixels, ≥ 0")
    check_option(len(cfg.scale) == 2 and 0 < cfg.scale[0] <= cfg.scale[1]
                 and math.isfinite(cfg.scale[1]), "scale", cfg.scale,
                 "two zoom factors, lowest first, e.g. 0.9,1.1")
    check_option(0 <= cfg.rotation <= 180, "rotation", cfg.rotation, "degrees, 0–180")


def split_layer(cfg: FeaturesConfig) -> tuple[str, tuple[int, ...]]:
    """The layer and the channels to render: ``"relu4_1:7"`` picks channel 7 over
    `channels` (objectives' notation)."""
    arch = get_net(cfg.model).arch
    try:
        term = parse_layers((cfg.layer,), arch=arch)[0]
    except ConfigError as exc:
        raise ConfigError(f"invalid layer: {cfg.layer!r}", exc.hint) from exc
    channels = (term.channel,) if term.channel is not None else parse_channels(cfg.channels)
    return term.layer, channels


def parse_channels(spec: Channels) -> tuple[int, ...]:
    """``"0:16"`` (a slice, end excluded), ``"0:64:4"``, ``"3,7,12"``, ``"0:4,9"`` or a tuple."""
    if isinstance(spec, int) and not isinstance(spec, bool):
        return (spec,)
    if not isinstance(spec, str):
        try:
            return tuple(int(c) for c in spec)
        except (TypeError, ValueError):
            raise ConfigError(f"invalid channels: {spec!r}", "expected integers") from None
    out: list[int] = []
    for part in (p.strip() for p in spec.split(",")):
        numbers = part.split(":")
        if not part or len(numbers) > 3 or not all(n.strip().isdigit() for n in numbers):
            raise ConfigError(f"invalid channels: {spec!r}",
                              "expected e.g. 0:16, 0:64:4 or 3,7,12")
        if len(numbers) == 1:
            out.append(int(numbers[0]))
        else:
            start, stop, *step = (int(n) for n in numbers)
            out.extend(range(start, stop, step[0] if step else 1))
    if not out:
        raise ConfigError(f"invalid channels: {spec!r}", "expected at least one channel")
    return tuple(out)


# ------------------------------------------------------------------ parameterisation


def spectrum_scale(h: int, w: int, decay_power: float = DECAY_POWER) -> torch.Tensor:
    """1/f for each frequency of a real FFT of an h×w picture (f floored at 1/max(h, w)):
    the natural images' spectrum, so that every frequency's parameter moves alike."""
    fy = torch.fft.fftfreq(h)[:, None]
    fx = torch.fft.rfftfreq(w)[None, :]
    return 1.0 / torch.sqrt(fx * fx + fy * fy).clamp_min(1.0 / max(h, w)) ** decay_power


class Parameterisation:
    """The pictures as tensors Adam optimises: a 1/f-scaled spectrum (``fft``) or pixels,
    in decorrelated colour (``decorrelate``) or RGB, squashed into [0, 1] by a sigmoid."""

    def __init__(self, n: int, size: int, fft: bool, decorrelate: bool, gen: torch.Generator,
                 device: torch.device):
        self.size, self.fft, self.decorrelate = size, fft, decorrelate
        shape = (n, 3, size, size // 2 + 1, 2) if fft else (n, 3, size, size)
        self.params = (torch.randn(shape, generator=gen) * INIT_SD).to(device).requires_grad_()
        self.scale = spectrum_scale(size, size).to(device)[..., None]
        m = torch.tensor(COLOR_CORRELATION_SVD_SQRT)
        self.colors = (m / m.norm(dim=0).max()).to(device)

    def pictures(self) -> torch.Tensor:
        """[N, 3, size, size] in [0, 1]."""
        x = self.spectrum_picture() if self.fft else self.params
        if self.decorrelate:
            x = torch.einsum("nchw,rc->nrhw", x, self.colors)
        return torch.sigmoid(x)

    def spectrum_picture(self) -> torch.Tensor:
        spectrum = torch.view_as_complex((self.scale * self.params).contiguous())
        # Orthonormal inverse FFT: lucid's irfft2d times √(h·w), so that the same learning
        # rate suits pixels and spectra.
        x = torch.fft.irfft2(spectrum, s=(self.size, self.size), norm="ortho")
        return x / LUCID_MAGIC


# ------------------------------------------------------------------ transformation robustness


def random_views(x: torch.Tensor, cfg: FeaturesConfig, gen: torch.Generator) -> torch.Tensor:
    """Each picture padded with grey, randomly shifted, zoomed and turned (one resampling).

    Departure from lucid, which chains pad, jitter 8, scale, rotate, jitter 4 as separate crops
    and resamplings, the same for the whole batch: here one affine resampling per picture with
    its own draw (fewer interpolations, and each tile of a grid sees different views).
    """
    n, _, s, _ = x.shape
    pad = round(PAD_FRACTION * s)
    out = s + 2 * pad
    zoom = torch.empty(n).uniform_(*cfg.scale, generator=gen)
    angle = torch.empty(n).uniform_(-cfg.rotation, cfg.rotation, generator=gen) * math.pi / 180
    jitter = min(cfg.jitter, s // 4)  # so that a small `size` keeps most of its picture in view
    shift = torch.randint(-jitter, jitter + 1, (n, 2), generator=gen).float()
    cos, sin = torch.cos(angle), torch.sin(angle)
    k = out / s / zoom  # output pixels to input's normalised units, over the zoom
    theta = torch.stack([torch.stack([k * cos, -k * sin, 2 * shift[:, 0] / s], 1),
                         torch.stack([k * sin, k * cos, 2 * shift[:, 1] / s], 1)], 1)
    grid = F.affine_grid(theta.to(x), [n, 3, out, out], align_corners=False)
    # Zeros outside the picture around 0.5: lucid's grey padding.
    return F.grid_sample(x - 0.5, grid, mode="bilinear", padding_mode="zeros",
                         align_corners=False) + 0.5


# ------------------------------------------------------------------ objectives


@dataclass(frozen=True)
class Unit:
    """One tile: what it maximises (a weight per channel of the layer) and its label."""

    label: str
    weights: torch.Tensor                   # [C]
    channel: Optional[int] = None
    copy: int = 0


def make_units(cfg: FeaturesConfig, width: int) -> list[Unit]:
    """The tiles of the grid: one per channel (or random direction) × `copies`."""
    layer, channels = split_layer(cfg)
    gen = torch.Generator().manual_seed(cfg.seed + 1)  # directions: their own stream
    units = []
    if cfg.objective == "layer":
        targets = [(layer, torch.full((width,), 1.0 / width), None)]
    elif cfg.objective == "direction" and cfg.direction:
        d = torch.zeros(width)
        d[: len(cfg.direction)] = torch.tensor(cfg.direction)
        targets = [(f"{layer}:direction", d / d.norm(), None)]
    elif cfg.objective == "direction":
        targets = [(f"{layer}:random {i}", random_direction(width, gen), None)
                   for i in range(len(channels))]
    else:
        targets = [(f"{layer}:{c}", F.one_hot(torch.tensor(c), width).float(), c)
                   for c in channels]
    for label, weights, channel in targets:
        for copy in range(cfg.copies):
            name = label if cfg.copies == 1 else f"{label} #{copy + 1}"
            units.append(Unit(name, weights, channel, copy))
    return units


def random_direction(width: int, gen: torch.Generator) -> torch.Tensor:
    d = torch.randn(width, generator=gen)
    return d / d.norm()


def unit_objectives(acts: torch.Tensor, weights: torch.Tensor, objective: str) -> torch.Tensor:
    """Each tile's objective, [N], from the layer's activations [N, C, h, w] and each tile's
    weights over the channels [N, C]."""
    if objective == "unit":  # the centre unit of the channel (lucid's channel neuron)
        per_channel = acts[:, :, acts.shape[-2] // 2, acts.shape[-1] // 2]
    elif objective == "layer":  # DeepDream: ½ mean square (lucid's deepdream is the mean square)
        per_channel = acts.square().mean((2, 3)) / 2
    else:  # channel and direction: the mean over positions
        per_channel = acts.mean((2, 3))
    return (per_channel * weights).sum(1)


def diversity(acts: torch.Tensor, groups: torch.Tensor) -> torch.Tensor:
    """lucid's diversity: the mean cosine similarity of each picture's Gram matrix with the
    others'. Departure: only between copies of the same unit (``groups``), as different
    channels are already different and pushing them apart would only fight their objectives."""
    flat = acts.flatten(2)
    grams = flat @ flat.transpose(1, 2)
    grams = F.normalize(grams.flatten(1), dim=1)
    similarity = grams @ grams.T
    same = (groups[:, None] == groups[None, :]) & ~torch.eye(len(groups), dtype=torch.bool,
                                                             device=acts.device)
    return (similarity * same).sum() / len(groups)


# ------------------------------------------------------------------ the loop


def visualize(config: FeaturesConfig, callback: Optional[Callback] = None, cancel=None,
              preview_every: int = 0) -> FeaturesResult:
    """Render the configured units; raises Cancelled with the grid so far as ``partial``."""
    cfg = config
    layer, _ = split_layer(cfg)
    device = pick_device(cfg.device)
    extractor = build_extractor(NetSpec(cfg.model, cfg.weights, cfg.pooling), (layer,),
                                device, cfg.precision)
    units = make_units(cfg, extractor.out_channels(layer))
    gen = torch.Generator().manual_seed(cfg.seed)
    param = Parameterisation(len(units), cfg.size, cfg.fft, cfg.decorrelate, gen, device)
    weights = torch.stack([torch.as_tensor(u.weights) for u in units]).to(device)
    groups = torch.arange(len(units), device=device) // cfg.copies  # copies are adjacent
    sign = -1.0 if cfg.negative else 1.0
    optimizer = torch.optim.Adam([param.params], lr=cfg.lr)
    run = Tracker("features", cfg.steps, callback, cancel, preview_every)
    grid = lambda: labelled_grid(param.pictures().detach(), units)  # noqa: E731
    for _ in range(cfg.steps):
        if cancel is not None and cancel.is_set():
            run.check_cancel(grid())
        optimizer.zero_grad(set_to_none=True)
        acts = extractor(random_views(param.pictures(), cfg, gen))[layer]
        values = unit_objectives(acts, weights, cfg.objective)
        loss = -sign * values.sum()
        if cfg.diversity and cfg.copies > 1:
            # Departure: lucid weighs diversity against the raw objective (1e2 on InceptionV1);
            # here it is relative to the objective's own size, so one weight suits every layer.
            loss = loss + cfg.diversity * values.detach().abs().mean() * diversity(acts, groups)
        if not torch.isfinite(loss):
            raise DivergedError("the objective became NaN or infinite",
                                "lower `lr`", last_good=grid())
        loss.backward()
        optimizer.step()
        wanted = run.wants_preview(run.step + 1)
        run.report(f"{layer} ({cfg.objective})", {"objective": values.mean().item()},
                   grid() if wanted else param.params)
    return finish(param, extractor, layer, units, weights, cfg)


def finish(param: Parameterisation, extractor: FeatureExtractor, layer: str, units: list[Unit],
           weights: torch.Tensor, cfg: FeaturesConfig) -> FeaturesResult:
    """The final pictures, their grid and each unit's objective on its plain (unshifted)
    picture."""
    with torch.no_grad():
        tiles = param.pictures()
        values = unit_objectives(extractor(tiles)[layer], weights, cfg.objective)
    records = [{"label": u.label, "layer": layer, "channel": u.channel, "copy": u.copy,
                "objective": cfg.objective, "negative": cfg.negative,
                "value": round(float(v), 6)} for u, v in zip(units, values)]
    tiles = tiles.float().cpu()
    return FeaturesResult(labelled_grid(tiles, units), tiles, records)


def labelled_grid(tiles: torch.Tensor, units: list[Unit]) -> torch.Tensor:
    """The tiles, each under its label, in rows of 4 (8 past 16 tiles)."""
    labelled = [I.caption(t[None].float().cpu(), u.label) for t, u in zip(tiles, units)]
    return I.montage(labelled, columns=4 if len(labelled) <= 16 else 8)
