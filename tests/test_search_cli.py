"""``cadsearch search`` and ``cadsearch index`` on the command line (with a fake network)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cadsearch.cli import main
from cadsearch.index import build_index, load_index
from cadsearch.library import Library
from cadsearch.render.job import read_view_table
from cadsearch.search import Searcher
from cadsearch.search.matching import MatchModel
from fakes import fake_for, patch_scored_searchers


def run(capsys, *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    out = capsys.readouterr()
    return stop.value.code, out.out, out.err


@pytest.fixture(name="fake_searcher")
def fake_searcher_fixture(search_ws: Path, monkeypatch) -> Searcher:
    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    searcher = Searcher(fake, load_index(search_ws, "scratch"), Library.open(search_ws))
    monkeypatch.setattr(Searcher, "from_workspace", classmethod(lambda cls, ws, model=None, **kwargs: searcher))
    return searcher


def test_search_json_one_object_per_query_and_one_error_per_bad_file(
    fake_searcher: Searcher, search_ws: Path, tmp_path: Path, capsys
) -> None:
    rows = read_view_table(search_ws)
    good = [str(search_ws / rows[0].path), str(search_ws / rows[7].path)]
    text = tmp_path / "notes.jpg"
    text.write_text("not an image")
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    args = [good[0], str(text), good[1], str(empty), str(tmp_path / "missing.png")]
    code, out, err = run(capsys, "--workspace", str(search_ws), "search", *args, "--json", "--top", "2")
    assert code == 2
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 3 and "Traceback" not in err
    for name in ("notes.jpg", "empty.png", "missing.png"):
        assert sum(name in line for line in errors) == 1
    objects = [json.loads(line) for line in out.splitlines()]
    assert [o["query"] for o in objects] == good
    for o, row in zip(objects, (rows[0], rows[7]), strict=True):
        assert list(o) == ["query", "results", "exact_match", "objects", "timing_ms"]
        assert list(o["timing_ms"]) == ["total"]
        assert len(o["objects"]) == 1 and o["objects"][0]["detection_score"] is None
        assert isinstance(o["exact_match"], bool) and all(0.0 <= r["match"] <= 1.0 for r in o["results"])
        assert o["results"][0]["model_id"] == row.model_id and len(o["results"]) == 2
        assert all(0.0 <= r["score"] <= 1.0 for r in o["results"])


def test_search_table_and_overlay(fake_searcher: Searcher, search_ws: Path, tmp_path: Path, capsys) -> None:
    row = read_view_table(search_ws)[3]
    out_png = tmp_path / "over.png"
    code, out, err = run(
        capsys, "--workspace", str(search_ws), "search", str(search_ws / row.path), "--overlay", str(out_png)
    )
    assert code == 0, err
    assert row.model_id in out and "overlay" in out
    assert np.asarray(Image.open(out_png)).shape == (48, 48, 3)


@pytest.mark.parametrize("bias", [8.0, -8.0])
def test_search_table_says_exact_match_or_closest_models(
    fake_searcher: Searcher, search_ws: Path, capsys, bias: float
) -> None:
    # A match model that is sure either way (weights 0): the table's headline follows the top result's match.
    fake_searcher.match_model = MatchModel((0.0, 0.0, 0.0, 0.0), bias, (0.0,) * 4, (1.0,) * 4)
    row = read_view_table(search_ws)[3]
    code, out, err = run(capsys, "--workspace", str(search_ws), "search", str(search_ws / row.path))
    assert code == 0, err
    exact, closest = "Exact match", "No exact match — closest models in your library"
    assert (exact in out) == (bias > 0) and (closest in out) == (bias < 0)
    assert ("match 100.0%" in out) == (bias > 0) and ("match   0.0%" in out) == (bias < 0)


def test_search_without_model_or_index_is_one_line(search_ws: Path, capsys) -> None:
    row = read_view_table(search_ws)[0]
    code, _, err = run(capsys, "--workspace", str(search_ws), "search", str(search_ws / row.path))
    assert code == 2 and err.count("\n") == 1 and "cadsearch train" in err


def test_index_command_without_checkpoint(search_ws: Path, capsys) -> None:
    code, _, err = run(capsys, "--workspace", str(search_ws), "index")
    assert code == 2 and "cadsearch train scratch" in err


def test_search_with_a_detector_prints_every_object_and_draws_numbered_boxes(
    search_ws: Path, tmp_path: Path, monkeypatch, capsys
) -> None:
    from cadsearch.detect import Detection
    from cadsearch.detect.pictures import BOX_RGB

    rows = read_view_table(search_ws)
    photo = np.full((120, 240, 3), 255, np.uint8)
    photo[10:58, 10:58] = np.asarray(Image.open(search_ws / rows[0].path).convert("RGB"))
    photo[60:108, 170:218] = np.asarray(Image.open(search_ws / rows[-1].path).convert("RGB"))
    path = tmp_path / "room.png"
    Image.fromarray(photo).save(path)

    class Boxes:
        def detect(self, image):
            return [Detection((10.0, 10.0, 58.0, 58.0), 0.8), Detection((170.0, 60.0, 218.0, 108.0), 0.5)]

    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    searcher = Searcher(fake, load_index(search_ws, "scratch"), Library.open(search_ws), crop="detect",
                        localiser=Boxes())  # fmt: skip
    monkeypatch.setattr(Searcher, "from_workspace", classmethod(lambda cls, ws, model=None, **kwargs: searcher))
    code, out, err = run(capsys, "--workspace", str(search_ws), "search", str(path), "--json")
    assert code == 0, err
    answer = json.loads(out)
    assert [o["box"] for o in answer["objects"]] == [[10.0, 10.0, 58.0, 58.0], [170.0, 60.0, 218.0, 108.0]]
    assert answer["results"] == answer["objects"][0]["results"]
    out_png = tmp_path / "over.png"
    code, out, err = run(capsys, "--workspace", str(search_ws), "search", str(path), "--overlay", str(out_png))
    assert code == 0 and "object 1: box [10, 10, 58, 58], detection score 0.80" in out and "object 2" in out
    picture = np.asarray(Image.open(out_png))
    assert picture.shape == (120, 240, 3)
    green = np.all(picture == BOX_RGB, axis=2)
    assert green[10:58, 9:12].any() and green[60:108, 169:172].any()  # both boxes' left edges drawn
    assert not green[:, 100:140].any()  # nothing between the two objects


def test_detector_commands_refuse_bad_settings_in_one_line(search_ws: Path, capsys) -> None:
    code, _, err = run(capsys, "--workspace", str(search_ws), "train", "detector", "--set", "bogus=1")
    assert code == 2 and err.count("\n") == 1 and "unknown detector setting 'bogus'" in err
    code, _, err = run(capsys, "--workspace", str(search_ws), "train", "detector", "--set", "input_size=100")
    assert code == 2 and err.count("\n") == 1 and "multiple of 32" in err


def test_crop_detect_without_a_detector_is_one_line(search_ws: Path, monkeypatch, capsys) -> None:
    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")

    def load(cls, ws, model=None, crop=None, **kwargs):  # as from_workspace: the crop is checked on construction
        return Searcher(fake, load_index(search_ws, "scratch"), Library.open(search_ws), crop=crop or "auto")

    monkeypatch.setattr(Searcher, "from_workspace", classmethod(load))
    row = read_view_table(search_ws)[0]
    code, _, err = run(capsys, "--workspace", str(search_ws), "search", str(search_ws / row.path), "--crop", "detect")
    assert code == 2 and err.count("\n") == 1 and "cadsearch train detector" in err


def test_refine_options_reach_the_searcher_and_the_table_shows_roll_and_fit(
    search_ws: Path, monkeypatch, capsys
) -> None:
    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    # no second model registered to compare outlines (test_search_searcher: test_the_outline_ranks_...)
    searcher = Searcher(fake, load_index(search_ws, "scratch"), Library.open(search_ws), outline_rank=1)
    seen: list[int] = []

    def from_workspace(cls, ws, model=None, **kwargs):
        seen.append(kwargs["refine_top"])
        searcher.refine_top = kwargs["refine_top"]
        return searcher

    monkeypatch.setattr(Searcher, "from_workspace", classmethod(from_workspace))
    image = str(search_ws / read_view_table(search_ws)[0].path)  # a render on a plain backdrop: registrable
    code, out, _ = run(capsys, "--workspace", str(search_ws), "search", image, "--top", "2")
    assert code == 0 and seen == [1]
    lines = [line for line in out.splitlines() if line.strip().startswith(("1.", "2."))]
    assert "roll" in lines[0] and "fit" in lines[0] and "roll" not in lines[1]  # only the top one is registered
    code, out, _ = run(capsys, "--workspace", str(search_ws), "search", image, "--no-refine", "--json")
    assert code == 0 and seen[-1] == 0 and "placement" not in json.loads(out)["results"][0]
    code, out, _ = run(capsys, "--workspace", str(search_ws), "search", image, "--refine-top", "2", "--json")
    assert code == 0 and seen[-1] == 2 and all("placement" in r for r in json.loads(out)["results"][:2])
    code, _, err = run(capsys, "--workspace", str(search_ws), "search", image, "--refine-top", "0")
    assert code == 2 and "Traceback" not in err


def test_detect_threshold_sets_the_lowest_object_score_and_needs_a_detector(
    search_ws: Path, monkeypatch, capsys
) -> None:
    made = patch_scored_searchers(search_ws, monkeypatch)
    photo = str(search_ws / read_view_table(search_ws)[0].path)
    ws = ["--workspace", str(search_ws)]
    code, out, err = run(capsys, *ws, "search", photo, "--json")
    assert code == 0, err
    assert [o["detection_score"] for o in json.loads(out)["objects"]] == [0.8, 0.35]
    code, out, err = run(capsys, *ws, "search", photo, "--json", "--detect-threshold", "0.5")
    assert code == 0, err
    assert [o["detection_score"] for o in json.loads(out)["objects"]] == [0.8]
    assert made[-1].localiser.threshold == 0.5
    code, _, err = run(capsys, *ws, "search", photo, "--crop", "auto", "--detect-threshold", "0.5")
    assert code == 2 and err.count("\n") == 1 and "--detect-threshold needs --crop detect" in err
    code, _, err = run(capsys, *ws, "search", photo, "--detect-threshold", "1.5")
    assert code == 2 and err.count("\n") == 1


def test_evaluate_takes_the_detect_threshold_as_search_does(search_ws: Path, monkeypatch, capsys) -> None:
    from cadsearch.errors import InputError
    from cadsearch.evaluate.run import load_answerers
    from cadsearch.models import checkpoint_path

    patch_scored_searchers(search_ws, monkeypatch)
    checkpoint_path(search_ws, "scratch").parent.mkdir(parents=True, exist_ok=True)
    checkpoint_path(search_ws, "scratch").write_bytes(b"")  # present; the patched loader never reads it
    answerers = load_answerers(search_ws, "scratch", "index", print, crop="detect", detect_threshold=0.5)
    searcher = answerers["scratch"].searcher
    photo = np.asarray(Image.open(search_ws / read_view_table(search_ws)[0].path).convert("RGB"))
    assert [o.detection_score for o in searcher.search(photo, k=1).objects] == [0.8]
    for ranking in ("index", "classifier"):  # the classifier ranking has no searcher to refuse it
        with pytest.raises(InputError, match="--detect-threshold needs --crop detect"):
            load_answerers(search_ws, "scratch", ranking, print, crop="auto", detect_threshold=0.5)
    with pytest.raises(InputError, match="between 0 and 1"):
        searcher.set_detect_threshold(-0.1)
    sibling = searcher.with_options()  # shares the localiser it was made with
    searcher.set_detect_threshold(0.3)
    assert searcher.localiser.threshold == 0.3 and sibling.localiser.threshold == 0.5
    code, _, err = run(capsys, "--workspace", str(search_ws), "evaluate", "--model", "scratch", "--crop", "auto",
                       "--detect-threshold", "0.5")  # fmt: skip
    assert code == 2 and err.count("\n") == 1 and "--detect-threshold needs --crop detect" in err
