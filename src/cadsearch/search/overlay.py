"""Registration overlay: the found model rendered at its pose, placed on the object, over the photo.

The model is rendered at the match's (θ, φ) with roll 0 (a render square as :mod:`cadsearch.render` renders views)
and drawn into the photo at a :class:`~cadsearch.register.Placement` (centre, side and counter-clockwise roll of
that square in photo pixels), by one path (:func:`draw_placed`) whatever chose the placement:

1. **Registered** (``match.placement`` is set, :mod:`cadsearch.register`): the refined placement, roll included.
2. **Box fit** (roll 0): when a box of the object is known (a detection, or the pixels that differ from a plain or
   gradient backdrop, :func:`~cadsearch.framing.backdrop_box`), the square is scaled and moved so that the model's
   silhouette box matches it (same centre, same size: the mean of the width and height ratios), :func:`fit_to_box`.
3. **Frame** (roll 0): the square the network saw (:func:`cadsearch.framing.frame_query`: the photo padded to a
   square, or the square around an automatically found object), which holds the object framed as in the training
   renders (camera at :func:`~cadsearch.render.cameras.fit_distance`).

The render is blended over the photo and its silhouette outline drawn on top.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np
from PIL import Image, ImageFilter

from cadsearch.framing import Frame, backdrop_box, frame_for
from cadsearch.register.placement import Placement, warp_render
from cadsearch.render.cameras import Camera

__all__ = ["render_overlay", "render_objects_overlay", "draw_placed", "fit_to_box", "OUTLINE_RGB"]

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


def _resize_photo(photo: np.ndarray, target: int) -> tuple[np.ndarray, float]:
    """``photo`` resized so that its longer side is ``target`` pixels, and the factor applied."""
    h, w = photo.shape[:2]
    if max(h, w) == target:
        return photo, 1.0
    scale = target / max(h, w)
    size_wh = (max(1, round(w * scale)), max(1, round(h * scale)))
    return np.asarray(Image.fromarray(photo).resize(size_wh, Image.Resampling.LANCZOS)), scale


def fit_to_box(alpha: np.ndarray, box: tuple[float, float, float, float]) -> Placement | None:
    """The roll-0 placement that puts the render's silhouette box on ``box``.

    Args:
        alpha: (R, R) float coverage of the render square in [0, 1].
        box: the object's ``(x0, y0, x1, y1)`` in photo pixels (exclusive ends).

    Returns:
        A :class:`Placement` (photo pixels) whose silhouette box has ``box``'s centre and, as side, the mean of the
        width and height ratios; None when the render shows nothing.
    """
    size = alpha.shape[0]
    ys, xs = np.nonzero(alpha >= 0.5)
    if not len(xs):
        return None
    rx0, rx1, ry0, ry1 = xs.min(), xs.max() + 1, ys.min(), ys.max() + 1
    bx0, by0, bx1, by1 = box
    ratio = 0.5 * ((bx1 - bx0) / (rx1 - rx0) + (by1 - by0) / (ry1 - ry0))
    side = size * ratio
    # the render's silhouette centre must land on the box centre
    cx = (bx0 + bx1) / 2 - ((rx0 + rx1) / 2 / size - 0.5) * side
    cy = (by0 + by1) / 2 - ((ry0 + ry1) / 2 / size - 0.5) * side
    return Placement(float(cx), float(cy), float(side), 0.0)


def draw_placed(photo: np.ndarray, placement: Placement, rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Blend a render into ``photo`` at ``placement`` and outline its silhouette.

    Args:
        photo: (H, W, 3) uint8 RGB.
        placement: the render square in ``photo``'s pixels (it may reach past the edges: clipped).
        rgb: (R, R, 3) uint8 render, premultiplied by coverage (:class:`~cadsearch.render.types.RenderOutput`).
        alpha: (R, R) float coverage in [0, 1].

    Returns:
        (H, W, 3) uint8 RGB: the render blended at :data:`BLEND` opacity, its silhouette (coverage ≥ 0.5) outlined
        in :data:`OUTLINE_RGB`, about 2 px wide on a 500 px photo.
    """
    if not all(math.isfinite(v) for v in (placement.cx, placement.cy, placement.side, placement.roll_deg)):
        raise ValueError(f"placement must be finite, got {placement}")
    h, w = photo.shape[:2]
    n = max(2, int(round(placement.side)))
    if n < alpha.shape[0]:
        # Shrink first: PIL's resize averages over the pixels it drops, the affine warp only interpolates between
        # neighbours (a 384 px render drawn 100 px wide would alias). Enlarging is left to the warp.
        rgb, alpha = _resize(rgb, n), np.clip(_resize(alpha, n), 0.0, 1.0)
    canvas_rgb, canvas_a = warp_render(placement, rgb, alpha, h, w)
    # rgb is premultiplied by coverage (RenderOutput), so blending adds it scaled by the opacity
    out = photo.astype(np.float32) * (1.0 - BLEND * canvas_a[..., None]) + BLEND * canvas_rgb
    mask = Image.fromarray(((canvas_a >= 0.5) * 255).astype(np.uint8))
    width = max(3, round(max(h, w) / 250)) | 1  # odd filter size, ~2 px on a 500 px photo
    edge = np.asarray(mask.filter(ImageFilter.MaxFilter(width))) > np.asarray(mask.filter(ImageFilter.MinFilter(width)))
    out[edge] = OUTLINE_RGB
    return np.clip(np.round(out), 0, 255).astype(np.uint8)


