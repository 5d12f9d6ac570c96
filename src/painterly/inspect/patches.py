"""Zeiler & Fergus's top patches: for every channel of the chosen layers, the k patches of a
collection of pictures that excite it most, cut out by the unit's receptive field.

Zeiler & Fergus (*Visualizing and Understanding Convolutional Networks*, 2013, fig. 2) ran
their net over the ImageNet validation set and showed, for a few channels of each layer, the
9 strongest activations as the patches of input they see, beside their deconvnet projection.
Here every channel of every chosen layer gets its 9, over the user's own folder or tar:

1. **scan** (:func:`scan`): one forward pass per picture (batched when sizes match); for each
   channel only a top-k table is kept (score, picture, unit position), never features, so
   memory is bounded whatever the corpus size. The table is the resumable state
   (:meth:`TopPatches.state_dict`); a bad picture is skipped and listed.
2. **patches** (:func:`collect_patches`): the distinct pictures of the tables are read again
   and each entry's receptive field is cut out (:func:`patch_box`), padded grey at borders;
   with ``project`` beside it the guided-backpropagation gradient (:func:`guided_gradient`).
3. **atlas** (:func:`channel_grid`, :func:`contact_sheet`, :func:`index_record`,
   :func:`gallery_pages`): a 3×3 grid per channel, a contact sheet per layer, ``index.json``
   and a static HTML gallery. The jobs layer writes them (``painterly.jobs.top_patches``).
"""
from __future__ import annotations

import hashlib
import html
import math
import tarfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Optional, Sequence

import torch
from torch import nn

from .. import image as I
from ..device import pick_device
from ..errors import Cancelled, ConfigError, InputImageError, PainterlyError, check_option
from ..features import STYLE_LAYERS, FeatureExtractor, NetOptions, NetSpec, build_extractor, \
    check_net_options
from ..nets import Layer, get_net
from ..progress import Callback, Tracker

PICTURE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff", ".gif")
GREY = 0.5          # what lies outside a picture in a patch
MIN_TILE = 48       # small patches (relu1_1's 3 px) are enlarged to at least this, nearest
SHEET_TILE = 112    # long side of a channel's grid on its layer's contact sheet
BATCH = 8           # pictures of one size per forward pass (measured: benchmarks/bench_patches.py)


@dataclass(frozen=True)
class TopPatchesConfig(NetOptions):
    """Every setting of a top-patches atlas, with its default (the network's: NetOptions)."""

    layers: tuple[str, ...] = STYLE_LAYERS
    k: int = 9                  # entries per channel (a 3×3 grid)
    per_picture: int = 1        # at most this many entries of one picture per channel
    size: int = 224             # long side every picture is read at; 0 = each its own size
    negative: bool = False      # the most inhibiting units instead of the most exciting
    project: bool = False       # beside each patch, the guided-backprop gradient of its unit

    def __post_init__(self):
        _validate(self)


def _validate(cfg: TopPatchesConfig) -> None:
    check_option(bool(cfg.layers), "layers", cfg.layers, "at least one layer")
    check_net_options(cfg)  # the model first: the layer names depend on it
    names = [layer.name for layer in get_net(cfg.model).layers]
    for name in cfg.layers:
        check_option(name in names, "layers", name,
                     f"layers of {cfg.model}, e.g. relu1_1,relu2_1,relu3_1,relu4_1,relu5_1")
    check_option(len(set(cfg.layers)) == len(cfg.layers), "layers", cfg.layers, "each layer once")
    check_option(isinstance(cfg.k, int) and 1 <= cfg.k <= 100, "k", cfg.k,
                 "an integer from 1 to 100")
    check_option(isinstance(cfg.per_picture, int) and 1 <= cfg.per_picture <= cfg.k,
                 "per_picture", cfg.per_picture, "an integer from 1 to `k`")
    check_option(isinstance(cfg.size, int) and (cfg.size == 0 or cfg.size >= 32), "size",
                 cfg.size, "a long side ≥ 32 px, or 0 for each picture's own size")


# ---- the receptive field of a unit

def field_offset(layer: Layer) -> int:
    """How far (input pixels) a unit's receptive field starts before ``stride · position``.

    A 3×3 convolution with padding 1 reads one unit of its input on each side: it moves the
    field's start back by the input's stride s and widens the field by 2s. A 2×2 pooling of
    stride 2 keeps the start, widens the field by s and doubles the stride. With
    r = 1 + 2·Σconv s + Σpool s and stride S = 1 + Σpool s (the pool strides double), the
    start is S·i − Σconv s = S·i − (r − S)/2 (tests check it by perturbing single pixels).
    """
    return (layer.receptive_field - layer.stride) // 2


