"""Automatic crop: find the object in a photo with much background and frame it as the training renders do.

The networks were trained on renders that show the object whole and centred, its box's longer side about
:data:`RENDER_FILL` of the view (mean over fresh renders; 0.68–0.87 from the 10th to the 90th percentile). A photo
where the chair is small and off-centre is framed by default as the whole photo padded to a square
(:mod:`cadsearch.framing.frame`), so the chair is smaller than anything the network saw. :func:`crop_frame`
instead returns the square centred on the object's box with the margin that restores the renders' framing, for
``Predictor.predict(..., frames=[...])`` and ``render_overlay(..., frame=...)``; queries reach it through
:func:`cadsearch.framing.frame_query`.

Box finders (:data:`METHODS`), each on a copy at most :data:`WORK_SIDE` px, deterministic, returning None when
unsure (the caller keeps the default framing) and never raising on odd images:

- ``backdrop``: pixels that differ from a plain or gradient backdrop fitted on the border
  (:func:`backdrop_box`, also used to place registration overlays); None on cluttered photos.
- ``grabcut``: OpenCV GrabCut initialised from a centred rectangle (the outer :data:`GRABCUT_INSET` of each side is
  background); needs ``opencv-python-headless`` (None without it).
- ``saliency``: spectral-residual saliency (Hou & Zhang, CVPR 2007), numpy only.
- ``auto``: the default, ``backdrop``; :func:`crop_frame` then crops only when that zooms in (:data:`MIN_ZOOM`).

Measured (``benchmarks/autocrop.py``, transfer model, 300 eval renders composited into photos; top-1 / median pose
error): a chair at 25–60 % of a studio photo (plain or gradient backdrop) 0.103 / 66.4° uncropped → 0.930 / 4.0°
with ``auto`` (true box: 0.950 / 3.9°); at 75–100 % 0.683 / 10.4° → 0.940 / 4.4°. In a room photo the true box
would give 0.077 → 0.937, but GrabCut reached only 0.197 and lowered the development photos' sector-balanced
azimuth Acc@30 from 0.753 to 0.645 (saliency 0.496), so ``auto`` leaves cluttered photos uncropped; it changes none
of the development photos (their chairs fill the photo). Cost: renders framed exactly as in training lose a little
(0.970 / 3.8° → 0.957 / 4.2°), as a fixed margin drops the pose-dependent size of the object.

Boxes are ``(x0, y0, x1, y1)`` in photo pixels, x right, y down, exclusive ends.
"""

from __future__ import annotations

import numpy as np
from PIL import Image
from scipy import ndimage

from cadsearch.errors import InputError
from cadsearch.framing.frame import Frame, as_rgb_uint8, frame_for

__all__ = [
    "METHODS",
    "MARGIN",
    "MIN_ZOOM",
    "RENDER_FILL",
    "backdrop_box",
    "check_crop_method",
    "crop_frame",
    "find_object_box",
    "grabcut_available",
]

Box = tuple[float, float, float, float]

#: Box finders that :func:`find_object_box` and :func:`crop_frame` accept (``none``: no crop).
METHODS = ("none", "auto", "backdrop", "grabcut", "saliency")
#: Mean (object box's longer side) / (render side) of the training renders, measured on 112 eval renders.
RENDER_FILL = 0.78
#: Extra side a crop frame gets around the box (a fraction of the box's longer side), so the object fills
#: :data:`RENDER_FILL` of the square, as in training.
MARGIN = 1.0 / RENDER_FILL - 1.0
#: :func:`crop_frame` keeps the default framing unless the crop zooms in at least this much. Zooming in helped
#: down to 1.0 (a studio chair at zoom 1.1–1.2: top-1 0.79 → 0.95 with the true box); zooming out (an object
#: filling the photo, as in most development photos) gained nothing clear.
MIN_ZOOM = 1.0
#: Longer side of the working copy the box finders run on, pixels.
WORK_SIDE = 200
#: GrabCut's working side and iterations (its cost grows with both: about 40 ms on one core at 120 px).
GRABCUT_SIDE = 120
GRABCUT_ITERATIONS = 3
#: Share of each side outside GrabCut's initial rectangle (labelled background).
GRABCUT_INSET = 0.02
#: Below this many pixels on the shorter side an image carries no usable box.
_MIN_SIDE = 8


def grabcut_available() -> bool:
    """Whether OpenCV (``opencv-python-headless``) can be imported, which the ``grabcut`` method needs."""
    try:
        import cv2  # noqa: F401
    except ImportError:
        return False
    return True


