"""Top patches (Zeiler & Fergus): receptive fields, the scan's top-k, resume, the atlas."""
import io
import json
import tarfile
import threading

import pytest
import torch
from torch import nn

from painterly import image as I
from painterly.cli.main import main
from painterly.errors import Cancelled, ConfigError, OutputError
from painterly.inspect import patches as P
from painterly.jobs import Job, RunOptions, run_job
from painterly.nets import get_net

from conftest import picture, stripes

LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")


def tiny(**kw):
    kw.setdefault("layers", LAYERS)
    return P.TopPatchesConfig(model="tiny", precision="fp32", size=64, **kw)


def folder(tmp_path, n, name="photos", bad=False):
    """n small pictures of a few shapes (so batches split), optionally one broken file."""
    root = tmp_path / name
    root.mkdir()
    shapes = [(48, 64), (64, 48), (56, 56)]
    for i in range(n):
        h, w = shapes[i % 3]
        made = picture(h, w, seed=i) if i % 4 else stripes(h, w) * 0.8 + picture(h, w, i) * 0.2
        I.save_image(made, root / f"{i:03d}.png")
    if bad:
        (root / "050_broken.jpg").write_bytes(b"not a jpeg")
    return root


def scan_folder(root, cfg, **kw):
    pictures = P.Pictures(str(root))
    return pictures.names, P.scan(pictures.names, I.load_image, cfg, **kw)


# ---- receptive fields against a brute-force computation

def changed_units(net: nn.Sequential, size: int, y: int, x: int) -> dict[int, torch.Tensor]:
    """Perturb input pixel (y, x) of a black picture: which units of every layer change."""
    base = torch.zeros(1, 3, size, size)
    probe = base.clone()
    probe[0, :, y, x] = 1.0
    changed = {}
    with torch.no_grad():
        a, b = base, probe
        for i, module in enumerate(net):
            a, b = module(a), module(b)
            changed[i] = (b - a).abs().amax(1)[0] > 0
    return changed


def linear_positive(net: nn.Sequential) -> nn.Sequential:
    """Averaging weights, no bias: every unit then depends on every pixel of its field (no
    ReLU can hide one), so the changed units are exactly the fields holding the pixel."""
    for m in net:
        if isinstance(m, nn.Conv2d):
            m.weight.data.fill_(1.0 / (9 * m.in_channels))
            m.bias.data.zero_()
    return net


