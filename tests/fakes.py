"""Test helpers that hold no tests and no fixtures (fixtures live in ``conftest.py``): a fake predictor for the
index and search tests (and searchers built on it with a fake localiser), the web app wired to a fake searcher, and
image files of every awkward kind.

The fake predictor stands in for a trained network: its embedding of an image is a pseudo-random unit vector
seeded by a hash of the pixels (so a view's own image finds exactly that view), and its pose head answers the
true pose of any rendered view it knows.
"""

from __future__ import annotations

import hashlib
import io
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

# --- a fake predictor (index and search) ----------------------------------------------------------------------

DIM = 32


def image_hash(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


def hash_vector(image: np.ndarray, dim: int = DIM) -> np.ndarray:
    seed = int(image_hash(image)[:8], 16)
    v = np.random.default_rng(seed).standard_normal(dim).astype(np.float32)
    return v / np.linalg.norm(v)


@dataclass
class FakePrediction:
    embedding: np.ndarray
    class_probs: np.ndarray
    polar_deg: np.ndarray
    azimuth_deg: np.ndarray


class FakePredictor:
    """``predict`` like :class:`cadsearch.models.Predictor`; counts the images it embedded (``images``), so a
    test can tell how much work an incremental index build redid."""

    def __init__(self, model_ids=(), poses: dict[str, tuple[float, float]] | None = None, dim: int = DIM):
        self.model_ids = list(model_ids)
        self.arch = "scratch"
        self.input_size = 48
        self.config: dict = {}
        self.poses = poses or {}
        self.dim = dim
        self.images = 0

    def embed(self, images, batch_size: int = 64) -> np.ndarray:
        return self.predict(images, batch_size).embedding

    def predict(self, images, batch_size: int = 64, frames=None) -> FakePrediction:
        images = list(images)
        self.images += len(images)
        emb = np.stack([hash_vector(im, self.dim) for im in images]) if images else np.zeros((0, self.dim), np.float32)
        pose = np.array([self.poses.get(image_hash(im), (90.0, 0.0)) for im in images]).reshape(-1, 2)
        probs = np.full((len(images), max(len(self.model_ids), 1)), 1.0 / max(len(self.model_ids), 1), np.float32)
        return FakePrediction(emb, probs, pose[:, 0], pose[:, 1])


def fake_for(ws: Path) -> FakePredictor:
    """A fake predictor whose pose head knows every view of ``ws``."""
    from cadsearch.render.job import read_view_table

    poses = {}
    for r in read_view_table(ws):
        rgb = np.asarray(Image.open(ws / r.path).convert("RGB"))
        poses[image_hash(rgb)] = (r.polar_deg, r.azimuth_deg)
    return FakePredictor(sorted({r.model_id for r in read_view_table(ws)}), poses)


class ScoredLocaliser:
    """A localiser that finds two objects, scored 0.8 and 0.35, and keeps those at or above :attr:`threshold` as
    :class:`~cadsearch.detect.Localiser` does."""

    threshold = 0.3

    def detect(self, image):
        from cadsearch.detect import Detection

        found = [Detection((2.0, 2.0, 30.0, 30.0), 0.8), Detection((20.0, 20.0, 46.0, 46.0), 0.35)]
        return [d for d in found if d.score >= self.threshold]


def patch_scored_searchers(ws: Path, monkeypatch) -> list:
    """``Searcher.from_workspace`` patched to build searchers of ``ws`` on the fake predictor (its index built here)
    with a :class:`ScoredLocaliser` (none for ``crop="auto"``); returns the list of those it built."""
    from cadsearch.index import build_index, load_index
    from cadsearch.library import Library
    from cadsearch.search import Searcher

    fake = fake_for(ws)
    build_index(ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    made: list = []

    def load(cls, workspace, model=None, crop=None, **kwargs):
        localiser = None if crop == "auto" else ScoredLocaliser()
        made.append(Searcher(fake, load_index(ws, "scratch"), Library.open(ws),
                             crop=crop or ("detect" if localiser else "auto"), localiser=localiser))  # fmt: skip
        return made[-1]

    monkeypatch.setattr(Searcher, "from_workspace", classmethod(load))
    return made


# --- the web app with a fake searcher -------------------------------------------------------------------------

#: Small upload limit for the tests, so "too large" needs only a few hundred kB.
TEST_UPLOAD_LIMIT = 300_000


def make_app(ws: Path, searcher=None, **settings):
    """The app for ``ws`` with ``searcher`` swapped in through ``dependency_overrides`` (None: no searcher)."""
    from cadsearch.web import Settings, create_app
    from cadsearch.web.deps import get_searcher

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
