"""painterly inspect activations: feature maps, 3-colour summaries, Gram heat maps (tiny net)."""
import json
from dataclasses import fields

import pytest
import torch
from PIL import Image

from painterly import image as I
from painterly.cli import build_parser, main
from painterly.cli.inspect_activations import config_from_args
from painterly.errors import Cancelled, ConfigError
from painterly.features import NetSpec, build_extractor
from painterly.inspect import activations as A
from painterly.jobs import Job, RunOptions, read_record, run_job

from conftest import picture

TINY = dict(model="tiny", precision="fp32", size=64, tile=48)
FLAGS = ["--model", "tiny", "--precision", "fp32", "--size", "64", "--tile", "48"]
LAYERS = ("relu1_1", "relu3_1", "relu5_1")


def tiny_features(photo, layers=LAYERS):
    extractor = build_extractor(NetSpec("tiny"), layers, torch.device("cpu"), "fp32")
    with torch.no_grad():
        return extractor(I.resize(photo, long_side=64))


def test_grid_shapes_records_and_most_active_first():
    photo = picture(48, 64)
    result = A.activation_maps(photo, A.ActivationsConfig(count=3, columns=2, **TINY))
    assert [r["layer"] for r in result.records] == list(LAYERS)
    feats = tiny_features(photo)
    for record in result.records:
        means = feats[record["layer"]][0].mean(dim=(1, 2))
        # brute force: the shown channels are the 3 with the largest means, in falling order
        brute = sorted(range(len(means)), key=lambda c: -float(means[c]))[:3]
        assert record["channels"] == brute
        assert record["mean_activations"] == pytest.approx([float(means[c]) for c in brute],
                                                           abs=1e-5)
        assert record["channels_total"] == feats[record["layer"]].shape[1]
    # picture strip + 3 layers, each: a label and 2 rows of 48×36 captioned tiles
    pic = result.picture
    assert pic.shape[:2] == (1, 3) and 0 <= pic.min() and pic.max() <= 1
    assert pic.shape[-1] == 2 * 48 + 4  # two columns of 48 px tiles, 4 px apart
    one_layer = A.activation_maps(photo, A.ActivationsConfig(layers=("relu1_1",), count=3,
                                                             columns=2, **TINY)).picture
    assert one_layer.shape[-2] < pic.shape[-2]


def test_channel_specs():
    assert A.parse_channels("0:4", 10) == (0, 1, 2, 3)
    assert A.parse_channels("2:10:3", 10) == (2, 5, 8)
    assert A.parse_channels("4:", 6) == (4, 5)
    assert A.parse_channels("7,1,3", 10) == (7, 1, 3)
    assert A.parse_channels((5, 0), 10) == (5, 0)
    assert A.parse_channels(None, 10) is None
    for bad in ("x", "1:2:3:4", "3:1", "", "0:4:0"):
        with pytest.raises(ConfigError, match="`channels`"):
            A.parse_channels(bad, 10)
    with pytest.raises(ConfigError, match="`channels`"):
        A.parse_channels("2,9", 4)
    result = A.activation_maps(picture(48, 64), A.ActivationsConfig(
        layers=("relu2_1",), channels="1,0", **TINY))
    assert result.records[0]["channels"] == [1, 0]
    with pytest.raises(ConfigError, match="`channels`"):  # relu1_1 of the tiny net has 4
        A.activation_maps(picture(48, 64), A.ActivationsConfig(layers=("relu1_1",),
                                                               channels="0,9", **TINY))


def test_colour_map_is_ordered_and_in_range():
    ramp = torch.linspace(0, 1, 50).view(1, 50)
    rgb = A.viridis(ramp)
    assert rgb.shape == (3, 1, 50) and rgb.min() >= 0 and rgb.max() <= 1
    assert torch.allclose(rgb[:, 0, 0], torch.tensor(A.VIRIDIS[0]) / 255)
    assert torch.allclose(rgb[:, 0, -1], torch.tensor(A.VIRIDIS[-1]) / 255)
    brightness = A.grey(rgb.unsqueeze(0))[0, 0, 0]
    assert (brightness[1:] >= brightness[:-1] - 1e-6).all()  # dark to light


def test_reduce_gives_three_colour_maps_in_range():
    feats = tiny_features(picture(48, 64), ("relu3_1",))["relu3_1"]
    rgb, explained = A.pca_colours(feats)
    assert rgb.shape == (1, 3, *feats.shape[-2:]) and rgb.min() >= 0 and rgb.max() <= 1
    assert explained == sorted(explained, reverse=True) and 0 < sum(explained) <= 1 + 1e-6
    rgb, losses, loadings = A.nmf_colours(feats, 40, seed=0)
    assert rgb.shape == (1, 3, *feats.shape[-2:]) and rgb.min() >= 0 and rgb.max() <= 1
    assert (loadings >= 0).all()
    assert all(b <= a + 1e-6 for a, b in zip(losses, losses[1:]))  # never increases
    assert losses[-1] < 0.5 * losses[0]
    for reduce in ("pca", "nmf"):
        result = A.activation_maps(picture(48, 64), A.ActivationsConfig(
            reduce=reduce, nmf_iterations=10, **TINY))
        assert result.picture.min() >= 0 and result.picture.max() <= 1
        assert ("explained_variance" if reduce == "pca" else "nmf_loss") in result.records[0]


