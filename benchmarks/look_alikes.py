"""The look-alike check (``Searcher(look_alikes=...)``, :mod:`cadsearch.register.appearance`), off against on.

The same trained network, index and queries, searched twice through the product's search (``IndexAnswerer``,
registration as ``cadsearch search`` runs it): fresh renders of every model (the graphics split of ``cadsearch
evaluate``, ``--views`` per model) and the development photos + mirrors (all 118, as ``cadsearch evaluate``). Reports
pose error (symmetry-aware) overall and per category of the true model, the share of queries more than 90° off,
and the photos' sector-balanced azimuth Acc@30; with the search's p50 time per query. Writes
``benchmarks/results/look_alikes_<arch>.json``.

Usage:
    python benchmarks/look_alikes.py WORKSPACE ARCH [--views 10] [--limit N] [--searches off,on] [--json PATH]

``--searches on`` skips the check-off search (e.g. to re-measure a change of the check against an earlier run's
``off``: the queries and the search are deterministic). ``--searches no_outline,on`` compares the product with and
without registration's outline ranking (:func:`cadsearch.search.searcher.rank_by_outline`) instead.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from cadsearch import metrics as mt
from cadsearch.evaluate.run import IndexAnswerer, answer_split, symmetry_orders
from cadsearch.evaluate.splits import graphics_split, photo_split
from cadsearch.library import Library
from cadsearch.search import Searcher

RESULTS = Path(__file__).resolve().parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


class TimedAnswerer(IndexAnswerer):
    """:class:`IndexAnswerer` that records each answer's wall time (ms)."""

    def __init__(self, searcher: Searcher) -> None:
        super().__init__(searcher)
        self.ms: list[float] = []

    def answer(self, image):
        t = time.perf_counter()
        out = super().answer(image)
        self.ms.append(1000 * (time.perf_counter() - t))
        return out


def pose_summary(rows: list[dict], category_of: dict[str, str]) -> dict:
    """Mean / median pose error, share > 90°, Acc@30, overall and per category of the true model."""
    err = np.array([r["pose_error_deg"] for r in rows], float)
    cats = np.array([category_of.get(r["true_model_id"], "?") for r in rows])
    top1 = np.array([r["true_rank"] == 1 for r in rows])

    def one(e: np.ndarray, t: np.ndarray) -> dict:
        return {
            "n": int(len(e)),
            "top1": float(t.mean()),
            "pose_mean_deg": float(e.mean()),
            "pose_median_deg": float(np.median(e)),
            "over90": float((e > 90).mean()),
            "acc30": float((e < 30).mean()),
        }

    out = one(err, top1)
    out["per_category"] = {c: one(err[cats == c], top1[cats == c]) for c in sorted(set(cats))}
    return out


def photo_summary(rows: list[dict]) -> dict:
    """Azimuth error of the development photos: median, Acc@30 and its sector-balanced mean."""
    az = np.array([r["azimuth_error_deg"] for r in rows], float)
    true_az = np.array([r["true_azimuth_deg"] for r in rows], float)
    return {
        "n": int(len(az)),
        "azimuth_median_deg": float(np.median(az)),
        "azimuth_acc30": float((az < 30).mean()),
        "azimuth_acc30_sector_balanced": mt.sector_balanced_accuracy(az, true_az, 30.0).balanced,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace", type=Path)
    ap.add_argument("arch")
    ap.add_argument("--views", type=int, default=10, help="fresh renders per model (graphics split)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N queries of each split (a quick look)")
    ap.add_argument("--searches", default="off,on",
                    help="which of the searches to run: off (no check), on, no_outline (on, without the outline "
                    "ranking of registration: outline_rank=1)")  # fmt: skip
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args()
    ws, arch = args.workspace, args.arch
    out = args.json or RESULTS / f"look_alikes_{arch}.json"
    category_of = {m.model_id: m.category for m in Library.open(ws).list()}
    s = Searcher.from_workspace(ws, arch)
    graphics = graphics_split(ws, s.model_ids, args.views, workers=1, progress=False)
    photos = photo_split(SHARED / "photos" / "dev_viewpoints.csv", mirror=True)
    if args.limit:
        graphics.queries, photos.queries = graphics.queries[: args.limit], photos.queries[: args.limit]
    off = s.with_options(look_alikes=False)
    searches = {"off": off, "on": s, "no_outline": s.with_options(outline_rank=1)}
    answerers = {name: TimedAnswerer(searches[name]) for name in args.searches.split(",")}
    res: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "workspace": str(ws), "arch": arch, "crop": s.crop}
    sym = symmetry_orders(ws)
    for split, kind in ((graphics, "graphics"), (photos, "photos")):
        for a in answerers.values():
            a.ms.clear()
        raw = answer_split(answerers, split, sym, progress=True)
        res[kind] = {}
        for name, rows in raw.items():
            summary = pose_summary(rows, category_of) if kind == "graphics" else photo_summary(rows)
            summary["ms_p50"] = float(np.median(answerers[name].ms))
            res[kind][name] = summary
    head = ("split", "search", "n", "top-1", "pose mean", "median", ">90°", "Acc@30", "p50 ms")
    print("{:9s} {:10s} {:>5s} {:>6s} {:>9s} {:>7s} {:>6s} {:>7s} {:>7s}".format(*head))
    for name in answerers:
        g = res["graphics"][name]
        print(
            f"{'graphics':9s} {name:10s} {g['n']:5d} {g['top1']:6.3f} {g['pose_mean_deg']:9.2f} "
            f"{g['pose_median_deg']:7.2f} {g['over90']:6.3f} {g['acc30']:7.3f} {g['ms_p50']:7.1f}"
        )
    for name in answerers:
        p = res["photos"][name]
        print(
            f"{'photos':9s} {name:10s} {p['n']:5d} azimuth median {p['azimuth_median_deg']:.2f}, "
            f"Acc@30 {p['azimuth_acc30']:.3f}, sector-balanced {p['azimuth_acc30_sector_balanced']:.3f}, "
            f"p50 {p['ms_p50']:.1f} ms"
        )
    names = list(answerers)
    print(f"per category (graphics), pose mean {' -> '.join(names)} (share > 90°):")
    for c in res["graphics"][names[0]]["per_category"]:
        cells = [res["graphics"][name]["per_category"][c] for name in names]
        means = " -> ".join(f"{g['pose_mean_deg']:6.2f}" for g in cells)
        over = " -> ".join(f"{g['over90']:.3f}" for g in cells)
        print(f"  {c:12s} {cells[0]['n']:4d}  {means}  ({over})")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print("wrote", out)


if __name__ == "__main__":
    main()
