"""Videos for fast and style: frames in, painted frames out with the sound, written whole.

fast paints each frame with one pass of the network and, with `temporal` > 0, blends it with
the previous painted frame carried along the input's optical flow where the flow is reliable
(``temporal.Stabilizer``). style (slow, opt-in) starts each frame from the previous result
carried along the flow and adds Ruder et al.'s temporal loss, weighted by the reliability
mask; the first frame gets the config's whole schedule, the others its finest scale only,
with half its iterations. style's frames are kept as PNGs in ``OUT.frames/`` as they are
made, so an interrupted video continues where it stopped; the folder goes once the video is
written. The video itself is published only when complete (``video.VideoWriter``).
"""
from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .. import image as I
from ..errors import Cancelled, OutputError
from ..progress import Progress
from ..temporal import FlowEstimator, Stabilizer, consistency, gray, soften, warp
from ..transfer import Stylist, TemporalTerm, TransferConfig
from ..video import VideoInfo, VideoWriter, check_video_output, is_video, probe_video, read_video
from . import batch, provenance
from .job import Clip, Job, Outcome, RunOptions
from .outputs import OutputLock

__all__ = ["check", "is_video", "run_fast", "run_style"]

# style: the temporal loss's weight at `temporal` 1, against content 1 and style 10 (the
# defaults). Ruder et al. used 2e2 against their content 5 and style 1e2, on [0, 255] pixels
# and summed losses. Measured on a 6-frame pan at 192 px (docs/video.md), `temporal` 0.7:
# 1e3 gives 8× less flicker than frame by frame with the style distance 2 % worse; 2e3 9×
# and 5 %; 2e4 15× and 31 % (the warped, slightly blurred start is held too tightly).
STYLE_TEMPORAL_WEIGHT = 1e3


def clip_of(job: Job) -> Clip:
    return job.clip or Clip()


def check(job: Job, output: Path) -> VideoInfo:
    """Refuse, before loading any network, a video that can't be read or an output that
    can't be written; what ffmpeg says of the part to paint."""
    check_video_output(output, overwrite=job.overwrite, inputs=job.inputs)
    clip = clip_of(job)
    info = probe_video(job.inputs[0], clip.start, clip.duration, job.reading.max_input_pixels)
    if clip.temporal > 0:
        FlowEstimator()  # OpenCV is there (ConfigError with the hint if not)
    return info


