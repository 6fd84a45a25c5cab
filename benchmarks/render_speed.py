"""Render speed benchmark: views/s of ``cadsearch render`` (rendering + PNG writing), end to end.

Scenarios: ``chairs``, the issue's "done when" job — 20 procedural chairs (~1.6k triangles on average) × 100
views; ``chair5k``, one ~5k-triangle procedural office chair × 1000 views; ``dense``, one ~200k-triangle mesh ×
200 views. Each at 128 and 224 px with 1 and 2 worker processes, for each quality asked for. Each setting runs
``--repeat`` times in a fresh workspace (nothing reused); the table shows the median and the best run.
Views/s counts the whole job: process start, mesh loading, rendering, compositing and writing three PNGs.

    .venv/bin/python benchmarks/render_speed.py [--quality low high] [--scenarios chairs chair5k dense] [--repeat 2]

Prints a table and writes ``benchmarks/results/render_speed.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import trimesh

from cadsearch.library import Library
from cadsearch.render.job import RenderConfig, render_views

RESULTS = Path(__file__).resolve().parent / "results" / "render_speed.json"
#: Scenario → views per model.
SCENARIOS = {"chairs": 100, "chair5k": 1000, "dense": 200}


def _dense_mesh(workdir: Path) -> Path:
    """A ~200k-triangle mesh: a UV sphere with a bump pattern and vertex colours, saved as PLY."""
    mesh = trimesh.creation.uv_sphere(radius=1.0, count=[158, 316])
    v = mesh.vertices
    mesh.vertices = v * (1.0 + 0.05 * np.sin(8 * v[:, :1]) * np.cos(8 * v[:, 1:2]))
    mesh.visual.vertex_colors = np.c_[(v * 0.5 + 0.5) * 255, np.full(len(v), 255)].astype(np.uint8)
    path = workdir / "dense.ply"
    mesh.export(path)
    return path


def _setup(root: Path, scenario: str, dense_path: Path) -> tuple[list[str], float]:
    library = Library.open(root)
    if scenario == "chairs":
        report = library.generate_chairs(20, seed=0)
    elif scenario == "chair5k":
        from cadsearch.library.procedural import generate_chair

        path = root.parent / f"{root.name}-office.glb"
        generate_chair(0, "office").mesh.export(path)
        report = library.add_paths([path], category="chair")
    else:
        report = library.add_paths([dense_path], category="sphere")
    assert not report.failed, report.failed
    models = library.list()
    return [m.model_id for m in models], float(np.mean([m.n_faces for m in models]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quality", nargs="+", default=["low"], choices=["low", "high"])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--sizes", nargs="+", type=int, default=[128, 224])
    parser.add_argument("--workers", nargs="+", type=int, default=[1, 2])
    parser.add_argument("--spp", type=int, default=16)
    parser.add_argument("--scenarios", nargs="+", default=list(SCENARIOS), choices=list(SCENARIOS))
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dense = _dense_mesh(tmp)
        for quality in args.quality:
            for scenario in args.scenarios:
                views = SCENARIOS[scenario]
                if quality == "high":
                    views //= 4  # the ray tracer is ~10x slower; fewer views keep the benchmark short
                for size in args.sizes:
                    for workers in args.workers:
                        rates = []
                        for rep in range(args.repeat):
                            root = tmp / f"{quality}-{scenario}-{size}-{workers}-{rep}"
                            ids, faces = _setup(root, scenario, dense)
                            config = RenderConfig(views=views, size=size, quality=quality, spp=args.spp)
                            t0 = time.perf_counter()
                            summary = render_views(root, config, ids, workers=workers, progress=False)
                            rates.append(summary.rendered / (time.perf_counter() - t0))
                        row = {
                            "quality": quality,
                            "scenario": scenario,
                            "models": len(ids),
                            "mean_faces": round(faces),
                            "views": summary.rendered,
                            "size": size,
                            "workers": workers,
                            "views_per_s_median": round(statistics.median(rates), 1),
                            "views_per_s_best": round(max(rates), 1),
                            "runs": [round(r, 1) for r in rates],
                        }
                        rows.append(row)
                        print(
                            f"{quality:<5} {scenario:<7} {row['mean_faces']:>7} tris {size:>4} px "
                            f"{workers} worker(s): {row['views_per_s_median']:>7.1f} views/s median, "
                            f"{row['views_per_s_best']:>7.1f} best",
                            flush=True,
                        )
    # Rows of settings measured by an earlier run (e.g. the other quality) stay; re-measured ones are replaced.
    key = ("quality", "scenario", "size", "workers")
    if RESULTS.exists():
        fresh = {tuple(r[k] for k in key) for r in rows}
        earlier = json.loads(RESULTS.read_text()).get("rows", [])
        rows = [r for r in earlier if tuple(r[k] for k in key) not in fresh] + rows
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "python": sys.version.split()[0],
        "command": "python benchmarks/render_speed.py " + " ".join(sys.argv[1:]),
        "rows": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"\nwrote {RESULTS}")


if __name__ == "__main__":
    main()
