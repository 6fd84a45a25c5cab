"""The SQLite catalog and the Library API."""

from __future__ import annotations

import pickle
import shutil
import sqlite3
from dataclasses import dataclass

import numpy as np
import pytest
import trimesh

from cadsearch.errors import InputError, MeshLoadError
from cadsearch.library import AddReport, Library, ModelInfo
from cadsearch.library.catalog import (
    MODEL_ID_PATTERN,
    model_id_from_path,
    resolve_manifest_path,
    sanitise_model_id,
    validate_model_id,
)


@pytest.fixture
def lib(tmp_path) -> Library:
    return Library.open(tmp_path / "ws")


# ---------------------------------------------------------------------------------------------- ids


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Eames Chair", "Eames-Chair"),
        ("  ..hidden", "hidden"),
        ("chaise/longue?v=2", "chaise-longue-v-2"),
        ("", "model"),
        ("---", "model"),
        ("x" * 300, "x" * 120),
        ("stuhl_ä", "stuhl_"),
    ],
)
def test_sanitise_model_id(text, expected):
    out = sanitise_model_id(text)
    assert out == expected
    assert MODEL_ID_PATTERN.match(out)


def test_model_id_from_path_uses_folder_for_generic_stems(tmp_path):
    assert model_id_from_path(tmp_path / "abc123" / "models" / "model_normalized.obj") == "abc123"
    assert model_id_from_path(tmp_path / "my chair.glb") == "my-chair"


@pytest.mark.parametrize("bad", ["", "-x", ".x", "a/b", "a b", "x" * 129, "ü"])
def test_validate_model_id_rejects(bad):
    with pytest.raises(InputError, match="bad model id"):
        validate_model_id(bad)


# ---------------------------------------------------------------------------------------------- open


def test_open_creates_workspace_and_persists(tmp_path, make):
    ws = tmp_path / "new" / "ws"
    lib = Library.open(ws)
    assert (ws / "catalog.sqlite").is_file()
    assert len(lib) == 0 and lib.list() == []
    lib.add_mesh_file(make.export("box.stl", make.box()))
    again = Library.open(str(ws))
    assert [m.model_id for m in again] == ["box"]


