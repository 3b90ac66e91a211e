"""Tests for osdface.image_io: loading, validation, conversion and saving of images."""

from __future__ import annotations

import os
import pathlib
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from osdface import image_io
from osdface.image_io import (
    IMAGE_EXTENSIONS,
    MAX_PIXELS,
    MIN_SIDE,
    ImageInputError,
    check_size,
    list_images,
    load_image,
    save_png,
    tensor_to_numpy,
    tensor_to_pil,
    to_float_batch,
    to_float_tensor,
    to_rgb,
)


# --------------------------------------------------------------------------- #
# helpers
# --------------------------------------------------------------------------- #


def _rgb_noise(h: int = 48, w: int = 64, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(h, w, 3), dtype=np.uint8)


def _save(img: Image.Image, path: pathlib.Path, **kw) -> pathlib.Path:
    img.save(path, **kw)
    return path


def _px(img: Image.Image, xy) -> tuple:
    return tuple(img.getpixel(xy))


# --------------------------------------------------------------------------- #
# constants and the error type
# --------------------------------------------------------------------------- #


def test_constants():
    assert MIN_SIDE == 32
    assert MAX_PIXELS == 64_000_000
    assert 8000 * 8000 <= MAX_PIXELS
    assert isinstance(IMAGE_EXTENSIONS, frozenset)
    assert IMAGE_EXTENSIONS == {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}
    assert image_io.__doc__ and "MAX_PIXELS" in image_io.__doc__


def test_error_is_value_error_with_one_line():
    err = ImageInputError("empty file (0 bytes)", "x.png")
    assert isinstance(err, ValueError)
    assert str(err) == "x.png: empty file (0 bytes)"
    assert err.name == "x.png" and err.reason == "empty file (0 bytes)"
    assert str(ImageInputError("bad")) == "bad"


# --------------------------------------------------------------------------- #
# check_size
# --------------------------------------------------------------------------- #


def test_check_size_ok_and_limits():
    check_size(32, 32)
    check_size(8000, 8000)  # 64.0 MP exactly passes
    with pytest.raises(ImageInputError) as e:
        check_size(20, 18, name="tiny.png")
    assert str(e.value) == "tiny.png: too small (20x18 px; the shortest side must be at least 32 px)"
    with pytest.raises(ImageInputError) as e:
        check_size(9000, 9000, name="huge.png")
    assert str(e.value) == "huge.png: too large (9000x9000 = 81.0 MP; the limit is 64.0 MP)"
    with pytest.raises(ImageInputError) as e:
        check_size(8000, 8001)
    msg = str(e.value)
    assert msg.startswith("image: too large (8000x8001 = ") and "64,008,000" in msg
    check_size(10, 10, min_side=10)
    with pytest.raises(ImageInputError, match="too large"):
        check_size(40, 40, max_pixels=1000)


# --------------------------------------------------------------------------- #
# to_rgb on every mode
# --------------------------------------------------------------------------- #


def test_to_rgb_rgb_is_loaded_copy():
    src = Image.fromarray(_rgb_noise())
    out = to_rgb(src)
    assert out.mode == "RGB" and out is not src
    assert np.array_equal(np.asarray(out), np.asarray(src))


def test_to_rgb_16bit_gradient_png(tmp_path):
    ramp = np.linspace(0, 65535, 256).round().astype(np.uint16)
    arr = np.tile(ramp, (40, 1))
    path = _save(Image.fromarray(arr), tmp_path / "g16.png")
    with Image.open(path) as im:
        assert im.mode in ("I;16", "I")  # Pillow >= 10.? gives I;16, older gives I
    out = load_image(path)
    assert out.mode == "RGB" and out.size == (256, 40)
    row = np.asarray(out)[0, :, 0].astype(int)
    assert row[0] == 0 and row[-1] == 255
    assert np.all(np.diff(row) >= 0)  # monotonic
    assert len(np.unique(row)) > 200  # not clipped / saturated
    assert abs(int(row[128]) - 128) <= 1
    g = np.asarray(out)
    assert np.array_equal(g[..., 0], g[..., 1]) and np.array_equal(g[..., 0], g[..., 2])


