"""Real photos out of the box: does a chair photo retrieve chairs, and is its viewpoint right, with default training?

One command builds the library (50 procedural chairs + the 116 shared models, 11 categories, rendered with
``cadsearch render``'s defaults), trains each network once per *training variant* in its own workspace (the
renders are hard-linked, not copied), indexes it, and asks the same queries through the product's search
(:meth:`Searcher.search`): ``on`` (the product), ``no_kinds`` (the product without the kind prior,
:mod:`cadsearch.search.kinds`), ``plain`` (the vote on the query alone, no mirror, no kind prior) and ``off`` (no
category vote, :func:`cadsearch.search.scoring.category_first`). Training variants:

- ``old``: the training defaults before this benchmark (backgrounds ``random``: gradients, textures, plain; no
  library clutter);
- ``defaults``: today's defaults (backgrounds ``scenes``: procedural rooms, textures, gradients, plain; other
  library objects as clutter beside, behind and in front);
- ``photos``: today's defaults with ``--backgrounds ../shared/data/backgrounds`` (552 chair-free room photos,
  which users usually do not have).

Queries: the high-confidence development photos (``photos/dev_viewpoints.csv``, all chairs none of which is in
the library) and their mirror images: category top-1 (the top result is a chair), sector-balanced azimuth
Acc@30 and median azimuth error (symmetry-aware), per sector; and fresh renders of every library model (graphics
split, new cameras and backgrounds) so that renders do not get worse: top-1, category top-1 and mean pose error,
for chairs and for all models.

Prints a table, writes ``benchmarks/results/real_photos.json`` (networks of an earlier run that this run does not
repeat stay in it, so ``--archs transfer`` and ``--archs scratch`` can run one after the other) and, per variant,
the raw answers under ``WORKSPACE/variants/<variant>/reports/real_photos/``.

Usage:
    python benchmarks/real_photos.py WORKSPACE [--variants old,defaults,photos] [--archs transfer,scratch]
        [--procedural 50] [--shared all|chairs|none] [--eval-views 4] [--train k=v ...] [--json PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accuracy import SHARED, parse_kv, setup_workspace

from cadsearch.evaluate.run import IndexAnswerer, answer_split, model_metrics, symmetry_orders, write_raw
from cadsearch.evaluate.splits import Split, graphics_split, photo_split
from cadsearch.index import build_index
from cadsearch.library import Library
from cadsearch.models import checkpoint_path, train_model
from cadsearch.search import Searcher

RESULTS = Path(__file__).resolve().parent / "results"
VARIANTS: dict[str, dict[str, Any]] = {
    "old": {"backgrounds": "random", "clutter": False},
    "defaults": {},
    "photos": {"backgrounds": str(SHARED / "backgrounds")},
}


def variant_workspace(base: Path, name: str) -> Path:
    """``base/variants/<name>``: the base library and renders, hard-linked (the catalog is copied: SQLite
    writes in place). Networks, indexes and reports of the variant are its own."""
    ws = base / "variants" / name
    if not (ws / "catalog.sqlite").is_file():
        ws.mkdir(parents=True, exist_ok=True)
        for folder in ("views", "models"):
            if not (ws / folder).exists():
                shutil.copytree(base / folder, ws / folder, copy_function=os.link)
        shutil.copy2(base / "catalog.sqlite", ws / "catalog.sqlite.tmp")
        os.replace(ws / "catalog.sqlite.tmp", ws / "catalog.sqlite")
    return ws


def high_confidence(split: Split) -> Split:
    """The split's queries labelled with high confidence (the CSV's ``confidence`` column)."""
    split.queries = [q for q in split.queries if q.extra.get("confidence", "high") == "high"]
    return split


def category_top1(rows: list[dict], category_of: dict[str, str], truth: str | None = None) -> float | None:
    """Share of queries whose top result is of the true category (``truth``, or the true model's)."""
    hits = []
    for r in rows:
        want = truth or category_of.get(r["true_model_id"] or "")
        if want:
            hits.append(category_of.get(r["top1_model_id"] or "") == want)
    return float(np.mean(hits)) if hits else None


def summarise(rows: list[dict], kind: str, category_of: dict[str, str], truth: str | None) -> dict[str, Any]:
    m = model_metrics(rows, kind)
    out: dict[str, Any] = {"n": m["n"], "category_top1": category_top1(rows, category_of, truth)}
    if kind == "photos":
        extra = m["extra"]  # the same sector-balanced azimuth accuracy as `cadsearch evaluate` reports
        out |= {
            "azimuth_acc30_sector_balanced": extra["sector_balanced_acc30"]["azimuth"],
            "azimuth_median_deg": extra["azimuth"]["median_deg"],
            "azimuth_acc30": extra["azimuth"]["acc30"],
            "per_sector_acc30": {s["sector"]: s["azimuth_acc30"] for s in extra["sectors"]},
            "wrong_categories": _wrong_categories(rows, category_of, truth),
        }
    else:
        chairs = [r for r in rows if category_of.get(r["true_model_id"]) == "chair"]
        mc = model_metrics(chairs, kind)
        out |= {
            "top1": m["top1"],
            "pose_mean_deg": m["pose_mean_deg"],
            "pose_median_deg": m["pose_median_deg"],
            "chairs": {
                "n": mc["n"],
                "top1": mc["top1"],
                "category_top1": category_top1(chairs, category_of),
                "pose_mean_deg": mc["pose_mean_deg"],
            },
            # where the pose error lies (rows answered with categories=...: cadsearch evaluate's per-category table)
            "by_category": m["extra"]["by_category"],
        }
    return out


def _wrong_categories(rows: list[dict], category_of: dict[str, str], truth: str | None) -> dict[str, int]:
    counts: dict[str, int] = {}
    for r in rows:
        got = category_of.get(r["top1_model_id"] or "", "none")
        if got != truth:
            counts[got] = counts.get(got, 0) + 1
    return dict(sorted(counts.items(), key=lambda kv: -kv[1]))


def print_table(results: dict) -> None:
    def pct(v):
        return "    –" if v is None else f"{100 * v:5.1f}"

    def deg(v):
        return "    –" if v is None else f"{v:5.1f}"

    print(
        "\nvariant   model     vote     | photos: n   chair-1st  az-acc30(bal)  az-median | renders: top-1  chair-1st "
        " pose-mean  chairs: top-1  pose-mean | train min"
    )
    for name, by_arch in results["variants"].items():
        for arch, res in by_arch.items():
            for vote in ("on", "no_kinds", "plain", "off"):
                if vote not in res["photos"]:  # a run from before the mirror vote or the kind prior
                    continue
                p, g = res["photos"][vote], res["graphics"][vote]
                print(
                    f"{name:<9} {arch:<9} {vote:<8} | {p['n']:>9}  {pct(p['category_top1'])}      "
                    f"{pct(p['azimuth_acc30_sector_balanced'])}          {deg(p['azimuth_median_deg'])}  | "
                    f"{pct(g['top1'])}  {pct(g['category_top1'])}      {deg(g['pose_mean_deg'])}     "
                    f"{pct(g['chairs']['top1'])}      {deg(g['chairs']['pose_mean_deg'])}  | "
                    f"{res['train_minutes']:6.1f}"
                )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--variants", default=",".join(VARIANTS))
    ap.add_argument("--archs", default="transfer,scratch")
    ap.add_argument("--procedural", type=int, default=50)
    ap.add_argument("--shared", choices=("all", "chairs", "none"), default="all")
    ap.add_argument("--eval-views", type=int, default=4, help="fresh renders per model for the graphics split")
    ap.add_argument("--train", nargs="*", default=[], help="k=v training overrides for every variant")
    ap.add_argument("--photos", type=Path, default=SHARED / "photos" / "dev_viewpoints.csv")
    ap.add_argument("--json", type=Path, default=RESULTS / "real_photos.json")
    args = ap.parse_args()
    base: Path = args.workspace
    setup_workspace(base, args.procedural, args.shared)
    library = Library.open(base)
    category_of = {m.model_id: m.category for m in library.list()}
    ids = sorted(category_of)
    graphics = graphics_split(base, ids, args.eval_views, workers=2)
    photos = high_confidence(photo_split(args.photos, mirror=True))
    symmetry = symmetry_orders(base)

    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "setup": {k: str(v) for k, v in vars(args).items()}
        | {"models": len(ids), "photo_queries": len(photos.queries)},
        "variants": {},
    }
    if args.json.is_file():  # networks measured by an earlier run (e.g. the other architecture) stay in the file
        results["variants"] = json.loads(args.json.read_text()).get("variants", {})
    for name in filter(None, args.variants.split(",")):
        ws = variant_workspace(base, name)
        results["variants"].setdefault(name, {})
        for arch in filter(None, args.archs.split(",")):
            overrides = VARIANTS[name] | parse_kv(args.train)
            t = time.perf_counter()
            summary = train_model(ws, arch, overrides)
            minutes = (time.perf_counter() - t) / 60
            if not checkpoint_path(ws, arch).is_file():
                continue
            build_index(ws, arch, progress=True)
            searcher = Searcher.from_workspace(ws, arch)
            no_vote = Searcher(
                searcher.predictor, searcher.index, searcher.library, temperature=searcher.temperature,
                category_vote=False,
            )  # fmt: skip
            plain_vote = Searcher(
                searcher.predictor, searcher.index, searcher.library, temperature=searcher.temperature,
                mirror_vote=False,
            )  # fmt: skip
            answerers = {
                "on": IndexAnswerer(searcher),
                "no_kinds": IndexAnswerer(searcher.with_options(kind_prior=0)),  # the vote without the kind prior
                "plain": IndexAnswerer(plain_vote),
                "off": IndexAnswerer(no_vote),
            }
            last = torch.load(checkpoint_path(ws, arch).with_name("last.pt"), map_location="cpu", weights_only=False)
            entry: dict[str, Any] = {
                "train_minutes": minutes,  # this call's wall time: the whole run, or only what a resumed call did
                "train_step_minutes": last.get("train_seconds", 0.0) / 60,  # steps of every call, resumes included
                "resumed": summary.resumed,
                "epochs": summary.epochs_total,
                "overrides": overrides,
            }
            for split, kind, truth in ((photos, "photos", "chair"), (graphics, "graphics", None)):
                raw = answer_split(answerers, split, symmetry, progress=True, categories=category_of)
                for vote, rows in raw.items():
                    write_raw(ws / "reports" / "real_photos" / f"raw_{arch}_{kind}_vote-{vote}.csv", rows)
                entry[kind] = {vote: summarise(rows, kind, category_of, truth) for vote, rows in raw.items()}
            results["variants"][name][arch] = entry
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2))  # after every network: a partial run is kept
    print_table(results)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