def patch_box(layer: Layer, row: int, col: int) -> tuple[int, int, int, int]:
    """The input pixels (top, left, bottom, right; bottom/right exclusive) the unit at
    (``row``, ``col``) of ``layer`` depends on; may reach outside the picture."""
    top = layer.stride * row - field_offset(layer)
    left = layer.stride * col - field_offset(layer)
    return top, left, top + layer.receptive_field, left + layer.receptive_field


def cut_patch(picture: torch.Tensor, box: tuple[int, int, int, int],
              fill: float = GREY) -> torch.Tensor:
    """``picture[..., box]`` ([1, C, r, r]) with ``fill`` where the box leaves the picture."""
    top, left, bottom, right = box
    h, w = picture.shape[-2:]
    out = picture.new_full((*picture.shape[:-2], bottom - top, right - left), fill)
    y0, y1, x0, x1 = max(top, 0), min(bottom, h), max(left, 0), min(right, w)
    if y0 < y1 and x0 < x1:
        out[..., y0 - top: y1 - top, x0 - left: x1 - left] = picture[..., y0:y1, x0:x1]
    return out


def read_layer(model: str, name: str, negative: bool) -> str:
    """The layer whose values are ranked. Departure from Zeiler & Fergus (who rank only the
    strongest): for ``negative`` a ReLU's own values are 0 wherever the unit is inhibited, so
    the most inhibiting units are read from the convolution feeding it (its pre-activation)."""
    layer = get_net(model).layer(name)
    if negative and layer.kind == "relu":
        return get_net(model).layers[layer.index - 1].name
    return name


# ---- pictures: a folder or a tar

class Pictures:
    """The pictures of a folder or a tar, by name (a path, or ``archive.tar:member``), sorted.

    ``data(name)`` gives what :func:`painterly.image.load_image` reads: the path, or the
    member's bytes. Only the names are listed up front, never the pictures.
    """

    def __init__(self, source: str):
        self.source = str(source)
        path = Path(source)
        self._tar: Optional[tarfile.TarFile] = None
        self._members: dict[str, tarfile.TarInfo] = {}
        if path.is_dir():
            self.names = [str(p) for p in sorted(path.iterdir())
                          if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES]
        elif path.is_file():
            try:
                self._tar = tarfile.open(path)
                members = [m for m in self._tar.getmembers()
                           if m.isfile() and m.name.lower().endswith(PICTURE_SUFFIXES)]
            except (tarfile.TarError, OSError) as exc:
                raise InputImageError(f"cannot read {source} as a tar of pictures: {exc}",
                                      "pass a folder of pictures or a tar file") from exc
            self._members = {f"{source}:{m.name}": m for m in members}
            self.names = sorted(self._members)
        else:
            raise InputImageError(f"pictures not found: {source}",
                                  "pass a folder of pictures or a tar file")
        if not self.names:
            raise ConfigError(f"no pictures in {source}",
                              f"it needs files ending in {', '.join(PICTURE_SUFFIXES)}")

    def data(self, name: str) -> str | bytes:
        if self._tar is None:
            return name
        try:
            return self._tar.extractfile(self._members[name]).read()
        except (tarfile.TarError, OSError) as exc:
            raise InputImageError(f"cannot read {name}: {exc}", "") from exc

    def close(self) -> None:
        if self._tar is not None:
            self._tar.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def names_digest(names: Sequence[str]) -> str:
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def scan_settings(cfg: TopPatchesConfig) -> dict:
    """The settings a scan's tables depend on (a resumed scan must have the same)."""
    settings = asdict(cfg)
    for name in ("project", "device", "precision"):  # rendering / where, not what is ranked
        settings.pop(name)
    settings["layers"] = list(settings["layers"])
    return settings


# ---- the scan: per channel, a top-k table

