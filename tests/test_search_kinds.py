"""The kind prior (:mod:`cadsearch.search.kinds`): category profiles from the library's renders, their file, and how
the search's category vote weighs them."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cadsearch.index import build_index, load_index
from cadsearch.library import Library
from cadsearch.models.imagenet import IMAGENET_CLASSES, ImageNetClassifier
from cadsearch.render.job import read_view_table
from cadsearch.search import Searcher
from cadsearch.search.kinds import (
    KIND_PROFILES_FILE,
    KindProfiles,
    build_kind_profiles,
    load_kind_profiles,
    load_or_build_kind_profiles,
)
from cadsearch.search.scoring import weigh_by_kind
from fakes import fake_for


class _ColourClassifier:
    """An "ImageNet" whose class is the square's mean red level // 4 (64 classes used of 1000), and that counts
    the squares it was shown."""

    def __init__(self, fixed: np.ndarray | None = None) -> None:
        self.seen = 0
        self.fixed = fixed

    def probabilities(self, images, frames=None) -> np.ndarray:
        self.seen += len(images)
        out = np.zeros((len(images), IMAGENET_CLASSES), np.float32)
        if self.fixed is not None:
            return out + self.fixed
        for i, im in enumerate(images):
            out[i, int(im[..., 0].mean()) // 4] = 1.0
        return out


def _set_category(ws: Path, model_id: str, category: str) -> None:
    with sqlite3.connect(ws / "catalog.sqlite") as conn:
        conn.execute("UPDATE models SET category = ? WHERE model_id = ?", (category, model_id))


def test_weigh_by_kind_reorders_the_vote_and_never_empties_it() -> None:
    votes = {0: 0.6, 1: 0.4}
    kind = np.array([0.2, 0.8])
    weighted = weigh_by_kind(votes, kind, 3.0)
    assert max(weighted, key=weighted.get) == 1  # 0.6·0.008 < 0.4·0.512
    assert max(weigh_by_kind(votes, kind, 0.5), key=votes.get) == 0  # a weak prior leaves a clear vote alone
    assert weigh_by_kind(votes, kind, 0.0) == votes and weigh_by_kind(votes, None, 3.0) == votes
    assert weigh_by_kind(votes, np.zeros(2), 3.0) == votes  # ruling out everything found: the vote stands
    assert weigh_by_kind({}, kind, 3.0) == {}


def test_posterior_is_normalised_and_follows_the_profiles() -> None:
    profiles = np.zeros((2, IMAGENET_CLASSES), np.float32)
    profiles[0, 10], profiles[0, 11] = 0.8, 0.2  # "chairs" excite class 10
    profiles[1, 20] = 1.0  # "cups" excite class 20
    kinds = KindProfiles(("chair", "cup"), profiles, "k")
    p = np.zeros((3, IMAGENET_CLASSES))
    p[0, 10], p[1, 20], p[2, 500] = 1.0, 1.0, 1.0  # a chair, a cup, something neither excites
    post = kinds.posterior(p)
    np.testing.assert_allclose(post.sum(axis=1), 1.0)
    assert post[0, 0] == 1.0 and post[1, 1] == 1.0
    np.testing.assert_allclose(post[2], [0.5, 0.5])  # no evidence: uniform


def test_a_profile_of_few_models_is_shrunk_toward_the_mean() -> None:
    profiles = np.zeros((2, IMAGENET_CLASSES), np.float32)
    profiles[0, 10:20] = 0.1  # 1000 chairs: spread over ten classes
    profiles[1, 20] = 1.0  # one toilet: all on one
    many_and_one = KindProfiles(("chair", "toilet"), profiles, "k", np.array([1000, 1]))
    as_is = KindProfiles(("chair", "toilet"), profiles, "k")  # counts unknown: no shrinkage
    shrunk = many_and_one.shrunk
    np.testing.assert_allclose(shrunk.sum(axis=1), 1.0)
    np.testing.assert_allclose(shrunk[0], profiles[0], atol=1e-3)  # many models: as they are
    assert abs(shrunk[1, 20] - (1 + 2 * 0.5) / 3) < 1e-9  # (n P + s P̄) / (n + s), s = 2
    np.testing.assert_allclose(as_is.shrunk, profiles)
    p = np.zeros((1, IMAGENET_CLASSES))
    p[0, 10], p[0, 20] = 0.5, 0.1  # much of one chair class, a little of the toilet's only class
    assert many_and_one.posterior(p)[0, 1] < as_is.posterior(p)[0, 1]  # the toilet's quirk counts less


def test_profiles_are_made_from_the_renders_kept_and_made_again_when_the_library_changes(search_ws: Path) -> None:
    rows = read_view_table(search_ws)
    models = sorted({r.model_id for r in rows})
    clf = _ColourClassifier()
    assert load_or_build_kind_profiles(search_ws, clf) is None and clf.seen == 0  # one category: no vote to weigh
    assert not (search_ws / "index" / KIND_PROFILES_FILE).exists()
    _set_category(search_ws, models[0], "cup")
    made = load_or_build_kind_profiles(search_ws, clf)
    assert made is not None and made.categories == ("chair", "cup") and clf.seen == len(rows)  # 6 views ≤ 8 a model
    np.testing.assert_allclose(made.profiles.sum(axis=1), 1.0, rtol=1e-5)
    assert made.models.tolist() == [len(models) - 1, 1]
    direct = build_kind_profiles(search_ws, rows, {m: ("cup" if m == models[0] else "chair") for m in models}, clf)
    np.testing.assert_allclose(direct.profiles, made.profiles)
    read = load_kind_profiles(search_ws / "index")
    assert read.key == made.key and read.models.tolist() == made.models.tolist()
    seen = clf.seen
    assert load_or_build_kind_profiles(search_ws, clf).key == made.key and clf.seen == seen  # read, not made again
    _set_category(search_ws, models[1], "vase")
    again = load_or_build_kind_profiles(search_ws, clf)
    assert again.categories == ("chair", "cup", "vase") and again.key != made.key and clf.seen == seen + len(rows)
    (search_ws / "index" / KIND_PROFILES_FILE).write_bytes(b"not an npz")  # damaged: made again
    assert load_or_build_kind_profiles(search_ws, clf).key == again.key and clf.seen == seen + 2 * len(rows)
    for m in models:
        _set_category(search_ws, m, "chair")
    assert load_or_build_kind_profiles(search_ws, clf) is None
    assert not (search_ws / "index" / KIND_PROFILES_FILE).exists()  # stale profiles removed


def test_the_kind_prior_reorders_the_categories_of_the_search(search_ws: Path) -> None:
    rows = read_view_table(search_ws)
    models = sorted({r.model_id for r in rows})
    _set_category(search_ws, models[0], "cup")
    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    index, library = load_index(search_ws, "scratch"), Library.open(search_ws)
    profiles = np.zeros((2, IMAGENET_CLASSES), np.float32)
    profiles[0, 1], profiles[1, 2] = 1.0, 1.0  # chairs excite class 1, cups class 2
    kinds = KindProfiles(("chair", "cup"), profiles, "k")
    says_cup = np.zeros(IMAGENET_CLASSES, np.float32)
    says_cup[1], says_cup[2] = 0.1, 0.9  # the classifier, on any square: mostly a cup
    clf = _ColourClassifier(fixed=says_cup)
    row = next(r for r in rows if r.model_id == models[1])  # a view of a chair
    image = np.asarray(Image.open(search_ws / row.path).convert("RGB"))

    def top(**options) -> tuple[str, float | None]:
        s = Searcher(fake, index, library, refine_top=0, vote_crops=0, kinds=kinds, kind_classifier=clf, **options)
        result = s.search(image, k=3)
        return result.results[0].category, result.category_share

    (plain, plain_share), (weighted, weighted_share) = top(kind_prior=0), top(kind_prior=3)
    assert plain == "chair" and weighted == "chair"  # the view's own model: a prior of 9:1 does not overturn it
    assert weighted_share < plain_share  # but the vote is less sure
    assert top(kind_prior=60)[0] == "cup"  # a prior strong enough puts the cup first
    seen = clf.seen
    assert top(kind_prior=3, category_vote=False)[0] == "chair" and clf.seen == seen  # no vote: not asked
    one_kind = Searcher(fake, index, None, refine_top=0, kinds=kinds, kind_classifier=clf)  # no categories known
    one_kind.search(image, k=1)
    assert clf.seen == seen
    with pytest.raises(Exception, match="kind_prior"):
        Searcher(fake, index, library, kind_prior=-1)


def test_the_imagenet_classifier_says_what_a_photo_like_square_is(tmp_path: Path) -> None:
    """The real network, eager and through its ONNX export (written atomically, then reused): the same answer; a
    photo's frame is cut out as the networks cut it."""
    from cadsearch.framing import Frame, frame_image

    rng = np.random.default_rng(0)
    squares = rng.integers(0, 256, (2, 224, 224, 3), dtype=np.uint8)
    eager = ImageNetClassifier("lite0").probabilities(squares)
    assert eager.shape == (2, IMAGENET_CLASSES)
    np.testing.assert_allclose(eager.sum(axis=1), 1.0, rtol=1e-4)
    onnx = ImageNetClassifier("lite0", tmp_path / "net.onnx")
    np.testing.assert_allclose(onnx.probabilities(squares), eager, atol=1e-4)
    assert (tmp_path / "net.onnx").is_file() and not list(tmp_path.glob("*.tmp*"))
    photo = rng.integers(0, 256, (300, 400, 3), dtype=np.uint8)
    frame = Frame(50.0, 20.0, 200.0)
    framed = onnx.probabilities([photo], [frame])
    np.testing.assert_allclose(framed, onnx.probabilities([frame_image(photo, 224, frame)]), atol=1e-5)
    assert onnx.probabilities([]).shape == (0, IMAGENET_CLASSES)


def test_a_damaged_view_is_left_out_of_the_profiles(search_ws: Path) -> None:
    rows = read_view_table(search_ws)
    models = sorted({r.model_id for r in rows})
    category_of = {m: ("cup" if m == models[0] else "chair") for m in models}
    (search_ws / rows[0].path).write_bytes(b"not a png")
    clf = _ColourClassifier()
    made = build_kind_profiles(search_ws, rows, category_of, clf)
    assert made is not None and made.categories == ("chair", "cup") and clf.seen == len(rows) - 1
    np.testing.assert_allclose(made.profiles.sum(axis=1), 1.0, rtol=1e-5)
