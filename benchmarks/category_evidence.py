"""Which evidence should the category vote weigh? Re-measured on a trained network without training or registering.

The queries of ``real_photos.py`` (the high-confidence development photos + their mirror images, and the fresh
renders of every model in ``BASE/eval/graphics``) are embedded once under several squares — the searcher's own
(``base``), zooms ``s0.90`` … ``s1.35`` and shifts ``dx±``/``dy±`` of 6 % of the side — each with its mirror image, and
searched in the variant's index (cached in ``WS/reports/category_evidence/<arch>.npz``). Then each vote is
:func:`cadsearch.search.scoring.category_first` over some of those views at some temperature, as
:meth:`~cadsearch.search.Searcher.search` would run it (the network's answer is the searcher's own square):

- ``plain``: the query alone; ``mirror``: the query and its mirror (the searcher's default views);
- ``+ 4 shifts`` (``Searcher(vote_crops=4)``), ``+ 8 crops`` (the zooms too);
- at the score temperature ``T``, the fitted category temperature ``T_c`` (the index's calibration), or a multiple
  of ``T``;
- ``+ 4 shifts when share < b`` (the searcher's default, ``vote_crops_below``): the shifts asked only for queries
  whose mirror vote gives its winner less than ``b`` of the mass (the share of queries that asked them is reported).

Reported: photos whose top result is a chair; renders' top-1 and category top-1 (all, chairs, other categories);
and renders with their own model **left out** of the neighbours (an object of a known kind that is not in the
library): category top-1 of chairs and of other categories, the check that a vote does not just favour the
library's largest category. Prints a table, writes ``benchmarks/results/category_evidence_<name>.json``.

Usage:
    python benchmarks/category_evidence.py BASE_WORKSPACE WORKSPACE ARCH NAME
"""

from __future__ import annotations

import argparse
import io
import json
import time
from pathlib import Path

import numpy as np
import torch
from real_photos import SHARED, high_confidence

from cadsearch.evaluate.splits import GRAPHICS_DIR, Query, photo_split
from cadsearch.framing import Frame, frame_for, frame_query
from cadsearch.library import Library
from cadsearch.render.job import read_view_table
from cadsearch.search import Searcher
from cadsearch.search.scoring import category_first, category_votes, rank_models, vote_share
from cadsearch.workspace import atomic_write_bytes

RESULTS = Path(__file__).resolve().parent / "results"
#: name → (zoom, shift right, shift down), shifts as shares of the searcher's square's side.
CROPS = {
    "base": (1.0, 0.0, 0.0),
    "s0.90": (0.9, 0.0, 0.0),
    "s1.10": (1.1, 0.0, 0.0),
    "s1.20": (1.2, 0.0, 0.0),
    "s1.35": (1.35, 0.0, 0.0),
    "dx-": (1.0, -0.06, 0.0),
    "dx+": (1.0, 0.06, 0.0),
    "dy-": (1.0, 0.0, -0.06),
    "dy+": (1.0, 0.0, 0.06),
}
SHIFTS = ("dx-", "dx+", "dy-", "dy+")


def crop_of(f: Frame, zoom: float, dx: float, dy: float) -> Frame:
    cx, cy = f.centre
    side = f.side * zoom
    return Frame(cx + dx * f.side - side / 2, cy + dy * f.side - side / 2, side)


