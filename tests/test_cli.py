"""The command line: exit codes, one-line errors, and the library/render/demo commands end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import trimesh

from cadsearch.cli import main
from cadsearch.demo import _shared_data


def run(capsys, *args: str) -> tuple[int, str, str]:
    """Run ``cadsearch *args`` in-process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    out = capsys.readouterr()
    return stop.value.code, out.out, out.err


def error_lines(err: str) -> list[str]:
    """stderr without progress-bar lines."""
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_library_add_reports_each_bad_file_and_adds_the_good(tmp_path: Path, capsys) -> None:
    good = tmp_path / "good.stl"
    trimesh.creation.box().export(good)
    corrupt = tmp_path / "corrupt.obj"
    corrupt.write_bytes(b"v 0 0 0\nv 1 nan\nf 1 2 9999\n\x00\xff garbage")
    text = tmp_path / "notes.txt"
    text.write_text("not a mesh")
    missing = tmp_path / "missing.ply"
    ws = str(tmp_path / "ws")
    code, out, err = run(capsys, "--workspace", ws, "library", "add", str(good), str(corrupt), str(text), str(missing))
    assert code == 1
    lines = error_lines(err)
    assert len(lines) == 3, err
    for name in ("corrupt.obj", "notes.txt", "missing.ply"):
        assert sum(name in line for line in lines) == 1
    assert "Traceback" not in err
    code, out, _ = run(capsys, "--workspace", ws, "library", "list", "--json")
    assert code == 0
    models = json.loads(out)
    assert [m["model_id"] for m in models] == ["good"]
    # Adding the same file again is a no-op.
    code, out, _ = run(capsys, "--workspace", ws, "library", "add", str(good))
    assert code == 0 and "1 already in the catalog" in out


def test_usage_errors_are_one_line_with_exit_2(tmp_path: Path, capsys) -> None:
    ws = str(tmp_path / "ws")
    code, _, err = run(capsys, "--workspace", ws, "render", "--views", "0")
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("error:")
    code, _, err = run(capsys, "--workspace", ws, "render", "--no-such-option")
    assert code == 2 and len(err.strip().splitlines()) == 1
    code, _, err = run(capsys, "--workspace", ws, "library", "add")
    assert code == 2 and "give mesh files" in err
    code, _, err = run(capsys, "--workspace", ws, "render")
    assert code == 2 and "library is empty" in err
    code, _, err = run(capsys, "--workspace", ws, "render", "--model", "ghost", "--views", "1")
    assert code == 2 and "unknown model id" in err


def test_generate_render_and_demo(tmp_path: Path, capsys) -> None:
    ws = str(tmp_path / "ws")
    code, out, _ = run(capsys, "--workspace", ws, "library", "generate-chairs", "3", "--seed", "1")
    assert code == 0 and "generated 3" in out
    code, out, _ = run(capsys, "--workspace", ws, "library", "list")
    assert code == 0 and "3 model(s)" in out
    code, out, _ = run(capsys, "--workspace", ws, "render", "--views", "2", "--size", "32")
    assert code == 0 and "rendered 6 view(s)" in out
    code, out, _ = run(
        capsys,
        "--workspace",
        ws,
        "demo",
        "--chairs",
        "3",
        "--views",
        "8",
        "--size",
        "32",
        "--workers",
        "1",
        "--train-minutes",
        "0.05",
        "--photos",
        "3",
        "--no-serve",
    )
    assert code == 0, out
    reports = Path(ws) / "reports"
    assert (reports / "demo_library.png").exists() and (reports / "demo_overlay_0.png").exists()
    assert (reports / "eval-graphics" / "report.md").exists()
    assert "score" in out and "top-1" in out
    if _shared_data() is not None:  # the shared data is there: evaluated on its first 3 photos only
        rows = json.loads((reports / "experiment.json").read_text())["rows"]
        assert {(r["split"], r["n"]) for r in rows if r["split"] != "graphics"} == {("dev_viewpoints_first3", 3)}
