"""Pose of a found model: the pose head's estimate combined with the cameras of the model's best-matching views.

Each retrieved view of the model votes for its camera direction with weight ``exp((s − s_best) / τ)`` (s: its
cosine to the query), and the pose head votes for its direction with ``head_weight`` times the best view's
weight. Votes are multi-modal (a symmetric chair looks alike from front and back), so the estimate is a mode,
not a plain mean: the vote with the most weight within ``radius_deg`` of it is the anchor, and the answer is
the weighted mean direction of the votes within ``radius_deg`` of the anchor. Directions follow DESIGN.md's
camera convention (unit vectors ``c(θ, φ, 1)``); angles are degrees.

By default the head dominates (``head_weight`` 1000): measured with ``benchmarks/search_quality.py`` (transfer
model, 780 fresh renders), the embedding — trained for recognition — carries little pose (the nearest view of the
right model is 25.6° off on average), so equal votes (``head_weight`` 1) gave 14.2° mean pose error against the
head's 4.9°, and on the development photos a 64° median azimuth error against 9.6°; ``head_weight`` 8 gave 5.2°,
1000 the head's 4.9°. The views still decide where there is no head (``head=None``) and are averaged in, with
negligible weight, near it.

That holds for the kinds of object the network trained on. A model of another category (a cup added to a library
of chairs after training) is an object the pose head has never seen, and there the views are the better guess, so
such models use ``unknown_head_weight`` instead (:meth:`PoseConfig.for_category`): on the open library's 100
renders of 10 other-category models added after training, four networks trained on chairs erred by 41.1–50.7° on
average with the head trusted, 26.5–29.3° with equal votes (median 23.2–46.4° → 7.6–9.0°; registration of the top
model included; ``benchmarks/pose_unknown_categories.py``).

Better still, where the index holds view maps of that model's views (:mod:`cadsearch.index.view_maps`: the
transfer network's frozen ImageNet features, which keep where each part of the object is), the views whose maps
are nearest the query's vote instead (:func:`pose_from_view_maps`), and neither the head nor the embedding does.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from cadsearch.render.cameras import angles_from_position, camera_position

__all__ = ["PoseConfig", "combine_pose", "pose_from_view_maps"]


@dataclass(frozen=True)
class PoseConfig:
    """How votes are weighted.

    Attributes:
        views: at most this many of the model's best views vote.
        tau: similarity temperature of the view votes (cosine units).
        head_weight: the pose head's vote relative to the best view's (0: views only; see the module notes).
        radius_deg: votes within this angle of the anchor are averaged.
        unknown_head_weight: ``head_weight`` for a model of a category the network did not train on.
        map_tau, map_radius_deg: ``tau`` and ``radius_deg`` of the votes of views ranked by view maps
            (:func:`pose_from_view_maps`; map cosines are closer together than embedding cosines); ``views`` of them
            vote.
    """

    views: int = 8
    tau: float = 0.03
    head_weight: float = 1000.0
    radius_deg: float = 25.0
    unknown_head_weight: float = 1.0
    map_tau: float = 0.003
    map_radius_deg: float = 20.0

    def for_category(self, trained: bool) -> PoseConfig:
        """The weights for a model whose category the network trained on (``trained``) or not."""
        return self if trained else replace(self, head_weight=self.unknown_head_weight)


def combine_pose(
    view_polar: np.ndarray,
    view_azimuth: np.ndarray,
    view_sims: np.ndarray,
    head: tuple[float, float] | None = None,
    config: PoseConfig = PoseConfig(),
) -> tuple[float, float]:
    """Estimate ``(polar_deg, azimuth_deg)`` from the model's retrieved views and the pose head.

    Args:
        view_polar, view_azimuth: (m,) cameras of the model's retrieved views, degrees, best first.
        view_sims: (m,) their cosine similarity to the query.
        head: the pose head's (polar, azimuth) for the query, or None.
        config: vote weights.

    Returns:
        polar in [0, 180] and azimuth in [0, 360), degrees.
    """
    sims = np.asarray(view_sims, np.float64)[: config.views]
    dirs = camera_position(np.asarray(view_polar)[: config.views], np.asarray(view_azimuth)[: config.views])
    weights = np.exp((sims - sims.max()) / config.tau) if len(sims) else np.zeros(0)
    if head is not None and config.head_weight > 0:
        dirs = np.concatenate([dirs.reshape(-1, 3), camera_position(head[0], head[1])[None]])
        weights = np.concatenate([weights, [config.head_weight * (weights.max() if len(weights) else 1.0)]])
    if not len(weights):
        return 90.0, 0.0
    cos_r = np.cos(np.radians(config.radius_deg))
    near = dirs @ dirs.T >= cos_r  # (m, m): votes within the radius of each other
    support = near @ weights
    anchor = int(np.argmax(support))
    sel = near[anchor]
    mean = (weights[sel, None] * dirs[sel]).sum(axis=0)
    if np.linalg.norm(mean) < 1e-9:
        mean = dirs[anchor]
    polar, azimuth, _ = angles_from_position(mean)
    return float(polar), float(azimuth)


def pose_from_view_maps(
    view_polar: np.ndarray, view_azimuth: np.ndarray, map_sims: np.ndarray, config: PoseConfig = PoseConfig()
) -> tuple[float, float]:
    """Estimate ``(polar_deg, azimuth_deg)`` from a model's views ranked by their view maps' cosine to the query's.

    Args:
        view_polar, view_azimuth: (m,) cameras of the model's views, degrees, any order.
        map_sims: (m,) cosine of each view's map to the query's (:mod:`cadsearch.models.view_maps`).
        config: ``views``, ``map_tau`` and ``map_radius_deg`` are used; no pose head votes.

    Returns:
        polar in [0, 180] and azimuth in [0, 360), degrees.
    """
    order = np.argsort(-np.asarray(map_sims, np.float64), kind="stable")
    votes = replace(config, tau=config.map_tau, radius_deg=config.map_radius_deg)
    return combine_pose(np.asarray(view_polar)[order], np.asarray(view_azimuth)[order], np.asarray(map_sims)[order],
                        None, votes)  # fmt: skip
