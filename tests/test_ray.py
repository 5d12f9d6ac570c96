"""--engine ray: a real local Ray with two actors on the tiny net gives the local engine's
bytes, record and exit code (Ray's start costs ~15 s here: one test)."""
import json
import subprocess
import sys

import pytest

from painterly import cli
from painterly import image as I

from conftest import picture, stripes


def test_ray_engine_paints_the_same_bytes_as_the_local_engine(tiny_decoder, tmp_path, capsys):
    pytest.importorskip("ray")
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(4):
        I.save_image(picture(40, 56, seed=i), photos / f"p{i}.png")
    (photos / "bad.png").write_bytes(b"\x89PNG broken")
    I.save_image(stripes(40, 40), tmp_path / "style.png")
    base = ["fast", str(photos), str(tmp_path / "style.png"), "--model", "tiny", "--decoder",
            str(tiny_decoder), "--size", "0", "--json", "-q"]
    assert cli.main(base + ["-o", str(tmp_path / "local")]) == 3
    local = json.loads(capsys.readouterr().out)
    (tmp_path / "ray").mkdir()
    I.save_image(picture(40, 56, seed=0), tmp_path / "ray" / "p0.png")  # painted before: skipped
    assert cli.main(base + ["-o", str(tmp_path / "ray"), "--engine", "ray", "--workers", "2"]) == 3
    captured = capsys.readouterr()
    remote = json.loads(captured.out)
    assert "bad.png" in captured.err and "1 of 5 pictures could not be stylised" in captured.err
    assert remote["engine"] == "ray" and remote["failed"] == local["failed"] == 1
    assert remote["skipped"] == 1 and len(remote["outputs"]) == 3
    for name in ("p1.png", "p2.png", "p3.png"):
        assert (tmp_path / "ray" / name).read_bytes() == (tmp_path / "local" / name).read_bytes()


def test_ray_paints_a_videos_chunks_and_the_temporal_pass_follows_in_order(tiny_decoder,
                                                                          tmp_path):
    ray = pytest.importorskip("ray")
    from test_folders_video import decode, make_clip

    from painterly.cluster import RayEngine
    from painterly.fast import FastConfig
    from painterly.jobs import Job, RunOptions, run_job
    clip = make_clip(tmp_path / "clip.mp4", frames=12)
    I.save_image(stripes(40, 40), tmp_path / "style.png")
    config = FastConfig(model="tiny", decoder=str(tiny_decoder), size=0)
    local = run_job(Job("fast", (str(clip), str(tmp_path / "style.png")), config,
                        str(tmp_path / "local.mp4")))
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)  # joined, not restarted
    try:
        remote = run_job(Job("fast", (str(clip), str(tmp_path / "style.png")), config,
                             str(tmp_path / "ray.mp4")),
                         RunOptions(engine=RayEngine(workers=2, threads_per_worker=1)))
    finally:
        ray.shutdown()
    assert remote.record["video"] == local.record["video"]
    _, a = decode(tmp_path / "local.mp4")
    _, b = decode(tmp_path / "ray.mp4")
    assert len(a) == 12 and all((x == y).all() for x, y in zip(a, b))


def test_nothing_of_ray_is_imported_by_the_local_engine(tmp_path):
    """Ray and OpenCV load only in the functions that need them."""
    code = ("import sys; from painterly.cli import main; "
            "import painterly.jobs.batch, painterly.jobs.clip, painterly.temporal; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('ray', 'cv2')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0 and out.stdout.strip() == "[]", out.stderr
