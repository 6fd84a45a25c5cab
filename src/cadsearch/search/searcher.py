"""``Searcher``: load the network and the view index once, then answer ``search(image, k)`` cheaply.

SamPredictor-style: :meth:`Searcher.from_workspace` does the costly work (read the checkpoint, deserialise the
FAISS index, read the catalog); :meth:`Searcher.search` is numpy in, dataclasses out, and safe to call from
several threads at once (the network runs in inference mode, FAISS searches are read-only, and nothing mutable
is shared between calls).

One query: frame the object (:func:`cadsearch.framing.frame_query`: the automatic crop, or the whole photo padded
to a square) → embed it (and get the pose head's estimate) → the ``k_views`` nearest views → group them by
model, score each model by its best view (calibrated softmax, :mod:`cadsearch.search.scoring`) and give it its
exact-match probability (:mod:`cadsearch.search.matching`) → for each of the top ``k`` models, combine its best
views' cameras with the pose head (:mod:`cadsearch.search.pose`).
"""

from __future__ import annotations

import contextlib
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cadsearch.errors import InputError
from cadsearch.framing import Frame, check_crop_method, frame_query
from cadsearch.index.faiss_index import ViewIndex, index_dir
from cadsearch.search.matching import DEFAULT_MATCH_MODEL, EXACT_MATCH_THRESHOLD, MatchModel, match_features
from cadsearch.search.pose import PoseConfig, combine_pose
from cadsearch.search.scoring import DEFAULT_TEMPERATURE, rank_models

__all__ = ["ModelMatch", "SearchResult", "Searcher", "default_arch"]

#: Keys of one result in DESIGN.md's ``search --json`` format, in order.
RESULT_KEYS = ("rank", "model_id", "name", "category", "score", "match", "polar_deg", "azimuth_deg")


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
        best_view_id: the model's best-matching rendered view (e.g. ``"chair-003/0017"``).
        match: exact-match probability in [0, 1]: that the object in the photo *is* this model, whether or not
            it is in the library (:mod:`cadsearch.search.matching`); 0 when nothing computed it.
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


@dataclass
class SearchResult:
    """The answer to one query.

    Attributes:
        results: ranked models, best first (at most ``k``).
        timing_ms: milliseconds per stage (``embed``, ``search``, ``pose``, ...) and ``total``.
        head_pose: the pose head's own (polar, azimuth) estimate for the query, degrees.
        frame: the square of the query image the network looked at (pixels of the searched image), when the
            automatic crop found the object; None: the whole image padded to a square. Overlays are placed on it.
    """

    results: list[ModelMatch]
    timing_ms: dict[str, float] = field(default_factory=dict)
    head_pose: tuple[float, float] | None = None
    frame: Frame | None = None

    @property
    def exact_match(self) -> bool:
        """Whether the top result is the object itself: its ``match`` ≥
        :data:`~cadsearch.search.matching.EXACT_MATCH_THRESHOLD` (False: only the closest models in the library)."""
        return bool(self.results) and self.results[0].match >= EXACT_MATCH_THRESHOLD

    def to_json(self, query: str) -> dict[str, Any]:
        """DESIGN.md's ``search --json`` object: ``{"query", "results": [{rank, model_id, name, category, score,
        match, polar_deg, azimuth_deg}], "exact_match", "timing_ms": {"total"}}``."""
        results = []
        for m in self.results:
            d = asdict(m)
            row = {key: d[key] for key in RESULT_KEYS}
            row["score"] = round(float(row["score"]), 4)
            row["match"] = round(float(row["match"]), 4)
            row["polar_deg"] = round(float(row["polar_deg"]), 2)
            row["azimuth_deg"] = round(float(row["azimuth_deg"]), 2) % 360.0
            results.append(row)
        return {
            "query": query,
            "results": results,
            "exact_match": self.exact_match,
            "timing_ms": {"total": round(self.timing_ms.get("total", 0.0), 2)},
        }


def default_arch(workspace: str | Path) -> str:
    """``transfer`` if its checkpoint and index both exist, else ``scratch``."""
    from cadsearch.models import checkpoint_path

    ws = Path(workspace)
    if checkpoint_path(ws, "transfer").is_file() and (index_dir(ws, "transfer") / "meta.json").is_file():
        return "transfer"
    return "scratch"


