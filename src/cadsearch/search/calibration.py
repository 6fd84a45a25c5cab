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
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import numpy as np

from cadsearch.errors import InputError
from cadsearch.index import DEFAULT_K_VIEWS, ViewIndex, index_dir
from cadsearch.search.matching import (
    EXACT_MATCH_THRESHOLD,
    fit_match_model,
    match_features,
    roc_auc,
)
from cadsearch.search.scoring import CalibrationRecord, fit_temperature, rank_models
from cadsearch.workspace import atomic_write_json

__all__ = [
    "CALIBRATION_QUERIES",
    "CALIBRATION_FILE",
    "CALIBRATION_VERSION",
    "MATCH_QUERIES",
    "calibrate",
    "fit_match",
    "fit_match_on_queries",
    "load_or_fit_calibration",
]

#: At most this many held-out views are asked to fit the score temperature.
CALIBRATION_QUERIES = 2000
#: At most this many of them are embedded again (on random backgrounds) to fit the match model.
MATCH_QUERIES = 600
#: Version of the stored fit; a file of another version is refitted (2: the match model was added).
CALIBRATION_VERSION = 2
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


def calibrate(index: ViewIndex, predictor: Any, workspace: Path, limit: int = CALIBRATION_QUERIES) -> dict[str, Any]:
    """Fit the score temperature on held-out views, leave-one-out (see :mod:`cadsearch.search.scoring`)."""
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
    match = fit_match(index, predictor, workspace, ids, fit["temperature"])
    if match is not None:
        fit["match"] = match
    return fit


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


def _query_images(index: ViewIndex, workspace: Path, ids: np.ndarray, seed: int = 2) -> list[np.ndarray] | None:
    """The rendered views ``ids`` composited over random backgrounds (None: the view files cannot be read)."""
    from cadsearch.render.backgrounds import RandomBackgrounds
    from cadsearch.render.job import load_view, read_view_table

    try:
        rows = {r.view_id: r for r in read_view_table(workspace)}
        source, rng = RandomBackgrounds(), np.random.default_rng(seed)
        images = []
        for vid in index.table.view_id[ids]:
            rgb, mask, _ = load_view(workspace, rows[str(vid)])
            a = mask[..., None]
            bg = source.sample(rgb.shape[0], rng)
            if bg.shape != rgb.shape:
                return None
            images.append(np.clip(np.rint(a * rgb + (1.0 - a) * bg), 0, 255).astype(np.uint8))
        return images
    except (OSError, KeyError, ValueError, InputError):
        return None


def fit_match(
    index: ViewIndex, predictor: Any, workspace: Path, ids: np.ndarray, temperature: float,
    limit: int = MATCH_QUERIES, crop: str = "auto",
) -> dict[str, Any] | None:  # fmt: skip
    """Fit the exact-match model (:mod:`cadsearch.search.matching`) by leave-models-out on held-out views ``ids``:
    at most ``limit`` of them, spread over the models, composited over random backgrounds, framed with ``crop``
    and embedded by ``predictor``, then :func:`fit_match_on_queries`. None when there are fewer than two models
    or the views cannot be read."""
    from cadsearch.framing import frame_query

    model_names, model_index = np.unique(index.table.model_id.astype(str), return_inverse=True)
    if len(model_names) < 2 or not len(ids):
        return None
    ids = _spread_over_models(ids, model_index, limit)
    images = _query_images(index, workspace, ids)
    if images is None:
        return None
    frames = [frame_query(im, crop) for im in images]
    options = {"flip_pose": False} if "flip_pose" in inspect.signature(predictor.predict).parameters else {}
    # (the mirrored copy only refines the pose head's answer; the embedding does not use it)
    queries = np.asarray(predictor.predict(images, batch_size=64, frames=frames, **options).embedding, np.float32)
    return fit_match_on_queries(index, queries, ids, temperature)


def fit_match_on_queries(
    index: ViewIndex, queries: np.ndarray, ids: np.ndarray, temperature: float
) -> dict[str, Any] | None:
    """Fit the match model on query embeddings of indexed views.

    Args:
        index: the view index.
        queries: (n, D) float32 L2-normalised embeddings of new pictures of the views ``ids`` ((n,) vector ids).
        temperature: the score temperature (ranking only; the features do not depend on it).

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
    model_names, model_index = np.unique(index.table.model_id.astype(str), return_inverse=True)
    k_views = int(index.meta.get("k_views") or DEFAULT_K_VIEWS)
    per_model = np.bincount(model_index, minlength=len(model_names))
    sims, hits = index.search(queries, min(len(index), k_views + int(per_model.max()) + 1))
    x, y, w, top_in, top_out = [], [], [], [], []
    for qid, s, h in zip(ids, sims, hits, strict=True):
        true = model_index[qid]
        for leave_model_out in (False, True):
            keep = (h >= 0) & ((model_index[np.maximum(h, 0)] != true) if leave_model_out else (h != qid))
            ss, hh = s[keep][:k_views], h[keep][:k_views]
            if not len(hh):
                continue
            ranked = rank_models(ss, hh, model_index, len(model_names), temperature)
            feats = match_features(ranked, np.sort(ss.astype(np.float64))[::-1])
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


def _identity(index: ViewIndex) -> dict[str, Any]:
    """What makes a calibration stale: another network, another build, other vectors."""
    return {"fingerprint": index.meta.get("fingerprint"), "built_at": index.meta.get("built_at"), "views": len(index)}


def load_or_fit_calibration(workspace: str | Path, arch: str, index: ViewIndex, predictor: Any) -> dict[str, Any]:
    """The index's calibration (``{"temperature", "n", "nll", "top1", "ece", "mean_confidence", "k_views"}`` and
    ``"match"``, see :func:`fit_match`, when it could be fitted): read from ``calibration.json`` when it was
    fitted for this very index by this version, else fitted now and written atomically.
    """
    path = index_dir(workspace, arch) / CALIBRATION_FILE
    identity = _identity(index)
    try:
        stored = json.loads(path.read_text())
        if stored.get("index") == identity and stored.get("version") == CALIBRATION_VERSION:
            return dict(stored["calibration"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or unreadable: fit again
    calibration = calibrate(index, predictor, Path(workspace))
    atomic_write_json(path, {"version": CALIBRATION_VERSION, "index": identity, "calibration": calibration})
    return calibration
