import json
import os
import subprocess
import sys
from dataclasses import fields

import pytest
from PIL import Image

import painterly
from painterly.cli import build_parser, main
from painterly.cli.style import config_from_args
from painterly.transfer import TransferConfig

from conftest import default_sigint, picture, stripes

FAST = ["--model", "tiny", "--size", "64", "--min-size", "45", "--iterations", "3",
        "--precision", "fp32"]


@pytest.fixture
def pictures(tmp_path):
    photo = painterly.save_image(picture(48, 64), tmp_path / "photo.png")
    art = painterly.save_image(stripes(48, 64), tmp_path / "art.jpg")
    return photo, art


def _run(*args, cwd=None):
    env = dict(os.environ)
    return subprocess.run([sys.executable, "-m", "painterly", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, env=env, timeout=300)


def test_every_config_field_has_a_flag():
    args = build_parser().parse_args(["style", "a.png", "b.png"])
    assert config_from_args(args) == TransferConfig()  # flag defaults are the config's
    flags = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["style"]._actions}
    covered = flags | {"style_layer_weights"}  # --style-layers
    assert {f.name for f in fields(TransferConfig)} <= covered


def test_style_main_writes_png_with_settings_and_json(pictures, tmp_path, capsys):
    photo, art = pictures
    out = tmp_path / "out.png"
    code = main(["style", str(photo), str(art), "-o", str(out), "--json", *FAST])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["output"] == str(out) and record["seed"] == 0
    assert set(record["losses"]) >= {"content", "style", "tv"}
    assert {k: v["iterations"] for k, v in record["stages"].items()} == {"scale 1/2": 3,
                                                                        "scale 2/2": 3}
    settings = json.loads(Image.open(out).text["painterly"])
    assert settings["size"] == 64 and settings["model"] == "tiny"
    assert Image.open(out).size == (64, 48)


def test_layer_weights_style_blend_and_snapshots(pictures, tmp_path):
    photo, art = pictures
    out = tmp_path / "blend.png"
    code = main(["style", str(photo), str(art), str(photo), "--style-weights", "0.7,0.3",
                 "--style-layers", "relu1_1:1,relu3_1:0.5", "--preserve-color", "luminance",
                 "--save-every", "2", "-o", str(out), "-q", *FAST])
    assert code == 0 and out.exists()
    snaps = sorted(p.name for p in tmp_path.glob("blend.*.png"))
    assert snaps == ["blend.0002.png", "blend.0004.png", "blend.0006.png"]


def test_existing_output_is_kept_unless_overwrite(pictures, tmp_path, capsys):
    photo, art = pictures
    out = tmp_path / "out.png"
    out.write_bytes(b"precious")
    assert main(["style", str(photo), str(art), "-o", str(out), *FAST]) == 7
    assert out.read_bytes() == b"precious"
    assert "pass --overwrite" in capsys.readouterr().err
    assert main(["style", str(photo), str(art), "-o", str(out), "--overwrite", "-q", *FAST]) == 0
    assert out.read_bytes() != b"precious"


@pytest.mark.parametrize("case,code,needle", [
    ("missing", 3, "no such file"),
    ("notimage", 3, "not a supported image"),
    ("badflag", 2, "unrecognized arguments"),
    ("badvalue", 2, "invalid style_weight"),
    ("weights", 5, "offline"),
    ("same", 7, "one of the inputs"),
])
def test_subprocess_errors_are_one_line_with_exit_codes(pictures, tmp_path, case, code, needle):
    photo, art = pictures
    (tmp_path / "fake.png").write_text("not a picture")
    out = tmp_path / "o.png"
    args = {
        "missing": ["style", tmp_path / "nope.jpg", art, "-o", out],
        "notimage": ["style", photo, tmp_path / "fake.png", "-o", out],
        "badflag": ["style", photo, art, "--frobnicate"],
        "badvalue": ["style", photo, art, "-o", out, "--style-weight", "-3"],
        "weights": ["style", photo, art, "-o", out, "--model", "vgg19", "--size", "64"],
        "same": ["style", photo, art, "-o", photo, "--overwrite"],
    }[case]
    result = _run(*args)
    assert result.returncode == code, result.stderr
    lines = [l for l in result.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("painterly: error:") and needle in lines[0]
    assert "Traceback" not in result.stderr
    assert not out.exists()


def test_subprocess_success_and_weights_listing(pictures, tmp_path):
    photo, art = pictures
    result = _run("style", photo, art, "-o", tmp_path / "s.png", "-q", *FAST)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "s.png").exists()
    listing = _run("weights", "list")
    assert listing.returncode == 0 and "vgg16-caffe" in listing.stdout
    path = _run("weights", "path", "vgg19-torchvision")
    assert path.returncode == 5 and "vgg19-dcbb9e9d.pth" in path.stderr


def test_weights_path_and_verify_with_shared_folder(real_weights, capsys):
    assert main(["weights", "path", "vgg16-caffe"]) == 0
    assert capsys.readouterr().out.strip().endswith("vgg16-caffe-features.safetensors")
    assert main(["weights", "verify", "vgg16-caffe"]) == 0
    assert "OK" in capsys.readouterr().out


def test_ctrl_c_saves_the_picture_so_far(pictures, tmp_path):
    import signal
    import time
    photo, art = pictures
    out = tmp_path / "long.png"
    args = [sys.executable, "-m", "painterly", "style", str(photo), str(art), "-o", str(out),
            "--model", "tiny", "--size", "64", "--iterations", "100000", "--precision", "fp32"]
    proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True, preexec_fn=default_sigint)
    deadline = time.time() + 120
    line = ""
    while "scale 1/" not in line and time.time() < deadline:  # wait for the first iterations
        line = proc.stderr.read(200) or line
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "picture so far saved to" in err and "Traceback" not in err
    assert (tmp_path / "long-unfinished.png").exists() and not out.exists()


def test_content_from_stdin(pictures, tmp_path):
    photo, art = pictures
    out = tmp_path / "stdin.png"
    result = subprocess.run([sys.executable, "-m", "painterly", "style", "-", str(art), "-o",
                             str(out), "-q", *FAST], input=photo.read_bytes(),
                            capture_output=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert out.exists()


def test_the_resume_command_replaces_an_earlier_resume_and_quotes_paths():
    from painterly.cli.common import resume_command
    argv = ["style", "my photo.jpg", "--style", "scream", "--resume", "old.ckpt", "-o", "o.png",
            "--resume=older.ckpt"]
    assert resume_command(argv, "o.ckpt") == ("painterly style 'my photo.jpg' --style scream "
                                              "-o o.png --resume o.ckpt")
