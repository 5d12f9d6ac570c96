"""Picture input and output: the only module that touches PIL.

Inside painterly a picture is a float32 tensor [B, 3, H, W] in [0, 1]; no function here
changes its input in place.

Reading untrusted pictures (the IMG cases of the reliability checklist): the file is read into memory
with a byte cap, identified by its magic bytes, sized from its header (before any pixel is
decoded) and only then decoded. Pillow's process-wide settings (``Image.MAX_IMAGE_PIXELS``,
``ImageFile.LOAD_TRUNCATED_IMAGES``) and the warning filters are never changed: painterly opens
pictures through Pillow's format plugins itself, so that the size check is its own, and repairs
truncated files per call (``allow_truncated``) instead of flipping the global switch.
"""
from __future__ import annotations

import io
import logging
import math
import os
import re
import stat
import struct
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence, Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import (Image, ImageCms, ImageColor, ImageDraw, ImageFont, ImageOps, PngImagePlugin,
                 features)

from .errors import ConfigError, ImageTooLargeError, InputImageError, OutputError
from .files import atomic_write

log = logging.getLogger(__name__)

ImageLike = Union[str, os.PathLike, bytes, Image.Image, torch.Tensor, np.ndarray]

# Decoders painterly accepts; others (EPS and PDF run Ghostscript) are never tried.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "PPM", "TGA")
MAX_INPUT_PIXELS = 50_000_000
MAX_INPUT_BYTES = 512 * 2**20
MAX_ASPECT = 20
MIN_SIDE = 32
WHITE = (255, 255, 255)
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")



@dataclass(frozen=True)
class ReadOptions:
    """How input pictures are read: the limits and repairs of :func:`load_image`, as one
    setting every job carries (a front end fills it from its own controls)."""

    max_input_pixels: int = MAX_INPUT_PIXELS   # refuse larger pictures, from their header
    max_input_bytes: int = MAX_INPUT_BYTES     # refuse larger files (or stdin)
    allow_truncated: bool = False              # load what can be read of a damaged file (warns)
    background: tuple[int, int, int] = WHITE   # behind transparent pixels
    upscale_small: bool = False                # enlarge pictures under MIN_SIDE (warns)

    def load(self, source: "ImageLike", work_size: int | None = None) -> torch.Tensor:
        return load_image(source, self.max_input_pixels, max_bytes=self.max_input_bytes,
                          allow_truncated=self.allow_truncated, background=self.background,
                          upscale_small=self.upscale_small, work_size=work_size)


# What Pillow's decoders raise on damaged data (TypeError too: Image.open itself takes it as
# "not this format"; Warning when the caller runs with -W error).
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError,
                  TypeError, zlib.error, Warning)


def load_image(source: ImageLike, max_pixels: int = MAX_INPUT_PIXELS,
               min_side: int = MIN_SIDE, *, max_bytes: int = MAX_INPUT_BYTES,
               allow_truncated: bool = False, background=WHITE, upscale_small: bool = False,
               work_size: int | None = None) -> torch.Tensor:
    """Load a path ('-' = stdin), bytes, PIL image, array or tensor as RGB [1, 3, H, W] in [0, 1].

    Files are checked before decoding: at most ``max_bytes`` are read and at most
    ``max_pixels`` (from the header) decoded. ``allow_truncated`` loads what can be read of a
    cut-off file, with a warning. Transparency is composited over ``background``. Pictures
    with a side under ``min_side`` are refused, or with ``upscale_small`` enlarged (warning).
    ``work_size`` is the long side the caller will shrink the picture to: large JPEGs are then
    decoded at a reduced scale (never below it), which saves memory and time.
    """
    if isinstance(source, torch.Tensor):
        return _check_tensor(source)
    if isinstance(source, np.ndarray):
        return _check_tensor(torch.from_numpy(_array_to_float(source)).permute(2, 0, 1))
    name = "<bytes>" if isinstance(source, (bytes, bytearray)) else str(source)
    if isinstance(source, Image.Image):
        tensor = pil_to_tensor(source, background)
    else:
        tensor = pil_to_tensor(open_image(source, max_pixels, max_bytes=max_bytes,
                                          allow_truncated=allow_truncated,
                                          work_size=work_size), background)
    return _check_shape(tensor, name, min_side, upscale_small)


