"""Rotational symmetry about +Y: detection on known shapes, the catalog column (and its migration), the CLI."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import trimesh

from cadsearch.cli import main
from cadsearch.library import Library, canonicalise, load_mesh
from cadsearch.library.procedural import FAMILIES, generate_chair
from cadsearch.library.symmetry import detect_symmetry, symmetry_name, symmetry_scores


def canonical(mesh: trimesh.Trimesh, up: str = "+y", front: str = "+z") -> trimesh.Trimesh:
    return canonicalise(mesh, up, front)


def y_cylinder(sections: int = 32, radius: float = 0.5, height: float = 1.5) -> trimesh.Trimesh:
    """A cylinder (or a prism with ``sections`` sides) standing on +Y; trimesh builds it along +Z."""
    return canonical(trimesh.creation.cylinder(radius=radius, height=height, sections=sections), up="+z", front="-y")


def order(mesh: trimesh.Trimesh) -> int:
    return detect_symmetry(mesh.vertices, mesh.faces)


# ---------------------------------------------------------------------------------------------- names


@pytest.mark.parametrize(("value", "name"), [(0, "continuous"), (1, "none"), (2, "2-fold"), (6, "6-fold")])
def test_symmetry_name(value: int, name: str) -> None:
    assert symmetry_name(value) == name


def test_symmetry_name_rejects_negative() -> None:
    with pytest.raises(ValueError, match="symmetry order"):
        symmetry_name(-1)


# ---------------------------------------------------------------------------------------------- detection


def test_cylinder_is_continuous() -> None:
    assert order(y_cylinder()) == 0


def test_square_box_is_four_fold() -> None:
    # tall along the source's +Z, declared up: after canonicalisation a 1 × 1 footprint standing on +Y
    box = canonical(trimesh.creation.box(extents=(1.0, 1.0, 2.0)), up="+z", front="-y")
    assert np.ptp(box.vertices[:, 1]) > np.ptp(box.vertices[:, 0])  # really standing up
    assert order(box) == 4


def test_rectangular_box_is_two_fold() -> None:
    assert order(canonical(trimesh.creation.box(extents=(1.0, 0.5, 2.0)))) == 2


def test_lying_cylinder_is_two_fold_not_continuous() -> None:
    # the same cylinder on its side (axis along X): only a half turn about +Y maps it onto itself
    lying = canonical(trimesh.creation.cylinder(radius=0.3, height=2.0, sections=32), up="+y", front="+x")
    assert order(lying) == 2


@pytest.mark.parametrize("sections", [3, 5, 6])
def test_prisms_are_n_fold(sections: int) -> None:
    # odd prisms are off-centre in the canonical frame (bounding-box centre is not on the axis)
    assert order(y_cylinder(sections=sections)) == sections


def test_cup_with_handle_has_no_symmetry() -> None:
    body = trimesh.creation.cylinder(radius=0.4, height=1.0, sections=48)
    handle = trimesh.creation.box(extents=(0.08, 0.35, 0.5))  # source +Z is up
    handle.apply_translation((0.0, 0.55, 0.0))
    cup = canonical(trimesh.util.concatenate([body, handle]), up="+z", front="-y")
    assert order(cup) == 1


@pytest.mark.parametrize("family", FAMILIES)
def test_procedural_chairs_have_no_symmetry(family: str) -> None:
    # mirror-symmetric left/right, but not rotationally about +Y
    chair = generate_chair(3, family=family)
    assert order(chair.mesh) == 1


def test_scores_near_one_for_a_symmetry_and_large_otherwise() -> None:
    chair = generate_chair(0, family="slat_back").mesh
    cyl = y_cylinder()
    assert max(symmetry_scores(cyl.vertices, cyl.faces).values()) < 1.15
    assert min(symmetry_scores(chair.vertices, chair.faces).values()) > 1.5


def test_detection_is_deterministic_and_scale_free() -> None:
    box = canonical(trimesh.creation.box(extents=(1.0, 0.5, 2.0)))
    scores = symmetry_scores(box.vertices, box.faces)
    assert symmetry_scores(box.vertices, box.faces) == scores
    assert detect_symmetry(box.vertices * 7.0 + 3.0, box.faces) == 2


def test_empty_or_flat_zero_area_mesh_has_no_symmetry() -> None:
    assert detect_symmetry(np.zeros((0, 3)), np.zeros((0, 3), dtype=int)) == 1
    assert detect_symmetry(np.array([[0.0, 0, 0], [1, 0, 0], [2, 0, 0]]), np.array([[0, 1, 2]])) == 1
    assert symmetry_scores(np.zeros((0, 3)), np.zeros((0, 3), dtype=int)) == {}


# ---------------------------------------------------------------------------------------------- catalog


def export(mesh: trimesh.Trimesh, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    mesh.export(path)
    return path


def stored_order(lib: Library, model_id: str) -> int | None:
    with sqlite3.connect(lib.catalog_path) as conn:
        return conn.execute("SELECT symmetry_order FROM models WHERE model_id = ?", (model_id,)).fetchone()[0]


def test_catalog_round_trip(tmp_path: Path) -> None:
    lib = Library.open(tmp_path / "ws")
    cyl = export(trimesh.creation.cylinder(radius=0.5, height=1.5, sections=32), tmp_path / "cyl.stl")
    box = export(trimesh.creation.box(extents=(1.0, 0.5, 2.0)), tmp_path / "box.stl")
    lib.add_mesh_file(cyl, up="+z", front="-y")
    lib.add_mesh_file(box)
    assert lib.get("cyl").symmetry_order == 0
    assert lib.get("cyl").symmetry == "continuous"
    assert {m.model_id: m.symmetry_order for m in lib.list()} == {"box": 2, "cyl": 0}
    assert stored_order(lib, "box") == 2
    assert lib.get("box").to_dict()["symmetry"] == "2-fold"
    # a fresh Library (another process) reads the stored value
    assert Library.open(tmp_path / "ws").get("cyl").symmetry_order == 0


def test_generated_chairs_are_cataloged_without_symmetry(tmp_path: Path) -> None:
    lib = Library.open(tmp_path / "ws")
    lib.generate_chairs(2, seed=1)
    assert [m.symmetry_order for m in lib.list()] == [1, 1]


_OLD_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE models (
    model_id TEXT PRIMARY KEY, name TEXT NOT NULL, category TEXT NOT NULL, source TEXT NOT NULL,
    path TEXT NOT NULL, checksum TEXT NOT NULL UNIQUE, up_axis TEXT NOT NULL, front_axis TEXT NOT NULL,
    n_vertices INTEGER NOT NULL, n_faces INTEGER NOT NULL, has_texture INTEGER NOT NULL, added_at TEXT NOT NULL,
    license TEXT
);
CREATE INDEX models_category ON models (category);
INSERT INTO meta VALUES ('schema_version', '1');
"""


