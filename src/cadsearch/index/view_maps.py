"""View maps of the indexed views of models whose kind the network never trained on: a sidecar of the index.

The pose head knows the viewpoint of the kinds of object the network trained on; for the others (a cup added to a
library of chairs after training) search compares the query's view map with the maps of that model's views
(:mod:`cadsearch.models.view_maps`, :func:`cadsearch.search.pose.pose_from_view_maps`). Only those models' views
get maps, so a library of the network's own kinds pays nothing.

File ``<workspace>/index/<arch>/view_maps.npz`` (written atomically after the index): ``keys`` (n,) view keys
(:func:`~cadsearch.index.embed.view_key`), ``maps`` (n, M) float16, ``fingerprint`` (the checkpoint's). Maps are
found by view key, so they survive any rebuild of the index; a build reuses those of the same checkpoint and makes
only the missing ones. No file: no maps (a scratch network, or every model of a trained kind).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cadsearch.index.embed import _read_rgb, view_key
from cadsearch.index.faiss_index import ViewTable
from cadsearch.workspace import atomic_write_bytes

__all__ = ["VIEW_MAPS_FILE", "IndexViewMaps", "build_view_maps", "load_view_maps"]

VIEW_MAPS_FILE = "view_maps.npz"


@dataclass
class IndexViewMaps:
    """The view maps of some of an index's vectors.

    Attributes:
        ids: (n,) int64 vector ids of the index (rows of its :class:`ViewTable`) that have a map.
        maps: (n, M) float32 L2-normalised view maps, row i belonging to ``ids[i]``.
    """

    ids: np.ndarray
    maps: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)


def _read(path: Path) -> tuple[list[str], np.ndarray, str] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return [str(k) for k in z["keys"].tolist()], np.asarray(z["maps"]), str(z["fingerprint"])
    except (OSError, ValueError, KeyError):
        return None  # missing or damaged: made again (build) or no maps (search)


def build_view_maps(
    workspace: str | Path,
    folder: Path,
    table: ViewTable,
    predictor: Any,
    model_ids: set[str],
    fingerprint: str,
    batch_size: int = 64,
    progress: bool = True,
) -> int:
    """Write ``folder/view_maps.npz`` for the views in ``table`` of ``model_ids``; returns how many maps it holds.

    Maps of the same checkpoint (``fingerprint``) already in the file are kept; the others are made with
    ``predictor.view_maps`` (the frozen body only). With no such view, or a predictor without view maps, the file
    is removed.
    """
    from tqdm import tqdm

    from cadsearch.render.job import read_view_table

    path = folder / VIEW_MAPS_FILE
    wanted = [str(k) for k, m in zip(table.key, table.model_id, strict=True) if str(m) in model_ids]
    if not wanted or not getattr(predictor, "has_view_maps", False):
        path.unlink(missing_ok=True)
        return 0
    old = _read(path)
    done: dict[str, np.ndarray] = {}
    if old is not None and old[2] == fingerprint:
        done = dict(zip(old[0], old[1], strict=True))
    todo = [k for k in wanted if k not in done]
    if todo:
        rows = {view_key(r): r for r in read_view_table(workspace)}
        root = Path(workspace)
        bar = tqdm(total=len(todo), unit="view", desc="view maps", disable=not progress)
        for start in range(0, len(todo), batch_size):
            keys = todo[start : start + batch_size]
            maps = predictor.view_maps([_read_rgb(root, rows[k]) for k in keys], batch_size=batch_size)
            done.update(zip(keys, maps.astype(np.float16), strict=True))
            bar.update(len(keys))
        bar.close()
    elif old is not None and len(old[0]) == len(wanted) and set(old[0]) == set(wanted):
        return len(wanted)  # unchanged
    buf = io.BytesIO()
    np.savez(buf, keys=np.array(wanted, dtype=str), maps=np.stack([done[k] for k in wanted]).astype(np.float16),
             fingerprint=np.array(fingerprint))  # fmt: skip
    atomic_write_bytes(path, buf.getvalue())
    return len(wanted)


def load_view_maps(folder: str | Path, table: ViewTable, fingerprint: str | None = None) -> IndexViewMaps | None:
    """The view maps of ``table``'s views found in ``folder/view_maps.npz`` (None: no file, none of these views, or
    maps of another checkpoint than ``fingerprint`` when it is given)."""
    found = _read(Path(folder) / VIEW_MAPS_FILE)
    if found is None or (fingerprint is not None and found[2] != fingerprint):
        return None
    at = {str(k): i for i, k in enumerate(table.key)}
    rows = [(at[k], r) for r, k in enumerate(found[0]) if k in at]
    if not rows:
        return None
    ids, which = zip(*rows, strict=True)
    return IndexViewMaps(np.asarray(ids, np.int64), found[1][list(which)].astype(np.float32))
