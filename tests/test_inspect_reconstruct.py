"""painterly inspect reconstruct: Gatys et al.'s Figure 1 on the tiny net."""
import json
import threading
from dataclasses import fields

import pytest
import torch

from painterly import image as I
from painterly.cli import build_parser, main
from painterly.cli.inspect_reconstruct import config_from_args
from painterly.errors import Cancelled, ConfigError
from painterly.inspect import reconstruction as R
from painterly.jobs import Job, RunOptions, run_job

from conftest import picture, stripes

# Max pooling: with the tiny net's random weights and average pooling, optim's L-BFGS (no line
# search) overshoots on its second step at relu4_1 and needs ~12 iterations to come back below
# the start; VGG16 with the default average pooling does not (see bench_reconstruct.py).
TINY = dict(model="tiny", precision="fp32", size=48, iterations=6, pooling="max")
FLAGS = ["--model", "tiny", "--precision", "fp32", "--size", "48", "--iterations", "6",
         "--pooling", "max"]


@pytest.fixture(scope="module")
def figure():
    return R.reconstruct(picture(48, 64), stripes(64, 48), R.ReconstructConfig(**TINY))


def test_every_panel_lowers_its_loss(figure):
    labels = [r["label"] for r in figure.records]
    assert labels == ["content relu1_1", "content relu2_1", "content relu3_1",
                      "content relu4_1", "content relu5_1", "style relu1_1",
                      "style relu1_1…relu2_1", "style relu1_1…relu3_1",
                      "style relu1_1…relu4_1", "style relu1_1…relu5_1"]
    # The tiny net's random weights are ill-conditioned for optim's L-BFGS (no line search):
    # its deeper style panels can overshoot in 6 iterations, so they are only checked to
    # have run; VGG16's panels all fall (benchmarks/bench_reconstruct.py prints them).
    for record in figure.records[:6]:
        assert record["final_loss"] < record["start_loss"], record
    assert all(r["iterations"] == 6 and r["start_loss"] > 0 for r in figure.records)
    assert [r["layers"] for r in figure.records[5:]][-1] == list(R.STYLE_LAYERS)


def test_figure_has_both_rows_with_their_inputs(figure):
    pic = figure.picture
    assert pic.shape[:2] == (1, 3) and 0 <= pic.min() and pic.max() <= 1
    # two rows of 6 captioned tiles (48 px long side; a caption strip of 18 px) 4 px apart
    assert pic.shape[-1] == 6 * 48 + 5 * 4
    assert pic.shape[-2] == 2 * (48 + 18) + 4
    assert len(figure.panels) == 10 and figure.panels[0].shape == (1, 3, 36, 48)
    assert figure.panels[5].shape == (1, 3, 48, 36)  # the style row at the painting's shape


def test_same_seed_same_bytes_another_seed_differs(figure):
    again = R.reconstruct(picture(48, 64), stripes(64, 48), R.ReconstructConfig(**TINY))
    assert torch.equal(again.picture, figure.picture)
    other = R.reconstruct(picture(48, 64), stripes(64, 48), R.ReconstructConfig(
        **{**TINY, "seed": 1, "content_layers": ("relu2_1",), "style_layers": ("relu1_1",)}))
    assert not torch.equal(other.panels[0], figure.panels[1])


def test_one_progress_count_over_the_whole_figure_and_figure_previews():
    events = []
    R.reconstruct(picture(48, 64), stripes(64, 48), R.ReconstructConfig(
        **{**TINY, "iterations": 2, "content_layers": ("relu1_1", "relu2_1"),
           "style_layers": ("relu1_1", "relu2_1")}), events.append, preview_every=4)
    assert [e.step for e in events] == list(range(1, 9)) and {e.total for e in events} == {8}
    assert events[3].image is not None and events[3].image.shape[-1] > 48  # the figure


