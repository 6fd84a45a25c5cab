"""Load a mesh file and bring it into the canonical object frame.

The canonical frame (DESIGN.md, "Conventions"): +Y up, the object's front faces +Z, centred at the
bounding-box centre, scaled so the farthest vertex is at distance 1. A source file declares its own ``up``
and ``front`` axes as signed axis strings (``"+x" "-x" "+y" "-y" "+z" "-z"``); :func:`axis_rotation` turns
them into a proper rotation and :func:`canonicalise` applies rotation, centring and scaling.

:func:`load_mesh` reads OBJ (+MTL and textures), OFF (including ModelNet's header variants), PLY, STL and
GLB/GLTF, merges a multi-part scene into one :class:`trimesh.Trimesh` with its colours or UV + texture image,
validates it, and returns a :class:`MeshRecord`. Every failure is a :class:`MeshLoadError` with a one-line
message naming the file; no trimesh exception escapes.
"""

from __future__ import annotations

import hashlib
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
from trimesh.resolvers import FilePathResolver

from cadsearch.errors import InputError, MeshLoadError

#: File extensions :func:`load_mesh` accepts (lower case, with the dot).
SUPPORTED_EXTENSIONS: tuple[str, ...] = (".obj", ".off", ".ply", ".stl", ".glb", ".gltf")

#: Files larger than this are refused before reading: a mesh this big is almost certainly a mistake
#: (a point-cloud dump, a scanned city) and would exhaust memory in the renderer anyway.
MAX_MESH_BYTES = 512 * 1024**2

#: Unit vectors of the signed axis names used for ``up`` and ``front``.
AXES: dict[str, tuple[float, float, float]] = {
    "+x": (1.0, 0.0, 0.0),
    "-x": (-1.0, 0.0, 0.0),
    "+y": (0.0, 1.0, 0.0),
    "-y": (0.0, -1.0, 0.0),
    "+z": (0.0, 0.0, 1.0),
    "-z": (0.0, 0.0, -1.0),
}

# trimesh's default grey for geometry without colours; used when a merged mesh mixes coloured and plain
# parts so the plain parts keep looking as they would on their own.
_DEFAULT_RGBA = np.array([102, 102, 102, 255], dtype=np.uint8)


@dataclass
class MeshRecord:
    """A mesh loaded from a file and brought into the canonical frame.

    Attributes:
        mesh: the canonical triangle mesh (+Y up, front +Z, bounding-box centre at the origin, farthest
            vertex at distance 1). Visuals are one of: UV + texture image (``has_texture``), per-vertex
            colours, per-face colours, or none.
        checksum: sha256 hex digest of the source file's bytes; for files that reference others (OBJ's MTL
            and texture images, GLTF's buffers) the digest also covers those files, in path order.
        n_vertices: vertex count of ``mesh``.
        n_faces: triangle count of ``mesh``.
        source_path: absolute path of the file read.
        up: the source's declared up axis, normalised (e.g. ``"+z"``).
        front: the source's declared front axis, normalised (e.g. ``"-y"``).
        has_texture: whether ``mesh`` carries UV coordinates and a texture image.
    """

    mesh: trimesh.Trimesh
    checksum: str
    n_vertices: int
    n_faces: int
    source_path: Path
    up: str
    front: str
    has_texture: bool


# --------------------------------------------------------------------------------------------------------
# axes and the canonical transform


def parse_axis(axis: str) -> str:
    """Normalise a signed axis name: ``"y"``, ``"+Y"``, ``" +y "`` → ``"+y"``; ``"-Z"`` → ``"-z"``.

    Raises:
        InputError: for anything that is not one of the six signed axes.
    """
    text = str(axis).strip().lower()
    if len(text) == 1:
        text = "+" + text
    if text not in AXES:
        raise InputError(f"bad axis {axis!r}: use one of {', '.join(AXES)}")
    return text


