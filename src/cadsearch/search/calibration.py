"""Calibration of a view index: the softmax temperature that makes the searcher's scores honest, and the
exact-match model that says whether the object is in the library at all (:mod:`cadsearch.search.matching`).

Fitted by minimising the negative log-likelihood of the true model on views the network did not train on (views
of models outside its classes and the validation views of its training split), leave-one-out: a view's own vector
is removed from its neighbours (see :mod:`cadsearch.search.scoring`). The fit belongs to the search layer, which
owns the scores; the index only builds vectors. It is stored beside the index as ``calibration.json``, keyed by
the index's identity (checkpoint fingerprint, build time, size), so a rebuilt index is refitted on first use,
and by :data:`CALIBRATION_VERSION`, so a file written by an older cadsearch (e.g. without the match model) is too.

The match model is fitted on up to :data:`MATCH_QUERIES` of the same held-out views, spread over as many models
as possible, each composited over a random background (as photos and evaluation renders have one, while the
indexed views are on a plain backdrop), framed like a search query and embedded by the network: positives with
their model in the index (leave-one-out), negatives with all of their model's views removed (leave-model-out).

The outline model (``"match_outline"``, :data:`~cadsearch.search.matching.OUTLINE_FEATURES`) is fitted on the first
:data:`OUTLINE_QUERIES` of those composites the same way, each candidate (the true model, its best rival, and the top
model with the true one left out) registered from its search pose (:class:`~cadsearch.register.Registrar`) against
the composite's **true render mask**, not a mask the product would find (a backdrop's or the detector's): the fit
learns what a good and a poor outline fit look like with an exact mask; the product's masks are less exact (on the
open-library renders the backdrop mask lowers the true model's median IoU from 0.93 to 0.87), so there the outline
model separates less well than on its fitting queries. Fitting it on the product's own masks instead was measured
and did no better (ROC AUC 0.795 vs 0.790 on those renders, fewer in-library queries kept at 5 % false exact
matches: BENCHMARKS.md, ``benchmarks/match_outline.py``).
"""

from __future__ import annotations

import inspect
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from cadsearch.errors import InputError
from cadsearch.index import DEFAULT_K_VIEWS, ViewIndex, index_dir
from cadsearch.search.matching import (
    EXACT_MATCH_THRESHOLD,
    OUTLINE_FEATURES,
    fit_match_model,
    match_features,
    roc_auc,
)
from cadsearch.search.pose import PoseConfig, combine_pose
from cadsearch.search.scoring import (
    CalibrationRecord,
    CategoryRecord,
    RankedModels,
    fit_category_temperature,
    fit_temperature,
    neighbour_floor,
    rank_models,
    rerank_with_mirror,
)
from cadsearch.workspace import atomic_write_json

__all__ = [
    "CALIBRATION_QUERIES",
    "CALIBRATION_FILE",
    "CALIBRATION_VERSION",
    "MATCH_QUERIES",
    "OUTLINE_QUERIES",
    "calibrate",
    "fit_category",
    "fit_match",
    "fit_match_on_queries",
    "fit_outline_on_queries",
    "load_or_fit_calibration",
]

#: At most this many held-out views are asked to fit the score temperature.
CALIBRATION_QUERIES = 2000
#: At most this many of them are embedded again (on random backgrounds) to fit the match model.
MATCH_QUERIES = 600
#: At most this many of them (the first) are also registered to fit the outline model: 3 registrations each, ~0.1 s
#: apiece. Fitted on 150, 300 or 600 of the open-library benchmark's composites (benchmarks/match_outline.py's cache,
#: true masks; 150 and 300: mean of 5 random draws) the model separated its test queries alike: ROC AUC 0.859,
#: 0.862, 0.860.
OUTLINE_QUERIES = 150
#: Version of the stored fit; a file of another version is refitted (2: the match model was added; 3: the outline
#: model; 4: the mirror image ranks the models, search.scoring.rerank_with_mirror).
CALIBRATION_VERSION = 4
#: Weight of a "second-best model while the right one is in the library" negative, relative to a positive and a
#: leave-model-out negative (weight 1 each): they teach low match for lower ranks without swamping the top-1 case.
SECONDARY_WEIGHT = 0.25
#: The fit's file inside ``<workspace>/index/<arch>/``.
CALIBRATION_FILE = "calibration.json"


