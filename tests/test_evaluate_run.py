"""End to end: raw predictions → metrics → report, with fake predictors on a tiny workspace."""

from __future__ import annotations

import hashlib
import json
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import cadsearch.evaluate.report as report_mod
import cadsearch.evaluate.run as run_mod
from cadsearch.errors import InputError
from cadsearch.evaluate import DESIGN_KEYS, design_json, graphics_split, model_metrics, run_evaluation
from cadsearch.evaluate.run import read_raw
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
        self.calls = 0

    def predict(self, images, batch_size=64):
        self.calls += 1
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


def _check_design_json(result: dict, split: str, archs: set[str]) -> None:
    assert set(result) == {"split", "models"} and result["split"] == split
    assert set(result["models"]) == archs
    for m in result["models"].values():
        assert set(m) == {*DESIGN_KEYS, "extra"}
        assert isinstance(m["n"], int) and m["n"] > 0
        for k in ("top1", "top5", "acc15", "acc30"):
            assert m[k] is None or (isinstance(m[k], float) and 0.0 <= m[k] <= 1.0)
        for k in ("pose_mean_deg", "pose_median_deg"):
            assert m[k] is None or (isinstance(m[k], float) and 0.0 <= m[k] <= 180.0)
    plain = design_json(result)
    assert all(set(m) == set(DESIGN_KEYS) for m in plain["models"].values())
    json.dumps(result, allow_nan=False)  # valid strict JSON: no NaN anywhere


def test_graphics_perfect_vs_constant(workspace, model_ids, graphics_truth, tmp_path, monkeypatch) -> None:
    written: list[Path] = []

    def record(fn):
        def wrapper(path, *args, **kwargs):
            written.append(Path(path))
            return fn(path, *args, **kwargs)

        return wrapper

    for mod, names in (
        (report_mod, ("atomic_write_bytes", "atomic_write_json", "atomic_write_text")),
        (run_mod, ("atomic_write_text",)),
    ):
        for name in names:
            monkeypatch.setattr(mod, name, record(getattr(mod, name)))

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
        predictors={"scratch": perfect, "transfer": constant},
        batch_size=4,
        warn=notes.append,
    )
    _check_design_json(result, "graphics", {"scratch", "transfer"})
    good, bad = result["models"]["scratch"], result["models"]["transfer"]
    assert good["n"] == bad["n"] == 6 and perfect.calls == 2  # 6 queries in batches of 4
    assert good["top1"] == 1.0 and good["top5"] == 1.0
    assert good["pose_mean_deg"] < 0.01 and good["acc15"] == 1.0 and good["acc30"] == 1.0
    assert bad["top1"] == 0.0 and bad["pose_mean_deg"] > 20.0 and bad["acc15"] < 1.0
    assert set(good["extra"]["per_model"]) == set(model_ids)
    assert not notes

    names = {p.name for p in out.iterdir()}
    expected = {"report.md", "metrics.json", "raw_scratch.csv", "raw_transfer.csv", "pose_error_hist.png"}
    expected |= {"error_vs_azimuth.png", "sector_acc30.png", "worst_scratch.png", "worst_transfer.png"}
    assert names == expected
    assert {p.name for p in written if p.parent == out} == expected  # every file went through an atomic write
    for name in expected:
        if name.endswith(".png"):
            with Image.open(out / name) as im:
                assert im.size[0] > 200 and im.size[1] > 100
    stored = json.loads((out / "metrics.json").read_text())
    assert stored["models"] == result["models"] and stored["split"] == "graphics"
    md = (out / "report.md").read_text()
    assert "| top-1 | 100.0 % | 0.0 % |" in md and "## Per model" in md and "worst_scratch.png" in md

    # Stage 2 can be recomputed from the raw file alone.
    again = model_metrics(read_raw(out / "raw_transfer.csv"), "graphics")
    assert again == result["models"]["transfer"]


def test_missing_models(workspace, model_ids, graphics_truth, tmp_path) -> None:
    only = {"scratch": FakePredictor(model_ids, graphics_truth)}
    notes: list[str] = []
    result = run_evaluation(
        workspace, "both", "graphics", report_dir=tmp_path / "r", views_per_model=3, progress=False,
        predictors=only, render_predicted=False, warn=notes.append,
    )  # fmt: skip
    assert set(result["models"]) == {"scratch"} and len(notes) == 1 and "transfer" in notes[0]
    with pytest.raises(InputError, match="transfer"):
        run_evaluation(workspace, "transfer", "graphics", report_dir=tmp_path / "r2", progress=False, predictors=only)
    with pytest.raises(InputError, match="unknown model"):
        run_evaluation(workspace, "vgg", "graphics", progress=False, predictors=only)
    with pytest.raises(InputError, match="neither 'graphics' nor"):
        run_evaluation(workspace, "scratch", tmp_path / "nope.csv", progress=False, predictors=only)


def test_checkpoints_are_loaded_through_the_models_contract(workspace, model_ids, tmp_path, monkeypatch) -> None:
    """Without ``predictors``, checkpoints come from ``cadsearch.models`` (faked here: it may not exist yet)."""
    fake = types.ModuleType("cadsearch.models")
    fake.checkpoint_path = lambda ws, arch: Path(ws) / "checkpoints" / arch / "best.pt"
    loaded: list[Path] = []

    def load_predictor(path):
        loaded.append(Path(path))
        return FakePredictor(model_ids, constant=True)

    fake.load_predictor = load_predictor
    monkeypatch.setitem(sys.modules, "cadsearch.models", fake)
    with pytest.raises(InputError, match="cadsearch train scratch"):
        run_evaluation(workspace, "scratch", "graphics", progress=False)
    with pytest.raises(InputError, match="no trained model"):
        run_evaluation(workspace, "both", "graphics", progress=False, warn=lambda _: None)
    ckpt = workspace / "checkpoints" / "transfer" / "best.pt"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    ckpt.write_bytes(b"fake")
    notes: list[str] = []
    result = run_evaluation(
        workspace, "both", "graphics", views_per_model=3, progress=False, render_predicted=False, warn=notes.append
    )
    assert set(result["models"]) == {"transfer"} and loaded == [ckpt]
    assert any("scratch" in n for n in notes)
    assert (workspace / "reports" / "eval-graphics" / "report.md").is_file()


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
        predictors={"transfer": constant}, warn=warnings.append,
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
