"""Prove that a refactor kept painterly's pixels identical.

Runs the CLI of an older commit and the CLI of the current working tree on the same arguments and
seeds (style, fast and dream, on the real VGG16, the shipped fast decoder and the tiny test net),
then compares the decoded pixels of every output exactly: every picture of a folder run and every
frame of a GIF. File bytes are never compared, since PNG text metadata (versions, timings) may differ.

    . .venv/bin/activate
    python benchmarks/same_pixels.py                      # old side: b68f54e, before the refactor
    python benchmarks/same_pixels.py --before HEAD --keep /tmp/same   # keep sources and outputs

The old side is `git archive <commit> src` unpacked into a scratch folder (no worktree is left
behind) and put first on PYTHONPATH, ahead of the editable install; the new side puts <repo>/src
first. Which `painterly` each side imports is checked before any case runs. Weights come from
PAINTERLY_WEIGHTS_DIR=<repo>/../shared/weights. Prints a markdown table; exit status 1 if any case
differs or any run fails. A few minutes on 2 CPU cores. Needs only the stdlib, numpy and Pillow.
"""
from __future__ import annotations

import argparse
import os
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
PICTURES = {p.name: p for sub in ("content", "style") for p in (SHARED / "images" / sub).glob("*.jpg")}
PHOTOS = ("tubingen.jpg", "hoovertowernight.jpg", "the_scream.jpg")  # the folder case's 3 photos

# (case, command). Bare picture names are looked up in ../shared/images, 'photos' is a folder of
# PHOTOS, and a token starting with 'out' is a path in the side's own output folder.
CASES = [
    ("style vgg16", "style tubingen.jpg starry_night.jpg -o out.png --size 128 --min-size 96 "
                    "--iterations 4 --seed 3 --init noise -q"),
    ("style 2 styles, luminance", "style tubingen.jpg starry_night.jpg the_great_wave.jpg -o out.png "
                                  "--size 96 --iterations 3 --style-weights 0.7,0.3 "
                                  "--preserve-color luminance --seed 4 -q"),
    ("style tiny", "style tubingen.jpg starry_night.jpg -o out.png --model tiny --size 64 "
                   "--iterations 3 --seed 2 -q"),
    ("fast slim", "fast tubingen.jpg starry_night.jpg -o out.png --size 256 -q"),
    ("fast vgg16 AdaIN", "fast tubingen.jpg starry_night.jpg -o out.png --model vgg16 --whiten 0 "
                         "--strength 0.6 --size 200 -q"),
    ("fast folder", "fast photos starry_night.jpg -o out --size 256 -q"),
    ("dream vgg16", "dream tubingen.jpg -o out.png --size 128 --octaves 2 --steps 3 --seed 5 -q"),
    ("dream channel, mean", "dream tubingen.jpg -o out.png --layers relu4_2:37 --objective mean "
                            "--size 96 --octaves 2 --steps 2 --seed 6 -q"),
    ("dream gif", "dream tubingen.jpg -o out.gif --size 64 --octaves 1 --steps 1 --frames 3 "
                  "--seed 7 -q"),
    ("dream tiny", "dream tubingen.jpg -o out.png --model tiny --size 64 --octaves 2 --steps 2 "
                   "--seed 8 -q"),
]


def export_src(commit: str, dest: Path) -> Path:
    """Unpack `commit`'s src/ into dest with git archive; return dest/src."""
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "archive", commit, "src"], cwd=ROOT, check=True,
                             capture_output=True).stdout
    tar = dest / "src.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as t:
        t.extractall(dest, filter="data")
    tar.unlink()
    return dest / "src"


