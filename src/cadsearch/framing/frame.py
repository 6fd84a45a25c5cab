"""The object-centred square: how an image of any shape is framed for the networks.

Renders are square and show the object whole, centred (the camera distance fits the model's unit sphere). A photo
is framed the same way: the smallest square holding the region of interest — the whole photo, or the object's box
when an automatic crop found one — centred on it, plus an optional margin. Where that square reaches past the
photo it is filled with the median colour of the photo's border, so a tightly cropped portrait photo of a chair
keeps its backrest and legs instead of losing them to a centre crop.

Measured (``python benchmarks/accuracy.py WS --train ''``, transfer model, the 236 development photos incl.
mirrors, pose without flip averaging): padding to the square raised the sector-balanced azimuth Acc@30 from 0.554
(centre square crop) to 0.711, median azimuth error 16.0° → 11.4°. In a first trial (a throwaway script padding at
whole pixels) border-colour padding scored 0.754, edge replication 0.674, mirror padding 0.730. The centre square
(:func:`centre_frame`) is kept only for that comparison.

Coordinates are photo pixels, x to the right and y down, boxes ``(x0, y0, x1, y1)`` with exclusive ends.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image

from cadsearch.errors import InputError

__all__ = ["Frame", "frame_for", "centre_frame", "frame_image", "upright_image", "as_rgb_uint8", "border_colour"]


@dataclass(frozen=True)
class Frame:
    """A square in photo pixels (it may reach past the photo's edges): top-left ``(x0, y0)`` and ``side``."""

    x0: float
    y0: float
    side: float

    @property
    def centre(self) -> tuple[float, float]:
        """``(x, y)`` of the square's centre, photo pixels."""
        return self.x0 + self.side / 2, self.y0 + self.side / 2

    def scaled(self, factor: float) -> Frame:
        """The same square in a copy of the photo resized by ``factor``."""
        return Frame(self.x0 * factor, self.y0 * factor, self.side * factor)


def frame_for(height: int, width: int, box: Sequence[float] | None = None, margin: float = 0.0) -> Frame:
    """The square framing ``box`` (default: the whole photo), enlarged by ``margin`` (a fraction of its side).

    Args:
        height, width: the photo's size in pixels.
        box: ``(x0, y0, x1, y1)`` region of interest in pixels, or None for the whole photo.
        margin: extra side, e.g. 0.1 adds 5 % of the side on each edge.
    """
    x0, y0, x1, y1 = (0.0, 0.0, float(width), float(height)) if box is None else map(float, box)
    side = max(x1 - x0, y1 - y0, 1.0) * (1.0 + margin)
    cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
    return Frame(cx - side / 2, cy - side / 2, side)


def centre_frame(height: int, width: int) -> Frame:
    """The photo's centre square (side = the shorter side, whole pixels): the framing used before padding to a
    square, kept for benchmarks' comparison; :func:`frame_image` with it gives the centre crop, resized."""
    side = min(height, width)
    return Frame(float((width - side) // 2), float((height - side) // 2), float(side))


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 view of an RGB, RGBA (alpha dropped), grayscale (H, W) or float [0, 1] image."""
    a = np.asarray(image)
    if a.ndim == 2:
        a = np.repeat(a[..., None], 3, axis=2)
    elif a.ndim == 3 and a.shape[2] == 4:
        a = a[..., :3]
    elif a.ndim != 3 or a.shape[2] != 3:
        raise InputError(f"expected an RGB (H, W, 3) or grayscale (H, W) image, got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.clip(a * 255.0 if a.dtype.kind == "f" and a.max() <= 1.0 else a, 0, 255).astype(np.uint8)
    return a


def border_colour(image: np.ndarray) -> np.ndarray:
    """Median RGB (3,) uint8 of the outermost pixel rows and columns of an (H, W, 3) image."""
    edge = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    return np.median(edge, axis=0).astype(np.uint8)


def frame_image(image: np.ndarray, size: int, frame: Frame | None = None) -> np.ndarray:
    """Cut ``frame`` (default: :func:`frame_for` of the whole image) out of ``image`` at ``size`` × ``size``.

    Args:
        image: RGB uint8 (H, W, 3) or grayscale (H, W) of any size.
        size: output side in pixels.
        frame: the square to cut; parts outside the image get the border's median colour.

    Returns:
        (size, size, 3) uint8.
    """
    a = as_rgb_uint8(image)
    h, w = a.shape[:2]
    f = frame or frame_for(h, w)
    if f.x0 == 0 and f.y0 == 0 and f.side == h == w:  # already square and whole: just resize
        return _resize(a, size, size) if h != size else a
    out = np.empty((size, size, 3), np.uint8)
    out[:] = border_colour(a)
    return paste_frame(a, f, out, _resize)


def upright_image(image: np.ndarray, size: int, frame: Frame, roll_deg: float) -> np.ndarray:
    """Cut ``frame`` out of ``image`` at ``size`` × ``size`` turned by −``roll_deg`` about its centre: an object that
    the camera saw rolled by ``roll_deg`` (counter-clockwise in the image, as a registration's ``roll_deg``) stands
    upright in it, as the objects of the renders do. Parts outside the image get the border's median colour, as in
    :func:`frame_image`; at ``roll_deg`` 0 the result is :func:`frame_image`'s square (resampled once more).

    Returns:
        (size, size, 3) uint8.
    """
    # cut a larger square around the same centre, turn it, keep its middle: the frame turned any way lies inside a
    # square √2 times its side, so the turn never brings in anything but the photo and frame_image's padding
    outer = size + 2 * math.ceil(size / 4)  # ≥ 1.5 × size, and (outer − size) even: the middle is whole pixels
    cx, cy = frame.centre
    side = frame.side * outer / size
    cut = frame_image(image, outer, Frame(cx - side / 2, cy - side / 2, side))
    turned = Image.fromarray(cut).rotate(-float(roll_deg), Image.Resampling.BILINEAR)
    o = (outer - size) // 2
    return np.asarray(turned)[o : o + size, o : o + size].copy()


def paste_frame(a: np.ndarray, frame: Frame, out: np.ndarray, resize) -> np.ndarray:
    """Paste the part of ``a`` (H, W, ...) inside the square ``frame`` into ``out`` (S, S, ...), pre-filled with what
    lies outside the photo, resized with ``resize(part, width, height)``; returns ``out``.

    The one place a square is cut out of a photo (:func:`frame_image` for colour, :func:`cadsearch.detect.masks.
    frame_mask` for masks), so a mask lands exactly where the colour does. Only the part inside the square is
    resized: a 4000 px photo never needs a 4000² canvas.
    """
    h, w = a.shape[:2]
    size = out.shape[0]
    scale = size / frame.side
    # First photo pixel at or after the square's edge, so the paste offset below is never negative.
    ix0, iy0 = max(0, math.ceil(frame.x0)), max(0, math.ceil(frame.y0))
    ix1, iy1 = min(w, math.ceil(frame.x0 + frame.side)), min(h, math.ceil(frame.y0 + frame.side))
    if ix1 > ix0 and iy1 > iy0:
        dx0, dy0 = round((ix0 - frame.x0) * scale), round((iy0 - frame.y0) * scale)
        dw = min(size - dx0, max(1, round((ix1 - ix0) * scale)))
        dh = min(size - dy0, max(1, round((iy1 - iy0) * scale)))
        if dw > 0 and dh > 0:
            out[dy0 : dy0 + dh, dx0 : dx0 + dw] = resize(a[iy0:iy1, ix0:ix1], dw, dh)
    return out


def _resize(a: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(a).resize((width, height), Image.Resampling.BILINEAR, reducing_gap=2.0))
