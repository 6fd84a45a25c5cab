"""``cadsearch evaluate``: answers on a split, then metrics, then a report, in three stages (BOP style).

1. **raw answers** — every query asked of every network *through the product's own search*
   (:meth:`cadsearch.search.Searcher.search`: framing and automatic crop, embedding, the view index, calibrated
   scores, pose), so the numbers are those a user of ``cadsearch search`` or the web app gets. One row per query
   (truth, top-5 models with scores, estimated pose, errors) saved to ``<report_dir>/raw_<arch>.csv``. Metrics
   can be recomputed from these files alone (:func:`read_raw`, :func:`model_metrics`).
   ``ranking="classifier"`` is the ablation: the same framing and network, models ranked by the classifier's
   softmax instead of the index, pose from the pose head.
2. **metrics** — :func:`model_metrics` turns raw rows into DESIGN.md's summary ``M`` using the pure functions
   of :mod:`cadsearch.metrics` (symmetry-aware pose error: the catalog's ``symmetry_order`` of the true model).
3. **report** — :func:`cadsearch.evaluate.report.write_report`: ``report.md``, ``metrics.json``, plots.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cadsearch import metrics as mt
from cadsearch.errors import InputError
from cadsearch.evaluate.splits import GRAPHICS, Split, graphics_split, photo_split
from cadsearch.library.symmetry import symmetry_name
from cadsearch.workspace import atomic_write_text

__all__ = [
    "DESIGN_KEYS",
    "RANKINGS",
    "TOP_K",
    "Answer",
    "Answerer",
    "IndexAnswerer",
    "ClassifierAnswerer",
    "run_evaluation",
    "resolve_models",
    "load_answerers",
    "answer_split",
    "write_raw",
    "read_raw",
    "model_metrics",
    "design_json",
    "default_report_dir",
]

#: The keys of DESIGN.md's per-model summary ``M``, exactly; anything else goes under ``M["extra"]``.
DESIGN_KEYS = ("n", "top1", "top5", "pose_mean_deg", "pose_median_deg", "acc15", "acc30", "unseen")
#: How models are ranked: ``index`` is the product's search; ``classifier`` the ablation (softmax over the
#: network's training classes, so models added after training can never be found).
RANKINGS = ("index", "classifier")
#: Candidates kept per query in the raw file (top-5 is the widest metric).
TOP_K = 5
N_SECTORS = 8

Warn = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# --- who answers ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """One query's answer: ``model_ids`` ranked best first (at most :data:`TOP_K`) with their ``scores`` in
    [0, 1], and the estimated camera pose of the top model (``polar_deg`` in [0, 180], ``azimuth_deg`` in
    [0, 360), degrees)."""

    model_ids: list[str]
    scores: list[float]
    polar_deg: float
    azimuth_deg: float


class Answerer(Protocol):
    """What evaluation asks of a network: ``answer(image)`` for one (H, W, 3) uint8 RGB photo; ``trained_ids``,
    the models the network was trained on (the others are reported as ``unseen``); ``library_ids``, every model
    it can answer."""

    trained_ids: frozenset[str]
    library_ids: list[str]

    def answer(self, image: np.ndarray) -> Answer: ...


class IndexAnswerer:
    """The product: :meth:`cadsearch.search.Searcher.search`, exactly as ``cadsearch search`` runs it."""

    def __init__(self, searcher: Any) -> None:
        self.searcher = searcher
        self.trained_ids = frozenset(searcher.predictor.model_ids)
        self.library_ids = list(searcher.model_ids)  # every model in the index, trained on or not
        self.crop = searcher.crop

    def answer(self, image: np.ndarray) -> Answer:
        result = self.searcher.search(image, k=TOP_K)
        if result.results:
            top = result.results[0]
            polar, azimuth = top.polar_deg, top.azimuth_deg
        else:
            polar, azimuth = result.head_pose or (float("nan"), float("nan"))
        return Answer(
            [m.model_id for m in result.results], [float(m.score) for m in result.results], polar, azimuth % 360.0
        )


class ClassifierAnswerer:
    """The ablation: the same framing and network, models ranked by the classifier's softmax over the training
    classes, pose from the pose head. Framing as :class:`~cadsearch.search.Searcher` frames the (first) object:
    :func:`cadsearch.framing.frame_query` for a framing method, or with ``crop="detect"`` the most confident
    object of ``localiser`` (:func:`cadsearch.search.detection_frames`; the whole photo when none is found)."""

    def __init__(self, predictor: Any, crop: str = "auto", localiser: Any = None) -> None:
        from cadsearch.framing import check_crop_method

        if crop == "detect" and localiser is None:
            raise InputError("--crop detect needs a trained detector: run `cadsearch train detector` first")
        self.predictor = predictor
        self.crop = crop if crop == "detect" else check_crop_method(crop)
        self.localiser = localiser
        self.trained_ids = frozenset(predictor.model_ids)
        self.library_ids = list(predictor.model_ids)

    def _frame(self, image: np.ndarray) -> Any:
        from cadsearch.framing import frame_query

        if self.crop != "detect":
            return frame_query(image, self.crop)
        from cadsearch.search import detection_frames

        found = self.localiser.detect(image)
        frame = detection_frames(*image.shape[:2], found[:1])[0] if found else None
        return frame if frame is not None else frame_query(image, "auto")

    def answer(self, image: np.ndarray) -> Answer:
        pred = self.predictor.predict([image], batch_size=1, frames=[self._frame(image)])
        probs = np.asarray(pred.class_probs, dtype=np.float64)[0]
        # Stable descending order: ties keep class order, so a constant predictor answers the first class.
        top = np.argsort(-probs, kind="stable")[:TOP_K]
        classes = list(self.predictor.model_ids)
        return Answer(
            [classes[i] for i in top],
            [float(probs[i]) for i in top],
            float(np.asarray(pred.polar_deg).reshape(-1)[0]),
            float(np.asarray(pred.azimuth_deg).reshape(-1)[0]) % 360.0,
        )


# --- which models ---------------------------------------------------------------------------------------------


def resolve_models(models: str | Sequence[str] | None) -> tuple[list[str], bool]:
    """``(archs, explicit)``: the archs asked for, and whether they were named one by one (a missing checkpoint
    is then an error) rather than as ``"both"``/None (a missing one is skipped with a note)."""
    from cadsearch.models import list_models

    archs = list_models()
    if models is None or models == "both":
        return archs, False
    names = [models] if isinstance(models, str) else list(models)
    for name in names:
        if name not in archs:
            raise InputError(f"unknown model {name!r}; choose {', '.join(archs)} or both")
    return list(dict.fromkeys(names)), True


def default_crop(workspace: str | Path) -> str:
    """The crop ``cadsearch search`` uses when none is asked for: ``detect`` once a detector is trained in the
    workspace, else ``auto`` (as :meth:`cadsearch.search.Searcher.from_workspace`)."""
    from cadsearch.detect import has_detector

    return "detect" if has_detector(workspace) else "auto"


def load_answerers(
    workspace: str | Path,
    models: str | Sequence[str] | None,
    ranking: str,
    warn: Warn,
    crop: str | None = None,
    refine_top: int = 1,
    detect_threshold: float | None = None,
) -> dict[str, Answerer]:
    """Load the networks of ``models`` (``"both"``: whichever exist) for ``ranking``: a
    :class:`~cadsearch.search.Searcher` per network (checkpoint and index; ``refine_top`` of each answer
    registered, as ``cadsearch search --refine-top``) for ``index``, the checkpoint alone for ``classifier``.
    ``crop`` as ``cadsearch search --crop``; None: the same default (:func:`default_crop`). ``detect_threshold``
    as ``cadsearch search --detect-threshold`` (None: the detector's own).
    Raises InputError if none can be used (or ``detect_threshold`` without ``detect``); with ``"both"`` a missing
    one is skipped with a note."""
    from cadsearch.models import checkpoint_path, load_predictor

    if ranking not in RANKINGS:
        raise InputError(f"unknown ranking {ranking!r}; choose {' or '.join(RANKINGS)}")
    crop = default_crop(workspace) if crop is None else crop
    if detect_threshold is not None:  # before any network is loaded
        from cadsearch.search.searcher import check_detect_threshold

        check_detect_threshold(detect_threshold, crop)
    localiser = None
    if crop == "detect" and ranking == "classifier":
        from cadsearch.detect import Localiser, detector_dir

        # no detector: its own one-line InputError
        localiser = Localiser(detector_dir(workspace), threshold=detect_threshold)
    archs, explicit = resolve_models(models)
    loaded: dict[str, Answerer] = {}
    for arch in archs:
        path = checkpoint_path(workspace, arch)
        if not Path(path).is_file():
            if explicit:
                raise InputError(f"no {arch} checkpoint at {path}; run `cadsearch train {arch}` first")
            warn(f"no {arch} checkpoint at {path}; evaluating without it")
            continue
        if ranking == "classifier":
            loaded[arch] = ClassifierAnswerer(load_predictor(path), crop, localiser)
            continue
        from cadsearch.search import Searcher

        try:
            searcher = Searcher.from_workspace(workspace, arch, crop=crop, refine_top=refine_top)
            if detect_threshold is not None:
                searcher.set_detect_threshold(detect_threshold)
            loaded[arch] = IndexAnswerer(searcher)
        except InputError as err:
            if explicit:
                raise
            warn(f"{err}; evaluating without {arch}")
    if not loaded:
        raise InputError(
            f"no trained and indexed model in {workspace}; run `cadsearch train scratch` (or transfer), then "
            "`cadsearch index`"
        )
    return loaded


# --- stage 1: raw answers -------------------------------------------------------------------------------------


def _opt(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def answer_split(
    answerers: Mapping[str, Answerer],
    split: Split,
    symmetry: Mapping[str, int] | None = None,
    progress: bool = True,
    warn: Warn | None = None,
    categories: Mapping[str, str] | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Stage 1: every query of ``split`` asked of every answerer. Returns ``{arch: [raw row, ...]}``.

    Each image is decoded once and shared by all answerers. A query whose image fails to decode is skipped with
    a warning and appended to ``split.skipped``. ``symmetry`` maps a model id to its ``symmetry_order`` (1 none,
    n n-fold, 0 continuous; missing = 1): the pose error of a query of that model is the smallest over its
    symmetric equivalents. ``categories`` maps a model id to its catalog category (the report's per-category
    breakdown). A raw row holds: ``query_id``, ``image`` (path), ``mirrored``,
    ``true_model_id``/``true_polar_deg``/``true_azimuth_deg`` (None when unlabelled), ``symmetry_order``,
    ``true_category`` (None when unlabelled or not in ``categories``),
    ``seen`` (1 if the network trained on the true model, 0 if not, None when unlabelled), ``true_rank``
    (1-based rank of the true model among the top 5 answers; 0 = not among them; None when unlabelled),
    ``pred_polar_deg``, ``pred_azimuth_deg``, ``pose_error_deg``, ``azimuth_error_deg`` (None when not
    computable), ``top1_model_id``, ``top1_score``, ... up to ``top5``, then the split's extra columns.
    """
    from tqdm import tqdm

    warn = warn or _stderr
    symmetry = symmetry or {}
    categories = categories or {}
    rows: dict[str, list[dict[str, Any]]] = {arch: [] for arch in answerers}
    for q in tqdm(split.queries, unit="query", desc=f"evaluate {split.name}", disable=not progress):
        try:
            image = q.image()
        except InputError as err:
            message = f"skipping {q.query_id}: {err}"
            warn(message)
            split.skipped.append(message)
            continue
        order = symmetry.get(q.model_id, mt.NO_SYMMETRY) if q.model_id is not None else mt.NO_SYMMETRY
        category = categories.get(q.model_id) if q.model_id is not None else None
        for arch, answerer in answerers.items():
            rows[arch].append(_raw_row(q, answerer.answer(image), order, answerer.trained_ids, category))
    return rows


def _raw_row(q, answer: Answer, order: int, trained_ids: frozenset[str], category: str | None = None) -> dict[str, Any]:
    pose_err = mt.pose_errors_deg(_opt(q.polar_deg), _opt(q.azimuth_deg), answer.polar_deg, answer.azimuth_deg, order)
    az_err = mt.azimuth_errors_deg(_opt(q.azimuth_deg), answer.azimuth_deg, order)
    labelled = q.model_id is not None
    row: dict[str, Any] = {
        "query_id": q.query_id,
        "image": str(q.path),
        "mirrored": int(q.mirrored),
        "true_model_id": q.model_id,
        "true_polar_deg": q.polar_deg,
        "true_azimuth_deg": q.azimuth_deg,
        "symmetry_order": int(order),
        "true_category": category,
        "seen": int(q.model_id in trained_ids) if labelled else None,
        "true_rank": int(mt.rank_in_results([q.model_id], [answer.model_ids])[0]) if labelled else None,
        "pred_polar_deg": round(float(answer.polar_deg), 4),
        "pred_azimuth_deg": round(float(answer.azimuth_deg), 4),
        "pose_error_deg": _finite_or_none(float(pose_err)),
        "azimuth_error_deg": _finite_or_none(float(az_err)),
    }
    for j in range(TOP_K):
        found = j < len(answer.model_ids)
        row[f"top{j + 1}_model_id"] = answer.model_ids[j] if found else None
        row[f"top{j + 1}_score"] = round(float(answer.scores[j]), 6) if found else None
    for key, value in q.extra.items():
        row.setdefault(key, value)  # extra CSV columns never overwrite the raw fields
    return row


def _finite_or_none(x: float) -> float | None:
    return round(float(x), 4) if math.isfinite(float(x)) else None


def write_raw(path: str | Path, rows: list[dict[str, Any]]) -> None:
    """Write raw rows as CSV atomically (None → empty cell; columns of the first row first)."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    atomic_write_text(path, buf.getvalue())


_FLOAT_FIELDS = (
    "true_polar_deg",
    "true_azimuth_deg",
    "pred_polar_deg",
    "pred_azimuth_deg",
    "pose_error_deg",
    "azimuth_error_deg",
) + tuple(f"top{j}_score" for j in range(1, TOP_K + 1))


def read_raw(path: str | Path) -> list[dict[str, Any]]:
    """Read a raw file written by :func:`write_raw` back into typed rows (empty → None)."""
    out = []
    with Path(path).open(newline="") as f:
        for row in csv.DictReader(f):
            typed: dict[str, Any] = {k: (v if v != "" else None) for k, v in row.items()}
            for name in _FLOAT_FIELDS:
                if typed.get(name) is not None:
                    typed[name] = float(typed[name])
            for name in ("true_rank", "mirrored", "seen", "symmetry_order"):
                if typed.get(name) is not None:
                    typed[name] = int(typed[name])
            out.append(typed)
    return out


# --- stage 2: metrics ------------------------------------------------------------------------------------------


def _column(rows: Iterable[dict[str, Any]], name: str) -> np.ndarray:
    return np.array([_opt(r.get(name)) for r in rows], dtype=np.float64)


def _none_if_nan(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def _recognition(rows: list[dict[str, Any]]) -> tuple[int, float | None, float | None]:
    ranks = np.array([r["true_rank"] for r in rows if r.get("true_rank") is not None], dtype=np.int64)
    if ranks.size == 0:
        return 0, None, None
    return int(ranks.size), mt.recall_at_k(ranks, 1), mt.recall_at_k(ranks, 5)


def _design_fields(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """DESIGN.md's ``n, top1, top5, pose_mean_deg, pose_median_deg, acc15, acc30`` over ``rows``."""
    _, top1, top5 = _recognition(rows)
    pose = mt.summarize_pose(_column(rows, "pose_error_deg"))
    return {
        "n": len(rows),
        "top1": top1,
        "top5": top5,
        "pose_mean_deg": pose["mean"],
        "pose_median_deg": pose["median"],
        "acc15": pose["acc15"],
        "acc30": pose["acc30"],
    }


def model_metrics(rows: list[dict[str, Any]], kind: str, skipped: int = 0) -> dict[str, Any]:
    """Stage 2: DESIGN.md's ``M`` for one model from its raw rows, plus ``M["extra"]``.

    ``M`` = ``{"n", "top1", "top5", "pose_mean_deg", "pose_median_deg", "acc15", "acc30", "unseen", "extra"}``:
    ``n`` queries evaluated; recognition over the rows with a true model, pose over the rows with both angles
    (symmetry-aware); fractions in [0, 1], degrees; None where the split has no labels. ``unseen`` holds the same
    fields over the queries of models the network was not trained on (its held-out models, and models added to
    the library after training), None when there are none. ``extra`` holds the azimuth-only summary, per-sector
    accuracies (sector-balanced Acc@30 against "always front-right" answers), the share of front/back flips
    (azimuth error > 150°), pose per symmetry class, per category of the true model (``by_category``: DESIGN.md's
    fields plus ``pose_error_share``, the category's share of the summed pose error, which says where the mean
    comes from), and for the graphics split a per-model breakdown.
    """
    n_rec, _, _ = _recognition(rows)
    pose_err = _column(rows, "pose_error_deg")
    az_err = _column(rows, "azimuth_error_deg")
    true_az = _column(rows, "true_azimuth_deg")
    pose = mt.summarize_pose(pose_err)
    azimuth = mt.summarize_pose(az_err)
    m: dict[str, Any] = _design_fields(rows)
    unseen = [r for r in rows if r.get("seen") == 0]
    m["unseen"] = _design_fields(unseen) if unseen else None
    finite_az = az_err[np.isfinite(az_err)]
    extra: dict[str, Any] = {
        "n_recognition": n_rec,
        "n_pose": pose["n"],
        "skipped_queries": int(skipped),
        "azimuth": {
            "n": azimuth["n"],
            "mean_deg": azimuth["mean"],
            "median_deg": azimuth["median"],
            "acc15": azimuth["acc15"],
            "acc30": azimuth["acc30"],
        },
        "flip_share": float(np.mean(finite_az > 150.0)) if finite_az.size else None,
    }
    labels = mt.sector_labels(N_SECTORS)
    by_pose = mt.sector_balanced_accuracy(pose_err, true_az, 30.0, N_SECTORS)
    by_az = mt.sector_balanced_accuracy(az_err, true_az, 30.0, N_SECTORS)
    sector = mt.azimuth_sector(true_az, N_SECTORS)
    extra["sector_balanced_acc30"] = {"pose": _none_if_nan(by_pose.balanced), "azimuth": _none_if_nan(by_az.balanced)}
    extra["sectors"] = [
        {
            "sector": labels[k],
            "n": int(by_az.counts[k]),
            "pose_acc30": _none_if_nan(float(by_pose.per_sector[k])),
            "azimuth_acc30": _none_if_nan(float(by_az.per_sector[k])),
            "azimuth_median_deg": _none_if_nan(mt.summarize_pose(az_err[sector == k])["median"]),
        }
        for k in range(N_SECTORS)
    ]
    if kind == "graphics":
        extra["per_model"] = _per_model(rows)
    orders = sorted({int(r["symmetry_order"]) for r in rows if r.get("symmetry_order") is not None})
    extra["by_symmetry"] = {
        symmetry_name(order): _design_fields([r for r in rows if r.get("symmetry_order") == order]) for order in orders
    }
    extra["by_category"] = _by_category(rows)
    levels = sorted({str(r["confidence"]) for r in rows if r.get("confidence")})
    if levels:  # the dev photo set grades its labels high/low: errors on rough labels are partly the label's
        extra["by_confidence"] = {}
        for level in levels:
            g = [r for r in rows if str(r.get("confidence")) == level]
            az_g, pose_g = (
                mt.summarize_pose(_column(g, "azimuth_error_deg")),
                mt.summarize_pose(_column(g, "pose_error_deg")),
            )
            extra["by_confidence"][level] = {
                "n": len(g),
                "pose_median_deg": pose_g["median"],
                "pose_acc30": pose_g["acc30"],
                "azimuth_median_deg": az_g["median"],
                "azimuth_acc30": az_g["acc30"],
            }
    m["extra"] = extra
    return m


def _by_category(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """DESIGN.md's fields per category of the true model (rows without one left out), most pose error first, each
    with ``pose_error_share``: its part of the summed pose error of all rows, in [0, 1] (None without poses). A few
    kinds that flip between look-alike views (front and back) can carry most of a library's mean pose error while
    its median stays small; this is where that shows."""
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("true_category"):
            groups.setdefault(str(r["true_category"]), []).append(r)
    errors = _column(rows, "pose_error_deg")
    total = float(np.nansum(errors)) if np.isfinite(errors).any() else 0.0
    out = {}
    for name, g in groups.items():
        summed = float(np.nansum(_column(g, "pose_error_deg")))
        out[name] = _design_fields(g) | {"pose_error_share": summed / total if total > 0 else None}
    return dict(sorted(out.items(), key=lambda kv: (-(kv[1]["pose_error_share"] or 0.0), kv[0])))


def _per_model(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        if r.get("true_model_id"):
            groups.setdefault(r["true_model_id"], []).append(r)
    out = {}
    for model_id in sorted(groups):
        g = groups[model_id]
        _, top1, top5 = _recognition(g)
        pose = mt.summarize_pose(_column(g, "pose_error_deg"))
        out[model_id] = {
            "n": len(g),
            "top1": top1,
            "top5": top5,
            "pose_mean_deg": pose["mean"],
            "pose_median_deg": pose["median"],
            "acc30": pose["acc30"],
        }
    return out


def design_json(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` without the ``extra`` sub-dicts: exactly DESIGN.md's ``{"split", "ranking", "models": {arch:
    M}}``."""
    return {
        "split": result["split"],
        "ranking": result["ranking"],
        "models": {arch: {k: m[k] for k in DESIGN_KEYS} for arch, m in result["models"].items()},
    }


# --- driver -----------------------------------------------------------------------------------------------------


def default_report_dir(workspace: str | Path, split_name: str) -> Path:
    """``<workspace>/reports/eval-<split name>/``."""
    return Path(workspace) / "reports" / f"eval-{split_name}"


def split_name(split: str | Path) -> str:
    """The name of a ``--split`` value (``graphics`` or the photo CSV's file stem); :class:`InputError` if it is
    neither ``graphics`` nor an existing file."""
    if str(split) == GRAPHICS:
        return GRAPHICS
    if not Path(split).is_file():
        raise InputError(f"--split {str(split)!r} is neither 'graphics' nor an existing photo CSV file")
    return Path(split).stem


def _make_split(
    workspace: Path,
    split: str | Path,
    answerers: Mapping[str, Answerer],
    mirror_photos: bool,
    views_per_model: int,
    backgrounds: str,
    workers: int,
    progress: bool,
    warn: Warn,
) -> Split:
    if str(split) == GRAPHICS:
        # Every rendered model of the library and every model an answerer can name, in first-seen order: models
        # added after training are asked too (the search finds them in its index; the classifier ablation can
        # only miss them), so both rankings face the same queries.
        from cadsearch.render.job import read_view_table

        try:
            rendered = sorted({r.model_id for r in read_view_table(workspace)})
        except InputError:  # nothing rendered in the workspace itself (answerers given by the caller)
            rendered = []
        named = [m for a in answerers.values() for m in a.library_ids]
        ids = list(dict.fromkeys(rendered + named))
        return graphics_split(
            workspace, ids, views_per_model, backgrounds=backgrounds, workers=workers, progress=progress
        )
    split_name(split)  # a clear error for a missing file
    return photo_split(Path(split), mirror=mirror_photos, warn=warn)


def symmetry_orders(workspace: str | Path) -> dict[str, int]:
    """``{model_id: symmetry_order}`` of the workspace's catalog (1 none, n n-fold, 0 continuous)."""
    from cadsearch.library import Library

    return {m.model_id: int(m.symmetry_order) for m in Library.open(workspace).list()}


def model_categories(workspace: str | Path) -> dict[str, str]:
    """``{model_id: category}`` of the workspace's catalog."""
    from cadsearch.library import Library

    return {m.model_id: str(m.category) for m in Library.open(workspace).list()}


def run_evaluation(
    workspace: str | Path,
    models: str | Sequence[str] | None = "both",
    split: str | Path = GRAPHICS,
    report_dir: str | Path | None = None,
    mirror_photos: bool = True,
    views_per_model: int = 10,
    progress: bool = True,
    *,
    ranking: str = "index",
    crop: str | None = None,
    refine_top: int = 1,
    detect_threshold: float | None = None,
    backgrounds: str = "random",
    workers: int = 1,
    answerers: Mapping[str, Answerer] | None = None,
    render_predicted: bool = True,
    warn: Warn | None = None,
) -> dict[str, Any]:
    """Evaluate the trained models on a split, as ``cadsearch search`` answers, and write a report.

    Args:
        workspace: the workspace folder.
        models: ``"both"`` (whichever networks are trained and indexed; a missing one is skipped with a warning),
            ``"scratch"``, ``"transfer"`` (missing → InputError), or a list of those.
        split: ``"graphics"`` (fresh renders of every rendered model of the library) or the path of a
            photo-split CSV.
        report_dir: where the report goes; default ``<workspace>/reports/eval-<split name>/``.
        mirror_photos: for a photo split, also ask each photo mirrored left-right (φ → 360° − φ).
        views_per_model: graphics split size per model.
        ranking: ``"index"`` (default: :meth:`cadsearch.search.Searcher.search`, the product) or
            ``"classifier"`` (the ablation: the classifier's softmax ranks the training classes).
        crop: how each query is framed, as ``cadsearch search --crop`` (``detect``: the most confident object's
            answer is scored); None: as ``cadsearch search`` defaults (:func:`default_crop`). With ``answerers``
            given it only labels the result.
        refine_top: models registered per answer (0: none), as ``cadsearch search --refine-top``; the pose of the
            top answer is then the registered one.
        detect_threshold: with ``crop="detect"``, the lowest detection score of an object, as ``cadsearch search
            --detect-threshold`` (None: the detector's own; unused with ``answerers`` given).
        backgrounds: graphics split backgrounds: ``"random"`` or a folder of images.
        answerers: already loaded answerers by arch (skips loading; tests, the web app). ``ranking`` then only
            labels the result.
        render_predicted: draw the predicted model at the estimated pose beside each worst case.
        warn: receives one line per warning (default: printed to stderr).

    Returns:
        DESIGN.md's ``{"split": NAME, "ranking": RANKING, "models": {arch: M}}``, NAME = ``"graphics"`` or the
        CSV's file stem, ``M = {"n", "top1", "top5", "pose_mean_deg", "pose_median_deg", "acc15", "acc30",
        "unseen", "extra"}``; the ``extra`` sub-dict holds everything beyond DESIGN.md (:func:`design_json` drops
        it).
    """
    from cadsearch.evaluate.report import write_report

    warn = warn or _stderr
    workspace = Path(workspace)
    notes: list[str] = []

    def note(message: str) -> None:
        notes.append(message)
        warn(message)

    if ranking not in RANKINGS:
        raise InputError(f"unknown ranking {ranking!r}; choose {' or '.join(RANKINGS)}")
    if crop is None:  # what the answerers were built with, else what `cadsearch search` would use
        given = next(iter(answerers.values()), None) if answerers else None
        crop = getattr(given, "crop", None) or default_crop(workspace)
    if answerers is None:
        answerers = load_answerers(workspace, models, ranking, note, crop, refine_top, detect_threshold)
    else:
        archs, explicit = resolve_models(models)
        missing = [a for a in archs if a not in answerers]
        if explicit and missing:
            raise InputError(f"no {missing[0]} model given; run `cadsearch train {missing[0]}` first")
        for arch in missing:
            note(f"no {arch} model; evaluating without it")
        answerers = {a: answerers[a] for a in archs if a in answerers}
        if not answerers:
            raise InputError("no model to evaluate; run `cadsearch train scratch` or `... transfer` first")

    the_split = _make_split(
        workspace, split, answerers, mirror_photos, views_per_model, backgrounds, workers, progress, warn
    )
    if not the_split.queries:
        raise InputError(f"split {the_split.name!r} has no usable queries")
    the_split.info["ranking"] = ranking
    the_split.info["crop"] = crop
    out = Path(report_dir) if report_dir is not None else default_report_dir(workspace, the_split.name)

    # Stage 1: raw answers, saved before anything is summarised.
    raw = answer_split(
        answerers, the_split, symmetry_orders(workspace), progress=progress, warn=warn,
        categories=model_categories(workspace),
    )  # fmt: skip
    for arch, rows in raw.items():
        write_raw(out / f"raw_{arch}.csv", rows)

    # Stage 2: metrics.
    result: dict[str, Any] = {
        "split": the_split.name,
        "ranking": ranking,
        "models": {arch: model_metrics(rows, the_split.kind, len(the_split.skipped)) for arch, rows in raw.items()},
    }

    # Stage 3: report.
    write_report(out, result, raw, the_split, workspace=workspace, notes=notes, render_predicted=render_predicted)
    return result