def test_cancel_raises_with_the_figure_so_far():
    cancel = threading.Event()

    def stop_in_the_third_panel(event):
        if event.step == 2 * 6 + 3:
            cancel.set()

    with pytest.raises(Cancelled) as info:
        R.reconstruct(picture(48, 64), stripes(64, 48), R.ReconstructConfig(**TINY),
                      stop_in_the_third_panel, cancel)
    partial = info.value.partial
    assert partial is not None and partial.shape[-1] == 6 * 48 + 5 * 4
    # finished panels kept, panels not reached left grey
    tile = lambda row, col: partial[0, :, row * 70 + 18 + 8, col * 52 + 20]  # noqa: E731
    assert not torch.allclose(tile(0, 1), torch.full((3,), R.UNREACHED))
    assert torch.allclose(tile(0, 5), torch.full((3,), R.UNREACHED))


def test_bad_options_name_the_setting():
    for kwargs, setting in ((dict(content_layers=("relu9_1",)), "`content_layers`"),
                            (dict(style_layers=()), "`style_layers`"),
                            (dict(style_layers=("relu1_1", "relu1_1")), "`style_layers`"),
                            (dict(iterations=0), "`iterations`"),
                            (dict(size=8), "`size`"),
                            (dict(pooling="min"), "pooling")):
        with pytest.raises(ConfigError, match=setting):
            R.ReconstructConfig(**kwargs)


def _parse(*argv):
    return build_parser().parse_args(["inspect", "reconstruct", "a.png", "b.png", *argv])


def test_cli_defaults_are_the_config_and_every_field_has_a_flag():
    assert config_from_args(_parse()) == R.ReconstructConfig()
    assert config_from_args(_parse("--content-layers", "relu2_1,relu4_1")).content_layers == (
        "relu2_1", "relu4_1")
    inspect = build_parser()._subparsers._group_actions[0].choices["inspect"]
    view = inspect._subparsers._group_actions[0].choices["reconstruct"]
    assert {f.name for f in fields(R.ReconstructConfig)} <= {a.dest for a in view._actions}


def test_cli_end_to_end_with_json_record(tmp_path, capsys):
    photo = I.save_image(picture(48, 64), tmp_path / "photo.png")
    art = I.save_image(stripes(48, 64), tmp_path / "art.png")
    out = tmp_path / "fig.png"
    argv = ["inspect", "reconstruct", str(photo), str(art), "-o", str(out), *FLAGS,
            "--content-layers", "relu1_1,relu3_1", "--style-layers", "relu1_1,relu2_1"]
    assert main([*argv, "--json", "-q"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["command"] == "reconstruct" and record["seed"] == 0
    assert [p["label"] for p in record["panels"]] == [
        "content relu1_1", "content relu3_1", "style relu1_1", "style relu1_1…relu2_1"]
    assert all(p["start_loss"] > 0 and p["iterations"] == 6 for p in record["panels"])
    assert out.exists()
    assert main([*argv, "--iterations", "0"]) == 2
    assert "--iterations" in capsys.readouterr().err


def test_cli_cancel_exits_130_keeping_the_figure_so_far(tmp_path, monkeypatch):
    photo = I.save_image(picture(48, 64), tmp_path / "photo.png")
    art = I.save_image(stripes(48, 64), tmp_path / "art.png")
    real = R.reconstruct

    def cancelled_in_panel_two(photo, painting, config, callback, cancel, preview_every):
        def relay(event):
            if event.step == config.iterations + 2:
                cancel.set()
            callback(event)
        return real(photo, painting, config, relay, cancel, preview_every)

    monkeypatch.setattr("painterly.jobs.reconstruct.reconstruct", cancelled_in_panel_two)
    out = tmp_path / "fig.png"
    assert main(["inspect", "reconstruct", str(photo), str(art), "-o", str(out), "-q",
                 *FLAGS]) == 130
    assert (tmp_path / "fig-unfinished.png").exists() and not out.exists()


def test_job_from_python_with_default_output(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    photo = I.save_image(picture(48, 64), tmp_path / "photo.png")
    art = I.save_image(stripes(48, 64), tmp_path / "art.png")
    cfg = R.ReconstructConfig(**{**TINY, "iterations": 2, "content_layers": ("relu1_1",),
                                 "style_layers": ("relu1_1",)})
    outcome = run_job(Job("reconstruct", (str(photo), str(art)), cfg), RunOptions())
    assert outcome.output.name == "photo_art_reconstruction.png" and outcome.output.exists()
    assert len(outcome.record["panels"]) == 2
