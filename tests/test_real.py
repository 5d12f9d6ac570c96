"""Integration tests with the real VGG16 (Caffe) weights on the shared pictures, small sizes."""
import pytest
import torch

import painterly
from painterly import image as I
from painterly.quality import distances, reference_extractor

from conftest import CONTENT, STYLE

pytestmark = pytest.mark.real


@pytest.fixture(scope="module")
def pair():
    return CONTENT / "tubingen.jpg", STYLE / "starry_night.jpg"


def test_stylisation_really_happens(real_weights, pair):
    content, style = pair
    cfg = painterly.TransferConfig(size=160, min_size=113, iterations=(40, 20))
    out = painterly.stylize(content, [style], cfg)
    assert out.shape == (1, 3, 120, 160)
    ref = reference_extractor()
    photo = I.resize(I.load_image(content), long_side=160)
    before = distances(photo, content, style, ref)
    after = distances(out, content, style, ref)
    # the picture's Gram statistics move most of the way to the painting's…
    assert after["style"] < 0.4 * before["style"], (before, after)
    # …while the photo's structure stays recognisable
    assert after["content"] < 0.95, after
    # and it is visibly a different picture
    assert (out - photo).abs().mean() > 0.05


@pytest.mark.skipif(not torch.cpu._is_avx512_bf16_supported(),
                    reason="this CPU has no native bf16 (AVX-512 BF16): `precision auto` runs "
                           "fp32 here, and emulated bf16 would take this test 50 s instead of 5")
def test_bf16_and_fp32_give_the_same_picture(real_weights, pair):
    content, style = pair
    common = dict(size=96, min_size=96, iterations=(15,))
    fp32 = painterly.stylize(content, [style], painterly.TransferConfig(precision="fp32", **common))
    bf16 = painterly.stylize(content, [style], painterly.TransferConfig(precision="bf16", **common))
    # The optimisation amplifies rounding differences pixel by pixel, so compare what
    # matters: the two pictures are close and equally good by both distances.
    assert (fp32 - bf16).abs().mean() < 0.05
    ref = reference_extractor()
    d32, d16 = distances(fp32, content, style, ref), distances(bf16, content, style, ref)
    for key in ("style", "content"):
        assert abs(d16[key] - d32[key]) < 0.1 * d32[key], (d32, d16)
