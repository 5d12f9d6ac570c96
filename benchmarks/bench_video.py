"""Video, folders and Ray: flicker, throughput and Ray's cost, measured on this machine.

    PAINTERLY_WEIGHTS_DIR=../shared/weights python benchmarks/bench_video.py            # ~6 min
    python benchmarks/bench_video.py --only flicker --frames 48
    python benchmarks/bench_video.py --quick          # smoke test: tiny random nets, seconds

What it measures (docs/video.md holds the figures):

* **flicker**: a slow pan and zoom over each shared photo (``--frames`` frames at 512 px,
  with a sound track) painted by ``painterly fast`` with `temporal` at its default and at 0.
  The warping error of Lai et al. (2018): painted frame t−1 carried onto frame t with the
  *input's* DIS flow, mean squared RGB difference over the pixels the consistency check
  keeps, averaged over the frames; and the style distance (``quality.distances``, every 8th
  frame) against the painting. Side-by-side frames go to ``--frames-out``.
* **fps**: frames per second of ``fast`` on that 512 px clip, reading and writing included.
* **folder**: pictures per second for 100 pictures (512 px crops of the shared photos) with
  the local engine and ``--engine ray`` with 1 and 2 workers (1 thread each), Ray's start-up
  (start, actors loading the networks) measured apart.
* **style** (``--only style``): ``painterly style`` on a 6-frame pan at 192 px (60
  iterations for the first frame, 30 for the others): warping error and style distance with
  `temporal` at its default and at 0, seconds per frame.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from painterly import image as I
from painterly.fast import FastConfig
from painterly.jobs import Clip, Job, RunOptions, run_job
from painterly.temporal import warping_error
from painterly.transfer import TransferConfig
from painterly.video import VideoWriter, probe_video, read_video

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "images"
CONTENTS = ("tubingen.jpg", "hoovertowernight.jpg")
STYLES = ("starry_night.jpg", "the_scream.jpg")


def pan_and_zoom(photo: Path, out: Path, frames: int, side: int = 512, fps: float = 24.0) -> Path:
    """A slow pan (left to right) and zoom (1 → 1.25) over a photo, 16:9 at ``side`` px
    wide, H.264 with a 440 Hz tone as its sound."""
    picture = I.load_image(photo)
    _, _, H, W = picture.shape
    w_out, h_out = side, round(side * 9 / 16) // 2 * 2
    silent = out.with_name("silent_" + out.name)
    with VideoWriter(silent, fps, quality=9) as writer:
        for t in range(frames):
            s = t / max(frames - 1, 1)
            zoom = 1 + 0.25 * s
            cw = min(W, round(W * 0.7 / zoom))
            ch = min(H, round(cw * h_out / w_out))
            x0 = round((W - cw) * (0.2 + 0.6 * s))
            y0 = round((H - ch) * 0.5)
            crop = picture[..., y0: y0 + ch, x0: x0 + cw]
            writer.write(I.resize(crop, size=(h_out, w_out)))
        writer.finish()
    import imageio_ffmpeg
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(silent),
                    "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100", "-map", "0:v",
                    "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-t", str(frames / fps),
                    str(out)], check=True)
    silent.unlink()
    return out


def decode(path: Path) -> list[np.ndarray]:
    return [f.copy() for f in read_video(path, probe_video(path))]


def tensors(frames: list[np.ndarray]) -> list[torch.Tensor]:
    return [torch.from_numpy(np.array(f)).permute(2, 0, 1)[None].float() / 255 for f in frames]


def fast_config(quick: bool, decoder: str | None) -> FastConfig:
    if quick:
        return FastConfig(model="tiny", decoder=decoder, precision="fp32")
    return FastConfig()


def flicker(args, work: Path, frames_out: Path | None) -> dict:
    from painterly.quality import distances, reference_extractor
    extractor = None if args.quick else reference_extractor()
    results = {}
    for content, style in zip(CONTENTS, STYLES):
        clip = pan_and_zoom(SHARED / "content" / content, work / f"{Path(content).stem}.mp4",
                            args.frames, args.side)
        inputs = decode(clip)
        row = {}
        for temporal in (Clip().temporal, 0.0):
            out = work / f"{Path(content).stem}_{temporal}.mp4"
            job = Job("fast", (str(clip), str(SHARED / "style" / style)),
                      fast_config(args.quick, args.decoder), str(out), True,
                      clip=Clip(temporal=temporal))
            started = time.perf_counter()
            outcome = run_job(job)
            seconds = time.perf_counter() - started
            painted = tensors(decode(out))
            style_d = None
            if extractor is not None:
                style_d = statistics.mean(
                    distances(painted[t], tensors([inputs[t]])[0], SHARED / "style" / style,
                              extractor)["style"] for t in range(0, len(painted), 8))
            row[temporal] = {"warping_error": warping_error(painted, inputs),
                             "style": style_d, "fps": len(painted) / seconds,
                             "audio": outcome.record["video"]["audio"]}
            if frames_out is not None:
                for t in (10, 11, 30):
                    if t < len(painted):
                        I.save_image(torch.cat([tensors([inputs[t]])[0], painted[t]], -1),
                                     frames_out / f"{Path(content).stem}_t{temporal}_{t:03d}.png")
        results[content] = row
        print(f"{content} × {style}: " + "; ".join(
            f"temporal {k}: warping error {v['warping_error']:.5f}, style "
            f"{v['style'] if v['style'] is None else round(v['style'], 4)}, {v['fps']:.2f} fps"
            for k, v in row.items()), flush=True)
    return results


def folder(args, work: Path) -> dict:
    photos = work / "photos"
    photos.mkdir(exist_ok=True)
    pictures = [I.load_image(SHARED / "content" / c) for c in CONTENTS]
    for i in range(args.pictures):
        p = pictures[i % len(pictures)]
        _, _, H, W = p.shape
        side = min(H, W) * (0.5 + 0.4 * (i % 7) / 6)
        y, x = int((H - side) * ((i * 37) % 11) / 10), int((W - side) * ((i * 53) % 13) / 12)
        I.save_image(I.resize(p[..., y: y + int(side), x: x + int(side)], long_side=args.side),
                     photos / f"p{i:03d}.jpg")
    style = str(SHARED / "style" / STYLES[0])
    rows = {}
    for name, engine in (("local", None), ("ray, 1 worker", 1), ("ray, 2 workers", 2)):
        if engine and args.no_ray:
            continue
        out = work / f"out_{engine or 0}"
        shutil.rmtree(out, ignore_errors=True)
        options = RunOptions()
        if engine:
            from painterly.cluster import RayEngine
            options = RunOptions(engine=RayEngine(workers=engine, threads_per_worker=1))
        job = Job("fast", (str(photos), style), fast_config(args.quick, args.decoder), str(out))
        started = time.perf_counter()
        outcome = run_job(job, options)
        seconds = time.perf_counter() - started
        startup = options.engine.startup_seconds if engine else 0.0
        rows[name] = {"seconds": seconds, "startup": startup,
                      "pictures_per_s": args.pictures / seconds,
                      "after_startup": args.pictures / (seconds - startup),
                      "written": len(outcome.record["outputs"])}
        print(f"{name}: {args.pictures} pictures in {seconds:.1f} s ({rows[name]['pictures_per_s']:.2f}/s;"
              f" start-up {startup:.1f} s, {rows[name]['after_startup']:.2f}/s after it)", flush=True)
    if not args.no_ray:
        reference = work / "out_0"
        same = sum((work / "out_2" / p.name).read_bytes() == p.read_bytes()
                   for p in reference.iterdir())
        # One-thread workers against torch's threads here: sums split differently across
        # threads move a few pixels by 1/255; at the default --threads-per-worker they match.
        print(f"pictures byte for byte the local engine's (1-thread workers): {same}/"
              f"{args.pictures}")
        rows["same_bytes"] = same
    return rows


def style_video(args, work: Path) -> dict:
    """style on a short pan (``--style-frames`` at ``--style-size`` px, ``--style-iterations``
    for the first frame, half for the others), `temporal` default against 0."""
    from painterly.quality import distances, reference_extractor
    clip = pan_and_zoom(SHARED / "content" / CONTENTS[0], work / "style_clip.mp4",
                        args.style_frames, 256)
    cfg = TransferConfig(size=args.style_size, min_size=args.style_size,
                         iterations=(args.style_iterations,),
                         model="tiny" if args.quick else "vgg16")
    extractor = None if args.quick else reference_extractor()
    inputs = [I.resize(t, long_side=args.style_size) for t in tensors(decode(clip))]
    style = SHARED / "style" / STYLES[0]
    rows = {}
    for temporal in (Clip().temporal, 0.0):
        out = work / f"style_{temporal}.mp4"
        started = time.perf_counter()
        outcome = run_job(Job("style", (str(clip), str(style)), cfg, str(out), True,
                              clip=Clip(temporal=temporal)))
        seconds = time.perf_counter() - started
        painted = tensors(decode(out))
        frames = [I.frame_pixels(t) for t in inputs]
        rows[temporal] = {"frames": len(painted), "seconds_per_frame": seconds / len(painted),
                          "warping_error": warping_error(painted, frames),
                          "style": None if extractor is None else statistics.mean(
                              distances(o, i, style, extractor)["style"]
                              for o, i in zip(painted, inputs)),
                          "audio": outcome.record["video"]["audio"]}
        print(f"style video, temporal {temporal}: {rows[temporal]}", flush=True)
    return rows


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="tiny random nets (a smoke test)")
    p.add_argument("--decoder", help="with --quick: a tiny decoder file")
    p.add_argument("--only", choices=("flicker", "folder", "style"), action="append")
    p.add_argument("--frames", type=int, default=48)
    p.add_argument("--side", type=int, default=512)
    p.add_argument("--pictures", type=int, default=100)
    p.add_argument("--no-ray", action="store_true")
    p.add_argument("--style-frames", type=int, default=6)
    p.add_argument("--style-size", type=int, default=192)
    p.add_argument("--style-iterations", type=int, default=60)
    p.add_argument("--frames-out", type=Path, help="write side-by-side frames (input | painted)")
    p.add_argument("--json", type=Path, help="write the figures here")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    only = set(args.only or ("flicker", "folder"))
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if args.frames_out:
            args.frames_out.mkdir(parents=True, exist_ok=True)
        if "flicker" in only:
            results["flicker"] = flicker(args, work, args.frames_out)
        if "folder" in only:
            results["folder"] = folder(args, work)
        if "style" in only:
            results["style"] = style_video(args, work)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, default=str))


if __name__ == "__main__":
    main()
