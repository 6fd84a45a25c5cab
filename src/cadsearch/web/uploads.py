"""Upload size limits, enforced while the body streams in (never by reading an unbounded body first).

Two layers: :class:`BodyLimitMiddleware` refuses a request whose declared ``Content-Length`` is too large before
reading a byte, and stops a chunked or lying upload as soon as the bytes received pass the limit; then
:func:`read_upload` reads the parsed file part in chunks and stops at the limit (the multipart parser spools
parts to a temporary file past 1 MB, so memory stays bounded either way).
"""

from __future__ import annotations

from fastapi import HTTPException, UploadFile
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["BodyLimitMiddleware", "UploadTooLarge", "read_upload", "too_large_message", "MULTIPART_SLACK"]

#: Room for the multipart envelope (boundaries, part headers, other small fields) on top of the file limit.
MULTIPART_SLACK = 64 * 1024
_CHUNK = 256 * 1024


def too_large_message(limit: int) -> str:
    """The one sentence a person sees for an upload over ``limit`` bytes."""
    return f"the upload is larger than the limit of {limit / 2**20:.0f} MB; choose a smaller photo"


class UploadTooLarge(HTTPException):
    """413 with a readable message."""

    def __init__(self, limit: int):
        super().__init__(status_code=413, detail=too_large_message(limit))


class BodyLimitMiddleware:
    """Pure ASGI middleware: at most ``file_limit + MULTIPART_SLACK`` bytes of request body, else 413.

    Raising inside ``receive`` aborts the multipart parser mid-stream; FastAPI re-raises an HTTPException from
    body parsing unchanged, so the app's handler turns it into the 413 page or JSON. If it escapes anyway (a
    body read outside a route), this middleware answers 413 itself.
    """

    def __init__(self, app: ASGIApp, file_limit: int):
        self.app = app
        self.file_limit = file_limit
        self.body_limit = file_limit + MULTIPART_SLACK

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.body_limit:
            await self._reply_413(scope, receive, send)
            return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.body_limit:
                    raise UploadTooLarge(self.file_limit)
            return message

        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except UploadTooLarge:
            if started:
                raise
            await self._reply_413(scope, receive, send)

    async def _reply_413(self, scope: Scope, receive: Receive, send: Send) -> None:
        from cadsearch.web.errors import error_response  # late: errors imports this module's names

        response = error_response(scope, 413, too_large_message(self.file_limit))
        # Connection: close tells the client not to keep sending a body that nobody will read.
        response.headers["connection"] = "close"
        await response(scope, receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def read_upload(file: UploadFile, limit: int) -> bytes:
    """The bytes of an uploaded file part, read in chunks; :class:`UploadTooLarge` past ``limit`` bytes."""
    if file.size is not None and file.size > limit:
        raise UploadTooLarge(limit)
    parts: list[bytes] = []
    total = 0
    while chunk := await file.read(_CHUNK):
        total += len(chunk)
        if total > limit:
            raise UploadTooLarge(limit)
        parts.append(chunk)
    return b"".join(parts)
