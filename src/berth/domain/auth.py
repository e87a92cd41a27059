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

from sqlalchemy import bindparam, select

from berth.domain.context import Domain
from berth.domain.crypto import hash_api_key
from berth.domain.errors import NotFound, Unauthenticated
from berth.store.models import AccountKit, ApiKey, Company, User


@dataclass(frozen=True)
class Principal:
    company_id: str
    user_id: str | None
    is_operator: bool
    kind: Literal["api_key", "session"]
    key_id: str | None = None
    replay_of: str | None = None
    """Set when the request is the approved replay of this approval."""
    compute_enabled: bool | None = None
    """Whether the compute primitive is enabled for `user_id`, read with the credential in
    the same statement (None: not read), so a request acting as its own user need not read
    it again (`accounts.check_compute_actor`)."""


@dataclass(frozen=True)
class Actor:
    """The user a request acts as, and who made it."""

    user_id: str
    company_id: str
    principal: Principal


_API_KEY = (
    select(
        ApiKey.company_id,
        ApiKey.user_id,
        ApiKey.is_operator,
        ApiKey.id,
        ApiKey.revoked_at,
        AccountKit.compute_enabled,
    )
    .outerjoin(AccountKit, AccountKit.user_id == ApiKey.user_id)
    .where(ApiKey.key_hash == bindparam("key_hash"))
)
_USER_COMPANY = select(User.company_id).where(User.id == bindparam("user_id"))
_SESSION_USER = (
    select(User.company_id, AccountKit.compute_enabled)
    .outerjoin(AccountKit, AccountKit.user_id == User.id)
    .where(User.id == bindparam("user_id"))
)
_DEFAULT_USER = select(Company.default_user_id).where(Company.id == bindparam("company_id"))


async def authenticate(domain: Domain, credential: str | None) -> Principal:
    """The principal a credential stands for, read fresh on every request (one indexed
    query), so a revoked key or a deleted user is refused at once, whichever process made
    the change."""
    if not credential:
        raise Unauthenticated(
            "missing credentials: send 'Authorization: Bearer <API key or session token>'"
        )
    if credential.startswith("nv_sk_"):
        key_hash = hash_api_key(credential)
        key = await domain.store.read_first(_API_KEY, {"key_hash": key_hash})
        if key is None:
            raise Unauthenticated("unknown or revoked API key")
        company_id, user_id, is_operator, key_id, revoked_at, compute_enabled = key
        if revoked_at is not None:
            raise Unauthenticated("unknown or revoked API key")
        return Principal(
            company_id=company_id,
            user_id=user_id,
            is_operator=is_operator,
            kind="api_key",
            key_id=key_id,
            compute_enabled=compute_enabled,
        )
    session_user_id = domain.tokens.verify(credential)
    found = await domain.store.read_first(_SESSION_USER, {"user_id": session_user_id})
    if found is None:
        raise Unauthenticated("the session token's user no longer exists")
    return Principal(
        company_id=found[0],
        user_id=session_user_id,
        is_operator=False,
        kind="session",
        compute_enabled=found[1],
    )


async def resolve_actor(domain: Domain, principal: Principal, path_user_id: str | None) -> Actor:
    """Pick the acting user for a company-scoped (`path_user_id` None) or per-user route."""
    if path_user_id is None:
        user_id = principal.user_id
        if user_id is None:
            found = await domain.store.read_first(
                _DEFAULT_USER, {"company_id": principal.company_id}
            )
            user_id = None if found is None else found[0]
            if user_id is None:
                raise NotFound("the company has no default user yet")
        return Actor(user_id=user_id, company_id=principal.company_id, principal=principal)
    if principal.is_operator:
        found = await domain.store.read_first(_USER_COMPANY, {"user_id": path_user_id})
        company_id = None if found is None else found[0]
        if company_id != principal.company_id:
            raise NotFound(f"user {path_user_id} not found")
    elif principal.user_id != path_user_id:
        raise NotFound(f"user {path_user_id} not found")
    return Actor(user_id=path_user_id, company_id=principal.company_id, principal=principal)
