"""The vector index of views: a FAISS index plus a sidecar table mapping each vector id to its view.

Vectors are L2-normalised embeddings, compared by inner product (= cosine; FAISS wiki "MetricType and
distances"). The index is named by a FAISS factory string (``faiss/index_factory.h``): ``"IDMap,Flat"`` (exact,
the default), ``"IDMap,IVF1024,Flat"`` or ``"IDMap,HNSW32,Flat"`` for large libraries (FAISS wiki "Guidelines to
choose an index"; at 1M views IVF1024 measured recall@10 0.983 with a 15 s build, HNSW32 0.960 with 213 s, see
BENCHMARKS.md). An ``IDMap,`` prefix is added when missing so that every index maps its own ids; the id of a
vector is its row in the sidecar table and in ``vectors.npy``.

On disk, one folder ``<workspace>/index/<arch>/`` holds one *generation* of three files written atomically,
and ``meta.json`` (written last) names the generation in use, so an interrupted save never mixes files of two
builds and the previous index stays usable until the new one is complete::

    meta.json             factory, dimension, counts, checkpoint fingerprint, calibration, generation
    vectors-<gen>.npy     (N, D) float32 embeddings (lets a new factory be built without re-embedding)
    table-<gen>.csv       id,view_id,model_id,polar_deg,azimuth_deg,key
    index-<gen>.faiss     the serialised FAISS index
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cadsearch.errors import InputError
from cadsearch.workspace import atomic_open, atomic_write_bytes, atomic_write_json, atomic_write_text

__all__ = [
    "DEFAULT_FACTORY",
    "ViewTable",
    "ViewIndex",
    "index_dir",
    "make_faiss_index",
    "normalise_factory",
]

#: Exact inner-product search: right for up to a few hundred thousand views (FAISS wiki guidelines).
DEFAULT_FACTORY = "IDMap,Flat"
#: Search-time knobs of approximate indexes; the defaults reach recall@10 ≥ 0.95 (benchmarks/search_speed.py).
DEFAULT_SEARCH_PARAMS = {"efSearch": 256, "nprobe": 32}
#: Up to this many queries are searched on one thread (see :meth:`ViewIndex.search`).
SMALL_BATCH = 16
TABLE_COLUMNS = ("id", "view_id", "model_id", "polar_deg", "azimuth_deg", "key")
_FAISS_LOCK = threading.Lock()


def _faiss():
    try:
        import faiss
    except ImportError:  # pragma: no cover - a dependency, but give a how-to-fix line anyway
        raise InputError("the vector index needs FAISS; install it with `pip install faiss-cpu`") from None
    return faiss


def index_dir(workspace: str | Path, arch: str) -> Path:
    """``<workspace>/index/<arch>``: where the index of one model's embeddings lives."""
    return Path(workspace) / "index" / arch


def normalise_factory(factory: str, n_vectors: int | None = None) -> str:
    """The factory string actually built: ``IDMap,`` prepended if missing, and an IVF list count lowered to
    what ``n_vectors`` can train (FAISS wants ≥ 39 training points per list)."""
    f = factory.replace(" ", "")
    if not f:
        raise InputError("the index factory string is empty; use e.g. 'IDMap,Flat' or 'IDMap,HNSW32,Flat'")
    if not f.startswith("IDMap"):
        f = "IDMap," + f
    if n_vectors is not None:

        def fewer_lists(m: re.Match) -> str:
            return f"IVF{max(1, min(int(m.group(1)), n_vectors // 39))}"

        f = re.sub(r"IVF(\d+)", fewer_lists, f)
    return f