def _calibration_ids(index: ViewIndex, predictor: Any, workspace: Path, limit: int) -> np.ndarray:
    """Vector ids of views the network did not train on: views of models outside its classes, and the
    validation views of its training split; all views when those are too few (e.g. a network without a split)."""
    trained = set(getattr(predictor, "model_ids", []) or [])
    untrained = ~np.isin(index.table.model_id.astype(str), list(trained)) if trained else np.zeros(len(index), bool)
    val: set[str] = set()
    cfg = getattr(predictor, "config", None) or {}
    if cfg:
        try:
            from cadsearch.models.data import make_splits

            splits = make_splits(
                workspace, cfg.get("holdout_models", 3), cfg.get("val_fraction", 0.1), cfg.get("seed", 0)
            )
            val = {r.view_id for r in splits.val_views}
        except Exception:  # the split cannot be remade (views changed): fall back to untrained models only
            val = set()
    held_out = untrained | np.isin(index.table.view_id.astype(str), list(val))
    ids = np.flatnonzero(held_out) if held_out.sum() >= 50 else np.arange(len(index))
    if len(ids) > limit:
        ids = np.sort(np.random.default_rng(0).choice(ids, limit, replace=False))
    return ids


def calibrate(
    index: ViewIndex,
    predictor: Any,
    workspace: Path,
    limit: int = CALIBRATION_QUERIES,
    outline_limit: int = OUTLINE_QUERIES,
) -> dict[str, Any]:
    """Fit the score temperature on held-out views, leave-one-out (see :mod:`cadsearch.search.scoring`), the
    category vote's temperature and the match models (:func:`fit_match`, its outline model on at most
    ``outline_limit`` queries)."""
    if len(index) < 2:
        return fit_temperature([]) | {"k_views": DEFAULT_K_VIEWS}
    ids = _calibration_ids(index, predictor, workspace, limit)
    model_names, model_index = np.unique(index.table.model_id.astype(str), return_inverse=True)
    k = min(DEFAULT_K_VIEWS + 1, len(index))
    sims, hits = index.search(index.vectors[ids], k)
    records = []
    for qid, s, h in zip(ids, sims, hits, strict=True):
        keep = (h != qid) & (h >= 0)  # leave one out: the view itself is not evidence
        s, h = s[keep][: k - 1], h[keep][: k - 1]
        if not len(h):
            continue
        found, first = np.unique(model_index[h], return_index=True)
        best = s[first]
        true = model_index[qid]
        pos = np.flatnonzero(found == true)
        records.append(
            CalibrationRecord(best, int(pos[0]) if len(pos) else -1, float(s.min()), len(model_names) - len(found))
        )
    fit = fit_temperature(records) | {"k_views": DEFAULT_K_VIEWS}
    fit["category"] = fit_category(index, workspace, ids)
    match = fit_match(index, predictor, workspace, ids, fit["temperature"], outline_limit=outline_limit)
    if match is not None:
        fit["match"] = match
    return fit


def fit_category(index: ViewIndex, workspace: Path, ids: np.ndarray) -> dict[str, float] | None:
    """The category vote's temperature (:func:`~cadsearch.search.scoring.fit_category_temperature`), fitted on the
    held-out views ``ids`` with all of their model's views left out of their neighbours; index vectors only (no
    network), about a second for 2000 views. None when the library has fewer than two categories (or none known).

    Measured on the 166-model library of ``benchmarks/real_photos.py`` (11 categories): 2.1–2.6 × the score
    temperature for the transfer networks, 2.9 × for the scratch one (BENCHMARKS.md, "A softer category vote").
    """
    from cadsearch.library import Library

    try:
        category = {m.model_id: m.category for m in Library.open(workspace).list()}
    except Exception:  # no readable catalog: nothing to vote with
        return None
    model_names, model_index = np.unique(index.table.model_id.astype(str), return_inverse=True)
    names = sorted({category[m] for m in model_names if m in category})
    if len(names) < 2 or not len(ids):
        return None
    category_of = np.array([names.index(category[m]) if m in category else -1 for m in model_names], np.int64)
    k_views = int(index.meta.get("k_views") or DEFAULT_K_VIEWS)
    per_model = np.bincount(model_index, minlength=len(model_names))
    sims, hits = index.search(index.vectors[ids], min(len(index), k_views + int(per_model.max()) + 1))
    records = []
    for qid, s, h in zip(ids, sims, hits, strict=True):
        true = int(model_index[qid])
        if category_of[true] < 0:
            continue
        keep = (h >= 0) & (model_index[np.maximum(h, 0)] != true)  # leave the whole model out
        s, h = s[keep][:k_views], h[keep][:k_views]
        found, first = np.unique(model_index[h], return_index=True)
        known = category_of[found] >= 0
        if known.any():
            records.append(CategoryRecord(s[first][known].astype(np.float64), category_of[found][known],
                                          int(category_of[true])))  # fmt: skip
    return fit_category_temperature(records)


