"""Dependencies: the domain handle, the caller, and the user a request acts as."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from berth.domain.auth import Actor, Principal, authenticate, resolve_actor
from berth.domain.context import Domain


def get_domain(request: Request) -> Domain:
    domain: Domain = request.app.state.domain
    return domain


DomainDep = Annotated[Domain, Depends(get_domain)]


def bearer_credential(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.query_params.get("token")


async def get_principal(request: Request, domain: DomainDep) -> Principal:
    return await authenticate(domain, bearer_credential(request))


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def company_actor(domain: DomainDep, principal: PrincipalDep) -> Actor:
    """Company-scoped routes: the key's user, or the company's default user."""
    return await resolve_actor(domain, principal, None)


async def path_user_actor(
    domain: DomainDep,
    principal: PrincipalDep,
    user_id: Annotated[str, Path(description="The user acted for.")],
) -> Actor:
    """Per-user routes: an operator key for any user of its company, or the user's own."""
    return await resolve_actor(domain, principal, user_id)
