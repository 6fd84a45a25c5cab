"""The model catalog: a SQLite table of the meshes in a workspace, and the :class:`Library` API over it.

``<workspace>/catalog.sqlite`` holds one row per model (id, name, category, source, absolute source path,
checksum, declared axes, counts, texture flag, time added, rotational symmetry about +Y). The meshes themselves
stay where they are; :meth:`Library.mesh` reloads and canonicalises a source file on demand. Every change is one SQLite
transaction, so an interrupted run never leaves a half-written catalog, and re-adding a file with the same
checksum is a no-op, so an interrupted ``library add`` can simply be run again.

Model ids match :data:`MODEL_ID_PATTERN` (safe as a file name and a URL part). Ids are derived from file
stems unless given; a clash with a different model gets ``-2``, ``-3``, ... appended.

Symmetry: adding a model detects its rotational symmetry about the up axis
(:func:`cadsearch.library.symmetry.detect_symmetry`) and stores it as ``symmetry_order`` (1 none, n n-fold,
0 continuous). A catalog written before that column existed gets it when opened (``ALTER TABLE ... ADD
COLUMN``, one transaction, rows kept) with NULL in the old rows; each such row is filled in the first time it
is read (:meth:`Library.list` / :meth:`Library.get` load the mesh, detect, and store it with one ``UPDATE``),
or when its file is added again (``cadsearch library add`` of the same files; a no-op otherwise). A row whose
source file is gone reads as 1 (none) and stays NULL until the file is back.
"""

from __future__ import annotations

import contextlib
import csv
import re
import sqlite3
import sys
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import trimesh
from tqdm import tqdm

from cadsearch.errors import CadsearchError, InputError, MeshLoadError
from cadsearch.library.mesh import (
    SUPPORTED_EXTENSIONS,
    MeshRecord,
    axis_rotation,
    canonicalise,
    load_mesh,
    load_source_mesh,
    parse_axis,
    to_glb_bytes,
)
from cadsearch.library.symmetry import detect_symmetry, symmetry_name
from cadsearch.workspace import atomic_write_bytes, resolve_workspace

CATALOG_NAME = "catalog.sqlite"
SCHEMA_VERSION = 1

#: What a model id must look like: a letter or digit, then up to 127 of letters, digits, ``. _ -``.
MODEL_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

#: Category stored when none is given.
DEFAULT_CATEGORY = "unknown"
#: Source stored for files added by path when none is given.
DEFAULT_SOURCE = "user"

# File stems that say nothing about the model (ShapeNet's ``<id>/models/model_normalized.obj``): the id
# comes from the nearest folder above that is not a generic container name instead.
_GENERIC_STEMS = {"model", "model_normalized", "mesh", "scene", "untitled", "object", "textured"}
_GENERIC_FOLDERS = {"models", "model", "meshes", "mesh", "obj", "source", "sources"}

