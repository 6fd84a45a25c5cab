"""The search issue's quality benchmark: does the view index rank models as well as the classifier, and are its
scores calibrated?

Every number comes from :func:`cadsearch.evaluate.run.run_evaluation`, the code of ``cadsearch evaluate``: each
query goes through :meth:`Searcher.search` exactly as ``cadsearch search`` runs it. On the graphics split (fresh
renders of every indexed model, new cameras and random backgrounds, cached in ``<workspace>/eval/graphics`` and
shared with ``benchmarks/accuracy.py``; ``--eval-views`` per model):

- recognition: ``ranking="classifier"`` (the network's softmax over its training classes) top-1 / top-5 vs
  ``ranking="index"`` (the product: nearest views → models, :mod:`cadsearch.search.scoring`);
- pose: error of the searcher's pose for its top model (index ranking: pose head + that model's best views) vs
  the pose head alone (classifier ranking) (DESIGN.md's angle between cameras, symmetry-aware: mean, median,
  Acc@15, Acc@30);
- calibration of the searcher's top-1 score, read from the index ranking's raw rows (confidence = ``top1_score``,
  right = ``true_rank == 1``): ECE (``--bins`` equal-width bins, :func:`expected_calibration_error`), the
  reliability table (confidence bin → accuracy, count), mean confidence vs accuracy, and the temperature fitted
  on validation views (:func:`cadsearch.search.calibration.load_or_fit_calibration`). A reliability diagram goes
  to ``--plot`` (a PNG outside the repository); and how the ECE moves when the searcher retrieves another number
  of views than the temperature was fitted with (``k_views_sensitivity``, from the searcher's internals on the
  very embeddings the search computed), with the NLL of the true model;
- photos (``--photos``, default the shared ``dev_viewpoints.csv`` plus mirror images, φ → 360° − φ, EXIF
  applied): ``run_evaluation`` on that photo split, azimuth error of the searcher's pose for its top model
  (``search_top1``, index ranking) vs the pose head alone (``head``, classifier ranking); the photos' models are
  not in the library, so only pose is compared.

The index of ``--model`` is built first if it is missing or stale (``cadsearch index``), otherwise reused. The
evaluation reports go to ``<workspace>/reports/search_quality-<split>-<ranking>/``.

Changed from the version before ``run_evaluation`` (issue #10): the queries are the graphics split (was the
``eval_views/`` renders of ``benchmarks/accuracy.py``), framed as the product frames them (automatic crop; the
pose head alone was asked of the unframed image); pose errors are symmetry-aware; ``classifier`` counts the
queries of the training classes; ``search.ms_per_query_after_embedding`` times the search of the top 5 (was
every model); ``nll_true_model`` comes from the ``k_views`` pass at the searcher's ``k_views`` and gives a model
outside the retrieved views its share of the unseen mass (was 1e-12). New keys: ``evaluation`` (the
``run_evaluation`` summaries, DESIGN.md's ``M`` without ``extra``, per ranking; ``photos.evaluation`` for the
photos), ``photos.*.pose_median_deg``, ``eval_views`` and ``k_views_sensitivity[*].nll_true_model``;
``index.calibration_fit`` is the fit of ``calibration.json`` (the index meta no longer holds it).

Usage:
    .venv/bin/python benchmarks/search_quality.py WORKSPACE [--model transfer|scratch] [--json OUT]
        [--plot /tmp/sq/reliability.png] [--bins 15] [--eval-views 10] [--photos CSV|none] [--pose head_weight=8 ...]

Prints a table and writes ``benchmarks/results/search_quality.json`` (``--json`` to change).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

from cadsearch.evaluate.run import ClassifierAnswerer, IndexAnswerer, design_json, read_raw, run_evaluation
from cadsearch.metrics import summarize_pose
from cadsearch.search.scoring import expected_calibration_error
from cadsearch.search.searcher import Searcher, query_of

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


class RecordingSearcher(Searcher):
    """The product's searcher, unchanged, that also keeps each query's embedding and head pose as it searches
    (for the ``k_views`` sensitivity and the search timing, which need the very vectors the search used)."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.recorded: list[dict] = []  # search_embedding's keyword arguments, one per query

    def predict_query(self, image, crop=None):
        pred, frame = super().predict_query(image, crop)
        self.recorded.append(query_of(pred, 0))
        return pred, frame