@pytest.mark.parametrize("mode", ["I;16", "I;16B", "I;16L"])
def test_to_rgb_16bit_modes(mode):
    vals = np.array([[0, 257, 32768, 65535]], dtype=np.uint16)
    byteorder = ">u2" if mode == "I;16B" else "<u2"
    img = Image.frombytes(mode, (4, 1), vals.astype(byteorder).tobytes())
    assert img.mode == mode
    out = np.asarray(to_rgb(img))[0, :, 0]
    assert out.tolist() == [0, 1, 128, 255]


def test_to_rgb_mode_I_16bit_and_8bit():
    big = Image.fromarray(np.array([[0, 1000, 65535]], dtype=np.int32), mode="I")
    out = np.asarray(to_rgb(big))[0, :, 0]
    assert out.tolist() == [0, round(1000 * 255 / 65535), 255]
    small = Image.fromarray(np.array([[0, 100, 255]], dtype=np.int32), mode="I")
    assert np.asarray(to_rgb(small))[0, :, 0].tolist() == [0, 100, 255]


def test_to_rgb_float_mode():
    unit = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32), mode="F")
    assert np.asarray(to_rgb(unit))[0, :, 0].tolist() == [0, 128, 255]
    byte = Image.fromarray(np.array([[0.0, 100.0, 255.0]], dtype=np.float32), mode="F")
    assert np.asarray(to_rgb(byte))[0, :, 0].tolist() == [0, 100, 255]


def test_cmyk_jpeg(tmp_path):
    img = Image.new("CMYK", (64, 64), (0, 255, 255, 0))  # red
    path = _save(img, tmp_path / "cmyk.jpg", quality=95)
    with Image.open(path) as im:
        assert im.mode == "CMYK"
    out = load_image(path)
    assert out.mode == "RGB"
    r, g, b = _px(out, (32, 32))
    assert r > 240 and g < 15 and b < 15


def test_rgba_png_composited_over_white(tmp_path):
    arr = np.zeros((40, 40, 4), dtype=np.uint8)
    arr[..., 0] = 200  # red-ish everywhere
    arr[:, :20, 3] = 255  # left half opaque
    arr[:20, 20:, 3] = 0  # top-right fully transparent
    arr[20:, 20:, 3] = 128  # bottom-right half transparent
    path = _save(Image.fromarray(arr, "RGBA"), tmp_path / "rgba.png")
    out = load_image(path)
    assert out.mode == "RGB"
    assert _px(out, (5, 5)) == (200, 0, 0)
    assert _px(out, (30, 5)) == (255, 255, 255)
    r, g, b = _px(out, (30, 30))
    assert abs(r - round(200 * 128 / 255 + 255 * 127 / 255)) <= 1
    assert abs(g - 127) <= 1 and abs(b - 127) <= 1


def test_la_image_composited():
    arr = np.zeros((4, 4, 2), dtype=np.uint8)
    arr[..., 0] = 10
    arr[:2, :, 1] = 255
    out = to_rgb(Image.fromarray(arr, "LA"))
    assert _px(out, (0, 0)) == (10, 10, 10)
    assert _px(out, (0, 3)) == (255, 255, 255)


def test_premultiplied_modes_composited():
    la = Image.frombytes("La", (2, 1), bytes([0, 0, 50, 128]))  # transparent; half-alpha premultiplied
    out = to_rgb(la)
    assert _px(out, (0, 0)) == (255, 255, 255)
    assert _px(out, (1, 0)) == (50 + 127,) * 3
    rgba_pm = Image.frombytes("RGBa", (1, 1), bytes([0, 0, 0, 0]))
    assert _px(to_rgb(rgba_pm), (0, 0)) == (255, 255, 255)


def test_16bit_png_with_trns(tmp_path):
    arr = np.full((40, 40), 65535, dtype=np.uint16)
    arr[:, :20] = 5
    path = _save(Image.fromarray(arr), tmp_path / "t16.png", transparency=5)
    out = load_image(path)
    assert _px(out, (0, 0)) == (255, 255, 255)
    assert _px(out, (30, 0)) == (255, 255, 255)
    arr[:, 20:] = 0
    path = _save(Image.fromarray(arr), tmp_path / "t16b.png", transparency=5)
    assert _px(load_image(path), (30, 0)) == (0, 0, 0)