def axis_rotation(up: str, front: str) -> np.ndarray:
    """The rotation that maps a source frame's ``up`` axis to +Y and its ``front`` axis to +Z.

    Returns:
        ``(3, 3)`` float64 matrix ``R`` with ``det(R) = +1``; a source-frame column vector ``v`` maps to
        ``R @ v``. The rows are the source vectors that become +X, +Y, +Z: ``right = up × front``,
        ``up``, ``front`` (right-handed, so no mirroring).

    Raises:
        InputError: bad axis names, or ``up`` and ``front`` on the same axis (e.g. ``+z`` and ``-z``).
    """
    up_n, front_n = parse_axis(up), parse_axis(front)
    if up_n[1] == front_n[1]:
        raise InputError(f"up {up_n} and front {front_n} must be different axes (they are parallel)")
    u = np.array(AXES[up_n])
    f = np.array(AXES[front_n])
    return np.stack([np.cross(u, f), u, f]).astype(np.float64)


def canonical_transform(vertices: np.ndarray, up: str = "+y", front: str = "+z") -> np.ndarray:
    """The 4×4 homogeneous matrix that takes source ``vertices`` into the canonical frame.

    Args:
        vertices: ``(N, 3)`` source-frame positions (any units); all of them count for the bounding box
            and the radius, so drop unreferenced vertices first if they should not.

    Returns:
        ``(4, 4)`` float64 matrix ``M = S · T · R``: rotate by :func:`axis_rotation`, move the bounding-box
        centre to the origin, scale uniformly so the farthest vertex is at distance 1.

    Raises:
        InputError: no vertices, non-finite vertices, or all vertices at one point.
    """
    rot = axis_rotation(up, front)
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    if len(v) == 0:
        raise InputError("mesh has no vertices")
    if not np.isfinite(v).all():
        raise InputError("mesh has NaN or infinite vertex coordinates")
    rotated = v @ rot.T
    centre = (rotated.min(axis=0) + rotated.max(axis=0)) / 2.0
    radius = float(np.sqrt(((rotated - centre) ** 2).sum(axis=1).max()))
    # a radius at the level of float noise means the mesh collapsed to a point; scaling it up would only
    # amplify rounding errors into a random shape
    if not np.isfinite(radius) or radius <= 1e-12 * max(1.0, float(np.abs(rotated).max())):
        raise InputError("mesh is degenerate: all vertices are at one point")
    matrix = np.eye(4)
    matrix[:3, :3] = rot / radius
    matrix[:3, 3] = -centre / radius
    return matrix


def canonicalise(mesh: trimesh.Trimesh, up: str = "+y", front: str = "+z") -> trimesh.Trimesh:
    """A copy of ``mesh`` in the canonical frame (+Y up, front +Z, centred, farthest vertex at 1).

    Pure: ``mesh`` is not modified. Visuals (colours, UV + texture) are kept; normals are rotated.

    Raises:
        InputError: bad axes, empty or degenerate mesh (see :func:`canonical_transform`).
    """
    matrix = canonical_transform(mesh.vertices, up, front)
    out = mesh.copy()
    out.apply_transform(matrix)
    return out


# --------------------------------------------------------------------------------------------------------
# loading


def load_mesh(path: str | os.PathLike[str], up: str = "+y", front: str = "+z") -> MeshRecord:
    """Load a mesh file and return it in the canonical frame.

    Args:
        path: an OBJ, OFF, PLY, STL, GLB or GLTF file.
        up, front: the file's own up and front axes (signed axis names, see :func:`axis_rotation`).

    Raises:
        InputError: bad ``up``/``front`` (raised before the file is read).
        MeshLoadError: missing, unreadable, oversized, corrupt, empty or degenerate file; unsupported
            extension. The message is one line and names the file.
    """
    up_n, front_n = parse_axis(up), parse_axis(front)
    axis_rotation(up_n, front_n)  # reject parallel axes before doing any I/O
    source = Path(path).expanduser().absolute()
    mesh, checksum = load_source_mesh(source)
    try:
        canonical = canonicalise(mesh, up_n, front_n)
    except InputError as err:
        raise MeshLoadError(_message(source, str(err))) from None
    return MeshRecord(
        mesh=canonical,
        checksum=checksum,
        n_vertices=len(canonical.vertices),
        n_faces=len(canonical.faces),
        source_path=source,
        up=up_n,
        front=front_n,
        has_texture=has_texture(canonical),
    )


