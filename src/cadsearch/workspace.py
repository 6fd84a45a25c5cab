"""The workspace folder and atomic file writes.

One folder holds everything a run makes (DESIGN.md, "Workspace on disk"): ``catalog.sqlite``, ``views/``,
``checkpoints/``, ``index/``, ``reports/``, ``runs/``. Every artefact is written to a temporary file in the
same folder and then renamed over the target, so an interrupted job never leaves a half-written file and a
re-run can trust any file it finds.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

DEFAULT_WORKSPACE = Path("cadsearch-workspace")
WORKSPACE_ENV = "CADSEARCH_WORKSPACE"


def resolve_workspace(path: str | os.PathLike[str] | None = None) -> Path:
    """The workspace folder: ``path`` if given, else ``$CADSEARCH_WORKSPACE``, else ``./cadsearch-workspace``."""
    if path is not None:
        return Path(path)
    env = os.environ.get(WORKSPACE_ENV)
    return Path(env) if env else DEFAULT_WORKSPACE


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success rename it over ``path``, on error delete it.

    The temporary name starts with ``.`` and ends with ``.tmp`` so that globbing for finished artefacts
    never sees it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_open(path, "wb") as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")
