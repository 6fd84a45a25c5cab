"""``Searcher``: load the network and the view index once, then answer ``search(image, k)`` cheaply.

SamPredictor-style: :meth:`Searcher.from_workspace` does the costly work (read the checkpoint, deserialise the
FAISS index, read the catalog); :meth:`Searcher.search` is numpy in, dataclasses out, and safe to call from
several threads at once (the network runs in inference mode, FAISS searches are read-only, and nothing mutable
is shared between calls).

One query: frame the object (:func:`cadsearch.framing.frame_query`: the automatic crop, or the whole photo padded
to a square) → embed it (and get the pose head's estimate) → the ``k_views`` nearest views → group them by
model, score each model by its best view (calibrated softmax, :mod:`cadsearch.search.scoring`) and give it its
exact-match probability (:mod:`cadsearch.search.matching`) → the most probable category's models first (the
category vote, :func:`~cadsearch.search.scoring.category_first`) → for each of the top ``k`` models, combine its
best views' cameras with the pose head (:mod:`cadsearch.search.pose`).
"""

from __future__ import annotations

import contextlib
import copy
import math
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from cadsearch.errors import InputError
from cadsearch.framing import (
    MARGIN,
    METHODS,
    RENDER_FILL,
    Frame,
    check_crop_method,
    frame_for,
    frame_query,
    upright_image,
)
from cadsearch.index.faiss_index import ViewIndex, index_dir
from cadsearch.index.view_maps import IndexViewMaps, load_view_maps
from cadsearch.models.predictor import trained_categories
from cadsearch.register import Placement, Registrar, object_mask
from cadsearch.register.appearance import APPEARANCE_ONNX_FILE, LookAlikeChoice, LookAlikeConfig
from cadsearch.register.masks import mask_is_trusted, restrict_to_box
from cadsearch.register.registrar import OTHER_START_FIT_MARGIN
from cadsearch.search.kinds import KIND_PRIOR_POWER, KindProfiles
from cadsearch.search.matching import (
    DEFAULT_MATCH_MODEL,
    EXACT_MATCH_THRESHOLD,
    OUTLINE_FEATURES,
    MatchModel,
    match_features,
)
from cadsearch.search.pose import PoseConfig, combine_pose, pose_from_view_maps
from cadsearch.search.scoring import (
    DEFAULT_TEMPERATURE,
    MIRROR_RANK_WEIGHT,
    category_votes,
    neighbour_floor,
    order_by_category,
    rank_models,
    rerank_with_mirror,
    vote_share,
    weigh_by_kind,
)

__all__ = [
    "CROP_CHOICES",
    "FoundObject",
    "ModelMatch",
    "SearchResult",
    "Searcher",
    "default_arch",
    "detection_frames",
    "is_exact_match",
    "query_of",
    "registration_alternatives",
]

#: With ``crop="detect"``, a found object's square is used only when the photo's longer side is at least this many
#: times its side; a larger box (an object filling most of the photo, as in a product shot) keeps the whole-photo
#: framing, which the networks handle well. Measured on the development photos (chairs filling the frame):
#: the localiser often boxes only part of such a chair, and cropping to it lowered the azimuth accuracy (see
#: BENCHMARKS.md, ``benchmarks/localise.py``); objects at 25–60 % of the photo's shorter side are rarely affected
#: (two detectors cropped the first box of 192 and 193 of 200 synthetic clutter photos, 179 and 188 at zoom ≥ 1.7).
DETECT_MIN_ZOOM = 1.4
#: With ``crop="detect"``, the most confident object whose square would zoom in less than this (a large box that
#: :data:`DETECT_MIN_ZOOM` still crops to) is also searched as the whole photo, and the more confident of the two
#: answers is kept: on photos that a chair fills, the localiser often boxes only a part of it. Measured with two
#: detectors (BENCHMARKS.md, "The detect crop on product photos"): the development photos' sector-balanced azimuth
#: Acc@30 0.643 → 0.678 and 0.648 → 0.661, the synthetic clutter top-1 0.835 → 0.82 and 0.84 → 0.84; checking every
#: crop so (``detect_verify``) lost 9 and 9.5 points of that top-1 (a confidently wrong whole-photo answer beat a
#: small chair's crop). Its cost: on the rolled registration composites (objects 20–70 % of the photo) the top
#: model's registered pose lost about 1.1° (7.82° → 8.94° mean with the product's masks, ``registration_configs.py``
#: 'default=' with this check off and on; BENCHMARKS.md, "Registration through today's product").
DETECT_VERIFY_ZOOM = 1.7

#: A registration is kept only when its outline fits the mask at least this well (silhouette IoU on the
#: refinement's grid): below it the mask or the start was wrong, and the search's pose and framing are kept.
REGISTER_MIN_FIT = 0.5
#: ... and only when the placed model's size (the longer side of its registered silhouette's box in the photo,
#: :attr:`~cadsearch.register.Registration.extent`) is within this range of the object's expected size: RENDER_FILL
#: of the square the object would fill as in the renders (its detection box's crop square, else the square searched).
#: Measured on development photos: the detector's masks of real chairs often cover only a seat or a back, and the
#: model was then shrunk onto that part (BENCHMARKS.md, registration). The silhouette, not its render square: a
#: model seen end-on (a rifle from its muzzle, a chair from above) fills much less of its square than the renders'
#: mean, and its right registrations were dropped as "too large" (BENCHMARKS.md, "The registered model's size").
#: The range is wide because a detection box often covers only part of the object (or more than the object), and
#: the right outline is then larger (smaller) than the box says: at (0.7, 1.4) the rolled room composites lost 4
#: right registrations so (their outlines within 1 px of the true chairs' size), and widening it to (0.6, 2.0)
#: raised those composites' IoU 0.738 → 0.791 and the development photos' Acc@30 after registration 0.742 → 0.755
#: (BENCHMARKS.md, "The registered model's size, partial boxes"); a model too large inside the frame fits the mask
#: poorly anyway (REGISTER_MIN_FIT); the lower end stays for the failure it was made for.
REGISTER_SIZE_RANGE = (0.6, 2.0)
#: With registration on, this many of each object's best models are registered (at least ``refine_top``), and a
#: lower-ranked one of the first model's category whose outline fits the object's mask better than the first's by
#: more than :data:`OUTLINE_RANK_MARGIN` goes first (:func:`rank_by_outline`), unless the ranking is sure of its
#: first model (:data:`OUTLINE_RANK_BELOW`). The second model is registered only when it could win so: the first's
#: fit below 1 − the margin, its score below that. Measured on rolled room composites of a 52-chair library
#: (BENCHMARKS.md, "The outline ranks the two best models").
OUTLINE_RANK_MODELS = 2
#: See :data:`OUTLINE_RANK_MODELS`: a first model scored at least this keeps its place whatever the outlines say
#: (the threshold of the look-alike model check, :attr:`~cadsearch.register.appearance.LookAlikeConfig.rank_below`).
#: Without it the outline put a wrong model first over a right one scored 0.994 (whose own registration had not been
#: kept) in 1 of 120 composites, and the second model was registered for 72–73 % of the queries instead of 28–38 %.
OUTLINE_RANK_BELOW = 0.99
#: See :data:`OUTLINE_RANK_MODELS`: the margin by which the outline (silhouette IoU on the refinement's grid) must
#: fit better. Smaller margins (0, 0.05) swapped right models for look-alikes on one of the two seeds of composites;
#: the same margin measured best with backdrop masks on renders (BENCHMARKS.md, "The outline as a recognition
#: cue").
OUTLINE_RANK_MARGIN = 0.1

#: The upright pass (``Searcher(upright_pass=True)``): an object whose first model was registered at a camera roll of
#: at least this many degrees (either way) is searched again with its square turned upright
#: (:func:`~cadsearch.framing.upright_image`): the networks learned from upright renders (rolled ones only as an
#: augmentation), and a rolled object's square was recognised less often (rolled room composites, the search's first
#: model before registration: right 0.898 at |roll| < 8° against 0.818 at 16–25°, three seeds; BENCHMARKS.md, "The
#: upright pass").
UPRIGHT_MIN_ROLL = 5.0
#: ... the upright square's side, pixels (it is resized to the networks' input sizes).
UPRIGHT_SIZE = 256
#: ... and the upright square's answer (its models registered against the same mask as the first answer's) replaces
#: the first when its first model's outline fits the mask better by more than this (silhouette IoU) ...
UPRIGHT_FIT_MARGIN = 0.02
#: ... at a roll within this many degrees of the first registration's: both register the same object in the same
#: photo, so a camera's roll shows in both. A first roll that was the registration's mistake (a product shot of an
#: upright armchair registered at −12.7° roll from its mask) led the upright square to another model at −25.9° that
#: fitted that mask better and faced the wrong way (BENCHMARKS.md, "The upright pass").
UPRIGHT_ROLL_AGREEMENT = 10.0

