"""Gatys et al.'s Figure 1 (``painterly inspect reconstruct``): the whole figure at 256 px
with the real VGG16 on this CPU; the issue's target is ≤ 5 minutes.

    PAINTERLY_WEIGHTS_DIR=../shared/weights python benchmarks/bench_reconstruct.py
    python benchmarks/bench_reconstruct.py --save docs/images/inspect_reconstruct.jpg
    python benchmarks/bench_reconstruct.py --quick     # smoke test: the tiny random net

Prints a markdown table: seconds per panel, the loss at the start (white noise) and at the
end, and the total. Times include the panels' own forward passes for the targets.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from painterly import image as I
from painterly.inspect.reconstruction import ReconstructConfig, reconstruct

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "images"
TARGET_SECONDS = 300


def table(result, total: float) -> str:
    lines = ["| panel | seconds | loss at start | final loss |", "| --- | ---: | ---: | ---: |"]
    for r in result.records:
        lines.append(f"| {r['label']} | {r['seconds']:.1f} | {r['start_loss']:.4g} | "
                     f"{r['final_loss']:.4g} |")
    verdict = "within" if total <= TARGET_SECONDS else "over"
    lines.append(f"| **whole figure** | **{total:.1f}** | | ({verdict} the {TARGET_SECONDS} s "
                 "target) |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", default=str(SHARED / "content" / "tubingen.jpg"))
    parser.add_argument("--painting", default=str(SHARED / "style" / "starry_night.jpg"))
    parser.add_argument("--size", type=int, default=ReconstructConfig.size)
    parser.add_argument("--iterations", type=int, default=ReconstructConfig.iterations)
    parser.add_argument("--quick", action="store_true", help="tiny random net, 64 px, 5 its")
    parser.add_argument("--save", help="also write the figure here (.png or .jpg)")
    args = parser.parse_args(argv)
    if args.quick:
        cfg = ReconstructConfig(model="tiny", precision="fp32", size=64, iterations=5)
    else:
        cfg = ReconstructConfig(size=args.size, iterations=args.iterations)
    started = time.perf_counter()
    result = reconstruct(args.photo, args.painting, cfg)
    total = time.perf_counter() - started
    print(f"reconstruct, {cfg.model} ({cfg.pooling} pooling), {cfg.size} px, "
          f"{cfg.iterations} L-BFGS iterations per panel\n")
    print(table(result, total))
    if args.save:
        I.save_image(result.picture, args.save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
