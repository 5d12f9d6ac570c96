"""Fuzz painterly's picture loader (checklist F-02), modelled on Pillow's fuzz_pillow.py.

Contract: for any bytes, ``load_image`` returns a finite float32 [1, 3, H, W] tensor in [0, 1],
or raises InputImageError / ImageTooLargeError. Anything else is a crash.

With atheris (``pip install painterly[fuzz]``; coverage-guided)::

    python fuzz/fuzz_load_image.py fuzz/corpus -max_total_time=600 -rss_limit_mb=2048 -timeout=10

Without atheris, the same harness runs as a plain random-mutation loop over the corpus::

    python fuzz/fuzz_load_image.py --seconds 600 [--crashes DIR]

Crash inputs belong in fuzz/corpus/ (as regressions); tests/test_reliability_images.py replays
every corpus file in the normal test suite.
"""
from __future__ import annotations

import argparse
import hashlib
import random
import sys
import time
import traceback
import warnings
from pathlib import Path

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"
MAX_PIXELS = 4_000_000  # keeps each input fast; the limit itself is tested elsewhere


def fuzz_load_image(data: bytes) -> None:
    """One input: load it, and check the outcome. Raises on a contract violation."""
    import torch
    from painterly.errors import ImageTooLargeError, InputImageError
    from painterly.image import load_image

    try:
        tensor = load_image(bytes(data), max_pixels=MAX_PIXELS, min_side=1)
    except (InputImageError, ImageTooLargeError):
        return
    assert tensor.dtype == torch.float32 and tensor.dim() == 4, (tensor.dtype, tensor.shape)
    assert tensor.shape[0] == 1 and tensor.shape[1] == 3, tensor.shape
    assert torch.isfinite(tensor).all() and tensor.min() >= 0 and tensor.max() <= 1


def _setup() -> None:
    # As Pillow's harness does: a decompression-bomb warning must never pass silently (this
    # process's own filters; painterly itself never changes them).
    from PIL import Image
    warnings.simplefilter("error", Image.DecompressionBombWarning)
    import logging
    logging.disable(logging.WARNING)  # "animated image" and the like: not interesting here


def _mutate(data: bytes, rng: random.Random, corpus: list[bytes]) -> bytes:
    buf = bytearray(data)
    for _ in range(rng.choice((1, 1, 2, 4, 8))):
        op = rng.randrange(7)
        if op == 0 and buf:  # flip bits
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:  # random byte
            buf[rng.randrange(len(buf))] = rng.randrange(256)
        elif op == 2 and buf:  # truncate
            del buf[rng.randrange(len(buf)):]
        elif op == 3 and buf:  # interesting 16/32-bit value at a random spot
            i = rng.randrange(len(buf))
            value = rng.choice((0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0xFFFFFFFF))
            buf[i:i + 4] = value.to_bytes(4, rng.choice(("big", "little")))
        elif op == 4 and buf:  # duplicate a slice
            i = rng.randrange(len(buf))
            j = min(len(buf), i + rng.randrange(1, 64))
            buf[i:i] = buf[i:j]
        elif op == 5 and buf:  # delete a slice
            i = rng.randrange(len(buf))
            del buf[i:i + rng.randrange(1, 64)]
        elif op == 6 and corpus:  # splice with another corpus file
            other = rng.choice(corpus)
            i = rng.randrange(len(buf) + 1)
            buf[i:] = other[rng.randrange(len(other) + 1):]
    return bytes(buf)


def random_loop(seconds: float, seed: int, crashes: Path) -> int:
    """Mutation fuzzing without atheris: returns the number of crashes found."""
    _setup()
    corpus = [p.read_bytes() for p in sorted(CORPUS.iterdir()) if p.is_file()]
    rng = random.Random(seed)
    deadline = time.monotonic() + seconds
    runs = found = 0
    seen: set[str] = set()
    while time.monotonic() < deadline:
        data = _mutate(rng.choice(corpus), rng, corpus)
        runs += 1
        try:
            fuzz_load_image(data)
        except Exception as exc:  # noqa: BLE001 - a crash is what we look for
            key = f"{type(exc).__name__}:{traceback.extract_tb(exc.__traceback__)[-1][:3]}"
            if key not in seen:
                seen.add(key)
                found += 1
                crashes.mkdir(parents=True, exist_ok=True)
                path = crashes / f"crash-{hashlib.sha1(data).hexdigest()[:16]}"
                path.write_bytes(data)
                print(f"CRASH {path}: {type(exc).__name__}: {exc}", flush=True)
                traceback.print_exc()
        if runs % 2000 == 0:
            print(f"#{runs} runs, {found} crashes", flush=True)
    print(f"done: {runs} runs in {seconds:.0f} s, {found} distinct crashes", flush=True)
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, help="plain random loop for this long")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--crashes", type=Path, default=HERE / "crashes")
    args, rest = parser.parse_known_args()
    try:
        import atheris
    except ImportError:
        atheris = None
    if args.seconds is not None or atheris is None:
        return 1 if random_loop(args.seconds or 600, args.seed, args.crashes) else 0
    import numpy  # noqa: F401  (big and not under test: imported before instrumenting)
    import torch  # noqa: F401
    with atheris.instrument_imports(include=["PIL", "painterly"]):
        import PIL.Image  # noqa: F401  (instrumented for coverage)
        import painterly.image  # noqa: F401
    _setup()
    atheris.Setup([sys.argv[0], *rest], fuzz_load_image)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    sys.exit(main())
