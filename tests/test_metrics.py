"""Pure metric functions: exact small cases and properties."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cadsearch.metrics import (
    azimuth_errors_deg,
    azimuth_sector,
    mirror_labels,
    pose_errors_deg,
    recall_at_k,
    sector_balanced_accuracy,
    sector_labels,
    summarize_pose,
    topk_accuracy,
    true_class_rank,
)

polar = st.floats(0.0, 180.0, allow_nan=False)
azimuth = st.floats(-720.0, 720.0, allow_nan=False)


# --- recognition --------------------------------------------------------------------------------------------


def test_topk_exact() -> None:
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2], [0.2, 0.2, 0.6]])
    true = np.array([1, 2, 0])
    # Row 3: the true class ties with class 1, and the tie counts against it (rank 3, not 2).
    assert true_class_rank(scores, true).tolist() == [1, 3, 3]
    assert topk_accuracy(scores, true, 1) == pytest.approx(1 / 3)
    assert topk_accuracy(scores, true, 2) == pytest.approx(1 / 3)
    assert topk_accuracy(scores, true, 3) == 1.0


def test_topk_ties_and_unknown_classes_are_misses() -> None:
    constant = np.full((4, 5), 0.2)
    assert topk_accuracy(constant, np.array([0, 1, 2, 3]), 1) == 0.0
    scores = np.eye(3)
    assert true_class_rank(scores, np.array([0, -1, 2])).tolist() == [1, 0, 1]
    assert topk_accuracy(scores, np.array([0, -1, 2]), 3) == pytest.approx(2 / 3)
    assert math.isnan(topk_accuracy(np.zeros((0, 3)), np.zeros(0, int), 1))
    assert math.isnan(recall_at_k(np.zeros(0, int), 5))
    with pytest.raises(ValueError):
        topk_accuracy(scores, np.array([0, 1]), 1)


@given(st.integers(1, 6), st.integers(1, 8), st.integers(0, 2**31))
def test_topk_is_monotone_in_k(n: int, c: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores, true = rng.random((n, c)), rng.integers(0, c, n)
    accs = [topk_accuracy(scores, true, k) for k in range(1, c + 1)]
    assert all(a <= b for a, b in zip(accs, accs[1:], strict=False)) and accs[-1] == 1.0


# --- pose -----------------------------------------------------------------------------------------------------


def test_pose_error_exact() -> None:
    e = pose_errors_deg([90, 90, 90, 10, 45], [0, 0, 0, 0, 30], [90, 90, 90, 10, 45], [0, 90, 180, 180, 390])
    np.testing.assert_allclose(e, [0, 90, 180, 20, 0], atol=1e-6)
    assert np.isnan(pose_errors_deg([np.nan], [0], [90], [0])[0])


@settings(max_examples=200)
@given(polar, azimuth, polar, azimuth)
def test_pose_error_properties(t1: float, p1: float, t2: float, p2: float) -> None:
    e = pose_errors_deg(t1, p1, t2, p2)
    assert 0.0 <= e <= 180.0
    assert e == pytest.approx(pose_errors_deg(t2, p2, t1, p1), abs=1e-9)
    assert pose_errors_deg(t1, p1, t1, p1) == pytest.approx(0.0, abs=1e-5)
    # The camera direction moves at most by the polar change plus the azimuth change along the ring
    # (the tolerance covers arccos's precision near 1, about 1e-6°).
    assert e <= abs(t1 - t2) + azimuth_errors_deg(p1, p2) + 1e-4


def test_azimuth_error_exact() -> None:
    np.testing.assert_allclose(azimuth_errors_deg([350, 0, 90, 10], [10, 180, 270.0, 370]), [20, 180, 180, 0])


@given(azimuth, azimuth, st.integers(-3, 3))
def test_azimuth_error_properties(a: float, b: float, turns: int) -> None:
    e = azimuth_errors_deg(a, b)
    assert 0.0 <= e <= 180.0
    assert e == pytest.approx(azimuth_errors_deg(b, a), abs=1e-9)
    assert e == pytest.approx(azimuth_errors_deg(a + 360.0 * turns, b), abs=1e-6)
    # On the equator the azimuth error is the pose error.
    assert e == pytest.approx(pose_errors_deg(90.0, a, 90.0, b), abs=1e-4)


def test_summarize_pose() -> None:
    s = summarize_pose([10.0, 20.0, np.nan, 40.0])
    assert s["n"] == 3
    assert s["mean"] == pytest.approx(70 / 3) and s["median"] == 20.0
    assert s["acc15"] == pytest.approx(1 / 3) and s["acc30"] == pytest.approx(2 / 3)
    assert summarize_pose([15.0, 30.0])["acc15"] == 0.0  # thresholds are strict
    for empty in ([], [np.nan, np.nan]):
        assert summarize_pose(empty) == {"n": 0, "mean": None, "median": None, "acc15": None, "acc30": None}


# --- sectors and mirroring ------------------------------------------------------------------------------------


def test_azimuth_sector_boundaries() -> None:
    az = [0, 22.4, 22.5, 45, 180, 337.4, 337.5, 359.99, -10, 360, np.nan]
    assert azimuth_sector(az).tolist() == [0, 0, 1, 1, 4, 7, 0, 0, 0, 0, -1]
    assert azimuth_sector([0, 89, 91, 271], n=4).tolist() == [0, 1, 1, 3]
    assert sector_labels()[2] == "90° left" and len(sector_labels(8)) == 8


@given(st.floats(0.0, 360.0, exclude_max=True))
def test_sector_centre_is_within_half_a_sector(az: float) -> None:
    k = int(azimuth_sector(az))
    assert azimuth_errors_deg(az, 45.0 * k) <= 22.5 + 1e-9


def test_sector_balanced_accuracy_exact() -> None:
    true_az = np.array([0.0, 0.0, 0.0, 90.0, 180.0])
    err = np.array([5.0, 5.0, 50.0, 10.0, np.nan])
    r = sector_balanced_accuracy(err, true_az)
    assert r.counts.tolist() == [3, 0, 1, 0, 0, 0, 0, 0]
    assert r.per_sector[0] == pytest.approx(2 / 3) and r.per_sector[2] == 1.0 and np.isnan(r.per_sector[1])
    assert r.balanced == pytest.approx((2 / 3 + 1) / 2)
    assert math.isnan(sector_balanced_accuracy([np.nan], [0.0]).balanced)


def test_constant_answer_is_not_rewarded_on_a_front_heavy_set() -> None:
    uniform = np.arange(0.0, 360.0, 1.0)
    const = 315.0  # "always front-right"
    r = sector_balanced_accuracy(azimuth_errors_deg(uniform, const), uniform)
    assert r.balanced == pytest.approx(1 / 6, abs=0.01)  # within 30° of a 60° arc of 360°
    # A set of mostly front-right photos: the plain mean looks good, the sector-balanced one does not.
    rng = np.random.default_rng(0)
    skewed = np.concatenate([rng.normal(315.0, 10.0, 900) % 360.0, rng.uniform(0.0, 360.0, 100)])
    err = azimuth_errors_deg(skewed, const)
    assert np.mean(err < 30) > 0.8
    assert sector_balanced_accuracy(err, skewed).balanced < 0.3


def test_mirror_labels() -> None:
    p, a = mirror_labels([70.0, 80.0, 60.0, 50.0], [0.0, 90.0, 300.0, 360.0])
    assert p.tolist() == [70.0, 80.0, 60.0, 50.0]
    assert a.tolist() == [0.0, 270.0, 60.0, 0.0]


@given(st.floats(0.0, 360.0, exclude_max=True))
def test_mirror_is_an_involution_in_range(az: float) -> None:
    once = float(mirror_labels(90.0, az)[1])
    assert 0.0 <= once < 360.0
    assert azimuth_errors_deg(float(mirror_labels(90.0, once)[1]), az) == pytest.approx(0.0, abs=1e-9)


# --- symmetry-aware pose error and training targets ------------------------------------------------------------


def test_symmetric_pose_error_is_the_smallest_over_equivalent_truths() -> None:
    from cadsearch.metrics import CONTINUOUS_SYMMETRY, NO_SYMMETRY, pose_errors_deg

    true_polar, true_az = np.array([60.0, 60.0, 60.0]), np.array([10.0, 10.0, 10.0])
    est_polar, est_az = np.array([60.0, 60.0, 70.0]), np.array([100.0, 190.0, 250.0])
    plain = pose_errors_deg(true_polar, true_az, est_polar, est_az)
    assert np.all(plain > 50.0)
    # 4-fold: 100° is the truth rotated by 90°, 190° by 180°; 250° is 120° away, 30° from the nearest (280°).
    four = pose_errors_deg(true_polar, true_az, est_polar, est_az, 4)
    assert four[:2] == pytest.approx([0.0, 0.0], abs=1e-6)
    assert four[2] == pytest.approx(pose_errors_deg(60.0, 280.0, 70.0, 250.0), abs=1e-6)
    two = pose_errors_deg(true_polar, true_az, est_polar, est_az, 2)
    assert two[0] == pytest.approx(plain[0]) and two[1] == pytest.approx(0.0, abs=1e-6)
    # Continuous: the azimuth is free, only the polar angle counts.
    assert pose_errors_deg(true_polar, true_az, est_polar, est_az, CONTINUOUS_SYMMETRY) == pytest.approx(
        [0.0, 0.0, 10.0]
    )
    # Per query orders, and "none" equals the plain error.
    mixed = pose_errors_deg(true_polar, true_az, est_polar, est_az, [NO_SYMMETRY, 2, CONTINUOUS_SYMMETRY])
    assert mixed == pytest.approx([plain[0], 0.0, 10.0], abs=1e-6)
    # NaN labels stay NaN; a symmetric error is never larger than the plain one.
    assert np.isnan(pose_errors_deg(np.nan, 10.0, 60.0, 10.0, 4)).all()
    rng = np.random.default_rng(0)
    tp, ta, ep, ea = (
        rng.uniform(1, 179, 200),
        rng.uniform(0, 360, 200),
        rng.uniform(1, 179, 200),
        rng.uniform(0, 360, 200),
    )
    for order in (0, 2, 3, 4, 6):
        assert np.all(pose_errors_deg(tp, ta, ep, ea, order) <= pose_errors_deg(tp, ta, ep, ea) + 1e-9)
    with pytest.raises(ValueError):
        pose_errors_deg(tp, ta, ep, ea, -1)


def test_symmetric_azimuth_error_and_targets() -> None:
    from cadsearch.metrics import azimuth_errors_deg, pose_errors_deg, symmetric_target_azimuth

    assert azimuth_errors_deg([10.0, 10.0], [100.0, 350.0], 4) == pytest.approx([0.0, 20.0])
    assert azimuth_errors_deg([10.0], [200.0], 0) == pytest.approx([0.0])
    assert azimuth_errors_deg([10.0], [200.0]) == pytest.approx([170.0])
    az = np.array([0.0, 95.0, 200.0, 359.0])
    assert symmetric_target_azimuth(az, 1) == pytest.approx(az)
    assert symmetric_target_azimuth(az, 4) == pytest.approx([0.0, 5.0, 20.0, 89.0])
    assert symmetric_target_azimuth(az, 0) == pytest.approx([0.0, 0.0, 0.0, 0.0])
    assert symmetric_target_azimuth(az, [1, 2, 0, 4]) == pytest.approx([0.0, 95.0, 0.0, 89.0])
    # The target is always one of the equivalent truths: zero symmetric error, for every order.
    rng = np.random.default_rng(1)
    polar, azimuth = rng.uniform(10, 170, 100), rng.uniform(0, 360, 100)
    for order in (0, 1, 2, 3, 5):
        target = symmetric_target_azimuth(azimuth, order)
        assert np.all(pose_errors_deg(polar, azimuth, polar, target, order) < 1e-4)


def test_rank_in_results() -> None:
    from cadsearch.metrics import rank_in_results, recall_at_k

    ranks = rank_in_results(["a", "b", "c", None], [["a", "x"], ["x", "y", "b"], ["x"], ["a"]])
    assert ranks.tolist() == [1, 3, 0, 0]
    assert recall_at_k(ranks, 1) == 0.25 and recall_at_k(ranks, 5) == 0.5
