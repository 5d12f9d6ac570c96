"""Feature visualisation (painterly.inspect.features) on the tiny net: the objective moves the
right way, seeds give the same bytes, the grid, cancel, bad settings, the parameterisation."""
import threading
from dataclasses import fields

import pytest
import torch

from painterly.cli import build_parser, main
from painterly.cli.inspect_features import config_from_args
from painterly.errors import Cancelled, ConfigError
from painterly.inspect.features import (FeaturesConfig, Parameterisation, parse_channels,
                                        random_views, spectrum_scale, visualize)
from painterly.jobs import Job, RunOptions, run_job

TINY = dict(model="tiny", precision="fp32", device="cpu", size=48, jitter=4)
FLAGS = ["--model", "tiny", "--precision", "fp32", "--device", "cpu", "--size", "48",
         "--jitter", "4", "--steps", "3", "--channels", "0:2", "-q"]


@pytest.fixture(autouse=True)
def one_thread():
    """The tiny net's work is too small to share: two threads on a busy 2-core machine spin
    and wait (7× slower here), one is faster."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def values(result):
    return torch.tensor([u["value"] for u in result.units])


@pytest.mark.parametrize("negative", [False, True])
def test_objective_rises_or_falls_with_negative(negative):
    # conv4_1, before its ReLU, so that a unit can fall below 0; channels the random tiny
    # net responds to (some of its channels hardly move whatever the picture).
    start = visualize(FeaturesConfig(**TINY, layer="conv4_1", channels="2,3,5", steps=0,
                                     negative=negative))
    end = visualize(FeaturesConfig(**TINY, layer="conv4_1", channels="2,3,5", steps=12,
                                   negative=negative))
    change = values(end) - values(start)
    assert (change < 0).all() if negative else (change > 0).all()


def test_progress_events_one_per_step_with_the_objective():
    events = []
    visualize(FeaturesConfig(**TINY, channels="5", steps=4), callback=events.append,
              preview_every=2)
    assert [e.step for e in events] == [1, 2, 3, 4] and events[0].task == "features"
    assert set(events[0].losses) == {"objective"}
    assert events[0].image is None and events[1].image is not None  # the grid, at the cadence


def test_same_seed_same_bytes_other_seed_other_picture(tmp_path):
    outs = [tmp_path / name for name in ("a.png", "b.png", "c.png")]
    for out, seed in zip(outs, (1, 1, 2)):
        assert main(["inspect", "features", *FLAGS, "--seed", str(seed), "-o", str(out)]) == 0
    assert outs[0].read_bytes() == outs[1].read_bytes()
    assert outs[0].read_bytes() != outs[2].read_bytes()


def test_four_units_make_four_labelled_tiles():
    result = visualize(FeaturesConfig(**TINY, channels="0:4", steps=1))
    assert result.tiles.shape == (4, 3, 48, 48)
    assert [u["label"] for u in result.units] == [f"relu4_1:{c}" for c in range(4)]
    label = 12 + 6  # image.caption's strip
    assert result.picture.shape == (1, 3, 48 + label, 4 * 48 + 3 * 2)  # one row, 2-px gaps


def test_copies_direction_and_layer_objectives_label_their_tiles():
    result = visualize(FeaturesConfig(**TINY, objective="direction", channels="0:2", copies=2,
                                      diversity=1.0, steps=2))
    assert [u["label"] for u in result.units] == [
        "relu4_1:random 0 #1", "relu4_1:random 0 #2", "relu4_1:random 1 #1",
        "relu4_1:random 1 #2"]
    given = visualize(FeaturesConfig(**TINY, objective="direction", direction=(0, 1, -1),
                                     steps=1))
    assert [u["label"] for u in given.units] == ["relu4_1:direction"]
    FeaturesConfig(**TINY, layer="relu1_1", objective="layer")  # its 4 channels: "0:8" unread
    dream = visualize(FeaturesConfig(**TINY, layer="relu3_1", objective="layer", steps=1))
    assert [u["label"] for u in dream.units] == ["relu3_1"]
    one = visualize(FeaturesConfig(**TINY, layer="relu2_1:3", objective="unit", steps=1))
    assert [(u["label"], u["channel"]) for u in one.units] == [("relu2_1:3", 3)]


def test_cancel_keeps_the_grid_so_far():
    cancel = threading.Event()

    def stop_after_two(event):
        if event.step == 2:
            cancel.set()

    with pytest.raises(Cancelled) as info:
        visualize(FeaturesConfig(**TINY, channels="0:2", steps=10), stop_after_two, cancel)
    assert "2/10" in info.value.message
    assert info.value.partial.shape == (1, 3, 48 + 18, 2 * 48 + 2)


def test_cancelled_job_saves_the_unfinished_picture(tmp_path):
    cancel = threading.Event()
    out = tmp_path / "features.png"
    job = Job("features", (), FeaturesConfig(**TINY, channels="0:2", steps=10), str(out))
    with pytest.raises(Cancelled, match="features-unfinished.png"):
        run_job(job, RunOptions(callback=lambda e: cancel.set(), cancel=cancel))
    assert (tmp_path / "features-unfinished.png").is_file() and not out.exists()


def test_job_record_holds_each_units_final_value(tmp_path):
    out = tmp_path / "f.png"
    outcome = run_job(Job("features", (), FeaturesConfig(**TINY, channels="1,3", steps=2),
                          str(out)))
    assert [u["label"] for u in outcome.record["units"]] == ["relu4_1:1", "relu4_1:3"]
    assert outcome.record["losses"]["objective"] and out.is_file()


@pytest.mark.parametrize("setting, value", [
    ("layer", "relu9_9"), ("channels", "0:999"), ("channels", "a:b"), ("channels", ""),
    ("objective", "neuron"), ("size", 8), ("steps", -1), ("lr", 0.0), ("jitter", -1),
    ("scale", (1.2, 0.9)), ("rotation", 270.0), ("copies", 0), ("diversity", -1.0),
    ("direction", (1.0, 2.0)), ("model", "alexnet")])
def test_bad_settings_name_the_setting(setting, value):
    with pytest.raises(ConfigError, match=f"invalid {setting}|`{setting}`"):
        FeaturesConfig(**{**TINY, setting: value})


def test_a_small_size_alone_is_valid():
    FeaturesConfig(size=32)  # the default jitter is bounded by the size when it runs


def test_channel_specs():
    assert parse_channels("0:4") == (0, 1, 2, 3)
    assert parse_channels("0:16:5,40") == (0, 5, 10, 15, 40)
    assert parse_channels((3, 7)) == (3, 7)


@pytest.mark.parametrize("fft, decorrelate", [(True, True), (True, False), (False, True)])
def test_parameterisation_gives_pictures_in_range_that_start_grey(fft, decorrelate):
    param = Parameterisation(2, 40, fft, decorrelate, torch.Generator().manual_seed(0),
                             torch.device("cpu"))
    x = param.pictures()
    assert x.shape == (2, 3, 40, 40) and 0 < x.min() and x.max() < 1
    assert (x - 0.5).abs().max() < 0.05  # lucid's small start: a grey picture
    x.mean().backward()
    assert param.params.grad is not None and param.params.grad.abs().sum() > 0


def test_spectrum_round_trips_and_is_scaled_one_over_f():
    scale = spectrum_scale(8, 8)
    assert scale.shape == (8, 5) and scale[0, 0] == 8 and scale[0, 4] == 2  # f = 1/8, 1/2
    param = Parameterisation(1, 16, True, False, torch.Generator().manual_seed(0),
                             torch.device("cpu"))
    picture = param.spectrum_picture()
    back = torch.fft.rfft2(picture * 4.0, norm="ortho")  # the inverse of the parameterisation
    want = torch.view_as_complex((param.scale * param.params).contiguous())
    assert torch.allclose(back[..., 1:8], want[..., 1:8], atol=1e-5)  # real-valued columns aside


def test_random_views_pad_with_grey():
    cfg = FeaturesConfig(**TINY, scale=(0.9, 1.0), rotation=5)  # the corners stay outside
    black = torch.zeros(2, 3, 48, 48)
    views = random_views(black, cfg, torch.Generator().manual_seed(0))
    assert views.shape[-1] > 48 and views[..., 0, 0].allclose(torch.full((2, 3), 0.5))


def test_every_config_field_has_a_flag_with_the_configs_default():
    args = build_parser().parse_args(["inspect", "features"])
    assert config_from_args(args) == FeaturesConfig()
    parser = build_parser()._subparsers._group_actions[0].choices["inspect"]
    flags = {a.dest for a in parser._subparsers._group_actions[0].choices["features"]._actions}
    assert {f.name for f in fields(FeaturesConfig)} <= flags
