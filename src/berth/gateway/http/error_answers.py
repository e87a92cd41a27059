"""The HTTP gateway's own answers: errors in the API's JSON shape.

A body `{"error", "code", "workload"}`: a message to read, a code to match on, and the
workload the request was for (null when none was routed). The reason phrase comes from
`http.HTTPStatus` (none for a code it does not list).
"""

from __future__ import annotations

import json
from http import HTTPStatus


def reason(status: int) -> str:
    """The standard reason phrase, or none for a code `http.HTTPStatus` does not list."""
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""


def error_bytes(
    status: int,
    code: str,
    message: str,
    workload: str | None,
    keep: bool,
    *,
    retry_after: int | None = None,
) -> bytes:
    """A whole error response: head (saying whether the connection is kept) and body."""
    body = json.dumps({"error": message, "code": code, "workload": workload}).encode()
    retry = "" if retry_after is None else f"Retry-After: {retry_after}\r\n"
    head = (
        f"HTTP/1.1 {status} {reason(status)}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        f"{retry}"
        f"Connection: {'keep-alive' if keep else 'close'}\r\n\r\n"
    ).encode()
    return head + body