class Searcher:
    """Answers photo → ranked models with score and pose. Load once, search many times (thread-safe).

    Attributes:
        predictor: the network (``predict(images) -> embedding, polar_deg, azimuth_deg``).
        index: the :class:`~cadsearch.index.faiss_index.ViewIndex` of the library's views.
        library: the :class:`~cadsearch.library.Library` (names and categories), or None.
        temperature: score temperature (:mod:`cadsearch.search.calibration`, fitted for the index on first use).
        match_model: the exact-match model (fitted beside the temperature; default
            :data:`~cadsearch.search.matching.DEFAULT_MATCH_MODEL` until an index has its own).
        crop: how the object is found before embedding (:data:`~cadsearch.framing.METHODS`; ``auto``:
            crop to the object on a plain or gradient backdrop, else the whole photo; ``none``: never crop).
        k_views: nearest views retrieved per query. Scores are calibrated for the ``k_views`` stored with the
            index (the default); with a smaller ``k`` they are no longer calibrated (ECE 0.007 at 256, 0.31 at 64).

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
        k_views: int | None = None,
        pose: PoseConfig = PoseConfig(),
        threads: int | None = 1,
        crop: str = "auto",
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
        check_crop_method(crop)
        self.crop = crop
        self.predictor = predictor
        self.index = index
        self.library = library
        calibration = index.meta.get("calibration", {})
        self.temperature = float(temperature or calibration.get("temperature") or DEFAULT_TEMPERATURE)
        self.match_model = match_model or DEFAULT_MATCH_MODEL
        self.k_views = int(k_views or index.meta.get("k_views") or 256)
        self.pose = pose
        names, inverse = np.unique(index.table.model_id.astype(str), return_inverse=True)
        self.model_ids: list[str] = names.tolist()
        self._model_index = inverse.astype(np.int64)
        self._info: dict[str, tuple[str, str]] = {}
        self._info_lock = threading.Lock()
        self._refresh_info()

    @classmethod
    def from_workspace(cls, workspace: str | Path, model: str | None = None, **kwargs: Any) -> Searcher:
        """Load the ``model`` (``scratch`` | ``transfer`` | None = :func:`default_arch`) network and its index.

        Raises:
            InputError: no checkpoint (train first), no index (``cadsearch index`` first), or an index built
                with another checkpoint (index again).
        """
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
        if kwargs.get("temperature") is None or kwargs.get("match_model") is None:
            from cadsearch.search.calibration import load_or_fit_calibration

            calibration = load_or_fit_calibration(ws, arch, index, predictor)
            if kwargs.get("temperature") is None:
                kwargs["temperature"] = calibration.get("temperature")
            if kwargs.get("match_model") is None and calibration.get("match"):
                # unusable: the default model until the index is calibrated again
                with contextlib.suppress(ValueError, KeyError, TypeError):
                    kwargs["match_model"] = MatchModel.from_dict(calibration["match"])
        return cls(predictor, index, Library.open(ws), **kwargs)

    # --- catalog ------------------------------------------------------------------------------------------

    def _refresh_info(self) -> None:
        if self.library is None:
            return
        info = {m.model_id: (m.name, m.category) for m in self.library.list()}
        with self._info_lock:
            self._info = info

    def _describe(self, model_id: str) -> tuple[str, str]:
        if model_id not in self._info:
            self._refresh_info()  # a model added since loading
        return self._info.get(model_id, (model_id, "unknown"))

    # --- search -------------------------------------------------------------------------------------------

    def search(self, image: np.ndarray, k: int = 5, crop: str | None = None) -> SearchResult:
        """Rank the library's models for one photo.

        Args:
            image: (H, W, 3) uint8 RGB (any size; framed as a square around the object and resized for the
                network).
            k: how many models to return (fewer if fewer are found).
            crop: overrides the searcher's automatic-crop method for this query.

        Returns:
            :class:`SearchResult` with ``timing_ms`` keys ``embed`` (crop and network), ``search``, ``pose``,
            ``total``.
        """
        t0 = time.perf_counter()
        embedding, head, frame = self.embed_query(image, crop)
        t1 = time.perf_counter()
        result = self.search_embedding(embedding, head, k)
        result.frame = frame
        result.timing_ms = {"embed": 1000 * (t1 - t0)} | result.timing_ms
        result.timing_ms["total"] = 1000 * (time.perf_counter() - t0)
        return result

    def embed_query(
        self, image: np.ndarray, crop: str | None = None
    ) -> tuple[np.ndarray, tuple[float, float], Frame | None]:
        """The part of :meth:`search` before the index: frame the object (automatic crop) and run the network.

        Returns:
            the (D,) float32 L2-normalised embedding, the pose head's (polar, azimuth) in degrees, and the frame
            the network looked at (None: the whole image padded to a square).
        """
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise InputError(f"expected an (H, W, 3) uint8 RGB image, got {image.dtype} {image.shape}")
        frame = frame_query(image, self.crop if crop is None else crop)
        pred = self.predictor.predict([image], batch_size=1, frames=[frame])
        head = (float(pred.polar_deg[0]), float(pred.azimuth_deg[0]))
        return np.asarray(pred.embedding, np.float32)[0], head, frame

    def search_embedding(
        self, embedding: np.ndarray, head_pose: tuple[float, float] | None, k: int = 5
    ) -> SearchResult:
        """The part of :meth:`search` after the network: (D,) L2-normalised embedding → ranked models."""
        if k < 1:
            raise InputError(f"k (--top) must be at least 1, got {k}")
        t0 = time.perf_counter()
        sims, ids = self.index.search(embedding[None], self.k_views)
        t1 = time.perf_counter()
        ranked = rank_models(sims[0], ids[0], self._model_index, len(self.model_ids), self.temperature)
        table = self.index.table
        order = np.argsort(-sims[0][ids[0] >= 0], kind="stable")
        hit_ids = ids[0][ids[0] >= 0][order]
        hit_sims = sims[0][ids[0] >= 0][order]
        match = self.match_model.predict(match_features(ranked, hit_sims.astype(np.float64), k))
        matches = []
        for rank, (m, score, views, p) in enumerate(
            zip(ranked.model_idx[:k], ranked.score[:k], ranked.views[:k], match, strict=False), 1
        ):
            vid = hit_ids[views]
            polar, azimuth = combine_pose(
                table.polar_deg[vid], table.azimuth_deg[vid], hit_sims[views], head_pose, self.pose
            )
            model_id = self.model_ids[int(m)]
            name, category = self._describe(model_id)
            matches.append(
                ModelMatch(
                    rank, model_id, name, category, float(score), polar, azimuth, str(table.view_id[vid[0]]), float(p)
                )
            )
        t2 = time.perf_counter()
        return SearchResult(matches, {"search": 1000 * (t1 - t0), "pose": 1000 * (t2 - t1)}, head_pose)
