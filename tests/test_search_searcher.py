"""``Searcher``: ranking by best view, calibrated scores, pose of the best views, JSON format, thread safety."""

from __future__ import annotations

import math
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cadsearch.errors import InputError
from cadsearch.index import build_index, load_index
from cadsearch.index.view_maps import load_view_maps
from cadsearch.library import Library
from cadsearch.render.cameras import pose_error_deg
from cadsearch.render.job import read_view_table
from cadsearch.search import ModelMatch, Searcher, SearchResult
from cadsearch.search.pose import PoseConfig, combine_pose
from cadsearch.search.scoring import (
    CalibrationRecord,
    CategoryRecord,
    category_first,
    category_votes,
    fit_category_temperature,
    fit_temperature,
    neighbour_floor,
    rank_models,
    rerank_with_mirror,
    vote_share,
)
from fakes import FakePredictor, ScoredLocaliser, fake_for, hash_vector, image_hash

DESIGN_RESULT_KEYS = ["rank", "model_id", "name", "category", "score", "match", "polar_deg", "azimuth_deg", "roll_deg"]


@pytest.fixture(name="searcher")
def searcher_fixture(search_ws: Path) -> Searcher:
    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    return Searcher(fake, load_index(search_ws, "scratch"), Library.open(search_ws), refine_top=0)


def test_a_views_own_image_finds_its_model_and_pose(searcher: Searcher, search_ws: Path) -> None:
    names = {m.model_id: m for m in searcher.library.list()}
    for row in read_view_table(search_ws)[::4]:
        image = np.asarray(Image.open(search_ws / row.path).convert("RGB"))
        res = searcher.search(image, k=3)
        top = res.results[0]
        assert top.model_id == row.model_id and top.best_view_id == row.view_id
        assert top.name == names[row.model_id].name and top.category == names[row.model_id].category
        assert pose_error_deg(top.polar_deg, top.azimuth_deg, row.polar_deg, row.azimuth_deg) < 1.0
        assert [m.rank for m in res.results] == list(range(1, len(res.results) + 1))
        scores = [m.score for m in res.results]
        assert all(0.0 <= s <= 1.0 for s in scores) and scores == sorted(scores, reverse=True)
        assert sum(scores) <= 1.0 + 1e-6
        assert {"embed", "search", "pose", "total"} <= set(res.timing_ms)


def test_to_json_has_exactly_the_design_keys(searcher: Searcher, search_ws: Path) -> None:
    image = np.asarray(Image.open(search_ws / read_view_table(search_ws)[0].path).convert("RGB"))
    out = searcher.search(image, k=2).to_json("photo.jpg")
    assert list(out) == ["query", "results", "exact_match", "objects", "timing_ms"] and out["query"] == "photo.jpg"
    assert isinstance(out["exact_match"], bool)
    # without a detector: one object, the whole image, no detection score, the same results and verdict
    h, w = image.shape[:2]
    whole = {
        "box": [0.0, 0.0, float(w), float(h)],
        "detection_score": None,
        "exact_match": out["exact_match"],
        "results": out["results"],
    }
    assert out["objects"] == [whole]
    assert list(out["timing_ms"]) == ["total"]
    assert len(out["results"]) == 2
    for r in out["results"]:
        assert list(r) == DESIGN_RESULT_KEYS
        assert 0.0 <= r["score"] <= 1.0 and 0.0 <= r["polar_deg"] <= 180.0 and 0.0 <= r["azimuth_deg"] < 360.0
        assert 0.0 <= r["match"] <= 1.0 and r["match"] == round(r["match"], 4)
        assert r["roll_deg"] == 0.0  # refine_top=0: not registered, roll 0


def test_concurrent_searches_agree(searcher: Searcher, search_ws: Path) -> None:
    images = [np.asarray(Image.open(search_ws / r.path).convert("RGB")) for r in read_view_table(search_ws)]
    serial = [searcher.search(im, k=3).results for im in images]
    with ThreadPoolExecutor(4) as pool:
        parallel = list(pool.map(lambda im: searcher.search(im, k=3).results, images))
    assert serial == parallel


def test_bad_input_to_search(searcher: Searcher) -> None:
    with pytest.raises(InputError):
        searcher.search(np.zeros((8, 8), np.uint8))
    with pytest.raises(InputError):
        searcher.search(np.zeros((8, 8, 3), np.uint8), k=0)


def test_from_workspace_says_what_to_run(search_ws: Path) -> None:
    with pytest.raises(InputError, match="cadsearch train scratch"):
        Searcher.from_workspace(search_ws)
    ckpt = search_ws / "checkpoints" / "scratch" / "best.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"not really a checkpoint")
    with pytest.raises(InputError, match="cadsearch index"):
        Searcher.from_workspace(search_ws, model="scratch")


def test_rank_models_groups_by_best_view_and_counts_unseen_models() -> None:
    model_index = np.array([0, 0, 1, 1, 2])
    sims = np.array([0.5, 0.9, 0.7, 0.2, 0.1])
    ranked = rank_models(sims, np.arange(5), model_index, n_models=3, temperature=0.1)
    assert list(ranked.model_idx) == [0, 1, 2] and np.allclose(ranked.best_sim, [0.9, 0.7, 0.1])
    assert np.isclose(ranked.score.sum(), 1.0) and ranked.score[0] > ranked.score[1] > ranked.score[2]
    # two more models in the library, not retrieved: they take some probability mass
    wider = rank_models(sims, np.arange(5), model_index, n_models=5, temperature=0.1)
    assert wider.score.sum() < 1.0 and wider.score[0] < ranked.score[0]
    # missing results (-1) are ignored
    part = rank_models(np.array([0.9, -1.0]), np.array([2, -1]), model_index, 3, 0.1)
    assert list(part.model_idx) == [1]


def test_the_mirror_image_reranks_the_querys_models() -> None:
    model_index = np.arange(4)
    # The query alone: model 0 a hair ahead of model 1; its mirror image finds model 1 clearly, model 0 not at all.
    sims, ids = np.array([0.80, 0.79, 0.60, 0.50]), np.arange(4)
    ranked = rank_models(sims, ids, model_index, n_models=5, temperature=0.05)
    mirror_sims, mirror_ids = np.array([0.85, 0.62, 0.55]), np.array([1, 2, 3])
    mirrored = rank_models(mirror_sims, mirror_ids, model_index, n_models=5, temperature=0.05)
    floor, mirror_floor = neighbour_floor(sims, ids), neighbour_floor(mirror_sims, mirror_ids)
    assert (floor, mirror_floor) == (0.5, 0.55)
    fused = rerank_with_mirror(ranked, floor, mirrored, mirror_floor, 5, 0.05, weight=0.5)
    assert list(fused.model_idx) == [1, 0, 2, 3]
    # (s + w s') / (1 + w); model 0 was not found by the mirror: the mirror's floor stands in
    assert np.allclose(fused.best_sim, [(0.79 + 0.5 * 0.85) / 1.5, (0.80 + 0.5 * 0.55) / 1.5,
                                        (0.60 + 0.5 * 0.62) / 1.5, (0.50 + 0.5 * 0.55) / 1.5])  # fmt: skip
    assert [list(v) for v in fused.views] == [[1], [0], [2], [3]]  # each model keeps the query's own views
    assert np.all(np.diff(fused.score) <= 0) and fused.score.sum() < 1.0  # one library model was not found
    # Weight 0 is the query alone; a mirror that agrees keeps the order and sharpens nothing away.
    assert rerank_with_mirror(ranked, floor, mirrored, mirror_floor, 5, 0.05, weight=0.0) is ranked
    same = rerank_with_mirror(ranked, floor, ranked, floor, 5, 0.05)
    assert list(same.model_idx) == list(ranked.model_idx) and np.allclose(same.score, ranked.score)
    # A model only the mirror found is not added: the result's views and pose come from the query's neighbours.
    only_mirror = rank_models(np.array([0.9]), np.array([4]), np.arange(5), 5, 0.05)
    assert 4 not in rerank_with_mirror(ranked, floor, only_mirror, 0.9, 5, 0.05).model_idx


