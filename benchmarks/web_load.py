"""Load benchmark of the web app: many concurrent ``POST /api/search`` on loopback; throughput and latency.

The script starts the app itself (uvicorn on a free port of 127.0.0.1 — never another interface), sends a
bounded number of searches with a bounded concurrency and time, checks that every answer is the searcher's
answer to *that* image, and writes ``benchmarks/results/web_load.json``.

Usage:
    python benchmarks/web_load.py [--workspace WS] [--searcher auto|real|fake] [--requests 64] [--concurrency 16]
        [--fake-delay 0.05] [--max-seconds 120] [--out benchmarks/results/web_load.json]

Without ``--workspace`` a tiny workspace (4 procedural chairs × 4 views) is made in a temporary folder. ``auto``
uses the workspace's trained model and index when it has them, else the fake searcher, which sleeps
``--fake-delay`` seconds per search to stand in for inference.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from cadsearch import __version__
from cadsearch.imageio import read_image
from cadsearch.library import Library
from cadsearch.render.job import RenderConfig, read_view_table, render_views
from cadsearch.web import Settings, create_app
from cadsearch.web.testing import FakeSearcher, running_server

HOST = "127.0.0.1"  # loopback only: a benchmark must not open a port to the network


def tiny_workspace(folder: Path) -> Path:
    Library.open(folder).generate_chairs(4)
    render_views(folder, RenderConfig(views=4, size=128, backgrounds="random"), progress=False)
    return folder


def pick_searcher(ws: Path, kind: str, fake_delay: float):
    if kind in ("auto", "real"):
        try:
            from cadsearch.search import Searcher

            return "real", Searcher.from_workspace(ws)
        except Exception as err:  # no model or index: fall back (auto) or stop (real)
            if kind == "real":
                sys.exit(f"error: no real searcher in {ws}: {err}")
            print(f"no trained model/index in {ws} ({err}); using the fake searcher", file=sys.stderr)
    return "fake", FakeSearcher(Library.open(ws), delay_s=fake_delay)


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


async def run_load(url: str, queries: list[tuple[str, bytes]], n: int, concurrency: int, max_seconds: float):
    """Send ``n`` searches (cycling over ``queries``), at most ``concurrency`` in flight; stop early after
    ``max_seconds``. Returns (records, wall seconds)."""
    slots = asyncio.Semaphore(concurrency)
    records: list[dict] = []
    deadline = time.perf_counter() + max_seconds
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=url, timeout=max_seconds, limits=limits) as client:

        async def one(i: int) -> None:
            name, data = queries[i % len(queries)]
            async with slots:
                if time.perf_counter() > deadline:
                    return
                t0 = time.perf_counter()
                try:
                    r = await client.post("/api/search", files={"image": (name, data, "image/png")})
                    status, body = r.status_code, (r.json() if r.status_code == 200 else None)
                except httpx.HTTPError as err:
                    status, body = f"error: {type(err).__name__}", None
                records.append({"name": name, "status": status, "latency_s": time.perf_counter() - t0, "body": body})

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return records, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workspace", type=Path)
    ap.add_argument("--searcher", choices=("auto", "real", "fake"), default="auto")
    ap.add_argument("--requests", type=int, default=64)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--fake-delay", type=float, default=0.05)
    ap.add_argument("--max-seconds", type=float, default=120.0)
    ap.add_argument("--search-slots", type=int, default=4)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results" / "web_load.json")
    args = ap.parse_args()
    if not (1 <= args.requests <= 10_000 and 1 <= args.concurrency <= 256 and 0 < args.max_seconds <= 3600):
        sys.exit("error: --requests 1..10000, --concurrency 1..256, --max-seconds up to 3600")

    with tempfile.TemporaryDirectory(prefix="web_load_") as tmp:
        ws = args.workspace or tiny_workspace(Path(tmp) / "ws")
        kind, searcher = pick_searcher(ws, args.searcher, args.fake_delay)
        rows = read_view_table(ws)[:32]
        queries = [(f"{r.view_id.replace('/', '_')}.png", (ws / r.path).read_bytes()) for r in rows]
        # the answer each query must get: the searcher itself, called directly on the same pixels
        expected = {}
        for name, data in queries:
            image = read_image(data)  # decoded as the web app decodes an upload (EXIF applied)
            expected[name] = [m.model_id for m in searcher.search(image, k=5).results]
        if kind == "fake":
            searcher.calls = 0
        app = create_app(Settings(workspace=ws, search_slots=args.search_slots), searcher=searcher)
        with running_server(app, host=HOST) as url:
            records, wall = asyncio.run(run_load(url, queries, args.requests, args.concurrency, args.max_seconds))

    ok = [r for r in records if r["status"] == 200]
    correct = [r for r in ok if [m["model_id"] for m in r["body"]["results"]] == expected[r["name"]]]
    latencies = [r["latency_s"] for r in ok]
    server_ms = [r["body"]["timing_ms"]["total"] for r in ok]
    result = {
        "benchmark": "web_load",
        "cadsearch": __version__,
        "searcher": kind,
        "fake_delay_s": args.fake_delay if kind == "fake" else None,
        "requests_planned": args.requests,
        "requests_sent": len(records),
        "concurrency": args.concurrency,
        "search_slots": args.search_slots,
        "ok": len(ok),
        "correct": len(correct),
        "errors": sorted({str(r["status"]) for r in records if r["status"] != 200}),
        "wall_s": round(wall, 3),
        "throughput_rps": round(len(ok) / wall, 2) if wall > 0 else None,
        "latency_ms": {
            "p50": round(1000 * percentile(latencies, 50), 1),
            "p95": round(1000 * percentile(latencies, 95), 1),
            "max": round(1000 * max(latencies), 1) if latencies else None,
            "mean": round(1000 * statistics.fmean(latencies), 1) if latencies else None,
        },
        "server_search_ms_mean": round(statistics.fmean(server_ms), 1) if server_ms else None,
        "machine": {"python": platform.python_version(), "cpus": __import__("os").cpu_count()},
        "host": HOST,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    if len(correct) != len(records):
        sys.exit(1)


if __name__ == "__main__":
    main()
