"""An open library: models added after training are found without retraining, and ``match`` says when the object
in the photo is not in the library at all.

Three disjoint groups of models (deterministic, from ``../shared/data/meshes/manifest.csv`` and the procedural
generator):

- **trained** — ``--trained-procedural`` procedural chairs (seed 0) + the first ``--trained-real`` real chairs of
  the shared data (sorted by id): the library both networks are trained on (``cadsearch train``'s defaults,
  including its 3 held-out models);
- **added** — ``--added-procedural`` new procedural chairs (seed 1), 4 more real chairs and
  ``--others-per-category`` shared models of every other category: added after training with ``library add`` +
  ``render`` + ``index``, no training;
- **outside** — ``--outside-procedural`` procedural chairs (seed 2), the last 4 real chairs and as many other
  shared models of every other category: never in the library; rendered in a separate workspace
  (``WS/outside``) only to be asked as *not-in-library* queries.
- **training-only** (the product's ``extra_chairs`` training option: ``cadsearch train``'s default, 100 for the
  transfer network and none for scratch; ``--transfer extra_chairs=0`` trains without them) — procedural chairs
  in the training workspace only (:mod:`cadsearch.models.extras`): the networks train on them, never held out (the
  held-out models stay the same 3 library models), and they are never in the library, its index or the queries.

Measured, for both networks, on fresh renders (``cadsearch evaluate``'s graphics split: new random cameras, random
backgrounds, ``--eval-views`` per model):

1. recognition and pose of the seen (trained) and unseen (held-out + added) models — :func:`run_evaluation`'s
   ``unseen`` metrics, and the unseen models split into chairs and other categories;
2. ``match``: ROC AUC of the top result's match over in-library queries (the graphics split) vs not-in-library
   queries (renders of the *outside* models, same cameras and backgrounds), the share of each called an exact
   match at :data:`~cadsearch.search.matching.EXACT_MATCH_THRESHOLD`, and the share of the development photos (none
   of those chairs is in the library) called exact.

Prints a table, writes ``benchmarks/results/open_library.json``. Resumable: each stage is skipped when its output
exists (``--retrain`` trains again).

Usage:
    python benchmarks/open_library.py WORKSPACE [--eval-views 10] [--stage all|setup|measure] [--kind-prior P]
        [--mirror-rank W] [--look-alike-margin M] [--look-alike-models on|off]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
from accuracy import parse_kv
from category_vote import BEFORE_MODES, with_judge, with_look_alike_margin

from cadsearch.evaluate.run import TOP_K, Answer, IndexAnswerer, answer_split, read_raw, run_evaluation
from cadsearch.evaluate.splits import graphics_split
from cadsearch.index import build_index
from cadsearch.library import Library
from cadsearch.models import checkpoint_path, train_model
from cadsearch.render.job import RenderConfig, render_views
from cadsearch.search import Searcher
from cadsearch.search.matching import EXACT_MATCH_THRESHOLD, roc_auc

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
RESULTS = Path(__file__).resolve().parent / "results"
REAL_ADDED = 4  # real chairs added after training
REAL_OUTSIDE = 4  # real chairs never in the library


def shared_groups(trained_real: int, per_category: int = 1) -> dict[str, list[dict[str, str]]]:
    """The shared models of each group (manifest rows with absolute paths)."""
    with open(SHARED / "meshes" / "manifest.csv", newline="") as f:
        rows = [r | {"path": str(SHARED / r["path"])} for r in csv.DictReader(f)]
    chairs = sorted((r for r in rows if r["category"] == "chair"), key=lambda r: r["model_id"])
    others = sorted((r for r in rows if r["category"] != "chair"), key=lambda r: (r["category"], r["model_id"]))
    added_others, outside_others = [], []
    by_cat: dict[str, list[dict[str, str]]] = {}
    for r in others:
        by_cat.setdefault(r["category"], []).append(r)
    for members in by_cat.values():
        added_others += members[:per_category]
        outside_others += members[per_category : 2 * per_category]
    return {
        "trained": chairs[:trained_real],
        "added": chairs[trained_real : trained_real + REAL_ADDED] + added_others,
        "outside": chairs[trained_real + REAL_ADDED : trained_real + REAL_ADDED + REAL_OUTSIDE] + outside_others,
    }


def add_rows(ws: Path, name: str, rows: list[dict[str, str]]) -> None:
    if not rows:
        return
    manifest = ws / f"{name}_manifest.csv"
    with open(manifest, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    Library.open(ws).add_manifest(manifest, progress=True)


def state_path(ws: Path) -> Path:
    return ws / "open_library_state.json"


def read_state(ws: Path) -> dict[str, Any]:
    try:
        return json.loads(state_path(ws).read_text())
    except (OSError, ValueError):
        return {}


def write_state(ws: Path, state: dict[str, Any]) -> None:
    state_path(ws).write_text(json.dumps(state, indent=2))


def add_trained_group(ws: Path, args: argparse.Namespace, groups: dict[str, list[dict[str, str]]]) -> list[str]:
    Library.open(ws).generate_chairs(args.trained_procedural, seed=0, progress=True)
    add_rows(ws, "trained", groups["trained"])
    ids = sorted(m.model_id for m in Library.open(ws).list())
    render_views(ws, RenderConfig(), model_ids=ids, workers=2)
    return ids


def train_stage(ws: Path, args: argparse.Namespace) -> None:
    """``WS/train``: the trained group, rendered and trained on (``cadsearch train``'s defaults and the overrides;
    training-only chairs, when asked, in ``WS/train/training-extras``)."""
    groups = shared_groups(args.trained_real)
    tws = ws / "train"
    state = read_state(ws)
    state["trained_ids"] = add_trained_group(tws, args, groups)
    write_state(ws, state)
    for arch in filter(None, args.train.split(",")):
        if checkpoint_path(tws, arch).is_file() and not args.retrain:
            continue
        s = train_model(tws, arch, parse_kv(getattr(args, arch)))
        state = read_state(ws)
        state.setdefault("train", {})[arch] = {
            "minutes": s.seconds / 60, "epochs": s.epochs_total, "val_views": s.val_views,
            "overrides": parse_kv(getattr(args, arch)),
        }  # fmt: skip
        write_state(ws, state)


def library_stage(ws: Path, args: argparse.Namespace) -> dict[str, Any]:
    """``WS/library``: the same trained group, then the added group (``library add`` + ``render``), indexed with
    the checkpoints trained in ``WS/train`` (copied, never retrained); ``WS/outside``: the outside group."""
    groups = shared_groups(args.trained_real, args.others_per_category)
    lws = ws / "library"
    state = read_state(ws)
    trained = add_trained_group(lws, args, groups)
    assert set(state["trained_ids"]) <= set(trained), "the library lacks models of the training workspace"
    trained = state["trained_ids"]
    if "added_ids" not in state:
        Library.open(lws).generate_chairs(args.added_procedural, seed=1, progress=True)
        add_rows(lws, "added", groups["added"])
        state["added_ids"] = sorted(m.model_id for m in Library.open(lws).list() if m.model_id not in set(trained))
        write_state(ws, state)
    render_views(lws, RenderConfig(), workers=2)
    for arch in args.archs.split(","):
        src = checkpoint_path(ws / "train", arch)
        if not src.is_file():
            continue
        dst = checkpoint_path(lws, arch)
        if not dst.is_file() or dst.read_bytes() != src.read_bytes():
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dst)
        build_index(lws, arch, progress=True)
    out = ws / "outside"
    if "outside_ids" not in state:
        Library.open(out).generate_chairs(args.outside_procedural, seed=2, progress=True)
        add_rows(out, "outside", groups["outside"])
        state["outside_ids"] = sorted(m.model_id for m in Library.open(out).list())
        write_state(ws, state)
    return state


class RecordingAnswerer(IndexAnswerer):
    """The product's search (:class:`IndexAnswerer`), also keeping each answer's top ``match`` and
    ``exact_match`` in the order asked."""

    def __init__(self, searcher: Searcher) -> None:
        super().__init__(searcher)
        self.records: list[tuple[float, bool]] = []

    def answer(self, image: np.ndarray) -> Answer:
        result = self.searcher.search(image, k=TOP_K)
        self.records.append((result.results[0].match if result.results else 0.0, result.exact_match))
        top = result.results[0]
        return Answer([m.model_id for m in result.results], [float(m.score) for m in result.results],
                      top.polar_deg, top.azimuth_deg % 360.0)  # fmt: skip

    def take(self) -> list[tuple[float, bool]]:
        out, self.records = self.records, []
        return out


def group_metrics(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """n, top-1, top-5, pose mean/median (symmetry-aware) of raw evaluation rows."""
    if not rows:
        return {"n": 0}
    rank = np.array([r["true_rank"] or 0 for r in rows])
    pose = np.array([r["pose_error_deg"] for r in rows if r["pose_error_deg"] is not None], np.float64)
    return {
        "n": len(rows),
        "top1": float(np.mean(rank == 1)),
        "top5": float(np.mean(rank >= 1)),
        "pose_mean_deg": float(pose.mean()) if len(pose) else None,
        "pose_median_deg": float(np.median(pose)) if len(pose) else None,
    }


def match_metrics(m_in: np.ndarray, m_out: np.ndarray) -> dict[str, Any]:
    return {
        "n_in": len(m_in),
        "n_out": len(m_out),
        "auc": roc_auc(np.r_[m_in, m_out], np.r_[np.ones(len(m_in)), np.zeros(len(m_out))]),
        "exact_in": float(np.mean(m_in >= EXACT_MATCH_THRESHOLD)) if len(m_in) else None,
        "exact_out": float(np.mean(m_out >= EXACT_MATCH_THRESHOLD)) if len(m_out) else None,
        # the trade-off this match allows: the share of in-library queries still called exact at the threshold
        # that calls 5 % of the not-in-library ones exact
        "exact_in_at_5pct_out": float(np.mean(m_in > np.quantile(m_out, 0.95))) if len(m_in) and len(m_out) else None,
        "match_in_median": float(np.median(m_in)) if len(m_in) else None,
        "match_out_median": float(np.median(m_out)) if len(m_out) else None,
    }


def measure(ws: Path, state: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Recognition and pose of seen vs unseen models, and match in vs not in the library, for both networks."""
    lws, ows = ws / "library", ws / "outside"
    cats = {m.model_id: m.category for m in Library.open(lws).list()} | {
        m.model_id: m.category for m in Library.open(ows).list()
    }
    archs = [a for a in args.archs.split(",") if checkpoint_path(lws, a).is_file()]
    search = {} if args.kind_prior is None else {"kind_prior": args.kind_prior}  # None: the product's default
    search |= {} if args.mirror_rank is None else {"mirror_rank": args.mirror_rank}
    search |= {} if args.look_alike_models is None else {"look_alike_models": args.look_alike_models == "on"}
    searchers = {a: Searcher.from_workspace(lws, a, **search) for a in archs}
    if args.look_alike_margin is not None:
        searchers = {a: with_look_alike_margin(s, args.look_alike_margin) for a, s in searchers.items()}
    if args.look_alikes_before_modes:
        searchers = {a: with_judge(s, **BEFORE_MODES) for a, s in searchers.items()}
    if args.judge:
        changes = parse_kv(args.judge)  # JSON values: pose_modes=2 stays an int, rank_at_best_pose=false a bool
        searchers = {a: with_judge(s, **changes) for a, s in searchers.items()}
    answerers = {a: RecordingAnswerer(s) for a, s in searchers.items()}
    out: dict[str, Any] = {"calibration": {}, "graphics": {}, "match": {}, "photos": {}}
    for a in archs:
        cal = json.loads((lws / "index" / a / "calibration.json").read_text())["calibration"]
        out["calibration"][a] = {k: v for k, v in cal.items() if k != "match"} | {
            "match_fit": {k: v for k, v in cal.get("match", {}).items() if k not in ("mean", "std")}
        }

    # 1. In-library renders (the graphics split of cadsearch evaluate): seen vs unseen, and their match.
    t = time.perf_counter()
    res = run_evaluation(lws, archs, "graphics", report_dir=ws / "reports" / "graphics",
                         views_per_model=args.eval_views, answerers=answerers, workers=2,
                         render_predicted=False)  # fmt: skip
    inside: dict[str, list[tuple[float, bool]]] = {a: answerers[a].take() for a in archs}
    for a in archs:
        rows = read_raw(ws / "reports" / "graphics" / f"raw_{a}.csv")
        added = set(state["added_ids"])
        groups = {
            "all": rows,
            "seen": [r for r in rows if r["seen"] == 1],
            "unseen": [r for r in rows if r["seen"] == 0],
            "unseen: held out of training": [r for r in rows if r["seen"] == 0 and r["true_model_id"] not in added],
            "unseen: added after training": [r for r in rows if r["true_model_id"] in added],
            "unseen: added chairs": [
                r for r in rows if r["true_model_id"] in added and cats[r["true_model_id"]] == "chair"
            ],
            "unseen: added, other categories": [
                r for r in rows if r["true_model_id"] in added and cats[r["true_model_id"]] != "chair"
            ],
        }  # fmt: skip
        out["graphics"][a] = {g: group_metrics(rr) for g, rr in groups.items()} | {
            "evaluate_unseen": res["models"][a]["unseen"]
        }
        out["graphics"][a]["_rows"] = rows  # dropped before writing
    out["graphics_seconds"] = time.perf_counter() - t

    # 2. Not-in-library renders: the outside models, same cameras and backgrounds as the graphics split.
    outside = graphics_split(ows, state["outside_ids"], args.eval_views, workers=2)
    answer_split(answerers, outside, progress=True)
    for a in archs:
        rows = out["graphics"][a].pop("_rows")
        m_in = np.array([m for m, _ in inside[a]])
        seen = np.array([r["seen"] == 1 for r in rows])
        is_chair_in = np.array([cats[r["true_model_id"]] == "chair" for r in rows])
        recs = answerers[a].take()
        m_out = np.array([m for m, _ in recs])
        chair_out = np.array([cats[q.model_id] == "chair" for q in outside.queries])
        out["match"][a] = {
            "all": match_metrics(m_in, m_out),
            "seen vs outside": match_metrics(m_in[seen], m_out),
            "unseen vs outside": match_metrics(m_in[~seen], m_out),
            "chairs in vs chairs outside": match_metrics(m_in[is_chair_in], m_out[chair_out]),
            "others in vs others outside": match_metrics(m_in[~is_chair_in], m_out[~chair_out]),
            "top1_right_in": float(np.mean([r["true_rank"] == 1 for r in rows])),
        }
        right = np.array([r["true_rank"] == 1 for r in rows])
        out["match"][a]["exact_in_when_top1_right"] = float(np.mean(m_in[right] >= EXACT_MATCH_THRESHOLD))
        out["match"][a]["exact_in_when_top1_wrong"] = (
            float(np.mean(m_in[~right] >= EXACT_MATCH_THRESHOLD)) if (~right).any() else None
        )

    # 3. The development photos (and mirrors): none of those chairs is in the library.
    if args.photos.is_file():
        res = run_evaluation(lws, archs, args.photos, report_dir=ws / "reports" / "photos", answerers=answerers,
                             render_predicted=False)  # fmt: skip
        for a in archs:
            recs = answerers[a].take()
            m = np.array([m for m, _ in recs])
            out["photos"][a] = {
                "n": len(m),
                "exact_false": float(np.mean([not e for _, e in recs])),
                "match_median": float(np.median(m)),
                "match_p90": float(np.quantile(m, 0.9)),
                "pose_mean_deg": res["models"][a]["pose_mean_deg"],
            }
    return out


