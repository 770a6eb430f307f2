"""Decoding: every image mode to correct RGB (known pixel values), bad files refused with their name."""

import io
import struct
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image

from vae_restore.data.decode import IMAGE_SUFFIXES, decode_rgb
from vae_restore.data.files import ImageRecord
from vae_restore.data.image_set import decode_records
from vae_restore.errors import DataError


def save(image: Image.Image, path: Path, **kwargs) -> Path:
    image.save(path, **kwargs)
    return path


def test_greyscale_becomes_equal_channels(tmp_path):
    rgb = decode_rgb(save(Image.new("L", (4, 3), 100), tmp_path / "g.png"))
    assert rgb.shape == (3, 4, 3) and rgb.dtype == np.uint8
    assert (rgb == 100).all()


def test_bilevel_becomes_black_and_white(tmp_path):
    image = Image.new("1", (2, 1))
    image.putpixel((1, 0), 1)
    assert decode_rgb(save(image, tmp_path / "b.png")).tolist() == [[[0, 0, 0], [255, 255, 255]]]


def test_rgba_is_composited_on_white(tmp_path):
    image = Image.new("RGBA", (3, 1))
    image.putdata([(255, 0, 0, 255), (255, 0, 0, 128), (0, 0, 255, 0)])
    rgb = decode_rgb(save(image, tmp_path / "a.png")).astype(int)
    assert rgb[0, 0].tolist() == [255, 0, 0]
    half = round(255 * (1 - 128 / 255))  # src·α + white·(1 − α)
    assert np.abs(rgb[0, 1] - [255, half, half]).max() <= 1
    assert rgb[0, 2].tolist() == [255, 255, 255]


def test_grey_with_alpha_is_composited_on_white(tmp_path):
    image = Image.new("LA", (2, 1))
    image.putdata([(0, 255), (0, 0)])
    assert decode_rgb(save(image, tmp_path / "la.png")).tolist() == [[[0, 0, 0], [255, 255, 255]]]


def test_palette_colours_and_transparent_index(tmp_path):
    image = Image.new("P", (2, 1))
    image.putpalette([10, 20, 30, 200, 100, 50] + [0] * (256 * 3 - 6))
    image.putdata([0, 1])
    assert decode_rgb(save(image, tmp_path / "p.png")).tolist() == [[[10, 20, 30], [200, 100, 50]]]
    assert decode_rgb(save(image, tmp_path / "pt.png", transparency=1)).tolist() == [[[10, 20, 30], [255, 255, 255]]]


@pytest.mark.parametrize("suffix, tolerance", [(".tif", 0), (".jpg", 3)])
def test_cmyk_becomes_rgb(tmp_path, suffix, tolerance):
    image = Image.new("CMYK", (24, 8))
    for i, ink in enumerate([(0, 0, 0, 0), (255, 0, 0, 0), (0, 0, 0, 255)]):
        image.paste(ink, (8 * i, 0, 8 * i + 8, 8))
    rgb = decode_rgb(save(image, tmp_path / f"c{suffix}", quality=100)).astype(int)
    for i, expected in enumerate([(255, 255, 255), (0, 255, 255), (0, 0, 0)]):
        assert np.abs(rgb[4, 8 * i + 4] - expected).max() <= tolerance


def test_sixteen_bit_greyscale_png_scales_to_eight_bits(tmp_path):
    values = np.array([[0, 257 * 100, 32768, 65535]], dtype=np.uint16)
    rgb = decode_rgb(save(Image.fromarray(values), tmp_path / "g16.png"))
    assert rgb[0, :, 0].tolist() == [0, 100, 128, 255]
    assert (rgb == rgb[..., :1]).all()


