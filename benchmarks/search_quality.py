"""The search issue's quality benchmark: does the view index rank models as well as the classifier, and are its
scores calibrated?

On the fresh evaluation renders of a workspace (``eval_views/``, e.g. made by ``benchmarks/accuracy.py``):

- recognition: the network's classifier (``Predictor.class_probs``) top-1 / top-5 vs the :class:`Searcher`'s
  ranking from the index of view embeddings (nearest views → models, :mod:`cadsearch.search.scoring`);
- pose: error of the searcher's pose for its top model (pose head + that model's best views) vs the pose head
  alone (DESIGN.md's angle between cameras: mean, median, Acc@15, Acc@30);
- calibration of the searcher's top-1 score on these renders: ECE (15 equal-width bins), the reliability table
  (confidence bin → accuracy, count), mean confidence vs accuracy, NLL of the true model, and the temperature the
  index fitted on validation views (stored in the index's ``meta.json``). A reliability diagram goes to
  ``--plot`` (a PNG outside the repository); and how the ECE moves when the searcher retrieves another number of
  views than the temperature was fitted with (``k_views_sensitivity``);
- photos (``--photos``, default the shared ``dev_viewpoints.csv`` plus mirror images, φ → 360° − φ): azimuth error
  of the searcher's pose for its top model vs the pose head alone (the photos' models are not in the library, so
  only pose is compared).

The index of ``--model`` is built first if it is missing or stale (``cadsearch index``), otherwise reused.

Usage:
    .venv/bin/python benchmarks/search_quality.py WORKSPACE [--model transfer|scratch] [--json OUT]
        [--plot /tmp/sq/reliability.png] [--bins 15] [--photos CSV|none] [--pose head_weight=8 ...]

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

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def pose_summary(err: np.ndarray) -> dict:
    return {
        "n": len(err),
        "mean_deg": float(err.mean()),
        "median_deg": float(np.median(err)),
        "acc15": float(np.mean(err < 15)),
        "acc30": float(np.mean(err < 30)),
    }


def reliability(conf: np.ndarray, right: np.ndarray, bins: int) -> tuple[float, list[dict]]:
    """ECE over ``bins`` equal-width bins and the per-bin table (empty bins left out)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    table, ece = [], 0.0
    for b in range(bins):
        sel = which == b
        if not sel.any():
            continue
        acc, mean_conf = float(right[sel].mean()), float(conf[sel].mean())
        ece += sel.mean() * abs(acc - mean_conf)
        table.append(
            {"lo": float(edges[b]), "hi": float(edges[b + 1]), "count": int(sel.sum()), "confidence": mean_conf,
             "accuracy": acc}
        )  # fmt: skip
    return float(ece), table


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
    """Top-1 and ECE of the scores at the fitted temperature when ``k`` nearest views are retrieved instead."""
    from cadsearch.search.scoring import rank_models

    out = []
    for k in sorted({16, 64, searcher.k_views, 4 * searcher.k_views}):
        sims, ids = searcher.index.search(np.asarray(embeddings, np.float32), k)
        conf, right = [], []
        for s, i, m in zip(sims, ids, true_ids, strict=True):
            r = rank_models(s, i, searcher._model_index, len(searcher.model_ids), searcher.temperature)
            conf.append(r.score[0])
            right.append(searcher.model_ids[int(r.model_idx[0])] == m)
        conf, right = np.array(conf), np.array(right)
        out.append({"k_views": k, "top1": float(right.mean()), "mean_confidence": float(conf.mean()),
                    "ece": reliability(conf, right, bins)[0]})  # fmt: skip
    return out


def photo_pose(searcher, csv_path: Path) -> dict | None:
    """Azimuth error on labelled photos (+ mirrors): the searcher's top model's pose vs the pose head alone."""
    import csv

    from PIL import Image

    from cadsearch.evaluate.metrics import sector_balanced_accuracy

    images, azimuth = [], []
    with open(csv_path, newline="") as f:
        for r in csv.DictReader(f):
            if r.get("azimuth_deg"):
                im = np.asarray(Image.open(csv_path.parent / r["photo"]).convert("RGB"))
                images += [im, im[:, ::-1].copy()]
                azimuth += [float(r["azimuth_deg"]), (360.0 - float(r["azimuth_deg"])) % 360.0]
    if not images:
        return None
    azimuth = np.array(azimuth)
    p = searcher.predictor.predict(images)
    found = [
        searcher.search_embedding(np.asarray(p.embedding[i], np.float32), (float(p.polar_deg[i]),
                                  float(p.azimuth_deg[i])), k=1).results[0].azimuth_deg
        for i in range(len(images))
    ]  # fmt: skip

    def summary(estimate) -> dict:
        err = np.abs((np.asarray(estimate) - azimuth + 180.0) % 360.0 - 180.0)
        return {"mean_deg": float(err.mean()), "median_deg": float(np.median(err)), "acc30": float(np.mean(err < 30)),
                "acc30_sector_balanced": float(sector_balanced_accuracy(err, azimuth, 30.0, 8).balanced)}  # fmt: skip

    return {"csv": str(csv_path), "n": len(images), "head": summary(p.azimuth_deg), "search_top1": summary(found)}


