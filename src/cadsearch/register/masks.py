"""The photo's object mask that registration aligns the model's silhouette with.

Two sources, best first:

1. a plain or gradient backdrop (product shots, :func:`cadsearch.framing.backdrop_mask`): what differs from it —
   exact where it applies, and it declines cluttered photos;
2. the localiser's mask head (:meth:`cadsearch.detect.Localiser.segment`), run on the object's own square, so the
   object fills most of the detector's input (trained on renders: on real photos it often covers only part of
   the object, BENCHMARKS.md).

Neither: no mask, and the model is not registered (its pose stays the search's, roll 0).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image

from cadsearch.detect.localiser import box_iou
from cadsearch.detect.masks import frame_mask
from cadsearch.framing import Frame, backdrop_mask

__all__ = [
    "object_mask",
    "restrict_to_box",
    "mask_is_trusted",
    "MIN_MASK_SHARE",
    "BOX_MARGIN",
    "TRUST_FILL",
    "TRUST_BOX_IOU",
]

#: A mask covering less than this share of its frame is no object (nothing to align to).
MIN_MASK_SHARE = 0.01
#: The backdrop is modelled on a copy of the photo whose longer side is at most this (a 12 MP photo's least-squares
#: fit over every pixel would take seconds and ~150 MB).
BACKDROP_SIDE = 512
#: :func:`restrict_to_box` keeps the mask this share of the box's size past each of its edges.
BOX_MARGIN = 0.08
#: :func:`mask_is_trusted`: a detector's mask must cover at least this share of its detection box ...
TRUST_FILL = 0.15
#: ... and its own bounding box must overlap the detection box by at least this IoU.
TRUST_BOX_IOU = 0.5


def restrict_to_box(target: np.ndarray, frame: Frame, box: tuple[float, float, float, float]) -> np.ndarray:
    """``target`` (S, S) over ``frame`` with everything outside ``box`` (photo pixels, enlarged by
    :data:`BOX_MARGIN` of its size on each side) set to 0: another object's mask must not pull the fit."""
    s = target.shape[0]
    x0, y0, x1, y1 = box
    mx, my = BOX_MARGIN * (x1 - x0), BOX_MARGIN * (y1 - y0)
    k = s / frame.side
    c0, c1 = int(np.floor((x0 - mx - frame.x0) * k)), int(np.ceil((x1 + mx - frame.x0) * k))
    r0, r1 = int(np.floor((y0 - my - frame.y0) * k)), int(np.ceil((y1 + my - frame.y0) * k))
    out = np.zeros_like(target)
    r0, r1, c0, c1 = max(r0, 0), min(r1, s), max(c0, 0), min(c1, s)
    if r1 > r0 and c1 > c0:
        out[r0:r1, c0:c1] = target[r0:r1, c0:c1]
    return out


def mask_is_trusted(
    target: np.ndarray, frame: Frame, source: str, box: tuple[float, float, float, float] | None
) -> bool:
    """Whether ``target`` (an :func:`object_mask` over ``frame``) outlines the whole object, so that a pose that fits
    it better may overrule the search's pose (registration's alternative starts).

    A plain backdrop's mask is exact. A detector's mask is trusted only when it agrees with the detection's own
    ``box`` (photo pixels): it covers at least :data:`TRUST_FILL` of the box, and its bounding box overlaps the box
    by IoU ≥ :data:`TRUST_BOX_IOU`. On real photos the mask head often covers only a chair's seat or back inside a
    box around the whole chair, and a wrong pose then fits that part better (on the development photos most masks
    where the pose head's other modes made registration worse had fills of 0.02–0.09 and box IoUs of 0.06–0.36;
    on rolled room composites, where the mask is right, 95 % had fills ≥ 0.18 and box IoUs ≥ 0.53: BENCHMARKS.md,
    registration). Without a box (nothing detected) a detector's mask is not trusted.
    """
    if source == "backdrop":
        return True
    if box is None:
        return False
    m = np.asarray(target) >= 0.5
    ys, xs = np.nonzero(m)
    if not len(xs):
        return False
    k = m.shape[0] / frame.side  # mask pixels per photo pixel
    detected = np.array([(box[0] - frame.x0) * k, (box[1] - frame.y0) * k, (box[2] - frame.x0) * k,
                         (box[3] - frame.y0) * k])  # fmt: skip
    box_area = max(float((detected[2] - detected[0]) * (detected[3] - detected[1])), 1e-6)
    outline = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
    overlap = float(box_iou(detected, outline)[0, 0])
    return bool(m.sum() / box_area >= TRUST_FILL and overlap >= TRUST_BOX_IOU)


def object_mask(
    image: np.ndarray, frame: Frame, localiser: Any = None, size: int = 256
) -> tuple[np.ndarray, str] | None:
    """The object's mask over ``frame``: ``((S, S) float32 probability, source)`` with source ``"detector"`` or
    ``"backdrop"``, or None when neither gives one (or it covers under :data:`MIN_MASK_SHARE` of the frame).

    Args:
        image: (H, W, 3) uint8 RGB photo.
        frame: the object's square in photo pixels (the square the network looked at).
        localiser: a :class:`~cadsearch.detect.Localiser`; its mask head is used when it has one.
        size: side of the returned mask when it comes from the backdrop (the detector's is its input size).
    """
    h, w = image.shape[:2]
    k = min(1.0, BACKDROP_SIDE / max(h, w))
    small = image
    if k < 1.0:
        small = np.asarray(Image.fromarray(image).resize((max(1, round(w * k)), max(1, round(h * k)))))
    fg = backdrop_mask(small)
    if fg is not None:
        # as it is: filling holes would also fill the gaps between a chair's slats and legs, which the model's
        # silhouette has (tried once on three 256 px chair renders: refined IoU 0.91–0.96 unfilled, 0.68–0.96 filled)
        prob = frame_mask(fg.astype(np.float32), size, frame.scaled(small.shape[1] / w))
        if (prob >= 0.5).mean() >= MIN_MASK_SHARE:
            return prob, "backdrop"
    if localiser is not None and getattr(localiser, "has_mask", False):
        prob = np.asarray(localiser.segment(image, frame), np.float32)
        if (prob >= 0.5).mean() >= MIN_MASK_SHARE:
            return prob, "detector"
    return None
