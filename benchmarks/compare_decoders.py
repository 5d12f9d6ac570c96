"""Compare fast-style decoders on pairs that are not the benchmark's, to choose among them.

    PAINTERLY_WEIGHTS_DIR=../shared/weights python benchmarks/compare_decoders.py \\
        shipped run/decoder.safetensors [--whiten 0.5] [--pairs 24]

For each decoder ('shipped' is painterly's own): the mean style and content distance
(painterly/quality.py) and the style distance at each layer, over photo × painting pairs
drawn at fixed steps from the training corpora (../shared/datasets), each at its own size
(≈224 px). The decoders saw these pictures in training, as random crops, so the pairs are not
held out; but they are not bench_fast's pictures, so choosing on them does not tune the
decoder to the benchmark, which is then run once on the choice.
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import torch

from painterly.corpus import load_pictures
from painterly.fast import FastConfig, FastStylizer
from painterly.features import CONTENT_LAYER, STYLE_LAYERS
from painterly.quality import layer_distances, reference_extractor

DATASETS = Path(__file__).resolve().parents[2] / "shared" / "datasets"


def pick(pictures: list, n: int, offset: int) -> list[torch.Tensor]:
    """n pictures at a fixed step through the corpus, starting at ``offset``."""
    step = max(1, len(pictures) // n)
    return [pictures[(offset + i * step) % len(pictures)].float().unsqueeze(0) / 255
            for i in range(n)]


def score(stylizer, photos, paintings, ref) -> dict[str, float]:
    """Mean distances over the pairs: 'style', 'content' and one per style layer."""
    each = [layer_distances(stylizer(p, s), p, s, ref) for p, s in zip(photos, paintings)]
    mean = {k: statistics.mean(e[k] for e in each) for k in each[0]}
    return {"style": statistics.mean(mean[k] for k in STYLE_LAYERS),
            "content": mean[CONTENT_LAYER], **{k: mean[k] for k in STYLE_LAYERS}}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("decoders", nargs="+", help="decoder files, or 'shipped'")
    parser.add_argument("--photos", default=str(DATASETS / "photos-imagenette-6k.tar"))
    parser.add_argument("--paintings", default=str(DATASETS / "paintings-wikiart-6k.tar"))
    parser.add_argument("--pairs", type=int, default=24)
    parser.add_argument("--whiten", type=float, default=FastConfig.whiten)
    parser.add_argument("--model", default=FastConfig.model, help="encoder (tiny: for tests)")
    args = parser.parse_args(argv)
    # Offsets 17 and 29: photo i meets a painting of another class than its neighbours'.
    photos = pick(load_pictures(args.photos, 1), args.pairs, 17)
    paintings = pick(load_pictures(args.paintings, 1), args.pairs, 29)
    ref = reference_extractor("tiny" if args.model == "tiny" else "vgg16")
    print("| decoder | style | content | " + " | ".join(STYLE_LAYERS) + " |")
    print("| --- " * (3 + len(STYLE_LAYERS)) + "|")
    for name in args.decoders:
        config = FastConfig(decoder=None if name == "shipped" else name, whiten=args.whiten,
                            model=args.model)
        row = score(FastStylizer(config), photos, paintings, ref)
        print(f"| {name} | " + " | ".join(f"{v:.4f}" for v in row.values()) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
