"""From nearest views to ranked models with calibrated scores.

A model's evidence is its best-matching view: ``s_m = max cos(query, view)`` over the model's views among the
``k`` nearest. Scores are a softmax over *all* library models with a temperature ``T``:

    p_m = exp(s_m / T) / (Σ_found exp(s_j / T) + n_unseen · exp(s_floor / T))

where models with no view among the ``k`` nearest are given the floor similarity ``s_floor`` (the ``k``-th
nearest view's, an upper bound on theirs), which keeps scores honest when the right model was not retrieved.
``T`` is fitted by minimising the negative log-likelihood of the true model on views the network did not train
on (leave-one-out: a view's own vector is removed from its neighbours), so that a score of 0.9 is right about
90 % of the time on renders (temperature scaling, Guo et al. 2017). The fit and its reliability (expected
calibration error, top-1 accuracy) are stored in the index's ``meta.json``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = [
    "DEFAULT_TEMPERATURE",
    "RankedModels",
    "rank_models",
    "MIRROR_RANK_WEIGHT",
    "rerank_with_mirror",
    "neighbour_floor",
    "category_first",
    "category_mass",
    "category_votes",
    "order_by_category",
    "vote_share",
    "weigh_by_kind",
    "CalibrationRecord",
    "CategoryRecord",
    "fit_temperature",
    "fit_category_temperature",
]

#: Used until an index has been calibrated: cosine gaps of ~0.05 then mean a factor e in odds.
DEFAULT_TEMPERATURE = 0.05


@dataclass
class RankedModels:
    """Models found for one query, best first.

    Attributes:
        model_idx: (m,) int, indices into the searcher's model list.
        score: (m,) float64 calibrated probabilities in [0, 1] (summing to ≤ 1 over the found models).
        best_sim: (m,) float64 cosine of each model's best view.
        views: per model, the positions (into the query's neighbour list) of its retrieved views, best first.
    """

    model_idx: np.ndarray
    score: np.ndarray
    best_sim: np.ndarray
    views: list[np.ndarray]


def _softmax_parts(best: np.ndarray, floor: float, n_unseen: int, temperature: float) -> tuple[np.ndarray, float]:
    """exp terms of found models and the unseen models' total, relative to the largest (stable)."""
    top = float(best.max()) if len(best) else floor
    found = np.exp((best - top) / temperature)
    unseen = n_unseen * float(np.exp((floor - top) / temperature))
    return found, unseen


def rank_models(
    sims: np.ndarray, ids: np.ndarray, model_index: np.ndarray, n_models: int, temperature: float
) -> RankedModels:
    """Group one query's nearest views by model and score the models.

    Args:
        sims: (k,) cosine similarities of the nearest views (any order).
        ids: (k,) their vector ids, -1 for missing results.
        model_index: (N,) int, model index of each vector id.
        n_models: number of models in the library (found or not).
        temperature: softmax temperature ``T`` (> 0).
    """
    valid = ids >= 0
    sims, ids = np.asarray(sims, np.float64)[valid], ids[valid]
    order = np.argsort(-sims, kind="stable")
    sims, ids = sims[order], ids[order]
    models = model_index[ids]
    uniq, first = np.unique(models, return_index=True)  # first occurrence = best view (sorted by similarity)
    best = sims[first]
    floor = float(sims[-1]) if len(sims) else 0.0
    found, unseen = _softmax_parts(best, floor, max(n_models - len(uniq), 0), temperature)
    total = found.sum() + unseen
    score = found / total if total > 0 else found
    rank = np.argsort(-best, kind="stable")
    uniq, best, score = uniq[rank], best[rank], score[rank]
    views = [np.flatnonzero(models == m) for m in uniq]
    return RankedModels(uniq, np.clip(score, 0.0, 1.0), best, views)


#: Weight of the mirror image's similarity in a model's ranking similarity (:func:`rerank_with_mirror`).
MIRROR_RANK_WEIGHT = 0.5


def neighbour_floor(sims: np.ndarray, ids: np.ndarray) -> float:
    """The smallest cosine among one query's valid neighbours (ids ≥ 0): :func:`rank_models`' floor; 0 if none."""
    valid = np.asarray(sims, np.float64)[np.asarray(ids) >= 0]
    return float(valid.min()) if len(valid) else 0.0


def rerank_with_mirror(
    ranked: RankedModels,
    floor: float,
    mirrored: RankedModels,
    mirror_floor: float,
    n_models: int,
    temperature: float,
    weight: float = MIRROR_RANK_WEIGHT,
) -> RankedModels:
    """Rank one query's models by their best similarity averaged with the query's mirror image's.

    A left-right mirror image of a photo of a model looks like another view of the same model (most objects are
    mirror-symmetric), so its nearest views are a second, partly independent sample of the same evidence: each
    model's similarity becomes ``(s_m + w · s'_m) / (1 + w)``, ``s'_m`` its best cosine to the mirror image (the
    mirror's floor when none of its views is among the mirror's nearest), and the scores are the softmax of those
    with ``T`` (the floor averaged the same way). Only the query's own models are kept: their views (pose,
    match features) are the query's neighbours. Measured through the search (BENCHMARKS.md, "The mirror image in
    the ranking"): renders of library models top-1 +13 to +19 on three of four networks (the open library's 840:
    0.900 → 0.920, unseen models 0.884 → 0.900), −1 on the fourth; the viewpoint on photos within a photo or two.

    Args:
        ranked, floor: the query's :func:`rank_models` and its neighbours' floor (:func:`neighbour_floor`).
        mirrored, mirror_floor: the same for the query's mirror image.
        n_models: number of models in the library.
        temperature: the softmax temperature ``T``.
        weight: ``w`` ≥ 0; 0 returns ``ranked`` unchanged.
    """
    if weight <= 0 or not len(ranked.model_idx):
        return ranked
    mirror_best = dict(zip(mirrored.model_idx.tolist(), mirrored.best_sim.tolist(), strict=True))
    other = np.array([mirror_best.get(int(m), mirror_floor) for m in ranked.model_idx], np.float64)
    best = (np.asarray(ranked.best_sim, np.float64) + weight * other) / (1.0 + weight)
    fused_floor = (floor + weight * mirror_floor) / (1.0 + weight)
    found, unseen = _softmax_parts(best, fused_floor, max(n_models - len(best), 0), temperature)
    total = found.sum() + unseen
    score = found / total if total > 0 else found
    order = np.argsort(-best, kind="stable")
    return RankedModels(
        ranked.model_idx[order], np.clip(score[order], 0.0, 1.0), best[order], [ranked.views[i] for i in order]
    )


def category_mass(ranked: RankedModels, category_of: np.ndarray, temperature: float | None = None) -> dict[int, float]:
    """``{category index: Σ calibrated score of its found models}`` for one query (unknown categories, -1, left
    out). With ``temperature``, each model's ``exp((best_sim − max best_sim) / temperature)`` instead of its score:
    the same vote at another softmax temperature, up to one factor common to every category (the vote only
    compares categories, so the normaliser is left out)."""
    cats = np.asarray(category_of)[ranked.model_idx]
    known = cats >= 0
    labels, inverse = np.unique(cats[known], return_inverse=True)
    if temperature is None:
        weights = ranked.score[known]
    else:
        sims = ranked.best_sim[known]
        weights = np.exp((sims - sims.max()) / temperature) if len(sims) else sims
    mass = np.bincount(inverse, weights=weights, minlength=len(labels))
    return {int(c): float(m) for c, m in zip(labels, mass, strict=True)}


def category_votes(
    ranked: RankedModels,
    category_of: np.ndarray,
    others: RankedModels | Sequence[RankedModels] | None = None,
    temperature: float | None = None,
) -> dict[int, float]:
    """The category vote's mass per category, ``{category index: mass}`` (empty when nothing was found): the
    query's :func:`category_mass`, or with ``others`` (its mirror image, shifted crops, each ranked the same way)
    the geometric mean over the query and all of them, over the categories found in every one (the query's own
    mass when none is). See :func:`category_first`."""
    if not len(ranked.model_idx):
        return {}
    mass = category_mass(ranked, category_of, temperature)
    others = [others] if isinstance(others, RankedModels) else list(others or [])
    masses = [mass] + [category_mass(r, category_of, temperature) for r in others if len(r.model_idx)]
    if mass and len(masses) > 1:
        common = set(mass).intersection(*masses[1:])
        every = {c: float(np.exp(np.mean([np.log(max(m[c], 1e-300)) for m in masses]))) for c in common}
        if every and max(every.values()) > 0:
            return every
    return mass


def weigh_by_kind(votes: dict[int, float], kind: np.ndarray | None, power: float) -> dict[int, float]:
    """The category vote's masses times the kind prior, ``mass_c · k_c^power`` (:mod:`cadsearch.search.kinds`).

    ``kind``: (n_categories,) the query's kind posterior indexed like the votes' categories (None or ``power`` 0:
    the votes unchanged). Where every weighted mass is 0 (the prior rules out every category found), the votes are
    kept: the prior reorders what the search found, it never empties the vote."""
    if kind is None or power == 0 or not votes:
        return votes
    weighted = {c: m * float(kind[c]) ** power if 0 <= c < len(kind) else m for c, m in votes.items()}
    return weighted if max(weighted.values()) > 0 else votes


def vote_share(votes: dict[int, float]) -> float:
    """The winning category's share of the vote's mass, in (0, 1] (1.0 when there is no vote): how sure the vote
    is; ``Searcher`` asks more views of a query whose vote is less sure (``vote_crops_below``)."""
    total = sum(votes.values())
    return float(max(votes.values()) / total) if votes and total > 0 else 1.0


def category_first(
    ranked: RankedModels,
    category_of: np.ndarray,
    mirrored: RankedModels | Sequence[RankedModels] | None = None,
    temperature: float | None = None,
) -> tuple[RankedModels, int]:
    """Put the most probable category's models first (each group keeps its order by best view).

    The category vote sums the calibrated scores of the found models per category, ``P(c) = Σ_{m ∈ c} p_m``:
    a photo of a chair that is not in the library spreads its evidence over many chairs, each a little below a
    cup or piano whose one view happens to lie nearest; summed, the chairs win. On renders of library models
    the true model usually holds most of the mass, so the order rarely changes there.

    With ``mirrored`` (the same query's mirror image, ranked the same way) a category must be found in both:
    the vote is the geometric mean ``sqrt(P(c) · P'(c))``. A mirror image shows the same kind of object, but a
    cup or piano that happens to lie near a photo's embedding rarely lies near its mirror's too. Measured on the
    development photos of chairs (166-model library; ``benchmarks/category_vote.py``, ``real_photos.py``): chair
    first 79.9 → 89.2 % and 78.9 → 80.9 % for two transfer networks, 73.5 → 78.9 % for scratch; renders within a
    few queries. When no category is found in both, the plain vote.

    ``temperature`` (the index's fitted *category* temperature, :func:`fit_category_temperature`) votes with
    ``exp(s_m / T_c)`` instead of the scores' ``exp(s_m / T)``: the scores' ``T`` is fitted to name the right
    *model* of the library, and is sharp (one view a little nearer takes most of the mass); ``T_c`` is fitted to
    name the right *category* of a model that is not in the library, and comes out about twice as soft, so that
    many models of one kind a little further away outweigh one model of another kind.

    Args:
        ranked: one query's models, best first (:func:`rank_models`).
        category_of: (n_models,) int category index of each model index (any ints; -1 = unknown, never voted).
        mirrored: the mirror image's models (:func:`rank_models`), or None; or several other views of the same
            query (its mirror image, shifted crops and theirs), each ranked the same way: the vote is then the
            geometric mean over the query and all of them, over the categories found in every one.
        temperature: the vote's temperature, or None to vote with the models' calibrated scores.

    Returns:
        the re-ordered models and the winning category index (-1 when nothing was found).
    """
    return order_by_category(ranked, category_of, category_votes(ranked, category_of, mirrored, temperature))


def order_by_category(
    ranked: RankedModels, category_of: np.ndarray, votes: dict[int, float]
) -> tuple[RankedModels, int]:
    """``ranked`` with the models of the category that ``votes`` (:func:`category_votes`) prefers first, each group
    in its order by best view; and that category's index (-1, order unchanged, when there is no vote)."""
    if not len(ranked.model_idx) or not votes:
        return ranked, -1
    cats = np.asarray(category_of)[ranked.model_idx]
    winner = max(votes, key=lambda c: (votes[c], -c))  # ties: the lower index, as argmax over sorted labels
    order = np.concatenate([np.flatnonzero(cats == winner), np.flatnonzero(cats != winner)])
    reordered = RankedModels(
        ranked.model_idx[order], ranked.score[order], ranked.best_sim[order], [ranked.views[i] for i in order]
    )
    return reordered, winner


@dataclass
class CalibrationRecord:
    """One calibration query: found models' best cosines, the true model's position among them (-1: not
    found), the floor cosine and how many models were not found."""

    best: np.ndarray
    true_pos: int
    floor: float
    n_unseen: int


def _nll(records: list[CalibrationRecord], temperature: float) -> float:
    total = 0.0
    for r in records:
        found, unseen = _softmax_parts(r.best, r.floor, r.n_unseen, temperature)
        z = found.sum() + unseen
        p = found[r.true_pos] / z if r.true_pos >= 0 else (unseen / max(r.n_unseen, 1)) / z
        total -= np.log(max(p, 1e-12))
    return total / max(len(records), 1)


def _top1(records: list[CalibrationRecord], temperature: float) -> tuple[np.ndarray, np.ndarray]:
    conf, right = [], []
    for r in records:
        found, unseen = _softmax_parts(r.best, r.floor, r.n_unseen, temperature)
        z = found.sum() + unseen
        j = int(np.argmax(r.best)) if len(r.best) else -1
        conf.append(found[j] / z if j >= 0 else 0.0)
        right.append(j >= 0 and j == r.true_pos)
    return np.asarray(conf), np.asarray(right, bool)


@dataclass
class CategoryRecord:
    """One category calibration query, searched with every view of its own model left out: the found models'
    best cosines (m,), their category indices (m,), and the query's true category index."""

    best: np.ndarray
    category: np.ndarray
    true_category: int


def _category_nll(records: list[CategoryRecord], temperature: float) -> float:
    total = 0.0
    for r in records:
        w = np.exp((r.best - r.best.max()) / temperature)
        p = w[r.category == r.true_category].sum() / w.sum()
        total -= np.log(max(p, 1e-12))
    return total / max(len(records), 1)


def fit_category_temperature(records: list[CategoryRecord]) -> dict[str, float] | None:
    """The category vote's temperature ``T_c``: the one that minimises the negative log-likelihood of the true
    category, ``P(c) = Σ_{m ∈ c} exp(s_m / T_c) / Σ_m exp(s_m / T_c)`` over the found models, on queries whose own
    model was left out of the library (an object of a known kind that is not in the library, as a user's photo
    usually is). Log grid as :func:`fit_temperature`.

    Returns ``{"temperature", "n", "nll", "top1"}`` (``top1``: share of queries whose most probable category is
    the true one), or None without records.
    """
    records = [r for r in records if len(r.best)]
    if not records:
        return None
    grid = np.geomspace(1e-3, 3.0, 90)
    losses = [_category_nll(records, t) for t in grid]
    i = int(np.argmin(losses))
    fine = np.geomspace(grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)], 25)
    losses_fine = [_category_nll(records, t) for t in fine]
    t = float(fine[int(np.argmin(losses_fine))])
    top1 = []
    for r in records:
        w = np.exp((r.best - r.best.max()) / t)
        mass = np.bincount(r.category, weights=w)
        top1.append(int(np.argmax(mass)) == r.true_category)
    return {"temperature": t, "n": len(records), "nll": float(min(losses_fine)), "top1": float(np.mean(top1))}