def embed_and_search(base: Path, s: Searcher, cache: Path) -> dict[str, np.ndarray]:
    """Every query × crop: embedding and mirror embedding searched in the index (k_views neighbours)."""
    if cache.is_file():
        return dict(np.load(cache))
    photos = high_confidence(photo_split(SHARED / "photos" / "dev_viewpoints.csv", mirror=True)).queries
    graphics = [
        Query(r.view_id, base / r.path, r.model_id, float(r.polar_deg), float(r.azimuth_deg) % 360.0)
        for r in read_view_table(base, GRAPHICS_DIR)
    ]
    queries = [("photos", q) for q in photos] + [("graphics", q) for q in graphics]
    names, n, d = list(CROPS), len(queries), s.index.index.d
    emb, memb = np.zeros((n, len(names), d), np.float32), np.zeros((n, len(names), d), np.float32)
    t_net = 0.0
    for i, (_, q) in enumerate(queries):
        img = q.image()
        square = frame_query(img, s.crop) or frame_for(*img.shape[:2])
        t = time.perf_counter()
        pred = s.predictor.predict([img] * len(names), batch_size=len(names),
                                   frames=[crop_of(square, *CROPS[c]) for c in names])  # fmt: skip
        t_net += time.perf_counter() - t
        emb[i], memb[i] = pred.embedding, pred.mirror_embedding
    sims, ids = s.index.search(emb.reshape(-1, d), s.k_views)
    msims, mids = s.index.search(memb.reshape(-1, d), s.k_views)
    shape = (n, len(names), s.k_views)
    out = {
        "kind": np.array([k for k, _ in queries]),
        "true_model": np.array([q.model_id or "" for _, q in queries]),
        "sims": sims.reshape(shape), "ids": ids.reshape(shape), "msims": msims.reshape(shape),
        "mids": mids.reshape(shape), "net_seconds": np.array(t_net),
    }  # fmt: skip
    cache.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **out)
    atomic_write_bytes(cache, buf.getvalue())
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base", type=Path, help="the base workspace of real_photos.py (its eval/graphics renders)")
    ap.add_argument("workspace", type=Path, help="the trained variant's workspace (network + index)")
    ap.add_argument("arch")
    ap.add_argument("name", help="names the result file")
    args = ap.parse_args()
    torch.set_num_threads(1)
    s = Searcher.from_workspace(args.workspace, args.arch, refine_top=0)
    data = embed_and_search(args.base, s, args.workspace / "reports" / "category_evidence" / f"{args.arch}.npz")
    kind, model_index, n_models = data["kind"], s._model_index, len(s.model_ids)
    category = {m.model_id: m.category for m in Library.open(args.workspace).list()}
    names = sorted({category[m] for m in s.model_ids})
    category_of = np.array([names.index(category[m]) for m in s.model_ids])
    chair = names.index("chair")
    position = {m: i for i, m in enumerate(s.model_ids)}
    true_idx = np.array([position.get(m, -1) for m in data["true_model"]])
    true_cat = np.where(true_idx >= 0, category_of[np.maximum(true_idx, 0)], chair)  # photos: all chairs
    crop = {c: j for j, c in enumerate(CROPS)}

    def ranked(i: int, c: int, mirror: bool, left_out: bool):
        sims, ids = (data["msims"], data["mids"]) if mirror else (data["sims"], data["ids"])
        ss, ii = sims[i, c], ids[i, c]
        if left_out:
            keep = model_index[np.maximum(ii, 0)] != true_idx[i]
            ss, ii = ss[keep], ii[keep]
        return rank_models(ss, ii, model_index, n_models, s.temperature)

    def top(i: int, views: list[tuple[int, bool]], temperature: float, left_out: bool = False) -> int:
        first, *others = [ranked(i, c, m, left_out) for c, m in views]
        return int(category_first(first, category_of, others, temperature)[0].model_idx[0])

    def share(i: int, views: list[tuple[int, bool]], temperature: float, left_out: bool = False) -> float:
        first, *others = [ranked(i, c, m, left_out) for c, m in views]
        return vote_share(category_votes(first, category_of, others, temperature))

    mirror = [(0, False), (0, True)]
    shifts = mirror + [(crop[c], m) for c in SHIFTS for m in (False, True)]
    crops = mirror + [(crop[c], m) for c in list(CROPS)[1:] for m in (False, True)]
    t, tc = s.temperature, s.vote_temperature
    votes = {
        "plain, T": ([(0, False)], t),
        "mirror, T": (mirror, t),
        "mirror, T_c": (mirror, tc),
        "mirror + 4 shifts, T": (shifts, t),
        "mirror + 4 shifts, T_c": (shifts, tc),
        "mirror + 8 crops, T": (crops, t),
        "mirror + 8 crops, T_c": (crops, tc),
        "mirror, 3 T": (mirror, 3 * t),
        "mirror, 4 T": (mirror, 4 * t),
    }
    # the searcher's default: the 4 shifts asked only when the mirror vote's winner holds less than this share
    unsure = {f"mirror, + 4 shifts when share < {b}, T_c": b for b in (0.6, 0.8, 0.9, 0.95)}
    photos, graphics = np.flatnonzero(kind == "photos"), np.flatnonzero(kind == "graphics")
    chairs = graphics[true_cat[graphics] == chair]
    others = graphics[true_cat[graphics] != chair]
    res: dict = {
        "workspace": str(args.workspace), "arch": args.arch, "temperature": t, "vote_temperature": tc,
        "network_seconds": float(data["net_seconds"]), "votes": {},
    }  # fmt: skip
    print(f"{args.name}: T {t:.4f}, T_c {tc:.4f} ({tc / t:.2f} T)")
    print(f"{'vote':<42} | photos chair 1st | renders top-1 cat-1 chairs-top-1 other-cat-1 | left out: "
          "chairs other")  # fmt: skip
    mirror_share = np.array([share(i, mirror, tc) for i in range(len(kind))])
    mirror_share_loo = np.ones(len(kind))
    mirror_share_loo[graphics] = [share(i, mirror, tc, left_out=True) for i in graphics]
    for label in [*votes, *unsure]:
        if label in votes:
            views, temperature = votes[label]
            tops = np.array([top(i, views, temperature) for i in range(len(kind))])
            loo = np.full(len(kind), -1)
            loo[graphics] = [top(i, views, temperature, left_out=True) for i in graphics]
            asked = np.full(len(kind), len(views) > 2)
        else:
            temperature, asked = tc, mirror_share < unsure[label]
            tops = np.array([top(i, shifts if asked[i] else mirror, tc) for i in range(len(kind))])
            loo = np.full(len(kind), -1)
            loo_asked = mirror_share_loo < unsure[label]
            loo[graphics] = [top(i, shifts if loo_asked[i] else mirror, tc, True) for i in graphics]
        cat_top, cat_loo = category_of[tops], category_of[np.maximum(loo, 0)]
        r = {
            "photos_chair_first": float(np.mean(cat_top[photos] == chair)),
            "renders_top1": float(np.mean(tops[graphics] == true_idx[graphics])),
            "renders_category_top1": float(np.mean(cat_top[graphics] == true_cat[graphics])),
            "renders_chairs_top1": float(np.mean(tops[chairs] == true_idx[chairs])),
            "renders_other_category_top1": float(np.mean(cat_top[others] == true_cat[others])),
            "left_out_chairs_category_top1": float(np.mean(cat_loo[chairs] == chair)),
            "left_out_other_category_top1": float(np.mean(cat_loo[others] == true_cat[others])),
            "temperature": temperature,
            "photos_crops_asked": float(np.mean(asked[photos])),
            "renders_crops_asked": float(np.mean(asked[graphics])),
            "photos_wrong": {},
        }
        for c in cat_top[photos][cat_top[photos] != chair]:
            r["photos_wrong"][names[c]] = r["photos_wrong"].get(names[c], 0) + 1
        res["votes"][label] = r
        print(
            f"{label:<42} | {100 * r['photos_chair_first']:15.1f}% | {100 * r['renders_top1']:12.1f}% "
            f"{100 * r['renders_category_top1']:5.1f}% {100 * r['renders_chairs_top1']:11.1f}% "
            f"{100 * r['renders_other_category_top1']:11.1f}% | {100 * r['left_out_chairs_category_top1']:15.1f}% "
            f"{100 * r['left_out_other_category_top1']:5.1f}% | crops asked: photos "
            f"{100 * r['photos_crops_asked']:.0f}%, renders {100 * r['renders_crops_asked']:.1f}%",
            flush=True,
        )
    out = RESULTS / f"category_evidence_{args.name}.json"
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
