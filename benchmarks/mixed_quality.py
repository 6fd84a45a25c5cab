"""Does training on ``mixed`` renders (some ray traced) lower pose error on renders with photo backgrounds?

Two workspaces with the same procedural chairs and cameras: one rendered all ``low`` (OpenGL Phong), one
``mixed`` (``--high-fraction`` of the views ray traced with Mitsuba). The transfer model is trained on each with
the same time budget and the same photo backgrounds, then both are evaluated on the same fresh evaluation renders
— ``low`` and ``high`` quality, composited over real room photos — and on the labelled real photos (plus mirrors).

    .venv/bin/python benchmarks/mixed_quality.py --shared ../shared/data [--chairs 16] [--views 60] [--minutes 3]

Prints a table and writes ``benchmarks/results/mixed_quality.json`` (``mixed_quality_seed<S>.json`` for
``--seed S``; ``--json`` to change).

Every query is framed as the product frames it (:func:`cadsearch.framing.frame_query` with ``--crop``, default
``auto``; ``--crop none`` is the whole image padded to a square, the framing before issue #10), photos are read
by :func:`cadsearch.evaluate.splits.photo_split` (EXIF applied), and pose errors come from
:mod:`cadsearch.metrics`, symmetry-aware with the catalog's symmetry of each model. Same keys as before.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from cadsearch.evaluate.run import symmetry_orders
from cadsearch.evaluate.splits import graphics_split, photo_split
from cadsearch.framing import frame_query
from cadsearch.library import Library
from cadsearch.metrics import azimuth_errors_deg, pose_errors_deg, sector_balanced_accuracy, summarize_pose
from cadsearch.models import checkpoint_path, load_predictor, train_model
from cadsearch.render.job import RenderConfig, render_views

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _pose_on(predictor, split, symmetry: dict[str, int], crop: str) -> dict:
    """The pose head's errors on a split's queries, framed as the searcher frames them."""
    images = [q.image() for q in split.queries]
    pred = predictor.predict(images, frames=[frame_query(im, crop) for im in images])
    polar = np.array([np.nan if q.polar_deg is None else q.polar_deg for q in split.queries], dtype=float)
    azimuth = np.array([np.nan if q.azimuth_deg is None else q.azimuth_deg for q in split.queries], dtype=float)
    orders = np.array([symmetry.get(q.model_id, 1) for q in split.queries], dtype=np.int64)
    err = pose_errors_deg(polar, azimuth, pred.polar_deg, pred.azimuth_deg, orders)
    az_err = azimuth_errors_deg(azimuth, pred.azimuth_deg, orders)
    out = {k: summarize_pose(err)[k] for k in ("n", "mean", "median", "acc15", "acc30")}
    out["azimuth_acc30_sector_balanced"] = float(sector_balanced_accuracy(az_err, azimuth).balanced)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=Path("../shared/data"))
    parser.add_argument("--chairs", type=int, default=16)
    parser.add_argument("--views", type=int, default=60)
    parser.add_argument("--high-fraction", type=float, default=0.5)
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--eval-views", type=int, default=8)
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0, help="training seed (renders stay the same)")
    parser.add_argument("--crop", default="auto", help="query framing, as `cadsearch search --crop`")
    parser.add_argument("--json", type=Path, default=None, help="output (default benchmarks/results/...)")
    args = parser.parse_args()
    backgrounds = str((args.shared / "backgrounds").resolve())
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="mixed-quality-"))
    photos = photo_split(args.shared / "photos" / "dev_viewpoints.csv", mirror=True)

    results = {}
    for variant in ("low", "mixed"):
        ws = workdir / variant
        library = Library.open(ws)
        library.generate_chairs(args.chairs, seed=0)
        ids = [m.model_id for m in library.list()]
        symmetry = symmetry_orders(ws)
        t0 = time.perf_counter()
        config = RenderConfig(views=args.views, size=128, quality=variant, high_fraction=args.high_fraction)
        render_views(ws, config, workers=2, progress=False)
        render_s = time.perf_counter() - t0
        overrides = {
            "max_minutes": args.minutes,
            "epochs": 30,
            "holdout_models": 0,
            "backgrounds": backgrounds,
            "seed": args.seed,
        }
        summary = train_model(ws, "transfer", overrides, progress=False)
        predictor = load_predictor(checkpoint_path(ws, "transfer"))
        row = {"render_s": round(render_s, 1), "train_s": round(summary.seconds, 1), "epochs": summary.epochs_total}
        for quality in ("low", "high"):
            split = graphics_split(
                ws, ids, args.eval_views, backgrounds=backgrounds, seed=777, quality=quality, workers=2, progress=False
            )
            row[f"eval_{quality}_renders"] = _pose_on(predictor, split, symmetry, args.crop)
        row["photos"] = _pose_on(predictor, photos, symmetry, args.crop)
        results[variant] = row
        print(
            f"{variant:>5}: "
            + "  ".join(
                f"{k}: mean {v['mean']:.1f}° median {v['median']:.1f}° acc30 {100 * v['acc30']:.0f}%"
                for k, v in row.items()
                if isinstance(v, dict)
            ),
            flush=True,
        )

    out = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{os.cpu_count()} cores",
        "args": {k: str(v) for k, v in vars(args).items()},
        "results": results,
    }
    results_path = args.json or RESULTS_DIR / (
        "mixed_quality.json" if args.seed == 0 else f"mixed_quality_seed{args.seed}.json"
    )
    results_path.parent.mkdir(parents=True, exist_ok=True)
    results_path.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {results_path}")


if __name__ == "__main__":
    main()
