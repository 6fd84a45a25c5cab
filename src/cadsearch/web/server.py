"""Running the app: :func:`serve` (what ``cadsearch serve`` and ``cadsearch demo`` call)."""

from __future__ import annotations

import os
from pathlib import Path

from cadsearch.errors import CadsearchError, InputError

__all__ = ["serve", "DEFAULT_HOST", "DEFAULT_PORT"]

DEFAULT_HOST = "127.0.0.1"  # loopback: exposing the app to a network is an explicit choice (--host 0.0.0.0)
DEFAULT_PORT = 8000


def serve(
    workspace: str | os.PathLike[str] | None = None,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    **settings_overrides,
) -> None:
    """Serve the web app for ``workspace`` on http://host:port until interrupted (Ctrl+C).

    ``settings_overrides`` set :class:`~cadsearch.web.settings.Settings` fields (e.g. ``model="transfer"``,
    ``examples_dir=Path(...)``); the rest come from ``CADSEARCH_WEB_*`` variables.

    Raises:
        InputError: the port is taken or not allowed, a setting is out of range, or a detection threshold is set
            without a trained detector.
        CadsearchError: the web dependencies are not installed.
    """
    import socket

    try:
        import uvicorn

        from cadsearch.web.app import create_app
    except ImportError as err:
        raise CadsearchError(
            f"the web app needs FastAPI and uvicorn ({err}); pip install fastapi uvicorn python-multipart"
        ) from None
    from cadsearch.web.settings import Settings

    if not 0 < int(port) < 65536:
        raise InputError(f"--port must be between 1 and 65535, got {port}")
    # Fail with one line, before loading anything, when the address is unusable.
    try:
        with socket.create_server((host, int(port))):
            pass
    except OSError as err:
        raise InputError(f"cannot listen on {host}:{port}: {err.strerror or err}; choose another --port") from None
    settings = Settings.from_env(workspace, **settings_overrides)
    if settings.detect_threshold is not None:
        from cadsearch.detect import has_detector

        if not has_detector(settings.workspace):  # refused now, not as a page that says search is not ready
            raise InputError("--detect-threshold needs a trained detector: run `cadsearch train detector` first")
    app = create_app(settings)
    shown = f"[{host}]" if ":" in host else host
    print(f"cadsearch web app for {Path(settings.workspace)}: http://{shown}:{port}/  (Ctrl+C stops it)", flush=True)
    uvicorn.run(app, host=host, port=int(port), log_level="info", server_header=False)