def load_source_mesh(path: str | os.PathLike[str]) -> tuple[trimesh.Trimesh, str]:
    """Read a mesh file into one validated triangle mesh in the file's own frame and units.

    Returns:
        ``(mesh, checksum)``: the merged mesh (scene node transforms applied, unreferenced vertices
        dropped) and the sha256 hex digest described in :class:`MeshRecord`.

    Raises:
        MeshLoadError: see :func:`load_mesh`.
    """
    source = Path(path).expanduser().absolute()
    data = _read_guarded(source)
    ext = source.suffix.lower()
    resolver = _RecordingResolver(source)
    try:
        if ext == ".off":
            geometries = [_parse_off(data)]
        else:
            # process=False: trimesh's cleanup would silently drop NaN vertices and their faces
            scene = trimesh.load_scene(io.BytesIO(data), file_type=ext[1:], resolver=resolver, process=False)
            _check_finite(source, scene.geometry.values())
            for g in scene.geometry.values():
                _clean(g)
            geometries = [g for g in scene.dump() if isinstance(g, trimesh.Trimesh)]
    except MeshLoadError:
        raise
    except _OffError as err:
        raise MeshLoadError(_message(source, f"not a valid OFF file ({err})")) from None
    except Exception as err:  # trimesh raises anything from ValueError to IndexError on bad input
        reason = f"not a valid {ext[1:].upper()} file ({_describe(err)})"
        raise MeshLoadError(_message(source, reason)) from None

    geometries = [g for g in geometries if len(g.faces) > 0]
    if not geometries:
        raise MeshLoadError(
            _message(source, f"no triangles found (empty mesh, or not really a {ext[1:].upper()} file?)")
        )
    _check_finite(source, geometries)
    try:
        mesh = _merge(geometries)
        mesh.remove_unreferenced_vertices()
    except Exception as err:
        raise MeshLoadError(_message(source, f"could not merge its parts ({_describe(err)})")) from None

    digest = hashlib.sha256(data)
    for name in sorted(resolver.read):
        digest.update(b"\0" + name.encode("utf-8") + b"\0")
        digest.update(resolver.read[name])
    return mesh, digest.hexdigest()


def has_texture(mesh: trimesh.Trimesh) -> bool:
    """Whether ``mesh`` carries UV coordinates and a texture image (what the ray tracer needs)."""
    visual = mesh.visual
    return (
        getattr(visual, "kind", None) == "texture"
        and getattr(visual, "uv", None) is not None
        and _material_image(getattr(visual, "material", None)) is not None
    )


def to_glb_bytes(mesh: trimesh.Trimesh) -> bytes:
    """Export ``mesh`` as GLB bytes so that its colours survive a round trip through :func:`load_mesh`.

    glTF has no per-face colours, and trimesh's exporter averages face colours onto shared vertices,
    which smears them. So a face-coloured mesh is first unmerged (three vertices of its own per
    triangle) and its face colours become vertex colours; loading it back gives exactly the face colours
    again (and flat shading, which suits CAD). Vertex colours and textures export as they are.
    """
    if getattr(getattr(mesh, "visual", None), "kind", None) == "face":
        faces = np.asarray(mesh.faces)
        colours = np.asarray(mesh.visual.face_colors, dtype=np.uint8)
        mesh = trimesh.Trimesh(
            vertices=np.asarray(mesh.vertices)[faces].reshape(-1, 3),
            faces=np.arange(faces.size, dtype=np.int64).reshape(-1, 3),
            vertex_colors=np.repeat(colours, 3, axis=0),
            process=False,
        )
    return bytes(mesh.export(file_type="glb"))


# --------------------------------------------------------------------------------------------------------
# helpers


def _check_finite(source: Path, geometries: Any) -> None:
    for g in geometries:
        vertices = getattr(g, "vertices", None)
        if vertices is not None and not np.isfinite(np.asarray(vertices, dtype=np.float64)).all():
            raise MeshLoadError(_message(source, "mesh has NaN or infinite vertex coordinates"))


