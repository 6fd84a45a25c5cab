"""Pure metric functions on numpy arrays: recognition (top-k) and pose (angles in degrees).

Like ``bop_toolkit_lib/pose_error.py``: one small function per metric, no I/O, no state. Conventions follow
DESIGN.md: polar θ ∈ [0°, 180°] from +Y, azimuth φ ∈ [0°, 360°) from +Z towards +X, the pose error is the angle
between the true and estimated camera directions. A NaN anywhere in a query's inputs marks "no label" and
propagates to that query's error; the summaries ignore NaNs.

This is the project's one metrics module: training validation (:mod:`cadsearch.models.train`), ``cadsearch
evaluate`` and every benchmark compute top-k, pose error and azimuth error here and nowhere else. It sits at the
bottom of the package (numpy and the camera convention only), below ``models``, so that training can use it
without importing the evaluation stage above it.

Symmetry: a model that looks the same after a rotation about its up axis (``symmetry_order`` in the catalog: 1
none, n ≥ 2 n-fold, 0 continuous) has several equally right camera poses; its errors are the smallest over them,
and :func:`symmetric_target_azimuth` picks the one pose that training targets use.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cadsearch.render.cameras import pose_error_deg, rotation_error_deg

__all__ = [
    "POSE_THRESHOLDS_DEG",
    "SectorAccuracy",
    "true_class_rank",
    "rank_in_results",
    "topk_accuracy",
    "recall_at_k",
    "NO_SYMMETRY",
    "CONTINUOUS_SYMMETRY",
    "pose_errors_deg",
    "rotation_errors_deg",
    "azimuth_errors_deg",
    "symmetric_target_azimuth",
    "summarize_pose",
    "azimuth_sector",
    "sector_labels",
    "sector_balanced_accuracy",
    "mirror_labels",
]

#: The thresholds of DESIGN.md's "share of queries with E < 15° and E < 30°".
POSE_THRESHOLDS_DEG = (15.0, 30.0)

# Names of the 8 azimuth sectors from the object's point of view: φ = 90° sees the object's *left* side.
_SECTOR_NAMES_8 = ("front", "front-left", "left", "back-left", "back", "back-right", "right", "front-right")


def true_class_rank(scores: np.ndarray, true_idx: np.ndarray) -> np.ndarray:
    """1-based rank of the true class in each row of ``scores``.

    Args:
        scores: (N, C) float, higher = more likely (class probabilities or similarities).
        true_idx: (N,) int, column of the true class; a negative value means the true class is not among the
            C candidates (e.g. a photo of a model the predictor was not trained on).

    Returns:
        (N,) int64: the number of classes scoring at least as high as the true one, so ties count against the
        prediction (a constant answer never gets credit); 0 where ``true_idx`` < 0.
    """
    scores = np.asarray(scores, dtype=np.float64)
    true_idx = np.asarray(true_idx, dtype=np.int64)
    if scores.ndim != 2 or true_idx.shape != (scores.shape[0],):
        raise ValueError(f"need scores (N, C) and true_idx (N,), got {scores.shape} and {true_idx.shape}")
    known = true_idx >= 0
    true_score = scores[np.arange(len(scores)), np.where(known, true_idx, 0)]
    rank = np.sum(scores >= true_score[:, None], axis=1)
    return np.where(known, rank, 0).astype(np.int64)


def rank_in_results(true_ids, ranked_ids) -> np.ndarray:
    """1-based rank of each query's true model in its ranked answer list (the search's results, best first).

    Args:
        true_ids: (N,) true model ids (None = unlabelled).
        ranked_ids: N sequences of model ids, best first (e.g. the top-k of :meth:`Searcher.search`).

    Returns:
        (N,) int64: the position of the true model (1 = top-1), 0 where it is not in the list (a miss at every
        k up to the list's length) or the query is unlabelled.
    """
    out = np.zeros(len(true_ids), dtype=np.int64)
    for i, (true, ranked) in enumerate(zip(true_ids, ranked_ids, strict=True)):
        ranked = list(ranked)
        if true is not None and true in ranked:
            out[i] = ranked.index(true) + 1
    return out


def recall_at_k(ranks: np.ndarray, k: int) -> float:
    """Share of queries whose true class is within the first ``k``, from :func:`true_class_rank`'s ranks (N,).

    Rank 0 (true class unknown to the predictor) counts as a miss. NaN when N = 0.
    """
    ranks = np.asarray(ranks, dtype=np.int64)
    if ranks.size == 0:
        return float("nan")
    return float(np.mean((ranks >= 1) & (ranks <= k)))


def topk_accuracy(scores: np.ndarray, true_idx: np.ndarray, k: int) -> float:
    """Top-``k`` recognition accuracy in [0, 1]: share of rows whose true class is among the ``k`` best.

    Args:
        scores: (N, C) class probabilities or scores, higher = better.
        true_idx: (N,) int true class columns; negative = not a candidate (always a miss).
        k: how many candidates count, ≥ 1.

    Returns NaN when N = 0. Ties count against the prediction (see :func:`true_class_rank`).
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    return recall_at_k(true_class_rank(scores, true_idx), k)


#: ``symmetry_order`` of a model with no rotational symmetry about its up axis (the catalog's convention: 1 =
#: none, n ≥ 2 = looks the same after a rotation of 360°/n about +Y, 0 = continuous, any rotation).
NO_SYMMETRY = 1
CONTINUOUS_SYMMETRY = 0


def _orders(symmetry_order, shape) -> np.ndarray:
    """``symmetry_order`` (None, a scalar or an array) as an int64 array broadcast to ``shape``."""
    if symmetry_order is None:
        return np.full(shape, NO_SYMMETRY, dtype=np.int64)
    orders = np.asarray(symmetry_order, dtype=np.int64)
    if np.any(orders < 0):
        raise ValueError("symmetry_order must be 0 (continuous), 1 (none) or n >= 2 (n-fold)")
    return np.broadcast_to(orders, shape)


def pose_errors_deg(true_polar, true_az, est_polar, est_az, symmetry_order=None) -> np.ndarray:
    """DESIGN.md's pose error E per query: the angle between true and estimated camera directions, symmetry-aware.

    For a model that looks the same after a rotation about its up axis, every rotated copy of the true camera is
    an equally right answer, so E is the smallest angle to any of them (BOP's practice): n-fold → the minimum
    over the true azimuth + k·360°/n; continuous → the azimuth does not matter and E = |Δθ|.

    Args:
        true_polar, true_az, est_polar, est_az: (N,) degrees (or broadcastable).
        symmetry_order: per query (N,) or one for all: 1 or None = no symmetry, n ≥ 2 = n-fold, 0 = continuous.

    Returns (N,) float64 in [0, 180]; NaN where an input is NaN.
    """
    tp, ta, ep, ea = (np.asarray(x, dtype=np.float64) for x in (true_polar, true_az, est_polar, est_az))
    shape = np.broadcast_shapes(tp.shape, ta.shape, ep.shape, ea.shape)
    orders = _orders(symmetry_order, shape)
    err = np.array(np.broadcast_to(pose_error_deg(tp, ta, ep, ea), shape), dtype=np.float64)  # a writable copy
    for n in np.unique(orders):
        if n == NO_SYMMETRY:
            continue
        sel = orders == n
        if n == CONTINUOUS_SYMMETRY:
            # The best rotated truth shares the estimate's azimuth: the angle is the polar difference alone.
            err[sel] = np.abs(np.broadcast_to(tp, shape)[sel] - np.broadcast_to(ep, shape)[sel])
            continue
        shifts = np.arange(1, int(n)) * (360.0 / int(n))
        candidates = [err[sel]] + [
            pose_error_deg(
                np.broadcast_to(tp, shape)[sel],
                np.broadcast_to(ta, shape)[sel] + s,
                np.broadcast_to(ep, shape)[sel],
                np.broadcast_to(ea, shape)[sel],
            )  # fmt: skip
            for s in shifts
        ]
        err[sel] = np.min(np.stack(candidates), axis=0)
    return err


def rotation_errors_deg(true_pose, est_pose, symmetry_order=None) -> np.ndarray:
    """Pose error *with roll* per query: the geodesic angle between the true and estimated camera orientations
    (:func:`~cadsearch.render.cameras.rotation_error_deg`), symmetry-aware like :func:`pose_errors_deg` (n-fold:
    the minimum over the true azimuth + k·360°/n; continuous: over the true azimuth in 1° steps).

    Args:
        true_pose, est_pose: (N, 3) (polar, azimuth, roll) in degrees, roll counter-clockwise (DESIGN.md).
        symmetry_order: per query (N,) or one for all, as :func:`pose_errors_deg`.

    Returns (N,) float64 degrees in [0, 180].
    """
    t = np.asarray(true_pose, np.float64).reshape(-1, 3)
    e = np.asarray(est_pose, np.float64).reshape(-1, 3)
    orders = _orders(symmetry_order, (len(t),))
    out = np.empty(len(t))
    for i, ((tp, ta, tr), (ep, ea, er), n) in enumerate(zip(t, e, orders, strict=True)):
        steps = 360 if n == CONTINUOUS_SYMMETRY else max(int(n), 1)
        out[i] = min(rotation_error_deg(tp, ta + k * 360.0 / steps, tr, ep, ea, er) for k in range(steps))
    return out


def azimuth_errors_deg(true_az, est_az, symmetry_order=None) -> np.ndarray:
    """Circular azimuth difference |Δφ| in [0, 180] degrees per query, ignoring the polar angle; symmetry-aware.

    Inputs (N,) degrees, any real values (wrapped mod 360); ``symmetry_order`` as in :func:`pose_errors_deg`
    (n-fold: the difference is taken modulo 360°/n; continuous: 0). NaN where an input is NaN. Labels made by eye
    are rougher in elevation than in azimuth, which is why photo splits report this alone too.
    """
    ta, ea = np.asarray(true_az, dtype=np.float64), np.asarray(est_az, dtype=np.float64)
    shape = np.broadcast_shapes(ta.shape, ea.shape)
    orders = _orders(symmetry_order, shape)
    period = np.where(orders == CONTINUOUS_SYMMETRY, 360.0, 360.0 / np.maximum(orders, 1))
    d = np.mod(ta - ea, period)
    d = np.minimum(d, period - d)
    return np.where((orders == CONTINUOUS_SYMMETRY) & np.isfinite(d), 0.0, d)


def symmetric_target_azimuth(azimuth_deg, symmetry_order) -> np.ndarray:
    """The one representative of each azimuth's symmetry class that training targets use: φ mod 360°/n for an
    n-fold model, 0 for a continuous one, φ itself otherwise. (N,) degrees in, (N,) degrees in [0, 360) out.

    The pose head cannot tell apart views that are identical; a single target per class keeps it from being
    trained to split its probability between them.
    """
    az = np.mod(np.asarray(azimuth_deg, dtype=np.float64), 360.0)
    orders = _orders(symmetry_order, az.shape)
    period = np.where(orders == CONTINUOUS_SYMMETRY, 360.0, 360.0 / np.maximum(orders, 1))
    return np.where(orders == CONTINUOUS_SYMMETRY, 0.0, np.mod(az, period))


def summarize_pose(errors) -> dict[str, float | int | None]:
    """Summary of pose (or azimuth) errors (N,) in degrees, NaNs ignored.

    Returns ``{"n", "mean", "median", "acc15", "acc30"}``: ``n`` the number of finite errors, mean and median
    in degrees, ``acc15``/``acc30`` the share in [0, 1] with error strictly below 15° / 30°. All but ``n`` are
    None when there is no finite error.
    """
    e = np.asarray(errors, dtype=np.float64).ravel()
    e = e[np.isfinite(e)]
    if e.size == 0:
        return {"n": 0, "mean": None, "median": None, "acc15": None, "acc30": None}
    return {
        "n": int(e.size),
        "mean": float(np.mean(e)),
        "median": float(np.median(e)),
        "acc15": float(np.mean(e < POSE_THRESHOLDS_DEG[0])),
        "acc30": float(np.mean(e < POSE_THRESHOLDS_DEG[1])),
    }


def azimuth_sector(az_deg, n: int = 8) -> np.ndarray:
    """Sector index in [0, n) of each azimuth (N,) in degrees; sector k is centred on k·360/n.

    With n = 8, sector k covers [45k − 22.5°, 45k + 22.5°): 0 = front (337.5°–22.5°), 2 = the object's left
    side, 4 = back, 6 = right. NaN azimuths get −1.
    """
    az = np.asarray(az_deg, dtype=np.float64)
    width = 360.0 / n
    finite = np.isfinite(az)
    k = np.floor(np.mod(np.where(finite, az, 0.0) + width / 2.0, 360.0) / width).astype(np.int64)
    k = np.minimum(k, n - 1)  # float rounding at exactly 360 - width/2 must not give n
    return np.where(finite, k, -1)


def sector_labels(n: int = 8) -> list[str]:
    """Human names of the ``n`` sectors of :func:`azimuth_sector`, e.g. ``"45° front-left"`` for n = 8."""
    width = 360.0 / n
    names = _SECTOR_NAMES_8 if n == 8 else ("",) * n
    return [f"{k * width:g}° {names[k]}".strip() for k in range(n)]


class SectorAccuracy(NamedTuple):
    """Result of :func:`sector_balanced_accuracy`.

    Attributes:
        balanced: mean of ``per_sector`` over non-empty sectors, in [0, 1]; NaN if every sector is empty.
        per_sector: (n_sectors,) float64 share within the threshold per sector; NaN for empty sectors.
        counts: (n_sectors,) int64 queries per sector.
    """

    balanced: float
    per_sector: np.ndarray
    counts: np.ndarray


def sector_balanced_accuracy(errors, true_az, threshold: float = 30.0, n_sectors: int = 8) -> SectorAccuracy:
    """Share of queries with error < ``threshold`` degrees, averaged over the azimuth sectors of the truth.

    Args:
        errors: (N,) degrees (azimuth or pose error); NaN rows are ignored.
        true_az: (N,) true azimuths in degrees, which pick each query's sector (:func:`azimuth_sector`).

    Most product photos are front three-quarter views: a plain mean rewards a model that always answers
    "front-right"; weighting each sector equally does not: a constant answer is within 30° of a 60° arc of
    truths, so on any set that fills the sectors it scores about 60/360 = 1/6, however front-heavy the set.
    """
    e = np.asarray(errors, dtype=np.float64).ravel()
    sector = azimuth_sector(np.asarray(true_az, dtype=np.float64).ravel(), n_sectors)
    ok = np.isfinite(e) & (sector >= 0)
    counts = np.bincount(sector[ok], minlength=n_sectors).astype(np.int64)
    hits = np.bincount(sector[ok], weights=(e[ok] < threshold).astype(np.float64), minlength=n_sectors)
    with np.errstate(invalid="ignore", divide="ignore"):
        per_sector = np.where(counts > 0, hits / np.maximum(counts, 1), np.nan)
    balanced = float(np.nanmean(per_sector)) if np.any(counts > 0) else float("nan")
    return SectorAccuracy(balanced, per_sector, counts)


def mirror_labels(polar_deg, azimuth_deg) -> tuple[np.ndarray, np.ndarray]:
    """Pose labels of the left-right mirrored image: φ → (360 − φ) mod 360, θ unchanged.

    Objects like chairs are (nearly) mirror-symmetric about their YZ plane, so a flipped photo is a fair new
    query seen from the mirrored camera. Inputs (N,) degrees; NaN stays NaN.
    """
    polar = np.asarray(polar_deg, dtype=np.float64)
    az = np.mod(360.0 - np.asarray(azimuth_deg, dtype=np.float64), 360.0)
    return polar.copy(), np.where(az >= 360.0, 0.0, az)
