"""The loader and the canonical frame on the real meshes of ``../shared/data/meshes`` (skipped if absent).

The data is research-only and never copied into the repository: it is read in place from
``../shared/data`` (or ``$CADSEARCH_SHARED_DATA``).
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import numpy as np
import pytest

from cadsearch.library import Library


def _data_dir() -> Path:
    """``../shared/data`` from the repository root, or ``$CADSEARCH_SHARED_DATA``."""
    env = os.environ.get("CADSEARCH_SHARED_DATA")
    return Path(env) if env else Path(__file__).resolve().parents[2] / "shared" / "data"


DATA = _data_dir()
MANIFEST = DATA / "meshes" / "manifest.csv"

pytestmark = pytest.mark.skipif(
    not MANIFEST.is_file(),
    reason=f"real mesh data not found at {MANIFEST} (set CADSEARCH_SHARED_DATA to the shared data folder)",
)


def _manifest_rows() -> list[dict[str, str]]:
    with open(MANIFEST, newline="", encoding="utf-8-sig") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def real_library(tmp_path_factory) -> tuple[Library, float]:
    """Every manifest model added to a fresh workspace, and how long that took (seconds)."""
    lib = Library.open(tmp_path_factory.mktemp("real") / "ws")
    start = time.perf_counter()
    report = lib.add_manifest(MANIFEST)
    elapsed = time.perf_counter() - start
    assert report.failed == [], report.failed
    return lib, elapsed


def test_all_manifest_models_load(real_library):
    lib, elapsed = real_library
    rows = _manifest_rows()
    assert len(rows) == 116
    assert sorted(m.model_id for m in lib) == sorted(r["model_id"] for r in rows)
    for row in rows:
        info = lib.get(row["model_id"])
        assert info.category == row["category"]
        assert (info.up_axis, info.front_axis) == (row["up_axis"], row["front_axis"])
        assert info.n_faces > 0
    print(f"added {len(rows)} real models in {elapsed:.1f} s")
    assert elapsed < 60


def test_textured_shapenet_models_keep_their_texture(real_library):
    """Every ShapeNet model whose MTL names a texture image that exists loads with UV + image."""
    lib, _ = real_library
    textured = []
    for info in lib.list():
        mtl = info.path.with_suffix(".mtl")
        if info.path.suffix == ".obj" and mtl.is_file():
            lines = mtl.read_text().splitlines()
            maps = [ln.split(None, 1)[1].strip() for ln in lines if ln.startswith("map_Kd")]
            if any((mtl.parent / m).is_file() for m in maps):
                textured.append(info)
                assert info.has_texture, info.model_id
    assert len(textured) >= 10
    mesh = lib.mesh(textured[0].model_id)
    assert mesh.visual.kind == "texture"
    assert mesh.visual.uv.shape == (len(mesh.vertices), 2)
    assert mesh.visual.material.image is not None


CHAIRS = [r for r in _manifest_rows() if r["category"] == "chair"] if MANIFEST.is_file() else []


@pytest.mark.parametrize("row", CHAIRS, ids=[r["model_id"] for r in CHAIRS])
def test_chair_backrest_is_at_negative_z(real_library, row):
    """Canonical chairs: +Y up and the front at +Z, so the backrest (top 40 % of the height) is at -Z."""
    lib, _ = real_library
    mesh = lib.mesh(row["model_id"])
    v = mesh.vertices
    np.testing.assert_allclose(mesh.bounds.mean(axis=0), 0.0, atol=1e-9)
    assert np.linalg.norm(v, axis=1).max() == pytest.approx(1.0)
    y = v[:, 1]
    top = v[y >= y.min() + 0.6 * (y.max() - y.min())]
    assert len(top) > 0
    assert top[:, 2].mean() < 0, f"{row['model_id']}: backrest mean z {top[:, 2].mean():+.3f}"


def test_real_data_location_is_outside_the_repo():
    """The research-only data must be read in place, never from inside the repository."""
    repo = Path(__file__).resolve().parents[1]
    assert not DATA.resolve().is_relative_to(repo)