def test_palette_png_with_transparency(tmp_path):
    img = Image.new("P", (40, 40), 0)
    img.putpalette([0, 0, 255] + [255, 0, 0] + [0] * (254 * 3))
    img.paste(1, (0, 0, 20, 40))  # left half red (index 1), right half index 0
    path = _save(img, tmp_path / "pal.png", transparency=0)
    with Image.open(path) as im:
        assert im.mode == "P" and "transparency" in im.info
    out = load_image(path)
    assert _px(out, (5, 5)) == (255, 0, 0)
    assert _px(out, (30, 5)) == (255, 255, 255)  # transparent index -> white


def test_rgb_png_with_trns(tmp_path):
    arr = np.zeros((40, 40, 3), dtype=np.uint8)
    arr[:, :20] = (0, 255, 0)
    arr[:, 20:] = (1, 2, 3)
    path = _save(Image.fromarray(arr), tmp_path / "trns.png", transparency=(1, 2, 3))
    out = load_image(path)
    assert _px(out, (5, 5)) == (0, 255, 0)
    assert _px(out, (30, 5)) == (255, 255, 255)


def test_grayscale_L(tmp_path):
    arr = np.tile(np.arange(64, dtype=np.uint8) * 4, (40, 1))
    path = _save(Image.fromarray(arr, "L"), tmp_path / "l.png")
    out = load_image(path)
    assert out.mode == "RGB"
    assert np.array_equal(np.asarray(out)[..., 1], arr)


def test_mode_1(tmp_path):
    img = Image.new("1", (40, 40), 0)
    img.paste(1, (0, 0, 20, 40))
    path = _save(img, tmp_path / "bw.png")
    out = load_image(path)
    assert _px(out, (5, 5)) == (255, 255, 255)
    assert _px(out, (30, 5)) == (0, 0, 0)


def test_exif_rotated_jpeg(tmp_path):
    arr = np.zeros((80, 40, 3), dtype=np.uint8)  # 40 wide, 80 tall
    arr[:] = (0, 0, 255)
    arr[:20, :20] = (255, 0, 0)  # top-left stored corner red
    img = Image.fromarray(arr)
    exif = img.getexif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise for display
    path = _save(img, tmp_path / "rot.jpg", exif=exif, quality=95)
    out = load_image(path)
    assert out.size == (80, 40)
    # After a clockwise rotation the stored top-left corner is displayed top-right.
    r, g, b = _px(out, (78, 1))
    assert r > 200 and b < 60
    r, g, b = _px(out, (1, 1))
    assert b > 200 and r < 60


def test_exif_rotation_applied_before_min_side(tmp_path):
    img = Image.fromarray(_rgb_noise(40, 33))  # 33 wide x 40 tall
    exif = img.getexif()
    exif[0x0112] = 6
    path = _save(img, tmp_path / "rot.png", exif=exif)
    assert load_image(path).size == (40, 33)
    with pytest.raises(ImageInputError, match=r"too small \(40x33 px"):
        load_image(path, min_side=34)


# --------------------------------------------------------------------------- #
# load_image errors
# --------------------------------------------------------------------------- #


def test_load_plain_png_exact_and_closed(tmp_path):
    arr = _rgb_noise()
    path = _save(Image.fromarray(arr), tmp_path / "ok.png")
    out = load_image(path)
    assert out.mode == "RGB" and np.array_equal(np.asarray(out), arr)
    assert getattr(out, "fp", None) is None
    os.remove(path)  # nothing holds the file open
    assert np.array_equal(np.asarray(out), arr)
    assert load_image(str(_save(Image.fromarray(arr), tmp_path / "s.png"))).size == (64, 48)


def test_empty_file(tmp_path):
    path = tmp_path / "x.png"
    path.write_bytes(b"")
    with pytest.raises(ImageInputError) as e:
        load_image(path)
    assert str(e.value) == f"{path}: empty file (0 bytes)"


