"""The benchmark's quick mode as a smoke test (no timing assertions)."""
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from painterly import image as I

from conftest import picture

BENCH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench.py"


def _load(name: str, monkeypatch):
    """Import a benchmarks/ script as a module."""
    spec = importlib.util.spec_from_file_location(name, BENCH.with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def test_quick_benchmark_writes_its_report(tmp_path, monkeypatch):
    bench = _load("bench", monkeypatch)
    out = tmp_path / "perf.md"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| tutorial baseline |" in text and "| default |" in text
    assert "GFLOP/s" in text and "## DeepDream defaults" in text
    assert (tmp_path / "images" / "perf_default_quick.jpg").exists()
    assert round(bench.vgg_gflop(384, 512)) in range(200, 240)  # the issue's ≈226 GFLOP


def test_quick_fast_benchmark_writes_its_report(tmp_path, monkeypatch):
    bench = _load("bench_fast", monkeypatch)
    out = tmp_path / "fast.md"
    assert bench.main(["--quick", "--out", str(out)]) == 0
    text = out.read_text()
    assert "| painterly |" in text and "| random style |" in text and "**edges**" in text
    assert "| painterly --work-size 0 |" in text and "| painterly --model vgg16 |" in text
    assert list((tmp_path / "images").glob("fast_painterly_*.jpg"))
    for name in ("fast_painterly_96.jpg", "fast_painterly_full_96.jpg",
                 "fast_painterly_vgg16_96.jpg"):
        assert (tmp_path / "images" / name).exists()


def test_compare_decoders_scores_each_decoder(corpora, tiny_decoder, monkeypatch, capsys):
    compare = _load("compare_decoders", monkeypatch)
    assert compare.main([str(tiny_decoder), str(tiny_decoder), "--model", "tiny", "--pairs", "3",
                         "--photos", str(corpora / "photos"),
                         "--paintings", str(corpora / "paintings")]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if str(tiny_decoder) in line]
    assert len(rows) == 2 and rows[0] == rows[1]  # one decoder, the same fixed pairs
    style, content, *layers = [float(v) for v in rows[0].strip("| ").split(" | ")[1:]]
    assert len(layers) == 5 and style == pytest.approx(sum(layers) / 5, abs=1e-3) and content > 0


def _corpora(tmp_path, count: int) -> dict:
    """Folders of ``count`` small photos and paintings, as the corpora's stand-ins."""
    folders = {}
    for name in ("photos", "paintings"):
        folders[name] = tmp_path / name
        folders[name].mkdir()
        for k in range(count):
            I.save_image(picture(40, 48, seed=k + (9 if name == "paintings" else 0)),
                         folders[name] / f"{k}.png")
    return folders


def test_heldout_benchmark_shows_each_pair_beside_the_peer(tmp_path, monkeypatch, capsys):
    heldout = _load("heldout_fast", monkeypatch)
    folders = _corpora(tmp_path, 3)
    assert heldout.main(["--out", str(tmp_path / "out"), "--pairs", "2", "--size", "64",
                         "--photos", str(folders["photos"]), "--paintings",
                         str(folders["paintings"]), "--variants", "texture=0",
                         "--quick"]) == 0
    text = (tmp_path / "out" / "fast_heldout.md").read_text()
    assert "| painterly |" in text and "| painterly texture=0 |" in text and "pair 2:" in text
    sheet = I.load_image(tmp_path / "out" / "images" / "fast_heldout.jpg")
    assert sheet.shape[-2] == 2 * 256            # one row per pair


def test_blind_judging_hides_the_sides_and_tallies_against_the_key(tmp_path, monkeypatch,
                                                                 capsys):
    blind = _load("blind_fast", monkeypatch)
    folders = _corpora(tmp_path, 4)
    out = tmp_path / "blind"
    assert blind.main(["make", "--out", str(out), "--pairs", "2", "--offsets", "0/0,1/1",
                       "--size", "64", "--cell", "64", "--a", "", "--b", "texture=0",
                       "--photos", str(folders["photos"]), "--paintings",
                       str(folders["paintings"]), "--quick", "--seed", "3"]) == 0
    panels = sorted(out.glob("pair_*.png"))
    assert [p.name for p in panels] == [f"pair_0{k}.png" for k in range(1, 5)]
    assert I.load_image(panels[0]).shape[-2:] == (128, 128)   # photo, painting / A, B
    key = json.loads((tmp_path / "blind.key.json").read_text())  # beside the folder, not in it
    assert not list(out.glob("*.json"))
    assert all({v["A"], v["B"]} == {"a", "b"} for v in key["pairs"].values())
    assert key["a"] == "painterly (defaults)" and key["b"] == "texture=0"
    # Each judge votes for method a on every pair, by the side a took there.
    for judge in ("one", "two"):
        (tmp_path / f"{judge}.txt").write_text("\n".join(
            f"0{k} {'A' if key['pairs'][f'0{k}']['A'] == 'a' else 'B'}: clearer"
            for k in range(1, 5)))
    (tmp_path / "three.txt").write_text("01 draw\n02 draw\n")
    assert blind.main(["tally", "--out", str(out)] +
                      [str(tmp_path / f"{j}.txt") for j in ("one", "two", "three")]) == 0
    table = capsys.readouterr().out
    assert "| verdicts | 8 | 0 | 2 |" in table          # a, texture=0, draw
    assert "| pairs (majority) | 4 | 0 | 0 |" in table
    (tmp_path / "bad.txt").write_text("01 maybe\n")
    with pytest.raises(SystemExit, match="not A, B or draw"):
        blind.main(["tally", "--out", str(out), str(tmp_path / "bad.txt")])
