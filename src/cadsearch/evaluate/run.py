"""``cadsearch evaluate``: predictions on a split, then metrics, then a report, in three stages (BOP style).

1. **raw predictions** — every query through every predictor; one row per query (truth, top-5 models with
   scores, estimated pose, errors) saved to ``<report_dir>/raw_<arch>.csv``. Metrics can be recomputed from
   these files alone (:func:`read_raw`, :func:`model_metrics`).
2. **metrics** — :func:`model_metrics` turns raw rows into DESIGN.md's summary ``M`` using the pure functions
   of :mod:`cadsearch.evaluate.metrics`.
3. **report** — :func:`cadsearch.evaluate.report.write_report`: ``report.md``, ``metrics.json``, plots.

The predictor is duck-typed (the contract of :mod:`cadsearch.models`): ``p.model_ids`` (classes),
``p.predict(images, batch_size)`` → ``.class_probs (N, C)``, ``.polar_deg (N,)``, ``.azimuth_deg (N,)``.
"""

from __future__ import annotations

import csv
import io
import math
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from cadsearch.errors import InputError
from cadsearch.evaluate import metrics as mt
from cadsearch.evaluate.splits import GRAPHICS, Split, graphics_split, photo_split
from cadsearch.workspace import atomic_write_text

__all__ = [
    "ARCHS",
    "DESIGN_KEYS",
    "TOP_K",
    "Predictor",
    "run_evaluation",
    "resolve_models",
    "load_predictors",
    "predict_split",
    "write_raw",
    "read_raw",
    "model_metrics",
    "design_json",
    "default_report_dir",
]

#: The two model kinds of DESIGN.md, in report order.
ARCHS = ("scratch", "transfer")
#: The keys of DESIGN.md's per-model summary ``M``, exactly; anything else goes under ``M["extra"]``.
DESIGN_KEYS = ("n", "top1", "top5", "pose_mean_deg", "pose_median_deg", "acc15", "acc30")
#: Candidates kept per query in the raw file (top-5 is the widest metric).
TOP_K = 5
N_SECTORS = 8


class Predictor(Protocol):
    """What evaluation needs of a loaded model (see :mod:`cadsearch.models`)."""

    model_ids: list[str]

    def predict(self, images: list[np.ndarray], batch_size: int = 64) -> Any: ...


Warn = Callable[[str], None]


