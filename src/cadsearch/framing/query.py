"""The one framing policy for a query photo: which square of it the networks look at.

Search (:meth:`cadsearch.search.Searcher.embed_query`), evaluation (through the searcher), the registration overlay,
the web app and the benchmarks all frame a query with :func:`frame_query`; :func:`~cadsearch.framing.frame.frame_image`
then cuts that square out and resizes it for the network (``Predictor.predict(images, frames=[...])``).
"""

from __future__ import annotations

import numpy as np

from cadsearch.framing.autocrop import check_crop_method, crop_frame
from cadsearch.framing.frame import Frame

__all__ = ["frame_query"]


def frame_query(image: np.ndarray, crop: str = "auto") -> Frame | None:
    """The square of ``image`` to show the networks.

    Args:
        image: the query photo, RGB uint8 (H, W, 3) (RGBA, grayscale (H, W) or float [0, 1] are accepted too).
        crop: the automatic-crop method, one of :data:`~cadsearch.framing.autocrop.METHODS`: ``auto`` (default)
            crops to the object on a plain or gradient backdrop when that zooms in, else keeps the whole photo;
            ``none`` never crops; ``backdrop``, ``grabcut``, ``saliency`` pick the box finder.

    Returns:
        A :class:`~cadsearch.framing.frame.Frame` in ``image``'s pixels (x right, y down; it may reach past the
        edges), or None for the default framing: the whole photo padded to a square with its border's median
        colour (:func:`~cadsearch.framing.frame.frame_for` of the whole photo). Either is what
        ``Predictor.predict(..., frames=[...])`` and ``render_overlay(..., frame=...)`` take.

    Raises:
        InputError: ``crop`` is not a known method, or is ``grabcut`` without OpenCV.
    """
    return crop_frame(image, check_crop_method(crop))