def _spread_over_models(ids: np.ndarray, model_index: np.ndarray, limit: int, seed: int = 1) -> np.ndarray:
    """At most ``limit`` of ``ids``, taking one view of every model before a second of any (random order)."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(ids)
    models = model_index[ids]
    turn = np.zeros(len(ids), np.int64)
    seen: dict[int, int] = {}
    for i, m in enumerate(models.tolist()):
        turn[i] = seen.get(m, 0)
        seen[m] = turn[i] + 1
    return np.sort(ids[np.argsort(turn, kind="stable")][:limit])


def _query_images(
    index: ViewIndex, workspace: Path, ids: np.ndarray, seed: int = 2
) -> tuple[list[np.ndarray], list[np.ndarray]] | None:
    """The rendered views ``ids`` composited over random backgrounds, and their (H, W) float32 coverage masks
    (None: the view files cannot be read)."""
    from cadsearch.render.backgrounds import RandomBackgrounds
    from cadsearch.render.job import load_view, read_view_table

    try:
        rows = {r.view_id: r for r in read_view_table(workspace)}
        source, rng = RandomBackgrounds(), np.random.default_rng(seed)
        images, masks = [], []
        for vid in index.table.view_id[ids]:
            rgb, mask, _ = load_view(workspace, rows[str(vid)])
            a = mask[..., None]
            bg = source.sample(rgb.shape[0], rng)
            if bg.shape != rgb.shape:
                return None
            images.append(np.clip(np.rint(a * rgb + (1.0 - a) * bg), 0, 255).astype(np.uint8))
            masks.append(mask)
        return images, masks
    except (OSError, KeyError, ValueError, InputError):
        return None


def fit_match(
    index: ViewIndex, predictor: Any, workspace: Path, ids: np.ndarray, temperature: float,
    limit: int = MATCH_QUERIES, crop: str = "auto", outline_limit: int = OUTLINE_QUERIES,
) -> dict[str, Any] | None:  # fmt: skip
    """Fit the exact-match model (:mod:`cadsearch.search.matching`) by leave-models-out on held-out views ``ids``:
    at most ``limit`` of them, spread over the models, composited over random backgrounds, framed with ``crop``
    and embedded by ``predictor``, then :func:`fit_match_on_queries`; and on the first ``outline_limit`` of them
    the outline model (:func:`fit_outline_on_queries`, registered against their true render masks; stored under
    ``"outline"``, absent when the library's meshes cannot be registered). None when there are fewer than two
    models or the views cannot be read."""
    from cadsearch.framing import frame_query

    model_names, model_index = np.unique(index.table.model_id.astype(str), return_inverse=True)
    if len(model_names) < 2 or not len(ids):
        return None
    ids = _spread_over_models(ids, model_index, limit)
    composites = _query_images(index, workspace, ids)
    if composites is None:
        return None
    images, masks = composites
    frames = [frame_query(im, crop) for im in images]
    # the mirror images too, as the searcher runs them: they rank the models (search.scoring.rerank_with_mirror)
    options = {"flip_pose": True} if "flip_pose" in inspect.signature(predictor.predict).parameters else {}
    pred = predictor.predict(images, batch_size=64, frames=frames, **options)
    queries = np.asarray(pred.embedding, np.float32)
    mirror = getattr(pred, "mirror_embedding", None)
    mirrors = None if mirror is None else np.asarray(mirror, np.float32)
    fit = fit_match_on_queries(index, queries, ids, temperature, mirrors)
    if fit is None or outline_limit <= 0:
        return fit
    n = min(outline_limit, len(ids))
    heads = np.stack([np.asarray(pred.polar_deg, np.float64), np.asarray(pred.azimuth_deg, np.float64)], 1)[:n]
    t0 = time.perf_counter()
    with _TrueMaskRegistrar(workspace, images[:n], masks[:n], frames[:n]) as register:
        outline = fit_outline_on_queries(index, queries[:n], ids[:n], temperature, heads, register,
                                         mirrors=None if mirrors is None else mirrors[:n])  # fmt: skip
    if outline is not None:
        fit["outline"] = outline | {"seconds": time.perf_counter() - t0, "mask": "true render mask"}
    return fit


class _TrueMaskRegistrar:
    """``register(q, model_id, polar, azimuth) -> IoU | None``: registers a library model against the true mask of
    composite ``q`` over the square the network saw (as the searcher registers against the object mask)."""

    def __init__(self, workspace: Path, images: list[np.ndarray], masks: list[np.ndarray], frames: list) -> None:
        from cadsearch.library import Library
        from cadsearch.register import Registrar

        self.images, self.masks, self.frames = images, masks, frames
        self.registrar = Registrar(Library.open(workspace))
        self._targets: dict[int, tuple[np.ndarray, Any]] = {}

    def __enter__(self) -> _TrueMaskRegistrar:
        return self

    def __exit__(self, *exc: object) -> None:
        self.registrar.close()

    def __call__(self, q: int, model_id: str, polar: float, azimuth: float) -> float | None:
        from cadsearch.detect.masks import frame_mask
        from cadsearch.framing import frame_for

        if q not in self._targets:
            frame = self.frames[q] if self.frames[q] is not None else frame_for(*self.images[q].shape[:2])
            self._targets = {q: (frame_mask(self.masks[q], 256, frame), frame)}  # one query at a time
        target, frame = self._targets[q]
        reg = self.registrar.refine(model_id, target, frame, polar, azimuth)
        return None if reg is None else float(reg.iou)


def _leave_models_out(
    index: ViewIndex, queries: np.ndarray, ids: np.ndarray, temperature: float, mirrors: np.ndarray | None = None
) -> Iterator[tuple[int, int, bool, RankedModels, np.ndarray, np.ndarray, np.ndarray]]:
    """Each query searched with its own view left out (``leave_model_out`` False) and with every view of its model
    left out (True), through :func:`~cadsearch.search.scoring.rank_models` (and, with ``mirrors``, the (n, D)
    embeddings of the queries' mirror images, :func:`~cadsearch.search.scoring.rerank_with_mirror`, as the
    searcher ranks): yields ``(query position, true model index, leave_model_out, ranked, features (m, 4),
    neighbour sims, neighbour ids)`` (neighbours best first)."""
    model_names, model_index = np.unique(index.table.model_id.astype(str), return_inverse=True)
    k_views = int(index.meta.get("k_views") or DEFAULT_K_VIEWS)
    per_model = np.bincount(model_index, minlength=len(model_names))
    k = min(len(index), k_views + int(per_model.max()) + 1)
    sims, hits = index.search(queries, k)
    m_sims, m_hits = index.search(mirrors, k) if mirrors is not None else (None, None)

    def ranked_without(s: np.ndarray, h: np.ndarray, true: int, qid: int, leave_model_out: bool):
        keep = (h >= 0) & ((model_index[np.maximum(h, 0)] != true) if leave_model_out else (h != qid))
        ss, hh = s[keep][:k_views], h[keep][:k_views]
        order = np.argsort(-ss, kind="stable")
        ss, hh = ss[order].astype(np.float64), hh[order]
        return rank_models(ss, hh, model_index, len(model_names), temperature), ss, hh

    for q, (qid, s, h) in enumerate(zip(ids, sims, hits, strict=True)):
        true = int(model_index[qid])
        for leave_model_out in (False, True):
            ranked, ss, hh = ranked_without(s, h, true, qid, leave_model_out)
            if not len(hh):
                continue
            if m_sims is not None:
                # the mirror image of a picture of view qid: that view is no more evidence for it than for the query
                mirrored, ms, mh = ranked_without(m_sims[q], m_hits[q], true, qid, leave_model_out)
                ranked = rerank_with_mirror(ranked, neighbour_floor(ss, hh), mirrored, neighbour_floor(ms, mh),
                                            len(model_names), temperature)  # fmt: skip
            yield q, true, leave_model_out, ranked, match_features(ranked, ss), ss, hh


def fit_match_on_queries(
    index: ViewIndex, queries: np.ndarray, ids: np.ndarray, temperature: float, mirrors: np.ndarray | None = None
) -> dict[str, Any] | None:
    """Fit the match model on query embeddings of indexed views.

    Args:
        index: the view index.
        queries: (n, D) float32 L2-normalised embeddings of new pictures of the views ``ids`` ((n,) vector ids).
        temperature: the score temperature (ranking only; the features do not depend on it).
        mirrors: (n, D) float32 embeddings of the queries' mirror images, or None: the ranking then uses the query
            alone (a searcher with ``mirror_rank=0``).

    Each query is searched with its own view left out (its model is in the library: the model's features are a
    positive, the best other model's a :data:`SECONDARY_WEIGHT` negative) and with every view of its model left
    out (not in the library: the top model's features are a negative), through the searcher's own
    :func:`~cadsearch.search.scoring.rank_models` and :func:`~cadsearch.search.matching.match_features`.

    Returns:
        the model's :meth:`~cadsearch.search.matching.MatchModel.to_dict` plus how well it separates the fitting
        queries (in-sample): ``n_queries``, ``n_models``, ``auc`` of the top result's match with the model in vs
        out of the index, and the share called exact in each case (``exact_in``, ``exact_out``); None when one
        of the two kinds is missing.
    """
    model_index = np.unique(index.table.model_id.astype(str), return_inverse=True)[1]
    x, y, w, top_in, top_out = [], [], [], [], []
    for _, true, leave_model_out, ranked, feats, _, _ in _leave_models_out(index, queries, ids, temperature, mirrors):
        if leave_model_out:
            x.append(feats[0]), y.append(0.0), w.append(1.0)
            top_out.append(len(x) - 1)
            continue
        pos = np.flatnonzero(ranked.model_idx == true)
        if len(pos):
            x.append(feats[pos[0]]), y.append(1.0), w.append(1.0)
        rivals = np.flatnonzero(ranked.model_idx != true)
        if len(rivals):
            x.append(feats[rivals[0]]), y.append(0.0), w.append(SECONDARY_WEIGHT)
        top_in.append(feats[0])
    if not any(y) or all(y) or not top_in or not top_out:
        return None
    model = fit_match_model(np.array(x), np.array(y), np.array(w))
    m_in = model.predict(np.array(top_in))
    m_out = model.predict(np.array(x)[top_out])
    return model.to_dict() | {
        "n_queries": len(ids),
        "n_models": int(len(np.unique(model_index[ids]))),
        "auc": roc_auc(np.concatenate([m_in, m_out]), np.r_[np.ones(len(m_in)), np.zeros(len(m_out))]),
        "exact_in": float(np.mean(m_in >= EXACT_MATCH_THRESHOLD)),
        "exact_out": float(np.mean(m_out >= EXACT_MATCH_THRESHOLD)),
    }


def fit_outline_on_queries(
    index: ViewIndex, queries: np.ndarray, ids: np.ndarray, temperature: float, heads: np.ndarray,
    register: Callable[[int, str, float, float], float | None], pose: PoseConfig = PoseConfig(),
    mirrors: np.ndarray | None = None,
) -> dict[str, Any] | None:  # fmt: skip
    """Fit the outline model (:data:`~cadsearch.search.matching.OUTLINE_FEATURES`) by leave-models-out, as
    :func:`fit_match_on_queries`, with each candidate registered.

    Args:
        index, queries, ids, temperature, mirrors: as :func:`fit_match_on_queries`.
        heads: (n, 2) the pose head's (polar, azimuth) per query, degrees: with the candidate's retrieved views
            they give its search pose (:func:`~cadsearch.search.pose.combine_pose`, as the searcher), the
            registration's start.
        register: ``(query position, model_id, polar, azimuth) -> silhouette IoU`` (None: not registered; the
            candidate is left out of the fit).
        pose: the searcher's pose settings.

    Rows: the true model with its own view left out (a positive), the best other model (a
    :data:`SECONDARY_WEIGHT` negative), and the top model with the true one left out (a negative): three
    registrations per query.

    Returns:
        :meth:`~cadsearch.search.matching.MatchModel.to_dict` of the outline model plus ``n_queries``, ``auc``,
        ``exact_in``, ``exact_out`` of the top result in vs out of the index (in-sample, as
        :func:`fit_match_on_queries`); None when one kind is missing.
    """
    model_names = np.unique(index.table.model_id.astype(str))
    table = index.table
    x, y, w, top_in, top_out = [], [], [], [], []

    def outline(q: int, ranked: RankedModels, j: int, feats: np.ndarray, ss: np.ndarray, hh: np.ndarray):
        views = ranked.views[j]
        vid = hh[views]
        polar, azimuth = combine_pose(
            table.polar_deg[vid], table.azimuth_deg[vid], ss[views], (float(heads[q, 0]), float(heads[q, 1])), pose
        )
        iou = register(q, str(model_names[int(ranked.model_idx[j])]), polar, azimuth)
        return None if iou is None else np.r_[feats[j], iou]

    from tqdm import tqdm

    # ~3 registrations per query, ~0.1 s each: minutes on a big library (a bar on a terminal only)
    searches = _leave_models_out(index, queries, ids, temperature, mirrors)
    for q, true, leave_model_out, ranked, feats, ss, hh in tqdm(
        searches, total=2 * len(ids), desc="fitting the outline match", unit="search", disable=None, leave=False
    ):
        if leave_model_out:
            row = outline(q, ranked, 0, feats, ss, hh)
            if row is not None:
                x.append(row), y.append(0.0), w.append(1.0)
                top_out.append(row)
            continue
        pos = np.flatnonzero(ranked.model_idx == true)
        rivals = np.flatnonzero(ranked.model_idx != true)
        for j, label, weight in ((pos[:1], 1.0, 1.0), (rivals[:1], 0.0, SECONDARY_WEIGHT)):
            row = outline(q, ranked, int(j[0]), feats, ss, hh) if len(j) else None
            if row is None:
                continue
            x.append(row), y.append(label), w.append(weight)
            if j[0] == 0:
                top_in.append(row)
    if not any(y) or all(y) or not top_in or not top_out:
        return None
    model = fit_match_model(np.array(x), np.array(y), np.array(w), features=OUTLINE_FEATURES)
    m_in, m_out = model.predict(np.array(top_in)), model.predict(np.array(top_out))
    return model.to_dict() | {
        "n_queries": len(ids),
        "auc": roc_auc(np.concatenate([m_in, m_out]), np.r_[np.ones(len(m_in)), np.zeros(len(m_out))]),
        "exact_in": float(np.mean(m_in >= EXACT_MATCH_THRESHOLD)),
        "exact_out": float(np.mean(m_out >= EXACT_MATCH_THRESHOLD)),
    }


def _identity(index: ViewIndex) -> dict[str, Any]:
    """What makes a calibration stale: another network, another build, other vectors."""
    return {"fingerprint": index.meta.get("fingerprint"), "built_at": index.meta.get("built_at"), "views": len(index)}


def load_or_fit_calibration(
    workspace: str | Path, arch: str, index: ViewIndex, predictor: Any, outline_limit: int = OUTLINE_QUERIES
) -> dict[str, Any]:
    """The index's calibration (``{"temperature", "n", "nll", "top1", "ece", "mean_confidence", "k_views"}``,
    ``"category"`` (the vote's temperature, :func:`fit_category`, or None) and ``"match"``, with its ``"outline"``
    model, see :func:`fit_match`, when they could be fitted): read from ``calibration.json`` when it was fitted for
    this very index by this version (a file without ``"category"`` gets it added), else fitted now and written
    atomically. ``outline_limit`` only bounds a new fit (the demo's quick one; ``match.outline.n_queries`` says how
    many a stored fit used): registering its queries is most of a fit's time, about 0.5 s each on 2 busy cores.
    """
    path = index_dir(workspace, arch) / CALIBRATION_FILE
    identity = _identity(index)
    try:
        stored = json.loads(path.read_text())
        if stored.get("index") == identity and stored.get("version") == CALIBRATION_VERSION:
            calibration = dict(stored["calibration"])
            if "category" not in calibration:  # fitted before the category temperature: add it (index only, cheap)
                ids = _calibration_ids(index, predictor, Path(workspace), CALIBRATION_QUERIES)
                calibration["category"] = fit_category(index, Path(workspace), ids)
                stored["calibration"] = calibration
                atomic_write_json(path, stored)
            return calibration
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or unreadable: fit again
    calibration = calibrate(index, predictor, Path(workspace), outline_limit=outline_limit)
    atomic_write_json(path, {"version": CALIBRATION_VERSION, "index": identity, "calibration": calibration})
    return calibration
