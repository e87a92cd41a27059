"""Rate limiting per caller: 429 with `Retry-After` once a caller's token bucket is empty.

The caller is the credential a request presents (an API key or session token, in the Bearer
header, or `?token=` on a WebSocket handshake), kept only as a digest; a request without one
counts against its client address. Credentials are not verified here (that needs the store):
instead a request whose credential turns out invalid (answered 401) is charged to its client
address, its digest's bucket is forgotten, and requests from an address whose bucket is
empty are refused whatever credential they present. So rotating made-up keys buys no extra
attempts, while callers with valid credentials are never charged for one another.

`/healthz` and `/readyz` are exempt (orchestrators and load balancers poll them), and so is
the in-process replay of an approved request (its approval already counted). A WebSocket
handshake counts as one request.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Literal

from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from berth.api.deps import INTERNAL_REPLAY_HEADER, presented_credential
from berth.api.errors import error_body
from berth.token_buckets import Decision, TokenBuckets

EXEMPT_PATHS = frozenset({"/healthz", "/readyz"})
RATE_LIMITED_CODE = "rate_limited"

CallerKind = Literal["api_key", "session_token", "client_address"]


class RateLimit:
    """ASGI middleware: one token bucket per caller (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, per_second: float, burst: int) -> None:
        self.app = app
        self.per_second = per_second
        self.burst = burst
        self.buckets = TokenBuckets(rate=per_second, burst=burst)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or _exempt(scope):
            await self.app(scope, receive, send)
            return
        address_key = "addr:" + _client_address(scope)
        credential = presented_credential(HTTPConnection(scope))
        if credential is None:
            decision = self.buckets.take(address_key)
            if not decision.allowed:
                await self._refuse(scope, receive, send, decision, "client_address")
                return
            await self.app(scope, receive, send)
            return
        kind: CallerKind = "api_key" if credential.startswith("nv_sk_") else "session_token"
        credential_key = "cred:" + hashlib.sha256(credential.encode()).hexdigest()
        decision = self.buckets.peek(address_key)
        if decision.allowed:
            decision = self.buckets.take(credential_key)
        else:
            kind = "client_address"
        if not decision.allowed:
            await self._refuse(scope, receive, send, decision, kind)
            return
        status = 0

        async def watching_send(message: Message) -> None:
            nonlocal status
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watching_send)
        if status == 401:
            self.buckets.forget(credential_key)
            self.buckets.take(address_key)

    async def _refuse(
        self, scope: Scope, receive: Receive, send: Send, decision: Decision, kind: CallerKind
    ) -> None:
        per = {
            "api_key": "API key",
            "session_token": "session token",
            "client_address": "client address",
        }[kind]
        message = (
            f"rate limit exceeded: {self.per_second:g} requests per second per {per}, bursts "
            f"of {self.burst} (BERTH_RATE_LIMIT_PER_SECOND, BERTH_RATE_LIMIT_BURST); retry "
            f"after {decision.retry_after} s"
        )
        response = JSONResponse(
            error_body(
                message,
                code=RATE_LIMITED_CODE,
                limit={"per_second": self.per_second, "burst": self.burst, "per": kind},
                retry_after=decision.retry_after,
            ),
            status_code=429,
            headers={"Retry-After": str(decision.retry_after)},
        )
        if scope["type"] == "http" or "websocket.http.response" in scope.get("extensions", {}):
            await response(scope, receive, send)
        else:  # a server that cannot answer a handshake with HTTP: refuse it (403)
            await send({"type": "websocket.close", "code": 1008, "reason": "rate limited"})


def _exempt(scope: Scope) -> bool:
    if scope["path"] in EXEMPT_PATHS:
        return True
    replay = Headers(scope=scope).get(INTERNAL_REPLAY_HEADER)
    if replay is None:
        return False
    secret: str | None = getattr(scope["app"].state, "replay_secret", None)
    return secret is not None and hmac.compare_digest(replay.partition(":")[0], secret)


def _client_address(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


def install_rate_limit(app: FastAPI, *, per_second: float, burst: int) -> None:
    """Limit the app's callers; a rate or burst of 0 leaves them unlimited."""
    if per_second > 0 and burst > 0:
        app.add_middleware(RateLimit, per_second=per_second, burst=burst)
