"""Search: photo → ranked library models, each with a calibrated score and a camera pose; registration overlay.

- :class:`Searcher` — loads the network and the view index once; ``search(image, k)`` → :class:`SearchResult`
  of :class:`ModelMatch` (thread-safe).
- :func:`cadsearch.search.overlay.render_overlay` — the top model drawn at its pose over the photo.
- :mod:`cadsearch.search.calibration` — fits the score temperature of an index on views the network did not
  train on.

``cadsearch search IMAGE...`` (printing, exit codes) lives in :mod:`cadsearch.cli`.
"""

from __future__ import annotations

from cadsearch.search.searcher import CROP_CHOICES, ModelMatch, Searcher, SearchResult, default_arch, detection_frames

__all__ = ["CROP_CHOICES", "ModelMatch", "SearchResult", "Searcher", "default_arch", "detection_frames"]
