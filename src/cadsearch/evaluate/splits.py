"""Evaluation splits: the queries an evaluation asks, each with its truth.

- **graphics**: fresh renders of library models from random cameras (a seed disjoint from the training
  renders) on random backgrounds, cached under ``<workspace>/eval/graphics/`` by the render job.
- **photos**: a CSV in DESIGN.md's format ``photo,model_id,polar_deg,azimuth_deg`` (photo paths relative to the
  CSV's folder, any of the last three may be empty, other columns are kept as extras), optionally doubled by
  left-right mirroring (φ → 360° − φ).

A :class:`Query` holds a path, not pixels: images are decoded batch by batch when predicted.
"""

from __future__ import annotations

import csv
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from cadsearch.errors import InputError
from cadsearch.imageio import read_image
from cadsearch.metrics import mirror_labels

__all__ = [
    "GRAPHICS",
    "EVAL_SEED_OFFSET",
    "Query",
    "Split",
    "read_image",
    "graphics_split",
    "photo_split",
]

#: Name of the rendered split (a photo split is named by its CSV's file stem).
GRAPHICS = "graphics"
#: Evaluation cameras use seed = training seed + this, so no evaluation view repeats a training camera.
EVAL_SEED_OFFSET = 10_000
#: Where the graphics split's renders live inside the workspace.
GRAPHICS_DIR = "eval/graphics"
PHOTO_COLUMNS = ("photo", "model_id", "polar_deg", "azimuth_deg")

Warn = Callable[[str], None]


def _stderr_warning(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr)


@dataclass(frozen=True)
class Query:
    """One evaluation query and its truth (None where the split has no label).

    Attributes:
        query_id: unique within the split (the photo path, ``+ "#mirror"`` for a mirrored copy; the view id).
        path: the image file.
        model_id: the true library model, or None.
        polar_deg: true polar θ in degrees, or None.
        azimuth_deg: true azimuth φ in [0, 360) degrees, or None (already mirrored for a mirrored copy).
        mirrored: the image is flipped left-right when loaded.
        extra: other CSV columns (e.g. ``confidence``), kept for the raw predictions file.
    """

    query_id: str
    path: Path
    model_id: str | None = None
    polar_deg: float | None = None
    azimuth_deg: float | None = None
    mirrored: bool = False
    extra: dict[str, str] = field(default_factory=dict)

    def image(self) -> np.ndarray:
        """The query image, (H, W, 3) uint8 RGB (EXIF orientation applied, mirrored if ``mirrored``)."""
        rgb = read_image(self.path)
        return np.ascontiguousarray(rgb[:, ::-1]) if self.mirrored else rgb


@dataclass
class Split:
    """A named list of queries.

    Attributes:
        name: ``"graphics"`` or the photo CSV's file stem.
        kind: ``"graphics"`` or ``"photos"``.
        queries: the queries, in a stable order.
        skipped: one line per query left out (missing or unreadable photo), also printed as a warning.
        info: how the split was made (render settings, CSV path, mirroring), recorded in the report.
    """

    name: str
    kind: str
    queries: list[Query]
    skipped: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)


# --- images ---------------------------------------------------------------------------------------------
# ``read_image`` lives in :mod:`cadsearch.imageio` (shared with search and the web app); re-exported here.


# --- photo split --------------------------------------------------------------------------------------------


def _number(text: str | None, column: str, line: int, csv_path: Path) -> float | None:
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = float(text)
    except ValueError:
        raise InputError(f"{csv_path}, line {line}: {column} {text!r} is not a number of degrees") from None
    if not math.isfinite(value):
        raise InputError(f"{csv_path}, line {line}: {column} {text!r} is not a finite number of degrees")
    return value