def make_faiss_index(vectors: np.ndarray, factory: str = DEFAULT_FACTORY, ids: np.ndarray | None = None):
    """Build a FAISS inner-product index over ``vectors`` ((N, D) float32, L2-normalised) with ids ``ids``
    (default ``0..N-1``); trains it first if the factory needs training (IVF, PQ; FAISS's k-means trains on a
    sample of at most 256 points per list). ``vectors`` may be a memory map (the Ray engine's assembled
    shards): it is read in place, never copied, so the vectors are in memory once, inside FAISS."""
    faiss = _faiss()
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    n, d = vectors.shape
    spec = normalise_factory(factory, n)
    try:
        index = faiss.index_factory(d, spec, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as err:
        first = str(err).strip().splitlines()[-1][:200]
        raise InputError(f"bad index factory string {factory!r}: {first}") from None
    if not index.is_trained:
        if n == 0:
            raise InputError(f"index {factory!r} needs training vectors, and there are none")
        index.train(vectors)
    if n:
        index.add_with_ids(vectors, np.arange(n, dtype=np.int64) if ids is None else np.asarray(ids, np.int64))
    return index


def set_search_params(index, params: dict[str, float]) -> None:
    """Set the search-time parameters (``efSearch``, ``nprobe``) that apply to ``index``; others are ignored."""
    faiss = _faiss()
    space = faiss.ParameterSpace()
    for name, value in params.items():
        with contextlib.suppress(RuntimeError):  # e.g. nprobe on an HNSW index: not this kind's knob
            space.set_index_parameter(index, name, float(value))


@dataclass
class ViewTable:
    """Sidecar of the index: row ``i`` describes vector id ``i``.

    Attributes:
        view_id: (N,) object array of str, e.g. ``"chair-003/0017"``.
        model_id: (N,) object array of str.
        polar_deg, azimuth_deg: (N,) float64, the view's camera (DESIGN.md convention), degrees.
        key: (N,) object array of str, what the view was embedded from (see :func:`cadsearch.index.embed.view_key`).
    """

    view_id: np.ndarray
    model_id: np.ndarray
    polar_deg: np.ndarray
    azimuth_deg: np.ndarray
    key: np.ndarray

    def __len__(self) -> int:
        return len(self.view_id)

    @classmethod
    def empty(cls) -> ViewTable:
        o = np.zeros(0, dtype=object)
        return cls(o, o.copy(), np.zeros(0), np.zeros(0), o.copy())

    @classmethod
    def from_rows(cls, rows: list[tuple[str, str, float, float, str]]) -> ViewTable:
        if not rows:
            return cls.empty()
        v, m, p, a, k = zip(*rows, strict=True)
        return cls(
            np.array(v, dtype=object),
            np.array(m, dtype=object),
            np.array(p, np.float64),
            np.array(a, np.float64),
            np.array(k, dtype=object),
        )

    def take(self, idx: np.ndarray) -> ViewTable:
        return ViewTable(
            self.view_id[idx], self.model_id[idx], self.polar_deg[idx], self.azimuth_deg[idx], self.key[idx]
        )

    def concat(self, other: ViewTable) -> ViewTable:
        fields = ("view_id", "model_id", "polar_deg", "azimuth_deg", "key")
        return ViewTable(*(np.concatenate([getattr(self, f), getattr(other, f)]) for f in fields))

    def to_csv(self) -> str:
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(TABLE_COLUMNS)
        for i in range(len(self)):
            w.writerow(
                [i, self.view_id[i], self.model_id[i], f"{self.polar_deg[i]:.4f}", f"{self.azimuth_deg[i]:.4f}"]
                + [self.key[i]]
            )
        return buf.getvalue()

    @classmethod
    def from_csv(cls, text: str) -> ViewTable:
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None or tuple(header) != TABLE_COLUMNS:
            raise ValueError("unexpected index table header")
        rows = [(r[1], r[2], float(r[3]), float(r[4]), r[5]) for r in reader]
        return cls.from_rows(rows)


@dataclass
class ViewIndex:
    """A loaded index: FAISS index + vectors + sidecar table + metadata.

    Attributes:
        index: the FAISS index (ids = rows of ``table``).
        vectors: (N, D) float32 L2-normalised embeddings, row = id.
        table: the sidecar :class:`ViewTable`.
        meta: ``meta.json`` (factory, dim, checkpoint fingerprint, calibration, ...).
    """

    index: Any
    vectors: np.ndarray
    table: ViewTable
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    @property
    def factory(self) -> str:
        return str(self.meta.get("factory", DEFAULT_FACTORY))

    def __len__(self) -> int:
        return len(self.table)

    @classmethod
    def build(
        cls, vectors: np.ndarray, table: ViewTable, factory: str = DEFAULT_FACTORY, meta: dict | None = None
    ) -> ViewIndex:
        """Index ``vectors`` ((N, D) float32, L2-normalised; row i ↔ ``table`` row i) with ``factory``."""
        if len(vectors) != len(table):
            raise ValueError(f"{len(vectors)} vectors but {len(table)} table rows")
        index = make_faiss_index(vectors, factory)
        meta = dict(meta or {})
        meta.update(factory=normalise_factory(factory, len(vectors)), requested_factory=factory)
        meta.setdefault("search_params", dict(DEFAULT_SEARCH_PARAMS))
        out = cls(index, np.ascontiguousarray(vectors, np.float32), table, meta)
        set_search_params(out.index, out.meta["search_params"])
        return out

    def add(self, vectors: np.ndarray, table: ViewTable) -> None:
        """Append views (ids continue after the last row); the index is extended in place, not rebuilt."""
        start = len(self.table)
        vectors = np.ascontiguousarray(vectors, np.float32)
        self.index.add_with_ids(vectors, np.arange(start, start + len(vectors), dtype=np.int64))
        self.vectors = np.concatenate([self.vectors, vectors]) if len(self.vectors) else vectors
        self.table = self.table.concat(table)

    def search(self, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Nearest views of ``queries`` ((n, D) float32, L2-normalised).

        Returns ``(sims, ids)``, each (n, k): inner products (cosine) in decreasing order, and vector ids
        (rows of ``table``), ``-1`` where fewer than ``k`` results exist. Thread-safe (FAISS search is read-only).
        """
        faiss = _faiss()
        q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = max(1, min(int(k), max(len(self), 1)))
        if len(q) > SMALL_BATCH:
            return self.index.search(q, k)
        # A few queries gain nothing from OpenMP threads, and their start-up and spinning cost more than the
        # search itself on a loaded machine (20 ms vs 0.5 ms at 40k views). The setting is per calling thread.
        before = faiss.omp_get_max_threads()
        faiss.omp_set_num_threads(1)
        try:
            return self.index.search(q, k)
        finally:
            faiss.omp_set_num_threads(before)

    # --- persistence ------------------------------------------------------------------------------------

    def save(self, folder: str | Path) -> None:
        """Write a new generation of files into ``folder``, then ``meta.json`` naming it; delete old ones."""
        faiss = _faiss()
        folder = Path(folder)
        gen = uuid.uuid4().hex[:12]
        with atomic_open(folder / f"vectors-{gen}.npy") as f:  # streamed: no second copy of the vectors in memory
            np.save(f, self.vectors, allow_pickle=False)
        atomic_write_text(folder / f"table-{gen}.csv", self.table.to_csv())
        with _FAISS_LOCK:
            data = faiss.serialize_index(self.index)
        atomic_write_bytes(folder / f"index-{gen}.faiss", data.tobytes())
        self.meta.update(generation=gen, views=len(self), dim=self.dim, models=len(set(self.table.model_id)))
        atomic_write_json(folder / "meta.json", self.meta)
        for old in folder.glob("*-*.*"):
            if old.suffix in (".npy", ".csv", ".faiss") and not old.name.startswith(".") and gen not in old.name:
                old.unlink(missing_ok=True)

    @classmethod
    def load(cls, folder: str | Path) -> ViewIndex:
        """Load the generation ``meta.json`` names. :class:`InputError` if there is none or it is damaged."""
        faiss = _faiss()
        folder = Path(folder)
        meta_path = folder / "meta.json"
        if not meta_path.is_file():
            raise InputError(f"no search index in {folder}; run `cadsearch index` first")
        try:
            meta = json.loads(meta_path.read_text())
            gen = meta["generation"]
            # memory-mapped: searching never reads the vectors (FAISS holds its own copy), so they cost no RAM
            vectors = np.load(folder / f"vectors-{gen}.npy", allow_pickle=False, mmap_mode="r")
            table = ViewTable.from_csv((folder / f"table-{gen}.csv").read_text())
            raw = np.fromfile(folder / f"index-{gen}.faiss", dtype=np.uint8)
            index = faiss.deserialize_index(raw)
        except (OSError, ValueError, KeyError, RuntimeError, IndexError) as err:
            raise InputError(
                f"the search index in {folder} is damaged ({type(err).__name__}); rebuild it with `cadsearch index`"
            ) from None
        if len(vectors) != len(table) or index.ntotal != len(table):
            raise InputError(f"the search index in {folder} is inconsistent; rebuild it with `cadsearch index`")
        out = cls(index, vectors, table, meta)
        set_search_params(index, meta.get("search_params", DEFAULT_SEARCH_PARAMS))
        return out