def _stderr(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


# --- which models ---------------------------------------------------------------------------------------------


def resolve_models(models: str | Sequence[str] | None) -> tuple[list[str], bool]:
    """``(archs, explicit)``: the archs asked for, and whether they were named one by one (a missing checkpoint
    is then an error) rather than as ``"both"``/None (a missing one is skipped with a note)."""
    if models is None or models == "both":
        return list(ARCHS), False
    names = [models] if isinstance(models, str) else list(models)
    for name in names:
        if name not in ARCHS:
            raise InputError(f"unknown model {name!r}; choose scratch, transfer or both")
    return list(dict.fromkeys(names)), True


def load_predictors(workspace: str | Path, models: str | Sequence[str] | None, warn: Warn) -> dict[str, Predictor]:
    """Load the checkpoints of ``models`` (``"both"``: whichever exist). Raises InputError if none can be used."""
    from cadsearch.models import checkpoint_path, load_predictor

    archs, explicit = resolve_models(models)
    loaded: dict[str, Predictor] = {}
    for arch in archs:
        path = checkpoint_path(workspace, arch)
        if not Path(path).is_file():
            if explicit:
                raise InputError(f"no {arch} checkpoint at {path}; run `cadsearch train {arch}` first")
            warn(f"no {arch} checkpoint at {path}; evaluating without it")
            continue
        loaded[arch] = load_predictor(path)
    if not loaded:
        raise InputError(f"no trained model in {workspace}; run `cadsearch train scratch` or `... transfer` first")
    return loaded


# --- stage 1: raw predictions ------------------------------------------------------------------------------


def _opt(x: float | None) -> float:
    return float("nan") if x is None else float(x)


def predict_split(
    predictors: Mapping[str, Predictor],
    split: Split,
    batch_size: int = 64,
    progress: bool = True,
    warn: Warn | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Stage 1: every query of ``split`` through every predictor. Returns ``{arch: [raw row, ...]}``.

    Each image is decoded once per batch and shared by all predictors. A query whose image fails to decode is
    skipped with a warning and appended to ``split.skipped``. A raw row holds: ``query_id``, ``image`` (path),
    ``mirrored``, ``true_model_id``/``true_polar_deg``/``true_azimuth_deg`` (None when unlabelled),
    ``true_rank`` (1-based rank of the true model among the predictor's classes; 0 = not a class; None when
    unlabelled), ``pred_polar_deg``, ``pred_azimuth_deg``, ``pose_error_deg``, ``azimuth_error_deg`` (None
    when not computable), ``top1_model_id``, ``top1_score``, ... up to ``top5``, then the split's extra columns.
    """
    from tqdm import tqdm

    warn = warn or _stderr
    rows: dict[str, list[dict[str, Any]]] = {arch: [] for arch in predictors}
    class_index = {arch: {m: i for i, m in enumerate(p.model_ids)} for arch, p in predictors.items()}
    bar = tqdm(total=len(split.queries), unit="query", desc=f"evaluate {split.name}", disable=not progress)
    try:
        for start in range(0, len(split.queries), batch_size):
            batch, images = [], []
            for q in split.queries[start : start + batch_size]:
                try:
                    images.append(q.image())
                    batch.append(q)
                except InputError as err:
                    message = f"skipping {q.query_id}: {err}"
                    warn(message)
                    split.skipped.append(message)
            if batch:
                for arch, predictor in predictors.items():
                    pred = predictor.predict(images, batch_size=batch_size)
                    rows[arch].extend(_raw_rows(batch, pred, list(predictor.model_ids), class_index[arch]))
            bar.update(min(batch_size, len(split.queries) - start))
    finally:
        bar.close()
    return rows


def _raw_rows(batch, pred, classes: list[str], index: dict[str, int]) -> list[dict[str, Any]]:
    probs = np.asarray(pred.class_probs, dtype=np.float64)
    n = len(batch)
    if probs.shape != (n, len(classes)):
        raise ValueError(f"predictor returned class_probs of shape {probs.shape}, expected {(n, len(classes))}")
    est_polar = np.asarray(pred.polar_deg, dtype=np.float64).reshape(n)
    est_az = np.mod(np.asarray(pred.azimuth_deg, dtype=np.float64).reshape(n), 360.0)
    true_polar = np.array([_opt(q.polar_deg) for q in batch])
    true_az = np.array([_opt(q.azimuth_deg) for q in batch])
    pose_err = mt.pose_errors_deg(true_polar, true_az, est_polar, est_az)
    az_err = mt.azimuth_errors_deg(true_az, est_az)
    labelled = np.array([q.model_id is not None for q in batch])
    true_idx = np.array([index.get(q.model_id, -1) if q.model_id is not None else -1 for q in batch])
    ranks = mt.true_class_rank(probs, true_idx)
    k = min(TOP_K, len(classes))
    # Stable descending order: ties keep class order, so a constant predictor answers the first class.
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    out = []
    for i, q in enumerate(batch):
        row: dict[str, Any] = {
            "query_id": q.query_id,
            "image": str(q.path),
            "mirrored": int(q.mirrored),
            "true_model_id": q.model_id,
            "true_polar_deg": q.polar_deg,
            "true_azimuth_deg": q.azimuth_deg,
            "true_rank": int(ranks[i]) if labelled[i] else None,
            "pred_polar_deg": round(float(est_polar[i]), 4),
            "pred_azimuth_deg": round(float(est_az[i]), 4),
            "pose_error_deg": _finite_or_none(pose_err[i]),
            "azimuth_error_deg": _finite_or_none(az_err[i]),
        }
        for j in range(TOP_K):
            row[f"top{j + 1}_model_id"] = classes[top[i, j]] if j < k else None
            row[f"top{j + 1}_score"] = round(float(probs[i, top[i, j]]), 6) if j < k else None
        for key, value in q.extra.items():
            row.setdefault(key, value)  # extra CSV columns never overwrite the raw fields
        out.append(row)
    return out


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
            for name in ("true_rank", "mirrored"):
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


def model_metrics(rows: list[dict[str, Any]], kind: str, skipped: int = 0) -> dict[str, Any]:
    """Stage 2: DESIGN.md's ``M`` for one model from its raw rows, plus ``M["extra"]``.

    ``M`` = ``{"n", "top1", "top5", "pose_mean_deg", "pose_median_deg", "acc15", "acc30", "extra"}``: ``n``
    queries evaluated; recognition over the rows with a true model, pose over the rows with both angles;
    fractions in [0, 1], degrees; None where the split has no labels. ``extra`` holds the azimuth-only summary,
    per-sector accuracies (sector-balanced Acc@30 against "always front-right" answers), the share of
    front/back flips (azimuth error > 150°), and for the graphics split a per-model breakdown.
    """
    n_rec, top1, top5 = _recognition(rows)
    pose_err = _column(rows, "pose_error_deg")
    az_err = _column(rows, "azimuth_error_deg")
    true_az = _column(rows, "true_azimuth_deg")
    pose = mt.summarize_pose(pose_err)
    azimuth = mt.summarize_pose(az_err)
    m: dict[str, Any] = {
        "n": len(rows),
        "top1": top1,
        "top5": top5,
        "pose_mean_deg": pose["mean"],
        "pose_median_deg": pose["median"],
        "acc15": pose["acc15"],
        "acc30": pose["acc30"],
    }
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
    """``result`` without the ``extra`` sub-dicts: exactly DESIGN.md's ``{"split", "models": {arch: M}}``."""
    return {
        "split": result["split"],
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
    predictors: Mapping[str, Predictor],
    mirror_photos: bool,
    views_per_model: int,
    backgrounds: str,
    workers: int,
    progress: bool,
    warn: Warn,
) -> Split:
    if str(split) == GRAPHICS:
        # The trained classes of every predictor, in first-seen order: both models normally share them.
        ids = list(dict.fromkeys(m for p in predictors.values() for m in p.model_ids))
        return graphics_split(
            workspace, ids, views_per_model, backgrounds=backgrounds, workers=workers, progress=progress
        )
    split_name(split)  # a clear error for a missing file
    return photo_split(Path(split), mirror=mirror_photos, warn=warn)


def run_evaluation(
    workspace: str | Path,
    models: str | Sequence[str] | None = "both",
    split: str | Path = GRAPHICS,
    report_dir: str | Path | None = None,
    mirror_photos: bool = True,
    views_per_model: int = 10,
    progress: bool = True,
    *,
    backgrounds: str = "random",
    batch_size: int = 64,
    workers: int = 1,
    predictors: Mapping[str, Predictor] | None = None,
    render_predicted: bool = True,
    warn: Warn | None = None,
) -> dict[str, Any]:
    """Evaluate the trained models on a split and write a report; returns the metrics.

    Args:
        workspace: the workspace folder.
        models: ``"both"`` (whichever checkpoints exist; a missing one is skipped with a warning), ``"scratch"``,
            ``"transfer"`` (missing → InputError), or a list of those.
        split: ``"graphics"`` (fresh renders of the predictors' classes) or the path of a photo-split CSV.
        report_dir: where the report goes; default ``<workspace>/reports/eval-<split name>/``.
        mirror_photos: for a photo split, also ask each photo mirrored left-right (φ → 360° − φ).
        views_per_model: graphics split size per model.
        backgrounds: graphics split backgrounds: ``"random"`` or a folder of images.
        predictors: already loaded predictors by arch (skips loading checkpoints; tests, the web app).
        render_predicted: draw the predicted model at the estimated pose beside each worst case.
        warn: receives one line per warning (default: printed to stderr).

    Returns:
        DESIGN.md's ``{"split": NAME, "models": {arch: M}}``, NAME = ``"graphics"`` or the CSV's file stem,
        ``M = {"n", "top1", "top5", "pose_mean_deg", "pose_median_deg", "acc15", "acc30", "extra"}``; the
        ``extra`` sub-dict holds everything beyond DESIGN.md (:func:`design_json` drops it).
    """
    from cadsearch.evaluate.report import write_report

    warn = warn or _stderr
    workspace = Path(workspace)
    notes: list[str] = []

    def note(message: str) -> None:
        notes.append(message)
        warn(message)

    if predictors is None:
        predictors = load_predictors(workspace, models, note)
    else:
        archs, explicit = resolve_models(models)
        missing = [a for a in archs if a not in predictors]
        if explicit and missing:
            raise InputError(f"no {missing[0]} model given; run `cadsearch train {missing[0]}` first")
        for arch in missing:
            note(f"no {arch} model; evaluating without it")
        predictors = {a: predictors[a] for a in archs if a in predictors}
        if not predictors:
            raise InputError("no model to evaluate; run `cadsearch train scratch` or `... transfer` first")

    the_split = _make_split(
        workspace, split, predictors, mirror_photos, views_per_model, backgrounds, workers, progress, warn
    )
    if not the_split.queries:
        raise InputError(f"split {the_split.name!r} has no usable queries")
    out = Path(report_dir) if report_dir is not None else default_report_dir(workspace, the_split.name)

    # Stage 1: raw predictions, saved before anything is summarised.
    raw = predict_split(predictors, the_split, batch_size=batch_size, progress=progress, warn=warn)
    for arch, rows in raw.items():
        write_raw(out / f"raw_{arch}.csv", rows)

    # Stage 2: metrics.
    result: dict[str, Any] = {
        "split": the_split.name,
        "models": {arch: model_metrics(rows, the_split.kind, len(the_split.skipped)) for arch, rows in raw.items()},
    }

    # Stage 3: report.
    write_report(out, result, raw, the_split, workspace=workspace, notes=notes, render_predicted=render_predicted)
    return result
