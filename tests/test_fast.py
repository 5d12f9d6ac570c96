"""Fast (AdaIN) style transfer and its training, on the tiny random net and a tiny decoder."""
import json

import pytest
import torch
from torch import nn

import painterly
from painterly import cli
from painterly import image as I
from painterly.corpus import load_pictures, random_crops
from painterly.errors import ConfigError, WeightsError
from painterly.fast import (MARGIN, DistillConfig, FastConfig, FastStylizer, TrainConfig,
                            load_decoder, parse_widths, train)
from painterly.fast.ops import (adain, feature_stats, mirror_pad, one_thread, seed_texture,
                                style_statistics, target_features, wct, whitening)
from painterly.fast.stylizer import _inside
from painterly.fast.train import DECODER, gram_term
from painterly.nets.decoder import (EdgeReflect, SkipDecoder, SubpixelConv, build_decoder,
                                    fuse_upsampling,
                                    start_from)
from painterly.weights import PACKAGED

from conftest import CONTENT, STYLE, _train_cfg, picture, stripes


def test_adain_gives_the_style_statistics():
    content = torch.randn(2, 8, 5, 7) * 3 + 1
    style = torch.randn(2, 8, 6, 4) * 0.5 - 2
    mean, std = feature_stats(style)
    out_mean, out_std = feature_stats(adain(content, mean, std))
    assert torch.allclose(out_mean, mean, atol=1e-4)
    assert torch.allclose(out_std, std, atol=1e-3)


def test_the_eigendecomposition_runs_on_one_thread_and_restores_the_count(monkeypatch):
    seen = []
    eigh = torch.linalg.eigh

    def spy(matrix):
        seen.append(torch.get_num_threads())
        return eigh(matrix)
    monkeypatch.setattr(torch.linalg, "eigh", spy)
    before = torch.get_num_threads()
    style_statistics(torch.rand(1, 8, 6, 6))
    assert seen == [1] and torch.get_num_threads() == before
    with pytest.raises(RuntimeError):
        with one_thread():
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before


def test_decoder_upsamples_8x_without_transposed_convolutions():
    decoder = build_decoder(32, scale=1 / 16)
    assert not any(isinstance(m, nn.ConvTranspose2d) for m in decoder.modules())
    assert sum(isinstance(m, nn.ReflectionPad2d) for m in decoder.modules()) == \
        sum(isinstance(m, nn.Conv2d) for m in decoder.modules())
    assert decoder(torch.rand(1, 32, 5, 6)).shape == (1, 3, 40, 48)


def test_wct_gives_the_style_covariance():
    torch.manual_seed(3)
    mix = torch.randn(8, 8)
    content = (mix @ torch.randn(1, 8, 300)).reshape(1, 8, 15, 20) + 2
    style = (torch.randn(8, 8) @ torch.randn(1, 8, 240)).reshape(1, 8, 12, 20) - 1
    out = wct(content, style_statistics(style))

    def moments(f):
        x = f.flatten(2)[0]
        return x.mean(1), torch.cov(x, correction=0)
    (m_out, c_out), (m_s, c_s) = moments(out), moments(style)
    assert torch.allclose(m_out, m_s, atol=1e-3)
    assert torch.allclose(c_out, c_s, atol=1e-2 * c_s.abs().max())
    c_adain = moments(adain(content, *feature_stats(style)))[1]
    assert torch.allclose(c_adain.diagonal(), c_s.diagonal(), rtol=1e-2)
    assert not torch.allclose(c_adain, c_s, atol=1e-2 * c_s.abs().max())  # only the diagonal
    # With a reference region (the photo inside its margin), that region gets the statistics.
    inside = content[..., 2:13, 3:17]
    out = target_features(content, style_statistics(style), 1.0, reference=inside)
    (m_in, c_in) = moments(out[..., 2:13, 3:17])
    assert torch.allclose(m_in, m_s, atol=1e-3)
    assert torch.allclose(c_in, c_s, atol=1e-2 * c_s.abs().max())
    assert not torch.allclose(moments(out)[1], c_s, atol=1e-2 * c_s.abs().max())
    out = adain(content, *feature_stats(style), reference=inside)
    assert torch.allclose(feature_stats(out[..., 2:13, 3:17])[1], feature_stats(style)[1],
                          atol=1e-3)


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (5, 7), (9, 4)])
def test_subpixel_conv_equals_upsample_pad_conv(size):
    torch.manual_seed(1)
    conv = nn.Conv2d(6, 5, 3)
    plain = nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.ReflectionPad2d(1), conv)
    fused = fuse_upsampling(plain)
    assert len(fused) == 1 and isinstance(fused[0], SubpixelConv)
    x = torch.randn(2, 6, *size)
    with torch.no_grad():
        assert torch.allclose(fused(x), plain(x), atol=1e-5)


