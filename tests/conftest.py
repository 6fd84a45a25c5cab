"""Every shared fixture: tiny mesh files of every supported format (built inside the tests' tmp folders), the real
shared data folder, and small rendered workspaces made once per session (``tiny_views`` for the models' tests,
``search_ws`` for the index and search tests, ``web_ws`` for the web app's tests).

Pytest finds these without imports. Helpers that are not fixtures (fake predictor, the app with a fake searcher,
awkward image files) are in ``fakes.py``, imported normally.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import trimesh
from PIL import Image


def shared_data_dir() -> Path:
    """``../shared/data`` from the repository root, or ``$CADSEARCH_SHARED_DATA``; may not exist."""
    env = os.environ.get("CADSEARCH_SHARED_DATA")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real research-only data folder (read in place, never copied); skips the test when absent."""
    folder = shared_data_dir()
    if not (folder / "meshes" / "manifest.csv").is_file():
        pytest.skip(f"real data not found at {folder} (set CADSEARCH_SHARED_DATA to the shared data folder)")
    return folder


# A unit square in the z = 0 plane, two triangles, with UVs covering the texture.
_QUAD_OBJ_BODY = """\
v 0 0 0
v 1 0 0
v 1 1 0
v 0 1 0
vt 0 0
vt 1 0
vt 1 1
vt 0 1
f 1/1 2/2 3/3
f 1/1 3/3 4/4
"""


class MeshFactory:
    """Writes small mesh files under ``root``; every method returns the path written."""

    def __init__(self, root: Path):
        self.root = root

    def path(self, name: str) -> Path:
        p = self.root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    def text(self, name: str, text: str) -> Path:
        p = self.path(name)
        p.write_text(text)
        return p

    def data(self, name: str, data: bytes) -> Path:
        p = self.path(name)
        p.write_bytes(data)
        return p

    def png(self, name: str, colour: tuple[int, int, int] = (200, 30, 30), size: int = 4) -> Path:
        p = self.path(name)
        Image.new("RGB", (size, size), colour).save(p)
        return p

    def textured_obj(self, folder: str = "textured/models", texture_colour=(200, 30, 30)) -> Path:
        """ShapeNet layout: ``<folder>/model.obj`` + ``model.mtl`` naming ``../images/texture0.png``."""
        self.png(f"{folder}/../images/texture0.png", texture_colour)
        self.text(f"{folder}/model.mtl", "newmtl skin\nKd 1 1 1\nmap_Kd ../images/texture0.png\n")
        return self.text(f"{folder}/model.obj", "mtllib model.mtl\nusemtl skin\n" + _QUAD_OBJ_BODY)

    def two_material_obj(self, name: str = "twomat/thing.obj", textured: bool = True) -> Path:
        """Two quads: one with a textured material (if ``textured``), one with a plain red Kd material."""
        folder = Path(name).parent.as_posix()
        mtl = "newmtl red\nKd 1 0 0\n\nnewmtl skin\nKd 1 1 1\n"
        if textured:
            self.png(f"{folder}/skin.png", (10, 200, 10))
            mtl += "map_Kd skin.png\n"
        else:
            mtl = mtl.replace("Kd 1 1 1", "Kd 0 0 1")
        self.text(f"{folder}/thing.mtl", mtl)
        body = (
            "mtllib thing.mtl\n"
            "v 0 0 0\nv 1 0 0\nv 1 1 0\nv 0 1 0\n"
            "v 0 0 1\nv 1 0 1\nv 1 1 1\nv 0 1 1\n"
            "vt 0 0\nvt 1 0\nvt 1 1\nvt 0 1\n"
            "usemtl red\nf 1/1 2/2 3/3\nf 1/1 3/3 4/4\n"
            "usemtl skin\nf 5/1 6/2 7/3\nf 5/1 7/3 8/4\n"
        )
        return self.text(name, body)

    def box(self, extents=(1.0, 2.0, 3.0)) -> trimesh.Trimesh:
        return trimesh.creation.box(extents=extents)

    def export(self, name: str, mesh: trimesh.Trimesh | trimesh.Scene) -> Path:
        ext = Path(name).suffix[1:]
        return self.data(name, bytes(mesh.export(file_type=ext)))

    def coloured_ply(self, name: str = "coloured.ply") -> Path:
        box = self.box()
        colours = np.zeros((len(box.vertices), 4), np.uint8)
        colours[:, 3] = 255
        colours[:, 0] = np.arange(len(box.vertices)) * 30
        box.visual.vertex_colors = colours
        return self.export(name, box)

    def off(self, name: str, variant: str = "normal") -> Path:
        """A square pyramid: one quad base and four triangles, in three header layouts.

        ``normal``: ``OFF`` then counts on the next line; ``glued``: ModelNet's ``OFF5 5 0``;
        ``same_line``: ``OFF 5 5 0``.
        """
        head = {"normal": "OFF\n5 5 0\n", "glued": "OFF5 5 0\n", "same_line": "OFF 5 5 0\n"}[variant]
        body = "# a comment\n0 0 0\n1 0 0\n1 1 0\n0 1 0\n0.5 0.5 1\n4 0 3 2 1\n3 0 1 4\n3 1 2 4\n3 2 3 4\n3 3 0 4\n"
        return self.text(name, head + body)