def test_text_file_named_png(tmp_path):
    path = tmp_path / "face.png"
    path.write_text("hello, I am not a picture\n")
    with pytest.raises(ImageInputError) as e:
        load_image(path)
    assert str(e.value) == f"{path}: not an image (cannot identify the file format)"
    assert e.value.__cause__ is None


def test_truncated_png(tmp_path):
    full = _save(Image.fromarray(_rgb_noise(128, 128)), tmp_path / "full.png")
    data = full.read_bytes()
    path = tmp_path / "y.png"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageInputError) as e:
        load_image(path)
    assert str(e.value) == f"{path}: truncated or corrupt image data"


def test_truncated_jpeg(tmp_path):
    full = _save(Image.fromarray(_rgb_noise(128, 128)), tmp_path / "full.jpg")
    data = full.read_bytes()
    path = tmp_path / "y.jpg"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageInputError, match="truncated or corrupt image data"):
        load_image(path)


def test_too_small(tmp_path):
    path = _save(Image.fromarray(_rgb_noise(18, 20)), tmp_path / "tiny.png")
    with pytest.raises(ImageInputError) as e:
        load_image(path)
    assert str(e.value) == f"{path}: too small (20x18 px; the shortest side must be at least 32 px)"
    assert load_image(path, min_side=16).size == (20, 18)


def test_too_large_checked_before_decoding(tmp_path, monkeypatch):
    path = _save(Image.fromarray(_rgb_noise(40, 40)), tmp_path / "huge.png")
    with pytest.raises(ImageInputError) as e:
        load_image(path, max_pixels=1000)
    assert str(e.value) == f"{path}: too large (40x40 = 1,600 pixels; the limit is 1,000 pixels)"

    # The limit is applied from the header: pixel data is never decoded.
    def boom(self):
        raise AssertionError("decoded an image that is over the limit")

    monkeypatch.setattr(Image.Image, "load", boom)
    monkeypatch.setattr("PIL.ImageFile.ImageFile.load", boom)
    with pytest.raises(ImageInputError, match="too large"):
        load_image(path, max_pixels=1000)


def _png_header_only(path: pathlib.Path, width: int, height: int) -> pathlib.Path:
    """A PNG whose header claims width x height but which holds almost no pixel data."""
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))
    return path


def test_huge_header_rejected_without_decoding(tmp_path):
    path = _png_header_only(tmp_path / "huge.png", 9000, 9000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageInputError) as e:
            load_image(path)
    assert str(e.value) == f"{path}: too large (9000x9000 = 81.0 MP; the limit is 64.0 MP)"
    # Far beyond PIL's own bomb threshold: still our message, no PIL error text.
    path = _png_header_only(tmp_path / "bigger.png", 20000, 20000)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageInputError) as e:
            load_image(path)
    assert str(e.value).startswith(f"{path}: too large (")
    assert "the limit is 64.0 MP" in str(e.value)


def test_pil_bomb_limit_does_not_leak(tmp_path, monkeypatch):
    """PIL's own MAX_IMAGE_PIXELS neither warns, raises, nor gets changed for good."""
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    warn_path = _save(Image.fromarray(_rgb_noise(40, 40)), tmp_path / "warn.png")  # 1600 px
    bomb_path = _save(Image.fromarray(_rgb_noise(60, 60)), tmp_path / "bomb.png")  # 3600 px > 2*1000
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(warn_path).size == (40, 40)
        assert load_image(bomb_path).size == (60, 60)
    assert Image.MAX_IMAGE_PIXELS == 1000
    # Our own, smaller limit still applies and gives our message, not PIL's.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageInputError) as e:
            load_image(bomb_path, max_pixels=3000)
    assert "too large" in str(e.value) and "Decompression" not in str(e.value)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_pil_bomb_error_reported_as_too_large(tmp_path, monkeypatch):
    # Our limit under PIL's error threshold: PIL's error (if any) becomes "too large".
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    bomb_path = _save(Image.fromarray(_rgb_noise(60, 60)), tmp_path / "bomb.png")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ImageInputError, match="too large"):
            load_image(bomb_path, max_pixels=1000)
    assert Image.MAX_IMAGE_PIXELS == 1000


