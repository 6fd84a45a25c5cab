"""Shared dependencies of the routers: settings, the searcher, the library, caches, and id validation.

The heavy objects are made once (the searcher in the app's lifespan, the rest in :func:`create_app`) and kept on
``app.state``; these functions only hand them out, so tests can swap any of them with
``app.dependency_overrides``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from fastapi import HTTPException, Request

from cadsearch.library.catalog import MODEL_ID_PATTERN
from cadsearch.web.assets import ModelAssets
from cadsearch.web.settings import Settings
from cadsearch.web.store import ResultStore

__all__ = [
    "get_settings",
    "get_searcher",
    "get_library",
    "get_assets",
    "get_store",
    "get_examples",
    "valid_model_id",
    "NOT_READY",
]

NOT_READY = "search is not ready: the server has no trained model and index loaded"


@lru_cache
def get_settings() -> Settings:
    """The process's settings from the environment, read once (``create_app(settings)`` overrides this)."""
    return Settings.from_env()


def get_searcher(request: Request) -> Any:
    """The searcher loaded at start-up; 503 with the reason when there is none (e.g. no index yet)."""
    searcher = getattr(request.app.state, "searcher", None)
    if searcher is None:
        raise HTTPException(503, getattr(request.app.state, "searcher_error", None) or NOT_READY)
    return searcher


def get_library(request: Request) -> Any:
    """The model library (a :class:`cadsearch.library.Library`)."""
    return request.app.state.library


def get_assets(request: Request) -> ModelAssets:
    """Thumbnails, GLB files and overlays of library models."""
    return request.app.state.assets


def get_store(request: Request) -> ResultStore:
    """Recent searches of the results pages."""
    return request.app.state.store


def get_examples(request: Request) -> list:
    """The home page's example images (found at start-up)."""
    return getattr(request.app.state, "examples", [])


def valid_model_id(model_id: str) -> str:
    """``model_id`` if it is well-formed; otherwise 404 before anything touches the disk.

    Ids that try to leave the workspace (``..``, ``/``, ``%2e%2e%2f`` once decoded, NUL, newlines) never
    match the catalog's id pattern, so they get the same answer as any unknown id.
    """
    if not MODEL_ID_PATTERN.fullmatch(model_id):
        raise HTTPException(404, f"there is no model with the id {model_id[:60]!r}")
    return model_id
