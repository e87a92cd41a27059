"""Dependencies: the domain handle, the caller, and the user a request acts as."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Path, Request, WebSocket
from starlette.datastructures import Headers
from starlette.requests import HTTPConnection

from berth.domain.approvals import load_replay
from berth.domain.auth import Actor, Principal, authenticate, resolve_actor
from berth.domain.context import Domain

INTERNAL_REPLAY_HEADER = "x-berth-internal-replay"
"""Carries `<per-process secret>:<approval id>` on the in-process replay of an approval."""


async def get_domain(request: Request) -> Domain:
    """A coroutine, not a function: FastAPI runs a plain function dependency on its thread
    pool, a thread hand-off on every request for an attribute read."""
    return domain_of(request)


def domain_of(connection: HTTPConnection) -> Domain:
    domain: Domain = connection.app.state.domain
    return domain


DomainDep = Annotated[Domain, Depends(get_domain)]


def _bearer(headers: Headers) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return None


def bearer_credential(request: Request) -> str | None:
    """`Authorization: Bearer <credential>`; HTTP routes take no credential in the URL."""
    return _bearer(request.headers)


def bearer_credential_ws(websocket: WebSocket) -> str | None:
    """The Bearer header, else `?token=` (browsers cannot set headers on WebSockets)."""
    return _bearer(websocket.headers) or websocket.query_params.get("token")


def presented_credential(connection: HTTPConnection) -> str | None:
    """The credential a request or WebSocket handshake presents, unverified."""
    if connection.scope["type"] == "websocket":
        return _bearer(connection.headers) or connection.query_params.get("token")
    return _bearer(connection.headers)


async def get_principal(request: Request, domain: DomainDep) -> Principal:
    return await _principal(request, domain)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def _principal(request: Request, domain: Domain) -> Principal:
    replay = request.headers.get(INTERNAL_REPLAY_HEADER)
    if replay:
        secret, _, approval_id = replay.partition(":")
        if hmac.compare_digest(secret, request.app.state.replay_secret):
            return await load_replay(domain, approval_id)
    return await authenticate(domain, bearer_credential(request))


# The actor dependencies take the request alone (plus the path's user), not the domain and
# principal as dependencies of their own: FastAPI resolves every dependency of every request
# anew, and each costs more than what it returns.


async def company_actor(request: Request) -> Actor:
    """Company-scoped routes: the key's user, or the company's default user."""
    domain = domain_of(request)
    return await resolve_actor(domain, await _principal(request, domain), None)


async def path_user_actor(
    request: Request,
    user_id: Annotated[str, Path(description="The user acted for.")],
) -> Actor:
    """Per-user routes: an operator key for any user of its company, or the user's own."""
    domain = domain_of(request)
    return await resolve_actor(domain, await _principal(request, domain), user_id)