def pose_summary(errors) -> dict | None:
    """:func:`summarize_pose` under this benchmark's historical key names (``mean_deg``, ``median_deg``)."""
    s = summarize_pose(errors)
    if not s["n"]:
        return None
    return {"n": s["n"], "mean_deg": s["mean"], "median_deg": s["median"], "acc15": s["acc15"], "acc30": s["acc30"]}


def reliability_table(conf: np.ndarray, right: np.ndarray, bins: int) -> list[dict]:
    """The reliability table behind the ECE: per equal-width confidence bin (the binning of
    :func:`expected_calibration_error`), its count, mean confidence and accuracy; empty bins left out."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    table = []
    for b in range(bins):
        sel = which == b
        if sel.any():
            table.append(
                {"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": int(sel.sum()),
                 "confidence": float(conf[sel].mean()), "accuracy": float(right[sel].mean())}
            )  # fmt: skip
    return table


def plot_reliability(path: Path, table: list[dict], bins: int, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax, axc) = plt.subplots(2, 1, figsize=(5, 6), height_ratios=[3, 1], sharex=True)
    width = 1.0 / bins
    ax.plot([0, 1], [0, 1], "k--", lw=1, label="perfect calibration")
    ax.bar([r["lo"] for r in table], [r["accuracy"] for r in table], width=width, align="edge", edgecolor="k",
           alpha=0.7, label="accuracy")  # fmt: skip
    ax.plot([r["confidence"] for r in table], [r["accuracy"] for r in table], "ro", ms=4, label="(mean conf, acc)")
    ax.set_ylabel("accuracy of the top-1 model")
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    axc.bar([r["lo"] for r in table], [r["count"] for r in table], width=width, align="edge", edgecolor="k")
    axc.set_yscale("log")
    axc.set_xlabel("top-1 score (confidence)")
    axc.set_ylabel("queries")
    axc.set_xlim(0, 1)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def k_views_sensitivity(searcher, embeddings: np.ndarray, true_ids: list[str], bins: int) -> list[dict]:
    """Top-1, ECE and NLL of the true model for the scores at the fitted temperature when ``k`` nearest views are
    retrieved instead of the searcher's ``k_views`` (the searcher's own ranking, :func:`rank_models`)."""
    from cadsearch.search.scoring import rank_models

    out = []
    n_models = len(searcher.model_ids)
    for k in sorted({16, 64, searcher.k_views, 4 * searcher.k_views}):
        sims, ids = searcher.index.search(np.asarray(embeddings, np.float32), k)
        conf, right, true_p = [], [], []
        for s, i, m in zip(sims, ids, true_ids, strict=True):
            r = rank_models(s, i, searcher._model_index, n_models, searcher.temperature)
            found = [searcher.model_ids[int(j)] for j in r.model_idx]
            conf.append(r.score[0] if len(found) else 0.0)
            right.append(bool(found) and found[0] == m)
            if m in found:
                true_p.append(r.score[found.index(m)])
            else:  # not among the retrieved views: its share of the mass the softmax gives the unseen models
                true_p.append((1.0 - float(r.score.sum())) / max(n_models - len(found), 1))
        conf, right = np.array(conf, dtype=np.float64), np.array(right, dtype=bool)
        out.append({
            "k_views": k, "top1": float(right.mean()), "mean_confidence": float(conf.mean()),
            "ece": expected_calibration_error(conf, right, bins),
            "nll_true_model": float(-np.mean(np.log(np.maximum(true_p, 1e-12)))),
        })  # fmt: skip
    return out


def _evaluate(ws: Path, arch: str, split, answerer, ranking: str, eval_views: int) -> tuple[dict, list[dict]]:
    """``run_evaluation`` of one answerer on one split: its summary ``M`` and its raw rows."""
    name = "graphics" if str(split) == "graphics" else Path(split).stem
    report = ws / "reports" / f"search_quality-{name}-{ranking}"
    result = run_evaluation(
        ws, [arch], split, report_dir=report, views_per_model=eval_views, ranking=ranking, answerers={arch: answerer},
        workers=2, render_predicted=False,
    )  # fmt: skip
    return result, read_raw(report / f"raw_{arch}.csv")


def _score_and_truth(rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """Top-1 calibration data from raw rows with a true model: confidence = ``top1_score``, right = top-1 hit."""
    rows = [r for r in rows if r.get("true_rank") is not None]
    conf = np.array([r["top1_score"] or 0.0 for r in rows], dtype=np.float64)
    return conf, np.array([r["true_rank"] == 1 for r in rows], dtype=bool)


def _pose_errors(rows: list[dict]) -> np.ndarray:
    return np.array([np.nan if r["pose_error_deg"] is None else r["pose_error_deg"] for r in rows], dtype=np.float64)


def photo_pose(ws: Path, arch: str, searcher, csv_path: Path) -> dict | None:
    """Azimuth error on labelled photos (+ mirrors) through ``run_evaluation``: the searcher's top model's pose
    (index ranking) vs the pose head alone (classifier ranking: same framing, no views)."""
    out: dict = {"csv": str(csv_path)}
    for name, ranking, answerer in (
        ("head", "classifier", ClassifierAnswerer(searcher.predictor, searcher.crop)),
        ("search_top1", "index", IndexAnswerer(searcher)),
    ):
        result, _ = _evaluate(ws, arch, csv_path, answerer, ranking, 1)
        m = result["models"][arch]
        az = m["extra"]["azimuth"]
        if not az["n"]:
            return None
        out["n"] = m["n"]
        out[name] = {
            "mean_deg": az["mean_deg"],
            "median_deg": az["median_deg"],
            "acc30": az["acc30"],
            "acc30_sector_balanced": m["extra"]["sector_balanced_acc30"]["azimuth"],
            "pose_median_deg": m["pose_median_deg"],
        }
        out.setdefault("evaluation", {})[ranking] = design_json(result)["models"][arch]
    return out


def evaluate(
    ws: Path,
    arch: str,
    bins: int,
    k_views: int | None,
    temperature: float | None,
    photos: Path | None,
    pose: dict | None = None,
    eval_views: int = 10,
) -> dict:
    from cadsearch.index import build_index
    from cadsearch.search.calibration import load_or_fit_calibration
    from cadsearch.search.pose import PoseConfig

    t0 = time.perf_counter()
    summary = build_index(ws, arch, progress=True)
    index_s = time.perf_counter() - t0
    searcher = RecordingSearcher.from_workspace(
        ws, arch, k_views=k_views, temperature=temperature, threads=1, pose=PoseConfig(**(pose or {}))
    )

    # (a) the classifier over the models it was trained on, pose from the pose head alone
    cls_result, cls_rows = _evaluate(
        ws, arch, "graphics", ClassifierAnswerer(searcher.predictor, searcher.crop), "classifier", eval_views
    )
    cls = cls_result["models"][arch]
    cls_conf, cls_right = _score_and_truth(cls_rows)

    # (b) the product's search over the whole library
    searcher.recorded.clear()
    idx_result, rows = _evaluate(ws, arch, "graphics", IndexAnswerer(searcher), "index", eval_views)
    idx = idx_result["models"][arch]
    recorded, searcher.recorded = searcher.recorded, []
    if len(recorded) != len(rows):
        raise RuntimeError(f"{len(recorded)} embeddings recorded for {len(rows)} raw rows")
    conf, right = _score_and_truth(rows)
    t = time.perf_counter()
    for query in recorded:
        searcher.search_embedding(**query, k=5)
    search_ms = 1000 * (time.perf_counter() - t) / max(len(recorded), 1)

    err_search = _pose_errors(rows)
    right_ids = {r["query_id"] for r in rows if r.get("true_rank") == 1}
    err_head_right = _pose_errors([r for r in cls_rows if r["query_id"] in right_ids])
    labelled = [i for i, r in enumerate(rows) if r.get("true_model_id")]
    sensitivity = k_views_sensitivity(
        searcher,
        np.stack([recorded[i]["embedding"] for i in labelled]),
        [rows[i]["true_model_id"] for i in labelled],
        bins,
    )
    at_k = next(s for s in sensitivity if s["k_views"] == searcher.k_views)
    low = conf < 0.9
    return {
        "arch": arch,
        "n": idx["n"],
        "models": len(searcher.model_ids),
        "eval_views": eval_views,
        "index": {
            "views": summary.views,
            "built_now": not summary.unchanged,
            "seconds": index_s,
            "k_views": searcher.k_views,
            "temperature": searcher.temperature,
            "calibration_fit": load_or_fit_calibration(ws, arch, searcher.index, searcher.predictor),
        },
        "pose_config": dataclasses.asdict(searcher.pose),
        "classifier": {
            "n": cls["extra"]["n_recognition"],
            "top1": cls["top1"],
            "top5": cls["top5"],
            "mean_confidence": float(cls_conf.mean()) if cls_conf.size else None,
            "ece": expected_calibration_error(cls_conf, cls_right, bins) if cls_conf.size else None,
        },
        "search": {"top1": idx["top1"], "top5": idx["top5"], "ms_per_query_after_embedding": search_ms},
        "pose": {
            "head": pose_summary(_pose_errors(cls_rows)),
            "search_top1": pose_summary(err_search),
            "search_top1_when_right": pose_summary(_pose_errors([r for r in rows if r.get("true_rank") == 1])),
            "head_when_search_right": pose_summary(err_head_right),
        },
        "calibration": {
            "bins": bins,
            "ece": expected_calibration_error(conf, right, bins),
            "mean_confidence": float(conf.mean()),
            "accuracy": float(right.mean()),
            "nll_true_model": at_k["nll_true_model"],
            "reliability": reliability_table(conf, right, bins),
            # the ECE is dominated by the many easy queries near 1.0: the less confident ones on their own
            "below_0_9": {
                "n": int(low.sum()),
                "mean_confidence": float(conf[low].mean()) if low.any() else None,
                "accuracy": float(right[low].mean()) if low.any() else None,
            },
            "k_views_sensitivity": sensitivity,
        },
        "evaluation": {
            "graphics": {
                "index": design_json(idx_result)["models"][arch],
                "classifier": design_json(cls_result)["models"][arch],
            },
        },  # fmt: skip
        "photos": photo_pose(ws, arch, searcher, photos) if photos is not None and photos.is_file() else None,
    }


def print_table(res: dict) -> None:
    c, s, ps, ph, cal = (
        res["classifier"],
        res["search"],
        res["pose"]["search_top1"],
        res["pose"]["head"],
        res["calibration"],
    )
    print(f"\n{res['arch']}: {res['n']} fresh renders, {res['models']} models, index {res['index']['views']} views, "
          f"k_views={res['index']['k_views']}, T={res['index']['temperature']:.4g}")  # fmt: skip
    print("| ranking (run_evaluation) | queries | top-1 | top-5 | pose mean / median | Acc@15 / Acc@30 |")
    print("|---|---|---|---|---|---|")

    def pct(v) -> str:
        return "–" if v is None else f"{100 * v:.1f} %"

    for label, n, rec, pose in (
        ("classifier + pose head", c["n"], c, ph),
        ("index search", res["n"], s, ps),
    ):
        pose_text = (
            "– | –"
            if pose is None
            else (f"{pose['mean_deg']:.1f}° / {pose['median_deg']:.1f}° | {pct(pose['acc15'])} / {pct(pose['acc30'])}")
        )
        print(f"| {label} | {n} | {pct(rec['top1'])} | {pct(rec['top5'])} | {pose_text} |")
    print(f"\ncalibration of the top-1 score: ECE ({cal['bins']} bins) {cal['ece']:.4f}, mean confidence "
          f"{cal['mean_confidence']:.4f} vs accuracy {cal['accuracy']:.4f}, NLL of the true model "
          f"{cal['nll_true_model']:.4f}; classifier softmax ECE {c['ece'] or float('nan'):.4f}")  # fmt: skip
    low = cal["below_0_9"]
    if low["n"]:
        print(f"queries with top-1 score < 0.9: {low['n']}, mean confidence {low['mean_confidence']:.3f} vs "
              f"accuracy {low['accuracy']:.3f}")  # fmt: skip
    fit = res["index"]["calibration_fit"]
    if fit:
        print(f"fit on validation views: T={fit.get('temperature', float('nan')):.4g}, n={fit.get('n')}, "
              f"top-1 {fit.get('top1', float('nan')):.4f}, ECE {fit.get('ece', float('nan')):.4f}")  # fmt: skip
    print("k_views sensitivity (same T): " + ", ".join(
        f"k={r['k_views']}: ECE {r['ece']:.3f} (conf {r['mean_confidence']:.3f}, top-1 {r['top1']:.3f})"
        for r in cal["k_views_sensitivity"]))  # fmt: skip
    photo = res.get("photos")
    if photo:
        for name in ("head", "search_top1"):
            q = photo[name]
            print(f"photos ({photo['n']}) azimuth error, {name}: mean {q['mean_deg']:.1f}°, median "
                  f"{q['median_deg']:.1f}°, Acc@30 {100 * q['acc30']:.1f} %, sector-balanced Acc@30 "
                  f"{100 * q['acc30_sector_balanced']:.1f} %")  # fmt: skip
    print("| confidence bin | queries | mean confidence | accuracy |")
    print("|---|---|---|---|")
    for r in cal["reliability"]:
        print(f"| {r['lo']:.3f}–{r['hi']:.3f} | {r['count']} | {r['confidence']:.3f} | {r['accuracy']:.3f} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--model", default="transfer", choices=["transfer", "scratch"])
    ap.add_argument("--bins", type=int, default=15)
    ap.add_argument("--eval-views", type=int, default=10, help="graphics split views per model")
    ap.add_argument("--k-views", type=int, default=None, help="override the index's k_views")
    ap.add_argument("--temperature", type=float, default=None, help="override the index's fitted temperature")
    ap.add_argument("--pose", nargs="*", default=[], metavar="K=V", help="PoseConfig fields, e.g. head_weight=8")
    ap.add_argument("--json", type=Path, default=RESULTS_DIR / "search_quality.json")
    ap.add_argument("--photos", default=str(SHARED / "photos" / "dev_viewpoints.csv"), help="CSV, or 'none'")
    ap.add_argument("--plot", type=Path, default=Path("/tmp/sq/reliability.png"))
    args = ap.parse_args()

    import faiss
    import torch

    torch.set_num_threads(1)  # a shared machine: one thread (ONNX follows torch's setting)
    faiss.omp_set_num_threads(1)
    photos = None if args.photos == "none" else Path(args.photos)
    pose = {k: float(v) if k != "views" else int(v) for k, v in (item.split("=", 1) for item in args.pose)}
    res = evaluate(args.workspace, args.model, args.bins, args.k_views, args.temperature, photos, pose, args.eval_views)
    print_table(res)
    plot_reliability(args.plot, res["calibration"]["reliability"], args.bins,
                     f"{args.model} search, {res['n']} fresh renders: ECE {res['calibration']['ece']:.3f}, "
                     f"T={res['index']['temperature']:.3g}")  # fmt: skip
    print(f"reliability diagram: {args.plot}")
    res["setup"] = {
        "workspace": str(args.workspace),
        "command": " ".join(["python", "benchmarks/search_quality.py", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.machine()}, 1 thread",
    }
    if args.json:  # one entry per model: runs of the other model are kept
        old = json.loads(args.json.read_text()) if args.json.exists() else {}
        old[args.model] = res
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(old, indent=2) + "\n")


if __name__ == "__main__":
    main()
