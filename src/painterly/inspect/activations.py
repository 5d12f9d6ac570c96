"""What a layer sees in one picture: its feature maps, a 3-colour summary, its Gram matrix.

Three views of the activations of a picture at the chosen layers, each one labelled grid per
layer, stacked under the picture:

* **maps** (the default): one tile per channel, the most active channels first (highest mean
  activation) or the ``channels`` asked for; each map normalised on its own and coloured with a
  viridis-like colour map, or with ``overlay`` laid over the photo (the photo in grey, the map
  in colour where the channel fires).
* **reduce** (``"pca"`` or ``"nmf"``): a layer's channels folded into 3 colours, so one tile
  shows what the layer separates — PCA (the 3 directions of largest variance of the feature
  vectors; Olah et al.'s "Building Blocks" use the same trick) or NMF (3 non-negative parts
  whose sum rebuilds the features; multiplicative updates of Lee & Seung 2001, seeded).
* **gram** (the lecture's "style matrix", Gatys et al. 2015): G = F Fᵀ / (H·W) of every layer as
  a heat map, channels ordered by their diagonal energy (the most energetic top-left).

Maps are computed at ``size`` (the picture's long side) and shown at ``tile`` pixels: a map
is enlarged with *nearest* neighbours (so a deep layer's coarse grid stays visible as blocks —
each block is one unit) and shrunk by area averaging.
"""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass, field
from typing import Optional, Union

import torch
import torch.nn.functional as F

from .. import image as I
from ..device import pick_device
from ..errors import ConfigError, check_option
from ..features import NetOptions, NetSpec, build_extractor, check_net_options
from ..losses import gram_matrix
from ..nets import get_net, layer_names
from ..progress import Callback, Tracker

REDUCTIONS = ("none", "pca", "nmf")
ChannelSpec = Union[str, tuple[int, ...], None]

# Anchor colours of matplotlib's viridis at 0, ¼, ½, ¾, 1 (dark violet → blue → teal →
# green → yellow): perceptually ordered and readable in grey print, unlike a rainbow.
VIRIDIS = ((68, 1, 84), (59, 82, 139), (33, 145, 140), (94, 201, 98), (253, 231, 37))


@dataclass(frozen=True)
class ActivationsConfig(NetOptions):
    """Every setting of an activations figure, with its default (the network's: NetOptions)."""

    layers: tuple[str, ...] = ("relu1_1", "relu3_1", "relu5_1")
    # None: the ``count`` most active channels of each layer, most active first; or a spec:
    # "0:16" (a range, "0:64:4" with a step) or "3,17,42" (a list), or a tuple of indices.
    channels: ChannelSpec = None
    count: int = 16                     # channels per layer when ``channels`` is None
    columns: int = 8                    # tiles per row of a layer's grid
    tile: int = 192                     # long side of each tile, pixels
    overlay: bool = False               # maps over the photo (photo in grey, map in colour)
    reduce: str = "none"                # "pca" or "nmf": a layer's channels in 3 colours
    nmf_iterations: int = 100           # multiplicative updates of the NMF
    gram: bool = False                  # show each layer's Gram matrix as a heat map instead
    size: int = 512                     # long side the picture is read at (the net sees this)
    seed: int = 0                       # seed of the NMF's starting factors

    def __post_init__(self):
        if isinstance(self.layers, str):
            object.__setattr__(self, "layers", tuple(l for l in self.layers.split(",") if l))
        if isinstance(self.channels, list):
            object.__setattr__(self, "channels", tuple(self.channels))
        _validate(self)


def _validate(cfg: ActivationsConfig) -> None:
    check_net_options(cfg)  # the model first: the layer names depend on it
    check_option(bool(cfg.layers), "`layers`", cfg.layers, "at least one layer")
    names = layer_names(get_net(cfg.model).arch)
    for layer in cfg.layers:
        check_option(layer in names, "`layers`", layer,
                     "layer names such as relu1_1, relu3_1, relu5_1")
    check_option(len(set(cfg.layers)) == len(cfg.layers), "`layers`", cfg.layers,
                 "each layer once")
    parse_channels(cfg.channels, None)  # the spec's syntax; its range is checked per layer
    check_option(cfg.count >= 1, "`count`", cfg.count, "an integer ≥ 1")
    check_option(cfg.columns >= 1, "`columns`", cfg.columns, "an integer ≥ 1")
    check_option(cfg.tile >= 16, "`tile`", cfg.tile, "an integer ≥ 16 (pixels)")
    check_option(cfg.reduce in REDUCTIONS, "`reduce`", cfg.reduce, ", ".join(REDUCTIONS))
    check_option(cfg.nmf_iterations >= 1, "`nmf_iterations`", cfg.nmf_iterations,
                 "an integer ≥ 1")
    check_option(not (cfg.gram and cfg.reduce != "none"), "`gram`", cfg.gram,
                 "either `gram` or `reduce`, not both")
    check_option(cfg.size >= 32, "`size`", cfg.size, "an integer ≥ 32")


