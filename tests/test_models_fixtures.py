"""Fixtures shared by the tests of cadsearch.models (imported by the test_models_* modules)."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import private_copy, render_tiny_workspace


@pytest.fixture(scope="session", name="tiny_views_master")
def tiny_views_master_fixture(tmp_path_factory) -> Path:
    """A workspace with 3 procedural chairs × 8 views at 64 px, rendered once per session (do not write in it)."""
    return render_tiny_workspace(tmp_path_factory.mktemp("tiny_views"), chairs=3, views=8, size=64)


@pytest.fixture(name="tiny_views")
def tiny_views_fixture(tiny_views_master, tmp_path) -> Path:
    """A private copy of the tiny rendered workspace (tests may write checkpoints into it)."""
    return private_copy(tiny_views_master, tmp_path)
