"""The web app: upload a photo, see the ranked 3D models with score, pose, overlay and a 3D view.

- :func:`create_app` — the FastAPI application (pages, JSON API under ``/api``, ``/healthz``, docs at ``/docs``).
- :func:`serve` — run it with uvicorn (``cadsearch serve``).
- :class:`Settings` — limits and options, from ``CADSEARCH_WEB_*`` environment variables.

Importing this package does not import FastAPI; the names load on first use, so the rest of cadsearch works
without the web dependencies installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__all__ = ["create_app", "serve", "Settings"]

if TYPE_CHECKING:
    from cadsearch.web.app import create_app
    from cadsearch.web.server import serve
    from cadsearch.web.settings import Settings


def __getattr__(name: str) -> Any:
    if name == "create_app":
        from cadsearch.web.app import create_app

        return create_app
    if name == "serve":
        from cadsearch.web.server import serve

        return serve
    if name == "Settings":
        from cadsearch.web.settings import Settings

        return Settings
    raise AttributeError(f"module 'cadsearch.web' has no attribute {name!r}")
