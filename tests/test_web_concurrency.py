"""16 searches at once through a real uvicorn server on loopback: every one gets the answer to its own image,
and the server keeps answering other requests while they run."""

from __future__ import annotations

import io
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
from PIL import Image

from cadsearch.library import Library
from cadsearch.web.testing import FakeSearcher, running_server
from fakes import make_app, png_bytes


def test_16_concurrent_searches_are_all_correct(web_ws: Path):
    searcher = FakeSearcher(Library.open(web_ws), delay_s=0.2)  # stands in for ~0.2 s of inference
    reference = FakeSearcher(Library.open(web_ws))
    images = {f"q{i}.png": png_bytes(seed=100 + i) for i in range(16)}
    expected = {
        name: reference.search(np.asarray(Image.open(io.BytesIO(data)).convert("RGB")), 5).to_json(name)["results"]
        for name, data in images.items()
    }
    with running_server(make_app(web_ws, searcher, search_slots=4)) as url, httpx.Client(base_url=url, timeout=60) as c:

        def one(name: str) -> tuple[str, dict, float]:
            t0 = time.perf_counter()
            r = c.post("/api/search", files={"image": (name, images[name], "image/png")})
            assert r.status_code == 200, r.text
            return name, r.json(), time.perf_counter() - t0

        t0 = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            futures = [pool.submit(one, name) for name in images]
            time.sleep(0.1)
            h0 = time.perf_counter()
            assert c.get("/healthz").status_code == 200
            health_s = time.perf_counter() - h0
            answers = [f.result() for f in futures]
        wall = time.perf_counter() - t0
    for name, body, _ in answers:
        assert body["query"] == name
        assert body["results"] == expected[name]  # 16 different images: each request was searched, on its own image
    assert health_s < 0.5, "the event loop was blocked by searches"
    # 4 slots × 0.2 s: 16 searches take ~0.8 s in parallel, 3.2 s in series
    assert wall < 3.0
