"""Tenants for a load run: users of one company, each with an API key and a session token.

Made in-process on the server's data directory with the same domain functions `berth admin`
runs (one process start instead of three per tenant). The company's approval policy comes
from `settings.default_gated_actions`: pass settings gating nothing, or the mix's API-key
creates would wait for a human.
"""

from __future__ import annotations

import time

from berth.config import Settings
from berth.domain import accounts
from berth.server.bootstrap import open_domain
from berth.testing.load.mix import TenantAccess


async def create_tenants(settings: Settings, count: int, *, label: str) -> list[TenantAccess]:
    domain = await open_domain(settings)
    tenants: list[TenantAccess] = []
    try:
        for number in range(count):
            email = f"{label}-{number}-{time.monotonic_ns()}@example.com"
            user, _kit = await accounts.create_user(domain, email=email)
            key = await accounts.create_api_key(domain, user_id=user.id, name=f"{label} load")
            token = await accounts.issue_session_token(domain, user.id, ttl_seconds=None)
            tenants.append(TenantAccess(user_id=user.id, api_key=key.key, session_token=token))
    finally:
        await domain.store.close()
    return tenants
