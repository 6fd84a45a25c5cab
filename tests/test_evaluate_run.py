"""End to end: raw answers → metrics → report, with fake networks (classifier ranking) on a tiny workspace.

The product's own ranking (the searcher and its index, on a real tiny network) is tested in
``test_evaluate_product.py``; here fakes make the metrics exact: a perfect network and a constant one."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from cadsearch.errors import InputError
from cadsearch.evaluate import DESIGN_KEYS, design_json, graphics_split, model_metrics, run_evaluation
from cadsearch.evaluate.report import write_report
from cadsearch.evaluate.run import ClassifierAnswerer, answer_split, read_raw
from cadsearch.library import Library


def _key(image: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(image).tobytes()).hexdigest()


class FakePredictor:
    """Duck-typed predictor (the :mod:`cadsearch.models` contract).

    ``truth`` maps an image hash to ``(model_id, polar, azimuth)``. With ``constant`` it ignores it and always
    answers uniform class probabilities and the pose (70°, 30°); otherwise it answers the truth exactly.
    """

    def __init__(self, model_ids, truth=None, constant=False):
        self.model_ids = list(model_ids)
        self.truth = truth or {}
        self.constant = constant
        self.arch = "fake"
        self.input_size = 48

    def predict(self, images, batch_size=64, frames=None):
        n, c = len(images), len(self.model_ids)
        probs, polar, azimuth = np.full((n, c), 1.0 / c), np.full(n, 70.0), np.full(n, 30.0)
        for i, image in enumerate(images):
            t = self.truth.get(_key(image))
            if t is None or self.constant:
                continue
            model_id, p, a = t
            if model_id in self.model_ids:
                probs[i] = 0.0
                probs[i, self.model_ids.index(model_id)] = 1.0
            polar[i] = p if p is not None else 70.0
            azimuth[i] = a if a is not None else 30.0
        emb = np.zeros((n, 8), np.float32)
        emb[:, 0] = 1.0
        return SimpleNamespace(embedding=emb, class_probs=probs, polar_deg=polar, azimuth_deg=azimuth)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """Two procedural chairs, training renders declared at 48 px."""
    ws = tmp_path_factory.mktemp("evalws") / "ws"
    Library.open(ws).generate_chairs(2)
    (ws / "views").mkdir(parents=True)
    (ws / "views" / "render_config.json").write_text(json.dumps({"config": {"size": 48, "seed": 0}}))
    return ws


@pytest.fixture(scope="module")
def model_ids(workspace: Path) -> list[str]:
    return [m.model_id for m in Library.open(workspace).list()]


@pytest.fixture(scope="module")
def graphics_truth(workspace: Path, model_ids: list[str]) -> dict:
    split = graphics_split(workspace, model_ids, views_per_model=3, progress=False)
    return {_key(q.image()): (q.model_id, q.polar_deg, q.azimuth_deg) for q in split.queries}


def answerers(**predictors) -> dict[str, ClassifierAnswerer]:
    """Fake networks ranked by their classifier; ``crop="none"`` keeps the rendered square as it is."""
    return {arch: ClassifierAnswerer(p, crop="none") for arch, p in predictors.items()}


def _check_design_json(result: dict, split: str, archs: set[str]) -> None:
    assert set(result) == {"split", "ranking", "models"} and result["split"] == split
    assert set(result["models"]) == archs
    for m in result["models"].values():
        assert set(m) == {*DESIGN_KEYS, "extra"} and m["unseen"] is None
        assert isinstance(m["n"], int) and m["n"] > 0
        for k in ("top1", "top5", "acc15", "acc30"):
            assert m[k] is None or (isinstance(m[k], float) and 0.0 <= m[k] <= 1.0)
        for k in ("pose_mean_deg", "pose_median_deg"):
            assert m[k] is None or (isinstance(m[k], float) and 0.0 <= m[k] <= 180.0)
    plain = design_json(result)
    assert all(set(m) == set(DESIGN_KEYS) for m in plain["models"].values()) and plain["ranking"] == "classifier"
    json.dumps(result, allow_nan=False)  # valid strict JSON: no NaN anywhere


def test_graphics_perfect_vs_constant(workspace, model_ids, graphics_truth, tmp_path) -> None:
    perfect = FakePredictor(model_ids, graphics_truth)
    constant = FakePredictor(model_ids, graphics_truth, constant=True)
    out = tmp_path / "report"
    notes: list[str] = []
    result = run_evaluation(
        workspace,
        "both",
        "graphics",
        report_dir=out,
        views_per_model=3,
        progress=False,
        ranking="classifier",
        answerers=answerers(scratch=perfect, transfer=constant),
        warn=notes.append,
    )
    _check_design_json(result, "graphics", {"scratch", "transfer"})
    good, bad = result["models"]["scratch"], result["models"]["transfer"]
    assert good["n"] == bad["n"] == 6
    assert good["top1"] == 1.0 and good["top5"] == 1.0
    assert good["pose_mean_deg"] < 0.01 and good["acc15"] == 1.0 and good["acc30"] == 1.0
    # A constant classifier answers its first class (ties keep class order): right for that chair's renders only.
    assert bad["top1"] == 0.5 and bad["pose_mean_deg"] > 20.0 and bad["acc15"] < 1.0
    assert set(good["extra"]["per_model"]) == set(model_ids)
    assert set(good["extra"]["by_symmetry"]) == {"none"}  # procedural chairs have no rotational symmetry
    assert set(good["extra"]["by_category"]) == {"chair"}  # the catalog's category of each true model
    assert not notes

    names = {p.name for p in out.iterdir()}
    expected = {"report.md", "metrics.json", "raw_scratch.csv", "raw_transfer.csv", "pose_error_hist.png"}
    expected |= {"error_vs_azimuth.png", "sector_acc30.png", "worst_scratch.png", "worst_transfer.png"}
    assert names == expected  # and no temporary file left behind
    for name in expected:
        if name.endswith(".png"):
            with Image.open(out / name) as im:
                assert im.size[0] > 200 and im.size[1] > 100
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["models"] == result["models"] and stored["split"] == "graphics"
    md = (out / "report.md").read_text()
    assert "| top-1 | 100.0 % | 50.0 % |" in md and "## Per model" in md and "worst_scratch.png" in md
    assert "**classifier** (ablation)" in md

    # Stage 2 can be recomputed from the raw file alone.
    again = model_metrics(read_raw(out / "raw_transfer.csv"), "graphics")
    assert again == result["models"]["transfer"]


def test_unseen_models_are_reported_apart(workspace, model_ids, graphics_truth, tmp_path) -> None:
    """A network trained on one of the two chairs: the other chair's queries are ``unseen`` (and, ranked by the
    classifier, never found)."""
    trained, other = model_ids[0], model_ids[1]
    half = FakePredictor([trained], graphics_truth)
    result = run_evaluation(
        workspace, "scratch", "graphics", report_dir=tmp_path / "r", views_per_model=3, progress=False,
        ranking="classifier", answerers=answerers(scratch=half), render_predicted=False,
    )  # fmt: skip
    m = result["models"]["scratch"]
    assert m["n"] == 3  # the classifier can only be asked about its own classes' renders
    assert m["unseen"] is None
    queries = graphics_split(workspace, model_ids, views_per_model=3, progress=False)
    rows = answer_split(answerers(scratch=half), queries, progress=False)["scratch"]
    assert [r["seen"] for r in rows] == [int(r["true_model_id"] == trained) for r in rows]
    unseen = model_metrics(rows, "graphics")["unseen"]
    assert unseen["n"] == 3 and unseen["top1"] == 0.0 and unseen["pose_mean_deg"] < 0.01
    assert all(r["true_rank"] == 0 for r in rows if r["true_model_id"] == other)


def test_symmetric_models_count_equivalent_poses_as_right(workspace, model_ids, graphics_truth) -> None:
    """A network that answers the true pose rotated by 90° about the up axis: wrong for a model without
    symmetry, right for a 4-fold or a continuously symmetric one."""
    queries = graphics_split(workspace, model_ids, views_per_model=3, progress=False)
    rotated = {k: (m, p, (a + 90.0) % 360.0) for k, (m, p, a) in graphics_truth.items()}
    net = answerers(scratch=FakePredictor(model_ids, rotated))
    errors = {}
    for name, order in (("none", 1), ("4-fold", 4), ("continuous", 0), ("3-fold", 3)):
        rows = answer_split(net, queries, symmetry=dict.fromkeys(model_ids, order), progress=False)["scratch"]
        errors[name] = np.array([r["pose_error_deg"] for r in rows])
        assert all(r["symmetry_order"] == order for r in rows)
        assert set(model_metrics(rows, "graphics")["extra"]["by_symmetry"]) == {name}
    assert np.all(errors["none"] > 10.0) and np.all(errors["3-fold"] > 5.0)
    assert np.all(errors["4-fold"] < 0.01) and np.all(errors["continuous"] < 0.01)


def test_pose_error_is_broken_down_by_category(workspace, model_ids, graphics_truth, tmp_path) -> None:
    """A network right about one model and a quarter turn off about the other, the two recorded as different
    kinds: the second kind carries all the pose error, is listed first, and the report has the table."""
    right, off = model_ids
    truth = {k: (m, p, (a + 90.0) % 360.0 if m == off else a) for k, (m, p, a) in graphics_truth.items()}
    queries = graphics_split(workspace, model_ids, views_per_model=3, progress=False)
    kinds = {right: "chair", off: "cup"}
    raw = answer_split(answerers(scratch=FakePredictor(model_ids, truth)), queries, progress=False, categories=kinds)
    assert [r["true_category"] for r in raw["scratch"]] == [kinds[r["true_model_id"]] for r in raw["scratch"]]
    m = model_metrics(raw["scratch"], "graphics")
    by = m["extra"]["by_category"]
    assert list(by) == ["cup", "chair"] and by["cup"]["n"] == by["chair"]["n"] == 3
    assert by["cup"]["pose_error_share"] == pytest.approx(1.0) and by["chair"]["pose_error_share"] < 1e-3
    assert by["cup"]["pose_mean_deg"] > 10.0 and by["chair"]["pose_mean_deg"] < 0.01
    assert by["cup"]["top1"] == by["chair"]["top1"] == 1.0
    result = {"split": "graphics", "ranking": "classifier", "models": {"scratch": m}}
    write_report(tmp_path / "r", result, raw, queries, render_predicted=False)
    md = (tmp_path / "r" / "report.md").read_text()
    assert "## By category of the true model" in md and "| cup | scratch | 3 | 100.0 % |" in md


def test_missing_models(workspace, model_ids, graphics_truth, tmp_path) -> None:
    only = answerers(scratch=FakePredictor(model_ids, graphics_truth))
    notes: list[str] = []
    result = run_evaluation(
        workspace, "both", "graphics", report_dir=tmp_path / "r", views_per_model=3, progress=False,
        answerers=only, render_predicted=False, warn=notes.append,
    )  # fmt: skip
    assert set(result["models"]) == {"scratch"} and len(notes) == 1 and "transfer" in notes[0]
    with pytest.raises(InputError, match="transfer"):
        run_evaluation(workspace, "transfer", "graphics", report_dir=tmp_path / "r2", progress=False, answerers=only)
    with pytest.raises(InputError, match="unknown model"):
        run_evaluation(workspace, "vgg", "graphics", progress=False, answerers=only)
    with pytest.raises(InputError, match="unknown ranking"):
        run_evaluation(workspace, "scratch", "graphics", progress=False, answerers=only, ranking="softmax")
    with pytest.raises(InputError, match="neither 'graphics' nor"):
        run_evaluation(workspace, "scratch", tmp_path / "nope.csv", progress=False, answerers=only)


def test_without_checkpoints_the_error_says_what_to_train(workspace) -> None:
    with pytest.raises(InputError, match="cadsearch train scratch"):
        run_evaluation(workspace, "scratch", "graphics", progress=False)
    for ranking in ("index", "classifier"):
        with pytest.raises(InputError, match="cadsearch train"):
            run_evaluation(workspace, "both", "graphics", progress=False, ranking=ranking, warn=lambda _: None)


def test_photo_split_report(workspace, model_ids, tmp_path) -> None:
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    lines = ["photo,model_id,polar_deg,azimuth_deg,confidence"]
    for i, az in enumerate((0, 45, 120, 200, 300)):
        Image.fromarray(rng.integers(0, 255, (20 + i, 30, 3), dtype=np.uint8)).save(folder / f"p{i}.jpg")
        lines.append(f"p{i}.jpg,,{60 + i},{az},high")
    lines.append("gone.jpg,,70,10,low")
    csv_path = folder / "dev set.csv"
    csv_path.write_text("\n".join(lines) + "\n")

    warnings: list[str] = []
    constant = FakePredictor(model_ids, constant=True)
    result = run_evaluation(
        workspace, "transfer", csv_path, mirror_photos=True, progress=False,
        ranking="classifier", answerers=answerers(transfer=constant), warn=warnings.append,
    )  # fmt: skip
    _check_design_json(result, "dev set", {"transfer"})
    m = result["models"]["transfer"]
    assert m["n"] == 10 and m["top1"] is None and m["top5"] is None and m["pose_mean_deg"] > 20
    extra = m["extra"]
    assert extra["skipped_queries"] == 1 and len(warnings) == 1 and "gone.jpg" in warnings[0]
    assert extra["azimuth"]["n"] == 10 and extra["sector_balanced_acc30"]["azimuth"] is not None
    assert sum(s["n"] for s in extra["sectors"]) == 10
    out = workspace / "reports" / "eval-dev set"
    md = (out / "report.md").read_text()
    assert "## Azimuth alone" in md and "## Per azimuth sector" in md and "mirror" in md
    rows = read_raw(out / "raw_transfer.csv")
    assert len(rows) == 10 and sum(r["mirrored"] for r in rows) == 5 and rows[0]["confidence"] == "high"
    assert not list(out.glob(".*.tmp"))