def pct(v: float | None) -> str:
    return "    –" if v is None else f"{100 * v:5.1f}"


def print_tables(results: dict[str, Any]) -> None:
    m = results["measured"]
    print("\nrecognition and pose on fresh renders (graphics split)")
    print(f"{'model':<9} {'group':<34} {'n':>5}  top-1  top-5  pose mean  median")
    for a, groups in m["graphics"].items():
        for g, r in groups.items():
            if g == "evaluate_unseen" or not r or not r.get("n"):
                continue
            print(f"{a:<9} {g:<34} {r['n']:>5}  {pct(r['top1'])}  {pct(r['top5'])}  "
                  f"{r['pose_mean_deg']:8.1f}°  {r['pose_median_deg']:5.1f}°")  # fmt: skip
    print(f"\nmatch: in-library vs not-in-library queries (threshold {EXACT_MATCH_THRESHOLD})")
    print(f"{'model':<9} {'comparison':<30} {'n in':>5} {'n out':>5}  AUC    exact in  exact out  in at 5 % out")
    for a, by in m["match"].items():
        for g, r in by.items():
            if isinstance(r, dict):
                print(f"{a:<9} {g:<30} {r['n_in']:>5} {r['n_out']:>5}  {r['auc']:.3f}  {pct(r['exact_in'])}    "
                      f"{pct(r['exact_out'])}      {pct(r['exact_in_at_5pct_out'])}")  # fmt: skip
    print("\ndevelopment photos (none in the library)")
    for a, r in m["photos"].items():
        print(f"{a:<9} n {r['n']}  exact_match false {pct(r['exact_false'])} %  match median {r['match_median']:.3f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace", type=Path)
    ap.add_argument("--trained-procedural", type=int, default=30)
    ap.add_argument("--trained-real", type=int, default=20)
    ap.add_argument("--added-procedural", type=int, default=20)
    ap.add_argument("--outside-procedural", type=int, default=20)
    ap.add_argument(
        "--others-per-category", type=int, default=1, help="non-chair shared models per category, added and outside"
    )
    ap.add_argument("--eval-views", type=int, default=10)
    ap.add_argument("--train", default="scratch,transfer")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--scratch", nargs="*", default=[], help="training overrides k=v (default: train's defaults)")
    ap.add_argument("--transfer", nargs="*", default=[], help="training overrides k=v")
    ap.add_argument("--archs", default="scratch,transfer", help="networks to index and measure (when trained)")
    ap.add_argument("--stage", choices=("all", "train", "library", "measure"), default="all")
    ap.add_argument("--photos", type=Path, default=SHARED / "photos" / "dev_viewpoints.csv")
    ap.add_argument("--json", type=Path, default=RESULTS / "open_library.json")
    ap.add_argument(
        "--kind-prior", type=float, default=None, help="the search's kind prior power (0: off; default: the product's)"
    )
    ap.add_argument(
        "--mirror-rank", type=float, default=None,
        help="the weight of the mirror image in the model ranking (0: the query alone; default: the product's)",
    )  # fmt: skip
    ap.add_argument(
        "--look-alike-margin", type=float, default=None,
        help="the look-alike check's margin (LookAlikeConfig.margin; default: the product's)",
    )  # fmt: skip
    ap.add_argument(
        "--look-alike-models", choices=("on", "off"), default=None,
        help="the look-alike models check (Searcher(look_alike_models=...); default: the product's)",
    )  # fmt: skip
    ap.add_argument(
        "--look-alikes-before-modes", action="store_true",
        help="the look-alike pose check before 2026-12-06 (category_vote.BEFORE_MODES: the estimate's look-alikes "
        "only, for sure exact matches only)",
    )  # fmt: skip
    ap.add_argument(
        "--judge", action="append", default=[], metavar="FIELD=VALUE",
        help="a LookAlikeConfig field of the appearance judge, changed (repeatable; JSON values, e.g. mode_margin=0.1)",
    )  # fmt: skip
    args = ap.parse_args()
    ws: Path = args.workspace
    ws.mkdir(parents=True, exist_ok=True)
    if args.stage in ("all", "train"):
        train_stage(ws, args)
    if args.stage == "train":
        return
    state = library_stage(ws, args)
    if args.stage == "library":
        return
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": f"{platform.machine()}, {os.cpu_count()} cores",
        "setup": {k: str(v) for k, v in vars(args).items()},
        "groups": {k: len(state[f"{k}_ids"]) for k in ("trained", "added", "outside")},
        "train": state.get("train", {}),
    }
    results["measured"] = measure(ws, state, args)
    print_tables(results)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2, default=float))
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
    main()