def check_crop_method(method: str) -> str:
    """``method`` if it is one of :data:`METHODS` and can run here, else :class:`~cadsearch.errors.InputError`
    (an unknown name, or ``grabcut`` without OpenCV)."""
    _check_known(method)
    if method == "grabcut" and not grabcut_available():
        raise InputError("--crop grabcut needs OpenCV: pip install 'cadsearch[crop]' (opencv-python-headless)")
    return method


def _check_known(method: str) -> None:
    if method not in METHODS:
        raise InputError(f"unknown crop method {method!r}; choose one of {', '.join(METHODS)}")


def backdrop_mask(image: np.ndarray) -> np.ndarray | None:
    """(H, W) bool mask of what differs from a plain or gradient backdrop, or None.

    The background is modelled from the image border as a linear colour ramp per channel (a plain backdrop or
    a gradient, as in product shots and studio photos). None when the border does not fit such a ramp (a
    cluttered photo: no reliable mask) or when the differing pixels cover almost nothing or almost everything.

    Args:
        image: (H, W, 3) RGB, uint8 or float in 0–255.
    """
    a = np.asarray(image, np.float32)
    h, w = a.shape[:2]
    b = max(1, min(h, w) // 50)
    yy, xx = np.mgrid[0:h, 0:w]
    on_border = np.zeros((h, w), bool)
    on_border[:b], on_border[-b:], on_border[:, :b], on_border[:, -b:] = True, True, True, True
    design = np.stack([np.ones(h * w, np.float32), xx.ravel() / w, yy.ravel() / h], axis=1)
    coef, *_ = np.linalg.lstsq(design[on_border.ravel()], a.reshape(-1, 3)[on_border.ravel()], rcond=None)
    background = (design @ coef).reshape(h, w, 3)
    dist = np.linalg.norm(a - background, axis=2)
    spread = np.percentile(dist[on_border], 90)
    if spread > 40.0:
        return None
    fg = dist > max(30.0, 2.5 * spread)
    share = fg.mean()
    if not 0.005 < share < 0.9:
        return None
    return fg


def backdrop_box(image: np.ndarray) -> Box | None:
    """Box ``(x0, y0, x1, y1)`` (pixels, exclusive end) of what differs from the background
    (:func:`backdrop_mask`), or None when the photo has no plain or gradient backdrop.

    Args:
        image: (H, W, 3) RGB, uint8 or float in 0–255.
    """
    fg = backdrop_mask(image)
    if fg is None:
        return None
    ys, xs = np.nonzero(fg)
    # percentiles, not min/max: a few noisy pixels must not stretch the box
    x0, x1 = np.percentile(xs, [0.5, 99.5])
    y0, y1 = np.percentile(ys, [0.5, 99.5])
    return float(x0), float(y0), float(x1 + 1), float(y1 + 1)


def _working_copy(image: np.ndarray, side: int = WORK_SIDE) -> tuple[np.ndarray, float]:
    """(h, w, 3) uint8 copy with longer side ≤ ``side``, and the factor from its pixels to the image's."""
    h, w = image.shape[:2]
    scale = min(1.0, side / max(h, w))
    if scale == 1.0:
        return image, 1.0
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.BILINEAR, reducing_gap=2.0))
    return small, w / size[0]


def _mask_box(fg: np.ndarray, lo: float = 0.5, hi: float = 99.5) -> Box | None:
    """Box of a boolean mask from coordinate percentiles (a few stray pixels do not stretch it); None if empty."""
    ys, xs = np.nonzero(fg)
    if len(xs) == 0:
        return None
    x0, x1 = np.percentile(xs, [lo, hi])
    y0, y1 = np.percentile(ys, [lo, hi])
    return float(x0), float(y0), float(x1 + 1), float(y1 + 1)


def _clean(fg: np.ndarray) -> np.ndarray:
    """Keep the largest connected part of ``fg`` and every part at least a tenth its size (legs, armrests)."""
    labels, n = ndimage.label(fg)
    if n <= 1:
        return fg
    sizes = np.bincount(labels.ravel())[1:]
    keep = np.flatnonzero(sizes >= 0.1 * sizes.max()) + 1
    return np.isin(labels, keep)