@pytest.mark.parametrize("shape", [(1, 5, 2, 2), (2, 6, 3, 7), (1, 4, 9, 4), (3, 8, 5)])
@pytest.mark.parametrize("channels_last", [False, True])
def test_edge_reflect_is_reflection_padding(shape, channels_last):
    x = torch.randn(*shape)
    if channels_last and x.dim() == 4:
        x = x.contiguous(memory_format=torch.channels_last)
    padded = EdgeReflect()(x)
    assert torch.equal(padded, nn.functional.pad(x, (1, 1, 1, 1), mode="reflect"))
    if x.dim() == 4:  # in the input's memory format: the next conv reads it as it is
        assert padded.is_contiguous(memory_format=torch.channels_last) == channels_last
    with pytest.raises(RuntimeError):  # too small to reflect: torch's own error
        EdgeReflect()(torch.randn(1, 2, 1, 4))


def test_fused_decoder_gives_the_same_picture():
    torch.manual_seed(2)
    decoder = build_decoder(32, scale=1 / 8).eval()
    fused = fuse_upsampling(decoder)
    assert sum(isinstance(m, SubpixelConv) for m in fused) == 3
    assert not any(isinstance(m, (nn.Upsample, nn.ReflectionPad2d)) for m in fused)
    assert sum(isinstance(m, EdgeReflect) for m in fused) == 4  # 7 convs, 3 after upsampling
    x = torch.rand(1, 32, 6, 5) * 100
    with torch.no_grad():
        assert torch.allclose(fused(x), decoder(x), atol=1e-4)


def test_random_crops_are_deterministic_and_in_range():
    pics = [torch.randint(0, 256, (3, 40, 50), dtype=torch.uint8) for _ in range(3)]
    a = random_crops(pics, 4, 32, torch.Generator().manual_seed(1))
    b = random_crops(pics, 4, 32, torch.Generator().manual_seed(1))
    assert a.shape == (4, 3, 32, 32) and torch.equal(a, b)
    assert 0 <= a.min() and a.max() <= 1


def test_training_lowers_the_loss_and_writes_everything(tiny_decoder):
    out = tiny_decoder.parent
    assert {p.name for p in out.iterdir()} >= {"checkpoint.pt", DECODER, "preview.png",
                                               "losses.jsonl"}
    log = [json.loads(line) for line in (out / "losses.jsonl").read_text().splitlines()]
    assert log[-1]["step"] == 30
    decoder, meta = load_decoder(tiny_decoder)
    assert meta["steps"] == "30" and json.loads(meta["losses"])["total"] > 0
    assert all(p.dtype == torch.float32 for p in decoder.parameters())  # fp16 file, fp32 net


def test_training_can_start_from_a_decoder_and_stop_on_time(tiny_decoder, corpora, tmp_path):
    path = train(_train_cfg(corpora, tmp_path, steps=10_000, init=str(tiny_decoder),
                            minutes=1e-9, warmup_steps=0, whiten=0.0))
    decoder, meta = load_decoder(path)
    assert meta["steps"] == "1" and meta["init"] == tiny_decoder.name  # stopped after a step
    assert (tmp_path / "checkpoint.pt").exists()
    start, _ = load_decoder(tiny_decoder)
    moved = [not torch.equal(a, b) for a, b in zip(start.state_dict().values(),
                                                   decoder.state_dict().values())]
    assert any(moved)  # it trained on from the given weights, and only a little:
    assert all(torch.allclose(a, b, atol=0.05) for a, b in
               zip(start.state_dict().values(), decoder.state_dict().values()))
    with pytest.raises(ConfigError, match="does not fit"):
        train(_train_cfg(corpora, tmp_path / "x", init=str(tiny_decoder), decoder_scale=1 / 8))


DEEPER = parse_widths("256/128,128/64,64/32,32")  # one more conv at full size