def test_the_search_ranks_with_the_mirror_image_only_when_asked(searcher: Searcher, search_ws: Path) -> None:
    table = searcher.index.table
    first = np.flatnonzero(table.model_id.astype(str) == searcher.model_ids[0])[0]
    second = np.flatnonzero(table.model_id.astype(str) == searcher.model_ids[1])[0]
    a, b = searcher.index.vectors[first], searcher.index.vectors[second]
    query = a + 0.9 * b  # nearer model 0's view, but near model 1's too
    query /= np.linalg.norm(query)
    plain = searcher.with_options(category_vote=False, mirror_rank=0)
    assert plain.search_embedding(query, None, k=2, mirror_embedding=b).results[0].model_id == searcher.model_ids[0]
    mirrored = searcher.with_options(category_vote=False)
    top = mirrored.search_embedding(query, None, k=2, mirror_embedding=b).results[0]
    assert top.model_id == searcher.model_ids[1]
    assert mirrored.search_embedding(query, None, k=2).results[0].model_id == searcher.model_ids[0]  # no mirror
    with pytest.raises(InputError, match="mirror_rank"):
        searcher.with_options(mirror_rank=-1)


def test_category_vote_puts_the_category_with_most_evidence_first() -> None:
    # One cup view lies nearest, but four chairs together hold more of the probability.
    model_index = np.array([0, 1, 2, 3, 4])
    sims = np.array([0.80, 0.78, 0.78, 0.77, 0.77])
    ranked = rank_models(sims, np.arange(5), model_index, n_models=5, temperature=0.05)
    assert ranked.model_idx[0] == 0
    category_of = np.array([1, 0, 0, 0, 0])  # model 0 is the cup (category 1), the others chairs (category 0)
    voted, winner = category_first(ranked, category_of)
    assert winner == 0 and list(voted.model_idx) == [1, 2, 3, 4, 0]
    assert np.allclose(sorted(voted.score), sorted(ranked.score))  # scores stay each model's own
    # A cup that is clearly nearest keeps the lead: its category holds most of the mass.
    sharp = rank_models(np.array([0.95, 0.6, 0.6, 0.6, 0.6]), np.arange(5), model_index, 5, 0.05)
    assert category_first(sharp, category_of)[0].model_idx[0] == 0
    # Unknown categories never vote.
    assert category_first(ranked, np.full(5, -1))[1] == -1


def test_category_vote_with_the_mirror_image_wants_a_category_found_in_both() -> None:
    model_index = np.arange(4)
    category_of = np.array([1, 2, 0, 0])  # a cup (1), a piano (2), two chairs (0)
    # The photo: the cup is clearly nearest, the chairs a little behind.
    photo = rank_models(np.array([0.95, 0.5, 0.7, 0.7]), np.arange(4), model_index, 4, 0.05)
    assert category_first(photo, category_of)[1] == 1
    # Its mirror image: the piano is nearest, the chairs again a little behind, the cup far away.
    mirror = rank_models(np.array([0.3, 0.95, 0.7, 0.7]), np.arange(4), model_index, 4, 0.05)
    voted, winner = category_first(photo, category_of, mirror)
    assert winner == 0 and list(voted.model_idx[:2]) == [2, 3]
    # A mirror that agrees changes nothing; one that found nothing falls back to the photo's own vote.
    assert category_first(photo, category_of, photo)[1] == 1
    nothing = rank_models(np.array([-1.0]), np.array([-1]), model_index, 4, 0.05)
    assert category_first(photo, category_of, nothing)[1] == 1


def test_the_votes_share_says_how_sure_the_vote_is() -> None:
    model_index = np.arange(4)
    category_of = np.array([1, 2, 0, 0])
    photo = rank_models(np.array([0.95, 0.5, 0.7, 0.7]), np.arange(4), model_index, 4, 0.05)
    mirror = rank_models(np.array([0.3, 0.95, 0.7, 0.7]), np.arange(4), model_index, 4, 0.05)
    alone, both = category_votes(photo, category_of), category_votes(photo, category_of, mirror)
    assert max(alone, key=alone.get) == category_first(photo, category_of)[1] == 1
    assert max(both, key=both.get) == category_first(photo, category_of, mirror)[1] == 0
    assert 0.5 < vote_share(alone) < 1.0 and vote_share(both) < vote_share(alone)  # the mirror disagrees: less sure
    one_kind = category_votes(photo, np.zeros(4, int))
    assert vote_share(one_kind) == 1.0 and vote_share({}) == 1.0


def test_a_softer_category_temperature_lets_many_near_models_outvote_one_nearest() -> None:
    # A cup 0.03 nearer than four chairs: at the sharp score temperature the cup's one model holds most of the mass,
    # at a vote temperature three times as soft the four chairs together win; the scores stay each model's own.
    model_index = np.arange(5)
    category_of = np.array([1, 0, 0, 0, 0])
    ranked = rank_models(np.array([0.80, 0.77, 0.77, 0.77, 0.77]), np.arange(5), model_index, 5, 0.01)
    assert category_first(ranked, category_of)[1] == 1
    assert category_first(ranked, category_of, temperature=0.01)[1] == 1  # the same vote, by best_sim
    voted, winner = category_first(ranked, category_of, temperature=0.03)
    assert winner == 0 and voted.model_idx[0] == 1 and np.allclose(sorted(voted.score), sorted(ranked.score))
    # with the mirror image too, both votes at the same temperature
    mirror = rank_models(np.array([0.79, 0.77, 0.77, 0.76, 0.76]), np.arange(5), model_index, 5, 0.01)
    assert category_first(ranked, category_of, mirror, temperature=0.01)[1] == 1
    assert category_first(ranked, category_of, mirror, temperature=0.03)[1] == 0


def test_category_temperature_fit_recovers_the_temperature_that_drew_the_categories() -> None:
    rng = np.random.default_rng(1)
    true_t = 0.04
    records = []
    for _ in range(1500):
        best = rng.uniform(0.5, 0.8, 12)
        category = rng.integers(0, 3, 12)
        w = np.exp((best - best.max()) / true_t)
        p = np.bincount(category, weights=w, minlength=3)
        records.append(CategoryRecord(best, category, int(rng.choice(3, p=p / p.sum()))))
    fit = fit_category_temperature(records)
    assert fit["temperature"] == pytest.approx(true_t, rel=0.25) and fit["n"] == 1500
    assert 0.0 <= fit["top1"] <= 1.0
    assert fit_category_temperature([]) is None


def test_the_vote_asks_every_view_of_the_query_it_is_given(searcher: Searcher, search_ws: Path, monkeypatch) -> None:
    import cadsearch.search.searcher as searcher_module

    # Three views: the photo sees a cup, its mirror and a shifted crop see chairs more than the cup.
    category_of = np.array([1, 0, 0])
    photo = rank_models(np.array([0.95, 0.7, 0.7]), np.arange(3), np.arange(3), 3, 0.05)
    chairs = rank_models(np.array([0.7, 0.8, 0.8]), np.arange(3), np.arange(3), 3, 0.05)
    assert category_first(photo, category_of, [chairs])[1] == 1  # one chair-minded view: the cup still wins
    assert category_first(photo, category_of, [chairs, chairs])[1] == 0
    # The searcher runs the network on vote_crops shifted squares and asks the vote about each (the fake predictor
    # has no mirror images, so the photo's views are its crops only).
    views = []
    real = searcher_module.category_votes
    monkeypatch.setattr(
        searcher_module, "category_votes", lambda r, c, others, t: views.append(len(others)) or real(r, c, others, t)
    )  # noqa: E501
    image = np.asarray(Image.open(search_ws / read_view_table(search_ws)[0].path).convert("RGB"))
    for crops, extra_images in ((0, 0), (2, 2), (4, 4)):
        s = Searcher(
            searcher.predictor, searcher.index, searcher.library, refine_top=0, vote_crops=crops, vote_crops_below=1.0
        )
        before = s.predictor.images
        s.search(image)
        assert views[-1] == crops and s.predictor.images - before == 1 + extra_images
    off = Searcher(searcher.predictor, searcher.index, searcher.library, category_vote=False, vote_crops=4)
    before = off.predictor.images
    assert off.search(image).category_share is None
    assert off.predictor.images - before == 1  # no vote, no crops
    with pytest.raises(InputError, match="vote_crops"):
        Searcher(searcher.predictor, searcher.index, vote_crops=3)
    with pytest.raises(InputError, match="vote_crops_below"):
        Searcher(searcher.predictor, searcher.index, vote_crops_below=1.5)


