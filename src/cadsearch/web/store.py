"""Recent searches, kept in memory so that a results page (and its images) can be shown after a redirect.

Bounded (least recently used searches are dropped: their links then say "expired") and thread-safe. Nothing
is written to disk: uploaded photos are the user's, not the workspace's.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cadsearch.framing import Frame

__all__ = ["StoredSearch", "ResultStore"]


@dataclass
class StoredSearch:
    """One finished search.

    Attributes:
        search_id: random URL-safe id (unguessable, so one user's photo is not shown to another by accident).
        query_name: the uploaded file's name (or the example's title).
        image: the query image, downscaled for display, (H, W, 3) uint8.
        result: the searcher's result object (``.results`` matches, ``.timing_ms``, ``.to_json``).
        payload: DESIGN.md's search JSON for this query.
        frame: the square the network looked at, in ``image``'s pixels (None: the whole image padded to a square).
        created: ``time.time()`` of the search.
        scale: ``image``'s pixels per pixel of the searched image (``result.objects`` boxes are in the latter).
        cache: lazily made artefacts (query JPEG, overlay PNG), keyed by name.
    """

    search_id: str
    query_name: str
    image: np.ndarray
    result: Any
    payload: dict
    frame: Frame | None = None
    created: float = field(default_factory=time.time)
    scale: float = 1.0
    cache: dict[str, bytes] = field(default_factory=dict)


class ResultStore:
    """An LRU map search id → :class:`StoredSearch` holding at most ``capacity`` searches."""

    def __init__(self, capacity: int = 64):
        self.capacity = max(1, int(capacity))
        self._items: OrderedDict[str, StoredSearch] = OrderedDict()
        self._lock = threading.Lock()

    def add(
        self,
        query_name: str,
        image: np.ndarray,
        result: Any,
        payload: dict,
        frame: Frame | None = None,
        scale: float = 1.0,
    ) -> StoredSearch:
        """Store a search under a new id and return it."""
        item = StoredSearch(secrets.token_urlsafe(12), query_name, image, result, payload, frame, scale=scale)
        with self._lock:
            self._items[item.search_id] = item
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)
        return item

    def get(self, search_id: str) -> StoredSearch | None:
        """The search, or None if unknown or expired."""
        with self._lock:
            item = self._items.get(search_id)
            if item is not None:
                self._items.move_to_end(search_id)
            return item

    def __len__(self) -> int:
        with self._lock:
            return len(self._items)