def side_env(src: Path) -> dict[str, str]:
    """The environment of one side: its src/ first on PYTHONPATH, the shared weights."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(src), env.get("PYTHONPATH")]))
    env["PAINTERLY_WEIGHTS_DIR"] = str(SHARED / "weights")
    return env


def check_import(src: Path, env: dict[str, str], scratch: Path) -> None:
    """Fail unless this environment imports painterly from src (not the editable install)."""
    out = subprocess.run([sys.executable, "-c", "import painterly; print(painterly.__file__)"],
                         env=env, cwd=scratch, capture_output=True, text=True)
    where = Path(out.stdout.strip()).resolve() if out.returncode == 0 else None
    if where is None or not where.is_relative_to(src.resolve()):
        sys.exit(f"PYTHONPATH={src} does not import painterly from {src} "
                 f"({where or 'import failed'})\n{out.stderr}")
    print(f"{src}: imports {where}", file=sys.stderr)


def resolve(token: str, out_dir: Path, photos: Path) -> str:
    if token in PICTURES:
        return str(PICTURES[token])
    if token == "photos":
        return str(photos)
    if token.startswith("out"):
        return str(out_dir / token)
    return token


def run_side(command: str, env: dict[str, str], out_dir: Path, photos: Path) -> tuple[float, str | None]:
    """Run `python -m painterly <command>` into out_dir; (seconds, error or None)."""
    out_dir.mkdir(parents=True)
    argv = [resolve(t, out_dir, photos) for t in shlex.split(command)]
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "painterly", *argv], env=env, cwd=out_dir,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if done.returncode:
        return seconds, f"exit {done.returncode}\n{done.stderr}"
    return seconds, None


def frames(path: Path) -> list[np.ndarray]:
    """Decoded pixels of a picture: one array, or one RGBA array per frame of an animation."""
    with Image.open(path) as im:
        if getattr(im, "n_frames", 1) > 1 or im.format == "GIF":
            return [np.asarray(f.convert("RGBA")) for f in ImageSequence.Iterator(im)]
        im.load()
        return [np.asarray(im)]


def compare(old_dir: Path, new_dir: Path) -> tuple[bool, int | None, str]:
    """Compare every output file's pixels; (identical, max abs difference or None, what differs)."""
    old = sorted(p.relative_to(old_dir) for p in old_dir.rglob("*") if p.is_file())
    new = sorted(p.relative_to(new_dir) for p in new_dir.rglob("*") if p.is_file())
    if old != new or not old:
        return False, None, f"output files differ: old {list(map(str, old))}, new {list(map(str, new))}"
    worst, notes = 0, []
    for rel in old:
        a, b = frames(old_dir / rel), frames(new_dir / rel)
        if len(a) != len(b):
            return False, None, f"{rel}: {len(a)} frames old, {len(b)} new"
        for i, (fa, fb) in enumerate(zip(a, b)):
            if fa.shape != fb.shape or fa.dtype != fb.dtype:
                return False, None, f"{rel} frame {i}: {fa.shape} {fa.dtype} old, {fb.shape} {fb.dtype} new"
            diff = np.abs(fa.astype(np.int64) - fb.astype(np.int64))
            if diff.any():
                notes.append(f"{rel} frame {i}: {np.count_nonzero(diff)} of {diff.size} values differ, "
                             f"max {diff.max()}")
            worst = max(worst, int(diff.max()))
    return worst == 0, worst, "; ".join(notes)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", default="b68f54e", help="the old commit (b68f54e)")
    parser.add_argument("--keep", type=Path, help="keep the exported source and all outputs here "
                        "(a new or empty folder); default: a temporary folder, removed")
    args = parser.parse_args()

    commit = subprocess.run(["git", "rev-parse", "--verify", f"{args.before}^{{commit}}"], cwd=ROOT,
                            check=True, capture_output=True, text=True).stdout.strip()
    if args.keep:
        if args.keep.exists() and any(args.keep.iterdir()):
            sys.exit(f"--keep {args.keep} is not empty")
        args.keep.mkdir(parents=True, exist_ok=True)
        work = args.keep.resolve()
    else:
        work = Path(tempfile.mkdtemp(prefix="same_pixels_"))
    try:
        sides = {"old": export_src(commit, work / "old"), "new": ROOT / "src"}
        envs = {name: side_env(src) for name, src in sides.items()}
        for name, src in sides.items():
            check_import(src, envs[name], work)
        photos = work / "photos"
        photos.mkdir()
        for name in PHOTOS:
            shutil.copy(PICTURES[name], photos / name)

        print(f"old: {commit[:10]} (git archive), new: working tree {ROOT / 'src'}\n")
        print("| case | command | identical pixels | max abs difference | seconds old / new |")
        print("|---|---|---|---|---|")
        failed = False
        for i, (case, command) in enumerate(CASES):
            case_dir = work / f"{i:02d}"
            times, errors = {}, {}
            for name in sides:
                times[name], errors[name] = run_side(command, envs[name], case_dir / name, photos)
            if any(errors.values()):
                same, worst, note = False, None, "run failed"
            else:
                same, worst, note = compare(case_dir / "old", case_dir / "new")
            failed |= not same
            print(f"| {case} | `painterly {command}` | {'yes' if same else 'no'} | "
                  f"{'—' if worst is None else worst} | {times['old']:.1f} / {times['new']:.1f} |",
                  flush=True)
            if not same:
                print(f"  {case}: {note}", file=sys.stderr)
            for name, error in errors.items():
                if error:
                    print(f"  {case}, {name} side failed: {error}", file=sys.stderr)
        if args.keep:
            print(f"\noutputs kept in {work}")
        return 1 if failed else 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
