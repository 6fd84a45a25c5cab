"""Framing: the object-centred square the networks see, and the one policy that frames a query photo.

A neutral layer below ``models``, ``search`` and ``web`` (it imports only numpy, PIL, SciPy and
:mod:`cadsearch.errors`), so training, prediction, search, evaluation, the overlay, the web app and the benchmarks
share one definition instead of each re-deriving it:

- :mod:`cadsearch.framing.frame`: :class:`Frame` (a square in photo pixels), :func:`frame_for` (the square around
  a box or the whole photo), :func:`frame_image` (cut a frame out, padding past the edges with the border's median
  colour, and resize it), :func:`upright_image` (the same, turned to undo a camera's roll), :func:`as_rgb_uint8`,
  :func:`centre_frame` (the old centre crop, for comparisons).
- :mod:`cadsearch.framing.autocrop`: the automatic crop (:data:`METHODS`, :func:`crop_frame`,
  :func:`find_object_box`, :func:`backdrop_box`, :func:`backdrop_mask`, :func:`check_crop_method`,
  :func:`grabcut_available`).
- :func:`frame_query`: a query photo → the :class:`Frame` to show the networks (None: the whole photo padded to a
  square). Nothing else decides how a query is framed.

Coordinates are photo pixels, x right, y down; boxes ``(x0, y0, x1, y1)`` with exclusive ends.
"""

from __future__ import annotations

from cadsearch.framing.autocrop import (
    MARGIN,
    METHODS,
    MIN_ZOOM,
    RENDER_FILL,
    backdrop_box,
    backdrop_mask,
    check_crop_method,
    crop_frame,
    find_object_box,
    grabcut_available,
)
from cadsearch.framing.frame import Frame, as_rgb_uint8, centre_frame, frame_for, frame_image, upright_image
from cadsearch.framing.query import frame_query

__all__ = [
    "Frame",
    "frame_for",
    "frame_image",
    "upright_image",
    "centre_frame",
    "as_rgb_uint8",
    "frame_query",
    "check_crop_method",
    "METHODS",
    "MARGIN",
    "MIN_ZOOM",
    "RENDER_FILL",
    "crop_frame",
    "find_object_box",
    "backdrop_box",
    "backdrop_mask",
    "grabcut_available",
]
