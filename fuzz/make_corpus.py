"""Regenerate fuzz/corpus/ (small seed files: a few KB in all). Crash regressions are kept."""
from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

CORPUS = Path(__file__).resolve().parent / "corpus"


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def bomb_png(w: int = 60000, h: int = 60000) -> bytes:
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b""))
            + _chunk(b"IEND", b""))


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def seeds() -> dict[str, bytes]:
    y, x = np.indices((12, 16))
    rgb = Image.fromarray(np.stack([x * 16, y * 20, (x + y) * 8], -1).astype(np.uint8))
    rgba = rgb.copy()
    rgba.putalpha(Image.fromarray((x * 16).astype(np.uint8)))
    out = {
        "rgb.png": _encode(rgb, "PNG"), "rgba.png": _encode(rgba, "PNG"),
        "grey16.png": _encode(Image.fromarray((x * 4000).astype(np.uint16)), "PNG"),
        "palette.png": _encode(rgb.convert("P"), "PNG", transparency=0),
        "rgb.jpg": _encode(rgb, "JPEG", quality=50),
        "cmyk.jpg": _encode(rgb.convert("CMYK"), "JPEG", quality=50),
        "rgb.gif": _encode(rgb.convert("P"), "GIF"),
        "anim.gif": _encode(rgb.convert("P"), "GIF", save_all=True,
                            append_images=[rgb.rotate(90).convert("P")]),
        "rgb.webp": _encode(rgb, "WEBP", quality=50), "rgb.bmp": _encode(rgb, "BMP"),
        "rgb.tif": _encode(rgb, "TIFF"), "float.tif": _encode(rgb.convert("F"), "TIFF"),
        "rgb.ppm": _encode(rgb, "PPM"), "rgb.tga": _encode(rgb, "TGA"),
        "bomb.png": bomb_png(),
    }
    out["cut.jpg"] = out["rgb.jpg"][: len(out["rgb.jpg"]) * 6 // 10]
    out["cut.png"] = out["rgb.png"][: len(out["rgb.png"]) * 6 // 10]
    return out


def main() -> None:
    CORPUS.mkdir(exist_ok=True)
    for name, data in seeds().items():
        (CORPUS / name).write_bytes(data)
    total = sum(p.stat().st_size for p in CORPUS.iterdir())
    print(f"{len(list(CORPUS.iterdir()))} files, {total} bytes in {CORPUS}")


if __name__ == "__main__":
    main()