def test_missing_file(tmp_path):
    path = tmp_path / "missing.png"
    with pytest.raises(ImageInputError) as e:
        load_image(path)
    assert str(e.value) == f"{path}: no such file"


def test_directory(tmp_path):
    d = tmp_path / "dir"
    d.mkdir()
    with pytest.raises(ImageInputError) as e:
        load_image(d)
    assert str(e.value) == f"{d}: is a directory"


def test_name_is_path_as_given(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ImageInputError) as e:
        load_image("missing.png")
    assert str(e.value) == "missing.png: no such file"


# --------------------------------------------------------------------------- #
# list_images
# --------------------------------------------------------------------------- #


def test_list_images_folder(tmp_path):
    for n in ["b.png", "A.JPG", "c.jpeg", "d.WebP", "e.bmp", "f.tif", "g.TIFF", "notes.txt",
              "Z.gif", ".hidden.png", ".DS_Store", "noext"]:
        (tmp_path / n).write_bytes(b"x")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "inner.png").write_bytes(b"x")
    (tmp_path / "folder.png").mkdir()  # a directory with an image suffix is not a file
    images, skipped = list_images(tmp_path)
    assert [p.name for p in images] == ["A.JPG", "b.png", "c.jpeg", "d.WebP", "e.bmp", "f.tif", "g.TIFF"]
    assert [p.name for p in skipped] == ["Z.gif", "noext", "notes.txt"]
    assert all(isinstance(p, pathlib.Path) for p in images + skipped)
    assert images == sorted(images)


def test_list_images_single_file_any_extension(tmp_path):
    f = tmp_path / "photo.xyz"
    f.write_bytes(b"x")
    assert list_images(f) == ([f], [])
    assert list_images(str(f)) == ([f], [])


def test_list_images_empty_and_missing(tmp_path):
    assert list_images(tmp_path) == ([], [])
    with pytest.raises(ImageInputError, match="no such file"):
        list_images(tmp_path / "nope")


# --------------------------------------------------------------------------- #
# to_float_tensor / to_float_batch
# --------------------------------------------------------------------------- #


def _check_tensor(t, h, w):
    assert isinstance(t, torch.Tensor)
    assert t.shape == (3, h, w) and t.dtype == torch.float32
    assert float(t.min()) >= 0.0 and float(t.max()) <= 1.0


def test_to_float_tensor_pil():
    arr = _rgb_noise()
    t = to_float_tensor(Image.fromarray(arr))
    _check_tensor(t, 48, 64)
    assert torch.allclose(t, torch.from_numpy(arr).permute(2, 0, 1).float() / 255)
    # PIL goes through to_rgb: a 16-bit image is scaled, not clipped
    g16 = Image.fromarray(np.full((40, 40), 65535, dtype=np.uint16))
    assert float(to_float_tensor(g16).min()) == 1.0


def test_to_float_tensor_numpy_kinds():
    arr = _rgb_noise()
    ref = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    assert torch.allclose(to_float_tensor(arr), ref)
    gray = arr[..., 0]
    t = to_float_tensor(gray)
    _check_tensor(t, 48, 64)
    assert torch.allclose(t[0], t[2]) and torch.allclose(t[0], torch.from_numpy(gray).float() / 255)
    assert torch.allclose(to_float_tensor(gray[..., None]), t)
    # uint16
    u16 = np.tile(np.linspace(0, 65535, 64).astype(np.uint16), (40, 1))
    t16 = to_float_tensor(u16)
    _check_tensor(t16, 40, 64)
    assert float(t16[0, 0, 0]) == 0.0 and float(t16[0, 0, -1]) == 1.0
    assert torch.all(t16[0, 0, 1:] >= t16[0, 0, :-1])
    # bool
    b = np.zeros((40, 40), dtype=bool)
    b[:, :20] = True
    tb = to_float_tensor(b)
    assert float(tb[0, 0, 0]) == 1.0 and float(tb[0, 0, 39]) == 0.0
    # float in [0, 1], non-contiguous
    f = (arr.astype(np.float64) / 255)[:, ::-1]
    assert torch.allclose(to_float_tensor(f), ref.flip(-1))
    # float16
    assert to_float_tensor(f.astype(np.float16)).dtype == torch.float32