def test_open_rejects_file_and_garbage_catalog(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(InputError, match="not a folder"):
        Library.open(tmp_path / "file")
    (tmp_path / "ws").mkdir()
    (tmp_path / "ws" / "catalog.sqlite").write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(InputError, match="SQLite"):
        Library.open(tmp_path / "ws")


def test_library_pickles(lib, make):
    lib.add_mesh_file(make.export("box.stl", make.box()))
    lib.mesh("box")
    clone = pickle.loads(pickle.dumps(lib))
    assert "box" in clone and len(clone) == 1


# ---------------------------------------------------------------------------------------------- adding


def test_add_mesh_file_records_everything(lib, make):
    path = make.textured_obj()
    info = lib.add_mesh_file(path, category="cup", source="test", up="+z", front="-y")
    assert isinstance(info, ModelInfo)
    assert info.model_id == "textured"  # generic stem `model` → the model's folder
    assert info.name == "textured"
    assert (info.category, info.source, info.up_axis, info.front_axis) == ("cup", "test", "+z", "-y")
    assert info.path == path.absolute() and info.path.is_absolute()
    assert info.has_texture is True
    assert (info.n_vertices, info.n_faces) == (4, 2)
    assert len(info.checksum) == 64
    assert info.added_at.endswith("+00:00")
    assert lib.get("textured") == info
    assert info.to_dict()["path"] == str(path.absolute())


def test_defaults_and_explicit_id(lib, make):
    info = lib.add_mesh_file(make.export("box.stl", make.box()), model_id="my.box_1", name="A box")
    assert (info.model_id, info.name, info.category, info.source) == ("my.box_1", "A box", "unknown", "user")
    with pytest.raises(InputError, match="bad model id"):
        lib.add_mesh_file(make.export("b2.stl", make.box((1, 1, 1))), model_id="no spaces")


def test_explicit_id_taken_by_other_model_fails(lib, make):
    lib.add_mesh_file(make.export("a.stl", make.box()), model_id="thing")
    with pytest.raises(InputError, match="already used"):
        lib.add_mesh_file(make.export("b.stl", make.box((1, 1, 1))), model_id="thing")


def test_add_paths_good_corrupt_missing(lib, make, tmp_path):
    good = make.export("good.stl", make.box())
    corrupt = make.data("corrupt.glb", b"glTF" + b"\x00" * 50)
    missing = tmp_path / "missing.obj"
    report = lib.add_paths([good, corrupt, missing])
    assert isinstance(report, AddReport)
    assert [m.model_id for m in report.added] == ["good"]
    assert report.skipped == []
    failed = dict(report.failed)
    assert set(failed) == {str(corrupt), str(missing)}
    assert "corrupt.glb" in failed[str(corrupt)] and "missing.obj" in failed[str(missing)]
    assert all("\n" not in reason for reason in failed.values())
    assert len(lib) == 1


def test_duplicate_add_is_a_noop(lib, make):
    path = make.export("box.stl", make.box())
    first = lib.add_paths([path])
    before = lib.list()
    second = lib.add_paths([path])
    assert second.added == [] and second.skipped == [(str(path), "box")]
    # an identical copy elsewhere is the same model too
    copy = make.root / "elsewhere" / "copy.stl"
    copy.parent.mkdir()
    shutil.copy(path, copy)
    third = lib.add_paths([copy])
    assert third.skipped == [(str(copy), "box")]
    assert lib.list() == before == first.added
    assert lib.add_mesh_file(copy) == before[0]


def test_same_stem_different_content_gets_suffix(lib, make):
    a = make.export("a/chair.stl", make.box((1, 1, 1)))
    b = make.export("b/chair.stl", make.box((1, 2, 1)))
    c = make.export("c/chair.stl", make.box((1, 3, 1)))
    report = lib.add_paths([a, b, c])
    assert [m.model_id for m in report.added] == ["chair", "chair-2", "chair-3"]


def test_add_folder_recurses_and_picks_meshes(lib, make):
    make.textured_obj("lib/cups/c1/models")  # obj + mtl + png
    make.off("lib/pyramid.off")
    make.export("lib/sub/box.glb", make.box())
    make.text("lib/readme.txt", "not a mesh")
    make.export("lib/.hidden/box.stl", make.box((3, 3, 3)))
    make.data("lib/.box.stl.123.tmp", b"unfinished")
    report = lib.add_paths([make.root / "lib"], category="mixed")
    assert sorted(m.model_id for m in report.added) == ["box", "c1", "pyramid"]
    assert report.failed == []
    assert {m.category for m in lib.list()} == {"mixed"}
    assert [m.model_id for m in lib.list("mixed")] == ["box", "c1", "pyramid"]
    assert lib.list("chair") == []


def test_empty_folder_is_reported(lib, make):
    make.text("empty/readme.txt", "x")
    report = lib.add_paths([make.root / "empty"])
    assert len(report.failed) == 1 and "no mesh files" in report.failed[0][1]


def test_add_paths_bad_axes_is_usage_error(lib, make):
    with pytest.raises(InputError, match="parallel"):
        lib.add_paths([make.export("box.stl", make.box())], up="+y", front="-y")


def test_progress_bar_goes_to_stderr(lib, make, capsys):
    lib.add_paths([make.export("box.stl", make.box())], progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "adding meshes" in captured.err


# ---------------------------------------------------------------------------------------------- manifest


def _write_manifest(make, rows: list[str]) -> object:
    header = "path,source,category,model_id,up_axis,front_axis,license\n"
    return make.text("data/manifest.csv", header + "\n".join(rows) + "\n")


def test_add_manifest(lib, make):
    make.export("data/meshes/a.stl", trimesh.creation.box(extents=(1, 1, 5)))
    make.off("data/meshes/p.off", "glued")
    make.export("data/meshes/dup.stl", make.box((2, 2, 2)))
    csv_path = _write_manifest(
        make,
        [
            "meshes/a.stl,src-a,chair,alpha,+z,-y,CC-BY",
            "meshes/p.off,src-p,pyramid,,,,",
            "meshes/missing.obj,src,chair,gone,+y,+z,",
            "meshes/dup.stl,src,box,bad id,+y,+z,",
            "meshes/dup.stl,src,box,alpha,+y,+z,",  # id already used by a different model
            "meshes/a.stl,src-a,chair,alpha2,+z,-y,CC-BY",  # same file again: skipped
            ",,,,,,",
        ],
    )
    report = lib.add_manifest(csv_path)
    assert [m.model_id for m in report.added] == ["alpha", "p"]
    alpha = lib.get("alpha")
    assert (alpha.source, alpha.category, alpha.up_axis, alpha.front_axis, alpha.license) == (
        "src-a",
        "chair",
        "+z",
        "-y",
        "CC-BY",
    )
    # declared up +z: the tall source z axis is the canonical Y axis
    ext = np.ptp(lib.mesh("alpha").vertices, axis=0)
    assert ext[1] > 4 * ext[0]
    p = lib.get("p")
    expected = ("src-p", "pyramid", "+y", "+z", None)
    assert (p.source, p.category, p.up_axis, p.front_axis, p.license) == expected
    assert report.skipped == [(str(make.root / "data/meshes/a.stl"), "alpha")]
    reasons = [reason for _, reason in report.failed]
    assert len(reasons) == 4
    assert "no such file" in reasons[0]
    assert "bad model id" in reasons[1]
    assert "already used" in reasons[2]
    assert "empty path" in reasons[3]
    # running it again adds nothing
    again = lib.add_manifest(csv_path)
    assert again.added == [] and len(again.skipped) == 3


def test_manifest_paths_relative_to_a_folder_above(make, tmp_path):
    """The shared data's manifest sits in meshes/ but writes paths from the data root."""
    target = make.export("root/meshes/x/a.stl", make.box())
    csv_dir = make.root / "root" / "meshes"
    assert resolve_manifest_path(csv_dir, "meshes/x/a.stl") == target
    assert resolve_manifest_path(csv_dir, "x/a.stl") == target.absolute()
    assert resolve_manifest_path(csv_dir, str(target)) == target


def test_manifest_errors(lib, make, tmp_path):
    with pytest.raises(InputError, match="not found"):
        lib.add_manifest(tmp_path / "nope.csv")
    bad = make.text("bad.csv", "file,category\na.stl,chair\n")
    with pytest.raises(InputError, match="no 'path' column"):
        lib.add_manifest(bad)


# ---------------------------------------------------------------------------------------------- reading


def test_unknown_id(lib):
    with pytest.raises(InputError) as info:
        lib.get("nope")
    assert str(info.value) == "unknown model id 'nope'; see `cadsearch library list`"
    with pytest.raises(InputError, match="unknown model id"):
        lib.mesh("nope")
    assert "nope" not in lib
    assert 3 not in lib


def test_mesh_is_canonical_copy_and_cached(lib, make):
    lib.add_mesh_file(make.export("tall.stl", trimesh.creation.box(extents=(1, 1, 5))), up="+z", front="-y")
    fresh = Library.open(lib.workspace)  # nothing cached: loads from the source file
    m = fresh.mesh("tall")
    assert np.linalg.norm(m.vertices, axis=1).max() == pytest.approx(1.0)
    np.testing.assert_allclose(m.bounds.mean(axis=0), 0, atol=1e-9)
    assert np.ptp(m.vertices[:, 1]) > 4 * np.ptp(m.vertices[:, 0])
    m.apply_translation((5, 5, 5))  # the caller's copy; the cache must not change
    np.testing.assert_allclose(fresh.mesh("tall").bounds.mean(axis=0), 0, atol=1e-9)


def test_mesh_source_gone(lib, make):
    path = make.export("box.stl", make.box())
    lib.add_mesh_file(path)
    path.unlink()
    fresh = Library.open(lib.workspace)
    with pytest.raises(InputError, match="gone"):
        fresh.mesh("box")


def test_mesh_source_corrupted_later(lib, make):
    path = make.export("box.stl", make.box())
    lib.add_mesh_file(path)
    path.write_bytes(b"")
    with pytest.raises(MeshLoadError, match="box.stl"):
        Library.open(lib.workspace).mesh("box")


def test_iteration_and_len(lib, make):
    lib.add_paths([make.export(f"b{i}.stl", make.box((1, 1, 1 + i))) for i in range(3)])
    assert len(lib) == 3
    assert [m.model_id for m in lib] == ["b0", "b1", "b2"]
    assert "b1" in lib


def test_catalog_schema(lib, make):
    lib.add_mesh_file(make.export("box.stl", make.box()))
    conn = sqlite3.connect(lib.catalog_path)
    cols = [r[1] for r in conn.execute("PRAGMA table_info(models)")]
    assert cols[:12] == [
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
    ]
    conn.close()


def test_failed_insert_leaves_catalog_unchanged(lib, make, monkeypatch):
    """A crash between loading and committing must not leave a half-added model."""
    from cadsearch.library import catalog

    lib.add_mesh_file(make.export("a.stl", make.box()))

    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(catalog.ModelInfo, "to_dict", boom)
    with pytest.raises(RuntimeError):
        lib.add_mesh_file(make.export("b.stl", make.box((1, 1, 1))))
    monkeypatch.undo()
    assert [m.model_id for m in Library.open(lib.workspace)] == ["a"]


# ---------------------------------------------------------------------------------------------- procedural


@dataclass
class FakeChair:
    model_id: str
    name: str
    family: str
    mesh: trimesh.Trimesh


def _fake_generate_chairs(n: int, seed: int = 0) -> list[FakeChair]:
    """Boxes with a red top and blue sides (face colours), one per chair, sizes depending on the seed."""
    chairs = []
    for i in range(n):
        box = trimesh.creation.box(extents=(1.0, 1.0 + 0.1 * i + seed, 1.0))
        colours = np.tile(np.array([0, 0, 255, 255], np.uint8), (12, 1))
        colours[box.triangles_center[:, 1] > box.vertices[:, 1].max() - 1e-9] = [255, 0, 0, 255]
        box.visual.face_colors = colours
        chairs.append(FakeChair(f"fake-s{seed}-{i:03d}", f"fake chair {i}", "box", box))
    return chairs


def test_generate_chairs_with_fake_generator(lib, monkeypatch):
    monkeypatch.setattr("cadsearch.library.procedural.generate_chairs", _fake_generate_chairs)
    report = lib.generate_chairs(3, seed=1)
    assert [m.model_id for m in report.added] == ["fake-s1-000", "fake-s1-001", "fake-s1-002"]
    info = lib.get("fake-s1-001")
    assert (info.category, info.source, info.name) == ("chair", "procedural", "fake chair 1")
    assert info.path == lib.workspace / "models" / "procedural" / "fake-s1-001.glb"
    assert info.path.is_file()
    assert not list(info.path.parent.glob(".*"))  # no temporary files left behind
    # face colours survive the GLB round trip
    m = Library.open(lib.workspace).mesh("fake-s1-001")
    top = m.triangles_center[:, 1] > m.vertices[:, 1].max() - 1e-6
    assert top.sum() == 2
    assert (m.visual.face_colors[top, :3] == [255, 0, 0]).all()
    assert (m.visual.face_colors[~top, :3] == [0, 0, 255]).all()
    # re-running is a no-op, and does not rewrite the files
    mtime = info.path.stat().st_mtime_ns
    again = lib.generate_chairs(3, seed=1)
    assert again.added == [] and [s[1] for s in again.skipped] == [m.model_id for m in report.added]
    assert info.path.stat().st_mtime_ns == mtime
    assert len(lib) == 3


def test_generate_chairs_rejects_bad_n(lib):
    with pytest.raises(InputError):
        lib.generate_chairs(0)


def test_generate_chairs_real_generator(lib):
    """Integration with the real procedural generator (small n: it must stay fast)."""
    pytest.importorskip("cadsearch.library.procedural")
    report = lib.generate_chairs(2, seed=0)
    assert len(report.added) == 2 and report.failed == []
    for info in report.added:
        m = lib.mesh(info.model_id)
        assert np.linalg.norm(m.vertices, axis=1).max() == pytest.approx(1.0)
        assert m.visual.kind in {"vertex", "face"}
