"""A stand-in searcher for tests, benchmarks and front-end work: same interface as
:class:`cadsearch.search.Searcher` (``library``, ``search(image, k)`` → result with ``results``, ``timing_ms``
and ``to_json(query)``), no model or index needed.

Its answers are deterministic functions of the image (the same pixels always give the same ranking and poses),
so a test can check that every concurrent request got the answer to *its* image.
"""

from __future__ import annotations

import contextlib
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import numpy as np

from cadsearch.register.placement import Placement
from cadsearch.search.searcher import ModelMatch, SearchResult

__all__ = ["FakeSearcher", "running_server"]


class FakeSearcher:
    """Ranks ``library``'s models pseudo-randomly, seeded by the image's pixels.

    Args:
        library: a :class:`cadsearch.library.Library` (or anything with ``list()`` of ModelInfo-like rows).
        delay_s: seconds each search sleeps, to stand in for model inference in load tests (it releases the
            GIL like real inference mostly does).
        registered: answer registered results (:mod:`cadsearch.register`): each with a roll, a placement (a
            render square of 60-90 % of the image's shorter side near its centre, turned by the roll) and a
            silhouette IoU, as :class:`~cadsearch.search.Searcher` does when it refines the returned models.
    """

    def __init__(self, library: Any, delay_s: float = 0.0, registered: bool = False):
        self.library = library
        self.delay_s = float(delay_s)
        self.registered = bool(registered)
        self._models = list(library.list())
        self.calls = 0

    def search(self, image: np.ndarray, k: int = 5) -> SearchResult:
        """Top ``k`` models for ``image`` ((H, W, 3) uint8)."""
        t0 = time.perf_counter()
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an (H, W, 3) uint8 image, got {image.shape} {image.dtype}")
        self.calls += 1
        rng = np.random.default_rng(self.seed_of(image))
        if self.delay_s:
            time.sleep(self.delay_s)
        order = rng.permutation(len(self._models))[:k]
        scores = np.sort(rng.uniform(0.05, 0.98, size=len(order)))[::-1]
        matches = []
        h, w = image.shape[:2]
        for rank, (i, score) in enumerate(zip(order, scores, strict=True), start=1):
            info = self._models[int(i)]
            match = ModelMatch(
                rank=rank,
                model_id=info.model_id,
                name=info.name,
                category=info.category,
                score=round(float(score), 4),
                polar_deg=round(float(rng.uniform(40, 100)), 2),
                azimuth_deg=round(float(rng.uniform(0, 360)), 2),
                best_view_id="",  # the fake has no views
                match=round(float(rng.uniform(0.0, 1.0)) * (rank == 1), 4),
            )
            if self.registered:
                roll = round(float(rng.uniform(-25.0, 25.0)), 2)
                cx, cy = (float(v) for v in rng.uniform(0.4, 0.6, size=2) * (w, h))
                side = float(rng.uniform(0.6, 0.9)) * min(h, w)
                iou = round(float(rng.uniform(0.6, 0.95)), 4)
                match = replace(match, roll_deg=roll, placement=Placement(cx, cy, side, roll), silhouette_iou=iou)
            matches.append(match)
        return SearchResult(matches, {"total": (time.perf_counter() - t0) * 1000.0})

    @staticmethod
    def seed_of(image: np.ndarray) -> int:
        """The seed this searcher derives from ``image`` (a checksum of its pixels and shape)."""
        return zlib.crc32(np.ascontiguousarray(image).tobytes(), zlib.crc32(repr(image.shape).encode()))


@contextlib.contextmanager
def running_server(app: Any, host: str = "127.0.0.1", timeout_s: float = 30.0) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port of ``host`` in a background thread; yields the base URL.

    The socket is bound here (port 0: the OS picks a free one) and handed to uvicorn, so there is no race
    between finding a free port and using it. The server stops when the ``with`` block ends.
    """
    import socket

    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on", timeout_keep_alive=30))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name="cadsearch-test-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield f"http://{host}:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout_s)
        sock.close()
