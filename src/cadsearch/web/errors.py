"""Errors as people and programs should see them: a readable sentence, never a traceback.

API paths (``/api``, ``/healthz``) and clients that do not ask for HTML get ``{"detail": "..."}``; browsers get
the site's error page. Unexpected exceptions are logged with their traceback and answered with a generic 500.
"""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import Scope

from cadsearch.errors import CadsearchError, InputError
from cadsearch.web.templating import templates

__all__ = ["install_error_handlers", "error_response", "wants_html"]

log = logging.getLogger("cadsearch.web")

_TITLES = {
    400: "That did not work",
    404: "Not found",
    405: "Not allowed",
    413: "File too large",
    422: "Invalid request",
    500: "Something went wrong",
    503: "Search is not ready",
}
_DEFAULT_DETAIL = {
    404: "There is nothing at this address.",
    405: "This address does not accept that kind of request.",
    500: "An unexpected error occurred on the server. It has been logged; please try again.",
}
_API_PREFIXES = ("/api", "/healthz", "/openapi.json", "/docs", "/redoc")


def wants_html(scope: Scope) -> bool:
    """True for browser page requests, False for the JSON API and for clients that do not accept HTML."""
    path = scope.get("path", "")
    if path.startswith(_API_PREFIXES):
        return False
    accept = next((v for k, v in scope.get("headers", []) if k == b"accept"), b"").decode("latin-1")
    return "text/html" in accept


def error_response(scope: Scope, status: int, detail: str | None = None, headers: dict | None = None) -> Response:
    """The error ``status`` with ``detail`` (a sentence for people) as JSON or as the HTML error page."""
    detail = detail or _DEFAULT_DETAIL.get(status) or "The request could not be handled."
    if wants_html(scope):
        html = templates.get_template("error.html").render(
            status=status, title=_TITLES.get(status, "Error"), detail=detail, active=""
        )
        return HTMLResponse(html, status_code=status, headers=headers)
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def _validation_message(exc: RequestValidationError) -> str:
    """One readable line from pydantic's error list, without echoing the (possibly huge) input back."""
    parts = []
    for err in exc.errors()[:3]:
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path"))
        parts.append(f"{where}: {err.get('msg', 'invalid')}" if where else str(err.get("msg", "invalid")))
    return "invalid request — " + "; ".join(parts)


def install_error_handlers(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> Response:
        detail = (
            exc.detail
            if isinstance(exc.detail, str) and exc.detail not in ("Not Found", "Method Not Allowed")
            else None
        )
        return error_response(request.scope, exc.status_code, detail, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request.scope, 422, _validation_message(exc))

    @app.exception_handler(InputError)
    async def _input_error(request: Request, exc: InputError) -> Response:
        return error_response(request.scope, 400, str(exc))

    @app.exception_handler(CadsearchError)
    async def _known_failure(request: Request, exc: CadsearchError) -> Response:
        # A failure the project describes in a sentence (e.g. no OpenGL): say it, but still log it.
        log.error("%s %s failed: %s", request.method, request.url.path, exc)
        return error_response(request.scope, 500, str(exc))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return error_response(request.scope, 500)
