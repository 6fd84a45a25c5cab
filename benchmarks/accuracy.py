"""Accuracy of the two networks as users get it: a thin driver of ``cadsearch evaluate`` (:func:`run_evaluation`).

Setup (defaults): 50 procedural chairs + models of the shared data (``--shared all``: all 116 models of
``../shared/data/meshes/manifest.csv``, 11 categories; ``chairs``: its 28 chairs; ``none``), rendered with
``cadsearch render``'s defaults, both networks trained with ``cadsearch train``'s defaults (``--scratch k=v`` /
``--transfer k=v`` override), both indexed. Then every row below is :func:`run_evaluation` — the same code as
``cadsearch evaluate`` — on the graphics split (fresh renders of every model, new cameras) and on the labelled
development photos plus their mirror images:

- ``index``: the product (:meth:`Searcher.search`: framing, automatic crop, index, scores, pose), the default;
- ``classifier``: the ablation ``--ranking classifier`` (softmax over the training classes);
- ``no_flip``: the product without test-time flip averaging of the pose;
- ``centre_crop``: the product with photos centre-cropped to a square (the framing used before padding).

Pose errors are symmetry-aware (the catalog's rotational symmetry of each model); the graphics rows are also
split by symmetry class. Prints a table, writes ``benchmarks/results/accuracy.json`` (``--json`` to change).

Usage:
    python benchmarks/accuracy.py WORKSPACE [--shared all|chairs|none] [--procedural 50] [--train scratch,transfer]
        [--rows index,classifier,no_flip,centre_crop] [--eval-views 10] [--scratch k=v ...] [--transfer k=v ...]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from cadsearch.evaluate.run import TOP_K, Answer, IndexAnswerer, run_evaluation
from cadsearch.framing import centre_frame, frame_query
from cadsearch.index import build_index
from cadsearch.library import Library
from cadsearch.models import checkpoint_path, list_models, train_model
from cadsearch.render.job import RenderConfig, render_views
from cadsearch.search import Searcher
from cadsearch.search.searcher import query_of

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
ROWS = ("index", "classifier", "no_flip", "centre_crop")


def parse_kv(items: list[str] | None) -> dict[str, Any]:
    """``["k=v", ...]`` → ``{k: v}``, values parsed as JSON where they can be (numbers, booleans)."""
    out: dict[str, Any] = {}
    for item in items or []:
        k, v = item.split("=", 1)
        try:
            out[k] = json.loads(v)
        except json.JSONDecodeError:
            out[k] = v
    return out


def setup_workspace(ws: Path, procedural: int, shared: str) -> None:
    """The library (procedural chairs + shared models, once) and its renders with the CLI's defaults."""
    lib = Library.open(ws)
    if len(lib) == 0:
        lib.generate_chairs(procedural, progress=True)
        if shared != "none":
            manifest = ws / "shared_manifest.csv"
            with open(SHARED / "meshes" / "manifest.csv", newline="") as f:
                rows = [r for r in csv.DictReader(f) if shared == "all" or r["category"] == "chair"]
            with open(manifest, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0]))
                w.writeheader()
                for r in rows:
                    w.writerow(r | {"path": str(SHARED / r["path"])})
            lib.add_manifest(manifest, progress=True)
    render_views(ws, RenderConfig(), workers=2)


class AblationAnswerer(IndexAnswerer):
    """The product's search with one step changed: no flip averaging of the pose, or centre-cropped photos."""

    def __init__(self, searcher: Searcher, flip_pose: bool = True, centre_crop: bool = False) -> None:
        super().__init__(searcher)
        self.flip_pose, self.centre_crop = flip_pose, centre_crop

    def answer(self, image: np.ndarray) -> Answer:
        frame = centre_frame(*image.shape[:2]) if self.centre_crop else frame_query(image, self.searcher.crop)
        pred = self.searcher.predictor.predict([image], batch_size=1, frames=[frame], flip_pose=self.flip_pose)
        result = self.searcher.search_embedding(**query_of(pred, 0), k=TOP_K)
        top = result.results[0]
        return Answer([m.model_id for m in result.results], [m.score for m in result.results], top.polar_deg,
                      top.azimuth_deg % 360.0)  # fmt: skip


