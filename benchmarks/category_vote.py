"""The category vote, re-measured on a variant already trained by ``benchmarks/real_photos.py`` (no training).

Searches over the same network and index, the same queries as ``real_photos.py`` (the high-confidence
development photos + mirrors; 4 fresh renders per model): ``on`` (today's default: the vote asks the query and
its mirror image, :func:`cadsearch.search.scoring.category_first`, at the index's fitted category temperature, and
4 shifted crops of the query too when that vote is unsure, ``Searcher(vote_crops_below=...)``), ``mirror`` (the
query and its mirror only, ``vote_crops=0``: the default before), ``crops`` (the crops always,
``vote_crops_below=1``), ``no_kinds`` (the default vote without the ImageNet kind prior,
:mod:`cadsearch.search.kinds`), ``no_mirror_rank`` (the default search with the models ranked by the query alone,
not with its mirror image too: ``mirror_rank=0``, :func:`cadsearch.search.scoring.rerank_with_mirror`),
``look_alikes_at_exact`` (the default search with the look-alike check asked at the exact-match threshold, 0.5, the
gate before ``Searcher.look_alike_min_match``), ``look_alikes_old_margin`` (the default search with the look-alike
check's margin before 2026-12-05, 0.01 instead of :attr:`~cadsearch.register.appearance.LookAlikeConfig.margin`),
``no_look_alike_models`` (the default search without the look-alike *models* check:
``Searcher(look_alike_models=False)``), ``look_alikes_before_modes`` (the look-alike pose check before 2026-12-06: the
estimate's look-alikes only, taken for a sure exact match only, and the look-alike models compared at their
estimates: :data:`BEFORE_MODES`), ``look_alike_models_at_estimate`` (today's pose check, but the look-alike models
compared at their estimates, not at the poses their own pose checks find best), ``auto_crop`` (the default search
with the automatic crop where a trained detector would make it ``detect``; the detector's masks still feed
registration), ``score_t`` (the mirror vote
at the score temperature), ``plain`` (the vote on the query alone, score temperature) and ``off`` (no vote);
``--votes`` picks some of them. Prints one line per
search and split, with the share of queries whose vote asked the crops and the p50 time per query, and writes
``benchmarks/results/category_vote_<arch>.json``.

Usage:
    python benchmarks/category_vote.py BASE_WORKSPACE VARIANT ARCH
        [--votes on,no_kinds,no_mirror_rank,look_alikes_at_exact,look_alikes_old_margin,no_look_alike_models,
         look_alikes_before_modes,look_alike_models_at_estimate,auto_crop,mirror,crops,score_t,plain,off]
        [--json PATH] [--workspace WS]

``--workspace`` reads the network and index from WS instead of ``BASE/variants/VARIANT`` (e.g. a hard-linked copy,
so that the category fit added to an older calibration is written there).
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from real_photos import SHARED, high_confidence, summarise

from cadsearch.evaluate.run import IndexAnswerer, answer_split, symmetry_orders
from cadsearch.evaluate.splits import graphics_split, photo_split
from cadsearch.library import Library
from cadsearch.register.appearance import AppearanceJudge
from cadsearch.search import Searcher
from cadsearch.search.matching import EXACT_MATCH_THRESHOLD

RESULTS = Path(__file__).resolve().parent / "results"


class RecordingAnswerer(IndexAnswerer):
    """:class:`IndexAnswerer` that records each search's wall time (ms) and whether its vote asked the crops."""

    def __init__(self, searcher: Searcher) -> None:
        super().__init__(searcher)
        self.ms: list[float] = []
        self.asked: list[bool] = []
        search = searcher.search

        def recorded(image, *args, **kwargs):
            t = time.perf_counter()
            result = search(image, *args, **kwargs)
            self.ms.append(1000 * (time.perf_counter() - t))
            self.asked.append("vote_crops" in result.timing_ms)
            return result

        self.searcher = copy.copy(searcher)
        self.searcher.search = recorded


#: The look-alike check's margin before 2026-12-05 (``look_alikes_old_margin``).
OLD_LOOK_ALIKE_MARGIN = 0.01


def with_judge(searcher: Searcher, **changes: Any) -> Searcher:
    """The same search with the appearance judge's :class:`~cadsearch.register.appearance.LookAlikeConfig` changed
    (its own registrar and judge; the judge's other settings and ONNX export kept)."""
    variant = searcher.with_options()
    judge = variant.registrar.judge
    variant.registrar.judge = AppearanceJudge(replace(judge.config, **changes), judge.onnx_path)
    return variant


def with_look_alike_margin(searcher: Searcher, margin: float) -> Searcher:
    """The same search with the look-alike check's margin set to ``margin``."""
    return with_judge(searcher, margin=margin)


#: The look-alike checks before 2026-12-06 (``look_alikes_before_modes``): the pose check judges the estimate's
#: look-alikes only (no pose-head modes) and is taken only for a sure exact match (no agreement gate); the look-alike
#: models check compares the models at their estimates.
BEFORE_MODES = {"pose_modes": 0, "sure_agreement": float("inf"), "rank_at_best_pose": False}


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
        "on": lambda: RecordingAnswerer(s),
        # the same network, index and calibration, one search option changed
        "mirror": lambda: RecordingAnswerer(s.with_options(vote_crops=0)),
        "crops": lambda: RecordingAnswerer(s.with_options(vote_crops=4, vote_crops_below=1.0)),
        "score_t": lambda: RecordingAnswerer(s.with_options(vote_crops=0, **score_t)),
        "plain": lambda: RecordingAnswerer(s.with_options(mirror_vote=False, vote_crops=0, **score_t)),
        "off": lambda: RecordingAnswerer(s.with_options(category_vote=False)),
        "no_kinds": lambda: RecordingAnswerer(s.with_options(kind_prior=0)),  # the vote without the kind prior
        "no_mirror_rank": lambda: RecordingAnswerer(s.with_options(mirror_rank=0)),  # models ranked by the query alone
        "look_alikes_at_exact": lambda: RecordingAnswerer(s.with_options(look_alike_min_match=EXACT_MATCH_THRESHOLD)),
        "look_alikes_old_margin": lambda: RecordingAnswerer(with_look_alike_margin(s, OLD_LOOK_ALIKE_MARGIN)),
        "no_look_alike_models": lambda: RecordingAnswerer(s.with_options(look_alike_models=False)),
        "look_alikes_before_modes": lambda: RecordingAnswerer(with_judge(s, **BEFORE_MODES)),
        "look_alike_models_at_estimate": lambda: RecordingAnswerer(with_judge(s, rank_at_best_pose=False)),
        "auto_crop": lambda: RecordingAnswerer(s.with_options(crop="auto")),
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
        for a in answerers.values():
            a.ms.clear()
            a.asked.clear()
        raw = answer_split(answerers, split, symmetry_orders(base), progress=False, categories=category_of)
        res[kind] = {v: summarise(rows, kind, category_of, truth) for v, rows in raw.items()}
        for v, r in res[kind].items():
            r["crops_asked"] = float(np.mean(answerers[v].asked)) if answerers[v].asked else 0.0
            r["ms_p50"] = float(np.median(answerers[v].ms)) if answerers[v].ms else None
            print(f"{kind:<8} vote {v:<6}", {k: r[k] for k in (*shown, "crops_asked", "ms_p50") if k in r}, flush=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