def _check_shape(tensor: torch.Tensor, name: str, min_side: int,
                 upscale_small: bool) -> torch.Tensor:
    h, w = tensor.shape[-2:]
    if max(h, w) > MAX_ASPECT * min(h, w):
        raise InputImageError(f"aspect ratio {round(max(h, w) / min(h, w))}:1 of {name} "
                              f"({w}×{h} px) exceeds {MAX_ASPECT}:1", "crop the picture")
    if min(h, w) < min_side:
        if not upscale_small:
            raise InputImageError(f"image too small: {w}×{h} px; minimum side is {min_side} px",
                                  "use a larger picture or pass `upscale_small`")
        scale = min_side / min(h, w)
        size = (max(min_side, round(h * scale)), max(min_side, round(w * scale)))
        log.warning("image %s is only %d×%d px; enlarged to %d×%d (`upscale_small`)",
                    name, w, h, size[1], size[0])
        tensor = resize(tensor, size=size)
    return tensor


def open_image(source, max_pixels: int = MAX_INPUT_PIXELS, *, max_bytes: int = MAX_INPUT_BYTES,
               allow_truncated: bool = False, work_size: int | None = None) -> Image.Image:
    """Read, identify, size-check (from the header), decode and upright a picture.

    ``source`` is a path, '-' for stdin, or the file's bytes.
    """
    if isinstance(source, (bytes, bytearray)):
        name, data = "<bytes>", bytes(source)
        if len(data) > max_bytes:
            raise _too_many_bytes(name, max_bytes)
    else:
        name = str(source)
        data = _read_source(name, max_bytes)
    if not data:
        raise InputImageError(f"image file is empty (0 bytes): {name}",
                              "re-export it" if name != "-" else "pipe a picture in")
    formats = _formats_for(data, name)
    image = _identify(data, name, formats)
    _check_pixels(image, name, max_pixels)
    frames = _frame_count(image)
    if frames > 1:
        log.warning("animated image: using first of %d frames (%s)", frames, name)
    if image.format == "PNG":
        damage = _png_damage(data)
        if damage and not allow_truncated:
            raise InputImageError(f"image file is damaged: {name} ({damage})",
                                  "re-export it or pass `allow_truncated`")
        if damage:
            log.warning("image file is damaged: %s (%s); loading it anyway (`allow_truncated`)",
                        name, damage)
    if work_size and image.format == "JPEG" and max(image.size) >= 2 * work_size:
        scale = work_size / max(image.size)
        image.draft(image.mode, (math.ceil(image.width * scale), math.ceil(image.height * scale)))
    try:
        _decode(image, name)
    except _DECODE_ERRORS as exc:
        if not allow_truncated:
            what = "truncated" if "truncat" in str(exc).lower() else "damaged"
            raise InputImageError(f"image file is {what}: {name} ({exc})",
                                  "re-export it or pass `allow_truncated`") from exc
        image = _recover(data, image, name, formats, work_size)
    return _upright(image)


def _decode(image: Image.Image, name: str) -> None:
    try:
        image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageTooLargeError(f"image {name} has a frame too large to "
                                 f"decode safely ({exc})", "shrink the picture") from exc


def _upright(image: Image.Image) -> Image.Image:
    try:
        return ImageOps.exif_transpose(image)
    except Exception as exc:  # a damaged EXIF block only loses the orientation
        log.warning("could not read the picture's EXIF orientation (%s); using it as stored", exc)
        return image


# ---------------------------------------------------------------- reading


def _read_source(name: str, max_bytes: int) -> bytes:
    if name == "-":
        stdin = sys.stdin
        if stdin is None or stdin.isatty():
            raise ConfigError("refusing to read image from a terminal",
                              "pipe a picture in, e.g. painterly style - art.jpg < photo.jpg")
        data = stdin.buffer.read(max_bytes + 1)  # never more than the cap + 1
    else:
        try:
            with open(name, "rb") as f:
                info = os.fstat(f.fileno())
                if stat.S_ISDIR(info.st_mode):
                    raise IsADirectoryError(21, "Is a directory", name)
                if stat.S_ISREG(info.st_mode) and info.st_size > max_bytes:
                    raise _too_many_bytes(name, max_bytes)
                data = f.read(max_bytes + 1)
        except FileNotFoundError:
            raise InputImageError(f"no such file: {name}", "check the path") from None
        except IsADirectoryError:
            raise InputImageError(f"is a directory: {name}", "pass a picture file") from None
        except PermissionError:
            raise InputImageError(f"permission denied: {name}",
                                  "check the file's permissions") from None
        except NotADirectoryError:
            raise InputImageError(f"no such file: {name} (a part of the path is not a folder)",
                                  "check the path") from None
        except OSError as exc:
            raise InputImageError(f"cannot read {name}: {exc.strerror or exc}",
                                  "check the path") from None
    if len(data) > max_bytes:
        raise _too_many_bytes(name, max_bytes)
    return data