def evaluate_rows(ws: Path, archs: list[str], rows: list[str], split: str | Path, eval_views: int) -> dict:
    """``{row: run_evaluation result}`` for one split."""
    out = {}
    for row in rows:
        if row == "centre_crop" and str(split) == "graphics":
            continue  # renders are square already: the crop changes nothing
        t = time.perf_counter()
        answerers = None
        if row in ("no_flip", "centre_crop"):
            answerers = {
                a: AblationAnswerer(
                    Searcher.from_workspace(ws, a), flip_pose=row != "no_flip", centre_crop=row == "centre_crop"
                )  # fmt: skip
                for a in archs
            }
        name = Path(str(split)).stem
        out[row] = run_evaluation(
            ws, archs, split, report_dir=ws / "reports" / f"accuracy-{name}-{row}", views_per_model=eval_views,
            ranking="classifier" if row == "classifier" else "index", answerers=answerers, workers=2,
        )  # fmt: skip
        out[row]["seconds"] = time.perf_counter() - t
    return {row: compact(res) for row, res in out.items()}


def compact(result: dict) -> dict:
    """A run_evaluation result without its per-model and per-sector tables (they stay in each run's report
    folder, ``<workspace>/reports/accuracy-<split>-<row>/metrics.json``), so the results file stays readable."""
    models = {
        arch: m | {"extra": {k: v for k, v in m["extra"].items() if k not in ("per_model", "sectors")}}
        for arch, m in result["models"].items()
    }
    return result | {"models": models}


def print_table(results: dict) -> None:
    def pct(v):
        return "    –" if v is None else f"{100 * v:5.1f}"

    def deg(v):
        return "    –" if v is None else f"{v:5.1f}"

    def line(split: str, row: str, arch: str, m: dict, extra: dict | None) -> str:
        text = (
            f"{split:<16} {row:<12} {arch:<9} {m['n']:>5}  {pct(m['top1'])}  {pct(m['top5'])}  "
            f"{deg(m['pose_mean_deg'])}      {deg(m['pose_median_deg'])}  {pct(m['acc30'])}"
        )
        if extra:
            az = extra["azimuth"]["median_deg"], extra["sector_balanced_acc30"]["azimuth"]
            text += f"  {deg(az[0])}      {pct(az[1])}"
        return text

    print(
        "\nsplit            row          model     n      top-1  top-5  pose mean  median  acc30  az-median  "
        "az-acc30-sector-balanced"
    )
    for split, by_row in results["splits"].items():
        for row, res in by_row.items():
            for arch, m in res["models"].items():
                print(line(split, row, arch, m, m["extra"]))
                if m.get("unseen"):
                    print(line("", "  unseen", arch, m["unseen"], None))
                if split == "graphics" and row == "index":
                    for sym, s in m["extra"]["by_symmetry"].items():
                        print(line("", "  " + sym, arch, s, None))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--procedural", type=int, default=50)
    ap.add_argument("--shared", choices=("all", "chairs", "none"), default="all")
    ap.add_argument("--eval-views", type=int, default=10)
    ap.add_argument("--train", default="scratch,transfer", help="networks to train first ('' for none)")
    ap.add_argument("--rows", default=",".join(ROWS))
    ap.add_argument("--scratch", nargs="*", default=[])
    ap.add_argument("--transfer", nargs="*", default=[])
    ap.add_argument("--photos", type=Path, default=SHARED / "photos" / "dev_viewpoints.csv")
    ap.add_argument("--json", type=Path, default=RESULTS / "accuracy.json")
    args = ap.parse_args()
    ws: Path = args.workspace
    setup_workspace(ws, args.procedural, args.shared)
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "setup": {k: str(v) for k, v in vars(args).items()},
        "train": {},
        "splits": {},
    }
    for arch in filter(None, args.train.split(",")):
        s = train_model(ws, arch, parse_kv(getattr(args, arch)))
        results["train"][arch] = {"minutes": s.seconds / 60, "epochs": s.epochs_total, "val_views": s.val_views}
    archs = [a for a in list_models() if checkpoint_path(ws, a).is_file()]
    for arch in archs:
        build_index(ws, arch, progress=True)
    rows = [r for r in args.rows.split(",") if r]
    results["splits"]["graphics"] = evaluate_rows(ws, archs, rows, "graphics", args.eval_views)
    if args.photos.is_file():
        results["splits"][args.photos.stem] = evaluate_rows(ws, archs, rows, args.photos, args.eval_views)
    print_table(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