def _clean(geometry: Any) -> None:
    """trimesh's default processing of a freshly loaded part, minus merging vertex-coloured vertices.

    Merging welds duplicate vertices but keeps those whose UVs or file normals differ (so creases and
    texture seams survive); it ignores vertex colours, though, and would blend the unshared per-triangle
    colours that :func:`to_glb_bytes` writes. It must run before ``Scene.dump``, which drops file normals.
    """
    if isinstance(geometry, trimesh.Trimesh) and getattr(geometry.visual, "kind", None) != "vertex":
        geometry.process()


class _RecordingResolver(FilePathResolver):
    """A file resolver that remembers the bytes of every file it reads (for the checksum).

    trimesh ≥ 5 refuses assets outside the mesh's folder, but ShapeNet's MTL files name their textures as
    ``../images/texture0.jpg``. We allow the mesh's folder and the folder above it: enough for that
    layout without letting a downloaded OBJ read arbitrary files from the disk.
    """

    def __init__(self, source: Path, read: dict[str, bytes] | None = None, root: Path | None = None):
        super().__init__(str(source), allow_anywhere=False)
        self.mesh_dir = Path(self.parent).resolve()
        self.root = root if root is not None else self.mesh_dir.parent
        self.read: dict[str, bytes] = {} if read is None else read

    def absolute(self, name: str) -> Path:
        path = (Path(self.parent) / name.strip()).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"'{name}' is outside {self.root}")
        return path

    def get(self, name: str) -> bytes:
        # same fallbacks as trimesh (as written, without a leading slash, bare file name); Windows
        # separators appear in MTL files exported on Windows
        clean = name.strip().replace("\\", "/")
        for candidate in (clean, clean.lstrip("/"), clean.rsplit("/", 1)[-1]):
            try:
                path = self.absolute(candidate)
            except ValueError:
                continue
            if path.is_file():
                if path.stat().st_size > MAX_MESH_BYTES:
                    raise ValueError(f"'{name}' is larger than {MAX_MESH_BYTES} bytes")
                data = path.read_bytes()
                # keyed relative to the mesh's folder so that identical copies of a model in different
                # places get the same checksum
                self.read[os.path.relpath(path, self.mesh_dir)] = data
                return data
        raise FileNotFoundError(name)

    def namespaced(self, namespace: str) -> _RecordingResolver:
        inner = _RecordingResolver(Path(self.parent) / namespace / "_", self.read, self.root)
        inner.mesh_dir = self.mesh_dir  # keep checksum keys relative to the mesh file
        return inner


class _OffError(ValueError):
    """A malformed OFF file."""


