import importlib
import json
import os
import subprocess
import sys
import threading
from dataclasses import fields

import pytest
import torch
from PIL import Image

import painterly
from painterly.cli import build_parser, main
from painterly.cli.dream import config_from_args
from painterly.errors import Cancelled, ConfigError, DivergedError
from painterly.features import NetSpec, build_extractor
from painterly import imageops, objectives, video
from painterly.progress import Tracker

from conftest import CONTENT, picture, stripes

# painterly.dream is the function; its module is painterly.deepdream.
D = importlib.import_module("painterly.deepdream")

TINY = dict(model="tiny", precision="fp32", octaves=2, steps=4)
FAST = ["--model", "tiny", "--precision", "fp32", "--octaves", "2", "--steps", "3"]


@pytest.fixture(scope="module")
def tiny_extractor():
    return build_extractor(NetSpec("tiny"), ("relu3_3", "relu4_3"), torch.device("cpu"), "fp32")


def test_roll_then_unroll_is_identity():
    x = torch.rand(1, 3, 37, 53)
    for shift in [(0, 0), (5, 11), (36, 52), (40, 60)]:
        assert torch.equal(imageops.unroll(imageops.roll(x, shift), shift), x)
    assert not torch.equal(imageops.roll(x, (5, 11)), x)


def test_tiles_cover_the_picture_exactly_in_near_equal_parts():
    slices = imageops.tile_slices(1000, 512)
    assert [(s.start, s.stop) for s in slices] == [(0, 500), (500, 1000)]
    assert imageops.tile_slices(300, 512) == [slice(0, 300)]
    assert all(s.stop - s.start <= 512 for s in imageops.tile_slices(2048, 512))


def _objective(extractor, reference, **kw):
    return objectives.make_objective(extractor, objectives.parse_layers(("relu4_3",)), "mean", reference, **kw)


def test_one_tile_gradient_equals_whole_picture_gradient(tiny_extractor):
    x = picture(64, 80)
    objective = _objective(tiny_extractor, x)
    tiled, value = imageops.tiled_gradient(x, objective, tile_size=128)
    whole = x.clone().requires_grad_(True)
    total = objective(whole)
    total.backward()
    assert torch.equal(tiled, whole.grad) and value == pytest.approx(total.item())
    # With 2×2 tiles every tile still gets its own, non-zero gradient.
    split, _ = imageops.tiled_gradient(x, objective, tile_size=40)
    assert split.shape == x.shape and not torch.equal(split, tiled)
    assert all(split[..., ys, xs].abs().sum() > 0 for ys in (slice(0, 32), slice(32, 64))
               for xs in (slice(0, 40), slice(40, 80)))


def test_objective_rises_and_progress_counts_to_total():
    events = []
    out = D.dream(picture(64, 80), D.DreamConfig(**dict(TINY, steps=8)), callback=events.append)
    values = [e.losses["objective"] for e in events]
    assert values[-1] > 1.5 * values[0], values
    assert [e.step for e in events] == list(range(1, 17)) and events[-1].total == 16
    assert {e.stage for e in events} == {"octave 1/2", "octave 2/2"}
    assert out.shape == (1, 3, 64, 80) and 0 <= out.min() and out.max() <= 1


def test_octave_sizes_and_output_keeps_input_size():
    assert D.octave_sizes(768, 1024, 4, 1.4) == [(280, 373), (392, 522), (549, 731), (768, 1024)]
    assert D.octave_sizes(50, 70, 5, 1.5) == [(33, 47), (50, 70)]  # below 32 px: skipped
    assert D.octave_sizes(40, 40, 1, 1.4) == [(40, 40)]
    events = []
    out = D.dream(picture(51, 77), D.DreamConfig(**dict(TINY, octaves=3, steps=1)),
                  callback=events.append)
    assert out.shape == (1, 3, 51, 77) and events[-1].total == 2  # third octave < 32 px


def test_size_option_resizes_the_long_side():
    out = D.dream(picture(48, 64), D.DreamConfig(**dict(TINY, steps=1, size=96)))
    assert out.shape == (1, 3, 72, 96)