def test_a_deeper_decoder_starts_as_the_decoder_it_grows_from(tiny_decoder):
    small, _ = load_decoder(tiny_decoder)
    deep = build_decoder(small[2].in_channels, 1 / 16, 1.0, DEEPER)  # Scale, pad, conv, …
    assert len(deep) == len(small) + 3  # pad, conv, ReLU
    start_from(small, deep, "tiny")
    x = torch.rand(2, deep[2].in_channels, 5, 7)
    assert torch.equal(deep(x), small(x))
    with pytest.raises(ConfigError, match="does not fit"):  # widths changed, not only added
        start_from(small, build_decoder(deep[2].in_channels, 1 / 16, 1.0,
                                        parse_widths("256/256,128/64,64/32")), "tiny")


def test_training_a_deeper_decoder_from_a_smaller_one(tiny_decoder, corpora, tmp_path):
    path = train(_train_cfg(corpora, tmp_path, steps=2, init=str(tiny_decoder), widths=DEEPER,
                            warmup_steps=0, gram_distance=True))
    decoder, meta = load_decoder(path)  # the file says how to build it
    assert json.loads(meta["widths"]) == [list(b) for b in DEEPER]
    assert meta["gram_distance"] == "True"
    assert sum(isinstance(m, nn.Conv2d) for m in decoder) == 8
    with pytest.raises(ConfigError, match="widths"):
        TrainConfig(widths=((256,), (128,)))


def test_gram_distance_term_is_the_mean_style_distance_per_picture():
    from painterly.losses import gram_matrix, style_distance, style_loss
    torch.manual_seed(0)
    out, style = torch.rand(3, 8, 6, 6), torch.rand(3, 8, 6, 6)
    each = [style_distance(gram_matrix(out[i: i + 1]), gram_matrix(style[i: i + 1]))
            for i in range(3)]
    assert torch.allclose(gram_term(out, style, True), torch.stack(each).mean(), atol=1e-6)
    assert torch.equal(gram_term(out, style, False),
                       style_loss(gram_matrix(out), gram_matrix(style)))


def test_small_training_pictures_are_scaled_up_to_the_crop(tmp_path):
    I.save_image(picture(20, 30), tmp_path / "small.png")
    [pic] = load_pictures(str(tmp_path), 32)
    assert pic.dtype == torch.uint8 and pic.shape == (3, 32, 48)


def test_training_previews_ride_on_the_progress_events(corpora, tmp_path):
    events = []
    train(_train_cfg(corpora, tmp_path, steps=5, preview_every=2), callback=events.append)
    assert [e.step for e in events] == [1, 2, 3, 4, 5]
    with_picture = [e.step for e in events if e.image is not None]
    assert with_picture == [2, 4, 5]  # every preview_every steps, and the final checkpoint's
    assert events[-1].image.shape[-2:] == I.load_image(tmp_path / "preview.png").shape[-2:]


def test_resume_continues_to_the_same_decoder(corpora, tmp_path):
    unbroken = train(_train_cfg(corpora, tmp_path / "a", steps=4))
    train(_train_cfg(corpora, tmp_path / "b", steps=2))
    with pytest.raises(ConfigError, match="`resume`"):
        train(_train_cfg(corpora, tmp_path / "b", steps=4))
    resumed = train(_train_cfg(corpora, tmp_path / "b", steps=4), resume=True)
    a, _ = load_decoder(unbroken)
    b, _ = load_decoder(resumed)
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def test_resume_with_ema_continues_to_the_same_average(corpora, tmp_path):
    unbroken = train(_train_cfg(corpora, tmp_path / "a", steps=4, ema=0.5))
    train(_train_cfg(corpora, tmp_path / "b", steps=2, ema=0.5))
    resumed = train(_train_cfg(corpora, tmp_path / "b", steps=4, ema=0.5), resume=True)
    (a, meta), (b, _) = load_decoder(unbroken), load_decoder(resumed)
    assert meta["ema"] == "0.5"
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(x, y), name