def _too_many_bytes(name: str, max_bytes: int) -> ImageTooLargeError:
    return ImageTooLargeError(f"input {name} is larger than {format_bytes(max_bytes)} "
                              "(`max_input_bytes`)", "raise `max_input_bytes` or shrink the picture")


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= size:
            return f"{n / size:g} {unit}"
    return f"{n} bytes"


_BYTE_UNITS = {"": 1, "b": 1, "k": 10**3, "kb": 10**3, "kib": 2**10, "m": 10**6, "mb": 10**6,
               "mib": 2**20, "g": 10**9, "gb": 10**9, "gib": 2**30}


def parse_bytes(text: str) -> int:
    """'64MiB', '1.5GB', '1000' -> a byte count (ConfigError if it isn't one)."""
    found = re.fullmatch(r"\s*(\d+(?:\.\d*)?)\s*([a-zA-Z]*)\s*", str(text))
    unit = found and _BYTE_UNITS.get(found.group(2).lower())
    if not unit or int(float(found.group(1)) * unit) < 1:
        raise ConfigError(f"invalid byte count: {text!r}", "write e.g. 64MiB, 200MB or 1000000")
    return int(float(found.group(1)) * unit)


def parse_color(value) -> tuple[int, int, int]:
    """'white', '#202020', 'rgb(10,20,30)' or an (r, g, b) tuple -> (r, g, b)."""
    if isinstance(value, (tuple, list)) and len(value) == 3:
        if all(isinstance(v, int) and 0 <= v <= 255 for v in value):
            return tuple(value)
    elif isinstance(value, str):
        try:
            return ImageColor.getrgb(value)[:3]
        except ValueError:
            pass
    raise ConfigError(f"invalid colour: {value!r}", "write e.g. white, black or '#80a0c0'")


# ---------------------------------------------------------------- identifying

