"""Animations and videos: a looping GIF (Pillow, through ``image``) or an H.264 MP4 out
(imageio-ffmpeg, the optional extra ``painterly[video]``), written atomically; videos in (any
container ffmpeg reads) frame by frame, and out with their sound copied."""
from __future__ import annotations

import logging
import os
import re
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Optional

import numpy as np
import torch

from . import image as I
from .errors import (ConfigError, ImageTooLargeError, InputImageError, OutputError,
                     check_option)
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


# ------------------------------------------------------------------ videos in and out

# Containers read as videos (any that ffmpeg reads; these are the names that mark a video);
# .gif stays a picture. Outputs: H.264 in these containers.
VIDEO_SUFFIXES = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".wmv",
                  ".flv", ".ts", ".3gp", ".ogv")
VIDEO_OUTPUTS = (".mp4", ".mov", ".mkv")
_MUXERS = {".mp4": "mp4", ".mov": "mov", ".mkv": "matroska"}
log = logging.getLogger(__name__)


def is_video(source) -> bool:
    return isinstance(source, (str, os.PathLike)) and Path(source).suffix.lower() in VIDEO_SUFFIXES


def _ffmpeg():
    try:
        import imageio_ffmpeg  # optional extra [video]
    except ImportError as exc:
        raise ConfigError("videos need imageio-ffmpeg", VIDEO_HINT) from exc
    return imageio_ffmpeg


@dataclass(frozen=True)
class VideoInfo:
    """What ffmpeg says of a video (the part asked for): frames per second, (width, height),
    seconds, an estimate of the frames, and the audio codec (None: no sound)."""

    fps: float
    size: tuple[int, int]
    duration: float
    frames: int
    audio: Optional[str]
    codec: str = ""


def _input_params(start: float, duration: Optional[float]) -> list[str]:
    params = ["-ss", f"{start:.6f}"] if start else []
    return params + (["-t", f"{duration:.6f}"] if duration else [])


def probe_video(path: str | os.PathLike, start: float = 0.0, duration: Optional[float] = None,
                max_pixels: int = I.MAX_INPUT_PIXELS) -> VideoInfo:
    """Read a video's header (InputImageError if it is not a video ffmpeg reads, or has no
    picture, ImageTooLargeError above ``max_pixels`` a frame)."""
    name = str(path)
    if not Path(name).is_file():
        raise InputImageError(f"no such video: {name}", "check the path")
    frames = _ffmpeg().read_frames(name, input_params=_input_params(start, duration))
    try:
        meta = next(frames)
    except (OSError, RuntimeError, ValueError, KeyError, IndexError, StopIteration) as exc:
        text = str(exc)
        if "Audio:" in text and "Video:" not in text:
            raise InputImageError(f"{name} has no picture track, only sound",
                                  "give a video") from exc
        raise InputImageError(f"{name} is not a video painterly can read ({_first_line(exc)})",
                              f"give a video file ({', '.join(VIDEO_SUFFIXES[:6])}, …)") from exc
    finally:
        frames.close()
    w, h = meta.get("size") or (0, 0)
    if not w or not h:
        raise InputImageError(f"{name} has no picture track", "give a video, not a sound file")
    if w * h > max_pixels:
        raise ImageTooLargeError(f"{name}: frames of {w}×{h} pixels exceed the limit of "
                                 f"{max_pixels}", "raise `max_input_pixels` or scale it down")
    fps = float(meta.get("fps") or 0) or 25.0
    total = float(meta.get("duration") or 0)
    length = max(0.0, total - start) if total else 0.0
    if duration:
        length = min(length, duration) if length else duration
    return VideoInfo(fps, (w, h), length, max(1, round(length * fps)) if length else 0,
                     meta.get("audio_codec"), meta.get("codec", ""))


def _first_line(exc: BaseException) -> str:
    lines = [l.strip() for l in str(exc).splitlines() if l.strip() and "===" not in l]
    useful = [l for l in lines if "Invalid data" in l or "Error" in l or "error" in l]
    return ((useful or lines or [type(exc).__name__])[-1])[:200]


def read_video(path: str | os.PathLike, info: VideoInfo, start: float = 0.0,
               duration: Optional[float] = None, tolerate_damage: bool = False
               ) -> Iterator[np.ndarray]:
    """The frames of ``path`` (``info`` from :func:`probe_video`) from ``start`` for
    ``duration`` seconds, as uint8 [H, W, 3] RGB arrays, decoded one at a time.

    A frame that can't be decoded raises InputImageError naming it (ffmpeg stops at the
    first error), unless ``tolerate_damage``: then ffmpeg conceals it as players do. No
    frame at all is an InputImageError too.
    """
    name = str(path)
    w, h = info.size
    size = w * h * 3
    cmd = [_ffmpeg().get_ffmpeg_exe(), "-nostdin", "-v", "error",
           *([] if tolerate_damage else ["-xerror"]), *_input_params(start, duration),
           "-i", name, "-an", "-sn", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
    count = 0
    with tempfile.TemporaryFile() as log_file:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log_file,
                                stdin=subprocess.DEVNULL)
        try:
            while True:
                raw = proc.stdout.read(size)
                if len(raw) < size:
                    break
                count += 1
                yield np.frombuffer(raw, dtype=np.uint8).reshape(h, w, 3)
            code = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            proc.stdout.close()
        log_file.seek(0)
        log_text = log_file.read().decode(errors="replace")
    if code != 0 or raw:
        first = next((re.sub(r"^(\[[^]]*\] *)+", "", l).strip() for l in log_text.splitlines()
                      if l.strip()), f"ffmpeg exit {code}")
        raise InputImageError(f"{name}: frame {count + 1} could not be decoded ({first[:200]})",
                              "pass `allow_truncated` to paint what ffmpeg can conceal, or "
                              "re-encode the video")
    if not count:
        raise InputImageError(f"{name} has no frames" + (f" after {start:g} s" if start else ""),
                              "check `start` and `duration`, or the file")


