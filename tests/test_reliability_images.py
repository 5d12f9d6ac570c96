"""Reliability checklist, image input and output metadata: IMG-01 … IMG-17, OUT-06, F-01, F-02.

Each test's name starts with its checklist ID. Fixtures are generated here (Pillow, numpy,
struct, zlib); exit codes are checked by running the CLI in a subprocess, with the tiny
random-init network and tiny sizes for the one job that runs. Cases already covered in
tests/test_image.py are referenced, not repeated.
"""
from __future__ import annotations

import io
import os
import pty
import resource
import struct
import subprocess
import sys
import threading
import warnings
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import GifImagePlugin, Image, ImageCms, ImageFile, features

from painterly import image as I
from painterly.errors import ConfigError, ImageTooLargeError, InputImageError

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "fuzz" / "corpus"
JOB = ["--model", "tiny", "--size", "48", "--min-size", "48", "--iterations", "2",
       "--precision", "fp32", "-q"]


# ------------------------------------------------------------------ helpers


def _cli(*args, cwd=None, stdin=None, input=None, python_flags=()):
    return subprocess.run([sys.executable, *python_flags, "-m", "painterly", *map(str, args)],
                          cwd=cwd, stdin=stdin, input=input, capture_output=True, timeout=300)


def _friendly(result, code: int, *needles: str) -> str:
    err = result.stderr.decode()
    assert result.returncode == code, err
    lines = [line for line in err.splitlines() if line.startswith("painterly: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "; " in lines[0]  # a hint follows the message
    return lines[0]


def _chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def _png_header_only(w: int, h: int) -> bytes:
    """A ~60-byte PNG that declares w×h (the checklist's bomb recipe)."""
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(b""))
            + _chunk(b"IEND", b""))


def _encode(img: Image.Image, fmt: str, **kw) -> bytes:
    buf = io.BytesIO()
    img.save(buf, fmt, **kw)
    return buf.getvalue()