class TopPatches:
    """The scan's state and result: per layer and channel the k best (score, picture index,
    unit row and col, picture height and width), in score order; how many pictures are done;
    the skipped ones. Its size depends on the channels and k, not on the number of pictures
    (only skipped pictures are listed)."""

    FIELDS = ("picture", "row", "col", "height", "width")

    def __init__(self, cfg: TopPatchesConfig, names: Sequence[str], channels: dict[str, int]):
        self.settings = scan_settings(cfg)
        self.digest, self.total = names_digest(names), len(names)
        self.done = 0                              # pictures 0 … done-1 are scanned
        self.skipped: list[list[str]] = []         # [name, message]
        self.tables = {layer: {"score": torch.full((c, cfg.k), -math.inf),
                               **{f: torch.full((c, cfg.k), -1, dtype=torch.int64)
                                  for f in self.FIELDS}}
                       for layer, c in channels.items()}

    @property
    def complete(self) -> bool:
        return self.done >= self.total

    def state_dict(self) -> dict:
        """Tensors and plain values only (read back with ``weights_only=True``)."""
        return {"kind": "top-patches", "settings": self.settings, "digest": self.digest,
                "total": self.total, "done": self.done, "skipped": [list(s) for s in self.skipped],
                "tables": {layer: dict(t) for layer, t in self.tables.items()}}

    def load_state_dict(self, state: dict) -> None:
        self.done, self.skipped = int(state["done"]), [list(s) for s in state["skipped"]]
        self.tables = {layer: dict(t) for layer, t in state["tables"].items()}

    def matches(self, state: dict) -> bool:
        """Whether a saved state is this scan's: same settings, same pictures."""
        return (isinstance(state, dict) and state.get("kind") == "top-patches"
                and state.get("settings") == self.settings and state.get("digest") == self.digest
                and state.get("total") == self.total
                and set(state.get("tables", {})) == set(self.tables))

    def offer(self, layer: str, scores: torch.Tensor, first: int, per_picture: int,
              picture_size: tuple[int, int]) -> None:
        """Merge a batch's scores ([B, C, H, W], pictures ``first`` … of ``picture_size``)
        into the table: each picture offers its ``per_picture`` best units per channel; the
        k best stay."""
        table = self.tables[layer]
        b, c, h, w = scores.shape
        k = table["score"].shape[1]
        flat = torch.nan_to_num(scores.flatten(2).float().cpu(), nan=-math.inf)
        best, where = flat.topk(min(per_picture, h * w), dim=2)        # [B, C, m]
        m = best.shape[2]

        def per_channel(t: torch.Tensor) -> torch.Tensor:               # [B, C, m] -> [C, B·m]
            return t.permute(1, 0, 2).reshape(c, b * m)
        pictures = torch.arange(first, first + b).view(b, 1, 1).expand(b, c, m)
        new = {"score": per_channel(best), "picture": per_channel(pictures),
               "row": per_channel(where // w), "col": per_channel(where % w),
               "height": torch.full((c, b * m), picture_size[0]),
               "width": torch.full((c, b * m), picture_size[1])}
        merged = {f: torch.cat([table[f], new[f]], dim=1) for f in table}
        # A stable sort: ties keep the earlier picture, so resuming gives the same tables.
        order = merged["score"].sort(dim=1, descending=True, stable=True).indices[:, :k]
        self.tables[layer] = {f: v.gather(1, order) for f, v in merged.items()}

    def entries(self, layer: str, channel: int) -> list[dict]:
        """A channel's entries, strongest first (picture index, score, row, col, h, w)."""
        t = self.tables[layer]
        out = []
        for rank in range(t["score"].shape[1]):
            if int(t["picture"][channel, rank]) < 0:
                break
            out.append({"picture": int(t["picture"][channel, rank]),
                        "score": float(t["score"][channel, rank]),
                        **{f: int(t[f][channel, rank]) for f in self.FIELDS[1:]}})
        return out


def fit(picture: torch.Tensor, size: int) -> torch.Tensor:
    """The picture at ``size`` long side (up or down, so patch scales compare); 0 keeps it."""
    return I.resize(picture, long_side=size) if size else picture


def extractor_for(cfg: TopPatchesConfig) -> FeatureExtractor:
    read = tuple(dict.fromkeys(read_layer(cfg.model, n, cfg.negative) for n in cfg.layers))
    return build_extractor(NetSpec(cfg.model, cfg.weights, cfg.pooling), read,
                           pick_device(cfg.device), cfg.precision)


def scan(names: Sequence[str], read: Callable[[str], torch.Tensor], cfg: TopPatchesConfig,
         state: Optional[TopPatches] = None, callback: Optional[Callback] = None,
         cancel=None, tracker: Optional[Tracker] = None, batch: int = BATCH,
         extractor: Optional[FeatureExtractor] = None) -> TopPatches:
    """Stream ``names`` once (``read(name)`` gives a picture [1, 3, H, W] in [0, 1]), from
    ``state.done`` on; one progress step per picture. A picture that can't be read
    (painterly's errors) is skipped and listed in ``skipped``. Cancel is checked before each
    picture: :class:`Cancelled` carries the state (``exc.state``) to continue from."""
    extractor = extractor or extractor_for(cfg)
    state = state or TopPatches(cfg, names, channel_counts(cfg))
    tracker = tracker or Tracker("top-patches", len(names), callback, cancel)
    tracker.step = max(tracker.step, state.done)
    group: list[torch.Tensor] = []
    i = state.done
    while i < len(names):
        if tracker.cancel is not None and tracker.cancel.is_set():
            raise Cancelled(f"cancelled after {state.done} of {len(names)} pictures",
                            state=state)
        try:
            picture = fit(read(names[i]), cfg.size)
        except PainterlyError as exc:  # one bad picture in a folder is reported, not fatal
            _flush(extractor, state, cfg, group, tracker)
            group = []
            state.skipped.append([names[i], str(exc)])
            state.done = i + 1
            tracker.report("scan", {}, torch.zeros(1, 3, 1, 1))
            i += 1
            continue
        if group and (picture.shape != group[0].shape or len(group) >= batch):
            _flush(extractor, state, cfg, group, tracker)
            group = []
        group.append(picture)
        i += 1
    _flush(extractor, state, cfg, group, tracker)
    return state


def _flush(extractor: FeatureExtractor, state: TopPatches, cfg: TopPatchesConfig,
           group: list[torch.Tensor], tracker: Tracker) -> None:
    """One forward pass over a group of same-sized pictures (those after ``state.done``)."""
    if not group:
        return
    sign = -1.0 if cfg.negative else 1.0
    with torch.inference_mode():
        batch = torch.cat(group).to(extractor.device, memory_format=torch.channels_last)
        feats = extractor(batch)
        for name in cfg.layers:
            scores = feats[read_layer(cfg.model, name, cfg.negative)]
            state.offer(name, scores * sign if cfg.negative else scores, state.done,
                        cfg.per_picture, tuple(batch.shape[-2:]))
        del feats
    state.done += len(group)
    for picture in group:
        tracker.report("scan", {}, picture)


def channel_counts(cfg: TopPatchesConfig) -> dict[str, int]:
    net = get_net(cfg.model)
    return {name: net.layer(name).channels for name in cfg.layers}


# ---- Zeiler & Fergus's projection, by guided backpropagation

class GuidedReLU(torch.autograd.Function):
    """ReLU whose backward passes only positive gradients, and only where its input was
    positive (Springenberg et al. 2015). Departure from Zeiler & Fergus: their deconvnet
    passes only positive signals backwards but ignores the forward pass's mask and inverts
    max-pooling with switches; guided backpropagation is the same idea as a gradient (pooling
    routes through the maxima by itself) and gives sharper, less noisy projections."""

    @staticmethod
    def forward(ctx, x):
        ctx.save_for_backward(x)
        return x.clamp(min=0)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        return grad.clamp(min=0) * (x > 0).to(grad.dtype)


def guided_gradient(extractor: FeatureExtractor, picture: torch.Tensor, layer: Layer,
                    read_at: str, channel: int, row: int, col: int,
                    sign: float = 1.0) -> tuple[torch.Tensor, float]:
    """The guided gradient of one unit's value (times ``sign``) with respect to the input,
    over the unit's box ([1, 3, r, r], zero outside the picture), and the unit's value.

    Only a window holding the box is run (its start aligned to the layer's stride, so every
    pooling sees the same 2×2 cells as on the whole picture): the unit then has its value on
    the whole picture, for a fraction of the cost at shallow layers."""
    s, box = layer.stride, patch_box(layer, row, col)
    h, w = picture.shape[-2:]
    y0, x0 = max(box[0], 0) // s * s, max(box[1], 0) // s * s
    y1, x1 = min(box[2], h), min(box[3], w)
    window = picture[..., y0:y1, x0:x1].detach().float().to(extractor.device).requires_grad_()
    x = extractor.normalise(window)
    for module in extractor.net[: extractor.index_of[read_at] + 1]:
        x = GuidedReLU.apply(x) if isinstance(module, nn.ReLU) else module(x)
    unit = x[0, channel, row - y0 // s, col - x0 // s]
    (grad,) = torch.autograd.grad(unit * sign, window)
    full = torch.zeros(1, 3, h, w)
    full[..., y0:y1, x0:x1] = grad.detach().cpu()
    return cut_patch(full, box, fill=0.0), float(unit.detach())


def gradient_picture(grad: torch.Tensor) -> torch.Tensor:
    """A gradient as a picture: grey where it is 0, scaled so its 99th percentile of |g|
    reaches the ends (a few extreme pixels would otherwise leave the rest grey)."""
    scale = torch.quantile(grad.abs().flatten().float(), 0.99).clamp(min=1e-12)
    return (0.5 + 0.5 * grad / scale).clamp(0, 1)


# ---- the patches and the atlas

def to_bytes(picture: torch.Tensor) -> torch.Tensor:
    return picture.detach()[0].clamp(0, 1).mul(255).round().to(torch.uint8)


def from_bytes(tile: torch.Tensor) -> torch.Tensor:
    return tile.float().div(255).unsqueeze(0)


def collect_patches(result: TopPatches, names: Sequence[str], read: Callable[[str], torch.Tensor],
                    cfg: TopPatchesConfig, extractor: Optional[FeatureExtractor] = None,
                    cancel=None) -> dict[str, list[list[dict]]]:
    """Every entry's patch (uint8 [3, r, r]; with ``project`` also its ``projection``), per
    layer and channel, strongest first. Each picture of the tables is read once."""
    net = get_net(cfg.model)
    wanted: dict[int, list[tuple[str, int, int, dict]]] = {}
    out: dict[str, list[list[dict]]] = {}
    for name in cfg.layers:
        out[name] = []
        for c in range(result.tables[name]["score"].shape[0]):
            entries = result.entries(name, c)
            out[name].append(entries)
            for rank, entry in enumerate(entries):
                wanted.setdefault(entry["picture"], []).append((name, c, rank, entry))
    if cfg.project and extractor is None:
        extractor = extractor_for(cfg)
    sign = -1.0 if cfg.negative else 1.0
    for index in sorted(wanted):
        if cancel is not None and cancel.is_set():
            raise Cancelled("cancelled while cutting the patches", state=result)
        picture = fit(read(names[index]), cfg.size)
        pixels = to_bytes(picture).unsqueeze(0)  # cut from bytes: 13k patches stay cheap
        for name, channel, _rank, entry in wanted[index]:
            layer = net.layer(name)
            box = patch_box(layer, entry["row"], entry["col"])
            entry["patch"] = cut_patch(pixels, box, fill=round(GREY * 255))[0]
            if cfg.project:
                with torch.enable_grad():
                    grad, _ = guided_gradient(extractor, picture, layer,
                                              read_layer(cfg.model, name, cfg.negative),
                                              channel, entry["row"], entry["col"], sign)
                entry["projection"] = to_bytes(gradient_picture(grad))
    return out


def enlarge(tile: torch.Tensor, factor: int) -> torch.Tensor:
    """Nearest-neighbour enlargement (a 3-px patch stays three crisp pixels wide)."""
    return tile.repeat_interleave(factor, -2).repeat_interleave(factor, -1) if factor > 1 else tile


def channel_grid(entries: list[dict], layer: Layer, k: int, project: bool = False) -> torch.Tensor:
    """A channel's patches (with ``project`` each beside its projection) in a near-square
    grid, strongest first, row by row; an empty cell is grey."""
    r = layer.receptive_field
    factor = max(1, math.ceil(MIN_TILE / r))
    empty = torch.full((1, 3, r, r), GREY)
    tiles = []
    for rank in range(k):
        entry = entries[rank] if rank < len(entries) else {}
        cell = [from_bytes(entry["patch"]) if "patch" in entry else empty]
        if project:
            cell.append(from_bytes(entry["projection"]) if "projection" in entry else empty)
        cell = [enlarge(t, factor) for t in cell]
        tiles.append(I.montage(cell, columns=2, gap=1) if project else cell[0])
    return I.montage(tiles, columns=math.ceil(math.sqrt(k)), gap=2)


def sheet_tile(grid: torch.Tensor, channel: int) -> torch.Tensor:
    """A channel's grid shrunk to SHEET_TILE and labelled with its number (for the sheet)."""
    return I.caption(I.resize(grid, long_side=SHEET_TILE), f"{channel}")


def contact_sheet(tiles: Sequence[torch.Tensor], layer: str, negative: bool = False) -> torch.Tensor:
    """A layer's channels (their :func:`sheet_tile`) on one labelled sheet."""
    sheet = I.montage(tiles, columns=math.ceil(math.sqrt(len(tiles))), gap=4)
    kind = "most inhibiting" if negative else "strongest"
    return I.caption(sheet, f"{layer}: the {kind} patches of each channel", size=16)


def grid_name(layer: str, channel: int) -> str:
    """Where a channel's grid goes inside the atlas."""
    return f"{layer}/channel_{channel:04d}.png"


def index_record(result: TopPatches, names: Sequence[str], cfg: TopPatchesConfig) -> dict:
    """``index.json``: for every layer and channel its entries: source, value, unit position
    and the patch box, in the pixels of the picture as read (long side ``size``) and as
    fractions of its height and width (which map to the original file's pixels)."""
    net, sign = get_net(cfg.model), -1.0 if cfg.negative else 1.0
    layers = {}
    for name in cfg.layers:
        layer = net.layer(name)
        channels = []
        for c in range(result.tables[name]["score"].shape[0]):
            entries = []
            for e in result.entries(name, c):
                box = patch_box(layer, e["row"], e["col"])
                h, w = e["height"], e["width"]
                entries.append({"source": names[e["picture"]], "value": e["score"] * sign,
                                "position": [e["row"], e["col"]], "box": list(box),
                                "picture_size": [h, w],
                                "box_fraction": [round(box[0] / h, 6), round(box[1] / w, 6),
                                                 round(box[2] / h, 6), round(box[3] / w, 6)]})
            channels.append({"channel": c, "grid": grid_name(name, c), "entries": entries})
        layers[name] = {"read_at": read_layer(cfg.model, name, cfg.negative),
                        "stride": layer.stride, "receptive_field": layer.receptive_field,
                        "field_offset": field_offset(layer), "channels": channels}
    return {"kind": "top-patches", "settings": asdict(cfg), "complete": result.complete,
            "pictures": result.total, "scanned": result.done,
            "skipped": [{"source": s, "error": m} for s, m in result.skipped],
            "pixels": "box: [top, left, bottom, right) in the picture as read, its long side "
                      "scaled to `size` (picture_size: [height, width]); box_fraction: the same "
                      "box as fractions of the height and width, for the original file",
            "layers": layers}


_STYLE = ("body{font-family:sans-serif;margin:1.5em;background:#fafafa;color:#222}"
          "figure{display:inline-block;margin:4px;text-align:center}"
          "figure img{max-width:200px;image-rendering:pixelated;border:1px solid #ccc}"
          "figcaption{font-size:12px}")


def gallery_pages(index: dict) -> dict[str, str]:
    """The static HTML gallery: ``index.html`` (the layers) and one page per layer, each
    channel a link to its grid. Plain HTML and CSS, nothing fetched from elsewhere."""
    esc = html.escape
    kind = "most inhibiting" if index["settings"]["negative"] else "strongest"
    items = "".join(
        f'<li><a href="{esc(name)}.html">{esc(name)}</a>: {len(layer["channels"])} channels, '
        f'receptive field {layer["receptive_field"]} px, stride {layer["stride"]} '
        f'(<a href="{esc(name)}.png">contact sheet</a>)</li>'
        for name, layer in index["layers"].items())
    skipped = "".join(f"<li>{esc(s['source'])}: {esc(s['error'])}</li>" for s in index["skipped"])
    pages = {"index.html": _page(
        "Top patches", f"<h1>Top patches ({kind} activations)</h1>"
        f"<p>{index['scanned']} of {index['pictures']} pictures scanned"
        f"{'' if index['complete'] else ' (unfinished: run the command again to continue)'}; "
        f"model {esc(index['settings']['model'])}, pictures at {index['settings']['size']} px."
        "</p><ul>" + items + "</ul>" + (f"<h2>Skipped</h2><ul>{skipped}</ul>" if skipped else ""))}
    for name, layer in index["layers"].items():
        figures = "".join(
            f'<figure><a href="{esc(ch["grid"])}"><img loading="lazy" src="{esc(ch["grid"])}" '
            f'alt="channel {ch["channel"]}" title="{esc(_sources(ch))}"></a>'
            f'<figcaption>{ch["channel"]}</figcaption></figure>' for ch in layer["channels"])
        pages[f"{name}.html"] = _page(
            name, f'<p><a href="index.html">all layers</a></p><h1>{esc(name)}</h1>'
            f"<p>{len(layer['channels'])} channels; each grid: the {kind} patches "
            f"({layer['receptive_field']} px, the units' receptive field), strongest first."
            f"</p>{figures}")
    return pages


def _sources(channel: dict) -> str:
    return "\n".join(f"{e['value']:.3g}  {e['source']}" for e in channel["entries"])


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body>{body}</body></html>\n")
