"""The score temperature is fitted by the search layer, once per index build, and kept beside the index."""

from __future__ import annotations

import json
from pathlib import Path

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