@dataclass
class ActivationMaps:
    """What :func:`activation_maps` returns: the figure, per-layer records (channels shown and
    their mean activations, and the view's own numbers), the activations themselves
    ([1, C, h, w] per layer) and, for the gram view, the Gram matrices ([C, C], unordered)."""

    picture: torch.Tensor
    records: list[dict]
    activations: dict[str, torch.Tensor] = field(default_factory=dict)
    grams: dict[str, torch.Tensor] = field(default_factory=dict)


# ------------------------------------------------------------------ channels


def parse_channels(spec: ChannelSpec, n: Optional[int]) -> Optional[tuple[int, ...]]:
    """A channel spec as indices: None stays None (the most active); "a:b[:s]" a range (b
    defaults to ``n``), "i,j,k" a list, a tuple as given. ``n`` (the layer's channel count)
    checks the range; None checks only the syntax."""
    if spec is None:
        return None
    if isinstance(spec, str):
        indices = _indices_of(spec.replace(" ", ""), n)
    else:
        check_option(all(isinstance(i, int) and not isinstance(i, bool) for i in spec),
                     "`channels`", spec, "channel indices (integers)")
        indices = tuple(spec)
    check_option(len(indices) > 0, "`channels`", spec, "at least one channel")
    check_option(all(i >= 0 for i in indices), "`channels`", spec, "indices ≥ 0")
    if n is not None and max(indices) >= n:
        raise ConfigError(f"invalid `channels`: {spec!r} reaches channel {max(indices)}",
                          f"this layer has channels 0 to {n - 1}")
    return indices


def _indices_of(text: str, n: Optional[int]) -> tuple[int, ...]:
    try:
        if ":" in text:
            parts = [int(p) if p else None for p in text.split(":")]
            check_option(len(parts) in (2, 3), "`channels`", text, "a range such as 0:16")
            start, stop, step = (parts + [None])[:3]
            step = 1 if step is None else step
            check_option(step >= 1, "`channels`", text, "a step ≥ 1")
            stop = stop if stop is not None else (n if n is not None else (start or 0) + 1)
            return tuple(range(start or 0, stop if n is None else min(stop, n), step))
        return tuple(int(p) for p in text.split(",") if p)
    except ValueError:
        raise ConfigError(f"invalid `channels`: {text!r}",
                          "write a range such as 0:16 or a list such as 3,17,42") from None


def most_active(features: torch.Tensor, count: int) -> tuple[int, ...]:
    """The ``count`` channels of ``features`` [1, C, h, w] with the highest mean activation,
    highest first (ties: lower index first)."""
    means = features[0].mean(dim=(1, 2))
    order = torch.sort(means, descending=True, stable=True).indices
    return tuple(int(i) for i in order[:count])


# ------------------------------------------------------------------ colours


def viridis(values: torch.Tensor) -> torch.Tensor:
    """Values in [0, 1] shaped [..., h, w] as RGB [..., 3, h, w]: a viridis-like colour map,
    linear between the anchor colours of :data:`VIRIDIS`."""
    anchors = torch.tensor(VIRIDIS, dtype=torch.float32) / 255  # [K, 3]
    k = anchors.shape[0] - 1
    pos = values.clamp(0, 1) * k
    low = pos.floor().clamp(max=k - 1).long()
    t = (pos - low).unsqueeze(-3)                                   # [..., 1, h, w]
    lo = anchors[low].movedim(-1, -3)                               # [..., 3, h, w]
    hi = anchors[low + 1].movedim(-1, -3)
    return lo + (hi - lo) * t


def normalise_map(fmap: torch.Tensor) -> torch.Tensor:
    """A map scaled to [0, 1] by its own minimum and maximum (a flat map gives zeros)."""
    low, high = fmap.min(), fmap.max()
    return (fmap - low) / (high - low) if high > low else torch.zeros_like(fmap)


