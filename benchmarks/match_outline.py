"""Does the registered outline tell "this very model" from "a look-alike"? (issue #12, match vs registration)

``match`` (:mod:`cadsearch.search.matching`) is a logistic model on features of the query's nearest views; on the
open-library benchmark it separates in-library from not-in-library queries with ROC AUC ≈ 0.75 only, because a
new chair of a procedural family lies as close to a library chair's views as a new picture of that chair. This
benchmark measures whether the *registration* of the top candidates (:class:`cadsearch.register.Registrar`:
render-and-compare of the model's silhouette against the object's mask) adds the missing cue: the true model's
outline should fit the object better than a look-alike's.

On an existing ``benchmarks/open_library.py`` workspace (read only: ``WS/library`` with a trained network and its
index, ``WS/outside`` with the renders of models never in the library, both graphics splits already rendered):

- **benchmark queries**: the library's graphics split (in-library: positives) and the outside models' (negatives),
  exactly the queries of ``open_library.py``'s match table. Each is searched as ``Searcher.search`` does
  (auto crop, category vote), then the top-1 and top-2 models are registered from their search poses against
  (a) the render's **true mask** and (b) the **product's mask** (:func:`cadsearch.register.object_mask`: a plain or
  gradient backdrop, else the detector's mask head; the open-library workspace has no detector, so (b) exists only
  for the queries on plain and gradient backgrounds, ~60 %).
- **fitting queries**: the leave-models-out composites of :mod:`cadsearch.search.calibration` (held-out views of
  the index on random backgrounds; each searched with its view left out, a positive for its own model, and with
  its whole model left out, a negative for the top model), registered the same way against their true mask.

Reported: the ROC AUC (in vs outside, top result) of today's ``match``; of the top-1 IoU alone, the top-1 minus
top-2 IoU; and of logistic models (:func:`cadsearch.search.matching.fit_match_model`) on today's four features plus
the IoU features, fitted on the fitting queries (leave-models-out, as the product fits ``match``) and tested on the
benchmark queries.

Raw per-query records are cached as JSON lines under ``--cache`` (resumable, one file per query set; the two sets
can run as two processes: ``--only fit`` / ``--only bench``). Prints a table, writes
``benchmarks/results/match_outline.json``.

Usage:
    OMP_NUM_THREADS=1 python benchmarks/match_outline.py WS [--arch transfer] [--fit-queries 600] [--cache DIR]
        [--only fit|fit-product|bench|report]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from cadsearch.detect.masks import frame_mask
from cadsearch.evaluate.splits import GRAPHICS_DIR
from cadsearch.framing import frame_for
from cadsearch.register import Registrar, object_mask
from cadsearch.render.backgrounds import RandomBackgrounds
from cadsearch.render.job import load_view, read_view_table
from cadsearch.search import Searcher
from cadsearch.search.calibration import MATCH_QUERIES, _calibration_ids, _spread_over_models
from cadsearch.search.matching import MATCH_FEATURES, fit_match_model, match_features, roc_auc
from cadsearch.search.pose import combine_pose
from cadsearch.search.scoring import category_first, rank_models

RESULTS = Path(__file__).resolve().parent / "results"
TOP = 2  # candidates registered per query


def ranked_candidates(searcher: Searcher, embedding: np.ndarray, head, exclude: np.ndarray | None, vote: bool):
    """The searcher's ranking of one query (as :meth:`Searcher.search_embedding`), optionally with the vector ids
    ``exclude`` left out of the neighbours. Returns ``[(model_id, features (4,), polar, azimuth)]`` best first."""
    index, model_index = searcher.index, searcher._model_index
    extra = 0 if exclude is None else len(exclude)
    sims, ids = index.search(embedding[None], min(len(index), searcher.k_views + extra))
    s, h = sims[0], ids[0]
    keep = h >= 0
    if exclude is not None:
        keep &= ~np.isin(h, exclude)
    s, h = s[keep][: searcher.k_views], h[keep][: searcher.k_views]
    order = np.argsort(-s, kind="stable")
    s, h = s[order], h[order]
    ranked = rank_models(s, h, model_index, len(searcher.model_ids), searcher.temperature)
    if vote:
        ranked, _ = category_first(ranked, searcher._category_of)
    feats = match_features(ranked, s.astype(np.float64))
    table = searcher.index.table
    out = []
    for j in range(min(len(ranked.model_idx), 5)):
        vid = h[ranked.views[j]]
        polar, azimuth = combine_pose(table.polar_deg[vid], table.azimuth_deg[vid], s[ranked.views[j]], head,
                                      searcher.pose)  # fmt: skip
        out.append((searcher.model_ids[int(ranked.model_idx[j])], feats[j], polar, azimuth))
    return out


def register(registrar: Registrar, cands, target: np.ndarray | None, frame, n: int = TOP) -> list[float | None]:
    """Registered silhouette IoU of the first ``n`` candidates against ``target`` (None: no mask / no mesh)."""
    out: list[float | None] = []
    for model_id, _, polar, azimuth in cands[:n]:
        reg = registrar.refine(model_id, target, frame, polar, azimuth) if target is not None else None
        out.append(None if reg is None else float(reg.iou))
    return out


def describe(cands, n: int = 5) -> list[dict[str, Any]]:
    return [{"model_id": m, "features": f.tolist(), "polar": p, "azimuth": a} for m, f, p, a in cands[:n]]


def _done(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {json.loads(line)["query_id"] for line in path.read_text().splitlines() if line.strip()}


def _append(path: Path, record: dict[str, Any]) -> None:
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")
        f.flush()
        os.fsync(f.fileno())


def bench_queries(ws: Path, searcher: Searcher, registrar: Registrar, path: Path) -> None:
    """In-library (graphics split of WS/library) and outside (WS/outside) renders: search, register top-2."""
    from cadsearch.library import Library

    done = _done(path)
    jobs = []
    category = {m.model_id: m.category for root in (ws / "library", ws / "outside") for m in Library.open(root).list()}
    for group, root in (("in", ws / "library"), ("out", ws / "outside")):
        for row in read_view_table(root, GRAPHICS_DIR):
            if group == "in" and row.model_id not in set(searcher.model_ids):
                continue
            if f"{group}:{row.view_id}" not in done:
                jobs.append((group, root, row))
    for group, root, row in tqdm(jobs, desc="benchmark queries"):
        rgb, mask, _ = load_view(root, row)
        t0 = time.perf_counter()
        embedding, head, frame = searcher.embed_query(rgb)
        frame = frame if frame is not None else frame_for(*rgb.shape[:2])
        cands = ranked_candidates(searcher, embedding, head, None, searcher.category_vote)
        product_match = float(searcher.match_model.predict(cands[0][1][None])[0])
        true = frame_mask(mask, 256, frame)
        found = object_mask(rgb, frame, None)
        t1 = time.perf_counter()
        iou_true = register(registrar, cands, true, frame)
        t2 = time.perf_counter()
        iou_product = register(registrar, cands, found[0] if found else None, frame)
        _append(path, {
            "query_id": f"{group}:{row.view_id}", "group": group, "model_id": row.model_id,
            "category": category.get(row.model_id),
            "background": row.background, "mask_source": found[1] if found else None,
            "candidates": describe(cands), "match": product_match,
            "iou_true": iou_true, "iou_product": iou_product,
            "ms_search": 1000 * (t1 - t0), "ms_register_true": 1000 * (t2 - t1),
        })  # fmt: skip


def fit_queries(
    ws: Path, searcher: Searcher, registrar: Registrar, path: Path, limit: int, masks: str = "true"
) -> None:
    """The product's leave-models-out composites (:mod:`cadsearch.search.calibration`), registered against their
    true mask (``masks="true"``) or the product's (``"product"``: :func:`object_mask`, none on most textured
    backgrounds): in the library (own view left out) the true model and the best rival, and not in the library
    (whole model left out) the top-2."""
    lws = ws / "library"
    index = searcher.index
    model_index = searcher._model_index
    ids = _calibration_ids(index, searcher.predictor, lws, 2000)
    ids = _spread_over_models(ids, model_index, limit)
    rows = {r.view_id: r for r in read_view_table(lws)}
    source, rng = RandomBackgrounds(), np.random.default_rng(2)
    done = _done(path)
    for qid in tqdm(ids, desc="fitting queries"):
        row = rows[str(index.table.view_id[qid])]
        rgb, mask, _ = load_view(lws, row)
        bg = source.sample(rgb.shape[0], rng)  # drawn for every id, done or not: the same composites on resume
        if row.view_id in done:
            continue
        a = mask[..., None]
        image = np.clip(np.rint(a * rgb + (1.0 - a) * bg), 0, 255).astype(np.uint8)
        embedding, head, frame = searcher.embed_query(image)
        frame = frame if frame is not None else frame_for(*image.shape[:2])
        found = object_mask(image, frame, None) if masks == "product" else (frame_mask(mask, 256, frame), "true")
        true = found[0] if found else None
        own = model_index[qid]
        # the product's fit ranks without the category vote (fit_match_on_queries); so does this
        inside = ranked_candidates(searcher, embedding, head, np.array([qid]), False)
        outside = ranked_candidates(searcher, embedding, head, np.flatnonzero(model_index == own), False)
        true_id = searcher.model_ids[int(own)]
        pos = next((j for j, c in enumerate(inside) if c[0] == true_id), None)
        # in the library: the true model (wherever ranked) and the best other, i.e. the top-2 when it is first
        pick = [inside[pos]] if pos is not None else []
        pick += [c for c in inside if c[0] != true_id][:1]
        _append(path, {
            "query_id": row.view_id, "model_id": true_id, "mask_source": found[1] if found else None,
            "inside": describe(inside), "inside_true_rank": None if pos is None else pos + 1,
            "inside_registered": [c[0] for c in pick], "iou_inside": register(registrar, pick, true, frame),
            "outside": describe(outside), "iou_outside": register(registrar, outside, true, frame),
        })  # fmt: skip


def _read(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _iou_feats(first: float | None, second: float | None) -> list[float]:
    """[IoU of the candidate, its IoU minus the best other candidate's] (0 where unregistered)."""
    a = 0.0 if first is None else first
    b = 0.0 if second is None else second
    return [a, a - b]


def training_set(fit: list[dict[str, Any]]):
    """(x, y, w) for the logistic fits: 4 match features + [iou, iou − other iou], as the product fits ``match``
    (a positive and a 0.25-weight rival per in-library query, a negative per leave-model-out query)."""
    x, y, w = [], [], []
    for r in fit:
        inside, regs, ious = r["inside"], r["inside_registered"], r["iou_inside"]
        feats = {c["model_id"]: c["features"] for c in inside}
        if r["inside_true_rank"] is not None and ious:
            other = ious[1] if len(ious) > 1 else None
            x.append(feats[regs[0]] + _iou_feats(ious[0], other)), y.append(1.0), w.append(1.0)
            if len(ious) > 1:
                x.append(feats[regs[1]] + _iou_feats(ious[1], ious[0])), y.append(0.0), w.append(0.25)
        elif ious:
            x.append(feats[regs[0]] + _iou_feats(ious[0], None)), y.append(0.0), w.append(0.25)
        out = r["outside"]
        if out:
            io = r["iou_outside"] + [None]
            x.append(out[0]["features"] + _iou_feats(io[0], io[1])), y.append(0.0), w.append(1.0)
    return np.array(x), np.array(y), np.array(w)


def bench_matrix(bench: list[dict[str, Any]], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(x (n, 6), y (n,)) of the benchmark queries' top results; ``key`` = ``iou_true`` | ``iou_product``."""
    x = [r["candidates"][0]["features"] + _iou_feats(*(r[key] + [None])[:2]) for r in bench]
    return np.array(x), np.array([r["group"] == "in" for r in bench], float)


VARIANTS = {
    "match features (refit)": [0, 1, 2, 3],
    "match features + IoU": [0, 1, 2, 3, 4],
    "match features + IoU + IoU margin": [0, 1, 2, 3, 4, 5],
    "IoU + IoU margin (fitted)": [4, 5],
}


def in_at_5pct_out(p: np.ndarray, y: np.ndarray) -> float:
    """The share of in-library queries called exact at the threshold that calls 5 % of the outside ones exact."""
    return float(np.mean(p[y == 1] > np.quantile(p[y == 0], 0.95)))


def report(
    fit: list[dict[str, Any]], bench: list[dict[str, Any]], fit_product: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """AUCs per benchmark subset; the logistic variants fitted on ``fit`` (true masks), and for the last subset on
    ``fit_product`` (the same composites registered against the product's mask, where it has one)."""
    x, y, w = training_set(fit)
    out: dict[str, Any] = {"n_fit_queries": len(fit), "n_fit_rows": len(y), "bench": {}}
    y_in_fit = {}
    masked = [r for r in bench if r["mask_source"]]
    subsets = {
        "all, true mask": (bench, "iou_true", "true"),
        "chairs only, true mask": ([r for r in bench if r["category"] == "chair"], "iou_true", "true"),
        "product mask exists, true mask": (masked, "iou_true", "true"),
        "product mask exists, product mask": (masked, "iou_product", "true"),
    }  # fmt: skip
    fitted = {"true": {name: fit_match_model(x[:, cols], y, w) for name, cols in VARIANTS.items()}}
    product_fit = [r for r in fit_product or [] if r.get("mask_source")]
    if product_fit:
        xp, yp, wp = training_set(product_fit)
        fitted["product"] = {name: fit_match_model(xp[:, cols], yp, wp) for name, cols in VARIANTS.items()}
        subsets["product mask exists, product mask, fitted on product masks"] = (masked, "iou_product", "product")
        out["n_fit_queries_product_mask"] = len(product_fit)
    models = fitted["true"]
    for name, cols in VARIANTS.items():
        # in-sample separation on the fitting queries' top results (positives vs leave-model-out negatives)
        y_in_fit[name] = roc_auc(models[name].predict(x[:, cols]), y)
    out["fit_auc_in_sample"] = y_in_fit
    out["weights"] = {name: {"features": [(list(MATCH_FEATURES) + ["iou", "iou_margin"])[c] for c in cols],
                             "weights": list(models[name].weights)} for name, cols in VARIANTS.items()}  # fmt: skip
    for sname, (rows, key, source) in subsets.items():
        if not rows:
            continue
        xb, yb = bench_matrix(rows, key)
        today = np.array([r["match"] for r in rows])
        res = {"n_in": int(yb.sum()), "n_out": int(len(yb) - yb.sum()),
               "today's match": roc_auc(today, yb), "today's match: in at 5 % out": in_at_5pct_out(today, yb),
               "IoU alone": roc_auc(xb[:, 4], yb), "IoU margin alone": roc_auc(xb[:, 5], yb)}  # fmt: skip
        for name, cols in VARIANTS.items():
            p = fitted[source][name].predict(xb[:, cols])
            res[name] = roc_auc(p, yb)
            res[name + ": in at 5 % out"] = in_at_5pct_out(p, yb)
            res[name + ": exact in / out at 0.5"] = [
                float(np.mean(p[yb == 1] >= 0.5)),
                float(np.mean(p[yb == 0] >= 0.5)),
            ]
        res["iou_median_in_out"] = [float(np.median(xb[yb == 1, 4])), float(np.median(xb[yb == 0, 4]))]
        out["bench"][sname] = res
    ms = [r["ms_register_true"] / max(1, sum(v is not None for v in r["iou_true"])) for r in bench]
    out["register_ms_per_candidate"] = {"mean": float(np.mean(ms)), "median": float(np.median(ms))} if ms else None
    return out


def print_report(out: dict[str, Any]) -> None:
    cols = ["today's match", "IoU alone", "IoU margin alone", *VARIANTS]
    print(f"\nROC AUC, in-library vs outside, top result (fit: {out['n_fit_queries']} leave-models-out queries)")
    for sname, res in out["bench"].items():
        print(f"\n{sname}: {res['n_in']} in / {res['n_out']} out; top-1 IoU median in {res['iou_median_in_out'][0]:.3f}"
              f" out {res['iou_median_in_out'][1]:.3f}")  # fmt: skip
        for c in cols:
            extra = res.get(c + ": exact in / out at 0.5")
            ex = f"   exact in {100 * extra[0]:5.1f} %  out {100 * extra[1]:5.1f} %" if extra else " " * 33
            five = res.get(c + ": in at 5 % out")
            print(f"  {c:<36} {res[c]:.4f}{ex}" + (f"   in at 5 % out {100 * five:5.1f} %" if five is not None else ""))
    print("\nin-sample AUC on the fitting queries:", {k: round(v, 4) for k, v in out["fit_auc_in_sample"].items()})
    print("registration per candidate (ms):", out["register_ms_per_candidate"])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--arch", default="transfer")
    ap.add_argument("--fit-queries", type=int, default=MATCH_QUERIES)
    ap.add_argument("--cache", type=Path, default=None, help="raw records folder (default WS/match_outline)")
    ap.add_argument("--only", choices=("fit", "fit-product", "bench", "report"), default=None)
    ap.add_argument("--json", type=Path, default=RESULTS / "match_outline.json")
    args = ap.parse_args()
    ws: Path = args.workspace
    cache = args.cache or ws / "match_outline"
    cache.mkdir(parents=True, exist_ok=True)
    fit_path, bench_path = cache / f"fit_{args.arch}.jsonl", cache / f"bench_{args.arch}.jsonl"
    fit_product_path = cache / f"fit_product_{args.arch}.jsonl"
    t0 = time.time()
    if args.only != "report":
        searcher = Searcher.from_workspace(ws / "library", args.arch, refine_top=0)
        registrar = Registrar(searcher.library)
        if args.only in (None, "fit"):
            fit_queries(ws, searcher, registrar, fit_path, args.fit_queries)
        if args.only in (None, "fit-product"):
            fit_queries(ws, searcher, registrar, fit_product_path, args.fit_queries, masks="product")
        if args.only in (None, "bench"):
            bench_queries(ws, searcher, registrar, bench_path)
        registrar.close()
        if args.only is not None:
            return
    out = report(_read(fit_path), _read(bench_path), _read(fit_product_path))
    print_report(out)
    results = {"date": time.strftime("%Y-%m-%d %H:%M"), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
               "workspace": str(ws), "arch": args.arch, "seconds": time.time() - t0} | out  # fmt: skip
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.json}")


if __name__ == "__main__":
    main()