_MANIFEST_COLUMNS = ("path", "source", "category", "model_id", "up_axis", "front_axis", "license")
_MESH_CACHE_SIZE = 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS models (
    model_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    source TEXT NOT NULL,
    path TEXT NOT NULL,
    checksum TEXT NOT NULL UNIQUE,
    up_axis TEXT NOT NULL,
    front_axis TEXT NOT NULL,
    n_vertices INTEGER NOT NULL,
    n_faces INTEGER NOT NULL,
    has_texture INTEGER NOT NULL,
    added_at TEXT NOT NULL,
    license TEXT,
    symmetry_order INTEGER
);
CREATE INDEX IF NOT EXISTS models_category ON models (category);
"""

_COLUMNS = (
    "model_id",
    "name",
    "category",
    "source",
    "path",
    "checksum",
    "up_axis",
    "front_axis",
    "n_vertices",
    "n_faces",
    "has_texture",
    "added_at",
    "license",
    "symmetry_order",
)


@dataclass(frozen=True)
class ModelInfo:
    """One catalog row.

    Attributes:
        model_id: unique id, matches :data:`MODEL_ID_PATTERN`.
        name: human-readable name (the file stem unless given).
        category: e.g. ``"chair"``; ``"unknown"`` when not given.
        source: where it came from, e.g. ``"procedural"``, ``"shapenet-10class"``, ``"user"``.
        path: absolute path of the source mesh file.
        checksum: sha256 hex digest of the source (see :class:`cadsearch.library.mesh.MeshRecord`).
        up_axis, front_axis: the source file's declared axes, e.g. ``"+z"``, ``"-y"``.
        n_vertices, n_faces: counts of the canonical mesh.
        has_texture: whether the mesh has UV coordinates and a texture image.
        added_at: ISO 8601 UTC time the row was added.
        license: licence note from a manifest, or None.
        symmetry_order: rotational symmetry about +Y: 1 none, n >= 2 n-fold (the same after 360°/n), 0
            continuous (see :mod:`cadsearch.library.symmetry`; :attr:`symmetry` is its name).
    """

    model_id: str
    name: str
    category: str
    source: str
    path: Path
    checksum: str
    up_axis: str
    front_axis: str
    n_vertices: int
    n_faces: int
    has_texture: bool
    added_at: str
    license: str | None = None
    symmetry_order: int = 1

    @property
    def symmetry(self) -> str:
        """Name of :attr:`symmetry_order`: ``"none"``, ``"2-fold"``, ..., ``"continuous"``."""
        return symmetry_name(self.symmetry_order)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (``path`` as a string), with ``symmetry`` (the name) beside ``symmetry_order``."""
        out = asdict(self)
        out["path"] = str(self.path)
        out["symmetry"] = self.symmetry
        return out


@dataclass
class AddReport:
    """What an add operation did.

    Attributes:
        added: rows added, in the order added.
        skipped: ``(path, existing model_id)`` for files already in the catalog (same checksum).
        failed: ``(path, one-line reason)`` for files that could not be added.
    """

    added: list[ModelInfo] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)

    def extend(self, other: AddReport) -> None:
        """Append ``other``'s entries to this report."""
        self.added.extend(other.added)
        self.skipped.extend(other.skipped)
        self.failed.extend(other.failed)


def validate_model_id(model_id: str) -> str:
    """Return ``model_id`` if it matches :data:`MODEL_ID_PATTERN`, else raise :class:`InputError`."""
    if not isinstance(model_id, str) or not MODEL_ID_PATTERN.match(model_id):
        raise InputError(
            f"bad model id {model_id!r}: use 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    return model_id


def sanitise_model_id(text: str) -> str:
    """Turn any text into a valid model id base: unsafe characters → ``-``, at most 120 characters.

    120 leaves room for a ``-N`` suffix on collision. Empty results become ``"model"``.
    """
    out = re.sub(r"[^A-Za-z0-9._-]+", "-", text.strip())
    out = re.sub(r"^[^A-Za-z0-9]+", "", out)[:120].rstrip("-.")
    return out or "model"


def model_id_from_path(path: Path) -> str:
    """A model id base for a file: its sanitised stem, or for generic stems its model folder's name.

    ``chairs/Eames Chair.obj`` → ``Eames-Chair``; ``shapenet/<id>/models/model_normalized.obj`` → ``<id>``.
    """
    return sanitise_model_id(name_from_path(path))


def name_from_path(path: Path) -> str:
    """A human-readable model name for a file: its stem, or for generic stems its model folder's name."""
    if path.stem.lower() in _GENERIC_STEMS:
        for folder in path.parents:
            if folder.name and folder.name.lower() not in _GENERIC_FOLDERS:
                return folder.name
    return path.stem


def find_mesh_files(folder: Path) -> list[Path]:
    """Supported mesh files under ``folder``, recursively, sorted; hidden files and folders are skipped.

    Hidden names include the ``.<name>.*.tmp`` files of unfinished atomic writes.
    """
    found = []
    for path in folder.rglob("*"):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts):
            continue
        if path.suffix.lower() in SUPPORTED_EXTENSIONS and path.is_file():
            found.append(path)
    return sorted(found)