def grey(photo: torch.Tensor) -> torch.Tensor:
    """A picture's luminance (Rec. 601) repeated over 3 channels."""
    y = (photo * photo.new_tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    return y.expand(-1, 3, -1, -1)


def overlay_on(photo: torch.Tensor, colours: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """``colours`` laid over the grey, dimmed photo, opaque where ``alpha`` (in [0, 1]) is 1."""
    base = 0.25 + 0.5 * grey(photo)
    return base * (1 - alpha) + colours * alpha


def resample_map(maps: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Maps [1, C, h, w] at ``size``: enlarged with nearest neighbours (one block per unit),
    shrunk by area averaging."""
    if tuple(maps.shape[-2:]) == tuple(size):
        return maps
    enlarge = size[0] >= maps.shape[-2] and size[1] >= maps.shape[-1]
    return F.interpolate(maps, size=size, mode="nearest" if enlarge else "area")


def tile_size(shape: tuple[int, int], long_side: int) -> tuple[int, int]:
    h, w = shape
    scale = long_side / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


# ------------------------------------------------------------------ the maps view


def feature_map_tiles(photo: torch.Tensor, features: torch.Tensor, channels: tuple[int, ...],
                      cfg: ActivationsConfig) -> list[torch.Tensor]:
    """One labelled tile per channel: its map normalised, coloured, optionally overlaid."""
    shown = tile_size(photo.shape[-2:], cfg.tile)
    small = I.resize(photo, size=shown)
    maps = resample_map(features[:, list(channels)], shown)
    means = features[0].mean(dim=(1, 2))
    tiles = []
    for j, c in enumerate(channels):
        values = normalise_map(maps[0, j])
        coloured = viridis(values).unsqueeze(0)
        if cfg.overlay:
            coloured = overlay_on(small, coloured, values.view(1, 1, *shown))
        tiles.append(I.caption(coloured, f"#{c}  mean {float(means[c]):.3g}", size=11))
    return tiles


# ------------------------------------------------------------------ the reduce view


def feature_vectors(features: torch.Tensor) -> torch.Tensor:
    """[1, C, h, w] -> the h·w feature vectors as rows [h·w, C]."""
    return features[0].flatten(1).T.contiguous()


def pca_colours(features: torch.Tensor) -> tuple[torch.Tensor, list[float]]:
    """The 3 principal components of a layer's feature vectors as an RGB map [1, 3, h, w] in
    [0, 1], and the share of the variance each explains.

    Exact: an eigen-decomposition of the C×C covariance (C ≤ 512), deterministic, where
    ``torch.pca_lowrank`` would be randomised. Each component's sign is chosen so that its
    largest loading is positive, and its projection scaled to [0, 1] between its 1st and 99th
    percentiles (a few extreme units would otherwise leave the rest one flat colour).
    """
    x = feature_vectors(features).double()
    x = x - x.mean(0, keepdim=True)
    cov = x.T @ x / max(1, x.shape[0] - 1)
    values, vectors = torch.linalg.eigh(cov)                    # ascending
    k = min(3, vectors.shape[1])
    top = vectors[:, -k:].flip(1)                               # [C, k], largest first
    signs = torch.sign(top.gather(0, top.abs().argmax(0, keepdim=True)))
    top = top * torch.where(signs == 0, torch.ones_like(signs), signs)
    projected = (x @ top).float()                               # [h·w, k]
    explained = (values.flip(0)[:k] / values.sum().clamp_min(1e-12)).tolist()
    rgb = torch.stack([percentile_scale(projected[:, i]) for i in range(k)]
                      + [torch.zeros(x.shape[0])] * (3 - k))
    return rgb.view(1, 3, *features.shape[-2:]), [round(e, 4) for e in explained]


def percentile_scale(values: torch.Tensor, low: float = 0.01, high: float = 0.99) -> torch.Tensor:
    """Values scaled so their ``low`` and ``high`` quantiles become 0 and 1, clamped."""
    lo, hi = torch.quantile(values, torch.tensor([low, high]))
    if hi <= lo:
        return torch.zeros_like(values)
    return ((values - lo) / (hi - lo)).clamp(0, 1)


def nmf(x: torch.Tensor, parts: int = 3, iterations: int = 100,
        seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[float]]:
    """Non-negative matrix factorisation X ≈ W H (X [n, C] ≥ 0; W [n, parts], H [parts, C])
    by Lee & Seung's multiplicative updates for the Frobenius loss, which never increase it.

    Starts from seeded uniform factors scaled to X's mean. Returns W, H and the relative
    loss ‖X − WH‖² / ‖X‖² before the first iteration and after every one (``iterations`` + 1
    values), computed from the small products the updates need — ‖X‖² − 2⟨H, WᵀX⟩ +
    ⟨WᵀW, HHᵀ⟩ — never from the n×C residual.
    """
    x = x.float().clamp_min(0)
    xt = x.T.contiguous()                                       # [C, n]: Xᵀ W is one matmul
    gen = torch.Generator().manual_seed(seed)
    scale = math.sqrt(max(float(x.mean()), 1e-12) / parts)
    w = torch.rand(x.shape[0], parts, generator=gen) * scale + 1e-4
    h = torch.rand(parts, x.shape[1], generator=gen) * scale + 1e-4
    energy = float(x.double().pow(2).sum().clamp_min(1e-12))
    eps = 1e-12

    def relative_loss(wtx: torch.Tensor, wtw: torch.Tensor) -> float:
        hh = (h @ h.T).double()
        return (energy - 2 * float((h.double() * wtx.double()).sum())
                + float((wtw.double() * hh).sum())) / energy

    losses = []
    for _ in range(iterations):
        wtx, wtw = (xt @ w).T, w.T @ w                          # [parts, C], [parts, parts]
        losses.append(relative_loss(wtx, wtw))
        h *= wtx / (wtw @ h + eps)
        w *= (x @ h.T) / (w @ (h @ h.T) + eps)
    losses.append(relative_loss((xt @ w).T, w.T @ w))
    return w, h, losses


def nmf_colours(features: torch.Tensor, iterations: int,
                seed: int) -> tuple[torch.Tensor, list[float], torch.Tensor]:
    """A layer's feature vectors as 3 non-negative parts, coloured red, green and blue
    (parts ordered by their share of the reconstruction, largest red); the map [1, 3, h, w]
    in [0, 1], the loss per iteration and the parts' loadings on the channels [3, C]."""
    w, h, losses = nmf(feature_vectors(features), 3, iterations, seed)
    share = w.sum(0) * h.sum(1)
    order = torch.sort(share, descending=True, stable=True).indices
    w, h = w[:, order], h[order]
    # Each part scaled by its own 99th percentile, so one bright spot doesn't darken the rest.
    rgb = torch.stack([percentile_scale(w[:, i], 0.0, 0.99) for i in range(3)])
    return rgb.view(1, 3, *features.shape[-2:]), losses, h


def reduced_tile(photo: torch.Tensor, features: torch.Tensor, cfg: ActivationsConfig,
                 label: str) -> tuple[torch.Tensor, dict]:
    """The layer's 3-colour summary as one labelled tile beside the photo, and its record.

    The factorisation is fitted at the resolution it is shown at: a layer finer than the
    tile is first area-averaged to it (relu1_1 of a 512 px picture has 196,608 feature
    vectors, the 192 px tile 27,648), which keeps NMF to seconds on two cores.
    """
    shown = tile_size(photo.shape[-2:], cfg.tile)
    small = I.resize(photo, size=shown)
    if features.shape[-2] > shown[0] or features.shape[-1] > shown[1]:
        features = resample_map(features, shown)
    if cfg.reduce == "pca":
        rgb, explained = pca_colours(features)
        extra = {"explained_variance": explained}
        note = f"PCA: {sum(explained):.0%} of the variance"
    else:
        rgb, losses, loadings = nmf_colours(features, cfg.nmf_iterations, cfg.seed)
        extra = {"nmf_loss": [round(losses[0], 6), round(losses[-1], 6)],
                 "nmf_top_channels": [[int(c) for c in torch.argsort(row, descending=True)[:5]]
                                      for row in loadings]}
        note = f"NMF: {1 - losses[-1]:.0%} of the energy"
    rgb = resample_map(rgb, shown)
    if cfg.overlay:
        rgb = overlay_on(small, rgb, rgb.amax(1, keepdim=True))
    tiles = [I.caption(small, "picture", size=11), I.caption(rgb, note, size=11)]
    return I.caption(I.montage(tiles, 2, gap=4), label, size=13), extra


# ------------------------------------------------------------------ the gram view


def gram_heat_map(features: torch.Tensor, long_side: int) -> tuple[torch.Tensor, torch.Tensor,
                                                                    torch.Tensor]:
    """A layer's Gram matrix G = F Fᵀ / (h·w) as a heat map [1, 3, S, S], channels ordered by
    their diagonal energy (most energetic first); returns the map, G and the order.

    Colour ~ √(G / max G): the diagonal dwarfs most correlations, and the square root lets
    the weaker ones show. Enlarged by whole cells (nearest) to about ``long_side`` pixels;
    never shrunk (a 512-channel layer gives 512 pixels, one per cell).
    """
    g = gram_matrix(features)[0]
    order = torch.sort(g.diagonal(), descending=True, stable=True).indices
    ordered = g[order][:, order]
    values = (ordered / ordered.max().clamp_min(1e-12)).clamp_min(0).sqrt()
    c = ordered.shape[0]
    side = c * max(1, round(long_side / c))
    heat = viridis(resample_map(values.view(1, 1, c, c), (side, side))[0, 0]).unsqueeze(0)
    return heat, g, order


# ------------------------------------------------------------------ the figure


def layer_grid(tiles: list[torch.Tensor], columns: int, label: str) -> torch.Tensor:
    return I.caption(I.montage(tiles, columns, gap=4), label, size=13)


def activation_maps(picture: I.ImageLike, config: ActivationsConfig = ActivationsConfig(),
                    callback: Optional[Callback] = None,
                    cancel: Optional[threading.Event] = None,
                    preview_every: int = 0) -> ActivationMaps:
    """The activations of ``picture`` at ``config.layers`` as one labelled figure, and records.

    One forward pass; one progress event per layer. Raises Cancelled (``partial``: the figure
    so far) when ``cancel`` is set between layers.
    """
    cfg = config
    photo = I.resize(I.load_image(picture)[:1], long_side=cfg.size)
    device = pick_device(cfg.device)
    extractor = build_extractor(NetSpec(cfg.model, cfg.weights, cfg.pooling), tuple(cfg.layers),
                                device, cfg.precision)
    with torch.no_grad():
        feats = {k: v.cpu() for k, v in extractor(photo.to(device)).items()}
    run = Tracker("activations", len(cfg.layers), callback, cancel, preview_every)
    h, w = photo.shape[-2:]
    parts = [I.caption(I.resize(photo, size=tile_size((h, w), cfg.tile)),
                       f"picture {w}x{h}", size=13)]
    result = ActivationMaps(parts[0], [], feats)
    for layer in cfg.layers:
        run.check_cancel(I.montage(parts, 1, gap=10))
        grid, record = layer_view(photo, feats[layer], layer, cfg, result)
        parts.append(grid)
        result.records.append(record)
        run.report(layer, {"mean": record["layer_mean"]}, I.montage(parts, 1, gap=10))
    if cfg.gram:  # the heat maps side by side, under the picture
        parts = [parts[0], I.montage(parts[1:], min(cfg.columns, len(parts) - 1), gap=10)]
    result.picture = I.montage(parts, 1, gap=10)
    return result


def layer_view(photo: torch.Tensor, features: torch.Tensor, layer: str, cfg: ActivationsConfig,
               result: ActivationMaps) -> tuple[torch.Tensor, dict]:
    """One layer's labelled grid (or tile) in the chosen view, and its record."""
    n, fh, fw = features.shape[1:]
    means = features[0].mean(dim=(1, 2))
    record = {"layer": layer, "channels_total": n, "map_size": [fh, fw],
              "layer_mean": round(float(means.mean()), 6)}
    if cfg.gram:
        heat, g, order = gram_heat_map(features, cfg.tile)
        result.grams[layer] = g
        record.update(order=[int(i) for i in order[:32]],
                      diagonal=[round(float(v), 6) for v in g.diagonal()[order[:32]]])
        return I.caption(heat, f"{layer} Gram {n}x{n}", size=13), record
    if cfg.reduce != "none":
        tile, extra = reduced_tile(photo, features, cfg, f"{layer}: {fh}x{fw} units, "
                                   f"{n} channels in 3 colours")
        record.update(extra)
        return tile, record
    channels = parse_channels(cfg.channels, n)
    chosen = "chosen" if channels is not None else "most active first"
    if channels is None:
        channels = most_active(features, cfg.count)
    record.update(channels=list(channels),
                  mean_activations=[round(float(means[c]), 6) for c in channels])
    label = f"{layer}: {fh}x{fw} units, {len(channels)} of {n} channels ({chosen})"
    tiles = feature_map_tiles(photo, features, channels, cfg)
    return layer_grid(tiles, cfg.columns, label), record
