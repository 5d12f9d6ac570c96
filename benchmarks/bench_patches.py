"""Top patches (Zeiler & Fergus) over the shared photo corpus: time and peak memory.

    PAINTERLY_WEIGHTS_DIR=../shared/weights python benchmarks/bench_patches.py --out /tmp/bench_atlas
    python benchmarks/bench_patches.py --limit 64 --out /tmp/atlas64      # a quick look

The issue's target: relu1_1 … relu5_1 of VGG16 (all 1,472 channels) over the 6,000 photos of
photos-imagenette-6k.tar at their 224 px in ≤ 10 minutes on 2 cores, with peak memory ≤ 2 GB.
Runs the job itself (as the command line does: scan, patches, grids, sheets, index, HTML) and
prints a markdown table: pictures, seconds for the scan and for the whole job, pictures per
second, and the process's maximum resident memory (getrusage; includes Python and torch).
"""
from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import torch

from painterly.inspect.patches import TopPatchesConfig
from painterly.jobs import Job, RunOptions, run_job

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "datasets" / "photos-imagenette-6k.tar"


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB


def limited_tar(source: Path, limit: int, folder: Path, every: int = 1) -> Path:
    """``limit`` members of the corpus (every ``every``-th: the tar is sorted by class, so a
    stride samples all classes) as a tar of their own (a quick look)."""
    out = folder / f"photos-{limit}.tar"
    with tarfile.open(source) as src, tarfile.open(out, "w") as dst:
        kept = 0
        for i, member in enumerate(m for m in src if m.isfile()):
            if kept >= limit:
                break
            if i % every == 0:
                dst.addfile(member, src.extractfile(member))
                kept += 1
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--corpus", default=str(CORPUS))
    p.add_argument("--out", default=str(Path(tempfile.gettempdir()) / "bench_atlas"),
                   help="the atlas folder (replaced)")
    p.add_argument("--limit", type=int, default=0, help="only N photos (0 = all)")
    p.add_argument("--every", type=int, default=1,
                   help="with --limit: take every N-th photo (the tar is sorted by class)")
    p.add_argument("--model", default="vgg16")
    args = p.parse_args(argv)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    work = Path(tempfile.mkdtemp())
    corpus = (limited_tar(Path(args.corpus), args.limit, work, args.every) if args.limit
              else args.corpus)
    cfg = TopPatchesConfig(model=args.model)  # relu1_1 … relu5_1, k 9, 224 px, precision auto
    marks = {}

    def watch(event):
        if event.stage != "scan" and "scan" not in marks:
            marks["scan"] = time.perf_counter()
        if event.step % 500 == 0:
            print(f"  {event.step}/{event.total} {event.stage} "
                  f"{time.perf_counter() - started:.0f} s, {peak_rss_mb():.0f} MB", file=sys.stderr)
    started = time.perf_counter()
    outcome = run_job(Job("top-patches", (str(corpus),), cfg, str(out)), RunOptions(watch))
    total = time.perf_counter() - started
    scan = marks.get("scan", time.perf_counter()) - started
    n = outcome.record["pictures"]
    print(f"\nTop patches, {args.model} relu1_1…relu5_1 ({outcome.record['channels']} channels), "
          f"k 9, pictures at 224 px; torch {torch.__version__}, {torch.get_num_threads()} "
          f"threads, {os.cpu_count()} CPUs, load average before/after: see below\n")
    print("| pictures | scan (s) | whole job (s) | pictures/s (scan) | peak RSS (MB) | skipped |")
    print("| --- | --- | --- | --- | --- | --- |")
    print(f"| {n} | {scan:.0f} | {total:.0f} | {n / scan:.1f} | {peak_rss_mb():.0f} | "
          f"{len(outcome.failures)} |")
    print(f"\nload average now: {' '.join(f'{x:.1f}' for x in os.getloadavg())}; atlas: {out}")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