#: The other-starts check (``Searcher(other_starts=True)``, :meth:`~cadsearch.register.Registrar.check_other_starts`)
#: looks again only at a registered model whose outline fits the object's mask at least this well (silhouette IoU): a
#: poorer fit says the mask or the model may be wrong, and a pose that fits such a mask better is no evidence. In the
#: probe without it, the check changed 9 development-photo answers and cost their sector-balanced Acc@30 0.7579 →
#: 0.7370; from 0.6, 0.65 or 0.7 it changed 6, 4 or 3 and cost nothing, and the composites' answers were the same
#: (BENCHMARKS.md, "Other starts").
OTHER_STARTS_MIN_FIT = 0.7
#: The far-starts check (``Searcher(far_starts=True)``, :meth:`~cadsearch.register.Registrar.check_far_starts`) looks
#: again at a registered first model too when its outline fits the object's mask less than this (silhouette IoU;
#: ``far_starts_below``; an unregistered one always), from the ring of starts alone ...
FAR_STARTS_BELOW = 0.85
#: ... and a registration fitting under :data:`OTHER_STARTS_MIN_FIT` (a mask that may be wrong) is replaced only by one
#: that fits at least this; a fairer one by one that fits better by :data:`FAR_START_FIT_MARGIN`. On the development
#: photos, whose chairs are none of the library's, far poses fitting poor masks better (up to 0.767 from 0.555) and
#: looking more alike were wrong (5 of 236 photos changed for the worse, two by about 180°, with 0.7); the one composite
#: they fixed was registered 78° off at 0.687 and the ring's pose fitted 0.866. Above 0.7 a better fit that looked
#: clearly more alike was right on two composites (127.3° → 6.4° at 0.735 → 0.793; 17.4° → 9.1°) and on no development
#: photo (BENCHMARKS.md, "Far starts", "Far starts for poor fits").
FAR_STARTS_REPLACE_FIT = 0.8
#: See :data:`FAR_STARTS_REPLACE_FIT`: the other starts' margin.
FAR_START_FIT_MARGIN = OTHER_START_FIT_MARGIN

#: ``vote_crops``: the category vote's extra views of a query, shifts of its square by this share of the side (right,
#: left, down, up); 4 of them measured best among shifts and zooms of 0.9–1.35 (BENCHMARKS.md, "A softer category
#: vote").
VOTE_SHIFT = 0.06
#: The look-alike check (``Searcher(look_alikes=...)``) takes the pose a model's renders support when the model's
#: ``match`` is at least this, or when the winning render itself agrees with the query at least
#: :attr:`~cadsearch.register.appearance.LookAlikeConfig.sure_agreement`. At the exact-match threshold (0.5) alone it
#: flipped the viewpoint of chair photos whose chair is not in the library (BENCHMARKS.md, "The look-alike check's
#: gate").
LOOK_ALIKE_MIN_MATCH = 0.7
#: ``vote_crops_below``: the extra views are asked only when the vote on the query and its mirror image gives its
#: winner less than this share of the mass. At 0.9 they gave the development photos all that asking them always
#: gave, asked for 9.3–15.2 % of those photos and 0.8–2.1 % of renders with the category-loss networks (49.0 % and
#: 3.2 % without the loss) (BENCHMARKS.md, "Asking more views only when the vote is unsure").
VOTE_CROPS_BELOW = 0.9

#: What ``crop`` accepts: the framing methods plus ``detect`` (the trained localiser: every object, each searched).
CROP_CHOICES = (*METHODS, "detect")

#: Keys of one result in DESIGN.md's ``search --json`` format, in order.
RESULT_KEYS = ("rank", "model_id", "name", "category", "score", "match", "polar_deg", "azimuth_deg", "roll_deg")


@dataclass(frozen=True)
class ModelMatch:
    """One ranked model.

    Attributes:
        rank: 1 for the best match.
        model_id, name, category: from the library catalog.
        score: ranking score in [0, 1]: the calibrated probability that this is the right model *if the object
            is one of the library's models* (on renders; a softmax over the library, so something always scores
            high).
        polar_deg: estimated camera polar θ in [0, 180], degrees from +Y.
        azimuth_deg: estimated camera azimuth φ in [0, 360), degrees from +Z towards +X.
        best_view_id: the model's best-matching rendered view (e.g. ``"chair-003/0017"``; for a model of a kind the
            network never trained on, the view whose view map is nearest the query's, where its pose comes from).
        match: exact-match probability in [0, 1]: that the object in the photo *is* this model, whether or not
            it is in the library (:mod:`cadsearch.search.matching`; from the registered outline's fit too when
            the model was registered and the index has an outline model); 0 when nothing computed it.
        roll_deg: the object's in-plane rotation in the image, counter-clockwise, degrees (0 unless registered).
        placement: where this model's render square lies in the searched image after registration
            (:class:`~cadsearch.register.Placement`, pixels); None when the result was not registered.
        silhouette_iou: IoU of the registered silhouette with the photo's object mask; None when not registered.
        match_features: the view features ``match`` was computed from (:data:`~cadsearch.search.matching.
            MATCH_FEATURES`), kept so that registration can recompute it with the outline; None when unknown.
    """

    rank: int
    model_id: str
    name: str
    category: str
    score: float
    polar_deg: float
    azimuth_deg: float
    best_view_id: str
    match: float = 0.0
    roll_deg: float = 0.0
    placement: Placement | None = None
    silhouette_iou: float | None = None
    match_features: tuple[float, ...] | None = field(default=None, repr=False, compare=False)


@dataclass
class FoundObject:
    """One object of a photo and its ranked models.

    Attributes:
        box: ``(x0, y0, x1, y1)`` in pixels of the searched image (the whole image when nothing was detected).
        detection_score: the localiser's confidence in [0, 1]; None when the whole image was searched.
        results: ranked models for this object, best first.
        frame: the square the network looked at (None: the whole image padded to a square).
        head_pose: the pose head's (polar, azimuth) for this object, degrees.
        pose_modes: (k, 3) the pose head's most probable distinct viewpoints for this object as (polar_deg,
            azimuth_deg, mass) (:attr:`cadsearch.models.Prediction.pose_modes`), or None; registration starts from
            them too.
    """

    box: tuple[float, float, float, float]
    detection_score: float | None
    results: list[ModelMatch]
    frame: Frame | None = None
    head_pose: tuple[float, float] | None = None
    pose_modes: np.ndarray | None = None


def is_exact_match(matches: list[ModelMatch]) -> bool:
    """The top result is the object itself: its ``match`` ≥ :data:`~cadsearch.search.matching.EXACT_MATCH_THRESHOLD`."""
    return bool(matches) and matches[0].match >= EXACT_MATCH_THRESHOLD


def _results_json(matches: list[ModelMatch]) -> list[dict[str, Any]]:
    results = []
    for m in matches:
        d = asdict(m)
        row = {key: d[key] for key in RESULT_KEYS}
        row["score"] = round(float(row["score"]), 4)
        row["match"] = round(float(row["match"]), 4)
        row["polar_deg"] = round(float(row["polar_deg"]), 2)
        row["azimuth_deg"] = round(float(row["azimuth_deg"]), 2) % 360.0
        row["roll_deg"] = round(float(row["roll_deg"]), 2)
        if m.placement is not None:
            row["placement"] = m.placement.to_json()
            row["silhouette_iou"] = round(float(m.silhouette_iou or 0.0), 4)
        results.append(row)
    return results


@dataclass
class SearchResult:
    """The answer to one query.

    Attributes:
        results: ranked models, best first (at most ``k``).
        timing_ms: milliseconds per stage (``embed``, ``search``, ``pose``, ...) and ``total``.
        head_pose: the pose head's own (polar, azimuth) estimate for the query, degrees.
        frame: the square of the query image the network looked at (pixels of the searched image), when the
            automatic crop found the object; None: the whole image padded to a square. Overlays are placed on it.
        objects: every object searched, most confident first (:meth:`Searcher.search` fills it: the detected
            objects with ``crop="detect"``, else one entry for the whole image); ``results``, ``head_pose`` and
            ``frame`` are those of the first.
        category_share: the category vote's winner's share of its mass, in (0, 1] (how sure the vote was); None
            when no vote ran.
        pose_modes: (k, 3) the pose head's distinct viewpoints (polar_deg, azimuth_deg, mass) for the query, or None.
    """

    results: list[ModelMatch]
    timing_ms: dict[str, float] = field(default_factory=dict)
    head_pose: tuple[float, float] | None = None
    frame: Frame | None = None
    objects: list[FoundObject] = field(default_factory=list)
    category_share: float | None = None
    pose_modes: np.ndarray | None = None

    @property
    def exact_match(self) -> bool:
        """Whether the top result is the object itself: its ``match`` ≥
        :data:`~cadsearch.search.matching.EXACT_MATCH_THRESHOLD` (False: only the closest models in the library)."""
        return is_exact_match(self.results)

    def to_json(self, query: str) -> dict[str, Any]:
        """DESIGN.md's ``search --json`` object: ``{"query", "results": [{rank, model_id, name, category, score,
        match, polar_deg, azimuth_deg}], "exact_match", "objects": [{"box": [x0, y0, x1, y1], "detection_score",
        "exact_match", "results": [...]}], "timing_ms": {"total"}}``; ``results`` and ``exact_match`` are the first
        (most confident) object's; ``objects`` only when :attr:`objects` is filled."""
        out: dict[str, Any] = {"query": query, "results": _results_json(self.results), "exact_match": self.exact_match}
        if self.objects:
            out["objects"] = [
                {
                    "box": [round(float(v), 1) for v in o.box],
                    "detection_score": None if o.detection_score is None else round(float(o.detection_score), 4),
                    "exact_match": is_exact_match(o.results),
                    "results": _results_json(o.results),
                }
                for o in self.objects
            ]
        out["timing_ms"] = {"total": round(self.timing_ms.get("total", 0.0), 2)}
        return out


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise InputError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
    return image


def default_arch(workspace: str | Path) -> str:
    """``transfer`` if its checkpoint and index both exist, else ``scratch``."""
    from cadsearch.models import checkpoint_path

    ws = Path(workspace)
    if checkpoint_path(ws, "transfer").is_file() and (index_dir(ws, "transfer") / "meta.json").is_file():
        return "transfer"
    return "scratch"


