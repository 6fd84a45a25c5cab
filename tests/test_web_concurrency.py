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

from cadsearch.index import build_index, load_index
from cadsearch.library import Library
from cadsearch.render.job import read_view_table
from cadsearch.search import Searcher
from cadsearch.web.testing import FakeSearcher, running_server
from fakes import fake_for, make_app, png_bytes


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


def test_searches_that_register_models_run_at_once(search_ws: Path):
    """A real searcher (on the fake network) registers each answer with OpenGL renders; several request threads
    rendering at once, each model uploaded by whichever thread needs it first, all get their answers."""
    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    searcher = Searcher(fake, load_index(search_ws, "scratch"), Library.open(search_ws))
    rows = read_view_table(search_ws)
    views = {f"q{i}.png": (search_ws / r.path).read_bytes() for i, r in enumerate(rows[::2])}  # all 3 models
    app = make_app(search_ws, searcher, search_slots=4)
    with running_server(app) as url, httpx.Client(base_url=url, timeout=120) as c:

        def one(name: str) -> tuple[int, dict]:
            r = c.post("/api/search", files={"image": (name, views[name], "image/png")})
            return r.status_code, r.json()

        with ThreadPoolExecutor(len(views)) as pool:
            answers = dict(zip(views, pool.map(one, views), strict=True))
    assert [status for status, _ in answers.values()] == [200] * len(views), answers
    registered = [res for _, body in answers.values() for res in body["results"][:1] if "placement" in res]
    assert registered, "no answer was registered: the test would not exercise the renders"