def evaluate(
    ws: Path,
    arch: str,
    bins: int,
    k_views: int | None,
    temperature: float | None,
    photos: Path | None,
    pose: dict | None = None,
) -> dict:
    from cadsearch.index import build_index
    from cadsearch.render.cameras import pose_error_deg
    from cadsearch.render.job import load_view, read_view_table
    from cadsearch.search.searcher import Searcher

    t0 = time.perf_counter()
    summary = build_index(ws, arch, progress=True)
    index_s = time.perf_counter() - t0
    from cadsearch.search.pose import PoseConfig

    searcher = Searcher.from_workspace(
        ws, arch, k_views=k_views, temperature=temperature, threads=1, pose=PoseConfig(**(pose or {}))
    )
    pred = searcher.predictor
    rows = read_view_table(ws, "eval_views")
    p = pred.predict([load_view(ws, r)[0] for r in rows])
    true_polar = np.array([r.polar_deg for r in rows])
    true_az = np.array([r.azimuth_deg for r in rows])

    # (a) the classifier, over the models it was trained on
    cls_index = {m: i for i, m in enumerate(pred.model_ids)}
    known = np.flatnonzero([r.model_id in cls_index for r in rows])
    labels = np.array([cls_index.get(r.model_id, -1) for r in rows])
    order = np.argsort(-p.class_probs, axis=1)
    cls_top1 = float(np.mean(order[known, 0] == labels[known])) if len(known) else None
    cls_top5 = float(np.mean([labels[i] in order[i, :5] for i in known])) if len(known) else None
    cls_conf = p.class_probs[known, order[known, 0]]
    cls_ece, _ = reliability(cls_conf, order[known, 0] == labels[known], bins)

    # (b) the searcher over the whole library
    conf, right, top5, true_score, err_search, err_head = [], [], [], [], [], []
    t = time.perf_counter()
    for i, r in enumerate(rows):
        head = (float(p.polar_deg[i]), float(p.azimuth_deg[i]))
        res = searcher.search_embedding(np.asarray(p.embedding[i], np.float32), head, k=len(searcher.model_ids))
        ids = [m.model_id for m in res.results]
        conf.append(res.results[0].score)
        right.append(ids[0] == r.model_id)
        top5.append(r.model_id in ids[:5])
        true_score.append(res.results[ids.index(r.model_id)].score if r.model_id in ids else 0.0)
        m0 = res.results[0]
        err_search.append(float(pose_error_deg(m0.polar_deg, m0.azimuth_deg, r.polar_deg, r.azimuth_deg)))
    search_ms = 1000 * (time.perf_counter() - t) / max(len(rows), 1)
    conf, right, true_score = np.array(conf), np.array(right), np.array(true_score)
    err_search = np.array(err_search)
    err_head = np.asarray(pose_error_deg(p.polar_deg, p.azimuth_deg, true_polar, true_az))
    ece, table = reliability(conf, right, bins)
    return {
        "arch": arch,
        "n": len(rows),
        "models": len(searcher.model_ids),
        "index": {
            "views": summary.views,
            "built_now": not summary.unchanged,
            "seconds": index_s,
            "k_views": searcher.k_views,
            "temperature": searcher.temperature,
            "calibration_fit": searcher.index.meta.get("calibration", {}),
        },
        "pose_config": dataclasses.asdict(searcher.pose),
        "classifier": {
            "n": len(known),
            "top1": cls_top1,
            "top5": cls_top5,
            "mean_confidence": float(cls_conf.mean()),
            "ece": cls_ece,
        },  # fmt: skip
        "search": {
            "top1": float(right.mean()),
            "top5": float(np.mean(top5)),
            "ms_per_query_after_embedding": search_ms,
        },
        "pose": {
            "head": pose_summary(err_head),
            "search_top1": pose_summary(err_search),
            "search_top1_when_right": pose_summary(err_search[right]) if right.any() else None,
            "head_when_search_right": pose_summary(err_head[right]) if right.any() else None,
        },
        "calibration": {
            "bins": bins,
            "ece": ece,
            "mean_confidence": float(conf.mean()),
            "accuracy": float(right.mean()),
            "nll_true_model": float(-np.mean(np.log(np.maximum(true_score, 1e-12)))),
            "reliability": table,
            # the ECE is dominated by the many easy queries near 1.0: the less confident ones on their own
            "below_0_9": {
                "n": int((conf < 0.9).sum()),
                "mean_confidence": float(conf[conf < 0.9].mean()) if (conf < 0.9).any() else None,
                "accuracy": float(right[conf < 0.9].mean()) if (conf < 0.9).any() else None,
            },
            "k_views_sensitivity": k_views_sensitivity(searcher, p.embedding, [r.model_id for r in rows], bins),
        },
        "photos": photo_pose(searcher, photos) if photos is not None and photos.is_file() else None,
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
    print("| ranking | top-1 | top-5 | pose mean / median | Acc@15 / Acc@30 |")
    print("|---|---|---|---|---|")
    print(
        f"| classifier + pose head | {100 * c['top1']:.1f} % | {100 * c['top5']:.1f} % | "
        f"{ph['mean_deg']:.1f}° / {ph['median_deg']:.1f}° | {100 * ph['acc15']:.1f} % / {100 * ph['acc30']:.1f} % |"
    )
    print(
        f"| index search | {100 * s['top1']:.1f} % | {100 * s['top5']:.1f} % | "
        f"{ps['mean_deg']:.1f}° / {ps['median_deg']:.1f}° | {100 * ps['acc15']:.1f} % / {100 * ps['acc30']:.1f} % |"
    )
    print(f"\ncalibration of the top-1 score: ECE ({cal['bins']} bins) {cal['ece']:.4f}, mean confidence "
          f"{cal['mean_confidence']:.4f} vs accuracy {cal['accuracy']:.4f}, NLL of the true model "
          f"{cal['nll_true_model']:.4f}; classifier softmax ECE {c['ece']:.4f}")  # fmt: skip
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
    res = evaluate(args.workspace, args.model, args.bins, args.k_views, args.temperature, photos, pose)
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