def test_to_float_tensor_numpy_rgba_over_white():
    arr = np.zeros((40, 40, 4), dtype=np.uint8)
    arr[..., 2] = 255
    arr[:, :20, 3] = 255
    t = to_float_tensor(arr)
    assert t[:, 0, 0].tolist() == [0.0, 0.0, 1.0]
    assert t[:, 0, 30].tolist() == [1.0, 1.0, 1.0]
    tf = to_float_tensor(arr.astype(np.float32) / 255)
    assert torch.allclose(tf, t)


def test_to_float_tensor_torch_kinds():
    arr = _rgb_noise()
    ref = torch.from_numpy(arr).permute(2, 0, 1).float() / 255
    out = to_float_tensor(ref)
    assert torch.equal(out, ref) and out.data_ptr() != ref.data_ptr()
    assert torch.equal(to_float_tensor(ref[None]), ref)
    assert torch.equal(to_float_tensor(torch.from_numpy(arr).permute(2, 0, 1)), ref)  # uint8
    one = ref[:1]
    t1 = to_float_tensor(one)
    _check_tensor(t1, 48, 64)
    assert torch.equal(t1[2], ref[0])
    assert torch.equal(to_float_tensor(ref[0]), t1)  # HxW
    assert to_float_tensor(ref.double()).dtype == torch.float32
    req = ref.clone().requires_grad_(True)
    assert not to_float_tensor(req).requires_grad


@pytest.mark.parametrize(
    "bad, pattern",
    [
        (np.full((40, 40, 3), 1.5, dtype=np.float32), r"image: float image values must be in \[0, 1\]"),
        (np.full((40, 40, 3), -0.1, dtype=np.float32), r"must be in \[0, 1\]"),
        (np.full((40, 40, 3), np.nan, dtype=np.float32), "NaN"),
        (np.zeros((40, 40, 2), dtype=np.uint8), r"expected HxW, HxWx1, HxWx3 or HxWx4"),
        (np.zeros((3, 40, 40), dtype=np.uint8), r"channels last"),
        (np.zeros((40, 40, 3), dtype=np.int32), "unsupported array dtype int32"),
        (np.zeros((40,), dtype=np.uint8), "unsupported array shape"),
        (torch.full((3, 40, 40), 2.0), r"must be in \[0, 1\]"),
        (torch.full((3, 40, 40), float("nan")), "NaN"),
        (torch.zeros(2, 40, 40), r"expected \(3, H, W\)"),
        (torch.zeros(4, 40, 40), r"expected \(3, H, W\)"),
        (torch.zeros(1, 1, 3, 40, 40), "unsupported tensor shape"),
        (torch.zeros(2, 3, 40, 40), "to_float_batch"),
        (torch.zeros(3, 40, 40, dtype=torch.int64), "unsupported tensor dtype"),
        ("face.png", "unsupported input type str"),
        (np.zeros((10, 40, 3), dtype=np.uint8), r"too small \(40x10 px"),
        (torch.zeros(3, 40, 10), r"too small \(10x40 px"),
    ],
)
def test_to_float_tensor_rejects(bad, pattern):
    with pytest.raises(ImageInputError, match=pattern) as e:
        to_float_tensor(bad)
    assert str(e.value).startswith("image: ")


def test_to_float_tensor_size_limits():
    with pytest.raises(ImageInputError, match="too large"):
        to_float_tensor(np.zeros((40, 40, 3), np.uint8), max_pixels=1000)
    with pytest.raises(ImageInputError, match="too small"):
        to_float_tensor(Image.new("RGB", (31, 100)))
    _check_tensor(to_float_tensor(np.zeros((8, 8), np.uint8), min_side=8), 8, 8)


