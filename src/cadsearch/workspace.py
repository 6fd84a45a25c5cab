"""The workspace folder and atomic file writes.

One folder holds everything a run makes (DESIGN.md, "Workspace on disk"): ``catalog.sqlite``, ``views/``,
``checkpoints/``, ``index/``, ``reports/``, ``runs/``. Every artefact is written to a temporary file in the
same folder and then renamed over the target, so an interrupted job never leaves a half-written file and a
re-run can trust any file it finds.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

DEFAULT_WORKSPACE = Path("cadsearch-workspace")
WORKSPACE_ENV = "CADSEARCH_WORKSPACE"
# The process umask, read once (os.umask can only be read by setting it).
_UMASK = os.umask(0)
os.umask(_UMASK)


def resolve_workspace(path: str | os.PathLike[str] | None = None) -> Path:
    """The workspace folder: ``path`` if given, else ``$CADSEARCH_WORKSPACE``, else ``./cadsearch-workspace``."""
    if path is not None:
        return Path(path)
    env = os.environ.get(WORKSPACE_ENV)
    return Path(env) if env else DEFAULT_WORKSPACE


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", durable: bool = True) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success rename it over ``path``, on error delete it.

    The temporary name starts with ``.`` and ends with ``.tmp`` so that globbing for finished artefacts
    never sees it. The rename alone guarantees that an interrupted process never leaves a half-written file;
    ``durable`` adds an fsync so that the content also survives a power cut. Cheap, re-creatable files
    written by the thousand (rendered views) pass ``durable=False``: the fsync would cost more than the render.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    # mkstemp makes the file private (0600); artefacts should get the usual permissions (0666 less umask).
    os.fchmod(fd, 0o666 & ~_UMASK)
    try:
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            if durable:
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes, durable: bool = True) -> None:
    """Write ``data`` to ``path`` atomically (see :func:`atomic_open` for ``durable``)."""
    with atomic_open(path, "wb", durable=durable) as f:
        f.write(data)


def atomic_write_text(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def file_fingerprint(path: str | os.PathLike[str]) -> str:
    """sha256 hex digest of a file's bytes (a checkpoint, an exported graph): what was made from it is reused only
    while it is the same file."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