@pytest.mark.parametrize(
    "values, expected",
    [
        ([0.0, 0.5, 1.0, 1.02], [0, 128, 255, 255]),  # [0, 1] data slightly overshooting: clipped, not darkened
        ([0.0, 0.5, 1.0, 1.5], [0, 128, 255, 255]),  # the tolerance itself is still [0, 1]
        ([0.0, 100.0, 200.0, 255.0], [0, 100, 200, 255]),  # 0-255 data
    ],
)
def test_float_tiff_scales_by_its_range(tmp_path, values, expected):
    image = Image.fromarray(np.array([values], dtype=np.float32))  # mode F
    rgb = decode_rgb(save(image, tmp_path / "f.tif"))
    assert rgb[0, :, 0].tolist() == expected and (rgb == rgb[..., :1]).all()


def png_rgb16(path: Path, pixels: np.ndarray) -> Path:
    """A 16-bit-per-channel RGB PNG written by hand (PIL cannot write one)."""
    h, w, _ = pixels.shape
    raw = b"".join(b"\x00" + pixels[y].astype(">u2").tobytes() for y in range(h))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    path.write_bytes(data)
    return path


def test_sixteen_bit_rgb_png(tmp_path):
    pixels = np.array([[[65535, 32768, 0], [0, 65535, 25700]]], dtype=np.uint16)
    assert decode_rgb(png_rgb16(tmp_path / "c16.png", pixels)).tolist() == [[[255, 128, 0], [0, 255, 100]]]


@pytest.mark.parametrize("orientation, corner", [(1, (0, 0)), (3, (-1, -1)), (6, (0, -1)), (8, (-1, 0))])
def test_exif_orientation_is_applied(tmp_path, orientation, corner):
    array = np.full((40, 60, 3), 255, np.uint8)
    array[:10, :10] = (255, 0, 0)  # stored top-left block
    exif = Image.Exif()
    exif[0x0112] = orientation
    rgb = decode_rgb(save(Image.fromarray(array), tmp_path / "r.jpg", exif=exif, quality=95))
    assert rgb.shape == ((40, 60, 3) if orientation in (1, 3) else (60, 40, 3))
    r, c = corner
    assert rgb[r * 5 if r else 5, c * 5 if c else 5].tolist()[1] < 40  # the red block is in that corner now


def valid_jpeg_bytes() -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buffer, "JPEG")
    return buffer.getvalue()


