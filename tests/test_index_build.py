"""``build_index``: round trip, incremental embedding, atomic save and resume, factory strings."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cadsearch.errors import InputError
from cadsearch.index import ViewIndex, build_index, index_dir, load_index
from cadsearch.index.faiss_index import ViewTable, make_faiss_index, normalise_factory
from cadsearch.render.job import read_view_table
from fakes import FakePredictor, fake_for


def test_build_save_load_round_trip(search_ws: Path) -> None:
    fake = fake_for(search_ws)
    summary = build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    assert summary.views == 18 and summary.models == 3 and summary.embedded == 18 and summary.dim == 32
    assert summary.factory == "IDMap,Flat"
    index = load_index(search_ws, "scratch")
    rows = read_view_table(search_ws)
    assert sorted(index.table.view_id) == sorted(r.view_id for r in rows)
    by_id = {r.view_id: r for r in rows}
    for i, vid in enumerate(index.table.view_id):
        assert index.table.model_id[i] == by_id[vid].model_id
        assert index.table.polar_deg[i] == pytest.approx(by_id[vid].polar_deg, abs=1e-3)
    np.testing.assert_allclose(np.linalg.norm(index.vectors, axis=1), 1.0, atol=1e-5)
    sims, ids = index.search(index.vectors[:3], 2)
    assert list(ids[:, 0]) == [0, 1, 2] and np.allclose(sims[:, 0], 1.0, atol=1e-5)
    assert "calibration" not in index.meta  # the search layer fits it (search/calibration.py)
    # no temporary or stale files are left behind
    folder = index_dir(search_ws, "scratch")
    names = sorted(p.name for p in folder.iterdir())
    assert not [n for n in names if n.startswith(".") or n.endswith(".tmp")]
    assert len(names) == 4 and "parts" not in names  # meta + one generation of vectors, table, index


def test_incremental_add_embeds_only_new_views(search_ws: Path) -> None:
    from cadsearch.library import Library
    from cadsearch.render.job import RenderConfig, render_views

    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    assert fake.images == 18
    again = build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    assert again.unchanged and fake.images == 18  # nothing new: nothing embedded
    Library.open(search_ws).generate_chairs(4)  # same seed: 3 known + 1 new chair
    render_views(search_ws, RenderConfig(views=6, size=48), progress=False)
    summary = build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    assert fake.images == 18 + 6 and summary.embedded == 6 and summary.reused == 18
    assert summary.views == 24 and summary.models == 4
    # another checkpoint: every vector is remade
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="B")
    assert fake.images == 24 + 24


def test_interrupted_build_resumes_from_parts(search_ws: Path, monkeypatch) -> None:
    import cadsearch.index.embed as embed

    monkeypatch.setattr(embed, "CHUNK_VIEWS", 4)
    fake = fake_for(search_ws)

    class Boom(Exception):
        pass

    real = fake.predict

    def flaky(images, batch_size=64):
        if fake.images >= 8:
            raise Boom
        return real(images, batch_size)

    fake.predict = flaky
    with pytest.raises(Boom):
        build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A", batch_size=4)
    folder = index_dir(search_ws, "scratch")
    assert not (folder / "meta.json").exists()  # no half index
    assert len(list((folder / "parts").glob("*.npz"))) == 2
    fake.predict = real
    summary = build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A", batch_size=4)
    assert summary.views == 18 and fake.images == 18  # the 8 saved views were not embedded again
    assert not (folder / "parts").exists()


@pytest.mark.parametrize("factory", ["Flat", "IDMap,Flat", "HNSW16,Flat", "IVF4,Flat", "IDMap,IVF1024,Flat"])
def test_factories_agree_on_easy_data(factory: str) -> None:
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((20, 16)).astype(np.float32)
    x = centres[rng.integers(0, 20, 2000)] + 0.05 * rng.standard_normal((2000, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    table = ViewTable.from_rows([(f"v{i}", f"m{i % 7}", 90.0, 0.0, f"k{i}") for i in range(len(x))])
    exact = ViewIndex.build(x, table, "IDMap,Flat")
    approx = ViewIndex.build(x, table, factory)
    assert approx.factory.startswith("IDMap")
    q = x[:50] + 0.01 * rng.standard_normal((50, 16)).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    _, ie = exact.search(q, 1)
    _, ia = approx.search(q, 1)
    assert (ie[:, 0] == ia[:, 0]).mean() >= 0.95


def test_factory_string_helpers() -> None:
    assert normalise_factory("Flat") == "IDMap,Flat"
    assert normalise_factory("IVF1024,Flat", 390) == "IDMap,IVF10,Flat"
    with pytest.raises(InputError, match="factory"):
        make_faiss_index(np.zeros((4, 8), np.float32), "NoSuchIndex42")


def test_factory_switch_reuses_vectors(search_ws: Path) -> None:
    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    summary = build_index(search_ws, "scratch", "HNSW16,Flat", progress=False, predictor=fake, fingerprint="A")
    assert summary.factory == "IDMap,HNSW16,Flat" and fake.images == 18
    assert load_index(search_ws, "scratch").factory == "IDMap,HNSW16,Flat"


def test_missing_index_and_bad_model(search_ws: Path) -> None:
    with pytest.raises(InputError, match="cadsearch index"):
        load_index(search_ws, "scratch")
    with pytest.raises(InputError, match="scratch or transfer"):
        build_index(search_ws, "nope", progress=False, predictor=FakePredictor())
    with pytest.raises(InputError, match="train"):
        build_index(search_ws, "scratch", progress=False)  # no checkpoint
