"""One search as the web app runs it: bytes of an upload → image → searcher → DESIGN.md's JSON.

Decoding and searching are CPU work, so they run in a worker thread (the event loop keeps serving other
requests); a capacity limiter made in the lifespan caps how many run at once, which bounds the memory that
decoded images can take when many uploads arrive together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import Request
from starlette.concurrency import run_in_threadpool

from cadsearch.framing import Frame
from cadsearch.web.images import decode_image, downscale

__all__ = ["SearchOutcome", "search_bytes", "DISPLAY_SIDE"]

#: The query image is kept for the results page at most this many pixels on its longer side.
DISPLAY_SIDE = 1024


@dataclass
class SearchOutcome:
    """A finished search: the display-size image, the searcher's result, its JSON, and the square the network
    looked at in the display-size image (None: the whole image padded to a square); ``scale``: display pixels per
    pixel of the searched image (boxes and frames of ``result.objects`` are in the latter)."""

    image: np.ndarray
    result: Any
    payload: dict
    frame: Frame | None = None
    scale: float = 1.0


def _search_sync(searcher: Any, data: bytes, query: str, max_pixels: int, k: int) -> SearchOutcome:
    image = decode_image(data, max_pixels, query)
    result = searcher.search(image, k=k)
    shown = downscale(image, DISPLAY_SIDE)
    frame = getattr(result, "frame", None)
    scale = shown.shape[1] / image.shape[1]
    if frame is not None:
        frame = frame.scaled(scale)
    return SearchOutcome(shown, result, result.to_json(query), frame, scale)


async def search_bytes(
    request: Request, searcher: Any, data: bytes, query: str, max_pixels: int, k: int
) -> SearchOutcome:
    """Decode ``data`` and search it in a worker thread.

    Raises:
        InputError: the bytes are not a usable image (the app's handler answers 400).
    """
    limiter = getattr(request.app.state, "search_limiter", None)
    if limiter is None:  # no lifespan ran (a test without `with TestClient(...)`): anyio's default pool
        return await run_in_threadpool(_search_sync, searcher, data, query, max_pixels, k)
    import anyio.to_thread

    return await anyio.to_thread.run_sync(_search_sync, searcher, data, query, max_pixels, k, limiter=limiter)
