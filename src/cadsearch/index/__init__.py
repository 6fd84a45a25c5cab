"""``cadsearch index``: embed every rendered view into a FAISS index with a view table beside it.

- :func:`build_index` (workspace, ``"scratch"`` | ``"transfer"``, factory) → :class:`IndexSummary`. Incremental:
  views already in the index (same key, same checkpoint) keep their vectors, so after ``library add`` +
  ``render`` only the new views are embedded; new models are found without retraining. Interrupted builds
  resume from the partial results saved under ``index/<arch>/parts/``. The scores' temperature is fitted by the
  search layer on the built index (:mod:`cadsearch.search.calibration`), not here.
- Beside the index, the view maps of the views of models whose kind the network never trained on
  (``view_maps.npz``, :mod:`cadsearch.index.view_maps`): search reads those models' viewpoint from them.
- :class:`ViewIndex` — the loaded index (FAISS + vectors + :class:`ViewTable` + meta), see
  :mod:`cadsearch.index.faiss_index` for the files.
"""

from __future__ import annotations

import functools
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cadsearch import __version__
from cadsearch.errors import InputError
from cadsearch.index.embed import embed_views, file_fingerprint, view_key
from cadsearch.index.faiss_index import (
    DEFAULT_FACTORY,
    ViewIndex,
    ViewTable,
    index_dir,
    make_faiss_index,
    normalise_factory,
)
from cadsearch.index.view_maps import VIEW_MAPS_FILE, build_view_maps

__all__ = [
    "DEFAULT_FACTORY",
    "DEFAULT_K_VIEWS",
    "IndexSummary",
    "ViewIndex",
    "ViewTable",
    "build_index",
    "index_dir",
    "load_index",
    "make_faiss_index",
]

#: Nearest views retrieved per query before grouping them by model (enough for the top models' best views).
DEFAULT_K_VIEWS = 256


@dataclass
class IndexSummary:
    """What :func:`build_index` did."""

    folder: Path
    arch: str
    views: int  # vectors in the index now
    models: int
    embedded: int  # views embedded by this call
    reused: int  # views whose vectors were kept (or found in partial results)
    removed: int  # views dropped (no longer in the view table, or re-rendered)
    factory: str
    dim: int
    seconds: float
    unchanged: bool = False
    view_maps: int = 0  # views with a view map (models of kinds the network never trained on)


def load_index(workspace: str | Path, arch: str) -> ViewIndex:
    """The index of ``arch`` in ``workspace``; :class:`InputError` with how to make it if there is none."""
    folder = index_dir(workspace, arch)
    if not (folder / "meta.json").is_file():
        raise InputError(f"no {arch} search index in {workspace}; run `cadsearch index --model {arch}` first")
    return ViewIndex.load(folder)


