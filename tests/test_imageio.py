"""Robust image decoding: EXIF orientation, modes, and every kind of bad file → one-line InputError."""

from __future__ import annotations

import io
import struct
import tracemalloc
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cadsearch.errors import InputError
from cadsearch.imageio import read_image


def _png_bytes(im: Image.Image) -> bytes:
    buf = io.BytesIO()
    im.save(buf, format="PNG")
    return buf.getvalue()


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    a = np.zeros((16, 24, 3), np.uint8)
    a[:8, :8] = (255, 0, 0)  # a red top-left block in the stored (landscape) image
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° CW to display"
    path = tmp_path / "phone.jpg"
    Image.fromarray(a).save(path, exif=exif, quality=100)
    rgb = read_image(path)
    assert rgb.shape == (24, 16, 3)  # displayed upright: portrait
    assert rgb[2, -3, 0] > 150 and rgb[2, -3, 1] < 100  # the red corner moved to the top right
    assert rgb[-3, 2, 0] < 100


@pytest.mark.parametrize(
    "make",
    [
        lambda: Image.new("L", (5, 3), 128),
        lambda: Image.new("RGBA", (5, 3), (255, 0, 0, 0)),
        lambda: Image.fromarray(np.full((3, 5), 65535, np.uint16)),
        lambda: Image.new("P", (5, 3), 3),
        lambda: Image.new("CMYK", (5, 3), (0, 255, 255, 0)),
    ],
    ids=["gray", "rgba", "16bit", "palette", "cmyk"],
)
def test_modes_become_rgb_uint8(tmp_path: Path, make) -> None:
    im = make()
    path = tmp_path / ("x.jpg" if im.mode == "CMYK" else "x.png")
    im.save(path)
    rgb = read_image(path)
    assert rgb.shape == (3, 5, 3) and rgb.dtype == np.uint8
    if im.mode == "RGBA":
        assert (rgb == 255).all()  # transparent → white
    if im.mode == "I;16" or im.mode.startswith("I"):
        assert (rgb == 255).all()  # 16-bit full scale → 255, not clipped garbage
    if im.mode == "CMYK":
        assert rgb[1, 2, 0] > 200 and rgb[1, 2, 1] < 60  # red


def test_bytes_source(tmp_path: Path) -> None:
    rgb = read_image(_png_bytes(Image.new("RGB", (7, 2), (1, 2, 3))))
    assert rgb.shape == (2, 7, 3) and tuple(rgb[0, 0]) == (1, 2, 3)


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"", "empty"),
        (b"hello, I am a text file\n", "not an image"),
        (None, "truncated"),
    ],
    ids=["zero-bytes", "text", "truncated"],
)
def test_bad_files_raise_one_line_input_error(tmp_path: Path, content, words) -> None:
    if content is None:
        full = _png_bytes(Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), np.uint8)))
        content = full[: len(full) // 2]
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    for source in (path, content):
        if source == b"":
            with pytest.raises(InputError, match="empty"):
                read_image(source)
            continue
        with pytest.raises(InputError) as err:
            read_image(source)
        message = str(err.value)
        assert words in message and "\n" not in message


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        read_image(tmp_path / "nope.png")


def _bomb_png(width: int, height: int) -> bytes:
    """A valid PNG header announcing ``width × height`` grayscale pixels, with a tiny IDAT (few bytes)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(b"\x00" * 1000))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("side", [30_000, 9_000])  # past Pillow's own limit, and under it but over ours
def test_decompression_bomb_is_refused_without_allocating(tmp_path: Path, side: int) -> None:
    path = tmp_path / "bomb.png"
    path.write_bytes(_bomb_png(side, side))
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match="large|megapixels"):
            read_image(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 20_000_000  # decoding would need side² bytes (81–900 MB)


def test_max_pixels_is_configurable(tmp_path: Path) -> None:
    data = _png_bytes(Image.new("RGB", (100, 100)))
    with pytest.raises(InputError, match="megapixels"):
        read_image(data, max_pixels=5_000)
    assert read_image(data, max_pixels=10_000).shape == (100, 100, 3)
