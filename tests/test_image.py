import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from painterly import image as I
from painterly.errors import ImageTooLargeError, InputImageError, OutputError


def _save(img: Image.Image, path, **kw):
    img.save(path, **kw)
    return path


def test_rgba_composited_over_white_hides_garbage(tmp_path):
    rgba = np.zeros((40, 40, 4), np.uint8)
    rgba[..., 0] = 255  # saturated red garbage…
    rgba[:, :20, 3] = 0  # …hidden by alpha = 0 on the left half
    rgba[:, 20:, 3] = 255
    t = I.load_image(_save(Image.fromarray(rgba, "RGBA"), tmp_path / "a.png"))
    assert t.shape == (1, 3, 40, 40)
    assert torch.allclose(t[0, :, :, :20], torch.ones(3, 40, 20))
    assert torch.allclose(t[0, :, 0, 30], torch.tensor([1.0, 0.0, 0.0]))


def test_palette_with_transparency_and_grey_modes(tmp_path):
    p = Image.new("P", (40, 40), 1)
    p.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    p.info["transparency"] = 1
    t = I.load_image(_save(p, tmp_path / "p.png", transparency=1))
    assert torch.allclose(t, torch.ones_like(t))  # fully transparent -> white
    la = Image.new("LA", (40, 40), (0, 255))
    assert I.load_image(_save(la, tmp_path / "la.png")).max() == 0.0


def test_16bit_grey_is_scaled_not_clipped(tmp_path):
    arr = np.full((40, 40), 32768, np.uint16)
    img = Image.fromarray(arr)
    t = I.load_image(_save(img, tmp_path / "g16.png"))
    assert abs(t.mean().item() - 32768 / 65535) < 1e-3


def test_cmyk_jpeg_converts(tmp_path):
    cmyk = Image.new("CMYK", (40, 40), (0, 255, 255, 0))  # red
    t = I.load_image(_save(cmyk, tmp_path / "c.jpg"))
    assert t[0, 0].mean() > 0.8 and t[0, 1].mean() < 0.2


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_applied(tmp_path, orientation):
    arr = np.zeros((20, 40, 3), np.uint8)
    arr[0:4, 0:4] = 255  # marker in the top-left corner
    img = Image.fromarray(arr)
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = _save(img, tmp_path / f"o{orientation}.jpg", exif=exif.tobytes(), quality=100)
    expected = I.pil_to_tensor(ImageOps.exif_transpose(Image.open(path)))
    got = I.load_image(path, min_side=16)
    assert got.shape == expected.shape
    assert torch.allclose(got, expected)
    if orientation >= 5:
        assert got.shape[-2:] == (40, 20)


def test_truncated_and_non_images_give_input_errors(tmp_path):
    good = _save(Image.new("RGB", (200, 200), (10, 200, 30)), tmp_path / "g.jpg")
    data = good.read_bytes()
    (tmp_path / "cut.jpg").write_bytes(data[: len(data) * 6 // 10])
    (tmp_path / "empty.png").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    (tmp_path / "x.eps").write_bytes(b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 100 100\n")
    for name in ("cut.jpg", "empty.png", "text.png", "x.eps", "missing.png"):
        with pytest.raises(InputImageError) as err:
            I.load_image(tmp_path / name)
        assert err.value.exit_code == 3


def test_too_small_is_refused(tmp_path):
    path = _save(Image.new("RGB", (8, 8)), tmp_path / "s.png")
    with pytest.raises(InputImageError, match="too small: 8×8"):
        I.load_image(path)


def _huge_png_header(w, h) -> bytes:
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 100)) \
        + chunk(b"IEND", b"")


def test_pixel_limit_checked_from_header(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_huge_png_header(60000, 60000))
    with pytest.raises(ImageTooLargeError) as err:
        I.load_image(path)
    assert "3,600,000,000 px" in str(err.value) and err.value.exit_code == 4
    path.write_bytes(_huge_png_header(3000, 3000))
    with pytest.raises(ImageTooLargeError, match="limit is 1,000"):
        I.load_image(path, max_pixels=1000)


def test_tensor_array_and_pil_inputs():
    arr = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    from_array = I.load_image(arr)
    from_pil = I.load_image(Image.fromarray(arr))
    assert torch.allclose(from_array, from_pil)
    assert I.load_image(from_pil[0]).shape == (1, 3, 40, 50)


def test_save_is_atomic_keeps_metadata_and_refuses_overwrite(tmp_path):
    t = torch.rand(1, 3, 32, 40)
    out = I.save_image(t, tmp_path / "o.png", metadata={"painterly": "{}"})
    assert Image.open(out).text["painterly"] == "{}"
    assert torch.allclose(I.load_image(out), t, atol=1 / 255)
    with pytest.raises(OutputError, match="exists"):
        I.save_image(t, out, overwrite=False)
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]  # no debris


def test_failed_write_leaves_no_debris_and_keeps_old_file(tmp_path, monkeypatch):
    out = I.save_image(torch.zeros(1, 3, 32, 32), tmp_path / "o.png")
    before = out.read_bytes()

    def broken_save(self, fp, *a, **k):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OutputError, match="(?i)no space left"):
        I.save_image(torch.ones(1, 3, 32, 32), out)
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["o.png"]


def test_output_checks(tmp_path):
    with pytest.raises(OutputError, match="unsupported output type"):
        I.check_output_path(tmp_path / "o.txt")
    with pytest.raises(OutputError, match="does not exist"):
        I.check_output_path(tmp_path / "nope" / "o.png")


def test_resize_and_colour_helpers():
    t = torch.rand(1, 3, 60, 80)
    assert I.resize(t, long_side=40).shape == (1, 3, 30, 40)
    assert torch.allclose(I.yiq_to_rgb(I.rgb_to_yiq(t)), t, atol=1e-5)
    grey = torch.full((1, 3, 30, 40), 0.5)
    kept = I.transfer_luminance(grey, t)
    # luminance from the stylised picture, colours from the photo
    assert torch.allclose(I.rgb_to_yiq(kept)[:, 0], torch.full((1, 30, 40), 0.5), atol=0.02)
    recoloured = I.match_color(torch.rand(1, 3, 30, 40) * 0.2, t)
    assert torch.allclose(recoloured.mean((2, 3)), t.mean((2, 3)), atol=0.03)


def test_saved_files_get_normal_permissions(tmp_path):
    import os
    out = I.save_image(torch.rand(1, 3, 32, 32), tmp_path / "perm.png")
    mask = os.umask(0)
    os.umask(mask)
    assert out.stat().st_mode & 0o777 == 0o666 & ~mask
