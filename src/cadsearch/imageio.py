"""Robust image decoding, shared by evaluation, search and the web app.

:func:`read_image` turns any file Pillow can read (a path, or the bytes of an upload) into (H, W, 3) uint8 RGB:

- EXIF orientation is applied (phone photos are often stored sideways);
- grayscale, palette, CMYK and 16-bit images are converted (16-bit is rescaled, not clipped);
- transparency is composited over white (product shots are cut out on white);
- a file whose header announces more than ``max_pixels`` pixels is refused *before* decoding, so a tiny
  "decompression bomb" (e.g. a 30000 × 30000 PNG of a few kB) never allocates gigabytes;
- a missing, empty, truncated or non-image file raises :class:`~cadsearch.errors.InputError` with one line a
  person understands.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from cadsearch.errors import InputError

__all__ = ["DEFAULT_MAX_PIXELS", "read_image", "image_size", "to_rgb"]

#: Largest image accepted by default: 64 megapixels (a 8000 × 8000 photo), ~200 MB once decoded to RGB.
DEFAULT_MAX_PIXELS = 64_000_000

Source = str | os.PathLike[str] | bytes | bytearray | memoryview


def _open(source: Source, label: str) -> Image.Image:
    """``Image.open`` with every failure turned into a one-line :class:`InputError` (reads the header only)."""
    if isinstance(source, bytes | bytearray | memoryview):
        data = bytes(source)
        if not data:
            raise InputError(f"cannot read image {label}: it is empty (0 bytes)")
        fp: io.BytesIO | Path = io.BytesIO(data)
    else:
        fp = Path(source)
        if not fp.exists():
            raise InputError(f"image not found: {label}")
        if fp.is_dir():
            raise InputError(f"cannot read image {label}: it is a folder, not an image file")
        if fp.stat().st_size == 0:
            raise InputError(f"cannot read image {label}: the file is empty (0 bytes)")
    try:
        with warnings.catch_warnings():
            # Pillow warns (and past 2× its limit raises) for huge images; we check the size ourselves below.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            return Image.open(fp)
    except Image.DecompressionBombError:
        raise InputError(f"cannot read image {label}: it is far too large (a decompression bomb?)") from None
    except UnidentifiedImageError:
        raise InputError(f"cannot read image {label}: not an image file Pillow can identify") from None
    except PermissionError:
        raise InputError(f"cannot read image {label}: permission denied") from None
    except (OSError, ValueError, SyntaxError) as err:
        raise InputError(f"cannot read image {label}: {err}") from None


def image_size(source: Source, label: str | None = None) -> tuple[int, int]:
    """``(width, height)`` from the file's header, without decoding the pixels. Raises :class:`InputError`."""
    label = label or _label(source)
    with _open(source, label) as im:
        return im.size


def _label(source: Source) -> str:
    return "<uploaded image>" if isinstance(source, bytes | bytearray | memoryview) else str(source)


def read_image(source: Source, max_pixels: int = DEFAULT_MAX_PIXELS, label: str | None = None) -> np.ndarray:
    """Decode ``source`` (a path or the file's bytes) into (H, W, 3) uint8 RGB, EXIF orientation applied.

    Args:
        source: a file path, or the bytes of an image file (e.g. an upload).
        max_pixels: refuse images whose header announces more pixels than this (checked before decoding).
        label: how messages name the image (default: the path, or ``<uploaded image>`` for bytes).

    Raises:
        InputError: missing, empty, truncated, too large, or not an image.
    """
    label = label or _label(source)
    im = _open(source, label)
    try:
        width, height = im.size
        if width * height > max_pixels:
            raise InputError(
                f"cannot read image {label}: {width} × {height} pixels is more than the {max_pixels / 1e6:g} "
                "megapixels accepted; downscale it first"
            )
        if width < 1 or height < 1:
            raise InputError(f"cannot read image {label}: it has no pixels ({width} × {height})")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", Image.DecompressionBombWarning)
                im.load()
                im = ImageOps.exif_transpose(im)
        except Image.DecompressionBombError:
            raise InputError(f"cannot read image {label}: it is far too large (a decompression bomb?)") from None
        except (OSError, ValueError, SyntaxError, EOFError) as err:
            reason = "the file is truncated or corrupt" if "truncated" in str(err) or isinstance(err, EOFError) else err
            raise InputError(f"cannot read image {label}: {reason}") from None
        return to_rgb(im)
    finally:
        im.close()


def to_rgb(im: Image.Image) -> np.ndarray:
    """A decoded Pillow image of any mode → (H, W, 3) uint8 RGB (16-bit rescaled, transparency over white)."""
    if im.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # 16-bit (or float) grayscale: Pillow's convert("RGB") would clip to 255 instead of rescaling.
        a = np.asarray(im, dtype=np.float64)
        peak = a.max(initial=0.0)
        top = 1.0 if im.mode == "F" and peak <= 1.0 else (255.0 if peak <= 255 else 65535.0)
        g = np.clip(np.round(a / top * 255.0), 0, 255).astype(np.uint8)
        return np.repeat(g[:, :, None], 3, axis=2)
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return np.asarray(Image.alpha_composite(white, rgba).convert("RGB"))
    return np.asarray(im.convert("RGB"))
