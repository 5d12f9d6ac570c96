"""``painterly inspect``: what the layers of a network see (activation maps, Zeiler & Fergus
top patches, feature visualisation, Gatys's reconstructions). One module per view."""
from __future__ import annotations

from . import inspect_activations, inspect_features, inspect_patches, inspect_reconstruct
from .common import Parser

VIEWS = (inspect_activations, inspect_patches, inspect_features, inspect_reconstruct)


def add_parsers(sub) -> None:
    p = sub.add_parser("inspect", help="look inside the network: activations, top patches, "
                       "features, reconstructions",
                       description="What the layers of a trained network see.")
    views = p.add_subparsers(dest="view", required=True, parser_class=Parser)
    for view in VIEWS:
        view.add_parser(views)
