"""Treat request bodies as JSON even when the client did not say so.

`curl -d '{...}'` sends `application/x-www-form-urlencoded`; berth's API takes only JSON, so
such bodies (and bodies with no content type) are read as JSON instead of being refused.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Receive, Scope, Send

_REWRITTEN = {b"", b"application/x-www-form-urlencoded", b"text/plain"}


class AssumeJsonBody:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH"):
            headers = [(k, v) for k, v in scope["headers"] if k != b"content-type"]
            content_type = next((v for k, v in scope["headers"] if k == b"content-type"), b"")
            if content_type.split(b";")[0].strip().lower() in _REWRITTEN:
                scope = dict(scope, headers=[*headers, (b"content-type", b"application/json")])
        await self.app(scope, receive, send)
