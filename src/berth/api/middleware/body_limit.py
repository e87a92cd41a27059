"""The request body limit: no route reads a body larger than `BERTH_MAX_REQUEST_BYTES`.

A `Content-Length` over the limit is answered 413 before the application runs, so the body is
never read and no handler acts on the request. A body without a length (chunked) is counted
as it streams in; the read that crosses the limit raises `RequestBodyTooLarge`, which FastAPI
passes through its body parsing unchanged, so the route's handler never runs and the client
gets the same 413. Either way at most `limit` bytes (plus one network read) are held.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from berth.api.errors import error_body

TOO_LARGE_CODE = "request_too_large"


class RequestBodyTooLarge(HTTPException):
    """A request body crossed the limit while it was read (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit))
        self.limit = limit


def too_large_message(limit: int) -> str:
    return f"request body too large: at most {limit} bytes (BERTH_MAX_REQUEST_BYTES)"


def too_large_response(limit: int) -> JSONResponse:
    """The 413 answer; `Connection: close`, since the unread rest of the body is dropped."""
    return JSONResponse(
        error_body(too_large_message(limit), code=TOO_LARGE_CODE, limit_bytes=limit),
        status_code=413,
        headers={"Connection": "close"},
    )


class BodySizeLimit:
    """ASGI middleware enforcing the limit on every HTTP route (WebSockets carry no body)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = _content_length(headers)
        if declared is not None and declared > self.max_bytes:
            await too_large_response(self.max_bytes)(scope, receive, send)
            return
        if declared == 0 or (declared is None and "transfer-encoding" not in headers):
            # No body (HTTP/1.1 has one only with a length or a transfer coding): nothing to
            # count, so no wrappers on the path of every GET.
            await self.app(scope, receive, send)
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestBodyTooLarge(self.max_bytes)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except RequestBodyTooLarge:
            # Normally the app's own error handler has answered; this covers a body read
            # outside a route (a middleware), where no handler is installed.
            if started:
                raise
            await too_large_response(self.max_bytes)(scope, receive, send)


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


async def _too_large_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestBodyTooLarge)
    return too_large_response(exc.limit)


def install_body_limit(app: FastAPI, *, max_bytes: int) -> None:
    """The middleware, and the handler that answers a body cut off inside a route."""
    app.add_exception_handler(RequestBodyTooLarge, _too_large_error)
    app.add_middleware(BodySizeLimit, max_bytes=max_bytes)