_MAGIC = (
    (b"\x89PNG\r\n\x1a\n", "PNG"), (b"\xff\xd8\xff", "JPEG"), (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"), (b"BM", "BMP"), (b"II*\x00", "TIFF"), (b"MM\x00*", "TIFF"),
    (b"II+\x00", "TIFF"), (b"MM\x00+", "TIFF"), (b"%!PS", "EPS"), (b"\xc5\xd0\xd3\xc6", "EPS"),
    (b"%PDF", "PDF"), (b"8BPS", "PSD"), (b"\x00\x00\x01\x00", "ICO"), (b"\x00\x00\x02\x00", "CUR"),
    (b"SIMPLE  =", "FITS"), (b"PK\x03\x04", "ZIP"), (b"\x1f\x8b", "GZIP"), (b"icns", "ICNS"),
    (b"\x00\x00\x00\x0cjP  ", "JPEG2000"), (b"\xff\x4f\xff\x51", "JPEG2000"), (b"DDS ", "DDS"),
    (b"qoif", "QOI"), (b"\x76\x2f\x31\x01", "OpenEXR"),
)
_HEIF_BRANDS = {b"heic", b"heix", b"hevc", b"hevx", b"heim", b"heis", b"hevm", b"hevs", b"mif1",
                b"msf1"}


def sniff_format(data: bytes) -> str | None:
    """The format the magic bytes say, whether or not painterly reads it (None: unknown)."""
    for magic, fmt in _MAGIC:
        if data.startswith(magic):
            return fmt
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        size = int.from_bytes(data[:4], "big")
        brands = {data[i:i + 4] for i in range(8, min(max(size, 12), 64, len(data)), 4)}
        if brands & {b"avif", b"avis"}:
            return "AVIF"
        if brands & _HEIF_BRANDS:
            return "HEIC"
        return "MP4/QuickTime"
    if re.match(rb"P[1-7]\s", data[:3]):
        return "PPM"
    head = data[:1024].lstrip().lower()
    if b"<svg" in head:
        return "SVG"
    if head.startswith((b"<?xml", b"<!doctype", b"<html")):
        return "XML/HTML"
    if head and all(32 <= c < 127 or c in b"\t\r\n" for c in head[:256]):
        return "text"
    return None


def supported_formats() -> tuple[str, ...]:
    """ALLOWED_FORMATS plus AVIF where this Pillow build decodes it."""
    return ALLOWED_FORMATS + (("AVIF",) if features.check("avif") else ())


def _formats_for(data: bytes, name: str) -> tuple[str, ...]:
    formats = supported_formats()
    detected = sniff_format(data)
    if detected == "HEIC":
        try:
            import pillow_heif  # optional extra
        except ImportError:
            raise InputImageError(f"{name} is a HEIC picture",
                                  "HEIC needs the optional extra: pip install painterly[heif]") from None
        pillow_heif.register_heif_opener()
        return formats + ("HEIF",)
    if detected == "AVIF" and "AVIF" not in formats:
        raise InputImageError(f"{name} is an AVIF picture and this Pillow can't decode AVIF",
                              "AVIF needs a Pillow built with AVIF: pip install -U pillow")
    if detected is not None and detected not in formats:
        raise InputImageError(f"{name} is not a supported image (detected: {detected})",
                              f"allowed: {', '.join(formats)}")
    return formats


def _register(formats: tuple[str, ...]) -> None:
    """The decoders of ``formats`` only: Image.init() would import all of Pillow's ~50
    plugins, a noticeable part of a one-off command's start."""
    Image.preinit()  # BMP, GIF, JPEG, PPM, PNG
    from PIL import TgaImagePlugin, TiffImagePlugin, WebPImagePlugin  # noqa: F401
    if "AVIF" in formats:
        from PIL import AvifImagePlugin  # noqa: F401
    if any(fmt not in Image.OPEN for fmt in formats):
        Image.init()


def _identify(data: bytes, name: str, formats: tuple[str, ...]) -> Image.Image:
    """Image.open restricted to ``formats``, minus Pillow's global bomb check (ours follows).

    Going through the registered plugins directly means Pillow never warns (and so never
    needs the warning filters changed); ``_check_pixels`` applies both limits instead.
    """
    _register(formats)
    fp = io.BytesIO(data)
    for fmt in formats:
        factory, accept = Image.OPEN.get(fmt, (None, None))
        accepted = factory is not None and (accept is None or accept(data[:16]))
        if not accepted or isinstance(accepted, str):
            continue
        fp.seek(0)
        try:
            return factory(fp, "")
        except (SyntaxError, IndexError, TypeError, struct.error):
            continue  # not this format (as Image.open does)
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ImageTooLargeError(f"image {name} declares a frame too large to decode safely "
                                     f"({exc})", "shrink the picture") from exc
        except _DECODE_ERRORS as exc:
            raise InputImageError(f"image file is damaged: {name} ({exc})",
                                  "re-export it") from exc
    detected = sniff_format(data)
    if detected in formats:
        raise InputImageError(f"image file is truncated or damaged: {name} "
                              f"({detected} header unreadable)", "re-export it")
    raise InputImageError(f"{name} is not a supported image (detected: {detected or 'unknown'})",
                          f"allowed: {', '.join(formats)}")


def _check_pixels(image: Image.Image, name: str, max_pixels: int) -> None:
    """Refuse, from the header, pictures over painterly's cap or Pillow's MAX_IMAGE_PIXELS."""
    w, h = image.size
    pixels = max(1, w) * max(1, h)  # a zero side doesn't make a picture small
    pillow_cap = Image.MAX_IMAGE_PIXELS
    if pixels > max_pixels:
        raise ImageTooLargeError(f"image {name} is {pixels:,} px; limit is {max_pixels:,} "
                                 "(`max_input_pixels`)", "raise it with `max_input_pixels` or "
                                 "shrink the picture")
    if pillow_cap is not None and pixels > pillow_cap:
        raise ImageTooLargeError(f"image {name} is {pixels:,} px; limit is {pillow_cap:,} "
                                 "(PIL.Image.MAX_IMAGE_PIXELS)", "shrink the picture")
    if w < 1 or h < 1:
        raise InputImageError(f"image {name} has no pixels ({w}×{h})", "re-export it")


def _frame_count(image: Image.Image) -> int:
    """How many frames the file declares; counted from headers, never decoding frame 1+."""
    try:
        if not getattr(image, "is_animated", False):
            return 1
        return int(image.n_frames)
    except _DECODE_ERRORS:
        return 2  # a damaged later frame: "more than one"; frame 0 is all painterly uses
    finally:
        try:
            if image.tell() != 0:
                image.seek(0)
        except _DECODE_ERRORS:
            pass  # decoding frame 0 will tell


# ---------------------------------------------------------------- damaged files


def _png_chunks(data: bytes):
    pos = 8
    while pos + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        crc = data[pos + 8 + length:pos + 12 + length]
        yield kind, body, crc
        if kind == b"IEND":
            return
        pos += 12 + length


def _png_damage(data: bytes) -> str | None:
    """Pillow doesn't check IDAT CRCs: a bad one is the first sign of a damaged PNG."""
    for kind, body, crc in _png_chunks(data):
        if len(crc) == 4 and struct.unpack(">I", crc)[0] != zlib.crc32(kind + body):
            return f"bad CRC in {kind.decode('latin-1')!r} chunk"
    return None


def _recover(data: bytes, image: Image.Image, name: str, formats, work_size) -> Image.Image:
    """``allow_truncated``: repair this file's bytes and decode them (no global switch)."""
    if image.format == "JPEG":
        repaired = data + b"\xff\xd9"  # what Pillow's LOAD_TRUNCATED_IMAGES does for JPEG
    elif image.format == "PNG":
        repaired = _repack_png(data)
    else:  # raw-ish formats (BMP, TIFF, PPM, TGA, WEBP): zero-fill the missing bytes
        bytes_per_pixel = len(image.getbands()) * (4 if image.mode in ("I", "F") else 2
                                                   if image.mode.startswith("I;16") else 1)
        repaired = data + bytes(image.width * image.height * bytes_per_pixel)
    try:
        fixed = _identify(repaired, name, formats) if repaired else None
        if fixed is None:
            raise OSError("nothing readable")
        if work_size and fixed.format == "JPEG" and max(fixed.size) >= 2 * work_size:
            scale = work_size / max(fixed.size)
            fixed.draft(fixed.mode, (math.ceil(fixed.width * scale),
                                     math.ceil(fixed.height * scale)))
        _decode(fixed, name)
    except (InputImageError, *_DECODE_ERRORS) as exc:
        raise InputImageError(f"image file is truncated and could not be recovered: {name}",
                              "re-export it") from exc
    log.warning("image file is truncated: %s; loaded what could be read (`allow_truncated`)",
                name)
    return fixed


def _repack_png(data: bytes) -> bytes:
    """A PNG with the readable part of the pixel data, zero-filled, and correct CRCs."""
    ihdr, idat, keep = None, [], []
    for kind, body, _ in _png_chunks(data):
        if kind == b"IHDR":
            ihdr = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind in (b"PLTE", b"tRNS", b"gAMA", b"sRGB", b"cHRM", b"sBIT") and not idat:
            keep.append((kind, body))
    if ihdr is None or len(ihdr) < 13:
        return b""
    w, h, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", ihdr[:13])
    channels = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}.get(colour, 4)
    passes = ([(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2),
               (0, 1, 1, 2)] if interlace else [(0, 0, 1, 1)])
    expected = 0
    for x0, y0, dx, dy in passes:
        pw, ph = -(-(w - x0) // dx) if w > x0 else 0, -(-(h - y0) // dy) if h > y0 else 0
        if pw and ph:
            expected += ph * (1 + -(-(pw * channels * depth) // 8))
    stream, raw = zlib.decompressobj(), bytearray()
    compressed = b"".join(idat)
    for i in range(0, len(compressed), 65536):
        try:
            raw += stream.decompress(compressed[i:i + 65536], max(1, expected - len(raw)))
        except zlib.error:
            break
        if len(raw) >= expected or stream.eof:
            break
    raw = bytes(raw[:expected]) + bytes(max(0, expected - len(raw)))

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (data[:8] + chunk(b"IHDR", ihdr[:13]) + b"".join(chunk(k, b) for k, b in keep)
            + chunk(b"IDAT", zlib.compress(raw, 1)) + chunk(b"IEND", b""))


# ---------------------------------------------------------------- converting


def pil_to_tensor(image: Image.Image, background=WHITE) -> torch.Tensor:
    """Any PIL mode -> sRGB RGB tensor [1, 3, H, W]; alpha composited over ``background``."""
    background = parse_color(background)
    try:
        array = _to_rgb_array(image, background)
    except _DECODE_ERRORS as exc:
        raise InputImageError(f"unsupported colour mode {image.mode}",
                              "convert the picture to RGB first") from exc
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def _to_rgb_array(image: Image.Image, background=WHITE) -> np.ndarray:
    image = _to_srgb(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # 16-bit and 32-bit greys: scale to [0, 1] instead of clipping at 255.
        grey = np.nan_to_num(np.asarray(image, dtype=np.float32), nan=0.0, posinf=0.0,
                             neginf=0.0)
        scale = 65535.0 if image.mode.startswith("I") else max(1.0, float(grey.max()))
        grey = np.clip(grey / scale, 0.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=2)
    if "transparency" in image.info and image.mode in ("P", "L", "RGB", "1"):
        image = image.convert("RGBA")  # tRNS: palette alphas or one transparent colour
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
        backdrop = Image.new("RGBA", image.size, (*background, 255))
        image = Image.alpha_composite(backdrop, image)
    return np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0


def _to_srgb(image: Image.Image) -> Image.Image:
    """Convert pictures with an embedded ICC profile (e.g. CMYK, Adobe RGB) to sRGB."""
    icc = image.info.get("icc_profile")
    if not icc or image.mode not in ("RGB", "CMYK"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc))
        return ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"),
                                         outputMode="RGB")
    except (ImageCms.PyCMSError, OSError):
        log.warning("could not apply the picture's colour profile; using it as sRGB")
        return image


def _array_to_float(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.dtype == np.uint8:
        return array[..., :3].astype(np.float32) / 255.0
    if array.dtype == np.uint16:
        return array[..., :3].astype(np.float32) / 65535.0
    return array[..., :3].astype(np.float32)


def _check_tensor(tensor: torch.Tensor) -> torch.Tensor:
    if tensor.dim() == 3:
        tensor = tensor.unsqueeze(0)
    if tensor.dim() != 4 or tensor.shape[1] != 3:
        raise InputImageError(f"a picture tensor must be [B, 3, H, W]; got {tuple(tensor.shape)}",
                              "pass RGB pictures")
    return torch.nan_to_num(tensor.detach().float(), 0.0, 0.0, 0.0).clamp(0, 1)


def tensor_to_pil(image: torch.Tensor) -> Image.Image:
    array = image.detach()[0].clamp(0, 1).mul(255).round().byte().permute(1, 2, 0).cpu().numpy()
    return Image.fromarray(array, "RGB")


def resize(image: torch.Tensor, long_side: int | None = None,
           size: tuple[int, int] | None = None) -> torch.Tensor:
    """Resize to a long side (keeping the aspect) or to an exact (H, W), antialiased."""
    h, w = image.shape[-2:]
    if size is None:
        scale = long_side / max(h, w)
        size = (max(1, round(h * scale)), max(1, round(w * scale)))
    if tuple(size) == (h, w):
        return image
    out = F.interpolate(image, size=size, mode="bicubic", antialias=True, align_corners=False)
    return out.clamp(0, 1)


def save_image(image: torch.Tensor, path: str | os.PathLike, metadata: dict | None = None,
               overwrite: bool = True) -> Path:
    """Write atomically (temp file in the same folder, then rename). PNG gets text chunks."""
    path = Path(path)
    check_output_path(path, overwrite=overwrite)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".tif": "TIFF", ".tiff": "TIFF"}.get(
        path.suffix.lower(), path.suffix.lower().lstrip(".").upper())
    options = {"quality": 95} if fmt in ("JPEG", "WEBP") else {}
    if fmt == "PNG":
        # zlib level 1, not Pillow's 6: a 1024×768 painting is written in 0.08 s instead of
        # 0.30 s (a quarter of a fast run), for a file 10 % larger (1.45 against 1.32 MB).
        options["compress_level"] = 1
    if fmt == "PNG" and metadata:
        info = PngImagePlugin.PngInfo()
        for key, value in metadata.items():
            info.add_text(str(key), str(value))
        options["pnginfo"] = info
    pil = tensor_to_pil(image)
    atomic_write(path, lambda f: pil.save(f, format=fmt, **options))
    return path


def encode_jpeg(image: torch.Tensor, long_side: int | None = None, quality: int = 85) -> bytes:
    """A picture as JPEG bytes, its long side at most ``long_side`` (a front end's preview)."""
    if long_side and max(image.shape[-2:]) > long_side:
        image = resize(image, long_side)
    buffer = io.BytesIO()
    tensor_to_pil(image).save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def png_text(data: bytes) -> dict[str, str]:
    """The text chunks of a PNG's bytes ({} for any other file); read from the chunks
    without decoding a pixel."""
    if sniff_format(data) != "PNG":
        return {}
    try:
        with Image.open(io.BytesIO(data), formats=("PNG",)) as image:
            # Text before the pixels (where painterly and most programs write it) is read
            # with the header; no pixel is decoded.
            return {str(k): str(v) for k, v in getattr(image, "text", {}).items()}
    except _DECODE_ERRORS:
        return {}


def check_output_path(path: str | os.PathLike, overwrite: bool = False,
                      inputs: tuple = (), suffixes: tuple[str, ...] = OUTPUT_SUFFIXES) -> None:
    """Refuse, before any work, outputs that would lose something or can't be written."""
    path = Path(path)
    if path.suffix.lower() not in suffixes:
        raise OutputError(f"unsupported output type {path.suffix or '(none)'!r} for {path}",
                          f"use one of {', '.join(suffixes)}")
    for source in inputs:
        if isinstance(source, (str, os.PathLike)) and Path(source).exists() and path.exists() \
                and os.path.samefile(source, path):
            raise OutputError(f"output {path} is one of the inputs", "choose another output path")
    if path.is_dir():
        raise OutputError(f"output {path} is a folder", "give a file name, e.g. out.png")
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists", "pass `overwrite` or choose another path")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"folder {folder} does not exist", "create it first")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write to folder {folder}", "check its permissions")


def save_gif(frames: Sequence[torch.Tensor], path: Path, fps: float) -> None:
    """Frames ([1, 3, H, W] in [0, 1]) as a looping GIF, written atomically."""
    pictures = [tensor_to_pil(f) for f in frames]
    if not pictures:
        raise OutputError(f"no frames to write to {path}", "ask for at least one frame")
    first, rest = pictures[0], pictures[1:]
    atomic_write(path, lambda f: first.save(f, format="GIF", save_all=True, append_images=rest,
                                            duration=round(1000 / fps), loop=0))


def frame_pixels(frame: torch.Tensor) -> np.ndarray:
    """A frame as the uint8 [H, W, 3] array video writers take (rounded as saved pictures are)."""
    return np.asarray(tensor_to_pil(frame))


def montage(tiles: Sequence[torch.Tensor], columns: int, gap: int = 2,
            fill: float = 1.0) -> torch.Tensor:
    """Pictures ([1, 3, h, w] or [3, h, w], in [0, 1]) in a grid of ``columns``, row by row,
    ``gap`` pixels of ``fill`` between them; each tile is centred in the largest tile's box."""
    tiles = [t if t.dim() == 4 else t.unsqueeze(0) for t in tiles]
    n_columns = max(1, min(columns, len(tiles)))
    rows = math.ceil(len(tiles) / n_columns)
    h = max(t.shape[-2] for t in tiles)
    w = max(t.shape[-1] for t in tiles)
    out = torch.full((1, 3, rows * h + (rows - 1) * gap, n_columns * w
                      + (n_columns - 1) * gap), fill)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, n_columns)
        y = r * (h + gap) + (h - tile.shape[-2]) // 2
        x = c * (w + gap) + (w - tile.shape[-1]) // 2
        out[..., y: y + tile.shape[-2], x: x + tile.shape[-1]] = tile.detach().float().cpu()
    return out