def test_nmf_is_non_negative_seeded_and_matches_its_loss():
    x = torch.rand(300, 12)
    w, h, losses = A.nmf(x, 3, 30, seed=1)
    assert (w >= 0).all() and (h >= 0).all()
    direct = float((x - w @ h).pow(2).sum() / x.pow(2).sum())
    assert losses[-1] == pytest.approx(direct, rel=1e-3)
    w2, h2, _ = A.nmf(x, 3, 30, seed=1)
    assert torch.equal(w, w2) and torch.equal(h, h2)


def test_gram_heat_maps_ordered_by_diagonal_energy():
    photo = picture(48, 64)
    result = A.activation_maps(photo, A.ActivationsConfig(gram=True, **TINY))
    feats = tiny_features(photo)
    for record in result.records:
        f = feats[record["layer"]][0]
        g = result.grams[record["layer"]]
        c = f.shape[0]
        assert g.shape == (c, c)
        energy = f.pow(2).mean(dim=(1, 2))  # the Gram matrix's diagonal
        assert torch.allclose(g.diagonal(), energy, rtol=1e-4)
        assert record["order"][:5] == [int(i) for i in torch.argsort(energy, descending=True)[:5]]
    heat, _, _ = A.gram_heat_map(feats["relu3_1"], 48)
    c = feats["relu3_1"].shape[1]  # 16 channels: 3 px a cell
    assert heat.shape == (1, 3, 3 * c, 3 * c) and heat.min() >= 0 and heat.max() <= 1


def test_overlay_and_maps_are_at_the_tile_size():
    photo = picture(48, 64)
    maps = A.resample_map(torch.rand(1, 2, 6, 8), (36, 48))
    assert maps.shape == (1, 2, 36, 48)
    assert torch.equal(maps[..., :6, :6], maps[..., :1, :1].expand(-1, -1, 6, 6))  # nearest
    plain = A.activation_maps(photo, A.ActivationsConfig(layers=("relu2_1",), **TINY)).picture
    over = A.activation_maps(photo, A.ActivationsConfig(layers=("relu2_1",), overlay=True,
                                                        **TINY)).picture
    assert plain.shape == over.shape and not torch.equal(plain, over)


def test_bad_options_name_the_setting():
    for kwargs, setting in ((dict(layers=("relu9_9",)), "`layers`"),
                            (dict(layers=()), "`layers`"),
                            (dict(reduce="ica"), "`reduce`"),
                            (dict(count=0), "`count`"),
                            (dict(tile=4), "`tile`"),
                            (dict(size=8), "`size`"),
                            (dict(gram=True, reduce="pca"), "`gram`"),
                            (dict(channels="a:b"), "`channels`"),
                            (dict(model="resnet"), "model")):
        with pytest.raises(ConfigError, match=setting):
            A.ActivationsConfig(**kwargs)


def test_cancel_raises_with_the_figure_so_far():
    cancel = __import__("threading").Event()
    seen = []

    def stop_after_first(event):
        seen.append(event.stage)
        cancel.set()

    with pytest.raises(Cancelled) as info:
        A.activation_maps(picture(48, 64), A.ActivationsConfig(**TINY), stop_after_first, cancel)
    assert seen == ["relu1_1"] and info.value.partial.shape[1] == 3


def _parse(*argv):
    return build_parser().parse_args(["inspect", "activations", "a.png", *argv])


def test_cli_defaults_are_the_config_and_every_field_has_a_flag():
    assert config_from_args(_parse()) == A.ActivationsConfig()
    args = _parse("--layers", "relu1_1,relu2_1", "relu4_1", "--channels", "0:8", "--overlay")
    cfg = config_from_args(args)
    assert cfg.layers == ("relu1_1", "relu2_1", "relu4_1") and cfg.channels == "0:8"
    inspect = build_parser()._subparsers._group_actions[0].choices["inspect"]
    view = inspect._subparsers._group_actions[0].choices["activations"]
    assert {f.name for f in fields(A.ActivationsConfig)} <= {a.dest for a in view._actions}


def test_cli_end_to_end_with_json_record(tmp_path, capsys):
    photo = I.save_image(picture(48, 64), tmp_path / "photo.png")
    out = tmp_path / "maps.png"
    assert main(["inspect", "activations", str(photo), "--layers", "relu1_1,relu3_1",
                 "--count", "4", "-o", str(out), "--json", "-q", *FLAGS]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["command"] == "activations" and record["settings"]["count"] == 4
    assert [layer["layer"] for layer in record["layers"]] == ["relu1_1", "relu3_1"]
    assert len(record["layers"][1]["channels"]) == 4
    with Image.open(out) as im:
        assert read_record(im.text)["settings"]["layers"] == [
            "relu1_1", "relu3_1"]
    # an existing output is kept; a bad option names its flag
    assert main(["inspect", "activations", str(photo), "-o", str(out), "-q", *FLAGS]) == 7
    assert main(["inspect", "activations", str(photo), "-o", str(tmp_path / "b.png"),
                 "--reduce", "pca", "--gram", *FLAGS]) == 2
    assert "--gram" in capsys.readouterr().err


def test_job_from_python(tmp_path):
    photo = I.save_image(picture(48, 64), tmp_path / "photo.png")
    job = Job("activations", (str(photo),), A.ActivationsConfig(reduce="nmf", nmf_iterations=5,
                                                                **TINY),
              str(tmp_path / "nmf.png"))
    outcome = run_job(job, RunOptions())
    assert outcome.output.exists() and len(outcome.record["layers"]) == 3