def test_ema_exports_the_running_average_of_the_weights(corpora, tmp_path):
    """w̄ starts at the first step's weights, then w̄ ← d·w̄ + (1 − d)·w after each step."""
    from painterly.fast.train import Trainer

    cfg = _train_cfg(corpora, tmp_path, steps=3, ema=0.75, warmup_steps=1)
    photos, paintings = load_pictures(cfg.photos, 32), load_pictures(cfg.paintings, 32)
    trainer = Trainer(cfg, photos, paintings)
    average = None
    for _ in range(3):
        trainer.step()
        weights = {k: v.detach().clone() for k, v in trainer.decoder.state_dict().items()}
        average = weights if average is None else \
            {k: 0.75 * average[k] + 0.25 * weights[k] for k in weights}
    result = trainer.result.state_dict()
    assert any(not torch.equal(result[k], weights[k]) for k in weights)  # not the last weights
    for name, value in average.items():
        torch.testing.assert_close(result[name], value, rtol=1e-6, atol=1e-7)
    trainer.export(tmp_path / "d.safetensors", {})
    exported = load_decoder(tmp_path / "d.safetensors")[0].state_dict()
    for name, value in average.items():
        torch.testing.assert_close(exported[name], value, rtol=1e-3, atol=1e-4)  # fp16 file


def _tiny(decoder_path, **kw):
    return FastConfig(model="tiny", decoder=str(decoder_path), precision="fp32", **kw)


def _stylizer(decoder_path, **kw):
    # A decoder briefly trained against a random tiny net learns little (often a flat
    # picture); the plumbing tests use a fresh random one, lifted to mid-grey.
    torch.manual_seed(0)
    decoder = build_decoder(32, scale=1 / 16, input_scale=1.0)
    decoder[-1].bias.data += 0.5
    return FastStylizer(_tiny(decoder_path, **kw), decoder=decoder)


def test_fast_stylize_keeps_odd_sizes(tiny_decoder):
    photo, style = picture(50, 67), stripes(40, 40)
    out = painterly.fast_stylize(photo, style, _tiny(tiny_decoder, size=0))
    assert out.shape == (1, 3, 50, 67) and 0 <= out.min() and out.max() <= 1
    smaller = painterly.fast_stylize(photo, style, _tiny(tiny_decoder, size=40))
    assert smaller.shape == (1, 3, 30, 40)
    kept = painterly.fast_stylize(photo, style, _tiny(tiny_decoder, size=96))
    assert kept.shape == (1, 3, 50, 67)  # never scaled up


@pytest.mark.parametrize("h,w", [(1, 1), (1, 6), (5, 8), (20, 23)])
def test_pictures_smaller_than_the_margin_keep_their_size(tiny_decoder, h, w):
    photo = picture(h, w) if min(h, w) > 1 else torch.rand(1, 3, h, w)
    out = _stylizer(tiny_decoder, size=0)(photo, stripes(30, 30))
    assert out.shape == (1, 3, h, w) and torch.isfinite(out).all()
    x = torch.arange(5.0).view(1, 1, 1, 5).expand(1, 1, 3, 5)
    padded = mirror_pad(x, 6)
    assert padded.shape == (1, 1, 15, 17)
    assert padded[0, 0, 0].tolist() == [2, 3, 4, 3, 2, 1, 0, 1, 2, 3, 4, 3, 2, 1, 0, 1, 2]
    assert mirror_pad(torch.ones(1, 1, 1, 3), 2).shape == (1, 1, 5, 7)