@pytest.fixture
def make(tmp_path: Path) -> MeshFactory:
    """A :class:`MeshFactory` writing into this test's ``tmp_path / "meshes"``."""
    return MeshFactory(tmp_path / "meshes")


#: A scratch network small enough for the test suite (1 epoch, 32 px, width 8); tests add what they vary.
TINY_TRAIN = {
    "epochs": 1,
    "input_size": 32,
    "width": 8,
    "feat_dim": 32,
    "embed_dim": 16,
    "n_pose_bins": 64,
    "batch_size": 8,
    "background_pool": 8,
    "holdout_models": 1,
    "val_fraction": 0.25,
}


def render_tiny_workspace(ws: Path, chairs: int, views: int, size: int) -> Path:
    """Fill ``ws`` with ``chairs`` procedural chairs × ``views`` low-quality views at ``size`` px; returns ``ws``.

    Session fixtures render one such workspace and hand tests private copies (:func:`private_copy`).
    """
    from cadsearch.library import Library
    from cadsearch.render.job import RenderConfig, render_views

    Library.open(ws).generate_chairs(chairs)
    render_views(ws, RenderConfig(views=views, size=size), progress=False)
    return ws


def private_copy(master: Path, tmp_path: Path) -> Path:
    """A copy of a session workspace that one test may write into."""
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(master, ws)
    return ws


# --- rendered workspaces, one per session; tests get private copies or must not write ---------------------------


@pytest.fixture(scope="session", name="tiny_views_master")
def tiny_views_master_fixture(tmp_path_factory) -> Path:
    """A workspace with 3 procedural chairs × 8 views at 64 px, rendered once per session (do not write in it)."""
    return render_tiny_workspace(tmp_path_factory.mktemp("tiny_views"), chairs=3, views=8, size=64)


@pytest.fixture(name="tiny_views")
def tiny_views_fixture(tiny_views_master, tmp_path) -> Path:
    """A private copy of the tiny rendered workspace (tests may write checkpoints into it)."""
    return private_copy(tiny_views_master, tmp_path)


@pytest.fixture(scope="session", name="search_ws_master")
def search_ws_master_fixture(tmp_path_factory) -> Path:
    """3 procedural chairs × 6 views at 48 px, rendered once per session (do not write in it)."""
    return render_tiny_workspace(tmp_path_factory.mktemp("search_ws"), chairs=3, views=6, size=48)


@pytest.fixture(name="search_ws")
def search_ws_fixture(search_ws_master, tmp_path) -> Path:
    """A private copy of the tiny rendered workspace (for the index and search tests)."""
    return private_copy(search_ws_master, tmp_path)


@pytest.fixture(scope="session", name="web_ws")
def web_ws_fixture(tmp_path_factory) -> Path:
    """4 procedural chairs × 4 views at 64 px on random backgrounds, rendered once per session (tests must not
    write in it except ``web-cache/``, which the app owns)."""
    from cadsearch.library import Library
    from cadsearch.render.job import RenderConfig, render_views

    ws = tmp_path_factory.mktemp("web_ws")
    Library.open(ws).generate_chairs(4)
    render_views(ws, RenderConfig(views=4, size=64, backgrounds="random"), progress=False)
    return ws
