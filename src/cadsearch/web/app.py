"""The FastAPI application: :func:`create_app` assembles routers, static files, error handlers and the lifespan.

Start-up (``lifespan``) loads the searcher once — the trained model and the index — and shares it read-only
with every request; if the workspace has no index yet the app still serves the library pages and answers
searches with 503 and the reason, so a half-built workspace is browsable.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import anyio.to_thread
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles

from cadsearch import __version__
from cadsearch.errors import CadsearchError
from cadsearch.library import Library
from cadsearch.web.assets import ModelAssets
from cadsearch.web.deps import get_settings
from cadsearch.web.errors import install_error_handlers
from cadsearch.web.examples import find_examples
from cadsearch.web.routers import api, health, pages
from cadsearch.web.settings import Settings
from cadsearch.web.store import ResultStore
from cadsearch.web.templating import STATIC_DIR
from cadsearch.web.uploads import BodyLimitMiddleware

__all__ = ["create_app", "load_searcher"]

log = logging.getLogger("cadsearch.web")

DESCRIPTION = """Find the 3D model in your library that a photo shows, and the camera pose it was taken from.

`POST /api/search` with a photo returns the ranked models, each with a score in [0, 1] and the estimated camera
pose (polar and azimuth in degrees; polar 0 = from straight above, 90 = level; azimuth 0 = front view,
90 = the object's left side)."""


def load_searcher(settings: Settings) -> Any:
    """The searcher of ``settings.workspace`` (slow: loads the model and the index), finding objects down to
    ``settings.detect_threshold`` when it is set.

    Raises:
        CadsearchError: no trained model or index in the workspace (the message says what to run), or a detection
            threshold without a trained detector.
    """
    try:
        from cadsearch.search import Searcher
    except ImportError as err:  # pragma: no cover - depends on which parts of the project are installed
        raise CadsearchError(f"search is not available in this installation ({err})") from None
    searcher = Searcher.from_workspace(settings.workspace, model=settings.model)
    if settings.detect_threshold is not None:
        searcher.set_detect_threshold(settings.detect_threshold)
    return searcher


def create_app(settings: Settings | None = None, searcher: Any = None) -> FastAPI:
    """The web app for ``settings`` (default: from the environment, see :class:`Settings`).

    ``searcher`` (anything with ``library`` and ``search(image, k)``) skips loading the workspace's own, e.g. a
    :class:`cadsearch.web.testing.FakeSearcher` for tests and benchmarks.
    """
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.search_limiter = anyio.CapacityLimiter(settings.search_slots)
        if app.state.searcher is None:
            try:
                app.state.searcher = await anyio.to_thread.run_sync(load_searcher, settings)
                app.state.library = getattr(app.state.searcher, "library", None) or app.state.library
                app.state.assets.library = app.state.library
                log.info("searcher loaded from %s", settings.workspace)
            except CadsearchError as err:
                app.state.searcher_error = f"search is not ready: {err}"
                log.warning("%s; the library pages still work", app.state.searcher_error)
            except Exception:  # a broken index must not take the library pages down with it
                log.exception("loading the searcher failed")
                app.state.searcher_error = "search is not ready: loading the model and index failed (see the log)"
        app.state.examples = await anyio.to_thread.run_sync(
            find_examples, settings.workspace, settings.examples_dir, settings.max_examples
        )
        yield
        app.state.assets.close()

    app = FastAPI(
        title="cadsearch",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        # No "/x/" → "/x" redirects: they would turn "/models/%2e%2e%2f" into a redirect to "/models/.." instead of
        # a plain 404, and every real link of the app is written without a trailing slash anyway.
        redirect_slashes=False,
        openapi_tags=[
            {"name": "api", "description": "Search photos and read the model library (JSON, PNG, GLB)."},
            {"name": "health", "description": "Liveness and readiness."},
        ],
    )
    # Every route reads the settings through this dependency, so the explicit ones win everywhere.
    app.dependency_overrides[get_settings] = lambda: settings

    library = getattr(searcher, "library", None) or Library.open(settings.workspace)
    app.state.settings = settings
    app.state.searcher = searcher
    app.state.searcher_error = None
    app.state.library = library
    app.state.assets = ModelAssets(library, settings.workspace, settings.thumbnail_size)
    app.state.store = ResultStore(settings.results_kept)
    app.state.examples = []
    app.state.search_limiter = None

    app.add_middleware(BodyLimitMiddleware, file_limit=settings.max_upload_bytes)
    install_error_handlers(app)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.include_router(pages.router)
    app.include_router(api.router)
    app.include_router(health.router)
    return app