def _photo(w=64, h=48) -> Image.Image:
    y, x = np.indices((h, w))
    return Image.fromarray(np.stack([x * 255 // w, y * 255 // h, (x + y) % 256], -1)
                           .astype(np.uint8))


def _assert_picture(t: torch.Tensor, shape=None):
    assert t.dtype == torch.float32 and t.dim() == 4 and t.shape[:2] == (1, 3)
    assert torch.isfinite(t).all() and t.min() >= 0 and t.max() <= 1
    if shape is not None:
        assert tuple(t.shape[-2:]) == shape


def _no_debris(folder: Path, fixtures=("empty.png",)):
    bad = [p.name for p in folder.iterdir() if p.suffix in (".partial", ".tmp", ".lock")
           or (p.is_file() and p.stat().st_size == 0 and p.name not in fixtures)]
    assert not bad, bad


@pytest.fixture
def style_png(tmp_path):
    path = tmp_path / "style.png"
    _photo().rotate(90, expand=True).resize((64, 48)).save(path)
    return path


# ------------------------------------------------------------------ IMG-01 / IMG-02


def test_img01_header_bomb_exit4_low_rss_no_output(tmp_path, style_png):
    """IMG-01: 60000×60000 declared in ~60 bytes: exit 4 from the header, child RSS < 300 MB."""
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(_png_header_only(60000, 60000))
    out = tmp_path / "out.png"
    # The child's own peak (VmHWM of its program, written at exit): ru_maxrss would also
    # count the pages it shared with this (large, torch-laden) test process before exec.
    peak = tmp_path / "peak.txt"
    child = ("import atexit, sys\n"
             f"atexit.register(lambda: open({str(peak)!r}, 'w').write(next(l for l in "
             "open('/proc/self/status') if l.startswith('VmHWM'))))\n"
             "from painterly.cli import main\nsys.exit(main())")
    result = subprocess.run([sys.executable, "-c", child, "style", str(bomb), str(style_png),
                             "-o", str(out), *JOB], capture_output=True)
    _friendly(result, 4, "3,600,000,000 px; limit is 50,000,000 (--max-input-pixels)")
    peak_mb = int(peak.read_text().split()[1]) / 1024
    assert peak_mb < 300, f"peak RSS {peak_mb:.0f} MB"
    assert not out.exists()
    peak.unlink()
    _no_debris(tmp_path)


def test_img02_pillow_cap_also_holds_and_no_bomb_warning(monkeypatch):
    """IMG-02: between painterly's cap and 2× Pillow's: exit-4 error, never a bare warning.

    Both caps are monkeypatched low, as Pillow's own tests do. Warnings are errors here, so a
    DecompressionBombWarning escaping painterly would fail the test instead of printing.
    """
    data = _encode(Image.new("RGB", (40, 40)), "PNG")  # 1,600 px
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 1,600 is in (1×, 2×] of it
        with pytest.raises(ImageTooLargeError, match="limit is 1,000 .PIL.Image.MAX_IMAGE_PIX"):
            I.load_image(data, max_pixels=10**9)  # painterly's cap raised
        monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10**6)
        with pytest.raises(ImageTooLargeError) as err:
            I.load_image(data, max_pixels=1000)
    assert err.value.exit_code == 4 and "(`max_input_pixels`)" in str(err.value)


def test_img02_process_with_W_error_and_raised_cap(tmp_path, style_png):
    """IMG-02: 100 MP (over Pillow's 89.5 MP, under 2×) with --max-input-pixels raised, -W error."""
    big = tmp_path / "big.png"
    big.write_bytes(_png_header_only(10000, 10000))
    result = _cli("style", big, style_png, "-o", tmp_path / "o.png", "--max-input-pixels",
                  "1000000000", *JOB, python_flags=("-W", "error"))
    _friendly(result, 4, "100,000,000 px", "MAX_IMAGE_PIXELS")
    assert b"DecompressionBombWarning" not in result.stderr


# ------------------------------------------------------------------ IMG-03


def _damaged_files(folder: Path) -> dict[str, Path]:
    jpg = _encode(_photo(256, 192), "JPEG", quality=90)
    png = _encode(_photo(256, 192), "PNG")
    files = {"cut.jpg": jpg[: len(jpg) * 6 // 10], "cut.png": png[: len(png) * 6 // 10],
             "empty.png": b""}
    at = png.index(b"IDAT")
    length = struct.unpack(">I", png[at - 4:at])[0]
    badcrc = bytearray(png)
    badcrc[at + 4 + length] ^= 0xFF  # the IDAT CRC
    files["badcrc.png"] = bytes(badcrc)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    return {name: folder / name for name in files}


@pytest.mark.parametrize("name, what", [("cut.jpg", "truncated"), ("cut.png", "truncated"),
                                        ("badcrc.png", "damaged"), ("empty.png", "empty")])
def test_img03_truncated_refused_then_allowed(tmp_path, caplog, name, what):
    """IMG-03: exit 3 naming --allow-truncated; with it the file loads and warns (not 0 bytes)."""
    path = _damaged_files(tmp_path)[name]
    with pytest.raises(InputImageError) as err:
        I.load_image(path)
    assert err.value.exit_code == 3 and f"image file is {what}" in str(err.value)
    assert str(path) in str(err.value)
    if what == "empty":
        with pytest.raises(InputImageError, match="empty"):
            I.load_image(path, allow_truncated=True)
        return
    assert "pass `allow_truncated`" in str(err.value)  # --allow-truncated on the command line
    with caplog.at_level("WARNING", logger="painterly"):
        t = I.load_image(path, allow_truncated=True)
    _assert_picture(t, (192, 256))
    assert "`allow_truncated`" in caplog.text
    # the readable top rows are the real picture, not fill
    expected = I.load_image(_encode(_photo(256, 192), "PNG"))
    assert (t[..., :8, :] - expected[..., :8, :]).abs().mean() < 0.05


def test_img03_pillow_globals_never_change_even_from_threads(tmp_path):
    """IMG-03: LOAD_TRUNCATED_IMAGES / MAX_IMAGE_PIXELS stay as they were, seen from a 2nd thread."""
    files = _damaged_files(tmp_path)
    before = (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS)
    seen, stop = set(), threading.Event()

    def watch():
        while not stop.is_set():
            seen.add((ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS))

    def load_all():
        for _ in range(5):
            for path in files.values():
                try:
                    I.load_image(path, allow_truncated=True)
                except InputImageError:
                    pass

    watcher = threading.Thread(target=watch)
    loaders = [threading.Thread(target=load_all) for _ in range(2)]
    watcher.start()
    for t in loaders:
        t.start()
    for t in loaders:
        t.join()
    stop.set()
    watcher.join()
    assert seen == {before}
    assert (ImageFile.LOAD_TRUNCATED_IMAGES, Image.MAX_IMAGE_PIXELS) == before


def test_img03_img11_img05_process_flags(tmp_path):
    """IMG-03 / IMG-11 / IMG-05 at process level: exit 3 by default; one tiny job with
    --allow-truncated (content), --upscale-small (an 8×8 style) and --background black."""
    files = _damaged_files(tmp_path)
    small = tmp_path / "small.png"
    Image.new("RGB", (8, 8), (200, 30, 30)).save(small)
    out = tmp_path / "out.png"
    _friendly(_cli("style", files["cut.jpg"], small, "-o", out, *JOB), 3,
              f"image file is truncated: {files['cut.jpg']}", "--allow-truncated")
    _friendly(_cli("style", _encode_to(tmp_path / "ok.png", _photo()), small, "-o", out, *JOB),
              3, "image too small: 8×8 px; minimum side is 32 px")
    assert not out.exists()
    result = _cli("style", files["cut.jpg"], small, "-o", out, "--allow-truncated",
                  "--upscale-small", "--background", "black", *JOB)
    err = result.stderr.decode()
    assert result.returncode == 0, err
    assert "truncated" in err and "--upscale-small" in err
    assert Image.open(out).size == (48, 36)  # the 256×192 content at --size 48
    _friendly(_cli("style", out, small, "-o", tmp_path / "o2.png", "--background", "nocolour",
                   *JOB), 2, "--background")
    _no_debris(tmp_path)


def _encode_to(path: Path, img: Image.Image, **kw) -> Path:
    img.save(path, **kw)
    return path


# ------------------------------------------------------------------ IMG-04


def test_img04_orientation_not_in_output(tmp_path):
    """IMG-04: loading matches exif_transpose for all 8 orientations (test_image.py::
    test_exif_orientation_applied); here: the saved outputs carry no Orientation tag."""
    exif = Image.Exif()
    exif[0x0112] = 6
    path = _encode_to(tmp_path / "o6.jpg", _photo(40, 20), exif=exif.tobytes())
    t = I.load_image(path, min_side=16)
    assert t.shape[-2:] == (40, 20)
    for suffix in (".jpg", ".png", ".webp", ".tif"):
        out = I.save_image(t, tmp_path / f"out{suffix}")
        assert 0x0112 not in Image.open(out).getexif()


# ------------------------------------------------------------------ IMG-05 / IMG-06


@pytest.mark.parametrize("mode", ["RGBA", "LA"])
def test_img05_alpha_composited_over_background(tmp_path, mode):
    """IMG-05: garbage under alpha 0 never shows; --background picks the colour; output has no
    alpha. --keep-alpha is not offered: the networks see RGB only and the result is a new
    picture, so an alpha channel would have to be invented; transparency is flattened instead."""
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., :3] = (255, 0, 255)  # saturated garbage…
    rgba[..., 3] = 0  # …fully transparent
    rgba[:, 20:, 3] = 255
    img = Image.fromarray(rgba, "RGBA").convert(mode)
    path = _encode_to(tmp_path / "a.png", img)
    white = I.load_image(path)
    assert torch.allclose(white[..., :20], torch.ones(1, 3, 40, 20))
    black = I.load_image(path, background="black")
    assert torch.allclose(black[..., :20], torch.zeros(1, 3, 40, 20))
    grey = I.load_image(path, background=(128, 128, 128))
    assert torch.allclose(grey[..., :20], torch.full((1, 3, 40, 20), 128 / 255))
    out = I.save_image(white, tmp_path / "out.png")
    assert Image.open(out).mode == "RGB"
    with pytest.raises(ConfigError):
        I.load_image(path, background="not-a-colour")


def test_img06_palette_trns_and_gif_transparency_without_warnings(tmp_path):
    """IMG-06: P + tRNS bytes and a GIF transparent index go through RGBA, under -W error."""
    p = Image.new("P", (40, 40), 0)
    p.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * 759)
    p.paste(1, (20, 0, 40, 40))
    p.paste(2, (0, 0, 10, 10))
    png = _encode_to(tmp_path / "p.png", p, transparency=bytes([0, 255, 128]))
    gif = _encode_to(tmp_path / "p.gif", p, transparency=0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = I.load_image(png)
        g = I.load_image(gif)
    assert torch.allclose(t[0, :, 20, 15], torch.ones(3))  # index 0: alpha 0 -> white
    assert torch.allclose(t[0, :, 20, 30], torch.tensor([0.0, 1.0, 0.0]))  # opaque green
    assert 0.45 < t[0, 0, 5, 5] < 0.55  # half-transparent blue over white
    assert torch.allclose(g[0, :, 20, 15], torch.ones(3))
    assert torch.allclose(g[0, :, 20, 30], torch.tensor([0.0, 1.0, 0.0]))


# ------------------------------------------------------------------ IMG-07 / IMG-08 / IMG-09

_MODE_FORMATS = [(m, f) for m in ("1", "L", "I", "F", "CMYK", "YCbCr", "LAB", "HSV")
                 for f in ("PNG", "TIFF", "JPEG", None)]


@pytest.mark.parametrize("mode, fmt", _MODE_FORMATS)
def test_img07_colour_mode_matrix(mode, fmt):
    """IMG-07: every mode/format pair Pillow can write gives a sane tensor or a clear exit 3.
    fmt None passes the PIL image itself (HSV has no file format)."""
    img = _photo(40, 40).convert(mode)
    if fmt is not None:
        try:
            data = _encode(img, fmt)
        except (OSError, ValueError, KeyError):
            pytest.skip(f"Pillow can't write {mode} as {fmt}")
    try:
        t = I.load_image(img if fmt is None else data)
    except InputImageError as exc:
        assert exc.exit_code == 3 and f"unsupported colour mode {mode}" in str(exc)
        return
    _assert_picture(t, (40, 40))


def test_img07_unconvertible_mode_is_exit3(monkeypatch):
    """IMG-07: a mode Pillow can't turn into RGB is 'unsupported colour mode X', not ValueError."""
    img = Image.new("L", (40, 40))

    def refuse(self, mode=None, *a, **k):
        raise ValueError(f"conversion from {self.mode} to {mode} not supported")
    monkeypatch.setattr(Image.Image, "convert", refuse)
    with pytest.raises(InputImageError, match="unsupported colour mode L") as err:
        I.pil_to_tensor(img)
    assert err.value.exit_code == 3


def test_img08_sixteen_bit_inputs(tmp_path):
    """IMG-08: a 16-bit grey ramp keeps ≥ 250 levels; I;16B TIFF loads; 16-bit RGB loads (at
    8-bit precision, which the README states)."""
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (40, 1))
    t = I.load_image(_encode(Image.fromarray(ramp), "PNG"))
    assert len(torch.unique(t[0, 0, 0])) >= 250
    big_endian = Image.frombytes("I;16B", (256, 40), ramp.astype(">u2").tobytes())
    tiff = _encode(big_endian, "TIFF")
    assert Image.open(io.BytesIO(tiff)).mode == "I;16B"
    tb = I.load_image(tiff)
    assert len(torch.unique(tb[0, 0, 0])) >= 250
    rgb16 = np.zeros((40, 256, 3), ">u2")
    rgb16[..., 0] = ramp
    raw = b"".join(b"\0" + row.tobytes() for row in rgb16)
    png = (b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 256, 40, 16, 2, 0, 0, 0))
           + _chunk(b"IDAT", zlib.compress(raw)) + _chunk(b"IEND", b""))
    t16 = I.load_image(png)
    _assert_picture(t16, (40, 256))
    assert torch.allclose(t16[0, 0, 0], t[0, 0, 0], atol=1 / 255 + 1e-6)


