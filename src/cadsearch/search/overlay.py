"""Registration overlay: the found model rendered at the estimated pose, fitted to the object, over the photo.

Placement (scale and position) starts from the square the network saw (:func:`cadsearch.framing.frame_query`: the
photo padded to a square, or the square around an automatically found object), which holds the object framed as
in the training renders (camera at :func:`~cadsearch.render.cameras.fit_distance`). When
the photo's border fits a plain or gradient backdrop, the object's box is estimated from the pixels that differ from
it (:func:`~cadsearch.framing.backdrop_box`), and the render is scaled and moved so that the model's silhouette box
matches that box (same centre, same size, the mean of the width and height ratios). The render is blended over the
photo and its silhouette outline drawn on top.
"""

from __future__ import annotations

import threading
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from cadsearch.framing import Frame, backdrop_box, frame_for
from cadsearch.render.cameras import Camera

__all__ = ["render_overlay", "render_objects_overlay", "OUTLINE_RGB"]

#: Outline colour: a green that stands out on most photos.
OUTLINE_RGB = (40, 255, 90)
#: Side of the render the overlay is resampled from, pixels.
RENDER_SIZE = 384
#: Opacity of the blended render.
BLEND = 0.55
_RENDER_LOCK = threading.Lock()  # one OpenGL context at a time (contexts are not shared between threads)


