"""Built-in styles (painterly.styles): by name in fast and style, the list, the contact sheet.
Uses painterly's shipped fast models and the tiny net: no shared weights."""
import json

import pytest
import torch

from painterly import cli, styles
from painterly import image as I
from painterly.errors import ConfigError
from painterly.fast import FastConfig
from painterly.jobs import fast_sheet

from conftest import picture

FIVE = ("starry-night", "scream", "shipwreck", "great-wave", "composition-vii")


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "photo.png"
    I.save_image(picture(60, 80, seed=2), path)
    return path


def test_the_five_public_domain_paintings_load_by_name_with_their_provenance():
    assert styles.names() == FIVE
    for name, record in styles.describe().items():
        painting = I.load_image(styles.path(name))
        assert max(painting.shape[-2:]) == 512
        assert styles.path(name).stat().st_size < 150_000
        assert {"title", "painter", "year", "source", "licence"} <= set(record)
        assert record["licence"] == "public domain"
    shipped = {p.name.lower() for p in styles.FOLDER.iterdir()}
    assert not any("matisse" in n or "woman" in n or "tubingen" in n for n in shipped)


def test_a_bad_name_lists_the_names(photo, tmp_path, capsys):
    with pytest.raises(ConfigError) as exc:
        styles.path("starry_night")
    assert all(name in str(exc.value) for name in FIVE)
    code = cli.main(["fast", str(photo), "--style", "mona-lisa", "-o", str(tmp_path / "o.png")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and err[0].startswith("painterly: error: no built-in style")
    assert all(name in err[0] for name in FIVE)
    assert cli.main(["fast", str(photo)]) == 2  # no painting at all
    assert "--style NAME" in capsys.readouterr().err


def test_styles_command_lists_names_and_provenance(capsys):
    assert cli.main(["styles"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == list(FIVE)
    assert cli.main(["styles", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["scream"]["painter"] == "Edvard Munch"


def test_fast_and_style_take_a_built_in_style_by_name(photo, tmp_path):
    out = tmp_path / "fast.png"
    assert cli.main(["fast", str(photo), "--style", "great-wave", "-o", str(out), "-q"]) == 0
    record = json.loads(I.png_text(out.read_bytes())["painterly-record"])
    assert record["inputs"]["styles"][0]["path"] == str(styles.path("great-wave"))
    # A painting file and a built-in style blend, files first.
    painting = tmp_path / "p.png"
    I.save_image(picture(50, 50, seed=5), painting)
    out = tmp_path / "style.png"
    assert cli.main(["style", str(photo), str(painting), "--style", "scream", "--model", "tiny",
                     "--size", "48", "--iterations", "2", "-o", str(out), "-q"]) == 0
    record = json.loads(I.png_text(out.read_bytes())["painterly-record"])
    assert [s["path"] for s in record["inputs"]["styles"]] == [str(painting),
                                                                str(styles.path("scream"))]


def test_the_sheet_has_one_labelled_tile_per_style(photo, tmp_path):
    out = tmp_path / "sheet.png"
    assert cli.main(["fast", str(photo), "--sheet", "-o", str(out), "-q"]) == 0
    sheet = I.load_image(out)
    record = json.loads(I.png_text(out.read_bytes())["painterly-record"])
    assert tuple(record["styles"]) == FIVE
    # 6 tiles (the photo, then each style), 3 columns × 2 rows, each a caption strip over
    # the painted photo (80 × 60 here, below the work size).
    strip = fast_sheet.CAPTION_SIZE + 6
    tile_h, tile_w, gap = 60 + strip, 80, 4
    assert sheet.shape[-2:] == (2 * tile_h + gap, 3 * tile_w + 2 * gap)
    tiles = [sheet[..., r * (tile_h + gap): r * (tile_h + gap) + tile_h,
                   c * (tile_w + gap): c * (tile_w + gap) + tile_w]
             for r in range(2) for c in range(3)]
    for tile in tiles:
        label = tile[..., :strip, :]
        assert (label < 0.3).any() and (label > 0.95).float().mean() > 0.5  # dark text on white
    # Every style tile differs from the photo and from the others.
    painted = [t[..., strip:, :] for t in tiles]
    for i in range(1, 6):
        assert all((painted[i] - painted[j]).abs().mean() > 0.02 for j in range(i))
    with pytest.raises(ConfigError, match="each painting on its own"):  # nothing to blend
        fast_sheet.check(_job(photo, tmp_path, FastConfig(style_weights=(1.0, 2.0))),
                         tmp_path / "x.png")


def _job(photo, tmp_path, config=FastConfig()):
    from painterly.jobs import Job
    return Job("fast-sheet", (str(photo), str(photo)), config, str(tmp_path / "x.png"))


def test_a_sheet_of_the_paintings_given(photo, tmp_path):
    painting = tmp_path / "my painting.png"
    I.save_image(picture(50, 50, seed=5), painting)
    out = tmp_path / "sheet.png"
    assert cli.main(["fast", str(photo), str(painting), "--style", "scream", "--sheet",
                     "-o", str(out), "-q"]) == 0
    record = json.loads(I.png_text(out.read_bytes())["painterly-record"])
    assert record["styles"] == [str(painting), str(styles.path("scream"))]
    strip = fast_sheet.CAPTION_SIZE + 6
    sheet = I.load_image(out)
    assert sheet.shape[-2:] == (60 + strip, 3 * 80 + 2 * 4)  # photo and two tiles, one row
    tiles = [sheet[..., strip:, c * 84: c * 84 + 80] for c in range(3)]
    assert (tiles[1] - tiles[2]).abs().mean() > 0.02  # each painting on its own
    assert fast_sheet._label(str(painting), True) == "my painting.png"
    assert fast_sheet._label(str(styles.path("scream")), True) == styles.label("scream")


def test_sheet_tiles_are_at_the_work_size():
    assert fast_sheet.tile_side(FastConfig()) == 512
    assert fast_sheet.tile_side(FastConfig(work_size=0, size=300)) == 300
    torch.manual_seed(0)