def photo_split(csv_path: str | Path, mirror: bool = False, warn: Warn | None = None) -> Split:
    """Read a photo split CSV (DESIGN.md format) into a :class:`Split` named after the file's stem.

    Photo paths are relative to the CSV's folder (absolute paths are kept). Empty ``model_id``, ``polar_deg``
    or ``azimuth_deg`` → None. Rows whose photo is missing or not a readable image are skipped with one
    warning each (``warn``, default: a line on stderr) and listed in ``Split.skipped``. ``mirror`` adds the
    left-right flipped copy of every photo with φ → 360° − φ (θ and model unchanged).

    Raises:
        InputError: the CSV is missing, not a CSV, has no ``photo`` column, or holds a non-numeric or
            out-of-range angle (polar outside [0, 180]).
    """
    warn = warn or _stderr_warning
    csv_path = Path(csv_path)
    if not csv_path.is_file():
        raise InputError(f"photo split {csv_path} not found; give a CSV with columns {','.join(PHOTO_COLUMNS)}")
    try:
        text = csv_path.read_text(encoding="utf-8-sig")  # -sig: spreadsheets often prepend a BOM
    except (UnicodeDecodeError, OSError) as err:
        raise InputError(f"{csv_path} is not a readable CSV text file ({type(err).__name__})") from None
    try:
        reader = csv.DictReader(text.splitlines())
        header = [h.strip() for h in (reader.fieldnames or [])]
        rows = list(reader)
    except csv.Error as err:
        raise InputError(f"{csv_path} is not a valid CSV: {err}") from None
    if "photo" not in header:
        raise InputError(
            f"{csv_path} has no 'photo' column (found: {', '.join(header) or 'nothing'}); "
            f"a photo split needs columns {','.join(PHOTO_COLUMNS)}"
        )
    reader_names = reader.fieldnames or []
    rename = dict(zip(reader_names, header, strict=True))

    folder = csv_path.parent
    queries: list[Query] = []
    skipped: list[str] = []
    seen: set[str] = set()
    for line, raw in enumerate(rows, start=2):
        row = {rename.get(k, k): (v if isinstance(v, str) else "") for k, v in raw.items() if k is not None}
        photo = row.get("photo", "").strip()
        if not photo:
            continue  # blank line or a row without a photo: nothing to ask
        polar = _number(row.get("polar_deg"), "polar_deg", line, csv_path)
        azimuth = _number(row.get("azimuth_deg"), "azimuth_deg", line, csv_path)
        if polar is not None and not 0.0 <= polar <= 180.0:
            raise InputError(f"{csv_path}, line {line}: polar_deg {polar:g} is outside [0, 180]")
        if azimuth is not None:
            azimuth = azimuth % 360.0
        model_id = row.get("model_id", "").strip() or None
        path = Path(photo) if Path(photo).is_absolute() else folder / photo
        problem = _check_photo(path)
        if problem is not None:
            message = f"skipping {photo} (line {line}): {problem}"
            warn(message)
            skipped.append(message)
            continue
        query_id = photo if photo not in seen else f"{photo}@{line}"
        seen.add(query_id)
        extra = {k: v for k, v in row.items() if k not in PHOTO_COLUMNS}
        queries.append(Query(query_id, path, model_id, polar, azimuth, False, extra))
    if mirror:
        queries = queries + [_mirrored(q) for q in queries]
    info = {"csv": str(csv_path), "mirror": bool(mirror), "photos": len(queries) // (2 if mirror else 1)}
    return Split(csv_path.stem, "photos", queries, skipped, info)


def _check_photo(path: Path) -> str | None:
    """None if ``path`` looks like a readable image (header only: cheap), else why not."""
    if not path.is_file():
        return "file not found"
    try:
        with Image.open(path) as im:
            im.size  # noqa: B018 - touching the header is the check
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        return f"not a readable image ({err})"
    return None


def _mirrored(q: Query) -> Query:
    azimuth = None
    if q.azimuth_deg is not None:
        azimuth = float(mirror_labels(np.nan, q.azimuth_deg)[1])
    return Query(f"{q.query_id}#mirror", q.path, q.model_id, q.polar_deg, azimuth, True, dict(q.extra))


# --- graphics split -----------------------------------------------------------------------------------------


def graphics_split(
    workspace: str | Path,
    model_ids: Sequence[str],
    views_per_model: int = 10,
    backgrounds: str = "random",
    seed: int | None = None,
    quality: str | None = None,
    workers: int = 1,
    progress: bool = True,
) -> Split:
    """Render (or reuse) ``views_per_model`` fresh views of each of ``model_ids`` and return them as queries.

    Size, field of view, polar range and quality follow the training renders (``views/render_config.json``)
    so the split differs from training only in its cameras (random, seed = training seed + 10 000 unless
    ``seed`` is given) and backgrounds (``"random"`` or a folder of images). Renders go to
    ``<workspace>/eval/graphics`` through the render job: cached, atomic and resumable.
    """
    from dataclasses import replace

    from cadsearch.render.job import read_render_config, read_view_table, render_views

    if views_per_model < 1:
        raise InputError(f"views per model must be at least 1, got {views_per_model}")
    if not model_ids:
        raise InputError("the graphics split needs at least one model; the predictor lists no classes")
    train = read_render_config(workspace)
    config = replace(
        train,
        views=views_per_model,
        sampling="random",
        backgrounds=str(backgrounds),
        seed=int(seed) if seed is not None else train.seed + EVAL_SEED_OFFSET,
        quality=quality or train.quality,
    )
    render_views(workspace, config, model_ids=list(model_ids), workers=workers, progress=progress, out_dir=GRAPHICS_DIR)
    wanted = set(model_ids)
    root = Path(workspace)
    queries = [
        Query(r.view_id, root / r.path, r.model_id, float(r.polar_deg), float(r.azimuth_deg) % 360.0)
        for r in read_view_table(root, GRAPHICS_DIR)
        if r.model_id in wanted
    ]
    info = {
        "render": {
            "views_per_model": config.views,
            "size": config.size,
            "fov_deg": config.fov_deg,
            "polar_range": list(config.polar_range),
            "quality": config.quality,
            "backgrounds": config.backgrounds,
            "seed": config.seed,
        },
        "models": len(wanted),
    }
    return Split(GRAPHICS, "graphics", queries, [], info)
