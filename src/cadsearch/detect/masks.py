"""Object masks between the photo and the detector's input square: framing a mask as the photo is framed, mapping
a predicted mask back onto the photo, IoU, and tinting a photo with a mask for pictures.

A mask is (H, W) float32 coverage or probability in [0, 1]. The square of a :class:`~cadsearch.framing.Frame`
(photo pixels; it may reach past the photo's edges) maps to the ``size`` × ``size`` input square linearly: photo
point ``X`` (continuous, pixel edges at integers) ↔ square point ``(X - frame.x0) · size / frame.side``, as
:func:`cadsearch.framing.frame_image` cuts the colour image. Outside the photo a mask is 0.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from cadsearch.framing import Frame, frame_for
from cadsearch.framing.frame import paste_frame

__all__ = ["frame_mask", "unframe_mask", "mask_iou", "tint", "outline", "MASK_RGB"]

#: Tint of a predicted mask in pictures (cyan: unlike the boxes' green and the truths' magenta).
MASK_RGB = (0, 200, 255)


def _resize_f(a: np.ndarray, width: int, height: int) -> np.ndarray:
    return np.asarray(Image.fromarray(np.ascontiguousarray(a, np.float32), mode="F").resize(
        (width, height), Image.Resampling.BILINEAR), np.float32)  # fmt: skip


def frame_mask(mask: np.ndarray, size: int, frame: Frame | None = None) -> np.ndarray:
    """``frame`` of an (H, W) mask at ``size`` × ``size`` float32, cut exactly where :func:`frame_image` cuts the
    photo (default: the whole photo, letterboxed); 0 outside the photo."""
    a = np.asarray(mask, np.float32)
    out = paste_frame(a, frame or frame_for(*a.shape), np.zeros((size, size), np.float32), _resize_f)
    return np.clip(out, 0.0, 1.0)


def unframe_mask(square: np.ndarray, frame: Frame, height: int, width: int) -> np.ndarray:
    """A (S, S) mask over ``frame`` mapped onto the (``height``, ``width``) photo (bilinear; 0 outside the square).

    The inverse of :func:`frame_mask` up to resampling: ``unframe_mask(Localiser.segment(photo, f), f, h, w)`` is
    the foreground probability in photo pixels.
    """
    s = np.asarray(square, np.float32)
    k = s.shape[1] / frame.side
    # PIL's affine transform samples the input at A · (output point); both in continuous pixel coordinates
    im = Image.fromarray(np.ascontiguousarray(s), mode="F").transform(
        (int(width), int(height)), Image.Transform.AFFINE, (k, 0.0, -frame.x0 * k, 0.0, k, -frame.y0 * k),
        Image.Resampling.BILINEAR, fillcolor=0.0)  # fmt: skip
    return np.clip(np.asarray(im, np.float32), 0.0, 1.0)


def mask_iou(pred: np.ndarray, truth: np.ndarray, threshold: float = 0.5) -> float:
    """IoU of ``pred >= threshold`` and ``truth >= 0.5`` (same shape); NaN when both are empty."""
    p, t = np.asarray(pred) >= threshold, np.asarray(truth) >= 0.5
    union = np.logical_or(p, t).sum()
    return float(np.logical_and(p, t).sum() / union) if union else float("nan")


def _edge(fg: np.ndarray) -> np.ndarray:
    inner = fg.copy()
    inner[1:] &= fg[:-1]
    inner[:-1] &= fg[1:]
    inner[:, 1:] &= fg[:, :-1]
    inner[:, :-1] &= fg[:, 1:]
    return fg & ~inner


def tint(image: np.ndarray, prob: np.ndarray, colour: tuple[int, int, int] = MASK_RGB, strength: float = 0.5):
    """``image`` (H, W, 3) uint8 with the pixels where ``prob`` (H, W) ≥ 0.5 tinted ``colour`` and the mask's outline
    drawn in it; returns a new uint8 array."""
    out = np.asarray(image, np.float32).copy()
    fg = np.asarray(prob) >= 0.5
    out[fg] = out[fg] * (1 - strength) + np.asarray(colour, np.float32) * strength
    out[_edge(fg)] = colour
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)


def outline(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """``image`` (H, W, 3) uint8 with the outline of ``mask`` ≥ 0.5 drawn in ``colour`` (one pixel); a new array."""
    out = np.asarray(image, np.uint8).copy()
    out[_edge(np.asarray(mask) >= 0.5)] = colour
    return out