BAD_FILES = {
    "zero.png": b"",
    "text.jpg": b"these are words, not pixels\n",
    "corrupt.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
    "truncated.jpg": valid_jpeg_bytes()[:600],
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_files_raise_a_data_error_naming_the_file(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(BAD_FILES[name])
    with pytest.raises(DataError, match="not a readable image") as e:
        decode_rgb(path)
    assert str(path) in str(e.value)
    if name == "zero.png":
        assert "empty file" in str(e.value)


def test_bad_files_are_skipped_and_counted_by_the_loader(tmp_path, caplog):
    good = save(Image.new("RGB", (8, 8), (1, 2, 3)), tmp_path / "good.png")
    bad = []
    for name, data in BAD_FILES.items():
        (tmp_path / name).write_bytes(data)
        bad.append(tmp_path / name)
    images = decode_records([ImageRecord(p) for p in [good, *bad]])
    assert len(images) == 1 and images.names == [str(good)]
    assert len(images.skipped) == len(BAD_FILES)
    for path in bad:
        assert any(str(path) in message for message in images.skipped)
        assert str(path) in caplog.text


def test_only_bad_files_is_an_error_listing_them(tmp_path):
    (tmp_path / "a.png").write_bytes(b"")
    with pytest.raises(DataError, match=r"none of the 1 images could be read:\n.*a.png"):
        decode_records([ImageRecord(tmp_path / "a.png")])


@pytest.mark.parametrize("limit_factor", [0.9, 0.4])  # PIL warns above the limit and errors above twice the limit
def test_decompression_bomb_is_refused_clearly(tmp_path, monkeypatch, limit_factor):
    path = save(Image.new("RGB", (100, 100)), tmp_path / "big.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", int(100 * 100 * limit_factor))
    with pytest.raises(DataError, match="100x100 = 10000 pixels, more than the limit") as e:
        decode_rgb(path)
    assert str(path) in str(e.value) and "PIL.Image.MAX_IMAGE_PIXELS" in str(e.value)
    assert "exceeds limit" not in str(e.value), "PIL's own text names twice the limit: contradictory"


def test_a_threads_own_pixel_limit_never_applies_to_another_thread(tmp_path):
    """PIL's limit is one module global; a low limit for one file must not refuse another thread's files."""
    from concurrent.futures import ThreadPoolExecutor

    big = save(Image.new("RGB", (60, 50)), tmp_path / "big.png")
    other = save(Image.new("RGB", (40, 40)), tmp_path / "other.png")

    def refused_under_a_low_limit(_):
        with pytest.raises(DataError, match="more than the limit of 1000 pixels"):
            decode_rgb(big, max_pixels=1000)

    with ThreadPoolExecutor(2) as pool:
        low = pool.map(refused_under_a_low_limit, range(300))
        default = list(pool.map(lambda _: decode_rgb(other).shape, range(300)))
        list(low)
    assert default == [(40, 40, 3)] * 300


def check_decoded(path: Path) -> np.ndarray | None:
    """The loader's contract: an RGB uint8 image, or a DataError naming the file."""
    try:
        rgb = decode_rgb(path)
    except DataError as e:
        assert str(path) in str(e)
        return None
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3 and rgb.shape[0] and rgb.shape[1]
    return rgb


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.binary(max_size=3000), suffix=st.sampled_from(sorted(IMAGE_SUFFIXES)), keep_header=st.booleans())
def test_random_bytes_never_crash(data, suffix, keep_header):
    if keep_header:  # random bytes behind a real header reach deeper into the decoders
        data = valid_jpeg_bytes()[:200] + data if suffix in (".jpg", ".jpeg") else b"\x89PNG\r\n\x1a\n" + data
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"f{suffix}"
        path.write_bytes(data)
        check_decoded(path)


MODES = ["L", "RGB", "RGBA", "P", "CMYK", "LA", "1", "I;16"]
FORMATS = {"PNG": ".png", "BMP": ".bmp", "TIFF": ".tif", "WEBP": ".webp", "JPEG": ".jpg"}


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    pixels=arrays(np.uint8, st.tuples(st.integers(1, 24), st.integers(1, 24), st.just(4))),
    mode=st.sampled_from(MODES),
    fmt=st.sampled_from(sorted(FORMATS)),
)
def test_random_small_images_decode_to_their_size(pixels, mode, fmt):
    wide = pixels[..., 0].astype(np.uint16) * 257
    image = Image.fromarray(pixels).convert(mode) if mode != "I;16" else Image.fromarray(wide)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"img{FORMATS[fmt]}"
        try:
            image.save(path, fmt, **({"lossless": True} if fmt == "WEBP" else {}))
        except (OSError, ValueError, KeyError):
            assume(False)  # PIL cannot write this mode in this format
        rgb = check_decoded(path)
        assert rgb is not None and rgb.shape[:2] == pixels.shape[:2]
        if mode == "RGB" and fmt in ("PNG", "BMP", "TIFF", "WEBP"):
            assert np.array_equal(rgb, pixels[..., :3])


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(files=st.lists(st.one_of(st.binary(max_size=400), st.integers(1, 40)), min_size=1, max_size=6))
def test_loader_on_a_mix_of_random_files_skips_or_raises(files):
    """Random bytes (bad) and small valid images (good): every file is kept or skipped, never a crash."""
    with tempfile.TemporaryDirectory() as folder:
        records = []
        for i, item in enumerate(files):
            path = Path(folder) / f"{i}.png"
            if isinstance(item, bytes):
                path.write_bytes(item)
            else:
                Image.new("RGB", (item, item + 1), (i, 2 * i, 3 * i)).save(path)
            records.append(ImageRecord(path))
        good = sum(not isinstance(item, bytes) for item in files)
        try:
            images = decode_records(records, min_side=16)
        except DataError as e:
            assert good == 0 and "none of the" in str(e)
            return
        assert len(images) + len(images.skipped) == len(files)
        assert len(images) >= good
        assert all(im.shape[0] >= 16 and im.shape[1] >= 16 for im in images.clear)