def build_index(
    workspace: str | Path,
    model: str = "scratch",
    factory: str | None = None,
    progress: bool = True,
    *,
    predictor: Any = None,
    fingerprint: str | None = None,
    batch_size: int = 64,
    engine: str = "local",
    ray_address: str | None = None,
    workers: int | None = None,
    predictor_factory: Callable[[], Any] | None = None,
    device: str = "auto",
) -> IndexSummary:
    """Embed the workspace's views with the ``model`` checkpoint and (re)build ``<workspace>/index/<model>/``.

    Args:
        workspace: the workspace folder.
        model: ``scratch`` or ``transfer`` (whose checkpoint embeds the views).
        factory: FAISS factory string; None keeps the current index's (``"IDMap,Flat"`` for a new one).
        progress: show a progress bar while embedding.
        predictor: use this predictor instead of loading the checkpoint (tests, benchmarks); it needs
            ``predict(images, batch_size)`` and ``model_ids``.
        fingerprint: identifies ``predictor``'s weights (default: the checkpoint file's sha256).
        batch_size: images per forward pass.
        engine: ``local`` (this process) or ``ray``: an actor pool on the Ray cluster at ``ray_address`` (None:
            start or join a local one; ``auto``: the running cluster) embeds shards of views, and the index is
            built from the shards (:mod:`cadsearch.index.ray_embed`).
        workers: Ray actors (None: one per CPU of the cluster); ignored by the local engine.
        predictor_factory: what each Ray actor calls to get its predictor (picklable; default: load the
            checkpoint). Needed with ``engine="ray"`` when ``predictor`` is given.
        device: where the checkpoint's network embeds the views when this function loads it (``auto``: a CUDA GPU
            when torch sees one, else the CPU; ``cpu``; ``cuda``; ``cuda:N``); a given ``predictor`` runs where it
            was built. With ``engine="ray"``, ``auto`` and ``cuda`` give each actor a share of the cluster's GPUs
            (when it has any) and the actors embed on them.

    Raises:
        InputError: unknown model, no views, no checkpoint, bad factory string.
    """
    from cadsearch.render.job import read_view_table

    start = time.perf_counter()
    from cadsearch.models import list_models

    if model not in list_models():
        raise InputError(f"--model must be {' or '.join(list_models())}, got {model!r}")
    from cadsearch.render.ray_engine import check_engine

    check_engine(engine)
    if engine == "ray" and predictor is not None and predictor_factory is None:
        raise ValueError("engine='ray' with a predictor object needs predictor_factory for the actors")
    ws = Path(workspace)
    rows = read_view_table(ws)
    if not rows:
        raise InputError(f"the view table of {ws} is empty; run `cadsearch render` first")
    if predictor is None:
        from cadsearch.models import checkpoint_path, load_predictor

        ckpt = checkpoint_path(ws, model)
        predictor = load_predictor(ckpt, device=device)
        fingerprint = fingerprint or file_fingerprint(ckpt)
        predictor_factory = predictor_factory or functools.partial(load_predictor, ckpt, device=device)
    fingerprint = fingerprint or str(getattr(predictor, "fingerprint", "custom"))
    folder = index_dir(ws, model)

    old: ViewIndex | None = None
    if (folder / "meta.json").is_file():
        try:
            old = ViewIndex.load(folder)
        except InputError:
            old = None  # damaged: rebuild from scratch (partial results may still help)
        if old is not None and old.meta.get("fingerprint") != fingerprint:
            old = None  # another network: every vector must be remade
    factory = factory or (old.meta.get("requested_factory") if old else None) or DEFAULT_FACTORY

    keys = [view_key(r) for r in rows]
    old_pos = {k: i for i, k in enumerate(old.table.key)} if old is not None else {}
    kept_ids = np.array(sorted(old_pos[k] for k in keys if k in old_pos), dtype=np.int64)
    new_rows = [r for r, k in zip(rows, keys, strict=True) if k not in old_pos]
    removed = (len(old) - len(kept_ids)) if old is not None else 0
    same_factory = old is not None and old.factory == normalise_factory(factory, len(rows))
    if old is not None and not new_rows and not removed and same_factory:
        maps = _build_view_maps(ws, folder, old.table, predictor, fingerprint, batch_size, progress)
        return IndexSummary(
            folder, model, len(old), len(set(old.table.model_id)), 0, len(old), 0, old.factory, old.dim,
            time.perf_counter() - start, unchanged=True, view_maps=maps,
        )  # fmt: skip

    parts = folder / "parts"
    if engine == "ray" and new_rows:
        from cadsearch.index.ray_embed import embed_views_ray

        assert predictor_factory is not None
        vectors = embed_views_ray(
            ws, predictor_factory, new_rows, parts, fingerprint, batch_size, progress, workers, ray_address,
            device=device,
        )  # fmt: skip
    else:
        vectors = embed_views(ws, predictor, new_rows, batch_size, progress, parts, fingerprint)
    new_table = ViewTable.from_rows(
        [(r.view_id, r.model_id, r.polar_deg, r.azimuth_deg % 360.0, view_key(r)) for r in new_rows]
    )
    meta = {
        "arch": model,
        "fingerprint": fingerprint,
        "cadsearch_version": __version__,
        "k_views": DEFAULT_K_VIEWS,
        "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if old is not None and not removed and same_factory:
        index = old  # append: the FAISS index grows in place, ids continue
        if len(new_rows):
            index.add(vectors, new_table)
        index.meta.update(meta)
        index.meta.pop("calibration", None)  # fitted for the old vectors (search.calibration refits it)
    else:
        if old is not None and len(kept_ids):
            all_vectors = np.concatenate([old.vectors[kept_ids], vectors]) if len(vectors) else old.vectors[kept_ids]
            table = old.table.take(kept_ids).concat(new_table)
        else:
            all_vectors, table = vectors, new_table
        index = ViewIndex.build(all_vectors, table, factory, meta)
    folder.mkdir(parents=True, exist_ok=True)
    index.save(folder)
    shutil.rmtree(parts, ignore_errors=True)  # after the save: an interrupted save still finds them
    maps = _build_view_maps(ws, folder, index.table, predictor, fingerprint, batch_size, progress)
    return IndexSummary(
        folder, model, len(index), len(set(index.table.model_id)), len(new_rows), len(index) - len(new_rows),
        removed, index.factory, index.dim, time.perf_counter() - start, view_maps=maps,
    )  # fmt: skip


def _build_view_maps(
    ws: Path, folder: Path, table: ViewTable, predictor: Any, fingerprint: str, batch_size: int, progress: bool
) -> int:
    """The view maps of the indexed views of models whose kind the network never trained on
    (:mod:`cadsearch.index.view_maps`; this process embeds them, whichever engine embedded the index: they are
    the views of a few added models, not the library's)."""
    if not getattr(predictor, "has_view_maps", False):
        (folder / VIEW_MAPS_FILE).unlink(missing_ok=True)
        return 0
    from cadsearch.library import Library
    from cadsearch.models.predictor import trained_categories

    category_of = {m.model_id: m.category for m in Library.open(ws).list()}
    known = trained_categories(predictor, category_of)
    untrained = {m for m in set(table.model_id.astype(str)) if known and category_of.get(m) not in known}
    return build_view_maps(ws, folder, table, predictor, untrained, fingerprint, batch_size, progress)
