"""Exact-match probability: is the object in the photo *this* library model, or only something like it?

The ranking score (:mod:`cadsearch.search.scoring`) is a softmax over the library's models: it says which model
is most likely *given that the object is one of them*, so a photo of a chair that is not in the library still gets
a confident top score. ``match`` answers the other question: the probability that the object is that very model.
It is a logistic model on features of the query's nearest views, per result model ``j``:

- ``best_cos``: the cosine of ``j``'s best view (an exact match has a view at a nearby camera that looks the same);
- ``margin``: ``best_cos`` minus the best other model's (an exact match stands out from its look-alikes);
- ``above_floor``: ``best_cos`` minus the ``k``-th nearest view's cosine (the same, relative to the query's own
  neighbourhood, so a query whose similarities are all low or all high is judged on its own terms);
- ``top_share``: the share of the :data:`TOP_VIEWS` nearest views that belong to ``j`` (an exact match owns the
  views around the query's camera; a look-alike shares them with other look-alikes).

The model is fitted per index (:mod:`cadsearch.search.calibration`) on held-out queries by *leave-models-out*:
each query, a view of a library model composited on a random background, is searched twice, once as is (its
model is in the library: a positive) and once with all views of its model removed from the neighbours (the same
picture of a model that is not in the library: the closest other model is a negative). No extra models are
needed, and the features are computed by the very function the searcher uses (:func:`match_features`).

**The outline fit.** When the searcher has registered a result (:mod:`cadsearch.register`: the model's silhouette
refined onto the photo's object mask), a second logistic model, over :data:`OUTLINE_FEATURES` (the four above plus
``outline_iou``, the registered silhouette's IoU with the object mask), gives that result's ``match``: a look-alike
chair of the same family is as close in the embedding as the true one, but its outline fits the object worse.
Measured on the open-library renders (BENCHMARKS.md, transfer network), ROC AUC of in- vs not-in-library queries:
0.751 → 0.860 when every query is registered against its exact mask (``benchmarks/match_outline.py``), but only
0.751 → 0.784 as the product runs (``benchmarks/open_library.py``; 0.769 with another fit): a backdrop mask on plain
and gradient backgrounds, less exact, and none on textured ones, whose results keep the first model. It is fitted
beside the first (:mod:`cadsearch.search.calibration`) on the held-out views registered against their true render
masks; unregistered results keep the first model.

``exact_match`` of a query is ``match`` of its top result ≥ :data:`EXACT_MATCH_THRESHOLD`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cadsearch.search.scoring import RankedModels

__all__ = [
    "EXACT_MATCH_THRESHOLD",
    "MATCH_FEATURES",
    "OUTLINE_FEATURES",
    "TOP_VIEWS",
    "MatchModel",
    "DEFAULT_MATCH_MODEL",
    "match_features",
    "fit_match_model",
    "roc_auc",
]

#: A query is an exact match when its top result's ``match`` is at least this. The model is fitted with in- and
#: not-in-library queries weighted equally, so 0.5 is where both kinds of mistake are equally likely on renders.
EXACT_MATCH_THRESHOLD = 0.5
#: Names of the features, in the order of :func:`match_features`' columns.
MATCH_FEATURES = ("best_cos", "margin", "above_floor", "top_share")
#: Features of the outline model: :data:`MATCH_FEATURES` and the registered silhouette IoU in [0, 1].
OUTLINE_FEATURES = (*MATCH_FEATURES, "outline_iou")
#: ``top_share`` counts this many nearest views.
TOP_VIEWS = 10


def match_features(ranked: RankedModels, sorted_sims: np.ndarray, n_models: int | None = None) -> np.ndarray:
    """Features of each ranked model for one query.

    Args:
        ranked: :func:`cadsearch.search.scoring.rank_models`' answer, in any model order (the category vote
            reorders it); ``views`` = positions in the query's neighbour list sorted by decreasing cosine.
        sorted_sims: (k,) cosines of the query's valid neighbours, decreasing (the list ``views`` indexes).
        n_models: how many leading models to describe (default all found).

    Returns:
        (m, 4) float64, columns :data:`MATCH_FEATURES`.
    """
    m = len(ranked.model_idx) if n_models is None else min(n_models, len(ranked.model_idx))
    out = np.zeros((m, len(MATCH_FEATURES)), np.float64)
    if m == 0:
        return out
    best = np.asarray(ranked.best_sim, np.float64)
    floor = float(sorted_sims[-1]) if len(sorted_sims) else 0.0
    top = min(TOP_VIEWS, len(sorted_sims))
    # Every model's best rival is the nearest model, except the nearest model's own (the second nearest).
    nearest = np.argsort(-best, kind="stable")[:2]
    rival = np.full(m, best[nearest[0]])
    if nearest[0] < m:
        rival[nearest[0]] = best[nearest[1]] if len(best) > 1 else floor
    out[:, 0] = best[:m]
    out[:, 1] = best[:m] - rival
    out[:, 2] = best[:m] - floor
    out[:, 3] = [np.count_nonzero(ranked.views[j] < top) / max(top, 1) for j in range(m)]
    return out


@dataclass(frozen=True)
class MatchModel:
    """Logistic model ``match = σ(w · (x − mean) / std + b)`` over ``features`` (:data:`MATCH_FEATURES`, or
    :data:`OUTLINE_FEATURES` for the outline model)."""

    weights: tuple[float, ...]
    bias: float
    mean: tuple[float, ...]
    std: tuple[float, ...]
    features: tuple[str, ...] = MATCH_FEATURES

    def predict(self, features: np.ndarray) -> np.ndarray:
        """(m, F) features → (m,) probabilities in [0, 1]."""
        x = (np.atleast_2d(features) - np.asarray(self.mean)) / np.asarray(self.std)
        z = x @ np.asarray(self.weights) + self.bias
        return 1.0 / (1.0 + np.exp(-np.clip(z, -60.0, 60.0)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "features": list(self.features),
            "weights": list(self.weights),
            "bias": self.bias,
            "mean": list(self.mean),
            "std": list(self.std),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any], features: tuple[str, ...] = MATCH_FEATURES) -> MatchModel:
        """Read :meth:`to_dict`'s form; ValueError when it is not for ``features`` (today's, in this order)."""
        if list(d.get("features", [])) != list(features):
            raise ValueError("match model fitted for other features")
        w, mean, std = (tuple(float(v) for v in d[key]) for key in ("weights", "mean", "std"))
        if not len(w) == len(mean) == len(std) == len(features) or min(std) <= 0:
            raise ValueError("malformed match model")
        return cls(w, float(d["bias"]), mean, std, tuple(features))


#: Used until an index has its own fit (and for searchers built without a workspace): a top view at cosine
#: ≥ ~0.9 that stands clear of the next model. Deliberately conservative: it calls few exact matches.
DEFAULT_MATCH_MODEL = MatchModel((2.0, 2.0, 1.0, 1.0), -3.0, (0.8, 0.02, 0.15, 0.4), (0.1, 0.03, 0.1, 0.3))


def fit_match_model(
    x: np.ndarray, y: np.ndarray, weight: np.ndarray | None = None, l2: float = 1e-2,
    features: tuple[str, ...] = MATCH_FEATURES,
) -> MatchModel:  # fmt: skip
    """Weighted L2-regularised logistic regression by Newton's method on standardised features.

    Args:
        x: (n, F) features, columns ``features``; y: (n,) labels in {0, 1}; weight: (n,) sample weights (default 1).
        l2: ridge penalty on the weights (not the bias), per unit of total weight.
    """
    x = np.asarray(x, np.float64)
    y = np.asarray(y, np.float64)
    w8 = np.ones(len(y)) if weight is None else np.asarray(weight, np.float64)
    mean = x.mean(axis=0)
    std = np.maximum(x.std(axis=0), 1e-6)
    z = np.hstack([(x - mean) / std, np.ones((len(x), 1))])
    beta = np.zeros(z.shape[1])
    reg = np.full(z.shape[1], l2 * w8.sum())
    reg[-1] = 0.0
    for _ in range(50):
        p = 1.0 / (1.0 + np.exp(-np.clip(z @ beta, -60.0, 60.0)))
        grad = z.T @ (w8 * (p - y)) + reg * beta
        hess = (z * (w8 * p * (1 - p))[:, None]).T @ z + np.diag(reg) + 1e-9 * np.eye(len(beta))
        step = np.linalg.solve(hess, grad)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return MatchModel(
        tuple(beta[:-1].tolist()), float(beta[-1]), tuple(mean.tolist()), tuple(std.tolist()), tuple(features)
    )


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (ties count half): the probability that a random positive outscores a random
    negative. NaN when either class is empty."""
    s = np.asarray(scores, np.float64)
    lab = np.asarray(labels, bool)
    pos, neg = s[lab], s[~lab]
    if not len(pos) or not len(neg):
        return float("nan")
    order = np.argsort(np.concatenate([pos, neg]), kind="mergesort")
    allv = np.concatenate([pos, neg])[order]
    ranks = np.empty(len(allv))
    # average ranks of ties
    i = 0
    while i < len(allv):
        j = i
        while j + 1 < len(allv) and allv[j + 1] == allv[i]:
            j += 1
        ranks[i : j + 1] = (i + j) / 2.0 + 1.0
        i = j + 1
    r = np.empty(len(allv))
    r[order] = ranks
    rank_pos = r[: len(pos)].sum()
    return float((rank_pos - len(pos) * (len(pos) + 1) / 2.0) / (len(pos) * len(neg)))
