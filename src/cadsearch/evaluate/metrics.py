"""Pure metric functions on numpy arrays: recognition (top-k) and pose (angles in degrees).

Like ``bop_toolkit_lib/pose_error.py``: one small function per metric, no I/O, no state. Conventions follow
DESIGN.md: polar θ ∈ [0°, 180°] from +Y, azimuth φ ∈ [0°, 360°) from +Z towards +X, the pose error is the angle
between the true and estimated camera directions. A NaN anywhere in a query's inputs marks "no label" and
propagates to that query's error; the summaries ignore NaNs.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from cadsearch.render.cameras import pose_error_deg

__all__ = [
    "POSE_THRESHOLDS_DEG",
    "SectorAccuracy",
    "true_class_rank",
    "topk_accuracy",
    "recall_at_k",
    "pose_errors_deg",
    "azimuth_errors_deg",
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


def pose_errors_deg(true_polar, true_az, est_polar, est_az) -> np.ndarray:
    """DESIGN.md's pose error E per query: the angle between true and estimated camera directions.

    All inputs are (N,) degrees (or broadcastable). Returns (N,) float64 in [0, 180]; NaN where an input is NaN.
    """
    return np.asarray(pose_error_deg(true_polar, true_az, est_polar, est_az), dtype=np.float64)


def azimuth_errors_deg(true_az, est_az) -> np.ndarray:
    """Circular azimuth difference |Δφ| in [0, 180] degrees per query, ignoring the polar angle.

    Inputs (N,) degrees, any real values (wrapped mod 360). NaN where an input is NaN. Labels made by eye are
    rougher in elevation than in azimuth, which is why photo splits report this alone too.
    """
    d = np.mod(np.asarray(true_az, dtype=np.float64) - np.asarray(est_az, dtype=np.float64), 360.0)
    return np.minimum(d, 360.0 - d)


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