def _parse_off(data: bytes) -> trimesh.Trimesh:
    """Parse an OFF / COFF file, tolerating the variants found in the wild.

    Handles: the header ``OFF`` on its own line with the counts on the next; ModelNet's broken variant
    with the counts glued to it (``OFF490 518 0``); ``#`` comments; polygons of any size (fan-triangulated,
    which is right for the convex polygons OFF files hold); optional vertex colours (COFF) and face
    colours (``n i0 .. in-1 r g b [a]``, 0–255 integers or 0–1 floats).
    trimesh's own OFF reader fails on polygons with more than four corners, hence this parser.
    """
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        try:
            text = data.decode("latin-1")
        except UnicodeDecodeError as err:  # pragma: no cover - latin-1 decodes any byte
            raise _OffError("not text") from err
    lines: list[list[str]] = []
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].split()
        if line:
            lines.append(line)
    if not lines:
        raise _OffError("file is empty")
    head = lines[0][0]
    upper = head.upper()
    keyword = next((k for k in ("COFF", "NOFF", "OFF") if upper.startswith(k)), None)
    if keyword is None:
        raise _OffError(f"header is {head[:20]!r}, expected OFF")
    rest = head[len(keyword) :]
    tokens = ([rest] if rest else []) + lines[0][1:]
    body = lines[1:]
    if len(tokens) < 2:  # counts on their own line (the usual layout)
        if not body:
            raise _OffError("missing the vertex/face count line")
        tokens = tokens + body[0]
        body = body[1:]
    try:
        n_vertices, n_faces = int(tokens[0]), int(tokens[1])
    except (ValueError, IndexError):
        raise _OffError(f"bad vertex/face count line {' '.join(tokens)[:40]!r}") from None
    if n_vertices <= 0 or n_faces < 0:
        raise _OffError(f"bad counts: {n_vertices} vertices, {n_faces} faces")
    if len(body) < n_vertices + n_faces:
        raise _OffError(f"truncated: expected {n_vertices} vertex and {n_faces} face lines, found {len(body)}")

    try:
        vert_rows = body[:n_vertices]
        vertices = np.array([row[:3] for row in vert_rows], dtype=np.float64)
        vertex_colours = None
        if keyword == "COFF" and all(len(row) >= 6 for row in vert_rows):
            vertex_colours = _colour_array([row[3:7] for row in vert_rows])
        triangles: list[list[int]] = []
        tri_colours: list[list[str]] = []
        for row in body[n_vertices : n_vertices + n_faces]:
            k = int(row[0])
            if k < 3 or len(row) < k + 1:
                raise _OffError(f"bad face line {' '.join(row)[:40]!r}")
            corners = [int(i) for i in row[1 : k + 1]]
            extra = row[k + 1 :]
            for j in range(1, k - 1):
                triangles.append([corners[0], corners[j], corners[j + 1]])
                if len(extra) >= 3:
                    tri_colours.append(extra[:4])
    except _OffError:
        raise
    except ValueError as err:
        raise _OffError(_describe(err)) from None
    if vertices.shape != (n_vertices, 3):
        raise _OffError("a vertex line has fewer than three coordinates")
    faces = np.array(triangles, dtype=np.int64).reshape(-1, 3)
    if len(faces) and (faces.min() < 0 or faces.max() >= n_vertices):
        raise _OffError("a face refers to a vertex that does not exist")
    face_colours = None
    if tri_colours and len(tri_colours) == len(faces):
        face_colours = _colour_array(tri_colours)
    # process=False: keep the file's vertices as they are; merging happens once, after all parts are in
    return trimesh.Trimesh(
        vertices=vertices,
        faces=faces,
        vertex_colors=vertex_colours,
        face_colors=face_colours,
        process=False,
    )


def _colour_array(rows: list[list[str]]) -> np.ndarray:
    """RGBA uint8 ``(N, 4)`` from OFF colour fields: 0–255 integers, or 0–1 floats if any has a dot."""
    width = min(len(r) for r in rows)
    values = np.array([r[:width] for r in rows], dtype=np.float64)
    if any("." in token for r in rows for token in r[:width]) and values.max() <= 1.0:
        values = values * 255.0
    values = np.clip(np.round(values), 0, 255).astype(np.uint8)
    if width == 3:
        values = np.hstack([values, np.full((len(values), 1), 255, np.uint8)])
    return values


def _material_image(material: Any) -> Any:
    """The base-colour image of a trimesh material (Simple or PBR), or None."""
    if material is None:
        return None
    image = getattr(material, "image", None)
    if image is None:
        image = getattr(material, "baseColorTexture", None)
    return image


def _part_rgba(part: trimesh.Trimesh) -> np.ndarray:
    """One RGBA colour for a part whose visual is a material without a usable texture."""
    material = getattr(part.visual, "material", None)
    colour = getattr(material, "main_color", None) if material is not None else None
    if colour is None:
        return _DEFAULT_RGBA
    return np.asarray(colour, dtype=np.uint8).reshape(-1)[:4]


def _as_colour_visual(part: trimesh.Trimesh) -> tuple[str | None, np.ndarray | None]:
    """Colour kind and colours of a part once textures are out of the picture.

    Returns ``("vertex", (V, 4))``, ``("face", (F, 4))`` or ``(None, None)`` for an uncoloured part.
    """
    kind = getattr(part.visual, "kind", None)
    if kind == "texture":
        # a material colour without an image (OBJ's Kd, glTF's baseColorFactor) colours its faces
        return "face", np.tile(_part_rgba(part), (len(part.faces), 1))
    if kind == "vertex":
        return "vertex", np.asarray(part.visual.vertex_colors, dtype=np.uint8)
    if kind == "face":
        return "face", np.asarray(part.visual.face_colors, dtype=np.uint8)
    return None, None


