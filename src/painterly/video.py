"""Animations out: a looping GIF (Pillow, through ``image``) or an H.264 MP4 (imageio-ffmpeg,
the optional extra ``painterly[video]``), written atomically."""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Iterable

import torch

from . import image as I
from .errors import ConfigError, OutputError, check_option
from .files import remove_quietly, umask

ANIMATION_SUFFIXES = (".gif", ".mp4")
VIDEO_HINT = "pip install 'painterly[video]' (or: pip install imageio imageio-ffmpeg)"


def check_animation_path(path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Refuse, before any work, animation outputs that can't be written."""
    path = Path(path)
    I.check_output_path(path, overwrite=overwrite, suffixes=ANIMATION_SUFFIXES)
    if path.suffix.lower() == ".mp4":
        _video_module()
    return path


def _video_module():
    try:
        import imageio.v2 as imageio  # optional extra [video]; imports imageio-ffmpeg lazily
        import imageio_ffmpeg  # noqa: F401
    except ImportError as exc:
        raise ConfigError("writing .mp4 needs imageio and imageio-ffmpeg", VIDEO_HINT) from exc
    return imageio


def save_animation(frames: Iterable[torch.Tensor], path: str | os.PathLike, fps: float = 12,
                   overwrite: bool = True) -> Path:
    """Write frames ([1, 3, H, W] in [0, 1]) as a looping GIF (Pillow) or an MP4 (H.264),
    atomically: a failed write leaves no file and never touches an existing one."""
    path = check_animation_path(path, overwrite=overwrite)
    check_option(fps > 0, "fps", fps, "a number > 0")
    if path.suffix.lower() == ".gif":
        I.save_gif(list(frames), path, fps)
    else:
        _write_mp4(frames, path, fps)
    return path


def _write_mp4(frames: Iterable[torch.Tensor], path: Path, fps: float) -> None:
    imageio = _video_module()
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".mp4", dir=path.parent)
    os.close(fd)
    os.chmod(tmp, 0o666 & ~umask())
    try:
        # H.264 in yuv420p (plays everywhere) needs even sides: crop one pixel row/column
        # rather than let ffmpeg rescale the frame.
        with imageio.get_writer(tmp, format="FFMPEG", mode="I", fps=fps, codec="libx264",
                                quality=8, pixelformat="yuv420p", macro_block_size=1) as writer:
            for frame in frames:
                pixels = I.frame_pixels(frame)
                h, w = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
                writer.append_data(pixels[:h, :w])
        os.replace(tmp, path)
    except OSError as exc:
        remove_quietly(tmp)
        raise OutputError(f"cannot write {path}: {exc.strerror or exc}",
                          "check free space and permissions") from exc
    except BaseException:
        remove_quietly(tmp)
        raise