def test_to_float_batch():
    a, b = _rgb_noise(40, 48, 1), _rgb_noise(36, 44, 2)
    single = to_float_batch(a)
    assert len(single) == 1 and single[0].shape == (3, 40, 48)
    lst = to_float_batch([Image.fromarray(a), b, torch.from_numpy(b).permute(2, 0, 1)])
    assert [t.shape for t in lst] == [(3, 40, 48), (3, 36, 44), (3, 36, 44)]
    assert torch.equal(lst[1], lst[2])
    assert len(to_float_batch((a, b))) == 2
    stack = torch.rand(4, 3, 40, 40)
    items = to_float_batch(stack)
    assert len(items) == 4 and all(torch.equal(x, y) for x, y in zip(items, stack))
    nhwc = np.stack([a, a, a])
    items = to_float_batch(nhwc)
    assert len(items) == 3 and items[0].shape == (3, 40, 48)
    assert to_float_batch([]) == []
    with pytest.raises(ImageInputError, match=r"^images\[1\]: "):
        to_float_batch([a, np.zeros((40, 40, 2), np.uint8)])
    with pytest.raises(ImageInputError, match=r"^images\[0\]: .*must be in \[0, 1\]"):
        to_float_batch(torch.full((2, 3, 40, 40), 3.0))


# --------------------------------------------------------------------------- #
# tensor -> image
# --------------------------------------------------------------------------- #


def test_tensor_to_pil_round_trip_exact():
    arr = _rgb_noise(40, 50)
    img = tensor_to_pil(to_float_tensor(arr))
    assert img.mode == "RGB" and img.size == (50, 40)
    assert np.array_equal(np.asarray(img), arr)
    # every 8-bit level survives the float round trip
    levels = np.arange(256, dtype=np.uint8).reshape(16, 16)
    levels = np.repeat(np.repeat(levels, 2, 0), 2, 1)
    out = np.asarray(tensor_to_pil(to_float_tensor(np.stack([levels] * 3, -1))))
    assert np.array_equal(out[..., 0], levels)


def test_tensor_to_pil_rounds_and_clamps():
    t = torch.tensor([0.5 / 255 + 1e-4, 0.49 / 255, 254.6 / 255, 1.7, -0.3, float("nan")])
    t = t.view(1, 1, 6).expand(3, 1, 6).contiguous()
    px = np.asarray(tensor_to_pil(t))[0, :, 0].tolist()
    assert px == [1, 0, 255, 255, 0, 0]
    assert tensor_to_pil(t[None]).size == (6, 1)
    with pytest.raises(ValueError):
        tensor_to_pil(torch.zeros(4, 8, 8))


def test_tensor_to_numpy():
    t = torch.rand(3, 10, 12)
    a = tensor_to_numpy(t)
    assert a.shape == (10, 12, 3) and a.dtype == np.float32
    assert np.allclose(a, t.permute(1, 2, 0).numpy())
    assert tensor_to_numpy(torch.full((3, 2, 2), 3.0)).max() == 1.0


# --------------------------------------------------------------------------- #
# save_png
# --------------------------------------------------------------------------- #


def test_save_png_atomic(tmp_path):
    arr = _rgb_noise()
    img = Image.fromarray(arr)
    dest = tmp_path / "out" / "deep" / "res.png"
    save_png(img, dest)
    assert sorted(p.name for p in dest.parent.iterdir()) == ["res.png"]
    with Image.open(dest) as back:
        assert back.format == "PNG"
        assert np.array_equal(np.asarray(back.convert("RGB")), arr)
    # overwrite in place, still no leftovers
    arr2 = _rgb_noise(seed=5)
    save_png(Image.fromarray(arr2), str(dest))
    assert sorted(p.name for p in dest.parent.iterdir()) == ["res.png"]
    assert np.array_equal(np.asarray(load_image(dest)), arr2)


def test_save_png_failure_leaves_old_file_and_no_temp(tmp_path, monkeypatch):
    dest = tmp_path / "res.png"
    save_png(Image.fromarray(_rgb_noise()), dest)
    before = dest.read_bytes()

    def broken_save(self, fp, *a, **k):
        fp.write(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_png(Image.fromarray(_rgb_noise(seed=3)), dest)
    assert dest.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["res.png"]


def test_save_png_non_png_suffix_still_png(tmp_path):
    dest = tmp_path / "res.jpg"
    save_png(Image.fromarray(_rgb_noise()), dest)
    with Image.open(dest) as back:
        assert back.format == "PNG"
