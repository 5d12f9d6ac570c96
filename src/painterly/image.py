"""Picture input and output: the only module that touches PIL.

Inside painterly a picture is a float32 tensor [B, 3, H, W] in [0, 1]; no function here
changes its input in place.
"""
from __future__ import annotations

import io
import logging
import os
import re
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Union

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, ImageCms, ImageOps, PngImagePlugin

from .errors import ImageTooLargeError, InputImageError, OutputError

log = logging.getLogger(__name__)

ImageLike = Union[str, os.PathLike, Image.Image, torch.Tensor, np.ndarray]

# Decoders painterly accepts; others (EPS and PDF run Ghostscript) are never tried.
ALLOWED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "PPM", "TGA")
MAX_INPUT_PIXELS = 50_000_000
MIN_SIDE = 32
OUTPUT_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")


def load_image(source: ImageLike, max_pixels: int = MAX_INPUT_PIXELS,
               min_side: int = MIN_SIDE) -> torch.Tensor:
    """Load a path, PIL image, array or tensor as an RGB tensor [1, 3, H, W] in [0, 1]."""
    if isinstance(source, torch.Tensor):
        return _check_tensor(source)
    if isinstance(source, np.ndarray):
        return _check_tensor(torch.from_numpy(_array_to_float(source)).permute(2, 0, 1))
    if isinstance(source, Image.Image):
        tensor = pil_to_tensor(source)
    else:
        tensor = pil_to_tensor(open_image(source, max_pixels))
    h, w = tensor.shape[-2:]
    if min(h, w) < min_side:
        raise InputImageError(f"image too small: {w}×{h} px; minimum side is {min_side} px",
                              "use a larger picture")
    return tensor


def open_image(source: str | os.PathLike, max_pixels: int = MAX_INPUT_PIXELS) -> Image.Image:
    """Open, size-check (from the header), decode and upright a picture file (or '-' = stdin)."""
    name = str(source)
    data = _read_source(name)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(data, formats=ALLOWED_FORMATS)
            _check_pixels(image, name, max_pixels)
            if getattr(image, "is_animated", False):
                log.warning("%s is animated; using its first frame", name)
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own bomb check fires inside open(), before ours can read the size.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        pixels = f"{int(found.group(1)):,} px" if found else "too large to decode safely"
        raise ImageTooLargeError(f"image {name} is {pixels}; limit is {max_pixels:,}",
                                 "raise it with --max-input-pixels or shrink the picture") from exc
    except Image.UnidentifiedImageError as exc:
        raise InputImageError(f"{name} is not a supported image",
                              f"allowed: {', '.join(ALLOWED_FORMATS)}") from exc
    except (OSError, SyntaxError, ValueError) as exc:
        raise InputImageError(f"image file is truncated or damaged: {name} ({exc})",
                              "re-export it") from exc
    return ImageOps.exif_transpose(image)


def _read_source(name: str):
    if name == "-":
        return io.BytesIO(sys.stdin.buffer.read())
    path = Path(name)
    if not path.exists():
        raise InputImageError(f"no such file: {name}", "check the path")
    if not path.is_file():
        raise InputImageError(f"not a file: {name}", "pass a picture file")
    return path


def _check_pixels(image: Image.Image, name: str, max_pixels: int) -> None:
    w, h = image.size
    if w * h > max_pixels:
        raise ImageTooLargeError(f"image {name} is {w * h:,} px; limit is {max_pixels:,}",
                                 "raise it with --max-input-pixels or shrink the picture")


def pil_to_tensor(image: Image.Image) -> torch.Tensor:
    """Any PIL mode -> sRGB RGB tensor [1, 3, H, W]; alpha composited over white."""
    array = _to_rgb_array(image)
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def _to_rgb_array(image: Image.Image) -> np.ndarray:
    image = _to_srgb(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        # 16-bit and 32-bit greys: scale to [0, 1] instead of clipping at 255.
        grey = np.asarray(image, dtype=np.float32)
        scale = 65535.0 if image.mode.startswith("I") else max(1.0, float(grey.max()))
        grey = np.clip(grey / scale, 0.0, 1.0)
        return np.repeat(grey[..., None], 3, axis=2)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, image)
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
    return tensor.detach().float().clamp(0, 1)


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
    if fmt == "PNG" and metadata:
        info = PngImagePlugin.PngInfo()
        for key, value in metadata.items():
            info.add_text(str(key), str(value))
        options["pnginfo"] = info
    pil = tensor_to_pil(image)
    _atomic_write(path, lambda f: pil.save(f, format=fmt, **options))
    return path


def _atomic_write(path: Path, write) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=folder)
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove_quietly(tmp)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}",
                          "check free space and permissions") from exc
    except BaseException:
        _remove_quietly(tmp)
        raise


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


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
    if path.exists() and not overwrite:
        raise OutputError(f"{path} exists", "pass --overwrite or choose another path")
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise OutputError(f"folder {folder} does not exist", "create it first")
    if not os.access(folder, os.W_OK):
        raise OutputError(f"cannot write to folder {folder}", "check its permissions")


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
    src = source[0].reshape(3, -1).double()
    tgt = target[0].reshape(3, -1).double()
    mu_s, mu_t = src.mean(1, keepdim=True), tgt.mean(1, keepdim=True)
    cov_s = torch.cov(src) + eps * torch.eye(3, dtype=src.dtype)
    cov_t = torch.cov(tgt) + eps * torch.eye(3, dtype=src.dtype)
    transform = _sqrtm(cov_t) @ torch.linalg.inv(_sqrtm(cov_s))
    out = transform @ (src - mu_s) + mu_t
    return out.reshape_as(source[0]).unsqueeze(0).float().clamp(0, 1)


def _sqrtm(matrix: torch.Tensor) -> torch.Tensor:
    values, vectors = torch.linalg.eigh(matrix)
    return vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