def query_of(pred: Any, i: int) -> dict[str, Any]:
    """Row ``i`` of a prediction as :meth:`Searcher.search_embedding`'s keyword arguments: ``embedding`` (D,),
    ``head_pose`` (polar, azimuth) in degrees, ``mirror_embedding`` (D,) when the predictor ran the mirror
    image (else None), ``pose_modes`` (k, 3) when its pose head has a distribution (else None), and ``view_map``
    (M,) when the network gives view maps (else None)."""
    mirror = getattr(pred, "mirror_embedding", None)
    modes = getattr(pred, "pose_modes", None)
    maps = getattr(pred, "view_map", None)
    return {
        "embedding": np.asarray(pred.embedding[i], np.float32),
        "head_pose": (float(pred.polar_deg[i]), float(pred.azimuth_deg[i])),
        "mirror_embedding": None if mirror is None else np.asarray(mirror[i], np.float32),
        "pose_modes": None if modes is None else np.asarray(modes[i], np.float64),
        "view_map": None if maps is None else np.asarray(maps[i], np.float32),
    }


def detection_frames(h: int, w: int, found: Sequence[Any], min_zoom: float = DETECT_MIN_ZOOM) -> list[Frame | None]:
    """The frame each detected object is searched in, for an (h, w) photo: its box framed as the automatic crop
    frames one (the object fills RENDER_FILL of the square), or None (the default framing of the whole photo) when
    that square would zoom in less than ``min_zoom`` (:data:`DETECT_MIN_ZOOM`). ``found``: objects with a ``box``
    ``(x0, y0, x1, y1)`` in pixels, as :meth:`cadsearch.detect.Localiser.detect` returns them."""
    frames: list[Frame | None] = []
    for d in found:
        f = frame_for(h, w, d.box, MARGIN)
        frames.append(f if f.side * min_zoom <= max(h, w) else None)
    return frames


def _outline_fit(m: ModelMatch) -> float | None:
    """``m``'s registered outline fit (silhouette IoU on the refinement's grid), None when its registration was not
    kept."""
    return m.silhouette_iou if m.placement is not None and m.silhouette_iou is not None else None


def may_outrank(
    first: ModelMatch, m: ModelMatch, margin: float = OUTLINE_RANK_MARGIN, below: float = OUTLINE_RANK_BELOW
) -> bool:
    """Whether ``m``, registered, could go before ``first`` by its outline (:func:`rank_by_outline`): of the same
    category, ``first`` scored below ``below`` and fitting less than 1 − ``margin`` (or not at all), since no fit
    exceeds 1. The searcher registers a model beyond ``refine_top`` only when this holds."""
    if m.category != first.category or first.score >= below:
        return False
    first_fit = _outline_fit(first)
    return first_fit is None or first_fit < 1.0 - margin


def rank_by_outline(
    results: list[ModelMatch], n: int, margin: float = OUTLINE_RANK_MARGIN, below: float = OUTLINE_RANK_BELOW
) -> list[ModelMatch]:
    """``results`` with the one of the first ``n`` that fits its object's outline best moved first, when the first
    model scores below ``below`` and that one is of the first model's category, was registered (a placement and
    ``silhouette_iou``) and fits better than the first model by more than ``margin`` (a first model whose
    registration was not kept fits not at all); ranks renumbered, scores unchanged, so the first result may then
    score below the second. Else ``results`` unchanged."""
    if not results:
        return results
    first = results[0]
    rivals = [i for i in range(1, min(n, len(results)))
              if may_outrank(first, results[i], margin, below) and _outline_fit(results[i]) is not None]  # fmt: skip
    if not rivals:
        return results
    best = max(rivals, key=lambda i: _outline_fit(results[i]))
    first_fit = _outline_fit(first)
    if first_fit is not None and _outline_fit(results[best]) <= first_fit + margin:
        return results
    out = list(results)
    out.insert(0, out.pop(best))
    return [replace(m, rank=i + 1) for i, m in enumerate(out)]


def plausible_size(registration: Any, square: float) -> bool:
    """Whether a :class:`~cadsearch.register.Registration`'s placed model is as large as an object that fills
    ``square`` (photo pixels) as in the renders, within :data:`REGISTER_SIZE_RANGE`: one shrunk onto part of the
    object is no evidence of its pose or fit."""
    return REGISTER_SIZE_RANGE[0] <= registration.extent / (RENDER_FILL * square) <= REGISTER_SIZE_RANGE[1]


def object_square(image: np.ndarray, obj: FoundObject, frame: Frame) -> float:
    """The side (photo pixels) of the square ``obj`` would fill as an object fills the renders: its detection box's
    crop square, else its ``frame`` (the square the network looked at)."""
    h, w = image.shape[:2]
    return frame_for(h, w, obj.box, MARGIN).side if obj.detection_score is not None else frame.side


def registered(match: ModelMatch, registration: Any) -> ModelMatch:
    """``match`` with a :class:`~cadsearch.register.Registration`'s pose (azimuth in [0, 360)), roll, placement
    and silhouette fit."""
    r = registration
    return replace(match, polar_deg=r.polar_deg, azimuth_deg=r.azimuth_deg % 360.0, roll_deg=r.roll_deg,
                   placement=r.placement, silhouette_iou=r.iou)  # fmt: skip


def registration_alternatives(
    obj: FoundObject, target: np.ndarray, frame: Frame, source: str
) -> list[tuple[float, float, float]]:
    """The poses besides each model's estimate that registration starts from for ``obj``: the pose head's modes
    (:attr:`FoundObject.pose_modes`, (polar_deg, azimuth_deg, mass)) when ``target`` (its object mask over ``frame``
    from ``source``, restricted to its box) can be trusted (:func:`~cadsearch.register.masks.mask_is_trusted`),
    else none: a partial mask (a chair's seat alone) is fitted better by a wrong pose, and must not overrule the
    search's."""
    if obj.pose_modes is None:
        return []
    box = obj.box if obj.detection_score is not None else None
    if not mask_is_trusted(target, frame, source, box):
        return []
    return [(float(p), float(a), float(m)) for p, a, m in np.asarray(obj.pose_modes, np.float64)]


def check_detect_threshold(threshold: float, crop: str | None) -> None:
    """Refuse a detection threshold (``--detect-threshold``) outside [0, 1], or one for a search that does not crop
    with a detector (``crop`` other than ``detect``; None: no detector), with one clear line (:class:`InputError`)."""
    if not 0.0 <= threshold <= 1.0:
        raise InputError(f"--detect-threshold must be between 0 and 1, got {threshold}")
    if crop != "detect":
        raise InputError("--detect-threshold needs --crop detect and a trained detector (cadsearch train detector)")