def test_img09_icc_profiles(tmp_path, caplog):
    """IMG-09: an embedded sRGB profile changes nothing; a corrupt profile warns and loads;
    outputs carry no profile. (A CMYK or Display-P3 ICC can't be built with ImageCms, which
    only creates sRGB/LAB/XYZ, and the checklist allows skipping without a checked-in ICC;
    plain CMYK is covered by test_image.py::test_cmyk_jpeg_converts.)"""
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    plain = I.load_image(_encode(_photo(), "PNG"))
    tagged = I.load_image(_encode(_photo(), "PNG", icc_profile=srgb))
    assert (tagged - plain).abs().max() < 3 / 255
    corrupt = _encode(_photo(), "JPEG", quality=95, icc_profile=b"\0" * 200)
    with caplog.at_level("WARNING", logger="painterly"):
        t = I.load_image(corrupt)
    assert "colour profile" in caplog.text
    _assert_picture(t, (48, 64))
    out = I.save_image(t, tmp_path / "o.jpg")
    assert "icc_profile" not in Image.open(out).info


# ------------------------------------------------------------------ IMG-10


def _gif_with_huge_third_frame() -> bytes:
    frames = [Image.new("P", (40, 40), i) for i in range(3)]
    for f in frames:
        f.putpalette([0, 0, 0, 255, 0, 0, 0, 255, 0] + [0] * 759)
    data = bytearray(_encode(frames[0], "GIF", save_all=True, append_images=frames[1:],
                             disposal=1))
    # walk the blocks to the third image descriptor and make it declare 65535×65535
    pos = 13 + (3 * 2 ** ((data[10] & 7) + 1) if data[10] & 0x80 else 0)
    seen = 0
    while data[pos] != 0x3B:
        if data[pos] == 0x21:  # extension: label, then sub-blocks
            pos += 2
        else:  # image descriptor
            seen += 1
            if seen == 3:
                data[pos + 5:pos + 9] = struct.pack("<HH", 65535, 65535)
                return bytes(data)
            flags = data[pos + 9]
            pos += 10 + (3 * 2 ** ((flags & 7) + 1) if flags & 0x80 else 0) + 1
        while data[pos]:
            pos += data[pos] + 1
        pos += 1
    raise AssertionError("no third frame")


