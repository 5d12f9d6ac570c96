"""What an ascent maximises: named layers or channels of a net, weighted, optionally guided.

``"relu4_3"`` or ``"relu4_2:37"`` (one channel) become terms; ``make_objective`` turns
terms into a function of a picture tile that DeepDream (and feature visualisation) ascend.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable, Optional

import torch

from . import image as I
from .errors import ConfigError
from .features import FeatureExtractor
from .nets import layer_index, layer_table

Objective = Callable[[torch.Tensor], torch.Tensor]


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
    strides = {t.layer: layer_table(extractor.arch)[layer_index(extractor.arch, t.layer)].stride
               for t in terms}
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
