"""Fixtures shared by the web app's tests (imported by test_web_*): a tiny rendered workspace, image files of
every awkward kind, and apps wired to a fake searcher through ``dependency_overrides``."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cadsearch.library import Library
from cadsearch.web import Settings, create_app
from cadsearch.web.deps import get_searcher
from cadsearch.web.testing import FakeSearcher

#: Small upload limit for the tests, so "too large" needs only a few hundred kB.
TEST_UPLOAD_LIMIT = 300_000


@pytest.fixture(scope="session", name="web_ws")
def web_ws_fixture(tmp_path_factory) -> Path:
    """4 procedural chairs × 4 views at 64 px, rendered once per session (tests must not write in it except
    ``web-cache/``, which the app owns)."""
    from cadsearch.render.job import RenderConfig, render_views

    ws = tmp_path_factory.mktemp("web_ws")
    Library.open(ws).generate_chairs(4)
    render_views(ws, RenderConfig(views=4, size=64, backgrounds="random"), progress=False)
    return ws


class SpySearcher(FakeSearcher):
    """A fake searcher that remembers the shape of every image it was asked about."""

    def __init__(self, library, delay_s: float = 0.0):
        super().__init__(library, delay_s)
        self.shapes: list[tuple[int, ...]] = []

    def search(self, image, k=5):
        self.shapes.append(tuple(image.shape))
        return super().search(image, k)


def make_app(ws: Path, searcher=None, **settings):
    """The app for ``ws`` with ``searcher`` swapped in through ``dependency_overrides`` (None: no searcher)."""
    app = create_app(Settings(workspace=ws, max_upload_bytes=TEST_UPLOAD_LIMIT, **settings))
    if searcher is not None:
        app.dependency_overrides[get_searcher] = lambda: searcher
        app.state.searcher = searcher  # what the pages' "ready" banner and /healthz look at
    return app


# --- image files ----------------------------------------------------------------------------------------------


def encode(image: Image.Image, fmt: str = "PNG", **params) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format=fmt, **params)
    return buf.getvalue()


def photo(w: int = 96, h: int = 64, seed: int = 0) -> Image.Image:
    """A noisy RGB picture (not compressible to nothing, so sizes are realistic)."""
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8))


def png_bytes(seed: int = 0, w: int = 96, h: int = 64) -> bytes:
    return encode(photo(w, h, seed))


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_bomb(side: int = 30000) -> bytes:
    """A valid 1-bit grayscale PNG of ``side`` × ``side`` pixels that is only ~100 kB on disk: decoded naively
    it would take ``side``² bytes (900 MB for 30000) — a decompression bomb."""
    row = b"\x00" * (1 + (side + 7) // 8)  # filter byte + packed bits
    comp = zlib.compressobj(9)
    body = b"".join(comp.compress(row) for _ in range(side)) + comp.flush()
    ihdr = struct.pack(">IIBBBBB", side, side, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", body) + _chunk(b"IEND", b"")


def exif_rotated_jpeg(w: int = 80, h: int = 40) -> bytes:
    """A ``w`` × ``h`` JPEG whose EXIF says "rotate 90°": shown (and searched) as ``h`` × ``w``."""
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90 CW to display
    return encode(photo(w, h, 3), "JPEG", exif=exif.tobytes())


def odd_images() -> dict[str, bytes]:
    """Valid images in the modes people upload that are not plain 8-bit RGB."""
    base = photo(64, 48, 5)
    gray16 = Image.fromarray((np.linspace(0, 65535, 64 * 48).reshape(48, 64)).astype(np.uint16))
    return {
        "gray.png": encode(base.convert("L")),
        "rgba.png": encode(base.convert("RGBA")),
        "cmyk.jpg": encode(base.convert("CMYK"), "JPEG"),
        "gray16.png": encode(gray16),
        "palette.gif": encode(base.convert("P"), "GIF"),
        "photo.webp": encode(base, "WEBP"),
    }
