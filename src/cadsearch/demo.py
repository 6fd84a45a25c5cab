"""``cadsearch demo``: the whole pipeline on built-in procedural chairs, in minutes.

Stages so far: generate chairs → render views → contact sheets. Later stages (training, index, search,
evaluation, web) extend :func:`run_demo`.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer
from PIL import Image

from cadsearch.workspace import atomic_open

__all__ = ["run_demo"]


def _say(message: str) -> None:
    typer.echo(message)


def _save_png(image: Image.Image, path: Path) -> Path:
    with atomic_open(path, "wb") as f:
        image.save(f, format="PNG")
    return path


def run_demo(workspace: Path, chairs: int = 16, views: int = 24, size: int = 128, workers: int = 2) -> dict:
    """Run the demo in ``workspace``; returns the paths of what it wrote (also printed)."""
    from cadsearch.library import Library
    from cadsearch.render.job import RenderConfig, load_view, read_view_table, render_views
    from cadsearch.render.thumbnails import library_sheet
    from cadsearch.viz import contact_sheet

    t0 = time.perf_counter()
    library = Library.open(workspace)
    _say(f"[1/3] generating {chairs} procedural chairs in {workspace}")
    report = library.generate_chairs(chairs, seed=0, progress=True)
    ids = sorted([m.model_id for m in report.added] + [model_id for _, model_id in report.skipped])

    _say(f"[2/3] rendering {views} views of each chair at {size} px")
    config = RenderConfig(views=views, size=size, backgrounds="random")
    summary = render_views(workspace, config, model_ids=ids, workers=workers)
    rate = f" ({summary.views_per_second:.0f} views/s)" if summary.rendered else ""
    _say(f"      {summary.rendered} views rendered{rate}, {summary.reused} reused")

    _say("[3/3] writing contact sheets")
    reports = Path(workspace) / "reports"
    sheet_path = _save_png(library_sheet(library, ids, size=max(size, 160)), reports / "demo_library.png")
    one = ids[0]
    rows = [r for r in read_view_table(workspace) if r.model_id == one]
    sheet = contact_sheet(
        [load_view(workspace, r)[0] for r in rows],
        [f"θ {r.polar_deg:.0f}°  φ {r.azimuth_deg:.0f}°" for r in rows],
        columns=8,
    )
    views_sheet = _save_png(sheet, reports / "demo_views.png")
    _say(f"library contact sheet: {sheet_path}")
    _say(f"views of {one}: {views_sheet}")
    _say(f"demo finished in {time.perf_counter() - t0:.0f} s ({len(report.added)} new models)")
    return {"library_sheet": sheet_path, "views_sheet": views_sheet}
