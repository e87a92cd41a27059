"""Refusing a WebSocket handshake the way a plain request would be refused.

A WebSocket refused before `accept()` is answered with the HTTP status and JSON error body of
the route's dialect (401 without valid credentials, 404 for another user's container...), so
clients and tests see why, instead of the bare 403 a server sends for an early close.
"""

from __future__ import annotations

from fastapi import WebSocket
from fastapi.responses import JSONResponse

from berth.api.errors import error_body
from berth.domain.errors import DomainError


async def refuse_handshake(
    websocket: WebSocket, exc: DomainError, status_by_error: dict[type[DomainError], int]
) -> None:
    status = next(
        (code for kind, code in status_by_error.items() if isinstance(exc, kind)),
        400,
    )
    try:
        await websocket.send_denial_response(
            JSONResponse(error_body(exc.message, code=exc.code, field=exc.field), status)
        )
    except RuntimeError:  # the server cannot send an HTTP answer to a WebSocket handshake
        await websocket.close(code=1008, reason=exc.message[:120])
