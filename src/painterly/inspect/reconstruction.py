"""What the content and style representations keep: Gatys, Ecker & Bethge 2015, Figure 1.

Starting from white noise, a picture is optimised until its features match one target and
nothing else:

* **content row**: the photo's activations at one layer alone (content loss only), for
  relu1_1 … relu5_1. Early layers give back almost the photo; deep layers keep its layout and
  objects but let the exact pixels go.
* **style row**: the painting's Gram matrices at a growing set of layers ({relu1_1},
  {relu1_1, relu2_1}, … up to relu5_1; style loss only). One layer gives its colours and fine
  grain; each added layer brings structure at a larger scale.

Departures from the paper, and why:

* VGG16 (painterly's network, Caffe weights) instead of VGG19; the layer names are the same.
* A fixed number of L-BFGS iterations per panel (``iterations``), not run to convergence: the
  whole figure has to fit in a few minutes on two CPU cores. The shallow panels converge in a
  fraction of it; the deep ones are the least finished.
* Losses normalised as everywhere in painterly (``losses``): the content error relative to the
  target's energy, each Gram error relative to the target Gram's, averaged over the set's
  layers (the paper's w_l = 1/|set|) instead of the paper's raw sums with 1/(4N²M²).
* Average pooling, as the paper uses for synthesis, is the default here (``pooling``), while
  painterly's other algorithms default to max pooling.
* Each row is synthesised at its own picture's size (long side ``size``), from the same seeded
  uniform noise (``seed``) for every panel of a row, so the panels differ only by the layers.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch

from .. import image as I
from ..device import pick_device
from ..errors import Cancelled, DivergedError, check_option
from ..features import (STYLE_LAYERS, FeatureExtractor, NetOptions, NetSpec, build_extractor,
                        check_net_options)
from ..losses import content_loss, gram_matrix, style_loss
from ..nets import get_net, layer_index, layer_names
from ..optim import optimize
from ..progress import Callback, Progress, Tracker

LABEL_SIZE = 12
UNREACHED = 0.92  # grey of a panel not reached when the run stops early


@dataclass(frozen=True)
class ReconstructConfig(NetOptions):
    """Every setting of a reconstruction figure, with its default (the network's: NetOptions)."""

    # The paper synthesises with average pooling (better gradient flow, smoother pictures).
    pooling: str = "avg"
    size: int = 256                                  # long side of every panel, pixels
    iterations: int = 40                             # L-BFGS iterations per panel
    content_layers: tuple[str, ...] = STYLE_LAYERS   # one content panel per layer
    style_layers: tuple[str, ...] = STYLE_LAYERS     # panel k uses the first k of these
    seed: int = 0                                    # the starting white noise

    def __post_init__(self):
        for name in ("content_layers", "style_layers"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, tuple(v for v in value.split(",") if v))
        _validate(self)


def _validate(cfg: ReconstructConfig) -> None:
    check_net_options(cfg)  # the model first: the layer names depend on it
    names = layer_names(get_net(cfg.model).arch)
    for setting in ("content_layers", "style_layers"):
        layers = getattr(cfg, setting)
        check_option(bool(layers), f"`{setting}`", layers, "at least one layer")
        for layer in layers:
            check_option(layer in names, f"`{setting}`", layer,
                         "layer names such as relu1_1, relu3_1, relu5_1")
        check_option(len(set(layers)) == len(layers), f"`{setting}`", layers, "each layer once")
    check_option(cfg.size >= 32, "`size`", cfg.size, "an integer ≥ 32")
    check_option(cfg.iterations >= 1, "`iterations`", cfg.iterations, "an integer ≥ 1")


@dataclass(frozen=True)
class Panel:
    """One reconstruction: its row ("content" or "style"), the layers it matches, its label."""

    row: str
    layers: tuple[str, ...]

    @property
    def label(self) -> str:
        if self.row == "content":
            return f"content {self.layers[0]}"
        if len(self.layers) == 1:
            return f"style {self.layers[0]}"
        return f"style {self.layers[0]}…{self.layers[-1]}"


@dataclass
class Reconstruction:
    """What :func:`reconstruct` returns: the labelled figure, every panel's picture (in
    :func:`panels_of` order) and its record (layers, loss at the start and at the end,
    iterations, seconds)."""

    picture: torch.Tensor
    panels: list[torch.Tensor] = field(default_factory=list)
    records: list[dict] = field(default_factory=list)


def panels_of(cfg: ReconstructConfig) -> list[Panel]:
    """The content panels (one layer each), then the style panels (growing sets)."""
    return ([Panel("content", (layer,)) for layer in cfg.content_layers]
            + [Panel("style", tuple(cfg.style_layers[:k + 1]))
               for k in range(len(cfg.style_layers))])


# ------------------------------------------------------------------ the two objectives


def content_objective(extractor: FeatureExtractor, photo: torch.Tensor, layer: str):
    """Loss closure of a content reconstruction: match the photo's activations at ``layer``."""
    with torch.no_grad():
        target = extractor(photo)[layer]

    def loss_fn(x: torch.Tensor):
        loss = content_loss(extractor(x)[layer], target)
        return loss, {"content": loss.item()}

    return loss_fn


def style_objective(extractor: FeatureExtractor, painting: torch.Tensor,
                    layers: tuple[str, ...]):
    """Loss closure of a style reconstruction: match the painting's Gram matrices at
    ``layers``, each layer's error weighted 1/|layers| (the paper's w_l)."""
    with torch.no_grad():
        feats = extractor(painting)
        targets = {k: gram_matrix(feats[k]) for k in layers}

    def loss_fn(x: torch.Tensor):
        feats = extractor(x)
        loss = sum(style_loss(gram_matrix(feats[k]), targets[k]) for k in layers) / len(layers)
        return loss, {"style": loss.item()}

    return loss_fn


def truncated(extractor: FeatureExtractor, layers: tuple[str, ...]) -> FeatureExtractor:
    """The extractor run only as deep as ``layers`` need (its modules shared, not copied):
    a relu1_1 panel then costs one convolution per iteration, not the whole net."""
    return FeatureExtractor(extractor.net, extractor.arch, extractor.convention, layers,
                            extractor.precision)


def white_noise(like: torch.Tensor, seed: int) -> torch.Tensor:
    """Seeded uniform noise in [0, 1] shaped like ``like``: the paper's starting point."""
    gen = torch.Generator().manual_seed(seed)
    return torch.rand(like.shape, generator=gen).to(like.device)


# ------------------------------------------------------------------ the figure


def figure(photo: torch.Tensor, painting: torch.Tensor, panels: list[Panel],
           pictures: dict[int, torch.Tensor], notes: dict[int, str]) -> torch.Tensor:
    """The labelled figure: a row per kind, its input first, then its panels in order; a
    panel without a picture yet is left light grey."""
    rows = []
    for row, source, name in (("content", photo, "photo"), ("style", painting, "painting")):
        tiles = [I.caption(source.cpu(), name, size=LABEL_SIZE)]
        for i, panel in enumerate(panels):
            if panel.row != row:
                continue
            picture = pictures.get(i)
            if picture is None:
                picture = torch.full_like(source.cpu(), UNREACHED)
            label = panel.label + (f" ({notes[i]})" if i in notes else "")
            tiles.append(I.caption(picture.cpu(), label, size=LABEL_SIZE))
        rows.append(tiles)
    columns = max(len(r) for r in rows)
    tiles = [t for r in rows for t in r + [torch.ones(1, 3, 1, 1)] * (columns - len(r))]
    return I.montage(tiles, columns, gap=4)


def with_figure_previews(callback: Optional[Callback],
                         compose: Callable[[torch.Tensor], torch.Tensor]) -> Optional[Callback]:
    """The caller's callback, its preview pictures replaced by the whole figure so far (the
    current panel in place), so snapshots and previews show the figure, not one panel."""
    if callback is None:
        return None

    def relay(event: Progress) -> None:
        if event.image is not None:
            event = dataclasses.replace(event, image=compose(event.image))
        callback(event)

    return relay


# ------------------------------------------------------------------ the whole run


def reconstruct(photo: I.ImageLike, painting: I.ImageLike,
                config: ReconstructConfig = ReconstructConfig(),
                callback: Optional[Callback] = None, cancel: Optional[threading.Event] = None,
                preview_every: int = 0) -> Reconstruction:
    """Gatys et al.'s Figure 1 for ``photo`` and ``painting`` (see the module's docstring).

    One progress count over all panels (``iterations`` × number of panels). When cancelled,
    raises Cancelled whose ``partial`` is the figure so far: the finished panels and the one
    being optimised, the rest left grey (DivergedError's ``last_good`` likewise).
    """
    cfg = config
    device = pick_device(cfg.device)
    photo = I.resize(I.load_image(photo)[:1], long_side=cfg.size).to(device)
    painting = I.resize(I.load_image(painting)[:1], long_side=cfg.size).to(device)
    panels = panels_of(cfg)
    deepest = tuple(sorted(set(cfg.content_layers) | set(cfg.style_layers),
                           key=lambda name: layer_index(get_net(cfg.model).arch, name)))
    extractor = build_extractor(NetSpec(cfg.model, cfg.weights, cfg.pooling), deepest, device,
                                cfg.precision)
    result = Reconstruction(torch.empty(0))
    pictures: dict[int, torch.Tensor] = {}
    notes: dict[int, str] = {}
    current = {"index": 0}

    def compose(picture: torch.Tensor) -> torch.Tensor:
        return figure(photo, painting, panels, {**pictures, current["index"]: picture}, notes)

    run = Tracker("reconstruct", cfg.iterations * len(panels),
                  with_figure_previews(callback, compose), cancel, preview_every)
    for i, panel in enumerate(panels):
        current["index"] = i
        try:
            picture, record = reconstruct_panel(extractor, photo, painting, panel, cfg, run)
        except Cancelled as exc:
            notes[i] = "stopped"
            partial = compose(exc.partial) if exc.partial is not None else compose(
                white_noise(photo if panel.row == "content" else painting, cfg.seed))
            raise Cancelled(exc.message, exc.hint, partial=partial) from exc
        except DivergedError as exc:  # the figure with the panel's last good picture
            notes[i] = "diverged"
            raise DivergedError(exc.message, exc.hint,
                                last_good=compose(exc.last_good)) from exc
        pictures[i] = picture
        result.panels.append(picture.cpu())
        result.records.append(record)
    result.picture = figure(photo, painting, panels, pictures, notes)
    return result


def reconstruct_panel(extractor: FeatureExtractor, photo: torch.Tensor, painting: torch.Tensor,
                      panel: Panel, cfg: ReconstructConfig,
                      run: Tracker) -> tuple[torch.Tensor, dict]:
    """One panel: white noise optimised against its one objective; its picture and record."""
    started = time.perf_counter()
    net = truncated(extractor, panel.layers)
    if panel.row == "content":
        target, loss_fn = photo, content_objective(net, photo, panel.layers[0])
    else:
        target, loss_fn = painting, style_objective(net, painting, panel.layers)
    noise = white_noise(target, cfg.seed)
    with torch.no_grad():
        start_loss = loss_fn(noise)[0].item()
    picture = optimize(noise, loss_fn, cfg.iterations, run, panel.label)
    with torch.no_grad():
        final_loss = loss_fn(picture)[0].item()
    return picture, {"row": panel.row, "layers": list(panel.layers), "label": panel.label,
                     "start_loss": float(f"{start_loss:.6g}"),
                     "final_loss": float(f"{final_loss:.6g}"),
                     "iterations": cfg.iterations,
                     "seconds": round(time.perf_counter() - started, 2)}
