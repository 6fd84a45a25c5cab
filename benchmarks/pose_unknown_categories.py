"""Pose of models whose category the network never trained on: the product's search (view maps, where the index
has them) vs the search without view maps (the pose head and the embedding's views, equal votes) vs the pose head
trusted for every model (the search before ``PoseConfig.unknown_head_weight``).

Queries: the fresh renders of the models of other categories added after training, in workspaces made by
``benchmarks/open_library.py`` (its graphics split, already rendered and answered there: ``WS/reports/graphics``).
Every variant runs :meth:`cadsearch.search.Searcher.search` with its defaults (registration of the top model
included) and differs only in how those models' pose is voted.

Prints a table, writes ``benchmarks/results/pose_unknown_categories.json``.

Usage:
    python benchmarks/pose_unknown_categories.py WS [WS ...] [--arch transfer] [--json PATH]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cadsearch.imageio import read_image
from cadsearch.library import Library
from cadsearch.metrics import pose_errors_deg
from cadsearch.search import Searcher

RESULTS = Path(__file__).resolve().parent / "results"


def other_category_queries(ws: Path, arch: str) -> list[dict[str, str]]:
    """Raw evaluation rows (``open_library.py``'s graphics split) of the added models whose category no training
    class has."""
    state = json.loads((ws / "open_library_state.json").read_text())
    categories = {m.model_id: m.category for m in Library.open(ws / "library").list()}
    trained = {categories[m] for m in state["trained_ids"] if m in categories}
    with open(ws / "reports" / "graphics" / f"raw_{arch}.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    added = set(state["added_ids"])
    return [r for r in rows if r["true_model_id"] in added and categories[r["true_model_id"]] not in trained]


def measure(searcher: Searcher, rows: list[dict[str, str]], label: str) -> dict[str, Any]:
    errors, right = [], []
    for r in tqdm(rows, desc=label, unit="query", mininterval=2):
        top = searcher.search(read_image(r["image"]), k=5).results[0]
        err = pose_errors_deg(float(r["true_polar_deg"]), float(r["true_azimuth_deg"]), top.polar_deg,
                              top.azimuth_deg, int(r["symmetry_order"]))  # fmt: skip
        errors.append(float(np.asarray(err).reshape(-1)[0]))
        right.append(top.model_id == r["true_model_id"])
    e, ok = np.array(errors), np.array(right)
    return {
        "n": len(e),
        "pose_mean_deg": float(e.mean()),
        "pose_median_deg": float(np.median(e)),
        "acc30": float(np.mean(e <= 30.0)),
        "top1": float(ok.mean()),
        "pose_mean_deg_top1_right": float(e[ok].mean()) if ok.any() else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspaces", type=Path, nargs="+", help="open_library.py workspaces (measured)")
    ap.add_argument("--arch", default="transfer")
    ap.add_argument("--json", type=Path, default=RESULTS / "pose_unknown_categories.json")
    args = ap.parse_args()
    runs: dict[str, Any] = {}
    for ws in args.workspaces:
        rows = other_category_queries(ws, args.arch)
        product = Searcher.from_workspace(ws / "library", args.arch)
        no_maps = product.with_options(view_maps=None)
        trusted = no_maps.with_options(pose=replace(product.pose, unknown_head_weight=product.pose.head_weight))
        runs[str(ws)] = {
            "head trusted for every model": measure(trusted, rows, f"{ws.name}: head everywhere"),
            "without view maps": measure(no_maps, rows, f"{ws.name}: without view maps"),
            "product": measure(product, rows, f"{ws.name}: product"),
        }
        runs[str(ws)]["product"]["view_maps"] = 0 if product.view_maps is None else len(product.view_maps)
    print(f"\n{'workspace':<40} {'variant':<30} {'n':>4} {'top-1':>6} {'mean':>7} {'median':>7} {'Acc@30':>7}")
    for ws, variants in runs.items():
        for name, m in variants.items():
            print(f"{ws:<40} {name:<30} {m['n']:>4} {m['top1']:>6.3f} {m['pose_mean_deg']:>6.2f}° "
                  f"{m['pose_median_deg']:>6.2f}° {m['acc30']:>7.3f}")  # fmt: skip
    out = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "arch": args.arch,
        "runs": runs,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(out, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