def _merge(parts: list[trimesh.Trimesh]) -> trimesh.Trimesh:
    """Merge scene parts (transforms already applied) into one mesh, keeping what appearance we can.

    - Any part with a texture image: trimesh packs all materials into one atlas with remapped UVs
      (colour-only parts become flat patches in it). If that fails, fall back to colours.
    - Otherwise colours: all vertex-coloured → vertex colours; any face colour or material colour →
      per-face colours (vertex colours averaged per face, uncoloured parts trimesh's default grey).
    """
    if len(parts) == 1 and getattr(parts[0].visual, "kind", None) != "texture":
        return parts[0]  # already colours (or none): keep it untouched, normals included
    if any(has_texture(p) for p in parts):
        try:
            merged = parts[0].copy() if len(parts) == 1 else trimesh.util.concatenate(parts)
            if has_texture(merged):
                return merged
        except Exception:  # noqa: S110 - atlas packing can fail on odd images; colours are the fallback
            pass

    kinds_colours = [_as_colour_visual(p) for p in parts]
    kinds = {k for k, _ in kinds_colours if k is not None}
    vertices = np.vstack([np.asarray(p.vertices) for p in parts])
    offsets = np.cumsum([0] + [len(p.vertices) for p in parts[:-1]])
    faces = np.vstack([np.asarray(p.faces) + o for p, o in zip(parts, offsets, strict=True)])

    vertex_colors = face_colors = None
    if kinds == {"vertex"}:
        vertex_colors = np.vstack(
            [
                c if k == "vertex" else np.tile(_DEFAULT_RGBA, (len(p.vertices), 1))
                for p, (k, c) in zip(parts, kinds_colours, strict=True)
            ]
        )
    elif kinds:
        per_part = []
        for p, (k, c) in zip(parts, kinds_colours, strict=True):
            if k == "face":
                per_part.append(c)
            elif k == "vertex":
                # mean of the three corner colours
                mean = np.asarray(c, dtype=np.float64)[p.faces].mean(axis=1)
                per_part.append(mean.round().astype(np.uint8))
            else:
                per_part.append(np.tile(_DEFAULT_RGBA, (len(p.faces), 1)))
        face_colors = np.vstack(per_part)
    # process=False: each part was already cleaned by its loader, and merging vertices across parts could
    # blend vertex colours at the seams
    return trimesh.Trimesh(
        vertices=vertices, faces=faces, vertex_colors=vertex_colors, face_colors=face_colors, process=False
    )


def _read_guarded(source: Path) -> bytes:
    """The bytes of ``source``, after checking it exists, is a file, is supported and is not huge."""
    ext = source.suffix.lower()
    if not source.exists():
        raise MeshLoadError(_message(source, "no such file"))
    if not source.is_file():
        raise MeshLoadError(_message(source, "not a file"))
    if ext not in SUPPORTED_EXTENSIONS:
        supported = ", ".join(e[1:] for e in SUPPORTED_EXTENSIONS)
        raise MeshLoadError(_message(source, f"unsupported file type {ext or '(none)'!r}; use {supported}"))
    try:
        size = source.stat().st_size
        if size > MAX_MESH_BYTES:
            reason = f"file is {size / 1024**2:.0f} MiB, over the {MAX_MESH_BYTES // 1024**2} MiB limit"
            raise MeshLoadError(_message(source, reason))
        if size == 0:
            raise MeshLoadError(_message(source, "file is empty"))
        return source.read_bytes()
    except OSError as err:
        raise MeshLoadError(_message(source, f"cannot read it ({err.strerror or _describe(err)})")) from None


def _describe(err: BaseException) -> str:
    """A short one-line description of an exception."""
    text = " ".join(str(err).split())
    if len(text) > 160:
        text = text[:157] + "..."
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


def _message(source: Path, reason: str) -> str:
    """The one-line error message for ``source``."""
    return f"cannot load mesh '{source}': {' '.join(reason.split())}"
