"""``--engine`` of ``render`` and ``index`` without Ray: a bad engine name, and Ray not installed, are one line
each with exit code 2 and no work done (these tests need no Ray; the engine itself is tested in
``test_ray_engine.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from cadsearch.cli import main
from cadsearch.library import Library


def run(capsys, *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as stop:
        main(list(args))
    return stop.value.code, capsys.readouterr().err


@pytest.fixture()
def ws(tmp_path: Path) -> Path:
    Library.open(tmp_path / "ws").generate_chairs(1)
    return tmp_path / "ws"


@pytest.mark.parametrize("command", [["render", "--views", "2"], ["index"]])
def test_without_ray_the_cli_says_how_to_install_it(ws: Path, capsys, monkeypatch, command: list[str]) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # as if not installed: `import ray` raises ImportError
    code, err = run(capsys, "--workspace", str(ws), *command, "--engine", "ray")
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2
    assert lines == ["error: the ray engine needs Ray; install it with `pip install cadsearch[scale]`"]
    assert not (ws / "views").exists()  # nothing started


@pytest.mark.parametrize("command", [["render", "--views", "2"], ["index"]])
def test_an_unknown_engine_is_one_line(ws: Path, capsys, command: list[str]) -> None:
    code, err = run(capsys, "--workspace", str(ws), *command, "--engine", "spark")
    assert code == 2 and err.strip().splitlines() == ["error: --engine must be local or ray, got 'spark'"]
