"""Example query images for the home page: photos from a folder named in the settings, read at run time, or
else a few renders from the workspace's views (one per model for the first few models).

Examples are found once at start-up and addressed by index, so a request never names a file path.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from cadsearch.render.thumbnails import THUMBNAIL_AZIMUTH_DEG, THUMBNAIL_POLAR_DEG

__all__ = ["Example", "find_examples", "IMAGE_SUFFIXES"]

log = logging.getLogger("cadsearch.web")

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp")


@dataclass(frozen=True)
class Example:
    """One example image: ``key`` (used in URLs and forms), a caption, and the file it reads."""

    key: str
    title: str
    path: Path


def find_examples(workspace: Path, examples_dir: Path | None, limit: int) -> list[Example]:
    """Up to ``limit`` examples: image files in ``examples_dir`` if given, else renders from ``workspace``."""
    if examples_dir is not None:
        if not examples_dir.is_dir():
            log.warning("examples folder %s does not exist; using the workspace's renders", examples_dir)
        else:
            files = sorted(
                p
                for p in examples_dir.rglob("*")
                if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file() and not p.name.startswith(".")
            )
            # spread the picks over the folder instead of taking the first few (often one object's photos)
            step = max(1, len(files) // max(1, limit))
            picked = files[::step][:limit]
            return [Example(f"ex{i}", p.stem.replace("_", " "), p) for i, p in enumerate(picked)]
    return _workspace_examples(workspace, limit)


def _workspace_examples(workspace: Path, limit: int) -> list[Example]:
    from cadsearch.errors import InputError
    from cadsearch.render.job import read_view_table

    try:
        rows = read_view_table(workspace)
    except (InputError, OSError, ValueError, TypeError) as err:
        log.info("no example images: %s", err)
        return []
    by_model: dict[str, list] = {}
    for row in rows:
        by_model.setdefault(row.model_id, []).append(row)
    names = _model_names(workspace)
    examples = []
    for model_id in sorted(by_model)[:limit]:
        # a front-ish, from-above view reads best as an example; prefer one with a background (photo-like)
        views = sorted(
            by_model[model_id],
            key=lambda r: (
                r.background in ("plain", "none", "white"),
                abs(r.polar_deg - THUMBNAIL_POLAR_DEG) + _az_gap(r.azimuth_deg),
            ),
        )
        path = workspace / views[0].path
        if path.is_file():
            examples.append(Example(f"ex{len(examples)}", names.get(model_id, model_id), path))
    return examples


def _model_names(workspace: Path) -> dict[str, str]:
    """model id → name from the catalog (captions read better than ids); empty if there is no catalog."""
    from cadsearch.library import Library

    try:
        return {m.model_id: m.name for m in Library.open(workspace).list()}
    except Exception:  # a caption is not worth failing start-up for
        return {}


def _az_gap(azimuth_deg: float) -> float:
    """Angular distance (degrees) of an azimuth from a front three-quarter view: the thumbnail's azimuth or its
    mirror image (35° or 325° today)."""
    from cadsearch.metrics import azimuth_errors_deg

    return float(azimuth_errors_deg([THUMBNAIL_AZIMUTH_DEG, 360.0 - THUMBNAIL_AZIMUTH_DEG], azimuth_deg).min())
