"""The corpora's held-out split and the measures the fast decoder was never trained on."""
import pytest
import torch

from painterly import image as I
from painterly.corpus import HELDOUT_MIN, load_pictures, part_of
from painterly.quality import (edge_agreement, flat_fraction, palette_distance,
                               random_style_distance)

from conftest import picture, stripes


def test_split_is_by_name_stable_and_about_a_tenth():
    names = [f"paintings/class{k % 7}_{k}.jpg" for k in range(3000)]
    held = [n for n in names if part_of(n) == "heldout"]
    assert 0.08 < len(held) / len(names) < 0.12
    assert all(part_of(n) == part_of(n.split("/")[-1]) for n in names[:50])  # the name alone
    assert [part_of(n) for n in names] == [part_of(n) for n in names]


def _folder(path, count):
    path.mkdir()
    for k in range(count):
        I.save_image(picture(24, 24, seed=k), path / f"p{k:03d}.png")
    return path


def test_training_reads_only_the_train_part_of_a_corpus(tmp_path):
    folder = _folder(tmp_path / "big", HELDOUT_MIN + 20)
    train = load_pictures(str(folder), 16)
    held = load_pictures(str(folder), 16, part="heldout")
    every = load_pictures(str(folder), 16, part="all")
    assert len(train) + len(held) == len(every) == HELDOUT_MIN + 20 and held
    kept = {tuple(p.flatten()[:40].tolist()) for p in train}
    assert not kept & {tuple(p.flatten()[:40].tolist()) for p in held}   # disjoint
    with pytest.raises(ValueError, match="part"):
        load_pictures(str(folder), 16, part="test")


def test_a_small_folder_is_all_training(tmp_path):
    folder = _folder(tmp_path / "small", 12)
    assert len(load_pictures(str(folder), 16)) == 12


def test_palette_distance_is_zero_for_the_same_colours_and_grows_apart():
    a = stripes(64, 64)
    assert palette_distance(a, a) < 1e-6
    assert palette_distance(a.flip(-1), a) < 1e-6           # the same pixels, moved
    assert palette_distance(1 - a * 0.5, a) > palette_distance(a * 0.9, a) > 0


def test_flat_fraction_counts_flat_blocks():
    flat = torch.full((1, 3, 64, 64), 0.4)
    assert flat_fraction(flat) == 1.0
    noise = torch.rand(1, 3, 256, 256, generator=torch.Generator().manual_seed(0))
    assert flat_fraction(noise) == 0.0
    half = torch.full((1, 3, 256, 256), 0.4)
    half[..., 128:] = noise[..., 128:]
    assert flat_fraction(half) == pytest.approx(0.5)


def test_edge_agreement_is_one_for_the_photo_and_low_for_something_else():
    photo = stripes(64, 80)
    assert edge_agreement(photo, photo) == pytest.approx(1.0, abs=1e-4)
    assert edge_agreement(photo.transpose(-1, -2)[..., :64, :80], photo) < 0.5


def test_random_style_distance_is_zero_for_the_painting_and_positive_otherwise():
    painting = stripes(48, 48)
    assert random_style_distance(painting, painting, width=1 / 8) < 1e-4
    assert random_style_distance(picture(48, 48), painting, width=1 / 8) > 0.1
