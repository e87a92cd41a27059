"""Who is calling, and as whom they act.

A caller presents an API key (`nv_sk_...`, an agent or operator) or a session token (a human).
Company-scoped routes act as the key's user, or for an operator key as the company's default
user; per-user routes accept an operator key for any user of its company, or the user's own
credentials. Anything else is `NotFound`, never "forbidden", so ids of other tenants leak
nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select

from berth.domain.context import Domain
from berth.domain.crypto import hash_api_key
from berth.domain.errors import NotFound, Unauthenticated
from berth.store.models import ApiKey, Company, User


@dataclass(frozen=True)
class Principal:
    company_id: str
    user_id: str | None
    is_operator: bool
    kind: Literal["api_key", "session"]
    key_id: str | None = None
    replay_of: str | None = None
    """Set when the request is the approved replay of this approval."""


@dataclass(frozen=True)
class Actor:
    """The user a request acts as, and who made it."""

    user_id: str
    company_id: str
    principal: Principal


async def authenticate(domain: Domain, credential: str | None) -> Principal:
    if not credential:
        raise Unauthenticated(
            "missing credentials: send 'Authorization: Bearer <API key or session token>'"
        )
    async with domain.store.reading() as session:
        if credential.startswith("nv_sk_"):
            key = await session.scalar(
                select(ApiKey).where(ApiKey.key_hash == hash_api_key(credential))
            )
            if key is None or key.revoked_at is not None:
                raise Unauthenticated("unknown or revoked API key")
            return Principal(
                company_id=key.company_id,
                user_id=key.user_id,
                is_operator=key.is_operator,
                kind="api_key",
                key_id=key.id,
            )
        user_id = domain.tokens.verify(credential)
        user = await session.get(User, user_id)
        if user is None:
            raise Unauthenticated("the session token's user no longer exists")
        return Principal(
            company_id=user.company_id, user_id=user.id, is_operator=False, kind="session"
        )


async def resolve_actor(domain: Domain, principal: Principal, path_user_id: str | None) -> Actor:
    """Pick the acting user for a company-scoped (`path_user_id` None) or per-user route."""
    async with domain.store.reading() as session:
        if path_user_id is None:
            user_id = principal.user_id
            if user_id is None:
                company = await session.get(Company, principal.company_id)
                if company is None or company.default_user_id is None:
                    raise NotFound("the company has no default user yet")
                user_id = company.default_user_id
            return Actor(user_id=user_id, company_id=principal.company_id, principal=principal)
        if principal.is_operator:
            user = await session.get(User, path_user_id)
            if user is None or user.company_id != principal.company_id:
                raise NotFound(f"user {path_user_id} not found")
        elif principal.user_id != path_user_id:
            raise NotFound(f"user {path_user_id} not found")
        return Actor(user_id=path_user_id, company_id=principal.company_id, principal=principal)
