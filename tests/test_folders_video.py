"""Folders for every command, videos (fast and style), and the temporal consistency check,
on the tiny random net, with odd inputs made here."""
import json
import subprocess
import threading

import numpy as np
import pytest
import torch

from painterly import cli
from painterly import image as I
from painterly.errors import Cancelled
from painterly.fast import FastConfig
from painterly.jobs import Clip, Job, RunOptions, run_job
from painterly.transfer import TransferConfig

from conftest import picture, stripes

imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
cv2 = pytest.importorskip("cv2")

from painterly import temporal as T  # noqa: E402
from painterly.video import VideoInfo, VideoWriter, probe_video, read_video  # noqa: E402

TINY_STYLE = TransferConfig(model="tiny", size=48, min_size=48, iterations=(4,), precision="fp32")


def photos(root, n=3, bad=True):
    root.mkdir()
    for i in range(n):
        I.save_image(picture(40, 56, seed=i), root / f"p{i}.png")
    if bad:
        (root / "bad.jpg").write_bytes(b"not a jpeg")
    return root


def make_clip(path, frames=16, fps=10, audio=True, side=64):
    """A slow pan over a smooth picture (3 px a frame), with a sine tone."""
    big = picture(side, side + 3 * frames, seed=5)
    silent = path.with_name("silent_" + path.name) if audio else path
    writer = imageio_ffmpeg.write_frames(str(silent), (side, side), fps=fps, macro_block_size=1,
                                         quality=9, ffmpeg_log_level="error")
    writer.send(None)
    for i in range(frames):
        crop = big[0, :, :, 3 * i: 3 * i + side].permute(1, 2, 0).numpy()
        writer.send(np.ascontiguousarray((crop * 255).round().astype(np.uint8)))
    writer.close()
    if audio:
        subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-v", "error", "-i", str(silent),
                        "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=22050", "-map",
                        "0:v", "-map", "1:a", "-c:v", "copy", "-c:a", "aac", "-t",
                        str(frames / fps), str(path)], check=True)
    return path


def decode(path):
    frames = imageio_ffmpeg.read_frames(str(path))
    meta = next(frames)
    w, h = meta["size"]
    pixels = [np.frombuffer(f, np.uint8).reshape(h, w, 3) for f in frames]
    return meta, pixels


