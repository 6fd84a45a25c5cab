"""Training-only chairs (cadsearch.models.extras): made beside the library, rendered like it, trained on, never
part of the library."""

from __future__ import annotations

import pytest
import torch

from cadsearch.errors import InputError
from cadsearch.library import Library
from cadsearch.models import train_model
from cadsearch.models.extras import EXTRAS_DIR, extra_chair_ids, extra_chairs, prepare_extra_chairs
from cadsearch.render.job import load_view, read_view_table
from conftest import TINY_TRAIN


def test_extra_chairs_are_rendered_like_the_library_and_stay_out_of_it(tiny_views):
    library_ids = [m.model_id for m in Library.open(tiny_views).list()]
    library_views = read_view_table(tiny_views)
    root = prepare_extra_chairs(tiny_views, 2, workers=1, progress=False)
    assert root == tiny_views / EXTRAS_DIR
    rows, catalog = extra_chairs(tiny_views, 2)
    assert sorted({r.model_id for r in rows}) == [m.model_id for m in catalog] == extra_chair_ids(2)
    assert len(rows) == 2 * 8  # the library's view count (the tiny workspace renders 8 views a model)
    rgb, mask, _ = load_view(tiny_views, rows[0])  # paths are relative to the library's workspace
    assert rgb.shape == (64, 64, 3) and mask.max() > 0.5  # the library's render size, an object in view
    # The library, its views and its catalog are untouched.
    assert [m.model_id for m in Library.open(tiny_views).list()] == library_ids
    assert read_view_table(tiny_views) == library_views
    # Fewer than made: the first ones. More than rendered: refused until prepared.
    assert {r.model_id for r in extra_chairs(tiny_views, 1)[0]} == set(extra_chair_ids(1))
    with pytest.raises(InputError, match="1 of the 3 training-only chairs are not rendered"):
        extra_chairs(tiny_views, 3)
    assert extra_chairs(tiny_views, 0) == ([], [])


def test_a_moved_workspace_says_how_to_remake_its_extra_chairs(tiny_views, tmp_path):
    import shutil

    prepare_extra_chairs(tiny_views, 1, workers=1, progress=False)
    moved = shutil.copytree(tiny_views, tmp_path / "moved")  # the extras' catalog still names the old folder
    shutil.rmtree(tiny_views / EXTRAS_DIR)
    with pytest.raises(InputError, match=f"delete {moved / EXTRAS_DIR} to make them again"):
        prepare_extra_chairs(moved, 1, workers=1, progress=False)
    shutil.rmtree(moved / EXTRAS_DIR)
    prepare_extra_chairs(moved, 1, workers=1, progress=False)
    assert len(extra_chairs(moved, 1)[0]) == 8


def test_extra_chairs_wait_for_the_librarys_renders(tmp_path):
    Library.open(tmp_path / "ws").generate_chairs(2)
    with pytest.raises(InputError, match="run `cadsearch render` first"):
        prepare_extra_chairs(tmp_path / "ws", 2, progress=False)
    assert not (tmp_path / "ws" / EXTRAS_DIR).exists()


def test_extra_chairs_refuse_ids_the_library_already_has(tiny_views):
    prepare_extra_chairs(tiny_views, 1, workers=1, progress=False)
    Library.open(tiny_views).generate_chairs(1, seed=9001)  # a user's library made with the extras' seed
    with pytest.raises(InputError, match="library has models with the training-only chairs' ids"):
        extra_chairs(tiny_views, 1)


def test_training_with_extra_chairs_adds_their_classes_after_the_librarys(tiny_views):
    options = TINY_TRAIN | {"num_threads": 2, "extra_chairs": 2}
    alone = train_model(tiny_views, "scratch", TINY_TRAIN | {"num_threads": 2}, progress=False)
    library_classes = torch.load(alone.checkpoint, weights_only=False)["model_ids"]
    s = train_model(tiny_views, "scratch", options, progress=False)
    assert not s.resumed  # another run than the one without extras
    ckpt = torch.load(s.checkpoint, weights_only=False)
    assert ckpt["model_ids"] == library_classes + extra_chair_ids(2)
    assert ckpt["config"]["extra_chairs"] == 2
    assert (tiny_views / EXTRAS_DIR / "views" / "views.csv").is_file()
    # Asked again: already trained, nothing rendered or trained anew.
    again = train_model(tiny_views, "scratch", options, progress=False)
    assert again.epochs_run == 0 and any("already trained" in n for n in again.notes)
    with pytest.raises(InputError, match="extra_chairs must be 0 or more"):
        train_model(tiny_views, "scratch", options | {"extra_chairs": -1}, progress=False)


def test_cli_train_takes_extra_chairs(tiny_views, capsys):
    from cadsearch.cli import main

    settings = [x for k, v in (TINY_TRAIN | {"num_threads": 2}).items() for x in ("--set", f"{k}={v}")]
    with pytest.raises(SystemExit) as stop:
        main(["--workspace", str(tiny_views), "train", "scratch", "--extra-chairs", "1", *settings])
    assert stop.value.code in (0, None), capsys.readouterr().err
    ckpt = torch.load(tiny_views / "checkpoints" / "scratch" / "best.pt", weights_only=False)
    assert ckpt["model_ids"][-1] == extra_chair_ids(1)[0] and ckpt["config"]["extra_chairs"] == 1
    with pytest.raises(SystemExit) as stop:
        main(["--workspace", str(tiny_views), "train", "scratch", "--extra-chairs", "-1"])
    assert stop.value.code == 2 and "Traceback" not in capsys.readouterr().err


def test_a_network_trained_with_extra_chairs_indexes_and_answers_the_library_only(tiny_views):
    from cadsearch.index import build_index
    from cadsearch.search import Searcher

    train_model(tiny_views, "scratch", TINY_TRAIN | {"num_threads": 2, "extra_chairs": 2}, progress=False)
    build_index(tiny_views, "scratch", progress=False)
    searcher = Searcher.from_workspace(tiny_views, "scratch", refine_top=0)
    library = {m.model_id for m in Library.open(tiny_views).list()}
    assert set(searcher.model_ids) == library  # the index holds the library's views only
    rgb, _, _ = load_view(tiny_views, read_view_table(tiny_views)[0])
    answered = {m.model_id for m in searcher.search(rgb, k=10).results}
    assert answered and answered <= library
