"""The quick preset: the fast network's picture as the start of a short optimisation. The
fast start uses painterly's shipped fast models; the optimisation the tiny net."""
import json

import pytest

from painterly import cli, styles
from painterly import image as I
from painterly.errors import ConfigError
from painterly.fast import FastConfig, fast_stylize
from painterly.transfer import (PRESETS, TransferConfig, iteration_schedule, starts_from_fast,
                                stylize)

from conftest import picture


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    I.save_image(picture(48, 64, seed=4), path)
    return path


def test_quick_schedule_and_when_it_starts_from_the_fast_picture():
    assert PRESETS["quick"] == (20, 0, 10)
    assert iteration_schedule(TransferConfig(quality="quick"), 3) == [20, 0, 10]
    assert starts_from_fast(TransferConfig(quality="quick"))
    assert starts_from_fast(TransferConfig(init="fast"))
    assert not starts_from_fast(TransferConfig(quality="quick", init="noise"))
    assert not starts_from_fast(TransferConfig())
    with pytest.raises(ConfigError, match="fast"):  # the library alone can't paint it
        stylize(picture(), picture(seed=1), TransferConfig(model="tiny", size=48, init="fast"))


def test_quick_starts_from_the_fast_networks_picture(photo, tmp_path):
    def run(*flags):
        out = tmp_path / f"out{len(list(tmp_path.iterdir()))}.png"
        assert cli.main(["style", str(photo), "--style", "scream", "--model", "tiny",
                         "--size", "64", "--iterations", "0", "-o", str(out), "-q", *flags]) == 0
        return I.load_image(out), json.loads(I.png_text(out.read_bytes())["painterly-record"])
    start, record = run("--quality", "quick")
    assert record["settings"]["quality"] == "quick"
    fast = fast_stylize(I.load_image(photo), I.load_image(styles.path("scream")),
                        FastConfig(size=0, palette=0.0))   # the decoder's own colours
    # 0 iterations: the start itself (the job reads the painting reduced, hence not exactly)
    assert (start - fast).abs().mean() < 0.02
    assert (start - I.load_image(photo)).abs().mean() > 0.1


def test_a_scale_without_iterations_only_carries_the_picture_up(monkeypatch):
    from painterly import transfer
    sizes = []
    real = transfer.style_grams

    def counting(extractor, cfg, paintings, blend, size):
        sizes.append(size)
        return real(extractor, cfg, paintings, blend, size)
    monkeypatch.setattr(transfer, "style_grams", counting)
    cfg = TransferConfig(model="tiny", size=64, min_size=32, iterations=(2, 0, 1))
    out = stylize(picture(48, 64, seed=2), picture(seed=3), cfg)
    assert out.shape == (1, 3, 48, 64)
    assert sizes == [32, 64]  # the middle scale (45 px) read neither painting nor photo
