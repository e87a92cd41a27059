"""The request body limit: no route reads a body larger than `BERTH_MAX_REQUEST_BYTES`.

A few routes take bodies of another size (a file written through the files API may be as
large as `BERTH_MAX_FILE_BYTES`): a `RouteLimit` gives the paths it matches their own limit,
setting name and error code, enforced the same way.

A `Content-Length` over the limit is answered 413 before the application runs, so the body is
never read and no handler acts on the request. A body without a length (chunked) is counted
as it streams in; the read that crosses the limit raises `RequestBodyTooLarge`, which FastAPI
passes through its body parsing unchanged, so the route's handler never runs and the client
gets the same 413. Either way at most `limit` bytes (plus one network read) are held.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from fastapi import FastAPI, Request
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from berth.api.errors import error_body

TOO_LARGE_CODE = "request_too_large"


@dataclass(frozen=True)
class RouteLimit:
    """The body limit of the paths `pattern` matches, and how its 413 names it."""

    pattern: re.Pattern[str]
    max_bytes: int
    setting: str
    code: str
    what: str = "request body"


DEFAULT_SETTING = "BERTH_MAX_REQUEST_BYTES"


class RequestBodyTooLarge(HTTPException):
    """A request body crossed the limit while it was read (413)."""

    def __init__(self, limit: int, rule: RouteLimit | None = None) -> None:
        super().__init__(status_code=413, detail=too_large_message(limit, rule))
        self.limit = limit
        self.rule = rule


def too_large_message(limit: int, rule: RouteLimit | None = None) -> str:
    what, setting = (rule.what, rule.setting) if rule else ("request body", DEFAULT_SETTING)
    return f"{what} too large: at most {limit} bytes ({setting})"


def too_large_response(limit: int, rule: RouteLimit | None = None) -> JSONResponse:
    """The 413 answer; `Connection: close`, since the unread rest of the body is dropped."""
    code = rule.code if rule else TOO_LARGE_CODE
    return JSONResponse(
        error_body(too_large_message(limit, rule), code=code, limit_bytes=limit),
        status_code=413,
        headers={"Connection": "close"},
    )


class BodySizeLimit:
    """ASGI middleware enforcing the limit on every HTTP route (WebSockets carry no body)."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, routes: Sequence[RouteLimit] = ()) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.routes = tuple(routes)

    def _rule_for(self, path: str) -> RouteLimit | None:
        return next((rule for rule in self.routes if rule.pattern.match(path)), None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        declared = _content_length(headers)
        rule = self._rule_for(scope["path"]) if self.routes else None
        limit = rule.max_bytes if rule else self.max_bytes
        if declared is not None and declared > limit:
            await too_large_response(limit, rule)(scope, receive, send)
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
                if received > limit:
                    raise RequestBodyTooLarge(limit, rule)
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
            await too_large_response(limit, rule)(scope, receive, send)


def _content_length(headers: Headers) -> int | None:
    value = headers.get("content-length")
    if value is None or not value.strip().isdigit():
        return None
    return int(value)


async def _too_large_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestBodyTooLarge)
    return too_large_response(exc.limit, exc.rule)


def install_body_limit(app: FastAPI, *, max_bytes: int, routes: Sequence[RouteLimit] = ()) -> None:
    """The middleware, and the handler that answers a body cut off inside a route."""
    app.add_exception_handler(RequestBodyTooLarge, _too_large_error)
    app.add_middleware(BodySizeLimit, max_bytes=max_bytes, routes=routes)
