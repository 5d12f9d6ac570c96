"""Feature visualisation against the issue's targets, with the real VGG16 on this CPU.

    PAINTERLY_WEIGHTS_DIR=../shared/weights python benchmarks/bench_features.py --out /tmp/fb --docs
    python benchmarks/bench_features.py --quick --out /tmp/fb   # smoke test, tiny random net

Targets (issue 15): one unit at the default size ≤ 60 s; a 16-unit grid ≤ 5 minutes. Each case
is one ``visualize`` call with the defaults (the net loaded once before, as a second run in a
session would find it); the time includes the final forward pass and the grid. Prints a
markdown table and writes each picture into ``--out`` (``--docs`` also writes the 16-unit grid's
first two rows as docs/images/inspect_features_relu4_1.jpg).
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import torch

from painterly import image as I
from painterly.inspect.features import FeaturesConfig, visualize

ROOT = Path(__file__).resolve().parents[1]
CAPTION, GAP = 12 + 6, 2  # image.caption's strip and image.montage's gap, pixels
# (name, layer, channels, target seconds)
CASES = (("one unit", "relu4_1", "0", 60), ("one unit, deepest", "relu5_1", "0", 60),
         ("16-unit grid", "relu4_1", "0:16", 300))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="features-bench", help="folder for the pictures")
    ap.add_argument("--quick", action="store_true", help="tiny random net, 48 px, 4 steps")
    ap.add_argument("--docs", action="store_true", help="write the grid into docs/images")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    base = dict(model="tiny", precision="fp32", size=48, steps=4) if args.quick else {}
    visualize(FeaturesConfig(**{**base, "steps": 1, "channels": "0"}))  # load the net once
    load = os.getloadavg()[0]
    rows = []
    for name, layer, channels, target in CASES:
        cfg = FeaturesConfig(**base, layer=layer, channels=channels)
        start = time.perf_counter()
        result = visualize(cfg)
        seconds = time.perf_counter() - start
        path = out / f"features_{layer}_{channels.replace(':', '-')}.png"
        I.save_image(result.picture, path)
        if args.docs and not args.quick and len(result.units) == 16:
            # Its first two rows (channels 0–7): the whole 4×4 grid is over 150 KB as a JPEG.
            two_rows = 2 * (cfg.size + CAPTION) + GAP
            I.save_image(result.picture[..., :two_rows, :],
                         ROOT / "docs/images/inspect_features_relu4_1.jpg")
        mean = sum(u["value"] for u in result.units) / len(result.units)
        rows.append((name, f"{layer}:{channels}", len(result.units), cfg.size, cfg.steps,
                     seconds, mean, target, path))
        print(f"{name}: {seconds:.1f} s", flush=True)  # kept if a later case fails
    print(f"\nfeature visualisation, {'tiny net' if args.quick else 'VGG16 (Caffe weights)'}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"load average at start {load:.1f}\n")
    print("| case | units | tiles | size | steps | seconds | s/step | mean final objective "
          "| target | picture |")
    print("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |")
    for name, units, n, size, steps, seconds, mean, target, path in rows:
        verdict = "ok" if seconds <= target else "OVER"
        print(f"| {name} | {units} | {n} | {size} | {steps} | {seconds:.1f} | "
              f"{seconds / max(steps, 1):.2f} | {mean:.1f} | ≤ {target} s {verdict} | {path} |")


if __name__ == "__main__":
    main()