def caption(picture: torch.Tensor, text: str, size: int = 12, fill: float = 1.0) -> torch.Tensor:
    """``picture`` ([1, 3, H, W]) with a strip of ``text`` (dark, on ``fill``) above it; text
    wider than the picture is set smaller (down to 7 px) rather than cut off."""
    font = ImageFont.load_default(size=size)
    shrunk = size
    while shrunk > 7 and font.getlength(text) > picture.shape[-1] - 6:
        shrunk -= 1
        font = ImageFont.load_default(size=shrunk)
    strip = Image.new("RGB", (picture.shape[-1], size + 6), tuple([round(fill * 255)] * 3))
    ImageDraw.Draw(strip).text((3, 2), text, fill=(20, 20, 20), font=font)
    label = torch.from_numpy(np.asarray(strip).copy()).permute(2, 0, 1).float().div(255)
    return torch.cat([label.unsqueeze(0), picture.detach().float().cpu()], dim=-2)


def decode_training_picture(data: bytes, min_side: int) -> torch.Tensor:
    """A corpus picture (JPEG or PNG bytes) as uint8 [3, H, W]; a picture whose short side is
    under ``min_side`` is scaled up to it. Raises InputImageError for a file that won't decode."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            im = im.convert("RGB")
            if min(im.size) < min_side:
                k = min_side / min(im.size)
                im = im.resize((max(min_side, round(im.width * k)),
                                max(min_side, round(im.height * k))), Image.BICUBIC)
            rgb = np.asarray(im)
    except Exception as exc:  # noqa: BLE001 - Pillow raises many types on junk
        raise InputImageError(f"cannot decode a training picture ({exc})", "skip it") from exc
    return torch.from_numpy(rgb.copy()).permute(2, 0, 1)


# ---------------------------------------------------------------- colour helpers

_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114],
                            [0.596, -0.274, -0.322],
                            [0.211, -0.523, 0.312]])


def rgb_to_yiq(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", _RGB_TO_YIQ.to(image), image)


def yiq_to_rgb(image: torch.Tensor) -> torch.Tensor:
    return torch.einsum("ij,bjhw->bihw", torch.linalg.inv(_RGB_TO_YIQ).to(image), image)


def transfer_luminance(stylised: torch.Tensor, photo: torch.Tensor) -> torch.Tensor:
    """The stylised picture's luminance with the photo's colours (I, Q), as in Gatys et al. 2016."""
    photo = resize(photo, size=tuple(stylised.shape[-2:]))
    yiq = torch.cat([rgb_to_yiq(stylised)[:, :1], rgb_to_yiq(photo)[:, 1:]], dim=1)
    return yiq_to_rgb(yiq).clamp(0, 1)


def match_color(source: torch.Tensor, target: torch.Tensor, eps: float = 1e-5) -> torch.Tensor:
    """Recolour `source` so its pixels' mean and covariance match `target`'s.

    The linear colour transfer of Gatys et al. 2016 ("colour histogram matching"), using
    symmetric matrix square roots (the 'sym' variant, which keeps hues most faithfully).
    """
    return match_color_stats(source, *color_stats([target]), eps=eps)


def color_stats(pictures: list[torch.Tensor], weights: Optional[list[float]] = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """The mean [3, 1] and covariance [3, 3] of the pixels' colours (float64); of several
    pictures, those of their mixture, each picture counting by its weight (default equal)."""
    weights = weights or [1 / len(pictures)] * len(pictures)
    mean = torch.zeros(3, 1, dtype=torch.float64)
    second = torch.zeros(3, 3, dtype=torch.float64)   # E[x xᵀ] of the mixture
    for picture, weight in zip(pictures, weights):
        pixels = picture[0].reshape(3, -1).double()
        mean += weight * pixels.mean(1, keepdim=True)
        second += weight * (pixels @ pixels.T) / pixels.shape[1]
    return mean, second - mean @ mean.T


def match_color_stats(source: torch.Tensor, mean: torch.Tensor, covariance: torch.Tensor,
                      eps: float = 1e-5) -> torch.Tensor:
    """Recolour `source` so its pixels' mean and covariance are ``mean`` and ``covariance``
    (from :func:`color_stats`)."""
    src = source[0].reshape(3, -1).double()
    mu_s = src.mean(1, keepdim=True)
    eye = eps * torch.eye(3, dtype=src.dtype)
    own = torch.cov(src, correction=0)
    transform = _sqrtm(covariance + eye) @ torch.linalg.inv(_sqrtm(own + eye))
    out = transform @ (src - mu_s) + mean
    return out.reshape_as(source[0]).unsqueeze(0).float().clamp(0, 1)


def _sqrtm(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
