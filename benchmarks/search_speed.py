"""The search issue's benchmark: single-photo latency end to end, exact vs approximate index, recall, memory.

For each library size (views) the script builds a view index of synthetic embeddings and measures one photo at a
time, end to end: decode a 640 × 480 JPEG → automatic crop (``auto``; the synthetic photo is an object on a plain
backdrop, so it crops) → embed it and its mirror image (for the pose head) with the scratch network (64 px input;
a trained checkpoint from ``--workspace`` if given, else the same architecture freshly initialised: latency does
not depend on the weights) → search the index → group by model, score, pose → ``to_json`` + ``json.dumps``.
Reported per size and index: p50/p95 latency (ms), the index search alone, recall@10 of the approximate index
against exact search (same queries), build time, and the index's memory per million views.

Synthetic vectors: ``views / 200`` models, each a random unit centre; a view is its model's centre plus noise
(normalised), and a query is a view plus smaller noise, so the nearest-neighbour structure resembles real
embeddings (many near-duplicates per model) rather than uniform noise, which is the hardest case for IVF/HNSW.

Usage:
    python benchmarks/search_speed.py [--sizes 1000,10000,40000,1000000] [--queries 100] [--workspace WS]
        [--json benchmarks/results/search_speed.json]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
from PIL import Image

from cadsearch.imageio import read_image
from cadsearch.index.faiss_index import ViewIndex, ViewTable, set_search_params
from cadsearch.search.searcher import Searcher

APPROX = {"hnsw": "IDMap,HNSW32,Flat", "ivf": "IDMap,IVF{nlist},Flat"}


def make_predictor(workspace: str | None):
    """The scratch network: trained from ``workspace`` if it has a checkpoint, else freshly initialised."""
    from cadsearch.models import checkpoint_path, load_predictor
    from cadsearch.models.predictor import Predictor
    from cadsearch.models.registry import create_model
    from cadsearch.models.train import TrainConfig, model_kwargs

    if workspace and checkpoint_path(workspace, "scratch").is_file():
        return load_predictor(checkpoint_path(workspace, "scratch")), "trained checkpoint"
    cfg = TrainConfig(arch="scratch")
    kwargs = model_kwargs(cfg)
    ids = [f"m{i}" for i in range(200)]
    net = create_model("scratch", num_classes=len(ids), **kwargs)
    ckpt = {
        "arch": "scratch",
        "model_kwargs": kwargs,
        "model_ids": ids,
        "state_dict": net.trainable_state_dict(),
        "input_size": cfg.size,
        "mean": [0.5, 0.5, 0.5],
        "std": [0.25, 0.25, 0.25],
    }
    return Predictor(ckpt), "untrained scratch network (same architecture)"


def synthetic(n: int, dim: int, seed: int = 0) -> tuple[np.ndarray, ViewTable, np.ndarray]:
    """``n`` clustered unit vectors (200 views per model) + their table + the model centres."""
    rng = np.random.default_rng(seed)
    n_models = max(1, n // 200)
    centres = rng.standard_normal((n_models, dim)).astype(np.float32)
    model = np.arange(n) % n_models
    x = np.empty((n, dim), np.float32)
    for start in range(0, n, 100_000):  # in blocks: keeps the temporary noise small at 1M
        sl = slice(start, min(start + 100_000, n))
        block = centres[model[sl]] / np.sqrt(dim) * 1.2 + rng.standard_normal((sl.stop - sl.start, dim)).astype(
            np.float32
        ) / np.sqrt(dim)
        x[sl] = block / np.linalg.norm(block, axis=1, keepdims=True)
    polar = rng.uniform(15, 105, n)
    azimuth = rng.uniform(0, 360, n)
    mids = np.array([f"m{m:05d}" for m in range(n_models)], dtype=object)[model]
    vids = np.array([f"v{i:07d}" for i in range(n)], dtype=object)
    table = ViewTable(vids, mids, polar, azimuth, vids)
    return x, table, centres


def queries_near(x: np.ndarray, n: int, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    q = x[rng.integers(0, len(x), n)] + 0.5 * rng.standard_normal((n, x.shape[1])).astype(np.float32) / np.sqrt(
        x.shape[1]
    )
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def photo_jpeg(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    a = np.full((480, 640, 3), 200, np.uint8)
    a[120:400, 220:420] = rng.integers(0, 255, 3)
    a = np.clip(a.astype(int) + rng.integers(-20, 20, a.shape), 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(a).save(buf, format="JPEG", quality=90)
    return buf.getvalue()


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS"):
                return int(line.split()[1]) / 1024
    return float("nan")


def end_to_end(searcher: Searcher, jpeg: bytes, queries: np.ndarray, k: int = 5) -> dict[str, float]:
    """Latency of decode → automatic crop → embed (with the pose head's flipped copy) → search → pose → JSON, one
    photo at a time: the steps of :meth:`Searcher.search` (:meth:`Searcher.embed_query`, then the index).

    The network sees the decoded photo; the index is searched with a synthetic query vector of the index's own
    distribution (the network's embedding of a synthetic photo would not have realistic neighbours), so the
    search cost is that of a real query.
    """
    times, search_ms = [], []
    for i, q in enumerate(queries):
        t0 = time.perf_counter()
        _, head, _ = searcher.embed_query(read_image(jpeg))
        res = searcher.search_embedding(q, head, k)
        res.timing_ms["total"] = 1000 * (time.perf_counter() - t0)
        json.dumps(res.to_json(f"photo-{i}.jpg"))
        times.append(1000 * (time.perf_counter() - t0))
        search_ms.append(res.timing_ms["search"] + res.timing_ms["pose"])
    t = np.array(times[3:] if len(times) > 10 else times)  # the first calls warm caches up
    return {
        "p50_ms": round(float(np.percentile(t, 50)), 2),
        "p95_ms": round(float(np.percentile(t, 95)), 2),
        "search_and_rank_p50_ms": round(float(np.percentile(search_ms, 50)), 2),
    }


def recall_at(index_a: ViewIndex, index_b: ViewIndex, q: np.ndarray, k: int = 10) -> float:
    _, ia = index_a.search(q, k)
    _, ib = index_b.search(q, k)
    return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ia, ib, strict=True)]))


def bench_size(n: int, predictor, jpeg: bytes, n_queries: int, dim: int, approx: list[str]) -> dict:
    x, table, _ = synthetic(n, dim)
    q = queries_near(x, n_queries)
    out: dict = {"views": n, "models": len(set(table.model_id[: min(n, 400)])) if n < 400 else n // 200}
    exact_index = None
    for name in ["exact"] + approx:
        # nlist ~ 4√n, capped: k-means over 1M points into 4000 lists takes too long on 2 cores
        nlist = min(int(4 * np.sqrt(n)), 1024)
        factory = "IDMap,Flat" if name == "exact" else APPROX[name].format(nlist=nlist)
        rss0 = rss_mb()
        t0 = time.perf_counter()
        index = ViewIndex.build(x, table, factory)
        build_s = time.perf_counter() - t0
        import faiss

        index_bytes = len(faiss.serialize_index(index.index))
        searcher = Searcher(predictor, index, None)
        row = {"factory": index.factory, "build_s": round(build_s, 2)}
        row |= end_to_end(searcher, jpeg, q)
        t0 = time.perf_counter()
        for v in q:
            index.search(v[None], 10)
        row["index_search_k10_ms"] = round(1000 * (time.perf_counter() - t0) / len(q), 3)
        row["index_mb_per_million_views"] = round(index_bytes / n * 1e6 / 2**20, 1)
        row["rss_growth_mb"] = round(rss_mb() - rss0, 1)
        if name == "exact":
            exact_index = index
        else:
            row["recall_at_10_vs_exact"] = round(recall_at(index, exact_index, q), 4)
            row["search_params"] = index.meta.get("search_params")
            # the recall / latency trade-off of the search-time knob (FAISS wiki: efSearch, nprobe)
            knob = "efSearch" if "HNSW" in index.factory else "nprobe"
            sweep = {}
            for value in (16, 32, 64, 128, 256, 512):
                set_search_params(index.index, {knob: value})
                t0 = time.perf_counter()
                for v in q:
                    index.search(v[None], 10)
                ms = 1000 * (time.perf_counter() - t0) / len(q)
                sweep[str(value)] = {"recall_at_10": round(recall_at(index, exact_index, q), 4), "k10_ms": round(ms, 3)}
            row[f"{knob}_sweep"] = sweep
        out[name] = row
        print(f"{n:>8} views {name:<6} {json.dumps(row)}", flush=True)
        if name != "exact":
            del index, searcher
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,10000,40000,1000000")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--approx", default="hnsw,ivf", help="approximate indexes to compare at ≥ 40k views")
    parser.add_argument("--workspace", default=None, help="use this workspace's trained scratch checkpoint")
    parser.add_argument("--json", default="benchmarks/results/search_speed.json")
    args = parser.parse_args()

    predictor, net = make_predictor(args.workspace)
    dim = int(predictor.predict([np.zeros((64, 64, 3), np.uint8)]).embedding.shape[1])
    jpeg = photo_jpeg()
    results = {
        "setup": {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores, no GPU",
            "torch_threads": 1,  # the Searcher sets 1 intra-op thread (see Searcher)
            "network": net,
            "input": "640x480 JPEG decoded per query",
            "embedding_dim": dim,
            "k_views": 256,
            "queries_per_size": args.queries,
            "vectors": "synthetic, 200 views per model, clustered (see module docstring)",
        },
        "sizes": [],
    }
    for n in [int(s) for s in args.sizes.split(",")]:
        approx = [a for a in args.approx.split(",") if a] if n >= 40_000 else []
        results["sizes"].append(bench_size(n, predictor, jpeg, args.queries, dim, approx))
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