class Searcher:
    """Answers photo → ranked models with score and pose. Load once, search many times (thread-safe).

    Attributes:
        predictor: the network (``predict(images) -> embedding, polar_deg, azimuth_deg``).
        index: the :class:`~cadsearch.index.faiss_index.ViewIndex` of the library's views.
        library: the :class:`~cadsearch.library.Library` (names and categories), or None.
        temperature: score temperature (:mod:`cadsearch.search.calibration`, fitted for the index on first use).
        crop: how the object is found before embedding (:data:`CROP_CHOICES`; ``detect``: every object the
            trained ``localiser`` finds, each searched; ``auto``: crop to the object on a plain or gradient backdrop,
            else the whole photo; ``none``: never crop).
        localiser: the trained :class:`~cadsearch.detect.Localiser`, or None (``detect`` is then refused).
        detect_min_zoom: see :data:`DETECT_MIN_ZOOM`.
        detect_verify: with ``detect``, also search the most confident object as ``auto`` frames the whole photo
            and keep whichever answer has the higher top score, whatever the object's size (the whole photo's answer
            replaces that object, with the whole photo's box and no detection score). Off: measured
            (``benchmarks/localise.py``) it raised the development photos' azimuth Acc@30 only from 0.621 to 0.641
            (auto: 0.663) and lowered the synthetic clutter top-1 from 0.715 to 0.630 (a confidently wrong
            whole-photo answer wins).
        detect_verify_zoom: the same check for a most confident object whose square zooms in less than this
            (:data:`DETECT_VERIFY_ZOOM`; at most ``detect_min_zoom``: never).
        match_model: the exact-match model (fitted beside the temperature; default
            :data:`~cadsearch.search.matching.DEFAULT_MATCH_MODEL` until an index has its own).
        outline_model: the exact-match model of registered results (:data:`~cadsearch.search.matching.
            OUTLINE_FEATURES`: the view features and the registered outline's IoU), fitted beside it; None: registered
            results keep ``match_model``'s answer. Used for a registered result whose placement is plausible
            (:data:`REGISTER_SIZE_RANGE`), even when its outline fits too poorly to keep its pose (a poor fit is
            evidence that the object is another model).
        k_views: nearest views retrieved per query. Scores are calibrated for the ``k_views`` stored with the
            index (the default); with a smaller ``k`` they are no longer calibrated (ECE 0.007 at 256, 0.31 at 64).
        category_vote: rank the models of the most probable category (summed scores) first, so that a chair
            photo answers chairs even when one view of a cup lies nearest (needs the library's categories).
        mirror_vote: the category vote also asks the query's mirror image (already run by the network for the
            pose) and wants a category found in both (:func:`~cadsearch.search.scoring.category_first`).
        mirror_rank: the weight of the mirror image's similarities in each model's ranking similarity
            (:func:`~cadsearch.search.scoring.rerank_with_mirror`, default :data:`~cadsearch.search.scoring.
            MIRROR_RANK_WEIGHT`); 0 ranks by the query alone. The match model is fitted the same way
            (:mod:`cadsearch.search.calibration`).
        vote_crops: 0, 2 or 4 (default) shifted copies of the query's square (:data:`VOTE_SHIFT`) that the category
            vote asks too when it is unsure (``vote_crops_below``), each with its mirror image (geometric mean over
            all of them): chair first on the development photos 85.78 → 91.67 % for a transfer network trained
            without the category loss, 94.12 → 96.08 % with it (BENCHMARKS.md); such a query runs the network on 5×
            the images (p50 38 → 108 ms under load). Not with ``crop="detect"``.
        vote_crops_below: the crops are asked only when the vote on the query (and its mirror image) gives its
            winning category less than this share of its mass (:func:`~cadsearch.search.scoring.vote_share`);
            1.0 = always.
        vote_temperature: the category vote's softmax temperature (fitted beside the score temperature:
            :func:`~cadsearch.search.calibration.fit_category`, about twice as soft); None: the score temperature
            (an index calibrated before the category fit, or a library of one category).
        refine_top: how many of each object's best models are registered (:mod:`cadsearch.register`: pose, roll,
            scale and position refined until the model's silhouette lies on the photo's object mask); 0 = none.
            Needs the library (meshes) and an object mask: the detector's mask head, or a plain backdrop.
        outline_rank: with ``refine_top`` ≥ 1, up to this many of each object's best models are registered to
            compare their outlines, and one that fits clearly better than the first goes first
            (:data:`OUTLINE_RANK_MODELS`, :func:`rank_by_outline`); such a model keeps its registered pose. 1 = off.
        look_alikes: before registration, check each of those ``refine_top`` models for a pose that its rendered
            appearance supports better (:mod:`cadsearch.register.appearance`; needs the library, not a mask): a
            look-alike of its pose (the back, the mirror side), or one of the pose head's other probable viewpoints
            (:attr:`FoundObject.pose_modes`) or theirs. The check's pose is taken when the model's ``match`` is at
            least ``look_alike_min_match``, or when its render agrees with the query at least ``sure_agreement``
            (:class:`~cadsearch.register.appearance.LookAlikeConfig`: that close a likeness is itself evidence that
            the object is the model). Objects searched as the whole photo only, not detections in a room photo.
        look_alike_min_match: see ``look_alikes`` (default :data:`LOOK_ALIKE_MIN_MATCH`).
        look_alike_models: before that, render the best models of the first one's category (among the first
            ``rank_models`` of the registrar's :class:`~cadsearch.register.appearance.LookAlikeConfig`, 2), each at
            the pose its own look-alike pose check finds best (``rank_at_best_pose``; at its estimate when
            ``look_alikes`` is off; :meth:`~cadsearch.register.Registrar.compare_models`), and put first a
            lower-ranked one whose render agrees with the query clearly better (``rank_margin``) than the first
            model's, unless the first model's score is already ``rank_below`` or more; its score stays its own, so
            the first result may then score below the second. Whole-photo objects only, as ``look_alikes``; off
            when ``refine_top`` is 0.
        outline_twins: after registration, check each registered model of the ``refine_top`` best for an outline
            twin of its registered pose (the front seen as the back: the same silhouette) that the photo's
            appearance supports clearly better, and take the twin's registration when it fits as well
            (:meth:`~cadsearch.register.Registrar.check_outline_twin`), under the look-alike check's gate: the
            model's ``match`` at least ``look_alike_min_match``, or the twin's render agreeing at least
            ``sure_agreement``. Every object, detections in room photos included: drawn at the registered placement
            and roll, the renders are compared with the object where it lies, not with a square that holds other
            things.
        upright_pass: after that, an object whose first model was registered at a roll of at least
            :data:`UPRIGHT_MIN_ROLL` is searched again with its square turned upright by that roll, its models
            registered as the first ones were, and that answer taken when its first model fits the object's mask
            better at about the same roll (:data:`UPRIGHT_FIT_MARGIN`, :data:`UPRIGHT_ROLL_AGREEMENT`). It costs a
            network pass and the registrations again, for rolled objects only.
        other_starts: after that, each registered model of the ``refine_top`` best whose outline fits the mask at least
            :data:`OTHER_STARTS_MIN_FIT` is registered again from other starts around its pose (the mirrored
            azimuth, ±45° azimuth, ±20° polar) and takes that registration when it fits better and the photo's
            appearance agrees, under the outline twins' gate (:meth:`~cadsearch.register.Registrar.
            check_other_starts`). It costs a registration and, where it finds a better fit, a judge pass.
        far_starts: last, an object whose first model could not be registered (no fit of at least
            :data:`REGISTER_MIN_FIT` at a plausible size) while its mask was found has that model registered from
            starts all around its pose, and takes the registration when it fits at least REGISTER_MIN_FIT and the
            photo's appearance agrees better, under the outline twins' gate
            (:meth:`~cadsearch.register.Registrar.check_far_starts`). It costs two registrations and a judge pass
            (about 0.3 s) on such objects only. A first model registered with a fit under ``far_starts_below`` is
            registered from the ring of starts alone (about 0.15 s) and takes that registration only when it fits
            at least :data:`FAR_STARTS_REPLACE_FIT` (where the registration fitted under :data:`OTHER_STARTS_MIN_FIT`)
            or better by :data:`FAR_START_FIT_MARGIN`, and the appearance agrees better, as above.
        far_starts_below: see ``far_starts`` (silhouette IoU; 0: unregistered first models only).
        view_maps: the view maps of the indexed views of models whose kind the network never trained on
            (:mod:`cadsearch.index.view_maps`, loaded with the index by :meth:`from_workspace`), or None. Such a
            model's pose is then read from the views whose maps are nearest the query's
            (:func:`~cadsearch.search.pose.pose_from_view_maps`) instead of the pose head and the embedding.
        kinds: the library's kind profiles (:mod:`cadsearch.search.kinds`: what ImageNet's classifier says of each
            category's renders; :meth:`from_workspace` loads or makes them), or None: the category vote alone.
        kind_prior: the power of the query's kind posterior in the category vote (:data:`~cadsearch.search.kinds.
            KIND_PRIOR_POWER`); 0 turns the prior off. It reorders categories only: a library of one category, or
            a search without the vote, never runs the classifier.
        kind_classifier: the ImageNet classifier (:class:`~cadsearch.models.imagenet.ImageNetClassifier`; default:
            torch eager, or the workspace's ONNX export from :meth:`from_workspace`).
        appearance_onnx: the ONNX export of the look-alike checks' body (:class:`~cadsearch.register.appearance.
            AppearanceJudge`; :meth:`from_workspace`: in the workspace's ``index/``); None: torch eager.

    ``threads`` sets torch's intra-op threads (process-wide; default 1, None leaves it unchanged).
    """

    def __init__(
        self,
        predictor: Any,
        index: ViewIndex,
        library: Any = None,
        *,
        temperature: float | None = None,
        match_model: MatchModel | None = None,
        outline_model: MatchModel | None = None,
        k_views: int | None = None,
        pose: PoseConfig = PoseConfig(),
        threads: int | None = 1,
        crop: str = "auto",
        category_vote: bool = True,
        mirror_vote: bool = True,
        mirror_rank: float = MIRROR_RANK_WEIGHT,
        vote_temperature: float | None = None,
        vote_crops: int = 4,
        vote_crops_below: float = VOTE_CROPS_BELOW,
        localiser: Any = None,
        detect_min_zoom: float = DETECT_MIN_ZOOM,
        detect_verify: bool = False,
        detect_verify_zoom: float = DETECT_VERIFY_ZOOM,
        refine_top: int = 1,
        outline_rank: int = OUTLINE_RANK_MODELS,
        look_alikes: bool = True,
        look_alike_min_match: float = LOOK_ALIKE_MIN_MATCH,
        look_alike_models: bool = True,
        outline_twins: bool = True,
        upright_pass: bool = True,
        other_starts: bool = True,
        far_starts: bool = True,
        far_starts_below: float = FAR_STARTS_BELOW,
        view_maps: IndexViewMaps | None = None,
        kinds: KindProfiles | None = None,
        kind_prior: float = KIND_PRIOR_POWER,
        kind_classifier: Any = None,
        appearance_onnx: str | Path | None = None,
    ) -> None:
        if threads:
            # One photo through a small CNN gains little from intra-op threads, and on a shared 2-core machine
            # they oversubscribe the CPU (p50 12 ms with 1 thread vs ~190 ms with 2 under load). Concurrent
            # searches (the web app's thread pool) get their parallelism from the pool. Note: torch's setting
            # is process-wide; pass threads=None to leave it alone.
            import torch

            torch.set_num_threads(threads)
        if len(index) == 0:
            raise InputError("the search index is empty; render views and run `cadsearch index`")
        self.localiser = localiser
        self.detect_min_zoom = float(detect_min_zoom)
        self.detect_verify = bool(detect_verify)
        self.detect_verify_zoom = float(detect_verify_zoom)
        self.crop = self._check_crop(crop)
        self.predictor = predictor
        self.index = index
        self.library = library
        calibration = index.meta.get("calibration", {})
        self.temperature = float(temperature or calibration.get("temperature") or DEFAULT_TEMPERATURE)
        self.match_model = match_model or DEFAULT_MATCH_MODEL
        self.outline_model = outline_model
        self.k_views = int(k_views or index.meta.get("k_views") or 256)
        self.pose = pose
        self.category_vote = category_vote
        self.mirror_vote = mirror_vote
        if mirror_rank < 0:
            raise InputError(f"mirror_rank must be 0 or more, got {mirror_rank}")
        self.mirror_rank = float(mirror_rank)
        if vote_crops not in (0, 2, 4):
            raise InputError(f"vote_crops must be 0, 2 or 4, got {vote_crops}")
        self.vote_crops = int(vote_crops)
        if not 0.0 <= vote_crops_below <= 1.0:
            raise InputError(f"vote_crops_below must be between 0 and 1, got {vote_crops_below}")
        self.vote_crops_below = float(vote_crops_below)
        fitted = (calibration.get("category") or {}).get("temperature")
        self.vote_temperature = float(vote_temperature or fitted or self.temperature)
        if refine_top < 0:
            raise InputError(f"--refine-top must be 0 or more, got {refine_top}")
        self.refine_top = int(refine_top)
        if outline_rank < 1:
            raise InputError(f"outline_rank must be 1 or more, got {outline_rank}")
        self.outline_rank = int(outline_rank)
        self.look_alikes = bool(look_alikes)
        if not 0.0 <= look_alike_min_match <= 1.0:
            raise InputError(f"look_alike_min_match must be between 0 and 1, got {look_alike_min_match}")
        self.look_alike_min_match = float(look_alike_min_match)
        self.look_alike_models = bool(look_alike_models)
        self.outline_twins = bool(outline_twins)
        self.upright_pass = bool(upright_pass)
        self.other_starts = bool(other_starts)
        self.far_starts = bool(far_starts)
        if not 0.0 <= far_starts_below <= 1.0:
            raise InputError(f"far_starts_below must be between 0 and 1, got {far_starts_below}")
        self.far_starts_below = float(far_starts_below)
        self.view_maps = view_maps
        if kind_prior < 0:
            raise InputError(f"kind_prior must be 0 or more, got {kind_prior}")
        self.kinds = kinds
        self.kind_prior = float(kind_prior)
        if kinds is not None and kind_classifier is None:
            from cadsearch.models.imagenet import ImageNetClassifier

            kind_classifier = ImageNetClassifier("lite0")  # loads on its first query (torch eager: no file to write)
        self.kind_classifier = kind_classifier
        self.appearance_onnx = Path(appearance_onnx) if appearance_onnx is not None else None
        self.registrar = Registrar(library, appearance_onnx=appearance_onnx) if library is not None else None
        names, inverse = np.unique(index.table.model_id.astype(str), return_inverse=True)
        self.model_ids: list[str] = names.tolist()
        self._model_index = inverse.astype(np.int64)
        # per model: the vector ids and (k, M) view maps of its views that have maps (grouped once, not per query)
        self._maps_of: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        if view_maps is not None and len(view_maps):
            owner = self._model_index[view_maps.ids]
            for m in np.unique(owner):
                at = np.flatnonzero(owner == m)
                self._maps_of[int(m)] = (view_maps.ids[at], view_maps.maps[at])
        self._info: dict[str, tuple[str, str]] = {}
        self._category_of = np.full(len(self.model_ids), -1, np.int64)  # category index per model, -1 unknown
        # per category index of the vote: its row in self.kinds.categories, -1 none (see _kind_posteriors)
        self._kind_rows = np.zeros(0, np.int64)
        # per model: whether the network trained on objects of its category (search.pose trusts its head there)
        self._category_trained = np.ones(len(self.model_ids), bool)
        self._info_lock = threading.Lock()
        self._refresh_info()

    def with_options(self, **options: Any) -> Searcher:
        """The same network, index, library, detector and calibration with other search options (the keyword
        arguments of :class:`Searcher`), e.g. ``with_options(look_alikes=False)``: ablations compare searches that
        differ in one option only. Torch's thread setting is left as it is."""
        current = {
            "temperature": self.temperature,
            "match_model": self.match_model,
            "outline_model": self.outline_model,
            "k_views": self.k_views,
            "pose": self.pose,
            "threads": None,
            "crop": self.crop,
            "category_vote": self.category_vote,
            "mirror_vote": self.mirror_vote,
            "mirror_rank": self.mirror_rank,
            "vote_temperature": self.vote_temperature,
            "vote_crops": self.vote_crops,
            "vote_crops_below": self.vote_crops_below,
            "localiser": self.localiser,
            "detect_min_zoom": self.detect_min_zoom,
            "detect_verify": self.detect_verify,
            "detect_verify_zoom": self.detect_verify_zoom,
            "refine_top": self.refine_top,
            "outline_rank": self.outline_rank,
            "look_alikes": self.look_alikes,
            "look_alike_min_match": self.look_alike_min_match,
            "look_alike_models": self.look_alike_models,
            "outline_twins": self.outline_twins,
            "upright_pass": self.upright_pass,
            "other_starts": self.other_starts,
            "far_starts": self.far_starts,
            "far_starts_below": self.far_starts_below,
            "view_maps": self.view_maps,
            "kinds": self.kinds,
            "kind_prior": self.kind_prior,
            "kind_classifier": self.kind_classifier,
            "appearance_onnx": self.appearance_onnx,
        }
        return Searcher(self.predictor, self.index, self.library, **(current | options))

    def set_detect_threshold(self, threshold: float) -> None:
        """Find objects down to detection score ``threshold`` (0–1; ``cadsearch search --detect-threshold``): higher
        means fewer false objects in a room photo and more objects missed. Searchers made from this one before
        (:meth:`with_options`) keep their threshold: this one gets its own copy of the localiser.

        Raises:
            InputError: see :func:`check_detect_threshold`, or no detector.
        """
        check_detect_threshold(threshold, self.crop if self.localiser is not None else None)
        self.localiser = copy.copy(self.localiser)
        self.localiser.threshold = float(threshold)

    def _check_crop(self, crop: str) -> str:
        if crop == "detect":
            if self.localiser is None:
                raise InputError("--crop detect needs a trained detector: run `cadsearch train detector` first")
            return crop
        if crop not in CROP_CHOICES:
            raise InputError(f"unknown crop method {crop!r}; choose one of {', '.join(CROP_CHOICES)}")
        return check_crop_method(crop)

    @classmethod
    def from_workspace(cls, workspace: str | Path, model: str | None = None, **kwargs: Any) -> Searcher:
        """Load the ``model`` (``scratch`` | ``transfer`` | None = :func:`default_arch`) network and its index,
        and the detector when one is trained (``crop`` then defaults to ``detect``, else to ``auto``).

        Raises:
            InputError: no checkpoint (train first), no index (``cadsearch index`` first), or an index built
                with another checkpoint (index again).
        """
        from cadsearch.detect import Localiser, detector_dir, has_detector
        from cadsearch.index import load_index
        from cadsearch.index.embed import file_fingerprint
        from cadsearch.library import Library
        from cadsearch.models import checkpoint_path, list_models, load_predictor

        ws = Path(workspace)
        arch = model or default_arch(ws)
        if arch not in list_models():
            raise InputError(f"--model must be {' or '.join(list_models())}, got {arch!r}")
        ckpt = checkpoint_path(ws, arch)
        if not ckpt.is_file():
            raise InputError(f"no trained {arch} model in {ws}; run `cadsearch train {arch}` then `cadsearch index`")
        index = load_index(ws, arch)
        if index.meta.get("fingerprint") not in (None, file_fingerprint(ckpt)):
            raise InputError(
                f"the {arch} index was built with another checkpoint; run `cadsearch index --model {arch}` again"
            )
        predictor = load_predictor(ckpt)
        if "view_maps" not in kwargs:
            kwargs["view_maps"] = load_view_maps(index_dir(ws, arch), index.table, index.meta.get("fingerprint"))
        if "kinds" not in kwargs and kwargs.get("kind_prior", KIND_PRIOR_POWER) and kwargs.get("category_vote", True):
            from cadsearch.search.kinds import imagenet_classifier, load_or_build_kind_profiles

            kwargs.setdefault("kind_classifier", imagenet_classifier(ws))
            kwargs["kinds"] = load_or_build_kind_profiles(ws, kwargs["kind_classifier"])
        kwargs.setdefault(
            "appearance_onnx", ws / "index" / APPEARANCE_ONNX_FILE.format(input_size=LookAlikeConfig().input_size)
        )
        if kwargs.get("localiser") is None and has_detector(ws):
            kwargs["localiser"] = Localiser(detector_dir(ws))
        if kwargs.get("crop") is None:
            kwargs["crop"] = "detect" if kwargs.get("localiser") is not None else "auto"
        if any(kwargs.get(key) is None for key in ("temperature", "match_model", "vote_temperature")):
            from cadsearch.search.calibration import load_or_fit_calibration

            calibration = load_or_fit_calibration(ws, arch, index, predictor)
            if kwargs.get("temperature") is None:
                kwargs["temperature"] = calibration.get("temperature")
            if kwargs.get("vote_temperature") is None:
                kwargs["vote_temperature"] = (calibration.get("category") or {}).get("temperature")
            if kwargs.get("match_model") is None and calibration.get("match"):
                # unusable: the default model until the index is calibrated again
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    kwargs["match_model"] = MatchModel.from_dict(calibration["match"])
                if kwargs.get("outline_model") is None and calibration["match"].get("outline"):
                    with contextlib.suppress(ValueError, KeyError, TypeError, AttributeError):
                        kwargs["outline_model"] = MatchModel.from_dict(
                            calibration["match"]["outline"], OUTLINE_FEATURES
                        )
        return cls(predictor, index, Library.open(ws), **kwargs)

    # --- catalog ------------------------------------------------------------------------------------------

    def _refresh_info(self) -> None:
        if self.library is None:
            return
        info = {m.model_id: (m.name, m.category) for m in self.library.list()}
        names = sorted({category for _, category in info.values()})
        category_of = np.array([names.index(info[m][1]) if m in info else -1 for m in self.model_ids], np.int64)
        # none known: every model counts as trained on
        known = trained_categories(self.predictor, {m: c for m, (_, c) in info.items()})
        category_trained = np.array([not known or info.get(m, ("", ""))[1] in known for m in self.model_ids], bool)
        kind_rows = np.array([self.kinds.categories.index(c) if c in self.kinds.categories else -1 for c in names]
                             if self.kinds is not None else [], np.int64)  # fmt: skip
        with self._info_lock:
            self._info = info
            self._category_of = category_of
            self._category_trained = category_trained
            self._kind_rows = kind_rows

    def _describe(self, model_id: str) -> tuple[str, str]:
        if model_id not in self._info:
            self._refresh_info()  # a model added since loading
        return self._info.get(model_id, (model_id, "unknown"))

    # --- search -------------------------------------------------------------------------------------------

    def search(
        self, image: np.ndarray, k: int = 5, crop: str | None = None, refine_top: int | None = None
    ) -> SearchResult:
        """Rank the library's models for one photo (for every object in it, with ``crop="detect"``).

        Args:
            image: (H, W, 3) uint8 RGB (any size; framed as a square around the object and resized for the
                network).
            k: how many models to return per object (fewer if fewer are found).
            crop: overrides the searcher's crop method for this query (:data:`CROP_CHOICES`).
            refine_top: overrides :attr:`refine_top` for this query.

        Returns:
            :class:`SearchResult` with ``objects`` (most confident first; one entry for the whole image when
            nothing was detected or ``crop`` is not ``detect``), ``results`` = the first object's, and
            ``timing_ms`` keys ``detect`` (``detect`` only), ``embed`` (crop, network and the kind prior's
            classifier), ``vote_crops`` (the part of ``embed`` spent on the vote's extra views, only when it asked
            them), ``search``, ``pose``, ``register``, ``total``.
        """
        method = self.crop if crop is None else self._check_crop(crop)
        top = self.refine_top if refine_top is None else int(refine_top)
        if k < 1:
            raise InputError(f"k (--top) must be at least 1, got {k}")
        if method == "detect":
            return self._search_objects(image, k, top)
        t0 = time.perf_counter()
        pred, frame = self.predict_query(image, method)
        query = query_of(pred, 0) | {"kind_posterior": self._kind_posteriors(image, [frame])[0]}
        t1 = time.perf_counter()
        asked, k = k, self._models_ranked(k, top)
        result = self.search_embedding(**query, k=k)
        crops_ms = None
        if self._vote_unsure(result):  # more views of the query for the category vote, and the search again
            t = time.perf_counter()
            extra = self._vote_embeddings(image, frame)
            crops_ms = 1000 * (time.perf_counter() - t)
            t1 += crops_ms / 1000
            result = self.search_embedding(**query, k=k, vote_embeddings=extra)
        result.frame = frame
        h, w = image.shape[:2]
        whole = FoundObject((0.0, 0.0, float(w), float(h)), None, result.results, frame, result.head_pose,
                            result.pose_modes)  # fmt: skip
        result.objects = [whole]
        result.timing_ms = {"embed": 1000 * (t1 - t0)} | result.timing_ms
        if crops_ms is not None:
            result.timing_ms["vote_crops"] = crops_ms  # part of embed: the crops' network time
        result.timing_ms["register"] = self._register(image, result.objects, top)
        whole.results = whole.results[:asked]
        result.results = result.objects[0].results
        result.timing_ms["total"] = 1000 * (time.perf_counter() - t0)
        return result

    def _models_ranked(self, k: int, top: int) -> int:
        """How many models each object's search ranks for a query that returns ``k`` and registers ``top``: at least
        those that registration compares (:attr:`outline_rank`, and the look-alike model check's ``rank_models``),
        so that the first model does not depend on how many are asked for; the rest are dropped after."""
        if top <= 0 or self.registrar is None:
            return k
        compared = self.outline_rank
        if self.look_alike_models:
            compared = max(compared, self.registrar.judge.config.rank_models)
        return max(k, compared)

    def _search_objects(self, image: np.ndarray, k: int, refine_top: int) -> SearchResult:
        """``crop="detect"``: every detected object framed as the networks were trained and searched; nothing
        detected: the whole photo as ``auto`` frames it, with ``detection_score`` None."""
        t0 = time.perf_counter()
        image = _check_image(image)
        h, w = image.shape[:2]
        found = self.localiser.detect(image)
        t1 = time.perf_counter()
        if not found:
            result = self.search(image, k, crop="auto", refine_top=refine_top)
            result.timing_ms = {"detect": 1000 * (t1 - t0)} | result.timing_ms
            result.timing_ms["total"] = 1000 * (time.perf_counter() - t0)
            return result
        frames = detection_frames(h, w, found, self.detect_min_zoom)
        asked, k = k, self._models_ranked(k, refine_top)
        # the most confident object is also searched as auto frames the whole photo (a chair filling a product shot
        # is often boxed only in part), always with detect_verify, else where its square zooms in little
        # (DETECT_VERIFY_ZOOM); the more confident answer is kept. When the whole photo's wins, the first object is
        # the whole photo (its box, no detection score), as when nothing is found: registration, the look-alike
        # checks and the overlay then take the whole photo's object, not the box of a part of it.
        verify = frames[0] is not None and (self.detect_verify or frames[0].side * self.detect_verify_zoom > max(h, w))
        whole = frame_query(image, "auto") if verify else None
        batch = frames + [whole] if verify else frames
        pred = self.predictor.predict([image] * len(batch), batch_size=len(batch), frames=batch)
        kinds = self._kind_posteriors(image, batch)
        t2 = time.perf_counter()
        objects, timing = [], {"detect": 1000 * (t1 - t0), "embed": 1000 * (t2 - t1), "search": 0.0, "pose": 0.0}
        for i, (d, frame) in enumerate(zip(found, frames, strict=True)):
            part = self.search_embedding(**query_of(pred, i), k=k, kind_posterior=kinds[i])
            head = part.head_pose
            timing["search"] += part.timing_ms["search"]
            timing["pose"] += part.timing_ms["pose"]
            objects.append(FoundObject(d.box, d.score, part.results, frame, head, part.pose_modes))
        if verify:
            part = self.search_embedding(**query_of(pred, len(batch) - 1), k=k, kind_posterior=kinds[-1])
            head = part.head_pose
            crop_score = objects[0].results[0].score if objects[0].results else 0.0
            if part.results and part.results[0].score > crop_score:
                objects[0] = FoundObject((0.0, 0.0, float(w), float(h)), None, part.results, whole, head,
                                         part.pose_modes)  # fmt: skip
        timing["register"] = self._register(image, objects, refine_top)
        for obj in objects:
            obj.results = obj.results[:asked]
        first = objects[0]
        timing["total"] = 1000 * (time.perf_counter() - t0)
        return SearchResult(first.results, timing, first.head_pose, first.frame, objects)

    def _register(self, image: np.ndarray, objects: list[FoundObject], top: int) -> float:
        """Register the ``top`` best models of each object in place (:mod:`cadsearch.register`): refined polar,
        azimuth, roll, placement and silhouette IoU. Objects without a mask, and registrations that fit poorly or
        implausibly (:data:`REGISTER_MIN_FIT`, :data:`REGISTER_SIZE_RANGE`), keep the search's result. Where the
        mask can be trusted (:func:`~cadsearch.register.masks.mask_is_trusted`), the pose head's other modes
        (:attr:`FoundObject.pose_modes`) are tried as starts too, weighed by their probability. Then the best-fitting
        of the first :attr:`outline_rank` models may go first (:func:`rank_by_outline`), each of the ``top``
        registered ones may take an outline twin's registration (:attr:`outline_twins`), an object registered
        as seen by a rolled camera may take the answer of its square turned upright (:attr:`upright_pass`), a
        registered model may take a registration from other starts around its pose (:attr:`other_starts`), and a
        first model still unregistered, or fitting poorly, may take one from starts all around its pose
        (:attr:`far_starts`).
        Returns ms."""
        if top <= 0 or self.registrar is None:
            return 0.0
        t0 = time.perf_counter()
        h, w = image.shape[:2]
        for obj in objects:
            if not obj.results:
                continue
            frame = obj.frame if obj.frame is not None else frame_for(h, w)
            found = object_mask(image, frame, self.localiser)
            if found is None:
                self._check_appearance(image, obj, top)
                continue
            target, source = found
            if obj.detection_score is not None:  # the mask may hold other objects too: keep this one's box
                target = restrict_to_box(target, frame, obj.box)
            self._register_object(image, obj, top, target, source, frame)
            if self.upright_pass:
                self._search_upright(image, obj, top, target, source, frame)
            if self.other_starts:
                self._check_other_starts(image, obj, top, target, frame)
            if self.far_starts:
                self._check_far_starts(image, obj, target, frame)
        return 1000 * (time.perf_counter() - t0)

    def _check_appearance(self, image: np.ndarray, obj: FoundObject, top: int) -> None:
        """The look-alike checks before registration (:attr:`look_alike_models`, :attr:`look_alikes`), in place,
        on objects searched as the whole photo."""
        checked: dict[str, LookAlikeChoice] = {}  # each model's pose check, made once
        if self.look_alike_models and obj.detection_score is None:
            obj.results = self._rank_look_alike_models(image, obj, checked)
        if self.look_alikes and obj.detection_score is None:
            # only a square that holds the object alone (a product shot, a render) is compared with the renders: a
            # detection's square in a room photo holds other things, often with a tilted camera, and there the check
            # changed 5 of 40 rolled room composites' answers, 4 for the worse (BENCHMARKS.md)
            obj.results = self._check_look_alikes(image, obj, top, checked)

    def _register_object(
        self, image: np.ndarray, obj: FoundObject, top: int, target: np.ndarray, source: str, frame: Frame
    ) -> None:
        """:meth:`_register` for one object with its mask ``target`` over ``frame`` (from ``source``: "backdrop" or
        "detector"): the look-alike checks, the registrations, the outline ranking and the outline twins."""
        self._check_appearance(image, obj, top)
        alternatives = registration_alternatives(obj, target, frame, source)
        square = object_square(image, obj, frame)
        results = list(obj.results)
        for i, m in enumerate(results[: max(top, self.outline_rank)]):
            if i >= top and not may_outrank(results[0], m):
                continue  # registered only to compare outlines, and it cannot win
            reg = self.registrar.refine(m.model_id, target, frame, m.polar_deg, m.azimuth_deg, alternatives)
            if reg is None or not plausible_size(reg, square):
                continue  # implausible (shrunk onto part of the object): neither its pose nor its fit is evidence
            if self.outline_model is not None and m.match_features is not None:
                x = np.asarray([*m.match_features, reg.iou], np.float64)
                results[i] = m = replace(m, match=float(self.outline_model.predict(x)[0]))
            if reg.iou < REGISTER_MIN_FIT:
                continue
            results[i] = registered(m, reg)
        results = rank_by_outline(results, self.outline_rank)
        for i, m in enumerate(results[:top] if self.outline_twins else ()):
            if m.placement is None:
                continue
            pose = (m.polar_deg, m.azimuth_deg, m.placement, m.silhouette_iou)
            least = self._least_agreement(m)
            twin = self.registrar.check_outline_twin(m.model_id, image, target, frame, *pose, least)
            if twin is not None and twin.iou >= REGISTER_MIN_FIT and plausible_size(twin, square):
                results[i] = registered(m, twin)
        obj.results = results

    def _check_other_starts(
        self, image: np.ndarray, obj: FoundObject, top: int, target: np.ndarray, frame: Frame
    ) -> None:
        """The other-starts check (:attr:`other_starts`) of ``obj``'s ``top`` best models, in place: each registered
        one that fits the mask (``target`` over ``frame``) at least :data:`OTHER_STARTS_MIN_FIT` takes the
        registration :meth:`~cadsearch.register.Registrar.check_other_starts` finds, when it is plausible in size
        and fits at least :data:`REGISTER_MIN_FIT`."""
        square = object_square(image, obj, frame)
        results = list(obj.results)
        for i, m in enumerate(results[:top]):
            if m.placement is None or m.silhouette_iou < OTHER_STARTS_MIN_FIT:
                continue
            pose = (m.polar_deg, m.azimuth_deg, m.placement, m.silhouette_iou)
            other = self.registrar.check_other_starts(m.model_id, image, target, frame, *pose,
                                                      self._least_agreement(m))  # fmt: skip
            if other is not None and other.iou >= REGISTER_MIN_FIT and plausible_size(other, square):
                results[i] = registered(m, other)
        obj.results = results

    def _check_far_starts(self, image: np.ndarray, obj: FoundObject, target: np.ndarray, frame: Frame) -> None:
        """The far-starts check (:attr:`far_starts`) of ``obj``'s first model, in place, when it is unregistered or
        fits the mask (``target`` over ``frame``) under :attr:`far_starts_below`: it takes the registration
        :meth:`~cadsearch.register.Registrar.check_far_starts` finds at a plausible size and a fit of at least
        :data:`REGISTER_MIN_FIT` (unregistered) or, from the ring alone (the wide registration found no such fit on
        the composites and development photos, and would double the cost), :data:`FAR_STARTS_REPLACE_FIT` (fitting
        under :data:`OTHER_STARTS_MIN_FIT`) or the registration's fit + :data:`FAR_START_FIT_MARGIN`."""
        m = obj.results[0]
        if m.placement is None:
            min_fit, wide = REGISTER_MIN_FIT, True
        elif m.silhouette_iou < self.far_starts_below:
            poor = m.silhouette_iou < OTHER_STARTS_MIN_FIT
            min_fit, wide = FAR_STARTS_REPLACE_FIT if poor else m.silhouette_iou + FAR_START_FIT_MARGIN, False
        else:
            return
        square = object_square(image, obj, frame)
        far = self.registrar.check_far_starts(m.model_id, image, target, frame, m.polar_deg, m.azimuth_deg, min_fit,
                                              self._least_agreement(m), lambda reg: plausible_size(reg, square),
                                              wide=wide)  # fmt: skip
        if far is not None:
            obj.results = [registered(m, far), *obj.results[1:]]

    def _search_upright(
        self, image: np.ndarray, obj: FoundObject, top: int, target: np.ndarray, source: str, frame: Frame
    ) -> None:
        """The upright pass (:attr:`upright_pass`) of one registered object, in place: when its first model was
        registered at a roll of at least :data:`UPRIGHT_MIN_ROLL`, its square turned upright
        (:func:`~cadsearch.framing.upright_image`) is searched, and those models registered against the same mask
        (``target`` over ``frame``) as :meth:`_register_object` does; their answer replaces the object's when its
        first model fits the mask better (by more than :data:`UPRIGHT_FIT_MARGIN`) at a roll within
        :data:`UPRIGHT_ROLL_AGREEMENT` of the first registration's."""
        first = obj.results[0]
        if first.placement is None or abs(first.roll_deg) < UPRIGHT_MIN_ROLL:
            return
        square = upright_image(image, UPRIGHT_SIZE, frame, first.roll_deg)
        pred = self.predictor.predict([square], batch_size=1, frames=[None])
        part = self.search_embedding(**query_of(pred, 0), k=len(obj.results),
                                     kind_posterior=self._kind_posteriors(square, [None])[0])  # fmt: skip
        upright = FoundObject(obj.box, obj.detection_score, part.results, obj.frame, part.head_pose, part.pose_modes)
        if not upright.results:
            return
        self._register_object(image, upright, top, target, source, frame)
        best = upright.results[0]
        if (best.placement is not None and best.silhouette_iou > first.silhouette_iou + UPRIGHT_FIT_MARGIN
                and abs(best.roll_deg - first.roll_deg) <= UPRIGHT_ROLL_AGREEMENT):  # fmt: skip
            obj.results = upright.results  # head_pose stays the pose head's own answer for the photo's square

    def _rank_look_alike_models(
        self, image: np.ndarray, obj: FoundObject, checked: dict[str, LookAlikeChoice] | None = None
    ) -> list[ModelMatch]:
        """``obj``'s results with the best-agreeing of its first ``rank_models`` models of the first one's category
        moved to the front when its render, at its own pose, agrees with the query better than the first model's by
        ``rank_margin``, if the first model's score is below ``rank_below``
        (:class:`~cadsearch.register.appearance.LookAlikeConfig`); ranks renumbered, scores unchanged. With
        ``rank_at_best_pose``, each model is rendered at the pose its own pose check finds best (kept in ``checked``
        for :meth:`_check_look_alikes`)."""
        cfg = self.registrar.judge.config
        results = list(obj.results)
        if not results or results[0].score >= cfg.rank_below:
            return results
        # the category vote chose the kind with more evidence than two renders: only models of that kind compete
        at = [i for i, m in enumerate(results[: cfg.rank_models]) if m.category == results[0].category]
        if len(at) < 2:
            return results
        poses = [(results[i].polar_deg, results[i].azimuth_deg) for i in at]
        checked = {} if checked is None else checked
        if cfg.rank_at_best_pose and self.look_alikes:
            for j, i in enumerate(at):
                choice = self._pose_check(image, obj, results[i])
                if choice is None:
                    return results
                checked[results[i].model_id] = choice
                best = int(np.argmax(choice.agreement))
                poses[j] = choice.candidates[best]
        agree = self.registrar.compare_models(
            image, obj.frame, [(results[i].model_id, *pose) for i, pose in zip(at, poses, strict=True)]
        )
        if agree is None:
            return results
        best = int(np.argmax(agree))
        if best == 0 or agree[best] <= agree[0] + cfg.rank_margin:
            return results
        results.insert(0, results.pop(at[best]))
        return [replace(m, rank=i + 1) for i, m in enumerate(results)]

    def _pose_check(self, image: np.ndarray, obj: FoundObject, m: ModelMatch) -> LookAlikeChoice | None:
        """The look-alike pose check of ``m`` in ``obj`` (:meth:`~cadsearch.register.Registrar.check_look_alikes`,
        with the pose head's modes), or None."""
        modes = () if obj.pose_modes is None else np.asarray(obj.pose_modes)[:, :2].tolist()
        return self.registrar.check_look_alikes(m.model_id, image, obj.frame, m.polar_deg, m.azimuth_deg, modes)

    def _check_look_alikes(
        self, image: np.ndarray, obj: FoundObject, top: int, checked: dict[str, LookAlikeChoice] | None = None
    ) -> list[ModelMatch]:
        """``obj``'s results with the pose of each of its ``top`` best models replaced by the pose its rendered
        appearance supports (a look-alike of its pose, or one of the pose head's other viewpoints or theirs), where
        one does and the check's answer can be trusted (see ``look_alikes``; before registration, which cannot tell
        a pose from its look-alikes). ``checked``: checks already made, by model id."""
        results = list(obj.results)
        checked = checked or {}
        for i, m in enumerate(results[:top]):
            choice = checked.get(m.model_id) or self._pose_check(image, obj, m)
            if choice is None or not choice.chosen:
                continue
            if choice.agreement[choice.chosen] >= self._least_agreement(m):
                results[i] = replace(m, polar_deg=choice.polar_deg, azimuth_deg=choice.azimuth_deg)
        return results

    def _least_agreement(self, m: ModelMatch) -> float:
        """The agreement (cosine) a render of ``m``'s model must reach with the query before the look-alike check or
        the outline-twin check takes its pose: none (−inf) when ``m.match`` is at least :attr:`look_alike_min_match`,
        else the judge's ``sure_agreement``. A photo of another object than this model (a chair not in the library)
        matches it poorly and agrees with none of its renders closely: then its renders are no evidence of the
        pose."""
        return -math.inf if m.match >= self.look_alike_min_match else self.registrar.judge.config.sure_agreement

    def _kind_posteriors(self, image: np.ndarray, frames: Sequence[Frame | None]) -> list[np.ndarray | None]:
        """Each framed square's kind posterior over the vote's categories (:mod:`cadsearch.search.kinds`), indexed
        like :attr:`_category_of`; Nones when the prior is off, the library has fewer than two categories, or it
        has no profiles. A category without a profile (added since they were made) gets the others' mean."""
        rows = self._kind_rows
        if self.kinds is None or not self.kind_prior or not self.category_vote or len(rows) < 2 or (rows < 0).all():
            return [None] * len(frames)
        probabilities = self.kind_classifier.probabilities([image] * len(frames), frames)  # the network's frames
        post = self.kinds.posterior(probabilities)  # (B, C) over the profiles'
        known = rows >= 0
        out = np.empty((len(frames), len(rows)))
        out[:, known] = post[:, rows[known]]
        out[:, ~known] = out[:, known].mean(axis=1, keepdims=True)
        return list(out / out.sum(axis=1, keepdims=True))

    def _vote_unsure(self, result: SearchResult) -> bool:
        """Whether the category vote should ask :attr:`vote_crops` more views: it ran, and its winner holds less
        than :attr:`vote_crops_below` of its mass (always, at 1.0)."""
        if not (self.category_vote and self.vote_crops) or result.category_share is None:
            return False
        return self.vote_crops_below >= 1.0 or result.category_share < self.vote_crops_below

    def _vote_embeddings(self, image: np.ndarray, frame: Frame | None) -> list[np.ndarray]:
        """The (D,) embeddings of :attr:`vote_crops` shifted copies of the query's square and of their mirror images
        (none when the vote is off or asks no crops)."""
        if not (self.category_vote and self.vote_crops):
            return []
        square = frame if frame is not None else frame_for(*image.shape[:2])
        step = VOTE_SHIFT * square.side
        shifts = [(step, 0.0), (-step, 0.0), (0.0, step), (0.0, -step)][: self.vote_crops]
        frames = [Frame(square.x0 + dx, square.y0 + dy, square.side) for dx, dy in shifts]
        pred = self.predictor.predict([image] * len(frames), batch_size=len(frames), frames=frames)
        mirror = getattr(pred, "mirror_embedding", None)
        out = [np.asarray(e, np.float32) for e in pred.embedding]
        return out + ([np.asarray(e, np.float32) for e in mirror] if mirror is not None else [])

    def embed_query(
        self, image: np.ndarray, crop: str | None = None
    ) -> tuple[np.ndarray, tuple[float, float], Frame | None]:
        """The part of :meth:`search` before the index: frame the object (automatic crop) and run the network.

        Returns:
            the (D,) float32 L2-normalised embedding, the pose head's (polar, azimuth) in degrees, and the frame
            the network looked at (None: the whole image padded to a square).
        """
        pred, frame = self.predict_query(image, crop)
        query = query_of(pred, 0)
        return query["embedding"], query["head_pose"], frame

    def predict_query(self, image: np.ndarray, crop: str | None = None) -> tuple[Any, Frame | None]:
        """The network's :class:`~cadsearch.models.Prediction` for one photo framed by ``crop`` (default: the
        searcher's; ``detect`` frames as ``auto`` here), and the frame (None: the whole photo padded)."""
        image = _check_image(image)
        method = self.crop if crop is None else crop
        frame = frame_query(image, "auto" if method == "detect" else method)
        return self.predictor.predict([image], batch_size=1, frames=[frame]), frame

    def search_embedding(
        self,
        embedding: np.ndarray,
        head_pose: tuple[float, float] | None,
        k: int = 5,
        mirror_embedding: np.ndarray | None = None,
        vote_embeddings: Sequence[np.ndarray] = (),
        pose_modes: np.ndarray | None = None,
        view_map: np.ndarray | None = None,
        kind_posterior: np.ndarray | None = None,
    ) -> SearchResult:
        """The part of :meth:`search` after the network: (D,) L2-normalised embedding → ranked models.
        ``mirror_embedding``: the (D,) embedding of the query's mirror image, or None; the category vote then
        asks for a category found in both (:func:`~cadsearch.search.scoring.category_first`). ``vote_embeddings``:
        more (D,) views of the query (shifted crops, :attr:`vote_crops`) that the vote asks too. ``pose_modes``:
        the pose head's (k, 3) distinct viewpoints (:func:`query_of`), kept in the result for registration.
        ``view_map``: the query's (M,) view map; with :attr:`view_maps`, the pose of a model of a kind the network
        never trained on comes from it. ``kind_posterior``: the query's (n_categories,) kind posterior
        (:meth:`_kind_posteriors`), which weighs the category vote (:func:`~cadsearch.search.scoring.weigh_by_kind`,
        power :attr:`kind_prior`); None: the vote alone."""
        if k < 1:
            raise InputError(f"k (--top) must be at least 1, got {k}")
        t0 = time.perf_counter()
        vote_mirror = self.category_vote and self.mirror_vote and mirror_embedding is not None
        rank_mirror = self.mirror_rank > 0 and mirror_embedding is not None
        # rows: the query, then its mirror image (if the vote or the ranking asks it), then the vote's crops
        mirrored = [mirror_embedding] if vote_mirror or rank_mirror else []
        crops = list(vote_embeddings) if self.category_vote else []
        queries = np.stack([embedding, *mirrored, *crops])
        sims, ids = self.index.search(np.asarray(queries, np.float32), self.k_views)
        t1 = time.perf_counter()
        n_models = len(self.model_ids)
        ranked_all = [rank_models(sims[j], ids[j], self._model_index, n_models, self.temperature)
                      for j in range(len(queries))]  # fmt: skip
        ranked = ranked_all[0]
        share = None
        if self.category_vote:
            others = ([ranked_all[1]] if vote_mirror else []) + ranked_all[1 + len(mirrored) :]
            votes = category_votes(ranked, self._category_of, others, self.vote_temperature)
            votes = weigh_by_kind(votes, kind_posterior, self.kind_prior)
            share = vote_share(votes)
        if rank_mirror:
            ranked = rerank_with_mirror(ranked, neighbour_floor(sims[0], ids[0]), ranked_all[1],
                                        neighbour_floor(sims[1], ids[1]), n_models, self.temperature,
                                        self.mirror_rank)  # fmt: skip
        if self.category_vote:
            ranked, _ = order_by_category(ranked, self._category_of, votes)  # category_first, votes counted once
        table = self.index.table
        order = np.argsort(-sims[0][ids[0] >= 0], kind="stable")
        hit_ids = ids[0][ids[0] >= 0][order]
        hit_sims = sims[0][ids[0] >= 0][order]
        features = match_features(ranked, hit_sims.astype(np.float64), k)
        match = self.match_model.predict(features)
        matches = []
        for rank, (m, score, views, p, f) in enumerate(
            zip(ranked.model_idx[:k], ranked.score[:k], ranked.views[:k], match, features, strict=False), 1
        ):
            vid = hit_ids[views]
            best_view = vid[0]
            trained = bool(self._category_trained[int(m)])
            mapped = None if trained or view_map is None else self._maps_of.get(int(m))
            if mapped is not None and mapped[1].shape[1] == len(view_map):
                ids, maps = mapped
                map_sims = maps @ view_map
                polar, azimuth = pose_from_view_maps(table.polar_deg[ids], table.azimuth_deg[ids], map_sims, self.pose)
                best_view = ids[int(np.argmax(map_sims))]  # the view the pose came from, not the embedding's
            else:
                polar, azimuth = combine_pose(
                    table.polar_deg[vid], table.azimuth_deg[vid], hit_sims[views], head_pose,
                    self.pose.for_category(trained),
                )  # fmt: skip
            model_id = self.model_ids[int(m)]
            name, category = self._describe(model_id)
            matches.append(
                ModelMatch(
                    rank,
                    model_id,
                    name,
                    category,
                    float(score),
                    polar,
                    azimuth,
                    str(table.view_id[best_view]),
                    float(p),
                    match_features=tuple(float(v) for v in f),
                )
            )
        t2 = time.perf_counter()
        return SearchResult(
            matches,
            {"search": 1000 * (t1 - t0), "pose": 1000 * (t2 - t1)},
            head_pose,
            category_share=share,
            pose_modes=None if pose_modes is None else np.asarray(pose_modes, np.float64),
        )