def _box_grabcut(small: np.ndarray) -> Box | None:
    try:
        import cv2
    except ImportError:
        return None
    small, scale = _working_copy(small, GRABCUT_SIDE)
    h, w = small.shape[:2]
    ix, iy = max(1, round(GRABCUT_INSET * w)), max(1, round(GRABCUT_INSET * h))
    rect = (ix, iy, w - 2 * ix, h - 2 * iy)
    mask = np.zeros((h, w), np.uint8)
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    cv2.setRNGSeed(0)  # GrabCut seeds its colour models with k-means on OpenCV's global RNG
    try:
        cv2.grabCut(np.ascontiguousarray(small[..., ::-1]), mask, rect, bgd, fgd, GRABCUT_ITERATIONS,
                    cv2.GC_INIT_WITH_RECT)  # fmt: skip
    except cv2.error:
        return None  # e.g. a flat image: no colours to model
    fg = (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)
    share = fg.sum() / max(1, rect[2] * rect[3])
    if not 0.02 < share < 0.8:  # nothing, or the whole rectangle: GrabCut did not separate an object
        return None
    # no pruning of small parts: GrabCut's smoothing already drops much of a chair's thin legs
    box = _mask_box(fg)
    return None if box is None else tuple(v * scale for v in box)


def _box_saliency(small: np.ndarray) -> Box | None:
    h, w = small.shape[:2]
    # spectral residual on a 64 px grey copy: log-amplitude minus its local mean keeps the "unexpected" part
    f = 64 / max(h, w)
    sh, sw = max(8, round(h * f)), max(8, round(w * f))
    grey = np.asarray(Image.fromarray(small).convert("L").resize((sw, sh), Image.Resampling.BILINEAR), np.float64)
    spectrum = np.fft.fft2(grey)
    log_amp = np.log(np.abs(spectrum) + 1e-9)
    residual = log_amp - ndimage.uniform_filter(log_amp, 3, mode="nearest")
    sal = np.abs(np.fft.ifft2(np.exp(residual + 1j * np.angle(spectrum)))) ** 2
    sal = ndimage.gaussian_filter(sal, 2.5)
    if not np.isfinite(sal).all() or sal.max() <= 0:
        return None
    fg = sal > 3.0 * sal.mean()
    if not 0.01 < fg.mean() < 0.6:
        return None
    box = _mask_box(_clean(fg), 0.0, 100.0)
    if box is None:
        return None
    return box[0] * w / sw, box[1] * h / sh, box[2] * w / sw, box[3] * h / sh


_FINDERS = {"backdrop": backdrop_box, "grabcut": _box_grabcut, "saliency": _box_saliency}


def find_object_box(image: np.ndarray, method: str = "auto") -> Box | None:
    """Box of the one object in ``image``, or None when the method finds none it trusts.

    Args:
        image: RGB uint8 (H, W, 3), RGBA, grayscale (H, W) or float [0, 1]; anything else gives None.
        method: one of :data:`METHODS`; ``none`` always gives None.

    Returns:
        ``(x0, y0, x1, y1)`` float pixels of ``image`` (exclusive ends), or None.

    Raises:
        InputError: ``method`` is not one of :data:`METHODS`.
    """
    _check_known(method)
    if method == "none":
        return None
    try:
        a = as_rgb_uint8(image)
    except (InputError, ValueError, TypeError):
        return None
    if min(a.shape[:2]) < _MIN_SIDE:
        return None
    small, scale = _working_copy(a)
    box = _FINDERS["backdrop" if method == "auto" else method](small)
    if box is None:
        return None
    h, w = a.shape[:2]
    x0, y0, x1, y1 = (v * scale for v in box)
    x0, y0, x1, y1 = max(0.0, x0), max(0.0, y0), min(float(w), x1), min(float(h), y1)
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    return x0, y0, x1, y1


def crop_frame(
    image: np.ndarray, method: str = "auto", margin: float = MARGIN, min_zoom: float = MIN_ZOOM
) -> Frame | None:
    """The square to show the networks: centred on the object's box, framed like the training renders.

    Args:
        image: as for :func:`find_object_box`.
        method: one of :data:`METHODS`.
        margin: extra side around the box (default :data:`MARGIN`: the object fills :data:`RENDER_FILL`).
        min_zoom: crop only when the default square (the photo's longer side) is at least this many times the
            crop's side, i.e. the object is small in the photo; 0 crops whenever a box is found.

    Returns:
        A :class:`~cadsearch.framing.frame.Frame` in ``image``'s pixels (it may reach past the edges), or None
        for the default framing (whole photo padded to a square): no box found, too little zoom, or ``none``.
    """
    box = find_object_box(image, method)
    if box is None:
        return None
    h, w = np.shape(image)[:2]
    frame = frame_for(h, w, box, margin)
    return frame if max(h, w) >= min_zoom * frame.side else None