@pytest.mark.parametrize("fmt", ["GIF", "PNG", "WEBP"])
def test_img10_animations_use_frame_0(caplog, fmt):
    """IMG-10: animated GIF / APNG / WebP: frame 0, warning 'using first of 3 frames'; the
    result is one picture [1, 3, H, W] (painterly's batch of one), not a stack of frames."""
    frames = [Image.new("RGB", (40, 40), c) for c in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    data = _encode(frames[0], fmt, save_all=True, append_images=frames[1:],
                   **({"lossless": True} if fmt == "WEBP" else {}))
    with caplog.at_level("WARNING", logger="painterly"):
        t = I.load_image(data)
    assert "animated image: using first of 3 frames" in caplog.text
    assert t.shape == (1, 3, 40, 40)
    assert torch.allclose(t[0, :, 20, 20], torch.tensor([1.0, 0.0, 0.0]), atol=0.02)


def test_img10_bomb_in_later_frame_never_decoded(monkeypatch):
    """IMG-10: frame 2 declares 65535×65535; the loader never seeks to it (a spy on seek)."""
    data = _gif_with_huge_third_frame()
    sought = []
    real_seek = GifImagePlugin.GifImageFile.seek
    monkeypatch.setattr(GifImagePlugin.GifImageFile, "seek",
                        lambda self, frame: (sought.append(frame), real_seek(self, frame))[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = I.load_image(data)
    assert t.shape == (1, 3, 40, 40) and all(f == 0 for f in sought), sought


# ------------------------------------------------------------------ IMG-11 / IMG-12


@pytest.mark.parametrize("side", [1, 8, 15, 31])
def test_img11_too_small(side, caplog):
    """IMG-11: exit 3 'image too small'; with upscale_small it proceeds, warns, short side 32."""
    data = _encode(Image.new("RGB", (side, side), (10, 20, 30)), "PNG")
    with pytest.raises(InputImageError,
                       match=f"image too small: {side}×{side} px; minimum side is 32 px"):
        I.load_image(data)
    with caplog.at_level("WARNING", logger="painterly"):
        t = I.load_image(data, upscale_small=True)
    assert t.shape[-2:] == (32, 32) and "`upscale_small`" in caplog.text


@pytest.mark.parametrize("w, h, ratio", [(20000, 3, 6667), (3, 20000, 6667), (1, 100000, 100000)])
def test_img12_extreme_aspect_refused(w, h, ratio):
    """IMG-12: exit 3 'aspect ratio N:1 exceeds 20:1' (all inside the pixel cap)."""
    data = _encode(Image.new("L", (w, h), 128), "PNG")
    with pytest.raises(InputImageError, match=f"aspect ratio {ratio}:1 .* exceeds 20:1") as err:
        I.load_image(data, upscale_small=True)
    assert err.value.exit_code == 3


def test_img12_pixel_cap_holds_with_a_tiny_side():
    """IMG-12: 1 × 60,000,000 is still over the pixel cap (exit 4); a zero side is exit 3."""
    with pytest.raises(ImageTooLargeError, match="60,000,000 px"):
        I.load_image(_png_header_only(1, 60_000_000))
    with pytest.raises(InputImageError):
        I.load_image(_png_header_only(0, 60_000_000))


# ------------------------------------------------------------------ IMG-13 / IMG-14


def _not_images() -> dict[str, tuple[bytes, str]]:
    zipped = io.BytesIO()
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("a.txt", "hi")
    small = Image.new("RGB", (40, 40))
    return {
        "text.jpg": (b"hello, I am not a picture\n", "text"),
        "zip.png": (zipped.getvalue(), "ZIP"),
        "eps.png": (_encode(small, "EPS"), "EPS"),
        "pdf.png": (_encode(small, "PDF"), "PDF"),
        "fits.png": (b"SIMPLE  =                    T" + b" " * 2850, "FITS"),
        "psd.png": (b"8BPS\x00\x01" + b"\x00" * 6 + struct.pack(">HIIHH", 3, 40, 40, 8, 3), "PSD"),
        "ico.png": (_encode(small, "ICO"), "ICO"),
        "svg.png": (b'<svg xmlns="http://www.w3.org/2000/svg" width="40" height="40"/>', "SVG"),
    }


def test_img13_not_images_and_dangerous_formats(tmp_path, monkeypatch):
    """IMG-13: exit 3 '<path> is not a supported image (detected: X); allowed: PNG, JPEG, …';
    subprocess.Popen fails the test if called (Ghostscript never runs)."""
    def no_popen(*a, **k):
        raise AssertionError(f"subprocess started: {a}")
    monkeypatch.setattr(subprocess, "Popen", no_popen)
    for name, (data, detected) in _not_images().items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(InputImageError) as err:
            I.load_image(path)
        assert err.value.exit_code == 3
        assert f"{path} is not a supported image (detected: {detected})" in str(err.value)
        assert "allowed: PNG, JPEG, WEBP" in str(err.value)


def test_img13_process_eps(tmp_path, style_png):
    """IMG-13 at process level: an EPS renamed .png."""
    eps = tmp_path / "x.png"
    eps.write_bytes(_not_images()["eps.png"][0])
    _friendly(_cli("style", eps, style_png, "-o", tmp_path / "o.png", *JOB), 3,
              "(detected: EPS)", "allowed: PNG")


def test_img14_heic_needs_extra_and_avif(tmp_path, monkeypatch):
    """IMG-14: HEIC without pillow-heif names the extra; AVIF loads where Pillow has it."""
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64
    monkeypatch.setitem(sys.modules, "pillow_heif", None)  # not installed, whatever the venv has
    with pytest.raises(InputImageError,
                       match=r"HEIC needs the optional extra: pip install painterly\[heif\]"):
        I.load_image(heic)
    avif = b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00avifmif1miaf" + b"\x00" * 64
    if not features.check("avif"):
        with pytest.raises(InputImageError, match="AVIF"):
            I.load_image(avif)
        return
    data = _encode(Image.new("RGB", (40, 40), (255, 0, 0)), "AVIF", quality=90)
    t = I.load_image(data)
    assert t[0, 0].mean() > 0.9 and t[0, 1].mean() < 0.1


def test_img14_process_heic(tmp_path, style_png):
    """IMG-14 at process level (skipped where pillow-heif is installed)."""
    try:
        import pillow_heif  # noqa: F401
        pytest.skip("pillow-heif is installed")
    except ImportError:
        pass
    heic = tmp_path / "p.heic"
    heic.write_bytes(b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + b"\x00" * 64)
    _friendly(_cli("style", heic, style_png, "-o", tmp_path / "o.png", *JOB), 3,
              "pip install painterly[heif]")


# ------------------------------------------------------------------ IMG-15


def test_img15_valid_unusual_paths_load(tmp_path):
    """IMG-15: Unicode folder and name, spaces, a leading '-', a 240-char name, a symlink."""
    (tmp_path / "日本語").mkdir()
    names = ["日本語/é🎨.png", "with space.png", "-dash.png", "x" * 236 + ".png"]
    for name in names:
        _photo(40, 40).save(tmp_path / name)
        _assert_picture(I.load_image(tmp_path / name), (40, 40))
    (tmp_path / "link.png").symlink_to(tmp_path / "with space.png")
    _assert_picture(I.load_image(tmp_path / "link.png"), (40, 40))


def test_img15_dash_name_after_double_dash(tmp_path):
    """IMG-15 at process level: '-dash.png' after '--' is read as the content picture (the run
    then stops at the missing style, which proves the content loaded)."""
    _photo(40, 40).save(tmp_path / "-dash.png")
    _friendly(_cli("style", "-o", "o.png", *JOB, "--", "-dash.png", "nope.png", cwd=tmp_path),
              3, "no such file: nope.png")


@pytest.mark.parametrize("case, message", [("missing", "no such file"),
                                           ("folder", "no pictures in folder"),
                                           ("mode000", "permission denied")])
def test_img15_path_failures_exit3_naming_path_as_given(tmp_path, monkeypatch, style_png,
                                                        case, message):
    """IMG-15: exit 3 with a precise message naming the path exactly as given (relative)."""
    given = {"missing": "sub/../nope.png", "folder": "./a folder", "mode000": "locked.png"}[case]
    (tmp_path / "sub").mkdir()
    (tmp_path / "a folder").mkdir()
    _photo(40, 40).save(tmp_path / "locked.png")
    os.chmod(tmp_path / "locked.png", 0)
    try:
        if case == "mode000" and os.geteuid() == 0:
            # root reads mode-000 files, so simulate the kernel's answer in-process
            def denied(path, *a, **k):
                raise PermissionError(13, "Permission denied", str(path))
            monkeypatch.chdir(tmp_path)
            monkeypatch.setattr(I, "open", denied, raising=False)
            with pytest.raises(InputImageError) as err:
                I.load_image(given)
            assert str(err.value).startswith(f"{message}: {given};")
            assert err.value.exit_code == 3
            return
        _friendly(_cli("style", given, style_png, "-o", "o.png", *JOB, cwd=tmp_path), 3,
                  f"{message}: {given};")
    finally:
        os.chmod(tmp_path / "locked.png", 0o644)


# ------------------------------------------------------------------ IMG-16


def test_img16_stdin_jpeg_empty_and_tty(tmp_path):
    """IMG-16: a JPEG on stdin loads; empty stdin is exit 3; a terminal is exit 2."""
    jpeg = _encode(_photo(), "JPEG")
    _friendly(_cli("style", "-", "nope.png", "-o", "o.png", *JOB, cwd=tmp_path, input=jpeg), 3,
              "no such file: nope.png")  # stdin read fine; the style is what's missing
    _friendly(_cli("style", "-", "nope.png", "-o", "o.png", *JOB, cwd=tmp_path, input=b""), 3,
              "empty")
    leader, follower = pty.openpty()
    try:
        _friendly(_cli("style", "-", "nope.png", "-o", "o.png", *JOB, cwd=tmp_path,
                       stdin=follower), 2, "refusing to read image from a terminal")
    finally:
        os.close(leader)
        os.close(follower)


def test_img16_stdin_cap_reads_at_most_cap_plus_one(tmp_path):
    """IMG-16: 65 MiB of random bytes with --max-input-bytes=64MiB: exit 4, and the reader
    took at most cap + 1 bytes (plus what the pipe buffers)."""
    cap = 64 * 2**20
    block = os.urandom(2**16)
    proc = subprocess.Popen([sys.executable, "-m", "painterly", "style", "-", "nope.png", "-o",
                             "o.png", "--max-input-bytes=64MiB", *JOB], cwd=tmp_path,
                            stdin=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
    fed = 0

    def feed():
        nonlocal fed
        try:
            while fed < 65 * 2**20:
                fed += os.write(proc.stdin.fileno(), block)
        except (BrokenPipeError, OSError):
            pass
        finally:
            try:
                proc.stdin.close()
            except OSError:
                pass
    writer = threading.Thread(target=feed)
    writer.start()
    err = proc.stderr.read()
    proc.wait(timeout=300)
    writer.join()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, b"", err)
    _friendly(result, 4, "larger than 64 MiB (--max-input-bytes)")
    pipe_buffer = 2**20  # Linux default is 64 KiB; allow for a larger one
    assert fed <= cap + 1 + pipe_buffer, fed


def test_img16_byte_cap_for_files_and_bad_values(tmp_path):
    """IMG-16 (files too): a file over --max-input-bytes is refused from its size; bad values
    of the flag are usage errors."""
    path = _encode_to(tmp_path / "p.png", _photo())
    with pytest.raises(ImageTooLargeError, match="larger than 100 bytes"):
        I.load_image(path, max_bytes=100)
    assert I.parse_bytes("64MiB") == 64 * 2**20 and I.parse_bytes("1.5k") == 1500
    for bad in ("", "lots", "-5", "0", "3 parsecs"):
        with pytest.raises(ConfigError):
            I.parse_bytes(bad)


# ------------------------------------------------------------------ IMG-17


def test_img17_large_jpeg_decoded_reduced(tmp_path):
    """IMG-17: 8000×6000 JPEG with a working size of 1024: decoded via draft(); the loading
    child's peak RSS grows by ≤ 4× the working-size float bytes + a constant; long side 1024."""
    big = Image.new("RGB", (8000, 6000), (90, 140, 200))
    big.paste((250, 200, 10), (1000, 1000, 5000, 4000))
    big.save(tmp_path / "big.jpg", quality=70)
    del big
    script = (
        "import resource, sys, torch\n"
        "from painterly import image as I\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "t = I.resize(I.load_image(sys.argv[1], work_size=1024), long_side=1024)\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(tuple(t.shape), (after - before) * 1024)\n")
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "big.jpg")],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    shape, grown = out.stdout.rsplit(")", 1)
    assert shape.strip() + ")" == "(1, 3, 768, 1024)"
    working = 1024 * 768 * 3 * 4
    assert int(grown) <= 4 * working + 100 * 2**20, f"grew {int(grown) / 2**20:.0f} MiB"


def test_img17_draft_keeps_enough_resolution(tmp_path):
    """IMG-17: draft never goes below the working size, and small JPEGs are untouched."""
    path = _encode_to(tmp_path / "p.jpg", _photo(2000, 1500), quality=90)
    t = I.load_image(path, work_size=300)
    assert min(t.shape[-2:]) >= 225 and max(t.shape[-2:]) >= 300
    assert max(t.shape[-2:]) < 2000  # reduced scale was used
    assert I.load_image(path, work_size=1500).shape[-2:] == (1500, 2000)


# ------------------------------------------------------------------ OUT-06


def test_out06_outputs_carry_no_exif_gps_comment_or_profile(tmp_path):
    """OUT-06: JPEG with GPS EXIF, an ICC profile and a comment in; .jpg/.png out have none of
    them. The RGBA input is composited (the working picture is always RGB)."""
    exif = Image.Exif()
    exif[0x0110] = "SecretCam"  # Model
    exif.get_ifd(0x8825)[2] = (51.0, 28.0, 38.0)  # GPSLatitude
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    src = _encode_to(tmp_path / "in.jpg", _photo(), exif=exif, icc_profile=srgb,
                     comment=b"my house")
    assert Image.open(src).getexif().get_ifd(0x8825)  # the fixture really has GPS
    rgba = _photo().convert("RGBA")
    rgba.putalpha(128)
    for source in (src, _encode_to(tmp_path / "rgba.png", rgba)):
        t = I.load_image(source)
        for suffix in (".jpg", ".png", ".webp"):
            out = I.save_image(t, tmp_path / f"out{suffix}")
            with Image.open(out) as im:
                assert im.mode == "RGB"
                assert len(im.getexif()) == 0
                assert not {"exif", "comment", "icc_profile"} & set(im.info), im.info


# ------------------------------------------------------------------ F-01 / F-02

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

_side = st.integers(1, 300)
_shape = st.one_of(st.tuples(_side, _side),
                   st.tuples(_side, _side, st.integers(1, 4)))


@settings(max_examples=200, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
@given(array=hnp.arrays(st.sampled_from([np.uint8, np.uint16, np.int32, np.float32]), _shape),
       fmt=st.sampled_from(["PNG", "TIFF", "WEBP", "JPEG"]))
def test_f01_property_any_saved_array_loads_or_input_error(array, fmt):
    """F-01: arrays of u8/u16/i32/f32, shapes (h,w) and (h,w,1..4), sides 1..300, saved by
    Pillow where it can; load_image gives a finite float32 [1,3,H,W] in [0,1] within the
    limits, or InputImageError / ImageTooLargeError. (painterly's loader is
    painterly.image.load_image; the checklist's 'painterly.io' is this module.)"""
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[..., 0]
    try:
        pil = Image.fromarray(array)
        data = _encode(pil, fmt)
    except (TypeError, ValueError, OSError, KeyError):
        return  # Pillow can't represent or write this combination: nothing to load
    try:
        t = I.load_image(data, max_pixels=50_000)
    except (InputImageError, ImageTooLargeError):
        return
    _assert_picture(t)
    h, w = t.shape[-2:]
    assert h * w <= 50_000 and min(h, w) >= I.MIN_SIDE


_CORPUS_FILES = sorted(p for p in CORPUS.iterdir() if p.is_file()) if CORPUS.is_dir() else []


@pytest.mark.parametrize("path", _CORPUS_FILES, ids=lambda p: p.name)
def test_f02_fuzz_corpus_replay(path):
    """F-02: every fuzz corpus file (seeds and crash regressions) loads or raises an input
    error, with the harness's own check."""
    sys.path.insert(0, str(ROOT / "fuzz"))
    try:
        from fuzz_load_image import fuzz_load_image
    finally:
        sys.path.pop(0)
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        fuzz_load_image(path.read_bytes())


def test_f02_corpus_is_small_and_has_the_seed_kinds():
    """F-02: the corpus stays a few KB and covers the formats, truncation and a bomb header."""
    names = {p.name for p in _CORPUS_FILES}
    assert {"rgb.png", "rgb.jpg", "rgb.gif", "rgb.webp", "rgb.bmp", "rgb.tif", "cut.jpg",
            "cut.png", "bomb.png"} <= names
    assert sum(p.stat().st_size for p in _CORPUS_FILES) < 64 * 1024