def leftovers(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


# ------------------------------------------------------------------ folders


def test_style_folder_loads_once_reports_the_bad_picture_and_continues(tmp_path, monkeypatch):
    import painterly.transfer as transfer
    builds = []
    real = transfer.build_extractor
    monkeypatch.setattr(transfer, "build_extractor", lambda *a, **k: builds.append(1) or real(*a, **k))
    I.save_image(stripes(40, 40), tmp_path / "style.png")
    job = Job("style", (str(photos(tmp_path / "photos")), str(tmp_path / "style.png")),
              TINY_STYLE, str(tmp_path / "out"))
    cancel, seen = threading.Event(), []

    def on_item(item):
        seen.append(item)
        if item.output is not None:
            cancel.set()  # stop after the first picture written
    with pytest.raises(Cancelled, match="cancelled after 2 of 4 pictures"):
        run_job(job, RunOptions(cancel=cancel, on_item=on_item))
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.png"]
    assert seen[0].error is not None and "bad.jpg" in seen[0].source  # reported, not fatal
    outcome = run_job(job, RunOptions(on_item=seen.append))  # the rerun continues
    assert outcome.record["skipped"] == 1 and outcome.record["failed"] == 1
    assert len(outcome.record["outputs"]) == 2 and builds == [1, 1]  # the net: once per run
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.png", "p1.png", "p2.png"]
    with pytest.raises(Exception, match="1 of 4 pictures could not be painted"):
        outcome.raise_for_failures()
    # A folder's picture is the picture a run of its own makes (Gram matrices reused).
    single = run_job(Job("style", (str(tmp_path / "photos" / "p2.png"), str(tmp_path / "style.png")),
                         TINY_STYLE, str(tmp_path / "single.png")))
    assert torch.equal(I.load_image(single.output), I.load_image(tmp_path / "out" / "p2.png"))


def test_dream_folder_from_the_command_line(tmp_path, capsys):
    root = photos(tmp_path / "photos", n=2, bad=False)
    args = ["--model", "tiny", "--steps", "2", "--octaves", "2", "--precision", "fp32", "-q"]
    assert cli.main(["dream", str(root), "-o", str(tmp_path / "dreams"), *args]) == 0
    assert cli.main(["dream", str(root / "p1.png"), "-o", str(tmp_path / "one.png"), *args]) == 0
    assert torch.equal(I.load_image(tmp_path / "dreams" / "p1.png"),  # the same rolls
                       I.load_image(tmp_path / "one.png"))
    assert cli.main(["dream", str(root), "-o", str(tmp_path / "dreams"), "--frames", "3",
                     *args]) == 2
    assert "animates one picture" in capsys.readouterr().err


# ------------------------------------------------------------------ the consistency check


def test_consistency_marks_the_disoccluded_strip_of_a_moving_square():
    h, w = 32, 48
    backward = np.zeros((h, w, 2), np.float32)   # frame t -> t-1
    forward = np.zeros((h, w, 2), np.float32)    # frame t-1 -> t
    backward[8:20, 20:30, 0] = -5                # the square moved 5 px right: x 15..25 -> 20..30
    forward[8:20, 15:25, 0] = 5
    mask = T.consistency(backward, forward)
    assert mask[10:18, 15:20].max() == 0         # background the square uncovered: occluded
    assert mask[10:18, 22:28].min() == 1         # inside the square: followed
    assert mask[:, 35:].min() == 1 and mask[:4, :].min() == 1  # still background
    shift = np.zeros((h, w, 2), np.float32)
    shift[..., 0] = -3                           # a pan: the left strip comes from outside
    mask = T.consistency(shift, -shift)
    assert mask[:, :3].max() == 0 and mask[:, 3:].min() == 1


def test_dis_flow_and_warp_recover_a_known_shift():
    big = picture(64, 90, seed=3)
    a, b = big[..., 10:74], big[..., 14:78]      # b is a moved 4 px left
    flow = T.FlowEstimator()
    backward = flow(T.gray(b), T.gray(a))        # b(p) = a(p + 4)
    assert abs(np.median(backward[..., 0]) - 4) < 0.3 and abs(np.median(backward[..., 1])) < 0.3
    warped = T.warp(a, backward)
    assert (warped - b)[..., 8:-8, 8:-8].abs().mean() < 0.01


# ------------------------------------------------------------------ videos


def test_fast_video_keeps_frames_rate_and_sound_and_steadies_the_strokes(tiny_decoder, tmp_path,
                                                                         capsys):
    clip = make_clip(tmp_path / "clip.mp4")
    I.save_image(stripes(40, 40), tmp_path / "style.png")
    base = ["fast", str(clip), str(tmp_path / "style.png"), "--model", "tiny", "--decoder",
            str(tiny_decoder), "--size", "0", "-q"]
    assert cli.main(base + ["-o", str(tmp_path / "steady.mp4"), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["video"]["frames"] == 16 and record["video"]["audio"] == "copy"
    meta, steady = decode(tmp_path / "steady.mp4")
    assert len(steady) == 16 and meta["fps"] == 10 and meta["audio_codec"] == "aac"
    assert cli.main(base + ["-o", str(tmp_path / "part.mp4"), "--start", "0.5", "--duration",
                            "0.8", "--temporal", "0"]) == 0
    meta, part = decode(tmp_path / "part.mp4")
    assert len(part) == 8 and meta["audio_codec"] == "aac"
    assert cli.main(base + ["-o", str(tmp_path / "plain.mp4"), "--temporal", "0"]) == 0
    _, plain = decode(tmp_path / "plain.mp4")
    _, inputs = decode(clip)

    def error(frames):
        return T.warping_error([torch.from_numpy(f.copy()).permute(2, 0, 1)[None] / 255
                                for f in frames], inputs)
    assert error(steady) < 0.6 * error(plain)
    assert leftovers(tmp_path) == []


@pytest.mark.parametrize("case", ["not a video", "only sound", "corrupt frame", "past the end"])
def test_bad_videos_are_clear_errors_and_leave_no_file(tiny_decoder, tmp_path, capsys, case):
    ffmpeg = imageio_ffmpeg.get_ffmpeg_exe()
    source, extra = tmp_path / "in.mp4", []
    if case == "not a video":
        source.write_text("hello")
    elif case == "only sound":
        subprocess.run([ffmpeg, "-v", "error", "-f", "lavfi", "-i", "sine=frequency=440", "-t",
                        "0.5", "-c:a", "aac", str(source)], check=True)
    elif case == "corrupt frame":
        data = bytearray(make_clip(tmp_path / "good.mp4", audio=False).read_bytes())
        for i in range(len(data) // 3, len(data) // 3 + 2000):
            data[i] = (data[i] * 7 + 13) % 256
        source.write_bytes(bytes(data))
    else:
        make_clip(source, frames=4, audio=False)
        extra = ["--start", "60"]
    I.save_image(stripes(40, 40), tmp_path / "style.png")
    code = cli.main(["fast", str(source), str(tmp_path / "style.png"), "-o",
                     str(tmp_path / "out.mp4"), "--model", "tiny", "--decoder",
                     str(tiny_decoder), "-q", *extra])
    err = capsys.readouterr().err
    assert code == 3 and err.count("painterly: error:") == 1 and "Traceback" not in err, err
    assert {"not a video": "not a video painterly can read", "only sound": "no picture track",
            "corrupt frame": "could not be decoded", "past the end": "no frames after 60 s"}[case] in err
    assert not (tmp_path / "out.mp4").exists() and leftovers(tmp_path) == []


def test_sound_that_cannot_be_copied_leaves_a_silent_video_and_a_warning(tmp_path, monkeypatch,
                                                                         caplog):
    clip = make_clip(tmp_path / "clip.mp4", frames=4)
    import painterly.video as V

    def refuse(cmd, **kw):
        return subprocess.CompletedProcess(cmd, 1, "", "Unknown encoder 'aac'")
    monkeypatch.setattr(V.subprocess, "run", refuse)
    info = probe_video(clip)
    with VideoWriter(tmp_path / "out.mp4", info.fps, str(clip)) as writer:
        for frame in read_video(clip, info):
            writer.write(frame)
        writer.finish()
    meta, frames = decode(tmp_path / "out.mp4")
    assert len(frames) == 4 and meta.get("audio_codec") is None
    assert writer.audio_copied is None and "could not be copied" in caplog.text
    with pytest.raises(RuntimeError), VideoWriter(tmp_path / "never.mp4", 10) as writer:
        writer.write(frames[0])
        raise RuntimeError("stopped half way")
    assert not (tmp_path / "never.mp4").exists() and leftovers(tmp_path) == []


def test_style_video_continues_frame_by_frame_after_a_cancel(tmp_path):
    clip = make_clip(tmp_path / "clip.mp4", frames=5, side=48)
    I.save_image(stripes(40, 40), tmp_path / "style.png")
    job = Job("style", (str(clip), str(tmp_path / "style.png")), TINY_STYLE,
              str(tmp_path / "out.mp4"), clip=Clip(temporal=0.5))
    cancel = threading.Event()

    def after_three(event):
        if event.stage == "frames" and event.step == 3:
            cancel.set()
    with pytest.raises(Cancelled, match="frame 4 of 5.*kept in"):
        run_job(job, RunOptions(callback=after_three, cancel=cancel))
    frames = tmp_path / "out.mp4.frames"
    assert len(list(frames.glob("frame_*.png"))) == 3 and not (tmp_path / "out.mp4").exists()
    outcome = run_job(job)
    assert outcome.record["frames_painted"] == 2 and outcome.record["video"]["frames"] == 5
    assert outcome.record["video"]["audio"] == "copy"
    assert not frames.exists() and len(decode(tmp_path / "out.mp4")[1]) == 5
    # Kept frames of other settings are not mixed in.
    other = tmp_path / "out2.mp4.frames"
    other.mkdir()
    (other / "painterly-frames.json").write_text('{"fingerprint": "other"}')
    with pytest.raises(Exception, match="frames of another run"):
        run_job(Job("style", job.inputs, TINY_STYLE, str(tmp_path / "out2.mp4")))
