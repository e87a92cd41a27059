"""Request limits of the whole API, installed once: body size (413) and rate (429).

Both are middleware rather than per-route code, so every route, of both dialects, gets them
and routers stay as they are; the OpenAPI document declares the two answers on every route
they apply to.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import FastAPI

from berth.api.middleware.body_limit import RouteLimit, install_body_limit
from berth.api.middleware.rate_limit import EXEMPT_PATHS, install_rate_limit
from berth.api.responses import ERROR_BODY
from berth.config import Settings

TOO_LARGE_RESPONSE: dict[str, Any] = {
    "description": "The request body is larger than the server's limit "
    "(`BERTH_MAX_REQUEST_BYTES`, default 1 MiB); code `request_too_large`.",
    "content": ERROR_BODY,
}
RATE_LIMITED_RESPONSE: dict[str, Any] = {
    "description": "Too many requests from this API key, session token or client address; "
    "code `rate_limited`. Retry after the seconds in `Retry-After`.",
    "content": ERROR_BODY,
    "headers": {
        "Retry-After": {
            "description": "Whole seconds (at least 1) until a request will be accepted.",
            "schema": {"type": "integer", "minimum": 1},
        }
    },
}


FILES_PATH = re.compile(r"^(/v1(/users/[^/]+)?/compute|/compute/containers)/[^/]+/files$")
"""The files API's routes, whose bodies (a file's content) have a limit of their own."""


def files_limit(settings: Settings) -> RouteLimit:
    return RouteLimit(
        pattern=FILES_PATH,
        max_bytes=settings.max_file_bytes,
        setting="BERTH_MAX_FILE_BYTES",
        code="file_too_large",
        what="file",
    )


def install_request_limits(app: FastAPI, settings: Settings) -> None:
    """Add the middleware (the rate limit outermost, so a refused caller costs no body read)
    and declare 413 and 429 in the OpenAPI document."""
    install_body_limit(app, max_bytes=settings.max_request_bytes, routes=[files_limit(settings)])
    rate_limited = settings.rate_limit_per_second > 0 and settings.rate_limit_burst > 0
    install_rate_limit(
        app, per_second=settings.rate_limit_per_second, burst=settings.rate_limit_burst
    )
    _declare_limit_responses(app, rate_limited=rate_limited)


def _declare_limit_responses(app: FastAPI, *, rate_limited: bool) -> None:
    """Post-process the generated document (routers are untouched): 413 on every operation
    taking a body, 429 on every operation but the exempt ones."""
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        already = app.openapi_schema is not None
        schema = generate()
        if already:
            return schema
        for path, operations in schema.get("paths", {}).items():
            for operation in operations.values():
                responses = operation.setdefault("responses", {})
                if "requestBody" in operation:
                    responses.setdefault("413", TOO_LARGE_RESPONSE)
                if rate_limited and path not in EXEMPT_PATHS:
                    responses.setdefault("429", RATE_LIMITED_RESPONSE)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
