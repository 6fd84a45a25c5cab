"""The reference's experiment as one table: several splits evaluated in one `cadsearch evaluate` run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import cadsearch.evaluate as evaluate_pkg
from cadsearch.cli import main
from cadsearch.evaluate.experiment import experiment_markdown, experiment_rows, write_experiment


def fake_result(split: str, recognition: bool) -> dict:
    def m(pose: float) -> dict:
        return {
            "n": 10,
            "top1": 0.9 if recognition else None,
            "top5": 1.0 if recognition else None,
            "pose_mean_deg": pose,
            "pose_median_deg": pose / 2,
            "acc15": 0.8,
            "acc30": 0.95,
            "extra": {"azimuth": {"median_deg": pose / 3}, "sector_balanced_acc30": {"azimuth": 0.7}},
        }

    return {"split": split, "models": {"scratch": m(8.0), "transfer": m(6.0)}}


def test_rows_and_markdown_put_every_split_and_model_side_by_side(tmp_path: Path) -> None:
    results = [fake_result("graphics", True), fake_result("dev_viewpoints", False)]
    rows = experiment_rows(results)
    assert [(r["split"], r["model"]) for r in rows] == [
        ("graphics", "scratch"),
        ("graphics", "transfer"),
        ("dev_viewpoints", "scratch"),
        ("dev_viewpoints", "transfer"),
    ]
    table = experiment_markdown(results).splitlines()
    assert len(table) == 2 + 4
    assert "| graphics | index | scratch | 10 | 90.0 % |" in table[2]
    assert "| dev_viewpoints | index | transfer | 10 | – | – | 6.0° |" in table[5]  # photos: no recognition
    path = write_experiment(tmp_path, results)
    assert path.read_text().count("| dev_viewpoints |") == 2
    assert len(json.loads((tmp_path / "experiment.json").read_text())["rows"]) == 4


def test_cli_evaluates_each_split_then_writes_the_experiment(tmp_path: Path, monkeypatch, capsys) -> None:
    photos = tmp_path / "dev_viewpoints.csv"
    photos.write_text("photo,model_id,polar_deg,azimuth_deg\n")
    calls = []

    def fake_run(workspace, models, split, report_dir, **kwargs):
        calls.append((str(split), report_dir))
        return fake_result("graphics" if split == "graphics" else Path(split).stem, split == "graphics")

    monkeypatch.setattr(evaluate_pkg, "run_evaluation", fake_run)
    ws, out = tmp_path / "ws", tmp_path / "out"
    with pytest.raises(SystemExit) as exc:
        main(["--workspace", str(ws), "evaluate", "--split", "graphics", "--split", str(photos), "--report", str(out)])
    assert exc.value.code in (0, None)
    assert calls == [("graphics", out / "eval-graphics"), (str(photos), out / "eval-dev_viewpoints")]
    text = capsys.readouterr().out
    assert "| dev_viewpoints | index | scratch |" in text and (out / "experiment.md").is_file()


def test_cli_checks_every_split_before_evaluating(tmp_path: Path, monkeypatch, capsys) -> None:
    monkeypatch.setattr(evaluate_pkg, "run_evaluation", lambda *a, **k: pytest.fail("must not start"))
    with pytest.raises(SystemExit) as exc:
        main(["--workspace", str(tmp_path), "evaluate", "--split", "graphics", "--split", str(tmp_path / "no.csv")])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("error:") == 1 and "no.csv" in err and "Traceback" not in err


def test_cli_puts_the_classifier_ablation_beside_the_search(tmp_path: Path, monkeypatch, capsys) -> None:
    calls = []

    def fake_run(workspace, models, split, report_dir, **kwargs):
        calls.append((kwargs["ranking"], report_dir))
        return fake_result("graphics", True) | {"ranking": kwargs["ranking"]}

    monkeypatch.setattr(evaluate_pkg, "run_evaluation", fake_run)
    ws = tmp_path / "ws"
    with pytest.raises(SystemExit) as exc:
        main(["--workspace", str(ws), "evaluate", "--ranking", "index", "--ranking", "classifier"])
    assert exc.value.code in (0, None)
    reports = ws / "reports"
    assert calls == [("index", reports / "eval-graphics"), ("classifier", reports / "eval-graphics-classifier")]
    text = capsys.readouterr().out
    assert "| graphics | index | scratch |" in text and "| graphics | classifier | scratch |" in text
    with pytest.raises(SystemExit) as exc:
        main(["--workspace", str(ws), "evaluate", "--ranking", "softmax"])
    assert exc.value.code == 2 and "--ranking" in capsys.readouterr().err
