"""The README's atlas pictures, from an atlas folder that `painterly inspect top-patches` wrote.

    python benchmarks/atlas_pictures.py /tmp/atlas600 --caption "600 photos of the Imagenette corpus"

For each layer, the 3×3 grids of the ``--channels`` channels whose nine patches have the highest
mean activation (strong, clear detectors; the choice is by this rule, not by eye), side by side
and labelled, as docs/images/inspect_atlas_LAYER.jpg.
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from painterly import image as I

DOCS = Path(__file__).resolve().parents[1] / "docs" / "images"


def strongest(channels: list[dict], n: int) -> list[dict]:
    def mean_value(channel: dict) -> float:
        values = [e["value"] for e in channel["entries"]]
        return sum(values) / max(1, len(values))
    return sorted(channels, key=mean_value, reverse=True)[:n]


def layer_picture(atlas: Path, layer: str, channels: list[dict], caption: str):
    tiles = [I.caption(I.load_image(atlas / c["grid"]), f"{layer} channel {c['channel']}")
             for c in channels]
    return I.caption(I.montage(tiles, len(tiles), gap=8), f"{layer}: top-9 patches of "
                     f"{len(tiles)} channels ({caption})", size=14)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("atlas")
    p.add_argument("--caption", default="photos of the Imagenette corpus")
    p.add_argument("--channels", type=int, default=4)
    p.add_argument("--out", default=str(DOCS))
    p.add_argument("--max-width", type=int, default=1000, help="wider pictures are scaled down")
    args = p.parse_args(argv)
    atlas = Path(args.atlas)
    index = json.loads((atlas / "index.json").read_text())
    for layer, info in index["layers"].items():
        picture = layer_picture(atlas, layer, strongest(info["channels"], args.channels),
                                args.caption)
        if picture.shape[-1] > args.max_width:
            picture = I.resize(picture, size=(round(picture.shape[-2] * args.max_width
                                                    / picture.shape[-1]), args.max_width))
        path = Path(args.out) / f"inspect_atlas_{layer}.jpg"
        I.save_image(picture, path, overwrite=True)
        print(path, tuple(picture.shape[-2:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