def resolve_manifest_path(csv_dir: Path, path_text: str) -> Path:
    """Where a manifest row's ``path`` points: absolute as is, else relative to the CSV's folder.

    If that file does not exist but the path exists relative to a folder above the CSV's, that is used
    instead: the shared data set's ``meshes/manifest.csv`` writes its paths relative to the data root
    (``meshes/shapenet-10class/...``), one level up from the CSV.
    """
    rel = Path(path_text.strip()).expanduser()
    if rel.is_absolute():
        return rel
    first = csv_dir / rel
    if first.exists():
        return first.absolute()
    for folder in csv_dir.absolute().parents:
        candidate = folder / rel
        if candidate.exists():
            return candidate
    return first.absolute()


class Library:
    """The models of one workspace: the SQLite catalog plus loading of canonical meshes.

    Cheap to create and safe to pickle (for worker processes): each operation opens its own short-lived
    SQLite connection, so nothing process- or thread-bound is held.
    """

    def __init__(self, workspace: Path):
        """Use :meth:`open`; this assumes the workspace and catalog exist."""
        self.workspace = Path(workspace).absolute()
        self.catalog_path = self.workspace / CATALOG_NAME
        self._cache: OrderedDict[str, trimesh.Trimesh] = OrderedDict()

    # ----------------------------------------------------------------------------------------------------
    # opening

    @classmethod
    def open(cls, workspace: str | Path | None = None) -> Library:
        """Open the library of ``workspace`` (None: ``$CADSEARCH_WORKSPACE`` or the default folder),
        creating the folder and an empty catalog if missing.

        Raises:
            InputError: the workspace is not a folder, or the catalog is not a cadsearch SQLite database.
        """
        folder = resolve_workspace(workspace).expanduser().absolute()
        if folder.exists() and not folder.is_dir():
            raise InputError(f"workspace {folder} is a file, not a folder; pass another --workspace")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise InputError(f"cannot create workspace {folder}: {err.strerror or err}") from None
        lib = cls(folder)
        try:
            with lib._connection() as conn:
                # idempotent, so two processes opening a new workspace at once both succeed
                conn.executescript(_SCHEMA)
                conn.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
                if int(row[0]) > SCHEMA_VERSION:
                    raise InputError(
                        f"catalog {lib.catalog_path} was written by a newer cadsearch "
                        f"(schema {row[0]}); upgrade cadsearch"
                    )
                _migrate(conn)
        except sqlite3.DatabaseError as err:
            raise InputError(
                f"catalog {lib.catalog_path} is not a usable SQLite database ({err}); move it away and re-add"
            ) from None
        return lib

    def __getstate__(self) -> dict[str, Any]:
        # the mesh cache can be large; worker processes start with an empty one
        return {"workspace": self.workspace}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["workspace"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"Library({str(self.workspace)!r})"

    # ----------------------------------------------------------------------------------------------------
    # reading

    def list(self, category: str | None = None) -> list[ModelInfo]:
        """All models (of ``category`` if given), sorted by model id."""
        sql = f"SELECT {', '.join(_COLUMNS)} FROM models"
        args: tuple[Any, ...] = ()
        if category is not None:
            sql += " WHERE category = ?"
            args = (category,)
        with self._connection() as conn:
            rows = conn.execute(sql + " ORDER BY model_id", args).fetchall()
        return [self._complete(r) for r in rows]

    def get(self, model_id: str) -> ModelInfo:
        """The row of ``model_id``.

        Raises:
            InputError: no such model.
        """
        with self._connection() as conn:
            row = conn.execute(f"SELECT {', '.join(_COLUMNS)} FROM models WHERE model_id = ?", (model_id,)).fetchone()
        if row is None:
            raise InputError(f"unknown model id '{model_id}'; see `cadsearch library list`")
        return self._complete(row)

    def mesh(self, model_id: str) -> trimesh.Trimesh:
        """The canonical mesh of ``model_id`` (+Y up, front +Z, centred, radius 1), loaded from its source.

        Returns a copy the caller may modify; the last few meshes are cached.

        Raises:
            InputError: unknown id, or the source file is gone.
            MeshLoadError: the source file can no longer be read as a mesh.
        """
        cached = self._cache.get(model_id)
        if cached is not None:
            self._cache.move_to_end(model_id)
            return cached.copy()
        info = self._lookup(model_id)
        if info is None:
            raise InputError(f"unknown model id '{model_id}'; see `cadsearch library list`")
        if not info.path.is_file():
            raise InputError(
                f"the source file of model '{model_id}' is gone: {info.path}; restore it or re-add the model"
            )
        raw, _ = load_source_mesh(info.path)
        try:
            mesh = canonicalise(raw, info.up_axis, info.front_axis)
        except InputError as err:
            raise MeshLoadError(f"cannot load mesh '{info.path}': {err}") from None
        self._remember(model_id, mesh)
        return mesh.copy()

    def __len__(self) -> int:
        with self._connection() as conn:
            return int(conn.execute("SELECT COUNT(*) FROM models").fetchone()[0])

    def __contains__(self, model_id: object) -> bool:
        if not isinstance(model_id, str):
            return False
        with self._connection() as conn:
            return conn.execute("SELECT 1 FROM models WHERE model_id = ?", (model_id,)).fetchone() is not None

    def __iter__(self) -> Iterator[ModelInfo]:
        return iter(self.list())

    # ----------------------------------------------------------------------------------------------------
    # adding

    def add_mesh_file(
        self,
        path: str | Path,
        *,
        model_id: str | None = None,
        name: str | None = None,
        category: str | None = None,
        source: str | None = None,
        up: str = "+y",
        front: str = "+z",
        license: str | None = None,
    ) -> ModelInfo:
        """Load, validate and catalog one mesh file; return its row.

        If a model with the same checksum is already cataloged, nothing changes and that row is returned.
        Without ``model_id`` the id comes from the file name (:func:`model_id_from_path`), made unique.

        Raises:
            InputError: bad ``model_id``/``up``/``front``, or ``model_id`` taken by a different model.
            MeshLoadError: the file cannot be used as a mesh.
        """
        info, _ = self._add_one(
            Path(path),
            model_id=model_id,
            name=name,
            category=category,
            source=source,
            up=up,
            front=front,
            license=license,
        )
        return info

    def add_paths(
        self,
        paths: Iterable[str | Path],
        *,
        category: str | None = None,
        up: str = "+y",
        front: str = "+z",
        source: str | None = None,
        progress: bool = False,
    ) -> AddReport:
        """Add mesh files and every supported mesh file under given folders (recursively).

        A file that fails goes to ``failed`` and the others are still added; files already cataloged
        (same checksum) go to ``skipped``.

        Raises:
            InputError: bad ``up``/``front`` (bad usage, so nothing is attempted).
        """
        up, front = parse_axis(up), parse_axis(front)
        axis_rotation(up, front)  # parallel axes are a usage error, not a per-file failure
        report = AddReport()
        files: list[Path] = []
        for given in paths:
            p = Path(given).expanduser()
            if p.is_dir():
                found = find_mesh_files(p)
                if not found:
                    supported = ", ".join(e[1:] for e in SUPPORTED_EXTENSIONS)
                    report.failed.append((str(p), f"folder contains no mesh files ({supported})"))
                files.extend(found)
            else:
                files.append(p)
        for p in tqdm(files, desc="adding meshes", unit="file", file=sys.stderr, disable=not progress):
            self._add_recorded(report, p, category=category, source=source, up=up, front=front)
        return report

    def add_manifest(self, csv_path: str | Path, progress: bool = False) -> AddReport:
        """Add the models listed in a manifest CSV.

        Columns: ``path`` (required; relative to the CSV's folder, see :func:`resolve_manifest_path`),
        ``source``, ``category``, ``model_id``, ``up_axis``, ``front_axis``, ``license`` (all optional; empty
        cells take the defaults ``"manifest"``, ``"unknown"``, derived id, ``+y``, ``+z``, none). A row with
        a ``model_id`` already used by a different model fails; the other rows are still added.

        Raises:
            InputError: the CSV is missing, unreadable or has no ``path`` column.
        """
        csv_path = Path(csv_path).expanduser()
        try:
            with open(csv_path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                header = [h.strip() for h in (reader.fieldnames or [])]
                rows = [{(k or "").strip(): (v or "").strip() for k, v in row.items()} for row in reader]
        except FileNotFoundError:
            raise InputError(f"manifest {csv_path} not found") from None
        except (OSError, UnicodeDecodeError, csv.Error) as err:
            raise InputError(f"cannot read manifest {csv_path}: {_one_line(err)}") from None
        if "path" not in header:
            raise InputError(
                f"manifest {csv_path} has no 'path' column; expected columns {','.join(_MANIFEST_COLUMNS)}"
            )
        csv_dir = csv_path.parent
        report = AddReport()
        for line, row in enumerate(
            tqdm(rows, desc="adding manifest", unit="model", file=sys.stderr, disable=not progress), start=2
        ):
            if not row.get("path"):
                report.failed.append((f"{csv_path}:{line}", "empty path"))
                continue
            path = resolve_manifest_path(csv_dir, row["path"])
            self._add_recorded(
                report,
                path,
                model_id=row.get("model_id") or None,
                category=row.get("category") or None,
                source=row.get("source") or "manifest",
                up=row.get("up_axis") or "+y",
                front=row.get("front_axis") or "+z",
                license=row.get("license") or None,
            )
        return report

    def _add_recorded(self, report: AddReport, path: Path, **options: Any) -> None:
        """Add one file and record the outcome in ``report``: added, already there, or failed with its reason."""
        try:
            info, added = self._add_one(path, **options)
        except CadsearchError as err:
            report.failed.append((str(path), _one_line(err)))
            return
        if added:
            report.added.append(info)
        else:
            report.skipped.append((str(path), info.model_id))

    def generate_chairs(self, n: int, seed: int = 0, progress: bool = False) -> AddReport:
        """Generate ``n`` procedural chairs, write each as ``models/procedural/<model_id>.glb`` in the
        workspace, and catalog them (category ``chair``, source ``procedural``).

        Deterministic in ``(n, seed)``; chairs whose id is already cataloged from the same file are
        skipped without rewriting anything, so re-running is a no-op.

        Raises:
            InputError: ``n`` < 1.
        """
        if n < 1:
            raise InputError(f"number of chairs must be at least 1, got {n}")
        # imported here: the generator is optional for everything else the library does
        from cadsearch.library.procedural import generate_chairs

        out_dir = self.workspace / "models" / "procedural"
        report = AddReport()
        chairs = generate_chairs(n, seed)
        bar = tqdm(chairs, desc="adding chairs", unit="chair", file=sys.stderr, disable=not progress)
        for chair in bar:
            model_id = str(chair.model_id)
            target = out_dir / f"{model_id}.glb"
            try:
                validate_model_id(model_id)
                existing = self._lookup(model_id)
                if existing is not None:
                    if existing.path == target.absolute():
                        report.skipped.append((str(target), model_id))
                    else:
                        report.failed.append((str(target), f"model id '{model_id}' is already used by {existing.path}"))
                    continue
                atomic_write_bytes(target, to_glb_bytes(chair.mesh))
                info, added = self._add_one(
                    target,
                    model_id=model_id,
                    name=str(getattr(chair, "name", model_id)),
                    category="chair",
                    source="procedural",
                    up="+y",
                    front="+z",
                )
            except CadsearchError as err:
                report.failed.append((str(target), _one_line(err)))
                continue
            except Exception as err:  # an exporter failure must not abort the other chairs
                report.failed.append((str(target), f"cannot write GLB ({type(err).__name__}: {err})"))
                continue
            if added:
                report.added.append(info)
            else:
                report.skipped.append((str(target), info.model_id))
        return report

    # ----------------------------------------------------------------------------------------------------
    # internals

    def _add_one(
        self,
        path: Path,
        *,
        model_id: str | None = None,
        name: str | None = None,
        category: str | None = None,
        source: str | None = None,
        up: str = "+y",
        front: str = "+z",
        license: str | None = None,
    ) -> tuple[ModelInfo, bool]:
        """Load and catalog one file. Returns ``(row, True)`` if added, ``(existing row, False)`` if its
        checksum was already cataloged."""
        if model_id is not None:
            validate_model_id(model_id)
        record: MeshRecord = load_mesh(path, up, front)
        symmetry = detect_symmetry(record.mesh.vertices, record.mesh.faces)
        base = model_id or model_id_from_path(record.source_path)
        now = datetime.now(timezone.utc).isoformat(timespec="seconds")
        # the loading above is slow and happens outside the transaction; the duplicate check, the id
        # choice and the insert happen inside one write transaction so that two concurrent `add`s cannot
        # both take the same id or both insert the same file
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute(
                    f"SELECT {', '.join(_COLUMNS)} FROM models WHERE checksum = ?", (record.checksum,)
                ).fetchone()
                if row is not None:
                    existing = _row_to_info(row)
                    if row[_COLUMNS.index("symmetry_order")] is None:  # cataloged before symmetry detection
                        conn.execute(
                            "UPDATE models SET symmetry_order = ? WHERE model_id = ? AND symmetry_order IS NULL",
                            (symmetry, existing.model_id),
                        )
                        existing = replace(existing, symmetry_order=symmetry)
                    conn.execute("COMMIT")
                    return existing, False
                if model_id is not None:
                    taken = self._get_row(conn, model_id)
                    if taken is not None:
                        raise InputError(f"model id '{model_id}' is already used by a different model ({taken.path})")
                    chosen = model_id
                else:
                    chosen = self._free_id(conn, base)
                info = ModelInfo(
                    model_id=chosen,
                    name=name or model_id or name_from_path(record.source_path),
                    category=(category or DEFAULT_CATEGORY).strip() or DEFAULT_CATEGORY,
                    source=(source or DEFAULT_SOURCE).strip() or DEFAULT_SOURCE,
                    path=record.source_path,
                    checksum=record.checksum,
                    up_axis=record.up,
                    front_axis=record.front,
                    n_vertices=record.n_vertices,
                    n_faces=record.n_faces,
                    has_texture=record.has_texture,
                    added_at=now,
                    license=license,
                    symmetry_order=symmetry,
                )
                values = info.to_dict()
                values["has_texture"] = int(info.has_texture)
                conn.execute(
                    f"INSERT INTO models ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                    tuple(values[c] for c in _COLUMNS),
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        # the canonical mesh is at hand: cache it for an immediate `mesh()` (e.g. render right after add)
        self._remember(chosen, record.mesh)
        return info, True

    def _complete(self, row: tuple[Any, ...]) -> ModelInfo:
        """The :class:`ModelInfo` of a catalog row; a row cataloged before symmetry detection (NULL
        ``symmetry_order``) gets it now: detected on its mesh and stored with one ``UPDATE`` (kept NULL, and
        read as 1, if the mesh cannot be loaded or the catalog cannot be written)."""
        info = _row_to_info(row)
        if row[_COLUMNS.index("symmetry_order")] is not None:
            return info
        try:
            mesh = self.mesh(info.model_id)
        except CadsearchError:
            return info
        order = detect_symmetry(mesh.vertices, mesh.faces)
        try:
            with self._connection() as conn:
                conn.execute(
                    "UPDATE models SET symmetry_order = ? "
                    "WHERE model_id = ? AND checksum = ? AND symmetry_order IS NULL",
                    (order, info.model_id, info.checksum),
                )
        except (sqlite3.Error, InputError):
            pass  # a read-only catalog: the value is still right for this reader
        return replace(info, symmetry_order=order)

    def _remember(self, model_id: str, mesh: trimesh.Trimesh) -> None:
        self._cache[model_id] = mesh
        self._cache.move_to_end(model_id)
        while len(self._cache) > _MESH_CACHE_SIZE:
            self._cache.popitem(last=False)

    @staticmethod
    def _free_id(conn: sqlite3.Connection, base: str) -> str:
        """``base`` if unused, else the first unused ``base-2``, ``base-3``, ..."""
        taken = {
            r[0]
            for r in conn.execute(
                "SELECT model_id FROM models WHERE model_id = ? OR model_id LIKE ? ESCAPE '\\'",
                (base, _like_escape(base) + "-%"),
            )
        }
        if base not in taken:
            return base
        k = 2
        while f"{base}-{k}" in taken:
            k += 1
        return f"{base}-{k}"

    @staticmethod
    def _get_row(conn: sqlite3.Connection, model_id: str) -> ModelInfo | None:
        sql = f"SELECT {', '.join(_COLUMNS)} FROM models WHERE model_id = ?"
        row = conn.execute(sql, (model_id,)).fetchone()
        return None if row is None else _row_to_info(row)

    def _lookup(self, model_id: str) -> ModelInfo | None:
        with self._connection() as conn:
            return self._get_row(conn, model_id)

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A short-lived autocommit connection (transactions are begun explicitly where needed)."""
        try:
            conn = sqlite3.connect(self.catalog_path, timeout=60.0, isolation_level=None)
        except sqlite3.Error as err:
            raise InputError(f"cannot open catalog {self.catalog_path}: {err}") from None
        try:
            yield conn
        finally:
            conn.close()


def _row_to_info(row: tuple[Any, ...]) -> ModelInfo:
    """A row as stored; a NULL ``symmetry_order`` (not yet detected) reads as 1 (see :meth:`Library._complete`)."""
    values = dict(zip(_COLUMNS, row, strict=True))
    values["path"] = Path(values["path"])
    values["has_texture"] = bool(values["has_texture"])
    values["symmetry_order"] = 1 if values["symmetry_order"] is None else int(values["symmetry_order"])
    return ModelInfo(**values)


def _migrate(conn: sqlite3.Connection) -> None:
    """Bring an older catalog's table up to :data:`_SCHEMA`: add the ``symmetry_order`` column (NULL in the
    existing rows, filled when they are next read or added). One transaction; existing rows are untouched.

    The change only adds a column that older readers ignore (they select their columns by name), so the schema
    version stays the same.
    """
    if "symmetry_order" in _column_names(conn):
        return
    conn.execute("BEGIN IMMEDIATE")
    try:
        # checked again inside the write lock: another process may have just added it
        if "symmetry_order" not in _column_names(conn):
            conn.execute("ALTER TABLE models ADD COLUMN symmetry_order INTEGER")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


def _column_names(conn: sqlite3.Connection) -> set[str]:
    return {r[1] for r in conn.execute("PRAGMA table_info(models)")}


def _like_escape(text: str) -> str:
    """Escape ``%``, ``_`` and ``\\`` for a SQL LIKE pattern with ``ESCAPE '\\'``."""
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__