def test_same_seed_same_bytes_other_seed_other_picture():
    cfg = D.DreamConfig(**dict(TINY, seed=3, tile_size=64))
    a, b = D.dream(picture(64, 96), cfg), D.dream(picture(64, 96), cfg)
    c = D.dream(picture(64, 96), D.DreamConfig(**dict(TINY, seed=4, tile_size=64)))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_channel_and_guide_objectives_differ_from_default():
    photo = picture(64, 80)
    default = D.dream(photo, D.DreamConfig(**TINY))
    channel = D.dream(photo, D.DreamConfig(**dict(TINY, layers=("relu4_3:5",))))
    guided = D.dream(photo, D.DreamConfig(**TINY), guide=stripes(64, 64))
    for other in (channel, guided):
        assert (other - default).abs().mean() > 0.2 * (default - photo).abs().mean()
    assert (channel - guided).abs().mean() > 0


def test_guide_file_in_config_equals_guide_argument(tmp_path):
    path = painterly.save_image(stripes(64, 64), tmp_path / "guide.png")
    cfg = D.DreamConfig(**dict(TINY, steps=2))
    from_file = D.dream(picture(48, 64), D.DreamConfig(**dict(TINY, steps=2, guide=str(path))))
    assert torch.equal(from_file, D.dream(picture(48, 64), cfg, guide=path))


def test_layer_weights_change_the_balance():
    photo = picture(64, 80)
    layers = ("relu3_3", "relu4_3")
    a = D.dream(photo, D.DreamConfig(**dict(TINY, layers=layers, layer_weights=(1, 0.01))))
    b = D.dream(photo, D.DreamConfig(**dict(TINY, layers=layers, layer_weights=(0.01, 1))))
    assert not torch.equal(a, b)


@pytest.mark.parametrize("kw,name", [
    (dict(octaves=0), "octaves"), (dict(octave_scale=1.0), "octave_scale"),
    (dict(step_size=0), "step_size"), (dict(tile_size=8), "tile_size"),
    (dict(layers=("relu9_9",)), "layers"), (dict(layers=("relu4_2:x",)), "layers"),
    (dict(layers=("relu4_2:3",), guide="g.png"), "layers"), (dict(objective="max"), "objective"),
    (dict(layer_weights=(1, 2)), "layer_weights"), (dict(smoothing=-1), "smoothing"),
    (dict(layers=("relu5_4",)), "layers"),  # a VGG19 layer asked of VGG16
])
def test_invalid_settings_name_the_parameter(kw, name):
    with pytest.raises(ConfigError, match=f"invalid {name}"):
        D.DreamConfig(**kw)


def test_vgg19_layers_are_accepted_for_vgg19():
    assert D.DreamConfig(model="vgg19", layers=("relu5_4",)).layers == ("relu5_4",)


def test_channel_out_of_range_names_the_valid_channels():
    with pytest.raises(ConfigError, match="channels 0–31"):
        D.dream(picture(), D.DreamConfig(**dict(TINY, layers=("relu4_2:99",))))


def test_cancel_returns_the_picture_so_far_at_full_size():
    cancel = threading.Event()
    with pytest.raises(Cancelled) as info:
        D.dream(picture(64, 80), D.DreamConfig(**TINY), callback=lambda e: cancel.set(),
                cancel=cancel)
    assert info.value.partial.shape == (1, 3, 64, 80)


def test_nan_guard_stops_with_the_last_good_picture():
    x = picture(48, 64)
    run = Tracker("dream", 3)
    with pytest.raises(DivergedError) as info:
        D.dream_octaves(x, lambda tile: tile.sum() * float("nan"), D.DreamConfig(**TINY),
                        run, torch.Generator().manual_seed(0))
    # No step succeeded: the last good picture is the input, carried up to full size.
    assert info.value.last_good.shape == x.shape
    assert torch.allclose(info.value.last_good, x, atol=1e-6)


