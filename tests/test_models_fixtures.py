"""Fixtures shared by the tests of cadsearch.models (imported by the test_models_* modules)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session", name="tiny_views_master")
def tiny_views_master_fixture(tmp_path_factory) -> Path:
    """A workspace with 3 procedural chairs × 8 views at 64 px, rendered once per session (do not write in it)."""
    from cadsearch.library import Library
    from cadsearch.render.job import RenderConfig, render_views

    ws = tmp_path_factory.mktemp("tiny_views")
    Library.open(ws).generate_chairs(3)
    render_views(ws, RenderConfig(views=8, size=64), progress=False)
    return ws


@pytest.fixture(name="tiny_views")
def tiny_views_fixture(tiny_views_master, tmp_path) -> Path:
    """A private copy of the tiny rendered workspace (tests may write checkpoints into it)."""
    import shutil

    ws = tmp_path / "ws"
    shutil.copytree(tiny_views_master, ws)
    return ws
