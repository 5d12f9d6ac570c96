"""painterly's built-in styles: five public-domain paintings shipped with the package, usable
by name wherever a painting goes (``painterly fast photo.jpg --style starry-night``).

Each is a JPEG reduced to 512 px on the long side, beside ``provenance.json`` (title,
painter, year, source, licence). Only paintings in the public domain are shipped; the
photographs and Woman with a Hat (Matisse) never are.

    names()        the names, in a fixed order
    path(name)     the picture's file (ConfigError listing the names for an unknown one)
    describe()     every style's provenance record
"""
from __future__ import annotations

import functools
import json
from pathlib import Path

from ..errors import ConfigError

FOLDER = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def _records() -> dict[str, dict[str, str]]:
    with open(FOLDER / "provenance.json", encoding="utf-8") as f:
        return json.load(f)["styles"]


def names() -> tuple[str, ...]:
    """The built-in styles' names, as the command line and the web app take them."""
    return tuple(_records())


def describe() -> dict[str, dict[str, str]]:
    """name → {file, title, painter, year, source, licence}."""
    return {name: dict(record) for name, record in _records().items()}


def path(name: str) -> Path:
    """The file of the built-in style ``name``."""
    records = _records()
    if name not in records:
        raise ConfigError(f"no built-in style {name!r}",
                          "choose one of " + ", ".join(records) + " ('painterly styles' lists them)")
    return FOLDER / records[name]["file"]


def label(name: str) -> str:
    """A caption: ``starry-night: The Starry Night, Vincent van Gogh, 1889``."""
    record = _records()[name]
    return f"{name}: {record['title']}, {record['painter']}, {record['year']}"
