"""Images for the web pages: decoding uploads (through the project's one reader), downscaling, encoding.

Decoding is :func:`cadsearch.imageio.read_image`: EXIF orientation, grayscale/RGBA/CMYK/16-bit, and a
decompression-bomb guard that refuses an image by its header before any pixel is decoded.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from cadsearch.imageio import read_image

__all__ = ["decode_image", "downscale", "encode_jpeg", "encode_png"]


def decode_image(data: bytes, max_pixels: int, name: str = "upload") -> np.ndarray:
    """Decode an uploaded file into (H, W, 3) uint8 RGB.

    Raises:
        InputError: empty, not an image, damaged or truncated, or more than ``max_pixels`` pixels; the message
            names the file by ``name`` and is meant for people.
    """
    return read_image(data, max_pixels=max_pixels, label=_label(name))


def _label(name: str) -> str:
    """The upload's file name as messages show it: no folders, no control characters, not too long."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())[:80]
    return f"'{name}'" if name else "the upload"


def downscale(image: np.ndarray, max_side: int) -> np.ndarray:
    """``image`` (H, W, 3) uint8 shrunk so that its longer side is at most ``max_side`` (never enlarged)."""
    h, w = image.shape[:2]
    if max(h, w) <= max_side:
        return image
    scale = max_side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))


def encode_png(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 → PNG bytes."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return buf.getvalue()


def encode_jpeg(image: np.ndarray, quality: int = 90) -> bytes:
    """(H, W, 3) uint8 → JPEG bytes (for photos: a tenth of a PNG's size)."""
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()