def expected_calibration_error(conf: np.ndarray, right: np.ndarray, bins: int = 10) -> float:
    """ECE: mean |accuracy − confidence| over equal-width confidence bins, weighted by bin size."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1]), 0, bins - 1)
    ece = 0.0
    for b in range(bins):
        sel = which == b
        if sel.any():
            ece += sel.mean() * abs(right[sel].mean() - conf[sel].mean())
    return float(ece)


def fit_temperature(records: list[CalibrationRecord]) -> dict[str, float]:
    """Fit ``T`` by minimising the NLL of the true model over a log grid (robust, no optimiser needed).

    Returns ``{"temperature", "n", "nll", "top1", "ece", "mean_confidence"}``; the default temperature when
    there are no records.
    """
    if not records:
        return {"temperature": DEFAULT_TEMPERATURE, "n": 0}
    grid = np.geomspace(1e-3, 3.0, 90)
    losses = [_nll(records, t) for t in grid]
    i = int(np.argmin(losses))
    lo, hi = grid[max(i - 1, 0)], grid[min(i + 1, len(grid) - 1)]
    fine = np.geomspace(lo, hi, 25)
    losses_fine = [_nll(records, t) for t in fine]
    t = float(fine[int(np.argmin(losses_fine))])
    conf, right = _top1(records, t)
    return {
        "temperature": t,
        "n": len(records),
        "nll": float(min(losses_fine)),
        "top1": float(right.mean()),
        "mean_confidence": float(conf.mean()),
        "ece": expected_calibration_error(conf, right),
    }