def render_overlay(
    library: Any,
    image: np.ndarray,
    match: Any,
    size: int | None = None,
    frame: Frame | None = None,
    box: tuple[float, float, float, float] | None = None,
    placement: Placement | None = None,
) -> np.ndarray:
    """Draw ``match``'s model at its pose over ``image``.

    Args:
        library: the :class:`~cadsearch.library.Library` holding ``match.model_id``.
        image: (H, W, 3) uint8 RGB photo.
        match: has ``model_id``, ``polar_deg``, ``azimuth_deg`` and optionally ``placement`` (a
            :class:`~cadsearch.search.ModelMatch`; its placement is in pixels of the image that was searched).
        size: longer side of the output in pixels (None: the photo's own size, at most 1024).
        frame: the square the network looked at, in ``image``'s pixels (default: the photo padded to a square).
        box: the object's box ``(x0, y0, x1, y1)`` in ``image``'s pixels (e.g. a detection), to fit the render's
            silhouette to; default: the backdrop box when the photo has a plain or gradient backdrop.
        placement: the registered render square in ``image``'s pixels; None: ``match.placement``, which must then
            be in ``image``'s pixels (pass a scaled one when ``image`` is a resized copy of the searched image).
            When there is one it wins over ``frame`` and ``box``.

    Returns:
        (H', W', 3) uint8 RGB: the photo (resized to ``size``) with the render blended in and its outline drawn.
    """
    photo = np.asarray(image)
    h, w = photo.shape[:2]
    photo, scale = _resize_photo(photo, size or min(max(h, w), 1024))
    h, w = photo.shape[:2]
    rgb, alpha = _render(library, match.model_id, float(match.polar_deg), float(match.azimuth_deg), RENDER_SIZE)

    registered = placement if placement is not None else getattr(match, "placement", None)
    if registered is not None:
        where = registered.scaled(scale)
    else:
        fitted = None
        box = backdrop_box(photo) if box is None else tuple(v * scale for v in box)
        if box is not None:
            fitted = fit_to_box(alpha, box)
        # Without a box: the render square = the square the network looked at.
        where = fitted or Placement.from_frame(frame_for(h, w) if frame is None else frame.scaled(scale))
    return draw_placed(photo, where, rgb, alpha)


def render_objects_overlay(library: Any, image: np.ndarray, objects: Any, size: int | None = None) -> np.ndarray:
    """Each found object's best model drawn at its pose inside its box, and the boxes numbered (1 = most confident).

    Args:
        library: the :class:`~cadsearch.library.Library`.
        image: (H, W, 3) uint8 RGB photo.
        objects: :class:`~cadsearch.search.searcher.FoundObject` s (``box``, ``detection_score``, ``results``,
            ``frame``; the best result's ``placement`` when it was registered), all in ``image``'s pixels; an
            object without a detection score (the whole photo was searched) gets no box drawn.
        size: longer side of the output in pixels (None: the photo's own size, at most 1024).

    Returns:
        (H', W', 3) uint8 RGB.
    """
    from cadsearch.detect.pictures import draw_boxes

    photo = np.asarray(image)
    h, w = photo.shape[:2]
    target = size or min(max(h, w), 1024)
    # resized once; every render_overlay call below then works at the output's size
    out, scale = _resize_photo(photo, target)
    for obj in objects:
        if not obj.results:
            continue
        best = obj.results[0]
        detected = obj.detection_score is not None
        frame = obj.frame.scaled(scale) if obj.frame is not None else None
        box = tuple(v * scale for v in obj.box) if detected else None
        registered = getattr(best, "placement", None)
        placement = registered.scaled(scale) if registered is not None else None
        out = render_overlay(library, out, best, size=target, frame=frame, box=box, placement=placement)
    # numbered as the objects are (1 = first), also when the first is the whole photo (no box drawn for it)
    numbers = [i for i, o in enumerate(objects, 1) if o.detection_score is not None]
    boxes = [tuple(v * scale for v in objects[i - 1].box) for i in numbers]
    scores = [objects[i - 1].detection_score for i in numbers]
    return draw_boxes(out, boxes, scores, numbers=numbers) if boxes else out