@pytest.mark.parametrize("model,size", [("tiny", 96), ("vgg16", 96)])
def test_receptive_fields_match_brute_force(model, size):
    info = get_net(model)
    net = linear_positive(info.build(pooling="avg")[: info.layer("relu5_1").index + 1])
    expected_fields = {"relu1_1": 3, "relu2_1": 10, "relu3_1": 24, "relu4_1": 60, "relu5_1": 132}
    assert {n: info.layer(n).receptive_field for n in LAYERS} == expected_fields
    for y, x in ((5, 100 % size), (size // 2, 3), (size - 2, size // 3)):
        changed = changed_units(net, size, y, x)
        for layer in info.layers[: len(net)]:
            grid = changed[layer.index]
            h, w = grid.shape
            rows = torch.tensor([P.patch_box(layer, i, 0)[0] <= y < P.patch_box(layer, i, 0)[2]
                                 for i in range(h)])
            cols = torch.tensor([P.patch_box(layer, 0, j)[1] <= x < P.patch_box(layer, 0, j)[3]
                                 for j in range(w)])
            assert torch.equal(grid, rows[:, None] & cols[None, :]), (model, layer.name, y, x)


def test_cut_patch_pads_grey_at_borders():
    pic = torch.rand(1, 3, 20, 30)
    patch = P.cut_patch(pic, (-3, 25, 7, 35))
    assert patch.shape == (1, 3, 10, 10)
    assert torch.equal(patch[..., 3:, :5], pic[..., 0:7, 25:30])
    assert (patch[..., :3, :] == P.GREY).all() and (patch[..., :, 5:] == P.GREY).all()


# ---- the scan

def brute_force_top(names, cfg, layer):
    """Every picture's activations at once: per channel, the k largest of the per-picture
    best ``per_picture`` scores."""
    extractor = P.extractor_for(cfg)
    read_at, sign = P.read_layer(cfg.model, layer, cfg.negative), -1 if cfg.negative else 1
    offers = []
    with torch.no_grad():
        for name in names:
            feats = extractor(P.fit(I.load_image(name), cfg.size))[read_at][0] * sign
            offers.append(feats.flatten(1).topk(cfg.per_picture, dim=1).values)
    return torch.cat(offers, 1).sort(1, descending=True).values[:, : cfg.k]


@pytest.mark.parametrize("kw", [{}, {"negative": True}, {"per_picture": 2, "k": 4}])
def test_top_k_are_the_k_largest(tmp_path, kw):
    cfg = tiny(layers=("relu2_1", "relu4_1"), **kw)
    names, result = scan_folder(folder(tmp_path, 7), cfg, batch=3)
    for layer in cfg.layers:
        expected = brute_force_top(names, cfg, layer)
        got = result.tables[layer]["score"]
        n = expected.shape[1]  # fewer offers than k: the rest of the table stays empty
        assert torch.allclose(got[:, :n], expected, rtol=1e-5, atol=1e-6)
        assert (got[:, n:] == float("-inf")).all()
        if kw.get("per_picture") is None:  # at most one entry per picture and channel
            for c in range(expected.shape[0]):
                pics = [e["picture"] for e in result.entries(layer, c)]
                assert len(pics) == len(set(pics))


def test_index_values_equal_a_fresh_forward_pass(tmp_path):
    cfg = tiny(layers=("relu1_1", "relu3_1", "relu5_1"))
    root = folder(tmp_path, 5)
    out = tmp_path / "atlas"
    run_job(Job("top-patches", (str(root),), cfg, str(out)))
    index = json.loads((out / "index.json").read_text())
    extractor = P.extractor_for(cfg)
    for layer, data in index["layers"].items():
        assert data["receptive_field"] == get_net("tiny").layer(layer).receptive_field
        for channel in data["channels"][:3]:
            assert len(channel["entries"]) == 5  # 5 pictures, at most one each
            for e in channel["entries"]:
                with torch.no_grad():
                    feats = extractor(P.fit(I.load_image(e["source"]), cfg.size))[layer]
                row, col = e["position"]
                assert feats[0, channel["channel"], row, col].item() == pytest.approx(
                    e["value"], rel=1e-5, abs=1e-6)
                h, w = e["picture_size"]
                assert max(h, w) == 64 and e["box"][2] - e["box"][0] == data["receptive_field"]


def test_state_does_not_grow_with_the_number_of_pictures(tmp_path):
    cfg = tiny()
    sizes = []
    for n in (3, 12):
        _, result = scan_folder(folder(tmp_path, n, f"p{n}"), cfg)
        buffer = io.BytesIO()
        torch.save(result.state_dict(), buffer)
        sizes.append(len(buffer.getvalue()))
    assert abs(sizes[1] - sizes[0]) < 200, sizes  # only the digest's and counts' digits differ


def test_resume_gives_the_same_index_and_a_bad_file_is_reported(tmp_path):
    cfg = tiny(layers=("relu1_1", "relu3_1"))
    root = folder(tmp_path, 9, bad=True)
    whole = tmp_path / "whole"
    outcome = run_job(Job("top-patches", (str(root),), cfg, str(whole)))
    assert [f.source for f in outcome.failures] == [str(root / "050_broken.jpg")]

    cancel = threading.Event()

    def stop_after_four(event):
        if event.step == 4:
            cancel.set()
    parts = tmp_path / "parts"
    job = Job("top-patches", (str(root),), cfg, str(parts))
    with pytest.raises(Cancelled, match="again to continue|saved"):
        run_job(job, RunOptions(callback=stop_after_four, cancel=cancel))
    partial = json.loads((parts / "index.json").read_text())
    assert not partial["complete"] and partial["scanned"] == 4
    reported = []
    steps = []
    outcome = run_job(job, RunOptions(callback=lambda e: steps.append(e.step),
                                      on_item=reported.append))
    assert steps[0] == 5 and outcome.record["resumed_at"] == 4
    assert [r.source for r in reported] == [str(root / "050_broken.jpg")]
    a = json.loads((whole / "index.json").read_text())
    b = json.loads((parts / "index.json").read_text())
    assert a["layers"] == b["layers"] and a["skipped"] == b["skipped"]
    # a finished atlas is refused without `overwrite`; a file is refused as output
    with pytest.raises(OutputError, match="finished atlas"):
        run_job(job)
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file"):
        run_job(Job("top-patches", (str(root),), cfg, str(tmp_path / "file")))


def test_config_is_checked():
    with pytest.raises(ConfigError, match="layers"):
        tiny(layers=("relu9_9",))
    with pytest.raises(ConfigError, match="per_picture"):
        tiny(k=3, per_picture=4)


def test_guided_projection_is_of_the_recorded_unit(tmp_path):
    cfg = tiny(layers=("relu3_1",), project=True)
    names, result = scan_folder(folder(tmp_path, 3), cfg)
    extractor = P.extractor_for(cfg)
    layer = get_net("tiny").layer("relu3_1")
    for c in range(3):
        for e in result.entries("relu3_1", c):
            pic = P.fit(I.load_image(names[e["picture"]]), cfg.size)
            grad, value = P.guided_gradient(extractor, pic, layer, "relu3_1", c,
                                            e["row"], e["col"])
            assert value == pytest.approx(e["score"], rel=1e-5, abs=1e-6)  # window = whole
            assert grad.shape == (1, 3, 24, 24) and grad.abs().sum() > 0


# ---- the command line

def test_cli_writes_the_atlas_from_a_tar(tmp_path, capsys):
    root = folder(tmp_path, 3, bad=True)
    tar_path = tmp_path / "photos.tar"
    with tarfile.open(tar_path, "w") as tar:
        for p in sorted(root.iterdir()):
            tar.add(p, arcname=f"photos/{p.name}")
    out = tmp_path / "atlas"
    args = ["inspect", "top-patches", str(tar_path), "-o", str(out), "--model", "tiny",
            "--precision", "fp32", "--size", "64", "--layers", "relu1_1,relu3_1", "-k", "4",
            "--progress", "none"]
    code = main(args + ["--project", "--json"])
    assert code == 3  # one broken picture: reported, the atlas made from the others
    captured = capsys.readouterr()
    assert f"painterly: error: {tar_path}:photos/050_broken.jpg:" in captured.err
    assert json.loads(captured.out)["command"] == "top-patches"
    index = json.loads((out / "index.json").read_text())
    entry = index["layers"]["relu3_1"]["channels"][0]["entries"][0]
    assert entry["source"].startswith(f"{tar_path}:photos/")
    grid = I.load_image(out / "relu3_1" / "channel_0000.png")
    assert grid.shape[-1] > 2 * 2 * 48  # 2 columns of patch + projection pairs
    for name in ("relu1_1.png", "relu3_1.png", "index.html", "relu1_1.html", "relu3_1.html"):
        assert (out / name).is_file()
    page = (out / "relu3_1.html").read_text()
    assert 'href="relu3_1/channel_0000.png"' in page and "http" not in page
    assert "<script" not in page
    assert main(args) != 0  # a finished atlas is not replaced without --overwrite
    assert "--overwrite" in capsys.readouterr().err
