"""Search: photo → ranked library models, each with a calibrated score and a camera pose; registration overlay.

- :class:`Searcher` — loads the network and the view index once; ``search(image, k)`` → :class:`SearchResult`
  of :class:`ModelMatch` (thread-safe).
- :func:`cadsearch.search.overlay.render_overlay` — the top model drawn at its pose over the photo.
- :func:`cli_search` — the body of ``cadsearch search IMAGE...``.
"""

from __future__ import annotations

import io
import json
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from cadsearch.errors import InputError
from cadsearch.search.searcher import ModelMatch, Searcher, SearchResult, default_arch

__all__ = ["ModelMatch", "SearchResult", "Searcher", "cli_search", "default_arch", "overlay_path"]


def overlay_path(overlay: Path, i: int, n: int) -> Path:
    """Where query ``i`` of ``n`` writes its overlay: ``overlay`` itself for one query, else ``<stem>-<i>.png``."""
    return overlay if n == 1 else overlay.with_name(f"{overlay.stem}-{i + 1}{overlay.suffix or '.png'}")


def _table(path: str, result: SearchResult) -> str:
    lines = [f"{path}  ({result.timing_ms.get('total', 0.0):.0f} ms)"]
    if not result.results:
        lines.append("  no match")
    for m in result.results:
        lines.append(
            f"  {m.rank:>2}. {m.model_id:<24} {m.score:6.1%}  polar {m.polar_deg:5.1f}°  azimuth {m.azimuth_deg:5.1f}°"
            f"  {m.name} ({m.category})"
        )
    return "\n".join(lines)


def cli_search(
    workspace: str | Path,
    images: Sequence[str | Path],
    model: str | None = None,
    top: int = 5,
    as_json: bool = False,
    overlay: str | Path | None = None,
    crop: str = "auto",
) -> int:
    """``cadsearch search IMAGE...``: answer every query; an unreadable image gets a one-line error on stderr
    and the others still run.

    Prints one JSON object per line per query with ``as_json`` (DESIGN.md format), else a table. With
    ``overlay``, writes the top model's registration overlay (``OUT.png``, or ``OUT-<i>.png`` for several
    queries). ``crop`` is the automatic-crop method (:data:`~cadsearch.search.autocrop.METHODS`). Returns the exit
    code: 0, or 2 if any image could not be read.

    Raises:
        InputError: no trained model or no index (nothing can be answered).
    """
    from cadsearch.imageio import read_image
    from cadsearch.workspace import atomic_write_bytes

    if top < 1:
        raise InputError(f"--top must be at least 1, got {top}")
    if not images:
        raise InputError("give at least one image to search for")
    searcher = Searcher.from_workspace(workspace, model=model, crop=crop)
    code = 0
    for i, path in enumerate(images):
        t0 = time.perf_counter()
        try:
            image = read_image(path)
        except InputError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            code = 2
            continue
        decode_ms = 1000 * (time.perf_counter() - t0)
        result = searcher.search(image, k=top)
        result.timing_ms["decode"] = decode_ms
        result.timing_ms["total"] = 1000 * (time.perf_counter() - t0)
        if as_json:
            print(json.dumps(result.to_json(str(path))), flush=True)
        else:
            print(_table(str(path), result), flush=True)
        if overlay is not None and result.results:
            from PIL import Image

            from cadsearch.search.overlay import render_overlay

            out = overlay_path(Path(overlay), i, len(images))
            picture = render_overlay(searcher.library, image, result.results[0], frame=result.frame)
            buf = io.BytesIO()
            Image.fromarray(picture).save(buf, format="PNG")
            atomic_write_bytes(out, buf.getvalue())
            if not as_json:
                print(f"  overlay: {out}", flush=True)
    return code