class VideoWriter:
    """An H.264 video written into a temp file beside ``path``, published only by
    :meth:`finish`: the sound of ``audio_from`` (the same part: ``start``, ``duration``) is
    copied in (re-encoded to AAC where the container can't hold it as it is), then the file
    is renamed onto ``path``. Leaving the ``with`` block without ``finish`` (an error, a
    cancel) removes the temp file: never a half-written video."""

    def __init__(self, path: str | os.PathLike, fps: float, audio_from: Optional[str] = None,
                 start: float = 0.0, duration: Optional[float] = None, quality: int = 8):
        self.path = Path(path)
        self.fps, self.audio_from, self.start, self.duration = fps, audio_from, start, duration
        self.quality = quality
        self.tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.video.partial")
        self.writer = None
        self.size: Optional[tuple[int, int]] = None
        self.frames = 0
        self.audio_copied: Optional[str] = None  # what became of the sound: copied/aac/None

    def __enter__(self) -> "VideoWriter":
        return self

    def write(self, frame: torch.Tensor | np.ndarray) -> None:
        pixels = frame if isinstance(frame, np.ndarray) else I.frame_pixels(frame)
        # yuv420p (plays everywhere) needs even sides: crop one row/column, don't rescale.
        h, w = pixels.shape[0] // 2 * 2, pixels.shape[1] // 2 * 2
        pixels = np.ascontiguousarray(pixels[:h, :w])
        if self.writer is None:
            self.size = (w, h)
            muxer = _MUXERS.get(self.path.suffix.lower(), "mp4")
            self.writer = _ffmpeg().write_frames(
                str(self.tmp), (w, h), fps=self.fps, codec="libx264", quality=self.quality,
                pix_fmt_out="yuv420p", macro_block_size=1, ffmpeg_log_level="error",
                output_params=["-f", muxer])
            self.writer.send(None)
        elif (w, h) != self.size:
            raise InputImageError(f"frame {self.frames + 1} is {w}×{h}, the video {self.size}",
                                  "all frames of a video have one size")
        self.writer.send(pixels)
        self.frames += 1

    def finish(self) -> Path:
        """Close the video, copy the sound in, publish it at ``path``."""
        if self.writer is None:
            raise OutputError(f"no frames to write to {self.path}", "the video had no frames")
        self.writer.close()
        self.writer = None
        os.chmod(self.tmp, 0o666 & ~umask())
        final = self._with_audio() or self.tmp
        os.replace(final, self.path)
        if final != self.tmp:
            remove_quietly(self.tmp)
        return self.path

    def _with_audio(self) -> Optional[Path]:
        """The video with the source's sound, or None (no sound, or it could not be copied:
        then a warning, and the video goes out silent)."""
        if not self.audio_from:
            return None
        muxed = self.path.with_name(f".{self.path.name}.{os.getpid()}.audio.partial")
        muxer = _MUXERS.get(self.path.suffix.lower(), "mp4")
        base = [_ffmpeg().get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(self.tmp),
                *_input_params(self.start, self.duration), "-i", str(self.audio_from),
                "-map", "0:v:0", "-map", "1:a:0?", "-c:v", "copy",
                # the video's length, not -shortest: that cuts the last frames where the
                # sound stops a few milliseconds early (AAC's padding)
                "-t", f"{self.frames / self.fps:.6f}"]
        errors = []
        for codec in ("copy", "aac"):
            run = subprocess.run(base + ["-c:a", codec, "-f", muxer, str(muxed)],
                                 capture_output=True, text=True)
            if run.returncode == 0:
                os.chmod(muxed, 0o666 & ~umask())
                self.audio_copied = codec
                return muxed
            errors.append(_first_line(RuntimeError(run.stderr)))
        remove_quietly(muxed)
        log.warning("the sound of %s could not be copied (%s); the video is written without "
                    "it", self.audio_from, errors[-1])
        return None

    def __exit__(self, *exc) -> None:
        if self.writer is not None:
            try:
                self.writer.close()
            except Exception:  # noqa: BLE001 - already failing; the temp file goes
                pass
            self.writer = None
        remove_quietly(self.tmp)


def check_video_output(path: str | os.PathLike, overwrite: bool = False, inputs=()) -> Path:
    path = Path(path)
    I.check_output_path(path, overwrite=overwrite, inputs=inputs, suffixes=VIDEO_OUTPUTS)
    _ffmpeg()
    return path