def test_zoom_animation_writes_the_right_number_of_gif_frames(tmp_path):
    events = []
    frames = list(D.dream_zoom(picture(48, 64), D.DreamConfig(**dict(TINY, steps=2)), frames=3,
                               zoom=1.1, rotate=4, callback=events.append))
    assert len(frames) == 3 and all(f.shape == (1, 3, 48, 64) for f in frames)
    assert events[-1].step == events[-1].total == 12
    assert events[-1].stage == "frame 3/3 octave 2/2"
    path = video.save_animation(frames, tmp_path / "zoom.gif", fps=10)
    with Image.open(path) as gif:
        assert gif.n_frames == 3 and gif.size == (64, 48)


def test_zoom_rotate_identity_and_zoom_in():
    x = picture(48, 64)
    assert torch.allclose(imageops.zoom_rotate(x, 1.0, 0.0), x, atol=1e-5)
    zoomed = imageops.zoom_rotate(x, 2.0, 0.0)
    centre = D.I.resize(x[..., 12:36, 16:48], size=(48, 64))
    assert (zoomed - centre).abs().mean() < (x - centre).abs().mean()


def test_rotation_turns_counter_clockwise():
    x = torch.zeros(1, 3, 41, 41)
    x[..., 20, 35] = 1  # a dot right of the centre…
    turned = imageops.zoom_rotate(x, 1.0, 90.0)[0, 0]
    assert divmod(int(turned.argmax()), 41) == (5, 20)  # …goes to the top


def test_mp4_without_imageio_is_a_clear_config_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "imageio", None)
    monkeypatch.setitem(sys.modules, "imageio.v2", None)
    with pytest.raises(ConfigError, match=r"pip install 'painterly\[video\]'"):
        video.save_animation([picture()], tmp_path / "a.mp4")
    assert not (tmp_path / "a.mp4").exists()


def test_mp4_is_written_when_the_video_extra_is_installed(tmp_path):
    imageio = pytest.importorskip("imageio.v2")
    pytest.importorskip("imageio_ffmpeg")
    path = video.save_animation([picture(49, 65, seed=i) for i in range(3)], tmp_path / "a.mp4")
    with imageio.get_reader(path) as reader:
        assert reader.count_frames() == 3 and reader.get_meta_data()["size"] == (64, 48)


# ------------------------------------------------------------------ command line


def _parse(*argv):
    return build_parser().parse_args(["dream", "a.png", *argv])


def test_cli_defaults_are_the_configs_and_every_field_has_a_flag():
    assert config_from_args(_parse()) == D.DreamConfig()
    args = _parse("--layers", "relu4_3", "relu5_1:7", "--layer-weights", "1", "0.5")
    assert config_from_args(args).layers == ("relu4_3", "relu5_1:7")
    dests = {a.dest for a in build_parser()._subparsers._group_actions[0].choices["dream"]._actions}
    assert {f.name for f in fields(D.DreamConfig)} <= dests


def test_cli_writes_png_with_settings_json_and_snapshots(tmp_path, capsys):
    photo = painterly.save_image(picture(48, 64), tmp_path / "photo.png")
    out = tmp_path / "d.png"
    code = main(["dream", str(photo), "-o", str(out), "--json", "--seed", "5",
                 "--save-every", "3", *FAST])
    assert code == 0
    record = json.loads(capsys.readouterr().out)
    assert record["output"] == str(out) and record["seed"] == 5 and "objective" in \
        record["losses"]
    with Image.open(out) as png:
        assert png.size == (64, 48) and json.loads(png.text["painterly"])["model"] == "tiny"
    assert sorted(p.name for p in tmp_path.glob("d.*.png")) == ["d.0003.png", "d.0006.png"]


def test_cli_zoom_animation_and_saved_frames(tmp_path):
    photo = painterly.save_image(picture(48, 64), tmp_path / "photo.png")
    out = tmp_path / "zoom.gif"
    code = main(["dream", str(photo), "-o", str(out), "--frames", "3", "--zoom", "1.05",
                 "--save-frames", str(tmp_path / "frames"), "-q", *FAST])
    assert code == 0
    with Image.open(out) as gif:
        assert gif.n_frames == 3
    assert sorted(p.name for p in (tmp_path / "frames").iterdir()) == \
        ["frame_0000.png", "frame_0001.png", "frame_0002.png"]