def test_the_vote_asks_more_views_only_when_it_is_unsure(searcher: Searcher, search_ws: Path) -> None:
    image = np.asarray(Image.open(search_ws / read_view_table(search_ws)[0].path).convert("RGB"))
    plain = Searcher(searcher.predictor, searcher.index, searcher.library, refine_top=0, vote_crops=0)
    two_kinds = np.arange(len(plain.model_ids)) % 2  # the test library's models split into two categories
    plain._category_of = two_kinds
    share = plain.search(image).category_share
    assert share is not None and 0.5 <= share < 1.0
    for below, asked in ((share, False), (share / 2, False), ((share + 1.0) / 2, True), (1.0, True)):
        s = plain.with_options(vote_crops=4, vote_crops_below=below)
        s._category_of = two_kinds
        before = s.predictor.images
        s.search(image)
        assert s.predictor.images - before == (5 if asked else 1), below


def test_temperature_fit_is_calibrated_on_synthetic_data() -> None:
    rng = np.random.default_rng(0)
    true_t = 0.05
    records = []
    for _ in range(800):
        best = rng.uniform(0.5, 0.8, 6)
        logits = best / true_t
        p = np.exp(logits - logits.max())
        p /= p.sum()
        records.append(CalibrationRecord(best, int(rng.choice(6, p=p)), 0.4, 0))
    fit = fit_temperature(records)
    assert fit["temperature"] == pytest.approx(true_t, rel=0.25)
    assert fit["ece"] < 0.06 and 0.0 <= fit["top1"] <= 1.0


def test_combine_pose_takes_the_mode_not_the_mean() -> None:
    # three near-identical front views and one back view with a similar score: the answer is the front
    polar = np.array([80.0, 82.0, 78.0, 80.0])
    azimuth = np.array([10.0, 12.0, 8.0, 190.0])
    sims = np.array([0.90, 0.89, 0.89, 0.90])
    p, a = combine_pose(polar, azimuth, sims, head=None)
    assert pose_error_deg(p, a, 80.0, 10.0) < 3.0
    # the pose head breaks a tie between two modes
    p, a = combine_pose(np.array([80.0, 80.0]), np.array([10.0, 190.0]), np.array([0.9, 0.9]), head=(80.0, 185.0))
    assert pose_error_deg(p, a, 80.0, 187.5) < 5.0
    # views only
    p, a = combine_pose(np.array([60.0]), np.array([300.0]), np.array([0.9]), (80.0, 0.0), PoseConfig(head_weight=0))
    assert (round(p), round(a)) == (60, 300)


def test_the_pose_head_is_trusted_only_for_the_categories_it_trained_on(search_ws: Path) -> None:
    """A model of a category the network never trained on takes its pose from its views more than from the head."""
    fake = FakePredictor(sorted({r.model_id for r in read_view_table(search_ws)}))  # its head always says (90, 0)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    index, library = load_index(search_ws, "scratch"), Library.open(search_ws)
    row = next(r for r in read_view_table(search_ws) if pose_error_deg(r.polar_deg, r.azimuth_deg, 90.0, 0.0) > 40)
    image = np.asarray(Image.open(search_ws / row.path).convert("RGB"))
    pose = PoseConfig(unknown_head_weight=0.5)
    answers = {}
    for trained in (["chair"], ["cup"], None):  # None: an older checkpoint, the catalog says (chairs)
        fake.class_categories = None if trained is None else trained * len(fake.model_ids)
        top = Searcher(fake, index, library, refine_top=0, pose=pose).search(image, k=1).results[0]
        answers[str(trained)] = pose_error_deg(top.polar_deg, top.azimuth_deg, row.polar_deg, row.azimuth_deg)
    assert answers["['chair']"] > 40 and answers["None"] > 40  # the head's (wrong) pose
    assert answers["['cup']"] < 1.0  # chairs are new to a network of cups: the view's own camera


class _MapFake(FakePredictor):
    """A network that knows which model a view shows but not from where (every view of a model embeds alike), whose
    pose head always says (90, 0), and whose view maps are the image itself, downsampled: only they tell the side."""

    has_view_maps = True

    def __init__(self, ws: Path) -> None:
        rows = read_view_table(ws)
        super().__init__(sorted({r.model_id for r in rows}))
        self.model_of = {image_hash(_rgb(ws / r.path)): r.model_id for r in rows}
        self.map_calls = 0

    def view_maps(self, images, batch_size: int = 64) -> np.ndarray:
        self.map_calls += len(images)
        return self._maps(images)

    @staticmethod
    def _maps(images) -> np.ndarray:
        maps = np.stack([np.asarray(Image.fromarray(im).resize((12, 12)), np.float32).ravel() for im in images])
        maps -= maps.mean(axis=1, keepdims=True)
        return maps / np.linalg.norm(maps, axis=1, keepdims=True)

    def predict(self, images, batch_size: int = 64, frames=None):
        images = list(images)
        pred = super().predict(images, batch_size, frames)
        rng = np.random.default_rng(0)
        for i, im in enumerate(images):  # the model's vector, a little noise: the best view is any of its views
            model = self.model_of.get(image_hash(im), "?")
            v = hash_vector(np.frombuffer(model.encode(), np.uint8), self.dim) + 0.01 * rng.standard_normal(self.dim)
            pred.embedding[i] = v / np.linalg.norm(v)
        pred.view_map = self._maps(images)
        return pred


def _rgb(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def test_view_maps_give_the_pose_of_a_model_of_a_kind_the_network_never_trained_on(search_ws: Path) -> None:
    """Models of a kind the network never trained on take their pose from the views whose maps are nearest the
    query's; models of its own kinds keep the pose head's, and without maps the old votes stand."""
    fake = _MapFake(search_ws)
    rows = read_view_table(search_ws)
    fake.class_categories = ["cup"] * len(fake.model_ids)  # a network of cups: the chairs are new to it
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    assert (search_ws / "index" / "scratch" / "view_maps.npz").is_file() and fake.map_calls == len(rows)
    index, library = load_index(search_ws, "scratch"), Library.open(search_ws)
    maps = load_view_maps(search_ws / "index" / "scratch", index.table, "A")
    assert maps is not None and len(maps) == len(rows)
    assert load_view_maps(search_ws / "index" / "scratch", index.table, "another network") is None

    def errors(searcher: Searcher, from_maps: bool = False) -> np.ndarray:
        out = []
        for row in rows[::3]:
            top = searcher.search(_rgb(search_ws / row.path), k=1).results[0]
            assert top.model_id == row.model_id
            assert not from_maps or top.best_view_id == row.view_id  # the view the pose came from
            out.append(pose_error_deg(top.polar_deg, top.azimuth_deg, row.polar_deg, row.azimuth_deg))
        return np.array(out)

    with_maps = errors(Searcher(fake, index, library, refine_top=0, view_maps=maps), from_maps=True)
    without = errors(Searcher(fake, index, library, refine_top=0))
    assert with_maps.max() < 1.0  # the view itself is the nearest map
    assert np.mean(without > 20) > 0.5  # the embedding cannot tell the views apart, the head is wrong
    fake.class_categories = ["chair"] * len(fake.model_ids)  # its own kind: the head, maps or not
    head = errors(Searcher(fake, index, library, refine_top=0, view_maps=maps))
    head_says = [pose_error_deg(90.0, 0.0, r.polar_deg, r.azimuth_deg) for r in rows[::3]]
    np.testing.assert_allclose(head, head_says, atol=1.0)


def test_view_maps_are_kept_across_builds_and_only_for_kinds_the_network_never_trained_on(search_ws: Path) -> None:
    fake = _MapFake(search_ws)
    folder = search_ws / "index" / "scratch"
    fake.class_categories = ["chair"] * len(fake.model_ids)  # every model of its own kind: no maps
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    assert not (folder / "view_maps.npz").exists() and fake.map_calls == 0
    fake.class_categories = ["cup"] * len(fake.model_ids)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")  # index unchanged, maps made
    n = fake.map_calls
    assert n == len(read_view_table(search_ws)) and (folder / "view_maps.npz").is_file()
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    assert fake.map_calls == n  # nothing new: nothing made again
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="B")
    assert fake.map_calls == 2 * n  # another network: every map made again
    build_index(search_ws, "scratch", progress=False, predictor=fake_for(search_ws), fingerprint="C")
    assert not (folder / "view_maps.npz").exists()  # a network without view maps leaves none behind


