"""The category vote, re-measured on a variant already trained by ``benchmarks/real_photos.py`` (no training).

Searches over the same network and index, the same queries as ``real_photos.py`` (the high-confidence
development photos + mirrors; 4 fresh renders per model): ``on`` (today's default: the vote asks the query and
its mirror image, :func:`cadsearch.search.scoring.category_first`, at the index's fitted category temperature),
``crops`` (the default vote also asking 4 shifted crops of the query, ``Searcher(vote_crops=4)``), ``score_t`` (the
mirror vote at the score temperature, the default before the category temperature), ``plain`` (the
vote on the query alone, score temperature) and ``off`` (no vote); ``--votes`` picks some of them. Prints one line
per search and split, writes ``benchmarks/results/category_vote_<arch>.json``.

Usage:
    python benchmarks/category_vote.py BASE_WORKSPACE VARIANT ARCH [--votes on,crops,score_t,plain,off] [--json PATH]
        [--workspace WS]

``--workspace`` reads the network and index from WS instead of ``BASE/variants/VARIANT`` (e.g. a hard-linked copy,
so that the category fit added to an older calibration is written there).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from real_photos import SHARED, high_confidence, summarise

from cadsearch.evaluate.run import IndexAnswerer, answer_split, symmetry_orders
from cadsearch.evaluate.splits import graphics_split, photo_split
from cadsearch.library import Library
from cadsearch.search import Searcher

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workspace", type=Path, help="the base workspace of real_photos.py")
    ap.add_argument("variant")
    ap.add_argument("arch")
    ap.add_argument("--votes", default="on,score_t,plain,off")
    ap.add_argument("--json", type=Path, default=None)
    ap.add_argument("--workspace", dest="variant_ws", type=Path, default=None)
    args = ap.parse_args()
    base, arch = args.workspace, args.arch
    out = args.json or RESULTS / f"category_vote_{arch}.json"
    ws = args.variant_ws or base / "variants" / args.variant
    library = Library.open(base)
    category_of = {m.model_id: m.category for m in library.list()}
    graphics = graphics_split(base, sorted(category_of), 4, workers=1)
    photos = high_confidence(photo_split(SHARED / "photos" / "dev_viewpoints.csv", mirror=True))
    s = Searcher.from_workspace(ws, arch)

    score_t = {"vote_temperature": s.temperature}
    answerers = {
        "on": lambda: IndexAnswerer(s),
        # the same network, index and calibration, one search option changed
        "crops": lambda: IndexAnswerer(s.with_options(vote_crops=4)),
        "score_t": lambda: IndexAnswerer(s.with_options(**score_t)),
        "plain": lambda: IndexAnswerer(s.with_options(mirror_vote=False, **score_t)),
        "off": lambda: IndexAnswerer(s.with_options(category_vote=False)),
    }
    answerers = {v: answerers[v]() for v in args.votes.split(",")}
    shown = ("n", "category_top1", "azimuth_acc30_sector_balanced", "azimuth_median_deg", "top1", "pose_mean_deg")
    res: dict = {
        "workspace": str(ws),
        "arch": arch,
        "temperature": s.temperature,
        "vote_temperature": s.vote_temperature,
    }
    for split, kind, truth in ((photos, "photos", "chair"), (graphics, "graphics", None)):
        raw = answer_split(answerers, split, symmetry_orders(base), progress=False)
        res[kind] = {v: summarise(rows, kind, category_of, truth) for v, rows in raw.items()}
        for v, r in res[kind].items():
            print(f"{kind:<8} vote {v:<5}", {k: r[k] for k in shown if k in r}, flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