def frame_tensor(pixels: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(np.array(pixels)).permute(2, 0, 1)[None].float().div(255).contiguous()


def _progress(options: RunOptions, kind: str, done: int, total: int, started: float) -> None:
    if options.callback is not None:
        options.callback(Progress(kind, "frames", done, max(total, done), {},
                                  time.perf_counter() - started))


def _stopped(done: int, total: int, extra: str = "") -> Cancelled:
    return Cancelled(f"cancelled at frame {done + 1} of {total}{extra}",
                     "run the same command again" + (" to continue" if extra else ""))


def _record(job: Job, output: Path, info: VideoInfo, writer: VideoWriter, seconds: float,
            **extra) -> dict:
    clip = clip_of(job)
    return provenance.record(job.kind, {"content": job.inputs[0], "styles": list(job.inputs[1:])},
                             output, job.config, seconds, {}, clip=asdict(clip),
                             video={"fps": info.fps, "frames": writer.frames,
                                    "size": list(writer.size or ()),
                                    "audio": writer.audio_copied}, **extra)


def run_fast(job: Job, output: Path, options: RunOptions, info: VideoInfo) -> Outcome:
    """Paint every frame with the network, stabilised along the flow; write the video."""
    clip = clip_of(job)
    started = time.perf_counter()
    stabilize = Stabilizer(clip.temporal)
    with OutputLock(output), VideoWriter(output, info.fps, job.inputs[0], clip.start,
                                         clip.duration) as writer:
        frames = read_video(job.inputs[0], info, clip.start, clip.duration,
                            job.reading.allow_truncated)
        if options.engine is not None:  # chunks painted in parallel, the temporal pass here
            painted = options.engine.paint_frames(job, frames, options)
        else:
            paint = batch.painter(job)
            painted = ((pixels, paint(frame_tensor(pixels), output, {})[0]) for pixels in frames)
        try:
            for i, (pixels, picture) in enumerate(painted):
                if options.cancel is not None and options.cancel.is_set():
                    raise _stopped(i, info.frames)
                writer.write(stabilize(pixels, picture))
                _progress(options, "fast", i + 1, info.frames, started)
        finally:
            painted.close()  # an engine's workers go now, not when collected
        writer.finish()
    return Outcome(output, _record(job, output, info, writer, time.perf_counter() - started))


def frames_folder(output: Path) -> Path:
    """Where style keeps a video's painted frames until the video is written."""
    return output.with_name(f"{output.name}.frames")


def _fingerprint(job: Job) -> str:
    """What the kept frames were painted from: the inputs' bytes, the settings, the part."""
    rec = provenance.record("style", {"content": job.inputs[0], "styles": list(job.inputs[1:])},
                            "", job.config, 0, {}, clip=asdict(clip_of(job)))
    return hashlib.sha256(json.dumps([rec["inputs"], rec["settings"], rec["clip"]],
                                     sort_keys=True).encode()).hexdigest()


def _open_frames(job: Job, output: Path) -> Path:
    """The frames folder, emptied with `overwrite`; refused if its frames were painted from
    other inputs or settings."""
    folder, mark = frames_folder(output), _fingerprint(job)
    stamp = folder / "painterly-frames.json"
    if folder.exists() and job.overwrite:
        shutil.rmtree(folder)
    if folder.exists():
        try:
            saved = json.loads(stamp.read_text()).get("fingerprint")
        except (OSError, ValueError):
            saved = None
        if saved != mark:
            raise OutputError(f"{folder} holds frames of another run (other inputs or "
                              "settings)", "pass `overwrite` to start afresh, or remove it")
    else:
        folder.mkdir()
        stamp.write_text(json.dumps({"fingerprint": mark}))
    return folder


def run_style(job: Job, output: Path, options: RunOptions, info: VideoInfo) -> Outcome:
    """Gatys per frame, each started from the last carried along the flow, with Ruder's
    temporal loss; frames kept as they are made, so a rerun continues."""
    clip, cfg = clip_of(job), job.config
    started = time.perf_counter()
    with OutputLock(output):
        folder = _open_frames(job, output)
        paint = _FramePainter(job, clip, cfg)
        with VideoWriter(output, info.fps, job.inputs[0], clip.start, clip.duration) as writer:
            for i, pixels in enumerate(read_video(job.inputs[0], info, clip.start, clip.duration,
                                   job.reading.allow_truncated)):
                path = folder / f"frame_{i + 1:06d}.png"
                if path.exists():
                    painted = paint.keep(pixels, I.load_image(path))
                else:
                    painted = paint(pixels, i, options, info.frames, started, folder)
                    I.save_image(painted, path, overwrite=True)
                writer.write(painted)
                _progress(options, "style", i + 1, info.frames, started)
            writer.finish()
        shutil.rmtree(folder, ignore_errors=True)
    return Outcome(output, _record(job, output, info, writer, time.perf_counter() - started,
                                   frames_painted=paint.painted))


class _FramePainter:
    """The style job's frames: the net loaded once, the previous frame and its painting."""

    def __init__(self, job: Job, clip: Clip, cfg: TransferConfig):
        style_side = max(I.MIN_SIDE, round(cfg.size * cfg.style_scale))
        self.stylist = Stylist(cfg, [job.reading.load(s, work_size=style_side)
                                     for s in job.inputs[1:]])
        self.clip, self.cfg = clip, cfg
        self.flow = FlowEstimator() if clip.temporal > 0 else None
        self.previous_frame = self.previous_out = None
        # After the first frame: the finest scale only, half its iterations.
        self.later = max(1, self.stylist.steps[-1] // 2)
        self.painted = 0

    def _photo(self, pixels: np.ndarray) -> torch.Tensor:
        return I.resize(frame_tensor(pixels), long_side=self.cfg.size)

    def keep(self, pixels: np.ndarray, painted: torch.Tensor) -> torch.Tensor:
        """A frame painted by an earlier run: remembered as the previous one."""
        self.previous_frame, self.previous_out = gray(self._photo(pixels)), painted
        return painted

    def __call__(self, pixels: np.ndarray, i: int, options: RunOptions, total: int,
                 started: float, folder: Path) -> torch.Tensor:
        photo = self._photo(pixels)
        current = gray(photo)
        kw = {}
        if self.previous_out is not None and self.flow is not None \
                and self.previous_out.shape == photo.shape:
            backward = self.flow(current, self.previous_frame)
            mask = soften(consistency(backward, self.flow(self.previous_frame, current)))
            warped = warp(self.previous_out, backward, mode="bicubic").clamp(0, 1)
            c = torch.from_numpy(mask)[None, None]
            # Ruder's init "prevWarped"; where the flow is unreliable (disocclusions), the
            # frame itself rather than the warped painting's smear.
            kw = {"start": c * warped + (1 - c) * photo, "iterations": self.later,
                  "temporal": TemporalTerm(warped, c,
                                           self.clip.temporal * STYLE_TEMPORAL_WEIGHT)}
        elif self.previous_out is not None:
            kw = {"start": photo, "iterations": self.later}

        def forward(event: Progress) -> None:
            if options.callback is not None:
                options.callback(Progress("style", f"frame {i + 1}/{total} {event.stage}",
                                          event.step, event.total, event.losses, event.elapsed,
                                          event.image))
        try:
            out = self.stylist(photo, callback=forward, cancel=options.cancel,
                               preview_every=options.preview_every, **kw)
        except Cancelled as exc:
            raise _stopped(i, total, f"; the frames painted so far are kept in {folder}") from exc
        self.painted += 1
        self.previous_frame, self.previous_out = current, out
        return out
