"""The score temperature is fitted by the search layer, once per index build, and kept beside the index."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cadsearch.index import build_index, index_dir, load_index
from cadsearch.search.calibration import CALIBRATION_FILE, load_or_fit_calibration
from fakes import fake_for


def test_calibration_is_fitted_once_per_index_build(search_ws: Path, monkeypatch) -> None:
    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    index = load_index(search_ws, "scratch")
    first = load_or_fit_calibration(search_ws, "scratch", index, fake)
    assert first["temperature"] > 0 and first["n"] > 0 and "ece" in first
    path = index_dir(search_ws, "scratch") / CALIBRATION_FILE
    stored = json.loads(path.read_text())
    assert stored["calibration"] == first and stored["index"]["views"] == len(index)

    # The same index: read back, not refitted (a refit would call this).
    import cadsearch.search.calibration as calibration

    monkeypatch.setattr(calibration, "calibrate", lambda *a, **k: {"temperature": 123.0})
    assert load_or_fit_calibration(search_ws, "scratch", index, fake) == first

    # Another build (other checkpoint): the stored fit no longer matches and is replaced.
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="B")
    again = load_or_fit_calibration(search_ws, "scratch", load_index(search_ws, "scratch"), fake)
    assert again == {"temperature": 123.0}
    assert json.loads(path.read_text())["calibration"] == again


def test_a_damaged_calibration_file_is_refitted(search_ws: Path) -> None:
    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    path = index_dir(search_ws, "scratch") / CALIBRATION_FILE
    path.write_text("{not json")
    fit = load_or_fit_calibration(search_ws, "scratch", load_index(search_ws, "scratch"), fake)
    assert fit["temperature"] > 0 and json.loads(path.read_text())["calibration"] == fit


def _relabel(ws: Path, model_id: str, category: str) -> None:
    """Give one model of the tiny all-chair library another category (the catalog's own table)."""
    import sqlite3

    with sqlite3.connect(ws / "catalog.sqlite") as db:
        db.execute("UPDATE models SET category = ? WHERE model_id = ?", (category, model_id))


def test_the_category_temperature_is_fitted_beside_and_added_to_an_older_file(search_ws: Path) -> None:
    from cadsearch.library import Library
    from cadsearch.search import Searcher
    from cadsearch.search.calibration import fit_category

    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    index = load_index(search_ws, "scratch")
    ids = np.arange(len(index))
    assert fit_category(index, search_ws, ids) is None  # one category: nothing to vote between
    first = Library.open(search_ws).list()[0].model_id
    _relabel(search_ws, first, "cup")
    fit = fit_category(index, search_ws, ids)
    assert fit is not None and fit["temperature"] > 0 and fit["n"] == len(ids)

    # A file fitted before the category temperature gets it on first use, without refitting the rest.
    path = index_dir(search_ws, "scratch") / CALIBRATION_FILE
    calibration = load_or_fit_calibration(search_ws, "scratch", index, fake)
    stored = json.loads(path.read_text())
    del stored["calibration"]["category"]
    stored["calibration"]["temperature"] = 0.0123  # a refit would replace this
    path.write_text(json.dumps(stored))
    again = load_or_fit_calibration(search_ws, "scratch", index, fake)
    assert again["temperature"] == 0.0123 and again["category"] == calibration["category"]
    assert json.loads(path.read_text())["calibration"]["category"] == calibration["category"]
    # A searcher votes at the temperature it is given, else at the score temperature.
    assert Searcher(fake, index, vote_temperature=0.5).vote_temperature == 0.5
    assert Searcher(fake, index, temperature=0.07).vote_temperature == 0.07  # no fit: the score temperature
