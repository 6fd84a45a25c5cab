"""The exact-match probability: fitted by leave-models-out on the index, it tells a picture of a library model
from a picture of a look-alike that is not in the library, through the searcher's own query path."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from cadsearch.index import ViewIndex, ViewTable, build_index, index_dir, load_index
from cadsearch.search import ModelMatch, Searcher, SearchResult
from cadsearch.search.calibration import (
    CALIBRATION_FILE,
    CALIBRATION_VERSION,
    fit_match_on_queries,
    fit_outline_on_queries,
)
from cadsearch.search.matching import (
    DEFAULT_MATCH_MODEL,
    EXACT_MATCH_THRESHOLD,
    OUTLINE_FEATURES,
    MatchModel,
    fit_match_model,
    match_features,
    roc_auc,
)
from fakes import fake_for

DIM = 32


class LookAlikes:
    """Synthetic embeddings with the structure of a chair library: families of similar models (a family centre
    plus a model offset), and a model's views on a smooth loop around the model's centre (the camera), so that
    a new picture of a model lands near its views at the nearest cameras, and a new model of a family lands
    near its look-alikes but on none of their views."""

    def __init__(self, families: int = 5, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.family = [self._unit(self.rng.standard_normal(DIM)) for _ in range(families)]

    @staticmethod
    def _unit(v: np.ndarray) -> np.ndarray:
        return v / np.linalg.norm(v, axis=-1, keepdims=True)

    def model(self, family: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        centre = self._unit(self.family[family] + 0.25 * self._unit(self.rng.standard_normal(DIM)))
        a, b = (self._unit(self.rng.standard_normal(DIM)) for _ in range(2))
        return centre, a, b

    def views(self, model, angles: np.ndarray, noise: float) -> np.ndarray:
        centre, a, b = model
        v = centre + 0.35 * (np.cos(angles)[:, None] * a + np.sin(angles)[:, None] * b)
        v = v + noise * self.rng.standard_normal(v.shape) / np.sqrt(DIM)
        return self._unit(v).astype(np.float32)


def synthetic_library(per_family: int = 4, outside_per_family: int = 2, views: int = 24):
    """(index, in-library models, outside models, generator)."""
    gen = LookAlikes()
    inside = [(f, gen.model(f)) for f in range(len(gen.family)) for _ in range(per_family)]
    outside = [(f, gen.model(f)) for f in range(len(gen.family)) for _ in range(outside_per_family)]
    angles = np.linspace(0, 2 * np.pi, views, endpoint=False)
    vectors, rows = [], []
    for m, (_, model) in enumerate(inside):
        vectors.append(gen.views(model, angles, 0.05))
        rows += [(f"m{m}/{i:04d}", f"m{m}", 90.0, float(np.degrees(t)), f"k{m}-{i}") for i, t in enumerate(angles)]
    index = ViewIndex.build(np.concatenate(vectors), ViewTable.from_rows(rows), meta={"k_views": 64})
    return index, inside, outside, gen


def calibration_queries(index, inside, gen) -> tuple[np.ndarray, np.ndarray]:
    """Every third indexed view, pictured anew (noisier than the indexed views) as calibration makes them:
    ``(view ids (N,), query vectors (N, D))``."""
    ids = np.arange(0, len(index), 3)
    queries = np.stack(
        [gen.views(inside[int(index.table.model_id[i][1:])][1], np.radians([index.table.azimuth_deg[i]]), 0.4)[0]
         for i in ids]
    )  # fmt: skip
    return ids, queries


def test_leave_models_out_fit_separates_library_models_from_look_alikes_at_query_time() -> None:
    index, inside, outside, gen = synthetic_library()
    ids, queries = calibration_queries(index, inside, gen)
    fit = fit_match_on_queries(index, queries, ids, temperature=0.05)
    assert fit is not None and fit["n_models"] == len(inside) and fit["auc"] > 0.9
    model = MatchModel.from_dict(fit)

    # Query time: fresh cameras, through the searcher's own path, for library models and for look-alikes.
    searcher = Searcher(None, index, None, match_model=model, threads=None)
    rng = np.random.default_rng(1)

    def top_match(models) -> tuple[np.ndarray, np.ndarray]:
        top, right = [], []
        for m, (_, model_params) in enumerate(models):
            for q in gen.views(model_params, rng.uniform(0, 2 * np.pi, 4), 0.4):
                res = searcher.search_embedding(q, None, k=3)
                top.append(res.results[0].match)
                right.append(res.results[0].model_id == f"m{m}")
                assert res.exact_match == (res.results[0].match >= EXACT_MATCH_THRESHOLD)
                assert all(0.0 <= r.match <= 1.0 for r in res.results)
        return np.array(top), np.array(right)

    m_in, right = top_match(inside)
    m_out, _ = top_match(outside)
    assert right.mean() > 0.9  # the synthetic library is searchable at all
    assert roc_auc(np.r_[m_in, m_out], np.r_[np.ones(len(m_in)), np.zeros(len(m_out))]) > 0.95
    assert (m_in >= EXACT_MATCH_THRESHOLD).mean() >= 0.85
    assert (m_out >= EXACT_MATCH_THRESHOLD).mean() <= 0.10
    # The untuned default model does not separate these as well: the fit is what does the work.
    searcher.match_model = DEFAULT_MATCH_MODEL
    d_in, _ = top_match(inside)
    d_out, _ = top_match(outside)
    assert (d_in >= EXACT_MATCH_THRESHOLD).mean() - (d_out >= EXACT_MATCH_THRESHOLD).mean() < (
        (m_in >= EXACT_MATCH_THRESHOLD).mean() - (m_out >= EXACT_MATCH_THRESHOLD).mean()
    )


def test_the_match_fit_ranks_with_the_mirror_images_as_the_searcher_does() -> None:
    index, inside, _, gen = synthetic_library()
    ids, queries = calibration_queries(index, inside, gen)
    alone = fit_match_on_queries(index, queries, ids, temperature=0.05)
    # a mirror image that looks exactly like its query changes nothing: the averaged similarities are the query's
    same = fit_match_on_queries(index, queries, ids, temperature=0.05, mirrors=queries)
    assert same["weights"] == pytest.approx(alone["weights"]) and same["auc"] == pytest.approx(alone["auc"])
    # mirror images that show other views move each query's ranking, and so the fit
    other = fit_match_on_queries(index, queries, ids, temperature=0.05, mirrors=np.roll(queries, 1, axis=0))
    assert other["weights"] != pytest.approx(alone["weights"])


def test_logistic_fit_and_auc_on_known_data() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2000, 4))
    true_w = np.array([2.0, -1.0, 0.0, 0.5])
    y = (rng.uniform(size=2000) < 1 / (1 + np.exp(-(x @ true_w + 0.3)))).astype(float)
    model = fit_match_model(x, y, l2=1e-4)
    w = np.array(model.weights) / np.array(model.std)  # back to the raw features' scale
    assert np.allclose(w, true_w, atol=0.25)
    p = model.predict(x)
    assert abs(p.mean() - y.mean()) < 0.02
    assert roc_auc(np.array([0.9, 0.8, 0.1, 0.8]), np.array([1, 1, 0, 0])) == pytest.approx(0.875)
    assert np.isnan(roc_auc(np.array([0.5]), np.array([1])))
    with pytest.raises(ValueError):
        MatchModel.from_dict(model.to_dict() | {"features": ["other"]})


def test_calibration_file_holds_the_match_model_and_old_versions_are_refitted(search_ws: Path) -> None:
    from cadsearch.search.calibration import load_or_fit_calibration

    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    index = load_index(search_ws, "scratch")
    fit = load_or_fit_calibration(search_ws, "scratch", index, fake)
    assert MatchModel.from_dict(fit["match"]).predict(np.zeros((1, 4))).shape == (1,)
    path = index_dir(search_ws, "scratch") / CALIBRATION_FILE
    stored = json.loads(path.read_text())
    assert stored["version"] == CALIBRATION_VERSION and stored["calibration"]["match"] == fit["match"]
    # A file of an older version (no match model) for the very same index is refitted, not used.
    path.write_text(json.dumps({"index": stored["index"], "calibration": {"temperature": 9.0}}))
    again = load_or_fit_calibration(search_ws, "scratch", index, fake)
    assert again["temperature"] != 9.0 and "match" in again


def test_exact_match_follows_the_top_result_and_the_threshold() -> None:
    def result(*matches: float) -> SearchResult:
        return SearchResult([ModelMatch(i + 1, f"m{i}", "M", "chair", 0.5, 80.0, 10.0, "", p) for i, p in
                             enumerate(matches)], {"total": 1.0})  # fmt: skip

    assert result(EXACT_MATCH_THRESHOLD, 0.1).to_json("q")["exact_match"] is True
    assert result(EXACT_MATCH_THRESHOLD - 1e-3, 0.9).to_json("q")["exact_match"] is False
    assert result().to_json("q") == {"query": "q", "results": [], "exact_match": False, "timing_ms": {"total": 1.0}}
    assert result(0.123456).to_json("q")["results"][0]["match"] == 0.1235


def test_match_features_do_not_depend_on_the_order_of_the_models() -> None:
    """The category vote reorders the ranked models; each model keeps its own features (its rival is the nearest
    other model, not the one listed first)."""
    from cadsearch.search.scoring import category_first, rank_models

    sims = np.array([0.80, 0.78, 0.78, 0.77, 0.77, 0.5])
    ranked = rank_models(sims, np.arange(6), np.array([0, 1, 2, 3, 4, 4]), n_models=5, temperature=0.05)
    voted, _ = category_first(ranked, np.array([1, 0, 0, 0, 0]))  # the nearest model (0) moves to last
    assert voted.model_idx[0] != ranked.model_idx[0]
    plain = dict(zip(ranked.model_idx.tolist(), match_features(ranked, sims).tolist(), strict=True))
    reordered = dict(zip(voted.model_idx.tolist(), match_features(voted, sims).tolist(), strict=True))
    assert plain == reordered


def test_outline_model_keeps_its_feature_list() -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, len(OUTLINE_FEATURES)))
    y = (x[:, -1] > 0).astype(float)
    model = fit_match_model(x, y, features=OUTLINE_FEATURES)
    assert model.features == OUTLINE_FEATURES and model.to_dict()["features"] == list(OUTLINE_FEATURES)
    assert MatchModel.from_dict(model.to_dict(), OUTLINE_FEATURES) == model
    with pytest.raises(ValueError):
        MatchModel.from_dict(model.to_dict())  # an outline model is not a view-features model ...
    with pytest.raises(ValueError):
        MatchModel.from_dict(DEFAULT_MATCH_MODEL.to_dict(), OUTLINE_FEATURES)  # ... nor the other way round


def test_outline_fit_learns_that_the_true_model_fits_the_object_better() -> None:
    """Look-alikes the views cannot tell apart: the registered outline (here a stand-in that fits the true model
    well and any other model less well) is what the outline model learns to trust."""
    index, inside, _, gen = synthetic_library()
    ids = np.arange(0, len(index), 3)
    true_of = [str(index.table.model_id[i]) for i in ids]
    queries = np.stack(
        [gen.views(inside[int(index.table.model_id[i][1:])][1], np.radians([index.table.azimuth_deg[i]]), 0.9)[0]
         for i in ids]
    )  # fmt: skip
    rng = np.random.default_rng(3)
    asked: list[tuple[int, str]] = []

    def register(q: int, model_id: str, polar: float, azimuth: float) -> float:
        asked.append((q, model_id))
        assert 0.0 <= polar <= 180.0 and 0.0 <= azimuth < 360.0  # a search pose to start from
        return float(np.clip(rng.normal(0.9 if model_id == true_of[q] else 0.7, 0.05), 0, 1))

    heads = np.tile([90.0, 0.0], (len(ids), 1))
    outline = fit_outline_on_queries(index, queries, ids, 0.05, heads, register)
    views_only = fit_match_on_queries(index, queries, ids, 0.05)
    assert outline is not None and views_only is not None
    assert outline["features"] == list(OUTLINE_FEATURES) and outline["n_queries"] == len(ids)
    assert 2 * len(ids) <= len(asked) <= 3 * len(ids)  # true model, best rival, top model with the true one out
    model = MatchModel.from_dict(outline, OUTLINE_FEATURES)
    assert model.weights[-1] > 0  # a better fit, a higher match
    assert outline["auc"] > views_only["auc"] + 0.05 and outline["auc"] > 0.9
    # a register that cannot register anything: no outline model
    assert fit_outline_on_queries(index, queries, ids, 0.05, heads, lambda *a: None) is None


def test_old_calibration_files_without_the_outline_model_are_refitted(search_ws: Path) -> None:
    from cadsearch.search.calibration import load_or_fit_calibration

    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    index = load_index(search_ws, "scratch")
    fit = load_or_fit_calibration(search_ws, "scratch", index, fake)
    # the tiny workspace's meshes are registered against the composites' true masks
    outline = fit["match"]["outline"]
    assert outline["features"] == list(OUTLINE_FEATURES) and outline["mask"] == "true render mask"
    assert MatchModel.from_dict(outline, OUTLINE_FEATURES).predict(np.zeros((1, 5))).shape == (1,)
    path = index_dir(search_ws, "scratch") / CALIBRATION_FILE
    stored = json.loads(path.read_text())
    # A version-2 file (match model, no outline model) of the very same index is refitted, not used.
    old = stored["calibration"] | {"match": {k: v for k, v in fit["match"].items() if k != "outline"}}
    path.write_text(json.dumps({"version": 2, "index": stored["index"], "calibration": old | {"temperature": 9.0}}))
    again = load_or_fit_calibration(search_ws, "scratch", index, fake)
    assert again["temperature"] != 9.0 and "outline" in again["match"]
    assert json.loads(path.read_text())["version"] == CALIBRATION_VERSION > 2


def test_a_quick_calibration_registers_fewer_queries_and_is_then_used(search_ws: Path) -> None:
    """The demo fits the outline model on a few registered queries (registering is most of a fit's time); the
    stored fit says how many, and later searches read it rather than fitting again."""
    from cadsearch.search.calibration import load_or_fit_calibration

    fake = fake_for(search_ws)
    build_index(search_ws, "scratch", progress=False, predictor=fake, fingerprint="A")
    index = load_index(search_ws, "scratch")
    full = load_or_fit_calibration(search_ws, "scratch", index, fake)["match"]["outline"]["n_queries"]
    (index_dir(search_ws, "scratch") / CALIBRATION_FILE).unlink()
    quick = load_or_fit_calibration(search_ws, "scratch", index, fake, outline_limit=3)
    assert quick["match"]["outline"]["n_queries"] == 3 < full
    assert load_or_fit_calibration(search_ws, "scratch", index, fake) == quick  # stored: not fitted again