def old_catalog(ws: Path, files: dict[str, tuple[Path, str, str]]) -> None:
    """A catalog as written before symmetry detection: no ``symmetry_order`` column."""
    ws.mkdir(parents=True)
    with sqlite3.connect(ws / "catalog.sqlite") as conn:
        conn.executescript(_OLD_SCHEMA)
        for model_id, (path, up, front) in files.items():
            rec = load_mesh(path, up, front)
            conn.execute(
                "INSERT INTO models VALUES (?, ?, 'thing', 'user', ?, ?, ?, ?, ?, ?, 0, '2024-01-01T00:00:00+00:00', "
                "'CC0')",
                (model_id, model_id, str(path), rec.checksum, up, front, rec.n_vertices, rec.n_faces),
            )


def test_old_catalog_gets_the_column_and_keeps_its_rows(tmp_path: Path) -> None:
    cyl = export(trimesh.creation.cylinder(radius=0.5, height=1.5, sections=32), tmp_path / "m" / "cyl.stl")
    box = export(trimesh.creation.box(extents=(1.0, 0.5, 2.0)), tmp_path / "m" / "box.stl")
    gone = export(trimesh.creation.box(extents=(1.0, 1.0, 2.0)), tmp_path / "m" / "gone.stl")
    ws = tmp_path / "ws"
    old_catalog(ws, {"cyl": (cyl, "+z", "-y"), "box": (box, "+y", "+z"), "gone": (gone, "+z", "-y")})
    gone.unlink()

    lib = Library.open(ws)
    with sqlite3.connect(lib.catalog_path) as conn:
        columns = {r[1] for r in conn.execute("PRAGMA table_info(models)")}
    assert "symmetry_order" in columns
    assert stored_order(lib, "cyl") is None  # not computed yet: nothing was lost or invented
    Library.open(ws)  # opening again is a no-op

    models = {m.model_id: m for m in lib.list()}
    assert set(models) == {"box", "cyl", "gone"}
    assert models["cyl"].license == "CC0" and models["cyl"].added_at.startswith("2024-01-01")
    assert models["cyl"].symmetry_order == 0 and models["box"].symmetry_order == 2
    assert stored_order(lib, "cyl") == 0 and stored_order(lib, "box") == 2  # stored once computed
    # a model whose file is gone reads as "none" and stays to be computed once it is back
    assert models["gone"].symmetry_order == 1
    assert stored_order(lib, "gone") is None


def test_re_adding_fills_in_the_symmetry_of_an_old_row(tmp_path: Path) -> None:
    cyl = export(trimesh.creation.cylinder(radius=0.5, height=1.5, sections=32), tmp_path / "m" / "cyl.stl")
    ws = tmp_path / "ws"
    old_catalog(ws, {"cyl": (cyl, "+z", "-y")})
    lib = Library.open(ws)
    report = lib.add_paths([cyl], up="+z", front="-y")
    assert report.skipped == [(str(cyl), "cyl")] and not report.added
    assert stored_order(lib, "cyl") == 0


# ---------------------------------------------------------------------------------------------- CLI


def run(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    return stop.value.code, capsys.readouterr().out


def test_library_list_shows_symmetry(tmp_path: Path, capsys) -> None:
    ws = str(tmp_path / "ws")
    cyl = export(trimesh.creation.cylinder(radius=0.5, height=1.5, sections=32), tmp_path / "cyl.stl")
    box = export(trimesh.creation.box(extents=(1.0, 0.5, 2.0)), tmp_path / "box.stl")
    assert run(capsys, "--workspace", ws, "library", "add", str(cyl), "--up", "+z", "--front", "-y")[0] == 0
    assert run(capsys, "--workspace", ws, "library", "add", str(box))[0] == 0
    code, out = run(capsys, "--workspace", ws, "library", "list", "--json")
    assert code == 0
    rows = {m["model_id"]: m for m in json.loads(out)}
    assert rows["cyl"]["symmetry"] == "continuous" and rows["cyl"]["symmetry_order"] == 0
    assert rows["box"]["symmetry"] == "2-fold" and rows["box"]["symmetry_order"] == 2
    code, out = run(capsys, "--workspace", ws, "library", "list")
    assert code == 0
    header, *lines = out.splitlines()
    assert "symmetry" in header
    assert any(line.startswith("cyl") and "continuous" in line for line in lines)
    assert any(line.startswith("box") and "2-fold" in line for line in lines)