def _render(library: Any, model_id: str, polar: float, azimuth: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    from cadsearch.render import create_renderer

    mesh = library.mesh(model_id)
    with _RENDER_LOCK:
        renderer = create_renderer("low", size)
        try:
            out = renderer.render(mesh, Camera(polar, azimuth))
        finally:
            renderer.close()
    return out.rgb, out.alpha


def _resize(a: np.ndarray, side: int) -> np.ndarray:
    mode = "F" if a.ndim == 2 else None
    im = Image.fromarray(a.astype(np.float32) if mode else a, mode=mode)
    return np.asarray(im.resize((side, side), Image.Resampling.BILINEAR))


def render_overlay(
    library: Any,
    image: np.ndarray,
    match: Any,
    size: int | None = None,
    frame: Frame | None = None,
    box: tuple[float, float, float, float] | None = None,
) -> np.ndarray:
    """Draw ``match``'s model at its pose over ``image``.

    Args:
        library: the :class:`~cadsearch.library.Library` holding ``match.model_id``.
        image: (H, W, 3) uint8 RGB photo.
        match: has ``model_id``, ``polar_deg``, ``azimuth_deg`` (a :class:`~cadsearch.search.ModelMatch`).
        size: longer side of the output in pixels (None: the photo's own size, at most 1024).
        frame: the square the network looked at, in the photo's pixels (default: the photo padded to a square).
        box: the object's box ``(x0, y0, x1, y1)`` in the photo's pixels (e.g. a detection), to fit the render's
            silhouette to; default: the backdrop box when the photo has a plain or gradient backdrop.

    Returns:
        (H', W', 3) uint8 RGB: the photo (resized to ``size``) with the render blended in and its outline drawn.
    """
    photo = np.asarray(image)
    h, w = photo.shape[:2]
    target = size or min(max(h, w), 1024)
    scale = 1.0
    if max(h, w) != target:
        scale = target / max(h, w)
        photo = np.asarray(
            Image.fromarray(photo).resize(
                (max(1, round(w * scale)), max(1, round(h * scale))), Image.Resampling.LANCZOS
            )
        )
        h, w = photo.shape[:2]
    rgb, alpha = _render(library, match.model_id, float(match.polar_deg), float(match.azimuth_deg), RENDER_SIZE)

    # Default placement: the render square = the square the network looked at.
    f = frame_for(h, w) if frame is None else frame.scaled(scale)
    side = f.side
    cx, cy = f.centre
    box = backdrop_box(photo) if box is None else tuple(v * scale for v in box)
    ys, xs = np.nonzero(alpha >= 0.5)
    if box is not None and len(xs):
        # Render silhouette box in render pixels → photo pixels: match centres and (mean) size.
        rx0, rx1, ry0, ry1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
        bx0, by0, bx1, by1 = box
        ratio = 0.5 * ((bx1 - bx0) / (rx1 - rx0) + (by1 - by0) / (ry1 - ry0))
        side = RENDER_SIZE * ratio
        # the render's silhouette centre must land on the box centre
        cx = (bx0 + bx1) / 2 - ((rx0 + rx1) / 2 / RENDER_SIZE - 0.5) * side
        cy = (by0 + by1) / 2 - ((ry0 + ry1) / 2 / RENDER_SIZE - 0.5) * side
    n = max(2, int(round(side)))
    left, top = int(round(cx - n / 2)), int(round(cy - n / 2))
    big_rgb = _resize(rgb, n).astype(np.float32)
    big_alpha = np.clip(_resize(alpha, n), 0.0, 1.0)

    # Paste the render square into the photo frame (it may stick out of the photo: clip both).
    canvas_a = np.zeros((h, w), np.float32)
    canvas_rgb = np.zeros((h, w, 3), np.float32)
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + n, h), min(left + n, w)
    if y1 > y0 and x1 > x0:
        canvas_a[y0:y1, x0:x1] = big_alpha[y0 - top : y1 - top, x0 - left : x1 - left]
        canvas_rgb[y0:y1, x0:x1] = big_rgb[y0 - top : y1 - top, x0 - left : x1 - left]
    # rgb is premultiplied by coverage (RenderOutput), so blending adds it scaled by the opacity
    out = photo.astype(np.float32) * (1.0 - BLEND * canvas_a[..., None]) + BLEND * canvas_rgb
    mask = Image.fromarray(((canvas_a >= 0.5) * 255).astype(np.uint8))
    width = max(3, round(max(h, w) / 250)) | 1  # odd filter size, ~2 px on a 500 px photo
    edge = np.asarray(mask.filter(ImageFilter.MaxFilter(width))) > np.asarray(mask.filter(ImageFilter.MinFilter(width)))
    out[edge] = OUTLINE_RGB
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def render_objects_overlay(library: Any, image: np.ndarray, objects: Any, size: int | None = None) -> np.ndarray:
    """Each found object's best model drawn at its pose inside its box, and the boxes numbered (1 = most confident).

    Args:
        library: the :class:`~cadsearch.library.Library`.
        image: (H, W, 3) uint8 RGB photo.
        objects: :class:`~cadsearch.search.searcher.FoundObject` s (``box``, ``detection_score``, ``results``,
            ``frame``); an object without a detection score (the whole photo was searched) gets no box drawn.
        size: longer side of the output in pixels (None: the photo's own size, at most 1024).

    Returns:
        (H', W', 3) uint8 RGB.
    """
    from cadsearch.detect.pictures import draw_boxes

    photo = np.asarray(image)
    h, w = photo.shape[:2]
    target = size or min(max(h, w), 1024)
    scale = target / max(h, w)
    out = photo
    if scale != 1.0:  # resized once; every render_overlay call below then works at the output's size
        size_wh = (max(1, round(w * scale)), max(1, round(h * scale)))
        out = np.asarray(Image.fromarray(photo).resize(size_wh, Image.Resampling.LANCZOS))
    for obj in objects:
        if not obj.results:
            continue
        detected = obj.detection_score is not None
        frame = obj.frame.scaled(scale) if obj.frame is not None else None
        box = tuple(v * scale for v in obj.box) if detected else None
        out = render_overlay(library, out, obj.results[0], size=target, frame=frame, box=box)
    boxes = [tuple(v * scale for v in o.box) for o in objects if o.detection_score is not None]
    scores = [o.detection_score for o in objects if o.detection_score is not None]
    return draw_boxes(out, boxes, scores) if boxes else out