def test_cli_guide_and_channel(tmp_path, capsys):
    photo = painterly.save_image(picture(48, 64), tmp_path / "photo.png")
    guide = painterly.save_image(stripes(48, 64), tmp_path / "guide.jpg")
    out = tmp_path / "guided.png"
    assert main(["dream", str(photo), "--guide", str(guide), "-o", str(out), "-q", *FAST]) == 0
    assert json.loads(Image.open(out).text["painterly"])["guide"] == str(guide)
    assert main(["dream", str(photo), "--guide", str(guide), "--layers", "relu4_2:3",
                 "-o", str(tmp_path / "x.png"), *FAST]) == 2
    assert "invalid layers" in capsys.readouterr().err


def test_cli_refuses_before_any_work(tmp_path, capsys):
    photo = painterly.save_image(picture(48, 64), tmp_path / "photo.png")
    existing = tmp_path / "old.png"
    existing.write_bytes(b"precious")
    assert main(["dream", str(photo), "-o", str(existing), *FAST]) == 7
    assert existing.read_bytes() == b"precious"
    assert main(["dream", str(photo), "-o", str(tmp_path / "a.gif"), *FAST]) == 2
    assert main(["dream", str(photo), "-o", str(tmp_path / "a.png"), "--frames", "2",
                 *FAST]) == 7
    assert "--frames" in capsys.readouterr().err


def test_cli_cancel_saves_the_unfinished_picture(tmp_path, monkeypatch):
    photo = painterly.save_image(picture(48, 64), tmp_path / "photo.png")
    real_dream = D.dream

    def cancelled_dream(picture, config, callback=None, cancel=None, guide=None, **kw):
        cancel.set()
        return real_dream(picture, config, callback, cancel, guide, **kw)

    monkeypatch.setattr("painterly.jobs.dream.dream", cancelled_dream)
    assert main(["dream", str(photo), "-o", str(tmp_path / "d.png"), "-q", *FAST]) == 130
    assert (tmp_path / "d-unfinished.png").exists() and not (tmp_path / "d.png").exists()


def test_cli_cancelled_animation_keeps_the_frames_so_far(tmp_path, monkeypatch):
    photo = painterly.save_image(picture(48, 64), tmp_path / "photo.png")

    def one_frame_then_cancel(picture, config, frames, zoom, rotate, callback, cancel, guide,
                              preview_every):
        yield picture
        raise Cancelled("cancelled", partial=picture)

    monkeypatch.setattr("painterly.jobs.dream.dream_zoom", one_frame_then_cancel)
    out = tmp_path / "z.gif"
    assert main(["dream", str(photo), "-o", str(out), "--frames", "5", "-q", *FAST]) == 130
    with Image.open(tmp_path / "z-unfinished.gif") as gif:
        assert gif.n_frames == 1
    assert not out.exists()


@pytest.mark.parametrize("case,code,needle", [
    ("octaves", 2, "invalid octaves"),
    ("missing", 3, "no such file"),
])
def test_subprocess_errors_are_one_line_with_exit_codes(tmp_path, case, code, needle):
    photo = painterly.save_image(picture(48, 64), tmp_path / "photo.png")
    out = tmp_path / "d.png"
    args = {"octaves": [photo, "-o", out, *FAST, "--octaves", "0"],
            "missing": [tmp_path / "nope.jpg", "-o", out, *FAST]}[case]
    result = subprocess.run([sys.executable, "-m", "painterly", "dream", *map(str, args)],
                            capture_output=True, text=True, env=dict(os.environ), timeout=120)
    assert result.returncode == code, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("painterly: error:") and needle in lines[0]
    assert not out.exists()


# ------------------------------------------------------------------ real weights


@pytest.mark.real
def test_real_dream_grows_the_objective_and_changes_the_picture(real_weights):
    events = []
    cfg = D.DreamConfig(size=128, octaves=2, steps=5)
    out = D.dream(CONTENT / "tubingen.jpg", cfg, callback=events.append)
    photo = D.I.resize(D.I.load_image(CONTENT / "tubingen.jpg"), long_side=128)
    assert out.shape == photo.shape == (1, 3, 96, 128)
    values = [e.losses["objective"] for e in events]
    assert values[-1] > 1.5 * values[0], values
    assert (out - photo).abs().mean() > 0.02
