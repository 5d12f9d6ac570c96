"""Training corpora: every picture of a tar of JPEGs (or a folder) decoded once into memory,
and random crops of them. Pictures are decoded through ``image``, the one door to Pillow."""
from __future__ import annotations

import hashlib
import tarfile
from pathlib import Path

import torch

from .errors import InputImageError
from .image import decode_training_picture

PICTURE_SUFFIXES = (".jpg", ".jpeg", ".png")
PARTS = ("train", "heldout", "all")
HELDOUT_EVERY = 10  # one picture in ten is held out of every training
HELDOUT_MIN = 100   # a smaller folder is all training: a held-out tenth only pays for a corpus


def part_of(name: str) -> str:
    """The part of a corpus a picture belongs to, "train" or "heldout", from its file name
    alone (a hash, so the split is the same in every process and for every reader, and a
    picture stays on its side when pictures are added or removed)."""
    digest = hashlib.sha256(Path(name).name.encode()).digest()
    return "heldout" if int.from_bytes(digest[:4], "big") % HELDOUT_EVERY == 0 else "train"


def load_pictures(source: str, min_side: int, part: str = "train") -> list[torch.Tensor]:
    """Decode every JPEG/PNG of a tar file or folder into uint8 [3, H, W] tensors.

    ``part``: "train" (what every training reads), "heldout" (pictures no training of
    painterly's has read since the split was made: for choosing between models by eye and
    by measures) or "all". A picture whose short side is under ``min_side`` (the crop) is
    scaled up to it, so crops larger than the corpus's small pictures (≈224 px) still see
    every picture. A source of fewer than HELDOUT_MIN pictures is not split."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {PARTS}, not {part!r}")
    path = Path(source)
    if path.is_dir():
        items = ((p.name, p.read_bytes()) for p in sorted(path.iterdir())
                 if p.suffix.lower() in PICTURE_SUFFIXES)
    elif path.is_file():
        items = _tar_members(path)
    else:
        raise InputImageError(f"training pictures not found: {source}",
                              "pass a tar of JPEGs or a folder of pictures")
    items = list(items)
    if part != "all" and len(items) >= HELDOUT_MIN:
        items = [(name, data) for name, data in items if part_of(name) == part]
    pictures = []
    for _name, data in items:
        try:
            pictures.append(decode_training_picture(data, min_side))
        except InputImageError:  # one bad file in a corpus of thousands is skipped, not fatal
            continue
    if not pictures:
        raise InputImageError(f"no usable pictures in {source}", "it needs JPEG or PNG pictures")
    return pictures


def _tar_members(path: Path):
    try:
        with tarfile.open(path) as tar:
            for member in tar:
                if member.isfile() and member.name.lower().endswith(PICTURE_SUFFIXES):
                    yield member.name, tar.extractfile(member).read()
    except tarfile.TarError as exc:
        raise InputImageError(f"cannot read {path}: {exc}", "pass a tar file or a folder") from exc


def random_crops(pictures: list[torch.Tensor], n: int, crop: int,
                 gen: torch.Generator) -> torch.Tensor:
    """n random crops (with random horizontal flips) as float [n, 3, crop, crop] in [0, 1]."""
    out = torch.empty(n, 3, crop, crop)
    for k, i in enumerate(torch.randint(len(pictures), (n,), generator=gen).tolist()):
        pic = pictures[i]
        h, w = pic.shape[-2:]
        y = int(torch.randint(h - crop + 1, (1,), generator=gen))
        x = int(torch.randint(w - crop + 1, (1,), generator=gen))
        patch = pic[:, y: y + crop, x: x + crop]
        if torch.rand((), generator=gen) < 0.5:
            patch = patch.flip(-1)
        out[k] = patch.float() / 255.0
    return out


def min_side(pictures: list[torch.Tensor]) -> int:
    """The shortest side in the corpus: the largest crop every picture can give."""
    return min(min(p.shape[-2:]) for p in pictures)