def test_work_size_paints_small_and_scales_up(tiny_decoder):
    photo, style = picture(60, 80), stripes(40, 40)
    recorder = _Recorder()
    stylizer = FastStylizer(_tiny(tiny_decoder, size=0, work_size=40), decoder=recorder)
    out = stylizer(photo, style)
    assert out.shape == (1, 3, 60, 80)
    # relu4_1 of the 30×40 working picture with its mirrored margin, padded to ×8: 1/8 size
    margin = 2 * MARGIN
    assert recorder.seen.shape[-2:] == (-(-(30 + margin) // 8), -(-(40 + margin) // 8))
    full = FastStylizer(_tiny(tiny_decoder, size=0, work_size=0), decoder=recorder)
    full(photo, style)
    assert recorder.seen.shape[-2:] == (-(-(60 + margin) // 8), -(-(80 + margin) // 8))


class _Recorder(nn.Module):
    """A stand-in decoder that keeps the features it is given and returns mid-grey."""

    def forward(self, features):
        self.seen = features.clone()
        return torch.full((1, 3, features.shape[-2] * 8, features.shape[-1] * 8), 0.5)


@pytest.mark.parametrize("strength,whiten", [(0.0, 0.5), (0.5, 0.0), (1.0, 0.0), (1.0, 0.5)])
def test_strength_blends_photo_and_adain_features(tiny_decoder, strength, whiten):
    photo, style = picture(48, 64), stripes(40, 40)
    recorder = _Recorder()
    stylizer = FastStylizer(_tiny(tiny_decoder, size=0, strength=strength, whiten=whiten,
                                  texture=0.0), decoder=recorder)
    stylizer(photo, style)
    f_c = stylizer.encode(photo)["relu4_1"]
    inside = _inside(f_c, 48, 64, 8)
    f_s = _inside(stylizer.encode(I.resize(style, long_side=64))["relu4_1"], 64, 64, 8)
    full = (1 - whiten) * adain(f_c, *feature_stats(f_s), inside) + \
        whiten * wct(f_c, style_statistics(f_s), whitening(f_c, inside))
    assert torch.allclose(recorder.seen, strength * full + (1 - strength) * f_c, atol=1e-4)


def test_luminance_option_keeps_the_photos_colours(tiny_decoder):
    photo, style = picture(50, 67), stripes(40, 40)
    lum = _stylizer(tiny_decoder, size=0, preserve_color="luminance")(photo, style)
    # (clamping to the RGB cube after the swap moves a few out-of-gamut pixels)
    assert (I.rgb_to_yiq(lum)[:, 1:] - I.rgb_to_yiq(photo)[:, 1:]).abs().mean() < 0.03


def test_blend_of_two_styles_lies_between_them(tiny_decoder):
    stylizer = _stylizer(tiny_decoder, size=0)
    photo, a, b = picture(48, 48), stripes(48, 48), picture(48, 48, seed=5)
    only_a = stylizer.render(photo, [a], [1.0])
    only_b = stylizer.render(photo, [b], [1.0])
    half = stylizer.render(photo, [a, b], [0.5, 0.5])
    assert (half - only_a).abs().mean() < (only_b - only_a).abs().mean()
    assert (half - only_b).abs().mean() < (only_b - only_a).abs().mean()
    with pytest.raises(ConfigError, match="style weights"):
        FastStylizer(_tiny(tiny_decoder, style_weights=(1.0,)))(photo, [a, b])


def test_palette_moves_the_colours_part_way_to_the_paintings():
    a, b = stripes(40, 40) * 0.4 + 0.3, picture(40, 40, seed=5) * 0.5 + 0.2  # nothing clamps
    out = picture(48, 64, seed=3) * 0.6 + 0.2              # what the decoder painted
    stylizer = FastStylizer.__new__(FastStylizer)
    for weights in ([1.0, 0.0], [0.3, 0.7]):
        stylizer.cfg = FastConfig(palette=1.0)
        full = stylizer.match_palette(out, [a, b], weights)
        # all the way: the mean and covariance of the paintings' mixture (clamping aside)
        mean, cov = I.color_stats([a, b], weights)
        got_mean, got_cov = I.color_stats([full])
        assert torch.allclose(got_mean, mean, atol=0.02) and torch.allclose(got_cov, cov, atol=0.01)
        stylizer.cfg = FastConfig(palette=0.5, strength=0.6)  # part way: palette × strength
        torch.testing.assert_close(stylizer.match_palette(out, [a, b], weights),
                                   torch.lerp(out, full, 0.3))
    # The mixture counts each picture by its weight: the same as one picture of both.
    torch.testing.assert_close(I.color_stats([a, b], [0.5, 0.5]),
                               I.color_stats([torch.cat([a, b], -1)]))


def test_palette_is_off_at_0_and_when_the_photos_colours_are_kept(tiny_decoder):
    photo, style = picture(50, 67), stripes(40, 40)
    plain = _stylizer(tiny_decoder, size=0, palette=0.0)(photo, style)
    recoloured = _stylizer(tiny_decoder, size=0, palette=0.7)(photo, style)
    assert (plain - recoloured).abs().mean() > 0.01
    stylizer = _stylizer(tiny_decoder, size=0, palette=0.0)
    painting = I.resize(style, long_side=67)
    torch.testing.assert_close(plain, stylizer.render(photo, [painting], [1.0]))
    for keep in ("luminance", "histogram"):
        kept = _stylizer(tiny_decoder, size=0, preserve_color=keep)(photo, style)
        off = _stylizer(tiny_decoder, size=0, preserve_color=keep, palette=0.0)(photo, style)
        torch.testing.assert_close(kept, off)


@pytest.mark.parametrize("field,value", [("strength", 1.5), ("size", 8), ("palette", 1.2),
                                         ("preserve_color", "sepia"), ("style_weights", (0.0,))])
def test_bad_options_are_config_errors(field, value):
    with pytest.raises(ConfigError, match=field):
        FastConfig(**{field: value})


def test_bad_decoder_files_are_weights_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_decoder(tmp_path / "missing.safetensors")
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 100)
    with pytest.raises(WeightsError, match="corrupt safetensors file"):
        load_decoder(junk)
    from safetensors.torch import save_file
    other = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, str(other))
    with pytest.raises(WeightsError, match="not a painterly decoder"):
        load_decoder(other)


def test_cli_fast_on_a_folder_keeps_going_past_a_bad_picture(tiny_decoder, tmp_path, capsys):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        I.save_image(picture(40, 56, seed=i), photos / f"p{i}.png")
    (photos / "bad.png").write_bytes(b"\x89PNG broken")
    I.save_image(stripes(40, 40), tmp_path / "style.png")
    argv = ["fast", str(photos), str(tmp_path / "style.png"), "-o", str(tmp_path / "out"),
            "--model", "tiny", "--decoder", str(tiny_decoder), "--size", "0"]
    assert cli.main(argv) == 3
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["p0.png", "p1.png"]
    assert "bad.png" in capsys.readouterr().err
    assert cli.main(argv + ["--json"]) == 3  # a rerun skips what is painted, retries the rest
    record = json.loads(capsys.readouterr().out)
    assert record["skipped"] == 2 and record["failed"] == 1 and record["outputs"] == []
    assert cli.main(argv + ["--overwrite", "--json"]) == 3  # --overwrite paints them again
    record = json.loads(capsys.readouterr().out)
    assert record["failed"] == 1 and len(record["outputs"]) == 2 and record["skipped"] == 0


@pytest.mark.parametrize("command,config", [("fast", FastConfig), ("train-fast", TrainConfig),
                                            ("distill-fast", DistillConfig)])
def test_every_config_field_has_a_flag(command, config):
    from dataclasses import fields
    sub = next(a for a in cli.build_parser()._actions if a.dest == "command")
    flags = {a.dest for a in sub.choices[command]._actions}
    assert {f.name for f in fields(config)} <= flags


def test_cli_train_fast_then_fast(corpora, tmp_path):
    out = tmp_path / "run"
    assert cli.main(["train-fast", "--photos", str(corpora / "photos"), "--paintings",
                     str(corpora / "paintings"), "--out", str(out), "--steps", "2", "--batch",
                     "2", "--crop", "32", "--model", "tiny", "--decoder-scale", "0.0625",
                     "-q"]) == 0
    I.save_image(picture(40, 48), tmp_path / "photo.png")
    assert cli.main(["fast", str(tmp_path / "photo.png"), str(tmp_path / "photo.png"),
                     "-o", str(tmp_path / "o.png"), "--model", "tiny", "--decoder",
                     str(out / DECODER), "-q"]) == 0
    assert I.load_image(tmp_path / "o.png").shape[-2:] == (40, 48)


@pytest.mark.real
def test_shipped_decoder_stylises_the_shared_pair(real_weights):
    from painterly.quality import distances
    assert PACKAGED["adain-decoder"].path.is_file(), "painterly's trained decoder is missing from the package"
    content, style = CONTENT / "tubingen.jpg", STYLE / "starry_night.jpg"
    out = painterly.fast_stylize(content, style, FastConfig(size=256))
    photo = I.resize(I.load_image(content), long_side=256)
    assert out.shape == photo.shape
    before, after = distances(photo, content, style), distances(out, content, style)
    assert after["style"] < 0.7 * before["style"], (before, after)  # 0.73 -> 0.39 measured
    assert after["content"] < 1.35, after  # 1.28 measured at 256 px (1.05 at 512)
    assert (out - photo).abs().mean() > 0.05


def test_texture_seeds_only_the_flat_part_and_always_the_same():
    features = torch.zeros(1, 8, 12, 24)
    features[..., 12:] = torch.rand(1, 8, 12, 12, generator=torch.Generator().manual_seed(1)) * 4
    seeded = seed_texture(features, 2.0)
    assert torch.equal(seeded, seed_texture(features, 2.0))           # a fixed seed
    assert (seeded >= 0).all()                                         # still ReLU features
    flat, busy = (seeded - features)[..., :6], (seeded - features)[..., 18:]
    assert flat.abs().mean() > 0.1 and busy.abs().max() < 1e-6
    assert torch.equal(seed_texture(features, 0.0), features)


def test_texture_setting_changes_only_what_it_should(tiny_decoder):
    photo = torch.full((1, 3, 48, 64), 0.5)
    photo[..., 32:] = picture(48, 32)                                   # half flat, half busy
    plain = _stylizer(tiny_decoder, size=0, texture=0.0)(photo, stripes(40, 40))
    seeded = _stylizer(tiny_decoder, size=0, texture=3.0)(photo, stripes(40, 40))
    assert not torch.equal(plain, seeded)
    with pytest.raises(ConfigError, match="texture"):
        FastConfig(texture=-1)


def test_skip_decoder_starts_as_its_plain_decoder_and_loads_back(tmp_path):
    torch.manual_seed(0)
    plain = build_decoder(32, scale=1 / 16, input_scale=1.0).eval()
    skip = SkipDecoder(plain, [16, 8, 4], input_scale=1.0).eval()
    x = torch.rand(1, 32, 4, 5)
    skips = [torch.rand(1, c, 4 * k, 5 * k) for c, k in ((16, 2), (8, 4), (4, 8))]
    with torch.no_grad():
        assert torch.allclose(skip(x, skips), plain(x), atol=1e-6)    # joins start at zero
        skip.joins[2].weight.normal_()
        changed = skip(x, skips)
        assert not torch.allclose(changed, plain(x))
        fused = fuse_upsampling(skip)
        assert torch.allclose(fused(x, skips), changed, atol=1e-4)
        assert torch.allclose(skip(x, skips), changed)  # the trained decoder is untouched
        assert torch.allclose(fuse_upsampling(fused)(x, skips), changed, atol=1e-4)  # twice


def test_decoder_with_skips_trains_and_paints(corpora, tmp_path, tiny_decoder):
    path = train(_train_cfg(corpora, tmp_path / "skips", steps=3, init=str(tiny_decoder),
                            skips=True, detail_weight=1.0, warmup_steps=0))
    logged = [json.loads(line) for line in (path.parent / "losses.jsonl").read_text().splitlines()]
    assert logged[-1]["detail"] > 0
    decoder, meta = load_decoder(path)
    assert isinstance(decoder, SkipDecoder) and json.loads(meta["skip_channels"]) == [16, 8, 4]
    out = FastStylizer(_tiny(path, size=0))(picture(40, 56), stripes(32, 32))
    assert out.shape == (1, 3, 40, 56) and torch.isfinite(out).all()
    with pytest.raises(ConfigError, match="skips"):
        train(_train_cfg(corpora, tmp_path / "again", steps=1, init=str(path)))


def test_skips_that_do_not_fit_the_encoder_are_left_out(tiny_decoder):
    # painterly's decoder takes the slim encoder's shallow layers; --model vgg16 paints
    # without them, as the decoder without its skips.
    torch.manual_seed(0)
    plain = build_decoder(32, scale=1 / 16, input_scale=1.0)
    skip = SkipDecoder(plain, [7, 7, 7], input_scale=1.0)
    for join in skip.joins:
        join.weight.data.normal_()
    photo, style = picture(40, 48), stripes(32, 32)
    out = FastStylizer(_tiny(tiny_decoder, size=0), decoder=skip)(photo, style)
    assert torch.allclose(out, FastStylizer(_tiny(tiny_decoder, size=0), decoder=plain)(
        photo, style), atol=1e-5)


# ------------------------------------------------------------------ style statistics on disk

def _counting(stylizer):
    """The stylizer, with the number of pictures its encoder has encoded."""
    calls = []
    encode = stylizer.encode
    stylizer.encode = lambda picture: calls.append(picture.shape) or encode(picture)
    return stylizer, calls


def _entries(monkeypatch, tmp_path):
    folder = tmp_path / "stats"
    monkeypatch.setenv("PAINTERLY_STATS_CACHE", str(folder))
    return folder


def test_a_painting_seen_before_is_not_encoded_again_and_paints_the_same(
        tiny_decoder, monkeypatch, tmp_path):
    folder = _entries(monkeypatch, tmp_path)
    photo, style = picture(48, 64), stripes(40, 56)
    first, calls = _counting(_stylizer(tiny_decoder, size=0))
    out = first(photo, style)
    assert len(calls) == 2 and len(list(folder.glob("*.safetensors"))) == 1  # photo, painting
    again, calls = _counting(_stylizer(tiny_decoder, size=0))  # a new process's stylizer
    assert torch.equal(again(photo, style), out)
    assert len(calls) == 1  # the photo only
    other, calls = _counting(_stylizer(tiny_decoder, size=0))
    other(photo, stripes(40, 56).flip(-1))  # another painting misses
    assert len(calls) == 2 and len(list(folder.glob("*.safetensors"))) == 2


def test_other_encoder_weights_or_layers_miss_the_stored_statistics(tiny_decoder, monkeypatch,
                                                                    tmp_path):
    _entries(monkeypatch, tmp_path)
    photo, style = picture(48, 64), stripes(40, 56)
    _stylizer(tiny_decoder, size=0)(photo, style)
    changed, calls = _counting(_stylizer(tiny_decoder, size=0))
    with torch.no_grad():
        next(changed.encoder.parameters()).add_(0.01)
    changed(photo, style)
    assert len(calls) == 2
    skips, calls = _counting(_stylizer(tiny_decoder, size=0))
    skips.skips = ("relu1_1",)  # what a skip decoder reads: a different key
    assert skips._stored_key(style) != changed._stored_key(style)


@pytest.mark.parametrize("damage", ["garbage", "truncated", "other tensors", "zeroed numbers",
                                    "other shapes", "not statistics"])
def test_a_damaged_entry_is_computed_and_written_again(tiny_decoder, monkeypatch, tmp_path,
                                                       damage):
    from painterly import cache, weights
    folder = _entries(monkeypatch, tmp_path)
    photo, style = picture(48, 64), stripes(40, 56)
    out = _stylizer(tiny_decoder, size=0)(photo, style)
    (entry,) = folder.glob("*.safetensors")
    stored = cache.load(entry.stem)
    if damage == "garbage":
        entry.write_bytes(b"not a safetensors file")
    elif damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:-100])
    elif damage == "other tensors":
        weights.write_tensors(entry, {"mean": torch.zeros(3)})
    elif damage == "zeroed numbers":  # the header intact, the numbers after it zeroed
        data = entry.read_bytes()
        header = 8 + int.from_bytes(data[:8], "little")
        entry.write_bytes(data[:header] + bytes(len(data) - header))
    elif damage == "other shapes":  # a sound entry, checksum and all, of another net
        cache.store(entry.stem, {name: t[:, :2] for name, t in stored.items()})
    else:  # sound and the right shapes, but no statistics: eigenvalues must be > 0
        cache.store(entry.stem, {**stored, "values": -stored["values"]})
    again, calls = _counting(_stylizer(tiny_decoder, size=0))
    assert torch.equal(again(photo, style), out) and len(calls) == 2
    third, calls = _counting(_stylizer(tiny_decoder, size=0))
    assert torch.equal(third(photo, style), out) and len(calls) == 1  # written again, whole


