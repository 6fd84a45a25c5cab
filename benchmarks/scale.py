"""Scale benchmark: the render and embedding jobs on the local engine vs the Ray engine, same job, same run.

Render: ``--models`` procedural chairs × ``--views`` low-quality views at ``--size`` px (plain backgrounds, the
defaults of ``cadsearch render``), the local engine with ``--workers`` processes and the Ray engine with as many
actors on a local Ray instance of ``--workers`` CPUs, alternated ``--repeat`` times (each run into a fresh
views folder, nothing reused). Views/s counts the whole job as ``render_views`` reports it: process or actor
start, mesh loading, rendering, PNG writing, the per-model tables and the view table. Ray's own costs are
measured apart: starting the Ray instance (once per process, or once per cluster for ``ray start``), and the
fixed cost of a job (a 2-view job on each engine: process pool / actor pool start and the first renders).

Embedding: an untrained transfer checkpoint (EfficientNet-Lite0 body exported to ONNX, random heads: the same
compute per image as a trained one) embeds the views of one render, with ``build_index`` on each engine.

    nice -n 5 .venv/bin/python benchmarks/scale.py [--models 40 --views 100 --size 128 --repeat 3 --workers 2]

Prints a table and writes ``benchmarks/results/scale.json``.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results" / "scale.json"


def _render(ws: Path, config, engine: str, workers: int, out_dir: str) -> dict:
    from cadsearch.render.job import render_views

    summary = render_views(ws, config, workers=workers, progress=False, out_dir=out_dir, engine=engine)
    out = {"views": summary.rendered, "seconds": summary.seconds, "views_per_s": summary.views_per_second}
    shutil.rmtree(ws / out_dir)
    return out


def _transfer_checkpoint(ws: Path, model_ids: list[str]) -> Path:
    """An untrained transfer checkpoint with its ONNX body, as training would save it."""
    from cadsearch.models import checkpoint_path, create_model
    from cadsearch.models.onnx_runtime import export_onnx
    from cadsearch.models.train import TrainConfig, model_kwargs, save_checkpoint

    cfg = TrainConfig(arch="transfer")
    kwargs = model_kwargs(cfg)
    model = create_model("transfer", num_classes=len(model_ids), **kwargs)
    path = checkpoint_path(ws, "transfer")
    export_onnx(model.body, cfg.size, path.parent / "body.onnx")
    payload = {
        "arch": "transfer",
        "config": {},
        "model_kwargs": kwargs,
        "model_ids": model_ids,
        "input_size": cfg.size,
        "mean": list(model.mean),
        "std": list(model.std),
        "pose_head": cfg.pose_head,
        "backend": "onnx",
        "onnx": "body.onnx",
        "state_dict": model.trainable_state_dict(),
    }
    save_checkpoint(path, payload)
    return path


def _embed(ws: Path, ckpt: Path, engine: str, workers: int) -> dict:
    from cadsearch.index import build_index, index_dir
    from cadsearch.models import load_predictor

    shutil.rmtree(index_dir(ws, "transfer"), ignore_errors=True)
    summary = build_index(
        ws,
        "transfer",
        progress=False,
        predictor=load_predictor(ckpt),
        fingerprint=f"bench-{engine}-{time.time()}",
        engine=engine,
        workers=workers,
        predictor_factory=functools.partial(load_predictor, ckpt),
    )
    return {"views": summary.embedded, "seconds": summary.seconds, "views_per_s": summary.embedded / summary.seconds}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", type=int, default=40)
    parser.add_argument("--views", type=int, default=100)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2, help="local processes = Ray CPUs and actors")
    parser.add_argument("--embed-views", type=int, default=2000, help="views embedded per engine (0: skip)")
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args(argv)

    import ray

    from cadsearch.library import Library
    from cadsearch.render.job import RenderConfig, render_views
    from cadsearch.render.ray_engine import connect

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="cadsearch-scale-"))
    ws = workdir / "ws"
    shutil.rmtree(ws, ignore_errors=True)
    ids = [m.model_id for m in Library.open(ws).generate_chairs(args.models).added]
    config = RenderConfig(views=args.views, size=args.size)

    t = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    connect()
    ray_start_s = time.perf_counter() - t
    print(f"Ray instance started in {ray_start_s:.1f} s", file=sys.stderr)

    runs: dict[str, list[dict]] = {"local": [], "ray": []}
    fixed: dict[str, list[float]] = {"local": [], "ray": []}
    for rep in range(args.repeat):
        order = ("local", "ray") if rep % 2 == 0 else ("ray", "local")  # alternate: the machine's load drifts
        for engine in order:
            small = _render(ws, RenderConfig(views=2, size=args.size), engine, args.workers, f"f-{engine}-{rep}")
            fixed[engine].append(small["seconds"])
            run = _render(ws, config, engine, args.workers, f"views-{engine}-{rep}")
            runs[engine].append(run)
            print(f"rep {rep} {engine:5s} {run['views']} views in {run['seconds']:.1f} s: "
                  f"{run['views_per_s']:.0f} views/s", file=sys.stderr)  # fmt: skip

    ratios = [a["views_per_s"] / b["views_per_s"] for a, b in zip(runs["ray"], runs["local"], strict=True)]
    med = {e: statistics.median(r["views_per_s"] for r in runs[e]) for e in runs}
    # Per-view cost at steady state: the job's time less its fixed cost (a 2-views-per-model job's time).
    n_views = args.models * args.views
    steady = {
        e: statistics.median(
            (r["seconds"] - f) / (n_views - 2 * args.models) for r, f in zip(runs[e], fixed[e], strict=True)
        )
        for e in runs
    }
    result: dict = {
        "date": "2026-12-04",
        "machine": "2 shared CPU cores, no GPU",
        "command": "nice -n 5 .venv/bin/python benchmarks/scale.py " + " ".join(argv or sys.argv[1:]),
        "python": platform.python_version(),
        "ray": ray.__version__,
        "job": {"models": args.models, "views": args.views, "size": args.size, "workers": args.workers},
        "render": {
            "runs": runs,
            "median_views_per_s": med,
            "ray_over_local": {"per_run": ratios, "median": statistics.median(ratios)},
            "two_view_job_seconds": fixed,
            "steady_seconds_per_view": steady,
            "ray_start_seconds": ray_start_s,
        },
    }

    if args.embed_views:
        per_model = max(1, args.embed_views // args.models)
        render_views(ws, RenderConfig(views=per_model, size=args.size), workers=args.workers, progress=False)
        files = list((ws / "views").rglob("*.png"))
        result["bytes_per_view"] = sum(p.stat().st_size for p in files) / (len(files) / 3)
        ckpt = _transfer_checkpoint(ws, ids)
        embed = {"local": [], "ray": []}
        for rep in range(max(1, args.repeat - 1)):
            for engine in ("local", "ray") if rep % 2 == 0 else ("ray", "local"):
                run = _embed(ws, ckpt, engine, args.workers)
                embed[engine].append(run)
                print(f"embed rep {rep} {engine:5s} {run['views']} views in {run['seconds']:.1f} s: "
                      f"{run['views_per_s']:.0f} views/s", file=sys.stderr)  # fmt: skip
        result["embed"] = {
            "runs": embed,
            "median_views_per_s": {e: statistics.median(r["views_per_s"] for r in embed[e]) for e in embed},
        }

    print(f"\nrender: {args.models} models x {args.views} views at {args.size} px, {args.workers} workers/actors")
    print(f"{'engine':8s} {'views/s (median)':>17s} {'runs':>28s} {'2-view job s':>13s} {'ms/view steady':>15s}")
    for e in runs:
        per = ", ".join(f"{r['views_per_s']:.0f}" for r in runs[e])
        print(f"{e:8s} {med[e]:17.0f} {per:>28s} {statistics.median(fixed[e]):13.2f} {1000 * steady[e]:15.2f}")
    print(f"ray / local views/s: median {statistics.median(ratios):.3f} (runs {', '.join(f'{x:.3f}' for x in ratios)})")
    print(f"Ray instance start: {ray_start_s:.1f} s (once per process / cluster)")
    if "embed" in result:
        for e, v in result["embed"]["median_views_per_s"].items():
            print(f"embed {e:6s}: {v:.0f} views/s (transfer, ONNX body)")
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")
    ray.shutdown()
    if args.workdir is None:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    os.environ.setdefault("TQDM_DISABLE", "1")
    main()