def test_result_types_are_exported() -> None:
    m = ModelMatch(1, "a", "A", "chair", 0.5, 80.0, 10.0, "a/0000")
    assert SearchResult([m], {"total": 1.0}).to_json("q")["results"][0]["model_id"] == "a"


def test_auto_crop_frames_the_object_and_the_network_sees_that_frame(
    searcher: Searcher, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []
    predict = searcher.predictor.predict
    monkeypatch.setattr(
        searcher.predictor, "predict", lambda images, batch_size=64, frames=None: seen.append(frames) or predict(images)
    )
    photo = np.full((200, 300, 3), 245, np.uint8)  # a studio shot: small dark object on a plain backdrop
    photo[80:140, 50:90] = 30
    res = searcher.search(photo, k=1)
    assert res.frame is not None and seen[-1] == [res.frame]
    cx, cy = res.frame.centre
    assert abs(cx - 70) < 3 and abs(cy - 110) < 3 and 60 <= res.frame.side < 100  # the box plus a margin
    assert searcher.search(photo, k=1, crop="none").frame is None and seen[-1] == [None]
    with pytest.raises(InputError, match="crop"):
        searcher.search(photo, k=1, crop="lasso")


def test_unknown_crop_method_is_refused_when_the_searcher_is_made(search_ws: Path) -> None:
    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    with pytest.raises(InputError, match="unknown crop method 'lasso'"):
        Searcher(fake, load_index(search_ws, "scratch"), None, crop="lasso")


def test_registered_results_carry_roll_placement_and_fit(search_ws: Path) -> None:
    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    # refine_top=1: default; no second model registered to compare outlines (see test_the_outline_ranks_...)
    searcher = Searcher(fake, load_index(search_ws, "scratch"), Library.open(search_ws), outline_rank=1)
    row = read_view_table(search_ws)[0]
    image = np.asarray(Image.open(search_ws / row.path).convert("RGB"))  # a render on a plain backdrop
    result = searcher.search(image, k=2)
    top, second = result.results
    assert top.placement is not None and top.silhouette_iou is not None and top.silhouette_iou > 0.5
    assert second.placement is None and second.silhouette_iou is None  # only the top 1 is registered
    # the render square of a whole-image view lies on the image: centre near the middle, side near the image's
    h, w = image.shape[:2]
    assert abs(top.placement.cx - w / 2) < 0.15 * w and abs(top.placement.side / w - 1.0) < 0.2
    assert pose_error_deg(top.polar_deg, top.azimuth_deg, row.polar_deg, row.azimuth_deg) < 15.0
    out = result.to_json("view.png")["results"]
    assert set(out[0]) == {*DESIGN_RESULT_KEYS, "placement", "silhouette_iou"} and list(out[1]) == DESIGN_RESULT_KEYS
    assert set(out[0]["placement"]) == {"center", "side", "roll_deg"} and out[0]["roll_deg"] == round(top.roll_deg, 2)
    assert result.timing_ms["register"] > 0.0
    assert searcher.search(image, k=2, refine_top=0).results[0].placement is None


def test_a_mask_nothing_fits_leaves_the_result_unregistered(search_ws: Path, monkeypatch) -> None:
    import cadsearch.search.searcher as searcher_module

    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    searcher = Searcher(fake, load_index(search_ws, "scratch"), Library.open(search_ws))
    line = np.zeros((64, 64), np.float32)
    line[30:33, 4:60] = 1.0  # a thin bar: no chair's outline fits it (REGISTER_MIN_FIT)
    monkeypatch.setattr(searcher_module, "object_mask", lambda image, frame, localiser: (line, "detector"))
    image = np.asarray(Image.open(search_ws / read_view_table(search_ws)[0].path).convert("RGB"))
    top = searcher.search(image, k=1).results[0]
    assert top.placement is None and top.silhouette_iou is None and top.roll_deg == 0.0


class FixedFitRegistrar:
    """Stands in for :class:`~cadsearch.register.Registrar`: every model 'registered' with a given outline IoU, a
    placed model of a given ``size`` relative to the object's expected size (1.0: plausible) and a render square
    ``square`` times the searched square (default ``size``: the model fills the renders' mean share of it)."""

    def __init__(self, iou: float, size: float = 1.0, square: float | None = None) -> None:
        from cadsearch.register.appearance import AppearanceJudge

        self.iou, self.size, self.square = iou, size, size if square is None else square
        self.judge = AppearanceJudge()  # its config only: the stub renders nothing

    def refine(self, model_id, target, frame, polar_deg, azimuth_deg, alternatives=()):
        from cadsearch.framing import RENDER_FILL
        from cadsearch.register import Placement, Registration

        s = frame.side
        placement = Placement(frame.x0 + s / 2, frame.y0 + s / 2, self.square * s)
        extent = RENDER_FILL * self.size * s
        return Registration(polar_deg, azimuth_deg, 0.0, placement, self.iou, self.iou, 1, 1.0, extent)

    def check_look_alikes(self, model_id, image, frame, polar_deg, azimuth_deg, modes=()):
        return None  # no look-alike wins: the search's pose stands

    def compare_models(self, image, frame, candidates):
        return None  # nothing rendered: the ranking stands

    def check_outline_twin(self, model_id, image, target, frame, polar_deg, azimuth_deg, placement, fit,
                           min_agreement=-math.inf):  # fmt: skip
        return None  # no outline twin agrees better: the registration stands

    def check_other_starts(self, model_id, image, target, frame, polar_deg, azimuth_deg, placement, fit,
                           min_agreement=-math.inf):  # fmt: skip
        return None  # no other start fits better: the registration stands

    def check_far_starts(self, model_id, image, target, frame, polar_deg, azimuth_deg, min_fit,
                         min_agreement=-math.inf, accept=None, wide=True):  # fmt: skip
        return None  # no far start fits and agrees: the search's pose stands


def test_a_registered_result_gets_its_match_from_the_outline_fit(search_ws: Path) -> None:
    from cadsearch.search.matching import DEFAULT_MATCH_MODEL, OUTLINE_FEATURES, MatchModel

    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    # an outline model that listens to the outline only: match = σ(10 (iou − 0.6))
    outline = MatchModel((0.0, 0.0, 0.0, 0.0, 10.0), -6.0, (0.0,) * 5, (1.0,) * 5, OUTLINE_FEATURES)
    library = Library.open(search_ws)
    # the top model alone is registered (no second one to compare outlines with: test_the_outline_ranks_...)
    searcher = Searcher(fake, load_index(search_ws, "scratch"), library, outline_model=outline, outline_rank=1)
    image = np.asarray(Image.open(search_ws / read_view_table(search_ws)[0].path).convert("RGB"))  # plain backdrop
    plain = searcher.search(image, k=2, refine_top=0).results
    assert plain[0].match == pytest.approx(DEFAULT_MATCH_MODEL.predict(np.array(plain[0].match_features))[0])

    def top_two(iou: float, size: float = 1.0, square: float | None = None) -> list[ModelMatch]:
        searcher.registrar = FixedFitRegistrar(iou, size, square)
        return searcher.search(image, k=2).results

    good, poor, implausible = top_two(0.95), top_two(0.3), top_two(0.95, size=0.3)
    # a model seen end-on fills a small share of its render square: the square is large, the model is not
    end_on = top_two(0.95, square=1.7)
    assert end_on[0].placement is not None and end_on[0].silhouette_iou == 0.95
    # an outline larger than expected (a detection box around part of the object) is kept, and so is one a little
    # smaller (a box around more than the object); one twice too large is not
    larger, smaller, huge = top_two(0.95, size=1.8), top_two(0.95, size=0.65), top_two(0.95, size=2.2)
    assert larger[0].placement is not None and smaller[0].placement is not None and huge[0].placement is None
    assert good[0].match == pytest.approx(1 / (1 + np.exp(-(10 * 0.95 - 6.0))))
    assert good[0].placement is not None and good[0].silhouette_iou == 0.95
    # a poor fit is evidence against this model even though the registration itself is not kept
    assert poor[0].match == pytest.approx(1 / (1 + np.exp(-(10 * 0.3 - 6.0)))) and poor[0].placement is None
    # an implausible placement (shrunk onto a part) is no evidence: the view features' match, unregistered
    assert implausible[0].match == pytest.approx(plain[0].match) and implausible[0].placement is None
    # only the registered top result changes; the second keeps the view features' match
    assert good[1].match == poor[1].match == pytest.approx(plain[1].match)
    # without an outline model (an index calibrated before it existed), registration leaves match alone
    searcher.outline_model = None
    assert top_two(0.3)[0].match == pytest.approx(plain[0].match)


def _match(rank: int, model_id: str, category: str = "chair", fit: float | None = None) -> ModelMatch:
    """A result with a given outline fit (registered when ``fit`` is given) and score 0.9/rank."""
    from cadsearch.register import Placement

    placement = Placement(10.0, 10.0, 20.0) if fit is not None else None
    return ModelMatch(rank, model_id, model_id, category, score=0.9 / rank, polar_deg=60.0, azimuth_deg=30.0 * rank,
                      best_view_id=f"{model_id}/0000", placement=placement, silhouette_iou=fit)  # fmt: skip


def test_rank_by_outline_puts_a_clearly_better_fit_first() -> None:
    from dataclasses import replace

    from cadsearch.search.searcher import OUTLINE_RANK_BELOW, OUTLINE_RANK_MARGIN, rank_by_outline

    def order(results: list[ModelMatch], n: int = 2) -> list[str]:
        out = rank_by_outline(results, n)
        assert [m.rank for m in out] == list(range(1, len(results) + 1))  # ranks renumbered
        assert sorted(m.score for m in out) == sorted(m.score for m in results)  # scores unchanged
        return [m.model_id for m in out]

    margin = OUTLINE_RANK_MARGIN
    assert order([_match(1, "a", fit=0.6), _match(2, "b", fit=0.6 + margin + 0.01), _match(3, "c")]) == ["b", "a", "c"]
    assert order([_match(1, "a", fit=0.6), _match(2, "b", fit=0.6 + margin - 0.01)]) == ["a", "b"]  # not clearly
    assert order([_match(1, "a", fit=0.6), _match(2, "b", "table", fit=0.95)]) == ["a", "b"]  # another kind
    assert order([_match(1, "a"), _match(2, "b", fit=0.55)]) == ["b", "a"]  # the first's registration not kept
    assert order([_match(1, "a"), _match(2, "b")]) == ["a", "b"]  # nothing registered
    assert order([_match(1, "a", fit=0.6), _match(2, "b", fit=0.95)], n=1) == ["a", "b"]  # off
    sure = replace(_match(1, "a", fit=0.6), score=OUTLINE_RANK_BELOW)  # the ranking is sure of it
    assert order([sure, _match(2, "b", fit=0.95)]) == ["a", "b"]
    # among the first n, the best fit wins; beyond them, none counts
    three = [_match(1, "a", fit=0.5), _match(2, "b", fit=0.7), _match(3, "c", fit=0.9), _match(4, "d", fit=0.99)]
    assert order(three, n=3) == ["c", "a", "b", "d"] and order(three, n=2) == ["b", "a", "c", "d"]
    assert rank_by_outline([], 2) == [] and order([_match(1, "a", fit=0.1)]) == ["a"]


class PerModelFitRegistrar(FixedFitRegistrar):
    """A registrar whose outline fit depends on the model (``fits``, by model id); it records the models it
    registered."""

    def __init__(self, fits: dict[str, float]) -> None:
        super().__init__(0.0)
        self.fits = fits
        self.registered: list[str] = []

    def refine(self, model_id, target, frame, polar_deg, azimuth_deg, alternatives=()):
        self.registered.append(model_id)
        self.iou = self.fits[model_id]
        return super().refine(model_id, target, frame, polar_deg, azimuth_deg, alternatives)


def test_the_outline_ranks_the_two_best_models(search_ws: Path) -> None:
    """With registration on, the second model is registered too when the first's outline leaves it room to win,
    and goes first when it fits clearly better; it keeps its registered pose and placement."""
    from cadsearch.search.searcher import OUTLINE_RANK_BELOW, OUTLINE_RANK_MARGIN, OUTLINE_RANK_MODELS

    assert OUTLINE_RANK_MODELS == 2
    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    index, library = load_index(search_ws, "scratch"), Library.open(search_ws)
    # a soft score temperature: the ranking is not sure of its first model (else the outline is not asked)
    searcher = Searcher(fake, index, library, temperature=1.0)
    image = np.asarray(Image.open(search_ws / read_view_table(search_ws)[0].path).convert("RGB"))  # plain backdrop
    plain = searcher.search(image, k=3, refine_top=0).results
    first, second, third = (m.model_id for m in plain)
    assert plain[0].score < OUTLINE_RANK_BELOW

    def search(fits: tuple[float, float, float], k: int = 3, **options) -> tuple[list[ModelMatch], list[str]]:
        stub = PerModelFitRegistrar(dict(zip((first, second, third), fits, strict=True)))
        s = searcher.with_options(**options)
        s.registrar = stub
        return s.search(image, k=k).results, stub.registered

    results, registered = search((0.6, 0.6 + OUTLINE_RANK_MARGIN + 0.05, 0.99))
    assert registered == [first, second]  # the third is beyond the two compared
    assert [m.model_id for m in results] == [second, first, third] and [m.rank for m in results] == [1, 2, 3]
    assert results[0].placement is not None and results[0].silhouette_iou == pytest.approx(0.75)
    assert results[0].score < results[1].score  # its score stays its own
    # asking for one model gives the same first model: the two are compared all the same
    results, registered = search((0.6, 0.6 + OUTLINE_RANK_MARGIN + 0.05, 0.99), k=1)
    assert registered == [first, second] and [m.model_id for m in results] == [second]
    # ... and so does every object of a photo searched with the detector
    detect = searcher.with_options(crop="detect", localiser=ScoredLocaliser())
    detect.registrar = PerModelFitRegistrar(dict(zip((first, second, third), (0.6, 0.6, 0.6), strict=True)))
    objects = detect.search(image, k=1).objects
    assert len(objects) == 2 and all(len(o.results) == 1 for o in objects)
    results, registered = search((0.6, 0.65, 0.99))  # better, not clearly
    assert registered == [first, second] and [m.model_id for m in results] == [first, second, third]
    # a first model that fits well leaves no room: the second is not even registered
    results, registered = search((1.0 - OUTLINE_RANK_MARGIN + 0.01, 1.0, 1.0))
    assert registered == [first] and results[0].model_id == first and results[1].placement is None
    # a first registration not kept (REGISTER_MIN_FIT) fits not at all: a second that fits goes first
    results, registered = search((0.3, 0.55, 0.99))
    assert results[0].model_id == second and results[1].placement is None
    # off, or without registration: the search's order, one model registered (or none)
    results, registered = search((0.6, 0.95, 0.99), outline_rank=1)
    assert registered == [first] and results[0].model_id == first
    results, registered = search((0.6, 0.95, 0.99), refine_top=0)
    assert registered == [] and results[0].model_id == first
    # refine_top beyond outline_rank: all registered, the ranking still among the first outline_rank
    results, registered = search((0.6, 0.65, 0.99), refine_top=3)
    assert registered == [first, second, third] and results[0].model_id == first
    assert all(m.placement is not None for m in results)
    # a first model the ranking is sure of keeps its place, and the second is not registered
    sure = Searcher(fake, index, library)  # the calibrated temperature
    assert sure.search(image, k=3, refine_top=0).results[0].score >= OUTLINE_RANK_BELOW
    sure.registrar = stub = PerModelFitRegistrar(dict(zip((first, second, third), (0.6, 0.95, 0.99), strict=True)))
    assert sure.search(image, k=3).results[0].model_id == first and stub.registered == [first]
    with pytest.raises(InputError, match="outline_rank"):
        searcher.with_options(outline_rank=0)


class BackViewRegistrar(FixedFitRegistrar):
    """A registrar whose look-alike check always finds the back view (φ + 180°) more alike, its render agreeing
    ``agreement`` with the query; it records the models checked and the poses registration started from."""

    def __init__(self, agreement: float = 0.3) -> None:
        super().__init__(0.95)
        self.agreement = agreement
        self.checked: list[str] = []
        self.started: list[tuple[float, float]] = []

    def check_look_alikes(self, model_id, image, frame, polar_deg, azimuth_deg, modes=()):
        from cadsearch.register.appearance import LookAlikeChoice, look_alike_poses

        self.checked.append(model_id)
        poses = look_alike_poses(polar_deg, azimuth_deg)
        return LookAlikeChoice(*poses[1], tuple(poses), (self.agreement - 0.1, self.agreement, 0.1, 0.1), 1)

    def refine(self, model_id, target, frame, polar_deg, azimuth_deg, alternatives=()):
        self.started.append((polar_deg, azimuth_deg))
        return super().refine(model_id, target, frame, polar_deg, azimuth_deg, alternatives)


@pytest.mark.parametrize("bias", [6.0, 0.4, -6.0])
def test_only_sure_exact_matches_or_close_likenesses_take_a_look_alike_pose(search_ws: Path, bias) -> None:
    """The check's pose is taken for a sure exact match, or when its render agrees with the query at least
    ``sure_agreement``; registration then starts there."""
    from cadsearch.register.appearance import LookAlikeConfig
    from cadsearch.search.matching import EXACT_MATCH_THRESHOLD, MATCH_FEATURES, MatchModel
    from cadsearch.search.searcher import LOOK_ALIKE_MIN_MATCH

    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    n = len(MATCH_FEATURES)
    sure = MatchModel((0.0,) * n, bias, (0.0,) * n, (1.0,) * n)  # match = σ(bias) for every result
    searcher = Searcher(fake, load_index(search_ws, "scratch"), Library.open(search_ws), match_model=sure)
    image = np.asarray(Image.open(search_ws / read_view_table(search_ws)[0].path).convert("RGB"))  # plain backdrop
    plain = searcher.search(image, k=2, refine_top=0).results[0]
    back = (plain.polar_deg, (plain.azimuth_deg + 180) % 360)
    like = LookAlikeConfig().sure_agreement
    match = 1.0 / (1.0 + np.exp(-bias))
    assert (match >= EXACT_MATCH_THRESHOLD) == (bias != -6.0)  # σ(0.4) = 0.6: called exact, not sure
    for agreement in (like - 0.05, like + 0.05):
        searcher.registrar = stub = BackViewRegistrar(agreement)
        top = searcher.search(image, k=2).results[0]
        assert stub.checked == [top.model_id]
        if match >= LOOK_ALIKE_MIN_MATCH or agreement >= like:  # its back view is taken; registration refines there
            assert stub.started == [back] and (top.polar_deg, top.azimuth_deg) == back
        else:  # maybe another object than the model: its renders are no evidence of the pose
            assert stub.started == [(plain.polar_deg, plain.azimuth_deg)]
    off = Searcher(fake, searcher.index, searcher.library, match_model=sure, look_alikes=False)
    off.registrar = stub = BackViewRegistrar(1.0)
    off.search(image, k=2)
    assert stub.checked == []
    # the gate is an option: at 0.5 the unsure exact match takes the back view too
    low = Searcher(fake, searcher.index, searcher.library, match_model=sure, look_alike_min_match=0.5)
    low.registrar = stub = BackViewRegistrar(like - 0.05)
    low.search(image, k=2)
    assert (stub.started == [back]) == (match >= 0.5)
    with pytest.raises(InputError, match="look_alike_min_match"):
        searcher.with_options(look_alike_min_match=1.5)


def test_a_detected_object_is_not_checked_for_look_alikes(search_ws: Path) -> None:
    """A detection's square in a room photo holds other things: only whole-photo objects are checked."""
    from cadsearch.search.matching import MATCH_FEATURES, MatchModel
    from cadsearch.search.searcher import FoundObject

    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    n = len(MATCH_FEATURES)
    sure = MatchModel((0.0,) * n, 6.0, (0.0,) * n, (1.0,) * n)  # every result an exact match
    searcher = Searcher(fake, load_index(search_ws, "scratch"), Library.open(search_ws), match_model=sure)
    image = np.asarray(Image.open(search_ws / read_view_table(search_ws)[0].path).convert("RGB"))
    results = searcher.search(image, k=2, refine_top=0).results
    h, w = image.shape[:2]
    searcher.registrar = stub = BackViewRegistrar()
    detected = FoundObject((0.0, 0.0, float(w), float(h)), 0.9, results, None, None)
    searcher._register(image, [detected], 1)
    assert stub.checked == [] and detected.results[0].azimuth_deg == pytest.approx(stub.started[0][1])
    whole = FoundObject((0.0, 0.0, float(w), float(h)), None, results, None, None)
    searcher._register(image, [whole], 1)
    assert stub.checked == [results[0].model_id]


class TwinRegistrar(FixedFitRegistrar):
    """A registrar whose outline-twin check always answers a registration at (polar, azimuth + 100°), fitting
    ``twin_fit`` and of relative size ``twin_size``; it records the (model, fit) pairs checked."""

    def __init__(self, twin_fit: float = 0.9, twin_size: float = 1.0) -> None:
        super().__init__(0.8)
        self.twin_fit, self.twin_size = twin_fit, twin_size
        self.checked: list[tuple[str, float]] = []
        self.min_agreement: list[float] = []

    def check_outline_twin(self, model_id, image, target, frame, polar_deg, azimuth_deg, placement, fit,
                           min_agreement=-math.inf):  # fmt: skip
        from dataclasses import replace

        self.checked.append((model_id, fit))
        self.min_agreement.append(min_agreement)
        reg = self.refine(model_id, target, frame, polar_deg, azimuth_deg + 100.0)
        extent = reg.extent * self.twin_size / self.size
        return replace(reg, iou=self.twin_fit, roll_deg=7.0, extent=extent, placement=replace(reg.placement, cx=1.0))


def test_an_outline_twin_the_appearance_supports_replaces_the_registration(search_ws: Path) -> None:
    """Each registered model of the ``refine_top`` best is checked for an outline twin once, after registration and
    the outline ranking; the twin's pose, roll, placement and fit replace the registered ones when it fits at least
    REGISTER_MIN_FIT at a plausible size. Off with ``outline_twins=False``; unregistered models are not checked."""
    from cadsearch.register.appearance import LookAlikeConfig
    from cadsearch.search.matching import MATCH_FEATURES, MatchModel
    from cadsearch.search.searcher import REGISTER_MIN_FIT

    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    # the upright pass off: the twins' roll (7°) would send the photo through it (the next test)
    searcher = Searcher(fake, load_index(search_ws, "scratch"), Library.open(search_ws), outline_rank=1,
                        upright_pass=False)  # fmt: skip
    image = np.asarray(Image.open(search_ws / read_view_table(search_ws)[0].path).convert("RGB"))  # plain backdrop
    plain = searcher.search(image, k=3, refine_top=0).results

    def search(stub: FixedFitRegistrar, **options) -> list[ModelMatch]:
        s = searcher.with_options(**options)
        s.registrar = stub
        return s.search(image, k=3, **({} if "refine_top" in options else {"refine_top": 2})).results

    results = search(stub := TwinRegistrar())
    assert stub.checked == [(plain[0].model_id, 0.8), (plain[1].model_id, 0.8)]  # the two registered, once each
    for m, p in zip(results[:2], plain[:2], strict=True):
        assert m.azimuth_deg == pytest.approx((p.azimuth_deg + 100.0) % 360.0) and m.polar_deg == p.polar_deg
        assert (m.roll_deg, m.silhouette_iou, m.placement.cx) == (7.0, 0.9, 1.0)
    assert results[2].placement is None and results[2].azimuth_deg == plain[2].azimuth_deg  # not registered
    for stub in (TwinRegistrar(twin_fit=REGISTER_MIN_FIT - 0.01), TwinRegistrar(twin_size=3.0)):  # poor, implausible
        assert all(m.azimuth_deg == p.azimuth_deg and m.silhouette_iou == 0.8
                   for m, p in zip(search(stub)[:2], plain, strict=False))  # fmt: skip
    assert search(stub := TwinRegistrar(), outline_twins=False)[0].azimuth_deg == plain[0].azimuth_deg
    assert stub.checked == []
    # a registration that was not kept (fit below REGISTER_MIN_FIT) is not checked
    unkept = TwinRegistrar()
    unkept.iou = REGISTER_MIN_FIT - 0.1
    assert search(unkept)[0].placement is None and unkept.checked == []
    # the look-alike check's gate: a twin must agree at least sure_agreement unless the model surely is the object
    n = len(MATCH_FEATURES)
    for bias, need in ((6.0, -math.inf), (-6.0, LookAlikeConfig().sure_agreement)):  # match 0.998, 0.002
        search(stub := TwinRegistrar(), match_model=MatchModel((0.0,) * n, bias, (0.0,) * n, (1.0,) * n))
        assert stub.min_agreement == [need, need]


def _search_with_stub(search_ws: Path) -> tuple[list[ModelMatch], Callable[..., list[ModelMatch]]]:
    """A plain-backdrop render of ``search_ws`` searched without registration (its 3 best results), and a function
    ``search(stub, **options)`` that searches it again with the registrar ``stub`` (``refine_top=2``, the outline
    ranking off) and the searcher's ``options``."""
    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    searcher = Searcher(fake, load_index(search_ws, "scratch"), Library.open(search_ws), outline_rank=1)
    image = np.asarray(Image.open(search_ws / read_view_table(search_ws)[0].path).convert("RGB"))  # plain backdrop

    def search(stub: FixedFitRegistrar, **options) -> list[ModelMatch]:
        s = searcher.with_options(**options)
        s.registrar = stub
        return s.search(image, k=3, refine_top=2).results

    return searcher.search(image, k=3, refine_top=0).results, search


class OtherStartRegistrar(FixedFitRegistrar):
    """A registrar whose other-starts check answers a registration at (polar + 20°, azimuth) fitting ``other_fit``,
    of relative size ``other_size``; it records the (model, fit, min_agreement) checked."""

    def __init__(self, fit: float = 0.8, other_fit: float = 0.9, other_size: float = 1.0) -> None:
        super().__init__(fit)
        self.other_fit, self.other_size = other_fit, other_size
        self.checked: list[tuple[str, float, float]] = []

    def check_other_starts(self, model_id, image, target, frame, polar_deg, azimuth_deg, placement, fit,
                           min_agreement=-math.inf):  # fmt: skip
        from dataclasses import replace

        self.checked.append((model_id, fit, min_agreement))
        reg = self.refine(model_id, target, frame, polar_deg + 20.0, azimuth_deg)
        return replace(reg, iou=self.other_fit, roll_deg=-4.0, extent=reg.extent * self.other_size / self.size)


def test_a_registration_from_other_starts_replaces_one_that_fits_worse(search_ws: Path) -> None:
    """Each registered model of the ``refine_top`` best that fits at least OTHER_STARTS_MIN_FIT is checked once with
    its registered fit; the other start's pose, roll and fit replace the registered ones when it fits at least
    REGISTER_MIN_FIT at a plausible size. A poorer first fit is not checked; off with ``other_starts=False``; under
    the outline twins' gate."""
    from cadsearch.register.appearance import LookAlikeConfig
    from cadsearch.search.matching import MATCH_FEATURES, MatchModel
    from cadsearch.search.searcher import OTHER_STARTS_MIN_FIT, REGISTER_MIN_FIT

    plain, search = _search_with_stub(search_ws)
    results = search(stub := OtherStartRegistrar())
    assert [c[:2] for c in stub.checked] == [(plain[0].model_id, 0.8), (plain[1].model_id, 0.8)]
    for m, p in zip(results[:2], plain[:2], strict=True):
        assert (m.polar_deg, m.azimuth_deg) == pytest.approx((p.polar_deg + 20.0, p.azimuth_deg))
        assert (m.roll_deg, m.silhouette_iou) == (-4.0, 0.9)
    assert results[2].placement is None and results[2].polar_deg == plain[2].polar_deg  # not registered
    for stub in (OtherStartRegistrar(other_fit=REGISTER_MIN_FIT - 0.01), OtherStartRegistrar(other_size=3.0)):
        assert all(m.polar_deg == p.polar_deg and m.silhouette_iou == 0.8
                   for m, p in zip(search(stub)[:2], plain, strict=False))  # fmt: skip
    # a first fit below OTHER_STARTS_MIN_FIT (kept, above REGISTER_MIN_FIT), or the check off: nothing checked
    for stub, options in ((OtherStartRegistrar(fit=OTHER_STARTS_MIN_FIT - 0.01), {}),
                          (OtherStartRegistrar(), {"other_starts": False})):  # fmt: skip
        assert search(stub, **options)[0].polar_deg == plain[0].polar_deg and stub.checked == []
    n = len(MATCH_FEATURES)
    for bias, need in ((6.0, -math.inf), (-6.0, LookAlikeConfig().sure_agreement)):  # match 0.998, 0.002
        search(stub := OtherStartRegistrar(), match_model=MatchModel((0.0,) * n, bias, (0.0,) * n, (1.0,) * n))
        assert [c[2] for c in stub.checked] == [need, need]


class FarStartRegistrar(FixedFitRegistrar):
    """A registrar whose far-starts check answers a registration at (polar, azimuth + 120°) fitting ``far_fit``, of
    relative size ``far_size``, when it passes the check's ``min_fit`` and ``accept``; it records the (model,
    min_fit, min_agreement, wide) checked."""

    def __init__(self, fit: float = 0.3, far_fit: float = 0.6, far_size: float = 1.0) -> None:
        super().__init__(fit)
        self.far_fit, self.far_size = far_fit, far_size
        self.checked: list[tuple[str, float, float, bool]] = []

    def check_far_starts(self, model_id, image, target, frame, polar_deg, azimuth_deg, min_fit,
                         min_agreement=-math.inf, accept=None, wide=True):  # fmt: skip
        from dataclasses import replace

        self.checked.append((model_id, min_fit, min_agreement, wide))
        reg = self.refine(model_id, target, frame, polar_deg, azimuth_deg + 120.0)
        far = replace(reg, iou=self.far_fit, roll_deg=3.0, extent=reg.extent * self.far_size / self.size)
        return far if far.iou >= min_fit and (accept is None or accept(far)) else None


def test_a_first_model_left_unregistered_takes_a_registration_from_far_starts(search_ws: Path) -> None:
    """An object whose first model fits its mask under REGISTER_MIN_FIT has that model checked once from far starts
    (at REGISTER_MIN_FIT, the wide registration too, under the outline twins' gate, with the searcher's size check),
    and its pose, roll and fit replace the search's; the other models stay as they were. A registered first model
    fitting under ``far_starts_below`` is checked from the ring alone and replaced only by a fit of at least
    FAR_STARTS_REPLACE_FIT (fitting under OTHER_STARTS_MIN_FIT) or FAR_START_FIT_MARGIN better (a fairer fit); a
    better fitting one is not checked; off with ``far_starts=False``; an answer too poor or of an implausible size
    is refused."""
    from cadsearch.register.appearance import LookAlikeConfig
    from cadsearch.search.matching import MATCH_FEATURES, MatchModel
    from cadsearch.search.searcher import (
        FAR_START_FIT_MARGIN,
        FAR_STARTS_BELOW,
        FAR_STARTS_REPLACE_FIT,
        OTHER_STARTS_MIN_FIT,
        REGISTER_MIN_FIT,
    )

    plain, search = _search_with_stub(search_ws)
    results = search(stub := FarStartRegistrar())
    assert [(c[0], c[1], c[3]) for c in stub.checked] == [(plain[0].model_id, REGISTER_MIN_FIT, True)]
    assert (results[0].polar_deg, results[0].azimuth_deg) == pytest.approx(
        (plain[0].polar_deg, (plain[0].azimuth_deg + 120.0) % 360.0)
    )
    assert (results[0].roll_deg, results[0].silhouette_iou) == (3.0, 0.6)
    assert all(m.placement is None and m.polar_deg == p.polar_deg for m, p in zip(results[1:], plain[1:], strict=True))
    # too poor a fit, or an implausible size: the search's pose stands
    for stub in (FarStartRegistrar(far_fit=REGISTER_MIN_FIT - 0.01), FarStartRegistrar(far_size=3.0)):
        m = search(stub)[0]
        assert len(stub.checked) == 1 and m.placement is None and m.azimuth_deg == plain[0].azimuth_deg
    # a registered first model fitting under far_starts_below: the ring alone, replaced only by a fit of
    # FAR_STARTS_REPLACE_FIT (a poor fit, under OTHER_STARTS_MIN_FIT) or one FAR_START_FIT_MARGIN better (a fair one)
    poor, fair = REGISTER_MIN_FIT + 0.05, OTHER_STARTS_MIN_FIT
    for fit, need in ((poor, FAR_STARTS_REPLACE_FIT), (fair, fair + FAR_START_FIT_MARGIN)):
        for far_fit, taken in ((need - 0.01, False), (need, True)):
            m = search(stub := FarStartRegistrar(fit=fit, far_fit=far_fit))[0]
            assert [(c[1], c[3]) for c in stub.checked] == [(pytest.approx(need), False)]
            assert m.silhouette_iou == (far_fit if taken else fit) and m.placement is not None
            assert (m.azimuth_deg == pytest.approx((plain[0].azimuth_deg + 120.0) % 360.0)) is taken
    with pytest.raises(InputError, match="far_starts_below"):
        search(FarStartRegistrar(), far_starts_below=1.5)
    # a registered first model fitting at least far_starts_below, or the check off: nothing checked
    for stub, options in ((FarStartRegistrar(fit=FAR_STARTS_BELOW, far_fit=0.9), {}),
                          (FarStartRegistrar(fit=poor, far_fit=0.9), {"far_starts_below": 0.0}),
                          (FarStartRegistrar(), {"far_starts": False})):  # fmt: skip
        assert search(stub, **options)[0].azimuth_deg == plain[0].azimuth_deg and stub.checked == []
    n = len(MATCH_FEATURES)
    for bias, need in ((6.0, -math.inf), (-6.0, LookAlikeConfig().sure_agreement)):  # match 0.998, 0.002
        search(stub := FarStartRegistrar(), match_model=MatchModel((0.0,) * n, bias, (0.0,) * n, (1.0,) * n))
        assert [c[2] for c in stub.checked] == [need]


class RolledRegistrar(FixedFitRegistrar):
    """A registrar whose n-th registration has roll ``rolls[n]`` and fit ``fits[n]`` (the last ones repeated)."""

    def __init__(self, rolls: list[float], fits: list[float]) -> None:
        super().__init__(fits[0])
        self.rolls, self.fits, self.calls = rolls, fits, 0

    def refine(self, model_id, target, frame, polar_deg, azimuth_deg, alternatives=()):
        from dataclasses import replace

        n = min(self.calls, len(self.fits) - 1)
        self.calls += 1
        reg = super().refine(model_id, target, frame, polar_deg, azimuth_deg, alternatives)
        return replace(reg, iou=self.fits[n], roll_deg=self.rolls[n])


def test_an_object_registered_as_rolled_is_searched_again_upright(search_ws: Path) -> None:
    """The upright pass: a first model registered at a roll of at least UPRIGHT_MIN_ROLL sends the object's square,
    turned upright by that roll, through the network again; its answer (registered against the same mask) replaces
    the first only when it fits better at a roll within UPRIGHT_ROLL_AGREEMENT of the first's."""
    from cadsearch.framing import frame_for, upright_image
    from cadsearch.search.searcher import UPRIGHT_FIT_MARGIN, UPRIGHT_MIN_ROLL, UPRIGHT_ROLL_AGREEMENT, UPRIGHT_SIZE

    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    searcher = Searcher(fake, load_index(search_ws, "scratch"), Library.open(search_ws), outline_rank=1,
                        outline_twins=False, look_alikes=False, look_alike_models=False)  # fmt: skip
    image = np.asarray(Image.open(search_ws / read_view_table(search_ws)[0].path).convert("RGB"))  # plain backdrop
    shown: list[np.ndarray] = []
    predict = fake.predict

    def recording(images, batch_size=64, frames=None):
        shown.extend(images)
        return predict(images, batch_size, frames)

    fake.predict = recording

    def search(stub: RolledRegistrar, **options) -> ModelMatch:
        s = searcher.with_options(**options)
        s.registrar = stub
        shown.clear()
        return s.search(image, k=2, refine_top=1).results[0]

    roll = 20.0
    frame = searcher.search(image, k=1, refine_top=0).frame or frame_for(*image.shape[:2])
    square = upright_image(image, UPRIGHT_SIZE, frame, roll)
    first = search(stub := RolledRegistrar([roll, roll + 3.0], [0.6, 0.8]))
    assert (first.roll_deg, first.silhouette_iou, stub.calls) == (roll + 3.0, 0.8, 2)  # the upright answer
    assert any(im.shape == square.shape and np.array_equal(im, square) for im in shown)  # turned by the first roll
    # not taken: a fit better by less than the margin, or a roll that disagrees with the first registration's
    barely = 0.6 + UPRIGHT_FIT_MARGIN / 2
    for rolls, fits in (([roll, roll], [0.6, barely]), ([roll, roll + UPRIGHT_ROLL_AGREEMENT + 1.0], [0.6, 0.9])):
        m = search(stub := RolledRegistrar(rolls, fits))
        assert (m.roll_deg, m.silhouette_iou, stub.calls) == (roll, 0.6, 2)
    # not searched again: an upright registration, an unkept one, or the pass turned off
    for rolls, fits, options in (([UPRIGHT_MIN_ROLL - 1.0], [0.6, 0.9], {}), ([roll], [0.3, 0.9], {}),
                                 ([roll], [0.6, 0.9], {"upright_pass": False})):  # fmt: skip
        search(stub := RolledRegistrar(rolls, fits), **options)
        assert stub.calls == 1 and not any(im.shape == square.shape for im in shown)


def test_with_options_keeps_every_other_option(searcher: Searcher, monkeypatch) -> None:
    """An ablation's searcher differs from the original in the options named only; a new constructor option that
    ``with_options`` forgets (and so resets to its default) fails here."""
    import inspect

    fixed = ("self", "predictor", "index", "library", "threads")
    names = [p for p in inspect.signature(Searcher.__init__).parameters if p not in fixed]
    given: dict = {}
    init = Searcher.__init__
    monkeypatch.setattr(Searcher, "__init__", lambda self, *a, **kw: given.update(kw) or init(self, *a, **kw))
    other = searcher.with_options(look_alikes=False)
    monkeypatch.undo()
    assert sorted(given) == sorted([*names, "threads"])  # every option passed on, none left to its default
    assert other.look_alikes is False and searcher.look_alikes is True
    assert other.predictor is searcher.predictor and other.index is searcher.index
    for name in names:
        if name != "look_alikes":
            assert getattr(other, name) == getattr(searcher, name), name


class RecordingRegistrar(FixedFitRegistrar):
    """Records the alternative starts registration was given."""

    def __init__(self) -> None:
        super().__init__(0.95)
        self.alternatives: list = []

    def refine(self, model_id, target, frame, polar_deg, azimuth_deg, alternatives=()):
        self.alternatives.append(list(alternatives))
        return super().refine(model_id, target, frame, polar_deg, azimuth_deg, alternatives)


def test_registration_starts_from_the_pose_modes_only_where_the_mask_is_trusted(search_ws: Path) -> None:
    from cadsearch.framing import Frame
    from cadsearch.search.searcher import FoundObject, registration_alternatives

    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    searcher = Searcher(fake, load_index(search_ws, "scratch"), Library.open(search_ws), look_alikes=False)
    image = np.asarray(Image.open(search_ws / read_view_table(search_ws)[0].path).convert("RGB"))  # plain backdrop
    results = searcher.search(image, k=2, refine_top=0).results
    h, w = image.shape[:2]
    modes = np.array([[70.0, 10.0, 0.6], [70.0, 190.0, 0.3], [80.0, 270.0, 0.1]])
    searcher.registrar = stub = RecordingRegistrar()
    # a plain backdrop's mask is exact: the pose head's modes are starts too
    searcher._register(image, [FoundObject((0.0, 0.0, float(w), float(h)), None, results, None, None, modes)], 1)
    assert stub.alternatives == [[tuple(m) for m in modes]]
    # a network without a pose distribution: the estimate alone
    searcher._register(image, [FoundObject((0.0, 0.0, float(w), float(h)), None, results, None, None, None)], 1)
    assert stub.alternatives[-1] == []
    # a detector's mask covering only part of its box (a seat) is not trusted to overrule the search's pose
    frame = Frame(0.0, 0.0, 200.0)
    part = np.zeros((200, 200), np.float32)
    part[110:135, 60:140] = 1.0
    detected = FoundObject((50.0, 40.0, 150.0, 180.0), 0.9, results, frame, None, modes)
    assert registration_alternatives(detected, part, frame, "detector") == []
    whole = np.zeros((200, 200), np.float32)
    whole[45:175, 60:140] = 1.0
    assert registration_alternatives(detected, whole, frame, "detector") == [tuple(m) for m in modes]