@pytest.mark.parametrize("setting", ["off", "0", ""])
def test_the_cache_can_be_turned_off(tiny_decoder, monkeypatch, tmp_path, setting):
    monkeypatch.setenv("PAINTERLY_STATS_CACHE", setting)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    _stylizer(tiny_decoder, size=0)(picture(48, 64), stripes(40, 56))
    assert not any(tmp_path.rglob("*.safetensors"))


def test_the_cache_keeps_the_newest_entries_and_survives_an_unwritable_folder(
        tiny_decoder, monkeypatch, tmp_path):
    import os

    from painterly import cache
    folder = _entries(monkeypatch, tmp_path)
    monkeypatch.setattr(cache, "MAX_ENTRIES", 3)
    for k in range(5):
        cache.store(f"k{k}", {"x": torch.full((2,), float(k))})
        os.utime(folder / f"k{k}.safetensors", (k + 1, k + 1))
    assert sorted(p.stem for p in folder.glob("*.safetensors")) == ["k2", "k3", "k4"]
    assert cache.load("k1") is None and torch.equal(cache.load("k4")["x"], torch.full((2,), 4.0))
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PAINTERLY_STATS_CACHE", str(blocker / "stats"))
    out = _stylizer(tiny_decoder, size=0)(picture(48, 64), stripes(40, 56))  # paints anyway
    assert out.shape == (1, 3, 48, 64)
