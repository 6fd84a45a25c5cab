"""Score calibration of a view index: the softmax temperature that makes the searcher's scores honest.

Fitted by minimising the negative log-likelihood of the true model on views the network did not train on (views
of models outside its classes and the validation views of its training split), leave-one-out: a view's own vector
is removed from its neighbours (see :mod:`cadsearch.search.scoring`). The fit belongs to the search layer, which
owns the scores; the index only builds vectors. It is stored beside the index as ``calibration.json``, keyed by
the index's identity (checkpoint fingerprint, build time, size), so a rebuilt index is refitted on first use.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from cadsearch.index import DEFAULT_K_VIEWS, ViewIndex, index_dir
from cadsearch.search.scoring import CalibrationRecord, fit_temperature
from cadsearch.workspace import atomic_write_json

__all__ = ["CALIBRATION_QUERIES", "CALIBRATION_FILE", "calibrate", "load_or_fit_calibration"]

#: At most this many held-out views are asked to fit the score temperature.
CALIBRATION_QUERIES = 2000
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
    return fit_temperature(records) | {"k_views": DEFAULT_K_VIEWS}


def _identity(index: ViewIndex) -> dict[str, Any]:
    """What makes a calibration stale: another network, another build, other vectors."""
    return {"fingerprint": index.meta.get("fingerprint"), "built_at": index.meta.get("built_at"), "views": len(index)}


def load_or_fit_calibration(workspace: str | Path, arch: str, index: ViewIndex, predictor: Any) -> dict[str, Any]:
    """The index's calibration (``{"temperature", "n", "nll", "top1", "ece", "mean_confidence", "k_views"}``):
    read from ``calibration.json`` when it was fitted for this very index, else fitted now and written atomically.
    """
    path = index_dir(workspace, arch) / CALIBRATION_FILE
    identity = _identity(index)
    try:
        stored = json.loads(path.read_text())
        if stored.get("index") == identity:
            return dict(stored["calibration"])
    except (OSError, ValueError, KeyError, TypeError):
        pass  # none yet, or unreadable: fit again
    calibration = calibrate(index, predictor, Path(workspace))
    atomic_write_json(path, {"index": identity, "calibration": calibration})
    return calibration
